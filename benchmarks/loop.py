"""How ``jaxrnn.scan`` should run its loop here: every ``path`` x ``unroll``, compile and run time.

The evidence behind ``path="auto"`` and the unroll cap: for one shape and
cell, each loop path (``plain``, ``projected``, ``fused``) at each unroll
factor is compiled ahead of time (timed) and its training (or inference) step
timed in interleaved rounds, as :mod:`benchmarks.run` times the frameworks.
The row of the library's defaults (``path="auto"``, ``unroll=None``: ``AUTO_UNROLL``) is marked.

    python -m benchmarks.loop [--shape B32T128I64H128] [--cell lstm] [--mode train]
                              [--unrolls 1,2,4,8,16] [--repeats 10]

JSON next to the other results: ``benchmarks/results/<device>-loop.json``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import jax
import numpy as np

from benchmarks import machine, report
from benchmarks.layers import jaxrnn_layer
from benchmarks.shapes import Shape, parse_shape
from benchmarks.timing import measure, timed
from jaxrnn.loop import MAX_UNROLL, check_unroll

PATHS = ("plain", "projected", "fused")


def sweep(
    shape: Shape, cell: str, mode: str, unrolls: list[int], repeats: int, warmup: int = 2
) -> list[dict[str, Any]]:
    """One row per (path, unroll): compile seconds and the step's timing."""
    xs = np.random.default_rng(0).standard_normal((shape.T, shape.B, shape.I)).astype(np.float32)
    settings = [(path, unroll) for path in PATHS for unroll in unrolls]
    if "onednn" in jaxrnn_layer.FACTORIES[cell][1](shape.H).info.paths and jax.default_backend() == "cpu":
        settings.append(("onednn", min(unrolls)))  # one call of oneDNN's primitive: no loop to unroll
    cases, first = [], []
    for path, unroll in settings:
        case = jaxrnn_layer.build(cell, shape, mode, "float32", xs, {"path": path, "unroll": unroll})
        cases.append(case)
        first.append(timed(case.step))
    timings = measure(cases, first, repeats, warmup)
    auto = jaxrnn_layer.build(cell, shape, "infer", "float32", xs).path  # the path the defaults take here
    auto_unroll = check_unroll(None, shape.T) if auto != "onednn" else min(unrolls)
    return [
        {"path": path, "unroll": unroll, "default": path == auto and unroll == auto_unroll,
         "compile_s": case.compile_s, **timing.as_dict()}
        for (path, unroll), case, timing in zip(settings, cases, timings)
    ]


def markdown(rows: list[dict[str, Any]], shape: Shape, cell: str, mode: str, device: str) -> str:
    best = min(r["median_ms"] for r in rows)
    lines = [
        f"#### jaxrnn.scan loop: {cell} {mode}, {shape.name}, {device}",
        "",
        "| path | unroll | step ms | vs fastest | compile s |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        mark = " (default)" if r["default"] else ""
        lines.append(f"| {r['path']}{mark} | {r['unroll']} | {r['median_ms']:.3g} | "
                     f"{r['median_ms'] / best:.2f}x | {r['compile_s']:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=parse_shape, default=Shape(32, 128, 64, 128))
    parser.add_argument("--cell", choices=tuple(jaxrnn_layer.FACTORIES), default="lstm")
    parser.add_argument("--mode", choices=("train", "infer"), default="train")
    parser.add_argument("--unrolls", default="1,2,4,8,16",
                        help=f"comma-separated; at most MAX_UNROLL = {MAX_UNROLL}")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    unrolls = [int(u) for u in args.unrolls.split(",") if u.strip()]
    if not unrolls or min(unrolls) < 1 or max(unrolls) > MAX_UNROLL:
        parser.error(f"--unrolls: integers in 1..{MAX_UNROLL}, got {args.unrolls!r}")
    device = machine.device()
    rows = sweep(args.shape, args.cell, args.mode, unrolls, args.repeats)
    table = markdown(rows, args.shape, args.cell, args.mode, device["name"])
    print(table)
    result = {"device": device, "software": machine.software(), "shape": args.shape.as_dict(),
              "cell": args.cell, "mode": args.mode, "rows": rows, "markdown": table}
    report.save(result, args.json, "loop")
    return result


if __name__ == "__main__":
    main()
