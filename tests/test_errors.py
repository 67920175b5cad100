"""Mistakes give clear errors at trace time: each case raises eagerly and also while tracing under
``jax.jit`` with shapes only (``ShapeDtypeStruct``s, no values), so the checks cost nothing inside jit."""

from __future__ import annotations

import functools
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from support import CELL_NAMES, CELLS, B, H, I, T, cheap_compiles, random_params

import jaxrnn

pytestmark = pytest.mark.usefixtures(cheap_compiles.__name__)


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
    raises_eagerly_and_traced(ValueError, "expected input size 8, got 5", layer.apply,
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
        raises_eagerly_and_traced(ValueError, rf"expected carry to be .*tuple.*, got an array of shape \({B}, {H}\)",
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
    f = lambda params, xs, lengths: jaxrnn.scan(cell, params, xs, lengths=lengths)
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


def test_key_passed_to_a_cell_without_dropout():
    cell = CELLS["lstm"]
    f = lambda params, xs, key: jaxrnn.scan(cell, params, xs, key=key)
    raises_eagerly_and_traced(ValueError, "key is only used by the dropout of jaxrnn.stack", f,
                              init(cell, I), jnp.zeros((T, I)), jax.random.key(0))


def test_stack_construction_and_residual_sizes():
    with pytest.raises(ValueError, match="stack needs at least one cell"):
        jaxrnn.stack([])
    for rate in (-0.1, 1.0):
        with pytest.raises(ValueError, match=r"expected dropout in \[0, 1\)"):
            jaxrnn.stack([CELLS["lstm"]], dropout=rate)
    deep = jaxrnn.stack([CELLS["lstm"], jaxrnn.lstm(H + 1)], residual=True)
    raises_eagerly_and_traced(ValueError, rf"residual connection needs equal sizes: layer input {H}, output {H + 1}",
                              scan_fn(deep), init(deep, I), jnp.zeros((T, I)))


@pytest.mark.parametrize("unroll", [0, -2, 2.5, "8", None])
def test_bad_unroll(unroll):
    cell = CELLS["rnn_tanh"]
    raises_eagerly_and_traced(ValueError, r"unroll: expected a positive integer or a bool, got",
                              scan_fn(cell, unroll=unroll), init(cell, I), jnp.zeros((T, B, I)))
