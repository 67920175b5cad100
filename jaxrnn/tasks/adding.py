"""The adding problem (Hochreiter & Schmidhuber 1997), in the form of Le et al. (2015).

Each of ``T`` steps shows a pair ``(u_t, m_t)``: a value ``u_t ~ U[0, 1]`` and
a marker ``m_t``, which is 1 at exactly two steps, one in each half of the
sequence, and 0 elsewhere. After the last step the model answers::

    y = sum_t m_t u_t            (the sum of the two marked values)

The two values to remember can lie ``T / 2`` or more steps before the answer,
which is what makes the problem hard for a tanh RNN. Always answering 1 (the
mean of ``y``) scores the baseline MSE ``Var(u + u') = 2/12 = 0.1667``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

INPUT_SIZE = 2
OUTPUT_SIZE = 1
BASELINE_MSE = 1.0 / 6.0


class Batch(NamedTuple):
    """``xs: (T, B, 2)`` the ``(value, marker)`` pairs, time-major; ``ys: (B, 1)`` the sums."""

    xs: jax.Array
    ys: jax.Array


def sample(key: jax.Array, batch_size: int, seq_len: int) -> Batch:
    """A batch of ``batch_size`` sequences of length ``seq_len`` (>= 2), a pure function of ``key``."""
    if seq_len < 2:
        raise ValueError(f"the adding problem needs seq_len >= 2, got {seq_len}")
    k_values, k_first, k_second = jax.random.split(key, 3)
    values = jax.random.uniform(k_values, (seq_len, batch_size))
    half = seq_len // 2
    first = jax.random.randint(k_first, (batch_size,), 0, half)
    second = jax.random.randint(k_second, (batch_size,), half, seq_len)
    steps = jnp.arange(seq_len)[:, None]
    markers = ((steps == first) | (steps == second)).astype(values.dtype)
    xs = jnp.stack([values, markers], axis=-1)
    ys = jnp.sum(values * markers, axis=0)[:, None]
    return Batch(xs, ys)


def baseline(seq_len: int | None = None) -> float:
    """MSE of always answering 1, the mean of the target: ``1/6`` for every ``T``."""
    return BASELINE_MSE


def mse(predictions: jax.Array, targets: jax.Array) -> jax.Array:
    """Mean squared error ``mean((y^ - y)^2)``."""
    return jnp.mean(jnp.square(predictions - targets))
