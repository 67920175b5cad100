"""Sequence models: a recurrent cell (or a stack of them) and a linear readout.

The lecture's latent autoregressive model in two shapes::

    h_t = f(h_{t-1}, x_t)                 the cell, over time by jaxrnn.scan
    many-to-one:   y   = h_T W + b        one output per sequence (regression)
    many-to-many:  y_t = h_t W + b        one output per step (per-step logits)

Inputs are time-major, ``xs: (T, B, I)``, as :func:`jaxrnn.scan` takes them.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

import jaxrnn
from jaxrnn.cells.base import Cell
from jaxrnn.config import ConfigError
from jaxrnn.config import Model as ModelConfig
from jaxrnn.deep import Stacked
from jaxrnn.deep import output_size as cell_output_size

CELLS: dict[str, Callable[[int], Cell]] = {"rnn": jaxrnn.rnn, "lstm": jaxrnn.lstm, "gru": jaxrnn.gru}


class Model(NamedTuple):
    """A sequence model as two pure functions.

    Attributes:
      init: ``init(key) -> params``: ``{"cell": ..., "readout": {"kernel", "bias"}}``.
      apply: ``apply(params, xs, key=None) -> ys``; ``key`` switches on the
        stack's dropout (training only).
    """

    init: Callable[[jax.Array], Any]
    apply: Callable[..., jax.Array]


def cell(name: str, hidden_size: int, num_layers: int = 1, *, dropout: float = 0.0, residual: bool = False,
         chrono: float | None = None) -> Cell:
    """A cell by name (``rnn``, ``lstm``, ``gru``), stacked when ``num_layers > 1``; ``chrono``: see ``jaxrnn.lstm``."""
    if name not in CELLS:
        raise ValueError(f"unknown cell {name!r}; expected one of {', '.join(CELLS)}")
    if chrono is not None and name != "lstm":
        raise ValueError(f"chrono: only the lstm has a chrono initialisation, not {name!r}")
    make = functools.partial(CELLS[name], chrono=chrono) if chrono is not None else CELLS[name]
    if num_layers == 1:
        return make(hidden_size)
    return jaxrnn.stack([make(hidden_size) for _ in range(num_layers)], residual=residual, dropout=dropout)


def cell_from_config(config: ModelConfig) -> Cell:
    """The cell of a ``model`` config section.

    Raises:
      ConfigError: ``cell: ar``, a window model with no recurrent cell.
    """
    if config.cell not in CELLS:
        raise ConfigError(f"model.cell {config.cell!r} has no recurrent cell; this experiment needs one of {', '.join(CELLS)}")
    return cell(config.cell, config.hidden_size, config.num_layers, dropout=config.dropout, residual=config.residual,
                chrono=config.chrono)


def dense_init(key: jax.Array, in_size: int, out_size: int) -> dict[str, jax.Array]:
    """Glorot-uniform ``kernel: (in, out)`` and zero ``bias: (out,)``."""
    kernel = jax.nn.initializers.glorot_uniform()(key, (in_size, out_size), jnp.float32)
    return {"kernel": kernel, "bias": jnp.zeros((out_size,), jnp.float32)}


def dense(params: dict[str, jax.Array], x: jax.Array) -> jax.Array:
    """``x @ kernel + bias`` over the last axis."""
    return x @ params["kernel"] + params["bias"]


def _init(core: Cell, input_size: int, output_size: int) -> Callable[[jax.Array], Any]:
    def init(key: jax.Array) -> dict[str, Any]:
        k_cell, k_out = jax.random.split(key)
        params = core.init(k_cell, input_size)
        hidden = cell_output_size(core, params, input_size)
        return {"cell": params, "readout": dense_init(k_out, hidden, output_size)}

    return init


def _scan(core: Cell, params: Any, xs: jax.Array, key: jax.Array | None) -> jax.Array:
    # Only a stack draws random numbers (dropout); a plain cell refuses a key.
    if key is not None and not isinstance(core.step, Stacked):
        key = None
    return jaxrnn.scan(core, params["cell"], xs, key=key)[1]


def many_to_one(core: Cell, input_size: int, output_size: int) -> Model:
    """Read a whole sequence, answer once: ``xs: (T, B, I) -> y: (B, O)`` from ``h_T``."""

    def apply(params: dict[str, Any], xs: jax.Array, key: jax.Array | None = None) -> jax.Array:
        return dense(params["readout"], _scan(core, params, xs, key)[-1])

    return Model(_init(core, input_size, output_size), apply)


def many_to_many(core: Cell, input_size: int, output_size: int) -> Model:
    """Answer at every step: ``xs: (T, B, I) -> ys: (T, B, O)`` from each ``h_t``."""

    def apply(params: dict[str, Any], xs: jax.Array, key: jax.Array | None = None) -> jax.Array:
        return dense(params["readout"], _scan(core, params, xs, key))

    return Model(_init(core, input_size, output_size), apply)


def latent_autoregressive(core: Cell, features: int = 1) -> Model:
    """The lecture's latent autoregressive model: ``h_t = g(h_{t-1}, x_{t-1})``, ``x^_t = h_t W + b``.

    A state ``h`` summarises the whole history in a fixed size. Train it with
    ``apply(params, series[:-1])`` against ``series[1:]``: ``(T, ..., D) -> (T, ..., D)``.
    """
    return many_to_many(core, features, features)


def latent_forecast(core: Cell, params: dict[str, Any], series: jax.Array, steps: int) -> jax.Array:
    """k-step-ahead predictions of a latent autoregressive model from every origin.

    ``F[t, j]`` predicts ``x_{t+j+1}`` from ``x_0 .. x_t`` only: the cell reads
    the observations up to ``t``, then, for ``j >= 1``, its own predictions --
    the same protocol as :func:`jaxrnn.autoregressive.forecast`.

    Args:
      core: the model's cell (no dropout here: prediction is deterministic).
      params: ``{"cell", "readout"}`` of :func:`latent_autoregressive`.
      series: ``(N, D)``.
      steps: ``k``.

    Returns:
      ``(N, steps, D)``.
    """
    series = jnp.asarray(series)
    if series.ndim != 2:
        raise ValueError(f"series: expected shape (N, D), got {series.shape}")
    if steps < 1:
        raise ValueError(f"steps: expected an integer >= 1, got {steps}")

    def observe(carry, x):
        carry, h = core.step(params["cell"], carry, x)
        return carry, (carry, dense(params["readout"], h))

    # The state after each observation: a generation loop over the observed
    # series, kept apart from jaxrnn.scan because it returns every carry.
    _, (carries, first) = jax.lax.scan(observe, core.initial_carry(dtype=series.dtype), series)

    if steps == 1:
        return first[:, None]

    def roll(carry, x):
        def step(state, _):
            carry, x = state
            carry, h = core.step(params["cell"], carry, x)
            x = dense(params["readout"], h).astype(series.dtype)
            return (carry, x), x

        return jax.lax.scan(step, (carry, x), None, length=steps - 1)[1]

    later = jax.vmap(roll)(carries, first)  # (N, steps-1, D)
    return jnp.concatenate([first[:, None], later], axis=1)
