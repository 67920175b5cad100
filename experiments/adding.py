"""The adding problem: can a recurrent net remember two marked values over T steps?

Hochreiter & Schmidhuber (1997): an LSTM or a GRU drives the MSE far below
the baseline 1/6 (of always answering 1); a tanh RNN, whose gradient through
time is a product of ``T`` Jacobians ``diag(tanh') W^T``, stays near the
baseline once ``T`` is in the hundreds.

Model: many-to-one, the cell reads ``(value, marker)`` pairs and a linear
readout of ``h_T`` answers. Loss: MSE. Plots: loss curves (by the runner)
and ``predictions.png``, answers against true sums on the evaluation set.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from jaxrnn import models, plots, runner, tasks
from jaxrnn.config import Config
from jaxrnn.rundir import RunDir
from jaxrnn.tasks import adding


@dataclasses.dataclass(frozen=True)
class Data:
    """``data`` section: ``seq_len`` is ``T``, the number of (value, marker) pairs."""

    seq_len: int = dataclasses.field(metadata={"check": lambda t: t >= 2, "allowed": "an integer >= 2"})


def check(config: Config) -> None:
    """A recurrent cell is required: ``cell: ar`` has none."""
    models.cell_from_config(config.model)


def model(config: Config) -> models.Model:
    """Many-to-one: the configured cell reads ``(value, marker)`` pairs, a linear readout of ``h_T`` answers."""
    return models.many_to_one(models.cell_from_config(config.model), adding.INPUT_SIZE, adding.OUTPUT_SIZE)


def problem(config: Config) -> runner.Problem:
    """Data and model of ``config``, as the runner takes them."""
    seed, T = config.train.seed, config.data.seq_len
    net = model(config)
    sample = jax.jit(functools.partial(adding.sample, batch_size=config.train.batch_size, seq_len=T))

    def loss(params, batch, key):
        return adding.mse(net.apply(params, batch.xs, key), batch.ys), {}

    def metrics(params, batch):
        return {"loss": adding.mse(net.apply(params, batch.xs), batch.ys)}

    batch_at, eval_set = tasks.batches(sample, seed, config.train.eval_batches)
    return runner.Problem(
        init=net.init,
        loss=loss,
        metrics=metrics,
        batch=batch_at,
        eval_batches=eval_set,
        baseline=adding.baseline(T),
    )


def run(config: Config, folder: RunDir, *, resume: bool = False, interactive: bool | None = None) -> dict:
    """Train, evaluate and plot ``config`` into ``folder``; return the summary."""
    prob = problem(config)
    state, summary = runner.fit(config, prob, folder, resume=resume, interactive=interactive)
    batch = prob.eval_batches[0]
    predicted = jax.jit(model(config).apply)(state.params, batch.xs)
    plot_predictions(np.asarray(predicted), np.asarray(batch.ys), folder, config)
    return summary


def plot_predictions(predicted: np.ndarray, target: np.ndarray, folder: RunDir, config: Config) -> None:
    fig = Figure(figsize=(4.5, 4.5))
    fig.subplots_adjust(left=0.15, right=0.96, bottom=0.12, top=0.92)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.scatter(target.ravel(), predicted.ravel(), s=6, alpha=0.6)
    ax.plot([0, 2], [0, 2], "k--", lw=1)
    ax.axhline(1.0, color="grey", lw=0.8, ls=":", label="baseline answer 1")
    ax.set_xlabel("true sum")
    ax.set_ylabel("predicted sum")
    ax.set_title(f"{config.name}: {config.model.cell}, T = {config.data.seq_len}")
    ax.legend()
    plots.save(fig, folder.path / "predictions.png")
