"""A part's output once it has read the whole sequence: what a many-to-one model answers from.

For a part that reads forwards it is the output at each sequence's last valid
step, ``y_{n-1}``; for one that reads backwards, the output after it has read
``x_0``, ``y_0``. A bidirectional layer merges the two directions' final
outputs -- the forward direction at ``t = n-1``, the backward one at ``t = 0``
(PyTorch's ``h_n`` of both directions, Keras' ``return_sequences=False``) --
which no single time step of its output sequence holds. A stack answers with
its top recurrent layer's final output, passed through the stateless layers
above it.

A part says how it reads its final output through its ``final_output``
function (:class:`~jaxrnn.Part`); parts without one read forwards (or
backwards, with ``reverse``) and answer from their output sequence.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxrnn.loop import scan
from jaxrnn.parts import Params, Part


def final_output(part: Part, params: Params, xs: jax.Array, *, lengths: jax.Array | None = None,
                 key: jax.Array | None = None, reverse: bool = False) -> jax.Array:
    """``part``'s output once it has read each whole sequence of time-major ``xs: (T, *batch, I)``.

    Returns:
      ``(*batch, O)``; zeros for a sequence of length 0.
    """
    if part.final_output is not None:
        return part.final_output(params, xs, lengths=lengths, key=key, reverse=reverse)
    _, ys = scan(part, params, xs, lengths=lengths, key=key, reverse=reverse)
    return first(ys, lengths) if reverse else last(ys, lengths)


def last(ys: jax.Array, lengths: jax.Array | None = None) -> jax.Array:
    """``ys[lengths - 1]`` for each sequence of ``ys: (T, *batch, O)``; ``ys[-1]`` without lengths.

    Zeros for a sequence of length 0.
    """
    if ys.shape[0] == 0:
        return jnp.zeros(ys.shape[1:], ys.dtype)
    if lengths is None:
        return ys[-1]
    lengths = jnp.asarray(lengths)
    index = jnp.clip(lengths - 1, 0, ys.shape[0] - 1)[None, ..., None]
    picked = jnp.take_along_axis(ys, index, axis=0)[0]
    return jnp.where((lengths > 0)[..., None], picked, jnp.zeros_like(picked))


def first(ys: jax.Array, lengths: jax.Array | None = None) -> jax.Array:
    """``ys[0]`` (zeros for a sequence of length 0, whose outputs are all padding)."""
    if ys.shape[0] == 0:
        return jnp.zeros(ys.shape[1:], ys.dtype)
    if lengths is None:
        return ys[0]
    return jnp.where((jnp.asarray(lengths) > 0)[..., None], ys[0], jnp.zeros_like(ys[0]))
