"""The cell abstraction: a recurrent step as three pure functions.

A :class:`Cell` is to a recurrent network what Optax's ``GradientTransformation``
is to an optimiser: a ``NamedTuple`` of pure functions built by a small factory.
It knows nothing of time; :func:`jaxrnn.scan` owns the time loop.

A cell's ``step`` may be a :class:`SplitStep`: still a plain callable
``step(params, carry, x)``, but one that also exposes the two halves of the
step, so that the input projection of a whole sequence can be computed as one
matrix product outside the time loop.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple, Protocol

import jax
import jax.numpy as jnp

Array = jax.Array
Params = Any  # a pytree of arrays
Carry = Any  # a pytree of arrays whose leaves have shape batch_shape + (features,)


class InitFn(Protocol):
    def __call__(self, key: Array, input_size: int) -> Params: ...


class InitialCarryFn(Protocol):
    def __call__(self, batch_shape: tuple[int, ...] = (), dtype: Any = jnp.float32) -> Carry: ...


class StepFn(Protocol):
    def __call__(self, params: Params, carry: Carry, x: Array) -> tuple[Carry, Array]: ...


class Cell(NamedTuple):
    """A recurrent cell: ``h_t = f(h_{t-1}, x_t)`` as three pure functions.

    Attributes:
      init: ``init(key, input_size) -> params``, a pytree of arrays.
      initial_carry: ``initial_carry(batch_shape=(), dtype=float32) -> carry``;
        zeros, each leaf of shape ``batch_shape + (hidden_size,)``.
      step: ``step(params, carry, x) -> (carry, y)`` for one time step;
        ``x`` has shape ``batch_shape + (input_size,)``. Unbatched cells are the
        norm (``batch_shape == ()``); leading batch axes broadcast through.
    """

    init: InitFn
    initial_carry: InitialCarryFn
    step: StepFn


@dataclasses.dataclass(frozen=True)
class SplitStep:
    """A step ``recur(params, carry, project(params, x))`` split in two halves.

    ``project`` is the part of the step that depends on the input alone (for
    the cells here, ``x @ W_x + b`` for all gates at once). Because it does not
    depend on the carry, :func:`jaxrnn.scan` can apply it to all time steps in
    one matrix product ``(T * B, I) @ (I, G)`` before the loop and run only
    ``recur`` inside it. Calling a ``SplitStep`` is the plain one-step function.

    Cells whose carry enters the step through one linear map may also give
    ``product`` and ``update`` (see :meth:`from_product`); then ``scan`` can
    differentiate the recurrence with a custom VJP that forms the weight
    gradient after the loop, as one product over all time steps.

    Attributes:
      project: ``project(params, x[..., I]) -> xp[..., G]``.
      recur: ``recur(params, carry, xp) -> (carry, y)``.
      product: ``product(params, carry) -> hp[..., G]``, linear in ``carry``
        and in ``params`` (e.g. ``h @ W_h (+ b_h)``); or ``None``.
      update: ``update(carry, xp, hp) -> (carry, y)``, the elementwise rest of
        the step, free of params; or ``None``.
      additive: ``update`` depends on ``xp`` and ``hp`` only through
        ``xp + hp`` (see :meth:`from_product`).
    """

    project: Callable[[Params, Array], Array]
    recur: Callable[[Params, Carry, Array], tuple[Carry, Array]]
    product: Callable[[Params, Carry], Array] | None = None
    update: Callable[[Carry, Array, Array], tuple[Carry, Array]] | None = None
    additive: bool = False

    @classmethod
    def from_product(cls, project, product, update, *, additive: bool = False) -> "SplitStep":
        """The step ``update(carry, xp, product(params, carry))`` with ``xp = project(params, x)``.

        ``additive``: ``update`` reads ``xp`` and ``hp`` only through their sum
        ``xp + hp``, added in their own dtype before any cast (the LSTM's and
        Elman's gates do; the GRU's reset gate does not). The fused path then
        saves that one sum per step for its backward pass and carries one
        gradient for both, instead of two of each (when ``xp`` and ``hp`` share
        a dtype; else it keeps both).
        """

        def recur(params: Params, carry: Carry, xp: Array) -> tuple[Carry, Array]:
            return update(carry, xp, product(params, carry))

        return cls(project, recur, product, update, additive)

    def __call__(self, params: Params, carry: Carry, x: Array) -> tuple[Carry, Array]:
        if self.product is None:
            return self.recur(params, carry, self.project(params, x))
        # The same function; tracing the carry's product first gives XLA:CPU a faster
        # schedule of the backward pass (measured: ~20% on an LSTM training step).
        hp = self.product(params, carry)
        return self.update(carry, self.project(params, x), hp)


def zeros_carry(hidden_size: int, batch_shape: tuple[int, ...], dtype: Any, n: int) -> Carry:
    """``n`` zero arrays of shape ``batch_shape + (hidden_size,)``; one array if ``n == 1``."""
    batch_shape = tuple(batch_shape)
    zeros = tuple(jnp.zeros(batch_shape + (hidden_size,), dtype) for _ in range(n))
    return zeros[0] if n == 1 else zeros
