"""The time loop: one function, :func:`scan`, runs any part over a sequence.

``scan`` checks its arguments, puts time on axis 0, zeroes the padding, and
asks the part: its ``sequence`` when it has one, else a ``lax.scan`` of its
``step``. The ways a part may run its own loop, which it lists in
``part.info.paths`` (best first), compute the same function (values and
gradients), and the tests hold them to it:

* ``"plain"``: ``lax.scan`` of ``step``, one step at a time.
* ``"projected"``: the input projection ``x_t @ W_x + b`` of all steps is one
  ``(T * B, I) @ (I, G)`` product before the loop; the loop runs only the
  recurrence (:mod:`jaxrnn.split`).
* ``"fused"``: ``"projected"``, plus a derivative of the recurrence whose
  backward loop carries only ``dh @ W_h^T`` and forms the weight gradient
  after it, as one product over all time steps, as cuDNN does
  (:mod:`jaxrnn.fused`).
* ``"parallel"``: every step at once through an associative scan, ``O(log T)``
  depth, for a carry that enters linearly (:mod:`jaxrnn.linear_recurrence`).
* ``"onednn"``: the whole sequence as one call of oneDNN's fused recurrent
  primitive, forward and backward, on an x86 CPU where jaxrnn's extension
  was built (:mod:`jaxrnn.onednn`).

``"auto"`` (the default) is :func:`resolve_path`: on a CPU ``"onednn"`` where
the part has it and the step is wide enough to gain from it
(:data:`jaxrnn.onednn.AUTO_MIN_WIDTH`), else ``"plain"``, where XLA:CPU runs
the per-step loop fastest (``benchmarks/README.md``); on GPU and TPU the
part's best path.
"""

from __future__ import annotations

import functools
import math
import warnings
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxrnn import checks
from jaxrnn.checks import check_carry_like
from jaxrnn.masking import mask, valid_mask, zero_padding
from jaxrnn.parts import Carry, Params, Part

__all__ = [
    "AUTO_UNROLL", "CPU_ONLY", "FALLBACK", "MAX_UNROLL", "PATHS", "checkpointed_sequence", "resolve_path", "scan",
    "time_major_inputs"
]

PATHS = ("auto", "plain", "projected", "fused", "parallel", "onednn")
# A path a part does not have falls back to the next simpler one ("auto": the part's best).
FALLBACK = {"fused": "projected", "projected": "plain", "parallel": "auto", "onednn": "plain"}
STORES_STEPS = ("fused", "onednn")  # paths that keep per-step residuals, which remat exists to avoid
CPU_ONLY = ("onednn",)  # paths of the CPU, never auto's choice elsewhere
MAX_UNROLL = 16  # steps per loop iteration; see scan's ``unroll``
AUTO_UNROLL = {"gpu": 8}  # unroll=None's choice per backend (others: 1); benchmarks/README.md


def scan(
    part: Part,
    params: Params,
    xs: jax.Array,
    carry: Carry | None = None,
    *,
    reverse: bool = False,
    lengths: jax.Array | None = None,
    time_major: bool = True,
    unroll: int | bool | None = None,
    remat: bool = False,
    key: jax.Array | None = None,
    path: str = "auto",
    checked: bool = False,
) -> tuple[Carry, jax.Array]:
    """Run ``part`` -- a cell, a stack, a bidirectional layer, any :class:`~jaxrnn.Part` -- over the time axis.

    ``h_t, y_t = step(h_{t-1}, x_t)`` for ``t = 0 .. T-1`` (``T-1 .. 0`` with
    ``reverse``), as one ``lax.scan`` or as the part's own ``sequence``.

    Args:
      part: a :class:`~jaxrnn.Part`.
      params: its parameters.
      xs: inputs of shape ``(T, *batch, I)``: time is axis 0, features the
        last axis, and any axes between are batch axes. With
        ``time_major=False``: ``(*batch, T, I)``. For a part that reads ids
        (``part.info.reads_ids``: it starts with an embedding), integer ids
        without a feature axis: ``(T, *batch)`` (``(*batch, T)``).
      carry: the initial carry, leaves of shape ``(*batch, H)``; ``None``
        starts from ``part.initial_carry(batch)`` (zeros, float32 or wider).
      reverse: run from ``t = T-1`` down to ``0``. Outputs stay in input order:
        ``ys[t]`` is the output after reading ``xs[t]``.
      lengths: integer array of shape ``batch``: sequence ``b`` is
        ``xs[:lengths[b], b]`` and the rest is padding. Padding steps leave the
        carry unchanged and output zeros, so the final carry is the one at the
        sequence's true end (with ``reverse``, each sequence is read backwards
        from its own last element). Whatever the padding holds (NaN, Inf, any
        id) reaches neither values nor gradients, and its own gradient is zero.
        Lengths whose values are known when ``scan`` is traced (numpy, lists,
        concrete arrays) must lie in ``[0, T]``, or ``scan`` raises. Traced
        lengths cannot be checked then: a length above ``T`` acts as ``T`` and
        a negative one as 0, silently, unless ``checked`` is set.
      time_major: ``False`` for batch-major ``xs: (*batch, T, I)`` (Flax's and
        PyTorch's ``batch_first``); ``ys`` is then batch-major too.
      unroll: steps per loop iteration (``lax.scan``'s ``unroll``); ``True``
        unrolls the whole sequence; ``None`` picks per backend
        (:data:`AUTO_UNROLL`: 8 on a GPU, 1 elsewhere). Capped at
        :data:`MAX_UNROLL` steps, with a warning: compile time grows much
        faster than the unroll factor while run time stops improving long
        before (``benchmarks/README.md``).
      remat: store the carry only every ``~sqrt(T)`` steps and recompute the
        steps between in the backward pass (``jax.checkpoint`` of chunks);
        memory ``O(sqrt(T))`` carries plus one chunk's activations instead of
        ``O(T)`` activations, for long sequences, at the cost of one more
        forward pass. On the ``"parallel"`` path each chunk runs its steps at once.
      key: random key for the parts that draw random numbers (the dropout of
        :func:`~jaxrnn.stack`; a stack hands each layer a key of its own); the
        others ignore it. The loop of a cell's ``step`` is not given a key: a
        cell that draws random numbers per step needs them in its input or carry.
      path: ``"auto"``, ``"plain"``, ``"projected"``, ``"fused"``,
        ``"parallel"`` or ``"onednn"`` (module docstring); a path the part does
        not have falls back to the next simpler one (:func:`resolve_path`), and
        ``remat`` never takes ``"fused"`` or ``"onednn"``. A stack runs each layer on that layer's path.
        Every path computes the same function under every transformation
        (``grad``, ``jvp``, ``jacfwd``, ``hessian``, ``vmap``, ``jit``); the
        ``"onednn"`` path runs ``"plain"`` under the forward mode it sees while
        tracing, and JAX refuses forward mode through a function compiled
        before it (:mod:`jaxrnn.onednn`).
      checked: with traced ``lengths`` (or token ids, for a part that reads
        them), also check at run time that each lies in ``[0, T]`` (ids in
        ``[0, V)``), through :mod:`jax.experimental.checkify`: run the
        function under ``checkify.checkify`` and call ``error.throw()``.

    Returns:
      ``(final_carry, ys)``, ``ys`` of shape ``(T, *batch, O)`` (``(*batch, T,
      O)`` when not ``time_major``).

    Raises:
      TypeError, ValueError: at trace time, with what was expected and what
        came, for a wrong part, shape, dtype, carry or option.
    """
    if not isinstance(part, Part):
        raise TypeError(f"expected a jaxrnn.Part to scan (a cell, a stack, a layer), got {type(part).__name__}")
    ids = part.info.reads_ids
    known = checks.known_values(xs) if ids else None  # read before jnp.asarray (checks.known_values)
    xs = time_major_inputs(part, xs, time_major)
    if not ids and not jnp.issubdtype(xs.dtype, jnp.floating):
        raise TypeError(f"expected floating-point xs, got dtype {xs.dtype}")
    options = dict(
        reverse=checks.flag("reverse", reverse),
        unroll=check_unroll(unroll, xs.shape[0]),
        remat=checks.flag("remat", remat),
        path=check_path(path),
        key=checks.random_key("key", key, optional=True),
    )
    if checks.flag("checked", checked):  # handed on only when set, so a sequence of yours need not take it
        options["checked"] = True
    batch_shape = xs.shape[1:] if ids else xs.shape[1:-1]
    known_lengths = None if lengths is None or known is None else checks.known_values(lengths)
    if lengths is not None:
        lengths = check_lengths(lengths, batch_shape, xs.shape[0], checked=checked)
        xs = zero_padding(xs, lengths)
    if part.validate is not None:
        if known is not None and (lengths is None or known_lengths is not None):
            known = known if time_major else np.moveaxis(known, -1, 0)
            if lengths is not None:  # padding may hold any id
                steps = np.arange(known.shape[0]).reshape((-1,) + (1,) * known_lengths.ndim)
                known = np.where(steps < known_lengths, known, 0)
            part.validate(params, known, False)
        else:
            part.validate(params, xs, checked)
    initial = functools.partial(part.initial_carry, batch_shape, jnp.promote_types(xs.dtype, jnp.float32))
    carry = initial() if carry is None else check_carry_like(carry, jax.eval_shape(initial))
    if part.sequence is not None:
        final, ys = part.sequence(params, xs, carry, lengths=lengths, **options)
    else:
        valid = None if lengths is None else valid_mask(xs.shape[0], lengths)
        final, ys = masked_scan(part.step, params, xs, carry, valid, reverse=options["reverse"],
                                unroll=options["unroll"], remat=options["remat"])
    return final, (ys if time_major else jnp.moveaxis(ys, 0, -2))


def time_major_inputs(part: Part, xs: Any, time_major: bool = True) -> jax.Array:
    """``xs`` checked against what ``part`` reads -- integer ids ``(T, *batch)`` or features
    ``(T, *batch, I)`` -- with time moved to axis 0 when ``time_major`` is false (``(*batch, T[, I])``).

    Raises:
      TypeError, ValueError: ``xs`` of the wrong dtype or with too few axes.
    """
    ids = part.info.reads_ids
    xs = jnp.asarray(xs)
    if ids and not jnp.issubdtype(xs.dtype, jnp.integer):
        raise TypeError(f"expected integer ids (this part starts with an embedding), got xs of dtype {xs.dtype}")
    features = 0 if ids else 1  # ids have no feature axis: (T, *batch)
    if xs.ndim < 1 + features:
        layout = ("(time, ...)" if ids else "(time, ..., features)") if time_major else \
            ("(..., time)" if ids else "(..., time, features)")
        raise ValueError(f"expected xs of shape {layout}, got shape {xs.shape}")
    return xs if checks.flag("time_major", time_major) else jnp.moveaxis(xs, -1 - features, 0)


def resolve_path(path: str, part: Part, *, remat: bool = False) -> str:
    """The path ``scan(part, ..., path=path, remat=remat)`` takes on this backend, for a part with a loop of its own.

    ``"auto"`` is, on a CPU, ``"onednn"`` where the part has it, else
    ``"plain"``; elsewhere the part's best path (the first of
    ``part.info.paths`` that is not a CPU path). A path the part does not
    have falls back to the next simpler one (:data:`FALLBACK`: ``"fused"`` to
    ``"projected"`` to ``"plain"``; ``"parallel"`` to ``"auto"``'s choice;
    ``"onednn"`` to ``"plain"``), and ``remat`` (which stores no per-step
    residuals) never takes ``"fused"`` or ``"onednn"``. The backend is
    ``jax.default_backend()``.

    Raises:
      TypeError: ``part`` is not a part, or has no loop of its own (a stack, a
        bidirectional layer or a readout: ask of the parts inside).
    """
    path = check_path(path)
    if not isinstance(part, Part):
        raise TypeError(f"resolve_path: expected a jaxrnn.Part, got {type(part).__name__}")
    paths = tuple(p for p in part.info.paths if not (remat and p in STORES_STEPS))
    if not paths:
        raise TypeError(f"resolve_path: {part.info.kind} has no loop of its own: a stack runs each of its parts on "
                        "its own path (and a stateless part has no loop); ask of the parts")
    cpu = jax.default_backend() == "cpu"
    if not cpu:
        paths = tuple(p for p in paths if p not in CPU_ONLY) or ("plain",)
    while path not in paths:
        if path == "auto":
            return next((p for p in ("onednn", "plain") if p in paths), paths[0]) if cpu else paths[0]
        path = FALLBACK.get(path, "plain")
    return path


def check_path(path: Any) -> str:
    if path not in PATHS:
        raise ValueError(f"unknown path {path!r}; expected one of {', '.join(PATHS)}")
    return path


def check_unroll(unroll: int | bool | None, steps: int) -> int:
    """``unroll`` as steps per iteration: ``True`` is all ``steps``, ``None`` the backend's
    :data:`AUTO_UNROLL` (1 where it names none); at most :data:`MAX_UNROLL` and at most ``steps``.

    Raises:
      ValueError: ``unroll`` is neither ``None``, a bool nor a positive integer.
    """
    if unroll is None:
        return max(1, min(AUTO_UNROLL.get(jax.default_backend(), 1), steps))
    if isinstance(unroll, (bool, np.bool_)):
        wanted = steps if unroll else 1
    elif isinstance(unroll, (int, np.integer)) and unroll >= 1:
        wanted = int(unroll)
    else:
        raise ValueError(f"unroll: expected None, a positive integer or a bool, got {unroll!r}")
    wanted = max(1, min(wanted, steps))
    if wanted > MAX_UNROLL:
        warnings.warn(
            f"scan: unroll={unroll!r} would unroll {wanted} steps per iteration; capped at "
            f"jaxrnn.loop.MAX_UNROLL = {MAX_UNROLL}, as compile time grows much faster than the unroll factor",
            stacklevel=3,
        )
        wanted = MAX_UNROLL
    return wanted


def check_lengths(lengths: Any, batch_shape: tuple[int, ...], time: int, *, checked: bool = False) -> jax.Array:
    """Validate ``lengths`` against the batch shape and, when its values are known, against ``[0, T]``.

    With ``checked``, traced lengths get a run-time check through ``checkify``.
    """
    given, lengths = lengths, jnp.asarray(lengths)
    if lengths.shape != tuple(batch_shape):
        raise ValueError(f"expected lengths of shape {tuple(batch_shape)} (the batch axes of xs), got {lengths.shape}")
    if not jnp.issubdtype(lengths.dtype, jnp.integer):
        raise TypeError(f"expected integer lengths, got dtype {lengths.dtype}")
    checks.in_range(given, 0, time, f"expected lengths in [0, {time}] (the time axis of xs), got values from "
                    "{lo} to {hi}", checked=checked)
    return lengths


def masked_scan(body, params, xs, carry, valid, *, reverse, unroll, remat):
    """``lax.scan`` of ``body(params, carry, x)``, freezing carries where ``valid`` is false."""

    def step(carry, inputs):
        x, ok = inputs
        new_carry, y = body(params, carry, x)
        return mask(ok, new_carry, carry, y)

    if remat:
        return checkpointed_scan(step, carry, xs, valid, reverse=reverse, unroll=unroll)
    return lax.scan(step, carry, (xs, valid), reverse=reverse, unroll=unroll)


def checkpointed_scan(step, carry, xs, valid, *, reverse, unroll):
    """``lax.scan(step, ...)`` storing only the carry at every ``K ~ sqrt(T)``-th step.

    The sequence is cut into chunks of ``K`` steps (padded at the end with
    masked steps, which change nothing); the backward pass recomputes one chunk
    at a time. Memory for the backward pass: ``T / K`` carries plus one chunk's
    activations, instead of every step's activations: ``O(sqrt(T))``.
    """
    time, batch_shape = xs.shape[0], xs.shape[1:-1]
    size, chunks = chunking(time)
    if valid is None and chunks * size > time:  # the padding steps are masked
        valid = jnp.ones((time, *batch_shape), bool)

    @jax.checkpoint
    def chunk(carry, inputs):
        return lax.scan(step, carry, inputs, reverse=reverse, unroll=unroll)

    inputs = jax.tree_util.tree_map(lambda a: in_chunks(a, chunks, size), (xs, valid))
    carry, ys = lax.scan(chunk, carry, inputs, reverse=reverse)
    return carry, joined(ys, time)


def checkpointed_sequence(sequence: Callable[..., tuple[Any, jax.Array]], params: Any, xs: jax.Array, carry: Any,
                          *, lengths: jax.Array | None = None, reverse: bool = False) -> tuple[Any, jax.Array]:
    """``sequence(params, xs, carry, lengths=, reverse=)`` a chunk of ``K ~ sqrt(T)`` steps at a time, for ``remat``.

    ``sequence`` is a whole-sequence function that starts from ``carry`` and
    returns ``(final_carry, ys)`` (a :class:`~jaxrnn.parts.Parallel` step's),
    so running it over consecutive chunks, each from the last one's final
    carry, is running it once. A ``lax.scan`` over the ``T / K`` chunks does
    that, each chunk under ``jax.checkpoint``: the backward pass stores
    ``T / K`` carries and recomputes one chunk at a time, memory
    ``O(sqrt(T))`` carries plus one chunk's activations instead of every
    step's. Each chunk still runs its ``K`` steps in parallel; the chunks
    follow one another (``reverse``: from the last). A ``T`` with no divisor
    near ``sqrt(T)`` is padded at the end with steps past every length.

    Args:
      sequence: ``sequence(params, xs, carry, *, lengths, reverse) -> (carry, ys)``.
      params, xs, carry: its arguments; ``xs: (T, *batch, I)``, ``ys: (T, *batch, O)``.
      lengths: integer ``(*batch,)``, or ``None``; as in :func:`scan`.
      reverse: as in :func:`scan`.

    Returns:
      ``(final_carry, ys)``, as ``sequence(params, xs, carry, lengths=lengths, reverse=reverse)``.
    """
    time = xs.shape[0]
    if time == 0:
        return sequence(params, xs, carry, lengths=lengths, reverse=reverse)
    size, chunks = chunking(time)
    if lengths is None and chunks * size > time:  # the padding is past every sequence's end: it changes no carry
        lengths = jnp.full(xs.shape[1:-1], time, jnp.int32)
    starts = jnp.arange(chunks, dtype=jnp.int32) * size

    @jax.checkpoint
    def chunk(carry, inputs):
        x, start = inputs
        n = None if lengths is None else jnp.clip(lengths.astype(jnp.int32) - start, 0, size)
        return sequence(params, x, carry, lengths=n, reverse=reverse)

    carry, ys = lax.scan(chunk, carry, (in_chunks(xs, chunks, size), starts), reverse=reverse)
    return carry, jax.tree_util.tree_map(lambda y: joined(y, time), ys)


def chunking(time: int) -> tuple[int, int]:
    """``(K, n)``: ``n`` chunks of :func:`chunk_size` ``K`` steps cover ``T`` steps (the last may be padded)."""
    size = chunk_size(time)
    return size, -(-time // size)


def in_chunks(a: jax.Array, chunks: int, size: int) -> jax.Array:
    """``a: (T, ...)`` padded with zeros (``False``) to ``chunks * size`` steps, as ``(chunks, size, ...)``."""
    pad = chunks * size - a.shape[0]
    if pad:
        a = jnp.concatenate([a, jnp.zeros((pad, *a.shape[1:]), a.dtype)])
    return a.reshape((chunks, size, *a.shape[1:]))


def joined(ys: jax.Array, time: int) -> jax.Array:
    """``(chunks, size, ...)`` back to ``(T, ...)``, the padding cut off."""
    return ys.reshape((ys.shape[0] * ys.shape[1], *ys.shape[2:]))[:time]


def chunk_size(time: int) -> int:
    """About ``sqrt(T)``: a divisor of ``T`` where one is near (no padding, no copies), else ``ceil(sqrt(T))``."""
    root = math.isqrt(time - 1) + 1 if time > 0 else 1  # ceil(sqrt(T))
    divisor = max(d for d in range(1, root + 1) if time % d == 0) if time > 0 else 1
    return divisor if 2 * divisor >= root else root
