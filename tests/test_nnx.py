"""jaxrnn.nnx: a part as a Flax NNX module computes what jaxrnn.scan computes with the same params.

Values and gradients against the functional call, stepping against ``cell.step``, a few steps of
``nnx.Optimizer`` training, the parameters as ``nnx.Param`` state, and the argument checks.
"""

from __future__ import annotations

import importlib
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

pytest.importorskip("flax")

from flax import nnx  # noqa: E402

import jaxrnn  # noqa: E402
from jaxrnn import nnx as jnnx  # noqa: E402
from support import B, H, I, T, assert_trees_close, random_carry, random_inputs, random_params  # noqa: E402

# name: (part, scan options the case exercises)
PARTS = {
    "lstm": (jaxrnn.lstm(H), {}),
    "stack": (jaxrnn.stack([jaxrnn.gru(H), jaxrnn.lstm(H)], dropout=0.25), {"key": jax.random.key(7)}),
    "bidirectional": (jaxrnn.bidirectional(jaxrnn.lstm(H), jaxrnn.gru(H)), {"lengths": np.array([5, 2, 0])}),
    "mingru": (jaxrnn.mingru(H), {"time_major": False, "reverse": True}),
}


def model_of(name: str, seed: int = 0) -> jnnx.Recurrent:
    """The module for ``PARTS[name]``, with random params (biases too: init zeroes them)."""
    model = jnnx.Recurrent(PARTS[name][0], I, rngs=nnx.Rngs(0))
    model.load_params(random_params(model.part, seed))
    return model


def loss_of(carry, ys):
    """A scalar that reads every output and every leaf of the final carry."""
    return jnp.sum(jnp.sin(ys)) + sum(jnp.sum(leaf ** 2) for leaf in jax.tree.leaves(carry))


def test_params_are_the_parts_init_with_the_rngs_params_key():
    part = PARTS["stack"][0]
    model = jnnx.Recurrent(part, I, rngs=nnx.Rngs(3))
    assert_trees_close(model.params, part.init(nnx.Rngs(3).params(), I), rtol=0, atol=0)


@pytest.mark.parametrize("name", list(PARTS))
def test_values_and_gradients_equal_the_functional_scan(name):
    model = model_of(name)
    part, options = PARTS[name]
    params = model.params
    xs = random_inputs((B, T, I) if options.get("time_major") is False else (T, B, I), seed=1)
    carry = random_carry(part, (B,), seed=2)

    def module_side(model):
        outputs = model(xs, carry, **options)
        return loss_of(*outputs), outputs

    def functional_side(params):
        outputs = jaxrnn.scan(part, params, xs, carry, **options)
        return loss_of(*outputs), outputs

    (_, outputs), grads = nnx.jit(nnx.value_and_grad(module_side, has_aux=True))(model)
    (_, expected_outputs), expected = jax.jit(jax.value_and_grad(functional_side, has_aux=True))(params)
    assert_trees_close(outputs, expected_outputs, rtol=1e-6, atol=1e-6)
    grads_as_params = nnx.merge(nnx.graphdef(model), grads).params  # the nnx.State of grads, in params' structure
    assert_trees_close(grads_as_params, expected, rtol=1e-5, atol=1e-6)
    assert any(np.any(g != 0) for g in jax.tree.leaves(expected))


def test_params_are_nnx_params_in_the_parts_structure():
    model = model_of("stack")
    state = nnx.state(model, nnx.Param)
    assert len(jax.tree.leaves(state)) == len(jax.tree.leaves(model.params)) == 4 + 3  # a GRU's, an LSTM's
    assert state["weights"][1]["recurrent_kernel"].shape == (H, 4 * H)
    assert isinstance(model.weights, tuple) and isinstance(model.weights[1]["bias"], nnx.Param)
    graphdef, state = nnx.split(model)
    clone = nnx.merge(graphdef, state)
    assert_trees_close(clone.params, model.params, rtol=0, atol=0)


@pytest.mark.parametrize("name", ["lstm", "stack", "mingru"])
def test_step_equals_the_cells_step(name):
    model = model_of(name)
    carry, x = random_carry(model.part, (B,), seed=3), random_inputs((B, I), seed=4)
    assert_trees_close(model.step(carry, x), model.part.step(model.params, carry, x), rtol=1e-6, atol=1e-6)
    assert_trees_close(model.initial_carry(B), model.part.initial_carry(B), rtol=0, atol=0)


def test_stepping_a_layer_raises():
    model = model_of("bidirectional")
    with pytest.raises(TypeError, match="jaxrnn.Layer .* cannot be stepped"):
        model.step(model.initial_carry(B), jnp.zeros((B, I)))


def test_load_params_checks_structure_and_shapes():
    model = model_of("lstm")
    with pytest.raises(ValueError, match="structure"):
        model.load_params(model_of("stack").params)
    wrong = dict(model.params, bias=jnp.zeros(3))
    with pytest.raises(ValueError, match=r"\['bias'\]: expected shape \(24,\), got \(3,\)"):
        model.load_params(wrong)


@pytest.mark.slow
def test_nnx_optimizer_training_lowers_the_loss():
    model = jnnx.Recurrent(jaxrnn.stack([jaxrnn.lstm(H), jaxrnn.linear(1)]), 2, rngs=nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, optax.adam(1e-2), wrt=nnx.Param)
    xs = random_inputs((8, 4, 2), seed=5)
    targets = jnp.cumsum(xs[..., :1] - xs[..., 1:], axis=0) / 3  # a running sum: needs the carry

    def loss_fn(model):
        return jnp.mean((model(xs)[1] - targets) ** 2)

    @nnx.jit
    def train_step(model, optimizer):
        loss, grads = nnx.value_and_grad(loss_fn)(model)
        optimizer.update(model, grads)
        return loss

    before = loss_fn(model)
    for _ in range(30):
        train_step(model, optimizer)
    after = loss_fn(model)
    assert after < 0.5 * before, (before, after)


@pytest.mark.parametrize("args, kwargs, error, message", [
    (("lstm", I), {}, TypeError, "part: expected a jaxrnn.Cell or jaxrnn.Layer, got str"),
    ((jaxrnn.lstm, I), {}, TypeError, "part: expected a jaxrnn.Cell or jaxrnn.Layer, got function"),
    ((jaxrnn.lstm(H), 0), {}, ValueError, "input_size: expected an integer >= 1, got 0"),
    ((jaxrnn.lstm(H), 2.5), {}, TypeError, "input_size: expected an integer >= 1, got 2.5"),
    ((jaxrnn.lstm(H), True), {}, TypeError, "input_size: expected an integer >= 1, got True"),
    ((jaxrnn.lstm(H), I), {"rngs": jax.random.key(0)}, TypeError, r"rngs: expected a flax.nnx.Rngs .*, got "),
    ((jaxrnn.lstm(H), I), {"rngs": 0}, TypeError, r"rngs: expected a flax.nnx.Rngs .*, got int"),
])
def test_bad_arguments_raise(args, kwargs, error, message):
    with pytest.raises(error, match=message):
        jnnx.Recurrent(*args, **{"rngs": nnx.Rngs(0), **kwargs})


def test_without_flax_the_import_error_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "flax", None)  # import flax now fails
    monkeypatch.delitem(sys.modules, "jaxrnn.nnx")  # restored, with flax, after the test
    with pytest.raises(ImportError, match=r"jaxrnn.nnx needs flax: pip install \"jaxrnn\[nnx\]\""):
        importlib.import_module("jaxrnn.nnx")
