"""The train step, the NaN guard, evaluation and truncated BPTT."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxrnn
from jaxrnn import models, training
from jaxrnn.tasks import adding, copying

KINDS = ("rnn", "lstm", "gru", "irnn", "mingru", "minlstm")  # every cell factory of the library, jaxrnn.<kind>
# Two streams of batches from one seed, the training batches never the held-out one.
TRAIN_KEY, EVAL_KEY = (jax.random.fold_in(jax.random.key(0), stream) for stream in (0, 1))


def batch_key(base, step):
    """The key of batch ``step`` drawn from ``base``: a pure function of the two."""
    return jax.random.fold_in(base, step)


def tiny_adding(cell="lstm", seq_len=10, batch_size=16):
    model = models.many_to_one(getattr(jaxrnn, cell)(8), adding.OUTPUT_SIZE)

    def loss(params, batch, *, key):
        return adding.mse(model.apply(params, batch.xs, key=key), batch.ys), {}

    sample = jax.jit(functools.partial(adding.sample, batch_size=batch_size, seq_len=seq_len))
    return model, loss, sample


# One cell in the fast suite (every cell's step is held to the oracle in test_edges.py); all of them with -m slow.
@pytest.mark.parametrize("cell", [c if c == "lstm" else pytest.param(c, marks=pytest.mark.slow)
                                  for c in KINDS])
def test_train_step_lowers_the_loss(cell):
    model, loss, sample = tiny_adding(cell)
    tx = optax.adam(0.02)
    step = training.train_step(loss, tx, 0.02)
    state = training.init(model.init(jax.random.key(0), adding.INPUT_SIZE), tx)
    held_out = sample(batch_key(EVAL_KEY, 0))
    before = float(loss(state.params, held_out, key=None)[0])
    for t in range(60):
        state, metrics = step(state, sample(batch_key(TRAIN_KEY, t)))
    after = float(loss(state.params, held_out, key=None)[0])
    assert int(state.step) == 60
    assert after < 0.5 * before, (before, after)
    assert set(metrics) >= {"loss", "grad_norm", "lr", "finite"}
    assert float(metrics["lr"]) == pytest.approx(0.02)


def test_the_step_is_deterministic():
    model, loss, sample = tiny_adding()
    tx = optax.adam(0.01)
    step = training.train_step(loss, tx)
    runs = []
    for _ in range(2):
        state = training.init(model.init(jax.random.key(0), adding.INPUT_SIZE), tx)
        for t in range(3):
            state, _ = step(state, sample(batch_key(TRAIN_KEY, t)))
        runs.append(jax.tree_util.tree_leaves(state))
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)


def test_a_non_finite_loss_leaves_the_state_unchanged():
    params = {"w": jnp.ones(3)}
    tx = optax.sgd(0.1)

    def loss(params, batch, *, key):
        return jnp.sum(params["w"] * batch), {}

    step = training.train_step(loss, tx)
    state = training.init(params, tx)
    new, metrics = step(state, jnp.array([1.0, jnp.nan, 0.0]))
    assert not bool(metrics["finite"])
    assert int(new.step) == 0
    np.testing.assert_array_equal(new.params["w"], params["w"])
    new, metrics = step(state, jnp.array([1.0, 2.0, 0.0]))
    assert bool(metrics["finite"]) and int(new.step) == 1


def test_grad_norm_is_measured_before_clipping():
    params = {"w": jnp.zeros(2)}
    tx = optax.chain(optax.clip_by_global_norm(1.0), optax.sgd(1.0))
    step = training.train_step(lambda p, b, *, key: (jnp.dot(p["w"], b), {}), tx)
    state, metrics = step(training.init(params, tx), jnp.array([3.0, 4.0]))
    assert float(metrics["grad_norm"]) == pytest.approx(5.0)
    np.testing.assert_allclose(state.params["w"], [-0.6, -0.8], rtol=1e-6)


def test_evaluator_averages_over_batches():
    evaluate = training.evaluator(lambda params, batch: {"loss": params * batch, "one": jnp.ones(())})
    assert evaluate(2.0, [jnp.array(1.0), jnp.array(3.0)]) == {"loss": 4.0, "one": 1.0}


def test_copying_metrics_on_a_perfect_answer():
    batch = jax.jit(functools.partial(copying.sample, batch_size=4, delay=5))(jax.random.key(0))
    logits = 100.0 * jax.nn.one_hot(batch.ys, copying.output_size())
    assert float(copying.cross_entropy(logits, batch.ys)) == pytest.approx(0.0, abs=1e-6)
    assert float(copying.recall_accuracy(logits, batch.ys)) == 1.0
    assert batch.xs.shape == (5 + 20, 4, 10) and batch.ys.shape == (25, 4)


def test_copying_baseline_is_the_memoryless_cross_entropy():
    delay = 30
    batch = jax.jit(functools.partial(copying.sample, batch_size=64, delay=delay))(jax.random.key(0))
    # blank with certainty until the recall, then uniform over the 8 symbols
    recall = jnp.arange(delay + 20)[:, None, None] >= delay + 10
    logits = jnp.where(recall, jnp.pad(jnp.zeros((1, 1, 8)), ((0, 0), (0, 0), (1, 0)), constant_values=-1e9),
                       jnp.pad(jnp.full((1, 1, 8), -1e9), ((0, 0), (0, 0), (1, 0))))
    logits = jnp.broadcast_to(logits, (delay + 20, 64, 9))
    assert float(copying.cross_entropy(logits, batch.ys)) == pytest.approx(copying.baseline(delay), rel=1e-5)
    assert copying.baseline(delay) == pytest.approx(10 * np.log(8) / (delay + 20))


def test_adding_data_and_baseline():
    batch = jax.jit(adding.sample, static_argnums=(1, 2))(jax.random.key(0), 4096, 50)
    markers = batch.xs[..., 1]
    np.testing.assert_array_equal(markers.sum(0), 2.0)
    assert bool(jnp.all(markers[:25].sum(0) == 1))
    np.testing.assert_allclose(batch.ys[:, 0], (batch.xs[..., 0] * markers).sum(0), rtol=1e-6)
    assert float(adding.mse(jnp.ones_like(batch.ys), batch.ys)) == pytest.approx(1 / 6, abs=0.01)
    # a pure function of its key
    a = adding.sample(batch_key(TRAIN_KEY, 7), 2, 10)
    b = adding.sample(batch_key(TRAIN_KEY, 7), 2, 10)
    np.testing.assert_array_equal(a.xs, b.xs)


# Truncated BPTT: an RNN reads a stream and predicts a per-step target.

def _stream_problem():
    cell, readout = jaxrnn.gru(4), jaxrnn.linear(1)
    params = {"cell": cell.init(jax.random.key(0), 2), "readout": readout.init(jax.random.key(1), 4)}
    xs = jax.random.normal(jax.random.key(2), (12, 3, 2))
    ys = jnp.cumsum(xs[..., :1], axis=0) * 0.1

    def loss(params, carry, chunk, *, key):
        chunk_xs, chunk_ys = chunk
        carry, hs = jaxrnn.scan(cell, params["cell"], chunk_xs, carry)
        return jnp.mean((jaxrnn.scan(readout, params["readout"], hs)[1] - chunk_ys) ** 2), (carry, {})

    return cell, params, (xs, ys), loss


def test_tbptt_carries_the_state_forward_without_gradient():
    cell, params, (xs, ys), loss = _stream_problem()
    tx = optax.sgd(0.1)
    step = training.truncated_bptt_step(loss, tx, chunk_length=4)
    carry0 = cell.initial_carry((3,))
    state, carry, metrics = step(training.init(params, tx), carry0, (xs, ys))
    assert metrics["loss"].shape == (3,) and int(state.step) == 3

    # by hand: three updates, each on one chunk, each from the carry the last chunk left (a constant)
    @jax.jit
    def by_hand(p, c, chunk):
        (_, (c_next, _)), grads = jax.value_and_grad(loss, has_aux=True)(p, c, chunk, key=None)
        return jax.tree_util.tree_map(lambda w, g: w - 0.1 * g, p, grads), c_next

    p, c = params, carry0
    for n in range(3):
        p, c = by_hand(p, c, (xs[4 * n : 4 * n + 4], ys[4 * n : 4 * n + 4]))
    for a, b in zip(jax.tree_util.tree_leaves((state.params, carry)), jax.tree_util.tree_leaves((p, c))):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_tbptt_forward_sees_the_whole_stream():
    cell, params, (xs, ys), loss = _stream_problem()
    tx = optax.sgd(0.0)  # no learning: the carry must equal one scan over the whole stream
    step = training.truncated_bptt_step(loss, tx, chunk_length=3)
    _, carry, _ = step(training.init(params, tx), cell.initial_carry((3,)), (xs, ys))
    np.testing.assert_allclose(carry, jaxrnn.scan(cell, params["cell"], xs)[0], rtol=1e-5, atol=1e-6)


def test_tbptt_rejects_a_ragged_stream():
    cell, params, (xs, ys), loss = _stream_problem()
    step = training.truncated_bptt_step(loss, optax.sgd(0.1), chunk_length=5)
    with pytest.raises(ValueError, match="multiple of chunk_length"):
        step(training.init(params, optax.sgd(0.1)), cell.initial_carry((3,)), (xs, ys))


def test_train_step_metrics_are_as_documented():
    """``aux`` sits beside ``loss``, ``grad_norm`` and ``finite``; ``lr`` only with ``learning_rate``;
    an aux name that would hide one of those is an error, not a silent overwrite."""
    params = {"w": jnp.ones(3)}
    state = jaxrnn.training.init(params, optax.sgd(0.1))
    batch = jnp.arange(3.0)

    def loss_fn(aux):
        return lambda p, b, *, key: (jnp.sum((p["w"] * b) ** 2), aux)

    _, metrics = jaxrnn.training.train_step(loss_fn({"accuracy": 0.5}), optax.sgd(0.1))(state, batch)
    assert set(metrics) == {"accuracy", "loss", "grad_norm", "finite"}
    _, metrics = jaxrnn.training.train_step(loss_fn({}), optax.sgd(0.1), learning_rate=0.1)(state, batch)
    assert set(metrics) == {"loss", "grad_norm", "finite", "lr"}
    with pytest.raises(ValueError, match="aux may not use the step's own metric names .loss."):
        jaxrnn.training.train_step(loss_fn({"loss": 1.0}), optax.sgd(0.1))(state, batch)
    with pytest.raises(TypeError, match="aux a dict of metrics, got aux of type float"):
        jaxrnn.training.train_step(loss_fn(1.0), optax.sgd(0.1))(state, batch)


def test_the_steps_pass_the_key_by_name_and_say_so_to_a_loss_that_takes_it_by_position():
    """``loss_fn(params, batch, *, key)``: the step hands the key as ``key=``, the same one it was given."""
    seen = []

    def loss_fn(params, batch, *, key):
        seen.append(key)
        return jnp.sum(params["w"] * batch), {}

    state = jaxrnn.training.init({"w": jnp.ones(3)}, optax.sgd(0.1))
    jaxrnn.training.train_step(loss_fn, optax.sgd(0.1), jit=False)(state, jnp.arange(3.0), key=jax.random.key(4))
    assert jnp.array_equal(jax.random.key_data(seen[-1]), jax.random.key_data(jax.random.key(4)))
    with pytest.raises(TypeError):  # the step's key is keyword-only too
        jaxrnn.training.train_step(loss_fn, optax.sgd(0.1), jit=False)(state, jnp.arange(3.0), jax.random.key(4))
    for make, args in ((training.train_step, ()), (training.carried_step, ()), (training.truncated_bptt_step, (2,))):
        with pytest.raises(TypeError, match=r"loss_fn: expected loss_fn\(params, .*\*, key\).*got a function of "
                                            r"\(p, b, k\); name its key parameter 'key'"):
            make(lambda p, b, k: (0.0, {}), optax.sgd(0.1), *args)
