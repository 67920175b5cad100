"""The adding problem: can a recurrent net remember two marked values over T steps?

Hochreiter & Schmidhuber (1997): an LSTM or a GRU drives the MSE far below
the baseline 1/6 (of always answering 1); a tanh RNN, whose gradient through
time is a product of ``T`` Jacobians ``diag(tanh') W^T``, stays near the
baseline once ``T`` is in the hundreds.

Model: many-to-one, the cell reads ``(value, marker)`` pairs and a linear
readout of ``h_T`` answers. Loss: MSE. ``eval_grad_decay``: orders of
magnitude between the gradient of the answer at the first step and at the
last, ``log10(|dy/dx_1| / |dy/dx_T|)`` (:mod:`jaxrnn.gradient_flow`);
``eval_grad_underflow``: the fraction of sequences whose first-step gradient
underflowed float32 to 0 (their decay is then a bound, near -38 or below). Plots:
loss curves (by the runner), ``predictions.png`` (answers against true sums on
the evaluation set) and ``gradient_flow.png`` (``|dy/dx_t|`` against ``t``, at
initialisation and after training).
"""

from __future__ import annotations

import functools
from typing import Annotated

import jax
import jax.numpy as jnp
import numpy as np
from pydantic import Field

from jaxrnn import gradient_flow, models
from jaxrnn.experiment import plots
from jaxrnn.experiment.fields import Int
from jaxrnn.experiment.keys import Purpose, key
from jaxrnn.experiment.problem import Experiment, Figure, Problem, batches, needs_recurrent
from jaxrnn.experiment.rundir import RunDir
from jaxrnn.experiment.schema import Config, Section
from jaxrnn.tasks import adding


class Data(Section):
    """``data`` section: ``seq_len`` is ``T``, the number of (value, marker) pairs."""

    seq_len: Annotated[Int, Field(ge=2)]


def model(config: Config) -> models.Model:
    """Many-to-one: the configured cell reads ``(value, marker)`` pairs, a linear readout of ``h_T`` answers."""
    return models.many_to_one(config.model.build(), adding.OUTPUT_SIZE)


def problem(config: Config) -> Problem:
    """Data, model and plots of ``config``, as the runner takes them."""
    seed, T = config.train.seed, config.data.seq_len
    net = model(config)
    init = functools.partial(net.init, input_size=adding.INPUT_SIZE)
    sample = jax.jit(functools.partial(adding.sample, batch_size=config.train.batch_size, seq_len=T))

    def loss(params, batch, key):
        return adding.mse(net.apply(params, batch.xs, key=key), batch.ys), {}

    def metrics(params, batch):
        norms = gradient_flow.input_gradient_norms(lambda xs: net.apply(params, xs), batch.xs)
        return {
            "loss": adding.mse(net.apply(params, batch.xs), batch.ys),
            "grad_decay": jnp.mean(gradient_flow.decay(norms)),
            "grad_underflow": jnp.mean(norms[0] == 0),
        }

    batch_at, eval_set = batches(sample, seed, config.train.eval_batches)

    def report(params, folder: RunDir) -> None:
        batch = eval_set[0]
        predicted = jax.jit(net.apply)(params, batch.xs)
        plot_predictions(np.asarray(predicted), np.asarray(batch.ys), folder, config)
        norms = jax.jit(lambda p: gradient_flow.input_gradient_norms(lambda xs: net.apply(p, xs), batch.xs))
        initial = init(key(seed, Purpose.INIT))
        plot_gradient_flow({"at initialisation": norms(initial), f"after {config.train.steps} steps": norms(params)},
                           folder, config)

    return Problem(init=init, loss=loss, metrics=metrics, batch=batch_at, eval_batches=eval_set,
                   baseline=adding.baseline(T), report=report, batch_axes=adding.Batch(xs=1, ys=0))


def plot_predictions(predicted: np.ndarray, target: np.ndarray, folder: RunDir, config: Config) -> None:
    fig, ax = plots.axes((4.5, 4.5), (0.15, 0.96, 0.12, 0.92))
    ax.scatter(target.ravel(), predicted.ravel(), s=6, alpha=0.6)
    ax.plot([0, 2], [0, 2], "k--", lw=1)
    ax.axhline(1.0, color="grey", lw=0.8, ls=":", label="baseline answer 1")
    ax.set_xlabel("true sum")
    ax.set_ylabel("predicted sum")
    ax.set_title(f"{config.name}: {config.model.label}, T = {config.data.seq_len}")
    ax.legend()
    plots.save(fig, folder.path / "predictions.png")


def plot_gradient_flow(curves: dict[str, jax.Array], folder: RunDir, config: Config) -> None:
    """``|dy/dx_t|`` against ``t`` on a log scale: the geometric mean over the evaluation batch."""
    fig, ax = plots.axes(margins=(0.13, 0.97, 0.12, 0.92))
    for label, norms in curves.items():
        norms = np.asarray(norms, np.float64)
        ax.plot(np.arange(1, len(norms) + 1), np.exp(np.mean(np.log(norms + 1e-30), axis=1)), label=label)
    ax.set_yscale("log")
    ax.set_xlabel("step t")
    ax.set_ylabel("|dy/dx_t|, geometric mean")
    ax.set_title(f"{config.name}: gradient reaching each step ({config.model.label}, T = {config.data.seq_len})")
    ax.legend()
    plots.save(fig, folder.path / "gradient_flow.png")


LOSS_CURVES = tuple(f"adding_t{T}_{cell}" for T in (50, 200) for cell in ("rnn", "lstm", "gru"))


def draw_loss_curves(runs: dict[str, RunDir], path) -> None:
    """The evaluation MSE of the rnn, lstm and gru against the training step, on one axis for each T."""
    fig = plots.figure((11, 4.0))
    axes = fig.subplots(1, 2, sharey=True)
    for ax, T in zip(axes, (50, 200)):
        for cell in ("rnn", "lstm", "gru"):
            run = runs[f"adding_t{T}_{cell}"]
            points = [(r["step"], r["eval_loss"]) for r in run.records() if "eval_loss" in r]
            ax.plot(*zip(*points), "o-", ms=2, lw=1.2, label=run.read_summary()["model"])
        ax.axhline(adding.BASELINE_MSE, color="k", ls="--", lw=1, label="baseline 1/6 (always answer 1)")
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_title(f"the adding problem, T = {T}")
        ax.grid(True, which="major", alpha=0.3)
    axes[0].set_ylabel("evaluation MSE")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    plots.save(fig, path)


EXPERIMENT = Experiment(
    name="adding",
    data=Data,
    problem=problem,
    length=lambda config: config.data.seq_len,
    check=needs_recurrent,
    description="the adding problem: the sum of two marked values among T (Hochreiter & Schmidhuber 1997)",
    figures=(Figure("adding.png", LOSS_CURVES, draw_loss_curves),),
)
