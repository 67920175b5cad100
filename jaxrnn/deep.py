"""Deep recurrent networks: cells stacked so each layer reads the one below.

    h^(l)_t = f_l(h^(l)_{t-1}, h^(l-1)_t),      h^(0)_t = x_t

The stack is itself a :class:`~jaxrnn.Cell` whose carry is the tuple of the
layers' carries, so everything that takes a cell takes a stack.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import jax
import jax.numpy as jnp

from jaxrnn.cells.base import Carry, Cell, Params


def output_size(cell: Cell, params: Params, input_size: int) -> int:
    """Feature size of ``cell``'s output ``y``, found by tracing one step (no FLOPs)."""
    x = jax.ShapeDtypeStruct((input_size,), jnp.float32)
    _, y = jax.eval_shape(cell.step, params, cell.initial_carry(), x)
    return y.shape[-1]


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
    keep = jax.random.bernoulli(jax.random.fold_in(key, layer), 1.0 - rate, shape)
    return jnp.where(keep, x / (1.0 - rate), 0.0).astype(x.dtype)


@dataclasses.dataclass(frozen=True)
class Stacked:
    """The step of a :func:`stack`: one step of every layer, bottom to top.

    Calling it is the per-step function; :func:`jaxrnn.scan` sees through it and
    runs each layer over the whole sequence in turn, which computes the same
    function with bigger matrix products.
    """

    cells: tuple[Cell, ...]
    residual: bool
    dropout: float

    def __call__(self, params: Params, carry: Carry, x: jax.Array, key: jax.Array | None = None):
        check_layers(params, carry, len(self.cells))
        new_carry = []
        for layer, (cell, p, c) in enumerate(zip(self.cells, params, carry)):
            if layer > 0:
                x = dropout(key, self.dropout, layer, x)
            if isinstance(cell.step, Stacked):  # a stack inside a stack draws its own masks
                c, y = cell.step(p, c, x, key=layer_key(key, layer))
            else:
                c, y = cell.step(p, c, x)
            x = add_residual(x, y) if self.residual and layer > 0 else y
            new_carry.append(c)
        return tuple(new_carry), x


def layer_key(key: jax.Array | None, layer: int) -> jax.Array | None:
    """The key of a stack nested as layer ``layer`` (independent of the masks ``dropout`` draws)."""
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


def stack(cells: Sequence[Cell], *, residual: bool = False, dropout: float = 0.0) -> Cell:
    """A deep RNN: ``cells[0]`` reads the input, each next cell reads the one below.

    Args:
      cells: the layers, bottom first.
      residual: add each layer's input to its output, from the second layer
        on (``y^(l) = h^(l) + y^(l-1)``); sizes must match.
      dropout: rate of dropout on the input of every layer but the first. It
        applies only when a key is passed (``step(..., key=k)`` or
        ``jaxrnn.scan(..., key=k)``); one mask serves all time steps.

    Params and carry are tuples with one entry per layer.
    """
    cells = tuple(cells)
    if not cells:
        raise ValueError("stack needs at least one cell")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"expected dropout in [0, 1), got {dropout}")

    def init(key: jax.Array, input_size: int) -> tuple[Params, ...]:
        params = []
        for cell, k in zip(cells, jax.random.split(key, len(cells))):
            params.append(cell.init(k, input_size))
            input_size = output_size(cell, params[-1], input_size)
        return tuple(params)

    def initial_carry(batch_shape: tuple[int, ...] = (), dtype: Any = jnp.float32) -> tuple[Carry, ...]:
        return tuple(cell.initial_carry(batch_shape, dtype) for cell in cells)

    return Cell(init, initial_carry, Stacked(cells, residual, dropout))
