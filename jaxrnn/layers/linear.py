"""A linear readout as a part: ``y_t = x_t W + b`` at every step, no state.

As the top layer of a :func:`~jaxrnn.stack` it turns a recurrent network into
a sequence model, ``h_t = f(h_{t-1}, x_t)``, ``y_t = h_t W + b`` (per-step
logits, the latent autoregressive model's prediction), and a stack of cells
with a readout on top can still be stepped. :func:`jaxrnn.scan` applies it to
the whole sequence at once: one ``(T * B, H) @ (H, O)`` product.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxrnn import checks
from jaxrnn.cells.kernels import Initializer, glorot_uniform, matmul
from jaxrnn.checks import check_input
from jaxrnn.parts import Info, Part, stateless


def linear(
    features: int,
    *,
    use_bias: bool = True,
    param_dtype: Any = jnp.float32,
    dtype: Any | None = None,
    kernel_init: Initializer = glorot_uniform,
) -> Part:
    """``y = x @ kernel + bias`` over the last axis, as a part without state (carry ``()``).

    Args:
      features: ``O``, the output size.
      use_bias: whether to add ``bias``.
      param_dtype: dtype of the parameters.
      dtype: dtype the product is computed in; ``None``: the operands'.
      kernel_init: initialiser of ``kernel`` (Glorot-uniform).

    Params: ``kernel: (I, O)``, ``bias: (O,)`` (zeros, when ``use_bias``).
    """
    features = checks.size("features", features)
    checks.flag("use_bias", use_bias)
    checks.floating_dtype("param_dtype", param_dtype)
    checks.floating_dtype("dtype", dtype, optional=True)
    checks.function("kernel_init", kernel_init)

    def init(key: jax.Array, input_size: int) -> dict[str, jax.Array]:
        input_size = checks.size("input_size", input_size)
        checks.random_key("key", key)
        params = {"kernel": kernel_init(key, (input_size, features), param_dtype)}
        if use_bias:
            params["bias"] = jnp.zeros((features,), param_dtype)
        return params

    def apply(params: dict[str, jax.Array], x: jax.Array) -> jax.Array:
        check_input(x, params["kernel"].shape[0])
        y = matmul(x, params["kernel"], dtype)
        return y + params["bias"].astype(y.dtype) if use_bias else y

    options = () if use_bias else (("use_bias", False),)
    return stateless(init, apply, validate=checks.fits(init), info=Info("linear", features, options=options))
