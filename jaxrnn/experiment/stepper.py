"""The update a run applies at each step: the optimiser's step, the state a checkpoint holds, where batches go.

A :class:`Stepper` is what the runner's loop calls once per step::

    saved, metrics = stepper(saved, step)   # the batch at ``step``, placed; one update; its metrics fetched

``saved`` is what a checkpoint holds: the :class:`~jaxrnn.training.TrainState`,
or ``(state, carry)`` for a problem whose state runs on from batch to batch
(:func:`jaxrnn.training.carried_step`). With ``train.devices`` above 1 the
state sits whole on every device and each batch (and the carry) is split
across them (:mod:`jaxrnn.experiment.data_parallel`). The dropout key of a
step is a pure function of ``(train.seed, step)``, so a resumed run draws
the keys an uninterrupted one does.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import optax

from jaxrnn import training
from jaxrnn.experiment import data_parallel
from jaxrnn.experiment.keys import Purpose, key
from jaxrnn.experiment.problem import Problem
from jaxrnn.experiment.schema import Config


class Stepper(NamedTuple):
    """One training step of a problem, as the runner applies it.

    Attributes:
      saved: the state before the first step, on the devices.
      update: ``update(saved, batch, dropout_key) -> (saved, metrics)``, jit-compiled.
      state_of: the train state in a ``saved``.
      batch: ``batch(step)``: the problem's batch at ``step``, on the devices.
      dropout_key: ``dropout_key(step)``: the step's dropout key, or ``None``.
      devices: how many devices the batches are split across.
    """

    saved: Any
    update: Callable[[Any, Any, jax.Array | None], tuple[Any, dict[str, Any]]]
    state_of: Callable[[Any], training.TrainState]
    batch: Callable[[int], Any]
    dropout_key: Callable[[int], jax.Array | None]
    devices: int

    def __call__(self, saved: Any, step: int) -> tuple[Any, dict[str, Any]]:
        """Training step ``step + 1``: one update on the batch at ``step``; the new state, the metrics on the host."""
        saved, metrics = self.update(saved, self.batch(step), self.dropout_key(step))
        return saved, jax.device_get(metrics)


def build(config: Config, problem: Problem) -> Stepper:
    """The optimiser's update of ``problem`` as ``config`` sets it, its initial state placed on the devices.

    Raises:
      ConfigError: ``train.devices`` cannot split the problem's batches.
    """
    saved, tx, learning_rate = initial(config, problem)
    if problem.carry is None:
        step = training.train_step(problem.loss, tx, learning_rate)

        def update(saved, batch, dropout_key):
            return step(saved, batch, key=dropout_key)

        def state_of(saved):
            return saved
    else:
        carried = training.carried_step(problem.loss, tx, learning_rate)

        def update(saved, batch, dropout_key):
            state, carry, metrics = carried(*saved, batch, key=dropout_key)
            return (state, carry), metrics

        def state_of(saved):
            return saved[0]
    saved, place, devices = _placement(config, problem, saved)
    dropout = getattr(config.model, "dropout", 0.0) > 0 or problem.dropout

    def batch(step):
        return place(problem.batch(step))

    def dropout_key(step):
        return key(config.train.seed, Purpose.DROPOUT, step) if dropout else None

    return Stepper(saved, update, state_of, batch, dropout_key, devices)


def initial(config: Config, problem: Problem) -> tuple[Any, optax.GradientTransformation, Any]:
    """``(saved, tx, learning_rate)``: what a checkpoint holds before the first step, and the optimiser.

    ``saved`` is the train state of the problem's initial params (drawn with
    the key of ``(train.seed, INIT)``), with its initial carry beside it when
    its state runs on between batches; on the host.
    """
    tx, learning_rate = config.optim.build(config.train.steps)
    state = training.init(problem.init(key(config.train.seed, Purpose.INIT)), tx)
    return (state if problem.carry is None else (state, problem.carry())), tx, learning_rate


def _placement(config: Config, problem: Problem, saved: Any) -> tuple[Any, Callable[[Any], Any], int]:
    """``(saved, place, devices)``: the state, and a function that puts a batch, on the devices of ``train.devices``.

    Data-parallel (more than one device): the train state whole on every
    device, each batch (and the carry) split across them along its batch axis.
    """
    mesh = data_parallel.mesh(config.train.devices)
    if mesh is None:
        return saved, _unplaced, 1
    data_parallel.check(problem.batch_axes, config.train.batch_size, mesh, config.experiment)

    def place(batch):
        return data_parallel.split(batch, problem.batch_axes, mesh)

    if problem.carry is None:
        saved = data_parallel.replicate(saved, mesh)
    else:
        saved = (data_parallel.replicate(saved[0], mesh), data_parallel.split(saved[1], 0, mesh))
    return saved, place, int(mesh.devices.size)


def _unplaced(batch: Any) -> Any:
    """One device: a batch stays where the problem made it."""
    return batch
