"""Linear recurrences, in parallel: ``h_t = a_t * h_{t-1} + b_t`` for a whole sequence in ``O(log T)`` depth.

A recurrence whose coefficients do not depend on ``h`` composes: two steps
``(a_1, b_1)`` then ``(a_2, b_2)`` are one step ``(a_1 a_2, a_2 b_1 + b_2)``,
an associative operation, so every ``h_t`` comes out of a tree of
``O(log T)`` levels (Blelloch 1990; Martin & Cundy 2018): compose the steps
in pairs, solve the half-length recurrence of the pairs, and each pair's
first step is then one step from the state before it. :func:`linear_scan`
does that for diagonal (elementwise) ``a_t``, any batch shape, an initial
state, ``lengths`` and ``reverse``; :func:`gated_scan` takes ``a`` and ``b``
as logs, the form in which the minimal RNNs (``jaxrnn.mingru``,
``jaxrnn.minlstm``) compute their gates; :func:`log_linear_scan` composes in
log space, for positive ``a``, ``b`` and ``h``, where ``h`` itself would
underflow float32. :func:`cell` builds the :class:`~jaxrnn.Part` of a cell
whose carry enters linearly: a token by its ``step``, a sequence at once (the
``"parallel"`` path), a chunk at a time under ``remat``
(:func:`jaxrnn.loop.checkpointed_sequence`).

Precision: each ``h_t`` is ``O(log T)`` compositions deep, each a product and
a sum (of terms of one sign, for positive ``a``, ``b``), so its float32 error
is ``O(log T)`` epsilons at any ``T``, where stepping's is a few. The
log-space form ``log h_t = A_t + logsumexp_s (log b_s - A_s)`` with the
cumulative ``A_t = sum_{s <= t} log a_s`` is not used: ``|A_t|`` grows like
``t``, and ``log b_s - A_s`` then keeps ``|A_t|`` epsilons fewer of
``h_t``'s digits, an error that grows linearly in ``T``.

Derivatives: the tangent of ``h`` is the same recurrence,
``dh_t = a_t dh_{t-1} + (da_t h_{t-1} + db_t)`` (a custom JVP), so reverse
mode transposes a recurrence that is linear in its ``b`` alone (the adjoint
``l_t = g_t + a_{t+1} l_{t+1}``, another tree) instead of differentiating
every level's products of ``a``; forward mode and higher orders work as usual.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from jaxrnn import checks
from jaxrnn.loop import check_lengths, checkpointed_sequence, masked_scan, resolve_path
from jaxrnn.masking import expand, valid_mask
from jaxrnn.parts import Carry, Info, InitFn, InitialCarryFn, Params, Part

__all__ = ["cell", "gated_scan", "linear_scan", "log_linear_scan"]


def cell(init: InitFn, initial_carry: InitialCarryFn, step: Callable, sequence: Callable, *, info: Info,
         validate: Callable | None = None) -> Part:
    """A :class:`~jaxrnn.Part` whose carry enters linearly, ``h_t = a_t(x_t) * h_{t-1} + b_t(x_t)``.

    Args:
      init, initial_carry: the part's.
      step: ``step(params, carry, x) -> (carry, y)``, one token (sampling, streaming).
      sequence: ``sequence(params, xs, carry, *, lengths=None, reverse=False) -> (carry, ys)`` over
        time-major ``xs: (T, *batch, I)``, every step at once, the same function as stepping.
      info: what the part is; its ``paths`` are set here to ``("parallel", "plain")``.
      validate: as :class:`~jaxrnn.Part`'s.
    """
    checks.function("step", step)
    checks.function("sequence", sequence)
    info = dataclasses.replace(info, paths=("parallel", "plain"))

    def run(params: Params, xs: jax.Array, carry: Carry, *, lengths=None, reverse=False, unroll=1, remat=False,
            path="auto", **options) -> tuple[Carry, jax.Array]:
        if resolve_path(path, part, remat=remat) == "plain":
            valid = None if lengths is None else valid_mask(xs.shape[0], lengths)
            return masked_scan(step, params, xs, carry, valid, reverse=reverse, unroll=unroll, remat=remat)
        if remat:  # ~sqrt(T) steps at a time, each chunk recomputed in the backward pass
            return checkpointed_sequence(sequence, params, xs, carry, lengths=lengths, reverse=reverse)
        return sequence(params, xs, carry, lengths=lengths, reverse=reverse)

    part = Part(init, initial_carry, step, run, validate=validate, info=info)
    return part


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
    """``h_t = a_t * h_{t-1} + b_t`` for every ``t`` at once: a tree of ``O(log T)`` levels (module docstring).

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
    hs = _recurrence(a, b.at[first].add(a[first] * h0), reverse)
    final = hs[0] if reverse else hs[-1]
    return final, hs if valid is None else jnp.where(valid, hs, jnp.zeros_like(hs))


class _Space(NamedTuple):
    """The arithmetic of the recurrence: ``times(a_1, a_2)`` composes two ``a``'s, ``step(a, h, b)`` is one
    step, ``one`` the identity ``a`` and ``zero`` the zero state (and ``b`` of the identity step)."""

    times: Callable[[jax.Array, jax.Array], jax.Array]
    step: Callable[[jax.Array, jax.Array, jax.Array], jax.Array]
    one: float
    zero: float


# log 0, kept finite: a log-sum-exp of nothing but -inf has no gradient (0 * inf), this one has 0.
_ZERO = -1e30
_LINEAR = _Space(lambda a1, a2: a1 * a2, lambda a, h, b: a * h + b, 1.0, 0.0)
# in logs: log a_1 + log a_2 and logaddexp(log a + log h, log b). A span's log a is only ever added to a state's
# log, never subtracted from a value of its size; where it is large, the term it weighs is negligible.
_LOG = _Space(lambda a1, a2: a1 + a2, lambda a, h, b: jnp.logaddexp(a + h, b), 0.0, _ZERO)


def _tree(a: jax.Array, b: jax.Array, reverse: bool, space: _Space = _LINEAR) -> jax.Array:
    """``h_t = a_t h_{t-1} + b_t`` from ``h = 0`` (``reverse``: ``h_t = a_t h_{t+1} + b_t``), ``(T, ...)``.

    Steps ``2k`` and ``2k+1`` make one pair; the pair, read in order, is the
    step ``(a_1 a_2, a_2 b_1 + b_2)``, whose half-length recurrence gives ``h``
    after each pair; the state before a pair is the previous pair's, so its
    first step is ``h = a_1 h_before + b_1``. ``log2 T`` levels, each a few
    elementwise operations on reshaped halves: no strided slices, no interior
    padding, and no products of ``a`` on the way down. ``space``: the same in
    logs (:data:`_LOG`).
    """
    time = a.shape[0]
    if time == 1:
        return b
    if time % 2:  # one identity step past the end; it is read last (reverse: first, from h = 0) and cut off
        a = jnp.concatenate([a, jnp.full_like(a[:1], space.one)])
        b = jnp.concatenate([b, jnp.full_like(b[:1], space.zero)])
    a, b = (x.reshape(x.shape[0] // 2, 2, *x.shape[1:]) for x in (a, b))
    first, second = (1, 0) if reverse else (0, 1)  # which of a pair's steps is read first
    a1, a2, b1, b2 = a[:, first], a[:, second], b[:, first], b[:, second]
    h2 = _tree(space.times(a1, a2), space.step(a2, b1, b2), reverse, space)
    h1 = space.step(a1, _shift(h2, reverse, space.zero), b1)
    hs = jnp.stack([h2, h1] if reverse else [h1, h2], axis=1)
    return hs.reshape(2 * hs.shape[0], *hs.shape[2:])[:time]


def _shift(hs: jax.Array, reverse: bool, zero: float = 0.0) -> jax.Array:
    """The state each step starts from, ``h_{t-1}`` (``reverse``: ``h_{t+1}``), ``zero`` before the first."""
    start = jnp.full_like(hs[:1], zero)
    return jnp.concatenate([hs[1:], start] if reverse else [start, hs[:-1]])


@functools.partial(jax.custom_jvp, nondiff_argnums=(2,))
def _recurrence(a: jax.Array, b: jax.Array, reverse: bool) -> jax.Array:
    """:func:`_tree`, with the recurrence's own tangent (module docstring)."""
    return _tree(a, b, reverse)


@_recurrence.defjvp
def _recurrence_jvp(reverse, primals, tangents):
    (a, b), (da, db) = primals, tangents
    hs = _tree(a, b, reverse)
    return hs, _tree(a, da * _shift(hs, reverse) + db, reverse)


# One compiled program, not one per level and operation, when called outside jit; inlined inside it.
_recurrence = jax.jit(_recurrence, static_argnums=2)
_log_tree = jax.jit(functools.partial(_tree, space=_LOG), static_argnums=2)


def gated_scan(log_a: jax.Array, log_b: jax.Array, h0: jax.Array | None = None, *, reverse: bool = False,
               lengths: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
    """``h_t = a_t h_{t-1} + b_t`` with ``a``, ``b`` given as logs, and an initial state of either sign.

    The form the minimal RNNs use: their gates come as logs
    (``log a = -softplus(k)``, computed without ``1 - sigmoid`` cancelling),
    and ``h_t`` is :func:`linear_scan` of ``(exp(log a), exp(log b))``, the
    same products and sums as stepping the cell, in ``O(log T)`` depth. Where a
    product ``a_s ... a_t`` underflows float32 it is 0, as stepping makes it:
    the state stays finite over any length, and so do the gradients.

    Args:
      log_a, log_b: ``(T, *batch, H)``; ``-inf`` is a coefficient of 0.
      h0, reverse, lengths: as for :func:`linear_scan`.

    Returns:
      ``(h_final, hs)``, as :func:`linear_scan`.
    """
    log_a, log_b, _ = _check(log_a, log_b, h0, None, "log a and log b", reverse)
    return linear_scan(jnp.exp(log_a), jnp.exp(log_b), h0, reverse=reverse, lengths=lengths)


def log_linear_scan(log_a: jax.Array, log_b: jax.Array, log_h0: jax.Array | None = None, *, reverse: bool = False,
                    lengths: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
    """:func:`linear_scan` in log space, for positive ``a``, ``b`` and ``h``: ``log h`` from ``log a``, ``log b``.

    The same tree, composing two steps in logs,
    ``(log a_1 + log a_2, logaddexp(log a_2 + log b_1, log b_2))``: finite
    where ``h`` itself underflows float32, and ``O(log T)`` epsilons from the
    exact ``log h_t``.

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
    log_b = jnp.maximum(log_b, _ZERO)
    if valid is not None:  # a padded step is the identity step (log a = 0, b = 0)
        log_a, log_b = jnp.where(valid, log_a, jnp.zeros_like(log_a)), jnp.where(valid, log_b, _ZERO)
    first = -1 if reverse else 0  # the step that meets h0 first
    log_b = log_b.at[first].set(jnp.logaddexp(log_b[first], log_a[first] + log_h0))
    log_hs = _log_tree(log_a, log_b, reverse)
    final = log_hs[0] if reverse else log_hs[-1]
    return final, log_hs if valid is None else jnp.where(valid, log_hs, jnp.full_like(log_hs, -jnp.inf))
