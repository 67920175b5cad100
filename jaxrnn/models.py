"""Sequence models: a recurrent part and a linear readout.

The latent autoregressive model in its two shapes::

    h_t = f(h_{t-1}, x_t)                 the core, over time by jaxrnn.scan
    many-to-many:  y_t = h_t W + b        an answer at every step (per-step logits, the next value)
    many-to-one:   y   = h_T W + b        one answer per sequence (regression)

A many-to-many model is a part like any other, ``stack([core, linear(O)])``:
:func:`jaxrnn.scan` runs it over a sequence and, when the core can be stepped,
its ``step`` runs it one step at a time (forecasts, generation). A many-to-one
model answers once per sequence, so it is a :class:`~jaxrnn.Model`, whose
``apply(params, xs, *, lengths=None, key=None, time_major=True)`` every model
shares. Inputs are time-major, ``xs: (T, *batch, I)``, as :func:`jaxrnn.scan`
takes them.
"""

from __future__ import annotations

import warnings
from typing import Any

import jax
import jax.numpy as jnp

from jaxrnn import checks
from jaxrnn.final_output import final_output
from jaxrnn.layers.linear import linear
from jaxrnn.layers.stack import output_features, stack
from jaxrnn.loop import time_major_inputs
from jaxrnn.parts import Info, Model, Part, describe

__all__ = ["latent_autoregressive", "latent_forecast", "many_to_many", "many_to_one"]


def many_to_many(core: Part, output_size: int) -> Part:
    """Answer at every step: ``xs: (T, *batch, I) -> ys: (T, *batch, O)``, ``y_t = h_t W + b``.

    The latent autoregressive model ``h_t = g(h_{t-1}, x_{t-1})``, ``x^_t = h_t W + b``
    is this model trained on ``scan(model, params, series[:-1])`` against
    ``series[1:]``; forecast with :func:`latent_forecast`.

    ``stack([core, linear(output_size)])``: params ``(core_params, {"kernel", "bias"})``;
    it can be stepped when ``core`` can.
    """
    return stack([checks.part("core", core), linear(checks.size("output_size", output_size))])


def latent_autoregressive(core: Part, features: int = 1) -> Part:
    """:func:`many_to_many` under its earlier name; it will be removed."""
    warnings.warn("jaxrnn.models.latent_autoregressive(core, D) is many_to_many(core, D); the name will be removed",
                  DeprecationWarning, stacklevel=2)
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
        checks.random_key("key", key, optional=True)
        xs = time_major_inputs(core, xs, time_major)
        y = final_output(core, params["cell"], xs, lengths=lengths, key=key)
        return readout.step(params["readout"], (), y)[1]

    return Model(init, apply, Info("many_to_one", output_size, reads_ids=core.info.reads_ids, paths=(),
                                   parts=(core, readout)))


def latent_forecast(model: Part, params: Any, series: jax.Array, steps: int) -> jax.Array:
    """k-step-ahead predictions of a latent autoregressive model from every origin.

    ``F[t, j]`` predicts ``x_{t+j+1}`` from ``x_0 .. x_t`` only: the model reads
    the observations up to ``t``, then, for ``j >= 1``, its own predictions --
    the same protocol as :func:`jaxrnn.autoregressive.forecast`.

    Args:
      model: a :func:`many_to_many` model that can be stepped (no dropout
        here: prediction is deterministic).
      params: its params.
      series: ``(N, D)``.
      steps: ``k``.

    Returns:
      ``(N, steps, D)``.
    """
    if not isinstance(model, Part) or model.step is None:
        raise TypeError("model: expected a jaxrnn.Part that can be stepped (a many_to_many model of a cell), got "
                        + (describe(model) + ", which reads whole sequences only" if isinstance(model, Part)
                           else type(model).__name__))
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
