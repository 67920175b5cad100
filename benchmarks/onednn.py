"""The oneDNN path's thread count against a loaded machine: one LSTM training step, XLA's loop beside it.

For each thread count (``OMP_NUM_THREADS`` as the path reads it when a function is traced; ``auto``: unset,
the default, where the extension times one thread against all per shape and takes the faster) and each load
(that many processes spinning on a core each while the steps are timed), the median of ``--repeats``
training steps of ``jaxrnn.lstm`` on ``path="onednn"`` and on ``path="plain"`` (which ignores the thread
count), all in one process, in interleaved rounds:

    python -m benchmarks.onednn [--shape B32T128I64H128] [--threads 1,all,auto] [--loads 0,1,2] [--repeats 15]
                                [--json PATH]

The evidence for :func:`jaxrnn.onednn.threads`' default: an OpenMP team waits at every time step's barrier
for its slowest thread, and a thread that has lost its core stalls them all. JSON next to
the other results: ``benchmarks/results/<device>-onednn.json``.
"""

from __future__ import annotations

import argparse
import datetime
import multiprocessing
import os
import statistics
import sys
import time
from typing import Any, Sequence

import jax
import jax.numpy as jnp

import jaxrnn
from benchmarks import machine, report
from benchmarks.shapes import parse_shape


def _spin(stop) -> None:  # a process that keeps one core busy until told to stop
    while not stop.is_set():
        pass


def _step(cell, shape, path: str, threads: int | None):
    """A compiled training step (loss mean(y**2), gradients for params and x) on ``path``, traced with
    ``OMP_NUM_THREADS=threads`` (the oneDNN call's thread count is fixed when it is traced)."""
    params = cell.init(jax.random.key(0), shape.I)
    x = jax.random.normal(jax.random.key(1), (shape.T, shape.B, shape.I))

    def loss(p, x):
        return jnp.mean(jaxrnn.scan(cell, p, x, path=path)[1] ** 2)

    before = os.environ.pop("OMP_NUM_THREADS", None)
    if threads is not None:
        os.environ["OMP_NUM_THREADS"] = str(threads)
    try:
        compiled = jax.jit(jax.grad(loss, argnums=(0, 1))).lower(params, x).compile()
    finally:
        if before is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = before
    return lambda: jax.block_until_ready(compiled(params, x))


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.onednn", description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="B32T128I64H128", type=parse_shape)
    parser.add_argument("--threads", default="1,all,auto",
                        help="thread counts: numbers, 'all' (the cores), 'auto' (the default: no OMP_NUM_THREADS)")
    parser.add_argument("--loads", default="0,1,2", type=lambda s: [int(n) for n in s.split(",")])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    if not jaxrnn.onednn.available():
        print(f"the oneDNN path is not available here: {jaxrnn.onednn.status()}", file=sys.stderr)
        raise SystemExit(2)
    shape, cell = args.shape, jaxrnn.lstm(args.shape.H)
    cores = len(os.sched_getaffinity(0))
    steps = {}
    for n in args.threads.split(","):
        n = n.strip()
        count = cores if n == "all" else None if n == "auto" else int(n)
        name = "onednn, default threads" if count is None else f"onednn, {count} thread{'s' * (count > 1)}"
        steps[name] = _step(cell, shape, "onednn", count)
    steps["plain"] = _step(cell, shape, "plain", None)
    rows = []
    for load in args.loads:
        stop = multiprocessing.Event()
        spinners = [multiprocessing.Process(target=_spin, args=(stop,), daemon=True) for _ in range(load)]
        for p in spinners:
            p.start()
        try:
            for step in steps.values():  # warm up under this load
                step()
            times: dict[str, list[float]] = {name: [] for name in steps}
            for _ in range(args.repeats):
                for name, step in steps.items():
                    start = time.perf_counter()
                    step()
                    times[name].append(1000 * (time.perf_counter() - start))
        finally:
            stop.set()
            for p in spinners:
                p.join()
        for name, values in times.items():
            rows.append({"load": load, "path": name, "median_ms": statistics.median(values), "ms": values})
            print(f"load {load}: {name}: {statistics.median(values):.1f} ms", flush=True)
    device = machine.device()
    table = [f"#### LSTM training step, {shape.name}, {device['name']}", "",
             "| busy cores (other processes) | " + " | ".join(steps) + " |",
             "| ---: | " + " | ".join(["---:"] * len(steps)) + " |"]
    for load in args.loads:
        cells = [f"{r['median_ms']:.1f} ms" for r in rows if r["load"] == load]
        table.append(f"| {load} | " + " | ".join(cells) + " |")
    markdown = "\n".join(table)
    print("\n" + markdown)
    result = {"created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "command": "python -m benchmarks.onednn " + " ".join(sys.argv[1:] if argv is None else argv),
              "device": device, "software": machine.software(), "onednn": jaxrnn.onednn.status(),
              "shape": shape.as_dict(), "repeats": args.repeats, "results": rows, "markdown": markdown}
    report.save(result, args.json, "onednn")
    return result


if __name__ == "__main__":
    main()
