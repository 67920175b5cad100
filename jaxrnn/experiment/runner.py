"""The experiment runner: train an experiment's :class:`Problem` under a config into a run folder.

:func:`run` asks the experiment for its problem (model, loss, data), hands it
to :func:`fit`, which owns everything the experiments share -- the Optax step,
periodic evaluation, ``metrics.jsonl``, checkpoints and ``--resume``, the NaN
guard, the progress display, the loss-curve plot and ``summary.json`` -- and
then lets the experiment write its own plots.

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
from typing import Any

import jax
import numpy as np

from jaxrnn import training
from jaxrnn.experiment import catalog, data_parallel, interrupt, memory, plots
from jaxrnn.experiment import config as config_lib
from jaxrnn.experiment.checkpoint import Checkpointer
from jaxrnn.experiment.keys import Purpose, key
from jaxrnn.experiment.problem import Problem
from jaxrnn.experiment.progress import Progress
from jaxrnn.experiment.rundir import RunDir, machine
from jaxrnn.experiment.schema import Config, ConfigError

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
    extra = problem.report(state.params, folder) if problem.report is not None else None
    if extra:
        summary["metrics"].update(extra)
        folder.write_summary(summary)
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
    tx, learning_rate = config.optim.build(train.steps)
    state = training.init(problem.init(key(train.seed, Purpose.INIT)), tx)
    # What a checkpoint holds: the train state, and the carry of a problem whose state runs on between batches.
    if problem.carry is None:
        saved, update = state, training.train_step(problem.loss, tx, learning_rate)
    else:
        saved, carried = (state, problem.carry()), training.carried_step(problem.loss, tx, learning_rate)

        def update(saved, batch, dropout_key):
            state, carry, metrics = carried(*saved, batch, dropout_key)
            return (state, carry), metrics
    state_of = (lambda s: s) if problem.carry is None else (lambda s: s[0])
    mesh = data_parallel.mesh(train.devices)
    place = lambda batch: batch  # noqa: E731
    if mesh is not None:  # data-parallel: the state on every device, each batch (and carry) split across them
        data_parallel.check(problem.batch_axes, train.batch_size, mesh, config.experiment)
        place = lambda batch: data_parallel.split(batch, problem.batch_axes, mesh)  # noqa: E731
        saved = data_parallel.replicate(saved, mesh) if problem.carry is None else \
            (data_parallel.replicate(saved[0], mesh), data_parallel.split(saved[1], 0, mesh))
    evaluate = training.evaluator(problem.metrics)
    dropout = getattr(config.model, "dropout", 0.0) > 0 or problem.dropout
    if problem.setup is not None:
        problem.setup(folder)

    stop = None  # Ctrl-C's request to stop, once the first step has compiled the update (see below)
    # The deferral outlives the checkpointer, whose closing waits for the saves in flight.
    checkpointer = Checkpointer(folder.checkpoints, keep=train.keep_checkpoints)
    with contextlib.ExitStack() as deferral, checkpointer as checkpoints:
        start = 0
        if resume and checkpoints.latest() is not None:
            saved = checkpoints.restore(saved)
            start = int(state_of(saved).step)
        # A resumed run rewrites what came after its checkpoint (and a finished run its final evaluation).
        kept = folder.truncate(start, final_eval=start < train.steps)
        folder.diverged_file.unlink(missing_ok=True)  # a resumed run goes on from its last good checkpoint
        elapsed = max((r.get("time", 0.0) for r in kept), default=0.0)
        progress = Progress(train.steps, start, interactive)
        if start:
            progress.write(f"resumed from the checkpoint of step {start} in {checkpoints.directory}")
        elif resume:
            progress.write(f"nothing to resume in {folder.path} (no checkpoint yet): starting from step 0")
        clock = time.perf_counter() - elapsed
        window: list[dict[str, Any]] = []
        timed, busy = 0, 0.0  # steps and seconds spent in them, for steps/s (evaluation excluded)
        try:
            for step in range(start, train.steps):
                began = time.perf_counter()
                batch = place(problem.batch(step))
                saved, metrics = update(saved, batch, key(train.seed, Purpose.DROPOUT, step) if dropout else None)
                metrics = jax.device_get(metrics)
                if not metrics.pop("finite"):
                    message = _diverged_message(step + 1, metrics, checkpoints)
                    folder.write_diverged({"step": step + 1, "loss": float(metrics["loss"]),
                                           "grad_norm": float(metrics["grad_norm"]),
                                           "last_checkpoint": checkpoints.latest()})
                    raise training.Diverged(message)
                window.append(metrics)
                done = step + 1
                if done > start + 1:  # the first step compiles the step function: not timed
                    timed, busy = timed + 1, busy + time.perf_counter() - began
                checkpoint = done % train.checkpoint_every == 0 or done == train.steps
                # Records also close at checkpoints, so a resumed run writes the same records.
                if done % train.log_every == 0 or checkpoint:
                    now = time.perf_counter()
                    record = {"step": done, **_mean(window, "lr")}
                    if timed:
                        record["steps_per_sec"] = timed / max(busy, 1e-9)
                    record["time"] = now - clock
                    folder.append(record)
                    progress.report(record)
                    window, timed, busy = [], 0, 0.0
                if done % train.eval_every == 0 and done != train.steps:
                    _evaluate(evaluate, state_of(saved).params, problem, done, folder, progress, clock)
                if checkpoint:
                    checkpoints.save(done, saved)
                progress.advance()
                if stop is None:  # set-up and the first compile are behind: from now on Ctrl-C stops between steps
                    stop = deferral.enter_context(interrupt.deferred())
                if stop.requested:  # --resume goes on from the last checkpoint
                    raise KeyboardInterrupt
            state = state_of(saved)
            final = _evaluate(evaluate, state.params, problem, train.steps, folder, progress, clock)
        finally:
            progress.close()
    if stop is not None and stop.requested:  # Ctrl-C during the final evaluation or the last saves
        raise KeyboardInterrupt
    records = folder.records()
    plots.loss_curves(records, folder.path / "loss.png", baseline=problem.baseline, title=config.name or "")
    summary = _summary(config, final, problem.baseline, time.perf_counter() - clock, length)
    summary["parameters"] = sum(int(np.size(leaf)) for leaf in jax.tree_util.tree_leaves(state.params))
    summary["devices"] = 1 if mesh is None else int(mesh.devices.size)
    folder.write_summary(summary)
    return state, summary


def _evaluate(evaluate, params, problem: Problem, step: int, folder: RunDir, progress: Progress, clock: float):
    results = {f"eval_{name}": value for name, value in evaluate(params, problem.eval_batches).items()}
    record = {"step": step, **results, "time": time.perf_counter() - clock}
    folder.append(record)
    progress.write(_format_eval(record, problem.baseline))
    return results


def _format_eval(record: dict[str, Any], baseline: float) -> str:
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


def _diverged_message(step: int, metrics: dict[str, Any], checkpoints: Checkpointer) -> str:
    checkpoints.wait()
    last = checkpoints.latest()
    saved = (
        f"the last good checkpoint is step {last} in {checkpoints.directory}"
        if last is not None
        else "no checkpoint had been saved yet"
    )
    lr = metrics.get("lr")
    return (
        f"training diverged: loss {float(metrics['loss'])} and gradient norm {float(metrics['grad_norm'])} "
        f"at step {step}" + (f" (learning rate {float(lr):.3g})" if lr is not None else "")
        + f"; stopped without saving that step, {saved}. Try a smaller optim.learning_rate or an optim.clip_norm"
    )


def _summary(config: Config, final: dict[str, float], baseline: float, wall_time: float,
             length: int | None) -> dict[str, Any]:
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
    tx, _ = config.optim.build(config.train.steps)
    state = training.init(problem.init(key(config.train.seed, Purpose.INIT)), tx)
    like = state if problem.carry is None else (state, problem.carry())
    with Checkpointer(folder.checkpoints) as checkpoints:
        if checkpoints.latest() is None:
            raise ConfigError(f"{folder.path} has no checkpoint yet "
                              "(jaxrnn run saves one every train.checkpoint_every steps)")
        saved = checkpoints.restore(like)
    return problem, (saved if problem.carry is None else saved[0]).params


def default_folder(config: Config, runs: str | Path = "runs") -> RunDir:
    """``runs/<config name>/``."""
    return RunDir(Path(runs) / (config.name or config.experiment))
