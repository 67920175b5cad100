"""Why gradients vanish and explode, controlled: the product of Jacobians through time, before and after training.

Unrolled, ``s_T`` depends on ``s_{T-k}`` through ``J_k = ds_T/ds_{T-k}``, a
product of ``k`` step Jacobians; for a tanh RNN each is ``diag(tanh'(a)) W``
(row-vector convention), so ``||J_k||`` shrinks or grows like ``r^k``, ``r``
set by the spectral radius of ``W``. This experiment trains one model on the
adding problem (the same data, model and loss as ``adding``, at ``T = 100`` by
default) and measures ``||J_k||`` (largest singular value, the carry ``s``
being ``h``, or ``(h, c)`` for an LSTM) for every ``k`` on
``data.analysis_sequences`` evaluation sequences, at initialisation and after
training (:func:`jaxrnn.gradient_flow.state_gradient_norms`).

Reported beside the adding metrics: ``eval_decay_rate_init`` and
``eval_decay_rate``, the per-step factor ``r`` fitted to ``||J_k|| ~ C r^k``
(:func:`jaxrnn.gradient_flow.decay_rate`); ``eval_solved``, 1 if the
evaluation MSE is below ``data.solved_below``. Files: ``state_gradients.npz``
(``k``, and the geometric means over the sequences of ``||J_k||``, ``init`` and
``trained``), ``state_gradients.png``, and the adding experiment's plots.

The configs ``gradient_flow_*`` put the tanh RNN at spectral radius 0.5, 1.0
and 1.5 (vanishing, edge, exploding), the IRNN, the LSTM and the GRU side by
side, and the exploding RNN once more without gradient clipping.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import jax
import numpy as np
from pydantic import Field

from jaxrnn import gradient_flow
from jaxrnn.experiment import plots
from jaxrnn.experiment.fields import Int, PositiveFloat, PositiveInt
from jaxrnn.experiment.keys import Purpose, key
from jaxrnn.experiment.problem import Experiment, Figure, Problem, needs_recurrent
from jaxrnn.experiment.rundir import RunDir
from jaxrnn.experiment.schema import Config, Section
from jaxrnn.experiments import adding
from jaxrnn.tasks.adding import BASELINE_MSE


class Data(Section):
    """``data`` section: the adding problem's ``seq_len`` (``T``), the sequences analysed, the bar for "solved"."""

    seq_len: Annotated[Int, Field(ge=2)] = 100
    analysis_sequences: PositiveInt = 8
    solved_below: PositiveFloat = 0.01


def problem(config: Config) -> Problem:
    """The adding problem's, with the state-Jacobian analysis in its report."""
    base = adding.problem(config)
    cell = config.model.build()
    xs = base.eval_batches[0].xs[:, : config.data.analysis_sequences]
    norms = jax.jit(lambda params: gradient_flow.state_gradient_norms(cell, params["cell"], xs))

    def report(params, folder: RunDir) -> dict[str, float]:
        base.report(params, folder)
        curves = {"init": norms(base.init(key(config.train.seed, Purpose.INIT))), "trained": norms(params)}
        means = {name: geometric_mean(n) for name, n in curves.items()}
        np.savez(folder.path / "state_gradients.npz", k=np.arange(len(means["init"])), **means)
        plot_state_gradients(means, folder.path / "state_gradients.png", config)
        final = folder.read_summary()["metrics"]["eval_loss"]
        return {"eval_decay_rate_init": float(gradient_flow.decay_rate(curves["init"])),
                "eval_decay_rate": float(gradient_flow.decay_rate(curves["trained"])),
                "eval_solved": float(final < config.data.solved_below)}

    return base._replace(report=report)


def geometric_mean(norms: jax.Array) -> np.ndarray:
    """Over the sequences (axis 1); an underflowed 0 stays 0."""
    logs = np.log(np.maximum(np.asarray(norms, np.float64), 1e-300))
    return np.where(np.all(np.asarray(norms) > 0, axis=1), np.exp(logs.mean(axis=1)), 0.0)


def plot_state_gradients(means: dict[str, np.ndarray], path: Path, config: Config) -> None:
    fig, ax = plots.axes(margins=(0.13, 0.97, 0.12, 0.92))
    for name, curve in means.items():
        ax.plot(np.arange(len(curve)), np.where(curve > 0, curve, np.nan), label=name)
    ax.set_yscale("log")
    ax.set_xlabel("distance k = T - t (steps)")
    ax.set_ylabel("||ds_T / ds_{T-k}||")
    ax.set_title(f"{config.name}: {config.model.label}, T = {config.data.seq_len}")
    ax.legend()
    plots.save(fig, path)


# --- the README's figures and table, from the runs of the shipped configs ----------------------------------

MODELS = ("gradient_flow_rnn_r0.5", "gradient_flow_rnn_r1.0", "gradient_flow_rnn_r1.5", "gradient_flow_irnn",
          "gradient_flow_lstm", "gradient_flow_gru")
CLIPPING = ("gradient_flow_rnn_r1.5", "gradient_flow_rnn_r1.5_noclip")


def draw_gradient_flow(runs: dict[str, RunDir], path: Path) -> None:
    """``||ds_T/ds_{T-k}||`` against ``k`` for every model, at initialisation and after training."""
    fig = plots.figure((11, 4.2))
    axes = fig.subplots(1, 2, sharey=True)
    for name in MODELS:
        saved = np.load(runs[name].path / "state_gradients.npz")
        label = runs[name].read_summary()["model"]
        for ax, curve in zip(axes, (saved["init"], saved["trained"])):
            ax.plot(saved["k"], np.where(curve > 0, curve, np.nan), label=label)
    for ax, title in zip(axes, ("at initialisation", "after training on the adding problem")):
        ax.set_yscale("log")
        ax.set_xlabel("distance k = T - t (steps)")
        ax.set_title(title)
        ax.grid(True, which="major", alpha=0.3)
    axes[0].set_ylabel("||ds_T / ds_{T-k}||, geometric mean")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    plots.save(fig, path)


def draw_clipping(runs: dict[str, RunDir], path: Path) -> None:
    """The exploding RNN's training loss with and without clipping, side by side, on the same seed."""
    fig = plots.figure((11, 4.0))
    axes = fig.subplots(1, 2, sharey=True)
    for ax, name in zip(axes, CLIPPING):
        run = runs[name]
        records = run.records()
        train = [(r["step"], r["loss"]) for r in records if "loss" in r]
        ax.plot(*zip(*train), lw=1, label="training loss")
        clip = run.read_config()["optim"]["clip_norm"]
        ax.set_title(("no clipping" if clip is None else f"clipped at global norm {clip}") + f": {run.outcome()}",
                     fontsize=10)
        ax.axhline(BASELINE_MSE, color="k", ls="--", lw=1, label="baseline 1/6")
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.grid(True, which="major", alpha=0.3)
    axes[0].set_ylabel("MSE")
    axes[0].legend()
    fig.tight_layout()
    plots.save(fig, path)


def table(summaries: list[dict]) -> str:
    """The per-step factor of ``||ds_T/ds_{T-k}||`` before and after training, and whether the task was solved."""
    rows = ["| model | per-step factor at init | after training | eval MSE | solved |",
            "| --- | ---: | ---: | ---: | --- |"]
    for s in summaries:
        m = s["metrics"]
        if "eval_decay_rate" not in m:
            continue
        clip = "" if s.get("clip_norm", 1.0) is not None else " (no clipping)"
        rows.append(f"| {s['model']}{clip} | {m['eval_decay_rate_init']:.3f} | {m['eval_decay_rate']:.3f} | "
                    f"{m['eval_loss']:.2e} | {'yes' if m['eval_solved'] else 'no'} |")
    return "\n".join(rows) + "\n"


EXPERIMENT = Experiment(
    name="gradient_flow",
    data=Data,
    problem=problem,
    length=lambda config: config.data.seq_len,
    check=needs_recurrent,
    description="the product of Jacobians through time, before and after training on the adding problem",
    figures=(Figure("gradient_flow.png", MODELS, draw_gradient_flow), Figure("clipping.png", CLIPPING, draw_clipping)),
    table=table,
)
