"""Bidirectional layers: one cell reads the sequence forwards, another backwards.

    y_t = merge(h->_t, h<-_t),  h->_t = f(h->_{t-1}, x_t),  h<-_t = g(h<-_{t+1}, x_t)

A bidirectional layer reads the whole sequence before it emits anything, so it
is a :class:`Layer` (a function of sequences), not a :class:`~jaxrnn.Cell`.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from jaxrnn.cells.base import Carry, Cell, Params
from jaxrnn.unroll import scan

MERGES: dict[str, Callable[[jax.Array, jax.Array], jax.Array]] = {
    "concat": lambda f, b: jnp.concatenate([f, b], axis=-1),
    "sum": lambda f, b: f + b,
    "mean": lambda f, b: (f + b) / 2,
    "mul": lambda f, b: f * b,
}


class Layer(NamedTuple):
    """A sequence layer: ``apply(params, xs, carry=None, *, lengths=None, ...) -> (carry, ys)``.

    Attributes:
      init: ``init(key, input_size) -> params``.
      initial_carry: ``initial_carry(batch_shape=(), dtype=float32) -> carry``.
      apply: maps ``xs: (T, *batch, I)`` to ``(final_carry, ys: (T, *batch, O))``.
    """

    init: Callable[[jax.Array, int], Params]
    initial_carry: Callable[..., Carry]
    apply: Callable[..., tuple[Carry, jax.Array]]


def bidirectional(
    forward_cell: Cell,
    backward_cell: Cell,
    merge: str | Callable[[jax.Array, jax.Array], jax.Array] = "concat",
) -> Layer:
    """Run ``forward_cell`` left to right and ``backward_cell`` right to left.

    Args:
      forward_cell, backward_cell: the two directions (often the same factory).
      merge: how ``y_t`` combines the two outputs: ``"concat"`` (default,
        ``(..., O_f + O_b)``), ``"sum"``, ``"mean"``, ``"mul"``, or a callable
        ``merge(y_forward, y_backward)``.

    Params: ``{"forward": ..., "backward": ...}``. ``apply(params, xs, carry=None,
    *, lengths=None, unroll=1, remat=False, key=None, path="auto")`` returns
    ``((carry_forward, carry_backward), ys)``; the options mean what they mean
    for :func:`~jaxrnn.scan` (``key`` is split between the directions). With ``lengths``, the backward direction reads each
    sequence backwards from its own last element (padding stays at the end and
    outputs zeros), and ``carry_backward`` is its state after reading ``x_0``.
    """
    if callable(merge):
        merge_fn = merge
    elif merge in MERGES:
        merge_fn = MERGES[merge]
    else:
        raise ValueError(f"unknown merge {merge!r}; expected one of {', '.join(MERGES)} or a callable")

    def init(key: jax.Array, input_size: int) -> dict[str, Params]:
        k_f, k_b = jax.random.split(key)
        return {"forward": forward_cell.init(k_f, input_size), "backward": backward_cell.init(k_b, input_size)}

    def initial_carry(batch_shape: tuple[int, ...] = (), dtype: Any = jnp.float32) -> tuple[Carry, Carry]:
        return forward_cell.initial_carry(batch_shape, dtype), backward_cell.initial_carry(batch_shape, dtype)

    def apply(params, xs, carry=None, *, lengths=None, unroll=1, remat=False, key=None, path="auto"):
        carry_f, carry_b = (None, None) if carry is None else carry
        key_f, key_b = (None, None) if key is None else jax.random.split(key)
        options = dict(lengths=lengths, unroll=unroll, remat=remat, path=path)
        carry_f, ys_f = scan(forward_cell, params["forward"], xs, carry_f, key=key_f, **options)
        carry_b, ys_b = scan(backward_cell, params["backward"], xs, carry_b, reverse=True, key=key_b, **options)
        return (carry_f, carry_b), merge_fn(ys_f, ys_b)

    return Layer(init, initial_carry, apply)
