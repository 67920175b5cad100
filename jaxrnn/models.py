"""Sequence models: a recurrent part and a linear readout.

The lecture's latent autoregressive model in its two shapes::

    h_t = f(h_{t-1}, x_t)                 the core, over time by jaxrnn.scan
    many-to-many:  y_t = h_t W + b        an answer at every step (per-step logits, the next value)
    many-to-one:   y   = h_T W + b        one answer per sequence (regression)

A many-to-many model is a part like any other, ``stack([core, linear(O)])``:
:func:`jaxrnn.scan` runs it over a sequence and, when the core is a cell, its
``step`` runs it one step at a time (forecasts, generation). A many-to-one
model answers once per sequence, so it is a :class:`Model`. Inputs are
time-major, ``xs: (T, *batch, I)``, as :func:`jaxrnn.scan` takes them.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from jaxrnn import checks
from jaxrnn.final_output import final_output
from jaxrnn.layers.linear import linear
from jaxrnn.layers.stack import output_features, stack
from jaxrnn.loop import time_major_inputs
from jaxrnn.parts import Cell, Layer, Part


class Model(NamedTuple):
    """A model that answers once per input: two pure functions.

    Attributes:
      init: ``init(key, input_size) -> params``.
      apply: ``apply(params, xs, *, lengths=None, key=None) -> y``; ``key``
        switches on the dropout of a stack (training only); parts that draw no
        random numbers ignore it.
    """

    init: Callable[[jax.Array, int], Any]
    apply: Callable[..., jax.Array]


def many_to_many(core: Part, output_size: int) -> Cell | Layer:
    """Answer at every step: ``xs: (T, *batch, I) -> ys: (T, *batch, O)``, ``y_t = h_t W + b``.

    ``stack([core, linear(output_size)])``: params ``(core_params, {"kernel", "bias"})``;
    a :class:`~jaxrnn.Cell` when ``core`` is one.
    """
    return stack([checks.part("core", core), linear(output_size)])


def latent_autoregressive(core: Part, features: int = 1) -> Cell | Layer:
    """The lecture's latent autoregressive model: ``h_t = g(h_{t-1}, x_{t-1})``, ``x^_t = h_t W + b``.

    A state ``h`` summarises the whole history in a fixed size. Train it on
    ``scan(model, params, series[:-1])`` against ``series[1:]``
    (``(T, ..., D) -> (T, ..., D)``); forecast with :func:`latent_forecast`.
    """
    return many_to_many(core, features)


def many_to_one(core: Part, output_size: int) -> Model:
    """Read a whole sequence, answer once: ``xs: (T, *batch, I) -> y: (*batch, O)``, ``y = y^core_final W + b``.

    The answer reads the core's output once it has read the whole sequence
    (:func:`jaxrnn.final_output.final_output`): with ``lengths``, each
    sequence's own last step (a sequence of length 0 reads the core's output as zeros); over a
    bidirectional core, the forward direction at the last step merged with the
    backward direction after it has read back to ``x_0`` (PyTorch's ``h_n``).
    ``time_major=False`` reads ``xs: (*batch, T, I)``. Params ``{"cell", "readout"}``.
    """
    checks.part("core", core)
    readout = linear(checks.size("output_size", output_size))

    def init(key: jax.Array, input_size: int) -> dict[str, Any]:
        checks.random_key("key", key)
        k_cell, k_out = jax.random.split(key)
        params = core.init(k_cell, input_size)
        return {"cell": params, "readout": readout.init(k_out, output_features(core, params, input_size))}

    def apply(params: dict[str, Any], xs: jax.Array, *, lengths: jax.Array | None = None,
              key: jax.Array | None = None, time_major: bool = True) -> jax.Array:
        if not isinstance(params, dict) or set(params) != {"cell", "readout"}:
            raise ValueError("expected the params of a many_to_one model, {'cell': ..., 'readout': ...}, got "
                             + (f"keys {sorted(params)}" if isinstance(params, dict) else type(params).__name__))
        xs = time_major_inputs(core, xs, time_major)
        return readout.step.fn(params["readout"], final_output(core, params["cell"], xs, lengths=lengths, key=key))

    return Model(init, apply)


def latent_forecast(model: Cell, params: Any, series: jax.Array, steps: int) -> jax.Array:
    """k-step-ahead predictions of a latent autoregressive model from every origin.

    ``F[t, j]`` predicts ``x_{t+j+1}`` from ``x_0 .. x_t`` only: the model reads
    the observations up to ``t``, then, for ``j >= 1``, its own predictions --
    the same protocol as :func:`jaxrnn.autoregressive.forecast`.

    Args:
      model: a :func:`latent_autoregressive` model whose core is a cell (no
        dropout here: prediction is deterministic).
      params: its params.
      series: ``(N, D)``.
      steps: ``k``.

    Returns:
      ``(N, steps, D)``.
    """
    if not isinstance(model, Cell):
        raise TypeError(f"model: expected a jaxrnn.Cell (a latent_autoregressive model of a cell), "
                        f"got {type(model).__name__}")
    series = jnp.asarray(series)
    if series.ndim != 2:
        raise ValueError(f"series: expected shape (N, D), got {series.shape}")
    steps = checks.size("steps", steps)

    def observe(carry, x):
        carry, prediction = model.step(params, carry, x)
        return carry, (carry, prediction)

    # The state after each observation: a loop over the observed series, kept
    # apart from jaxrnn.scan because it returns every carry.
    _, (carries, first) = jax.lax.scan(observe, model.initial_carry(dtype=series.dtype), series)
    if steps == 1:
        return first[:, None]

    def roll(carry, x):
        def step(state, _):
            carry, x = state
            carry, x = model.step(params, carry, x)
            x = x.astype(series.dtype)
            return (carry, x), x

        return jax.lax.scan(step, (carry, x), None, length=steps - 1)[1]

    later = jax.vmap(roll)(carries, first)  # (N, steps-1, D)
    return jnp.concatenate([first[:, None], later], axis=1)
