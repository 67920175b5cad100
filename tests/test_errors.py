"""Mistakes give clear errors at trace time: each case raises eagerly and also while tracing under
``jax.jit`` with shapes only (``ShapeDtypeStruct``s, no values), so the checks cost nothing inside jit."""

from __future__ import annotations

import functools
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental import checkify

import jaxrnn
from support import CELL_NAMES, CELLS, B, H, I, T, random_params


def shapes(tree):
    return jax.tree_util.tree_map(lambda a: jax.ShapeDtypeStruct(np.shape(a), jnp.result_type(a)), tree)


def raises_eagerly_and_traced(exception, match, f, *args):
    """``f(*args)`` raises, and so does tracing ``jax.jit(f)`` on the arguments' shapes alone."""
    with pytest.raises(exception, match=match):
        f(*args)
    with pytest.raises(exception, match=match):
        jax.jit(f).trace(*shapes(args))


@functools.cache
def init(cell, input_size):
    return random_params(cell, seed=0, input_size=input_size)


def scan_fn(cell, **options):
    return lambda params, xs, *carry: jaxrnn.scan(cell, params, xs, *carry, **options)


@pytest.mark.parametrize("name", CELL_NAMES)
def test_input_size_mismatch(name):
    cell = CELLS[name]
    params = init(cell, 8)
    message = "expected input size 8, got 5"
    raises_eagerly_and_traced(ValueError, message, scan_fn(cell), params, jnp.zeros((T, B, 5)))
    raises_eagerly_and_traced(ValueError, message, cell.step, params, cell.initial_carry(), jnp.zeros(5))


def test_input_size_mismatch_in_combinators():
    deep = jaxrnn.stack([CELLS["lstm"], CELLS["gru"]])
    params = deep.init(jax.random.key(0), 8)
    raises_eagerly_and_traced(ValueError, "expected input size 8, got 5", scan_fn(deep), params, jnp.zeros((T, 5)))
    wrong_top = (params[0], CELLS["gru"].init(jax.random.key(1), 3))  # the top layer must read H features
    raises_eagerly_and_traced(ValueError, f"expected input size 3, got {H}", scan_fn(deep), wrong_top,
                              jnp.zeros((T, 8)))
    layer = jaxrnn.bidirectional(CELLS["lstm"], CELLS["rnn_tanh"])
    raises_eagerly_and_traced(ValueError, "expected input size 8, got 5", scan_fn(layer),
                              layer.init(jax.random.key(0), 8), jnp.zeros((T, B, 5)))


@pytest.mark.parametrize("name", CELL_NAMES)
def test_wrong_carry_shape(name):
    """A carry whose hidden size or batch shape does not match, or a single array for LSTM's pair."""
    cell = CELLS[name]
    params, xs = init(cell, I), jnp.zeros((T, B, I))
    expected = rf"expected carry to be .*\({B}, {H}\).*, got .*"
    for carry in (cell.initial_carry((B + 1,)), cell.initial_carry()):
        raises_eagerly_and_traced(ValueError, expected, scan_fn(cell), params, xs, carry)
    wide = jax.tree_util.tree_map(lambda a: jnp.zeros((B, H + 1)), cell.initial_carry((B,)))
    raises_eagerly_and_traced(ValueError, expected, scan_fn(cell), params, xs, wide)
    if name == "lstm":
        raises_eagerly_and_traced(ValueError, rf"expected carry to be LSTMState.*, got an array of shape \({B}, {H}\)",
                                  scan_fn(cell), params, xs, jnp.zeros((B, H)))


def test_integer_carry_and_stack_carry_of_wrong_length():
    cell = CELLS["rnn_tanh"]
    raises_eagerly_and_traced(TypeError, "expected a floating-point carry, got dtype int32", scan_fn(cell),
                              init(cell, I), jnp.zeros((T, I)), jnp.zeros(H, jnp.int32))
    deep = jaxrnn.stack([cell, cell])
    params, carry = init(deep, I), deep.initial_carry()
    two_vs_one = rf"expected carry to be tuple .*\(\({H},\), \({H},\)\), got tuple .*\(\({H},\),\)"
    raises_eagerly_and_traced(ValueError, two_vs_one, scan_fn(deep), params, jnp.zeros((T, I)), carry[:1])
    raises_eagerly_and_traced(ValueError, "expected params of a 2-layer stack to be a tuple of 2",
                              scan_fn(deep), params[:1], jnp.zeros((T, I)), carry)


@pytest.mark.parametrize(
    "lengths, exception, match",
    [
        (np.array([1, 2]), ValueError, r"expected lengths of shape \(3,\) \(the batch axes of xs\), got \(2,\)"),
        (np.array([[1, 2, 3]]), ValueError, r"expected lengths of shape \(3,\)"),
        (np.array(2), ValueError, r"expected lengths of shape \(3,\)"),
        (np.array([1.0, 2.0, 3.0]), TypeError, r"expected integer lengths, got dtype float32"),
    ],
    ids=["too_short", "extra_axis", "scalar", "float"],
)
def test_lengths_of_wrong_shape_or_dtype(lengths, exception, match):
    cell = CELLS["lstm"]
    def f(params, xs, lengths):
        return jaxrnn.scan(cell, params, xs, lengths=lengths)
    raises_eagerly_and_traced(exception, match, f, init(cell, I), jnp.zeros((T, B, I)), lengths)


@pytest.mark.parametrize("lengths", [[1, -1, 2], [1, T + 1, 2]], ids=["negative", "longer_than_T"])
def test_lengths_out_of_range(lengths):
    """Known values are checked against ``[0, T]``; traced ones cannot be, and are accepted."""
    cell = CELLS["gru"]
    params, xs = init(cell, I), jax.ShapeDtypeStruct((T, B, I), jnp.float32)
    for given in (lengths, np.array(lengths), jnp.array(lengths)):
        with pytest.raises(ValueError, match=rf"expected lengths in \[0, {T}\] \(the time axis of xs\), got values"):
            jaxrnn.scan(cell, params, jnp.zeros((T, B, I)), lengths=given)
    traced = jax.eval_shape(lambda p, x, n: jaxrnn.scan(cell, p, x, lengths=n), params, xs, shapes(np.array(lengths)))
    assert traced[1].shape == (T, B, H)


def test_unbatched_xs_with_scalar_lengths_is_accepted():
    cell = CELLS["rnn_tanh"]
    final, ys = jaxrnn.scan(cell, cell.init(jax.random.key(0), I), jnp.ones((T, I)), lengths=2)
    np.testing.assert_array_equal(ys[2:], 0.0)


def test_integer_inputs():
    cell = CELLS["lstm"]
    params = init(cell, I)
    raises_eagerly_and_traced(TypeError, "expected floating-point xs, got dtype int32", scan_fn(cell),
                              params, jnp.zeros((T, B, I), jnp.int32))
    raises_eagerly_and_traced(TypeError, "expected a floating-point input, got dtype int32", cell.step,
                              params, cell.initial_carry(), jnp.zeros(I, jnp.int32))


def test_xs_without_time_axis():
    cell = CELLS["lstm"]
    raises_eagerly_and_traced(ValueError, r"expected xs of shape \(time, ..., features\), got shape \(4,\)",
                              scan_fn(cell), init(cell, I), jnp.zeros(I))


def test_unknown_activation():
    with pytest.raises(ValueError, match=r"unknown activation 'tanhh'; expected one of .*relu.*tanh"):
        jaxrnn.rnn(H, activation="tanhh")
    with pytest.raises(ValueError, match=r"unknown activation 3"):
        jaxrnn.rnn(H, activation=3)


def test_unknown_bidirectional_merge():
    with pytest.raises(ValueError, match=r"unknown merge 'max'; expected one of concat, sum, mean, mul or a callable"):
        jaxrnn.bidirectional(CELLS["lstm"], CELLS["lstm"], merge="max")


def test_a_key_means_the_same_for_every_part():
    """A part that draws no random numbers accepts ``key=`` and ignores it (user code need not special-case it)."""
    xs = jnp.asarray(np.random.default_rng(0).normal(size=(T, B, I)), jnp.float32)
    for part in (CELLS["lstm"], jaxrnn.stack([CELLS["gru"], CELLS["rnn_tanh"]]), jaxrnn.linear(3),
                 jaxrnn.bidirectional(CELLS["lstm"], CELLS["gru"])):
        params = part.init(jax.random.key(1), I)
        keyed = jaxrnn.scan(part, params, xs, key=jax.random.key(0))
        np.testing.assert_array_equal(keyed[1], jaxrnn.scan(part, params, xs)[1])
    cell = CELLS["lstm"]
    np.testing.assert_array_equal(cell.step(init(cell, I), cell.initial_carry(), xs[0, 0], key=jax.random.key(0))[1],
                                  cell.step(init(cell, I), cell.initial_carry(), xs[0, 0])[1])


def test_stack_construction_and_residual_sizes():
    with pytest.raises(ValueError, match="stack needs at least one part"):
        jaxrnn.stack([])
    for rate in (-0.1, 1.0):
        with pytest.raises(ValueError, match=r"expected dropout in \[0, 1\)"):
            jaxrnn.stack([CELLS["lstm"]], dropout=rate)
    with pytest.raises(ValueError, match=r"dropout=0.5 would do nothing: .* this stack has one layer"):
        jaxrnn.stack([CELLS["lstm"]], dropout=0.5)
    with pytest.raises(ValueError, match=r"residual=True would do nothing: .* this stack has one layer"):
        jaxrnn.stack([CELLS["lstm"]], residual=True)
    with pytest.raises(TypeError, match=r"stack: part 1 is a function; expected a jaxrnn.Part"):
        jaxrnn.stack([CELLS["lstm"], lambda x: x])
    with pytest.raises(TypeError, match=r"bidirectional: backward is a tuple; expected a jaxrnn.Part"):
        jaxrnn.bidirectional(CELLS["lstm"], (1, 2))
    with pytest.raises(TypeError, match=r"expected a jaxrnn.Part to scan \(a cell, a stack, a layer\), got dict"):
        jaxrnn.scan({"step": None}, {}, jnp.zeros((T, I)))
    deep = jaxrnn.stack([CELLS["lstm"], jaxrnn.lstm(H + 1)], residual=True)
    raises_eagerly_and_traced(ValueError, rf"residual connection needs equal sizes: layer input {H}, output {H + 1}",
                              scan_fn(deep), init(deep, I), jnp.zeros((T, I)))


@pytest.mark.parametrize("unroll", [0, -2, 2.5, "8", 1.0])
def test_bad_unroll(unroll):
    cell = CELLS["rnn_tanh"]
    raises_eagerly_and_traced(ValueError, r"unroll: expected None, a positive integer or a bool, got",
                              scan_fn(cell, unroll=unroll), init(cell, I), jnp.zeros((T, B, I)))


@pytest.mark.parametrize("make, exception, match", [
    (lambda: jaxrnn.lstm(-1), ValueError, r"hidden_size: expected an integer >= 1, got -1"),
    (lambda: jaxrnn.gru(0), ValueError, r"hidden_size: expected an integer >= 1, got 0"),
    (lambda: jaxrnn.rnn(2.5), TypeError, r"hidden_size: expected an integer >= 1, got 2.5"),
    (lambda: jaxrnn.lstm(True), TypeError, r"hidden_size: expected an integer >= 1, got True"),
    (lambda: jaxrnn.rnn("8"), TypeError, r"hidden_size: expected an integer >= 1, got '8'"),
    (lambda: jaxrnn.gru(8, reset_after="no"), TypeError, r"reset_after: expected True or False, got 'no'"),
    (lambda: jaxrnn.rnn(8, use_bias=1), TypeError, r"use_bias: expected True or False, got 1"),
    (lambda: jaxrnn.lstm(8, forget_bias="1"), TypeError, r"forget_bias: expected a finite number, got '1'"),
    (lambda: jaxrnn.lstm(8, param_dtype=jnp.int32), TypeError, r"param_dtype: expected a floating-point dtype"),
    (lambda: jaxrnn.gru(8, dtype="float8"), TypeError, r"dtype: expected a floating-point dtype or None"),
    (lambda: jaxrnn.rnn(8, kernel_init=3), TypeError, r"kernel_init: expected a callable, got 3"),
    (lambda: jaxrnn.linear(0), ValueError, r"features: expected an integer >= 1, got 0"),
    (lambda: jaxrnn.stack([CELLS["lstm"]] * 2, residual="yes"), TypeError, r"residual: expected True or False"),
], ids=["negative", "zero", "float", "bool", "text", "reset_after", "use_bias", "forget_bias", "param_dtype",
        "dtype", "kernel_init", "linear", "residual"])
def test_factories_check_their_arguments(make, exception, match):
    with pytest.raises(exception, match=match):
        make()


@pytest.mark.parametrize("size, exception", [(0, ValueError), (-3, ValueError), (2.0, TypeError), (None, TypeError)])
def test_init_checks_the_input_size(size, exception):
    parts = [CELLS["lstm"], CELLS["gru"], CELLS["rnn_tanh"], jaxrnn.linear(2), jaxrnn.stack([CELLS["lstm"]] * 2),
             jaxrnn.bidirectional(CELLS["lstm"], CELLS["lstm"])]
    for part in parts:
        with pytest.raises(exception, match=rf"input_size: expected an integer >= 1, got {size}"):
            part.init(jax.random.key(0), size)


def test_initial_carry_takes_an_int_batch_size():
    for part in (CELLS["lstm"], jaxrnn.stack([CELLS["gru"], CELLS["lstm"]]),
                 jaxrnn.bidirectional(CELLS["gru"], CELLS["gru"])):
        assert (jax.tree_util.tree_structure(part.initial_carry(32))
                == jax.tree_util.tree_structure(part.initial_carry((32,))))
        assert {leaf.shape for leaf in jax.tree_util.tree_leaves(part.initial_carry(32))} == {(32, H)}
    for bad in (2.5, "32", (3, -1), [None]):
        with pytest.raises(TypeError, match=r"batch_shape: expected an int or a tuple of non-negative ints"):
            CELLS["lstm"].initial_carry(bad)


def test_scan_checks_its_flags():
    cell = CELLS["rnn_tanh"]
    for option in ("reverse", "time_major", "remat", "checked"):
        with pytest.raises(TypeError, match=rf"{option}: expected True or False, got 'no'"):
            jaxrnn.scan(cell, init(cell, I), jnp.zeros((T, I)), **{option: "no"})


def test_only_a_sum_step_is_additive():
    """``additive`` (the fused path's licence to save only ``xp + hp``) comes from ``Split.from_sum`` alone."""
    from jaxrnn.split import Split, halves_of

    gru, lstm = halves_of(jaxrnn.gru(3, reset_after=True)), halves_of(jaxrnn.lstm(3))
    assert not gru.additive and lstm.additive
    assert not Split.from_product(gru.project, gru.product, gru.update).additive
    assert halves_of(jaxrnn.mingru(3)) is None and halves_of(jaxrnn.stack([jaxrnn.lstm(3)])) is None
    with pytest.raises(TypeError, match="update_sum: expected a callable"):
        Split.from_sum(gru.project, gru.product, None)


def test_narrow_integer_lengths_mask_the_same_steps():
    cell = CELLS["rnn_tanh"]
    xs = jnp.ones((300, 1, I))
    params = init(cell, I)
    length = 100  # T = 300 steps: an arange in uint8 or int8 would wrap around
    for dtype in (np.uint8, np.int8, np.int16):
        final, ys = jaxrnn.scan(cell, params, xs, lengths=np.array([length], dtype))
        final32, ys32 = jaxrnn.scan(cell, params, xs, lengths=np.array([length], np.int32))
        np.testing.assert_array_equal(ys, ys32)
        np.testing.assert_array_equal(final, final32)
        np.testing.assert_array_equal(ys[length:], 0.0)


def test_resolve_path_is_for_one_cell():
    from jaxrnn.loop import resolve_path

    with pytest.raises(TypeError, match="bidirectional has no loop of its own: a stack runs each of its parts"):
        resolve_path("fused", jaxrnn.bidirectional(CELLS["lstm"], CELLS["lstm"]))
    with pytest.raises(TypeError, match="stack has no loop of its own: a stack runs each of its parts on its own"):
        resolve_path("fused", jaxrnn.stack([CELLS["lstm"], CELLS["lstm"]]))
    assert resolve_path("fused", CELLS["lstm"]) == "fused"


def test_padding_outputs_are_zero_whatever_the_merge():
    layer = jaxrnn.bidirectional(CELLS["lstm"], CELLS["lstm"], merge=lambda f, b: jnp.tanh(f + b + 1.0))
    params = layer.init(jax.random.key(0), I)
    _, ys = jaxrnn.scan(layer, params, jnp.ones((T, B, I)), lengths=jnp.array([T, 2, 0]))
    np.testing.assert_array_equal(ys[2:, 1], 0.0)
    np.testing.assert_array_equal(ys[:, 2], 0.0)
    assert np.all(ys[:, 0] != 0.0)


@pytest.mark.parametrize("call, exception, match", [
    (lambda: jaxrnn.stack(CELLS["lstm"]), TypeError, r"stack: expected a list of parts, got one part"),
    (lambda: jaxrnn.stack([CELLS["lstm"]] * 2, dropout="0.5"), TypeError, r"dropout: expected a number in \[0, 1\)"),
    (lambda: jaxrnn.stack([CELLS["lstm"]] * 2, dropout=np.float32(0.5)), None, None),
    (lambda: jaxrnn.bidirectional(CELLS["lstm"], CELLS["lstm"], merge=["concat"]), ValueError,
     r"unknown merge \['concat'\]"),
    (lambda: jaxrnn.scan(jaxrnn.bidirectional(jaxrnn.lstm(3), jaxrnn.lstm(4), merge="sum"),
                         jaxrnn.bidirectional(jaxrnn.lstm(3), jaxrnn.lstm(4)).init(jax.random.key(0), I),
                         jnp.ones((T, I))),
     ValueError, r"merge 'sum' needs the two directions' outputs to be the same size"),
    (lambda: CELLS["lstm"].init(0, I), TypeError, r"key: expected a random key \(jax.random.key\(seed\)\), got 0"),
    (lambda: jaxrnn.stack([CELLS["lstm"]] * 2).init(None, I), TypeError, r"key: expected a random key"),
    (lambda: jaxrnn.scan(CELLS["lstm"], init(CELLS["lstm"], I), jnp.ones((T, I)), key=0), TypeError,
     r"key: expected a random key .* or None, got 0"),
    (lambda: jaxrnn.scan(CELLS["gru"], init(CELLS["lstm"], I), jnp.ones((T, I))), ValueError,
     r"params do not fit this part: expected the structure of"),
    (lambda: jaxrnn.scan(CELLS["rnn_tanh"], init(CELLS["lstm"], I), jnp.ones((T, I))), ValueError,
     r"recurrent_kernel: expected shape \(6, 6\), got \(6, 24\)"),
    (lambda: jaxrnn.scan(jaxrnn.bidirectional(CELLS["lstm"], CELLS["lstm"]), init(CELLS["lstm"], I), jnp.ones((T, I))),
     ValueError, r"expected the params of a bidirectional layer"),
    (lambda: CELLS["lstm"].initial_carry(2, jnp.int32), TypeError,
     r"dtype: expected a floating-point dtype for the carry"),
    (lambda: jaxrnn.models.many_to_one("lstm", 1), TypeError,
     r"core: expected a jaxrnn.Part \(a cell, a stack, a layer\), got str"),
    (lambda: jaxrnn.autoregressive.windows(jnp.ones((5, 1)), 2.5), TypeError,
     r"tau: expected an integer >= 1, got 2.5"),
    (lambda: jaxrnn.autoregressive.ar(2, hidden=5), TypeError, r"hidden: expected a sequence of layer sizes"),
    (lambda: jaxrnn.autoregressive.markov(5), TypeError, r"hidden: expected a sequence of layer sizes"),
    (lambda: jaxrnn.autoregressive.forecast(jaxrnn.lstm(2), {}, jnp.ones((5, 1)), 2, 1), TypeError,
     r"model: expected a window model"),
    (lambda: jaxrnn.autoregressive.forecast(jaxrnn.autoregressive.ar(2), {}, jnp.ones((5, 1)), 2, 2.5), TypeError,
     r"steps: expected an integer >= 1, got 2.5"),
    (lambda: jaxrnn.training.train_step(None, None), TypeError, r"loss_fn: expected a callable, got None"),
    (lambda: jaxrnn.training.train_step(lambda p, b, *, key: (0.0, {}), "adam"), TypeError,
     r"tx: expected an Optax GradientTransformation"),
    (lambda: jaxrnn.training.truncated_bptt_step(lambda *a, key: 0.0, jaxrnn.training.optax.sgd(0.1), 2.5), TypeError,
     r"chunk_length: expected an integer >= 1, got 2.5"),
    (lambda: jaxrnn.lstm(4, forget_bias=float("inf")), ValueError, r"forget_bias: expected a finite number, got inf"),
], ids=lambda v: "" if callable(v) or v is None or isinstance(v, type) else v[:40])
def test_public_functions_check_their_arguments(call, exception, match):
    if exception is None:
        call()
        return
    with pytest.raises(exception, match=match):
        call()


def test_a_many_to_one_model_reads_batch_major_input():
    model = jaxrnn.models.many_to_one(CELLS["gru"], 2)
    params = model.init(jax.random.key(0), I)
    xs, n = jnp.asarray(np.random.default_rng(0).normal(size=(T, B, I)), jnp.float32), jnp.array([T, 2, 1])
    np.testing.assert_allclose(model.apply(params, jnp.swapaxes(xs, 0, 1), lengths=n, time_major=False),
                               model.apply(params, xs, lengths=n), rtol=1e-6, atol=1e-6)


def test_token_ids_out_of_range_are_an_error_or_nan_never_another_token():
    vocab = 5
    model = jaxrnn.stack([jaxrnn.embedding(3), CELLS["lstm"], jaxrnn.linear(vocab)])
    params = model.init(jax.random.key(0), vocab)
    good = np.array([[1, 2], [3, 4], [0, 1]])
    for bad in (vocab, -1):
        ids = good.copy()
        ids[1, 1] = bad
        with pytest.raises(ValueError, match=r"expected token ids in \[0, 5\)"):
            jaxrnn.scan(model, params, ids)
        with pytest.raises(ValueError, match=r"expected token ids in \[0, 5\)"):
            model.step(params, model.initial_carry(), jnp.asarray(ids[1]))
        traced = jax.jit(lambda p, x: jaxrnn.scan(model, p, x)[1])(params, ids)
        assert np.all(np.isfinite(traced[:1])) and np.all(np.isnan(traced[1:, 1])) and np.all(np.isfinite(traced[:, 0]))
        error, _ = checkify.checkify(jax.jit(lambda p, x: jaxrnn.scan(model, p, x, checked=True)[1]))(params, ids)
        assert re.search(r"expected token ids in \[0, 5\)", error.get())
        # padding may hold any id: it is never looked up
        np.testing.assert_array_equal(jaxrnn.scan(model, params, ids, lengths=np.array([3, 1]))[1][:, 1][1:], 0.0)
    error, _ = checkify.checkify(jax.jit(lambda p, x: jaxrnn.scan(model, p, x, checked=True)[1]))(params, good)
    assert error.get() is None
