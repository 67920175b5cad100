"""The cells against their formulas, against Flax, and their initialisation.

References here are independent of jaxrnn's step functions: per-step numpy loops
written from the formulas in the module docstrings (in float64), and Flax's
``LSTMCell``/``GRUCell``/``SimpleCell`` given the same weights.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrnn
from support import (
    CELL_NAMES,
    CELLS,
    FACTORIES,
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
)

# --- numpy references, straight from the docstrings (row-vector style: x @ U) ---------------------


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def ref_rnn(phi):
    def step(p, h, x):
        pre = h @ p["recurrent_kernel"] + x @ p["input_kernel"]
        h = phi(pre + p["bias"] if "bias" in p else pre)
        return h, h

    return step


def ref_lstm(p, carry, x):
    h, c = carry
    U_i, U_f, U_g, U_o = np.split(p["input_kernel"], 4, axis=1)
    W_i, W_f, W_g, W_o = np.split(p["recurrent_kernel"], 4, axis=1)
    b_i, b_f, b_g, b_o = np.split(p["bias"], 4)
    i = sigmoid(x @ U_i + h @ W_i + b_i)
    f = sigmoid(x @ U_f + h @ W_f + b_f)
    g = np.tanh(x @ U_g + h @ W_g + b_g)
    o = sigmoid(x @ U_o + h @ W_o + b_o)
    c = f * c + i * g
    h = o * np.tanh(c)
    return jaxrnn.LSTMState(h, c), h  # the named carry: fields h, c in this order


def ref_gru(p, h, x):
    """The GRU of Cho et al. (2014), ``gru()``: reset before the candidate's product; h = (1-z) h + z h~."""
    U_r, U_z, U_h = np.split(p["input_kernel"], 3, axis=1)
    W_r, W_z = np.split(p["recurrent_kernel"], 2, axis=1)
    W_h = p["candidate_kernel"]
    b_r, b_z, b_h = np.split(p["bias"], 3)
    r = sigmoid(x @ U_r + h @ W_r + b_r)
    z = sigmoid(x @ U_z + h @ W_z + b_z)
    candidate = np.tanh(x @ U_h + (r * h) @ W_h + b_h)
    h = (1 - z) * h + z * candidate
    return h, h


def ref_gru_reset_after(p, h, x):
    """cuDNN/PyTorch GRU: reset after the product; h = (1-z) n + z h."""
    U_r, U_z, U_n = np.split(p["input_kernel"], 3, axis=1)
    W_r, W_z, W_n = np.split(p["recurrent_kernel"], 3, axis=1)
    b_ir, b_iz, b_in = np.split(p["bias"], 3)
    b_hr, b_hz, b_hn = np.split(p["recurrent_bias"], 3)
    r = sigmoid(x @ U_r + b_ir + h @ W_r + b_hr)
    z = sigmoid(x @ U_z + b_iz + h @ W_z + b_hz)
    n = np.tanh(x @ U_n + b_in + r * (h @ W_n + b_hn))
    h = (1 - z) * n + z * h
    return h, h


REFERENCES = {
    "rnn_tanh": ref_rnn(np.tanh),
    "rnn_relu": ref_rnn(lambda a: np.maximum(a, 0.0)),
    "rnn_nobias": ref_rnn(np.tanh),
    "lstm": ref_lstm,
    "gru": ref_gru,
    "gru_reset_after": ref_gru_reset_after,
}


def ref_scan(step, params, xs, carry, lengths=None, reverse=False):
    """Each sequence on its own: a Python loop over its first ``lengths[b]`` steps, zeros after.

    Batch axes are flattened; with ``reverse`` the loop runs from the sequence's own last
    element down to 0. Returns ``(final_carry, ys)`` like ``jaxrnn.scan``.
    """
    def f64(tree):
        return jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), tree)
    params, xs, carry = f64(params), f64(xs), f64(carry)
    time, batch_shape = xs.shape[0], xs.shape[1:-1]
    n = int(np.prod(batch_shape))
    xs = xs.reshape(time, n, xs.shape[-1])
    carry = jax.tree_util.tree_map(lambda a: a.reshape(n, a.shape[-1]), carry)
    lengths = np.full(n, time) if lengths is None else np.asarray(lengths).reshape(n)
    finals, ys = [], None
    for b in range(n):
        c = jax.tree_util.tree_map(lambda a: a[b], carry)
        order = range(lengths[b] - 1, -1, -1) if reverse else range(lengths[b])
        for t in order:
            c, y = step(params, c, xs[t, b])
            if ys is None:
                ys = np.zeros((time, n, y.shape[-1]))
            ys[t, b] = y
        finals.append(c)
    if ys is None:  # every sequence empty: the output size is H for every cell here
        ys = np.zeros((time, n, H))
    final = jax.tree_util.tree_map(lambda *leaves: np.stack(leaves).reshape(batch_shape + (-1,)), *finals)
    return final, ys.reshape((time,) + batch_shape + (-1,))


# --- cells against the formulas ---------------------------------------------------------------------


@pytest.mark.parametrize("name", CELL_NAMES)
def test_step_matches_formula(name):
    """One ``cell.step``, unbatched and batched, equals the docstring formula in numpy."""
    cell, ref = CELLS[name], REFERENCES[name]
    params = random_params(cell, seed=1)
    for batch_shape in [(), (B,)]:
        carry = random_carry(cell, batch_shape, seed=2)
        x = random_inputs(batch_shape + (I,), seed=3)
        expected = ref(*jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), (params, carry, x)))
        assert_trees_close(step(cell, params, carry, x), expected)


@pytest.mark.parametrize("name", CELL_NAMES)
def test_scan_matches_formula_loop_unbatched(name):
    """``scan`` of ``(T, I)`` from a non-zero carry equals the per-step Python loop of the formula."""
    cell = CELLS[name]
    params, carry = random_params(cell, seed=4), random_carry(cell, (), seed=5)
    xs = random_inputs((T, I), seed=6)
    assert_trees_close(run(cell, params, xs, carry), ref_scan(REFERENCES[name], params, xs, carry))


@pytest.mark.parametrize("name", CELL_NAMES)
def test_scan_matches_formula_loop_batched_default_carry(name):
    """``scan`` of ``(T, B, I)`` with ``carry=None`` equals the formula's loop from zeros."""
    cell = CELLS[name]
    params, xs = random_params(cell, seed=4), random_inputs((T, B, I), seed=6)
    final, ys = run(cell, params, xs)
    assert ys.shape == (T, B, H) and ys.dtype == jnp.float32
    zeros = jax.tree_util.tree_map(np.zeros_like, cell.initial_carry((B,)))
    assert_trees_close((final, ys), ref_scan(REFERENCES[name], params, xs, zeros))


@pytest.mark.parametrize("name", CELL_NAMES)
@pytest.mark.parametrize("reverse", [False, True])
def test_scan_with_lengths_matches_formula_loop(name, reverse):
    """With ``lengths`` (0, partial and full), each sequence is looped over on its own."""
    cell = CELLS[name]
    params, carry = random_params(cell, seed=7), random_carry(cell, (B,), seed=8)
    xs = random_inputs((T, B, I), seed=9)
    lengths = jnp.array([2, T, 0])
    actual = run(cell, params, xs, carry, lengths=lengths, reverse=reverse)
    assert_trees_close(actual, ref_scan(REFERENCES[name], params, xs, carry, lengths, reverse))


def test_gru_variants_differ():
    """The two GRU variants are different functions (the z-conventions are opposite)."""
    params = random_params(CELLS["gru_reset_after"], seed=10)
    reset_before = {**params, "recurrent_kernel": params["recurrent_kernel"][:, : 2 * H],
                    "candidate_kernel": params["recurrent_kernel"][:, 2 * H :]}
    del reset_before["recurrent_bias"]
    xs = random_inputs((T, B, I), seed=11)
    _, ys_before = run(CELLS["gru"], reset_before, xs)
    _, ys_after = run(CELLS["gru_reset_after"], {**params, "recurrent_bias": jnp.zeros(3 * H)}, xs)
    assert np.abs(ys_before - ys_after).max() > 1e-2


# --- parity with Flax ---------------------------------------------------------------------------------


def flax_lstm_params(p):
    U, W, b = (np.split(np.asarray(p[k]), 4, axis=-1) for k in ("input_kernel", "recurrent_kernel", "bias"))
    params = {f"i{g}": {"kernel": U[n]} for n, g in enumerate("ifgo")}
    params.update({f"h{g}": {"kernel": W[n], "bias": b[n]} for n, g in enumerate("ifgo")})
    return params


def flax_gru_params(p):
    """Flax has input biases on r, z, n and a recurrent bias on n only: fold ours for r, z."""
    U, W, b, rb = (np.split(np.asarray(p[k]), 3, axis=-1)
                   for k in ("input_kernel", "recurrent_kernel", "bias", "recurrent_bias"))
    return {
        "ir": {"kernel": U[0], "bias": b[0] + rb[0]},
        "iz": {"kernel": U[1], "bias": b[1] + rb[1]},
        "in": {"kernel": U[2], "bias": b[2]},
        "hr": {"kernel": W[0]},
        "hz": {"kernel": W[1]},
        "hn": {"kernel": W[2], "bias": rb[2]},
    }


def flax_simple_params(p):
    return {"i": {"kernel": p["input_kernel"], "bias": p["bias"]}, "h": {"kernel": p["recurrent_kernel"]}}


# name: (flax cell, params mapping, our carry -> flax carry)
FLAX = {
    "lstm": (nn.LSTMCell(H), flax_lstm_params, lambda hc: (hc[1], hc[0])),  # Flax's carry is (c, h)
    "gru_reset_after": (nn.GRUCell(H), flax_gru_params, lambda h: h),
    "rnn_tanh": (nn.SimpleCell(H), flax_simple_params, lambda h: h),
    "rnn_relu": (nn.SimpleCell(H, activation_fn=nn.relu), flax_simple_params, lambda h: h),
}


@pytest.mark.parametrize("name", list(FLAX))
def test_flax_parity(name):
    """Same weights in Flax's cell: one step, and ``nn.RNN`` over the whole batched sequence."""
    cell, (flax_cell, to_flax, to_flax_carry) = CELLS[name], FLAX[name]
    params, carry = random_params(cell, seed=12), random_carry(cell, (B,), seed=13)
    variables = {"params": to_flax(params)}
    xs = random_inputs((T, B, I), seed=14)

    flax_carry, flax_y = flax_cell.apply(variables, to_flax_carry(carry), xs[0])
    our_carry, our_y = cell.step(params, carry, xs[0])
    assert_trees_close((to_flax_carry(our_carry), our_y), (flax_carry, flax_y))

    rnn = nn.RNN(flax_cell, time_major=True, return_carry=True)
    flax_final, flax_ys = rnn.apply({"params": {"cell": variables["params"]}}, xs, initial_carry=to_flax_carry(carry))
    our_final, our_ys = run(cell, params, xs, carry)
    assert_trees_close((to_flax_carry(our_final), our_ys), (flax_final, flax_ys))


def test_flax_parity_with_seq_lengths():
    """``lengths`` against Flax's ``nn.RNN(seq_lengths=...)``: final carry at each sequence's true end."""
    cell, (flax_cell, to_flax, to_flax_carry) = CELLS["lstm"], FLAX["lstm"]
    params = random_params(cell, seed=15)
    xs, lengths = random_inputs((T, B, I), seed=16), jnp.array([3, T, 1])
    rnn = nn.RNN(flax_cell, time_major=True, return_carry=True)
    flax_final, flax_ys = rnn.apply({"params": {"cell": to_flax(params)}}, xs, seq_lengths=lengths)
    our_final, our_ys = run(cell, params, xs, lengths=lengths)
    assert_trees_close(to_flax_carry(our_final), flax_final)
    valid = (jnp.arange(T)[:, None] < lengths)[..., None]
    assert_trees_close(our_ys, jnp.where(valid, flax_ys, 0.0))  # Flax leaves padding outputs unspecified


# --- initialisation and dtypes --------------------------------------------------------------------------


def recurrent_blocks(name, params):
    if name == "gru":
        return np.split(np.asarray(params["recurrent_kernel"]), 2, axis=1) + [np.asarray(params["candidate_kernel"])]
    kernel = np.asarray(params["recurrent_kernel"])
    return np.split(kernel, kernel.shape[1] // kernel.shape[0], axis=1)


@pytest.mark.parametrize("name", CELL_NAMES)
def test_init_shapes_orthogonal_glorot_zero_bias(name):
    """Each gate's recurrent block is orthogonal on its own (and the blocks differ); each
    input block is Glorot-uniform for its own (I, H) fan; biases are zero (LSTM: forget 1)."""
    cell, input_size, hidden = CELLS[name], 16, H
    params = cell.init(jax.random.key(0), input_size)
    blocks = recurrent_blocks(name, params)
    for w in blocks:
        assert w.shape == (hidden, hidden)
        np.testing.assert_allclose(w.T @ w, np.eye(hidden), atol=1e-5)
    for a, b in zip(blocks, blocks[1:]):
        assert not np.allclose(a, b)

    kernel = np.asarray(params["input_kernel"])
    gates = kernel.shape[1] // hidden
    assert kernel.shape == (input_size, gates * hidden)
    limit = np.sqrt(6.0 / (input_size + hidden))  # per block, not for the fused (I, G*H) matrix
    for block in np.split(kernel, gates, axis=1):
        assert np.abs(block).max() <= limit
        assert np.abs(block).max() > 0.8 * limit
        assert 0.6 < block.var() / (limit**2 / 3) < 1.5
        assert abs(block.mean()) < 0.3 * limit

    if name == "rnn_nobias":
        assert "bias" not in params
    else:
        forget_one = np.repeat([0.0, 1.0, 0.0, 0.0], hidden)  # gates i, f, g, o
        np.testing.assert_array_equal(params["bias"], forget_one if name == "lstm" else np.zeros(gates * hidden))
    if "recurrent_bias" in params:
        np.testing.assert_array_equal(params["recurrent_bias"], np.zeros(3 * hidden))


def test_lstm_forget_bias_configurable():
    """``forget_bias`` sets b_f (the second quarter of the fused bias) and nothing else."""
    bias = np.asarray(jaxrnn.lstm(3, forget_bias=-2.5).init(jax.random.key(0), 2)["bias"])
    np.testing.assert_array_equal(bias, [0, 0, 0, -2.5, -2.5, -2.5, 0, 0, 0, 0, 0, 0])


def test_lstm_chrono_initialisation():
    """Chrono (Tallec & Ollivier 2018): per unit b_f = log u, u ~ U(1, T_max - 1), b_i = -b_f.

    The rest as without it.
    """
    hidden, t_max = 256, 50
    plain, chrono = jaxrnn.lstm(hidden), jaxrnn.lstm(hidden, chrono=t_max)
    key = jax.random.key(5)
    p, q = plain.init(key, 3), chrono.init(key, 3)
    b_i, b_f, b_g, b_o = np.asarray(q["bias"]).reshape(4, hidden)
    assert np.all(b_f >= 0) and np.all(b_f <= np.log(t_max - 1)) and np.all(b_i == -b_f)
    assert np.all(b_g == 0) and np.all(b_o == 0)
    # time scales 1 + u spread over the range: u = exp(b_f) is uniform on (1, T_max - 1)
    u = np.exp(b_f)
    assert abs(np.mean(u) - t_max / 2) < 3 and np.min(u) < 5 and np.max(u) > t_max - 5
    for name in ("input_kernel", "recurrent_kernel"):  # the kernels do not move
        np.testing.assert_array_equal(p[name], q[name])
    assert not np.array_equal(chrono.init(jax.random.key(6), 3)["bias"], q["bias"])
    with pytest.raises(ValueError, match="chrono: expected T_max > 2"):
        jaxrnn.lstm(4, chrono=2)
    with pytest.raises(ValueError, match="forget_bias=3.0 and chrono=50 both set b_f"):
        jaxrnn.lstm(4, forget_bias=3.0, chrono=50)


def test_init_is_deterministic_in_key():
    cell = CELLS["lstm"]
    assert_trees_close(cell.init(jax.random.key(3), I), cell.init(jax.random.key(3), I), rtol=0, atol=0)
    assert not np.allclose(cell.init(jax.random.key(3), I)["input_kernel"],
                           cell.init(jax.random.key(4), I)["input_kernel"])


DTYPE_CELLS = ("rnn_tanh", "lstm", "gru", "gru_reset_after")  # one of each step kind


@pytest.mark.parametrize("name", DTYPE_CELLS)
def test_param_dtype_honoured(name):
    params = FACTORIES[name](param_dtype=jnp.bfloat16).init(jax.random.key(0), I)
    assert {leaf.dtype for leaf in jax.tree_util.tree_leaves(params)} == {jnp.dtype(jnp.bfloat16)}


@pytest.mark.parametrize("name", DTYPE_CELLS)
def test_bfloat16_compute_close_to_float32(name):
    """``dtype=bfloat16`` runs the matrix products in bfloat16: close to float32 (bf16 has
    8 bits of mantissa), while the float32 carry and outputs keep their dtype."""
    full, half = FACTORIES[name](), FACTORIES[name](dtype=jnp.bfloat16)
    params = full.init(jax.random.key(1), I)
    xs = random_inputs((T, B, I), seed=17)
    expected, actual = run(full, params, xs), run(half, params, xs)
    for leaf in jax.tree_util.tree_leaves(actual):
        assert leaf.dtype == jnp.float32
    assert_trees_close(actual, expected, rtol=0, atol=5e-2)


@pytest.mark.parametrize("name", CELL_NAMES)
def test_carry_dtype_preserved_through_scan(name):
    """An explicit bfloat16 carry stays bfloat16 through the loop (float32 params and inputs),
    and computes the same function to bfloat16 precision."""
    cell = CELLS[name]
    params, xs = random_params(cell, seed=18), random_inputs((T, B, I), seed=19)
    final, ys = run(cell, params, xs, cell.initial_carry((B,), jnp.bfloat16))
    assert {leaf.dtype for leaf in jax.tree_util.tree_leaves((final, ys))} == {jnp.dtype(jnp.bfloat16)}
    assert_trees_close((final, ys), run(cell, params, xs), rtol=0, atol=1e-1)


def test_activation_by_name_or_callable():
    """``activation="relu"`` and ``activation=jax.nn.relu`` are the same cell."""
    params = random_params(CELLS["rnn_relu"], seed=20)
    xs = random_inputs((T, B, I), seed=21)
    by_callable = run(jaxrnn.rnn(H, activation=jax.nn.relu), params, xs)
    assert_trees_close(run(CELLS["rnn_relu"], params, xs), by_callable)
