"""Data-parallel training speed: steps per second of one config on 1, 2, 4, ... devices (``train.devices``).

Each device count runs ``jaxrnn run CONFIG --set train.devices=N`` in a fresh
process (so that on a CPU, ``--force-host-devices`` can split it into that many
XLA devices), and reports the median of the run's logged ``steps_per_sec``
(the first, compiling, step left out) and the final evaluation loss, which
must not depend on the device count. Forced host devices share the same CPU
cores, so on a CPU this measures the cost of splitting, not a speed-up; on a
machine with several GPUs it measures the speed-up.

``--layouts 1x4,2x2`` measures processes x devices instead: ``1x4`` one process
of 4 devices, ``2x2`` a job of 2 processes of 2 devices each
(``jaxrnn launch --devices-per-process 2``, collectives between the processes
through gloo on a CPU, NCCL on GPUs), the same 4 devices either way.

    python -m benchmarks.devices [--config adding_t50_lstm] [--devices 1,2,4 | --layouts 1x4,2x2]
                                 [--steps 200] [--force-host-devices 4] [--json PATH]

JSON next to the other results: ``benchmarks/results/<device>-devices.json``
(``<device>-processes.json`` for layouts).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks import machine, report


def measure(config: str, devices: int, steps: int, batch_size: int, force: int | None,
            processes: int = 1) -> dict[str, Any]:
    """One run of ``config`` on ``devices`` devices (of ``processes`` processes, a job through ``jaxrnn launch``):
    steps per second and the final evaluation loss."""
    env = dict(os.environ)
    if force:
        env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={force}".strip()
    how = ["run"] if processes == 1 else ["launch", "--processes", str(processes),
                                          "--devices-per-process", str(devices // processes), "--"]
    with tempfile.TemporaryDirectory() as out:
        command = [sys.executable, "-m", "jaxrnn", *how, config, "--out", out, "--overwrite", "--progress", "lines",
                   "--set", f"train.devices={devices if processes == 1 else 'all'}", "--set", f"train.steps={steps}",
                   "--set", f"train.batch_size={batch_size}", "--set", "train.log_every=10",
                   "--set", f"train.eval_every={steps}", "--set", f"train.checkpoint_every={steps}"]
        done = subprocess.run(command, capture_output=True, text=True, env=env)
        if done.returncode != 0:
            return {"devices": devices, "processes": processes, "status": "error",
                    "reason": (done.stderr.strip().splitlines() or ["?"])[-1]}
        records = [json.loads(line) for line in (Path(out) / "metrics.jsonl").read_text().splitlines()]
    rates = [r["steps_per_sec"] for r in records if "steps_per_sec" in r]
    final = [r for r in records if "eval_loss" in r][-1]
    return {"devices": devices, "processes": processes, "status": "ok", "steps_per_sec": statistics.median(rates),
            "rates": rates, "eval_loss": final["eval_loss"]}


def markdown(rows: list[dict[str, Any]], config: str, batch_size: int, device: str, forced: int | None) -> str:
    where = f"{device}, split into {forced} forced host devices" if forced else device
    if any(r.get("processes", 1) > 1 for r in rows):  # layouts: against the first row
        where = f"{device}, each process's devices forced host devices" if forced else device
        first = rows[0]
        base, against = (first["steps_per_sec"] if first["status"] == "ok" else None), _layout(first)
        head = ["processes x devices", f"vs {against}"]
        label = _layout
    else:
        base = next((r["steps_per_sec"] for r in rows if r["status"] == "ok" and r["devices"] == 1), None)
        head = ["devices", "vs 1 device"]
        label = lambda r: str(r["devices"])  # noqa: E731
    lines = [f"#### Data-parallel training: {config}, batch {batch_size}, {where}", "",
             f"| {head[0]} | steps / s | {head[1]} | final eval loss |", "| ---: | ---: | ---: | ---: |"]
    for r in rows:
        if r["status"] != "ok":
            lines.append(f"| {label(r)} | error: {r['reason']} | | |")
            continue
        ratio = f"{r['steps_per_sec'] / base:.2f}x" if base else ""
        lines.append(f"| {label(r)} | {r['steps_per_sec']:.1f} | {ratio} | {r['eval_loss']:.6g} |")
    return "\n".join(lines)


def _layout(row: dict[str, Any]) -> str:
    processes = row.get("processes", 1)
    return f"{processes} x {row['devices'] // processes}"


def layouts(text: str) -> list[tuple[int, int]]:
    """``"1x4,2x2"`` -> ``[(1, 4), (2, 2)]``: processes x devices per process.

    Raises:
      ValueError: not of that form.
    """
    out = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        processes, sep, per = part.lower().partition("x")
        if not sep or not processes.isdigit() or not per.isdigit() or int(processes) < 1 or int(per) < 1:
            raise ValueError(f"--layouts: expected PROCESSESxDEVICES, comma-separated (e.g. 1x4,2x2), got {part!r}")
        out.append((int(processes), int(per)))
    if not out:
        raise ValueError(f"--layouts: expected PROCESSESxDEVICES, comma-separated (e.g. 1x4,2x2), got {text!r}")
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="adding_t50_lstm")
    parser.add_argument("--devices", default="1,2,4", help="comma-separated device counts")
    parser.add_argument("--layouts", default=None,
                        help="processes x devices per process instead, e.g. 1x4,2x2 (a job through jaxrnn launch)")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--force-host-devices", type=int, default=None,
                        help="split the CPU into this many XLA devices (default: the largest --devices, on a CPU)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    try:
        counts = [int(d) for d in args.devices.split(",") if d.strip()]
    except ValueError:
        parser.error(f"--devices: comma-separated positive integers, got {args.devices!r}")
    if not counts or min(counts) < 1 or args.steps < 20 or args.batch_size < 1:
        parser.error("--devices: positive integers; --steps: at least 20; --batch-size: positive")
    if args.force_host_devices is not None and args.force_host_devices < max(counts):
        parser.error(f"--force-host-devices: at least the largest of --devices ({max(counts)}), "
                     f"got {args.force_host_devices}")
    try:
        shapes = layouts(args.layouts) if args.layouts else None
    except ValueError as error:
        parser.error(str(error))
    device = machine.device()
    if shapes:
        # jaxrnn launch forces each process's own count of host devices; one process gets them all here
        rows = [measure(args.config, p * d, args.steps, args.batch_size, d if p == 1 and device["kind"] == "cpu"
                        else None, processes=p) for p, d in shapes]
        forced = max(d for _, d in shapes) if device["kind"] == "cpu" else None
    else:
        forced = args.force_host_devices or (max(counts) if device["kind"] == "cpu" else None)
        rows = [measure(args.config, n, args.steps, args.batch_size, forced) for n in counts]
    table = markdown(rows, args.config, args.batch_size, device["name"], forced)
    print(table)
    result = {"device": device, "software": machine.software(), "config": args.config, "steps": args.steps,
              "batch_size": args.batch_size, "forced_host_devices": forced, "layouts": args.layouts, "rows": rows,
              "markdown": table}
    report.save(result, args.json, "processes" if shapes else "devices")
    return result


if __name__ == "__main__":
    main()
