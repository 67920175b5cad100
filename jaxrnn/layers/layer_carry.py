"""One layer's carry inside a part made of parts: read it, or replace it.

A stack's carry is a tuple with one entry per layer, and a bidirectional
layer's is ``(carry_forward, carry_backward)``; a layer is named by its index,
or by a tuple of indices through nested parts (``(1, 0)``: the forward
direction of the second layer). An encoder-decoder hands the encoder's final
state to the decoder this way::

    state, _ = jaxrnn.scan(encoder, enc_params, source)          # encoder = stack([embedding(E), lstm(H)])
    carry = decoder.initial_carry(batch)                         # decoder = stack([embedding(E), lstm(H), linear(V)])
    carry = jaxrnn.set_layer_carry(decoder, carry, 1, jaxrnn.get_layer_carry(encoder, state, 1))
"""

from __future__ import annotations

from typing import Any

from jaxrnn.checks import check_carry_like
from jaxrnn.parts import Carry, Part, describe

Layer = int | tuple[int, ...]


def _path(layer: Any) -> tuple[int, ...]:
    path = layer if isinstance(layer, tuple) else (layer,)
    if not path or not all(isinstance(i, int) and not isinstance(i, bool) for i in path):
        raise TypeError(f"layer: expected an int or a non-empty tuple of ints, got {layer!r}")
    return path


def _slot(part: Part, carry: Carry, index: int, path: tuple[int, ...]) -> tuple[Part, int]:
    """The sub-part at ``index`` of ``part`` and the index as a non-negative int."""
    if not isinstance(part, Part):
        raise TypeError(f"expected a jaxrnn.Part, got {type(part).__name__}")
    inner = part.info.parts
    if part.info.kind not in ("stack", "bidirectional") or not inner:
        raise TypeError(f"layer {path}: {describe(part)} has no layers (only a stack or a bidirectional layer has)")
    if not -len(inner) <= index < len(inner):
        raise IndexError(f"layer {path}: index {index} out of range for {describe(part)}, which has "
                         f"{len(inner)} layers")
    if not isinstance(carry, tuple) or len(carry) != len(inner):
        raise ValueError(f"expected the carry of {describe(part)}, a tuple of {len(inner)}, got "
                         f"{type(carry).__name__}" + (f" of {len(carry)}" if isinstance(carry, tuple) else ""))
    index %= len(inner)
    return inner[index], index


def get_layer_carry(part: Part, carry: Carry, layer: Layer) -> Carry:
    """The carry of layer ``layer`` of ``part`` (a stack, a bidirectional layer) within its ``carry``.

    Args:
      part: the stack or bidirectional layer whose carry ``carry`` is.
      carry: its carry (:func:`jaxrnn.scan`'s final carry, ``initial_carry``'s).
      layer: an index into ``part``'s layers (negative counts from the top), or a
        tuple of indices through nested parts.

    Raises:
      TypeError, IndexError, ValueError: a part without layers, an index out of
        range, or a carry of another part.
    """
    path = _path(layer)
    for index in path:
        part, index = _slot(part, carry, index, path)
        carry = carry[index]
    return carry


def set_layer_carry(part: Part, carry: Carry, layer: Layer, value: Carry) -> Carry:
    """``carry`` with layer ``layer``'s carry replaced by ``value``; ``carry`` itself is unchanged.

    ``value`` must have the structure and shapes of the carry it replaces (a
    plain ``(h, c)`` is taken as an :class:`~jaxrnn.LSTMState`).

    Raises:
      TypeError, IndexError, ValueError: as :func:`get_layer_carry`, or a
        ``value`` that does not fit.
    """
    return _set(part, carry, _path(layer), 0, value)


def _set(part: Part, carry: Carry, path: tuple[int, ...], depth: int, value: Carry) -> Carry:
    """``carry`` with the layer at ``path[depth:]`` replaced; errors name the whole ``path``."""
    inner, index = _slot(part, carry, path[depth], path)
    if depth + 1 < len(path):
        value = _set(inner, carry[index], path, depth + 1, value)
    else:
        try:
            value = check_carry_like(value, carry[index])
        except ValueError as error:
            raise ValueError(f"layer {path} ({describe(inner)}): {error}") from None
    return carry[:index] + (value,) + carry[index + 1:]
