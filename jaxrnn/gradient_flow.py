"""How much gradient reaches each step: vanishing and exploding gradients through time, measured.

For a sequence model ``y = f(x_1, ..., x_T)`` the gradient that training
sends back to step ``t`` is ``dy/dx_t``. Through a vanilla RNN,
``h_t = phi(h_{t-1} W + x_t U + b)``, it is a product of ``T - t`` Jacobians::

    dh_T/dh_t = prod_{s=t+1..T} diag(phi'(a_s)) W^T

so its norm shrinks (or grows) geometrically with the distance ``T - t``
when the largest singular value of ``diag(phi') W^T`` stays below (above) 1.
The LSTM's cell state adds a path ``c_t = f_t * c_{t-1} + ...`` whose Jacobian
is the forget gate alone, and the GRU's update gate does the same for ``h``:
their gradient can reach far back.

Two measurements: :func:`input_gradient_norms`, what a trained model's answer
hears of each input; and :func:`state_jacobians` / :func:`state_gradient_norms`,
the product above itself, ``ds_T/ds_{T-k}`` for every distance ``k`` (``s`` the
whole carry: ``h``, and ``c`` for an LSTM), whose per-step growth factor
:func:`decay_rate` fits. :func:`spectral_radius` of the recurrent kernel
predicts it for the linear part.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from jaxrnn.cells.kernels import spectral_radius, with_spectral_radius
from jaxrnn.parts import Part

__all__ = ["decay", "decay_rate", "input_gradient_norms", "spectral_radius", "state_gradient_norms",
           "state_jacobians", "with_spectral_radius"]


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


def state_jacobians(cell: Part, params: Any, xs: jax.Array, carry: Any = None) -> jax.Array:
    """``J[k] = ds_T / ds_{T-k}`` for ``k = 0 .. T``: the product of the step Jacobians, in one backward pass.

    ``s_0`` is the initial carry and ``s_t = step(s_{t-1}, x_t)`` the carry after
    ``t`` inputs, flattened to a vector of ``S`` numbers (``h``; ``h`` then ``c``
    for an LSTM). Row-vector convention, as the cells' ``h @ W``: a change
    ``ds_{T-k}`` moves the last carry by ``ds_{T-k} @ J[k]``; for the linear
    RNN ``h_t = h_{t-1} W + x_t U``, ``J[k] = W^k``. ``J[0]`` is the identity.

    The backward pass is one reverse-mode pass vectorised over the ``S``
    outputs (``jax.jacrev``), through a zero perturbation added to every carry.

    Args:
      cell: a cell (a stack of cells too): it is stepped.
      params: its params.
      xs: one sequence, ``(T, I)``.
      carry: the initial carry (unbatched), or ``None`` for zeros.

    Returns:
      ``(T + 1, S, S)``.
    """
    if not isinstance(cell, Part) or cell.step is None:
        raise TypeError(f"cell: expected a jaxrnn.Part that can be stepped, got {type(cell).__name__}"
                        + (" without a step" if isinstance(cell, Part) else ""))
    xs = jnp.asarray(xs)
    if xs.ndim != 2:
        raise ValueError(f"xs: expected one sequence of shape (T, I), got shape {xs.shape}")
    carry = cell.initial_carry((), jnp.promote_types(xs.dtype, jnp.float32)) if carry is None else carry
    flat, unravel = ravel_pytree(carry)
    add = lambda c, d: jax.tree_util.tree_map(jnp.add, c, unravel(d))  # noqa: E731

    def last_state(deltas):  # deltas[t] perturbs s_t, t = 0 .. T
        def body(c, inputs):
            x, d = inputs
            c, _ = cell.step(params, c, x)
            return add(c, d), None

        final, _ = jax.lax.scan(body, add(carry, deltas[0]), (xs, deltas[1:]))
        return ravel_pytree(final)[0]

    jacobian = jax.jacrev(last_state)(jnp.zeros((xs.shape[0] + 1, flat.size), flat.dtype))  # (S_out, T+1, S_in)
    return jnp.moveaxis(jacobian, 0, -1)[::-1]  # (k, S_in, S_out), k = T - t


def state_gradient_norms(cell: Part, params: Any, xs: jax.Array, carry: Any = None, *, ord: Any = 2) -> jax.Array:
    """``n[k, b] = ||ds_T/ds_{T-k}||`` for every distance ``k = 0 .. T`` and sequence ``b``.

    Args:
      cell, params: as for :func:`state_jacobians`.
      xs: ``(T, *batch, I)``, time-major.
      carry: initial carry with leaves ``(*batch, H)``, or ``None`` for zeros.
      ord: the matrix norm (``jnp.linalg.norm``'s): ``2``, the largest
        singular value, by default; ``"fro"`` for Frobenius.

    Returns:
      ``(T + 1, *batch)``.
    """
    xs = jnp.asarray(xs)
    if xs.ndim < 2:
        raise ValueError(f"xs: expected shape (T, *batch, I), got shape {xs.shape}")
    batch = xs.shape[1:-1]
    flat_xs = xs.reshape(xs.shape[0], -1, xs.shape[-1])
    if carry is None:
        carry = cell.initial_carry(batch, jnp.promote_types(xs.dtype, jnp.float32))
    flat_carry = jax.tree_util.tree_map(lambda a: a.reshape(-1, a.shape[-1]), carry)

    def one(x, c):
        return jnp.linalg.norm(state_jacobians(cell, params, x, c), ord=ord, axis=(-2, -1))

    norms = jax.vmap(one, in_axes=(1, 0), out_axes=1)(flat_xs, flat_carry)
    return norms.reshape(norms.shape[:1] + batch)


def decay_rate(norms: jax.Array) -> jax.Array:
    """The per-step factor ``r`` of ``||ds_T/ds_{T-k}|| ~ C r^k``, fitted over ``k = 1 .. T``.

    ``norms: (T + 1, *batch)`` from :func:`state_gradient_norms`: their
    geometric mean over the batch, then a least-squares line through
    ``log n_k``; ``exp`` of its slope. ``r < 1``: the gradient vanishes,
    ``r > 1``: it grows. Norms that underflowed to 0 are left out of the fit.
    """
    norms = jnp.asarray(norms, jnp.float32)
    logs = jnp.log(jnp.maximum(norms.reshape(norms.shape[0], -1), 0.0))
    finite = jnp.isfinite(logs)
    mean = jnp.sum(jnp.where(finite, logs, 0.0), axis=1) / jnp.maximum(jnp.sum(finite, axis=1), 1)
    used = jnp.all(finite, axis=1) & (jnp.arange(norms.shape[0]) >= 1)
    k = jnp.arange(norms.shape[0], dtype=jnp.float32)
    weight = used.astype(jnp.float32)
    k_mean = jnp.sum(weight * k) / jnp.maximum(jnp.sum(weight), 1.0)
    y_mean = jnp.sum(weight * mean) / jnp.maximum(jnp.sum(weight), 1.0)
    slope = jnp.sum(weight * (k - k_mean) * (mean - y_mean)) / jnp.maximum(jnp.sum(weight * (k - k_mean) ** 2), 1e-12)
    return jnp.exp(slope)
