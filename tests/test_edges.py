"""Hunting silent wrong answers: every path, long sequences, poisoned padding, transformations, nesting,
bad and extreme inputs -- all against an independent float64 oracle (``tests/oracle.py``), never
against another path of the library.

Tolerances: values within ``2e-5 * max|y|``, gradients within ``1e-4 * max|g|`` (per leaf; a leaf
whose reference is tiny next to the rest of the gradient is held to ``1e-3`` of the largest leaf's
scale instead, as float32 cannot resolve it better).

Compile time dominates here, so every compiled function is cached at module level and reused by all
the tests that can share it (the poison tests run the same program as the oracle tests, on other
data). ``-m slow`` runs the same tests on every cell, path and direction.
"""

from __future__ import annotations

import contextlib
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jax.experimental import checkify

import jaxrnn
import oracle as O
from jaxrnn.loop import resolve_path
from support import H, I, random_carry

PATHS = tuple(path for path in jaxrnn.loop.PATHS if path != "auto")  # a path registered there is tested here
STEP_KINDS = ("rnn_tanh", "rnn_relu", "lstm", "gru", "gru_ra", "mingru", "minlstm")
VALUE_RTOL, GRAD_RTOL = 2e-5, 1e-4
POISONS = (np.nan, np.inf, -np.inf, 1e30)
BAD_IDS = (10**6, -1, 2**31 - 1, -(2**31))


# --- helpers -------------------------------------------------------------------------------------------


def leaves(tree):
    return jax.tree_util.tree_leaves(tree)


def assert_close(actual, expected, rtol, what, floor=1e-3):
    """Leaf by leaf: same shape, finite, ``max|a - e| <= rtol * scale``; ``scale`` is the leaf's own
    ``max|e|``, or ``floor`` times the largest leaf's when that is larger."""
    actual, expected = leaves(actual), leaves(expected)
    assert len(actual) == len(expected), f"{what}: {len(actual)} leaves, expected {len(expected)}"
    top = max([float(np.max(np.abs(np.asarray(e, np.float64)))) for e in expected if np.size(e)] + [0.0])
    for n, (a, e) in enumerate(zip(actual, expected)):
        a, e = np.asarray(a, np.float64), np.asarray(e, np.float64)
        assert a.shape == e.shape, f"{what}, leaf {n}: shape {a.shape}, expected {e.shape}"
        if not a.size:
            continue
        assert np.all(np.isfinite(a)), f"{what}, leaf {n}: {np.sum(~np.isfinite(a))} non-finite entries"
        scale = max(float(np.max(np.abs(e))), floor * top, 1e-30)
        err = float(np.max(np.abs(a - e)))
        assert err <= rtol * scale, (f"{what}, leaf {n} {a.shape}: "
                                     f"max error {err:.3g} = {err / scale:.3g} x scale {scale:.3g}")


def init_params(spec, input_size, seed):
    """Random params of ``spec``'s part, in the structure its ``init`` makes (found without running it).

    Every bias is drawn (``init`` zeroes most, which would hide a dropped or misplaced bias; the LSTM's
    forget bias is as initialised, 1, plus noise); input kernels N(0, 1/I), recurrent kernels
    N(0, 0.8^2/H) (long sequences stay bounded, the ReLU cell's too), tables N(0, 1).
    """
    template = jax.eval_shape(lambda key: O.build(spec).init(key, input_size), jax.random.key(0))
    rng = np.random.default_rng(seed)

    def draw(path, leaf):
        name, shape = jax.tree_util.keystr(path), leaf.shape
        if "bias" in name:
            value = rng.normal(0.0, 0.3, shape)
            if "['bias']" in name and shape[0] % 4 == 0 and is_lstm_bias(spec, path):
                value += np.repeat(np.array([0.0, 1.0, 0.0, 0.0]), shape[0] // 4)
        elif "recurrent" in name or "candidate" in name:
            value = rng.normal(0.0, 0.8 / np.sqrt(shape[0]), shape)
        elif "table" in name:
            value = rng.normal(0.0, 1.0, shape)
        else:
            value = rng.normal(0.0, 1.0 / np.sqrt(shape[0]), shape)
        return jnp.asarray(value, jnp.float32)

    return jax.tree_util.tree_map_with_path(draw, template)


def is_lstm_bias(spec, path):
    """Whether the params entry at ``path`` belongs to an LSTM of ``spec``."""
    for key in path[:-1]:
        if isinstance(spec, O.Stack):
            spec = spec.parts[key.idx]
        elif isinstance(spec, O.Bi):
            spec = spec.forward if key.key == "forward" else spec.backward
        elif getattr(key, "key", None) == "cell":  # many_to_one's {"cell", "readout"}
            continue
    return isinstance(spec, O.Cell) and spec.kind == "lstm"


def inputs(spec, time, batch_shape, seed, vocab=7):
    rng = np.random.default_rng(seed)
    if O.reads_ids(spec):
        return jnp.asarray(rng.integers(0, vocab, (time, *batch_shape)), jnp.int32)
    return jnp.asarray(rng.normal(0.0, 1.0, (time, *batch_shape, I)), jnp.float32)


def weights(like, seed):
    """Fixed random weights for a scalar loss that weighs every entry differently."""
    rng = np.random.default_rng(seed)
    return jax.tree_util.tree_map(lambda a: jnp.asarray(rng.normal(0.0, 1.0, np.shape(a)), jnp.float32), like)


def loss_of(final, ys, w_ys, w_carry, xp=jnp):
    total = xp.sum(w_ys * xp.sin(ys))
    for leaf, w in zip(leaves(final), leaves(w_carry)):
        total = total + xp.sum(w * xp.cos(leaf))
    return total


def poisoned(xs, lengths, value):
    """``xs`` with every padding step (``t >= lengths[b]``) set to ``value``."""
    xs = np.array(xs)
    pad = np.arange(xs.shape[0]).reshape((-1,) + (1,) * np.ndim(lengths)) >= np.asarray(lengths)
    pad = pad.reshape(pad.shape + (1,) * (xs.ndim - pad.ndim))
    return jnp.asarray(np.where(pad, np.asarray(value, xs.dtype), xs))


def padding_mask(time, lengths, like):
    pad = np.arange(time).reshape((-1,) + (1,) * np.ndim(lengths)) >= np.asarray(lengths)
    return np.broadcast_to(pad.reshape(pad.shape + (1,) * (np.ndim(like) - pad.ndim)), np.shape(like))


# --- compiled programs, one per (spec, paths, reverse), shared by every test that runs them -------------


@functools.cache
def graded(spec, paths, reverse, remat=False):
    """jit of ``{path: ((loss, (final, ys)), grads w.r.t. (params, xs, carry))}``, xs grads only for floats."""
    part = O.build(spec)
    argnums = (0, 2) if O.reads_ids(spec) else (0, 1, 2)

    def loss(params, xs, carry, lengths, w_ys, w_carry, path):
        final, ys = jaxrnn.scan(part, params, xs, carry, lengths=lengths, reverse=reverse, path=path, remat=remat)
        return loss_of(final, ys, w_ys, w_carry), (final, ys)

    def run(params, xs, carry, lengths, w_ys, w_carry):
        grad = jax.value_and_grad(loss, argnums=argnums, has_aux=True)
        return {path: grad(params, xs, carry, lengths, w_ys, w_carry, path) for path in paths}

    return jax.jit(run)


@functools.cache
def oracle_graded(spec, reverse):
    """The oracle's ``(loss, (final, ys)), grads`` in float64 through JAX's autodiff of the oracle's own
    formulas (run under ``jax.enable_x64``)."""
    argnums = (0, 2) if O.reads_ids(spec) else (0, 1, 2)

    def loss(params, xs, carry, lengths, w_ys, w_carry):
        final, ys = O.run(spec, params, xs, carry, lengths=lengths, reverse=reverse, xp=jnp)
        return loss_of(final, ys, w_ys, w_carry), (final, ys)

    return jax.jit(jax.value_and_grad(loss, argnums=argnums, has_aux=True))


def to64(tree):
    return jax.tree_util.tree_map(lambda a: jnp.asarray(np.asarray(a, np.float64)) if
                                  np.issubdtype(np.asarray(a).dtype, np.floating) else jnp.asarray(a), tree)


def oracle_gradients(spec, reverse, params, xs, carry, lengths, w_ys, w_carry):
    with jax.enable_x64(True):
        out = oracle_graded(spec, reverse)(to64(params), to64(xs), to64(carry), jnp.asarray(lengths),
                                           to64(w_ys), to64(w_carry))
        return jax.tree_util.tree_map(np.asarray, out)


class Case:
    """One spec, its params, inputs, carry, lengths and loss weights; the numpy oracle's answer on demand."""

    def __init__(self, spec, time, batch_shape, lengths, reverse, seed=0):
        self.spec, self.reverse = spec, reverse
        self.params = init_params(spec, 7 if O.reads_ids(spec) else I, seed)
        self.xs = inputs(spec, time, batch_shape, seed + 1)
        self.carry = random_carry(O.build(spec), batch_shape, seed + 2)
        self.lengths = jnp.asarray(lengths, jnp.int32)
        out = O.out_features(spec, 7 if O.reads_ids(spec) else I)
        self.w_ys = weights(np.zeros((time, *batch_shape, out)), seed + 3)
        self.w_carry = weights(self.carry, seed + 4)

    @functools.cached_property
    def expected(self):
        return O.run(self.spec, self.params, self.xs, self.carry, lengths=self.lengths, reverse=self.reverse)

    def library(self, paths, xs=None, remat=False):
        return graded(self.spec, tuple(paths), self.reverse, remat)(
            self.params, self.xs if xs is None else xs, self.carry, self.lengths, self.w_ys, self.w_carry)

    def oracle_loss(self, params, xs, carry):
        final, ys = O.run(self.spec, params, xs, carry, lengths=self.lengths, reverse=self.reverse)
        return float(loss_of(final, ys, np.asarray(self.w_ys, np.float64),
                             [np.asarray(w, np.float64) for w in leaves(self.w_carry)], xp=np))

    def float_args(self):
        return (self.params, self.carry) if O.reads_ids(self.spec) else (self.params, self.xs, self.carry)

    @functools.cached_property
    def directional(self):
        """``[(leaf, v, oracle's d loss along v)]``: two random unit directions per float leaf of
        (params, xs, carry), by central differences of the float64 oracle (computed once per case)."""
        arg_leaves, treedef = jax.tree_util.tree_flatten(self.float_args())
        base = [np.asarray(a, np.float64) for a in arg_leaves]
        rng = np.random.default_rng(0)

        def f(values):
            tree = jax.tree_util.tree_unflatten(treedef, values)
            if O.reads_ids(self.spec):
                return self.oracle_loss(tree[0], self.xs, tree[1])
            return self.oracle_loss(*tree)

        out, h = [], 1e-5
        for n, a in enumerate(base):
            for _ in range(2 if a.size else 0):
                v = rng.normal(size=a.shape)
                v /= np.linalg.norm(v)
                plus = [b + h * v if k == n else b for k, b in enumerate(base)]
                minus = [b - h * v if k == n else b for k, b in enumerate(base)]
                out.append((n, v, (f(plus) - f(minus)) / (2 * h)))
        return out

    def directional_check(self, grads, what):
        """Each float leaf of (params, xs, carry): ``<grad, v>`` against the oracle's derivative along ``v``,
        within ``1e-4 |grad_leaf|`` (``|grad_leaf|`` at least ``1e-3`` of the largest leaf's norm)."""
        grad_leaves = [np.asarray(g, np.float64) for g in leaves(grads)]
        assert len(grad_leaves) == len(leaves(self.float_args())), \
            f"{what}: gradient tree has {len(grad_leaves)} leaves"
        norms = [float(np.linalg.norm(g)) for g in grad_leaves]
        for n, v, fd in self.directional:
            g = grad_leaves[n]
            assert np.all(np.isfinite(g)), f"{what}: gradient leaf {n} has non-finite entries"
            scale = max(norms[n], 1e-3 * max(norms))
            err = abs(float(np.sum(g * v)) - fd)
            assert err <= GRAD_RTOL * scale, (f"{what}: gradient leaf {n} {g.shape}: <g, v> = {np.sum(g * v):.6g}, "
                                              f"oracle {fd:.6g}, error {err / scale:.3g} x |g|")


# --- the oracle itself ---------------------------------------------------------------------------------


def test_oracle_reads_the_params_the_library_makes():
    """The oracle reads the params the library's ``init`` makes, and the LSTM's forget bias starts at 1."""
    for kind in O.CELL_KINDS:
        spec = O.Cell(kind, H)
        _, ys = O.run(spec, init_params(spec, I, 0), np.zeros((2, I)))
        assert ys.shape == (2, H)
    def zeros(key, shape, dtype):
        return jnp.zeros(shape, dtype)  # no QR to compile
    lstm = jaxrnn.lstm(H, kernel_init=zeros, recurrent_init=zeros)
    bias = np.asarray(jax.jit(lambda key: lstm.init(key, I))(jax.random.key(0))["bias"]).reshape(4, H)
    np.testing.assert_array_equal(bias, np.stack([np.zeros(H), np.ones(H), np.zeros(H), np.zeros(H)]))


# --- 1-2: every path against the oracle over long sequences, values and gradients -----------------------

LONG_T = 2048
LONG_LENGTHS = [LONG_T, LONG_T - 517, 0]
# fast: one cell of each path that is not the plain loop (and the gru plain at this length too), some
# reading backwards; oneDNN's path for the cells it takes with lengths, and the LSTM's fallback from it
# ("plain": it takes no lengths); -m slow: every cell (the IRNN too) on every path, both directions.
FAST_LONG = [("lstm", ("fused",), True), ("gru", ("plain", "projected", "onednn"), False),
             ("gru_ra", ("fused", "onednn"), False), ("minlstm", ("parallel",), True), ("rnn_tanh", ("onednn",), True),
             ("lstm", ("onednn",), False)]
SLOW_LONG = [(kind, PATHS, reverse) for kind in O.CELL_KINDS for reverse in (False, True)]


@functools.cache
def long_case(kind, reverse):
    return Case(O.Cell(kind, H), LONG_T, (3,), LONG_LENGTHS, reverse, seed=11)


@functools.cache
def long_oracle(group, scale=1.0):
    """The float64 JAX oracle's ``((loss, (final, ys)), grads)`` for every ``(kind, reverse)`` of
    ``group`` on inputs ``scale * xs``, one program for all (one compile, whatever the scale)."""
    cases = {key: long_case(*key) for key in group}
    with jax.enable_x64(True):
        args = {key: (to64(c.params), to64(scale * c.xs), to64(c.carry), jnp.asarray(c.lengths), to64(c.w_ys),
                      to64(c.w_carry)) for key, c in cases.items()}
        return jax.tree_util.tree_map(np.asarray, long_oracle_program(group)(args))


@functools.cache
def long_oracle_program(group):
    cases = {key: long_case(*key) for key in group}

    def run_all(args):
        out = {}
        for key, case in cases.items():
            def loss(params, xs, carry, case=case, lengths=args[key][3], w_ys=args[key][4], w_carry=args[key][5]):
                final, ys = O.run(case.spec, params, xs, carry, lengths=lengths, reverse=case.reverse, xp=jnp)
                return loss_of(final, ys, w_ys, w_carry), (final, ys)

            out[key] = jax.value_and_grad(loss, argnums=(0, 1, 2), has_aux=True)(*args[key][:3])
        return out

    return jax.jit(run_all)


def check_long(kind, paths, reverse, group):
    case = long_case(kind, reverse)
    for scale in (1.0, 10.0):  # inputs 10 times larger: saturated gates, the same programs
        got = case.library(paths, xs=scale * case.xs)
        (_, expected), grads = long_oracle(group, scale)[(kind, reverse)]
        for path in paths:
            (_, (final, ys)), g = got[path]
            what = (f"{kind} path={path} (takes {resolve_path(path, O.build(case.spec))}) reverse={reverse} "
                    f"T={LONG_T} inputs x{scale:g}")
            assert_close(ys, expected[1], VALUE_RTOL, what + ": ys")
            assert_close(final, expected[0], VALUE_RTOL, what + ": final carry")
            for f, c in zip(leaves(final), leaves(case.carry)):  # the length-0 sequence keeps its carry, exactly
                np.testing.assert_array_equal(np.asarray(f)[2], np.asarray(c)[2], err_msg=what + ": length 0")
            assert_close(g, grads, GRAD_RTOL, what + ": gradients (params, xs, carry)")


FAST_GROUP = tuple((kind, reverse) for kind, _, reverse in FAST_LONG)
def LONG_IDS(v):
    return "+".join(v) if isinstance(v, tuple) else ("reverse" if v is True else "forward" if v is False else v)


@pytest.mark.parametrize("kind, paths, reverse", FAST_LONG, ids=LONG_IDS)
def test_long_sequence_values_and_gradients(kind, paths, reverse):
    """T = 2048, lengths (T, T-517, 0), a random initial carry: the values and the gradients w.r.t.
    params, xs and the initial carry, against the float64 oracle."""
    check_long(kind, paths, reverse, FAST_GROUP)


@pytest.mark.slow
@pytest.mark.parametrize("kind, paths, reverse", SLOW_LONG, ids=LONG_IDS)
def test_long_sequence_values_and_gradients_every_path(kind, paths, reverse):
    check_long(kind, paths, reverse, ((kind, reverse),))


def check_two_oracles(keys):
    cases = {(kind, reverse): Case(O.Cell(kind, H), 9, (3,), [9, 4, 0], reverse, seed=3) for kind, reverse in keys}

    def run_all(args):
        return {key: O.run(case.spec, *args[key][:3], lengths=args[key][3], reverse=case.reverse, xp=jnp)
                for key, case in cases.items()}

    with jax.enable_x64(True):
        args = {key: (to64(c.params), to64(c.xs), to64(c.carry), jnp.asarray(c.lengths)) for key, c in cases.items()}
        got = jax.jit(run_all)(args)
        for key, case in cases.items():
            assert_close(got[key], case.expected, 1e-12, f"{key}")


@pytest.mark.slow
@pytest.mark.parametrize("kind", O.CELL_KINDS)
def test_long_prime_length_with_remat_every_path(kind):
    """remat=True over T = 2039 (no divisor near sqrt(T): the chunked loop pads), read backwards, lengths
    (T, 1000, 0): values and gradients against the oracle on every path."""
    time = 2039
    case = Case(O.Cell(kind, H), time, (3,), [time, 1000, 0], True, seed=12)
    (_, expected), grads = oracle_gradients(case.spec, True, case.params, case.xs, case.carry, case.lengths,
                                            case.w_ys, case.w_carry)
    got = case.library(PATHS, remat=True)
    for path in PATHS:
        (_, aux), g = got[path]
        assert_close(aux, expected, VALUE_RTOL, f"{kind} path={path} remat: values")
        assert_close(g, grads, GRAD_RTOL, f"{kind} path={path} remat: gradients")


def test_the_two_oracles_agree():
    """The numpy loop and the JAX scan of the oracle's formulas give the same values (float64), so the
    JAX one can stand for both at T = 2048 (the cells of the fast long test; -m slow: all)."""
    check_two_oracles(FAST_GROUP)


@pytest.mark.slow
def test_the_two_oracles_agree_every_cell():
    check_two_oracles([(kind, reverse) for kind in O.CELL_KINDS for reverse in (False, True)])


# --- 3: poisoned padding -------------------------------------------------------------------------------


def check_poison(case, paths, what, run=None):
    """NaN, +-Inf, 1e30 (for ids: ids far out of range, both signs) in the padding change neither the
    values nor the gradients, which stay finite, and d loss / d xs is exactly 0 at every padding step."""
    run = run or case.library
    clean = run(paths)
    ids = O.reads_ids(case.spec)
    for value in (BAD_IDS if ids else POISONS):
        got = run(paths, xs=poisoned(case.xs, case.lengths, value))
        for path in paths:
            (_, aux), g = got[path]
            (_, aux0), g0 = clean[path]
            label = f"{what} path={path} padding={value}"
            assert_close(aux, aux0, 1e-6, label + ": values", floor=0.0)
            assert_close(g, g0, 1e-6, label + ": gradients", floor=0.0)
            if not ids:
                d_xs = np.asarray(g[1])
                pad = padding_mask(case.xs.shape[0], case.lengths, d_xs)
                assert np.all(d_xs[pad] == 0.0), \
                    f"{label}: d loss/d xs non-zero at padding: {d_xs[pad][d_xs[pad] != 0][:5]}"


@pytest.mark.parametrize("kind, paths, reverse", FAST_LONG, ids=LONG_IDS)
def test_poisoned_padding_long_cell(kind, paths, reverse):
    """The single cells of the long test (517 and 2048 padding steps), on the same program."""
    check_poison(long_case(kind, reverse), paths, f"{kind} reverse={reverse}")


SMALL_T = 6
SMALL_LENGTHS = [SMALL_T, 2, 0]
COMPOSITES = {
    "stack2": O.Stack((O.Cell("lstm", H), O.Cell("mingru", H)), residual=True),
    "bi": O.Bi(O.Cell("gru_ra", H), O.Cell("minlstm", H), "sum"),
    "stack_bi": O.Stack((O.Bi(O.Cell("lstm", H), O.Cell("mingru", H)),
                         O.Bi(O.Cell("gru", H), O.Cell("rnn_tanh", H), "sum"))),
    "emb_stack_bi": O.Stack((O.Embedding(3), O.Bi(O.Cell("rnn_relu", H), O.Cell("minlstm", H)))),
}
# The composites mix cells: "fused" runs the lstm, the rnns and gru_ra fused, the gru projected and the
# minimal cells plain; "parallel" the minimal cells in parallel and the rest plain. Fast: one path each
# (compiling is what costs); -m slow: every path, both directions. The bare bidirectional layer and the
# embedding-first stack run in the fast suite inside many_to_one below.
FAST_COMPOSITE = [("stack2", False, ("fused",)), ("stack_bi", True, ("fused",))]
@functools.cache
def small_case(name, reverse):
    return Case(COMPOSITES[name], SMALL_T, (3,), SMALL_LENGTHS, reverse, seed=5)


def check_small(name, paths, reverse):
    case = small_case(name, reverse)
    assert case.spec == COMPOSITES[name]
    got = case.library(paths)
    for path in paths:
        (_, (final, ys)), g = got[path]
        what = f"{name} path={path} reverse={reverse}"
        assert_close(ys, case.expected[1], VALUE_RTOL, what + ": ys")
        assert_close(final, case.expected[0], VALUE_RTOL, what + ": final carry")
        for f, c in zip(leaves(final), leaves(case.carry)):
            np.testing.assert_array_equal(np.asarray(f)[2], np.asarray(c)[2],
                                          err_msg=what + ": length 0 keeps the carry")
        case.directional_check(g, what)
    check_poison(case, paths, f"{name} reverse={reverse}")


@pytest.mark.parametrize("name, reverse, paths", FAST_COMPOSITE, ids=LONG_IDS)
def test_composites_against_oracle_and_poison(name, reverse, paths):
    """A stack of two cells (residual), a bidirectional layer, a stack of bidirectional layers and an
    embedding-first stack, lengths (6, 2, 0) and a random initial carry: values, gradients (random
    directions, central differences of the float64 oracle) and poisoned padding."""
    check_small(name, paths, reverse)


@pytest.mark.slow
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("name", list(COMPOSITES))
def test_composites_against_oracle_and_poison_every_path(name, reverse):
    check_small(name, PATHS, reverse)


@pytest.mark.slow
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("kind", O.CELL_KINDS)
def test_single_cells_small_every_path(kind, reverse):
    """Every cell on every path at T = 6: values, gradients and poisoned padding (fallback paths too)."""
    COMPOSITES.setdefault(kind, O.Cell(kind, H))
    check_small(kind, PATHS, reverse)


# --- many_to_one (3 and 8) -----------------------------------------------------------------------------


class _GpuBackend:
    """``jax`` as ``jaxrnn.loop`` sees it, but on a GPU: ``"auto"`` then picks each cell's fastest path."""

    def __getattr__(self, name):
        return getattr(jax, name)

    @staticmethod
    def default_backend():
        return "gpu"


AUTOS = ("cpu", "gpu")  # many_to_one takes no path: its "auto" as on this CPU, and as it resolves on a GPU


@contextlib.contextmanager
def gpu_auto():
    """Within: ``jaxrnn.loop`` believes it runs on a GPU, so ``path="auto"`` takes each cell's fastest path
    (and unrolls 8 steps) -- what a GPU user gets, traced on this CPU."""
    import jaxrnn.loop

    saved = jaxrnn.loop.jax
    jaxrnn.loop.jax = _GpuBackend()
    try:
        assert resolve_path("auto", jaxrnn.lstm(H)) == "fused", "cannot simulate a GPU's auto path"
        yield
    finally:
        jaxrnn.loop.jax = saved


@functools.cache
def m2o_graded(spec, autos):
    """``{auto: ((loss, answer), grads w.r.t. (params[, xs]))}`` of ``many_to_one(spec, 2)``, one jit per
    auto; the "gpu" one traced (and always called) inside :func:`gpu_auto`."""
    model = jaxrnn.models.many_to_one(O.build(spec), 2)
    argnums = (0,) if O.reads_ids(spec) else (0, 1)

    def compiled():  # a new function each time: a jit cache of its own
        def loss(params, xs, lengths, w):
            answer = model.apply(params, xs, lengths=lengths)
            return jnp.sum(w * answer), answer

        return jax.jit(jax.value_and_grad(loss, argnums=argnums, has_aux=True))

    functions = {auto: compiled() for auto in autos}

    def run(params, xs, lengths, w):
        out = {}
        for auto, fn in functions.items():
            with (gpu_auto() if auto == "gpu" else contextlib.nullcontext()):
                out[auto] = fn(params, xs, lengths, w)
        return out

    return run


M2O = {
    "bi_concat": O.Bi(O.Cell("lstm", H), O.Cell("mingru", H), "concat"),
    "bi_sum": O.Bi(O.Cell("gru_ra", H), O.Cell("rnn_tanh", H), "sum"),
    "stack_top_bi": O.Stack((O.Cell("gru", H), O.Bi(O.Cell("minlstm", H), O.Cell("lstm", H)))),
    "emb_stack_bi": O.Stack((O.Embedding(3), O.Bi(O.Cell("gru_ra", H), O.Cell("minlstm", H)))),
    "cell": O.Cell("lstm", H),
    "bi_linear": O.Stack((O.Bi(O.Cell("gru", H), O.Cell("lstm", H)), O.Linear(3))),
    "nested_bi": O.Bi(O.Stack((O.Cell("lstm", H), O.Cell("gru", H))),
                      O.Bi(O.Cell("gru_ra", H), O.Cell("mingru", H), "sum")),
    "residual_top_cell": O.Stack((O.Bi(O.Cell("lstm", H), O.Cell("gru", H), "sum"), O.Cell("rnn_tanh", H), O.Linear(H)),
                                 residual=True),
}
FAST_M2O = {"bi_concat": ("gpu",), "emb_stack_bi": ("cpu",)}  # the second: a stack whose top is bidirectional


class M2OCase(Case):
    def __init__(self, spec, seed=7):
        super().__init__(spec, SMALL_T, (3,), SMALL_LENGTHS, False, seed)
        self.params = {"cell": self.params, "readout": {
            "kernel": jnp.asarray(np.random.default_rng(seed).normal(0.0, 0.5, (O.out_features(spec, I), 2)),
                                  jnp.float32),
            "bias": jnp.asarray([0.3, -0.2], jnp.float32)}}
        self.w = weights(np.zeros((3, 2)), seed + 5)

    @functools.cached_property
    def expected(self):
        return O.many_to_one(self.spec, self.params, self.xs, lengths=self.lengths)

    def library(self, autos, xs=None):
        return m2o_graded(self.spec, tuple(autos))(self.params, self.xs if xs is None else xs, self.lengths, self.w)


def check_m2o(name, autos):
    case = M2OCase(M2O[name])
    got = case.library(autos)
    for auto in autos:
        (_, answer), _ = got[auto]
        what = f"many_to_one({name}) auto as on {auto}"
        assert_close(answer, case.expected, VALUE_RTOL, what)
        if not (isinstance(case.spec, O.Stack) and isinstance(case.spec.parts[-1], O.Linear)):  # no readout of 0 below
            np.testing.assert_allclose(np.asarray(answer)[2], [0.3, -0.2], rtol=1e-6, err_msg=what + ": length 0")
    check_poison(case, autos, f"many_to_one({name})")


@pytest.mark.parametrize("name", list(FAST_M2O))
def test_many_to_one_against_oracle_and_poison(name):
    """many_to_one reads each sequence's answer at its own end: a unidirectional core's output at the
    last valid step; a bidirectional top layer's forward output there and its backward output at t = 0
    (PyTorch's h_n of both directions), merged as the layer merges; a length-0 sequence answers the
    readout's bias. Lengths (6, 2, 0). Values against the oracle, then poisoned padding (values and
    gradients; ids far out of range in the padding of an embedding-first core)."""
    check_m2o(name, FAST_M2O[name])


@pytest.mark.slow
@pytest.mark.parametrize("name", list(M2O))
def test_many_to_one_against_oracle_and_poison_every_auto(name):
    check_m2o(name, AUTOS)


def test_many_to_one_residual_stack_with_bidirectional_top_is_an_error():
    """A residual stack whose top recurrent layer is bidirectional has no defined many-to-one answer (its
    directions end at different steps): an error, not a guess."""
    spec = O.Stack((O.Cell("gru", H), O.Bi(O.Cell("lstm", H), O.Cell("gru", H), "sum")), residual=True)
    case = M2OCase(spec)
    model = jaxrnn.models.many_to_one(O.build(spec), 2)
    with pytest.raises(ValueError, match="residual"):
        jax.eval_shape(lambda p, x: model.apply(p, x, lengths=case.lengths), case.params, case.xs)


# --- 4: transformations on every path ------------------------------------------------------------------

TRANSFORM_T, TRANSFORM_LENGTH = 4, 3  # one unbatched sequence of 4 steps, its last one padding
# fast: the three paths with derivatives of their own (the fused recurrence, the associative scan, oneDNN's
# custom VJP and vmap rules); -m slow: every cell on every path.
FAST_TRANSFORMS = [("lstm", "fused"), ("minlstm", "parallel"), ("gru_ra", "onednn")]
SLOW_TRANSFORMS = [(kind, path) for kind in STEP_KINDS for path in PATHS]


@functools.cache
def transform_case(kind):
    return Case(O.Cell(kind, H), TRANSFORM_T, (), TRANSFORM_LENGTH, True, seed=21)


def transform_functions(case, path, **options):
    part = O.build(case.spec)

    def run(params, xs, carry):
        return jaxrnn.scan(part, params, xs, carry, lengths=case.lengths, reverse=True, path=path, **options)

    def loss(params, xs, carry):
        return loss_of(*run(params, xs, carry), case.w_ys, case.w_carry)

    return run, loss


@functools.cache
def forward_mode(kind, path):
    """jit of (jvp of ``scan``, hessian of the loss w.r.t. xs: jacfwd of jacrev)."""
    case = transform_case(kind)
    run, loss = transform_functions(case, path)

    def transforms(params, xs, carry, tangents):
        primal, tangent = jax.jvp(run, (params, xs, carry), tangents)
        hess = jax.jacfwd(jax.jacrev(lambda x: loss(params, x, carry)))(xs)  # jax.hessian, spelt out
        return primal, tangent, hess

    return jax.jit(transforms)


@functools.cache
def reverse_mode(kind, path, checkpoint):
    """jit of jacrev of the loss (its gradient w.r.t. params, xs and carry), its grad with remat=True
    (and under jax.checkpoint), vmap over a batch of sequences, batch-major input with unroll=3."""
    case = transform_case(kind)
    part = O.build(case.spec)
    _, loss = transform_functions(case, path)
    _, loss_remat = transform_functions(case, path, remat=True)

    def transforms(params, xs, carry, batch, lengths):
        grads = jax.jacrev(loss, argnums=(0, 1, 2))(params, xs, carry)
        remat = jax.grad(loss_remat, argnums=(0, 1, 2))(params, xs, carry)
        checkpointed = jax.grad(jax.checkpoint(loss), argnums=(0, 1, 2))(params, xs, carry) if checkpoint else remat
        mapped = jax.vmap(lambda x, n: jaxrnn.scan(part, params, x, lengths=n, path=path))(batch, lengths)
        batch_major = jaxrnn.scan(part, params, batch, lengths=lengths, path=path, time_major=False, unroll=3)
        return grads, remat, checkpointed, mapped, batch_major

    return jax.jit(transforms)


@functools.cache
def both_modes(kind, path, checkpoint):
    forward, backward = forward_mode(kind, path).__wrapped__, reverse_mode(kind, path, checkpoint).__wrapped__
    return jax.jit(lambda params, xs, carry, tangents, batch, lengths: (
        forward(params, xs, carry, tangents), backward(params, xs, carry, batch, lengths)))


def oracle_outputs(case, params, xs, carry):
    final, ys = O.run(case.spec, params, xs, carry, lengths=case.lengths, reverse=True)
    return np.concatenate([np.ravel(leaf) for leaf in leaves(final)] + [np.ravel(ys)])


def fd_hessian_xs(case):
    """d^2 loss / d xs^2 of the oracle by second differences."""
    xs = np.asarray(case.xs, np.float64)
    n = xs.size
    h = 1e-4
    def f(x):
        return case.oracle_loss(case.params, x.reshape(xs.shape), case.carry)
    flat = xs.ravel()
    hess = np.zeros((n, n))
    for i in range(n):
        for j in range(i, n):
            ei, ej = np.eye(n)[i] * h, np.eye(n)[j] * h
            value = (f(flat + ei + ej) - f(flat + ei - ej) - f(flat - ei + ej) + f(flat - ei - ej)) / (4 * h * h)
            hess[i, j] = hess[j, i] = value
    return hess.reshape(xs.shape + xs.shape)


def check_transforms(kind, path, eager=True, checkpoint=True):
    case = transform_case(kind)
    what = f"{kind} path={path}"
    part = O.build(case.spec)
    args = (case.params, case.xs, case.carry)
    rng = np.random.default_rng(4)
    tangents = jax.tree_util.tree_map(lambda a: jnp.asarray(rng.normal(size=np.shape(a)), jnp.float32), args)
    failures = []

    batch_case = Case(case.spec, TRANSFORM_T, (2,), [TRANSFORM_T, 2], False, seed=22)
    batch = (jnp.moveaxis(batch_case.xs, 1, 0), batch_case.lengths)
    try:  # one program (one compile) for both modes
        forward, backward = both_modes(kind, path, checkpoint)(*args, tangents, *batch)
    except Exception:
        forward, backward = None, reverse_mode(kind, path, checkpoint)(*args, *batch)
        try:
            forward = forward_mode(kind, path)(*args, tangents)
        except Exception as error:
            failures.append(f"{what}: forward mode (jvp, hessian) raised {type(error).__name__}: {str(error)[:300]}")

    # forward mode: jvp, hessian (jacfwd of jacrev)
    if forward is not None:
        primal, tangent, hess = forward
        assert_close(primal, case.expected, VALUE_RTOL, what + ": jvp primal")
        h = 1e-6
        shifted = [
            jax.tree_util.tree_map(lambda a, t, s=s: np.asarray(a, np.float64) + s * h * np.asarray(t, np.float64),
                                   args, tangents)
            for s in (1, -1)
        ]
        fd = (oracle_outputs(case, *shifted[0]) - oracle_outputs(case, *shifted[1])) / (2 * h)
        got = np.concatenate([np.ravel(leaf) for leaf in leaves(tangent[0])] + [np.ravel(tangent[1])])
        assert_close(got, fd, GRAD_RTOL, what + ": jvp tangent")
        assert_close(hess, fd_hessian_xs(case), GRAD_RTOL, what + ": hessian")

    if eager:  # no jit: the values
        final, ys = jaxrnn.scan(part, *args, lengths=case.lengths, reverse=True, path=path)
        assert_close((final, ys), case.expected, VALUE_RTOL, what + ": eager")

    # reverse mode: jacrev, remat, checkpoint, vmap, batch-major
    grads, remat, checkpointed, mapped, batch_major = backward
    case.directional_check(grads, what + ": jacrev of the loss")
    assert_close(remat, grads, 1e-5, what + ": grad with remat=True")
    assert_close(checkpointed, grads, 1e-5, what + ": grad of jax.checkpoint")
    expected = O.run(case.spec, case.params, batch_case.xs, lengths=batch_case.lengths)
    final, ys = mapped
    assert_close((final, jnp.moveaxis(ys, 0, 1)), expected, VALUE_RTOL, what + ": vmap")
    assert_close(batch_major, (expected[0], np.moveaxis(expected[1], 0, 1)), VALUE_RTOL,
                 what + ": time_major=False, unroll=3")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("kind, path", FAST_TRANSFORMS)
def test_transformations(kind, path):
    """jvp (against central differences of the oracle), hessian as jacfwd of jacrev (against the oracle's
    second differences), eager against jit, jacrev of the loss (against the oracle),
    grad with remat=True and under jax.checkpoint, vmap, batch-major input with unroll:
    one reversed sequence with a padding step, a random initial carry (jax.checkpoint and eager,
    which compiles op by op: -m slow)."""
    check_transforms(kind, path, eager=False, checkpoint=False)


@pytest.mark.slow
@pytest.mark.parametrize("kind, path", SLOW_TRANSFORMS)
def test_transformations_every_path(kind, path):
    check_transforms(kind, path)


# --- stepping one token at a time ------------------------------------------------------------------------

STEPPED = [O.Cell(kind, H) for kind in O.CELL_KINDS] + [
    O.Stack((O.Embedding(3), O.Cell("lstm", H), O.Cell("minlstm", H), O.Linear(2))),
    O.Stack((O.Cell("gru", H), O.Cell("mingru", H), O.Cell("gru_ra", H)), residual=True)]


def test_stepping_matches_the_oracle():
    """``part.step`` one token at a time (generation, streaming; the minimal cells' one-token recurrence),
    driven by a lax.scan of this test's own, against the oracle: every cell, a stack from ids to a
    readout, a residual stack; a random initial carry; all in one program."""
    cases = [Case(spec, 7, (2,), [7, 7], False, seed=30 + n) for n, spec in enumerate(STEPPED)]

    def run_all(args):
        out = []
        for case, (params, xs, carry) in zip(cases, args):
            step = O.build(case.spec).step
            out.append(jax.lax.scan(lambda c, x, step=step, params=params: step(params, c, x), carry, xs))
        return out

    for case, got in zip(cases, jax.jit(run_all)([(c.params, c.xs, c.carry) for c in cases])):
        assert_close(got, case.expected, VALUE_RTOL, f"stepping {O.describe(case.spec)}")


# --- 5: randomly nested parts against the oracle --------------------------------------------------------

KIND = st.sampled_from(STEP_KINDS)


@st.composite
def nests(draw, max_layers=3):
    """A part of parts: 1 to ``max_layers`` layers, each a cell or a bidirectional layer whose directions are cells or
    2-cell stacks; a residual stack when every layer keeps H features; sometimes an embedding below."""

    def direction():
        if draw(st.integers(0, 3)) == 0:
            return O.Stack((O.Cell(draw(KIND), H), O.Cell(draw(KIND), H)), residual=draw(st.booleans()))
        return O.Cell(draw(KIND), H)

    layers = draw(st.integers(1, max_layers))
    residual = layers > 1 and draw(st.booleans())
    parts = []
    for _ in range(layers):
        if draw(st.booleans()):
            parts.append(O.Cell(draw(KIND), H))
        else:
            merge = "sum" if residual else draw(st.sampled_from(["concat", "sum"]))
            parts.append(O.Bi(direction(), direction(), merge))
    spec = parts[0] if layers == 1 else O.Stack(tuple(parts), residual)
    if draw(st.integers(0, 3)) == 0:
        spec = O.Stack((O.Embedding(I), spec))
    return spec


@st.composite
def nested_cases(draw, max_layers=3):
    spec = draw(nests(max_layers))
    time = draw(st.integers(0, 12))
    batch_shape = draw(st.sampled_from([(), (2,)]))
    lengths = None
    if draw(st.booleans()):
        lengths = np.array(draw(st.lists(st.sampled_from([0, time, *range(time + 1)]), min_size=2, max_size=2)))
        lengths = lengths[0] if batch_shape == () else lengths
    return dict(spec=spec, time=time, batch_shape=batch_shape, lengths=lengths, reverse=draw(st.booleans()),
                path=draw(st.sampled_from(PATHS + ("auto-gpu",))), carry=draw(st.booleans()),
                batch_major=batch_shape != () and draw(st.booleans()), remat=draw(st.booleans()),
                unroll=draw(st.sampled_from([1, 2, 5])), seed=draw(st.integers(0, 2**16)))


def check_nested(example):
    spec, time, batch_shape = example["spec"], example["time"], example["batch_shape"]
    params = init_params(spec, 7 if O.reads_ids(spec) else I, example["seed"])
    xs = inputs(spec, time, batch_shape, example["seed"] + 1)
    carry = random_carry(O.build(spec), batch_shape, example["seed"] + 2) if example["carry"] else None
    lengths = example["lengths"]
    part = O.build(spec)
    batch_major = example["batch_major"]
    gpu = example["path"] == "auto-gpu"
    options = dict(reverse=example["reverse"], path="auto" if gpu else example["path"], time_major=not batch_major,
                   remat=example["remat"], unroll=example["unroll"])

    def run(params, xs, carry, lengths):
        return jaxrnn.scan(part, params, xs, carry, lengths=lengths, **options)

    given_xs = jnp.moveaxis(xs, 0, 1) if batch_major else xs
    with gpu_auto() if gpu else contextlib.nullcontext():
        final, ys = jax.jit(run)(params, given_xs, carry, None if lengths is None else jnp.asarray(lengths, jnp.int32))
    ys = jnp.moveaxis(ys, 1, 0) if batch_major else ys
    expected = O.run(spec, params, xs, carry, lengths=lengths, reverse=example["reverse"])
    what = (f"{O.describe(spec)} T={time} batch={batch_shape} lengths={lengths} {options} gpu={gpu} "
            f"carry={example['carry']}")
    assert_close((final, ys), expected, VALUE_RTOL, what)
    if lengths is not None and time:  # padding outputs zeros
        pad = padding_mask(time, lengths, ys)
        assert np.all(np.asarray(ys)[pad] == 0.0), what + ": padding outputs"


@settings(max_examples=4, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(nested_cases(max_layers=2))
def test_random_nests_against_oracle(example):
    """Random stacks of bidirectional layers of every cell kind, with and without residual, random T
    (0 to 12), batch shape () or (2,), lengths (0 and T among them), direction, path (or "auto" as on a
    GPU), initial carry, layout, remat and unroll: the final carry and the outputs against the oracle's
    composition. Few small examples (each compiles); -m slow runs 30, up to 3 layers deep."""
    check_nested(example)


@pytest.mark.slow
@settings(max_examples=30, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(nested_cases())
def test_random_nests_against_oracle_more(example):
    check_nested(example)


# --- 6: bad and extreme inputs -------------------------------------------------------------------------

BAD_INPUT_SPECS = {
    "cell": O.Cell("gru", H),
    "stack": O.Stack((O.Cell("lstm", H), O.Cell("mingru", H))),
    "bi": O.Bi(O.Cell("gru_ra", H), O.Cell("minlstm", H)),
    "stack_bi": O.Stack((O.Bi(O.Cell("rnn_tanh", H), O.Cell("lstm", H), "sum"), O.Cell("gru", H))),
}


@pytest.mark.parametrize("lengths", [[6, 7], [-1, 3], [0, 100]])
@pytest.mark.parametrize("name", list(BAD_INPUT_SPECS))
def test_concrete_lengths_out_of_range_raise(name, lengths):
    """Lengths known at trace time outside [0, T] are a ValueError naming the range, for every part and
    for many_to_one, before anything runs."""
    spec = BAD_INPUT_SPECS[name]
    params = init_params(spec, I, 0)
    xs = inputs(spec, 6, (2,), 1)
    with pytest.raises(ValueError, match=r"\[0, 6\]"):
        jaxrnn.scan(O.build(spec), params, xs, lengths=np.array(lengths))
    model = jaxrnn.models.many_to_one(O.build(spec), 2)
    m2o_params = {"cell": params, "readout": {"kernel": jnp.zeros((O.out_features(spec, I), 2)), "bias": jnp.zeros(2)}}
    with pytest.raises(ValueError, match=r"\[0, 6\]"):
        model.apply(m2o_params, xs, lengths=jnp.array(lengths))


@functools.cache
def compiled_scan(spec, checked):
    """``scan(part, params, xs, lengths=lengths, checked=checked)`` of the part ``spec`` builds, compiled once."""
    part = O.build(spec)

    def run(params, xs, lengths):
        return jaxrnn.scan(part, params, xs, lengths=lengths, checked=checked)

    return checkify.checkify(jax.jit(run)) if checked else jax.jit(run)


def checked_scan(name, checked):
    return compiled_scan(BAD_INPUT_SPECS[name], checked)


def test_traced_lengths_out_of_range():
    """Traced lengths outside [0, T]: with checked=True a checkify error naming the range (and none for
    lengths inside it); without, a length above T acts as T and a negative one as 0, as documented."""
    spec = BAD_INPUT_SPECS["cell"]
    params, xs = init_params(spec, I, 0), inputs(spec, 6, (2,), 1)
    error, _ = checked_scan("cell", True)(params, xs, jnp.array([6, 0]))
    assert error.get() is None
    for bad, clipped in (([7, 2], [6, 2]), ([-1, 3], [0, 3]), ([2**31 - 1, -(2**31)], [6, 0])):
        error, _ = checked_scan("cell", True)(params, xs, jnp.array(bad, jnp.int32))
        with pytest.raises(checkify.JaxRuntimeError, match=r"\[0, 6\]"):
            error.throw()
        got = checked_scan("cell", False)(params, xs, jnp.array(bad, jnp.int32))
        assert_close(got, O.run(spec, params, xs, lengths=np.array(clipped)), VALUE_RTOL, f"lengths {bad}")


EMPTY_SPECS = [O.Cell(kind, H) for kind in STEP_KINDS] + list(BAD_INPUT_SPECS.values()) + [
    O.Stack((O.Embedding(3), O.Bi(O.Cell("lstm", H), O.Cell("mingru", H))))]


def test_empty_sequences_and_empty_batches():
    """T = 0: outputs of shape (0, B, O), the final carry is the initial one (a random one), with and
    without lengths (all 0), both directions. A batch of 0 sequences (xs (5, 0, I), lengths (0,)):
    outputs (5, 0, O), carries (0, H), for the composites. Every cell on every path, the composites on
    the paths that differ for them; all in one program."""
    cases = [Case(spec, 0, (2,), [0, 0], False, seed=n) for n, spec in enumerate(EMPTY_SPECS)]
    runs = [(path, reverse, lengths) for path in PATHS for reverse, lengths in ((False, False), (True, True))]
    empty_batch = [spec for spec in EMPTY_SPECS if not O.reads_ids(spec) and not isinstance(spec, O.Cell)]

    def runs_of(spec):
        return runs if isinstance(spec, O.Cell) else [r for r in runs if r[0] in ("fused", "parallel")]

    def run_all(args, params):
        out = []
        for case, (p, xs, carry) in zip(cases, args):
            for path, reverse, lengths in runs_of(case.spec):
                out.append(jaxrnn.scan(O.build(case.spec), p, xs, carry, lengths=case.lengths if lengths else None,
                                       reverse=reverse, path=path))
        for spec, p in zip(empty_batch, params):
            for path, reverse in (("fused", False), ("parallel", True)):
                out.append(jaxrnn.scan(O.build(spec), p, jnp.zeros((5, 0, I)), lengths=jnp.zeros((0,), jnp.int32),
                                       reverse=reverse, path=path))
        return out

    got = iter(jax.jit(run_all)([(c.params, c.xs, c.carry) for c in cases], [c.params for c in cases
                                                                             if c.spec in empty_batch]))
    for case in cases:
        for path, reverse, lengths in runs_of(case.spec):
            final, ys = next(got)
            what = f"T=0: {O.describe(case.spec)} path={path} reverse={reverse} lengths={lengths}"
            assert ys.shape == (0, 2, O.out_features(case.spec, 7 if O.reads_ids(case.spec) else I)), what
            for f, c in zip(leaves(final), leaves(case.carry)):
                np.testing.assert_array_equal(np.asarray(f), np.asarray(c), err_msg=what)
    for spec in empty_batch:
        for path, reverse in (("fused", False), ("parallel", True)):
            final, ys = next(got)
            what = f"B=0: {O.describe(spec)} path={path} reverse={reverse}"
            assert ys.shape == (5, 0, O.out_features(spec, I)), what
            assert all(leaf.shape == (0, H) for leaf in leaves(final)), what


# --- 7: token ids out of range -------------------------------------------------------------------------

VOCAB = 5
ID_SPECS = {
    "embedding": O.Embedding(3),
    "emb_stack": O.Stack((O.Embedding(3), O.Cell("gru_ra", H))),
    "emb_bi": O.Stack((O.Embedding(3), O.Bi(O.Cell("lstm", H), O.Cell("minlstm", H)))),
}
OUT_OF_RANGE = [VOCAB, VOCAB + 3, -1, -VOCAB, 2**31 - 1, -(2**31)]


def id_params(name):
    return init_params(ID_SPECS[name], VOCAB, 3)


@pytest.mark.parametrize("bad", [VOCAB, -1, -VOCAB, 2**31 - 1])
@pytest.mark.parametrize("name", list(ID_SPECS))
def test_concrete_ids_out_of_range_raise(name, bad):
    """Concrete ids outside [0, V) are a ValueError naming the range, at trace time (never a silent wrap
    of -1 to the last token, or a clamp)."""
    ids = np.array([[1, 2], [bad, 0], [3, 4]], np.int32)
    with pytest.raises(ValueError, match=rf"\[0, ?({VOCAB}\)|{VOCAB - 1}\])"):
        jaxrnn.scan(O.build(ID_SPECS[name]), id_params(name), ids)


@pytest.mark.parametrize("name", sorted(ID_SPECS))
def test_concrete_ids_inside_jit_raise(name):
    """Ids whose values are known when scan is traced inside jit (a numpy constant) are checked as concrete
    lengths are there: a ValueError at trace time, not a silent NaN; out-of-range ids in known padding pass."""
    ids = np.array([[1, 2], [VOCAB, 0]], np.int32)
    part = O.build(ID_SPECS[name])
    with pytest.raises(ValueError, match=rf"\[0, ?({VOCAB}\)|{VOCAB - 1}\])"):
        jax.jit(lambda params: jaxrnn.scan(part, params, ids))(id_params(name))
    padded = jax.jit(lambda params: jaxrnn.scan(part, params, ids, lengths=np.array([1, 2]))[1])(id_params(name))
    assert np.all(np.isfinite(padded))


def id_scan(name, checked):
    return compiled_scan(ID_SPECS[name], checked)


def test_traced_ids_out_of_range():
    """Traced ids: with checked=True a checkify error naming the range (none for ids inside it); without,
    every out-of-range id (negative ones too) reads a NaN vector, and the in-range ones their rows."""
    params = id_params("embedding")
    table = np.asarray(params["table"])
    good = jnp.array([[0, 4], [2, 1]], jnp.int32)
    error, _ = id_scan("embedding", True)(params, good, jnp.array([2, 2]))
    assert error.get() is None
    for bad in OUT_OF_RANGE:
        ids = jnp.array([[0, bad], [bad, 3]], jnp.int32)
        error, _ = id_scan("embedding", True)(params, ids, jnp.array([2, 2]))
        with pytest.raises(checkify.JaxRuntimeError, match=rf"\[0, ?({VOCAB}\)|{VOCAB - 1}\])"):
            error.throw()
        _, ys = id_scan("embedding", False)(params, ids, jnp.array([2, 2]))
        ys = np.asarray(ys)
        assert np.all(np.isnan(ys[0, 1])) and np.all(np.isnan(ys[1, 0])), f"id {bad}: {ys[0, 1]}, {ys[1, 0]}"
        np.testing.assert_array_equal(ys[0, 0], table[0])
        np.testing.assert_array_equal(ys[1, 1], table[3])


@pytest.mark.slow
@pytest.mark.parametrize("name", ["emb_stack", "emb_bi"])
def test_traced_ids_checked_through_layers(name):
    """checked=True reaches the embedding at the bottom of a stack and inside a bidirectional layer."""
    params = id_params(name)
    error, _ = id_scan(name, True)(params, jnp.array([[0, 4], [2, 1]], jnp.int32), jnp.array([2, 2]))
    assert error.get() is None
    for bad in (VOCAB, -1):
        error, _ = id_scan(name, True)(params, jnp.array([[0, bad], [1, 3]], jnp.int32), jnp.array([2, 2]))
        with pytest.raises(checkify.JaxRuntimeError, match=rf"\[0, ?({VOCAB}\)|{VOCAB - 1}\])"):
            error.throw()


def test_ids_out_of_range_in_padding_are_ignored():
    """Concrete out-of-range ids in the padding (t >= lengths) are not read: no error, and the same
    answer as zeros there."""
    spec = ID_SPECS["embedding"]
    params = id_params("embedding")
    ids = np.array([[1, 2], [4, -1], [VOCAB + 2, 2**31 - 1]], np.int32)
    lengths = np.array([2, 1])
    got = jaxrnn.scan(O.build(spec), params, ids, lengths=lengths)
    assert_close(got, O.run(spec, params, ids, lengths=lengths), VALUE_RTOL, "padding ids")
