"""Compiled memory of a long LSTM training step, with and without ``remat`` in ``jaxrnn.scan``.

XLA reports, for a compiled executable, the bytes of its arguments, outputs and
temporaries, and a peak (see :func:`memory_stats` for what it means per
backend). The peak decides whether a step fits on a device; a training step
through time normally keeps every step's activations alive for the backward
pass, which ``remat=True`` trades for recomputation.

    python -m benchmarks.memory [--shape B16T8192I32H128] [--repeats 5]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import jaxrnn
from benchmarks.shapes import Shape, parse_shape

DEFAULT_SHAPE = Shape(B=16, T=8192, I=32, H=128)
FIELDS = ("argument_size_in_bytes", "output_size_in_bytes", "alias_size_in_bytes", "temp_size_in_bytes",
          "generated_code_size_in_bytes", "peak_memory_in_bytes")


def memory_stats(compiled: Any) -> dict[str, Any]:
    """The fields of ``compiled.memory_analysis()`` (``None`` where absent), plus ``peak_bytes``.

    ``peak_bytes`` is XLA's ``peak_memory_in_bytes`` where that counts the
    temporaries (GPU: a simulation of buffer lifetimes). XLA:CPU reports as its
    peak only arguments + outputs, so there -- and on jaxlibs without the field --
    it is arguments + outputs + temporaries - aliased, the memory the
    executable holds while it runs (temporaries are one arena, already packed
    by buffer lifetimes).
    """
    analysis = compiled.memory_analysis()
    stats: dict[str, Any] = {f: (getattr(analysis, f, None) if analysis is not None else None) for f in FIELDS}
    xla_peak, temp = stats["peak_memory_in_bytes"], stats["temp_size_in_bytes"]
    if temp is None:
        stats["peak_bytes"], stats["peak_source"] = xla_peak, "xla"
    elif xla_peak is not None and xla_peak >= temp:
        stats["peak_bytes"], stats["peak_source"] = xla_peak, "xla"
    else:
        stats["peak_bytes"] = (stats["argument_size_in_bytes"] + stats["output_size_in_bytes"] + temp
                               - (stats["alias_size_in_bytes"] or 0))
        stats["peak_source"] = "arguments + outputs + temporaries - aliased"
    return stats


def lstm_train_step(shape: Shape, remat: bool):
    """``(fn, params, xs)``: the jaxrnn LSTM training step of :mod:`benchmarks.layers`, with ``remat``."""
    cell = jaxrnn.lstm(shape.H)
    params = cell.init(jax.random.key(0), shape.I)
    xs = jnp.asarray(np.random.default_rng(0).standard_normal((shape.T, shape.B, shape.I), np.float32))

    def loss(params, xs):
        return jnp.mean(jnp.square(jaxrnn.scan(cell, params, xs, remat=remat)[1]))

    return jax.value_and_grad(loss, argnums=(0, 1)), params, xs


def run(shape: Shape = DEFAULT_SHAPE, repeats: int = 3) -> dict[str, Any]:
    """Compile the step with ``remat=False`` and ``remat=True``; their memory, compile and run times."""
    result: dict[str, Any] = {"shape": shape.as_dict(), "shape_name": shape.name, "cell": "lstm"}
    for remat in (False, True):
        fn, params, xs = lstm_train_step(shape, remat)
        start = time.perf_counter()
        compiled = jax.jit(fn).lower(params, xs).compile()
        entry: dict[str, Any] = {"compile_s": time.perf_counter() - start, **memory_stats(compiled)}
        times = []
        for i in range(repeats + 1):  # the first call is warm-up
            start = time.perf_counter()
            jax.block_until_ready(compiled(params, xs))
            if i:
                times.append(time.perf_counter() - start)
        entry["median_ms"] = float(np.median(times)) * 1e3 if times else None
        result[f"remat={remat}"] = entry
    off, on = result["remat=False"], result["remat=True"]
    for field in ("peak_bytes", "temp_size_in_bytes"):
        a, b = off.get(field), on.get(field)
        result[f"{field}_ratio"] = (a / b) if a and b else None
    return result


def size(n: int | None) -> str:
    """Bytes in a readable unit: ``"12.5 MiB"``."""
    if n is None:
        return "n/a"
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def markdown(result: dict[str, Any]) -> str:
    """A small table: peak, temporaries, compile and run time for both settings, and the ratio."""
    ratio = lambda r: "n/a" if r is None else f"{r:.2f}x"  # noqa: E731
    lines = [
        f"### Memory: LSTM training step, {result['shape_name']} (jaxrnn.scan, compiled)",
        "",
        "| remat | peak | temporaries | arguments | compile s | step ms |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for remat in (False, True):
        e = result[f"remat={remat}"]
        step = "n/a" if e.get("median_ms") is None else f"{e['median_ms']:.1f}"
        lines.append(f"| {remat} | {size(e['peak_bytes'])} | {size(e['temp_size_in_bytes'])} | "
                     f"{size(e['argument_size_in_bytes'])} | {e['compile_s']:.2f} | {step} |")
    lines += ["", f"remat=False / remat=True: peak {ratio(result['peak_bytes_ratio'])}, "
                  f"temporaries {ratio(result['temp_size_in_bytes_ratio'])} "
                  f"(peak: {result['remat=False']['peak_source']}; from compiled.memory_analysis())"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=parse_shape, default=DEFAULT_SHAPE, help="e.g. B16T8192I32H128")
    parser.add_argument("--repeats", type=int, default=3, help="timed steps per setting (0: memory only)")
    args = parser.parse_args(argv)
    result = run(args.shape, args.repeats)
    print(markdown(result))
    return result


if __name__ == "__main__":
    main()
