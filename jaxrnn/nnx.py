"""Flax NNX modules around jaxrnn's parts: the same functions, with the parameters held as ``nnx.Param``.

    model = Recurrent(jaxrnn.lstm(64), 8, rngs=nnx.Rngs(0))   # params: part.init(rngs.params(), 8)
    carry, ys = model(xs)                                     # xs (*batch, T, 8) -> ys (*batch, T, 64)

:class:`Recurrent` wraps any part -- a cell, a :func:`jaxrnn.stack`, a
:func:`jaxrnn.bidirectional` layer -- and holds its parameters pytree with
every array an ``nnx.Param`` of its own, in the part's nested dict and tuple
structure, so ``nnx.state``, ``nnx.split``, ``nnx.grad`` and ``nnx.Optimizer``
see them. It adds no computation: ``model(xs, ...)`` is
``jaxrnn.scan(model.part, params, xs, time_major=False, key=..., ...)`` with
``params = nnx.as_pure(model.params)``, values and gradients alike.

It behaves as Flax's own modules do: batch-major by default, as ``nnx.RNN``
(``time_major=True`` for jaxrnn's layout), and dropout (of a stack built with
``dropout=``) as ``nnx.Dropout``: on in training mode, the default, with a key
drawn from the ``dropout`` stream of the ``rngs`` it was built with, off after
``model.eval()`` (``deterministic=True``) until ``model.train()``.

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
from jaxrnn.parts import BatchShape, Carry, Params, Part

__all__ = ["Recurrent"]


def _is_variable(x: Any) -> bool:
    return isinstance(x, nnx.Variable)


def _values(params: Any) -> Params:
    """The arrays of a tree of ``nnx.Param``: ``nnx.as_pure`` (``nnx.pure`` before Flax 0.12.7)."""
    return jax.tree.map(lambda v: v.get_value(), params, is_leaf=_is_variable)


def _is_key(value: Any) -> bool:
    typed = isinstance(value, jax.Array) and jnp.issubdtype(value.dtype, jax.dtypes.prng_key)
    legacy = isinstance(value, jax.Array) and value.shape == (2,) and value.dtype == jnp.uint32
    return typed or legacy


class Recurrent(nnx.Module):
    """A jaxrnn part as an NNX module: ``(carry, ys) = model(xs)`` over a whole sequence.

    Args:
      part: a cell (``jaxrnn.lstm(H)``, ``gru``, ``rnn``, ``mingru``,
        ``minlstm``), a :func:`~jaxrnn.stack`, a :func:`~jaxrnn.bidirectional`
        layer: any jaxrnn part.
      input_size: ``I``, the size of the input's feature axis (for a part that
        starts with an embedding, the vocabulary size).
      time_major: ``False`` (the default, as ``nnx.RNN``): inputs ``(*batch, T, I)``
        and outputs ``(*batch, T, O)``; ``True``: ``(T, *batch, I)``, jaxrnn's layout.
      deterministic: ``False`` (the default, as ``nnx.Dropout``): training mode,
        dropout on; ``True``: no dropout. ``model.train()`` and ``model.eval()``
        set it, for this module and any module that holds it.
      rng_collection: the stream of ``rngs`` that dropout keys are drawn from.
      rngs: ``nnx.Rngs``; the parameters are ``part.init(rngs.params(), input_size)``,
        and the module keeps a fork of ``rngs[rng_collection]`` (the ``default``
        stream when there is no ``dropout`` stream) to draw one dropout key per
        call in training mode.

    Attributes:
      part: the wrapped part (its functions, no state).
      input_size: ``I``.
      params: the parameters in ``part.init``'s structure (dicts, and tuples
        with one entry per layer of a stack), every array an ``nnx.Param``;
        ``nnx.state(model)`` shows them under ``params``. ``nnx.as_pure(model.params)``
        (``nnx.pure`` before Flax 0.12.7) is the plain pytree of arrays;
        :meth:`load_params` sets it.
      time_major, deterministic, rng_collection: as given.
      rngs: the ``nnx.RngStream`` dropout keys are drawn from (``None`` if
        ``rngs`` had neither a ``rng_collection`` nor a ``default`` stream).

    The carry is the part's: for an LSTM ``(h, c)``, for a stack a tuple with
    one carry per layer, for a bidirectional layer ``(forward, backward)``;
    leaves of shape ``(*batch, H)``.

    Raises:
      TypeError, ValueError: ``part`` is not a jaxrnn part, ``input_size`` not
        a positive integer, ``time_major`` or ``deterministic`` not a bool,
        ``rng_collection`` not a name, or ``rngs`` not an ``nnx.Rngs``.
    """

    def __init__(self, part: Part, input_size: int, *, time_major: bool = False, deterministic: bool = False,
                 rng_collection: str = "dropout", rngs: nnx.Rngs):
        checks.part("part", part)
        input_size = checks.size("input_size", input_size)
        time_major = checks.flag("time_major", time_major)
        deterministic = checks.flag("deterministic", deterministic)
        if not isinstance(rng_collection, str) or not rng_collection:
            raise TypeError(f"rng_collection: expected the name of an rng stream (e.g. 'dropout'), "
                            f"got {rng_collection!r}")
        if not isinstance(rngs, nnx.Rngs):
            raise TypeError(f"rngs: expected a flax.nnx.Rngs (e.g. nnx.Rngs(0)), got {type(rngs).__name__}")
        self.part = part
        self.input_size = input_size
        self.time_major = time_major
        self.deterministic = deterministic
        self.rng_collection = rng_collection
        self.params = nnx.data(jax.tree.map(nnx.Param, part.init(rngs.params(), input_size)))
        try:
            self.rngs = rngs[rng_collection].fork()
        except KeyError:  # no such stream, and no default one: eval mode, or keys given with each call
            self.rngs = nnx.data(None)

    def load_params(self, params: Params) -> None:
        """Set the parameters in place from a plain pytree of ``part.init``'s structure and shapes.

        For parameters made outside the module: a checkpoint of the functional
        model, :func:`jaxrnn.interop.from_torch`, another module's
        ``nnx.as_pure(model.params)``. Each array is cast to the dtype of the
        ``nnx.Param`` it replaces.

        Raises:
          ValueError: another tree structure (the params of another part) or
            an array of another shape.
        """
        own = _values(self.params)
        if jax.tree.structure(params) != jax.tree.structure(own):
            raise ValueError(f"load_params: expected params of the structure {jax.tree.structure(own)}, "
                             f"got {jax.tree.structure(params)} (the params of another part?)")
        for (path, old), new in zip(jax.tree_util.tree_leaves_with_path(own), jax.tree.leaves(params)):
            if jnp.shape(new) != old.shape:
                raise ValueError(f"load_params: {jax.tree_util.keystr(path)}: expected shape {old.shape}, "
                                 f"got {jnp.shape(new)}")
        jax.tree.map(lambda v, x: v.set_value(jnp.asarray(x, v.get_value().dtype)), self.params, params,
                     is_leaf=_is_variable)

    def initial_carry(self, batch_shape: BatchShape = (), dtype: Any = jnp.float32) -> Carry:
        """``part.initial_carry(batch_shape, dtype)``: zeros, leaves of shape ``(*batch_shape, H)``.

        An int ``batch_shape`` is a batch of that size.
        """
        return self.part.initial_carry(batch_shape, dtype)

    def set_view(self, deterministic: bool | None = None) -> None:
        """For ``nnx.view(model, deterministic=...)``, as ``nnx.Dropout``'s.

        Args:
          deterministic: if True, no dropout.
        """
        if deterministic is not None:
            self.deterministic = checks.flag("deterministic", deterministic)

    def _dropout_key(self, deterministic: bool | None, rngs: Any) -> jax.Array | None:
        """The key for this call's dropout: ``None`` when deterministic, else one drawn from ``rngs`` or the module's
        stream (which it advances), as ``nnx.Dropout`` draws its key."""
        if rngs is not None and not isinstance(rngs, (nnx.Rngs, nnx.RngStream)) and not _is_key(rngs):
            raise TypeError(f"rngs: expected a flax.nnx.Rngs, a flax.nnx.RngStream or a random key "
                            f"(jax.random.key(seed)), got {type(rngs).__name__}")
        deterministic = self.deterministic if deterministic is None else checks.flag("deterministic", deterministic)
        if deterministic:
            return None
        source = self.rngs if rngs is None else rngs
        if source is None:
            raise ValueError(f"deterministic is False (training mode, with dropout), but the module has no "
                             f"{self.rng_collection!r} rng stream: build it with nnx.Rngs(params=..., "
                             f"{self.rng_collection}=...), pass rngs= to the call, or call model.eval()")
        if isinstance(source, nnx.Rngs):
            return source[self.rng_collection]()
        if isinstance(source, nnx.RngStream):
            return source()
        return source

    def __call__(
        self,
        xs: jax.Array,
        carry: Carry | None = None,
        *,
        lengths: jax.Array | None = None,
        reverse: bool = False,
        time_major: bool | None = None,
        deterministic: bool | None = None,
        rngs: nnx.Rngs | nnx.RngStream | jax.Array | None = None,
        **scan_options: Any,
    ) -> tuple[Carry, jax.Array]:
        """Run the part over the time axis of ``xs`` with the module's parameters: :func:`jaxrnn.scan`.

        Args:
          xs: inputs of shape ``(*batch, T, I)`` (``(T, *batch, I)`` when
            time-major); integer ids ``(*batch, T)`` for a part that starts with
            an embedding.
          carry: the initial carry, leaves of shape ``(*batch, H)``; ``None``
            starts from zeros.
          lengths: integer array of shape ``batch``: sequence ``b`` is its first
            ``lengths[b]`` steps, the rest padding (which leaves the carry
            unchanged and outputs zeros).
          reverse: read from ``t = T-1`` down to ``0``; ``ys`` stays in input order.
          time_major: overrides the module's ``time_major`` for this call.
          deterministic: overrides the module's ``deterministic`` for this call.
          rngs: where this call's dropout key comes from, in place of the module's
            stream: an ``nnx.Rngs`` (its ``rng_collection`` stream), an
            ``nnx.RngStream``, or a key. Unused when deterministic.
          **scan_options: ``unroll``, ``remat``, ``path``, ``checked``, as for :func:`jaxrnn.scan`.

        Returns:
          ``(final_carry, ys)``, ``ys`` of shape ``(*batch, T, O)`` (``(T, *batch, O)``
          when time-major).

        Raises:
          TypeError, ValueError: a bad ``time_major``, ``deterministic`` or
            ``rngs``, ``key=`` (give ``rngs=``), training mode without an rng
            stream; at trace time, what :func:`jaxrnn.scan` raises.
        """
        if "key" in scan_options:
            raise TypeError("key: Recurrent draws its dropout key from its rngs stream in training mode; to give "
                            "one key, pass rngs=key (and model.eval() or deterministic=True for no dropout)")
        time_major = self.time_major if time_major is None else checks.flag("time_major", time_major)
        key = self._dropout_key(deterministic, rngs)
        return scan(self.part, _values(self.params), xs, carry, lengths=lengths, reverse=reverse,
                    time_major=time_major, key=key, **scan_options)

    def step(self, carry: Carry, x: jax.Array, *, deterministic: bool | None = None,
             rngs: nnx.Rngs | nnx.RngStream | jax.Array | None = None) -> tuple[Carry, jax.Array]:
        """One time step: ``part.step(params, carry, x) -> (carry, y)`` (with a dropout key in training mode).

        Args:
          carry: leaves of shape ``(*batch, H)``, e.g. :meth:`initial_carry`.
          x: one step's input, ``(*batch, I)`` (ids ``batch`` for an embedding).
          deterministic, rngs: as for calling the module.

        Returns:
          ``(carry, y)``, ``y`` of shape ``(*batch, O)``.

        Raises:
          TypeError: the part cannot be stepped (a bidirectional layer, a stack
            holding one: it must read the whole sequence); a bad ``deterministic`` or ``rngs``.
        """
        if self.part.step is None:
            raise TypeError("step: this module wraps a part that must read the whole sequence (a bidirectional "
                            "layer, or a stack holding one) and cannot be stepped one token at a time; call the "
                            "module on the sequence instead")
        key = self._dropout_key(deterministic, rngs)
        return self.part.step(_values(self.params), carry, x, key=key)  # every part's step takes a key
