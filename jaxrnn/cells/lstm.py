"""Long short-term memory (Hochreiter & Schmidhuber 1997).

    i_t = sigma(x_t U_i + h_{t-1} W_i + b_i)        input gate
    f_t = sigma(x_t U_f + h_{t-1} W_f + b_f)        forget gate
    g_t = tanh (x_t U_g + h_{t-1} W_g + b_g)        candidate cell
    o_t = sigma(x_t U_o + h_{t-1} W_o + b_o)        output gate
    c_t = f_t * c_{t-1} + i_t * g_t                 cell state
    h_t = o_t * tanh(c_t)

The four gates are fused: ``U = [U_i U_f U_g U_o]`` and ``W = [W_i W_f W_g W_o]``
(PyTorch's gate order), so one step is one matrix product for the input and
one for the carry. The additive path through ``c_t`` is what lets gradients
survive long dependencies.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxrnn import checks, onednn
from jaxrnn.cells.kernels import Initializer, gate_kernel, glorot_uniform, matmul, orthogonal
from jaxrnn.checks import check_carry, check_hidden, check_input, check_kernel
from jaxrnn.parts import BatchShape, Info, Part, zeros_carry
from jaxrnn.split import Split, cell


class LSTMState(NamedTuple):
    """The LSTM's carry: the hidden state ``h`` (also its output) and the cell state ``c``, each ``(*batch, H)``.

    A plain tuple ``(h, c)`` is taken for one wherever a carry is passed in.
    """

    h: jax.Array
    c: jax.Array


def lstm(
    hidden_size: int,
    *,
    forget_bias: float = 1.0,
    chrono: float | None = None,
    param_dtype: Any = jnp.float32,
    dtype: Any | None = None,
    kernel_init: Initializer = glorot_uniform,
    recurrent_init: Initializer = orthogonal,
) -> Part:
    """LSTM cell; carry ``LSTMState(h, c)``, output ``h``.

    Args:
      hidden_size: ``H``, the size of ``h`` and ``c``.
      forget_bias: initial value of ``b_f`` (1.0, Jozefowicz et al. 2015); the
        other biases start at zero.
      chrono: ``T_max`` of the chrono initialisation (Tallec & Ollivier 2018),
        in place of ``forget_bias``: per unit ``b_f = log(u)``,
        ``u ~ U(1, T_max - 1)``, and ``b_i = -b_f``. The forget gate then starts
        with memory time scales ``1 / (1 - sigma(b_f)) = 1 + u`` spread up to
        ``T_max`` steps, for dependencies that long (e.g. the copy task's delay).
      param_dtype: dtype of the parameters.
      dtype: dtype the matrix products are computed in (e.g. ``jnp.bfloat16``);
        ``None`` computes in the parameters' dtype. The carry keeps its dtype.
      kernel_init, recurrent_init: initialisers of each gate's block of ``U``, ``W``.

    Params: ``input_kernel: (I, 4H)``, ``recurrent_kernel: (H, 4H)``,
    ``bias: (4H,)``, gates in the order input, forget, cell, output.

    Raises:
      TypeError, ValueError: an argument of the wrong type or out of range.
    """
    hidden_size = checks.cell_arguments(hidden_size, param_dtype, dtype, kernel_init, recurrent_init)
    forget_bias = checks.number("forget_bias", forget_bias)
    if chrono is not None:
        checks.number("chrono", chrono)
    if chrono is not None and not chrono > 2:
        raise ValueError(f"chrono: expected T_max > 2 (b_f = log U(1, T_max - 1)), got {chrono}")
    if chrono is not None and forget_bias != 1.0:
        raise ValueError(f"forget_bias={forget_bias} and chrono={chrono} both set b_f; give one of them")

    def init(key: jax.Array, input_size: int) -> dict[str, jax.Array]:
        input_size = checks.size("input_size", input_size)
        checks.random_key("key", key)
        k_in, k_rec = jax.random.split(key)
        bias = jnp.zeros((4, hidden_size), param_dtype).at[1].set(forget_bias)
        if chrono is not None:  # a key apart from the kernels' two: they stay as without chrono
            u = jax.random.uniform(jax.random.fold_in(key, 2), (hidden_size,), minval=1.0, maxval=chrono - 1.0)
            b_f = jnp.log(u).astype(param_dtype)
            bias = bias.at[1].set(b_f).at[0].set(-b_f)
        return {
            "input_kernel": gate_kernel(k_in, input_size, hidden_size, 4, kernel_init, param_dtype),
            "recurrent_kernel": gate_kernel(k_rec, hidden_size, hidden_size, 4, recurrent_init, param_dtype),
            "bias": bias.reshape(4 * hidden_size),
        }

    def initial_carry(batch_shape: BatchShape = (), dtype: Any = jnp.float32) -> LSTMState:
        zeros = zeros_carry(hidden_size, batch_shape, dtype)
        return LSTMState(zeros, zeros)

    def project(params: dict[str, jax.Array], x: jax.Array) -> jax.Array:
        check_input(x, params["input_kernel"].shape[0])
        xp = matmul(x, params["input_kernel"], dtype)
        return xp + params["bias"].astype(xp.dtype)

    def product(params: dict[str, jax.Array], carry: tuple[jax.Array, jax.Array]) -> jax.Array:
        check_hidden(carry, hidden_size, 2)
        check_kernel(params, "recurrent_kernel", (hidden_size, 4 * hidden_size))
        return matmul(carry[0], params["recurrent_kernel"], dtype)

    def update(carry, z):
        check_carry(carry, z.shape[:-1] + (hidden_size,), 2)
        h, c = carry
        i, f, g, o = jnp.split(z.astype(c.dtype), 4, axis=-1)
        c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        h = (jax.nn.sigmoid(o) * jnp.tanh(c)).astype(h.dtype)
        return LSTMState(h, c), h

    def onednn_weights(params: dict[str, jax.Array]) -> tuple[jax.Array, jax.Array, jax.Array]:
        # oneDNN's LSTM has jaxrnn's gate order (i, f, g, o): the kernels are (rows, G, H) as they are
        kernel = params["input_kernel"]
        return (kernel.reshape(kernel.shape[0], 4, hidden_size),
                params["recurrent_kernel"].reshape(hidden_size, 4, hidden_size),
                params["bias"].reshape(4, hidden_size))

    options = (("chrono", chrono),) if chrono is not None else () if forget_bias == 1.0 else \
        (("forget_bias", forget_bias),)
    return cell(init, initial_carry, Split.from_sum(project, product, update), validate=checks.fits(init),
                info=Info("lstm", hidden_size, options=options),
                recurrence=onednn.Recurrence("lstm", onednn_weights, dtype))
