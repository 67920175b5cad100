"""Sunspots: the lecture's sequence models on a real series, and why k-step prediction is hard.

Data: the yearly mean sunspot number 1700-2008 (NOAA, public domain; shipped in
``jaxrnn/data``), standardised with the training years' mean and deviation.
Years before ``data.first_test_year`` train, the rest (up to
``data.last_test_year``) test.

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
Plot: ``forecasts.png``, the test years with the 1-step and the ``horizon``-step forecasts.
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
from jaxrnn.experiment import plots
from jaxrnn.experiment.fields import Int
from jaxrnn.experiment.keys import Purpose, key
from jaxrnn.experiment.problem import Experiment, Figure, Problem
from jaxrnn.experiment.rundir import RunDir
from jaxrnn.experiment.schema import Config, ConfigError, Naive, Section, Window, rule

YEARS, COUNTS = datasets.sunspots()


class Data(Section):
    """``data`` section: the split, the recurrent models' training stretch and the forecast horizon.

    ``last_test_year`` (default: the last, 2008) ends the evaluation early and
    drops the years after it: a validation split, e.g. ``first_test_year: 1891``
    and ``last_test_year: 1920``, tunes a model without looking at 1921-2008.
    """

    first_test_year: Annotated[Int, Field(ge=int(YEARS[0]) + 50, le=int(YEARS[-1]) - 16)] = 1921
    last_test_year: Annotated[Int, Field(ge=int(YEARS[0]), le=int(YEARS[-1]))] | None = None
    seq_len: Annotated[Int, Field(ge=2, le=100)] = 32
    horizon: Annotated[Int, Field(ge=1, le=16)] = 8

    @model_validator(mode="after")
    def _rules(self) -> "Data":
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
    return int(np.searchsorted(YEARS, data.first_test_year))


def series(data: Data) -> Series:
    split = training_years(data)
    end = len(YEARS) if data.last_test_year is None else int(np.searchsorted(YEARS, data.last_test_year, side="right"))
    train = COUNTS[:split]
    mean, scale = float(train.mean()), float(train.std())
    return Series(jnp.asarray((COUNTS[:end] - mean) / scale)[:, None], split, mean, scale)


def horizons(horizon: int) -> list[int]:
    """``1, 2, 4, ...`` up to ``horizon``, and ``horizon`` itself."""
    ks = [k for k in (1, 2, 4, 8, 16) if k < horizon]
    return ks + [horizon]


class Predictor(NamedTuple):
    """A model as this experiment uses it."""

    init: Any
    loss: Any  # (params, sample_key, dropout_key) -> training loss on a random batch
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
    m, horizon, batch = config.model, config.data.horizon, config.train.batch_size
    train = data.values[: data.split]
    if isinstance(m, Naive):
        tau = data.values.shape[0] - 1  # every lag the series has
        net = m.build(tau + 1)
        inputs, targets = autoregressive.windows(train, tau, pad=True)

        def loss(params, key, dropout=None):
            i = jax.random.randint(key, (batch,), 0, targets.shape[0])
            return jnp.mean((net.apply(params, inputs[i]) - targets[i]) ** 2)

        forecast = lambda params, xs: autoregressive.forecast(net, params, xs, tau, horizon, pad=True)  # noqa: E731
        return Predictor(functools.partial(net.init, input_size=1), loss, forecast)
    if isinstance(m, Window):
        net = m.build()
        inputs, targets = autoregressive.windows(train, m.tau)

        def loss(params, key, dropout=None):
            i = jax.random.randint(key, (batch,), 0, targets.shape[0])
            return jnp.mean((net.apply(params, inputs[i]) - targets[i]) ** 2)

        forecast = lambda params, xs: autoregressive.forecast(net, params, xs, m.tau, horizon)  # noqa: E731
        return Predictor(functools.partial(net.init, input_size=1), loss, forecast)

    length = config.data.seq_len
    net = models.latent_autoregressive(m.build())

    def loss(params, key, dropout=None):
        starts = jax.random.randint(key, (batch,), 0, data.split - length)
        stretch = jax.vmap(lambda s: jax.lax.dynamic_slice_in_dim(train, s, length + 1))(starts)  # (B, L+1, 1)
        stretch = jnp.swapaxes(stretch, 0, 1)  # time-major
        return jnp.mean((jaxrnn.scan(net, params, stretch[:-1], key=dropout)[1] - stretch[1:]) ** 2)

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
    """Data, model and plots of ``config``, as the runner takes them."""
    data = series(config.data)
    model = predictor(config, data)
    ks = horizons(config.data.horizon)

    def loss(params, batch, key):
        return model.loss(params, batch, key), {}

    def metrics(params, xs):
        errors = k_step_errors(model.forecast(params, xs), data, ks)
        return {"loss": errors["mse_k1"], **errors}

    def report(params, folder: RunDir) -> None:
        forecasts = np.asarray(jax.jit(model.forecast)(params, data.values)) * data.scale + data.mean
        plot_forecasts(forecasts, data, folder, config)
        test = np.arange(data.split, data.values.shape[0])
        # For the README's figure of every model: the k-step forecast of each test year, k = 1 .. horizon.
        np.savez(folder.path / "forecasts.npz", years=YEARS[test], observed=COUNTS[test],
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
        report=report,
    )


def plot_forecasts(forecasts: np.ndarray, data: Series, folder: RunDir, config: Config) -> None:
    horizon = config.data.horizon
    test = np.arange(data.split, data.values.shape[0])
    fig, ax = plots.axes((8, 3.8), (0.09, 0.98, 0.13, 0.9))
    shown = slice(data.split - 20, data.values.shape[0])
    ax.plot(YEARS[shown], COUNTS[shown], "k-", lw=1.2, label="observed")
    ax.plot(YEARS[test], forecasts[test - 1, 0, 0], "-", lw=1, label="1-step forecast")
    ax.plot(YEARS[test], forecasts[test - horizon, horizon - 1, 0], "-", lw=1, label=f"{horizon}-step forecast")
    ax.axvline(YEARS[data.split] - 0.5, color="grey", lw=0.8, ls=":")
    ax.set_xlabel("year")
    ax.set_ylabel("sunspot number")
    ax.set_title(f"{config.name}: {config.model.label}, test years {YEARS[data.split]}-{YEARS[test[-1]]}")
    ax.legend(loc="upper left", fontsize=8)
    plots.save(fig, folder.path / "forecasts.png")


# --- the README's figure and table, from the runs of the shipped configs -------------------------------------

MODELS = ("sunspots_markov", "sunspots_ar8", "sunspots_ar8_mlp", "sunspots_naive", "sunspots_rnn", "sunspots_lstm",
          "sunspots_gru")


def draw_forecasts(runs: dict[str, RunDir], path) -> None:
    """Each model's 1-step and longest forecasts of the test years against the observed numbers."""
    fig = plots.figure((12, 8.5))
    axes = fig.subplots(4, 2, sharex=True, sharey=True).ravel()
    for ax, name in zip(axes, MODELS):
        saved = np.load(runs[name].path / "forecasts.npz")
        horizon = saved["forecasts"].shape[1]
        ax.plot(saved["years"], saved["observed"], "k-", lw=1.2, label="observed")
        ax.plot(saved["years"], saved["forecasts"][:, 0], lw=1, label="1 year ahead")
        ax.plot(saved["years"], saved["forecasts"][:, -1], lw=1, label=f"{horizon} years ahead")
        ax.set_title(runs[name].read_summary()["model"], fontsize=10)
        ax.set_ylim(-30, 260)
        ax.grid(True, alpha=0.3)
    axes[-1].axis("off")
    axes[-3].xaxis.set_tick_params(labelbottom=True)  # above the empty panel
    axes[0].legend(fontsize=8, loc="upper left")
    axes[-2].set_xlabel("year")
    fig.tight_layout()
    plots.save(fig, path)


def table(summaries: list[dict]) -> str:
    """RMSE in sunspot counts of the k-step forecasts of the test years, every model beside persistence."""
    ks = sorted(int(k.split("_k")[1]) for k in summaries[0]["metrics"] if k.startswith("eval_rmse_k"))
    data = Data(**RunDir(summaries[0]["folder"]).read_config()["data"])
    x, split = COUNTS[: len(series(data).values)], training_years(data)
    test = np.arange(split, len(x))
    persistence = [float(np.sqrt(np.mean((x[test] - x[test - k]) ** 2))) for k in ks]
    rows = ["| model | " + " | ".join(f"k = {k}" for k in ks) + " |", "| --- |" + " ---: |" * len(ks),
            "| persistence (`x^_s = x_{s-k}`) | " + " | ".join(f"{v:.1f}" for v in persistence) + " |"]
    for s in summaries:
        if s.get("diverged"):
            continue
        units = f" ({s['hidden_size']} units)" if s.get("hidden_size") else ""
        rmses = " | ".join(f"{s['metrics'][f'eval_rmse_k{k}']:.1f}" for k in ks)
        rows.append(f"| {s['model']}{units} | " + rmses + " |")
    return "\n".join(rows) + "\n"


EXPERIMENT = Experiment(
    name="sunspots",
    data=Data,
    problem=problem,
    length=lambda config: (config.model.tau if isinstance(config.model, Window)
                           else series(config.data).values.shape[0] - 1 if isinstance(config.model, Naive)
                           else config.data.seq_len),
    check=check,
    description="yearly sunspots 1700-2008: the lecture's sequence models forecast 1 to k years ahead",
    figures=(Figure("sunspots.png", MODELS, draw_forecasts),),
    table=table,
)
