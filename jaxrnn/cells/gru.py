"""Gated recurrent unit (Cho et al. 2014), in two variants.

The original GRU (``reset_after=False``, the default): the reset gate acts on
the carry *before* the recurrent product of the candidate,

    r_t = sigma(x_t U_r + h_{t-1} W_r + b_r)        reset gate
    z_t = sigma(x_t U_z + h_{t-1} W_z + b_z)        update gate
    h~_t = tanh(x_t U_h + (r_t * h_{t-1}) W_h + b_h)
    h_t = (1 - z_t) * h_{t-1} + z_t * h~_t

The cuDNN/PyTorch/Flax variant (``reset_after=True``): the reset gate acts
*after* the product, so all three recurrent products fuse into one,

    n_t = tanh(x_t U_n + b_n + r_t * (h_{t-1} W_n + b_hn))
    h_t = (1 - z_t) * n_t + z_t * h_{t-1}

(note that the two conventions weight ``z_t`` oppositely, as their sources do).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxrnn import checks, onednn
from jaxrnn.cells.kernels import Initializer, gate_kernel, glorot_uniform, matmul, orthogonal
from jaxrnn.checks import check_carry, check_hidden, check_input, check_kernel
from jaxrnn.parts import BatchShape, Info, Part, zeros_carry
from jaxrnn.split import Split, cell


def gru(
    hidden_size: int,
    *,
    reset_after: bool = False,
    param_dtype: Any = jnp.float32,
    dtype: Any | None = None,
    kernel_init: Initializer = glorot_uniform,
    recurrent_init: Initializer = orthogonal,
) -> Part:
    """GRU cell; carry and output ``h``.

    Args:
      hidden_size: ``H``, the size of ``h``.
      reset_after: ``False`` for the original GRU (Cho et al. 2014), ``True`` for the
        cuDNN/PyTorch variant (see the module docstring for both formulas).
      param_dtype: dtype of the parameters.
      dtype: dtype the matrix products are computed in (e.g. ``jnp.bfloat16``);
        ``None`` computes in the parameters' dtype. The carry keeps its dtype.
      kernel_init, recurrent_init: initialisers of each gate's block.

    Params, gates in the order reset, update, candidate:

    * ``reset_after=False``: ``input_kernel: (I, 3H)``, ``recurrent_kernel:
      (H, 2H)`` (``[W_r W_z]``), ``candidate_kernel: (H, H)`` (``W_h``, applied
      to ``r * h``), ``bias: (3H,)``.
    * ``reset_after=True``: ``input_kernel: (I, 3H)``, ``recurrent_kernel:
      (H, 3H)``, ``bias: (3H,)`` (input side), ``recurrent_bias: (3H,)``
      (carry side; its candidate part ``b_hn`` sits inside the reset).

    Raises:
      TypeError, ValueError: an argument of the wrong type or out of range.
    """
    H = checks.cell_arguments(hidden_size, param_dtype, dtype, kernel_init, recurrent_init)
    checks.flag("reset_after", reset_after)

    def init(key: jax.Array, input_size: int) -> dict[str, jax.Array]:
        input_size = checks.size("input_size", input_size)
        checks.random_key("key", key)
        k_in, k_rec = jax.random.split(key)
        recurrent = gate_kernel(k_rec, H, H, 3, recurrent_init, param_dtype)
        params = {
            "input_kernel": gate_kernel(k_in, input_size, H, 3, kernel_init, param_dtype),
            "bias": jnp.zeros((3 * H,), param_dtype),
        }
        if reset_after:
            params["recurrent_kernel"] = recurrent
            params["recurrent_bias"] = jnp.zeros((3 * H,), param_dtype)
        else:
            params["recurrent_kernel"] = recurrent[:, : 2 * H]
            params["candidate_kernel"] = recurrent[:, 2 * H :]
        return params

    def initial_carry(batch_shape: BatchShape = (), dtype: Any = jnp.float32) -> jax.Array:
        return zeros_carry(H, batch_shape, dtype)

    def project(params: dict[str, jax.Array], x: jax.Array) -> jax.Array:
        check_input(x, params["input_kernel"].shape[0])
        xp = matmul(x, params["input_kernel"], dtype)
        return xp + params["bias"].astype(xp.dtype)

    def recur_reset_before(params, h, xp):
        check_carry(h, xp.shape[:-1] + (H,), 1)
        check_kernel(params, "recurrent_kernel", (H, 2 * H))
        check_kernel(params, "candidate_kernel", (H, H))
        x_rz, x_h = jnp.split(xp, [2 * H], axis=-1)
        rz = jax.nn.sigmoid((matmul(h, params["recurrent_kernel"], dtype) + x_rz).astype(h.dtype))
        r, z = jnp.split(rz, 2, axis=-1)
        candidate = jnp.tanh((matmul(r * h, params["candidate_kernel"], dtype) + x_h).astype(h.dtype))
        h = (1.0 - z) * h + z * candidate
        return h, h

    def product_reset_after(params: dict[str, jax.Array], h: jax.Array) -> jax.Array:
        check_hidden(h, H, 1)
        check_kernel(params, "recurrent_kernel", (H, 3 * H))
        hp = matmul(h, params["recurrent_kernel"], dtype)
        return hp + params["recurrent_bias"].astype(hp.dtype)

    def update_reset_after(h: jax.Array, xp: jax.Array, hp: jax.Array) -> tuple[jax.Array, jax.Array]:
        check_carry(h, xp.shape[:-1] + (H,), 1)
        # jnp.split, not slicing: its transpose is one concatenate, where slices' are pads and adds
        x_r, x_z, x_n = jnp.split(xp.astype(h.dtype), 3, axis=-1)
        h_r, h_z, h_n = jnp.split(hp.astype(h.dtype), 3, axis=-1)
        r = jax.nn.sigmoid(h_r + x_r)
        z = jax.nn.sigmoid(h_z + x_z)
        n = jnp.tanh(r * h_n + x_n)
        h = (1.0 - z) * n + z * h
        return h, h

    def onednn_weights(params: dict[str, jax.Array]) -> tuple[jax.Array, jax.Array, jax.Array]:
        # oneDNN's GRUs: gates (u, r, o) and h_t = u * h_{t-1} + (1 - u) * o. With reset_after that is z as
        # it is; the original GRU weights z the other way, so u = 1 - z = sigma(-(pre-activation of z)).
        sign = 1.0 if reset_after else -1.0

        def gates(kernel):  # (rows, 3H) in the order r, z, candidate -> (rows, 3, H) in the order u, r, o
            r, z, n = jnp.split(kernel.reshape(*kernel.shape[:-1], 3, H), 3, axis=-2)
            return jnp.concatenate([sign * z, r, n], axis=-2)

        if reset_after:
            recurrent = gates(params["recurrent_kernel"])
            b_r, b_z, b_n = jnp.split(params["bias"], 3)
            c_r, c_z, c_n = jnp.split(params["recurrent_bias"], 3)
            bias = jnp.stack([b_z + c_z, b_r + c_r, b_n, c_n])  # the fourth, b'_o, sits inside the reset
        else:
            recurrent = gates(jnp.concatenate([params["recurrent_kernel"], params["candidate_kernel"]], axis=-1))
            bias = gates(params["bias"])
        return gates(params["input_kernel"]), recurrent, bias

    if reset_after:
        halves = Split.from_product(project, product_reset_after, update_reset_after)
    else:  # the reset gate sits between the two recurrent products: no single linear map
        halves = Split.of(project, recur_reset_before)
    return cell(init, initial_carry, halves, validate=checks.fits(init),
                recurrence=onednn.Recurrence("gru_reset_after" if reset_after else "gru", onednn_weights, dtype),
                info=Info("gru", H, variant="reset_after" if reset_after else None,
                          options=(("reset_after", True),) if reset_after else ()))
