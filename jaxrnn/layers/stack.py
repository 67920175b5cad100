"""Deep recurrent networks: parts stacked so each layer reads the one below.

    h^(l)_t = f_l(h^(l)_{t-1}, y^(l-1)_t),      y^(0)_t = x_t

A stack of cells is itself a :class:`~jaxrnn.Cell`, whose carry is the tuple of
the layers' carries: it can be stepped one token at a time (generation needs
that), and everything that takes a cell takes it. A stack holding a
:class:`~jaxrnn.Layer` (a bidirectional layer, say) must read whole sequences,
so it is a ``Layer``. Either runs over a sequence with :func:`jaxrnn.scan`,
one layer at a time over the whole sequence, which computes the same function
as stepping every layer at each time step, with bigger matrix products.
"""

from __future__ import annotations

import dataclasses
import numbers
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxrnn import checks
from jaxrnn.final_output import final_output, first, last
from jaxrnn.loop import scan
from jaxrnn.parts import BatchShape, Carry, Cell, Composite, Layer, Params, Part, Pointwise, behaviour, reads_ids


@dataclasses.dataclass(frozen=True)
class Stacked(Composite):
    """The layers of a :func:`stack`, bottom first.

    Calling it is one step of every layer (a stack of cells only);
    :meth:`scan` runs each layer over the whole sequence in turn.
    """

    parts: tuple[Part, ...]
    residual: bool
    dropout: float

    @property
    def reads_ids(self) -> bool:
        """Whether the bottom layer reads integer ids (an embedding)."""
        return reads_ids(self.parts[0])

    def reader(self, params: Params) -> tuple[Part, Params]:
        """The layer that reads the stack's input, and its params."""
        return self.parts[0], params[0]

    def __call__(self, params: Params, carry: Carry, x: jax.Array, key: jax.Array | None = None):
        check_layers(params, carry, len(self.parts))
        new_carry = []
        for layer, (part, p, c) in enumerate(zip(self.parts, params, carry)):
            if layer > 0:
                x = dropout(key, self.dropout, layer, x)
            if isinstance(part.step, Composite):  # a stack inside a stack draws its own masks
                c, y = part.step(p, c, x, key=layer_key(key, layer))
            else:
                c, y = part.step(p, c, x)
            x = add_residual(x, y) if self.residual and layer > 0 else y
            new_carry.append(c)
        return tuple(new_carry), x

    def scan(self, params: Params, xs: jax.Array, carry: Carry | None = None, *, key: jax.Array | None = None,
             **options) -> tuple[Carry, jax.Array]:
        """One layer at a time over the whole sequence ``xs: (T, *batch, I)``; the options of :func:`jaxrnn.scan`."""
        carry = (None,) * len(self.parts) if carry is None else carry
        check_layers(params, carry, len(self.parts))
        return self._run(params, xs, carry, len(self.parts), key=key, **options)

    def _run(self, params: Params, xs: jax.Array, carry: Carry, layers: int, *, key: jax.Array | None,
             **options) -> tuple[Carry, jax.Array]:
        """The bottom ``layers`` layers over the whole sequence: their final carries and the top one's outputs."""
        final = []
        for layer, (part, p, c) in enumerate(zip(self.parts[:layers], params, carry)):
            inputs = dropout(key, self.dropout, layer, xs, time_axis=True) if layer > 0 else xs
            c, ys = scan(part, p, inputs, c, key=layer_key(key, layer), **options)
            xs = add_residual(inputs, ys) if self.residual and layer > 0 else ys
            final.append(c)
        return tuple(final), xs

    def final_output(self, params: Params, xs: jax.Array, *, lengths: jax.Array | None = None,
                     key: jax.Array | None = None, reverse: bool = False) -> jax.Array:
        """The top recurrent layer's final output, through the stateless layers above it.

        See :mod:`jaxrnn.final_output`.
        """
        check_layers(params, (None,) * len(self.parts), len(self.parts))
        stateless = [isinstance(part, Cell) and isinstance(part.step, Pointwise) for part in self.parts]
        if all(stateless):
            _, ys = self.scan(params, xs, key=key, lengths=lengths, reverse=reverse)
            return (first if reverse else last)(ys, lengths)
        top = max(layer for layer, pointwise in enumerate(stateless) if not pointwise)
        _, xs = self._run(params, xs, (None,) * top, top, key=key, lengths=lengths, reverse=reverse)
        inputs = dropout(key, self.dropout, top, xs, time_axis=True) if top > 0 else xs
        y = final_output(self.parts[top], params[top], inputs, lengths=lengths, key=layer_key(key, top),
                         reverse=reverse)
        if self.residual and top > 0:
            if isinstance(self.parts[top], Layer):
                raise ValueError("a many-to-one answer from a residual stack whose top recurrent layer is a layer "
                                 "(a bidirectional one) is not defined: its directions end at different steps, so "
                                 "no one input step is added to their final outputs; drop residual on the top layer")
            y = add_residual((first if reverse else last)(inputs, lengths), y)
        for layer in range(top + 1, len(self.parts)):
            x = dropout(key, self.dropout, layer, y)
            _, out = self.parts[layer].step(params[layer], (), x)
            y = add_residual(x, out) if self.residual else out
        return y

def stack(parts: Sequence[Part], *, residual: bool = False, dropout: float = 0.0) -> Cell | Layer:
    """A deep network: ``parts[0]`` reads the input, each next part reads the one below.

    Args:
      parts: the layers, bottom first: cells, stacks, bidirectional layers, readouts.
      residual: add each layer's input to its output, from the second layer
        on (``y^(l) = h^(l) + y^(l-1)``); sizes must match.
      dropout: rate of dropout on the input of every layer but the first
        (variational: one mask for all time steps, Gal & Ghahramani 2016). It
        applies only when a key is passed (``jaxrnn.scan(..., key=k)`` or
        ``step(..., key=k)``), that is, in training.

    Returns:
      A :class:`~jaxrnn.Cell` if every part is a cell, else a
      :class:`~jaxrnn.Layer`. Params and carry are tuples with one entry per layer.

    Raises:
      TypeError, ValueError: no parts, a part that is neither a cell nor a layer,
        a rate outside ``[0, 1)``, or dropout asked of a single layer (it has
        no layer input to drop).
    """
    if isinstance(parts, (Cell, Layer)):
        raise TypeError(f"stack: expected a list of parts, got one {type(parts).__name__}; write stack([part, ...])")
    parts = tuple(parts)
    if not parts:
        raise ValueError("stack needs at least one cell")
    for n, part in enumerate(parts):
        if not isinstance(part, (Cell, Layer)):
            raise TypeError(f"stack: part {n} is a {type(part).__name__}; expected a jaxrnn.Cell or jaxrnn.Layer")
    checks.flag("residual", residual)
    if isinstance(dropout, (bool, np.bool_)) or not isinstance(dropout, (numbers.Real, np.floating)):
        raise TypeError(f"dropout: expected a number in [0, 1), got {dropout!r}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"expected dropout in [0, 1), got {dropout!r}")
    for name, value, acts_on in (("dropout", dropout, "drops the input of"),
                                 ("residual", residual, "adds the input to")):
        if value and len(parts) == 1:
            raise ValueError(f"{name}={value} would do nothing: it {acts_on} every layer but the first, "
                             "and this stack has one layer")
    stacked = Stacked(parts, residual, float(dropout))

    def init(key: jax.Array, input_size: int) -> tuple[Params, ...]:
        input_size = checks.size("input_size", input_size)
        checks.random_key("key", key)
        params = []
        for part, k in zip(parts, jax.random.split(key, len(parts))):
            params.append(part.init(k, input_size))
            input_size = output_features(part, params[-1], input_size)
        return tuple(params)

    def initial_carry(batch_shape: BatchShape = (), dtype: Any = jnp.float32) -> tuple[Carry, ...]:
        return tuple(part.initial_carry(batch_shape, dtype) for part in parts)

    if all(isinstance(part, Cell) for part in parts):
        return Cell(init, initial_carry, stacked)
    return Layer(init, initial_carry, stacked.scan)


def layers_of(part: Part) -> Stacked | None:
    """The :class:`Stacked` layers of a :func:`stack`, or ``None`` for any other part."""
    runs = behaviour(part)
    return runs if isinstance(runs, Stacked) else None


def output_features(part: Part, params: Params, input_size: int) -> int:
    """Feature size of ``part``'s output, found by tracing it on one step (no FLOPs)."""
    if reads_ids(part):
        xs = jax.ShapeDtypeStruct((1,), jnp.int32)
    else:
        xs = jax.ShapeDtypeStruct((1, input_size), jnp.float32)
    _, ys = jax.eval_shape(lambda p, x: scan(part, p, x), params, xs)
    return ys.shape[-1]


def dropout(key: jax.Array | None, rate: float, layer: int, x: jax.Array, time_axis: bool = False) -> jax.Array:
    """Inverted dropout of layer ``layer``'s input, with one mask for all time steps.

    The mask depends on ``(key, layer)`` and the batch/feature shape only
    (variational dropout, Gal & Ghahramani 2016), so the per-step and the
    layer-at-a-time evaluation of a stack draw the same mask. With
    ``time_axis=True``, ``x`` is a whole sequence ``(T, ..., F)``.
    """
    if key is None or rate == 0.0:
        return x
    shape = x.shape[1:] if time_axis else x.shape
    keep = jax.random.bernoulli(jax.random.split(jax.random.fold_in(key, layer))[0], 1.0 - rate, shape)
    return jnp.where(keep, x / (1.0 - rate), 0.0).astype(x.dtype)


def layer_key(key: jax.Array | None, layer: int) -> jax.Array | None:
    """The key handed to layer ``layer`` itself: the other half of the split whose first half draws its mask."""
    return None if key is None else jax.random.split(jax.random.fold_in(key, layer))[1]


def add_residual(x: jax.Array, y: jax.Array) -> jax.Array:
    if x.shape[-1] != y.shape[-1]:
        raise ValueError(f"residual connection needs equal sizes: layer input {x.shape[-1]}, output {y.shape[-1]}")
    return x + y


def check_layers(params: Params, carry: Carry, n: int) -> None:
    for name, tree in (("params", params), ("carry", carry)):
        if not isinstance(tree, (tuple, list)) or len(tree) != n:
            raise ValueError(f"expected {name} of a {n}-layer stack to be a tuple of {n}, got {type(tree).__name__}"
                             + (f" of {len(tree)}" if isinstance(tree, (tuple, list)) else ""))
