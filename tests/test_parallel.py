"""Parallel in time: the linear-recurrence scans against a Python loop, minGRU and minLSTM through the
associative scan against their own one-token step, long sequences, and the parts that compose with them."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads
from support import assert_trees_close

import jaxrnn
from jaxrnn import language
from jaxrnn.linear_recurrence import gated_scan, linear_scan, log_linear_scan

T, B, I, H = 9, 3, 4, 6
RNG = np.random.default_rng(0)
A = jnp.asarray(RNG.uniform(0.2, 0.95, (T, B, H)), jnp.float32)
BS = jnp.asarray(RNG.uniform(0.05, 1.0, (T, B, H)), jnp.float32)
H0 = jnp.asarray(RNG.normal(size=(B, H)), jnp.float32)


def loop(a, b, h0, reverse=False, lengths=None):
    """``h_t = a_t h_{t-1} + b_t``, one step at a time, padding steps leaving the state and outputting 0."""
    a, b, h = np.asarray(a, np.float64), np.asarray(b, np.float64), np.asarray(h0, np.float64)
    hs = np.zeros(a.shape)
    for t in (range(a.shape[0] - 1, -1, -1) if reverse else range(a.shape[0])):
        ok = np.ones(a.shape[1:-1], bool) if lengths is None else t < np.asarray(lengths)
        h = np.where(ok[..., None], a[t] * h + b[t], h)
        hs[t] = np.where(ok[..., None], h, 0.0)
    return h, hs


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("lengths", [None, [T, 4, 0]])
def test_linear_scans_are_the_loop(reverse, lengths):
    n = None if lengths is None else jnp.array(lengths)
    expected = loop(A, BS, H0, reverse, lengths)
    assert_trees_close(linear_scan(A, BS, H0, reverse=reverse, lengths=n), expected)
    assert_trees_close(gated_scan(jnp.log(A), jnp.log(BS), H0, reverse=reverse, lengths=n), expected)
    # log space, where h stays positive (a positive initial state): log h of the same loop
    final, hs = log_linear_scan(jnp.log(A), jnp.log(BS), jnp.log(jnp.abs(H0)), reverse=reverse, lengths=n)
    ref_final, ref_hs = loop(A, BS, jnp.abs(H0), reverse, lengths)
    assert_trees_close((jnp.exp(final), jnp.exp(hs)), (ref_final, ref_hs))


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("lengths", [None, [T, 4, 0]])
def test_scan_gradients_match_finite_differences(reverse, lengths):
    n = None if lengths is None else jnp.array(lengths)
    x64 = lambda v: jnp.asarray(v, jnp.float64)  # noqa: E731
    with jax.enable_x64():
        for scan, a, b in ((gated_scan, jnp.log(A), jnp.log(BS)), (linear_scan, A, BS)):
            def f(a, b, h0, scan=scan):
                final, hs = scan(a, b, h0, reverse=reverse, lengths=n)
                return jnp.sum(final ** 2) + jnp.sum(jnp.sin(hs))

            check_grads(f, (x64(a), x64(b), x64(H0)), order=1, modes=["rev"], atol=1e-5, rtol=1e-5)


def test_a_zero_length_sequence_and_the_zero_state():
    empty = jnp.zeros((0, B, H))
    final, hs = linear_scan(empty, empty, H0)
    assert hs.shape == (0, B, H)
    np.testing.assert_array_equal(final, H0)
    final, hs = gated_scan(empty, empty, H0)
    np.testing.assert_array_equal(final, H0)
    final, _ = linear_scan(A, BS)  # no initial state: zeros
    np.testing.assert_allclose(final, loop(A, BS, np.zeros((B, H)))[0], rtol=1e-5)


def test_log_space_equals_the_direct_form_and_stays_finite_where_it_underflows():
    a = jnp.full((2000, 1, 1), 0.5)  # 0.5^2000 underflows float32: the direct product is 0
    b = jnp.full((2000, 1, 1), 1e-3)
    _, direct = linear_scan(a, b)
    _, log_hs = log_linear_scan(jnp.log(a), jnp.log(b))
    # equal where both are finite, to float32's precision of log h = A_t + lse(...): |A_t| * 1.2e-7 relative
    np.testing.assert_allclose(jnp.exp(log_hs), direct, rtol=2000 * np.log(2) * 2.4e-7)
    tiny = jnp.full((200, 1, 1), 1e-30)  # b itself underflows when multiplied out; its log does not
    _, log_tiny = log_linear_scan(jnp.log(a[:200]), jnp.log(tiny))
    assert np.isfinite(log_tiny).all() and float(log_tiny[-1, 0, 0]) == pytest.approx(np.log(2e-30), rel=1e-4)


def test_bad_input_to_the_scans():
    with pytest.raises(ValueError, match=r"one shape"):
        linear_scan(A, BS[:-1])
    with pytest.raises(ValueError, match=r"initial state of shape \(3, 6\)"):
        linear_scan(A, BS, H0[:1])
    with pytest.raises(TypeError, match="expected integer lengths"):
        linear_scan(A, BS, lengths=jnp.array([1.0, 2.0, 3.0]))
    with pytest.raises(ValueError, match=r"expected lengths of shape \(3,\)"):
        gated_scan(A, BS, lengths=jnp.array([1, 2]))
    with pytest.raises(ValueError, match=r"expected lengths in \[0, 9\]"):
        log_linear_scan(A, BS, lengths=[9, -1, 2])
    with pytest.raises(TypeError, match="reverse: expected True or False"):
        linear_scan(A, BS, reverse="no")
    with pytest.raises(ValueError, match="one shape"):
        linear_scan(A[:, 0, 0], BS[:, 0, 0])  # no feature axis
    with pytest.raises(TypeError, match="floating-point"):
        linear_scan(A.astype(jnp.int32), BS)


CELLS = {"mingru": jaxrnn.mingru(H), "minlstm": jaxrnn.minlstm(H)}


def stepped(cell):
    """The same cell, but run one token at a time by scan (its own ``step`` in a loop)."""
    return jaxrnn.Cell(cell.init, cell.initial_carry, lambda p, c, x: cell.step(p, c, x))


@functools.partial(jax.jit, static_argnames=("cell", "reverse"))
def both_ways(cell, params, xs, carry, lengths, reverse):
    """Values and gradients of a loss, through the associative scan and through the step loop."""

    def loss(params, xs, carry, part):
        final, ys = jaxrnn.scan(part, params, xs, carry, lengths=lengths, reverse=reverse, path="parallel")
        weights = jnp.linspace(-1.0, 2.0, ys.size).reshape(ys.shape)
        return jnp.sum(weights * jnp.sin(ys)) + jnp.sum(jnp.cos(final)), (final, ys)

    grad = jax.value_and_grad(loss, argnums=(0, 1, 2), has_aux=True)
    return grad(params, xs, carry, cell), grad(params, xs, carry, stepped(cell))


@pytest.mark.parametrize("name", sorted(CELLS))
@pytest.mark.parametrize("reverse, lengths", [(False, None), (True, [T, 4, 0]), (False, [1, T, 5])])
def test_parallel_equals_step_by_step_in_values_and_gradients(name, reverse, lengths):
    cell = CELLS[name]
    params = cell.init(jax.random.key(1), I)
    xs = jnp.asarray(RNG.normal(size=(T, B, I)), jnp.float32)
    n = None if lengths is None else jnp.array(lengths)
    parallel, loop_ = both_ways(cell, params, xs, H0, n, reverse)
    assert_trees_close(parallel, loop_, rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("name", sorted(CELLS))
def test_parallel_gradients_match_finite_differences(name):
    cell = CELLS[name]
    with jax.enable_x64(True):
        params = jax.tree_util.tree_map(lambda a: a.astype(jnp.float64), cell.init(jax.random.key(2), I))
        xs = jnp.asarray(RNG.normal(size=(5, 2, I)))
        h0 = jnp.asarray(RNG.normal(size=(2, H)))
        f = jax.jit(lambda p, x, h: jaxrnn.scan(cell, p, x, h, lengths=jnp.array([5, 2]), reverse=True,
                                                path="parallel"))
        check_grads(f, (params, xs, h0), order=1, modes=["rev"], atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("name", sorted(CELLS))
def test_a_long_sequence_with_large_inputs_stays_finite(name):
    cell = CELLS[name]
    params = cell.init(jax.random.key(3), I)
    xs = 30.0 * jnp.asarray(RNG.normal(size=(4096, 2, I)), jnp.float32)  # saturating gates, 4096 steps
    loss = jax.jit(lambda p, x: jnp.mean(jaxrnn.scan(cell, p, x, path="parallel")[1] ** 2))
    value, grads = jax.value_and_grad(loss, argnums=(0, 1))(params, xs)
    assert np.isfinite(value) and all(np.isfinite(np.asarray(g)).all() for g in jax.tree_util.tree_leaves(grads))


def test_minimal_cells_compose_with_every_part():
    """stack, bidirectional, remat, batch-major input and the language model take them like any cell."""
    xs = jnp.asarray(RNG.normal(size=(T, B, I)), jnp.float32)
    deep = jaxrnn.stack([jaxrnn.mingru(H), jaxrnn.minlstm(H)], residual=True)
    bi = jaxrnn.bidirectional(jaxrnn.mingru(H), jaxrnn.minlstm(H))
    for part in (deep, bi):
        params = part.init(jax.random.key(4), I)
        stepped_part = (jaxrnn.stack([stepped(c) for c in deep.step.parts], residual=True) if part is deep
                        else jaxrnn.bidirectional(stepped(jaxrnn.mingru(H)), stepped(jaxrnn.minlstm(H))))
        n = jnp.array([T, 3, 0])
        assert_trees_close(jaxrnn.scan(part, params, xs, lengths=n, path="parallel"),
                           jaxrnn.scan(stepped_part, params, xs, lengths=n),
                           rtol=2e-5, atol=2e-5)
    cell = jaxrnn.mingru(H)
    params = cell.init(jax.random.key(5), I)
    grads = [jax.grad(lambda p: jnp.sum(jaxrnn.scan(cell, p, xs, remat=remat, path="parallel")[1] ** 2))(params)
             for remat in (False, True)]
    assert_trees_close(grads[0], grads[1], rtol=1e-5, atol=1e-6)
    assert_trees_close(jaxrnn.scan(cell, params, jnp.swapaxes(xs, 0, 1), time_major=False, path="parallel")[1],
                       jnp.swapaxes(jaxrnn.scan(cell, params, xs)[1], 0, 1))
    model = language.language_model(jaxrnn.minlstm(H), 11, 5)
    lm_params = model.init(jax.random.key(6), 11)
    tokens = language.generate(model, lm_params, jnp.array([1, 2, 3]), 4, key=jax.random.key(0), temperature=0.0)
    carry = model.initial_carry()
    for token in [1, 2, 3]:
        carry, logits = model.step(lm_params, carry, jnp.asarray(token))
    assert int(tokens[0]) == int(jnp.argmax(logits))


@pytest.mark.parametrize("backend", ["cpu", "gpu"])
def test_auto_steps_on_the_cpu_and_scans_in_parallel_elsewhere(backend, monkeypatch):
    # XLA:CPU runs the associative scan 1.5-3.8x slower than the step loop (benchmarks/README.md)
    from jaxrnn.loop import resolve_path
    monkeypatch.setattr(jax, "default_backend", lambda: backend)
    cell = CELLS["mingru"]
    assert resolve_path("auto", cell) == ("plain" if backend == "cpu" else "parallel")
    assert resolve_path("parallel", cell) == "parallel"
    assert resolve_path("fused", cell) == resolve_path("plain", cell) == "plain"
    lstm = jaxrnn.lstm(H)  # "parallel" asked of a sequential cell: auto's choice
    assert resolve_path("parallel", lstm) == ("plain" if backend == "cpu" else "fused")
    params = cell.init(jax.random.key(7), I)
    traced = str(jax.make_jaxpr(lambda x: jaxrnn.scan(cell, params, x))(jnp.zeros((T, B, I))))
    assert ("cumsum" in traced or "cumlogsumexp" in traced) == (backend != "cpu")
