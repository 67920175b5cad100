"""``jaxrnn.stack`` and ``jaxrnn.bidirectional`` against the same computation done by hand:
layer after layer, step after step, and each sequence reversed within its own length."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from jax.test_util import check_grads
from support import (CELL_NAMES, CELLS, PROPERTY, B, H, I, T, assert_trees_close, cheap_compiles, random_carry,
                     random_inputs, random_params, run, step, step_loop)

import jaxrnn

pytestmark = pytest.mark.usefixtures(cheap_compiles.__name__)

seeds = st.integers(0, 2**31 - 1)
batch_lengths = st.lists(st.integers(0, T), min_size=B, max_size=B)


def take(tree, b):
    return jax.tree_util.tree_map(lambda a: a[b], tree)


# --- stack ---------------------------------------------------------------------------------------------

SINGLE = {name: jaxrnn.stack([cell]) for name, cell in CELLS.items()}


@pytest.mark.parametrize("name", CELL_NAMES)
def test_stack_of_one_is_the_cell(name):
    """``stack([cell])``, params ``(p,)`` and carry ``(c,)``: the cell's outputs, step and scan."""
    cell, single = CELLS[name], SINGLE[name]
    params, carry = random_params(cell, seed=0), random_carry(cell, (B,), seed=1)
    xs, lengths = random_inputs((T, B, I), seed=2), jnp.array([T, 2, 0])
    (final,), ys = run(single, (params,), xs, (carry,), lengths=lengths, reverse=True)
    assert_trees_close((final, ys), run(cell, params, xs, carry, lengths=lengths, reverse=True))
    (final,), y = step(single, (params,), (carry,), xs[0])
    assert_trees_close((final, y), step(cell, params, carry, xs[0]))
    assert jax.tree_util.tree_structure(single.init(jax.random.key(0), I)) == \
        jax.tree_util.tree_structure((cell.init(jax.random.key(0), I),))


# (bottom, top) pairs; the top layer reads H features, so residual connections fit.
PAIRS = [("lstm", "gru_reset_after"), ("gru", "rnn_relu"), ("rnn_tanh", "lstm")]


@pytest.mark.parametrize("residual", [False, True])
@pytest.mark.parametrize("pair", PAIRS, ids="+".join)
def test_stack_of_two_equals_layers_by_hand(pair, residual):
    """A 2-layer stack == scan layer 1 over the inputs, then layer 2 over layer 1's outputs
    (plus those outputs when ``residual``), with lengths; final carry is the pair of carries."""
    bottom, top = CELLS[pair[0]], CELLS[pair[1]]
    deep = jaxrnn.stack([bottom, top], residual=residual)
    p1, p2 = random_params(bottom, seed=3), random_params(top, seed=4, input_size=H)
    c1, c2 = random_carry(bottom, (B,), seed=5), random_carry(top, (B,), seed=6)
    xs, lengths = random_inputs((T, B, I), seed=7), jnp.array([T, 2, 0])

    f1, ys1 = run(bottom, p1, xs, c1, lengths=lengths)
    f2, ys2 = run(top, p2, ys1, c2, lengths=lengths)
    expected = ((f1, f2), ys1 + ys2 if residual else ys2)
    assert_trees_close(run(deep, (p1, p2), xs, (c1, c2), lengths=lengths), expected)


def test_stack_init_chains_sizes():
    """``stack.init`` gives each layer the input size of the layer below's output."""
    deep = jaxrnn.stack([jaxrnn.lstm(5), jaxrnn.gru(3), jaxrnn.rnn(2)])
    params = jax.eval_shape(lambda key: deep.init(key, 7), jax.random.key(0))
    assert [p["input_kernel"].shape for p in params] == [(7, 20), (5, 9), (3, 2)]
    assert [p["recurrent_kernel"].shape for p in params] == [(5, 20), (3, 6), (2, 2)]


DEEP = jaxrnn.stack([CELLS["lstm"], CELLS["gru_reset_after"], CELLS["rnn_tanh"]], residual=True, dropout=0.5)


def deep_params_and_carry(seed):
    cells = DEEP.step.cells
    params = tuple(random_params(cell, seed + n, input_size=I if n == 0 else H) for n, cell in enumerate(cells))
    return params, random_carry(DEEP, (B,), seed + 9)


def test_stack_step_loop_equals_scan_with_dropout():
    """``scan`` of a stack runs layer by layer over the whole sequence; a Python loop of the
    stack's own ``step`` runs layer by layer per time step. With dropout and a key they must
    agree (the same mask for every step); the key must matter, and no key means no dropout."""
    params, carry = deep_params_and_carry(seed=10)
    xs, key = random_inputs((T, B, I), seed=11), jax.random.key(12)
    step_with_key = jax.jit(lambda p, c, x, k: DEEP.step(p, c, x, key=k))

    c, ys = carry, []
    for t in range(T):
        c, y = step_with_key(params, c, xs[t], key)
        ys.append(y)
    scanned = run(DEEP, params, xs, carry, key=key)
    assert_trees_close(scanned, (c, jnp.stack(ys)))

    no_dropout = jaxrnn.stack(DEEP.step.cells, residual=True)
    unkeyed = run(DEEP, params, xs, carry)
    assert_trees_close(unkeyed, run(no_dropout, params, xs, carry))
    assert np.abs(scanned[1] - unkeyed[1]).max() > 1e-2
    assert not np.allclose(scanned[1], run(DEEP, params, xs, carry, key=jax.random.key(13))[1])


@PROPERTY
@given(seed=seeds, lengths=batch_lengths, reverse=st.booleans())
def test_stack_masked_batch_equals_each_sequence_alone(seed, lengths, reverse):
    """A stack with ``lengths`` == a Python loop of the stack's ``step`` over each sequence alone."""
    params, carry = deep_params_and_carry(seed)
    xs = random_inputs((T, B, I), seed + 1)
    final, ys = run(DEEP, params, xs, carry, lengths=jnp.array(lengths), reverse=reverse)
    for b, length in enumerate(lengths):
        final_alone, ys_alone = step_loop(DEEP, params, xs[:length, b], take(carry, b), reverse=reverse)
        assert_trees_close(take(final, b), final_alone)
        assert_trees_close(list(ys[:length, b]), ys_alone)
        np.testing.assert_array_equal(ys[length:, b], 0.0)


# --- bidirectional ----------------------------------------------------------------------------------------

BIDIRECTIONAL = jaxrnn.bidirectional(CELLS["lstm"], CELLS["gru"])
apply = jax.jit(BIDIRECTIONAL.apply)


def bidirectional_params_and_carry(seed):
    params = {"forward": random_params(CELLS["lstm"], seed), "backward": random_params(CELLS["gru"], seed + 1)}
    return params, random_carry(BIDIRECTIONAL, (B,), seed + 2)


@PROPERTY
@given(seed=seeds, lengths=batch_lengths)
def test_bidirectional_with_lengths_equals_directions_by_hand(seed, lengths):
    """Each sequence ``xs[:L, b]``: the forward cell steps through it left to right, the backward
    cell right to left from its own last element; ``y_t`` concatenates the two outputs at ``t``;
    padding outputs are zero; the carries are the forward one at ``L`` and the backward one at 0."""
    params, carry = bidirectional_params_and_carry(seed)
    xs = random_inputs((T, B, I), seed + 3)
    (final_f, final_b), ys = apply(params, xs, carry, lengths=jnp.array(lengths))
    assert ys.shape == (T, B, 2 * H)
    for b, length in enumerate(lengths):
        seq = xs[:length, b]
        f_alone, ys_f = step_loop(CELLS["lstm"], params["forward"], seq, take(carry[0], b))
        b_alone, ys_b = step_loop(CELLS["gru"], params["backward"], seq, take(carry[1], b), reverse=True)
        assert_trees_close((take(final_f, b), take(final_b, b)), (f_alone, b_alone))
        assert_trees_close(list(ys[:length, b]), [jnp.concatenate(pair) for pair in zip(ys_f, ys_b)])
        np.testing.assert_array_equal(ys[length:, b], 0.0)


def test_bidirectional_merges_and_default_carry():
    """``sum``/``mean``/``mul``/a callable combine the same two outputs that ``concat`` lays side by
    side; ``carry=None`` starts both directions from zeros."""
    params, _ = bidirectional_params_and_carry(seed=20)
    xs = random_inputs((T, B, I), seed=21)
    carries, ys = apply(params, xs)
    zeros = BIDIRECTIONAL.initial_carry((B,))
    assert_trees_close(apply(params, xs, zeros), (carries, ys))
    y_f, y_b = ys[..., :H], ys[..., H:]
    expected = {"sum": y_f + y_b, "mean": (y_f + y_b) / 2, "mul": y_f * y_b, (lambda f, b: f - b): y_f - y_b}
    layers = [jaxrnn.bidirectional(CELLS["lstm"], CELLS["gru"], merge=merge) for merge in expected]
    merged = jax.jit(lambda params, xs: [layer.apply(params, xs)[1] for layer in layers])(params, xs)
    assert_trees_close(merged, list(expected.values()))


# --- gradients ---------------------------------------------------------------------------------------------


def test_combinator_gradients_match_finite_differences():
    """Gradients through a residual stack and a bidirectional layer, both with lengths, in float64,
    against finite differences."""
    with jax.enable_x64(True):
        f64 = lambda tree: jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), tree)
        deep = jaxrnn.stack([CELLS["gru_reset_after"], CELLS["lstm"]], residual=True)
        deep_params = f64((random_params(CELLS["gru_reset_after"], 30), random_params(CELLS["lstm"], 31, H)))
        bi_params, bi_carry = f64(bidirectional_params_and_carry(seed=32))
        xs, lengths = f64(random_inputs((4, B, I), seed=33)), jnp.array([4, 2, 0])

        def f(deep_params, bi_params, xs, bi_carry):
            return (jaxrnn.scan(deep, deep_params, xs, lengths=lengths, reverse=True),
                    BIDIRECTIONAL.apply(bi_params, xs, bi_carry, lengths=lengths))

        check_grads(jax.jit(f), (deep_params, bi_params, xs, bi_carry), order=1, modes=["rev"], atol=1e-6, rtol=1e-6)


def test_nested_stack_gets_its_own_dropout_key():
    """A stack inside a stack draws dropout masks too, the same per step and through ``scan``."""
    inner = jaxrnn.stack([jaxrnn.lstm(H), jaxrnn.lstm(H)], dropout=0.5)
    outer = jaxrnn.stack([jaxrnn.gru(H), inner], dropout=0.5)
    params = outer.init(jax.random.key(0), I)
    xs, key = random_inputs((T, B, I), seed=3), jax.random.key(4)
    final, ys = jaxrnn.scan(outer, params, xs, key=key)
    carry, by_steps = outer.initial_carry((B,)), []
    for t in range(T):
        carry, y = outer.step(params, carry, xs[t], key=key)
        by_steps.append(y)
    assert_trees_close((final, ys), (carry, jnp.stack(by_steps)))
    no_inner_dropout = jaxrnn.stack([jaxrnn.gru(H), jaxrnn.stack(inner.step.cells)], dropout=0.5)
    assert not np.allclose(ys, jaxrnn.scan(no_inner_dropout, params, xs, key=key)[1])


def test_bidirectional_passes_key_and_path_on():
    """``apply(..., key=k)`` reaches stacks in both directions; every ``path`` gives the same outputs."""
    layer = jaxrnn.stack([jaxrnn.lstm(H), jaxrnn.lstm(H)], dropout=0.5)
    bi = jaxrnn.bidirectional(layer, layer)
    params = bi.init(jax.random.key(0), I)
    xs, lengths = random_inputs((T, B, I), seed=5), jnp.array([T, 3, 1])
    _, plain = bi.apply(params, xs, lengths=lengths, key=jax.random.key(1), path="plain")
    _, fused = bi.apply(params, xs, lengths=lengths, key=jax.random.key(1), path="fused")
    _, no_key = bi.apply(params, xs, lengths=lengths)
    assert_trees_close(plain, fused)
    assert not np.allclose(plain, no_key)
