"""Sunspots: the classic sequence models on a real series, and why k-step prediction is hard.

Data: the yearly mean sunspot number 1700-2008 (NOAA, public domain; shipped in
``jaxrnn/data``, read on first use), standardised with the training years'
mean and deviation. Years before ``data.first_test_year`` train, the rest (up
to ``data.last_test_year``) test.

Models (``model``):

* ``kind: window``: AR(``model.tau``), ``x^_t = f(x_{t-tau}, ..., x_{t-1})``; linear with
  ``num_layers: 0`` (``tau: 1`` is the Markov model), else an MLP. Trained
  on random windows of the training years.
* ``kind: naive``: the naive model, a linear regression on the whole history
  back to 1700 (zero-padded before it): one weight per year of the series.
  Trained on every training year's full history; the weights of lags longer
  than the training years never get a gradient and stay at their initial zero.
* a recurrent model (``cell: rnn``, ``lstm``, ``gru``): the latent autoregressive model,
  ``h_t = g(h_{t-1}, x_{t-1})``, ``x^_t = h_t W + b``. Trained on random
  stretches of ``data.seq_len`` training years, a prediction at every step.

Evaluation: every model predicts every test year ``s`` from the observations
up to year ``s - k`` only, feeding its own predictions back for the years in
between (:func:`jaxrnn.autoregressive.forecast`, :func:`jaxrnn.models.latent_forecast`).
``eval_loss`` is the one-step MSE (standardised units); ``eval_mse_k{k}`` the
k-step MSE for ``k = 1, 2, 4, ...`` up to ``data.horizon``, ``eval_rmse_k{k}``
the same in sunspot counts. Baseline: persistence, ``x^_s = x_{s-1}``.
Analysis: ``forecasts.npz``, the k-step forecast of every test year for
``k = 1 .. horizon`` (``years``, ``observed``, ``forecasts (years, horizon)``),
which the report draws.
"""

from __future__ import annotations

import functools
from typing import Annotated, Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from pydantic import Field, model_validator

import jaxrnn
from jaxrnn import autoregressive, datasets, models
from jaxrnn.experiment.fields import Int
from jaxrnn.experiment.keys import Purpose, key
from jaxrnn.experiment.problem import Experiment, Problem
from jaxrnn.experiment.rundir import RunDir
from jaxrnn.experiment.schema import Config, ConfigError, Naive, Section, Window, rule

# The fewest training years before data.first_test_year, and test years from it on (the longest horizon).
MIN_TRAINING_YEARS = 50
MIN_TEST_YEARS = 16


class Observations(NamedTuple):
    """The shipped series: ``years (N,)`` int and ``counts (N,)`` float32, read-only."""

    years: np.ndarray
    counts: np.ndarray


@functools.cache
def _drawn_in_the_step(batch_key: jax.Array) -> jax.Array:
    """The batch is the key itself: the loss draws its windows from it, inside the compiled step."""
    return batch_key


def observations() -> Observations:
    """The yearly sunspot numbers (:func:`jaxrnn.datasets.sunspots`), read from the package once, on first use."""
    years, counts = datasets.sunspots()
    years.setflags(write=False)
    counts.setflags(write=False)
    return Observations(years, counts)


class Data(Section):
    """``data`` section: the split, the recurrent models' training stretch and the forecast horizon.

    ``first_test_year`` leaves at least 50 training years before it and 16
    test years from it on. ``last_test_year`` (default: the last, 2008) ends
    the evaluation early and drops the years after it: a validation split,
    e.g. ``first_test_year: 1891`` and ``last_test_year: 1920``, tunes a
    model without looking at 1921-2008. The years' bounds are checked against
    the data when a config is read (the data is not read before).
    """

    first_test_year: Int = 1921
    last_test_year: Int | None = None
    seq_len: Annotated[Int, Field(ge=2, le=100)] = 32
    horizon: Annotated[Int, Field(ge=1, le=16)] = 8

    @model_validator(mode="after")
    def _rules(self) -> "Data":
        years = observations().years
        first, last = int(years[0]) + MIN_TRAINING_YEARS, int(years[-1]) - MIN_TEST_YEARS
        if not first <= self.first_test_year <= last:
            raise rule("first_test_year", f"expected an integer in {first}..{last}, got {self.first_test_year}")
        if self.last_test_year is not None and not years[0] <= self.last_test_year <= years[-1]:
            raise rule("last_test_year", f"expected an integer in {years[0]}..{years[-1]} or null, "
                                         f"got {self.last_test_year}")
        if self.last_test_year is not None and self.last_test_year < self.first_test_year:
            raise rule("last_test_year", f"expected null or a year >= data.first_test_year ({self.first_test_year}), "
                                         f"got {self.last_test_year}")
        return self


class Series(NamedTuple):
    """The standardised series and how to undo the scaling."""

    values: jax.Array  # (N, 1), standardised
    split: int  # index of the first test year
    mean: float
    scale: float


def training_years(data: Data) -> int:
    """How many years come before ``data.first_test_year``: the index of the first test year."""
    return int(np.searchsorted(observations().years, data.first_test_year))


def series(data: Data) -> Series:
    """The years up to ``data.last_test_year``, standardised with the training years' mean and deviation."""
    years, counts = observations()
    split = training_years(data)
    end = len(years) if data.last_test_year is None else int(np.searchsorted(years, data.last_test_year, side="right"))
    train = counts[:split]
    mean, scale = float(train.mean()), float(train.std())
    return Series(jnp.asarray((counts[:end] - mean) / scale)[:, None], split, mean, scale)


def horizons(horizon: int) -> list[int]:
    """``1, 2, 4, ...`` up to ``horizon``, and ``horizon`` itself."""
    ks = [k for k in (1, 2, 4, 8, 16) if k < horizon]
    return ks + [horizon]


class Predictor(NamedTuple):
    """A model as this experiment uses it."""

    init: Any
    loss: Any  # (params, sample_key, *, key) -> training loss on a random batch; key: the dropout key
    forecast: Any  # (params, series (N, 1)) -> (N, horizon, 1)


def check(config: Config) -> None:
    """The model's window (``model.tau``) or stretch (``data.seq_len``) must fit the training years."""
    split = training_years(config.data)
    if isinstance(config.model, Window):
        # The first test year's longest forecast starts data.horizon years earlier, from a full window.
        largest = split - config.data.horizon + 1
        if config.model.tau > largest:
            raise ConfigError(f"model.tau: expected at most {largest} (the {split} training years before "
                              f"data.first_test_year, less data.horizon {config.data.horizon}, plus 1), "
                              f"got {config.model.tau}")
    elif config.data.seq_len >= split:
        raise ConfigError(f"data.seq_len: expected fewer than the {split} training years before data.first_test_year, "
                          f"got {config.data.seq_len}")


def predictor(config: Config, data: Series) -> Predictor:
    """The model of ``config`` (naive, AR(tau) or latent autoregressive), its training loss and its forecasts."""
    m, horizon, batch = config.model, config.data.horizon, config.train.batch_size
    train = data.values[: data.split]
    if isinstance(m, Naive):
        tau = data.values.shape[0] - 1  # every lag the series has
        net = m.build(tau + 1)
        inputs, targets = autoregressive.windows(train, tau, pad=True)

        def loss(params, sample_key, *, key=None):
            i = jax.random.randint(sample_key, (batch,), 0, targets.shape[0])
            return jnp.mean((net.apply(params, inputs[i]) - targets[i]) ** 2)

        forecast = lambda params, xs: autoregressive.forecast(net, params, xs, tau, horizon, pad=True)  # noqa: E731
        return Predictor(functools.partial(net.init, input_size=1), loss, forecast)
    if isinstance(m, Window):
        net = m.build()
        inputs, targets = autoregressive.windows(train, m.tau)

        def loss(params, sample_key, *, key=None):
            i = jax.random.randint(sample_key, (batch,), 0, targets.shape[0])
            return jnp.mean((net.apply(params, inputs[i]) - targets[i]) ** 2)

        forecast = lambda params, xs: autoregressive.forecast(net, params, xs, m.tau, horizon)  # noqa: E731
        return Predictor(functools.partial(net.init, input_size=1), loss, forecast)

    length = config.data.seq_len
    net = models.many_to_many(m.build(), 1)

    def loss(params, sample_key, *, key=None):
        starts = jax.random.randint(sample_key, (batch,), 0, data.split - length)
        stretch = jax.vmap(lambda s: jax.lax.dynamic_slice_in_dim(train, s, length + 1))(starts)  # (B, L+1, 1)
        stretch = jnp.swapaxes(stretch, 0, 1)  # time-major
        return jnp.mean((jaxrnn.scan(net, params, stretch[:-1], key=key)[1] - stretch[1:]) ** 2)

    forecast = lambda params, xs: models.latent_forecast(net, params, xs, horizon)  # noqa: E731
    return Predictor(functools.partial(net.init, input_size=1), loss, forecast)


def k_step_errors(forecasts: jax.Array, data: Series, ks: list[int]) -> dict[str, jax.Array]:
    """MSE (standardised) and RMSE (counts) of the k-step forecasts of every test year."""
    x = data.values[:, 0]
    test = jnp.arange(data.split, x.shape[0])
    out = {}
    for k in ks:
        err = forecasts[test - k, k - 1, 0] - x[test]
        mse = jnp.mean(err**2)
        out[f"mse_k{k}"] = mse
        out[f"rmse_k{k}"] = jnp.sqrt(mse) * data.scale
    return out


def problem(config: Config) -> Problem:
    """Data, model, loss and metrics of ``config``, as the runner takes them; a batch is the key that draws it."""
    data = series(config.data)
    model = predictor(config, data)
    ks = horizons(config.data.horizon)

    def loss(params, sample_key, *, key):
        return model.loss(params, sample_key, key=key), {}

    def metrics(params, xs):
        errors = k_step_errors(model.forecast(params, xs), data, ks)
        return {"loss": errors["mse_k1"], **errors}

    def analysis(params, folder: RunDir) -> None:
        forecasts = np.asarray(jax.jit(model.forecast)(params, data.values)) * data.scale + data.mean
        test = np.arange(data.split, data.values.shape[0])
        years, counts = observations()
        # The k-step forecast of each test year, k = 1 .. horizon: its origin is the year k before it.
        np.savez(folder.path / "forecasts.npz", years=years[test], observed=counts[test],
                 forecasts=np.stack([forecasts[test - k, k - 1, 0] for k in range(1, config.data.horizon + 1)], 1))

    x = np.asarray(data.values[:, 0])
    persistence = float(np.mean((x[data.split :] - x[data.split - 1 : -1]) ** 2))
    return Problem(
        init=model.init,
        loss=loss,
        metrics=metrics,
        batch=lambda step: key(config.train.seed, Purpose.TRAIN, step),
        eval_batches=[data.values],
        baseline=persistence,
        analysis=analysis,
        sample=_drawn_in_the_step,
    )


EXPERIMENT = Experiment(
    name="sunspots",
    data=Data,
    problem=problem,
    length=lambda config: (config.model.tau if isinstance(config.model, Window)
                           else series(config.data).values.shape[0] - 1 if isinstance(config.model, Naive)
                           else config.data.seq_len),
    check=check,
    description="yearly sunspots 1700-2008: the naive, AR(tau), Markov and latent models forecast 1 to k years ahead",
)
