"""The copy (memory) task: recall 10 symbols after a delay of T blanks.

Arjovsky et al. (2016): the memoryless strategy (blanks, then uniform
guesses) scores the cross-entropy baseline ``10 ln 8 / (T + 20)``; a net
beats it only by carrying the symbols across the delay. Gated cells learn it
at moderate delays; a tanh RNN stays at the baseline.

Model: many-to-many, a linear readout of every ``h_t`` gives logits over
blank and the 8 symbols. Loss: mean cross-entropy over all ``T + 20`` steps.
Also reported: ``eval_accuracy``, the fraction of recalled symbols right.
Plots: loss curves (by the runner) and ``accuracy.png``.
"""

from __future__ import annotations

import dataclasses
import functools

import jax

from jaxrnn import models, plots, runner, tasks
from jaxrnn.config import Config
from jaxrnn.rundir import RunDir
from jaxrnn.tasks import copying


def _positive(x):
    return x >= 1


@dataclasses.dataclass(frozen=True)
class Data:
    """``data`` section: ``seq_len`` is the delay ``T``; ``length`` symbols from an alphabet of ``symbols``."""

    seq_len: int = dataclasses.field(metadata={"check": _positive, "allowed": "a positive integer"})
    length: int = dataclasses.field(default=10, metadata={"check": _positive, "allowed": "a positive integer"})
    symbols: int = dataclasses.field(default=8, metadata={"check": _positive, "allowed": "a positive integer"})


def check(config: Config) -> None:
    """A recurrent cell is required: ``cell: ar`` has none."""
    models.cell_from_config(config.model)


def problem(config: Config) -> runner.Problem:
    """Data and model of ``config``, as the runner takes them."""
    seed, data = config.train.seed, config.data
    model = models.many_to_many(
        models.cell_from_config(config.model), copying.input_size(data.symbols), copying.output_size(data.symbols)
    )
    sample = jax.jit(functools.partial(
        copying.sample, batch_size=config.train.batch_size, delay=data.seq_len, length=data.length,
        symbols=data.symbols,
    ))

    def loss(params, batch, key):
        logits = model.apply(params, batch.xs, key)
        return copying.cross_entropy(logits, batch.ys), {"accuracy": copying.recall_accuracy(logits, batch.ys, data.length)}

    def metrics(params, batch):
        logits = model.apply(params, batch.xs)
        return {"loss": copying.cross_entropy(logits, batch.ys),
                "accuracy": copying.recall_accuracy(logits, batch.ys, data.length)}

    batch_at, eval_set = tasks.batches(sample, seed, config.train.eval_batches)
    return runner.Problem(
        init=model.init,
        loss=loss,
        metrics=metrics,
        batch=batch_at,
        eval_batches=eval_set,
        baseline=copying.baseline(data.seq_len, data.length, data.symbols),
    )


def run(config: Config, folder: RunDir, *, resume: bool = False, interactive: bool | None = None) -> dict:
    """Train, evaluate and plot ``config`` into ``folder``; return the summary."""
    _, summary = runner.fit(config, problem(config), folder, resume=resume, interactive=interactive)
    plots.metric_curve(folder.records(), "eval_accuracy", folder.path / "accuracy.png",
                       title=f"{config.name}: recalled symbols right")
    return summary
