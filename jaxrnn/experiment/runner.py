"""The experiment runner: train an experiment's :class:`Problem` under a config into a run folder.

:func:`run` asks the experiment for its problem (model, loss, data), hands it
to :func:`fit`, which owns everything the experiments share -- the Optax step
(:mod:`jaxrnn.experiment.stepper`), periodic evaluation, ``metrics.jsonl``,
checkpoints and ``--resume``, the NaN guard, the progress display, the
loss-curve plot and ``summary.json`` -- and then lets the experiment measure
the trained model (the problem's ``analysis``) and draw its own figures of
the run (its report, :mod:`jaxrnn.experiment.report`).

Randomness is a pure function of ``(train.seed, purpose, step)``
(:mod:`jaxrnn.experiment.keys`). Resuming restores the train state saved at
step ``c`` and replays steps ``c+1..N`` with the same keys and batches, so it
ends with bit-for-bit the parameters of an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from pathlib import Path
from typing import Any, Callable

import jax
import numpy as np

from jaxrnn import training
from jaxrnn.experiment import catalog, data_parallel, interrupt, memory, plots, stepper
from jaxrnn.experiment import config as config_lib
from jaxrnn.experiment.checkpoint import Checkpointer
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
        problem: Problem | None = None) -> dict[str, Any]:
    """Train ``config``'s experiment into ``folder`` (call :func:`prepare` first); return the summary.

    ``problem``: the one :func:`check` returned, so it is not built twice.
    """
    experiment = catalog.experiment(config.experiment)
    problem = experiment.problem(config) if problem is None else problem
    state, summary = fit(config, problem, folder, resume=resume, interactive=interactive,
                         length=experiment.length(config))
    extra = problem.analysis(state.params, folder) if problem.analysis is not None else None
    if extra:
        summary["metrics"].update(extra)
        folder.write_summary(summary)
    report = catalog.report(config.experiment)
    if report is not None and report.run is not None:
        report.run(config, folder)
    return summary


def check(config: Config) -> Problem:
    """Everything about ``config`` that can fail before training, checked before a run folder or header exists.

    Builds the experiment's problem and the optimiser, checks the devices of
    data-parallel training and that the model fits in memory (from shapes,
    allocating nothing). Returns the problem, for :func:`run`.

    Raises:
      ConfigError: one line naming the key.
    """
    problem = catalog.experiment(config.experiment).problem(config)
    tx, _ = config.optim.build(config.train.steps)
    mesh = data_parallel.mesh(config.train.devices)
    if mesh is not None:
        data_parallel.check(problem.batch_axes, config.train.batch_size, mesh, config.experiment)
    memory.check(config, problem.init, tx, 1 if mesh is None else int(mesh.devices.size))
    return problem


def prepare(config: Config, folder: RunDir, *, resume: bool = False, overwrite: bool = False) -> None:
    """Check that ``config`` may run in ``folder`` and write its resolved ``config.yaml``.

    A folder whose run stopped before its first checkpoint holds nothing to
    resume or keep, so a plain run may start afresh in it.

    Raises:
      RunExists: the folder holds a run, and neither ``resume`` nor ``overwrite``.
      ConfigError: ``resume`` with a config that would compute something else.
      OSError: the folder cannot be written.
    """
    if not resume:
        if folder.holds_run() and not overwrite:
            raise RunExists(
                f"{folder.path} already holds a run; use --resume to continue it, --overwrite to start "
                "afresh, or --out for another folder"
            )
        # Overwritten, or a run that stopped before its first checkpoint: nothing in it to keep.
        for path in (folder.metrics_file, folder.summary_file, folder.diverged_file):
            path.unlink(missing_ok=True)
        if folder.checkpoints.exists():
            shutil.rmtree(folder.checkpoints)
    if resume and folder.config_file.exists():
        old = config_lib.flatten(folder.read_config())
        new = config_lib.flatten(config_lib.to_dict(config))
        changed = [k for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k) and k not in RESUMABLE_CHANGES]
        if changed:
            k = changed[0]
            raise ConfigError(
                f"--resume: {k} is {new.get(k)!r} but the run in {folder.path} used {old.get(k)!r}; "
                f"resume it with its own config (jaxrnn run --resume --out {folder.path}), or run into a new --out"
            )
    folder.write_config(config_lib.dump(config))


def fit(
    config: Config,
    problem: Problem,
    folder: RunDir,
    *,
    resume: bool = False,
    interactive: bool | None = None,
    length: int | None = None,
) -> tuple[training.TrainState, dict[str, Any]]:
    """Train ``problem`` as ``config`` says; return the final state and the summary.

    Writes ``metrics.jsonl``, checkpoints every ``train.checkpoint_every``
    steps and at the end, ``loss.png`` and ``summary.json`` in ``folder``
    (call :func:`prepare` first). With ``resume``, continues from the newest
    checkpoint (or from scratch if there is none, and says so). ``length``:
    the sequence length the model reads, for the summary.

    Once the first step has compiled the update, Ctrl-C stops training at
    the next step boundary (:func:`jaxrnn.experiment.interrupt.deferred`);
    before, it stops the process at once under the ``jaxrnn`` command.

    Raises:
      training.Diverged: the loss or gradient became NaN/infinite. The state of
        that step is not saved; the checkpoints hold the last good ones.
      KeyboardInterrupt: Ctrl-C, after the checkpoints in flight are written.
    """
    train = config.train
    update = stepper.build(config, problem)
    evaluate = _evaluation(problem, folder)
    if problem.setup is not None:
        problem.setup(folder)
    # The deferral outlives the checkpointer, whose closing waits for the saves in flight.
    checkpointer = Checkpointer(folder.checkpoints, keep=train.keep_checkpoints)
    with contextlib.ExitStack() as deferral, checkpointer as checkpoints:
        stop = _StopRequest(deferral)
        saved, start, elapsed = _restore(update, checkpoints, folder, resume=resume, steps=train.steps)
        progress = Progress(train.steps, start, interactive)
        _announce_start(progress, start, resume, folder, checkpoints)
        clock = time.perf_counter() - elapsed
        try:
            saved = _train(train, update, saved, start, folder, checkpoints, progress, stop, evaluate, clock)
            state = update.state_of(saved)
            final = evaluate(state.params, train.steps, progress, clock)
        finally:
            progress.close()
    if stop.requested:  # Ctrl-C during the final evaluation or the last saves
        raise KeyboardInterrupt
    return state, _finish(config, problem, folder, state.params, final, clock, length, update.devices)


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
        start = int(update.state_of(saved).step)
    kept = folder.truncate(start, final_eval=start < steps)
    folder.diverged_file.unlink(missing_ok=True)
    elapsed = max((r.get("time", 0.0) for r in kept), default=0.0)
    return saved, start, elapsed


def _announce_start(progress: Progress, start: int, resume: bool, folder: RunDir, checkpoints: Checkpointer) -> None:
    """Say where a resumed run starts: from its checkpoint, or from step 0 when it has none yet."""
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

    def check(self) -> None:
        """At a step boundary: start deferring Ctrl-C (after the first step), and stop if it was pressed.

        Raises:
          KeyboardInterrupt: Ctrl-C was pressed since deferring began.
        """
        if self._request is None:
            self._request = self._deferral.enter_context(interrupt.deferred())
        if self._request.requested:
            raise KeyboardInterrupt

    @property
    def requested(self) -> bool:
        """Whether Ctrl-C was pressed while deferred."""
        return self._request is not None and self._request.requested


def _train(train: Train, update: stepper.Stepper, saved: Any, start: int, folder: RunDir, checkpoints: Checkpointer,
           progress: Progress, stop: _StopRequest, evaluate: Callable[..., Any], clock: float) -> Any:
    """Steps ``start + 1 .. train.steps``: update, log, evaluate, checkpoint; the state after the last.

    Records close every ``train.log_every`` steps and at checkpoints too, so a
    resumed run writes the same records; evaluation runs every
    ``train.eval_every`` steps but the last (:func:`fit` evaluates the end).
    """
    window = _Window()
    for step in range(start, train.steps):
        began = time.perf_counter()
        saved, metrics = update(saved, step)
        if not metrics.pop("finite"):
            raise _diverged(step + 1, metrics, folder, checkpoints)
        done = step + 1
        # The first step compiles the step function: not timed.
        window.add(metrics, time.perf_counter() - began if done > start + 1 else None)
        checkpoint = done % train.checkpoint_every == 0 or done == train.steps
        if done % train.log_every == 0 or checkpoint:
            record = window.close(done, time.perf_counter() - clock)
            folder.append(record)
            progress.report(record)
        if done % train.eval_every == 0 and done != train.steps:
            evaluate(update.state_of(saved).params, done, progress, clock)
        if checkpoint:
            checkpoints.save(done, saved)
        progress.advance()
        stop.check()
    return saved


class _Window:
    """The steps since the last training record: their metrics, and the time the timed ones took."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        """Empty: no metrics, nothing timed."""
        self._metrics: list[dict[str, Any]] = []
        self._timed, self._busy = 0, 0.0  # steps and seconds spent in them, for steps/s (evaluation excluded)

    def add(self, metrics: dict[str, Any], seconds: float | None) -> None:
        """One step's metrics, and the seconds it took (``None``: not timed)."""
        self._metrics.append(metrics)
        if seconds is not None:
            self._timed, self._busy = self._timed + 1, self._busy + seconds

    def close(self, step: int, time_so_far: float) -> dict[str, Any]:
        """The record of the window ending at ``step``: the means, ``steps_per_sec``, ``time``; then start anew."""
        record = {"step": step, **_mean(self._metrics, "lr")}
        if self._timed:
            record["steps_per_sec"] = self._timed / max(self._busy, 1e-9)
        record["time"] = time_so_far
        self._reset()
        return record


def _evaluation(problem: Problem, folder: RunDir) -> Callable[[Any, int, Progress, float], dict[str, float]]:
    """``evaluate(params, step, progress, clock) -> {"eval_<name>": value}``, recorded and shown.

    The problem's metrics averaged over its evaluation batches (compiled
    once), appended to ``metrics.jsonl`` at ``step`` with the run's time.
    """
    metrics = training.evaluator(problem.metrics)

    def evaluate(params: Any, step: int, progress: Progress, clock: float) -> dict[str, float]:
        results = {f"eval_{name}": value for name, value in metrics(params, problem.eval_batches).items()}
        record = {"step": step, **results, "time": time.perf_counter() - clock}
        folder.append(record)
        progress.write(_format_eval(record, problem.baseline))
        return results

    return evaluate


def _format_eval(record: dict[str, Any], baseline: float) -> str:
    """``eval at step 300: eval_loss 0.01  eval_accuracy 0.9  (baseline 0.1667)``."""
    metrics = "  ".join(f"{k} {v:.4g}" for k, v in record.items() if k.startswith("eval_"))
    return f"eval at step {record['step']}: {metrics}  (baseline {baseline:.4g})"


def _mean(window: list[dict[str, Any]], last: str) -> dict[str, float]:
    """Means over the logging window, except ``last``, which is the window's last value."""
    if not window:
        return {}
    names = ["loss", "grad_norm", "lr"] + sorted(set(window[0]) - {"loss", "grad_norm", "lr"})
    out = {name: float(np.mean([m[name] for m in window])) for name in names if name in window[0]}
    if last in window[-1]:
        out[last] = float(window[-1][last])
    return out


def _diverged(step: int, metrics: dict[str, Any], folder: RunDir, checkpoints: Checkpointer) -> training.Diverged:
    """The error that stops a run whose step ``step`` was not finite; ``diverged.json`` says where it stopped.

    Waits for the checkpoints in flight, so the message names the last good one.
    """
    checkpoints.wait()
    last = checkpoints.latest()
    folder.write_diverged({"step": step, "loss": float(metrics["loss"]), "grad_norm": float(metrics["grad_norm"]),
                           "last_checkpoint": last})
    saved = (
        f"the last good checkpoint is step {last} in {checkpoints.directory}"
        if last is not None
        else "no checkpoint had been saved yet"
    )
    lr = metrics.get("lr")
    return training.Diverged(
        f"training diverged: loss {float(metrics['loss'])} and gradient norm {float(metrics['grad_norm'])} "
        f"at step {step}" + (f" (learning rate {float(lr):.3g})" if lr is not None else "")
        + f"; stopped without saving that step, {saved}. Try a smaller optim.learning_rate or an optim.clip_norm"
    )


def _finish(config: Config, problem: Problem, folder: RunDir, params: Any, final: dict[str, float],
            clock: float, length: int | None, devices: int) -> dict[str, Any]:
    """Draw ``loss.png`` and write ``summary.json``, after training; return the summary.

    ``clock``: when the run began, on ``time.perf_counter``'s clock (earlier
    by the time of the segments before a resume).
    """
    plots.loss_curves(folder.records(), folder.path / "loss.png", baseline=problem.baseline, title=config.name or "")
    summary = _summary(config, final, problem.baseline, time.perf_counter() - clock, length)
    summary["parameters"] = sum(int(np.size(leaf)) for leaf in jax.tree_util.tree_leaves(params))
    summary["devices"] = devices
    folder.write_summary(summary)
    return summary


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
    }


def restore_params(config: Config, folder: RunDir) -> tuple[Problem, Any]:
    """The experiment's problem for ``config`` and the params of the newest checkpoint in ``folder``.

    Raises:
      ConfigError: ``folder`` has no checkpoint.
    """
    problem = catalog.experiment(config.experiment).problem(config)
    like, _, _ = stepper.initial(config, problem)
    with Checkpointer(folder.checkpoints) as checkpoints:
        if checkpoints.latest() is None:
            raise ConfigError(f"{folder.path} has no checkpoint yet "
                              "(jaxrnn run saves one every train.checkpoint_every steps)")
        saved = checkpoints.restore(like)
    return problem, (saved if problem.carry is None else saved[0]).params


def default_folder(config: Config, runs: str | Path = "runs") -> RunDir:
    """``runs/<config name>/``."""
    return RunDir(Path(runs) / (config.name or config.experiment))
