"""What the test files share, defined once: the tiny shapes, the cells under test, random parameters and
inputs, jitted runners, tree comparisons, the hypothesis settings, and for the app's tests the repository
root, a tiny config and the command line called in-process.

A plain module (``from support import ...``); ``conftest.py`` holds only pytest's fixtures and hooks.
The cells are built once, here, and passed to jitted functions as static arguments, so each
(cell, shape) pair compiles once for the whole session.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import settings

import jaxrnn

T, B, I, H = 5, 3, 4, 6  # time, batch, input size, hidden size

# The cells under test, by name: each ``FACTORIES[name](**options)`` builds it with other options (dtypes).
FACTORIES: dict[str, Callable[..., jaxrnn.Part]] = {
    "rnn_tanh": lambda **options: jaxrnn.rnn(H, **options),
    "rnn_relu": lambda **options: jaxrnn.rnn(H, activation="relu", **options),
    "rnn_nobias": lambda **options: jaxrnn.rnn(H, use_bias=False, **options),
    "lstm": lambda **options: jaxrnn.lstm(H, **options),
    "gru": lambda **options: jaxrnn.gru(H, **options),
    "gru_reset_after": lambda **options: jaxrnn.gru(H, reset_after=True, **options),
}
CELLS: dict[str, jaxrnn.Part] = {name: factory() for name, factory in FACTORIES.items()}
CELL_NAMES = list(CELLS)

# The minimal RNNs (Feng et al. 2024), whose gates read only the input: a sequence at once on
# ``path="parallel"``, a token at a time by ``step``.
MINIMAL_CELLS: dict[str, jaxrnn.Part] = {"mingru": jaxrnn.mingru(H), "minlstm": jaxrnn.minlstm(H)}

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
run = jax.jit(jaxrnn.scan, static_argnums=0, static_argnames=("reverse", "unroll", "remat"))


def assert_trees_close(actual, expected, rtol: float = 1e-5, atol: float = 1e-5, err_msg: str = "") -> None:
    """Same tree structure, and every pair of leaves equal to tolerance."""
    actual_leaves, actual_tree = jax.tree_util.tree_flatten(actual)
    expected_leaves, expected_tree = jax.tree_util.tree_flatten(expected)
    assert actual_tree == expected_tree, f"tree structures differ: {actual_tree} vs {expected_tree}"
    for a, e in zip(actual_leaves, expected_leaves):
        assert np.shape(a) == np.shape(e), f"shapes differ: {np.shape(a)} vs {np.shape(e)}"
        np.testing.assert_allclose(np.asarray(a, np.float64), np.asarray(e, np.float64), rtol=rtol, atol=atol,
                                   err_msg=err_msg)


def relative_error(actual, expected) -> float:
    """``max|actual - expected| / max|expected|``: float32's epsilon is 1.2e-7 on this scale."""
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    return float(np.max(np.abs(actual - expected)) / max(float(np.max(np.abs(expected))), 1e-30))


# cell.step, compiled once per (cell, shapes): for per-step Python loops.
step = jax.jit(lambda cell, params, carry, x: cell.step(params, carry, x), static_argnums=0)


def step_loop(cell: jaxrnn.Part, params, xs, carry, reverse: bool = False):
    """``cell.step`` in a Python loop over the time axis of ``xs``: ``(final_carry, [y_t, ...])``."""
    ys = [None] * xs.shape[0]
    for t in reversed(range(xs.shape[0])) if reverse else range(xs.shape[0]):
        carry, ys[t] = step(cell, params, carry, xs[t])
    return carry, ys


# --- the app's tests -------------------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parent.parent  # the repository

# The smallest config that trains, evaluates and checkpoints (the ``write_config`` fixture starts from it).
TINY = {
    "experiment": "adding",
    "model": {"cell": "lstm", "hidden_size": 8, "num_layers": 1},
    "optim": {"name": "adam", "learning_rate": 0.01, "clip_norm": 1.0},
    "train": {"steps": 6, "batch_size": 8, "seed": 0, "eval_every": 3, "checkpoint_every": 2,
              "eval_batches": 1, "log_every": 1, "keep_checkpoints": 5},
    "data": {"seq_len": 10},
}


def cli(*args: str) -> int:
    """``jaxrnn ARGS`` in this process; its exit status."""
    from jaxrnn.experiment.cli import main  # the app's imports (pydantic, yaml, ...) only where the app is tested

    try:
        return main([str(a) for a in args])
    except SystemExit as exit:  # argparse's usage errors
        return exit.code
