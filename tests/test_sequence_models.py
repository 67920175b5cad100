"""Sequence models of a series: AR(tau), Markov, naive, latent AR, k-step forecasts, the sunspot data.
(The ``sunspots`` experiment, through the app, is in test_experiments.py.)"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrnn
from jaxrnn import autoregressive, datasets, models

RNG = np.random.default_rng(0)
SERIES = jnp.asarray(RNG.standard_normal((12, 2)), jnp.float32)  # (N, D)


@pytest.mark.parametrize("tau", [1, 3])
@pytest.mark.parametrize("pad", [False, True])
def test_windows_pair_each_target_with_the_tau_steps_before_it(tau, pad):
    inputs, targets = autoregressive.windows(SERIES, tau, pad=pad)
    x = np.asarray(SERIES)
    ts = range(1 if pad else tau, len(x))
    assert inputs.shape == (len(ts), tau, 2) and targets.shape == (len(ts), 2)
    for row, t in enumerate(ts):
        expected = [x[t - tau + i] if t - tau + i >= 0 else np.zeros(2) for i in range(tau)]
        np.testing.assert_array_equal(inputs[row], np.stack(expected))
        np.testing.assert_array_equal(targets[row], x[t])


def test_windows_reject_bad_input():
    with pytest.raises(ValueError, match=r"expected shape \(N, D\)"):
        autoregressive.windows(SERIES[:, 0], 2)
    with pytest.raises(ValueError, match="tau"):
        autoregressive.windows(SERIES, 0)
    with pytest.raises(ValueError, match="no window"):
        autoregressive.windows(SERIES[:3], 3)


def test_linear_ar_is_a_bias_plus_one_matrix_per_lag():
    """AR(tau): ``x^_t = b + sum_i x_{t-tau+i} A_i``, oldest lag first."""
    tau, d = 3, 2
    net = autoregressive.ar(tau)
    params = net.init(jax.random.key(0), d)
    params["layers"][0]["bias"] = jnp.arange(d, dtype=jnp.float32)
    window = SERIES[:tau]
    a = params["layers"][0]["kernel"].reshape(tau, d, d)  # one (D, D) matrix per lag, oldest first
    expected = params["layers"][0]["bias"] + sum(window[i] @ a[i] for i in range(tau))
    np.testing.assert_allclose(net.apply(params, window), expected, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match=r"window: expected shape \(\.\.\., 3, 2\)"):
        net.apply(params, SERIES[:2])


def test_mlp_ar_markov_and_naive_shapes():
    mlp = autoregressive.ar(4, (8, 5))
    params = mlp.init(jax.random.key(1), 2)
    assert [p["kernel"].shape for p in params["layers"]] == [(8, 8), (8, 5), (5, 2)]
    assert mlp.apply(params, jnp.zeros((7, 4, 2))).shape == (7, 2)
    markov = autoregressive.markov()
    assert markov.init(jax.random.key(0), 2)["layers"][0]["kernel"].shape == (2, 2)
    # The naive model: one weight per lag back to the first step; it grows with the longest history.
    sizes = [autoregressive.naive(n).init(jax.random.key(0), 1)["layers"][0]["kernel"].size for n in (10, 100)]
    assert sizes == [9, 99]


def test_a_window_model_takes_every_models_call():
    """``apply(params, xs, *, lengths=None, key=None, time_major=True)``: the key is ignored (no dropout), the
    windows' layout is theirs whatever ``time_major`` says, and lengths are refused rather than ignored."""
    net = autoregressive.ar(4, (8,))
    params = net.init(jax.random.key(1), 2)
    xs = jax.random.normal(jax.random.key(2), (7, 4, 2))
    plain = net.apply(params, xs)
    for options in ({"key": jax.random.key(3)}, {"time_major": False}, {"time_major": True, "lengths": None}):
        np.testing.assert_array_equal(net.apply(params, xs, **options), plain)
    with pytest.raises(ValueError, match=r"lengths: an AR\(4\) model reads full windows of 4 steps"):
        net.apply(params, xs, lengths=jnp.full((7,), 4))
    with pytest.raises(TypeError, match="time_major"):
        net.apply(params, xs, time_major="yes")


def linear_ar_params(coefficients, bias=0.0):
    """Params of a scalar linear AR whose lag-k coefficient is ``coefficients[k-1]``."""
    kernel = jnp.asarray(coefficients[::-1], jnp.float32)[:, None]  # windows run oldest first
    return {"layers": [{"kernel": kernel, "bias": jnp.full((1,), bias, jnp.float32)}]}


def test_ar_forecast_feeds_its_own_predictions_back():
    coefficients, bias, steps = [0.6, -0.3], 0.1, 4
    net, params = autoregressive.ar(2), linear_ar_params([0.6, -0.3], 0.1)
    series = SERIES[:, :1]
    table = np.asarray(autoregressive.forecast(net, params, series, 2, steps))
    assert table.shape == (12, steps, 1)
    assert np.isnan(table[0]).all() and not np.isnan(table[1:]).any()
    x = np.asarray(series[:, 0], np.float64)
    for t in range(1, 12):
        history = list(x[: t + 1])
        for j in range(steps):
            history.append(bias + coefficients[0] * history[-1] + coefficients[1] * history[-2])
            assert table[t, j, 0] == pytest.approx(history[-1], rel=1e-5, abs=1e-5)


def test_ar_recovers_the_coefficients_of_an_ar2_process():
    # x_t = 1.2 x_{t-1} - 0.5 x_{t-2} + noise; least squares on the windows finds the AR(2).
    rng = np.random.default_rng(1)
    x = np.zeros(3000)
    for t in range(2, len(x)):
        x[t] = 1.2 * x[t - 1] - 0.5 * x[t - 2] + 0.1 * rng.standard_normal()
    inputs, targets = autoregressive.windows(jnp.asarray(x[:, None], jnp.float32), 2)
    design = np.concatenate([np.asarray(inputs)[:, :, 0], np.ones((len(targets), 1))], axis=1)
    fit = np.linalg.lstsq(design, np.asarray(targets)[:, 0], rcond=None)[0]
    np.testing.assert_allclose(fit[:2], [-0.5, 1.2], atol=0.03)  # oldest first
    net = autoregressive.ar(2)
    params = linear_ar_params([fit[1], fit[0]], fit[2])
    residual = net.apply(params, inputs)[:, 0] - targets[:, 0]
    assert float(jnp.std(residual)) == pytest.approx(0.1, rel=0.05)


@pytest.mark.parametrize("core", [jaxrnn.lstm(4), jaxrnn.stack([jaxrnn.gru(4), jaxrnn.rnn(3)])], ids=["lstm", "stack"])
def test_latent_forecast_is_a_loop_that_feeds_predictions_back(core):
    net = models.many_to_many(core, 2)
    params = net.init(jax.random.key(0), 2)
    steps = 3
    table = models.latent_forecast(net, params, SERIES, steps)
    assert table.shape == (12, steps, 2)
    # One step ahead is the model's ordinary output on the observed series.
    np.testing.assert_allclose(table[:, 0], jaxrnn.scan(net, params, SERIES)[1], rtol=1e-5, atol=1e-6)
    core_params, readout_params = params
    readout = lambda h: h @ readout_params["kernel"] + readout_params["bias"]  # noqa: E731
    for t in (0, 5, 11):
        carry = core.initial_carry()
        for x in SERIES[: t + 1]:
            carry, h = core.step(core_params, carry, x)
        for j in range(steps):
            prediction = readout(h)
            np.testing.assert_allclose(table[t, j], prediction, rtol=1e-5, atol=1e-6)
            carry, h = core.step(core_params, carry, prediction)


def test_forecasts_reject_bad_input_and_keep_the_series_dtype():
    net, params = autoregressive.ar(2), linear_ar_params([0.5, 0.2])
    latent = models.many_to_many(jaxrnn.gru(3), 1)
    latent_params = latent.init(jax.random.key(0), 1)
    for call in (lambda xs, k: autoregressive.forecast(net, params, xs, 2, k),
                 lambda xs, k: models.latent_forecast(latent, latent_params, xs, k)):
        with pytest.raises(ValueError, match=r"series: expected shape \(N, D\)"):
            call(SERIES[:, 0], 2)
        with pytest.raises(ValueError, match="steps: expected an integer >= 1, got 0"):
            call(SERIES[:, :1], 0)
    bf16 = SERIES[:, :1].astype(jnp.bfloat16)
    assert autoregressive.forecast(net, params, bf16, 2, 3).dtype == jnp.bfloat16


def test_sunspots_ship_with_the_package():
    years, counts = datasets.sunspots()
    assert years.shape == counts.shape == (309,)
    assert years[0] == 1700 and years[-1] == 2008 and (np.diff(years) == 1).all()
    assert counts.dtype == np.float32 and counts.min() == 0.0 and counts.max() == pytest.approx(190.2)
    assert counts[years == 1957][0] == pytest.approx(190.2)
    assert counts.mean() == pytest.approx(49.75, abs=0.05)


def test_the_naive_model_leaves_the_lags_it_never_saw_at_zero():
    """Trained on histories of at most 6 steps, the weights of lags 7 and beyond get no gradient and stay 0."""
    import optax

    from jaxrnn import training

    net = autoregressive.naive(12)  # lags 1 .. 11
    series = jnp.asarray(np.sin(np.arange(7) * 0.7), jnp.float32)[:, None]
    inputs, targets = autoregressive.windows(series, 11, pad=True)  # 6 zero-padded histories
    params = net.init(jax.random.key(0), 1)
    assert not np.any(params["layers"][0]["kernel"])  # zeros at the start
    tx = optax.adam(0.05)
    step = training.train_step(lambda p, b, *, key: (jnp.mean((net.apply(p, b[0]) - b[1]) ** 2), {}), tx)
    state = training.init(params, tx)
    for _ in range(30):
        state, _ = step(state, (inputs, targets))
    kernel = np.asarray(state.params["layers"][0]["kernel"][:, 0])  # oldest lag first
    assert np.all(kernel[:5] == 0.0) and np.any(kernel[5:] != 0.0)  # lags 11 .. 7 untouched; 6 .. 1 learnt
    table = autoregressive.forecast(net, state.params, series, 11, 2, pad=True)
    assert not np.isnan(table).any()  # a zero-padded history from the first step on
    np.testing.assert_allclose(table[0, 0], net.apply(state.params, inputs[:1])[0], rtol=1e-6)


def test_latent_autoregressive_is_many_to_many_under_its_earlier_name():
    with pytest.warns(DeprecationWarning, match=r"many_to_many\(core, D\)"):
        old = models.latent_autoregressive(jaxrnn.gru(3), 2)
    new = models.many_to_many(jaxrnn.gru(3), 2)
    assert jaxrnn.describe(old) == jaxrnn.describe(new) == "stack([gru(3), linear(2)])"


def test_the_window_models_describe_themselves():
    describe = jaxrnn.describe
    assert [describe(autoregressive.ar(8)), describe(autoregressive.ar(8, (32, 16))), describe(autoregressive.markov()),
            describe(autoregressive.naive(309))] == ["ar(tau=8)", "ar(tau=8, hidden=(32, 16))", "ar(tau=1)",
                                                     "naive(max_len=309)"]
