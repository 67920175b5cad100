"""minGRU and minLSTM against the paper that defines them: Feng et al. (2024), "Were RNNs All We Needed?"
(arXiv 2410.01201), written out here from its equations in float64 numpy, one step at a time, without
reading jaxrnn's code (only its parameter layout).

The paper has two versions of each cell. The main text's candidate is linear, ``h~_t = Linear_h(x_t)``;
the log-space version (Appendix B.2-B.3) passes it through a positive ``g`` so that the parallel mode can
take its log. jaxrnn implements the log-space version, in both of its modes:

    g(v) = v + 1/2 for v >= 0, sigmoid(v) below                                  (Listing 6)
    minGRU,  sequential (Algorithm 5, Listing 7):
        z_t = sigmoid(Linear_z(x_t)),  h~_t = g(Linear_h(x_t)),  h_t = (1 - z_t) h_{t-1} + z_t h~_t
    minLSTM, sequential (Algorithm 7, Listing 9), with the length-independent scaling:
        f_t = sigmoid(Linear_f(x_t)),  i_t = sigmoid(Linear_i(x_t)),
        f'_t = f_t / (f_t + i_t),  i'_t = i_t / (f_t + i_t),  h~_t = g(Linear_h(x_t)),
        h_t = f'_t h_{t-1} + i'_t h~_t

and the paper's parallel mode (Algorithms 6 and 8, Listings 8 and 10) is the same recurrence,
``h_t = a_t h_{t-1} + b_t``, solved in log space: ``a*_t = sum_{k <= t} log a_k`` and
``h_t = exp(a*_t + logcumsumexp_{k <= t}(log b_k - a*_k))`` with ``log b_0 = log h_0``; for minGRU
``log a = -softplus(k_z)``, ``log b = -softplus(-k_z) + log g(k_h)``; for minLSTM, with
``d = softplus(-k_f) - softplus(-k_i)``, ``log a = -softplus(d)``, ``log b = -softplus(-d) + log g(k_h)``.

jaxrnn's side: ``Linear_*(x) = x W_* + b_*``, with ``input_kernel`` ``(I, 2H) = [W_z | W_h]`` and ``bias``
``[b_z | b_h]`` for minGRU, ``(I, 3H) = [W_f | W_i | W_h]`` and ``[b_f | b_i | b_h]`` for minLSTM (PyTorch's
``nn.Linear`` holds the transpose). Its sequential mode is ``cell.step`` (``path="plain"`` scans it), its
parallel mode ``path="parallel"`` (forced on any backend).

Where the paper and jaxrnn differ, each tested below:

* The initial state of the parallel mode. Algorithms 6 and 8 and Listing 10 take ``log h_0`` (so ``h_0 > 0``,
  or ``h_0 = 0`` as ``log 0 = -inf``); Listing 8 (minGRU) takes ``log_g(h_0)``, so the paper's minGRU code starts
  its parallel mode from ``g(h_0)`` (``0.5`` for the zero state) and its sequential mode from ``h_0``. jaxrnn
  starts both modes from ``h_0`` as given, any sign (its scan does not need ``log h_0``), zeros by default: the
  paper's sequential mode, and Algorithms 6 and 8.
* ``lengths`` and ``reverse`` are not in the paper. The reference runs each sequence's first ``lengths[b]``
  inputs (backwards with ``reverse``), outputs zeros past them and keeps ``h`` there.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrnn
from support import MINIMAL_CELLS, B, H, I, T, random_carry, random_inputs, random_params, relative_error

# --- the paper, in float64 -----------------------------------------------------------------------------


def sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


def softplus(v):
    return np.logaddexp(0.0, v)


def g(v):
    """Listing 6: continuous and positive, so the parallel mode can take its log."""
    return np.where(v >= 0, v + 0.5, sigmoid(v))


def log_g(v):
    return np.where(v >= 0, np.log(np.maximum(v, 0.0) + 0.5), -softplus(-v))


BLOCKS = {"mingru": ("z", "h"), "minlstm": ("f", "i", "h")}


def linear(name, params, x, block):
    """``Linear_block(x) = x W_block + b_block``, the block's columns of jaxrnn's one kernel and bias."""
    n, k = params["bias"].shape[0] // len(BLOCKS[name]), BLOCKS[name].index(block)
    return x @ params["input_kernel"][:, k * n:(k + 1) * n] + params["bias"][k * n:(k + 1) * n]


def mingru_step(params, h_prev, x_t):
    """Algorithm 5 / Listing 7."""
    z = sigmoid(linear("mingru", params, x_t, "z"))
    h_tilde = g(linear("mingru", params, x_t, "h"))
    return (1.0 - z) * h_prev + z * h_tilde


def minlstm_step(params, h_prev, x_t):
    """Algorithm 7 / Listing 9."""
    f = sigmoid(linear("minlstm", params, x_t, "f"))
    i = sigmoid(linear("minlstm", params, x_t, "i"))
    f_prime, i_prime = f / (f + i), i / (f + i)
    h_tilde = g(linear("minlstm", params, x_t, "h"))
    return f_prime * h_prev + i_prime * h_tilde


PAPER_STEP = {"mingru": mingru_step, "minlstm": minlstm_step}


def float64(tree):
    return jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), tree)


def sequential_mode(name, params, xs, h0, lengths=None, reverse=False):
    """The paper's sequential mode over each sequence of ``xs: (T, B, I)`` from ``h0: (B, H)``:
    ``(h at each sequence's end (B, H), outputs (T, B, H))``."""
    params, xs, h0 = float64(params), np.asarray(xs, np.float64), np.asarray(h0, np.float64)
    time, batch = xs.shape[:2]
    final, ys = h0.copy(), np.zeros((time, batch, h0.shape[-1]))
    for b in range(batch):
        length = time if lengths is None else int(lengths[b])
        h = h0[b]
        for t in reversed(range(length)) if reverse else range(length):
            h = PAPER_STEP[name](params, h, xs[t, b])
            ys[t, b] = h
        final[b] = h
    return final, ys


def parallel_mode(name, params, xs, log_h0):
    """The paper's parallel mode (Algorithms 6 and 8, Listings 8 and 10, ``parallel_scan_log``): the outputs
    ``h_1 .. h_T`` of ``xs: (T, B, I)``, given the log of the initial state ``(B, H)``."""
    params, xs = float64(params), np.asarray(xs, np.float64)
    log_h_tilde = log_g(linear(name, params, xs, "h"))
    if name == "mingru":
        k = linear(name, params, xs, "z")
        log_coeffs, log_values = -softplus(k), -softplus(-k) + log_h_tilde  # log(1 - z), log(z h~)
    else:
        diff = softplus(-linear(name, params, xs, "f")) - softplus(-linear(name, params, xs, "i"))
        log_coeffs, log_values = -softplus(diff), -softplus(-diff) + log_h_tilde  # log f', log(i' h~)
    log_values = np.concatenate([np.asarray(log_h0, np.float64)[None], log_values])
    a_star = np.concatenate([np.zeros_like(log_coeffs[:1]), np.cumsum(log_coeffs, axis=0)])
    log_h = a_star + np.logaddexp.accumulate(log_values - a_star, axis=0)
    return np.exp(log_h)[1:]


# --- jaxrnn ----------------------------------------------------------------------------------------------

PATHS = ("plain", "parallel")


@functools.partial(jax.jit, static_argnums=0, static_argnames="reverse")
def both_modes(cell, params, xs, h0, lengths, reverse=False):
    """``{path: (final, ys)}``: jaxrnn's sequential mode (``lax.scan`` of ``cell.step``) and its parallel mode
    (the associative scan), in one program."""
    return {path: jaxrnn.scan(cell, params, xs, h0, lengths=lengths, reverse=reverse, path=path) for path in PATHS}


# float32 against float64: the inputs, params and initial state are float32 values, exact in float64, so the
# difference is jaxrnn's float32 rounding alone. Each step is a convex combination of the last state and a
# candidate (weights in (0, 1) that sum to 1), so an earlier step's rounding error is scaled down, never up,
# and the error stays at a few float32 epsilons (1.2e-7) of the largest |h| at any length, in both modes
# (at most 2.5e-7 over T = 1 and 2048, both directions, gate scales 0.5 to 1.5). The bound is 8 epsilons;
# a wrong gate, block, bias or candidate is off by orders of magnitude more.
FLOAT32_RTOL = 1e-6
# float64 throughout: the same function, to a few float64 epsilons (2.2e-16) compounded over 2048 steps.
FLOAT64_RTOL = 1e-12

LONG_T = 2048
CASES = {  # id: (T, lengths, reverse); lengths end at the last step, inside, and before the first
    "T1": (1, None, False),
    "T1-reverse-lengths": (1, (1, 0, 1), True),
    f"T{LONG_T}-lengths": (LONG_T, (LONG_T, 1337, 0), False),
    f"T{LONG_T}-reverse-lengths": (LONG_T, (5, LONG_T, 1000), True),
    f"T{LONG_T}": (LONG_T, None, False),
    f"T{LONG_T}-reverse": (LONG_T, None, True),
}
# Compiling a long sequence's program is most of this file's time: the fast suite runs one long case per
# cell, one in each direction, and -m slow the others.
LONG_CASE = {"mingru": f"T{LONG_T}-reverse-lengths", "minlstm": f"T{LONG_T}-lengths"}
FAST = [(name, case) for name in sorted(MINIMAL_CELLS) for case in CASES
        if not case.startswith(f"T{LONG_T}") or case == LONG_CASE[name]]
CASE_PARAMS = [(name, case) if (name, case) in FAST else pytest.param(name, case, marks=pytest.mark.slow)
               for name in sorted(MINIMAL_CELLS) for case in CASES]


@functools.cache
def problem(name, time, lengths, reverse):
    """Random float32 params (biases too), inputs and initial state (of both signs), and the paper's answer."""
    cell = MINIMAL_CELLS[name]
    params = random_params(cell, seed=time, scale=1.0)
    xs, h0 = random_inputs((time, B, I), seed=time + 1), random_carry(cell, (B,), seed=time + 2)
    return params, xs, h0, sequential_mode(name, params, xs, h0, lengths, reverse)


def as_lengths(lengths):
    return None if lengths is None else jnp.asarray(lengths, jnp.int32)


@pytest.mark.parametrize("name, case", CASE_PARAMS)
def test_both_modes_are_the_papers_recurrence(name, case):
    time, lengths, reverse = CASES[case]
    params, xs, h0, (exact_final, exact_ys) = problem(name, time, lengths, reverse)
    out = both_modes(MINIMAL_CELLS[name], params, xs, h0, as_lengths(lengths), reverse=reverse)
    for path, (final, ys) in out.items():
        assert relative_error(ys, exact_ys) < FLOAT32_RTOL, f"{path}: outputs"
        assert relative_error(final, exact_final) < FLOAT32_RTOL, f"{path}: final state"
        if lengths is not None:  # past its length a sequence outputs zeros and keeps its state
            past = np.arange(time)[:, None] >= np.asarray(lengths)
            assert not np.asarray(ys)[past].any(), f"{path}: non-zero outputs past a sequence's length"
            empty = np.asarray(lengths) == 0
            np.testing.assert_array_equal(np.asarray(final)[empty], np.asarray(h0)[empty], err_msg=path)


@pytest.mark.parametrize("name", sorted(MINIMAL_CELLS))
def test_in_float64_both_modes_are_the_papers_recurrence_to_rounding(name):
    """The float32 tolerance above leaves room for a small error in the formulas themselves; in float64
    there is none: the same function, with padding, over 2048 steps."""
    time, lengths, reverse = CASES[LONG_CASE[name]]
    params, xs, h0, (exact_final, exact_ys) = problem(name, time, lengths, reverse)
    with jax.enable_x64(True):
        as64 = lambda tree: jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), tree)  # noqa: E731
        out = both_modes(MINIMAL_CELLS[name], as64(params), as64(xs), as64(h0), as_lengths(lengths),
                         reverse=reverse)
        for path, (final, ys) in out.items():
            assert ys.dtype == final.dtype == jnp.float64, path
            assert relative_error(ys, exact_ys) < FLOAT64_RTOL, f"{path}: outputs"
            assert relative_error(final, exact_final) < FLOAT64_RTOL, f"{path}: final state"


# --- a case computed by hand -------------------------------------------------------------------------------
# H = 1 and kernels that are the identity (zero biases), so each gate reads one input of its own. With
# sigmoid(ln 3) = 3/4, sigmoid(0) = 1/2, sigmoid(-ln 3) = 1/4, g(1) = 1.5, g(0.5) = 1, g(0) = 0.5 and
# g(-ln 3) = sigmoid(-ln 3) = 1/4, from h_0 = 2:
#
# minGRU, x_t = (u_t, v_t): z_t = sigmoid(u_t), h~_t = g(v_t)
#   t=1  u = ln 3 (z = 3/4),  v = 1     (h~ = 1.5):   h_1 = 1/4 * 2      + 3/4 * 1.5  = 1.625
#   t=2  u = 0    (z = 1/2),  v = -ln 3 (h~ = 1/4):   h_2 = 1/2 * 1.625  + 1/2 * 1/4  = 0.9375
#   t=3  u = -ln 3 (z = 1/4), v = 0     (h~ = 0.5):   h_3 = 3/4 * 0.9375 + 1/4 * 0.5  = 0.828125
#   (the main text's linear candidate, h~ = v, would give h_1 = 1/4 * 2 + 3/4 * 1 = 1.25)
#
# minLSTM, x_t = (u_t, w_t, v_t): f_t = sigmoid(u_t), i_t = sigmoid(w_t), h~_t = g(v_t)
#   t=1  f = 3/4, i = 1/4 (f' = 3/4, i' = 1/4), h~ = 1.5:   h_1 = 3/4 * 2      + 1/4 * 1.5 = 1.875
#   t=2  f = 1/2, i = 1/2 (f' = 1/2, i' = 1/2), h~ = 1/4:   h_2 = 1/2 * 1.875  + 1/2 * 1/4 = 1.0625
#   t=3  f = 1/2, i = 3/4 (f' = 2/5, i' = 3/5), h~ = 1:     h_3 = 2/5 * 1.0625 + 3/5 * 1   = 1.025
LN3 = np.log(3.0)
BY_HAND = {
    "mingru": ([[LN3, 1.0], [0.0, -LN3], [-LN3, 0.0]], [1.625, 0.9375, 0.828125]),
    "minlstm": ([[LN3, -LN3, 1.0], [0.0, 0.0, -LN3], [0.0, LN3, 0.5]], [1.875, 1.0625, 1.025]),
}


@pytest.mark.parametrize("name", sorted(BY_HAND))
def test_a_few_steps_computed_by_hand(name):
    inputs, expected = BY_HAND[name]
    cell = {"mingru": jaxrnn.mingru, "minlstm": jaxrnn.minlstm}[name](1)
    n = len(BLOCKS[name])
    params = {"input_kernel": jnp.eye(n), "bias": jnp.zeros(n)}
    xs = jnp.asarray(inputs, jnp.float32)[:, None, :]  # (T = 3, B = 1, n)
    h0 = jnp.full((1, 1), 2.0)
    # The reference itself (from the float64 inputs), then jaxrnn (float32: ln 3 rounded, and a few epsilons
    # of values near 1): its step, and both modes.
    exact_inputs = np.asarray(inputs)[:, None, :]
    np.testing.assert_allclose(sequential_mode(name, params, exact_inputs, h0)[1][:, 0, 0], expected, rtol=1e-12)
    h, stepped = h0, []
    for x in xs:
        h, y = cell.step(params, h, x)
        stepped.append(float(y[0, 0]))
    np.testing.assert_allclose(stepped, expected, rtol=1e-6)
    for path, (final, ys) in both_modes(cell, params, xs, h0, None).items():
        np.testing.assert_allclose(ys[:, 0, 0], expected, rtol=1e-6, err_msg=path)
        np.testing.assert_allclose(final[0, 0], expected[-1], rtol=1e-6, err_msg=path)
    if name == "mingru":  # the log-space version's candidate, not the main text's linear one
        assert abs(stepped[0] - 1.25) > 0.3


# --- the paper's parallel mode, and its initial state ---------------------------------------------------------


@pytest.mark.parametrize("name", sorted(MINIMAL_CELLS))
def test_the_papers_parallel_mode_from_log_h0_is_its_sequential_mode_and_jaxrnns(name):
    """Algorithms 6 and 8 (and Listing 10): from ``log h_0`` the paper's two modes agree, for a positive
    initial state and for the zero state (``log 0 = -inf``), and so does jaxrnn, whose default is zeros."""
    cell = MINIMAL_CELLS[name]
    params, xs = random_params(cell, seed=40, scale=1.0), random_inputs((T, B, I), seed=41)
    positive = jnp.abs(random_carry(cell, (B,), seed=42)) + 0.1
    zeros = np.zeros((B, H))
    for h0 in (positive, zeros):
        with np.errstate(divide="ignore"):
            paper = parallel_mode(name, params, xs, np.log(np.asarray(h0, np.float64)))
        np.testing.assert_allclose(paper, sequential_mode(name, params, xs, h0)[1], rtol=1e-12)
        for path, (_, ys) in both_modes(cell, params, xs, jnp.asarray(h0, jnp.float32), None).items():
            assert relative_error(ys, paper) < FLOAT32_RTOL, path
    for path, (_, ys) in both_modes(cell, params, xs, None, None).items():  # no initial state given: zeros
        assert relative_error(ys, paper) < FLOAT32_RTOL, path


def test_the_papers_mingru_code_starts_its_parallel_mode_from_g_of_h0():
    """Listing 8 takes ``log_g(h_0)``: the paper's minGRU code runs its parallel mode from ``g(h_0)`` and its
    sequential mode (Listing 7) from ``h_0``. jaxrnn runs both from ``h_0``; given ``g(h_0)`` it is Listing 8.
    For the zero state the two starts are 0 and 0.5, and the outputs differ visibly."""
    cell = MINIMAL_CELLS["mingru"]
    params, xs = random_params(cell, seed=50, scale=1.0), random_inputs((T, B, I), seed=51)
    for h0 in (np.asarray(random_carry(cell, (B,), seed=52), np.float64), np.zeros((B, H))):
        listing_8 = parallel_mode("mingru", params, xs, log_g(h0))
        np.testing.assert_allclose(listing_8, sequential_mode("mingru", params, xs, g(h0))[1], rtol=1e-12)
        from_g = both_modes(cell, params, xs, jnp.asarray(g(h0), jnp.float32), None)
        from_h0 = both_modes(cell, params, xs, jnp.asarray(h0, jnp.float32), None)
        for path in PATHS:
            assert relative_error(from_g[path][1], listing_8) < FLOAT32_RTOL, path
            assert np.max(np.abs(np.asarray(from_h0[path][1], np.float64) - listing_8)) > 1e-2, path
