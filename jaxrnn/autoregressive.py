"""The window models of a sequence: the naive model, AR(tau) and the Markov model.

A sequence model estimates ``p(x_t | x_{t-1}, ..., x_1)``. Its input, the
history, grows with ``t``; there are two ways to keep it bounded:

* **autoregressive, AR(tau)**: keep only the last ``tau`` observations,
  ``x^_t = f(x_{t-tau}, ..., x_{t-1})`` (this module). The **Markov model**
  is AR(1): the last observation alone.
* **latent autoregressive**: carry a state that summarises the past,
  ``h_t = g(h_{t-1}, x_{t-1})``, ``x^_t = p(x_t | h_t)`` -- a recurrent cell
  with a readout (:func:`jaxrnn.models.many_to_many`).

The **naive model** keeps the whole history: here an AR(``max_len - 1``)
whose window reaches back to the first observation, zero-padded before it,
so its parameter count grows with the longest sequence it may see.

Series are time-major, ``series: (N, D)``: ``N`` steps of ``D`` features.
``f`` is a linear map (the classic AR) or an MLP over the flattened window.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxrnn import checks
from jaxrnn.cells.kernels import Initializer, glorot_uniform
from jaxrnn.layers.linear import linear
from jaxrnn.models import Model
from jaxrnn.parts import Info

__all__ = ["ar", "forecast", "markov", "naive", "windows"]


def windows(series: jax.Array, tau: int, *, pad: bool = False) -> tuple[jax.Array, jax.Array]:
    """The AR(tau) regression pairs of a series.

    Row ``i`` pairs the window ``(x_{t-tau}, ..., x_{t-1})`` with its target ``x_t``.

    Args:
      series: ``(N, D)``.
      tau: window length, ``1 <= tau``.
      pad: ``False``: only full windows, ``t = tau .. N-1``. ``True``: every
        ``t = 1 .. N-1``, with zeros before the first observation (the naive
        model's growing history).

    Returns:
      ``(inputs, targets)``: ``inputs: (M, tau, D)``, ``targets: (M, D)``, with
      ``M = N - tau`` (``N - 1`` when padded).
    """
    series = jnp.asarray(series)
    if series.ndim != 2:
        raise ValueError(f"series: expected shape (N, D), got {series.shape}")
    tau = checks.size("tau", tau)
    checks.flag("pad", pad)
    first = 1 if pad else tau  # the first target
    n = series.shape[0] - first
    if n < 1:
        raise ValueError(f"series of {series.shape[0]} steps has no window of {tau} before a target")
    # Padded with tau - first zeros, the window of target first + i starts at index i.
    padded = jnp.concatenate([jnp.zeros((tau - first, series.shape[1]), series.dtype), series])
    inputs = jax.vmap(lambda i: jax.lax.dynamic_slice_in_dim(padded, i, tau))(jnp.arange(n))
    return inputs, series[first:]


def ar(tau: int, hidden: Sequence[int] = (), *, activation: Callable[[jax.Array], jax.Array] = jax.nn.relu,
       kernel_init: Initializer = glorot_uniform) -> Model:
    """AR(tau): predict the next step from the last ``tau`` observations.

    ``x^_t = f([x_{t-tau}, ..., x_{t-1}])``: with ``hidden=()`` the classic
    linear AR, ``f(w) = w A + b``; else an MLP with ``hidden`` units per layer.

    Returns:
      A :class:`~jaxrnn.models.Model`: ``init(key, input_size)`` for ``D =
      input_size`` features per step; ``apply(params, xs, *, lengths=None,
      key=None, time_major=True) -> x^``, every model's call, maps windows
      ``xs: (..., tau, D)`` to ``(..., D)``. A window is one input, its lags
      always on axis -2, so ``time_major`` leaves the layout as it is; ``key``
      is accepted and ignored (no dropout); ``lengths`` is an error (every
      window is full: pad it, as ``windows(..., pad=True)`` does). Params
      ``{"layers": [{"kernel", "bias"}, ...]}``, the first kernel ``(tau * D,
      ...)`` with the oldest lag first.
    """
    tau = checks.size("tau", tau)
    if isinstance(hidden, (int, np.integer)) or not all(isinstance(n, (int, np.integer)) for n in _iterable(hidden)):
        raise TypeError("hidden: expected a sequence of layer sizes (e.g. (32,), or () for the linear AR), "
                        f"got {hidden!r}")
    hidden = tuple(checks.size("hidden", n) for n in hidden)
    checks.function("activation", activation)
    checks.function("kernel_init", kernel_init)

    def init(key: jax.Array, input_size: int) -> dict[str, Any]:
        features = checks.size("input_size", input_size)
        checks.random_key("key", key)
        sizes = (tau * features, *hidden, features)
        keys = jax.random.split(key, len(sizes) - 1)
        return {"layers": [linear(n, kernel_init=kernel_init).init(k, m)
                           for k, m, n in zip(keys, sizes[:-1], sizes[1:])]}

    def apply(params: dict[str, Any], xs: jax.Array, *, lengths: jax.Array | None = None,
              key: jax.Array | None = None, time_major: bool = True) -> jax.Array:
        del key  # no dropout: the signature is every model's
        checks.flag("time_major", time_major)
        if lengths is not None:
            raise ValueError(f"lengths: an AR({tau}) model reads full windows of {tau} steps and takes no lengths; "
                             "pad the short histories with zeros (windows(series, tau, pad=True)) and pass none")
        features = params["layers"][-1]["bias"].shape[-1]
        if xs.shape[-2:] != (tau, features):
            raise ValueError(f"window: expected shape (..., {tau}, {features}), got {xs.shape}")
        z = xs.reshape(*xs.shape[:-2], tau * features)
        *layers, last = params["layers"]
        for layer in layers:
            z = activation(_dense(layer, z))
        return _dense(last, z)

    options = (("tau", tau),) + ((("hidden", tuple(int(n) for n in hidden)),) if len(hidden) else ())
    return Model(init, apply, Info("ar", paths=(), options=options))


def _iterable(value: Any) -> Any:
    try:
        return list(value)
    except TypeError:
        return [None]


def _dense(params: dict[str, jax.Array], x: jax.Array) -> jax.Array:
    return x @ params["kernel"] + params["bias"]


def markov(hidden: Sequence[int] = (), **kwargs) -> Model:
    """The first-order Markov model, ``p(x_t | x_{t-1})``: AR(1)."""
    return ar(1, hidden, **kwargs)


def naive(max_len: int) -> Model:
    """The naive model: a linear regression on the whole history, ``x^_t = b + sum_k A_k x_{t-k}``.

    One weight matrix per lag ``k = 1 .. max_len-1``: AR(``max_len - 1``), fed by
    ``windows(series, max_len - 1, pad=True)`` so that the first step already
    has a (zero-padded) history. The parameters grow with ``max_len`` -- the
    reason to bound the history, with AR(tau), or to summarise it in a latent state.

    The weights start at zero. A lag longer than every history seen in
    training only ever multiplies the zero padding, gets no gradient and stays
    at zero, so the model ignores history older than it has learnt from
    (rather than answering with an untrained random weight).
    """
    max_len = checks.size("max_len", max_len, minimum=2)
    model = ar(max_len - 1, kernel_init=jax.nn.initializers.zeros)
    return model._replace(info=Info("naive", paths=(), options=(("max_len", max_len),)))


def forecast(model: Model, params: Any, series: jax.Array, tau: int, steps: int, *, pad: bool = False) -> jax.Array:
    """k-step-ahead predictions from every origin: feed the model its own predictions.

    ``F[t, j]`` predicts ``x_{t+j+1}`` from the observations ``x_0 .. x_t`` only:
    the window is filled with observations up to ``t`` and then, one step at a
    time, with the model's predictions. Errors compound with ``j``: a good
    one-step predictor can be a poor long-range one.

    Args:
      model: an AR(tau) model (:func:`ar`, :func:`markov`, :func:`naive`).
      series: ``(N, D)``.
      tau: the model's window.
      steps: ``k``, how far ahead to predict.
      pad: fill the window before the first observation with zeros (the naive
        model's growing history), as ``windows(..., pad=True)`` does.

    Returns:
      ``(N, steps, D)``; without ``pad``, NaN for origins ``t < tau - 1``, whose window is not full.
    """
    if not isinstance(model, Model):
        raise TypeError(f"model: expected a window model (jaxrnn.autoregressive.ar, markov, naive), got "
                        f"{type(model).__name__}")
    series = jnp.asarray(series)
    if series.ndim != 2:
        raise ValueError(f"series: expected shape (N, D), got {series.shape}")
    steps = checks.size("steps", steps)
    tau = checks.size("tau", tau)
    n, d = series.shape
    padded = jnp.concatenate([jnp.full((tau - 1, d), 0.0 if pad else jnp.nan, series.dtype), series])
    origins = jax.vmap(lambda t: jax.lax.dynamic_slice_in_dim(padded, t, tau))(jnp.arange(n))  # (N, tau, D)

    def roll(window: jax.Array) -> jax.Array:
        def step(window, _):
            x = model.apply(params, window).astype(window.dtype)
            return jnp.concatenate([window[1:], x[None]]), x

        return jax.lax.scan(step, window, None, length=steps)[1]

    return jax.vmap(roll)(origins)
