"""The time loop: one function, :func:`scan`, lifts any cell over a sequence.

``scan`` owns the loop and picks how to run it; every way computes the same
function (values and gradients), and the tests hold them to it:

* ``"plain"``: ``lax.scan`` of ``cell.step``, one step at a time.
* ``"projected"``: for a :class:`~jaxrnn.cells.base.SplitStep`, the input
  projection ``x_t @ W_x + b`` of all steps is one ``(T * B, I) @ (I, G)``
  product before the loop; the loop runs only the recurrence.
* ``"fused"``: ``"projected"``, plus a custom VJP for the recurrence of cells
  that give ``product``/``update``: the backward loop carries only
  ``dh @ W_h^T`` and the weight gradient is formed after it as one product
  ``H_{prev}^T dG`` over all time steps, as cuDNN does. The forward pass keeps
  per step only the carry and the gate pre-activations ``xp + hp`` (or, for a
  cell that is not ``additive``, ``hp``, beside the projected inputs ``xps``);
  the backward loop recomputes the elementwise ``update`` from them.

``"auto"`` (the default) takes ``"plain"`` on CPU, where XLA:CPU runs the
per-step loop fastest (see ``benchmarks/``), and the best path the cell allows
on GPU and TPU.
"""

from __future__ import annotations

import functools
import math
import warnings
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxrnn.cells.base import Carry, Cell, Params, SplitStep
from jaxrnn.cells.checks import check_carry_like
from jaxrnn.deep import Stacked, add_residual, check_layers, dropout, layer_key

PATHS = ("auto", "plain", "projected", "fused")
MAX_UNROLL = 16  # steps per loop iteration; see scan's ``unroll``


def check_unroll(unroll: int | bool, steps: int) -> int:
    """``unroll`` as steps per iteration: ``True`` is all ``steps``; at most :data:`MAX_UNROLL`.

    Raises:
      ValueError: ``unroll`` is neither a bool nor a positive integer.
    """
    if isinstance(unroll, (bool, np.bool_)):
        wanted = steps if unroll else 1
    elif isinstance(unroll, (int, np.integer)) and unroll >= 1:
        wanted = int(unroll)
    else:
        raise ValueError(f"unroll: expected a positive integer or a bool, got {unroll!r}")
    wanted = max(1, min(wanted, steps))
    if wanted > MAX_UNROLL:
        warnings.warn(
            f"scan: unroll={unroll!r} would unroll {wanted} steps per iteration; capped at "
            f"jaxrnn.unroll.MAX_UNROLL = {MAX_UNROLL}, as compile time grows much faster than the unroll factor",
            stacklevel=3,
        )
        wanted = MAX_UNROLL
    return wanted


def scan(
    cell: Cell,
    params: Params,
    xs: jax.Array,
    carry: Carry | None = None,
    *,
    reverse: bool = False,
    lengths: jax.Array | None = None,
    unroll: int | bool = 1,
    remat: bool = False,
    key: jax.Array | None = None,
    path: str = "auto",
) -> tuple[Carry, jax.Array]:
    """Run ``cell`` over the time axis of ``xs`` with ``lax.scan``.

    Args:
      cell: the :class:`~jaxrnn.Cell` to run.
      params: its parameters.
      xs: inputs of shape ``(T, *batch, I)``: time is axis 0, features the
        last axis, and any axes between are batch axes.
      carry: the initial carry, leaves of shape ``(*batch, H)``; ``None``
        starts from ``cell.initial_carry(batch)`` (zeros, float32 or wider).
      reverse: run from ``t = T-1`` down to ``0``. Outputs stay in input order:
        ``ys[t]`` is the output after reading ``xs[t]``.
      lengths: integer array of shape ``batch``: sequence ``b`` is
        ``xs[:lengths[b], b]`` and the rest is padding. Padding steps leave the
        carry unchanged and output zeros, so the final carry is the one at the
        sequence's true end (with ``reverse``, each sequence is read backwards
        from its own last element).
      unroll: steps per loop iteration (``lax.scan``'s ``unroll``); ``True``
        unrolls the whole sequence. Capped at :data:`MAX_UNROLL` steps, with a
        warning: compile time grows much faster than the unroll factor while
        run time stops improving long before. Before the cap, an LSTM gradient
        at T=128 (B8 I16 H32, XLA:CPU) compiled in 0.4 s at unroll 1, 1.2 s at
        8, 5 s at 32 and 90 s at 128; ``python -m benchmarks.loop`` measures
        the capped range on any machine.
      remat: store the carry only every ``~sqrt(T)`` steps and recompute the
        steps between in the backward pass (``jax.checkpoint`` of chunks);
        memory ``O(sqrt(T))`` carries plus one chunk's activations instead of
        ``O(T)`` activations, for long sequences, at the cost of one more
        forward pass.
      key: random key for the dropout of a :func:`~jaxrnn.stack`.
      path: ``"auto"``, ``"plain"``, ``"projected"`` or ``"fused"`` (module
        docstring); a path the cell does not support falls back to the next
        simpler one, and ``remat`` never takes ``"fused"``. ``"fused"``
        supports reverse-mode differentiation (``grad``, ``vjp``), not
        forward mode (``jvp``); take ``"projected"`` for that.

    Returns:
      ``(final_carry, ys)``, ``ys`` of shape ``(T, *batch, O)``.

    A :func:`~jaxrnn.stack` runs one layer at a time over the whole sequence,
    which computes the same function as its per-step ``step``.
    """
    xs = jnp.asarray(xs)
    if xs.ndim < 2:
        raise ValueError(f"expected xs of shape (time, ..., features), got shape {xs.shape}")
    if not jnp.issubdtype(xs.dtype, jnp.floating):
        raise TypeError(f"expected floating-point xs, got dtype {xs.dtype}")
    if path not in PATHS:
        raise ValueError(f"unknown path {path!r}; expected one of {', '.join(PATHS)}")
    unroll = check_unroll(unroll, xs.shape[0])
    batch_shape = xs.shape[1:-1]
    if lengths is not None:
        lengths = check_lengths(lengths, batch_shape, xs.shape[0])
    initial = functools.partial(cell.initial_carry, batch_shape, jnp.promote_types(xs.dtype, jnp.float32))
    if carry is None:
        carry = initial()
    else:
        check_carry_like(carry, jax.eval_shape(initial))

    step = cell.step
    if isinstance(step, Stacked):
        return _scan_layers(step, params, xs, carry, key, lengths, reverse=reverse, unroll=unroll, remat=remat, path=path)
    if key is not None:
        raise ValueError("key is only used by the dropout of jaxrnn.stack; this cell draws no random numbers")
    valid = None if lengths is None else _valid_mask(xs.shape[0], lengths)
    path = _resolve_path(path, step, remat)
    if path == "plain":
        return _masked_scan(step, params, xs, carry, valid, reverse=reverse, unroll=unroll, remat=remat)
    if path == "projected":
        xps = step.project(params, xs)
        return _masked_scan(step.recur, params, xps, carry, valid, reverse=reverse, unroll=unroll, remat=remat)
    return _recurrence(step, reverse, unroll, params, carry, step.project(params, xs), valid)


def _resolve_path(path: str, step: Callable, remat: bool) -> str:
    if path == "auto":
        path = "plain" if jax.default_backend() == "cpu" else "fused"
    if path == "fused" and (remat or not isinstance(step, SplitStep) or step.product is None):
        path = "projected"
    if path == "projected" and not isinstance(step, SplitStep):
        path = "plain"
    return path


def _scan_layers(stacked: Stacked, params, xs, carry, key, lengths, **options):
    """A stack, one layer at a time over the whole sequence (same function as per step)."""
    check_layers(params, carry, len(stacked.cells))
    final = []
    for layer, (cell, p, c) in enumerate(zip(stacked.cells, params, carry)):
        inputs = dropout(key, stacked.dropout, layer, xs, time_axis=True) if layer > 0 else xs
        inner_key = layer_key(key, layer) if isinstance(cell.step, Stacked) else None
        c, ys = scan(cell, p, inputs, c, lengths=lengths, key=inner_key, **options)
        xs = add_residual(inputs, ys) if stacked.residual and layer > 0 else ys
        final.append(c)
    return tuple(final), xs


def _masked_scan(body, params, xs, carry, valid, *, reverse, unroll, remat):
    """``lax.scan`` of ``body(params, carry, x)``, freezing carries where ``valid`` is false."""

    def step(carry, inputs):
        x, ok = inputs
        new_carry, y = body(params, carry, x)
        return _mask(ok, new_carry, carry, y)

    if remat:
        return _checkpointed_scan(step, carry, xs, valid, reverse=reverse, unroll=unroll)
    return lax.scan(step, carry, (xs, valid), reverse=reverse, unroll=unroll)


def _checkpointed_scan(step, carry, xs, valid, *, reverse, unroll):
    """``lax.scan(step, ...)`` storing only the carry at every ``K ~ sqrt(T)``-th step.

    The sequence is cut into chunks of ``K`` steps (padded at the end with
    masked steps, which change nothing); the backward pass recomputes one chunk
    at a time. Memory for the backward pass: ``T / K`` carries plus one chunk's
    activations, instead of every step's activations: ``O(sqrt(T))``.
    """
    time, batch_shape = xs.shape[0], xs.shape[1:-1]
    size = _chunk_size(time)
    chunks = -(-time // size)
    pad = chunks * size - time
    if pad:
        valid = jnp.ones((time, *batch_shape), bool) if valid is None else valid
        valid = jnp.concatenate([valid, jnp.zeros((pad, *batch_shape), bool)])
        xs = jnp.concatenate([xs, jnp.zeros((pad, *xs.shape[1:]), xs.dtype)])
    split = lambda a: a.reshape((chunks, size, *a.shape[1:]))  # noqa: E731

    @jax.checkpoint
    def chunk(carry, inputs):
        return lax.scan(step, carry, inputs, reverse=reverse, unroll=unroll)

    carry, ys = lax.scan(chunk, carry, jax.tree_util.tree_map(split, (xs, valid)), reverse=reverse)
    return carry, ys.reshape((chunks * size, *ys.shape[2:]))[:time]


def _chunk_size(time: int) -> int:
    """About ``sqrt(T)``: a divisor of ``T`` where one is near (no padding, no copies), else ``ceil(sqrt(T))``."""
    root = math.isqrt(time - 1) + 1 if time > 0 else 1  # ceil(sqrt(T))
    divisor = max(d for d in range(1, root + 1) if time % d == 0) if time > 0 else 1
    return divisor if 2 * divisor >= root else root


def _mask(ok: jax.Array | None, new_carry: Carry, carry: Carry, y: jax.Array) -> tuple[Carry, jax.Array]:
    """Keep ``carry`` and zero ``y`` where ``ok`` (batch-shaped) is false."""
    if ok is None:
        return new_carry, y
    new_carry = jax.tree_util.tree_map(lambda n, o: jnp.where(_expand(ok, n), n, o), new_carry, carry)
    return new_carry, jnp.where(_expand(ok, y), y, jnp.zeros_like(y))


def _expand(mask: jax.Array, like: jax.Array) -> jax.Array:
    """Append axes to a batch-shaped mask so it broadcasts against ``like``."""
    return mask.reshape(mask.shape + (1,) * (like.ndim - mask.ndim))


def _valid_mask(time: int, lengths: jax.Array) -> jax.Array:
    """``valid[t, b] = t < lengths[b]``, shape ``(T, *batch)``."""
    steps = jnp.arange(time, dtype=lengths.dtype).reshape((time,) + (1,) * lengths.ndim)
    return steps < lengths


def _prefetched_scan(body, carry, xs, *, reverse, unroll):
    """``lax.scan(body, carry, xs)``, with each step's slice of ``xs`` read one step ahead.

    For XLA:CPU; elsewhere this is ``lax.scan``. Inside ``lax.scan`` the
    per-step ``dynamic-slice`` of ``xs`` is fused into the elementwise work
    that reads it, and XLA:CPU emits scalar code for such a fusion when the
    slice is cut again along its last axis, as a cell's ``split`` into gates
    does: the LSTM's cell-state fusion took 55 us per step at B32 H128. Here
    each step's slice is read by the step before it in loop order (its own
    small copy) and travels in the loop state; the fusion stays vectorised
    (9 us). Same function and output order as ``lax.scan``. The backend is
    ``jax.default_backend()``.
    """
    time = jax.tree_util.tree_leaves(xs)[0].shape[0]
    if time == 0 or jax.default_backend() != "cpu":  # a GPU fuses the slice well; a copy would be one more kernel
        return lax.scan(body, carry, xs, reverse=reverse, unroll=unroll)
    at = lambda t: jax.tree_util.tree_map(lambda a: lax.dynamic_index_in_dim(a, t, keepdims=False), xs)  # noqa: E731

    def step(state, t):
        carry, x = state
        following = jnp.clip(t - 1 if reverse else t + 1, 0, time - 1)
        carry, y = body(carry, x)
        return (carry, at(following)), y

    first = time - 1 if reverse else 0
    (carry, _), ys = lax.scan(step, (carry, at(first)), jnp.arange(time), reverse=reverse, unroll=unroll)
    return carry, ys


# --- the fused path: a custom VJP for `update(carry, xp, product(params, carry))` -------------


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1, 2))
def _recurrence(step, reverse, unroll, params, carry, xps, valid):
    """``carry, ys`` of ``step.update``/``step.product`` over projected inputs ``xps: (T, *batch, G)``."""
    carry, (ys, _) = _recurrence_forward(step, reverse, unroll, params, carry, xps, valid, save=False)
    return carry, ys


def _recurrence_forward(step, reverse, unroll, params, carry, xps, valid, *, save, summed=False):
    """The forward loop; with ``save``, also each step's carry and ``xp + hp`` (``summed``) or ``hp``."""

    def body(carry, inputs):
        xp, ok = inputs
        hp = step.product(params, carry)
        new_carry, y = step.update(carry, xp, hp)
        new_carry, y = _mask(ok, new_carry, carry, y)
        if not save:
            return new_carry, (y, None)
        return new_carry, (y, (carry, xp + hp if summed else hp))

    return _prefetched_scan(body, carry, (xps, valid), reverse=reverse, unroll=unroll)


def _recurrence_fwd(step, reverse, unroll, params, carry, xps, valid):
    # An additive cell's update is recomputed from the sum alone, if xp and hp share a dtype (the sum
    # would be promoted, and its cotangent fit neither); otherwise from xp and hp, so xps stays.
    hp = jax.eval_shape(step.product, params, carry)
    summed = step.additive and hp.dtype == xps.dtype
    final, (ys, (prev, saved)) = _recurrence_forward(
        step, reverse, unroll, params, carry, xps, valid, save=True, summed=summed)
    return (final, ys), (params, valid, prev, None if summed else xps, saved)


def _recurrence_bwd(step, reverse, unroll, residuals, cotangents):
    """Backward loop over the carry only; the weight gradient is one big product after it.

    Per step, with ``g_t = dL/dhp_t`` and ``dL/dxp_t`` from the elementwise
    ``update`` (recomputed from the saved carry and products, which costs less
    than storing its activations), ``dL/dcarry_{t-1} = (d update / d carry) +
    g_t @ W_h^T``. Then ``dL/dW_h = sum_t carry_{t-1}^T g_t`` is ``product``'s
    VJP over all steps at once, one ``(H, T*B) @ (T*B, G)`` product;
    ``dL/dxps`` flows on to the projection, whose own VJP is another big
    product. Where only the sum was saved (an additive cell), ``g_t = dL/dxp_t``:
    one array, not two.
    """
    params, valid, prev, xps, saved = residuals
    summed = xps is None
    d_final, d_ys = cotangents

    def body(d_carry, inputs):
        ok, carry, xp, hp, dy = inputs
        if ok is not None:  # on padding the carry passed through and the output was zero
            keep = lambda d: jnp.where(_expand(ok, d), d, jnp.zeros_like(d))  # noqa: E731
            d_skip = jax.tree_util.tree_map(lambda d: d - keep(d), d_carry)
            d_carry, dy = jax.tree_util.tree_map(keep, d_carry), keep(dy)
        if summed:  # xp holds xp + hp: the same update with hp = 0
            _, update_vjp = jax.vjp(lambda c, z: step.update(c, z, jnp.zeros_like(z)), carry, xp)
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
    d_carry, (d_xps, d_hps) = _prefetched_scan(body, d_final, inputs, reverse=not reverse, unroll=unroll)
    _, product_vjp = jax.vjp(step.product, params, prev)
    d_params, _ = product_vjp(d_xps if summed else d_hps)
    return d_params, d_carry, d_xps, None


_recurrence.defvjp(_recurrence_fwd, _recurrence_bwd)


def check_lengths(lengths: Any, batch_shape: tuple[int, ...], time: int) -> jax.Array:
    """Validate ``lengths`` against the batch shape and, when its values are known, against ``[0, T]``."""
    try:  # numpy, lists and concrete arrays have known values, even when captured inside jit
        values = np.asarray(lengths)
    except jax.errors.TracerArrayConversionError:
        values = None  # traced: the values are not known until run time
    lengths = jnp.asarray(lengths)
    if lengths.shape != tuple(batch_shape):
        raise ValueError(f"expected lengths of shape {tuple(batch_shape)} (the batch axes of xs), got {lengths.shape}")
    if not jnp.issubdtype(lengths.dtype, jnp.integer):
        raise TypeError(f"expected integer lengths, got dtype {lengths.dtype}")
    if values is not None and values.size and (values.min() < 0 or values.max() > time):
        raise ValueError(
            f"expected lengths in [0, {time}] (the time axis of xs), got values from {values.min()} to {values.max()}"
        )
    return lengths
