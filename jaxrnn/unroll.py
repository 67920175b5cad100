"""The time loop: one function, :func:`scan`, lifts any cell over a sequence."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxrnn.cells.base import Carry, Cell, Params, SplitStep
from jaxrnn.deep import Stacked, add_residual, check_layers, dropout


def scan(
    cell: Cell,
    params: Params,
    xs: jax.Array,
    carry: Carry | None = None,
    *,
    reverse: bool = False,
    lengths: jax.Array | None = None,
    unroll: int | bool = 1,
    remat: bool = False,
    key: jax.Array | None = None,
) -> tuple[Carry, jax.Array]:
    """Run ``cell`` over the time axis of ``xs`` with ``lax.scan``.

    Args:
      cell: the :class:`~jaxrnn.Cell` to run.
      params: its parameters.
      xs: inputs of shape ``(T, *batch, I)``: time is axis 0, features the
        last axis, and any axes between are batch axes.
      carry: the initial carry, leaves of shape ``(*batch, H)``; ``None``
        starts from ``cell.initial_carry(batch)`` (zeros, float32 or wider).
      reverse: run from ``t = T-1`` down to ``0``. Outputs stay in input order:
        ``ys[t]`` is the output after reading ``xs[t]``.
      lengths: integer array of shape ``batch``: sequence ``b`` is
        ``xs[:lengths[b], b]`` and the rest is padding. Padding steps leave the
        carry unchanged and output zeros, so the final carry is the one at the
        sequence's true end (with ``reverse``, each sequence is read backwards
        from its own last element).
      unroll: steps per loop iteration (``lax.scan``'s ``unroll``).
      remat: recompute each step in the backward pass instead of storing its
        intermediates (``jax.checkpoint``); memory ``O(T * carry)`` instead of
        ``O(T * activations)``, for long sequences.
      key: random key for the dropout of a :func:`~jaxrnn.stack`.

    Returns:
      ``(final_carry, ys)``, ``ys`` of shape ``(T, *batch, O)``.

    Cells whose step is a :class:`~jaxrnn.cells.base.SplitStep` have their
    input projection computed for all steps at once, before the loop; a
    :func:`~jaxrnn.stack` runs one layer at a time over the whole sequence.
    Both compute exactly the per-step function.
    """
    xs = jnp.asarray(xs)
    if xs.ndim < 2:
        raise ValueError(f"expected xs of shape (time, ..., features), got shape {xs.shape}")
    if not jnp.issubdtype(xs.dtype, jnp.floating):
        raise TypeError(f"expected floating-point xs, got dtype {xs.dtype}")
    batch_shape = xs.shape[1:-1]
    if lengths is not None:
        lengths = check_lengths(lengths, batch_shape, xs.shape[0])
    if carry is None:
        carry = cell.initial_carry(batch_shape, jnp.promote_types(xs.dtype, jnp.float32))
    options = dict(reverse=reverse, lengths=lengths, unroll=unroll, remat=remat)

    step = cell.step
    if isinstance(step, Stacked):
        return _scan_layers(step, params, xs, carry, key, options)
    if key is not None:
        raise ValueError("key is only used by the dropout of jaxrnn.stack; this cell draws no random numbers")
    if isinstance(step, SplitStep):
        return _masked_scan(step.recur, params, step.project(params, xs), carry, **options)
    return _masked_scan(step, params, xs, carry, **options)


def _scan_layers(stacked: Stacked, params, xs, carry, key, options):
    """A stack, one layer at a time over the whole sequence (same function as per step)."""
    check_layers(params, carry, len(stacked.cells))
    final = []
    for layer, (cell, p, c) in enumerate(zip(stacked.cells, params, carry)):
        inputs = dropout(key, stacked.dropout, layer, xs, time_axis=True) if layer > 0 else xs
        c, ys = scan(cell, p, inputs, c, **options)
        xs = add_residual(inputs, ys) if stacked.residual and layer > 0 else ys
        final.append(c)
    return tuple(final), xs


def _masked_scan(body, params, xs, carry, *, reverse, lengths, unroll, remat):
    """``lax.scan`` of ``body(params, carry, x)``, freezing carries past ``lengths``."""

    def step(carry, inputs):
        t, x = inputs
        new_carry, y = body(params, carry, x)
        if lengths is not None:
            valid = t < lengths
            new_carry = jax.tree_util.tree_map(lambda n, o: jnp.where(_expand(valid, n), n, o), new_carry, carry)
            y = jnp.where(_expand(valid, y), y, jnp.zeros_like(y))
        return new_carry, y

    if remat:
        step = jax.checkpoint(step)
    time = jnp.arange(xs.shape[0], dtype=jnp.int32)
    return lax.scan(step, carry, (time, xs), reverse=reverse, unroll=unroll)


def _expand(mask: jax.Array, like: jax.Array) -> jax.Array:
    """Append axes to a batch-shaped mask so it broadcasts against ``like``."""
    return mask.reshape(mask.shape + (1,) * (like.ndim - mask.ndim))


def check_lengths(lengths: Any, batch_shape: tuple[int, ...], time: int) -> jax.Array:
    """Validate ``lengths`` against the batch shape and, when its values are known, against ``[0, T]``."""
    lengths = jnp.asarray(lengths)
    if lengths.shape != tuple(batch_shape):
        raise ValueError(f"expected lengths of shape {tuple(batch_shape)} (the batch axes of xs), got {lengths.shape}")
    if not jnp.issubdtype(lengths.dtype, jnp.integer):
        raise TypeError(f"expected integer lengths, got dtype {lengths.dtype}")
    try:
        values = np.asarray(lengths)
    except jax.errors.TracerArrayConversionError:
        values = None  # traced under jit: the values are not known yet
    if values is not None:
        if values.size and (values.min() < 0 or values.max() > time):
            raise ValueError(f"expected lengths in [0, {time}] (the time axis of xs), got values from "
                             f"{values.min()} to {values.max()}")
    return lengths
