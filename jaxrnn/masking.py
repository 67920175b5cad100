"""Padding: which steps of a batch are real, and how a padded step leaves the state alone.

A batch of sequences of different lengths is padded to the longest, ``T``;
``valid[t, b] = t < lengths[b]``. On a padded step the carry passes through
unchanged and the output is zero, so the final carry of every sequence is the
one at its true end.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

Carry = Any  # a pytree of arrays (jaxrnn.parts.Carry); masking needs nothing else of the parts


def mask(ok: jax.Array | None, new_carry: Carry, carry: Carry, y: jax.Array) -> tuple[Carry, jax.Array]:
    """Keep ``carry`` and zero ``y`` where ``ok`` (batch-shaped, or time and batch) is false."""
    if ok is None:
        return new_carry, y
    new_carry = jax.tree_util.tree_map(lambda n, o: jnp.where(expand(ok, n), n, o), new_carry, carry)
    return new_carry, jnp.where(expand(ok, y), y, jnp.zeros_like(y))


def zero_padding(xs: jax.Array, lengths: jax.Array) -> jax.Array:
    """``xs: (T, *batch, ...)`` with every padded step set to zero (id 0 for ids).

    A padded step's result is discarded by :func:`mask`, but ``jnp.where``
    differentiates the discarded branch too: a NaN or Inf there, times the zero
    cotangent, is NaN in every parameter's gradient. So a padded step must
    never see its input, whatever the padding holds (NaN, Inf, 1e30, an id out
    of range).
    """
    ok = expand(valid_mask(xs.shape[0], lengths), xs)
    return jnp.where(ok, xs, jnp.zeros((), xs.dtype))


def expand(mask: jax.Array, like: jax.Array) -> jax.Array:
    """Append axes to a batch-shaped mask so it broadcasts against ``like``."""
    return mask.reshape(mask.shape + (1,) * (like.ndim - mask.ndim))


def valid_mask(time: int, lengths: jax.Array) -> jax.Array:
    """``valid[t, b] = t < lengths[b]``, shape ``(T, *batch)``."""
    # int32 steps: an arange in a narrow dtype of the lengths (uint8, int8) would wrap around past 127 or 255
    steps = jnp.arange(time, dtype=jnp.int32).reshape((time,) + (1,) * lengths.ndim)
    return steps < lengths.astype(jnp.int32)
