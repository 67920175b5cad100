"""Every random key of a run, from ``(seed, purpose, step)``: one function, no generator state.

    key(seed, purpose, step) = fold_in(fold_in(PRNGKey(seed), purpose), step)

Parameters come from ``INIT``, the training batch at step ``t`` from
``(TRAIN, t)``, the evaluation batches from ``(EVAL, i)`` (never a training
batch), dropout at step ``t`` from ``(DROPOUT, t)``. A run resumed at step
``t`` therefore draws exactly what an uninterrupted run draws.
"""

from __future__ import annotations

import enum

import jax


class Purpose(enum.IntEnum):
    """What a key is for; its value is folded into the seed's key."""

    TRAIN = 0
    EVAL = 1
    INIT = 2
    DROPOUT = 3


def key(seed: int, purpose: Purpose, step: int | jax.Array | None = None) -> jax.Array:
    """The key of ``purpose`` for ``seed``, at ``step`` (a batch or update index) if given."""
    k = jax.random.fold_in(jax.random.key(seed), int(purpose))
    return k if step is None else jax.random.fold_in(k, step)
