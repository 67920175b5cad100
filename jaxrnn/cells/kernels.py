"""Kernels of the cells: initialisation of fused gate kernels and the matrix products of a step.

Gated cells keep one kernel per side, ``input_kernel: (I, G*H)`` and
``recurrent_kernel: (H, G*H)``, so that a step is one matrix product for the
input and one for the carry. Each gate's block is initialised on its own, as if
it were a separate layer: Glorot-uniform for input blocks, orthogonal for
recurrent blocks.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

Initializer = Callable[[jax.Array, tuple[int, ...], Any], jax.Array]

glorot_uniform: Initializer = jax.nn.initializers.glorot_uniform()


def _orthogonal(key: jax.Array, shape: tuple[int, ...], dtype: Any = jnp.float32) -> jax.Array:
    """Orthogonal init drawn in float32 at least: the QR it needs has no bfloat16/float16 kernel."""
    wide = jnp.promote_types(dtype, jnp.float32)
    return jax.nn.initializers.orthogonal()(key, shape, wide).astype(dtype)


orthogonal: Initializer = _orthogonal


def gate_kernel(key: jax.Array, rows: int, hidden_size: int, gates: int, init: Initializer, dtype: Any) -> jax.Array:
    """A ``(rows, gates * hidden_size)`` kernel, each ``(rows, hidden_size)`` block drawn by ``init``."""
    keys = jax.random.split(key, gates)
    return jnp.concatenate([init(k, (rows, hidden_size), dtype) for k in keys], axis=-1)


def matmul(x: jax.Array, kernel: jax.Array, dtype: Any | None) -> jax.Array:
    """``x @ kernel`` computed in ``dtype`` (e.g. bfloat16) when given, else in the operands' type."""
    if dtype is not None:
        x, kernel = x.astype(dtype), kernel.astype(dtype)
    return x @ kernel
