"""How much gradient reaches each step: the lecture's vanishing and exploding gradients, measured.

For a sequence model ``y = f(x_1, ..., x_T)`` the gradient that training
sends back to step ``t`` is ``dy/dx_t``. Through a vanilla RNN,
``h_t = phi(h_{t-1} W + x_t U + b)``, it is a product of ``T - t`` Jacobians::

    dh_T/dh_t = prod_{s=t+1..T} diag(phi'(a_s)) W^T

so its norm shrinks (or grows) geometrically with the distance ``T - t``
when the largest singular value of ``diag(phi') W^T`` stays below (above) 1.
The LSTM's cell state adds a path ``c_t = f_t * c_{t-1} + ...`` whose Jacobian
is the forget gate alone, and the GRU's update gate does the same for ``h``:
their gradient can reach far back.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp


def input_gradient_norms(fn: Callable[[jax.Array], jax.Array], xs: jax.Array) -> jax.Array:
    """``g[t, b] = || d(sum_o y[b, o]) / d xs[t, b] ||_2``: the gradient reaching each step of each sequence.

    Args:
      fn: ``xs -> y``, a model with its parameters bound, whose output ``y:
        (B, ...)`` has one row per sequence that depends on that sequence's
        inputs only (no batch statistics), so one backward pass of ``sum(y)``
        gives every sequence's own gradient.
      xs: ``(T, B, I)``, time-major.

    Returns:
      ``(T, B)``: the Euclidean norm over the input features.
    """
    grads = jax.grad(lambda x: jnp.sum(fn(x)))(xs)
    return jnp.sqrt(jnp.sum(grads.astype(jnp.float32) ** 2, axis=-1))


def decay(norms: jax.Array) -> jax.Array:
    """``log10(g[0] / g[-1])`` per sequence: orders of magnitude between the first step's gradient and the last's.

    Far below 0: the first steps get (next to) no gradient -- it vanished.
    Near 0: every step is heard. Above 0: the early steps' gradient grew -- it exploded.

    A gradient that underflowed to 0 counts as the dtype's smallest normal
    number (``1.2e-38`` in float32), so the result stays finite; it is then
    an upper bound: the true decay is at least that steep.
    """
    tiny = jnp.finfo(norms.dtype).tiny
    return jnp.log10(jnp.maximum(norms[0], tiny)) - jnp.log10(jnp.maximum(norms[-1], tiny))
