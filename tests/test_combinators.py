"""``jaxrnn.stack`` and ``jaxrnn.bidirectional`` against the same computation done by hand:
layer after layer, step after step, and each sequence reversed within its own length."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from jax.test_util import check_grads

import jaxrnn
from support import (
    CELL_NAMES,
    CELLS,
    PROPERTY,
    B,
    H,
    I,
    T,
    assert_trees_close,
    random_carry,
    random_inputs,
    random_params,
    run,
    step,
    step_loop,
)

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
    cells = DEEP.info.parts
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

    no_dropout = jaxrnn.stack(DEEP.info.parts, residual=True)
    unkeyed = run(DEEP, params, xs, carry)
    assert_trees_close(unkeyed, run(no_dropout, params, xs, carry))
    assert np.abs(scanned[1] - unkeyed[1]).max() > 1e-2
    assert not np.allclose(scanned[1], run(DEEP, params, xs, carry, key=jax.random.key(13))[1])


@pytest.mark.slow  # the fast suite holds masked stacks to the float64 oracle (test_edges.py)
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
apply = jax.jit(functools.partial(jaxrnn.scan, BIDIRECTIONAL))


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
    merged = jax.jit(lambda params, xs: [jaxrnn.scan(layer, params, xs)[1] for layer in layers])(params, xs)
    assert_trees_close(merged, list(expected.values()))


# --- gradients ---------------------------------------------------------------------------------------------


@pytest.mark.slow  # the fast suite holds composites' gradients to the float64 oracle (test_edges.py)
def test_combinator_gradients_match_finite_differences():
    """Gradients through a residual stack and a bidirectional layer, both with lengths, in float64,
    against finite differences."""
    with jax.enable_x64(True):
        def f64(tree):
            return jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), tree)
        deep = jaxrnn.stack([CELLS["gru_reset_after"], CELLS["lstm"]], residual=True)
        deep_params = f64((random_params(CELLS["gru_reset_after"], 30), random_params(CELLS["lstm"], 31, H)))
        bi_params, bi_carry = f64(bidirectional_params_and_carry(seed=32))
        xs, lengths = f64(random_inputs((4, B, I), seed=33)), jnp.array([4, 2, 0])

        def f(deep_params, bi_params, xs, bi_carry):
            return (jaxrnn.scan(deep, deep_params, xs, lengths=lengths, reverse=True),
                    jaxrnn.scan(BIDIRECTIONAL, bi_params, xs, bi_carry, lengths=lengths))

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
    no_inner_dropout = jaxrnn.stack([jaxrnn.gru(H), jaxrnn.stack(inner.info.parts)], dropout=0.5)
    assert not np.allclose(ys, jaxrnn.scan(no_inner_dropout, params, xs, key=key)[1])


def test_bidirectional_passes_key_and_path_on():
    """``apply(..., key=k)`` reaches stacks in both directions; every ``path`` gives the same outputs."""
    layer = jaxrnn.stack([jaxrnn.lstm(H), jaxrnn.lstm(H)], dropout=0.5)
    bi = jaxrnn.bidirectional(layer, layer)
    params = bi.init(jax.random.key(0), I)
    xs, lengths = random_inputs((T, B, I), seed=5), jnp.array([T, 3, 1])
    _, plain = jaxrnn.scan(bi, params, xs, lengths=lengths, key=jax.random.key(1), path="plain")
    _, fused = jaxrnn.scan(bi, params, xs, lengths=lengths, key=jax.random.key(1), path="fused")
    _, no_key = jaxrnn.scan(bi, params, xs, lengths=lengths)
    assert_trees_close(plain, fused)
    for half in (slice(0, H), slice(H, 2 * H)):  # both directions drop
        assert not np.allclose(plain[..., half], no_key[..., half])


# --- parts that compose: deep bidirectional networks, readouts, batch-major input -------------------------

BI_STACK = jaxrnn.stack([jaxrnn.bidirectional(CELLS["lstm"], CELLS["gru_reset_after"]),
                         jaxrnn.bidirectional(CELLS["rnn_tanh"], CELLS["gru"], merge="sum")], residual=False)
scan_bi_stack = jax.jit(jaxrnn.scan, static_argnums=0, static_argnames=("reverse", "time_major"))


def bi_stack_params(seed):
    return ({"forward": random_params(CELLS["lstm"], seed),
             "backward": random_params(CELLS["gru_reset_after"], seed + 1)},
            {"forward": random_params(CELLS["rnn_tanh"], seed + 2, input_size=2 * H),
             "backward": random_params(CELLS["gru"], seed + 3, input_size=2 * H)})


def test_a_stack_is_one_type_that_steps_when_every_layer_steps():
    """Whatever it holds, a stack is a ``Part``; it has a ``step`` exactly when every layer has one."""
    steppable = jaxrnn.stack([CELLS["lstm"], jaxrnn.linear(3)])
    assert isinstance(steppable, jaxrnn.Part) and steppable.step is not None
    for whole_sequences in (BI_STACK, jaxrnn.stack([jaxrnn.stack([CELLS["lstm"]] * 2), BIDIRECTIONAL])):
        assert isinstance(whole_sequences, jaxrnn.Part) and whole_sequences.step is None
        assert whole_sequences.info.kind == "stack" and whole_sequences.sequence is not None
    shapes = jax.eval_shape(lambda key: BI_STACK.init(key, I), jax.random.key(0))
    assert shapes[1]["forward"]["input_kernel"].shape == (2 * H, H)  # the second layer reads both directions


@PROPERTY
@given(seed=seeds, lengths=batch_lengths)
def test_deep_bidirectional_with_lengths_equals_each_sequence_alone(seed, lengths):
    """Layer by layer, each sequence alone: the forward cell left to right, the backward cell right to left
    from its own last element, the next layer reading the merged outputs."""
    params = bi_stack_params(seed)
    xs = random_inputs((T, B, I), seed + 4)
    (final1, final2), ys = scan_bi_stack(BI_STACK, params, xs, lengths=jnp.array(lengths))
    merges = (lambda f, b: jnp.concatenate([f, b]), lambda f, b: f + b)
    cells = [(CELLS["lstm"], CELLS["gru_reset_after"]), (CELLS["rnn_tanh"], CELLS["gru"])]
    for b, length in enumerate(lengths):
        seq, finals = xs[:length, b], []
        for (fwd, bwd), p, merge in zip(cells, params, merges):
            zeros = lambda cell: jax.tree_util.tree_map(jnp.zeros_like, cell.initial_carry())  # noqa: E731
            f_final, ys_f = step_loop(fwd, p["forward"], seq, zeros(fwd))
            b_final, ys_b = step_loop(bwd, p["backward"], seq, zeros(bwd), reverse=True)
            seq = jnp.stack([merge(f, g) for f, g in zip(ys_f, ys_b)]) if length else jnp.zeros((0, H))
            finals.append((f_final, b_final))
        assert_trees_close((take(final1, b), take(final2, b)), tuple(finals))
        assert_trees_close(ys[:length, b], seq)
        np.testing.assert_array_equal(ys[length:, b], 0.0)


@pytest.mark.slow  # reversed parts, with lengths, are held to the float64 oracle in the fast suite (test_edges.py)
@PROPERTY
@given(seed=seeds, lengths=batch_lengths)
def test_reverse_of_any_part_is_flip_run_flip(seed, lengths):
    """``reverse=True`` == each sequence flipped within its length, run forwards, flipped back; for a
    cell stack and a deep bidirectional layer alike."""
    params = bi_stack_params(seed)
    xs = random_inputs((T, B, I), seed + 5)

    def flip(a):  # each sequence reversed within its own length; padding stays at the end
        return jnp.stack([jnp.concatenate([a[:n, b][::-1], a[n:, b]]) for b, n in enumerate(lengths)], axis=1)

    n = jnp.array(lengths)
    for part, p in ((BI_STACK, params), (DEEP, deep_params_and_carry(seed)[0])):
        final, ys = scan_bi_stack(part, p, xs, lengths=n, reverse=True)
        final_flipped, ys_flipped = scan_bi_stack(part, p, flip(xs), lengths=n)
        assert_trees_close((final, ys), (final_flipped, flip(ys_flipped)))


@pytest.mark.slow  # batch-major nests are held to the float64 oracle in the fast suite (test_edges.py)
@PROPERTY
@given(seed=seeds, reverse=st.booleans())
def test_batch_major_input_is_time_major_transposed(seed, reverse):
    """``time_major=False`` reads ``(B, T, I)`` and returns ``(B, T, O)``: the time-major result, transposed."""
    params = bi_stack_params(seed)
    xs, n = random_inputs((T, B, I), seed + 6), jnp.array([T, 1, 3])
    for part, p in ((BI_STACK, params), (CELLS["lstm"], random_params(CELLS["lstm"], seed))):
        final, ys = scan_bi_stack(part, p, xs, lengths=n, reverse=reverse)
        final_bm, ys_bm = scan_bi_stack(part, p, jnp.swapaxes(xs, 0, 1), lengths=n, reverse=reverse, time_major=False)
        assert ys_bm.shape == (B, T, ys.shape[-1])
        assert_trees_close((final_bm, jnp.swapaxes(ys_bm, 0, 1)), (final, ys))


def test_a_readout_on_a_cell_is_a_cell_stepped_or_scanned():
    """``stack([cell, linear(O)])``: ``y_t = h_t W + b`` at every step, zero on padding, the same by ``step``."""
    model = jaxrnn.stack([CELLS["gru"], jaxrnn.linear(2)])
    params = model.init(jax.random.key(0), I)
    assert params[1]["kernel"].shape == (H, 2) and not np.any(params[1]["bias"])
    params = (params[0], {"kernel": params[1]["kernel"], "bias": jnp.array([0.5, -1.0])})
    xs, n = random_inputs((T, B, I), seed=7), jnp.array([T, 2, 0])
    _, hs = run(CELLS["gru"], params[0], xs, lengths=n)
    final, ys = run(model, params, xs, lengths=n)
    valid = (jnp.arange(T)[:, None] < n)[..., None]
    assert_trees_close(ys, jnp.where(valid, hs @ params[1]["kernel"] + params[1]["bias"], 0.0))
    assert final[1] == ()
    carry, stepped = model.initial_carry((B,)), []
    for t in range(T):
        carry, y = step(model, params, carry, xs[t])
        stepped.append(y)
    assert_trees_close(jnp.stack(stepped), run(model, params, xs)[1])


def test_out_of_range_traced_lengths_can_be_checked_at_run_time():
    """Traced lengths cannot be checked when ``scan`` is traced: out of range they act as clamped, unless
    ``checked=True``, which reports them through ``checkify``."""
    from jax.experimental import checkify

    cell = CELLS["rnn_tanh"]
    params, xs = random_params(cell, 0), random_inputs((T, B, I), 1)
    f = jax.jit(lambda n: jaxrnn.scan(cell, params, xs, lengths=n)[1])
    np.testing.assert_array_equal(f(jnp.array([T + 3, -1, 2])), f(jnp.array([T, 0, 2])))
    checked = checkify.checkify(jax.jit(lambda n: jaxrnn.scan(cell, params, xs, lengths=n, checked=True)[1]))
    error, _ = checked(jnp.array([T + 3, 1, 2]))
    with pytest.raises(checkify.JaxRuntimeError, match=rf"expected lengths in \[0, {T}\] .* from 1 to {T + 3}"):
        error.throw()
    error, ys = checked(jnp.array([T, 1, 2]))
    error.throw()  # in range: nothing to report
    np.testing.assert_array_equal(ys, f(jnp.array([T, 1, 2])))


@pytest.mark.parametrize("merge", ["concat", "sum"])
def test_many_to_one_over_bidirectional_reads_each_direction_at_its_own_end(merge):
    """The forward direction after each sequence's last valid step, the backward one after reading back to
    ``x_0`` (PyTorch's ``h_n``), through the layers above -- not one time step of the merged outputs."""
    fwd, bwd = jaxrnn.lstm(H), jaxrnn.gru(H, reset_after=True)
    core = jaxrnn.stack([jaxrnn.rnn(H), jaxrnn.bidirectional(fwd, bwd, merge=merge), jaxrnn.linear(3)])
    model = jaxrnn.models.many_to_one(core, 2)
    params = model.init(jax.random.key(0), I)
    xs = jax.random.normal(jax.random.key(1), (T, B, I))
    lengths = jnp.array([T, 2, 0])
    below, (p_bi, p_lin) = params["cell"][0], params["cell"][1:]
    _, hs = jaxrnn.scan(jaxrnn.rnn(H), below, xs, lengths=lengths)
    _, ys_f = jaxrnn.scan(fwd, p_bi["forward"], hs, lengths=lengths)
    _, ys_b = jaxrnn.scan(bwd, p_bi["backward"], hs, lengths=lengths, reverse=True)
    at_end = jnp.take_along_axis(ys_f, jnp.maximum(lengths - 1, 0)[None, :, None], axis=0)[0]
    merged = jnp.concatenate([at_end, ys_b[0]], -1) if merge == "concat" else at_end + ys_b[0]
    merged = jnp.where((lengths > 0)[:, None], merged, 0.0)
    expected = (merged @ p_lin["kernel"] + p_lin["bias"]) @ params["readout"]["kernel"] + params["readout"]["bias"]
    np.testing.assert_allclose(model.apply(params, xs, lengths=lengths), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(model.apply(params, jnp.moveaxis(xs, 0, 1), lengths=lengths, time_major=False),
                               expected, rtol=1e-5, atol=1e-5)


def test_many_to_one_over_a_residual_bidirectional_top_is_an_error():
    bi = jaxrnn.bidirectional(jaxrnn.gru(H), jaxrnn.gru(H), merge="sum")
    model = jaxrnn.models.many_to_one(jaxrnn.stack([jaxrnn.gru(H), bi], residual=True), 1)
    params = model.init(jax.random.key(0), I)
    with pytest.raises(ValueError, match="residual stack whose top recurrent layer reads whole sequences"):
        model.apply(params, jnp.zeros((T, B, I)))
