"""The update a run applies at each step: the optimiser's step, the state a checkpoint holds, where batches go.

A :class:`Stepper` is what the runner's loop calls once per step::

    saved, metrics = stepper(saved, step)   # the batch at ``step``, placed; one update; its metrics fetched

``saved`` is what a checkpoint holds: the :class:`~jaxrnn.training.TrainState`,
or ``(state, carry)`` for a problem whose state runs on from batch to batch
(:func:`jaxrnn.training.carried_step`). With more than one replica (seeds,
sweep values: :mod:`jaxrnn.experiment.replicas`) every leaf of it has a
leading replica axis, the update is ``jax.vmap``-ed over that axis, and
``saved`` is ``(stacked, halted)``: a replica whose step is not finite stops
there (:class:`~jaxrnn.experiment.replicas.Halted`) while the others go on.
With ``train.devices`` above 1 the state sits whole on every device and each
batch (and the carry) is split across them along its batch axis
(:mod:`jaxrnn.experiment.data_parallel`). The dropout key of a step is a pure
function of ``(train.seed, step)``, so a resumed run draws the keys an
uninterrupted one does.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxrnn import training
from jaxrnn.experiment import data_parallel, optim, replicas
from jaxrnn.experiment.keys import Purpose, key
from jaxrnn.experiment.problem import Problem
from jaxrnn.experiment.replicas import Halted, Replica
from jaxrnn.experiment.schema import Config


class Stepper(NamedTuple):
    """One training step of a problem's replicas, as the runner applies it.

    Attributes:
      saved: the state before the first step, on the devices.
      update: ``update(saved, batch, dropout_key) -> (saved, metrics)``, jit-compiled.
      state_of: the train state in a ``saved`` (stacked, with more than one replica).
      batch: ``batch(step)``: the problem's batch at ``step`` (every replica's, stacked), on the devices.
      dropout_key: ``dropout_key(step)``: the step's dropout key (one per replica), or ``None``.
      devices: how many devices the batches are split across.
      count: how many replicas; with one, nothing has a replica axis.
    """

    saved: Any
    update: Callable[[Any, Any, jax.Array | None], tuple[Any, dict[str, Any]]]
    state_of: Callable[[Any], training.TrainState]
    batch: Callable[[int], Any]
    dropout_key: Callable[[int], jax.Array | None]
    devices: int
    count: int = 1

    def __call__(self, saved: Any, step: int) -> tuple[Any, dict[str, np.ndarray]]:
        """Training step ``step + 1``: one update on the batch at ``step``; the new state, the metrics on the host.

        The metrics have a leading replica axis whatever the count; with more
        than one replica, ``running`` says which replicas took the step.
        """
        saved, metrics = self.update(saved, self.batch(step), self.dropout_key(step))
        metrics = jax.device_get(metrics)
        if self.count == 1:
            return saved, {name: np.asarray(value)[None] for name, value in metrics.items()}
        return saved, {name: np.asarray(value) for name, value in metrics.items()}

    def halted(self, saved: Any) -> Halted | None:
        """Where each replica stopped, on the host; ``None`` for one replica (a single run stops at once)."""
        return None if self.count == 1 else jax.device_get(saved[1])


def build(config: Config, problems: Sequence[Problem], members: Sequence[Replica] | None = None,
          loop: str | None = None) -> Stepper:
    """The optimiser's update of ``problems`` (one per replica) as ``config`` sets it, placed on the devices.

    ``members``: the replicas the problems belong to (:func:`jaxrnn.experiment.replicas.of`); one problem
    needs none. ``loop``: how the update goes over the replicas, ``"vmap"`` or ``"map"``
    (default: :func:`replica_loop`).

    Raises:
      ConfigError: ``train.devices`` cannot split the problem's batches.
    """
    members = list(members or [])
    count = len(problems)
    first = problems[0]
    saved, tx, learning_rate = initial(config, problems, members)
    mesh = data_parallel.mesh(config.train.devices)
    dropout = getattr(config.model, "dropout", 0.0) > 0 or first.dropout
    loss = first.loss
    if mesh is not None:
        data_parallel.check(first.batch_axes, config.train.batch_size, mesh, config.experiment)
        if not dropout:  # each device's share, the gradients summed once; with dropout, XLA partitions the
            # whole batch's loss, so that the masks are the one-device run's
            loss = data_parallel.per_device(loss, mesh, first.batch_axes, carried=first.carry is not None)
    if first.carry is None:
        step = training.train_step(loss, tx, learning_rate, jit=False)

        def inner(saved, batch, dropout_key):
            return step(saved, batch, key=dropout_key)

        def state_of(saved):
            return saved if count == 1 else saved[0]
    else:
        carried = training.carried_step(loss, tx, learning_rate, jit=False)

        def inner(saved, batch, dropout_key):
            state, carry, metrics = carried(*saved, batch, key=dropout_key)
            return (state, carry), metrics

        def state_of(saved):
            return saved[0] if count == 1 else saved[0][0]
    if learning_rate is None:  # swept optimiser values: the rate each replica used, from its own hyperparameters
        inner = _reporting_rate(inner, _state_of_one if first.carry is None else _first, config)
    update = jax.jit(inner if count == 1 else _stacked(inner, state_of, loop or replica_loop()))
    saved, place, devices = _placement(mesh, first, saved, count)
    seeds = [m.seed for m in members] or [config.train.seed]

    if count == 1:
        def batch(step):
            return place(first.batch(step))

        def dropout_key(step):
            return key(seeds[0], Purpose.DROPOUT, step) if dropout else None
    else:
        # Each replica's key of (its seed, purpose, step): the keys of (seed, purpose) once, the step folded in
        # compiled -- the bits of keys.key's.
        at_step = jax.jit(jax.vmap(jax.random.fold_in, in_axes=(0, None)))
        train_keys = jnp.stack([key(s, Purpose.TRAIN) for s in seeds])
        dropout_keys = jnp.stack([key(s, Purpose.DROPOUT) for s in seeds])
        if all(p.sample is not None for p in problems):  # one compiled draw of every replica's batch
            draw = jax.jit(lambda keys, step: jax.vmap(first.sample)(at_step(keys, step)))

            def batch(step):
                return place(draw(train_keys, step))
        else:
            def batch(step):
                return place(replicas.stack([p.batch(step) for p in problems]))

        def dropout_key(step):
            return at_step(dropout_keys, step) if dropout else None

    return Stepper(saved, update, state_of, batch, dropout_key, devices, count)


def _state_of_one(saved: Any) -> training.TrainState:
    return saved


def _first(saved: Any) -> training.TrainState:
    return saved[0]


# How the update goes over stacked replicas, by backend; the same function either way. vmap batches each
# operation over the replicas (one wide kernel: what a GPU wants); lax.map runs the one-replica update once
# per replica inside the compiled step, with the kernels of a single run, which XLA:CPU runs faster than its
# batched matrix products (benchmarks/seeds.py).
REPLICA_LOOPS = ("vmap", "map")


def replica_loop(backend: str | None = None) -> str:
    """``"map"`` on the CPU, ``"vmap"`` on a GPU or TPU: how :func:`build` steps replicas by default."""
    return "map" if (backend or jax.default_backend()) == "cpu" else "vmap"


def _stacked(inner: Callable, state_of: Callable, loop: str) -> Callable:
    """The update of stacked replicas: ``inner`` over each (``loop``); a replica that stops (not finite) keeps
    its state."""
    if loop not in REPLICA_LOOPS:
        raise ValueError(f"loop: expected one of {', '.join(REPLICA_LOOPS)}, got {loop!r}")

    def each(stacked, batch, dropout_key):
        if loop == "vmap":
            return jax.vmap(inner)(stacked, batch, dropout_key)
        return jax.lax.map(lambda args: inner(*args), (stacked, batch, dropout_key))

    def update(saved, batch, dropout_key):
        stacked, halted = saved
        new, metrics = each(stacked, batch, dropout_key)
        running = halted.step == 0
        took = running & metrics["finite"]
        stops = running & ~metrics["finite"]

        def keep(n, o):
            return jnp.where(took.reshape(took.shape + (1,) * (n.ndim - 1)), n, o)

        new = jax.tree_util.tree_map(keep, new, stacked)
        step = state_of((stacked, halted)).step + 1
        halted = Halted(jnp.where(stops, step, halted.step),
                        jnp.where(stops, metrics["loss"], halted.loss).astype(jnp.float32),
                        jnp.where(stops, metrics["grad_norm"], halted.grad_norm).astype(jnp.float32))
        metrics = {**metrics, "finite": ~stops, "running": took}
        return (new, halted), metrics

    return update


def _reporting_rate(inner: Callable, state_of: Callable, config: Config) -> Callable:
    """``inner`` with ``metrics["lr"]``: the rate of the injected hyperparameters at the step taken."""
    shape = optim.schedule(config.optim.schedule, 1.0, config.train.steps, config.optim.warmup_steps)

    def update(saved, batch, dropout_key):
        state = state_of(saved)
        rate = state.opt_state.hyperparams["learning_rate"] * shape(state.step)
        saved, metrics = inner(saved, batch, dropout_key)
        return saved, {**metrics, "lr": rate}

    return update


def initial(config: Config, problems: Sequence[Problem], members: Sequence[Replica] = ()
            ) -> tuple[Any, optax.GradientTransformation, Any]:
    """``(saved, tx, learning_rate)``: what a checkpoint holds before the first step, and the optimiser.

    ``saved`` is the train state of each replica's initial params (drawn with
    the key of ``(its train.seed, INIT)``), with its initial carry beside it
    when its state runs on between batches; stacked, with where the replicas
    halted, for more than one. ``learning_rate`` is ``None`` when a sweep puts
    optimiser values on the replica axis (each replica's are in its state).
    """
    configs = [m.config for m in members] or [config]
    swept = {k for k in (config.sweep or {}) if k.startswith("optim.") and k in replicas.IN_STEP}
    if swept:  # the update reads each replica's values from its state; the first's give the structure
        txs = [_injected(c) for c in configs]
        tx, learning_rate = txs[0], None
    else:
        tx, learning_rate = config.optim.build(config.train.steps)
        txs = [tx] * len(configs)
    states = []
    for c, t, problem in zip(configs, txs, problems):
        state = training.init(problem.init(key(c.train.seed, Purpose.INIT)), t)
        states.append(state if problem.carry is None else (state, problem.carry()))
    if len(states) == 1:
        return states[0], tx, learning_rate
    return (replicas.stack(states), Halted.none(len(states))), tx, learning_rate


def _injected(config: Config) -> optax.GradientTransformation:
    """The optimiser of ``config`` with its rate, decay and clipping as state (``optax.inject_hyperparams``).

    ``lr_t = learning_rate * shape(t)``, ``shape`` the schedule of a peak rate of 1.
    """
    o = config.optim
    shape = optim.schedule(o.schedule, 1.0, config.train.steps, o.warmup_steps)

    def make(learning_rate, weight_decay, clip_norm):
        return optim.optimizer(o.name, lambda count: learning_rate * shape(count), clip_norm=clip_norm,
                               momentum=o.momentum, weight_decay=weight_decay)

    hyper = {"learning_rate": o.learning_rate, "weight_decay": o.weight_decay, "clip_norm": o.clip_norm}
    return optax.inject_hyperparams(make)(**hyper)


def _placement(mesh: Any, problem: Problem, saved: Any, count: int) -> tuple[Any, Callable[[Any], Any], int]:
    """``(saved, place, devices)``: the state, and a function that puts a batch, on the devices of ``mesh``
    (``train.devices``; ``None``: one device).

    Data-parallel (more than one device): the train state whole on every
    device, each batch (and the carry) split across them along its batch axis
    (one further along for stacked replicas).
    """
    if mesh is None:
        return saved, _unplaced, 1
    shift = 0 if count == 1 else 1
    axes = jax.tree_util.tree_map(lambda a: a + shift, problem.batch_axes)

    def place(batch):
        return data_parallel.split(batch, axes, mesh)

    stacked = saved if count == 1 else saved[0]
    if problem.carry is None:
        stacked = data_parallel.replicate(stacked, mesh)
    else:
        stacked = (data_parallel.replicate(stacked[0], mesh), data_parallel.split(stacked[1], shift, mesh))
    saved = stacked if count == 1 else (stacked, data_parallel.replicate(saved[1], mesh))
    return saved, place, int(mesh.devices.size)


def _unplaced(batch: Any) -> Any:
    """One device: a batch stays where the problem made it."""
    return batch
