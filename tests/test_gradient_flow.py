"""Gradient flow: the gradient reaching each step, checked where the lecture's product has a closed form."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrnn
from jaxrnn import gradient_flow

T, B, H = 12, 3, 4


def linear_rnn(a):
    """``h_t = a h_{t-1} + x_t``: ``dh_T/dx_t = a^(T-t) I``."""
    cell = jaxrnn.rnn(H, activation=lambda z: z, use_bias=False)
    params = {"input_kernel": jnp.eye(H), "recurrent_kernel": a * jnp.eye(H)}
    return lambda xs: jaxrnn.scan(cell, params, xs)[1][-1]


@pytest.mark.parametrize("a", [0.5, 1.0, 1.5])
def test_the_gradient_is_the_product_of_jacobians(a):
    xs = jnp.asarray(np.random.default_rng(0).standard_normal((T, B, H)), jnp.float32)
    norms = gradient_flow.input_gradient_norms(linear_rnn(a), xs)
    assert norms.shape == (T, B)
    # d(sum_o h_T[o]) / dx_t = a^(T-t) * ones(H): norm a^(T-t) sqrt(H), for every sequence.
    expected = a ** (T - 1 - np.arange(T)) * np.sqrt(H)
    np.testing.assert_allclose(norms, np.repeat(expected[:, None], B, axis=1), rtol=1e-5)
    np.testing.assert_allclose(gradient_flow.decay(norms), (T - 1) * np.log10(a), atol=1e-5)


def test_each_sequence_gets_its_own_gradient():
    # One backward pass of sum(y) over the batch gives each sequence the norms it gets alone.
    cell = jaxrnn.rnn(H, activation="relu")
    params = cell.init(jax.random.key(0), H)
    fn = lambda xs: jaxrnn.scan(cell, params, xs)[1][-1]  # noqa: E731
    xs = jnp.asarray(np.random.default_rng(1).standard_normal((T, B, H)), jnp.float32)
    together = gradient_flow.input_gradient_norms(fn, xs)
    alone = jnp.concatenate([gradient_flow.input_gradient_norms(fn, xs[:, b : b + 1]) for b in range(B)], axis=1)
    np.testing.assert_allclose(together, alone, rtol=1e-5, atol=1e-7)


def test_an_underflowed_gradient_gives_a_finite_bound():
    # At a = 0.001 over 20 steps the first step's gradient is 1e-57: float32 holds 0.
    xs = jnp.ones((20, B, H), jnp.float32)
    norms = gradient_flow.input_gradient_norms(linear_rnn(1e-3), xs)
    assert (norms[0] == 0).all() and (norms[-1] > 0).all()
    bound = gradient_flow.decay(norms)
    tiny = np.finfo(np.float32).tiny
    np.testing.assert_allclose(bound, np.log10(tiny) - np.log10(np.sqrt(H)), rtol=1e-5)
    assert np.isfinite(bound).all()
