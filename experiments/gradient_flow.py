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
evaluation MSE is below ``data.solved_below``. Analysis: ``state_gradients.npz``
(``k``, and the geometric means over the sequences of ``||J_k||``, ``init`` and
``trained``), beside the adding experiment's, which the report draws.

The configs ``gradient_flow_*`` put the tanh RNN at spectral radius 0.5, 1.0
and 1.5 (vanishing, edge, exploding), the IRNN, the LSTM and the GRU side by
side, and the exploding RNN once more without gradient clipping.
"""

from __future__ import annotations

from typing import Annotated

import jax
import numpy as np
from pydantic import Field

from jaxrnn import gradient_flow
from jaxrnn.experiment.fields import Int, PositiveFloat, PositiveInt
from jaxrnn.experiment.keys import Purpose, key
from jaxrnn.experiment.problem import Experiment, Problem, needs_recurrent
from jaxrnn.experiment.rundir import RunDir
from jaxrnn.experiment.schema import Config, Section
from jaxrnn.experiments import adding


class Data(Section):
    """``data`` section: the adding problem's ``seq_len`` (``T``), the sequences analysed, the bar for "solved"."""

    seq_len: Annotated[Int, Field(ge=2)] = 100
    analysis_sequences: PositiveInt = 8
    solved_below: PositiveFloat = 0.01


def problem(config: Config) -> Problem:
    """The adding problem's, with the state-Jacobian analysis after its own."""
    base = adding.problem(config)
    cell = config.model.build()
    xs = base.eval_batches[0].xs[:, : config.data.analysis_sequences]
    norms = jax.jit(lambda params: gradient_flow.state_gradient_norms(cell, params["cell"], xs))

    def analysis(params, folder: RunDir) -> dict[str, float]:
        base.analysis(params, folder)
        curves = {"init": norms(base.init(key(config.train.seed, Purpose.INIT))), "trained": norms(params)}
        means = {name: geometric_mean(n) for name, n in curves.items()}
        np.savez(folder.path / "state_gradients.npz", k=np.arange(len(means["init"])), **means)
        final = folder.read_summary()["metrics"]["eval_loss"]
        return {"eval_decay_rate_init": float(gradient_flow.decay_rate(curves["init"])),
                "eval_decay_rate": float(gradient_flow.decay_rate(curves["trained"])),
                "eval_solved": float(final < config.data.solved_below)}

    return base._replace(analysis=analysis)


def geometric_mean(norms: jax.Array) -> np.ndarray:
    """Over the sequences (axis 1); an underflowed 0 stays 0."""
    logs = np.log(np.maximum(np.asarray(norms, np.float64), 1e-300))
    return np.where(np.all(np.asarray(norms) > 0, axis=1), np.exp(logs.mean(axis=1)), 0.0)


EXPERIMENT = Experiment(
    name="gradient_flow",
    data=Data,
    problem=problem,
    length=lambda config: config.data.seq_len,
    check=needs_recurrent,
    description="the product of Jacobians through time, before and after training on the adding problem",
)
