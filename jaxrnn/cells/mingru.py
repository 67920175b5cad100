"""The minimal GRU of Feng et al. (2024), "Were RNNs All We Needed?": gates that do not read ``h_{t-1}``.

    z_t  = sigma(x_t W_z + b_z)                     update gate, from the input alone
    h~_t = g(x_t W_h + b_h)                          candidate, g positive (log-space variant)
    h_t  = (1 - z_t) * h_{t-1} + z_t * h~_t

Without ``h_{t-1}`` in the gates the recurrence is linear in ``h``,
``h_t = a_t h_{t-1} + b_t`` with ``a_t = 1 - z_t``, ``b_t = z_t h~_t``, so
:func:`jaxrnn.scan` computes a whole sequence at once, in log space
(``log a = -softplus(k_z)``, ``log b = -softplus(-k_z) + log g(k_h)``:
:func:`jaxrnn.linear_recurrence.gated_scan`), while ``step`` is the
one-token recurrence for generation. The same function either way.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxrnn import checks
from jaxrnn.cells.activations import log_positive, positive
from jaxrnn.cells.kernels import Initializer, gate_kernel, glorot_uniform, matmul
from jaxrnn.checks import check_carry, check_input
from jaxrnn.linear_recurrence import gated_scan
from jaxrnn.parts import BatchShape, Cell, Parallel, zeros_carry


def mingru(
    hidden_size: int,
    *,
    param_dtype: Any = jnp.float32,
    dtype: Any | None = None,
    kernel_init: Initializer = glorot_uniform,
) -> Cell:
    """minGRU cell; carry and output ``h``; a sequence in parallel, a token by ``step``.

    Args:
      hidden_size: ``H``.
      param_dtype: dtype of the parameters.
      dtype: dtype of the input product (e.g. ``jnp.bfloat16``); the recurrence
        runs in the carry's dtype (float32 at least).
      kernel_init: initialiser of each gate's block of the input kernel.

    Params: ``input_kernel: (I, 2H)`` (update gate, candidate), ``bias: (2H,)``.
    """
    H = checks.size("hidden_size", hidden_size)
    checks.floating_dtype("param_dtype", param_dtype)
    checks.floating_dtype("dtype", dtype, optional=True)
    checks.function("kernel_init", kernel_init)

    def init(key: jax.Array, input_size: int) -> dict[str, jax.Array]:
        input_size = checks.size("input_size", input_size)
        checks.random_key("key", key)
        return {"input_kernel": gate_kernel(key, input_size, H, 2, kernel_init, param_dtype),
                "bias": jnp.zeros((2 * H,), param_dtype)}

    def initial_carry(batch_shape: BatchShape = (), dtype: Any = jnp.float32) -> jax.Array:
        return zeros_carry(H, batch_shape, dtype, 1)

    def gates(params, x, like):
        check_input(x, params["input_kernel"].shape[0])
        k = matmul(x, params["input_kernel"], dtype)
        k = (k + params["bias"].astype(k.dtype)).astype(jnp.promote_types(like.dtype, jnp.float32))
        return jnp.split(k, 2, axis=-1)

    def step(params, h, x):
        check_carry(h, x.shape[:-1] + (H,), 1)
        k_z, k_h = gates(params, x, h)
        z = jax.nn.sigmoid(k_z)
        h = ((1.0 - z) * h + z * positive(k_h)).astype(h.dtype)
        return h, h

    def sequence(params, xs, h, *, lengths=None, reverse=False):
        check_carry(h, xs.shape[1:-1] + (H,), 1)
        k_z, k_h = gates(params, xs, h)
        final, hs = gated_scan(-jax.nn.softplus(k_z), -jax.nn.softplus(-k_z) + log_positive(k_h), h,
                               reverse=reverse, lengths=lengths)
        return final.astype(h.dtype), hs.astype(h.dtype)

    return Cell(init, initial_carry, Parallel(step, sequence))
