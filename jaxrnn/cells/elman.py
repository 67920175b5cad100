"""The vanilla (Elman) recurrent cell, and the IRNN (Le et al. 2015).

    h_t = phi(h_{t-1} W + x_t U + b)

(written row-vector style, ``x @ U``, as the arrays are laid out). Its gradient
through time is a product of ``diag(phi'(.)) W^T`` factors, which is why it
vanishes or explodes over long dependencies; the gated cells are the remedy.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp

from jaxrnn import checks, onednn
from jaxrnn.cells.activations import ACTIVATIONS, resolve_activation
from jaxrnn.cells.kernels import Initializer, glorot_uniform, identity, matmul, orthogonal, scaled_to_radius
from jaxrnn.checks import check_carry, check_hidden, check_input, check_kernel
from jaxrnn.parts import BatchShape, Info, Part, zeros_carry
from jaxrnn.split import Split, cell


def activation_name(activation: str | Callable[[jax.Array], jax.Array]) -> str | None:
    """The name of ``activation`` in ``ACTIVATIONS`` (``jnp.tanh`` is ``"tanh"``), or ``None``."""
    if isinstance(activation, str):
        return activation
    # by identity: what a function of the user's computes cannot be known, so it has no name
    return next((name for name, fn in ACTIVATIONS.items() if fn is activation), None)


def rnn(
    hidden_size: int,
    *,
    activation: str | Callable[[jax.Array], jax.Array] = jnp.tanh,
    use_bias: bool = True,
    param_dtype: Any = jnp.float32,
    dtype: Any | None = None,
    kernel_init: Initializer = glorot_uniform,
    recurrent_init: Initializer = orthogonal,
    spectral_radius: float | None = None,
) -> Part:
    """Elman cell ``h_t = phi(h_{t-1} @ W + x_t @ U + b)``; carry and output are ``h_t``.

    Args:
      hidden_size: ``H``, the size of ``h_t``.
      activation: ``phi``; a callable or a name (``"tanh"``, ``"relu"`` for
        IRNN-style use with ``recurrent_init=jax.nn.initializers.identity()``, ...).
      use_bias: whether to add ``b``.
      param_dtype: dtype of the parameters.
      dtype: dtype the matrix products are computed in (e.g. ``jnp.bfloat16``);
        ``None`` computes in the parameters' dtype. The carry keeps its dtype.
      kernel_init, recurrent_init: initialisers of ``U`` and ``W``.
      spectral_radius: scale the initial ``W`` to this spectral radius
        ``rho(W) = max |lambda_i(W)|`` (an orthogonal ``W`` has radius 1): below 1
        the gradient through time vanishes geometrically, above 1 it can explode.

    Params: ``input_kernel: (I, H)`` (``U``), ``recurrent_kernel: (H, H)``
    (``W``), ``bias: (H,)`` (``b``, when ``use_bias``).

    ``info.activation`` names ``phi`` (``None`` for a function of yours): the
    parameters are the same for every ``phi``, so nothing else tells a ReLU
    cell from a tanh one (:mod:`jaxrnn.interop` reads it).

    Raises:
      TypeError, ValueError: an argument of the wrong type or out of range.
    """
    hidden_size = checks.cell_arguments(hidden_size, param_dtype, dtype, kernel_init, recurrent_init)
    phi = resolve_activation(activation)
    checks.flag("use_bias", use_bias)
    if spectral_radius is not None:
        if checks.number("spectral_radius", spectral_radius) <= 0:
            raise ValueError(f"spectral_radius: expected a positive number, got {spectral_radius!r}")
        recurrent_init = scaled_to_radius(recurrent_init, spectral_radius)

    def init(key: jax.Array, input_size: int) -> dict[str, jax.Array]:
        input_size = checks.size("input_size", input_size)
        checks.random_key("key", key)
        k_in, k_rec = jax.random.split(key)
        params = {
            "input_kernel": kernel_init(k_in, (input_size, hidden_size), param_dtype),
            "recurrent_kernel": recurrent_init(k_rec, (hidden_size, hidden_size), param_dtype),
        }
        if use_bias:
            params["bias"] = jnp.zeros((hidden_size,), param_dtype)
        return params

    def initial_carry(batch_shape: BatchShape = (), dtype: Any = jnp.float32) -> jax.Array:
        return zeros_carry(hidden_size, batch_shape, dtype)

    def project(params: dict[str, jax.Array], x: jax.Array) -> jax.Array:
        check_input(x, params["input_kernel"].shape[0])
        xp = matmul(x, params["input_kernel"], dtype)
        return xp + params["bias"].astype(xp.dtype) if use_bias else xp

    def product(params: dict[str, jax.Array], h: jax.Array) -> jax.Array:
        check_hidden(h, hidden_size, 1)
        check_kernel(params, "recurrent_kernel", (hidden_size, hidden_size))
        return matmul(h, params["recurrent_kernel"], dtype)

    def update(h: jax.Array, z: jax.Array) -> tuple[jax.Array, jax.Array]:
        check_carry(h, z.shape[:-1] + (hidden_size,), 1)
        h = phi(z.astype(h.dtype))
        return h, h

    def onednn_weights(params: dict[str, jax.Array]) -> tuple[jax.Array, jax.Array, jax.Array]:
        kernel = params["input_kernel"]
        bias = params["bias"] if use_bias else jnp.zeros((hidden_size,), kernel.dtype)
        return (kernel.reshape(kernel.shape[0], 1, hidden_size),
                params["recurrent_kernel"].reshape(hidden_size, 1, hidden_size), bias.reshape(1, hidden_size))

    name = activation_name(activation)
    options = () if use_bias else (("use_bias", False),)
    if spectral_radius is not None:
        options += (("spectral_radius", spectral_radius),)
    recurrence = onednn.Recurrence(f"rnn_{name}", onednn_weights, dtype) if name in ("tanh", "relu") else None
    return cell(init, initial_carry, Split.from_sum(project, product, update), validate=checks.fits(init),
                info=Info("rnn", hidden_size, activation=name, options=options), recurrence=recurrence)


def irnn(hidden_size: int, **options) -> Part:
    """The IRNN of Le et al. (2015): a ReLU Elman cell whose recurrent kernel starts as the identity.

    ``h_t = relu(h_{t-1} W + x_t U + b)`` with ``W = I`` and ``b = 0`` at
    initialisation: the state is copied forward unchanged until training says
    otherwise, so the gradient neither vanishes nor explodes at first.
    ``options`` are :func:`rnn`'s (``spectral_radius`` scales ``I``).
    """
    part = rnn(hidden_size, activation="relu", recurrent_init=identity, **options)
    options = (("recurrent_init", "identity"), *part.info.options)  # describe: the call that builds it
    return part._replace(info=dataclasses.replace(part.info, variant="irnn", options=options))
