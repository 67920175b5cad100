"""Trace-time checks that turn shape and dtype mistakes into clear errors.

Every check reads static shapes only, so it runs once while tracing and costs
nothing inside ``jit``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp


def check_input(x: jax.Array, input_size: int) -> None:
    """Raise unless ``x`` is floating point with ``input_size`` features on its last axis."""
    if x.ndim == 0:
        raise ValueError(f"expected an input of shape (..., {input_size}), got a scalar")
    if x.shape[-1] != input_size:
        raise ValueError(f"expected input size {input_size}, got {x.shape[-1]} (input shape {x.shape})")
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"expected a floating-point input, got dtype {x.dtype}")


def check_carry(carry: Any, expected_shape: tuple[int, ...], n: int) -> None:
    """Raise unless ``carry`` holds ``n`` floating arrays of ``expected_shape``.

    ``n == 1`` means the carry is a single array; otherwise a tuple of ``n``.
    """
    leaves = (carry,) if n == 1 else carry
    what = "an array" if n == 1 else f"a tuple of {n} arrays"
    if n != 1 and (not isinstance(carry, (tuple, list)) or len(carry) != n):
        raise ValueError(f"expected carry to be {what} of shape {expected_shape}, got {_describe(carry)}")
    for leaf in leaves:
        if not hasattr(leaf, "shape") or tuple(leaf.shape) != tuple(expected_shape):
            raise ValueError(f"expected carry to be {what} of shape {expected_shape}, got {_describe(carry)}")
        if not jnp.issubdtype(leaf.dtype, jnp.floating):
            raise TypeError(f"expected a floating-point carry, got dtype {leaf.dtype}")


def _describe(tree: Any) -> str:
    """``array of shape (2, 4)`` or ``tuple with shapes ((2, 4), (2, 4))``."""
    if hasattr(tree, "shape"):
        return f"an array of shape {tuple(tree.shape)}"
    shapes = jax.tree_util.tree_map(lambda a: tuple(getattr(a, "shape", ())), tree)
    return f"{type(tree).__name__} with shapes {shapes}"


def check_carry_like(carry: Any, expected: Any) -> None:
    """Raise unless ``carry`` has the structure and shapes of ``expected`` (e.g. ``initial_carry``'s)."""
    same_tree = jax.tree_util.tree_structure(carry) == jax.tree_util.tree_structure(expected)
    if not same_tree or any(
        tuple(jnp.shape(a)) != tuple(b.shape) for a, b in zip(jax.tree_util.tree_leaves(carry), jax.tree_util.tree_leaves(expected))
    ):
        raise ValueError(f"expected carry to be {_describe(expected)}, got {_describe(carry)}")


def check_hidden(carry: Any, hidden_size: int, n: int) -> None:
    """Raise unless every carry leaf ends in ``hidden_size`` (batch axes are checked later, against the input)."""
    first = carry[0] if n != 1 and isinstance(carry, (tuple, list)) and carry else carry
    batch_shape = tuple(getattr(first, "shape", (None,))[:-1])
    check_carry(carry, batch_shape + (hidden_size,), n)
