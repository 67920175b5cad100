"""Deep recurrent networks: parts stacked so each layer reads the one below.

    h^(l)_t = f_l(h^(l)_{t-1}, y^(l-1)_t),      y^(0)_t = x_t

A stack is a :class:`~jaxrnn.Part` like any other, whatever it holds; its
params and carry are tuples with one entry per layer. :func:`jaxrnn.scan` runs
it one layer at a time over the whole sequence, which computes the same
function as stepping every layer at each time step, with bigger matrix
products. When every layer can be stepped (cells, readouts), so can the stack
(generation needs that); a stack holding a bidirectional layer reads whole
sequences only (``step`` is ``None``). :func:`jaxrnn.get_layer_carry` and
:func:`jaxrnn.set_layer_carry` read and replace one layer's carry.
"""

from __future__ import annotations

import numbers
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxrnn import checks
from jaxrnn.final_output import final_output, first, last
from jaxrnn.loop import scan
from jaxrnn.parts import BatchShape, Carry, Info, Params, Part


def stack(parts: Sequence[Part], *, residual: bool = False, dropout: float = 0.0) -> Part:
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
      A :class:`~jaxrnn.Part`; params and carry are tuples with one entry per
      layer; ``step`` is ``None`` unless every layer has one.

    Raises:
      TypeError, ValueError: no parts, a part that is not a part, a rate
        outside ``[0, 1)``, or dropout asked of a single layer (it has no
        layer input to drop).
    """
    if isinstance(parts, Part):
        raise TypeError("stack: expected a list of parts, got one part; write stack([part, ...])")
    parts = tuple(parts)
    if not parts:
        raise ValueError("stack needs at least one part")
    for n, part in enumerate(parts):
        if not isinstance(part, Part):
            raise TypeError(f"stack: part {n} is a {type(part).__name__}; expected a jaxrnn.Part")
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
    rate = float(dropout)
    n = len(parts)

    def init(key: jax.Array, input_size: int) -> tuple[Params, ...]:
        input_size = checks.size("input_size", input_size)
        checks.random_key("key", key)
        params = []
        for part, k in zip(parts, jax.random.split(key, n)):
            params.append(part.init(k, input_size))
            input_size = output_features(part, params[-1], input_size)
        return tuple(params)

    def initial_carry(batch_shape: BatchShape = (), dtype: Any = jnp.float32) -> tuple[Carry, ...]:
        return tuple(part.initial_carry(batch_shape, dtype) for part in parts)

    def step(params: Params, carry: Carry, x: jax.Array, *, key: jax.Array | None = None):
        check_layers(params, carry, n)
        new_carry = []
        for layer, (part, p, c) in enumerate(zip(parts, params, carry)):
            if layer > 0:
                x = _dropout(key, rate, layer, x)
            c, y = part.step(p, c, x, key=layer_key(key, layer))
            x = add_residual(x, y) if residual and layer > 0 else y
            new_carry.append(c)
        return tuple(new_carry), x

    def run(params: Params, xs: jax.Array, carry: Carry, layers: int, *, key: jax.Array | None,
            **options) -> tuple[Carry, jax.Array]:
        """The bottom ``layers`` layers over the whole sequence: their final carries and the top one's outputs."""
        final = []
        for layer, (part, p, c) in enumerate(zip(parts[:layers], params, carry)):
            inputs = _dropout(key, rate, layer, xs, time_axis=True) if layer > 0 else xs
            c, ys = scan(part, p, inputs, c, key=layer_key(key, layer), **options)
            xs = add_residual(inputs, ys) if residual and layer > 0 else ys
            final.append(c)
        return tuple(final), xs

    def sequence(params: Params, xs: jax.Array, carry: Carry, *, key: jax.Array | None = None,
                 **options) -> tuple[Carry, jax.Array]:
        check_layers(params, carry, n)
        return run(params, xs, carry, n, key=key, **options)

    def final(params: Params, xs: jax.Array, *, lengths: jax.Array | None = None, key: jax.Array | None = None,
              reverse: bool = False) -> jax.Array:
        """The top recurrent layer's final output, through the stateless layers above it
        (:mod:`jaxrnn.final_output`)."""
        check_layers(params, (None,) * n, n)
        recurrent = [layer for layer, part in enumerate(parts) if not is_stateless(part)]
        if not recurrent:
            _, ys = run(params, xs, (None,) * n, n, key=key, lengths=lengths, reverse=reverse)
            return (first if reverse else last)(ys, lengths)
        top = recurrent[-1]
        _, xs = run(params, xs, (None,) * top, top, key=key, lengths=lengths, reverse=reverse)
        inputs = _dropout(key, rate, top, xs, time_axis=True) if top > 0 else xs
        y = final_output(parts[top], params[top], inputs, lengths=lengths, key=layer_key(key, top), reverse=reverse)
        if residual and top > 0:
            if parts[top].step is None:
                raise ValueError("a many-to-one answer from a residual stack whose top recurrent layer reads whole "
                                 "sequences (a bidirectional one) is not defined: its directions end at different "
                                 "steps, so no one input step is added to their final outputs; drop residual on "
                                 "the top layer")
            y = add_residual((first if reverse else last)(inputs, lengths), y)
        for layer in range(top + 1, n):
            x = _dropout(key, rate, layer, y)
            _, out = parts[layer].step(params[layer], parts[layer].initial_carry(), x, key=layer_key(key, layer))
            y = add_residual(x, out) if residual else out
        return y

    def validate(params: Params, xs: Any, checked: bool) -> None:
        check_layers(params, (None,) * n, n)
        if parts[0].validate is not None:
            parts[0].validate(params[0], xs, checked)

    options = tuple((k, v) for k, v in (("residual", residual), ("dropout", rate)) if v)
    info = Info("stack", parts[-1].info.size, reads_ids=parts[0].info.reads_ids, paths=(), parts=parts,
                options=options)
    steppable = all(part.step is not None for part in parts)
    return Part(init, initial_carry, step if steppable else None, sequence, final, validate, info)


def is_stateless(part: Part) -> bool:
    """Whether ``part`` keeps no state (a readout, an embedding, a stack of them): its carry has no arrays."""
    return part.step is not None and not jax.tree_util.tree_leaves(part.initial_carry())


def output_features(part: Part, params: Params, input_size: int) -> int:
    """Feature size of ``part``'s output, found by tracing it on one step (no FLOPs)."""
    if part.info.reads_ids:
        xs = jax.ShapeDtypeStruct((1,), jnp.int32)
    else:
        xs = jax.ShapeDtypeStruct((1, input_size), jnp.float32)
    _, ys = jax.eval_shape(lambda p, x: scan(part, p, x), params, xs)
    return ys.shape[-1]


def _dropout(key: jax.Array | None, rate: float, layer: int, x: jax.Array, time_axis: bool = False) -> jax.Array:
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
