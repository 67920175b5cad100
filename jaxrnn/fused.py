"""The fused recurrence: a custom VJP for ``update(carry, xp, product(params, carry))`` over time.

The ``"fused"`` path of :func:`jaxrnn.scan`, the algorithm of cuDNN's RNNs:

* forward: a loop over projected inputs ``xps: (T, *batch, G)`` that keeps per
  step only the carry and the gate pre-activations ``z_t = xp_t + hp_t`` (for a
  cell built with :meth:`~jaxrnn.parts.SplitStep.from_sum`; else ``hp_t``,
  beside ``xps``), not the activations of the elementwise ``update``;
* backward: a loop over the carry only, which recomputes ``update`` from what
  was kept and carries ``dL/dcarry``; the weight gradient
  ``dL/dW_h = sum_t carry_{t-1}^T g_t`` is then one ``(H, T*B) @ (T*B, G)``
  product after the loop, where autodiff of ``lax.scan`` would add one small
  product per step.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

from jaxrnn.masking import expand, mask
from jaxrnn.parts import SplitStep


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1, 2))
def recurrence(step: SplitStep, reverse: bool, unroll: int, params, carry, xps, valid):
    """``(final_carry, ys)`` of ``step.update``/``step.product`` over ``xps: (T, *batch, G)``.

    ``valid: (T, *batch)`` bool or ``None`` masks padding (:mod:`jaxrnn.masking`).
    Differentiable in reverse mode (``grad``, ``vjp``) through :func:`backward`.
    """
    carry, (ys, _) = _loop(step, reverse, unroll, params, carry, xps, valid, save=False)
    return carry, ys


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


def forward(step: SplitStep, reverse: bool, unroll: int, params, carry, xps, valid):
    """The VJP's forward pass: ``((final_carry, ys), residuals)``.

    The residuals hold the params, the mask, every step's carry and ``xp + hp``
    for an additive step whose two products share a dtype (their sum would be
    promoted otherwise, and its cotangent fit neither), else ``xps`` and ``hp``.
    """
    hp = jax.eval_shape(step.product, params, carry)
    summed = step.additive and hp.dtype == xps.dtype
    final, (ys, (prev, saved)) = _loop(step, reverse, unroll, params, carry, xps, valid, save=True, summed=summed)
    return (final, ys), (params, valid, prev, None if summed else xps, saved)


def backward(step: SplitStep, reverse: bool, unroll: int, residuals, cotangents):
    """Backward loop over the carry only; the weight gradient is one big product after it.

    Per step, with ``g_t = dL/dhp_t`` and ``dL/dxp_t`` from the elementwise
    ``update`` (recomputed from the saved carry and products, which costs less
    than storing its activations), ``dL/dcarry_{t-1} = (d update / d carry) +
    g_t @ W_h^T``. Then ``dL/dW_h = sum_t carry_{t-1}^T g_t`` is ``product``'s
    VJP over all steps at once; ``dL/dxps`` flows on to the projection, whose
    own VJP is another big product. Where only the sum was saved,
    ``g_t = dL/dxp_t``: one array, not two.
    """
    params, valid, prev, xps, saved = residuals
    summed = xps is None
    d_final, d_ys = cotangents

    def body(d_carry, inputs):
        ok, carry, xp, hp, dy = inputs
        if ok is not None:  # on padding the carry passed through and the output was zero
            keep = lambda d: jnp.where(expand(ok, d), d, jnp.zeros_like(d))  # noqa: E731
            d_skip = jax.tree_util.tree_map(lambda d: d - keep(d), d_carry)
            d_carry, dy = jax.tree_util.tree_map(keep, d_carry), keep(dy)
        if summed:  # xp holds the sum z = xp + hp
            _, update_vjp = jax.vjp(step.update_sum, carry, xp)
            d_prev, d_xp = update_vjp((d_carry, dy))
            d_hp = d_xp
        else:
            _, update_vjp = jax.vjp(step.update, carry, xp, hp)
            d_prev, d_xp, d_hp = update_vjp((d_carry, dy))
        _, product_vjp = jax.vjp(lambda c: step.product(params, c), carry)
        d_prev = jax.tree_util.tree_map(jnp.add, d_prev, product_vjp(d_hp)[0])
        if ok is not None:
            d_prev = jax.tree_util.tree_map(jnp.add, d_prev, d_skip)
        return d_prev, (d_xp, None if summed else d_hp)

    inputs = (valid, prev, saved, None, d_ys) if summed else (valid, prev, xps, saved, d_ys)
    d_carry, (d_xps, d_hps) = lax.scan(body, d_final, inputs, reverse=not reverse, unroll=unroll)
    _, product_vjp = jax.vjp(step.product, params, prev)
    d_params, _ = product_vjp(d_xps if summed else d_hps)
    return d_params, d_carry, d_xps, None


recurrence.defvjp(forward, backward)
