"""Cells whose step splits in two: an input projection for all steps at once, then the recurrence.

    step(params, carry, x) = recur(params, carry, project(params, x))

``project`` depends on the input alone (for the cells here ``x @ W_x + b``, all
gates at once), so a sequence can project every step in one ``(T * B, I) @
(I, G)`` product before the loop and run only ``recur`` inside it: the
``"projected"`` path. When the carry enters ``recur`` through one linear map,

    recur(params, carry, xp) = update(carry, xp, product(params, carry))

with ``product`` linear in ``carry`` and in ``params`` (``h @ W_h (+ b_h)``) and
``update`` free of params, the recurrence can also be differentiated the way
cuDNN does (:mod:`jaxrnn.fused`): the ``"fused"`` path. :func:`cell` builds the
:class:`~jaxrnn.Part` whose ``sequence`` runs whichever of ``"plain"``,
``"projected"`` and ``"fused"`` :func:`jaxrnn.loop.resolve_path` picks.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax

from jaxrnn import checks, fused, onednn
from jaxrnn.loop import masked_scan, resolve_path
from jaxrnn.masking import valid_mask
from jaxrnn.parts import Carry, Info, InitFn, InitialCarryFn, Params, Part

__all__ = ["Split", "cell", "halves_of"]


@dataclasses.dataclass(frozen=True)
class Split:
    """The two halves of a step, and the step itself when called; build one with :meth:`of`,
    :meth:`from_product` or :meth:`from_sum`.

    Attributes:
      project: ``project(params, x[..., I]) -> xp[..., G]``.
      recur: ``recur(params, carry, xp) -> (carry, y)``.
      product: ``product(params, carry) -> hp[..., G]``, linear in ``carry`` and in ``params``; or ``None``.
      update: ``update(carry, xp, hp) -> (carry, y)``, the elementwise rest of the step; or ``None``.
      update_sum: ``update_sum(carry, z) -> (carry, y)`` for a step that reads ``xp`` and ``hp`` only through
        ``z = xp + hp``; or ``None``.
    """

    project: Callable[[Params, jax.Array], jax.Array]
    recur: Callable[[Params, Carry, jax.Array], tuple[Carry, jax.Array]]
    product: Callable[[Params, Carry], jax.Array] | None = None
    update: Callable[[Carry, jax.Array, jax.Array], tuple[Carry, jax.Array]] | None = None
    update_sum: Callable[[Carry, jax.Array], tuple[Carry, jax.Array]] | None = None

    @classmethod
    def of(cls, project, recur) -> "Split":
        """Any step ``recur(params, carry, project(params, x))`` (the GRU whose reset gate sits between its
        two recurrent products): ``"projected"`` at best."""
        return cls(checks.function("project", project), checks.function("recur", recur))

    @classmethod
    def from_product(cls, project, product, update) -> "Split":
        """The step ``update(carry, xp, product(params, carry))`` with ``xp = project(params, x)``."""
        for name, fn in (("project", project), ("product", product), ("update", update)):
            checks.function(name, fn)

        def recur(params: Params, carry: Carry, xp: jax.Array) -> tuple[Carry, jax.Array]:
            return update(carry, xp, product(params, carry))

        return cls(project, recur, product, update)

    @classmethod
    def from_sum(cls, project, product, update_sum) -> "Split":
        """The step ``update_sum(carry, xp + hp)``: gates that read the two products only through their sum.

        The LSTM's and the Elman cell's pre-activations are such a sum (the GRU's
        reset gate is not). The sum is taken here, in the dtype of ``xp`` and
        ``hp``, so the step cannot read them any other way; the fused path then
        saves that one sum per step for its backward pass, instead of both.
        """
        checks.function("update_sum", update_sum)

        def update(carry: Carry, xp: jax.Array, hp: jax.Array) -> tuple[Carry, jax.Array]:
            return update_sum(carry, xp + hp)

        halves = cls.from_product(project, product, update)
        return dataclasses.replace(halves, update_sum=update_sum)

    @property
    def additive(self) -> bool:
        """Whether the step reads ``xp`` and ``hp`` only through ``xp + hp`` (built by :meth:`from_sum`)."""
        return self.update_sum is not None

    def __call__(self, params: Params, carry: Carry, x: jax.Array, *, key: jax.Array | None = None
                 ) -> tuple[Carry, jax.Array]:
        """One step, ``recur(params, carry, project(params, x))``: a part built by :func:`cell` steps with it."""
        del key  # draws no random numbers
        if self.product is None:
            return self.recur(params, carry, self.project(params, x))
        # The same function; tracing the carry's product first gives XLA:CPU a
        # faster schedule of the backward pass (benchmarks/README.md).
        hp = self.product(params, carry)
        return self.update(carry, self.project(params, x), hp)


def cell(init: InitFn, initial_carry: InitialCarryFn, halves: Split, *, info: Info,
         validate: Callable | None = None, recurrence: onednn.Recurrence | None = None) -> Part:
    """A :class:`~jaxrnn.Part` that steps with ``halves`` and runs a sequence on the best path they allow.

    ``info.paths`` is set here: ``("fused", "projected", "plain")`` when
    ``halves`` has ``product``, else ``("projected", "plain")``; ``"onednn"``
    first when ``recurrence`` says how the cell maps onto oneDNN's primitive
    and :func:`jaxrnn.onednn.available`. A sequence it does not apply to
    (:meth:`~jaxrnn.onednn.Recurrence.applies`) runs ``"plain"``.
    """
    if not isinstance(halves, Split):
        raise TypeError(f"halves: expected a jaxrnn.split.Split, got {type(halves).__name__}")
    if recurrence is not None and not isinstance(recurrence, onednn.Recurrence):
        raise TypeError(f"recurrence: expected a jaxrnn.onednn.Recurrence, got {type(recurrence).__name__}")
    paths = ("fused", "projected", "plain") if halves.product is not None else ("projected", "plain")
    if recurrence is not None and onednn.available():
        paths = ("onednn", *paths)
    info = dataclasses.replace(info, paths=paths)

    def sequence(params: Params, xs: jax.Array, carry: Carry, *, lengths=None, reverse=False, unroll=1,
                 remat=False, path="auto", **options) -> tuple[Carry, jax.Array]:
        valid = None if lengths is None else valid_mask(xs.shape[0], lengths)
        asked, path = path, resolve_path(path, part, remat=remat)
        if path == "onednn":
            jax.eval_shape(halves, params, carry, jax.ShapeDtypeStruct(xs.shape[1:], xs.dtype))  # the step's checks
            if recurrence.applies(params, xs, carry, lengths=lengths, remat=remat, auto=asked == "auto"):
                return recurrence(params, xs, carry, lengths=lengths, reverse=reverse)
            path = "plain"
        if path == "plain":
            return masked_scan(halves, params, xs, carry, valid, reverse=reverse, unroll=unroll, remat=remat)
        xps = halves.project(params, xs)
        if path == "projected":
            return masked_scan(halves.recur, params, xps, carry, valid, reverse=reverse, unroll=unroll, remat=remat)
        return fused.recurrence(halves, reverse, unroll, params, carry, xps, valid)

    part = Part(init, initial_carry, halves, sequence, validate=validate, info=info)
    return part


def halves_of(part: Part) -> Split | None:
    """The :class:`Split` a part built by :func:`cell` steps with (its ``step``), or ``None`` for any other part."""
    return part.step if isinstance(part.step, Split) else None
