"""The kinds of part: a :class:`Cell` (one step) and a :class:`Layer` (a whole sequence).

A :class:`Cell` is to a recurrent network what Optax's ``GradientTransformation``
is to an optimiser: a ``NamedTuple`` of pure functions built by a small factory.
It knows nothing of time; :func:`jaxrnn.scan` owns the time loop. A
:class:`Layer` is a part that must see the whole sequence before it answers (a
bidirectional layer, a stack holding one): it owns its loop, and
:func:`jaxrnn.scan` runs it with the same call.

``scan`` also understands four kinds of step, each still a plain callable
``step(params, carry, x)``:

* :class:`SplitStep`: the step in two halves, an input projection that can run
  for all time steps at once and a recurrence (the fast paths of ``scan``);
* :class:`Pointwise`: a step without state, ``y_t = f(x_t)`` (a readout, an
  embedding), which ``scan`` applies to the whole sequence at once;
* :class:`Parallel`: a step linear in its carry (the minimal RNNs), which
  ``scan`` computes for the whole sequence with an associative scan;
* :class:`Composite`: a step made of other parts (a stack), which runs a whole
  sequence itself, part by part.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Any, Callable, NamedTuple, Protocol

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
Params = Any  # a pytree of arrays
Carry = Any  # a pytree of arrays whose leaves have shape batch_shape + (features,)
BatchShape = int | tuple[int, ...]


class InitFn(Protocol):
    def __call__(self, key: Array, input_size: int) -> Params: ...


class InitialCarryFn(Protocol):
    def __call__(self, batch_shape: BatchShape = (), dtype: Any = jnp.float32) -> Carry: ...


class StepFn(Protocol):
    def __call__(self, params: Params, carry: Carry, x: Array) -> tuple[Carry, Array]: ...


class Cell(NamedTuple):
    """A recurrent cell: ``h_t = f(h_{t-1}, x_t)`` as three pure functions.

    Attributes:
      init: ``init(key, input_size) -> params``, a pytree of arrays.
      initial_carry: ``initial_carry(batch_shape=(), dtype=float32) -> carry``;
        zeros, each leaf of shape ``batch_shape + (hidden_size,)``; an int is a
        batch of that size.
      step: ``step(params, carry, x) -> (carry, y)`` for one time step;
        ``x`` has shape ``batch_shape + (input_size,)``. Unbatched cells are the
        norm (``batch_shape == ()``); leading batch axes broadcast through.
    """

    init: InitFn
    initial_carry: InitialCarryFn
    step: StepFn


class Layer(NamedTuple):
    """A sequence part: ``apply(params, xs, carry=None, **options) -> (final_carry, ys)``.

    Attributes:
      init: ``init(key, input_size) -> params``.
      initial_carry: ``initial_carry(batch_shape=(), dtype=float32) -> carry``.
      apply: ``apply(params, xs, carry=None, *, lengths=None, reverse=False,
        key=None, unroll=None, remat=False, path="auto")`` maps time-major
        ``xs: (T, *batch, I)`` to ``(final_carry, ys: (T, *batch, O))``; the
        options mean what they mean for :func:`jaxrnn.scan`, which checks them
        and then calls ``apply``.
    """

    init: InitFn
    initial_carry: InitialCarryFn
    apply: Callable[..., tuple[Carry, Array]]


Part = Cell | Layer


@dataclasses.dataclass(frozen=True)
class SplitStep:
    """A step ``recur(params, carry, project(params, x))`` split in two halves.

    ``project`` is the part of the step that depends on the input alone (for
    the cells here, ``x @ W_x + b`` for all gates at once). Because it does not
    depend on the carry, :func:`jaxrnn.scan` can apply it to all time steps in
    one matrix product ``(T * B, I) @ (I, G)`` before the loop and run only
    ``recur`` inside it. Calling a ``SplitStep`` is the plain one-step function.

    Cells whose carry enters the step through one linear map are built with
    :meth:`from_product` or :meth:`from_sum`; then ``scan`` can differentiate
    the recurrence with a custom derivative that forms the weight gradient after the
    loop, as one product over all time steps (:mod:`jaxrnn.fused`). Only those
    constructors set ``product``, ``update`` and ``update_sum``, so ``recur``
    always is the step they describe: ``SplitStep(project, recur)`` builds a
    step without them.

    Attributes:
      project: ``project(params, x[..., I]) -> xp[..., G]``.
      recur: ``recur(params, carry, xp) -> (carry, y)``.
      product: ``product(params, carry) -> hp[..., G]``, linear in ``carry``
        and in ``params`` (e.g. ``h @ W_h (+ b_h)``); or ``None``.
      update: ``update(carry, xp, hp) -> (carry, y)``, the elementwise rest of
        the step, free of params; or ``None``.
      update_sum: ``update_sum(carry, z) -> (carry, y)`` where the step reads
        ``xp`` and ``hp`` only through ``z = xp + hp`` (:meth:`from_sum`); or ``None``.
    """

    project: Callable[[Params, Array], Array]
    recur: Callable[[Params, Carry, Array], tuple[Carry, Array]]
    product: Callable[[Params, Carry], Array] | None = dataclasses.field(default=None, init=False)
    update: Callable[[Carry, Array, Array], tuple[Carry, Array]] | None = dataclasses.field(default=None, init=False)
    update_sum: Callable[[Carry, Array], tuple[Carry, Array]] | None = dataclasses.field(default=None, init=False)

    @classmethod
    def _with(cls, project, recur, **halves) -> "SplitStep":
        step = cls(project, recur)
        for name, value in halves.items():
            object.__setattr__(step, name, value)  # frozen: set once, here
        return step

    @classmethod
    def from_product(cls, project, product, update) -> "SplitStep":
        """The step ``update(carry, xp, product(params, carry))`` with ``xp = project(params, x)``."""

        def recur(params: Params, carry: Carry, xp: Array) -> tuple[Carry, Array]:
            return update(carry, xp, product(params, carry))

        return cls._with(project, recur, product=product, update=update)

    @classmethod
    def from_sum(cls, project, product, update_sum) -> "SplitStep":
        """The step ``update_sum(carry, xp + hp)``: gates that read the two products only through their sum.

        The LSTM's and the Elman cell's pre-activations are such a sum (the GRU's
        reset gate is not). The sum is taken here, in the dtype of ``xp`` and
        ``hp``, so the step cannot read them any other way; the fused path then
        saves that one sum per step for its backward pass, instead of both.
        """

        def update(carry: Carry, xp: Array, hp: Array) -> tuple[Carry, Array]:
            return update_sum(carry, xp + hp)

        def recur(params: Params, carry: Carry, xp: Array) -> tuple[Carry, Array]:
            return update(carry, xp, product(params, carry))

        return cls._with(project, recur, product=product, update=update, update_sum=update_sum)

    @property
    def additive(self) -> bool:
        """Whether the step reads ``xp`` and ``hp`` only through ``xp + hp`` (built by :meth:`from_sum`)."""
        return self.update_sum is not None

    def __call__(self, params: Params, carry: Carry, x: Array, key: Array | None = None) -> tuple[Carry, Array]:
        del key  # draws no random numbers
        if self.product is None:
            return self.recur(params, carry, self.project(params, x))
        # The same function; tracing the carry's product first gives XLA:CPU a
        # faster schedule of the backward pass (benchmarks/README.md).
        hp = self.product(params, carry)
        return self.update(carry, self.project(params, x), hp)


@dataclasses.dataclass(frozen=True)
class Pointwise:
    """A step without state: ``y_t = fn(params, x_t)``, the carry an empty tuple.

    :func:`jaxrnn.scan` applies ``fn`` to the whole sequence at once, which is
    one matrix product for a readout. ``reads_ids``: its input is integer ids,
    one per step, with no feature axis (an embedding), so a sequence of them is
    ``(T, *batch)``. ``validate(params, x, checked)``, if given, raises for
    inputs whose values are known and wrong, and with ``checked`` (``scan``'s)
    checks traced ones through :mod:`jax.experimental.checkify`.
    """

    fn: Callable[[Params, Array], Array]
    reads_ids: bool = False
    validate: Callable[[Params, Array, bool], None] | None = None

    def __call__(self, params: Params, carry: tuple, x: Array, key: Array | None = None) -> tuple[tuple, Array]:
        del key
        if self.validate is not None:
            self.validate(params, x, False)
        return carry, self.fn(params, x)


@dataclasses.dataclass(frozen=True)
class Parallel:
    """A step whose carry enters linearly, ``h_t = a_t(x_t) * h_{t-1} + b_t(x_t)``: a whole sequence at once.

    Calling it is the one-token recurrence (sampling, streaming).
    :func:`jaxrnn.scan` instead calls ``sequence`` on the whole input, which
    computes every step together (an associative scan, ``O(log T)`` depth:
    :mod:`jaxrnn.linear_recurrence`).

    Attributes:
      step: ``step(params, carry, x) -> (carry, y)``, one token.
      sequence: ``sequence(params, xs, carry, *, lengths=None, reverse=False) -> (carry, ys)``
        over time-major ``xs: (T, *batch, I)``, the same function as stepping.
    """

    step: Callable[[Params, Carry, Array], tuple[Carry, Array]]
    sequence: Callable[..., tuple[Carry, Array]]

    def __post_init__(self):
        for name in ("step", "sequence"):
            if not callable(getattr(self, name)):
                raise TypeError(f"Parallel: {name} must be a function, got {type(getattr(self, name)).__name__}")

    def __call__(self, params: Params, carry: Carry, x: Array, key: Array | None = None) -> tuple[Carry, Array]:
        del key
        return self.step(params, carry, x)


class Composite(abc.ABC):
    """A step made of parts, which also runs a whole sequence itself (part by part)."""

    @abc.abstractmethod
    def scan(self, params: Params, xs: Array, carry: Carry, **options) -> tuple[Carry, Array]:
        """``(final_carry, ys)`` over time-major ``xs``; the options of :func:`jaxrnn.scan`."""


def behaviour(part: Part) -> Any:
    """What runs ``part``: a cell's step, or the object behind a layer's ``apply`` (a stack's layers, a
    bidirectional layer's directions), where the part's other abilities (``reads_ids``, ``reader``,
    ``final_output``) live."""
    if isinstance(part, Cell):
        return part.step
    return getattr(part.apply, "__self__", part.apply)  # a bound method's object (a stack's scan)


def reads_ids(part: Part) -> bool:
    """Whether ``part`` reads integer ids (``(T, *batch)``, no feature axis) rather than features.

    A part that starts with an embedding does: the step or layer says so
    through its ``reads_ids`` (a stack asks its first part).
    """
    return bool(getattr(behaviour(part), "reads_ids", False))


def validate_ids(part: Part, params: Params, ids: Any) -> None:
    """Hand ids whose values are known to the ``validate`` of the part that reads them: an embedding, the first
    layer of a stack, the forward direction of a bidirectional layer (each says which through ``reader``)."""
    runs = behaviour(part)
    if isinstance(runs, Pointwise):
        if runs.validate is not None:
            runs.validate(params, ids, False)
    elif callable(getattr(runs, "reader", None)):
        validate_ids(*runs.reader(params), ids)


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


def zeros_carry(hidden_size: int, batch_shape: BatchShape, dtype: Any, n: int) -> Carry:
    """``n`` zero arrays of shape ``batch_shape + (hidden_size,)``; one array if ``n == 1``."""
    batch_shape = batch_tuple(batch_shape)
    try:
        floating = jnp.issubdtype(jnp.dtype(dtype), jnp.floating)
    except TypeError:
        floating = False
    if not floating:
        raise TypeError(f"dtype: expected a floating-point dtype for the carry, got {dtype!r}")
    zeros = tuple(jnp.zeros(batch_shape + (hidden_size,), dtype) for _ in range(n))
    return zeros[0] if n == 1 else zeros
