"""The ``"onednn"`` path (``jaxrnn/onednn.py``): every cell it takes against the float64 oracle
(``tests/oracle.py``), the cases where it falls back to ``"plain"``, ``vmap`` (the custom_vmap rules), bad
input, the switch ``JAXRNN_ONEDNN=0`` and the thread count.

Each test also reads the jaxpr it ran: the oneDNN custom calls are in it where the path applies and absent
where it falls back, so a silent fallback cannot pass for the path. Without the extension these tests skip
(with :func:`jaxrnn.onednn.status` as the reason), except the one that says it must be there: on x86-64
Linux the install builds it, and a broken build must not hide behind skips.
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
import platform
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrnn
import oracle as O
from jaxrnn import onednn
from support import ROOT, H, I, random_carry
from test_edges import GRAD_RTOL, VALUE_RTOL, Case, assert_close, init_params, leaves, loss_of, to64

needs_onednn = pytest.mark.skipif(not onednn.available(), reason=onednn.status())

KINDS = ("rnn_tanh", "rnn_relu", "lstm", "gru", "gru_ra")  # the oracle's names of the cells the path takes
TAKES_LENGTHS = ("rnn_tanh", "gru", "gru_ra")  # the LSTM and the ReLU RNN with lengths run "plain"
FORWARD, BACKWARD = "jaxrnn_onednn_forward", "jaxrnn_onednn_backward"


def custom_calls(fn, *args) -> dict[str, int]:
    """How many of oneDNN's forward and backward custom calls the jaxpr of ``fn(*args)`` holds."""
    text = str(jax.make_jaxpr(fn)(*args))
    return {name: text.count(f"target_name={name}") for name in (FORWARD, BACKWARD)}


def test_the_extension_is_there_on_x86_64_linux():
    """The install builds the extension on x86-64 Linux (CI too): there the path must be available, unless
    switched off; the rest of this file skips where it is not, so a broken build would hide behind skips."""
    if sys.platform != "linux" or platform.machine().lower() not in ("x86_64", "amd64"):
        pytest.skip(f"oneDNN's path is built for x86-64 Linux only; this is {sys.platform} on {platform.machine()}")
    if onednn.switched_off():
        pytest.skip(f"switched off: {onednn.ENV}={os.environ[onednn.ENV]}")
    jaxlib = tuple(int(p) for p in importlib.metadata.version("jaxlib").split(".")[:2] if p.isdigit())
    if jaxlib < onednn.FFI_JAXLIB:
        pytest.skip(f"jaxlib {jaxlib} is older than the extension's XLA FFI ({onednn.FFI_JAXLIB})")
    assert onednn.available(), f"the oneDNN path is not available on x86-64 Linux: {onednn.status()}"
    assert onednn.status().startswith("oneDNN "), onednn.status()


# --- every cell against the oracle -----------------------------------------------------------------------


def graded(run):
    """``{reverse: ((loss, (final, ys)), grads w.r.t. (params, xs, carry))}`` for both directions, where
    ``run(params, xs, carry, lengths, reverse) -> (final, ys)``."""

    def loss(params, xs, carry, lengths, w_ys, w_carry, reverse):
        final, ys = run(params, xs, carry, lengths, reverse)
        return loss_of(final, ys, w_ys, w_carry), (final, ys)

    def both(params, xs, carry, lengths, w_ys, w_carry):
        grad = jax.value_and_grad(loss, argnums=(0, 1, 2), has_aux=True)
        return {reverse: grad(params, xs, carry, lengths, w_ys, w_carry, reverse) for reverse in (False, True)}

    return both


@functools.cache
def library_program(kind):
    part = O.build(O.Cell(kind, H))
    return jax.jit(graded(lambda params, xs, carry, lengths, reverse: jaxrnn.scan(
        part, params, xs, carry, lengths=lengths, reverse=reverse, path="onednn")))


@functools.cache
def oracle_program(kind):
    spec = O.Cell(kind, H)
    return jax.jit(graded(lambda params, xs, carry, lengths, reverse: O.run(
        spec, params, xs, carry, lengths=lengths, reverse=reverse, xp=jnp)))


def check_against_oracle(kind, time, batch_shape, lengths, seed, numpy_values=True):
    """``path="onednn"`` both ways, a random initial carry: values against the numpy oracle (or, without
    ``numpy_values``, the JAX one's), gradients w.r.t. params, xs and carry against JAX's autodiff of the
    oracle in float64; one forward and one backward custom call per direction, no fallback."""
    case = Case(O.Cell(kind, H), time, batch_shape, np.full(batch_shape, time) if lengths is None else lengths, False,
                seed=seed)
    lengths = None if lengths is None else case.lengths
    args = (case.params, case.xs, case.carry, lengths, case.w_ys, case.w_carry)
    program = library_program(kind)
    assert custom_calls(program, *args) == {FORWARD: 2, BACKWARD: 2}, f"{kind}: not on oneDNN's path"
    got = program(*args)
    with jax.enable_x64(True):
        expected = jax.tree_util.tree_map(np.asarray, oracle_program(kind)(*to64(args)))
    for reverse in (False, True):
        (_, (final, ys)), grads = got[reverse]
        what = f"{kind} path=onednn reverse={reverse} T={time} batch={batch_shape} lengths={lengths is not None}"
        oracle = O.run(case.spec, case.params, case.xs, case.carry, lengths=lengths, reverse=reverse) \
            if numpy_values else expected[reverse][0][1]
        assert_close(ys, oracle[1], VALUE_RTOL, what + ": ys")
        assert_close(final, oracle[0], VALUE_RTOL, what + ": final carry")
        assert_close(grads, expected[reverse][1], GRAD_RTOL, what + ": gradients (params, xs, carry)")
        if lengths is not None:  # padding outputs zeros; a sequence of length 0 keeps its carry, exactly
            pad = np.arange(time).reshape(-1, *[1] * len(batch_shape)) >= np.asarray(lengths)
            assert np.all(np.asarray(ys)[pad] == 0.0), what + ": padding outputs"
            empty = np.asarray(lengths) == 0
            np.testing.assert_array_equal(np.asarray(final)[empty], np.asarray(case.carry)[empty], err_msg=what)


T, BATCH = 300, (2, 3)
LENGTHS = [[T, 0, 17], [T - 1, 150, 1]]
LONG_T = 4096


@needs_onednn
@pytest.mark.parametrize("kind", [kind for kind in KINDS if kind != "lstm"])
def test_every_cell_against_the_oracle(kind):
    """T = 300 over two batch axes, both directions; lengths (T and 0 among them) for the cells that take
    them on this path, none for the ReLU RNN (which runs "plain" with lengths)."""
    check_against_oracle(kind, T, BATCH, LENGTHS if kind in TAKES_LENGTHS else None, seed=40)


@needs_onednn
def test_lstm_over_a_long_sequence_against_the_oracle():
    """The LSTM, whose cell state is unbounded, over T = 4096 steps and two batch axes, both directions (no
    lengths: it runs "plain" with them); values and gradients against the JAX oracle in float64."""
    check_against_oracle("lstm", LONG_T, BATCH, None, seed=41, numpy_values=False)


# --- where it falls back to "plain" ----------------------------------------------------------------------


FALLBACK_T = 7


def scan_of(kind, path, part=None, **options):
    part = part or O.build(O.Cell(kind, H))
    return lambda params, xs, carry=None, lengths=None: jaxrnn.scan(part, params, xs, carry, lengths=lengths,
                                                                    path=path, **options)


def sum_loss(run):
    return lambda params, xs, *rest: sum(jnp.sum(jnp.sin(leaf)) for leaf in leaves(run(params, xs, *rest)))


def assert_runs_plain(make, args, what):
    """``make(path)`` traces to the same program with ``path="onednn"`` as with ``path="plain"``, with no
    oneDNN call in it."""
    onednn_jaxpr, plain_jaxpr = (str(jax.make_jaxpr(make(path))(*args)) for path in ("onednn", "plain"))
    assert "jaxrnn_onednn" not in onednn_jaxpr, f"{what}: oneDNN's path ran"
    assert onednn_jaxpr == plain_jaxpr, f"{what}: not the program of path='plain'"


@needs_onednn
def test_fallbacks_run_plain_and_give_the_right_answer():
    """remat (values and gradients), the LSTM and the ReLU RNN with lengths, a bfloat16 cell, T = 0 (with
    and without lengths), a batch of 0 sequences, float64: plain's program, and the oracle's values."""
    lengths = jnp.asarray([FALLBACK_T, 3, 0], jnp.int32)
    cases = {kind: Case(O.Cell(kind, H), FALLBACK_T, (3,), lengths, False, seed=50) for kind in KINDS}
    lstm, relu, gru_ra, gru = cases["lstm"], cases["rnn_relu"], cases["gru_ra"], cases["gru"]
    bf16 = jaxrnn.gru(H, reset_after=True, dtype=jnp.bfloat16)
    runs = {  # name: (path -> function, its arguments)
        "remat": (lambda path: scan_of("lstm", path, remat=True), (lstm.params, lstm.xs, lstm.carry)),
        "remat, grad": (lambda path: jax.grad(sum_loss(scan_of("lstm", path, remat=True)), argnums=(0, 1, 2)),
                        (lstm.params, lstm.xs, lstm.carry)),
        "lstm, lengths": (lambda path: scan_of("lstm", path), (lstm.params, lstm.xs, lstm.carry, lengths)),
        "relu, lengths": (lambda path: scan_of("rnn_relu", path), (relu.params, relu.xs, relu.carry, lengths)),
        "bfloat16": (lambda path: scan_of(None, path, part=bf16), (gru_ra.params, gru_ra.xs, gru_ra.carry)),
        "T=0": (lambda path: scan_of("gru", path), (gru.params, jnp.zeros((0, 3, I)), gru.carry)),
        "T=0, lengths": (lambda path: scan_of("gru", path, reverse=True),
                         (gru.params, jnp.zeros((0, 3, I)), gru.carry, jnp.zeros(3, jnp.int32))),
        "batch 0": (lambda path: scan_of("lstm", path), (lstm.params, jnp.zeros((FALLBACK_T, 0, I)))),
    }
    for name, (make, args) in runs.items():
        assert_runs_plain(make, args, name)
    got, grad = jax.jit(lambda: ({name: make("onednn")(*args) for name, (make, args) in runs.items()},
                                 jax.grad(sum_loss(scan_of("lstm", "plain")), argnums=(0, 1, 2))(*runs["remat"][1])))()

    def expected(case, with_lengths=True):
        return O.run(case.spec, case.params, case.xs, case.carry, lengths=lengths if with_lengths else None)

    assert_close(got["remat"], expected(lstm, False), VALUE_RTOL, "remat")
    assert_close(got["remat, grad"], grad, GRAD_RTOL, "remat: the gradient without remat")
    assert_close(got["lstm, lengths"], expected(lstm), VALUE_RTOL, "lstm with lengths")
    assert_close(got["relu, lengths"], expected(relu), VALUE_RTOL, "relu with lengths")
    assert_close(got["bfloat16"], expected(gru_ra, False), 3e-2, "bfloat16 cell")
    for name in ("T=0", "T=0, lengths"):
        final, ys = got[name]
        assert ys.shape == (0, 3, H), name
        np.testing.assert_array_equal(final, gru.carry, err_msg=name)
    final, ys = got["batch 0"]
    assert ys.shape == (FALLBACK_T, 0, H) and all(leaf.shape == (0, H) for leaf in leaves(final)), "batch 0"

    with jax.enable_x64(True):
        case = cases["rnn_tanh"]
        args = to64((case.params, case.xs, case.carry))
        assert_runs_plain(lambda path: scan_of("rnn_tanh", path), args, "float64")
        final, ys = jax.jit(scan_of("rnn_tanh", "onednn"))(*args)
        assert ys.dtype == jnp.float64
        assert_close((final, ys), O.run(case.spec, *args), 1e-12, "float64")


@needs_onednn
def test_forward_mode_runs_plain():
    """jvp, jacfwd and hessian (jacfwd of jacrev) of functions of scan(path="onednn") trace to the program of
    path="plain" (the custom VJP has no forward mode), so give its values; the jvp's primal is the oracle's."""
    case = Case(O.Cell("gru_ra", H), 4, (2,), [4, 2], True, seed=51)
    rng = np.random.default_rng(0)
    args = (case.params, case.xs, case.carry)
    tangents = jax.tree_util.tree_map(lambda a: jnp.asarray(rng.normal(size=a.shape), jnp.float32), args)

    def transforms(path):
        run = scan_of("gru_ra", path, reverse=True)

        def of(params, xs, carry, tangents):
            return (jax.jvp(lambda *a: run(*a, case.lengths), (params, xs, carry), tangents),
                    jax.jacfwd(run, argnums=(0, 1))(params, xs, carry, case.lengths),
                    jax.hessian(sum_loss(run), argnums=1)(params, xs, carry, case.lengths))

        return of

    assert_runs_plain(transforms, (*args, tangents), "jvp, jacfwd, hessian")
    primal, _ = jax.jit(lambda *a: transforms("onednn")(*a)[0])(*args, tangents)  # the jvp, run
    assert_close(primal, case.expected, VALUE_RTOL, "jvp: primal")


@needs_onednn
def test_forward_mode_of_a_compiled_function_is_an_error():
    """A function jit-compiled before jax.jvp reaches it hides the JVP from the path's check: JAX refuses
    forward mode of the custom VJP with an error (as documented), never a wrong answer."""
    case = Case(O.Cell("lstm", H), 4, (2,), [4, 4], False, seed=52)
    compiled = jax.jit(scan_of("lstm", "onednn"))
    with pytest.raises(TypeError, match="forward-mode"):
        jax.jvp(lambda xs: compiled(case.params, xs), (case.xs,), (case.xs,))


# --- vmap ------------------------------------------------------------------------------------------------

VMAP_T, MAPPED, VMAP_BATCH = 9, 3, 2


@functools.cache
def vmap_case(kind):
    """``MAPPED`` sequences of ``(VMAP_T, VMAP_BATCH, I)`` (mapped axis first), carries, lengths and params
    of each."""
    spec = O.Cell(kind, H)
    rng = np.random.default_rng(60)
    params = init_params(spec, I, 61)
    return dict(
        params=params,
        stacked=jax.tree_util.tree_map(lambda a: jnp.stack([a, 0.5 * a, -a]), params),
        xs=jnp.asarray(rng.normal(size=(MAPPED, VMAP_T, VMAP_BATCH, I)), jnp.float32),
        carry=random_carry(O.build(spec), (MAPPED, VMAP_BATCH), 62),
        lengths=jnp.asarray([[VMAP_T, 0], [3, VMAP_T], [1, 5]], jnp.int32) if kind in TAKES_LENGTHS else None,
    )


@needs_onednn
@pytest.mark.parametrize("kind", ["lstm", "gru_ra"])
def test_vmap(kind):
    """vmap of scan(path="onednn"), traced and of a function compiled first, over xs, carry and lengths
    (folded into oneDNN's batch), xs alone, the carry alone, and the params too (a call per element): on
    oneDNN's path, the batched call's values and the oracle's for each element."""
    spec, c = O.Cell(kind, H), vmap_case(kind)
    part = O.build(spec)

    def run(params, xs, carry, lengths):
        return jaxrnn.scan(part, params, xs, carry, lengths=lengths, path="onednn")

    first = jax.tree_util.tree_map(lambda a: a[0], c["carry"])
    maps = {  # name: (in_axes, arguments)
        "xs, carry, lengths": ((None, 0, 0, 0), (c["params"], c["xs"], c["carry"], c["lengths"])),
        "xs": ((None, 0, None, 0), (c["params"], c["xs"], first, c["lengths"])),
        "carry": ((None, None, 0, None), (c["params"], c["xs"][0], c["carry"], None)),
        "params too": ((0, 0, 0, 0), (c["stacked"], c["xs"], c["carry"], c["lengths"])),
    }
    variants = [(name, compiled) for name in maps for compiled in (False, True)]

    def mapped(name, compiled):
        axes, args = maps[name]
        return jax.vmap(jax.jit(run) if compiled else run, in_axes=axes)(*args)

    for name, compiled in variants:
        assert custom_calls(lambda: mapped(name, compiled))[FORWARD] == 1, \
            f"{kind} vmap over {name} (compiled: {compiled}): not on oneDNN's path"
    batched, got = jax.jit(lambda: (run(c["params"], jnp.moveaxis(c["xs"], 0, 1), c["carry"], c["lengths"]),
                                    {variant: mapped(*variant) for variant in variants}))()
    final, ys = got[("xs, carry, lengths", False)]
    assert_close((final, jnp.moveaxis(ys, 0, 1)), batched, VALUE_RTOL, f"{kind}: vmap against the batched call")
    for name, compiled in variants:
        axes, args = maps[name]
        elements = [[a if axis is None else jax.tree_util.tree_map(lambda leaf: leaf[k], a)
                     for a, axis in zip(args, axes)] for k in range(MAPPED)]
        elements = [O.run(spec, *element[:3], lengths=element[3]) for element in elements]
        expected = jax.tree_util.tree_map(lambda *e: np.stack(e), *elements)
        assert_close(got[(name, compiled)], expected, VALUE_RTOL, f"{kind} vmap over {name} (compiled: {compiled})")


@needs_onednn
@pytest.mark.parametrize("kind", ["lstm", "gru_ra"])
def test_per_example_gradients_under_vmap(kind):
    """vmap(grad(f)) with f compiled first (the path's check cannot see the vmap): the training forward and
    the backward run once per example, so each example gets its own weight gradient (folding the examples
    into one batch would sum them): plain's per-example gradients. And grad of the sum of vmap of f: their
    sum."""
    part, c = O.build(O.Cell(kind, H)), vmap_case(kind)

    def loss(path):
        def of(params, xs, carry, lengths):
            final, ys = jaxrnn.scan(part, params, xs, carry, lengths=lengths, reverse=True, path=path)
            w = jnp.linspace(-1.0, 2.0, ys.size).reshape(ys.shape)
            return jnp.sum(w * jnp.sin(ys)) + sum(jnp.sum(jnp.cos(leaf)) for leaf in leaves(final))

        return jax.jit(of)

    def per_example(path):
        return jax.vmap(jax.grad(loss(path), argnums=(0, 1, 2)), in_axes=(None, 0, 0, 0))

    def summed(path):
        return jax.grad(lambda *a: jnp.sum(jax.vmap(loss(path), in_axes=(None, 0, 0, 0))(*a)), argnums=(0, 1, 2))

    args = (c["params"], c["xs"], c["carry"], c["lengths"])
    for name, fn in (("vmap(grad)", per_example), ("grad(vmap)", summed)):
        assert custom_calls(fn("onednn"), *args) == {FORWARD: 1, BACKWARD: 1}, f"{kind} {name}: not on oneDNN's path"
    got, total, plain = jax.jit(lambda *a: (per_example("onednn")(*a), summed("onednn")(*a),
                                            per_example("plain")(*a)))(*args)
    assert_close(got, plain, GRAD_RTOL, f"{kind}: per-example gradients")
    plain_total = (jax.tree_util.tree_map(lambda g: g.sum(0), plain[0]), *plain[1:])  # xs and carry: per example
    assert_close(total, plain_total, GRAD_RTOL, f"{kind}: gradient of the sum")


@needs_onednn
def test_jacrev():
    """jacrev (vmap of the backward over the output's basis, a call per row) of an unbatched sequence."""
    case = Case(O.Cell("lstm", H), 5, (), 5, False, seed=63)

    def jacobian(path):
        return jax.jacrev(scan_of("lstm", path), argnums=(0, 1, 2))

    args = (case.params, case.xs, case.carry)
    assert custom_calls(jacobian("onednn"), *args) == {FORWARD: 1, BACKWARD: 1}
    got, plain = jax.jit(lambda *a: (jacobian("onednn")(*a), jacobian("plain")(*a)))(*args)
    assert_close(got, plain, GRAD_RTOL, "jacrev")


# --- bad input, the switch, threads ----------------------------------------------------------------------


@needs_onednn
def test_bad_input_is_the_same_error_as_plain():
    """Params of another cell, inputs of another width: the error "plain" raises, word for word."""
    lstm, rnn = O.Cell("lstm", H), O.Cell("rnn_tanh", H)
    xs = jnp.zeros((3, 2, I))
    bad = {
        "lstm params to an rnn": (rnn, init_params(lstm, I, 0), xs),
        "rnn params to an lstm": (lstm, init_params(rnn, I, 0), xs),
        "inputs of another width": (lstm, init_params(lstm, I, 0), jnp.zeros((3, 2, I + 1))),
    }
    for name, (spec, params, inputs) in bad.items():
        errors = []
        for path in ("plain", "onednn"):
            with pytest.raises(ValueError) as error:
                jaxrnn.scan(O.build(spec), params, inputs, path=path)
            errors.append(str(error.value))
        assert errors[0] == errors[1], f"{name}: {errors}"


def test_switched_off_by_the_environment():
    """JAXRNN_ONEDNN=0: not available, status says so, "auto" runs "plain", and `jaxrnn run` has no notice."""
    code = ("import jaxrnn; from jaxrnn.loop import resolve_path; "
            "print(jaxrnn.onednn.available()); print(jaxrnn.onednn.status()); "
            "print(resolve_path('auto', jaxrnn.lstm(4))); print(jaxrnn.lstm(4).info.paths); "
            "print(jaxrnn.onednn.notice())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120,
                         cwd=ROOT, env={**os.environ, onednn.ENV: "0", "JAX_PLATFORMS": "cpu"}).stdout.splitlines()
    assert out[:3] == ["False", f"switched off ({onednn.ENV}=0)", "plain"], out
    assert "onednn" not in out[3], out
    assert out[4] == "None", out


def test_threads(monkeypatch):
    """OMP_NUM_THREADS when set (its first entry); else the cores per CPU device, at least 1."""
    for value, expected in (("3", 3), ("5,2", 5), (" 2 ", 2)):
        monkeypatch.setenv("OMP_NUM_THREADS", value)
        assert onednn.threads() == expected, value
    for value in ("0", "many", ""):
        monkeypatch.setenv("OMP_NUM_THREADS", value)
        assert 1 <= onednn.threads() <= (os.cpu_count() or 1), value
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert 1 <= onednn.threads() <= (os.cpu_count() or 1)


def test_notice_says_why_the_path_is_missing(monkeypatch):
    """`jaxrnn run` prints onednn.notice(): one line where an x86 CPU's install could not build the path,
    nothing where it runs, where it is switched off, or on another platform."""
    monkeypatch.setattr(jax, "default_backend", lambda: "cpu")
    for why, expected in [("the oneDNN extension was not built when jaxrnn was installed (no C++ compiler?)",
                           True), ("switched off (JAXRNN_ONEDNN=0)", False),
                          ("oneDNN's path is built for x86-64 Linux; this is darwin on arm64", False)]:
        monkeypatch.setattr(onednn, "_library", lambda why=why, expected=expected: (None, why, expected))
        line = onednn.notice()
        assert (line is not None) == expected, (why, line)
        if expected:
            assert line.startswith("note: ") and why in line and "\n" not in line
    monkeypatch.setattr(onednn, "_library", lambda: (object(), "oneDNN 3.2.0", False))
    assert onednn.notice() is None


@needs_onednn
def test_the_thread_count_does_not_change_a_bit(monkeypatch):
    """The extension may run a shape on one thread or on several, call by call (onednn.threads): oneDNN's
    recurrent primitives give the same bits either way, so a run does not depend on that choice."""
    grads = {}
    for count in ("1", "2", "3"):
        monkeypatch.setenv("OMP_NUM_THREADS", count)  # read when the function is traced
        for kind in ("lstm", "gru_ra"):
            case = Case(O.Cell(kind, H), 16, (8,), [16] * 8, False, seed=70)
            grads[count, kind] = jax.jit(jax.grad(sum_loss(scan_of(kind, "onednn")), argnums=(0, 1, 2)))(
                case.params, case.xs, case.carry)
    for (count, kind), got in grads.items():
        for a, b in zip(leaves(grads["1", kind]), leaves(got)):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=f"{kind}, {count} threads")
