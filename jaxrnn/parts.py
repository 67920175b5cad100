"""The one contract every part keeps: :class:`Part`, and :class:`Info`, what a part says it is.

A part is to a recurrent network what Optax's ``GradientTransformation`` is to
an optimiser: a ``NamedTuple`` of pure functions built by a small factory.
Cells (:func:`jaxrnn.lstm`, ...), stateless layers (:func:`jaxrnn.linear`,
:func:`jaxrnn.embedding`), stacks and bidirectional layers are all parts, and
every function that takes a part takes any of them::

    params = part.init(key, input_size)                 # a pytree of arrays
    carry = part.initial_carry(batch_shape)             # zeros, leaves (*batch, H)
    carry, y = part.step(params, carry, x, key=None)    # one time step (None: whole sequences only)
    carry, ys = part.sequence(params, xs, carry, **options)  # a whole sequence (None: scan loops step)

:func:`jaxrnn.scan` checks its arguments, then asks the part: it calls
``sequence`` when the part has one, else loops ``step``. The fast ways of
running a sequence (the input projection taken out of the loop, the fused
recurrence, the associative scan) are constructors that build a part whose
``sequence`` runs them (:mod:`jaxrnn.split`, :mod:`jaxrnn.linear_recurrence`),
not kinds that ``scan`` tells apart.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any, Callable, NamedTuple, Protocol

import jax
import jax.numpy as jnp
import numpy as np

from jaxrnn.masking import mask, valid_mask

__all__ = ["Info", "Model", "Part", "batch_tuple", "describe", "stateless", "zeros_carry"]

Array = jax.Array
Params = Any  # a pytree of arrays
Carry = Any  # a pytree of arrays whose leaves have shape batch_shape + (features,)
BatchShape = int | tuple[int, ...]


class InitFn(Protocol):
    def __call__(self, key: Array, input_size: int) -> Params: ...


class InitialCarryFn(Protocol):
    def __call__(self, batch_shape: BatchShape = (), dtype: Any = jnp.float32) -> Carry: ...


class StepFn(Protocol):
    def __call__(self, params: Params, carry: Carry, x: Array, *, key: Array | None = None
                 ) -> tuple[Carry, Array]: ...


class SequenceFn(Protocol):
    def __call__(self, params: Params, xs: Array, carry: Carry, *, lengths: Array | None, reverse: bool,
                 unroll: int, remat: bool, path: str, key: Array | None, **checked: bool) -> tuple[Carry, Array]: ...


@dataclasses.dataclass(frozen=True)
class Info:
    """What a part is, for the code that reads parts: interop, the NNX wrapper, ``jaxrnn list``, error messages.

    Attributes:
      kind: the factory's name (``"lstm"``, ``"gru"``, ``"stack"``, ...); ``"custom"`` for a part of yours.
      size: the feature size of the part's output (a cell's ``hidden_size``), or ``None`` where it depends
        on the input.
      activation: the name of the cell's nonlinearity (``"tanh"``, ``"relu"``), where it has one that can vary.
      variant: which form of the cell (``"reset_after"`` for the cuDNN GRU), or ``None``.
      reads_ids: the input is integer ids ``(T, *batch)``, not features ``(T, *batch, I)`` (an embedding,
        or a part that starts with one).
      paths: the ways :func:`jaxrnn.scan` can run the part's own loop, best first (``"plain"`` is the loop of
        ``step``); empty for a part without a loop of its own (a readout, a stack, a bidirectional layer).
      parts: the parts it is made of (a stack's layers, bottom first; a bidirectional layer's two
        directions), each describing itself.
      options: the factory's other arguments, as ``(name, value)`` pairs, for :func:`describe`.
    """

    kind: str = "custom"
    size: int | None = None
    activation: str | None = None
    variant: str | None = None
    reads_ids: bool = False
    paths: tuple[str, ...] = ("plain",)
    parts: tuple["Part", ...] = ()
    options: tuple[tuple[str, Any], ...] = ()

    def option(self, name: str, default: Any = None) -> Any:
        """The factory argument ``name``, or ``default``."""
        return dict(self.options).get(name, default)


class _Fields(NamedTuple):
    init: InitFn
    initial_carry: InitialCarryFn
    step: StepFn | None = None
    sequence: SequenceFn | None = None
    final_output: Callable[..., Array] | None = None
    validate: Callable[[Params, Any, bool], None] | None = None
    info: Info = Info()


class Part(_Fields):
    """A part of a recurrent network: pure functions and a description, nothing else.

    Attributes:
      init: ``init(key, input_size) -> params``, a pytree of arrays.
      initial_carry: ``initial_carry(batch_shape=(), dtype=float32) -> carry``:
        zeros, each leaf of shape ``batch_shape + (H,)``; an int is a batch of
        that size; ``()`` for a part without state.
      step: ``step(params, carry, x, *, key=None) -> (carry, y)``, one time step,
        ``x: (*batch, I)``; ``None`` for a part that must read the whole
        sequence before it answers (a bidirectional layer). A ``step`` that
        takes no ``key`` is wrapped to accept and ignore one.
      sequence: ``sequence(params, xs, carry, *, lengths, reverse, unroll,
        remat, path, key) -> (carry, ys)`` over time-major ``xs: (T, *batch, I)``,
        the options as :func:`jaxrnn.scan` checked them (``checked=True`` too,
        only when set); padding in ``xs`` is already zero, and the part keeps
        its carry and outputs zeros at padded steps (:mod:`jaxrnn.masking`).
        ``None``: :func:`jaxrnn.scan` loops ``step``.
      final_output: ``final_output(params, xs, *, lengths, key, reverse) -> y``, the output once the
        part has read each whole sequence (:mod:`jaxrnn.final_output`); ``None``: the output at
        each sequence's last step.
      validate: ``validate(params, xs, checked)`` raises where the input does not
        fit the params: a feature size the kernels do not take, ids outside the
        vocabulary. ``xs`` is numpy where its values are known; with ``checked``,
        traced values are checked through :mod:`jax.experimental.checkify`.
      info: an :class:`Info`, what the part is.

    A :class:`Part` built with three arguments, ``Part(init, initial_carry,
    step)``, is a cell: :func:`jaxrnn.scan` runs it with ``lax.scan``.

    Raises:
      TypeError: a function that is not callable, or ``info`` not an :class:`Info`.
    """

    __slots__ = ()

    def __new__(cls, init: InitFn, initial_carry: InitialCarryFn, step: StepFn | None = None,
                sequence: SequenceFn | None = None, final_output: Callable[..., Array] | None = None,
                validate: Callable[[Params, Any, bool], None] | None = None, info: Info = Info()) -> "Part":
        for name, fn, optional in (("init", init, False), ("initial_carry", initial_carry, False),
                                   ("step", step, True), ("sequence", sequence, True),
                                   ("final_output", final_output, True), ("validate", validate, True)):
            if not (callable(fn) or (optional and fn is None)):
                raise TypeError(f"Part: {name} must be a function{' or None' if optional else ''}, got "
                                f"{type(fn).__name__}")
        if step is None and sequence is None:
            raise TypeError("Part: give a step, a sequence, or both (scan loops step when there is no sequence)")
        if not isinstance(info, Info):
            raise TypeError(f"Part: info must be a jaxrnn.Info, got {type(info).__name__}")
        if step is None and info.paths == Info.paths:  # no step: no loop of one
            info = dataclasses.replace(info, paths=())
        return super().__new__(cls, init, initial_carry, None if step is None else _taking_key(step), sequence,
                               final_output, validate, info)

    @classmethod
    def _make(cls, iterable) -> "Part":  # NamedTuple's own skips __new__'s checks
        return cls(*iterable)

    def _replace(self, **fields) -> "Part":
        return type(self)(**{**self._asdict(), **fields})

    def __repr__(self) -> str:
        return f"Part({describe(self)})"


Cell = Part  # the name of a steppable part in earlier releases; every part is a Part now


def _layer(init: InitFn, initial_carry: InitialCarryFn, apply: SequenceFn) -> Part:
    """``Layer(init, initial_carry, apply)`` of earlier releases: a part that reads whole sequences."""
    return Part(init, initial_carry, sequence=apply)


def _taking_key(step: Callable) -> StepFn:
    """``step`` if it takes a ``key`` keyword (or ``**kwargs``), else ``step`` accepting and ignoring one."""
    try:
        parameters = inspect.signature(step, follow_wrapped=False).parameters.values()
    except (TypeError, ValueError):  # a builtin or a callable without a signature
        parameters = ()
    if any(p.name == "key" or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return step

    def keyed(params: Params, carry: Carry, x: Array, *, key: Array | None = None) -> tuple[Carry, Array]:
        del key  # draws no random numbers
        return step(params, carry, x)

    keyed.__wrapped__ = step
    return keyed


def describe(part: Part) -> str:
    """A part as the call that builds it: ``lstm(64)``, ``stack([embedding(16), gru(32), linear(10)])``."""
    info = part.info
    if info.kind == "stack":
        inside = "[" + ", ".join(describe(p) for p in info.parts) + "]"
    elif info.parts:
        inside = ", ".join(describe(p) for p in info.parts)
    else:
        inside = "" if info.size is None else f"{info.size}"
    named = [("activation", info.activation)] if info.activation is not None else []
    def show(value: Any) -> str:  # a function by its name, as it was written in the call
        return getattr(value, "__name__", repr(value)) if callable(value) else repr(value)

    shown = [f"{k}={show(v)}" for k, v in named + list(info.options)]
    return f"{info.kind}({', '.join(([inside] if inside else []) + shown)})"


def batch_tuple(batch_shape: BatchShape) -> tuple[int, ...]:
    """``batch_shape`` as a tuple of sizes: an int is a batch of that size.

    Raises:
      TypeError: ``batch_shape`` is neither an int nor a sequence of ints.
    """
    def is_size(n):
        return isinstance(n, (int, np.integer)) and not isinstance(n, (bool, np.bool_)) and n >= 0

    if is_size(batch_shape):
        return (int(batch_shape),)
    try:
        shape = tuple(batch_shape)
    except TypeError:
        shape = None
    if shape is None or not all(is_size(n) for n in shape):
        raise TypeError(f"batch_shape: expected an int or a tuple of non-negative ints, got {batch_shape!r}")
    return tuple(int(n) for n in shape)


def zeros_carry(hidden_size: int, batch_shape: BatchShape, dtype: Any) -> jax.Array:
    """Zeros of shape ``batch_shape + (hidden_size,)`` in a floating ``dtype``."""
    batch_shape = batch_tuple(batch_shape)
    try:
        floating = jnp.issubdtype(jnp.dtype(dtype), jnp.floating)
    except TypeError:
        floating = False
    if not floating:
        raise TypeError(f"dtype: expected a floating-point dtype for the carry, got {dtype!r}")
    return jnp.zeros(batch_shape + (hidden_size,), dtype)


def stateless(init: InitFn, apply: Callable[[Params, Array], Array], *, info: Info,
              validate: Callable[[Params, Any, bool], None] | None = None) -> Part:
    """A part without state, ``y_t = apply(params, x_t)`` (a readout, an embedding); its carry is ``()``.

    Its ``sequence`` applies ``apply`` to the whole sequence at once (one matrix
    product for a readout), zero at padded steps.
    """
    def initial_carry(batch_shape: BatchShape = (), dtype: Any = jnp.float32) -> tuple:
        batch_tuple(batch_shape)  # checked, though the part keeps no state
        return ()

    def step(params: Params, carry: tuple, x: Array, *, key: Array | None = None) -> tuple[tuple, Array]:
        del key
        if validate is not None:
            validate(params, x, False)
        return carry, apply(params, x)

    def sequence(params: Params, xs: Array, carry: tuple, *, lengths: Array | None = None, **options
                 ) -> tuple[tuple, Array]:
        valid = None if lengths is None else valid_mask(xs.shape[0], lengths)
        return carry, mask(valid, (), (), apply(params, xs))[1]

    return Part(init, initial_carry, step, sequence, validate=validate, info=dataclasses.replace(info, paths=()))


class Model(NamedTuple):
    """A model that answers once per input: ``apply(params, xs, *, lengths=None, key=None, time_major=True) -> y``.

    Attributes:
      init: ``init(key, input_size) -> params``.
      apply: ``apply(params, xs, *, lengths=None, key=None, time_major=True) -> y``; ``key``
        switches on dropout (training only); models that draw no random numbers ignore it.
      info: an :class:`Info`, what the model is.
    """

    init: InitFn
    apply: Callable[..., Array]
    info: Info = Info()
