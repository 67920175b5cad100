"""The minimal LSTM of Feng et al. (2024): normalised forget and input gates that do not read ``h_{t-1}``.

    f_t  = sigma(x_t W_f + b_f),  i_t = sigma(x_t W_i + b_i)
    f'_t = f_t / (f_t + i_t),     i'_t = i_t / (f_t + i_t)      normalised: f' + i' = 1
    h~_t = g(x_t W_h + b_h)                                      candidate, g positive
    h_t  = f'_t * h_{t-1} + i'_t * h~_t

Linear in ``h``, so :func:`jaxrnn.scan` computes a whole sequence at once, in
``O(log T)`` depth (:func:`jaxrnn.linear_recurrence.gated_scan`), from the
normalised gates' logs: with ``d = softplus(-k_f) - softplus(-k_i)``,
``log f' = -softplus(d)`` and ``log i' = -softplus(-d)``, which exist where
``f`` and ``i`` both underflow; ``step`` is the one-token recurrence. No cell
state apart from ``h``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxrnn import checks, linear_recurrence
from jaxrnn.cells.activations import log_positive, positive
from jaxrnn.cells.kernels import Initializer, glorot_uniform
from jaxrnn.cells.minimal import input_gates
from jaxrnn.checks import check_carry
from jaxrnn.linear_recurrence import gated_scan
from jaxrnn.parts import Info, Part


def minlstm(
    hidden_size: int,
    *,
    param_dtype: Any = jnp.float32,
    dtype: Any | None = None,
    kernel_init: Initializer = glorot_uniform,
) -> Part:
    """minLSTM cell; carry and output ``h``; a sequence in parallel, a token by ``step``.

    Args:
      hidden_size: ``H``.
      param_dtype, dtype, kernel_init: as for :func:`jaxrnn.mingru`.

    Params: ``input_kernel: (I, 3H)`` (forget, input, candidate), ``bias: (3H,)``.
    """
    H, init, initial_carry, blocks = input_gates(hidden_size, 3, param_dtype=param_dtype, dtype=dtype,
                                                 kernel_init=kernel_init)

    def gates(params, x, like):
        """``(log f', log i', k_h)``."""
        k_f, k_i, k_h = blocks(params, x, like)
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

    return linear_recurrence.cell(init, initial_carry, step, sequence, validate=checks.fits(init),
                                  info=Info("minlstm", H))
