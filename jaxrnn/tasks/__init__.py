"""Synthetic sequence tasks, drawn as pure functions of ``(seed, split, index)``.

A task's batch at training step ``t`` is ``sample(key_at(seed, TRAIN, t), ...)``:
no generator state, so a run resumed at step ``t`` sees exactly the batches an
uninterrupted run sees, and the evaluation set (split ``EVAL``) never overlaps
training.
"""

from __future__ import annotations

from typing import Any, Callable

import jax

TRAIN = 0
EVAL = 1


def key_at(seed: int, split: int, index: int | jax.Array) -> jax.Array:
    """The random key of batch ``index`` of ``split`` (``TRAIN`` or ``EVAL``) for ``seed``."""
    return jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), split), index)


def batches(sample: Callable[[jax.Array], Any], seed: int, eval_batches: int) -> tuple[Callable[[int], Any], list[Any]]:
    """``(batch_at, eval_set)``: the training batch at a step, and the fixed evaluation set, from ``sample(key)``."""
    return (lambda step: sample(key_at(seed, TRAIN, step))), [sample(key_at(seed, EVAL, i)) for i in range(eval_batches)]
