"""Data-parallel training speed: steps per second of one config on 1, 2, 4, ... devices (``train.devices``).

Each device count runs ``jaxrnn run CONFIG --set train.devices=N`` in a fresh
process (so that on a CPU, ``--force-host-devices`` can split it into that many
XLA devices), and reports the median of the run's logged ``steps_per_sec``
(the first, compiling, step left out) and the final evaluation loss, which
must not depend on the device count. Forced host devices share the same CPU
cores, so on a CPU this measures the cost of splitting, not a speed-up; on a
machine with several GPUs it measures the speed-up.

    python -m benchmarks.devices [--config adding_t50_lstm] [--devices 1,2,4] [--steps 200]
                                 [--force-host-devices 4] [--json PATH]

JSON next to the other results: ``benchmarks/results/<device>-devices.json``.
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


def measure(config: str, devices: int, steps: int, batch_size: int, force: int | None) -> dict[str, Any]:
    """One run of ``config`` on ``devices`` devices: steps per second and the final evaluation loss."""
    env = dict(os.environ)
    if force:
        env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={force}".strip()
    with tempfile.TemporaryDirectory() as out:
        command = [sys.executable, "-m", "jaxrnn", "run", config, "--out", out, "--overwrite", "--progress", "lines",
                   "--set", f"train.devices={devices}", "--set", f"train.steps={steps}",
                   "--set", f"train.batch_size={batch_size}", "--set", "train.log_every=10",
                   "--set", f"train.eval_every={steps}", "--set", f"train.checkpoint_every={steps}"]
        done = subprocess.run(command, capture_output=True, text=True, env=env)
        if done.returncode != 0:
            return {"devices": devices, "status": "error", "reason": (done.stderr.strip().splitlines() or ["?"])[-1]}
        records = [json.loads(line) for line in (Path(out) / "metrics.jsonl").read_text().splitlines()]
    rates = [r["steps_per_sec"] for r in records if "steps_per_sec" in r]
    final = [r for r in records if "eval_loss" in r][-1]
    return {"devices": devices, "status": "ok", "steps_per_sec": statistics.median(rates), "rates": rates,
            "eval_loss": final["eval_loss"]}


def markdown(rows: list[dict[str, Any]], config: str, batch_size: int, device: str, forced: int | None) -> str:
    where = f"{device}, split into {forced} forced host devices" if forced else device
    base = next((r["steps_per_sec"] for r in rows if r["status"] == "ok" and r["devices"] == 1), None)
    lines = [f"#### Data-parallel training: {config}, batch {batch_size}, {where}", "",
             "| devices | steps / s | vs 1 device | final eval loss |", "| ---: | ---: | ---: | ---: |"]
    for r in rows:
        if r["status"] != "ok":
            lines.append(f"| {r['devices']} | error: {r['reason']} | | |")
            continue
        ratio = f"{r['steps_per_sec'] / base:.2f}x" if base else ""
        lines.append(f"| {r['devices']} | {r['steps_per_sec']:.1f} | {ratio} | {r['eval_loss']:.6g} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="adding_t50_lstm")
    parser.add_argument("--devices", default="1,2,4", help="comma-separated device counts")
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
    device = machine.device()
    forced = args.force_host_devices or (max(counts) if device["kind"] == "cpu" else None)
    rows = [measure(args.config, n, args.steps, args.batch_size, forced) for n in counts]
    table = markdown(rows, args.config, args.batch_size, device["name"], forced)
    print(table)
    result = {"device": device, "software": machine.software(), "config": args.config, "steps": args.steps,
              "batch_size": args.batch_size, "forced_host_devices": forced, "rows": rows, "markdown": table}
    report.save(result, args.json, "devices")
    return result


if __name__ == "__main__":
    main()
