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
underflowed float32 to 0 (their decay is then a bound, near -38 or below).
Analysis, on the first evaluation batch: ``predictions.npz`` (``predicted``
and ``target`` sums) and ``input_gradients.npz`` (``init`` and ``trained``:
the geometric mean over the batch of ``|dy/dx_t|`` for ``t = 1 .. T``, at
initialisation and after training), which the report draws.
"""

from __future__ import annotations

import functools
from typing import Annotated

import jax
import jax.numpy as jnp
import numpy as np
from pydantic import Field

from jaxrnn import gradient_flow, models
from jaxrnn.experiment.fields import Int
from jaxrnn.experiment.keys import Purpose, key
from jaxrnn.experiment.problem import Experiment, Problem, batches, needs_recurrent
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
    """Data, model, loss and metrics of ``config``, as the runner takes them."""
    seed, T = config.train.seed, config.data.seq_len
    net = model(config)
    init = functools.partial(net.init, input_size=adding.INPUT_SIZE)
    sample = jax.jit(functools.partial(adding.sample, batch_size=config.train.batch_size, seq_len=T))

    def loss(params, batch, *, key):
        return adding.mse(net.apply(params, batch.xs, key=key), batch.ys), {}

    def metrics(params, batch):
        norms = gradient_flow.input_gradient_norms(lambda xs: net.apply(params, xs), batch.xs)
        return {
            "loss": adding.mse(net.apply(params, batch.xs), batch.ys),
            "grad_decay": jnp.mean(gradient_flow.decay(norms)),
            "grad_underflow": jnp.mean(norms[0] == 0),
        }

    batch_at, eval_set = batches(sample, seed, config.train.eval_batches)

    def analysis(params, folder: RunDir) -> None:
        batch = eval_set[0]
        predicted = jax.jit(net.apply)(params, batch.xs)
        np.savez(folder.path / "predictions.npz", predicted=np.asarray(predicted), target=np.asarray(batch.ys))
        norms = jax.jit(lambda p: gradient_flow.input_gradient_norms(lambda xs: net.apply(p, xs), batch.xs))
        initial = init(key(seed, Purpose.INIT))
        np.savez(folder.path / "input_gradients.npz", init=_batch_geometric_mean(norms(initial)),
                 trained=_batch_geometric_mean(norms(params)))

    return Problem(init=init, loss=loss, metrics=metrics, batch=batch_at, eval_batches=eval_set,
                   baseline=adding.baseline(T), analysis=analysis, batch_axes=adding.Batch(xs=1, ys=0), sample=sample)


def _batch_geometric_mean(norms: jax.Array) -> np.ndarray:
    """``(T, B) -> (T,)``: the geometric mean over the batch; an underflowed 0 counts as 1e-30."""
    return np.exp(np.mean(np.log(np.asarray(norms, np.float64) + 1e-30), axis=1))


EXPERIMENT = Experiment(
    name="adding",
    data=Data,
    problem=problem,
    length=lambda config: config.data.seq_len,
    check=needs_recurrent,
    description="the adding problem: the sum of two marked values among T (Hochreiter & Schmidhuber 1997)",
)
