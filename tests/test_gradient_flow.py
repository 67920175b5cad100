"""Gradient flow: the gradient reaching each step, checked where the product of Jacobians has a closed form."""

from __future__ import annotations

import functools

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrnn
from jaxrnn import gradient_flow
from support import B, H

# Longer than the shared T: the closed forms' powers a^(T-t) and W^k span several decades over it.
STEPS = 12


def linear_rnn(a):
    """``h_t = a h_{t-1} + x_t``: ``dh_T/dx_t = a^(T-t) I``."""
    cell = jaxrnn.rnn(H, activation=lambda z: z, use_bias=False)
    params = {"input_kernel": jnp.eye(H), "recurrent_kernel": a * jnp.eye(H)}
    return lambda xs: jaxrnn.scan(cell, params, xs)[1][-1]


@pytest.mark.parametrize("a", [0.5, 1.0, 1.5])
def test_the_gradient_is_the_product_of_jacobians(a):
    xs = jnp.asarray(np.random.default_rng(0).standard_normal((STEPS, B, H)), jnp.float32)
    norms = gradient_flow.input_gradient_norms(linear_rnn(a), xs)
    assert norms.shape == (STEPS, B)
    # d(sum_o h_T[o]) / dx_t = a^(T-t) * ones(H): norm a^(T-t) sqrt(H), for every sequence.
    expected = a ** (STEPS - 1 - np.arange(STEPS)) * np.sqrt(H)
    np.testing.assert_allclose(norms, np.repeat(expected[:, None], B, axis=1), rtol=1e-5)
    np.testing.assert_allclose(gradient_flow.decay(norms), (STEPS - 1) * np.log10(a), atol=1e-5)


def test_each_sequence_gets_its_own_gradient():
    # One backward pass of sum(y) over the batch gives each sequence the norms it gets alone.
    cell = jaxrnn.rnn(H, activation="relu")
    params = cell.init(jax.random.key(0), H)
    fn = lambda xs: jaxrnn.scan(cell, params, xs)[1][-1]  # noqa: E731
    xs = jnp.asarray(np.random.default_rng(1).standard_normal((STEPS, B, H)), jnp.float32)
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


# --- the product of Jacobians, ds_T/ds_{T-k} ----------------------------------------------------------------


def linear_cell_and_params(W):
    cell = jaxrnn.rnn(W.shape[0], activation=lambda z: z, use_bias=False)
    return cell, {"input_kernel": jnp.eye(W.shape[0]), "recurrent_kernel": W}


def test_state_jacobians_of_a_linear_rnn_are_powers_of_w():
    """``h_t = h_{t-1} W + x_t U``: ``ds_T/ds_{T-k} = W^k`` exactly, for every k, whatever the inputs."""
    W = jnp.asarray(np.random.default_rng(2).normal(size=(H, H)) * 0.6, jnp.float32)
    cell, params = linear_cell_and_params(W)
    xs = jnp.asarray(np.random.default_rng(3).normal(size=(STEPS, H)), jnp.float32)
    J = gradient_flow.state_jacobians(cell, params, xs)
    assert J.shape == (STEPS + 1, H, H)
    for k in range(STEPS + 1):
        np.testing.assert_allclose(J[k], np.linalg.matrix_power(np.asarray(W, np.float64), k), rtol=1e-4, atol=1e-5)
    norms = gradient_flow.state_gradient_norms(cell, params, xs[:, None].repeat(2, axis=1))
    assert norms.shape == (STEPS + 1, 2)
    np.testing.assert_allclose(norms[:, 0], [np.linalg.norm(np.linalg.matrix_power(np.asarray(W), k), 2)
                                             for k in range(STEPS + 1)], rtol=1e-4)


@pytest.mark.parametrize("cell", [jaxrnn.rnn(3), pytest.param(jaxrnn.lstm(2), marks=pytest.mark.slow),
                                  pytest.param(jaxrnn.gru(3, reset_after=True), marks=pytest.mark.slow)],
                         ids=["rnn", "lstm", "gru"])
def test_state_jacobians_match_finite_differences(cell):
    """Each ``J[k]``, column by column, against central differences of the last carry in float64."""
    with jax.enable_x64(True):
        params = jax.tree_util.tree_map(lambda a: a.astype(jnp.float64), cell.init(jax.random.key(0), 2))
        xs = jnp.asarray(np.random.default_rng(4).normal(size=(5, 2)))
        carry = jax.tree_util.tree_map(lambda a: a + 0.3, cell.initial_carry((), jnp.float64))
        J = gradient_flow.state_jacobians(cell, params, xs, carry)
        flat, unravel = jax.flatten_util.ravel_pytree(carry)

        @functools.partial(jax.jit, static_argnums=0)
        def last_from(k, state):  # run the last k steps from state s_{T-k}
            s = unravel(state)
            for x in xs[len(xs) - k:]:
                s, _ = cell.step(params, s, x)
            return jax.flatten_util.ravel_pytree(s)[0]

        states = [flat]
        for x in xs:
            states.append(jax.flatten_util.ravel_pytree(cell.step(params, unravel(states[-1]), x)[0])[0])
        eps = 1e-6
        for k in (0, 1, 3, 5):
            s = states[len(xs) - k]
            numeric = np.stack([(last_from(k, s.at[i].add(eps)) - last_from(k, s.at[i].add(-eps))) / (2 * eps)
                                for i in range(s.size)])
            np.testing.assert_allclose(J[k], numeric, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("radius", [0.5, 1.0, 1.5])
def test_the_spectral_radius_initialiser_hits_the_radius(radius):
    for cell in (jaxrnn.rnn(24, spectral_radius=radius), jaxrnn.irnn(24, spectral_radius=radius)):
        kernel = cell.init(jax.random.key(7), 3)["recurrent_kernel"]
        assert abs(float(gradient_flow.spectral_radius(kernel)) - radius) < 1e-4
        assert abs(np.max(np.abs(np.linalg.eigvals(np.asarray(kernel, np.float64)))) - radius) < 1e-4
    W = jnp.asarray(np.random.default_rng(5).normal(size=(6, 6)), jnp.float32)
    scaled = jax.jit(gradient_flow.with_spectral_radius)(W, 0.9)
    assert abs(float(jax.jit(gradient_flow.spectral_radius)(scaled)) - 0.9) < 1e-4
    with pytest.raises(ValueError, match=r"spectral_radius: expected a positive number, got -1"):
        jaxrnn.rnn(4, spectral_radius=-1)
    with pytest.raises(ValueError, match=r"expected a square matrix, got shape \(2, 3\)"):
        gradient_flow.spectral_radius(jnp.ones((2, 3)))


def test_the_irnn_starts_as_the_identity_with_relu():
    cell = jaxrnn.irnn(4)
    params = cell.init(jax.random.key(0), 2)
    np.testing.assert_array_equal(params["recurrent_kernel"], np.eye(4))
    np.testing.assert_array_equal(params["bias"], 0.0)
    _, y = cell.step(params, -jnp.ones(4), jnp.zeros(2))
    np.testing.assert_array_equal(y, 0.0)  # relu(-1) = 0


def test_decay_rate_fits_the_per_step_factor():
    k = np.arange(30)
    norms = np.stack([3.0 * 0.7 ** k, 0.5 * 0.7 ** k], axis=1)  # two sequences, same factor
    assert float(gradient_flow.decay_rate(norms)) == pytest.approx(0.7, rel=1e-4)
    growing = np.stack([1.2 ** k], axis=1)
    assert float(gradient_flow.decay_rate(growing)) == pytest.approx(1.2, rel=1e-4)
    underflowed = np.stack([np.where(k < 20, 0.5 ** k, 0.0)], axis=1)  # zeros are left out of the fit
    assert float(gradient_flow.decay_rate(underflowed)) == pytest.approx(0.5, rel=1e-4)
