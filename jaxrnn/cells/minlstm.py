"""The minimal LSTM of Feng et al. (2024): normalised forget and input gates that do not read ``h_{t-1}``.

    f_t  = sigma(x_t W_f + b_f),  i_t = sigma(x_t W_i + b_i)
    f'_t = f_t / (f_t + i_t),     i'_t = i_t / (f_t + i_t)      normalised: f' + i' = 1
    h~_t = g(x_t W_h + b_h)                                      candidate, g positive
    h_t  = f'_t * h_{t-1} + i'_t * h~_t

Linear in ``h``, so :func:`jaxrnn.scan` computes a whole sequence at once in
log space: with ``d = softplus(-k_f) - softplus(-k_i)``, ``log f' = -softplus(d)``
and ``log i' = -softplus(-d)`` (:func:`jaxrnn.linear_recurrence.gated_scan`);
``step`` is the one-token recurrence. No cell state apart from ``h``.
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


def minlstm(
    hidden_size: int,
    *,
    param_dtype: Any = jnp.float32,
    dtype: Any | None = None,
    kernel_init: Initializer = glorot_uniform,
) -> Cell:
    """minLSTM cell; carry and output ``h``; a sequence in parallel, a token by ``step``.

    Args:
      hidden_size: ``H``.
      param_dtype, dtype, kernel_init: as for :func:`jaxrnn.mingru`.

    Params: ``input_kernel: (I, 3H)`` (forget, input, candidate), ``bias: (3H,)``.
    """
    H = checks.size("hidden_size", hidden_size)
    checks.floating_dtype("param_dtype", param_dtype)
    checks.floating_dtype("dtype", dtype, optional=True)
    checks.function("kernel_init", kernel_init)

    def init(key: jax.Array, input_size: int) -> dict[str, jax.Array]:
        input_size = checks.size("input_size", input_size)
        checks.random_key("key", key)
        return {"input_kernel": gate_kernel(key, input_size, H, 3, kernel_init, param_dtype),
                "bias": jnp.zeros((3 * H,), param_dtype)}

    def initial_carry(batch_shape: BatchShape = (), dtype: Any = jnp.float32) -> jax.Array:
        return zeros_carry(H, batch_shape, dtype, 1)

    def gates(params, x, like):
        """``(log f', log i', k_h)``."""
        check_input(x, params["input_kernel"].shape[0])
        k = matmul(x, params["input_kernel"], dtype)
        k = (k + params["bias"].astype(k.dtype)).astype(jnp.promote_types(like.dtype, jnp.float32))
        k_f, k_i, k_h = jnp.split(k, 3, axis=-1)
        d = jax.nn.softplus(-k_f) - jax.nn.softplus(-k_i)
        return -jax.nn.softplus(d), -jax.nn.softplus(-d), k_h

    def step(params, h, x):
        check_carry(h, x.shape[:-1] + (H,), 1)
        log_f, log_i, k_h = gates(params, x, h)
        h = (jnp.exp(log_f) * h + jnp.exp(log_i) * positive(k_h)).astype(h.dtype)
        return h, h

    def sequence(params, xs, h, *, lengths=None, reverse=False):
        check_carry(h, xs.shape[1:-1] + (H,), 1)
        log_f, log_i, k_h = gates(params, xs, h)
        final, hs = gated_scan(log_f, log_i + log_positive(k_h), h, reverse=reverse, lengths=lengths)
        return final.astype(h.dtype), hs.astype(h.dtype)

    return Cell(init, initial_carry, Parallel(step, sequence))
