"""Training with Optax: a pytree train state, a jit-compiled step, evaluation, truncated BPTT.

The pieces of your own training loop: :class:`TrainState`, :func:`init`,
:func:`train_step` (one update), :func:`carried_step` (one update of a model
whose state runs on from batch to batch), :func:`truncated_bptt_step` (a
long stream in chunks, one update each), :func:`evaluator`.

One step of gradient descent on a loss ``L(theta; batch)``::

    g = grad L(theta_t; batch_t)
    theta_{t+1}, s_{t+1} = optax_update(g, s_t, theta_t)

Everything here is a pure function of its inputs: the state is a
:class:`TrainState` pytree (checkpointed as-is), and randomness (dropout)
comes from a key the caller derives from the step, so a run that is resumed
from a checkpoint computes exactly what an uninterrupted one does.

A step whose loss or gradient norm is not finite leaves the state unchanged
and reports ``finite = False``; the caller decides to stop (see
:class:`Diverged`). The state therefore never holds NaNs.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Iterable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxrnn import checks

__all__ = [
    "Diverged", "TrainState", "apply_gradients", "carried_step", "evaluator", "global_norm", "init", "merge_metrics",
    "train_step", "truncated_bptt_step"
]

Params = Any
Batch = Any
Metrics = dict[str, jax.Array]
# loss_fn(params, batch, *, key) -> (loss, aux); key: the per-step key (dropout), or None.
LossFn = Callable[..., "tuple[jax.Array, Metrics]"]


class TrainState(NamedTuple):
    """What training changes, as one pytree.

    Attributes:
      step: int32 scalar, the number of updates applied so far.
      params: the model's parameters.
      opt_state: the optimiser's state (moments, schedule count, ...).
    """

    step: jax.Array
    params: Params
    opt_state: optax.OptState


class Diverged(FloatingPointError):
    """The loss or the gradient became NaN or infinite."""


def init(params: Params, tx: optax.GradientTransformation) -> TrainState:
    """The state before the first update: ``step = 0``, ``tx.init(params)``."""
    _check_optimizer(tx)
    return TrainState(jnp.zeros((), jnp.int32), params, tx.init(params))


def _check_optimizer(tx: Any) -> None:
    if not (callable(getattr(tx, "init", None)) and callable(getattr(tx, "update", None))):
        raise TypeError(f"tx: expected an Optax GradientTransformation (e.g. optax.adam(1e-3)), got {tx!r}")


def apply_gradients(
    state: TrainState,
    grads: Params,
    loss: jax.Array,
    tx: optax.GradientTransformation,
    learning_rate: optax.ScalarOrSchedule | None = None,
) -> tuple[TrainState, Metrics]:
    """One Optax update, skipped if ``loss`` or ``grads`` are not finite.

    Returns the new state and ``{"loss", "grad_norm", "finite"}`` (plus ``"lr"``,
    the rate used for this update, when ``learning_rate`` is given).
    ``grad_norm`` is ``||g||_2`` over all leaves, before any clipping.
    """
    grad_norm = global_norm(grads)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    new = TrainState(state.step + 1, optax.apply_updates(state.params, updates), opt_state)
    finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
    new = jax.tree_util.tree_map(lambda n, o: jnp.where(finite, n, o), new, state)
    metrics = {"loss": loss, "grad_norm": grad_norm, "finite": finite}
    if learning_rate is not None:
        metrics["lr"] = jnp.asarray(learning_rate(state.step) if callable(learning_rate) else learning_rate)
    return new, metrics


def global_norm(tree: Any) -> jax.Array:
    """``||g||_2`` over all leaves of ``tree``: ``sqrt(sum_leaves sum_i g_i^2)``."""
    return jnp.sqrt(sum(jnp.sum(jnp.square(leaf)) for leaf in jax.tree_util.tree_leaves(tree)))


def train_step(
    loss_fn: LossFn,
    tx: optax.GradientTransformation,
    learning_rate: optax.ScalarOrSchedule | None = None,
    *,
    jit: bool = True,
) -> Callable[..., tuple[TrainState, Metrics]]:
    """``step(state, batch, *, key=None) -> (state, metrics)``, jit-compiled.

    Args:
      loss_fn: ``loss_fn(params, batch, *, key) -> (loss, aux)``; ``loss`` a
        scalar, ``aux`` a dict of scalar metrics (e.g. accuracy) reported
        alongside. ``key`` is the caller's per-step key (dropout) or ``None``,
        always passed by name.
      tx: the optimiser.
      learning_rate: its schedule (or constant), only to report ``lr``.
      jit: compile the step (turn off to debug).

    ``metrics`` holds ``loss``, ``grad_norm`` (before clipping), ``finite``
    (false: the loss or the gradient was not finite and the state was left as
    it was), ``lr`` only when ``learning_rate`` is given, and each entry of
    ``aux`` beside them under its own name.

    Raises:
      TypeError: ``loss_fn`` takes no ``key`` by name (when it is built);
        ``aux`` is not a dict of metrics (when the step is traced).
      ValueError: ``aux`` reuses one of the names above.
    """

    checks.function("loss_fn", loss_fn)
    _check_optimizer(tx)
    checks.flag("jit", jit)
    _check_key_keyword(loss_fn, "loss_fn(params, batch, *, key)")

    def step(state: TrainState, batch: Batch, *, key: jax.Array | None = None):
        (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params, batch, key=key)
        state, metrics = apply_gradients(state, grads, loss, tx, learning_rate)
        return state, merge_metrics(aux, metrics)

    return jax.jit(step) if jit else step


def _check_key_keyword(loss_fn: Callable, contract: str) -> None:
    """``loss_fn`` must take ``key`` by name: the steps pass it as ``key=``, never by position.

    A function whose signature cannot be read (some builtins) is let through;
    calling it will tell.
    """
    try:
        parameters = inspect.signature(loss_fn).parameters.values()
    except (TypeError, ValueError):
        return
    named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD or (p.name == "key" and p.kind in named) for p in parameters):
        return
    raise TypeError(f"loss_fn: expected {contract}, with the per-step key (or None) passed by name, "
                    f"got a function of ({', '.join(str(p) for p in parameters)}); name its key parameter 'key'")


def merge_metrics(aux: Any, metrics: Metrics) -> Metrics:
    """``aux``'s entries beside the step's own metrics; a name in both would hide one of them."""
    if not isinstance(aux, dict):
        raise TypeError("loss_fn: expected (loss, aux) with aux a dict of metrics, "
                        f"got aux of type {type(aux).__name__}")
    clash = sorted(set(aux) & {"loss", "grad_norm", "finite", "lr"})
    if clash:
        raise ValueError(f"loss_fn: aux may not use the step's own metric names ({', '.join(clash)}); "
                         "rename them (e.g. 'task_loss')")
    return {**aux, **metrics}


def carried_step(
    loss_fn: Callable[..., tuple[jax.Array, tuple[Any, Metrics]]],
    tx: optax.GradientTransformation,
    learning_rate: optax.ScalarOrSchedule | None = None,
    *,
    jit: bool = True,
) -> Callable[..., tuple[TrainState, Any, Metrics]]:
    """One update of a model whose state runs on from batch to batch: a window of a long stream.

    ``loss, carry_out = L(theta, sg(carry_in), batch)``; ``theta <- update(grad loss)``. The
    carry comes in under ``stop_gradient``, so the gradient stops at the
    window's start (truncated backpropagation through time, one window per
    call: :func:`jaxrnn.language.streams` cuts the windows).

    Args:
      loss_fn: ``loss_fn(params, carry, batch, *, key) -> (loss, (carry, aux))``.
      tx, learning_rate, jit: as in :func:`train_step`.

    Returns:
      ``step(state, carry, batch, *, key=None) -> (state, carry, metrics)``; a
      step whose loss or gradient is not finite leaves both state and carry as
      they were (``metrics["finite"]`` is false).
    """
    checks.function("loss_fn", loss_fn)
    _check_optimizer(tx)
    checks.flag("jit", jit)
    _check_key_keyword(loss_fn, "loss_fn(params, carry, batch, *, key)")

    def step(state: TrainState, carry: Any, batch: Batch, *, key: jax.Array | None = None):
        return _carried_update(loss_fn, tx, learning_rate, state, carry, batch, key)

    return jax.jit(step) if jit else step


def _carried_update(loss_fn, tx, learning_rate, state, carry, batch, key):
    carry = jax.lax.stop_gradient(carry)
    (loss, (new_carry, aux)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params, carry, batch, key=key)
    state, metrics = apply_gradients(state, grads, loss, tx, learning_rate)
    new_carry = jax.tree_util.tree_map(lambda n, o: jnp.where(metrics["finite"], n, o), new_carry, carry)
    return state, jax.lax.stop_gradient(new_carry), merge_metrics(aux, metrics)


def truncated_bptt_step(
    loss_fn: Callable[..., tuple[jax.Array, tuple[Any, Metrics]]],
    tx: optax.GradientTransformation,
    chunk_length: int,
    learning_rate: optax.ScalarOrSchedule | None = None,
    *,
    jit: bool = True,
) -> Callable[..., tuple[TrainState, Any, Metrics]]:
    """Truncated backpropagation through time over one long stream.

    The stream (time axis 0, length ``T``) is cut into ``T / k`` chunks of
    ``k = chunk_length`` steps. Each chunk starts from the carry the previous
    one ended with, under ``stop_gradient``: the forward pass sees the whole
    history, the gradient only the last ``k`` steps. One update per chunk::

        for chunk n:  loss_n, h_n = L(theta, sg(h_{n-1}), chunk_n);  theta <- update(grad loss_n)

    Args:
      loss_fn: ``loss_fn(params, carry, chunk, *, key) -> (loss, (carry, aux))``,
        ``chunk`` a pytree whose leaves have time axis 0 of length ``k``.
      tx, learning_rate: as in :func:`train_step`.
      chunk_length: ``k``; ``T`` must be a multiple of it.
      jit: compile the step.

    Returns:
      ``step(state, carry, stream, *, key=None) -> (state, carry, metrics)``: the
      carry after the stream (hand it to the next call to continue the stream),
      and metrics with a leading axis of one entry per chunk. The chunks run in
      one ``lax.scan``, so the step compiles once whatever ``T / k``.
    """
    checks.function("loss_fn", loss_fn)
    _check_optimizer(tx)
    chunk_length = checks.size("chunk_length", chunk_length)
    checks.flag("jit", jit)
    _check_key_keyword(loss_fn, "loss_fn(params, carry, chunk, *, key)")

    def step(state: TrainState, carry: Any, stream: Any, *, key: jax.Array | None = None):
        lengths = {leaf.shape[0] for leaf in jax.tree_util.tree_leaves(stream)}
        if len(lengths) != 1:
            raise ValueError(f"stream leaves disagree on the time axis: lengths {sorted(lengths)}")
        (total,) = lengths
        if total % chunk_length:
            raise ValueError(f"stream length {total} is not a multiple of chunk_length {chunk_length}")
        n = total // chunk_length
        chunks = jax.tree_util.tree_map(lambda a: a.reshape((n, chunk_length) + a.shape[1:]), stream)

        def body(state_carry, inputs):
            index, chunk = inputs
            chunk_key = None if key is None else jax.random.fold_in(key, index)
            state, carry, metrics = _carried_update(loss_fn, tx, learning_rate, *state_carry, chunk, chunk_key)
            return (state, carry), metrics

        (state, carry), metrics = jax.lax.scan(body, (state, carry), (jnp.arange(n), chunks))
        return state, carry, metrics

    return jax.jit(step) if jit else step


def evaluator(
    metrics_fn: Callable[[Params, Batch], Metrics],
) -> Callable[[Params, Iterable[Batch]], dict[str, float]]:
    """``evaluate(params, batches) -> {name: mean over batches}``, ``metrics_fn`` jit-compiled.

    ``metrics_fn(params, batch)`` returns a dict of scalars; each metric is
    averaged over the batches with equal weight (equal batch sizes assumed).
    """
    compiled = jax.jit(metrics_fn)

    def evaluate(params: Params, batches: Iterable[Batch]) -> dict[str, float]:
        totals: dict[str, list] = {}
        for batch in batches:
            for name, value in compiled(params, batch).items():
                totals.setdefault(name, []).append(value)
        if not totals:
            raise ValueError("evaluate needs at least one batch")
        return {name: float(np.mean(jax.device_get(values))) for name, values in totals.items()}

    return evaluate
