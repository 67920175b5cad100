"""Bidirectional layers: one part reads the sequence forwards, another backwards.

    y_t = merge(h->_t, h<-_t),  h->_t = f(h->_{t-1}, x_t),  h<-_t = g(h<-_{t+1}, x_t)

A bidirectional layer reads the whole sequence before it emits anything, so it
is a :class:`~jaxrnn.Part` without a ``step``: :func:`jaxrnn.scan` runs it, and
:func:`jaxrnn.stack` stacks it (a deep bidirectional encoder is
``stack([bidirectional(...), ...])``).
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

from jaxrnn import checks
from jaxrnn.final_output import final_output
from jaxrnn.loop import scan
from jaxrnn.masking import mask, valid_mask
from jaxrnn.parts import BatchShape, Carry, Info, Params, Part

MERGES: dict[str, Callable[[jax.Array, jax.Array], jax.Array]] = {
    "concat": lambda f, b: jnp.concatenate([f, b], axis=-1),
    "sum": lambda f, b: f + b,
    "mean": lambda f, b: (f + b) / 2,
    "mul": lambda f, b: f * b,
}


def check_params(params: Params) -> None:
    if not isinstance(params, dict) or set(params) != {"forward", "backward"}:
        keys = f" with keys {sorted(params)}" if isinstance(params, dict) else ""
        raise ValueError(f"expected the params of a bidirectional layer, {{'forward': ..., 'backward': ...}}, "
                         f"got {type(params).__name__}" + keys)


def bidirectional(
    forward: Part,
    backward: Part,
    merge: str | Callable[[jax.Array, jax.Array], jax.Array] = "concat",
) -> Part:
    """Run ``forward`` left to right and ``backward`` right to left over the same sequence.

    Args:
      forward, backward: the two directions (often the same factory): cells,
        stacks or layers.
      merge: how ``y_t`` combines the two outputs: ``"concat"`` (default,
        ``(..., O_f + O_b)``), ``"sum"``, ``"mean"``, ``"mul"``, or a callable
        ``merge(y_forward, y_backward)``.

    Returns:
      A :class:`~jaxrnn.Part` without ``step``. Params: ``{"forward": ...,
      "backward": ...}``; carry ``(carry_forward, carry_backward)``. With
      ``lengths``, the backward direction reads each sequence backwards from
      its own last element (padding stays at the end and outputs zeros), and
      ``carry_backward`` is its state after reading ``x_0``. ``reverse`` swaps
      the directions' reading order (the whole layer run on the time-reversed
      sequence).

    Raises:
      TypeError, ValueError: a direction that is not a part, or an unknown merge.
    """
    for name, part in (("forward", forward), ("backward", backward)):
        if not isinstance(part, Part):
            raise TypeError(f"bidirectional: {name} is a {type(part).__name__}; expected a jaxrnn.Part")
    if not callable(merge) and not (isinstance(merge, str) and merge in MERGES):
        raise ValueError(f"unknown merge {merge!r}; expected one of {', '.join(MERGES)} or a callable")
    merged = merge if callable(merge) else MERGES[merge]

    def init(key: jax.Array, input_size: int) -> dict[str, Params]:
        input_size = checks.size("input_size", input_size)
        checks.random_key("key", key)
        k_f, k_b = jax.random.split(key)
        return {"forward": forward.init(k_f, input_size), "backward": backward.init(k_b, input_size)}

    def initial_carry(batch_shape: BatchShape = (), dtype: Any = jnp.float32) -> tuple[Carry, Carry]:
        return forward.initial_carry(batch_shape, dtype), backward.initial_carry(batch_shape, dtype)

    def combine(y_f: jax.Array, y_b: jax.Array, valid: jax.Array | None) -> jax.Array:
        """The two directions' outputs merged; zero where ``valid`` is false (padding, a sequence of length 0)."""
        if merge in ("sum", "mean", "mul") and y_f.shape != y_b.shape:
            raise ValueError(f"merge {merge!r} needs the two directions' outputs to be the same size: forward "
                             f"{y_f.shape[-1]}, backward {y_b.shape[-1]} (merge 'concat' takes any sizes)")
        return mask(valid, (), (), merged(y_f, y_b))[1]  # whatever the merge makes of two zeros

    def sequence(params: Params, xs: jax.Array, carry: tuple[Carry, Carry], *, reverse: bool = False,
                 key: jax.Array | None = None, **options) -> tuple[tuple[Carry, Carry], jax.Array]:
        check_params(params)
        carry_f, carry_b = carry
        key_f, key_b = (None, None) if key is None else jax.random.split(key)
        carry_f, ys_f = scan(forward, params["forward"], xs, carry_f, reverse=reverse, key=key_f, **options)
        carry_b, ys_b = scan(backward, params["backward"], xs, carry_b, reverse=not reverse, key=key_b, **options)
        lengths = options.get("lengths")
        valid = None if lengths is None else valid_mask(xs.shape[0], lengths)
        return (carry_f, carry_b), combine(ys_f, ys_b, valid)

    def final(params: Params, xs: jax.Array, *, lengths: jax.Array | None = None, key: jax.Array | None = None,
              reverse: bool = False) -> jax.Array:
        """``merge(y->_{n-1}, y<-_0)``: each direction's output once it has read the whole sequence, ``(*batch, O)``."""
        check_params(params)
        key_f, key_b = (None, None) if key is None else jax.random.split(key)
        y_f = final_output(forward, params["forward"], xs, lengths=lengths, key=key_f, reverse=reverse)
        y_b = final_output(backward, params["backward"], xs, lengths=lengths, key=key_b, reverse=not reverse)
        return combine(y_f, y_b, None if lengths is None else jnp.asarray(lengths) > 0)

    def validate(params: Params, xs: Any, checked: bool) -> None:
        check_params(params)
        if forward.validate is not None:  # both directions read the same input
            forward.validate(params["forward"], xs, checked)

    sizes = forward.info.size, backward.info.size
    known = None not in sizes and not callable(merge)
    size = (sum(sizes) if merge == "concat" else sizes[0] if sizes[0] == sizes[1] else None) if known else None
    info = Info("bidirectional", size, reads_ids=forward.info.reads_ids, paths=(), parts=(forward, backward),
                options=() if merge == "concat" else (("merge", merge),))
    return Part(init, initial_carry, None, sequence, final, validate, info)
