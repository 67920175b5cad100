"""Time jaxrnn against Flax, PyTorch and (on a GPU) jax.experimental.rnn, side by side in one process.

    python -m benchmarks.run [--shapes cpu|gpu|all|tiny|B32T128I64H128,...] [--cells lstm,gru,rnn]
                             [--modes train,infer] [--repeats N] [--warmup N] [--dtype float32|bfloat16]
                             [--frameworks "jaxrnn,jaxrnn plain,Flax,PyTorch,jax.experimental.rnn"]
                             [--json PATH] [--no-memory] [--memory-shape B16T8192I32H128]
                             [--scan KEY=VALUE ...]

For every shape, cell and mode it builds each framework's layer, compiles it
(timed apart), makes one first call, warms up, and times ``--repeats`` steps in
interleaved rounds of random order; then prints a markdown table per shape and writes the JSON
record (default ``benchmarks/results/<device>.json``). Last, the memory
benchmark of :mod:`benchmarks.memory`.
"""

from __future__ import annotations

import argparse
import ast
import datetime
import gc
import sys
import traceback
from typing import Any, Sequence

import numpy as np

from benchmarks import layers, machine, memory, report
from benchmarks.shapes import Shape, parse_shape, parse_shapes
from benchmarks.timing import Case, measure, timed


def _names(text: str, allowed: Sequence[str], what: str) -> list[str]:
    lookup = {a.lower(): a for a in allowed}
    names = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [n for n in names if n.lower() not in lookup]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown {what} {', '.join(unknown) or text!r}; "
                                         f"choose from {', '.join(allowed)}")
    return [lookup[n.lower()] for n in names]


def _scan_option(text: str) -> tuple[str, Any]:
    """``"unroll=8"`` -> ``("unroll", 8)``; values are Python literals, else strings."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip().isidentifier():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key.strip(), ast.literal_eval(value.strip())
    except (ValueError, SyntaxError):
        return key.strip(), value.strip()


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", default=None,
                        help="presets cpu, gpu, all, tiny and/or specs like B32T128I64H128, comma-separated "
                             "(default: gpu on a GPU, else cpu)")
    parser.add_argument("--cells", default=",".join(layers.CELLS),
                        type=lambda s: _names(s, layers.CELLS, "cell"))
    parser.add_argument("--modes", default=",".join(layers.MODES),
                        type=lambda s: _names(s, layers.MODES, "mode"))
    parser.add_argument("--frameworks", default=",".join(layers.FRAMEWORKS),
                        type=lambda s: _names(s, list(layers.FRAMEWORKS), "framework"))
    parser.add_argument("--repeats", type=int, default=20, help="timed steps per case (default 20)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps after the first call (default 3)")
    parser.add_argument("--dtype", choices=layers.DTYPES, default="float32",
                        help="bfloat16: float32 parameters, bfloat16 inputs and matrix products "
                             "(PyTorch: module and inputs cast to bfloat16)")
    parser.add_argument("--json", default=None,
                        help="where to write the JSON (default benchmarks/results/<device>[-bfloat16].json)")
    parser.add_argument("--no-interleave", dest="interleave", action="store_false",
                        help="time each framework's steps back to back instead of in rounds of random order")
    parser.add_argument("--no-memory", dest="memory", action="store_false", help="skip the memory benchmark")
    parser.add_argument("--memory-shape", type=parse_shape, default=memory.DEFAULT_SHAPE,
                        help=f"shape of the memory benchmark (default {memory.DEFAULT_SHAPE.name.replace(' ', '')})")
    parser.add_argument("--seed", type=int, default=0, help="seed of the shared inputs and of the round order")
    parser.add_argument("--scan", dest="scan_options", type=_scan_option, action="append", default=[],
                        metavar="KEY=VALUE",
                        help="a keyword argument of jaxrnn.scan for the jaxrnn layer, e.g. --scan unroll=8 "
                             "(repeatable; default: none, the library's defaults, as a user runs it)")
    args = parser.parse_args(argv)
    args.scan_options = dict(args.scan_options)
    if args.repeats < 1 or args.warmup < 0:
        parser.error("--repeats must be >= 1 and --warmup >= 0")
    if layers.REFERENCE not in args.frameworks:
        args.frameworks.insert(0, layers.REFERENCE)  # the ratios need it
    return args


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _error_text(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}".strip().splitlines()
    return text[0][:300] if text else type(error).__name__


def _free_device_memory() -> None:
    gc.collect()
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def bench_group(shape: Shape, cell: str, mode: str, args: argparse.Namespace, xs: np.ndarray,
                skip: dict[str, str]) -> list[dict[str, Any]]:
    """All frameworks on one (shape, cell, mode): build, first call, warm up, timed rounds."""
    base = {"shape": shape.as_dict(), "shape_name": shape.name, "cell": cell, "mode": mode, "dtype": args.dtype}
    records: dict[str, dict[str, Any]] = {}
    cases: list[Case] = []
    first: list[float] = []
    for framework in args.frameworks:
        record = records[framework] = {**base, "framework": framework, "status": "ok"}
        if framework in skip:
            record.update(status="skipped", reason=skip[framework])
            continue
        try:
            case = layers.build(framework, cell, shape, mode, args.dtype, xs, args.scan_options)
            first_s = timed(case.step)
        except layers.Unavailable as error:
            record.update(status="skipped", reason=str(error))
            continue
        except Exception as error:  # one framework failing must not sink the others
            record.update(status="error", reason=_error_text(error), traceback=traceback.format_exc())
            _log(f"  {framework}: {record['reason']}")
            continue
        record.update(what=case.what, device=case.device, compile_s=case.compile_s, path=case.path)
        cases.append(case)
        first.append(first_s)
    if cases:
        timings = measure(cases, first, args.repeats, args.warmup, args.interleave, args.seed)
        for case, timing in zip(cases, timings):
            records[case.framework].update(timing.as_dict())
    reference = records[layers.REFERENCE]
    for record in records.values():
        ok = record["status"] == "ok" and reference["status"] == "ok"
        record["ratio"] = record["median_ms"] / reference["median_ms"] if ok else None
    del cases
    _free_device_memory()
    return list(records.values())


def warm_up_process(args: argparse.Namespace, skip: dict[str, str]) -> None:
    """Run every framework once on a tiny LSTM, untimed, so one-time costs (backend start-up, lazy
    imports, thread pools, first compile) fall on no measured case -- else the first case of the
    process, always jaxrnn's, would carry them. Forward only: the cheapest compile that pays them."""
    tiny = Shape(2, 4, 3, 4)
    xs = np.zeros((tiny.T, tiny.B, tiny.I), np.float32)
    for framework in args.frameworks:
        if framework in skip:
            continue
        try:
            layers.build(framework, "lstm", tiny, "infer", args.dtype, xs, args.scan_options).step()
        except Exception:
            pass
    _free_device_memory()


def _notes(args: argparse.Namespace, device: dict[str, Any], skip: dict[str, str],
           records: list[dict[str, Any]]) -> list[str]:
    """What a reader of a table must know beyond the legend: dtype modes, skipped peers, mixed devices."""
    notes = []
    if args.dtype == "bfloat16":
        notes.append("bfloat16: jaxrnn and Flax keep float32 parameters and compute their matrix products in "
                     "bfloat16 (`dtype=`), inputs bfloat16; PyTorch's module and inputs are cast to bfloat16")
    notes += [f"{framework}: skipped, {reason}" for framework, reason in skip.items()]
    expected = "cuda" if device["kind"] == "gpu" else "cpu"
    for where in sorted({r["device"] for r in records if r["framework"] == "PyTorch" and "device" in r} - {expected}):
        notes.append(f"PyTorch ran on {where}, JAX on {device['jax_backend']}: those ratios compare two devices")
    return notes


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    device = machine.device()
    software = machine.software()
    shapes = parse_shapes(args.shapes or ("gpu" if device["kind"] == "gpu" else "cpu"))
    skip = {f: reason for f in args.frameworks if (reason := layers.unavailable(f))}
    _log(f"device: {device['name']}; frameworks: "
         + ", ".join(f"{f} ({'skipped: ' + skip[f] if f in skip else 'ok'})" for f in args.frameworks))

    warm_up_process(args, skip)
    records: list[dict[str, Any]] = []
    tables: list[str] = []
    for shape in shapes:
        xs = np.random.default_rng(args.seed).standard_normal((shape.T, shape.B, shape.I)).astype(np.float32)
        shape_records: list[dict[str, Any]] = []
        for cell in args.cells:
            for mode in args.modes:
                _log(f"{shape.name} {cell} {mode} ...")
                group = bench_group(shape, cell, mode, args, xs, skip)
                _log("  " + ", ".join(f"{r['framework']} {r['median_ms']:.1f} ms" if r["status"] == "ok"
                                      else f"{r['framework']} {r['status']}" for r in group))
                shape_records += group
        shown = [f for f in args.frameworks if f not in skip]
        title = f"### {shape.name} · {args.dtype} · {device['name']}"
        if args.scan_options:
            title += " · jaxrnn.scan(" + ", ".join(f"{k}={v!r}" for k, v in args.scan_options.items()) + ")"
        table = report.shape_table(shape_records, shown, title, args.repeats, args.warmup,
                                   _notes(args, device, skip, shape_records))
        print(table + "\n", flush=True)
        tables.append(table)
        records += shape_records

    memory_result = None
    if args.memory:
        _log(f"memory benchmark {args.memory_shape.name} ...")
        try:
            memory_result = memory.run(args.memory_shape, repeats=min(args.repeats, 3))
            text = memory.markdown(memory_result)
        except Exception as error:
            memory_result = {"status": "error", "reason": _error_text(error), "traceback": traceback.format_exc()}
            text = f"### Memory\n\nerror: {memory_result['reason']}"
        print(text + "\n", flush=True)
        tables.append(text)

    result = {
        "schema_version": 1,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": "python -m benchmarks.run " + " ".join(sys.argv[1:] if argv is None else argv),
        "device": device,
        "software": software,
        "settings": {"shapes": [s.as_dict() for s in shapes], "cells": args.cells, "modes": args.modes,
                     "frameworks": args.frameworks, "repeats": args.repeats, "warmup": args.warmup,
                     "dtype": args.dtype, "interleave": args.interleave, "seed": args.seed,
                     "scan_options": args.scan_options},
        "skipped_frameworks": skip,
        "results": records,
        "memory": memory_result,
        "markdown": "\n\n".join(tables),
    }
    variant = machine.slug("scan " + " ".join(f"{k} {v}" for k, v in args.scan_options.items())) \
        if args.scan_options else ""
    path = report.write_json(result, args.json or report.default_json_path(device["slug"], args.dtype, variant))
    result["json_path"] = str(path)
    _log(f"wrote {path}")
    return result


if __name__ == "__main__":
    main()
