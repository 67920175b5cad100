"""How fast a language model writes: tokens per second of ``jaxrnn.language.generate``, one stream and many.

The model is the character LSTM of ``configs/charlm_lstm.yaml`` (256 units,
an embedding of 32, 104 characters); its params are random (speed does not
depend on them). Each case warms the state on a 16-token prompt and draws
``--length`` tokens in one ``lax.scan``; the first call compiles it (timed
apart), then ``--repeats`` calls are timed. Tokens per second count every
stream: ``streams * length / median seconds``.

    python -m benchmarks.generation [--streams 1,64] [--length 256] [--repeats 10] [--json PATH]

JSON next to the other results: ``benchmarks/results/<device>-generation.json``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np

import jaxrnn
from benchmarks import machine, report
from jaxrnn import language

VOCABULARY, EMBEDDING, HIDDEN, PROMPT = 104, 32, 256, 16


def measure(streams: int, length: int, repeats: int) -> dict[str, Any]:
    """Compile time and the median time of drawing ``length`` tokens in each of ``streams`` streams."""
    model = language.language_model(jaxrnn.lstm(HIDDEN), VOCABULARY, EMBEDDING)
    params = model.init(jax.random.key(0), VOCABULARY)
    prompt = np.random.default_rng(0).integers(0, VOCABULARY, (streams, PROMPT)).astype(np.int32).T  # (P, streams)

    def call(seed):
        return language.generate(model, params, prompt, length, key=jax.random.key(seed)).block_until_ready()

    began = time.perf_counter()
    call(0)
    first_s = time.perf_counter() - began
    times = []
    for seed in range(1, repeats + 1):
        began = time.perf_counter()
        call(seed)
        times.append(time.perf_counter() - began)
    median = float(np.median(times))
    return {"streams": streams, "length": length, "first_call_s": first_s, "median_s": median,
            "times_s": times, "tokens_per_s": streams * length / median, "ms_per_step": 1e3 * median / length}


def markdown(rows: list[dict[str, Any]], device: str) -> str:
    lines = [f"#### Generation: character LSTM ({HIDDEN} units), {device}", "",
             "| streams | tokens drawn | median | tokens / s | ms per step | first call (compiles) |",
             "| ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        lines.append(f"| {r['streams']} | {r['streams'] * r['length']} | {r['median_s'] * 1e3:.1f} ms | "
                     f"{r['tokens_per_s']:,.0f} | {r['ms_per_step']:.3f} | {r['first_call_s']:.2f} s |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", default="1,64", help="comma-separated numbers of parallel streams")
    parser.add_argument("--length", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    try:
        streams = [int(s) for s in args.streams.split(",") if s.strip()]
    except ValueError:
        parser.error(f"--streams: comma-separated positive integers, got {args.streams!r}")
    if not streams or min(streams) < 1 or args.length < 1 or args.repeats < 1:
        parser.error("--streams, --length and --repeats: positive integers")
    device = machine.device()
    rows = [measure(s, args.length, args.repeats) for s in streams]
    table = markdown(rows, device["name"])
    print(table)
    result = {"device": device, "software": machine.software(), "rows": rows, "markdown": table}
    report.save(result, args.json, "generation")
    return result


if __name__ == "__main__":
    main()
