"""Data-parallel training through ``jax.sharding``: one batch split across devices, the state on all.

``train.devices: N`` (or ``all``) puts a one-axis :class:`~jax.sharding.Mesh`
over the first ``N`` devices, named ``"data"``. Each training batch is placed
with its examples split along that axis (each leaf's batch axis as the
experiment's :attr:`~jaxrnn.experiment.problem.Problem.batch_axes` says), the
parameters and optimiser state replicated on every device, and a carry that
runs on between batches split like the batch (its leading axis). The loss is
computed on each device's share of the batch and averaged across the devices
(:func:`per_device`), so each device computes the gradient of its share and
XLA sums them once, after the backward pass -- the same update as on one
device, up to the order of floating-point sums. A model with dropout is the
exception: its loss is left whole to XLA's partitioning, so that its masks
are drawn for the whole batch as on one device (XLA then sums the weights'
gradient inside the backward loop, a collective per time step).

In a job of several processes (:mod:`jaxrnn.experiment.job`) the mesh holds
every device of every process (``jax.devices()`` lists them all once the job
has joined): each process places its own devices' share of a batch it drew
whole, and the update is one program over all of them.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxrnn.experiment.schema import ConfigError

AXIS = "data"


def mesh(devices: int | str) -> Mesh | None:
    """The mesh of ``train.devices`` (``"all"`` or a count); ``None`` for one device (nothing to split).

    Raises:
      ConfigError: more devices asked for than are visible.
    """
    visible = jax.devices()
    count = len(visible) if devices == "all" else int(devices)
    processes = jax.process_count()
    if processes > 1 and count != len(visible):
        raise ConfigError(f"train.devices: {devices}, but this job's {processes} processes hold {len(visible)} "
                          f"{visible[0].platform} devices and a job trains on all of them: "
                          f"use all (or {len(visible)})")
    if count > len(visible):
        raise ConfigError(f"train.devices: {count} asked for, but {len(visible)} {visible[0].platform} "
                          f"device{'s are' if len(visible) > 1 else ' is'} visible; "
                          f"use 'all' or at most {len(visible)}")
    if count == 1:
        return None
    return Mesh(np.asarray(visible[:count]), (AXIS,))


def check(batch_axes: Any, batch_size: int, mesh: Mesh, experiment: str) -> None:
    """That the experiment's batches can be split and ``batch_size`` divides across the mesh.

    Raises:
      ConfigError: naming the key and what would work.
    """
    count = mesh.devices.size
    if batch_axes is None:
        raise ConfigError(f"train.devices: the {experiment} experiment draws its batches inside the training step, "
                          f"so they cannot be split across devices; use train.devices: 1")
    if batch_size % count:
        processes = jax.process_count()
        of = f" of {processes} processes" if processes > 1 else ""
        raise ConfigError(f"train.batch_size: {batch_size} does not divide across {count} devices{of} "
                          f"(train.devices); use a multiple of {count}")


def per_device(loss: Callable, mesh: Mesh, batch_axes: Any, carried: bool = False) -> Callable:
    """``loss`` on each device's share of the batch, its value and metrics averaged across ``mesh``.

    ``loss(params, batch, *, key) -> (value, metrics)``, or with ``carried``
    ``loss(params, carry, batch, *, key) -> (value, (carry, metrics))`` whose
    carry is split along its leading axis like the batch. The value and the
    metrics must be means over the batch's examples, each weighing the same:
    with equal shares, the mean of the devices' means is the whole batch's, and
    so is the gradient of it. Partitioning the whole-batch loss itself, XLA
    would sum the weights' gradient across the devices inside the backward
    loop, once per time step; here each device runs its own loop and the sum
    comes once, at the end. The dropout key is folded with the device's index,
    so that each share draws masks of its own (other masks than one device's
    draw for the whole batch).
    """
    def spec(axis):
        return PartitionSpec() if axis is None else PartitionSpec(*([None] * axis), AXIS)

    shares = jax.tree_util.tree_map(spec, batch_axes, is_leaf=lambda a: a is None)
    whole, split_ = PartitionSpec(), PartitionSpec(AXIS)

    def local_key(key):
        return None if key is None else jax.random.fold_in(key, jax.lax.axis_index(AXIS))

    def mean(tree):
        return jax.tree_util.tree_map(lambda v: jax.lax.pmean(v, AXIS), tree)

    if not carried:
        def local(params, batch, key):
            value, metrics = loss(params, batch, key=local_key(key))
            return mean(value), mean(metrics)

        def sharded(params, batch, *, key=None):
            return _shard_map(local, mesh, (whole, shares, whole), (whole, whole))(params, batch, key)

        return sharded

    def local_carried(params, carry, batch, key):
        value, (carry, metrics) = loss(params, carry, batch, key=local_key(key))
        return mean(value), (carry, mean(metrics))

    def sharded_carried(params, carry, batch, *, key=None):
        return _shard_map(local_carried, mesh, (whole, split_, shares, whole),
                          (whole, (split_, whole)))(params, carry, batch, key)

    return sharded_carried


def _shard_map(f: Callable, mesh: Mesh, in_specs: Any, out_specs: Any) -> Callable:
    """``jax.shard_map`` without its replication check (a scan whose carry starts unsplit would fail it)."""
    if hasattr(jax, "shard_map"):
        return jax.shard_map(f, mesh=mesh, in_specs=in_specs, out_specs=out_specs, check_vma=False)
    from jax.experimental.shard_map import shard_map  # JAX before 0.7

    return shard_map(f, mesh, in_specs=in_specs, out_specs=out_specs, check_rep=False)


def split(tree: Any, axes: Any, mesh: Mesh) -> Any:
    """``tree`` on ``mesh``, each leaf split along its axis in ``axes``.

    ``axes`` is a prefix of ``tree``; ``None`` puts a leaf whole on every device.

    Raises:
      ValueError: ``axes`` is not a prefix of ``tree``'s structure (an experiment's ``batch_axes`` that does
        not match its batches).
    """
    try:
        jax.tree_util.tree_structure(axes, is_leaf=lambda a: a is None).flatten_up_to(tree)
    except ValueError:
        raise ValueError(f"batch_axes {axes!r} do not match the batch's structure "
                         f"{jax.tree_util.tree_structure(tree)}") from None

    def place(axis, subtree):
        spec = PartitionSpec() if axis is None else PartitionSpec(*([None] * axis), AXIS)
        return _put(subtree, NamedSharding(mesh, spec))

    return jax.tree_util.tree_map(place, axes, tree, is_leaf=lambda a: a is None)


def replicate(tree: Any, mesh: Mesh) -> Any:
    """Every leaf of ``tree`` whole on every device of ``mesh``."""
    return _put(tree, NamedSharding(mesh, PartitionSpec()))


def _put(tree: Any, sharding: NamedSharding) -> Any:
    """``tree`` placed as ``sharding`` says. In a job, each process holds the whole tree (drawn from the same
    keys) and places its own devices' parts of it: no check across the processes that the values agree, which
    ``jax.device_put`` makes on every call (a collective per batch)."""
    if jax.process_count() == 1:
        return jax.device_put(tree, sharding)

    def put(leaf):
        parts = sharding.addressable_devices_indices_map(np.shape(leaf))
        return jax.make_array_from_single_device_arrays(
            np.shape(leaf), sharding, [jax.device_put(leaf[index], device) for device, index in parts.items()])

    return jax.tree_util.tree_map(put, tree)
