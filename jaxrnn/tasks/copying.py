"""The copy (memory) task (Hochreiter & Schmidhuber 1997; Arjovsky et al. 2016).

The input is ``L = 10`` symbols from an alphabet of ``K = 8``, then ``T - 1``
blanks, a delimiter, and ``L`` more blanks; ``T + 2L`` steps in all. The
target is blank everywhere except the last ``L`` steps, where it is the ``L``
symbols, in order::

    input    a1 .. aL  _ .. _  :  _ .. _        (_ blank, : delimiter)
    target   _  .. _   _ .. _  _  a1 .. aL

Symbols are ``1..K``, blank ``0``, delimiter ``K + 1``; inputs are one-hot of
size ``K + 2``, outputs are logits over ``K + 1`` classes (blank and symbols).
A model with no memory that answers blank until the delimiter and then
guesses uniformly scores the baseline cross-entropy per step::

    L ln K / (T + 2L)        = 10 ln 8 / (T + 20)
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax


class Batch(NamedTuple):
    """``xs: (T + 2L, B, K + 2)`` one-hot inputs, time-major; ``ys: (T + 2L, B)`` int32 labels in ``0..K``."""

    xs: jax.Array
    ys: jax.Array


def input_size(symbols: int = 8) -> int:
    return symbols + 2


def output_size(symbols: int = 8) -> int:
    return symbols + 1


def sample(key: jax.Array, batch_size: int, delay: int, length: int = 10, symbols: int = 8) -> Batch:
    """A batch, a pure function of ``key``: ``length`` symbols, recalled after ``delay`` (``T``) steps."""
    if delay < 1 or length < 1 or symbols < 1:
        raise ValueError(f"expected delay, length, symbols >= 1, got {delay}, {length}, {symbols}")
    data = jax.random.randint(key, (length, batch_size), 1, symbols + 1)
    blanks = lambda n: jnp.zeros((n, batch_size), data.dtype)  # noqa: E731
    delimiter = jnp.full((1, batch_size), symbols + 1, data.dtype)
    inputs = jnp.concatenate([data, blanks(delay - 1), delimiter, blanks(length)])
    targets = jnp.concatenate([blanks(delay + length), data])
    return Batch(jax.nn.one_hot(inputs, symbols + 2), targets.astype(jnp.int32))


def baseline(delay: int, length: int = 10, symbols: int = 8) -> float:
    """Cross-entropy per step of the memoryless strategy: ``length ln(symbols) / (delay + 2 length)``."""
    return length * math.log(symbols) / (delay + 2 * length)


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Mean softmax cross-entropy (nats) over all steps and sequences."""
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, labels))


def recall_accuracy(logits: jax.Array, labels: jax.Array, length: int = 10) -> jax.Array:
    """Fraction of the last ``length`` steps (the recalled symbols) predicted exactly."""
    return jnp.mean(jnp.argmax(logits[-length:], axis=-1) == labels[-length:])
