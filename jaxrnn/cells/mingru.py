"""The minimal GRU of Feng et al. (2024), "Were RNNs All We Needed?": gates that do not read ``h_{t-1}``.

    z_t  = sigma(x_t W_z + b_z)                     update gate, from the input alone
    h~_t = g(x_t W_h + b_h)                          candidate, g positive (log-space variant)
    h_t  = (1 - z_t) * h_{t-1} + z_t * h~_t

Without ``h_{t-1}`` in the gates the recurrence is linear in ``h``,
``h_t = a_t h_{t-1} + b_t`` with ``a_t = 1 - z_t``, ``b_t = z_t h~_t``, so
:func:`jaxrnn.scan` computes a whole sequence at once, in ``O(log T)`` depth
(:func:`jaxrnn.linear_recurrence.gated_scan`, from the gates' logs
``log a = -softplus(k_z)``, ``log b = -softplus(-k_z) + log g(k_h)``), while
``step`` is the one-token recurrence for generation. The same function either
way, to a few float32 epsilons at any length.
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


def mingru(
    hidden_size: int,
    *,
    param_dtype: Any = jnp.float32,
    dtype: Any | None = None,
    kernel_init: Initializer = glorot_uniform,
) -> Part:
    """minGRU cell; carry and output ``h``; a sequence in parallel, a token by ``step``.

    Args:
      hidden_size: ``H``.
      param_dtype: dtype of the parameters.
      dtype: dtype of the input product (e.g. ``jnp.bfloat16``); the recurrence
        runs in the carry's dtype (float32 at least).
      kernel_init: initialiser of each gate's block of the input kernel.

    Params: ``input_kernel: (I, 2H)`` (update gate, candidate), ``bias: (2H,)``.
    """
    H, init, initial_carry, gates = input_gates(hidden_size, 2, param_dtype=param_dtype, dtype=dtype,
                                                kernel_init=kernel_init)

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

    return linear_recurrence.cell(init, initial_carry, step, sequence, validate=checks.fits(init),
                                  info=Info("mingru", H))
