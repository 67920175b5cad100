"""The experiment runner: train an experiment's :class:`Problem` under a config into a run folder.

:func:`run` asks the experiment for its problem (model, loss, data), hands it
to :func:`fit`, which owns everything the experiments share -- the Optax step
(:mod:`jaxrnn.experiment.stepper`), periodic evaluation, ``metrics.jsonl``,
checkpoints and ``--resume``, the NaN guard, the progress display, the
loss-curve plot and ``summary.json`` -- and then lets the experiment measure
the trained model (the problem's ``analysis``) and draw its own figures of
the run (its report, :mod:`jaxrnn.experiment.report`).

In a job of several processes (:mod:`jaxrnn.experiment.job`) every process
runs all of this, steps and checkpoints together; process 0 alone writes the
records, progress, figures and summary, and evaluates and analyses the model
(from its own copy of the parameters, which every device holds whole).

Randomness is a pure function of ``(train.seed, purpose, step)``
(:mod:`jaxrnn.experiment.keys`). Resuming restores the train state saved at
step ``c`` and replays steps ``c+1..N`` with the same keys and batches, so it
ends with bit-for-bit the parameters of an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import time
from pathlib import Path
from typing import Any, Callable

import jax
import numpy as np
from jax.experimental import multihost_utils

from jaxrnn import onednn, training
from jaxrnn.experiment import catalog, data_parallel, interrupt, job, memory, plots, replicas, stepper
from jaxrnn.experiment import config as config_lib
from jaxrnn.experiment.checkpoint import Checkpointer
from jaxrnn.experiment.events import Events
from jaxrnn.experiment.problem import Problem
from jaxrnn.experiment.progress import Progress
from jaxrnn.experiment.rundir import RunDir, machine
from jaxrnn.experiment.schema import Config, ConfigError, Train

# Keys that may differ between a run and its --resume: they change neither the
# data, nor the model, nor any update.
# A checkpoint restores on any number of devices, so train.devices may change too.
RESUMABLE_CHANGES = ("train.eval_every", "train.checkpoint_every", "train.log_every", "train.keep_checkpoints",
                     "train.devices")


class RunExists(FileExistsError):
    """The run folder already holds a run and neither resume nor overwrite was asked for."""


def run(config: Config, folder: RunDir, *, resume: bool = False, interactive: bool | None = None,
        problems: list[Problem] | None = None, point: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train ``config``'s experiment into ``folder`` (call :func:`prepare` first); return the summary.

    With more than one replica (``train.seeds``, an in-step sweep), each
    replica's folder gets its own analysis and figures, the run's summary
    their spread (:func:`jaxrnn.experiment.replicas.aggregate`), and the run's
    folder the report's figures of them all (their means and spread).

    ``problems``: the ones :func:`check` returned, so they are not built twice.
    ``point``: the values of a sweep this run is one run of
    (:mod:`jaxrnn.experiment.sweep`), recorded in its summary.
    """
    experiment = catalog.experiment(config.experiment)
    members = replicas.of(config)
    problems = [experiment.problem(m.config) for m in members] if problems is None else problems
    state, summaries = fit(config, problems, folder, resume=resume, interactive=interactive,
                           length=experiment.length(config), members=members)
    if not job.primary():  # process 0 of a job analyses and writes
        return {}
    report = catalog.report(config.experiment)
    if len(members) == 1:
        _analyse(problems[0], state.params, folder, summaries[0], config, report)
        if point:
            folder.write_summary({**summaries[0], "point": point})
        return summaries[0]
    for index, (member, problem, summary) in enumerate(zip(members, problems, summaries)):
        if summary.get("metrics"):  # a diverged replica has nothing to analyse
            _analyse(problem, replicas.take(state.params, index), folder.replica(member.name), summary,
                     member.config, report)
    summary = _combined(config, members, summaries)
    folder.write_summary({**summary, "point": point} if point else summary)
    if report is not None and report.run is not None:  # the run's own figures: the replicas' means and spread
        report.run(config, folder)
    return summary


def _analyse(problem: Problem, params: Any, folder: RunDir, summary: dict[str, Any], config: Config,
             report: Any) -> None:
    """The problem's analysis of the trained ``params`` (joining ``summary``'s metrics) and the report's figures."""
    extra = problem.analysis(params, folder) if problem.analysis is not None else None
    if extra:
        summary["metrics"].update(extra)
        folder.write_summary(summary)
    if report is not None and report.run is not None:
        report.run(config, folder)


def _combined(config: Config, members: list[replicas.Replica], summaries: list[dict[str, Any]]) -> dict[str, Any]:
    """The summary of a run of several replicas: each replica's, and per sweep point the metrics' spread.

    ``metrics`` holds the means and ``spread`` each metric's mean, std, min,
    max and n over the replicas of the first point (the only one without an
    in-step sweep); ``points`` holds every point's.
    """
    first = next((s for s in summaries if s.get("metrics")), summaries[0])
    head = {k: v for k, v in first.items() if k not in ("metrics", "diverged", "seed", "values", "name")}
    points: dict[str, dict[str, Any]] = {}
    for member, summary in zip(members, summaries):
        label = ", ".join(f"{k}={v}" for k, v in member.values.items())
        points.setdefault(label, {"values": member.values, "replicas": []})["replicas"].append(summary)
    names = list(dict.fromkeys(name for s in summaries for name in s.get("metrics", {})))
    groups = []
    for point in points.values():
        spread = replicas.aggregate(point["replicas"], names)
        groups.append({
            "values": point["values"],
            "seeds": [s["seed"] for s in point["replicas"]],
            "diverged": {str(s["seed"]): s["diverged"] for s in point["replicas"] if s.get("diverged")},
            "metrics": {name: stats["mean"] for name, stats in spread.items() if stats["n"]},
            "spread": spread,
        })
    replica_rows = [{"name": m.name, "seed": s["seed"], "values": m.values,
                     **({"metrics": s["metrics"]} if s.get("metrics") else {"diverged": s["diverged"]})}
                    for m, s in zip(members, summaries)]
    return {**head, "seeds": config.train.seeds, "metrics": groups[0]["metrics"], "spread": groups[0]["spread"],
            "diverged": groups[0]["diverged"], "points": groups, "replicas": replica_rows}


def check(config: Config) -> list[Problem]:
    """Everything about ``config`` that can fail before training, checked before a run folder or header exists.

    Builds the experiment's problem of each replica and the optimiser, checks
    the devices of data-parallel training and that the models fit in memory
    (from shapes, allocating nothing). Returns the problems, for :func:`run`.

    Raises:
      ConfigError: one line naming the key.
    """
    experiment = catalog.experiment(config.experiment)
    members = replicas.of(config)
    problems = [experiment.problem(m.config) for m in members]
    tx, _ = config.optim.build(config.train.steps)
    mesh = data_parallel.mesh(config.train.devices)
    if mesh is not None:
        data_parallel.check(problems[0].batch_axes, config.train.batch_size, mesh, config.experiment)
    memory.check(config, problems[0].init, tx, 1 if mesh is None else int(mesh.devices.size), len(members))
    return problems


def prepare(config: Config, folder: RunDir, *, resume: bool = False, overwrite: bool = False) -> None:
    """Check that ``config`` may run in ``folder`` and write its resolved ``config.yaml``.

    A folder whose run stopped before its first checkpoint holds nothing to
    resume or keep, so a plain run may start afresh in it.

    Raises:
      RunExists: the folder holds a run, and neither ``resume`` nor ``overwrite``.
      ConfigError: ``resume`` with a config that would compute something else.
      OSError: the folder cannot be written.
    """
    if not resume and folder.holds_run() and not overwrite:
        raise RunExists(
            f"{folder.path} already holds a run; use --resume to continue it, --overwrite to start "
            "afresh, or --out for another folder"
        )
    if resume and folder.config_file.exists():
        # read through the schema, so a key added since that run was made counts at its default
        old = config_lib.flatten(config_lib.to_dict(config_lib.from_dict(folder.read_config())))
        new = config_lib.flatten(config_lib.to_dict(config))
        changed = [k for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k) and k not in RESUMABLE_CHANGES]
        if changed:
            k = changed[0]
            raise ConfigError(
                f"--resume: {k} is {new.get(k)!r} but the run in {folder.path} used {old.get(k)!r}; "
                f"resume it with its own config (jaxrnn run --resume --out {folder.path}), or run into a new --out"
            )
    job.barrier("jaxrnn-prepare")  # every process of a job has looked before process 0 changes anything
    if job.primary():
        if not resume:  # overwritten, or a run that stopped before its first checkpoint: nothing in it to keep
            for path in (folder.metrics_file, folder.summary_file, folder.diverged_file):
                path.unlink(missing_ok=True)
            for path in [folder.checkpoints, *folder.replica_folders()]:
                if path.exists():
                    shutil.rmtree(path)
        folder.write_config(config_lib.dump(config))
    _check_shared(folder)


def _check_shared(folder: RunDir) -> None:
    """That every process of a job sees the run folder process 0 writes (the checkpoints go there from all).

    Raises:
      ConfigError: in every process, when one of them does not see process 0's token.
    """
    if jax.process_count() == 1:
        return
    token = int(multihost_utils.broadcast_one_to_all(np.int64(secrets.randbits(62))))
    mark = folder.path / ".job"
    if job.primary():
        mark.write_text(str(token))
    job.barrier("jaxrnn-shared")
    try:
        seen = mark.read_text().strip() == str(token)
    except OSError:
        seen = False
    if job.anyone(not seen):  # a collective: every process has read the token by now
        raise ConfigError(f"--out {folder.path}: not every process of the job sees the files process 0 writes there; "
                          "a job's run folder must be on a filesystem every host mounts (NFS, a bucket mount)")
    if job.primary():
        mark.unlink()


def fit(
    config: Config,
    problems: list[Problem],
    folder: RunDir,
    *,
    resume: bool = False,
    interactive: bool | None = None,
    length: int | None = None,
    members: list[replicas.Replica] | None = None,
) -> tuple[training.TrainState, list[dict[str, Any]]]:
    """Train ``problems`` (one per replica of ``members``) as ``config`` says; the final state and the summaries.

    Writes ``metrics.jsonl`` (and TensorBoard's event files,
    :mod:`jaxrnn.experiment.events`), checkpoints every ``train.checkpoint_every``
    steps and at the end, ``loss.png`` and ``summary.json`` in ``folder``
    (call :func:`prepare` first); with several replicas, the state is stacked,
    each record holds one value per replica, and each replica's folder gets
    its records, ``loss.png`` and ``summary.json`` (or ``diverged.json``).
    With ``resume``, continues from the newest checkpoint (or from scratch if
    there is none, and says so). ``length``: the sequence length the model
    reads, for the summary.

    Once the first step has compiled the update, Ctrl-C stops training at
    the next step boundary (:func:`jaxrnn.experiment.interrupt.deferred`);
    before, it stops the process at once under the ``jaxrnn`` command.

    Raises:
      training.Diverged: the loss or gradient became NaN/infinite (of every
        replica). The state of that step is not saved; the checkpoints hold the
        last good ones.
      KeyboardInterrupt: Ctrl-C, after the checkpoints in flight are written.
    """
    train = config.train
    members = members or replicas.of(config)
    update = stepper.build(config, problems, members if len(members) > 1 else None)
    names = [m.name for m in members]
    problem = problems[0]
    writes = job.primary()  # of a job's processes, process 0 writes and evaluates; the others only step
    if problem.setup is not None and writes:
        problem.setup(folder)
    # The deferral outlives the checkpointer, whose closing waits for the saves in flight.
    checkpointer = Checkpointer(folder.checkpoints, keep=train.keep_checkpoints)
    with contextlib.ExitStack() as deferral, checkpointer as checkpoints:
        stop = _StopRequest(deferral)
        saved, start, elapsed = _restore(update, checkpoints, folder, resume=resume, steps=train.steps)
        if writes:
            events = deferral.enter_context(Events(folder, names, start))
            evaluate = _evaluation(problems, folder, names, events)
            progress = Progress(train.steps, start, interactive)
        else:
            events, evaluate = None, None
            progress = Progress(train.steps, start, False, stream=deferral.enter_context(open(os.devnull, "w")))
        _announce_start(progress, start, resume, folder, checkpoints)
        clock = time.perf_counter() - elapsed
        try:
            saved = _train(train, update, saved, start, folder, checkpoints, progress, stop, evaluate, clock, names,
                           events)
            state, final = update.state_of(saved), {}
            if writes:  # on process 0's own copy of the params, which its analysis reads too
                state = state._replace(params=_host(state.params))
                final = evaluate(state.params, train.steps, progress, clock, update.halted(saved))
        finally:
            progress.close()
    if stop.requested:  # Ctrl-C during the final evaluation or the last saves
        raise KeyboardInterrupt
    if not writes:
        return state, [{} for _ in members]
    halted = update.halted(saved)
    return state, _finish(config, problem, folder, state.params, final, clock, length, update.devices, members,
                          halted)


def _host(params: Any) -> Any:
    """In a job of several processes, ``params`` as this process's own arrays (every device holds them whole),
    so that evaluating and analysing them is this process's business alone; as they are otherwise."""
    return jax.device_get(params) if jax.process_count() > 1 else params


def _restore(update: stepper.Stepper, checkpoints: Checkpointer, folder: RunDir, *, resume: bool,
             steps: int) -> tuple[Any, int, float]:
    """``(saved, start, elapsed)``: the state to go on from, its step, and the seconds the run took to get there.

    From scratch (step 0), or with ``resume`` from the newest checkpoint
    (restored onto the devices the initial state is on). The records after that
    step are dropped, to be written again (and a finished run's final
    evaluation), and so is ``diverged.json``: a resumed run goes on from its
    last good checkpoint.
    """
    saved, start = update.saved, 0
    if resume and checkpoints.latest() is not None:
        saved = checkpoints.restore(saved)
        start = checkpoints.latest()
    if not job.primary():
        return saved, start, 0.0
    kept = folder.truncate(start, final_eval=start < steps)
    folder.diverged_file.unlink(missing_ok=True)
    elapsed = max((r.get("time", 0.0) for r in kept), default=0.0)
    return saved, start, elapsed


def _announce_start(progress: Progress, start: int, resume: bool, folder: RunDir, checkpoints: Checkpointer) -> None:
    """Say where a resumed run starts: from its checkpoint, or from step 0 when it has none yet; and that the
    oneDNN CPU path is missing, where it would run."""
    if (line := onednn.notice()) is not None:
        progress.write(line)
    if start:
        progress.write(f"resumed from the checkpoint of step {start} in {checkpoints.directory}")
    elif resume:
        progress.write(f"nothing to resume in {folder.path} (no checkpoint yet): starting from step 0")


class _StopRequest:
    """Ctrl-C's request to stop between steps, honoured once the first step has compiled the update.

    Before that (set-up, the first compile) Ctrl-C stops the process at once;
    :meth:`check` after the first step enters
    :func:`~jaxrnn.experiment.interrupt.deferred` on ``deferral``, so from
    then on it stops at the next step boundary, the checkpoints in flight
    written (``--resume`` goes on from the last one).
    """

    def __init__(self, deferral: contextlib.ExitStack):
        self._deferral = deferral
        self._request: interrupt.Request | None = None

    def check(self, agree: bool = True) -> None:
        """At a step boundary: start deferring Ctrl-C (after the first step), and stop if it was pressed.

        In a job of several processes, each of which may have been
        interrupted at another step, they stop together: only at a boundary
        where they ``agree`` (look at each other's requests), when any was.

        Raises:
          KeyboardInterrupt: Ctrl-C was pressed since deferring began.
        """
        if self._request is None:
            self._request = self._deferral.enter_context(interrupt.deferred())
        requested = self._request.requested
        if jax.process_count() > 1:
            if not agree:
                return
            requested = job.anyone(requested)
        if requested:
            raise KeyboardInterrupt

    @property
    def requested(self) -> bool:
        """Whether Ctrl-C was pressed while deferred."""
        return self._request is not None and self._request.requested


def _train(train: Train, update: stepper.Stepper, saved: Any, start: int, folder: RunDir, checkpoints: Checkpointer,
           progress: Progress, stop: _StopRequest, evaluate: Callable[..., Any] | None, clock: float,
           names: list[str], events: Events | None) -> Any:
    """Steps ``start + 1 .. train.steps``: update, log, evaluate, checkpoint; the state after the last.

    ``events`` and ``evaluate`` are ``None`` in the processes of a job that do not write (all but process 0).

    Records close every ``train.log_every`` steps and at checkpoints too, so a
    resumed run writes the same records; evaluation runs every
    ``train.eval_every`` steps but the last (:func:`fit` evaluates the end).
    A replica whose step is not finite stops (and is said); the run stops
    when no replica is left.
    """
    window = _Window(len(names))
    for step in range(start, train.steps):
        began = time.perf_counter()
        saved, metrics = update(saved, step)
        finite = metrics.pop("finite")
        running = metrics.pop("running", finite)
        done = step + 1
        if not finite.all():
            halted = update.halted(saved)
            if halted is None or (halted.step != 0).all():
                raise _diverged(done, metrics, folder, checkpoints, names, halted)
            for i in np.flatnonzero(~finite):
                left = int(np.sum(update.halted(saved).step == 0))
                progress.write(f"{names[i]} diverged at step {done} (loss {float(metrics['loss'][i]):.4g}, gradient "
                               f"norm {float(metrics['grad_norm'][i]):.4g}) and stopped; {left} of {len(names)} "
                               "replicas go on")
        # The first step compiles the step function: not timed.
        window.add(metrics, running, time.perf_counter() - began if done > start + 1 else None)
        checkpoint = done % train.checkpoint_every == 0 or done == train.steps
        closes = done % train.log_every == 0 or checkpoint
        if closes:
            record = window.close(done, time.perf_counter() - clock)
            if events is not None:  # process 0 writes
                folder.append(record)
                events.write(record)
                progress.report(_display(record))
        if done % train.eval_every == 0 and done != train.steps and evaluate is not None:
            evaluate(_host(update.state_of(saved).params), done, progress, clock, update.halted(saved))
        if checkpoint:
            checkpoints.save(done, saved)
        progress.advance()
        stop.check(agree=closes)
    return saved


class _Window:
    """The steps since the last training record: their metrics, and the time the timed ones took.

    Metrics come with a leading replica axis; a replica's values count only at
    the steps it took. A record holds a number per metric for one replica, a
    list (``null`` for a replica that took none of the steps) for several.
    """

    def __init__(self, count: int) -> None:
        self._count = count
        self._reset()

    def _reset(self) -> None:
        """Empty: no metrics, nothing timed."""
        self._metrics: list[dict[str, Any]] = []
        self._running: list[np.ndarray] = []
        self._timed, self._busy = 0, 0.0  # steps and seconds spent in them, for steps/s (evaluation excluded)

    def add(self, metrics: dict[str, Any], running: np.ndarray, seconds: float | None) -> None:
        """One step's metrics, which replicas took it, and the seconds it took (``None``: not timed)."""
        self._metrics.append(metrics)
        self._running.append(np.asarray(running, bool))
        if seconds is not None:
            self._timed, self._busy = self._timed + 1, self._busy + seconds

    def close(self, step: int, time_so_far: float) -> dict[str, Any]:
        """The record of the window ending at ``step``: the means, ``steps_per_sec``, ``time``; then start anew."""
        record: dict[str, Any] = {"step": step}
        if self._metrics:
            names = ["loss", "grad_norm", "lr"] + sorted(set(self._metrics[0]) - {"loss", "grad_norm", "lr"})
            took = np.stack(self._running)  # (steps, replicas)
            for name in (n for n in names if n in self._metrics[0]):
                values = np.stack([np.asarray(m[name], np.float64) for m in self._metrics])
                # lr: the window's last value; the rest: means over the steps each replica took
                per = [values[took[:, i], i][-1:] if name == "lr" else values[took[:, i], i]
                       for i in range(self._count)]
                means = [float(np.mean(v)) if len(v) else None for v in per]
                record[name] = means[0] if self._count == 1 else means
        if self._timed:
            record["steps_per_sec"] = self._timed / max(self._busy, 1e-9)
        record["time"] = time_so_far
        self._reset()
        return record


def _display(record: dict[str, Any]) -> dict[str, Any]:
    """A record as the progress display shows it: a list of replicas' values as their mean (learning rates
    that differ, swept, as their range)."""
    out = {}
    for name, value in record.items():
        if isinstance(value, list):
            present = [v for v in value if v is not None]
            if name == "lr" and len(set(present)) > 1:
                value = f"{min(present):.3g}..{max(present):.3g}"
            else:
                value = float(np.mean(present)) if present else float("nan")
        out[name] = value
    return out


def _evaluation(problems: list[Problem], folder: RunDir, names: list[str],
                events: Events) -> Callable[..., dict[str, Any]]:
    """``evaluate(params, step, progress, clock, halted) -> {"eval_<name>": value}``, recorded and shown.

    The problem's metrics averaged over its evaluation batches (compiled
    once), appended to ``metrics.jsonl`` (and the event files) at ``step`` with the run's time. With
    several replicas, each replica's params on its own evaluation set, in one
    vmapped call per batch; a value per replica (``None`` for one that halted).
    """
    problem = problems[0]
    if len(problems) == 1:
        metrics = training.evaluator(problem.metrics)

        def evaluate(params, step, progress, clock, halted=None):
            results = {f"eval_{name}": value for name, value in metrics(params, problem.eval_batches).items()}
            return _record(results, step, progress, clock)
    else:
        compiled = jax.jit(jax.vmap(problem.metrics))
        stacked = [replicas.stack(batch) for batch in zip(*(p.eval_batches for p in problems))]

        def evaluate(params, step, progress, clock, halted=None):
            values = [jax.device_get(compiled(params, batch)) for batch in stacked]
            alive = np.ones(len(names), bool) if halted is None else np.asarray(halted.step) == 0
            results = {f"eval_{name}": [float(np.mean([v[name][i] for v in values])) if alive[i] else None
                                         for i in range(len(names))] for name in values[0]}
            return _record(results, step, progress, clock)

    def _record(results, step, progress, clock):
        record = {"step": step, **results, "time": time.perf_counter() - clock}
        folder.append(record)
        events.write(record)
        progress.write(_format_eval(_display(record), problem.baseline, len(names)))
        return results

    return evaluate


def _format_eval(record: dict[str, Any], baseline: float, count: int = 1) -> str:
    """``eval at step 300: eval_loss 0.01  eval_accuracy 0.9  (baseline 0.1667)``; of several replicas, the means."""
    metrics = "  ".join(f"{k} {v:.4g}" for k, v in record.items() if k.startswith("eval_"))
    mean = f" (mean of {count} replicas)" if count > 1 else ""
    return f"eval at step {record['step']}{mean}: {metrics}  (baseline {baseline:.4g})"


def _diverged(step: int, metrics: dict[str, Any], folder: RunDir, checkpoints: Checkpointer, names: list[str],
              halted: replicas.Halted | None) -> training.Diverged:
    """The error that stops a run whose step ``step`` was not finite (of its last replica running);
    ``diverged.json`` says where it stopped.

    Waits for the checkpoints in flight, so the message names the last good one.
    """
    checkpoints.wait()
    last = checkpoints.latest()
    if not job.primary():
        return training.Diverged("training diverged (process 0 of the job says where)")
    i = int(np.flatnonzero(~np.isfinite(metrics["loss"]) | ~np.isfinite(metrics["grad_norm"]))[0]) \
        if halted is None else int(np.argmax(halted.step))
    loss = float(metrics["loss"][i] if halted is None else halted.loss[i])
    norm = float(metrics["grad_norm"][i] if halted is None else halted.grad_norm[i])
    record = {"step": step, "loss": loss, "grad_norm": norm, "last_checkpoint": last}
    if halted is not None:
        record["replicas"] = {name: {"step": int(halted.step[k]), "loss": float(halted.loss[k]),
                                     "grad_norm": float(halted.grad_norm[k])} for k, name in enumerate(names)}
    folder.write_diverged(record)
    saved = (
        f"the last good checkpoint is step {last} in {checkpoints.directory}"
        if last is not None
        else "no checkpoint had been saved yet"
    )
    lr = metrics.get("lr")
    rate = f" (learning rate {float(lr[i]):.3g})" if lr is not None else ""
    which = "" if halted is None else f"every one of the {len(names)} replicas stopped; the last, {names[i]}, "
    return training.Diverged(
        f"training diverged: {which}loss {loss} and gradient norm {norm} at step {step}{rate}; "
        f"stopped without saving that step, {saved}. Try a smaller optim.learning_rate or an optim.clip_norm"
    )


def _finish(config: Config, problem: Problem, folder: RunDir, params: Any, final: dict[str, Any],
            clock: float, length: int | None, devices: int, members: list[replicas.Replica],
            halted: replicas.Halted | None) -> list[dict[str, Any]]:
    """Draw ``loss.png`` and write ``summary.json``, after training; return the summaries (one per replica).

    With several replicas, each replica's folder gets its records,
    ``loss.png`` and ``summary.json`` (``diverged.json`` for one that
    stopped); the run's own summary is written once their analyses have
    joined them (:func:`run`). ``clock``: when the run began, on
    ``time.perf_counter``'s clock (earlier by the time of the segments before a resume).
    """
    records = folder.records()
    points: dict[str, list[int]] = {}
    for index, member in enumerate(members):
        points.setdefault(", ".join(f"{k}={v}" for k, v in member.values.items()), []).append(index)
    seeds = len(next(iter(points.values())))
    band = f"min-max of {seeds} seeds" if seeds > 1 else None
    plots.loss_curves(records, folder.path / "loss.png", baseline=problem.baseline, title=config.name or "",
                      band=band, points=list(points.items()) if len(points) > 1 else ())
    wall = time.perf_counter() - clock
    count = sum(int(np.size(leaf)) for leaf in jax.tree_util.tree_leaves(params)) // len(members)
    if len(members) == 1:
        summary = _summary(config, final, problem.baseline, wall, length)
        summary.update(parameters=count, devices=devices)
        folder.write_summary(summary)
        return [summary]
    summaries = []
    for i, member in enumerate(members):
        own = member.config
        sub = folder.replica(member.name)
        sub.reset()
        its = [{k: (v[i] if isinstance(v, list) else v) for k, v in record.items()
                if not (isinstance(v, list) and v[i] is None)} for record in records]
        sub.write_records(its)
        plots.loss_curves(its, sub.path / "loss.png", baseline=problem.baseline, title=member.name)
        if halted.step[i]:
            stop = {"step": int(halted.step[i]), "loss": float(halted.loss[i]), "grad_norm": float(halted.grad_norm[i])}
            sub.write_diverged(stop)
            summary = {**_summary(own, {}, problem.baseline, wall, length), "metrics": {}, "diverged": stop}
        else:
            summary = _summary(own, {k: v[i] for k, v in final.items()}, problem.baseline, wall, length)
            summary.update(parameters=count, devices=devices)
            sub.write_summary(summary)
        summary.update(seed=member.seed, values=member.values, name=member.name)
        summaries.append(summary)
    return summaries


def _summary(config: Config, final: dict[str, float], baseline: float, wall_time: float,
             length: int | None) -> dict[str, Any]:
    """``summary.json``: the final metrics beside the baseline, and what ran where (config, model, machine)."""
    model = config.model
    return {
        "metrics": {**final, "baseline": baseline},
        "config": config.name,
        "experiment": config.experiment,
        "kind": model.kind,
        "cell": getattr(model, "cell", None),
        "model": model.label,
        "hidden_size": model.hidden_size,
        "num_layers": model.num_layers,
        "clip_norm": config.optim.clip_norm,
        "seq_len": length,  # what the model reads: AR(tau) reads tau steps
        "steps": config.train.steps,
        "wall_time_s": round(wall_time, 2),
        "machine": machine(),
        "jax": jax.__version__,
        "cpu_path": onednn.status() if jax.default_backend() == "cpu" else None,
    }


def restore_params(config: Config, folder: RunDir, replica: int = 0) -> tuple[Problem, Any]:
    """The experiment's problem and the params of the newest checkpoint in ``folder``, of replica ``replica``
    (the first seed, by default, of a run of several).

    Raises:
      ConfigError: ``folder`` has no checkpoint.
    """
    members = replicas.of(config)
    problem = catalog.experiment(config.experiment).problem(members[replica].config)
    # The replicas' states share their structure: one problem gives the shapes of all (built once, not per seed).
    like, _, _ = stepper.initial(config, [problem] * len(members), members)
    with Checkpointer(folder.checkpoints) as checkpoints:
        if checkpoints.latest() is None:
            raise ConfigError(f"{folder.path} has no checkpoint yet "
                              "(jaxrnn run saves one every train.checkpoint_every steps)")
        saved = checkpoints.restore(like)
    if len(members) == 1:
        return problem, (saved if problem.carry is None else saved[0]).params
    stacked = saved[0] if problem.carry is None else saved[0][0]
    return problem, replicas.take(stacked.params, replica)


def default_folder(config: Config, runs: str | Path = "runs") -> RunDir:
    """``runs/<config name>/``."""
    return RunDir(Path(runs) / (config.name or config.experiment))
