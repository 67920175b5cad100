"""Parallel in time: the linear-recurrence scans against a Python loop, minGRU and minLSTM through the
associative scan against their own one-token step and, over long sequences, against a float64 oracle
written out from their equations, remat's chunks, and the parts that compose with them."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import jaxrnn
import oracle as O
from jaxrnn import language
from jaxrnn.linear_recurrence import gated_scan, linear_scan, log_linear_scan
from jaxrnn.loop import checkpointed_sequence
from support import MINIMAL_CELLS, B, H, I, assert_trees_close, relative_error

# Longer than the shared T, and odd: the associative scan's tree is a few levels deep, with an odd
# element left over at each.
TREE_T = 9
RNG = np.random.default_rng(0)
A = jnp.asarray(RNG.uniform(0.2, 0.95, (TREE_T, B, H)), jnp.float32)
BS = jnp.asarray(RNG.uniform(0.05, 1.0, (TREE_T, B, H)), jnp.float32)
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
@pytest.mark.parametrize("lengths", [None, [TREE_T, 4, 0]])
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
@pytest.mark.parametrize("lengths", [None, [TREE_T, 4, 0]])
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
    # equal where both are finite, to a few float32 epsilons (not |A_t| = 1386 of them, at the end)
    np.testing.assert_allclose(jnp.exp(log_hs), direct, rtol=2e-6)
    tiny = jnp.full((200, 1, 1), 1e-30)  # b itself underflows when multiplied out; its log does not
    _, log_tiny = log_linear_scan(jnp.log(a[:200]), jnp.log(tiny))
    assert np.isfinite(log_tiny).all() and float(log_tiny[-1, 0, 0]) == pytest.approx(np.log(2e-30), rel=1e-6)


def test_bad_input_to_the_scans():
    with pytest.raises(ValueError, match=r"one shape"):
        linear_scan(A, BS[:-1])
    with pytest.raises(ValueError, match=r"initial state of shape \(3, 6\)"):
        linear_scan(A, BS, H0[:1])
    with pytest.raises(TypeError, match="expected integer lengths"):
        linear_scan(A, BS, lengths=jnp.array([1.0, 2.0, 3.0]))
    with pytest.raises(ValueError, match=r"expected lengths of shape \(3,\)"):
        gated_scan(A, BS, lengths=jnp.array([1, 2]))
    with pytest.raises(ValueError, match=rf"expected lengths in \[0, {TREE_T}\]"):
        log_linear_scan(A, BS, lengths=[9, -1, 2])
    with pytest.raises(TypeError, match="reverse: expected True or False"):
        linear_scan(A, BS, reverse="no")
    with pytest.raises(ValueError, match="one shape"):
        linear_scan(A[:, 0, 0], BS[:, 0, 0])  # no feature axis
    with pytest.raises(TypeError, match="floating-point"):
        linear_scan(A.astype(jnp.int32), BS)


def stepped(cell):
    """The same cell, but run one token at a time by scan (its own ``step`` in a loop)."""
    return jaxrnn.Part(cell.init, cell.initial_carry, lambda p, c, x: cell.step(p, c, x))


@functools.partial(jax.jit, static_argnames=("cell", "reverse"))
def both_ways(cell, params, xs, carry, lengths, reverse):
    """Values and gradients of a loss, through the associative scan and through the step loop."""

    def loss(params, xs, carry, part):
        final, ys = jaxrnn.scan(part, params, xs, carry, lengths=lengths, reverse=reverse, path="parallel")
        weights = jnp.linspace(-1.0, 2.0, ys.size).reshape(ys.shape)
        return jnp.sum(weights * jnp.sin(ys)) + jnp.sum(jnp.cos(final)), (final, ys)

    grad = jax.value_and_grad(loss, argnums=(0, 1, 2), has_aux=True)
    return grad(params, xs, carry, cell), grad(params, xs, carry, stepped(cell))


@pytest.mark.parametrize("name", sorted(MINIMAL_CELLS))
@pytest.mark.parametrize("reverse, lengths", [(False, None), (True, [TREE_T, 4, 0]), (False, [1, TREE_T, 5])])
def test_parallel_equals_step_by_step_in_values_and_gradients(name, reverse, lengths):
    cell = MINIMAL_CELLS[name]
    params = cell.init(jax.random.key(1), I)
    xs = jnp.asarray(RNG.normal(size=(TREE_T, B, I)), jnp.float32)
    n = None if lengths is None else jnp.array(lengths)
    parallel, loop_ = both_ways(cell, params, xs, H0, n, reverse)
    assert_trees_close(parallel, loop_, rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("name", ["mingru", pytest.param("minlstm", marks=pytest.mark.slow)])  # minLSTM's: test_edges
def test_parallel_gradients_match_finite_differences(name):
    cell = MINIMAL_CELLS[name]
    with jax.enable_x64(True):
        params = jax.tree_util.tree_map(lambda a: a.astype(jnp.float64), cell.init(jax.random.key(2), I))
        xs = jnp.asarray(RNG.normal(size=(5, 2, I)))
        h0 = jnp.asarray(RNG.normal(size=(2, H)))
        f = jax.jit(lambda p, x, h: jaxrnn.scan(cell, p, x, h, lengths=jnp.array([5, 2]), reverse=True,
                                                path="parallel"))
        check_grads(f, (params, xs, h0), order=1, modes=["rev"], atol=1e-6, rtol=1e-6)


# --- long sequences against a float64 oracle -------------------------------------------------------------
# The shared tiny sizes: the point is the length. The parallel path's float32 error must stay at a few
# epsilons however long the sequence (a tree's O(log T)), as stepping's does, and not grow with T.
# The fast suite holds both cells to float64 oracles at 2048 steps (test_edges.py, test_minimal_reference.py);
# these show the error flat in T, a few thousand steps further.
LONG_CASES = [pytest.param("mingru", 8192, False, None, marks=pytest.mark.slow),
              pytest.param("minlstm", 8192, True, (8192, 5001, 0), marks=pytest.mark.slow),
              pytest.param("minlstm", 20000, False, (13001, 20000, 1), marks=pytest.mark.slow),
              pytest.param("mingru", 20000, True, None, marks=pytest.mark.slow)]


def weighted_loss(final, ys, weights):
    return jnp.sum(weights * jnp.sin(ys)) + jnp.sum(jnp.cos(final))


@functools.partial(jax.jit, static_argnames=("name", "reverse"))
def oracle_gradients(name, reverse, params, xs, h, lengths, weights):
    """The loss's gradients w.r.t. params, xs and the initial state by JAX's autodiff of the oracle's
    formulas (``oracle.run`` with ``jax.numpy``; run it in float64, under ``jax.enable_x64``)."""

    def loss(params, xs, h):
        return weighted_loss(*O.run(O.Cell(name, H), params, xs, h, lengths=lengths, reverse=reverse, xp=jnp),
                             weights)

    return jax.grad(loss, argnums=(0, 1, 2))(params, xs, h)


def numpy_oracle(name, params, xs, h, lengths, reverse):
    """``(final, ys)`` in float64, one step at a time (``oracle.run``)."""
    return O.run(O.Cell(name, H), params, xs, h, lengths=lengths, reverse=reverse)


@functools.partial(jax.jit, static_argnames=("cell", "reverse"))
def parallel_graded(cell, reverse, params, xs, h, lengths, weights):
    def loss(params, xs, h):
        final, ys = jaxrnn.scan(cell, params, xs, h, lengths=lengths, reverse=reverse, path="parallel")
        return weighted_loss(final, ys, weights), (final, ys)

    return jax.value_and_grad(loss, argnums=(0, 1, 2), has_aux=True)(params, xs, h)


@functools.lru_cache(maxsize=None)
def long_run(name, steps, reverse, lengths):
    """``((final, ys), grads)`` of the parallel path (float32) and of the oracles (float64), as numpy."""
    rng = np.random.default_rng(steps)
    params = MINIMAL_CELLS[name].init(jax.random.key(steps), I)
    xs = rng.normal(size=(steps, B, I)).astype(np.float32)
    h = rng.normal(size=(B, H)).astype(np.float32)
    weights = rng.uniform(-1.0, 1.0, (steps, B, H)).astype(np.float32)
    n = None if lengths is None else np.array(lengths, np.int32)
    as_numpy = lambda tree: jax.tree_util.tree_map(np.asarray, tree)  # noqa: E731
    (_, ours), grads = parallel_graded(MINIMAL_CELLS[name], reverse, params, xs, h, n, weights)
    with jax.enable_x64(True):
        as64 = lambda tree: jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), tree)  # noqa: E731
        exact_grads = as_numpy(oracle_gradients(name, reverse, as64(params), as64(xs), as64(h), n, as64(weights)))
    return (as_numpy(ours), as_numpy(grads)), (numpy_oracle(name, params, xs, h, n, reverse), exact_grads)


@pytest.mark.parametrize("name, steps, reverse, lengths", LONG_CASES)
def test_long_sequences_equal_the_float64_oracle_in_values_and_gradients(name, steps, reverse, lengths):
    ((final, ys), grads), ((exact_final, exact_ys), exact_grads) = long_run(name, steps, reverse, lengths)
    assert relative_error(ys, exact_ys) < 2e-5
    assert relative_error(final, exact_final) < 2e-5
    for (path, leaf), exact in zip(jax.tree_util.tree_leaves_with_path(grads),
                                   jax.tree_util.tree_leaves(exact_grads)):
        assert relative_error(leaf, exact) < 1e-4, jax.tree_util.keystr(path)


@pytest.mark.parametrize("name, steps, reverse, lengths", [LONG_CASES[0], LONG_CASES[3]])  # no lengths
def test_the_error_does_not_grow_with_the_length(name, steps, reverse, lengths):
    """The error over the whole sequence against that over the first 512 steps read, so that a cumulative
    sum of ``log a`` (whose error grows linearly in ``t``) cannot pass for a tree's ``O(log T)``."""
    ((_, ys), _), ((_, exact_ys), _) = long_run(name, steps, reverse, lengths)
    first = slice(steps - 512, steps) if reverse else slice(0, 512)
    assert relative_error(ys, exact_ys) < 4 * relative_error(ys[first], exact_ys[first])


@pytest.mark.parametrize("name, steps, reverse, lengths", LONG_CASES[:2])
def test_saturated_gates_over_long_sequences_stay_finite_and_exact(name, steps, reverse, lengths):
    """Inputs 30x larger: gates at 0 and 1 to float32's precision, products of ``a`` that underflow within a
    few steps; the values, the final state and every gradient stay finite, and the values exact."""
    rng = np.random.default_rng(3)
    params = MINIMAL_CELLS[name].init(jax.random.key(3), I)
    xs = 30.0 * rng.normal(size=(steps, B, I)).astype(np.float32)
    h = rng.normal(size=(B, H)).astype(np.float32)
    n = None if lengths is None else np.array(lengths, np.int32)
    (value, (final, ys)), grads = parallel_graded(MINIMAL_CELLS[name], reverse, params, xs, h, n,
                                                  np.ones((steps, B, H), np.float32))
    assert all(np.isfinite(np.asarray(leaf)).all() for leaf in jax.tree_util.tree_leaves((value, final, ys, grads)))
    exact_final, exact_ys = numpy_oracle(name, params, xs, h, n, reverse)
    assert relative_error(ys, exact_ys) < 2e-5 and relative_error(final, exact_final) < 2e-5


def test_a_chunk_at_a_time_is_the_whole_sequence():
    """``checkpointed_sequence`` (remat's chunks of ~sqrt(T) steps, each from the last one's carry) against
    the step loop, either way in time (and the gradients, read backwards), with lengths that end inside a
    chunk, before the first and at the end of a sequence padded to whole chunks (13 = 4 x 4 - 3)."""
    cell, steps = MINIMAL_CELLS["minlstm"], 13
    params = cell.init(jax.random.key(8), I)
    xs = jnp.asarray(RNG.normal(size=(steps, B, I)), jnp.float32)
    n = jnp.array([steps, 6, 0])

    def loss(params, xs, carry, chunked, reverse):
        if chunked:
            parallel = functools.partial(cell.sequence, path="parallel")
            final, ys = checkpointed_sequence(parallel, params, xs, carry, lengths=n, reverse=reverse)
        else:
            final, ys = jaxrnn.scan(stepped(cell), params, xs, carry, lengths=n, reverse=reverse)
        return jnp.sum(jnp.sin(ys)) + jnp.sum(jnp.cos(final)), (final, ys)

    @jax.jit
    def both(params, xs, carry):
        graded = jax.value_and_grad(loss, argnums=(0, 1, 2), has_aux=True)
        return ([loss(params, xs, carry, chunked, False)[1] for chunked in (True, False)],
                [graded(params, xs, carry, chunked, True) for chunked in (True, False)])

    for chunked, stepping in both(params, xs, H0):
        assert_trees_close(chunked, stepping, rtol=2e-5, atol=2e-5)


@pytest.mark.slow  # op by op (eager); the composites are held to the oracle in the fast suite (test_edges.py)
def test_minimal_cells_compose_with_every_part():
    """stack, bidirectional, remat, batch-major input and the language model take them like any cell."""
    xs = jnp.asarray(RNG.normal(size=(TREE_T, B, I)), jnp.float32)
    deep = jaxrnn.stack([jaxrnn.mingru(H), jaxrnn.minlstm(H)], residual=True)
    bi = jaxrnn.bidirectional(jaxrnn.mingru(H), jaxrnn.minlstm(H))
    for part in (deep, bi):
        params = part.init(jax.random.key(4), I)
        stepped_part = (jaxrnn.stack([stepped(c) for c in deep.info.parts], residual=True) if part is deep
                        else jaxrnn.bidirectional(stepped(jaxrnn.mingru(H)), stepped(jaxrnn.minlstm(H))))
        n = jnp.array([TREE_T, 3, 0])
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
    # On XLA:CPU the step loop beats the associative scan (benchmarks/README.md), so "auto" steps there.
    from jaxrnn.loop import resolve_path
    monkeypatch.setattr(jax, "default_backend", lambda: backend)
    cell = MINIMAL_CELLS["mingru"]
    assert resolve_path("auto", cell) == ("plain" if backend == "cpu" else "parallel")
    assert resolve_path("parallel", cell) == "parallel"
    assert resolve_path("fused", cell) == resolve_path("plain", cell) == "plain"
    lstm = jaxrnn.lstm(H)  # "parallel" asked of a sequential cell: auto's choice
    cpu_choice = "onednn" if "onednn" in lstm.info.paths else "plain"
    assert resolve_path("parallel", lstm) == (cpu_choice if backend == "cpu" else "fused")
    params = cell.init(jax.random.key(7), I)
    traced = str(jax.make_jaxpr(lambda x: jaxrnn.scan(cell, params, x))(jnp.zeros((TREE_T, B, I))))
    assert (" scan[" in traced) == (backend == "cpu")  # the step loop, or every step at once
