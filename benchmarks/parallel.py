"""Parallel in time against step by step: minGRU and minLSTM through ``jaxrnn.scan`` beside the sequential GRU.

Cases, each a training step (``jax.value_and_grad`` of ``mean(ys**2)`` with
respect to params and inputs) over time-major ``x: (T, B, I)``:

* ``mingru``, ``minlstm``: ``jaxrnn.scan(jaxrnn.mingru(H), ..., path="parallel")``,
  the whole sequence through the associative scan of :mod:`jaxrnn.linear_recurrence`;
* ``mingru stepped``: the same cell with ``path="plain"``, its one-token
  ``step`` through the ordinary loop (the same function, step by step);
* ``gru``: ``jaxrnn.gru(H, reset_after=True)`` through the ordinary loop
  (``path="auto"``: fused on a GPU), the sequential cell the paper replaces.

Cases of one shape are timed in interleaved rounds (:mod:`benchmarks.timing`).
``--sweep`` times the same cases over sequence lengths at a small shape and
reports the crossover: the shortest ``T`` from which the parallel minGRU is
faster than the sequential GRU at every longer ``T`` measured.

``--accuracy`` measures instead how far float32 is from float64, for each
minimal cell and sequence length: the outputs ``ys`` and the gradients of
``sum(w * sin(ys))`` (``w`` fixed, random) with respect to params and inputs,
each as its largest error over its largest magnitude, for ``path="parallel"``
and ``path="plain"`` in float32 against ``path="plain"`` in float64 (the
one-token step, stepped in float64), inputs ``N(0, 1)``, params from ``init``.

    python -m benchmarks.parallel [--shapes B16T4096I256H512,B64T512I256H512] [--modes train]
                                  [--sweep 16,32,...] [--sweep-shape B16I64H128] [--repeats 10]
    python -m benchmarks.parallel --accuracy 1000,8192,20000 [--accuracy-shape B2I3H4]

JSON next to the other results: ``benchmarks/results/<device>-parallel.json``
(``<device>-parallel-accuracy.json`` for ``--accuracy``).
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any, Callable

import jax
import numpy as np

import jaxrnn
from benchmarks import machine, report
from benchmarks.layers.jax_common import jax_case
from benchmarks.shapes import Shape, parse_shapes
from benchmarks.timing import measure, timed

SHAPES = "B16T4096I256H512,B64T512I256H512"
SWEEP = "16,32,64,128,256,512,1024,2048"


# name -> (the cell, as written in the table; its factory; scan's path)
CASES: dict[str, tuple[str, Callable[[int], jaxrnn.Part], str]] = {
    "mingru": ("jaxrnn.mingru({H})", jaxrnn.mingru, "parallel"),
    "minlstm": ("jaxrnn.minlstm({H})", jaxrnn.minlstm, "parallel"),
    "mingru stepped": ("jaxrnn.mingru({H})", jaxrnn.mingru, "plain"),
    "gru": ("jaxrnn.gru({H}, reset_after=True)", lambda H: jaxrnn.gru(H, reset_after=True), "auto"),
}


def time_shape(shape: Shape, mode: str, names: list[str], repeats: int, warmup: int) -> list[dict[str, Any]]:
    """One row per case: compile seconds and the timing of its step at ``shape``."""
    xs = jax.numpy.asarray(np.random.default_rng(0).standard_normal((shape.T, shape.B, shape.I)), "float32")
    cases, first = [], []
    for name in names:
        template, factory, path = CASES[name]
        cell = factory(shape.H)
        params = cell.init(jax.random.key(0), shape.I)

        def apply(params, x, cell=cell, path=path):
            return jaxrnn.scan(cell, params, x, path=path)[1]

        case = jax_case(name, f"jaxrnn.scan({template.format(H=shape.H)}, params, x[T, B, I], path={path!r})[1]",
                        apply, params, xs, mode)
        cases.append(case)
        first.append(timed(case.step))
    timings = measure(cases, first, repeats, warmup)
    return [{"case": name, "what": case.what, "shape": shape.as_dict(), "mode": mode,
             "compile_s": case.compile_s, **timing.as_dict()}
            for name, case, timing in zip(names, cases, timings)]


def speedups(rows: list[dict[str, Any]], baseline: str = "gru") -> None:
    """Adds ``vs_<baseline>``: the baseline's median over the row's (> 1: faster than the baseline)."""
    base = next((r["median_ms"] for r in rows if r["case"] == baseline), None)
    for r in rows:
        r[f"vs_{baseline}"] = None if base is None else base / r["median_ms"]


def crossover(sweep: list[dict[str, Any]], fast: str = "mingru", slow: str = "gru") -> int | None:
    """The shortest ``T`` from which ``fast`` beats ``slow`` at every longer ``T`` measured (None: never)."""
    by_t: dict[int, dict[str, float]] = {}
    for r in sweep:
        by_t.setdefault(r["shape"]["T"], {})[r["case"]] = r["median_ms"]
    answer = None
    for t in sorted(by_t, reverse=True):
        times = by_t[t]
        if fast not in times or slow not in times or times[fast] >= times[slow]:
            break
        answer = t
    return answer


def markdown(rows: list[dict[str, Any]], device: str, title: str) -> str:
    lines = [f"#### {title}, {device}", "",
             "| shape | mode | case | step ms | IQR | vs gru | compile s |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: |"]
    for r in rows:
        s = Shape(**r["shape"])
        ratio = "" if r.get("vs_gru") is None else f"{r['vs_gru']:.2f}x"
        lines.append(f"| {s.name} | {r['mode']} | {r['case']} | {r['median_ms']:.3g} | "
                     f"{r['iqr_ms'] / r['median_ms']:.0%} | {ratio} | {r['compile_s']:.2f} |")
    return "\n".join(lines)


def accuracy(lengths: list[int], B: int, I: int, H: int) -> list[dict[str, Any]]:
    """One row per (cell, ``T``, float32 path): its relative errors against float64 (module docstring)."""
    rows = []
    for name in ("mingru", "minlstm"):
        cell = CASES[name][1](H)
        for t in lengths:
            rng = np.random.default_rng(t)
            params = cell.init(jax.random.key(t), I)
            xs = rng.standard_normal((t, B, I)).astype(np.float32)
            weights = rng.uniform(-1.0, 1.0, (t, B, H)).astype(np.float32)

            def graded(params, xs, path):
                def loss(params, xs):
                    ys = jaxrnn.scan(cell, params, xs, path=path)[1]
                    return jax.numpy.sum(weights * jax.numpy.sin(ys)), ys

                (_, ys), grads = jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)(params, xs)
                return ys, grads

            compiled = jax.jit(graded, static_argnames="path")
            run = lambda *args: jax.tree_util.tree_map(np.asarray, compiled(*args))  # noqa: E731
            with jax.enable_x64(True):
                as64 = lambda tree: jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), tree)  # noqa: E731
                exact_ys, exact_grads = run(as64(params), as64(xs), "plain")
            for path in ("parallel", "plain"):
                ys, grads = run(params, xs, path)
                grad_errors = [_relative(g, e) for g, e in zip(jax.tree_util.tree_leaves(grads),
                                                                jax.tree_util.tree_leaves(exact_grads))]
                rows.append({"case": name, "path": path, "shape": Shape(B, t, I, H).as_dict(),
                             "value_error": _relative(ys, exact_ys), "grad_error": max(grad_errors)})
            print(f"{name} T={t}: parallel {rows[-2]['value_error']:.2g} / {rows[-2]['grad_error']:.2g}, "
                  f"plain {rows[-1]['value_error']:.2g} / {rows[-1]['grad_error']:.2g}", flush=True)
    return rows


def _relative(actual: Any, expected: Any) -> float:
    expected = np.asarray(expected, np.float64)
    return float(np.max(np.abs(np.asarray(actual, np.float64) - expected)) / np.max(np.abs(expected)))


def accuracy_markdown(rows: list[dict[str, Any]], device: str) -> str:
    lines = [f"#### float32 against float64, {device}", "",
             "| cell | T | path | ys: max error / max abs | gradients: max error / max abs |",
             "| --- | ---: | --- | ---: | ---: |"]
    lines += [f"| {r['case']} | {r['shape']['T']} | {r['path']} | {r['value_error']:.2g} | {r['grad_error']:.2g} |"
              for r in rows]
    return "\n".join(lines)


_SWEEP_SHAPE = re.compile(r"^B(\d+)I(\d+)H(\d+)$", re.IGNORECASE)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", default=SHAPES, help=f"comma-separated shapes or presets (default {SHAPES}; "
                        "'none' for the sweep alone)")
    parser.add_argument("--modes", default="train", help="comma-separated: train (forward + backward), infer")
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, of {', '.join(CASES)}")
    parser.add_argument("--sweep", default="", help=f"comma-separated sequence lengths (e.g. {SWEEP}); empty: no sweep")
    parser.add_argument("--sweep-shape", default="B16I64H128", help="the sweep's batch, input and hidden sizes")
    parser.add_argument("--accuracy", default="", help="comma-separated sequence lengths: float32 against float64 "
                        "instead of timing (e.g. 1000,8192,20000)")
    parser.add_argument("--accuracy-shape", default="B2I3H4", help="--accuracy's batch, input and hidden sizes")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    try:
        shapes = [] if args.shapes.strip().lower() == "none" else parse_shapes(args.shapes)
        lengths = [int(t) for t in args.sweep.split(",") if t.strip()]
        accuracy_lengths = [int(t) for t in args.accuracy.split(",") if t.strip()]
    except ValueError as error:
        parser.error(str(error))
    if accuracy_lengths:
        accuracy_shape = _SWEEP_SHAPE.match(args.accuracy_shape.strip())
        if accuracy_shape is None or min(accuracy_lengths) < 1:
            parser.error("--accuracy: positive sequence lengths; --accuracy-shape: like B2I3H4")
        device = machine.device()
        rows = accuracy(accuracy_lengths, *(int(g) for g in accuracy_shape.groups()))
        table = accuracy_markdown(rows, device["name"])
        print(table)
        result = {"device": device, "software": machine.software(), "accuracy": rows, "markdown": table}
        report.save(result, args.json, "parallel-accuracy")
        return result
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    names = [c.strip() for c in args.cases.split(",") if c.strip()]
    if not modes or set(modes) - {"train", "infer"}:
        parser.error(f"--modes: train and/or infer, got {args.modes!r}")
    if not names or set(names) - set(CASES):
        parser.error(f"--cases: of {', '.join(CASES)}, got {args.cases!r}")
    if lengths and min(lengths) < 1 or args.repeats < 1 or args.warmup < 0:
        parser.error("--sweep lengths and --repeats: positive integers; --warmup: non-negative")
    sweep_shape = _SWEEP_SHAPE.match(args.sweep_shape.strip())
    if sweep_shape is None:
        parser.error(f"--sweep-shape: like B16I64H128, got {args.sweep_shape!r}")
    if not shapes and not lengths:
        parser.error("nothing to time: give --shapes or --sweep")
    B, I, H = (int(g) for g in sweep_shape.groups())

    device = machine.device()
    rows: list[dict[str, Any]] = []
    for shape in shapes:
        for mode in modes:
            group = time_shape(shape, mode, names, args.repeats, args.warmup)
            speedups(group)
            rows += group
            print(markdown(group, device["name"], "Parallel vs sequential"), flush=True)
    sweep: list[dict[str, Any]] = []
    for t in lengths:
        group = time_shape(Shape(B, t, I, H), "train", names, args.repeats, args.warmup)
        speedups(group)
        sweep += group
    tables = [markdown(rows, device["name"], "Parallel vs sequential")] if rows else []
    result: dict[str, Any] = {"device": device, "software": machine.software(), "rows": rows}
    if sweep:
        result["sweep"] = sweep
        result["crossover_T"] = crossover(sweep)
        tables.append(markdown(sweep, device["name"], f"Sweep over T, B{B} I{I} H{H}, train") + "\n\n"
                      f"Crossover (minGRU parallel faster than the GRU from this T on): {result['crossover_T']}")
        print(tables[-1])
    result["markdown"] = "\n\n".join(tables)
    report.save(result, args.json, "parallel")
    return result


if __name__ == "__main__":
    main()
