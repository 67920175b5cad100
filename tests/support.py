"""Shared by the core tests: tiny shapes, the cells under test, random parameters, jitted runners
and the hypothesis settings.

The cells are built once, here, and passed to jitted functions as static arguments,
so each (cell, shape) pair compiles once for the whole session.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import settings

import jaxrnn

T, B, I, H = 5, 3, 4, 6  # time, batch, input size, hidden size

CELLS: dict[str, jaxrnn.Part] = {
    "rnn_tanh": jaxrnn.rnn(H),
    "rnn_relu": jaxrnn.rnn(H, activation="relu"),
    "rnn_nobias": jaxrnn.rnn(H, use_bias=False),
    "lstm": jaxrnn.lstm(H),
    "gru": jaxrnn.gru(H),
    "gru_reset_after": jaxrnn.gru(H, reset_after=True),
}
CELL_NAMES = list(CELLS)

# For every property test: few examples with tiny shapes keep the suite fast; derandomize keeps
# CI reproducible; no example database is written into the working tree.
PROPERTY = settings(max_examples=10, deadline=None, derandomize=True, database=None)


def random_params(cell: jaxrnn.Part, seed: int, input_size: int = I, scale: float = 0.5, dtype=np.float32):
    """``cell.init``'s structure with every leaf, biases included, drawn from N(0, scale^2).

    ``init`` zeroes the biases, which would hide a bias that is dropped or misplaced.
    """
    template = jax.eval_shape(lambda key: cell.init(key, input_size), jax.random.key(0))
    rng = np.random.default_rng(seed)
    return jax.tree_util.tree_map(lambda s: jnp.asarray(rng.normal(0.0, scale, s.shape), dtype), template)


def random_carry(cell: jaxrnn.Part, batch_shape: tuple[int, ...], seed: int, dtype=np.float32):
    """A non-zero initial carry of ``batch_shape`` for ``cell``."""
    rng = np.random.default_rng(seed)
    zeros = cell.initial_carry(batch_shape, dtype)
    return jax.tree_util.tree_map(lambda z: jnp.asarray(rng.normal(0.0, 0.5, z.shape), dtype), zeros)


def random_inputs(shape: tuple[int, ...], seed: int, dtype=np.float32) -> jax.Array:
    return jnp.asarray(np.random.default_rng(seed).normal(size=shape), dtype)


# jaxrnn.scan, compiled once per (cell, options, shapes).
run = jax.jit(jaxrnn.scan, static_argnames=("part", "reverse", "unroll", "remat"))


def assert_trees_close(actual, expected, rtol: float = 1e-5, atol: float = 1e-5, err_msg: str = "") -> None:
    """Same tree structure, and every pair of leaves equal to tolerance."""
    actual_leaves, actual_tree = jax.tree_util.tree_flatten(actual)
    expected_leaves, expected_tree = jax.tree_util.tree_flatten(expected)
    assert actual_tree == expected_tree, f"tree structures differ: {actual_tree} vs {expected_tree}"
    for a, e in zip(actual_leaves, expected_leaves):
        assert np.shape(a) == np.shape(e), f"shapes differ: {np.shape(a)} vs {np.shape(e)}"
        np.testing.assert_allclose(np.asarray(a, np.float64), np.asarray(e, np.float64), rtol=rtol, atol=atol,
                                   err_msg=err_msg)


# cell.step, compiled once per (cell, shapes): for per-step Python loops.
step = jax.jit(lambda cell, params, carry, x: cell.step(params, carry, x), static_argnums=0)


def step_loop(cell: jaxrnn.Part, params, xs, carry, reverse: bool = False):
    """``cell.step`` in a Python loop over the time axis of ``xs``: ``(final_carry, [y_t, ...])``."""
    ys = [None] * xs.shape[0]
    for t in reversed(range(xs.shape[0])) if reverse else range(xs.shape[0]):
        carry, ys[t] = step(cell, params, carry, xs[t])
    return carry, ys
