"""Seeds side by side: N seeds of a config as one run (``train.seeds: N``) against N runs one after another.

The one run steps its N replicas in one compiled update: ``jax.vmap`` over them
on a GPU, ``lax.map`` on a CPU (``stepper.replica_loop``; the JSON's
``replica_loop``); "vmapped" below names that run, whichever loop it takes.

What ``train.seeds`` buys, measured two ways:

- **End to end**, what a user waits for: the app's runner (``config_lib.load``,
  ``runner.check``, ``runner.prepare``, ``runner.run``, as ``jaxrnn run`` calls
  them) trains the config once with ``train.seeds: N`` and ``N`` times with
  ``train.seed`` ``s, s+1, ..., s+N-1`` (``s``: the config's seed), each into a
  temporary folder, progress lines to a null stream. Each run's wall time is
  split into set-up (load, check, prepare), training (the summary's
  ``wall_time_s``: steps, evaluations, checkpoints, the loss plot) and after
  (analysis and figures); its evaluations' share is read off ``metrics.jsonl``.
  Only ``train.steps`` (``--steps``) is overridden: evaluation and checkpoints
  come as the config says (no more often). One untimed 2-step run first pays
  the process's one-time costs (imports, backend start-up).
- **The step**, as the runner's loop calls it: ``stepper.build(config, problems,
  members)`` for ``N`` replicas and for one; the first step (which compiles)
  timed alone, then ``--repeats`` steps after ``--warmup``, in interleaved
  rounds (:func:`benchmarks.timing.measure`), medians. The step's two parts are
  timed apart: ``batch`` (host: each replica's ``problem.batch(step)``, stacked)
  and ``update`` (the compiled update on a fixed batch).

Speed-up = sequential / vmapped, of the wall time and of seed-steps per second
(``N`` per vmapped step, one per single step); goals: 2x on a CPU, 5x on a GPU.

The computation must be the same: each seed's final ``eval_loss`` of the
vmapped run is compared with its own run's (largest relative difference,
against ``--rtol``), and so is the training loss of every logged window. Same
initial parameters, same batches, but the vmapped update rounds differently
(batched products), so the two agree to float32 rounding at first; where
training amplifies rounding (the adding problem, once the net starts to solve
it), they part for real, and the logged windows show from which step.

The machine's load average is recorded before and after: on a shared machine
the times are noisy, the ratios less so.

    python -m benchmarks.seeds [--config adding_t50_gru] [--seeds 8] [--steps 300] [--rounds 1]
                               [--repeats 20] [--warmup 3] [--set KEY=VALUE ...] [--rtol 1e-5]
                               [--no-warm-up-run] [--json PATH]

JSON next to the other results: ``benchmarks/results/<device>-seeds.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import statistics
import sys
import tempfile
import time
from typing import Any, Callable, Sequence

import jax

from benchmarks import machine, report
from benchmarks.timing import Case, measure, timed
from jaxrnn.experiment import catalog, replicas, runner, stepper
from jaxrnn.experiment import config as config_lib
from jaxrnn.experiment.rundir import RunDir

GOALS = {"cpu": 2.0, "gpu": 5.0}  # sequential / vmapped, by device kind


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def train(config_name: str, overrides: Sequence[str]) -> dict[str, Any]:
    """One run through the app's runner into a temporary folder: its times, steps/s and final eval losses."""
    with tempfile.TemporaryDirectory(prefix="jaxrnn-seeds-") as out:
        start = time.perf_counter()
        config = config_lib.load(config_name, overrides)
        problems = runner.check(config)
        folder = RunDir(out)
        runner.prepare(config, folder)
        ready = time.perf_counter()
        with open(os.devnull, "w") as null, contextlib.redirect_stdout(null):
            summary = runner.run(config, folder, interactive=False, problems=problems)
        total = time.perf_counter() - start
        records = folder.records()
    rates = [r["steps_per_sec"] for r in records if "steps_per_sec" in r]
    # An evaluation record follows the training record of its step: the gap is the evaluation (and, at the end,
    # the last checkpoint's start).
    eval_s = sum(r["time"] - p["time"] for p, r in zip(records, records[1:]) if "eval_loss" in r and "loss" in p)
    count = config.train.seeds
    losses = ([summary["metrics"]["eval_loss"]] if count == 1
              else [row["metrics"]["eval_loss"] if "metrics" in row else None for row in summary["replicas"]])
    # the training loss of each logged window, one value per replica: where the runs part, if they do
    logged = {str(r["step"]): r["loss"] if count > 1 else [r["loss"]] for r in records if "loss" in r}
    return {"seeds": count, "seed": config.train.seed, "total_s": total, "setup_s": ready - start,
            "train_s": summary["wall_time_s"], "after_s": total - (ready - start) - summary["wall_time_s"],
            "eval_s": eval_s, "steps_per_sec": statistics.median(rates) if rates else None,
            "eval_loss": losses, "train_loss": logged}


def end_to_end(config_name: str, overrides: list[str], seeds: int, base_seed: int, rounds: int,
               warm_up_run: bool = True) -> tuple[list[dict[str, Any]], list[list[dict[str, Any]]]]:
    """``rounds`` of (one vmapped run, ``seeds`` single runs), which goes first alternating by round; before
    them, unless not ``warm_up_run``, an untimed 2-step run."""
    if warm_up_run:
        _log("warm-up run (2 steps, untimed) ...")
        train(config_name, [*overrides, "train.steps=2", "train.seeds=1"])
    vmapped: list[dict[str, Any]] = []
    sequential: list[list[dict[str, Any]]] = []
    for index in range(rounds):
        order = ("vmapped", "sequential") if index % 2 == 0 else ("sequential", "vmapped")
        for which in order:
            if which == "vmapped":
                _log(f"round {index + 1}: {seeds} seeds in one vmapped run ...")
                vmapped.append(train(config_name, [*overrides, f"train.seeds={seeds}"]))
                _log(f"  {vmapped[-1]['total_s']:.1f} s")
            else:
                runs = []
                for i in range(seeds):
                    _log(f"round {index + 1}: single run, train.seed={base_seed + i} ...")
                    runs.append(train(config_name, [*overrides, "train.seeds=1", f"train.seed={base_seed + i}"]))
                    _log(f"  {runs[-1]['total_s']:.1f} s")
                sequential.append(runs)
    return vmapped, sequential


class _Stepping:
    """The runner's step, called over and over: ``saved, metrics = stepper(saved, step)``, waiting for the state."""

    def __init__(self, built: stepper.Stepper):
        self.built, self.saved, self.step = built, built.saved, 0

    def __call__(self) -> None:
        self.saved, _ = self.built(self.saved, self.step)
        jax.block_until_ready(self.saved)
        self.step += 1


def build(config_name: str, overrides: list[str], count: int) -> stepper.Stepper:
    """The stepper of ``count`` replicas (seeds) of the config, as the runner builds it."""
    config = config_lib.load(config_name, [*overrides, f"train.seeds={count}"])
    members = replicas.of(config)
    experiment = catalog.experiment(config.experiment)
    problems = [experiment.problem(m.config) for m in members]
    return stepper.build(config, problems, members)


def step_times(config_name: str, overrides: list[str], seeds: int, repeats: int, warmup: int) -> dict[str, Any]:
    """First step (compiles) and steady-state step of the vmapped update and the single-seed one, and their parts."""
    cases: list[Case] = []
    first: list[float] = []
    for label, count in (("vmapped", seeds), ("single", 1)):
        built = build(config_name, overrides, count)
        stepping = _Stepping(built)
        first_s = timed(stepping)  # batch 0 and the compile of the update
        stepping()
        batch = built.batch(0)
        key = built.dropout_key(0)
        parts: dict[str, Callable[[], Any]] = {
            "step": stepping,
            "batch": lambda b=built, s=stepping: jax.block_until_ready(b.batch(s.step + 10_000)),
            "update": lambda b=built, s=stepping, x=batch, k=key: jax.block_until_ready(b.update(s.saved, x, k)),
        }
        for part, call in parts.items():
            cases.append(Case(f"{label} {part}", f"{label} ({count} replicas): {part}", call))
            first.append(first_s if part == "step" else timed(call))
    timings = measure(cases, first, repeats, warmup)
    return {case.framework: {"what": case.what, **timing.as_dict()} for case, timing in zip(cases, timings)}


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _relative(a: float | None, b: float | None) -> float:
    """``|a - b| / max(|a|, |b|)``; infinite where a replica has no value (it diverged)."""
    if a is None or b is None:
        return float("inf")
    return abs(a - b) / max(abs(a), abs(b), 1e-30)


def summarize(vmapped: list[dict[str, Any]], sequential: list[list[dict[str, Any]]], steps: dict[str, Any],
              seeds: int, kind: str, rtol: float) -> dict[str, Any]:
    """Speed-ups (medians over rounds), the goal, and the equality of the per-seed final losses."""
    wall_v = statistics.median(r["total_s"] for r in vmapped)
    wall_s = statistics.median(sum(r["total_s"] for r in runs) for runs in sequential)
    step_v, step_s = steps["vmapped step"]["median_ms"], steps["single step"]["median_ms"]
    rate_v, rate_s = seeds * 1e3 / step_v, 1e3 / step_s
    logged_v = _median([seeds * r["steps_per_sec"] for r in vmapped if r["steps_per_sec"]])
    logged_s = _median([r["steps_per_sec"] for runs in sequential for r in runs if r["steps_per_sec"]])
    goal = GOALS.get(kind)
    largest = max(_relative(run["eval_loss"][i], single["eval_loss"][0])
                  for run, runs in zip(vmapped, sequential) for i, single in enumerate(runs))
    # The same comparison for the training loss of each logged window: rounding apart at first, then, if
    # training amplifies it, apart for real (a relative difference of 1e-7 is float32 rounding; 1e-2 is not).
    steps_logged = sorted({int(k) for run in vmapped for k in run["train_loss"]})
    by_step = {str(k): max(_relative(run["train_loss"][str(k)][i], single["train_loss"][str(k)][0])
                           for run, runs in zip(vmapped, sequential) for i, single in enumerate(runs))
               for k in steps_logged}
    return {
        "wall_s": {"vmapped": wall_v, "sequential": wall_s, "speedup": wall_s / wall_v},
        "seed_steps_per_s": {"vmapped": rate_v, "sequential": rate_s, "speedup": rate_v / rate_s},
        "logged_seed_steps_per_s": {"vmapped": logged_v, "sequential": logged_s,
                                    "speedup": logged_v / logged_s if logged_v and logged_s else None},
        "goal": goal,
        "goal_met": None if goal is None else {"wall": wall_s / wall_v >= goal, "steps": rate_v / rate_s >= goal},
        "equality": {"max_relative_difference": largest, "rtol": rtol, "passed": largest <= rtol,
                     "vmapped": [r["eval_loss"] for r in vmapped],
                     "sequential": [[s["eval_loss"][0] for s in runs] for runs in sequential],
                     "train_loss_max_relative_difference": by_step},
    }


def _s(x: float) -> str:
    return f"{x:.2f} s" if x < 10 else f"{x:.1f} s"


def _ms(x: float) -> str:
    return f"{x:.3g} ms"


def _rate(x: float | None) -> str:
    return "—" if x is None else f"{x:.0f}"


def markdown(result: dict[str, Any]) -> str:
    """The table: end to end (medians over rounds), then the step and its parts, the goal and the equality check."""
    n, summary, t = result["seeds"], result["summary"], result["step"]
    vmapped, sequential = result["end_to_end"]["vmapped"], result["end_to_end"]["sequential"]

    def v(key: str) -> float:
        return statistics.median(r[key] for r in vmapped)

    def s(key: str) -> float:
        return statistics.median(sum(r[key] for r in runs) for runs in sequential)

    def ratio(a: float, b: float) -> str:
        return f"{b / a:.2f}x" if a > 0 else ""

    first_v, first_s = t["vmapped step"]["first_call_ms"] / 1e3, t["single step"]["first_call_ms"] / 1e3
    wall, rate, logged = summary["wall_s"], summary["seed_steps_per_s"], summary["logged_seed_steps_per_s"]
    rows = [
        ("**wall time, end to end**", f"**{_s(wall['vmapped'])}**", f"**{_s(wall['sequential'])}**",
         f"**{wall['speedup']:.2f}x**"),
        ("· set-up (load, check, prepare)", _s(v("setup_s")), _s(s("setup_s")), ratio(v("setup_s"), s("setup_s"))),
        ("· training (steps, evaluations, checkpoints)", _s(v("train_s")), _s(s("train_s")),
         ratio(v("train_s"), s("train_s"))),
        ("· · of which evaluation", _s(v("eval_s")), _s(s("eval_s")), ratio(v("eval_s"), s("eval_s"))),
        ("· after (analysis, figures)", _s(v("after_s")), _s(s("after_s")), ratio(v("after_s"), s("after_s"))),
        ("seed-steps / s, as the runner logs them", _rate(logged["vmapped"]), _rate(logged["sequential"]),
         "" if logged["speedup"] is None else f"{logged['speedup']:.2f}x"),
        ("first step (compiles), one run", _s(first_v), f"{_s(first_s)} (x {n} runs)", ratio(first_v, n * first_s)),
        ("**step, steady state**", f"**{_ms(t['vmapped step']['median_ms'])}**",
         f"**{_ms(t['single step']['median_ms'])}** (x {n} = {_ms(n * t['single step']['median_ms'])})",
         ratio(t["vmapped step"]["median_ms"], n * t["single step"]["median_ms"])),
        ("· batch (host: draw, stack)", _ms(t["vmapped batch"]["median_ms"]), _ms(t["single batch"]["median_ms"]),
         ratio(t["vmapped batch"]["median_ms"], n * t["single batch"]["median_ms"])),
        ("· update (compiled, fixed batch)", _ms(t["vmapped update"]["median_ms"]),
         _ms(t["single update"]["median_ms"]),
         ratio(t["vmapped update"]["median_ms"], n * t["single update"]["median_ms"])),
        ("**seed-steps / s**", f"**{rate['vmapped']:.0f}**", f"**{rate['sequential']:.0f}**",
         f"**{rate['speedup']:.2f}x**"),
    ]
    rounds = len(vmapped)
    title = f"{n} seeds side by side: {result['config']}, {result['steps']} steps, {result['device']['name']}"
    lines = [f"#### {title}", "",
             f"| | one run (`train.seeds: {n}`, replicas by {result.get('replica_loop', 'vmap')}) "
             f"| {n} sequential runs | sequential / one run |",
             "| --- | ---: | ---: | ---: |"]
    lines += [f"| {' | '.join(row)} |" for row in rows]
    goal, met = summary["goal"], summary["goal_met"]
    equality = summary["equality"]
    lines += [
        "",
        f"End to end: median of {rounds} round{'s' if rounds > 1 else ''} (one vmapped run, {n} single runs, "
        "through the app's runner, each compiling afresh; each row its own median); sequential columns sum the "
        "single runs. Step: median of "
        f"{result['settings']['repeats']} timed steps after {result['settings']['warmup']} warm-up steps, "
        f"interleaved; the sequential column is one single-seed step (x {n}: what {n} seeds cost). Load average "
        f"{result['load_average_1min']['before']:.1f} before, {result['load_average_1min']['after']:.1f} after, "
        f"on {result['load_average_1min']['cores']} cores.",
        "",
        f"- goal: {goal:g}x on a {result['device']['kind'].upper()}: wall time "
        f"{'met' if met['wall'] else 'not met'} ({wall['speedup']:.2f}x), seed-steps/s "
        f"{'met' if met['steps'] else 'not met'} ({rate['speedup']:.2f}x)" if goal is not None
        else f"- no goal for a {result['device']['kind']} device",
        f"- the same computation? each seed's final eval_loss, vmapped vs its own run: largest relative difference "
        f"{equality['max_relative_difference']:.2g} ({'within' if equality['passed'] else 'OVER'} "
        f"rtol {equality['rtol']:g}); the training loss of the logged windows, step: largest relative difference "
        + ", ".join(f"{k}: {d:.2g}" for k, d in equality["train_loss_max_relative_difference"].items()),
    ]
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.seeds", description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="adding_t50_gru", help="a shipped config's name or a YAML file")
    parser.add_argument("--seeds", type=int, default=8, help="how many seeds (default 8)")
    parser.add_argument("--steps", type=int, default=300, help="train.steps of every run (default 300)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="end-to-end rounds (vmapped + sequential each); medians over them (default 1)")
    parser.add_argument("--repeats", type=int, default=20, help="timed steps per case (default 20)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps after the first (default 3)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="a config override for every run, as jaxrnn run --set (repeatable)")
    parser.add_argument("--rtol", type=float, default=1e-5,
                        help="largest relative difference of the final eval losses that counts as equal "
                             "(default 1e-5: float32 rounding)")
    parser.add_argument("--no-warm-up-run", dest="warm_up_run", action="store_false",
                        help="skip the untimed 2-step run that pays the process's one-time costs first (they then "
                             "fall on the first timed run: for a smoke test only)")
    parser.add_argument("--json", default=None, help="default benchmarks/results/<device>-seeds.json")
    args = parser.parse_args(argv)
    if args.seeds < 2 or args.steps < 1 or args.rounds < 1 or args.repeats < 1 or args.warmup < 0:
        parser.error("--seeds: at least 2; --steps, --rounds, --repeats: positive; --warmup: >= 0")
    if any(o.split("=", 1)[0].strip() in ("train.seeds", "train.seed", "train.steps") for o in args.overrides):
        parser.error("--set: train.seeds, train.seed and train.steps are the benchmark's own (--seeds, --steps)")
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    device = machine.device()
    overrides = [*args.overrides, f"train.steps={args.steps}"]
    base = config_lib.load(args.config, overrides)
    _log(f"device: {device['name']}; {args.config}: {args.seeds} seeds from train.seed={base.train.seed}, "
         f"{args.steps} steps each")
    load = [os.getloadavg()[0]]
    vmapped, sequential = end_to_end(args.config, overrides, args.seeds, base.train.seed, args.rounds,
                                     args.warm_up_run)
    _log(f"step: {args.repeats} timed steps after {args.warmup} warm-up ...")
    steps = step_times(args.config, overrides, args.seeds, args.repeats, args.warmup)
    load.append(os.getloadavg()[0])
    result: dict[str, Any] = {
        "schema_version": 1,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": "python -m benchmarks.seeds " + " ".join(sys.argv[1:] if argv is None else argv),
        "device": device,
        "software": machine.software(),
        "config": base.name or args.config,
        "seeds": args.seeds,
        "steps": args.steps,
        "batch_size": base.train.batch_size,
        "replica_loop": stepper.replica_loop(),
        "settings": {"rounds": args.rounds, "repeats": args.repeats, "warmup": args.warmup,
                     "warm_up_run": args.warm_up_run,
                     "overrides": args.overrides, "eval_every": base.train.eval_every,
                     "checkpoint_every": base.train.checkpoint_every, "log_every": base.train.log_every,
                     "eval_batches": base.train.eval_batches, "seed": base.train.seed,
                     # a persistent compilation cache would let the sequential runs reuse each other's compiles
                     "jax_compilation_cache_dir": jax.config.jax_compilation_cache_dir},
        "load_average_1min": {"before": load[0], "after": load[1], "cores": device["cores"]},
        "end_to_end": {"vmapped": vmapped, "sequential": sequential},
        "step": steps,
    }
    result["summary"] = summarize(vmapped, sequential, steps, args.seeds, device["kind"], args.rtol)
    result["markdown"] = markdown(result)
    print(result["markdown"], flush=True)
    result["json_path"] = str(report.save(result, args.json, "seeds"))
    return result


if __name__ == "__main__":
    main()
