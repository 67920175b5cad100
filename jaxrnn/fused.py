"""The fused recurrence: ``update(carry, xp, product(params, carry))`` over time, with its own derivative.

The ``"fused"`` path of :func:`jaxrnn.scan`, the algorithm of cuDNN's RNNs:

* forward: a loop over projected inputs ``xps: (T, *batch, G)``. Under
  differentiation it keeps per step only the carry and the gate
  pre-activations ``z_t = xp_t + hp_t`` (for a cell built with
  :meth:`~jaxrnn.split.Split.from_sum`; else ``hp_t``, beside ``xps``),
  not the activations of the elementwise ``update``;
* derivative: a custom JVP, so that forward mode (``jvp``, ``jacfwd``,
  ``hessian``) and reverse mode (``grad``, ``vjp``) both hold. The tangent is

      dhp_t = product(dparams, carry_{t-1}) + product'(params)(dcarry_{t-1})
      (dcarry_t, dy_t) = update'(carry_{t-1}, z_t)(dcarry_{t-1}, dxp_t + dhp_t)

  where the first term is one ``(T*B, H) @ (H, G)`` product over all steps,
  before the loop, and the loop runs only on the carry's tangent. Its body is
  rematerialised, so reverse mode (JAX transposes this tangent) stores nothing
  per step beyond the carry and ``z_t``, recomputes ``update``'s derivative
  from them, carries ``dL/dcarry`` backwards, and forms
  ``dL/dW_h = sum_t carry_{t-1}^T g_t`` as one product after the loop --
  where autodiff of ``lax.scan`` would store every activation and add one
  small product per step.
"""

from __future__ import annotations

import functools

import jax
from jax import lax

from jaxrnn.masking import mask


@functools.partial(jax.custom_jvp, nondiff_argnums=(0, 1, 2))
def recurrence(step, reverse: bool, unroll: int, params, carry, xps, valid):
    """``(final_carry, ys)`` of ``step.update``/``step.product`` over ``xps: (T, *batch, G)``.

    ``valid: (T, *batch)`` bool or ``None`` masks padding (:mod:`jaxrnn.masking`).
    Differentiable in both modes through :func:`_tangent`.
    """
    carry, (ys, _) = _loop(step, reverse, unroll, params, carry, xps, valid, save=False)
    return carry, ys


def _summed(step, params, carry, xps) -> bool:
    """Whether to keep ``xp + hp`` alone: an additive step whose two products share a dtype
    (their sum would be promoted otherwise, and its tangent fit neither)."""
    return step.additive and jax.eval_shape(step.product, params, carry).dtype == xps.dtype


def _loop(step, reverse, unroll, params, carry, xps, valid, *, save, summed=False):
    """The forward loop; with ``save``, also each step's carry and ``xp + hp`` (``summed``) or ``hp``."""

    def body(carry, inputs):
        xp, ok = inputs
        hp = step.product(params, carry)
        new_carry, y = step.update(carry, xp, hp)
        new_carry, y = mask(ok, new_carry, carry, y)
        if not save:
            return new_carry, (y, None)
        return new_carry, (y, (carry, xp + hp if summed else hp))

    return lax.scan(body, carry, (xps, valid), reverse=reverse, unroll=unroll)


@recurrence.defjvp
def _tangent(step, reverse: bool, unroll: int, primals, tangents):
    """The forward loop keeping ``carry_{t-1}`` and ``z_t`` (or ``hp_t``), then the tangent loop over them."""
    params, carry, xps, valid = primals
    d_params, d_carry, d_xps, _ = tangents
    summed = _summed(step, params, carry, xps)
    final, (ys, (prev, saved)) = _loop(step, reverse, unroll, params, carry, xps, valid, save=True, summed=summed)
    # The weights' part of every step's dhp at once (product is linear in params).
    d_hps = jax.jvp(lambda p: step.product(p, prev), (params,), (d_params,))[1]

    if summed:  # z = xp + hp: one tangent input per step (and one cotangent in reverse mode), not two
        d_xps, d_hps = d_xps + d_hps, None

    @jax.checkpoint  # reverse mode recomputes update's derivative from (carry, z) instead of storing it
    def body(d_carry, inputs):
        ok, carry, saved, xp, d_xp, d_hp = inputs
        d_from_carry = jax.jvp(lambda c: step.product(params, c), (carry,), (d_carry,))[1]
        if summed:  # saved is z = xp + hp; d_xp is dz less the carry's part
            d_new, d_y = jax.jvp(step.update_sum, (carry, saved), (d_carry, d_xp + d_from_carry))[1]
        else:  # saved is hp
            d_new, d_y = jax.jvp(step.update, (carry, xp, saved), (d_carry, d_xp, d_hp + d_from_carry))[1]
        return mask(ok, d_new, d_carry, d_y)

    inputs = (valid, prev, saved, None if summed else xps, d_xps, d_hps)
    d_final, d_ys = lax.scan(body, d_carry, inputs, reverse=reverse, unroll=unroll)
    return (final, ys), (d_final, d_ys)
