"""The copy (memory) task: recall 10 symbols after a delay of T blanks.

Arjovsky et al. (2016): the memoryless strategy (blanks, then uniform
guesses) scores the cross-entropy baseline ``10 ln 8 / (T + 20)``; a net
beats it only by carrying the symbols across the delay. Gated cells learn it
at moderate delays; a tanh RNN stays at the baseline.

Model: many-to-many, a linear readout of every ``h_t`` gives logits over
blank and the 8 symbols. Loss: mean cross-entropy over all ``T + 20`` steps.
Also reported: ``eval_accuracy``, the fraction of recalled symbols right
(its curve is the report's ``accuracy.png``).
"""

from __future__ import annotations

import functools

import jax

import jaxrnn
from jaxrnn import models
from jaxrnn.experiment.fields import PositiveInt
from jaxrnn.experiment.problem import Experiment, Problem, batches, needs_recurrent
from jaxrnn.experiment.schema import Config, Section
from jaxrnn.tasks import copying


class Data(Section):
    """``data`` section: ``length`` symbols from an alphabet of ``symbols``, recalled after ``delay`` (``T``) blanks."""

    delay: PositiveInt
    length: PositiveInt = 10
    symbols: PositiveInt = 8


def problem(config: Config) -> Problem:
    """Data, model, loss and metrics of ``config``, as the runner takes them."""
    seed, data = config.train.seed, config.data
    model = models.many_to_many(config.model.build(), copying.output_size(data.symbols))
    sample = jax.jit(functools.partial(
        copying.sample, batch_size=config.train.batch_size, delay=data.delay, length=data.length,
        symbols=data.symbols,
    ))

    def loss(params, batch, *, key):
        logits = jaxrnn.scan(model, params, batch.xs, key=key)[1]
        accuracy = copying.recall_accuracy(logits, batch.ys, data.length)
        return copying.cross_entropy(logits, batch.ys), {"accuracy": accuracy}

    def metrics(params, batch):
        logits = jaxrnn.scan(model, params, batch.xs)[1]
        return {"loss": copying.cross_entropy(logits, batch.ys),
                "accuracy": copying.recall_accuracy(logits, batch.ys, data.length)}

    batch_at, eval_set = batches(sample, seed, config.train.eval_batches)
    return Problem(
        init=functools.partial(model.init, input_size=copying.input_size(data.symbols)),
        loss=loss,
        metrics=metrics,
        batch=batch_at,
        eval_batches=eval_set,
        baseline=copying.baseline(data.delay, data.length, data.symbols),
        batch_axes=copying.Batch(xs=1, ys=1),
        sample=sample,
    )


EXPERIMENT = Experiment(
    name="copying",
    data=Data,
    problem=problem,
    length=lambda config: config.data.delay,
    check=needs_recurrent,
    description="the copy task: recall 10 symbols after a delay of T blanks (Arjovsky et al. 2016)",
)
