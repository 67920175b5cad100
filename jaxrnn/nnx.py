"""Flax NNX modules around jaxrnn's parts: the same functions, with the parameters held as ``nnx.Param``.

    model = Recurrent(jaxrnn.lstm(64), 8, rngs=nnx.Rngs(0))   # params: part.init(rngs.params(), 8)
    carry, ys = model(xs)                                     # xs (T, *batch, 8) -> ys (T, *batch, 64)

:class:`Recurrent` wraps any part -- a cell, a :func:`jaxrnn.stack`, a
:func:`jaxrnn.bidirectional` layer -- and holds its parameters pytree with
every array an ``nnx.Param`` of its own, in the part's nested dict and tuple
structure, so ``nnx.state``, ``nnx.split``, ``nnx.grad`` and ``nnx.Optimizer``
see them. It adds no computation: ``model(xs, ...)`` is
``jaxrnn.scan(model.part, model.params, xs, ...)`` and ``model.step(carry, x)``
is ``model.part.step(model.params, carry, x)``, values and gradients alike.

Flax is not a dependency of jaxrnn: only this module imports it, and
``import jaxrnn`` does not import this module (``import jaxrnn.nnx``, or
``from jaxrnn import nnx as jnnx``). It is written against Flax 0.12.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

try:
    from flax import nnx
except ImportError as error:
    raise ImportError('jaxrnn.nnx needs flax: pip install "jaxrnn[nnx]" (or flax>=0.12)') from error

if not (hasattr(nnx, "data") and hasattr(nnx.Variable, "get_value")):  # what this module uses of NNX's newer API
    import flax

    raise ImportError(f"jaxrnn.nnx needs flax 0.12 or newer, found {flax.__version__}: pip install -U flax")

from jaxrnn import checks
from jaxrnn.loop import scan
from jaxrnn.parts import BatchShape, Carry, Cell, Params, Part

__all__ = ["Recurrent"]


def _is_variable(x: Any) -> bool:
    return isinstance(x, nnx.Variable)


class Recurrent(nnx.Module):
    """A jaxrnn part as an NNX module: ``(carry, ys) = model(xs)`` over a whole sequence.

    Args:
      part: a :class:`~jaxrnn.Cell` (``jaxrnn.lstm(H)``, ``gru``, ``rnn``,
        ``mingru``, ``minlstm``, a :func:`~jaxrnn.stack` of cells) or a
        :class:`~jaxrnn.Layer` (a :func:`~jaxrnn.bidirectional` layer, a stack
        holding one).
      input_size: ``I``, the size of the input's feature axis (for a part that
        starts with an embedding, the vocabulary size).
      rngs: ``nnx.Rngs``; the parameters are ``part.init(rngs.params(), input_size)``.

    Attributes:
      part: the wrapped part (its functions, no state).
      input_size: ``I``.
      weights: the parameters in ``part.init``'s structure (dicts, and tuples
        with one entry per layer of a stack), every array an ``nnx.Param``;
        ``nnx.state(model)`` shows them under ``weights``.
      params: the same parameters as plain arrays (read-only; set them with
        :meth:`load_params`).

    The carry is the part's: for an LSTM ``(h, c)``, for a stack a tuple with
    one carry per layer, for a bidirectional layer ``(forward, backward)``;
    leaves of shape ``(*batch, H)``.

    Raises:
      TypeError, ValueError: ``part`` is not a jaxrnn part, ``input_size`` not
        a positive integer, or ``rngs`` not an ``nnx.Rngs``.
    """

    def __init__(self, part: Part, input_size: int, *, rngs: nnx.Rngs):
        checks.part("part", part)
        input_size = checks.size("input_size", input_size)
        if not isinstance(rngs, nnx.Rngs):
            raise TypeError(f"rngs: expected a flax.nnx.Rngs (e.g. nnx.Rngs(0)), got {type(rngs).__name__}")
        self.part = part
        self.input_size = input_size
        self.weights = nnx.data(jax.tree.map(nnx.Param, part.init(rngs.params(), input_size)))

    @property
    def params(self) -> Params:
        """The parameters as the plain pytree ``part.init`` makes.

        ``model(xs)`` is ``jaxrnn.scan(model.part, model.params, xs)``, and
        ``model.step(carry, x)`` is ``model.part.step(model.params, carry, x)``.

        Inside ``nnx.jit`` or ``nnx.grad`` the leaves are the traced values, so
        gradients flow through them to the ``nnx.Param``.
        """
        return jax.tree.map(lambda v: v.get_value(), self.weights, is_leaf=_is_variable)

    def load_params(self, params: Params) -> None:
        """Set the parameters in place from a plain pytree of ``part.init``'s structure and shapes.

        For parameters made outside the module: a checkpoint of the functional
        model, :func:`jaxrnn.interop.from_torch`, another module's ``params``.
        Each array is cast to the dtype of the ``nnx.Param`` it replaces.

        Raises:
          ValueError: another tree structure (the params of another part) or
            an array of another shape.
        """
        own = self.params
        if jax.tree.structure(params) != jax.tree.structure(own):
            raise ValueError(f"load_params: expected params of the structure {jax.tree.structure(own)}, "
                             f"got {jax.tree.structure(params)} (the params of another part?)")
        for (path, old), new in zip(jax.tree_util.tree_leaves_with_path(own), jax.tree.leaves(params)):
            if jnp.shape(new) != old.shape:
                raise ValueError(f"load_params: {jax.tree_util.keystr(path)}: expected shape {old.shape}, "
                                 f"got {jnp.shape(new)}")
        jax.tree.map(lambda v, x: v.set_value(jnp.asarray(x, v.get_value().dtype)), self.weights, params,
                     is_leaf=_is_variable)

    def initial_carry(self, batch_shape: BatchShape = (), dtype: Any = jnp.float32) -> Carry:
        """``part.initial_carry(batch_shape, dtype)``: zeros, leaves of shape ``(*batch_shape, H)``.

        An int ``batch_shape`` is a batch of that size.
        """
        return self.part.initial_carry(batch_shape, dtype)

    def __call__(
        self,
        xs: jax.Array,
        carry: Carry | None = None,
        *,
        lengths: jax.Array | None = None,
        reverse: bool = False,
        time_major: bool = True,
        key: jax.Array | None = None,
        **scan_options: Any,
    ) -> tuple[Carry, jax.Array]:
        """Run the part over the time axis of ``xs`` with the module's parameters: :func:`jaxrnn.scan`.

        Args:
          xs: inputs of shape ``(T, *batch, I)`` (``(*batch, T, I)`` with
            ``time_major=False``); integer ids ``(T, *batch)`` for a part that
            starts with an embedding.
          carry: the initial carry, leaves of shape ``(*batch, H)``; ``None``
            starts from zeros.
          lengths: integer array of shape ``batch``: sequence ``b`` is
            ``xs[:lengths[b], b]``, the rest padding (which leaves the carry
            unchanged and outputs zeros).
          reverse: read from ``t = T-1`` down to ``0``; ``ys`` stays in input order.
          time_major: ``False`` for batch-major ``xs`` and ``ys``.
          key: random key for the dropout of a stack (training); ``None``: no dropout.
          **scan_options: ``unroll``, ``remat``, ``path``, ``checked``, as for :func:`jaxrnn.scan`.

        Returns:
          ``(final_carry, ys)``, ``ys`` of shape ``(T, *batch, O)`` (``(*batch, T, O)``
          when not ``time_major``).

        Raises:
          TypeError, ValueError: at trace time, as :func:`jaxrnn.scan` does.
        """
        return scan(self.part, self.params, xs, carry, lengths=lengths, reverse=reverse, time_major=time_major,
                    key=key, **scan_options)

    def step(self, carry: Carry, x: jax.Array, *, key: jax.Array | None = None) -> tuple[Carry, jax.Array]:
        """One time step of a cell: ``part.step(params, carry, x) -> (carry, y)``.

        Args:
          carry: leaves of shape ``(*batch, H)``, e.g. :meth:`initial_carry`.
          x: one step's input, ``(*batch, I)`` (ids ``batch`` for an embedding).
          key: random key for the dropout of a stack; passed on only when given.

        Returns:
          ``(carry, y)``, ``y`` of shape ``(*batch, O)``.

        Raises:
          TypeError: the part is a :class:`~jaxrnn.Layer` (a bidirectional
            layer, a stack holding one), which reads whole sequences.
        """
        if not isinstance(self.part, Cell):
            raise TypeError("step: this module wraps a jaxrnn.Layer (a bidirectional layer, or a stack holding one), "
                            "which must read the whole sequence and cannot be stepped one token at a time; call the "
                            "module on the sequence instead")
        if key is None:
            return self.part.step(self.params, carry, x)
        return self.part.step(self.params, carry, x, key=key)
