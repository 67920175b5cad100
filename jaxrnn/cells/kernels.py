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
import numpy as np

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


def identity(key: jax.Array, shape: tuple[int, ...], dtype: Any = jnp.float32) -> jax.Array:
    """The identity matrix (``key`` unused): the IRNN's recurrent kernel (Le et al. 2015)."""
    del key
    rows, columns = shape
    return jnp.eye(rows, columns, dtype=dtype)


def spectral_radius(kernel: jax.Array) -> jax.Array:
    """``rho(W) = max |lambda_i(W)|`` of a square kernel, a float32 scalar.

    ``W^k`` grows or shrinks like ``rho(W)^k``: above 1 the gradient through
    ``h_t = phi(h_{t-1} W + ...)`` can explode, below 1 it vanishes. The
    eigenvalues of a non-symmetric matrix are computed on the host (numpy),
    through ``jax.pure_callback``, so this works under ``jit`` on any backend.
    """
    kernel = jnp.asarray(kernel)
    if kernel.ndim != 2 or kernel.shape[0] != kernel.shape[1]:
        raise ValueError(f"kernel: expected a square matrix, got shape {kernel.shape}")

    def host(w):
        return np.asarray(np.max(np.abs(np.linalg.eigvals(np.asarray(w, np.float64)))), np.float32)

    return jax.pure_callback(host, jax.ShapeDtypeStruct((), jnp.float32), kernel, vmap_method="sequential")


def with_spectral_radius(kernel: jax.Array, radius: float) -> jax.Array:
    """``W * radius / rho(W)``: the kernel scaled to spectral radius ``radius`` (same eigenvectors)."""
    return (kernel * (radius / spectral_radius(kernel))).astype(kernel.dtype)


def scaled_to_radius(init: Initializer, radius: float) -> Initializer:
    """``init``, then scaled to spectral radius ``radius`` (an orthogonal or identity kernel has radius 1)."""

    def scaled(key: jax.Array, shape: tuple[int, ...], dtype: Any = jnp.float32) -> jax.Array:
        wide = jnp.promote_types(dtype, jnp.float32)
        return with_spectral_radius(init(key, shape, wide), radius).astype(dtype)

    return scaled
