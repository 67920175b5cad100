"""jaxrnn.nnx: a part as a Flax NNX module computes what jaxrnn.scan computes with the same params.

Values and gradients against the functional call, stepping against ``cell.step``, the layout (batch-major by
default, as ``nnx.RNN``, whose ``OptimizedLSTMCell`` and ``LSTMCell`` compute the same with the same weights),
dropout as ``nnx.Dropout`` does it (keys from the ``dropout`` stream in training mode, none after ``eval()``),
a few steps of ``nnx.Optimizer`` training, the parameters as ``nnx.Param`` state, and the argument checks.
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

from flax import nnx

import jaxrnn
from jaxrnn import nnx as jnnx
from support import B, H, I, T, assert_trees_close, random_carry, random_inputs, random_params

as_pure = getattr(nnx, "as_pure", None) or nnx.pure  # Flax 0.12.7 renamed nnx.pure

DROPOUT = jaxrnn.stack([jaxrnn.gru(H), jaxrnn.lstm(H)], dropout=0.25)

# name: (part, jaxrnn.scan options the case exercises)
PARTS = {
    "lstm": (jaxrnn.lstm(H), {}),
    "stack": (DROPOUT, {"key": jax.random.key(7)}),
    "bidirectional": (jaxrnn.bidirectional(jaxrnn.lstm(H), jaxrnn.gru(H)), {"lengths": np.array([5, 2, 0])}),
    "mingru": (jaxrnn.mingru(H), {"time_major": False, "reverse": True}),
}


def model_of(name: str, seed: int = 0, **options) -> jnnx.Recurrent:
    """The module for ``PARTS[name]``, with random params (biases too: init zeroes them)."""
    model = jnnx.Recurrent(PARTS[name][0], I, rngs=nnx.Rngs(0), **options)
    model.load_params(random_params(model.part, seed))
    return model


def module_options(options: dict) -> dict:
    """The module's call for ``jaxrnn.scan``'s options: the key is ``rngs=``, the layout given (scan's default is
    time-major, the module's batch-major)."""
    options = dict(options, time_major=options.get("time_major", True))
    if "key" in options:
        options["rngs"] = options.pop("key")
    return options


def params_of(model: jnnx.Recurrent, state: nnx.State | None = None):
    """The plain params of ``model``, or of a Param ``state`` of it (grads), in ``part.init``'s structure."""
    if state is not None:
        model = nnx.merge(nnx.graphdef(model), state, nnx.state(model, nnx.Not(nnx.Param)))
    return as_pure(model.params)


def dropout_key(rngs: nnx.Rngs, collection: str = "dropout", draws: int = 1) -> jax.Array:
    """The key a module built with ``rngs`` draws on its ``draws``-th call: from its fork of the stream, made after
    the params key was drawn (with ``nnx.Rngs(0)`` both come from the one default stream)."""
    rngs.params()
    stream = rngs[collection].fork()
    for _ in range(draws - 1):
        stream()
    return stream()


def loss_of(carry, ys):
    """A scalar that reads every output and every leaf of the final carry."""
    return jnp.sum(jnp.sin(ys)) + sum(jnp.sum(leaf ** 2) for leaf in jax.tree.leaves(carry))


def test_params_are_the_parts_init_with_the_rngs_params_key():
    part = PARTS["stack"][0]
    model = jnnx.Recurrent(part, I, rngs=nnx.Rngs(3))
    assert_trees_close(as_pure(model.params), part.init(nnx.Rngs(3).params(), I), rtol=0, atol=0)


@pytest.mark.parametrize("name", list(PARTS))
def test_values_and_gradients_equal_the_functional_scan(name):
    model = model_of(name)
    part, options = PARTS[name]
    params = params_of(model)
    xs = random_inputs((B, T, I) if options.get("time_major") is False else (T, B, I), seed=1)
    carry = random_carry(part, (B,), seed=2)

    def module_side(model):
        outputs = model(xs, carry, **module_options(options))
        return loss_of(*outputs), outputs

    def functional_side(params):
        outputs = jaxrnn.scan(part, params, xs, carry, **options)
        return loss_of(*outputs), outputs

    (_, outputs), grads = nnx.jit(nnx.value_and_grad(module_side, has_aux=True))(model)
    (_, expected_outputs), expected = jax.jit(jax.value_and_grad(functional_side, has_aux=True))(params)
    assert_trees_close(outputs, expected_outputs, rtol=1e-6, atol=1e-6)
    assert_trees_close(params_of(model, grads), expected, rtol=1e-5, atol=1e-6)
    assert any(np.any(g != 0) for g in jax.tree.leaves(expected))


@pytest.mark.parametrize("name", ["lstm", "bidirectional"])
def test_batch_major_by_default_as_nnx_rnn_and_time_major_on_request(name):
    part, params = PARTS[name][0], random_params(PARTS[name][0], 0)
    xs, lengths = random_inputs((B, T, I), seed=1), np.array([T, 2, 1])
    expected = jaxrnn.scan(part, params, xs, lengths=lengths, time_major=False)
    batch_major = model_of(name, deterministic=True)
    assert batch_major.time_major is False
    assert_trees_close(batch_major(xs, lengths=lengths), expected, rtol=1e-6, atol=1e-6)
    time_major = model_of(name, time_major=True, deterministic=True)
    carry, ys = time_major(jnp.swapaxes(xs, 0, 1), lengths=lengths)
    assert ys.shape == (T, B, expected[1].shape[-1])
    assert_trees_close((carry, jnp.swapaxes(ys, 0, 1)), expected, rtol=1e-6, atol=1e-6)
    assert_trees_close(batch_major(jnp.swapaxes(xs, 0, 1), lengths=lengths, time_major=True), (carry, ys),
                       rtol=1e-6, atol=1e-6)  # the call's time_major overrides the module's


def test_dropout_is_on_in_training_mode_and_off_after_eval_as_nnx_dropout():
    assert nnx.Dropout(0.5).deterministic is False  # Flax's default, which Recurrent follows
    rngs = nnx.Rngs(params=0, dropout=1)
    model = jnnx.Recurrent(DROPOUT, I, rngs=rngs)
    params, xs = params_of(model), random_inputs((B, T, I), seed=1)
    assert model.deterministic is False
    first, second = model(xs)[1], model(xs)[1]
    assert int(model.rngs.count.get_value()) == 2  # one key drawn per call, the stream advanced
    assert not np.allclose(first, second)  # two calls, two masks
    for draws, ys in ((1, first), (2, second)):  # the keys are those of the module's fork of the dropout stream
        key = dropout_key(nnx.Rngs(params=0, dropout=1), draws=draws)
        assert_trees_close(ys, jaxrnn.scan(DROPOUT, params, xs, time_major=False, key=key)[1], rtol=1e-6, atol=1e-6)
    no_dropout = jaxrnn.scan(DROPOUT, params, xs, time_major=False)[1]
    assert not np.allclose(first, no_dropout)

    model.eval()
    assert model.deterministic is True
    assert_trees_close(model(xs)[1], no_dropout, rtol=1e-6, atol=1e-6)
    assert_trees_close(model(xs, rngs=jax.random.key(3))[1], no_dropout, rtol=1e-6, atol=1e-6)
    assert int(model.rngs.count.get_value()) == 2  # eval draws nothing
    with_key = jaxrnn.scan(DROPOUT, params, xs, time_major=False, key=jax.random.key(3))[1]
    assert_trees_close(model(xs, deterministic=False, rngs=jax.random.key(3))[1], with_key, rtol=1e-6, atol=1e-6)

    model.train()
    assert model.deterministic is False
    third = model(xs)[1]
    assert_trees_close(third, jaxrnn.scan(DROPOUT, params, xs, time_major=False,
                                          key=dropout_key(nnx.Rngs(params=0, dropout=1), draws=3))[1],
                       rtol=1e-6, atol=1e-6)
    assert_trees_close(model(xs, deterministic=True)[1], no_dropout, rtol=1e-6, atol=1e-6)
    assert_trees_close(nnx.view(model, deterministic=True)(xs)[1], no_dropout, rtol=1e-6, atol=1e-6)
    assert model.deterministic is False  # a view leaves the model as it was

    class Holder(nnx.Module):  # train() and eval() reach a Recurrent inside a model, as an nnx.Dropout
        def __init__(self, rngs):
            self.rnn = jnnx.Recurrent(DROPOUT, I, rngs=rngs)
            self.drop = nnx.Dropout(0.5, rngs=rngs)

    holder = Holder(nnx.Rngs(0))
    holder.eval()
    assert holder.rnn.deterministic and holder.drop.deterministic
    holder.train()
    assert not holder.rnn.deterministic and not holder.drop.deterministic


def test_the_stream_advances_inside_nnx_jit_and_rngs_overrides_it():
    model = jnnx.Recurrent(DROPOUT, I, rngs=nnx.Rngs(params=0, dropout=5))
    params, xs = params_of(model), random_inputs((B, T, I), seed=1)
    run = nnx.jit(lambda model, xs: model(xs)[1])
    outputs = [run(model, xs) for _ in range(3)]
    assert int(model.rngs.count.get_value()) == 3
    for draws, ys in enumerate(outputs, start=1):
        key = dropout_key(nnx.Rngs(params=0, dropout=5), draws=draws)
        assert_trees_close(ys, jaxrnn.scan(DROPOUT, params, xs, time_major=False, key=key)[1], rtol=1e-6, atol=1e-6)
    # rngs= for one call: an Rngs (its dropout stream), an RngStream, a key; the module's stream is left alone
    given = nnx.Rngs(dropout=9)
    expected = jaxrnn.scan(DROPOUT, params, xs, time_major=False, key=nnx.Rngs(dropout=9).dropout())[1]
    assert_trees_close(model(xs, rngs=given)[1], expected, rtol=1e-6, atol=1e-6)
    assert_trees_close(model(xs, rngs=nnx.Rngs(dropout=9).dropout)[1], expected, rtol=1e-6, atol=1e-6)
    assert_trees_close(model(xs, rngs=nnx.Rngs(dropout=9).dropout())[1], expected, rtol=1e-6, atol=1e-6)
    assert int(given.dropout.count.get_value()) == 1 and int(model.rngs.count.get_value()) == 3


def test_rng_collection_names_the_stream_and_a_module_without_one_needs_eval_or_a_key():
    xs = random_inputs((B, T, I), seed=1)
    noisy = jnnx.Recurrent(DROPOUT, I, rng_collection="noise", rngs=nnx.Rngs(params=0, dropout=1, noise=2))
    expected = jaxrnn.scan(DROPOUT, params_of(noisy), xs, time_major=False,
                           key=dropout_key(nnx.Rngs(params=0, dropout=1, noise=2), "noise"))[1]
    assert_trees_close(noisy(xs)[1], expected, rtol=1e-6, atol=1e-6)
    bare = jnnx.Recurrent(DROPOUT, I, rngs=nnx.Rngs(params=0))  # no dropout stream, no default one
    assert bare.rngs is None
    with pytest.raises(ValueError, match=r"no 'dropout' rng stream: build it with nnx.Rngs\(params=..., dropout="):
        bare(xs)
    assert_trees_close(bare(xs, rngs=jax.random.key(1))[1],
                       jaxrnn.scan(DROPOUT, params_of(bare), xs, time_major=False, key=jax.random.key(1))[1],
                       rtol=1e-6, atol=1e-6)
    bare.eval()
    assert_trees_close(bare(xs)[1], jaxrnn.scan(DROPOUT, params_of(bare), xs, time_major=False)[1],
                       rtol=1e-6, atol=1e-6)


def test_params_are_nnx_params_in_the_parts_structure():
    model = model_of("stack")
    state = nnx.state(model, nnx.Param)
    assert len(jax.tree.leaves(state)) == len(jax.tree.leaves(params_of(model))) == 4 + 3  # a GRU's, an LSTM's
    assert state["params"][1]["recurrent_kernel"].shape == (H, 4 * H)
    assert isinstance(model.params, tuple) and isinstance(model.params[1]["bias"], nnx.Param)
    assert not hasattr(model, "weights")  # one name for the parameters
    graphdef, state = nnx.split(model)
    clone = nnx.merge(graphdef, state)
    assert_trees_close(params_of(clone), params_of(model), rtol=0, atol=0)


@pytest.mark.parametrize("name", ["lstm", "stack", "mingru"])
def test_step_equals_the_cells_step(name):
    model = model_of(name)
    params = params_of(model)
    carry, x = random_carry(model.part, (B,), seed=3), random_inputs((B, I), seed=4)
    expected = model.part.step(params, carry, x)
    if name == "stack":  # training mode: the stack's dropout, with the key drawn from the module's stream
        key = dropout_key(nnx.Rngs(0))
        assert_trees_close(model.step(carry, x), model.part.step(params, carry, x, key=key), rtol=1e-6, atol=1e-6)
        assert not np.allclose(model.step(carry, x)[1], expected[1])
        model.eval()
    assert_trees_close(model.step(carry, x), expected, rtol=1e-6, atol=1e-6)
    assert_trees_close(model.step(carry, x, deterministic=True), expected, rtol=1e-6, atol=1e-6)
    assert_trees_close(model.initial_carry(B), model.part.initial_carry(B), rtol=0, atol=0)


def test_a_custom_cell_whose_step_takes_no_key_steps_in_training_mode():
    lstm = jaxrnn.lstm(H)
    plain = jaxrnn.Part(lstm.init, lstm.initial_carry, lambda params, carry, x: lstm.step(params, carry, x))
    model = jnnx.Recurrent(plain, I, rngs=nnx.Rngs(0))
    carry, x = random_carry(lstm, (B,), seed=3), random_inputs((B, I), seed=4)
    assert_trees_close(model.step(carry, x), lstm.step(params_of(model), carry, x), rtol=1e-6, atol=1e-6)


def test_stepping_a_layer_raises():
    model = model_of("bidirectional")
    with pytest.raises(TypeError, match="must read the whole sequence .* cannot be stepped"):
        model.step(model.initial_carry(B), jnp.zeros((B, I)))


@pytest.mark.parametrize("optimized", [True, pytest.param(False, marks=pytest.mark.slow)],
                         ids=["OptimizedLSTMCell", "LSTMCell"])
def test_an_lstm_computes_what_flax_nnx_rnn_computes_with_the_same_weights(optimized):
    """Same gate order (i, f, g, o) and fused layout as OptimizedLSTMCell: input_kernel is its dense_i.kernel,
    recurrent_kernel and bias its dense_h's; Flax's carry is (c, h), jaxrnn's (h, c)."""
    model = model_of("lstm")
    p = params_of(model)
    if optimized:
        cell = nnx.OptimizedLSTMCell(I, H, rngs=nnx.Rngs(1))
        assert (cell.dense_i.kernel.shape, cell.dense_h.kernel.shape, cell.dense_h.bias.shape) == (
            p["input_kernel"].shape, p["recurrent_kernel"].shape, p["bias"].shape)
        cell.dense_i.kernel.set_value(p["input_kernel"])
        cell.dense_h.kernel.set_value(p["recurrent_kernel"])
        cell.dense_h.bias.set_value(p["bias"])
    else:
        cell = nnx.LSTMCell(I, H, rngs=nnx.Rngs(1))
        for gate, (i, h) in enumerate([("ii", "hi"), ("if_", "hf"), ("ig", "hg"), ("io", "ho")]):
            block = slice(gate * H, (gate + 1) * H)
            getattr(cell, i).kernel.set_value(p["input_kernel"][:, block])
            getattr(cell, h).kernel.set_value(p["recurrent_kernel"][:, block])
            getattr(cell, h).bias.set_value(p["bias"][block])
    rnn = nnx.RNN(cell, return_carry=True)  # batch-major, as Recurrent
    xs = random_inputs((B, T, I), seed=1)
    h0, c0 = random_carry(model.part, (B,), seed=2)
    (c, h), ys = rnn(xs, initial_carry=(c0, h0))
    assert_trees_close(model(xs, (h0, c0)), (jaxrnn.LSTMState(h, c), ys), rtol=1e-5, atol=1e-6)  # (h, c) read as one
    lengths = np.array([T, 2, 1])  # the final carry is each sequence's at its last valid step in both
    (c, h), ys = rnn(xs, initial_carry=(c0, h0), seq_lengths=lengths)
    carry, ours = model(xs, (h0, c0), lengths=lengths)
    assert_trees_close(carry, jaxrnn.LSTMState(h, c), rtol=1e-5, atol=1e-6)
    valid = np.arange(T)[None, :, None] < lengths[:, None, None]
    np.testing.assert_allclose(np.where(valid, ours, 0), np.where(valid, ys, 0), rtol=1e-5, atol=1e-6)


def test_load_params_checks_structure_and_shapes():
    model = model_of("lstm")
    with pytest.raises(ValueError, match="structure"):
        model.load_params(params_of(model_of("stack")))
    wrong = dict(params_of(model), bias=jnp.zeros(3))
    with pytest.raises(ValueError, match=r"\['bias'\]: expected shape \(24,\), got \(3,\)"):
        model.load_params(wrong)


@pytest.mark.slow
def test_nnx_optimizer_training_lowers_the_loss():
    model = jnnx.Recurrent(jaxrnn.stack([jaxrnn.lstm(H), jaxrnn.linear(1)]), 2, time_major=True, rngs=nnx.Rngs(0))
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
    (("lstm", I), {}, TypeError, "part: expected a jaxrnn.Part \\(a cell, a stack, a layer\\), got str"),
    ((jaxrnn.lstm, I), {}, TypeError, "part: expected a jaxrnn.Part \\(a cell, a stack, a layer\\), got function"),
    ((jaxrnn.lstm(H), 0), {}, ValueError, "input_size: expected an integer >= 1, got 0"),
    ((jaxrnn.lstm(H), 2.5), {}, TypeError, "input_size: expected an integer >= 1, got 2.5"),
    ((jaxrnn.lstm(H), True), {}, TypeError, "input_size: expected an integer >= 1, got True"),
    ((jaxrnn.lstm(H), I), {"rngs": jax.random.key(0)}, TypeError, r"rngs: expected a flax.nnx.Rngs .*, got "),
    ((jaxrnn.lstm(H), I), {"rngs": 0}, TypeError, r"rngs: expected a flax.nnx.Rngs .*, got int"),
    ((jaxrnn.lstm(H), I), {"rngs": nnx.Rngs(0).params}, TypeError, r"rngs: expected a flax.nnx.Rngs .*RngStream"),
    ((jaxrnn.lstm(H), I), {"time_major": "batch"}, TypeError, "time_major: expected True or False, got 'batch'"),
    ((jaxrnn.lstm(H), I), {"time_major": 0}, TypeError, "time_major: expected True or False, got 0"),
    ((jaxrnn.lstm(H), I), {"deterministic": None}, TypeError, "deterministic: expected True or False, got None"),
    ((jaxrnn.lstm(H), I), {"rng_collection": 3}, TypeError, "rng_collection: expected the name of an rng stream"),
])
def test_bad_arguments_raise(args, kwargs, error, message):
    with pytest.raises(error, match=message):
        jnnx.Recurrent(*args, **{"rngs": nnx.Rngs(0), **kwargs})


@pytest.mark.parametrize("kwargs, error, message", [
    ({"time_major": "yes"}, TypeError, "time_major: expected True or False, got 'yes'"),
    ({"deterministic": 1}, TypeError, "deterministic: expected True or False, got 1"),
    ({"rngs": 0}, TypeError, "rngs: expected a flax.nnx.Rngs, a flax.nnx.RngStream or a random key .*, got int"),
    ({"rngs": np.zeros(3)}, TypeError, "rngs: expected .* got ndarray"),
    ({"key": jax.random.key(0)}, TypeError, "key: Recurrent draws its dropout key from its rngs stream .* rngs=key"),
])
def test_bad_call_arguments_raise(kwargs, error, message):
    model = model_of("stack")
    with pytest.raises(error, match=message):
        model(random_inputs((B, T, I), seed=1), **kwargs)
    if set(kwargs) <= {"deterministic", "rngs"}:  # step's options
        with pytest.raises(error, match=message):
            model.step(model.initial_carry(B), random_inputs((B, I), seed=1), **kwargs)


def test_without_flax_the_import_error_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "flax", None)  # import flax now fails
    monkeypatch.delitem(sys.modules, "jaxrnn.nnx")  # restored, with flax, after the test
    with pytest.raises(ImportError, match=r"jaxrnn.nnx needs flax: pip install \"jaxrnn\[nnx\]\""):
        importlib.import_module("jaxrnn.nnx")
