"""Linear recurrences, in parallel: ``h_t = a_t * h_{t-1} + b_t`` for a whole sequence in ``O(log T)`` depth.

A recurrence whose coefficients do not depend on ``h`` composes: two steps
``(a_1, b_1)`` then ``(a_2, b_2)`` are one step ``(a_1 a_2, a_2 b_1 + b_2)``,
an associative operation, so ``lax.associative_scan`` computes every ``h_t``
at once (Blelloch 1990; Martin & Cundy 2018). :func:`linear_scan` does that
for diagonal (elementwise) ``a_t``, any batch shape, an initial state,
``lengths`` and ``reverse``; :func:`log_linear_scan` does it in log space,
for positive ``a``, ``b`` and ``h``: ``log h_t = A_t + logsumexp_{s <= t}(log b_s - A_s)``
with ``A_t = sum_{s <= t} log a_s`` (Heinsen 2023), which stays finite where
``prod a`` underflows. The minimal RNNs (``jaxrnn.mingru``, ``jaxrnn.minlstm``)
run through it; so can any linear recurrence of yours.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from jaxrnn import checks
from jaxrnn.loop import check_lengths
from jaxrnn.masking import expand, valid_mask


def _check(a: Any, b: Any, h0: Any, lengths: Any, what: str, reverse: Any) -> tuple:
    checks.flag("reverse", reverse)
    a, b = jnp.asarray(a), jnp.asarray(b)
    if a.shape != b.shape or a.ndim < 2:
        raise ValueError(f"expected {what} of one shape (T, *batch, H), got {a.shape} and {b.shape}")
    if not (jnp.issubdtype(a.dtype, jnp.floating) and jnp.issubdtype(b.dtype, jnp.floating)):
        raise TypeError(f"expected floating-point {what}, got dtypes {a.dtype} and {b.dtype}")
    if h0 is not None and jnp.shape(h0) != a.shape[1:]:
        raise ValueError(f"expected an initial state of shape {a.shape[1:]}, got {jnp.shape(h0)}")
    valid = None
    if lengths is not None:  # as jaxrnn.scan checks them: shape, integer dtype, values in [0, T] where known
        valid = expand(valid_mask(a.shape[0], check_lengths(lengths, a.shape[1:-1], a.shape[0])), a)
    return a, b, valid


def linear_scan(a: jax.Array, b: jax.Array, h0: jax.Array | None = None, *, reverse: bool = False,
                lengths: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
    """``h_t = a_t * h_{t-1} + b_t`` for every ``t`` at once, through ``lax.associative_scan``.

    Args:
      a, b: ``(T, *batch, H)``: the elementwise coefficients of each step.
      h0: the state before the first step, ``(*batch, H)``; ``None`` for zeros.
      reverse: run from ``t = T-1`` down to 0 (``h_t = a_t h_{t+1} + b_t``);
        outputs stay in input order.
      lengths: integer ``(*batch,)``: steps at or past a sequence's length
        leave its state as it was and output zero, so the final state is the
        one at its true end (with ``reverse``, each sequence starts from its
        own last element), as in :func:`jaxrnn.scan`.

    Returns:
      ``(h_final, hs)``: ``hs: (T, *batch, H)``, ``h_final: (*batch, H)``.
    """
    a, b, valid = _check(a, b, h0, lengths, "a and b", reverse)
    h0 = jnp.zeros(a.shape[1:], b.dtype) if h0 is None else jnp.asarray(h0, b.dtype)
    if a.shape[0] == 0:
        return h0, b
    if valid is not None:  # a padded step is the identity step (a = 1, b = 0)
        a, b = jnp.where(valid, a, jnp.ones_like(a)), jnp.where(valid, b, jnp.zeros_like(b))
    first = -1 if reverse else 0  # the step that meets h0 first
    b = b.at[first].add(a[first] * h0)

    def compose(earlier, later):
        (a1, b1), (a2, b2) = earlier, later
        return a1 * a2, a2 * b1 + b2

    _, hs = lax.associative_scan(compose, (a, b), reverse=reverse, axis=0)
    final = hs[0] if reverse else hs[-1]
    return final, hs if valid is None else jnp.where(valid, hs, jnp.zeros_like(hs))


def log_linear_scan(log_a: jax.Array, log_b: jax.Array, log_h0: jax.Array | None = None, *, reverse: bool = False,
                    lengths: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
    """:func:`linear_scan` in log space, for positive ``a``, ``b`` and ``h``: ``log h`` from ``log a``, ``log b``.

    ``log h_t = A_t + logsumexp(log h_0, log b_1 - A_1, ..., log b_t - A_t)``, ``A_t = log a_1 + ... + log a_t``:
    a cumulative sum and a cumulative log-sum-exp (both associative), finite
    where ``a_1 ... a_t`` underflows float32 and ``h`` would round to 0. The
    price: ``log h_t`` is a sum of two terms of size ``|A_t|``, so its error
    grows to about ``|A_t|`` float32 epsilons (a relative ``1e-4`` on ``h`` at
    ``A_t = -1000``); :func:`linear_scan` keeps full precision where the
    products stay in range.

    Args:
      log_a, log_b: ``(T, *batch, H)``; ``log b = -inf`` is ``b = 0``.
      log_h0: ``log h_0``, ``(*batch, H)``; ``None`` for ``h_0 = 0``.
      reverse, lengths: as for :func:`linear_scan` (a padding step is
        ``log a = 0``, ``b = 0``; its output ``log h`` is ``-inf``, ``h = 0``).

    Returns:
      ``(log_h_final, log_hs)``.
    """
    log_a, log_b, valid = _check(log_a, log_b, log_h0, lengths, "log a and log b", reverse)
    floor = jnp.full(log_a.shape[1:], _ZERO, log_b.dtype)
    log_h0 = floor if log_h0 is None else jnp.maximum(jnp.asarray(log_h0, log_b.dtype), _ZERO)
    if log_a.shape[0] == 0:
        return log_h0, log_b
    log_a, log_b = _identity_padding(log_a, jnp.maximum(log_b, _ZERO), valid)
    _, log_hs = _log_scan(log_a, log_b, log_h0, reverse)
    final = log_hs[0] if reverse else log_hs[-1]
    return final, log_hs if valid is None else jnp.where(valid, log_hs, jnp.full_like(log_hs, -jnp.inf))


# log 0, kept finite: a log-sum-exp of nothing but -inf has no gradient (0 * inf), this one has 0.
_ZERO = -1e30


def _identity_padding(log_a, log_b, valid):
    """Padded steps as the identity step: ``log a = 0``, ``b = 0``."""
    if valid is None:
        return log_a, log_b
    return jnp.where(valid, log_a, jnp.zeros_like(log_a)), jnp.where(valid, log_b, jnp.full_like(log_b, _ZERO))


def _log_scan(log_a, log_b, log_h0, reverse):
    """``(A, log h)`` of every step, ``A_t`` the cumulative ``log a``; no masking."""
    total = lax.cumsum(log_a, axis=0, reverse=reverse)  # A_t
    terms = log_b - total
    first = -1 if reverse else 0  # h_0 joins as one more term, before the first step
    terms = terms.at[first].set(jnp.logaddexp(terms[first], log_h0))
    return total, total + lax.cumlogsumexp(terms, axis=0, reverse=reverse)


def gated_scan(log_a: jax.Array, log_b: jax.Array, h0: jax.Array | None = None, *, reverse: bool = False,
               lengths: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
    """``h_t = a_t h_{t-1} + b_t`` with positive ``a``, ``b`` given as logs, and an initial state of either sign.

    The part that grows from the ``b``'s is computed in log space (as
    :func:`log_linear_scan` does); the initial state's part, ``h_0 a_1 ... a_t``,
    from ``A_t``; their sum is ``h_t``. The form the minimal RNNs use: finite
    over long sequences where the products underflow, and any carry works; the
    log-space part carries :func:`log_linear_scan`'s error of about ``|A_t|``
    float32 epsilons (a relative ``1e-3`` against :func:`linear_scan` at
    ``A_t = -10^4``).

    Returns:
      ``(h_final, hs)``, as :func:`linear_scan`.
    """
    log_a, log_b, valid = _check(log_a, log_b, h0, lengths, "log a and log b", reverse)
    h0 = jnp.zeros(log_a.shape[1:], log_b.dtype) if h0 is None else jnp.asarray(h0, log_b.dtype)
    if log_a.shape[0] == 0:
        return h0, log_b
    log_a, log_b = _identity_padding(log_a, jnp.maximum(log_b, _ZERO), valid)
    total, log_grown = _log_scan(log_a, log_b, jnp.full_like(h0, _ZERO), reverse)
    hs = jnp.exp(log_grown) + jnp.exp(total) * h0
    final = hs[0] if reverse else hs[-1]
    return final, hs if valid is None else jnp.where(valid, hs, jnp.zeros_like(hs))
