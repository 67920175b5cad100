"""The one part contract: :class:`jaxrnn.Part`, :class:`jaxrnn.Info`, ``describe``, ``resolve_path``,
``LSTMState``, ``get_layer_carry``/``set_layer_carry``, the one ``Model.apply`` signature and the deprecated names.

A part of the user's own -- a hand-written Elman ``step``, or a whole-sequence ``sequence`` -- must run
everywhere a built-in does; these tests hold it to a Python loop.
"""

from __future__ import annotations

import dataclasses
import functools
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrnn
from jaxrnn import Info, LSTMState, Part, describe, get_layer_carry, set_layer_carry
from jaxrnn.loop import PATHS, resolve_path

KEY = jax.random.key(0)
T, B, I, H = 5, 2, 3, 4
CPU = jax.default_backend() == "cpu"
RNG = np.random.default_rng(0)


def batch(batch_shape):
    return (batch_shape,) if isinstance(batch_shape, int) else tuple(batch_shape)


def random_params(part, input_size):
    """Params of ``part``'s structure and shapes (``init`` traced, not run: no compiling), drawn in numpy."""
    shapes = jax.eval_shape(lambda key: part.init(key, input_size), KEY)
    return jax.tree_util.tree_map(lambda s: (0.5 * RNG.standard_normal(s.shape)).astype(s.dtype), shapes)


# --- a user's plain cell: Part(init, initial_carry, step), a step without a key ---------------------------------


def elman_init(key, input_size):
    k_u, k_w = jax.random.split(key)
    return {"U": 0.5 * jax.random.normal(k_u, (input_size, H)), "W": 0.5 * jax.random.normal(k_w, (H, H))}


def elman_initial_carry(batch_shape=(), dtype=jnp.float32):
    return jnp.zeros(batch(batch_shape) + (H,), dtype)


def elman_step(params, h, x):
    h = jnp.tanh(x @ params["U"] + h @ params["W"])
    return h, h


ELMAN = Part(elman_init, elman_initial_carry, elman_step)
ELMAN_PARAMS = random_params(ELMAN, I)
XS = RNG.standard_normal((T, B, I)).astype(np.float32)
H0 = RNG.standard_normal((B, H)).astype(np.float32)
LENGTHS = np.array([5, 2])


def python_loop(params, xs, h0, lengths=None, reverse=False):
    """The Elman cell one sequence and one step at a time, in float64 numpy: ``(final carry, ys)``."""
    U, W = (np.asarray(params[k], np.float64) for k in ("U", "W"))
    xs, h0 = np.asarray(xs, np.float64), np.asarray(h0, np.float64)
    ys, finals = np.zeros(xs.shape[:2] + (H,)), []
    for b in range(xs.shape[1]):
        n = xs.shape[0] if lengths is None else int(lengths[b])
        h = h0[b]
        for t in reversed(range(n)) if reverse else range(n):
            h = np.tanh(xs[t, b] @ U + h @ W)
            ys[t, b] = h
        finals.append(h)
    return np.stack(finals), ys


def close(a, b, atol=1e-5):
    np.testing.assert_allclose(np.asarray(a, np.float64), np.asarray(b, np.float64), atol=atol, rtol=1e-5)


# --- Part construction -----------------------------------------------------------------------------------------


def elman_sequence(params, xs, carry, **options):
    return jax.lax.scan(lambda h, x: elman_step(params, h, x), carry, xs)


@pytest.mark.parametrize("field, message", [
    ("init", "Part: init must be a function, got int"),
    ("initial_carry", "Part: initial_carry must be a function, got str"),
    ("step", "Part: step must be a function or None, got int"),
    ("sequence", "Part: sequence must be a function or None, got int"),
    ("final_output", "Part: final_output must be a function or None, got int"),
    ("validate", "Part: validate must be a function or None, got int"),
])
def test_part_rejects_a_field_that_is_not_a_function(field, message):
    fields = dict(init=elman_init, initial_carry=elman_initial_carry, step=elman_step)
    fields[field] = "x" if field == "initial_carry" else 3
    with pytest.raises(TypeError) as error:
        Part(**fields)
    assert str(error.value) == message


def test_part_needs_a_step_or_a_sequence_and_an_info():
    with pytest.raises(TypeError, match="give a step, a sequence, or both"):
        Part(elman_init, elman_initial_carry)
    with pytest.raises(TypeError, match="give a step, a sequence, or both"):
        Part(elman_init, elman_initial_carry, None, None)
    with pytest.raises(TypeError) as error:
        Part(elman_init, elman_initial_carry, elman_step, info={"kind": "rnn"})
    assert str(error.value) == "Part: info must be a jaxrnn.Info, got dict"
    with pytest.raises(TypeError, match="Part: init must be a function, got NoneType"):
        Part(None, elman_initial_carry, elman_step)
    assert Part(elman_init, elman_initial_carry, sequence=elman_sequence).step is None
    assert Part(elman_init, elman_initial_carry, elman_step).sequence is None
    part = Part(elman_init, elman_initial_carry, elman_step)
    assert part.info == Info() and part.info.kind == "custom" and part.info.paths == ("plain",)
    assert part.final_output is None and part.validate is None and part.init is elman_init
    assert part.initial_carry is elman_initial_carry
    with pytest.raises(TypeError, match="expected a jaxrnn.Part to scan .* got tuple"):
        jaxrnn.scan(tuple(part), ELMAN_PARAMS, XS)


def test_a_step_without_a_key_is_wrapped_to_take_one():
    assert ELMAN.step is not elman_step and ELMAN.step.__wrapped__ is elman_step
    h, y = ELMAN.step(ELMAN_PARAMS, H0, XS[0], key=jax.random.key(3))
    h_raw, y_raw = elman_step(ELMAN_PARAMS, H0, XS[0])
    np.testing.assert_array_equal(h, h_raw)
    np.testing.assert_array_equal(y, y_raw)
    np.testing.assert_array_equal(ELMAN.step(ELMAN_PARAMS, H0, XS[0])[0], h_raw)  # key optional
    np.testing.assert_array_equal(ELMAN.step(ELMAN_PARAMS, H0, XS[0], key=None)[0], h_raw)


def test_a_step_that_takes_a_key_or_kwargs_is_kept_as_it_is():
    def keyed(params, carry, x, *, key=None):
        return carry, x

    def keyed_positional(params, carry, x, key=None):
        return carry, x

    def with_kwargs(params, carry, x, **kwargs):
        return carry, x

    for step in (keyed, keyed_positional, with_kwargs):
        assert Part(elman_init, elman_initial_carry, step).step is step
    for built in (jaxrnn.lstm(2), jaxrnn.linear(2)):  # steps that take a key: rebuilding the part keeps them
        assert Part(*built).step is built.step


def test_rebuilding_a_part_does_not_wrap_its_step_again():
    for built in (ELMAN, jaxrnn.mingru(2)):
        assert Part(*built).step is built.step


# --- a user's plain cell runs wherever a built-in does ---------------------------------------------------------


@pytest.mark.parametrize("lengths, reverse, remat, time_major", [
    (None, False, False, True),
    (LENGTHS, True, False, True),
    (None, True, True, False),
    (LENGTHS, False, True, False),
])
def test_a_plain_user_part_scans_as_a_python_loop(lengths, reverse, remat, time_major):
    xs = XS if time_major else jnp.swapaxes(XS, 0, 1)
    final, ys = jaxrnn.scan(ELMAN, ELMAN_PARAMS, xs, H0, lengths=lengths, reverse=reverse, remat=remat,
                            time_major=time_major)
    want_final, want_ys = python_loop(ELMAN_PARAMS, XS, H0, lengths, reverse)
    close(final, want_final)
    close(ys if time_major else jnp.swapaxes(ys, 0, 1), want_ys)


def test_a_plain_user_part_starts_from_its_initial_carry_and_takes_every_path():
    want_final, want_ys = python_loop(ELMAN_PARAMS, XS, np.zeros((B, H)))
    final, ys = jaxrnn.scan(ELMAN, ELMAN_PARAMS, XS, path="fused")
    close(final, want_final)
    close(ys, want_ys)
    for path in PATHS:  # traced only: the loop of the step whatever the path
        final, ys = jax.eval_shape(lambda xs: jaxrnn.scan(ELMAN, ELMAN_PARAMS, xs, path=path), XS)
        assert final.shape == (B, H) and ys.shape == (T, B, H)
    for path in PATHS:
        for remat in (False, True):
            assert resolve_path(path, ELMAN, remat=remat) == "plain"


def test_a_plain_user_part_in_a_stack():
    part = jaxrnn.stack([ELMAN, ELMAN, jaxrnn.linear(2)])
    assert part.step is not None and part.info.size == 2 and part.info.reads_ids is False
    shapes = jax.eval_shape(lambda key: part.init(key, I), KEY)  # the stack inits each layer on its input size
    assert [{k: v.shape for k, v in p.items()} for p in shapes] == [
        {"U": (I, H), "W": (H, H)}, {"U": (H, H), "W": (H, H)}, {"kernel": (H, 2), "bias": (2,)}]
    params = random_params(part, I)
    carry = (H0, -H0, ())
    final, ys = jaxrnn.scan(part, params, XS, carry, lengths=LENGTHS)
    f0, y0 = python_loop(params[0], XS, H0, LENGTHS)
    f1, y1 = python_loop(params[1], y0, -H0, LENGTHS)
    out = y1 @ np.asarray(params[2]["kernel"], np.float64) + np.asarray(params[2]["bias"])
    out[np.arange(T)[:, None] >= LENGTHS] = 0.0
    close(final[0], f0)
    close(final[1], f1)
    assert final[2] == ()
    close(ys, out)
    # stepped by hand, with a key the wrapped steps accept and ignore
    _, y0 = python_loop(params[0], XS, H0)
    _, y1 = python_loop(params[1], y0, -H0)
    full = y1 @ np.asarray(params[2]["kernel"], np.float64) + np.asarray(params[2]["bias"])
    step, c = jax.jit(part.step), carry
    for t in range(T):
        c, y = step(params, c, XS[t], key=jax.random.fold_in(KEY, t))
        close(y, full[t])


def test_a_plain_user_part_in_a_bidirectional_layer():
    part = jaxrnn.bidirectional(ELMAN, ELMAN)
    assert part.step is None and part.info.size is None  # the custom part does not say its size
    params = random_params(part, I)
    (c_f, c_b), ys = jaxrnn.scan(part, params, XS, (H0, -H0), lengths=LENGTHS)
    f_f, y_f = python_loop(params["forward"], XS, H0, LENGTHS)
    f_b, y_b = python_loop(params["backward"], XS, -H0, LENGTHS, reverse=True)
    close(c_f, f_f)
    close(c_b, f_b)
    want = np.concatenate([y_f, y_b], -1)
    want[np.arange(T)[:, None] >= LENGTHS] = 0.0
    close(ys, want)
    # inside a stack, batch-major
    deep = jaxrnn.stack([part, jaxrnn.linear(1)])
    assert deep.step is None
    deep_params = random_params(deep, I)
    (inner, ()), out = jaxrnn.scan(deep, deep_params, jnp.swapaxes(XS, 0, 1), time_major=False)
    _, y_f = python_loop(deep_params[0]["forward"], XS, np.zeros((B, H)))
    _, y_b = python_loop(deep_params[0]["backward"], XS, np.zeros((B, H)), reverse=True)
    readout = np.concatenate([y_f, y_b], -1) @ np.asarray(deep_params[1]["kernel"], np.float64) + \
        deep_params[1]["bias"]
    close(out, np.swapaxes(readout, 0, 1))


# --- a user's part with only a sequence -------------------------------------------------------------------------

RECEIVED = []  # what cumulative_sum was called with, recorded at trace time


def cumulative_sum(params, xs, carry, **options):
    """``h_t = h_{t-1} + scale * x_t`` over the whole sequence at once; the output is ``h_t``."""
    RECEIVED.append((xs, carry, options))
    steps = params["scale"] * xs
    if options["reverse"]:
        hs = carry + jnp.cumsum(steps[::-1], axis=0)[::-1]
        return hs[0], hs
    hs = carry + jnp.cumsum(steps, axis=0)
    return hs[-1], hs


def cumsum_init(key, input_size):
    return {"scale": jnp.full((input_size,), 2.0)}


def cumsum_initial_carry(batch_shape=(), dtype=jnp.float32):
    return jnp.zeros(batch(batch_shape) + (I,), dtype)


CUMSUM = Part(cumsum_init, cumsum_initial_carry, sequence=cumulative_sum)


def test_a_sequence_only_part_is_run_by_scan_with_the_options():
    params = cumsum_init(KEY, I)
    xs = np.asarray(XS).copy()
    xs[3:, 1] = np.nan  # padding: scan zeroes it before the part sees it
    RECEIVED.clear()
    final, ys = jaxrnn.scan(CUMSUM, params, xs, H0[:, :I], lengths=LENGTHS)
    [(seen_xs, seen_carry, options)] = RECEIVED
    padded = np.where(np.arange(T)[:, None, None] < LENGTHS[:, None], xs, 0.0)
    np.testing.assert_array_equal(seen_xs, padded)
    np.testing.assert_array_equal(seen_carry, H0[:, :I])
    assert set(options) == {"lengths", "reverse", "unroll", "remat", "path", "key"}  # no "checked" unless set
    np.testing.assert_array_equal(options.pop("lengths"), LENGTHS)
    assert options == dict(reverse=False, unroll=1, remat=False, path="auto", key=None)
    want = H0[:, :I] + np.cumsum(2.0 * padded, axis=0)
    close(ys, want)
    close(final, want[-1])

    RECEIVED.clear()
    key = jax.random.key(7)
    final, ys = jaxrnn.scan(CUMSUM, params, XS, reverse=True, unroll=2, remat=True, path="fused", key=key,
                            checked=True)
    [(seen_xs, seen_carry, options)] = RECEIVED
    np.testing.assert_array_equal(seen_carry, np.zeros((B, I)))  # initial_carry(batch) when no carry is given
    assert options.pop("key") is key
    assert options == dict(lengths=None, reverse=True, unroll=2, remat=True, path="fused", checked=True)
    want = np.cumsum(2.0 * np.asarray(XS)[::-1], axis=0)[::-1]
    close(ys, want)
    close(final, want[0])


def test_a_sequence_only_part_cannot_be_stepped_but_stacks():
    assert CUMSUM.step is None
    part = jaxrnn.stack([CUMSUM, ELMAN])
    assert part.step is None and jaxrnn.stack([ELMAN, CUMSUM]).step is None
    assert jaxrnn.stack([ELMAN, ELMAN]).step is not None
    params = (cumsum_init(KEY, I), ELMAN_PARAMS)
    RECEIVED.clear()
    (c0, c1), ys = jaxrnn.scan(part, params, XS, key=jax.random.key(4))
    [(_, _, options)] = RECEIVED
    assert options["key"] is not None  # the stack hands the layer a key of its own
    sums = np.cumsum(2.0 * np.asarray(XS), axis=0)
    close(c0, sums[-1])
    want_final, want_ys = python_loop(params[1], sums, np.zeros((B, H)))
    close(c1, want_final)
    close(ys, want_ys)


# --- Info and describe ------------------------------------------------------------------------------------------

LOOPED = ("fused", "projected", "plain")
# The cells that map onto a oneDNN primitive list the "onednn" path first where the extension is built.
ONEDNN = ("onednn",) if jaxrnn.onednn.available() else ()
NATIVE = ONEDNN + LOOPED


def unnamed(x):
    return jnp.tanh(x)


@pytest.mark.parametrize("part, info", [
    (jaxrnn.rnn(8), Info("rnn", 8, activation="tanh", paths=NATIVE)),
    (jaxrnn.rnn(8, activation="relu"), Info("rnn", 8, activation="relu", paths=NATIVE)),
    (jaxrnn.rnn(8, activation=jax.nn.relu), Info("rnn", 8, activation="relu", paths=NATIVE)),
    (jaxrnn.rnn(8, activation=lambda x: jnp.tanh(x)), Info("rnn", 8, paths=LOOPED)),
    (jaxrnn.rnn(8, activation=unnamed), Info("rnn", 8, paths=LOOPED)),
    (jaxrnn.rnn(8, use_bias=False), Info("rnn", 8, activation="tanh", paths=NATIVE,
                                         options=(("use_bias", False),))),
    (jaxrnn.irnn(6), Info("rnn", 6, activation="relu", variant="irnn", paths=NATIVE,
                          options=(("recurrent_init", "identity"),))),
    (jaxrnn.lstm(8), Info("lstm", 8, paths=NATIVE)),
    (jaxrnn.lstm(8, forget_bias=0.5), Info("lstm", 8, paths=NATIVE, options=(("forget_bias", 0.5),))),
    (jaxrnn.gru(8), Info("gru", 8, paths=ONEDNN + ("projected", "plain"))),
    (jaxrnn.gru(8, reset_after=True), Info("gru", 8, variant="reset_after", paths=NATIVE,
                                           options=(("reset_after", True),))),
    (jaxrnn.mingru(8), Info("mingru", 8, paths=("parallel", "plain"))),
    (jaxrnn.minlstm(8), Info("minlstm", 8, paths=("parallel", "plain"))),
    (jaxrnn.linear(3), Info("linear", 3, paths=())),
    (jaxrnn.linear(3, use_bias=False), Info("linear", 3, paths=(), options=(("use_bias", False),))),
    (jaxrnn.embedding(4), Info("embedding", 4, reads_ids=True, paths=())),
])
def test_info_of_the_built_in_parts(part, info):
    assert isinstance(part, Part)
    assert part.info == info


def test_info_is_frozen_and_reads_options():
    info = jaxrnn.lstm(8, forget_bias=0.5).info
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.size = 3
    assert info.option("forget_bias") == 0.5 and info.option("chrono") is None and info.option("chrono", 7) == 7


def test_info_of_a_stack():
    bottom, middle, top = jaxrnn.embedding(4), jaxrnn.lstm(8), jaxrnn.linear(3)
    info = jaxrnn.stack([bottom, middle, top]).info
    assert info == Info("stack", 3, reads_ids=True, paths=(), parts=(bottom, middle, top))
    assert all(a is b for a, b in zip(info.parts, (bottom, middle, top)))
    info = jaxrnn.stack([jaxrnn.lstm(8), jaxrnn.gru(8)], residual=True, dropout=0.25).info
    assert (info.kind, info.size, info.reads_ids, info.paths) == ("stack", 8, False, ())
    assert info.options == (("residual", True), ("dropout", 0.25))
    assert jaxrnn.stack([jaxrnn.lstm(8), jaxrnn.gru(8)], dropout=0.5).info.options == (("dropout", 0.5),)
    assert jaxrnn.stack([jaxrnn.lstm(8), jaxrnn.lstm(8)], residual=True).info.options == (("residual", True),)
    assert jaxrnn.stack([jaxrnn.lstm(8), jaxrnn.embedding(4)]).info.reads_ids is False  # read from the bottom
    assert jaxrnn.stack([jaxrnn.stack([jaxrnn.embedding(4), jaxrnn.gru(2)])]).info.reads_ids is True
    assert jaxrnn.stack([jaxrnn.lstm(8), ELMAN]).info.size is None  # the top layer's size


def test_info_of_a_bidirectional_layer():
    forward, backward = jaxrnn.lstm(8), jaxrnn.gru(4)
    info = jaxrnn.bidirectional(forward, backward).info
    assert info == Info("bidirectional", 12, paths=(), parts=(forward, backward))
    assert info.parts[0] is forward and info.parts[1] is backward
    for merge in ("sum", "mean", "mul"):
        info = jaxrnn.bidirectional(jaxrnn.lstm(8), jaxrnn.lstm(8), merge).info
        assert info.size == 8 and info.options == (("merge", merge),)

    def first(f, b):
        return f

    info = jaxrnn.bidirectional(jaxrnn.lstm(8), jaxrnn.lstm(8), first).info
    assert info.size is None and info.options == (("merge", first),)
    info = jaxrnn.bidirectional(jaxrnn.stack([jaxrnn.embedding(3), jaxrnn.lstm(2)]), jaxrnn.lstm(2)).info
    assert info.reads_ids is True and info.size == 4


def test_info_of_a_many_to_one_model():
    core = jaxrnn.lstm(8)
    model = jaxrnn.models.many_to_one(core, 2)
    assert isinstance(model, jaxrnn.Model) and not isinstance(model, Part)
    info = model.info
    assert (info.kind, info.size, info.reads_ids, info.paths) == ("many_to_one", 2, False, ())
    assert info.parts[0] is core and describe(info.parts[1]) == "linear(2)"
    assert jaxrnn.models.many_to_one(jaxrnn.stack([jaxrnn.embedding(3), core]), 1).info.reads_ids is True


@pytest.mark.parametrize("part, text", [
    (jaxrnn.stack([jaxrnn.embedding(4), jaxrnn.lstm(8), jaxrnn.linear(3)]),
     "stack([embedding(4), lstm(8), linear(3)])"),
    (jaxrnn.rnn(8), "rnn(8, activation='tanh')"),
    (jaxrnn.rnn(8, activation="relu", use_bias=False), "rnn(8, activation='relu', use_bias=False)"),
    (jaxrnn.lstm(8, forget_bias=0.5), "lstm(8, forget_bias=0.5)"),
    (jaxrnn.gru(8, reset_after=True), "gru(8, reset_after=True)"),
    (jaxrnn.mingru(2), "mingru(2)"),
    (jaxrnn.linear(3, use_bias=False), "linear(3, use_bias=False)"),
    (jaxrnn.stack([jaxrnn.lstm(8), jaxrnn.lstm(8)], residual=True, dropout=0.25),
     "stack([lstm(8), lstm(8)], residual=True, dropout=0.25)"),
    (jaxrnn.bidirectional(jaxrnn.lstm(8), jaxrnn.gru(4)), "bidirectional(lstm(8), gru(4))"),
    (jaxrnn.bidirectional(jaxrnn.lstm(8), jaxrnn.lstm(8), "sum"), "bidirectional(lstm(8), lstm(8), merge='sum')"),
    (jaxrnn.stack([jaxrnn.bidirectional(jaxrnn.gru(2), jaxrnn.gru(2), "mean"), jaxrnn.linear(1)]),
     "stack([bidirectional(gru(2), gru(2), merge='mean'), linear(1)])"),
    (ELMAN, "custom()"),
    (Part(elman_init, elman_initial_carry, elman_step, info=Info("elman", 4, activation="tanh", options=(("a", 1),))),
     "elman(4, activation='tanh', a=1)"),
])
def test_describe_is_the_call_that_builds_the_part(part, text):
    assert describe(part) == text
    assert repr(part) == f"Part({text})"


# --- resolve_path -----------------------------------------------------------------------------------------------


@pytest.mark.skipif(not CPU, reason="'auto' is 'onednn' or 'plain' on the CPU only")
@pytest.mark.parametrize("part", [jaxrnn.lstm(2), jaxrnn.gru(2), jaxrnn.gru(2, reset_after=True), jaxrnn.rnn(2),
                                  jaxrnn.mingru(2), jaxrnn.minlstm(2), ELMAN])
def test_resolve_path_auto_is_onednn_or_plain_on_cpu(part):
    assert resolve_path("auto", part) == ("onednn" if "onednn" in part.info.paths else "plain")
    assert resolve_path("auto", part, remat=True) == "plain"
    assert resolve_path("parallel", part) == ("parallel" if part.info.paths[0] == "parallel" else
                                              resolve_path("auto", part))


@pytest.mark.parametrize("part, path, remat, expected", [
    (jaxrnn.lstm(2), "fused", False, "fused"),
    (jaxrnn.lstm(2), "fused", True, "projected"),
    (jaxrnn.lstm(2), "projected", False, "projected"),
    (jaxrnn.lstm(2), "plain", False, "plain"),
    (jaxrnn.rnn(2), "fused", False, "fused"),
    (jaxrnn.gru(2), "fused", False, "projected"),
    (jaxrnn.gru(2), "fused", True, "projected"),
    (jaxrnn.gru(2, reset_after=True), "fused", False, "fused"),
    (jaxrnn.gru(2, reset_after=True), "fused", True, "projected"),
    (jaxrnn.mingru(2), "fused", False, "plain"),
    (jaxrnn.mingru(2), "projected", False, "plain"),
    (jaxrnn.mingru(2), "parallel", False, "parallel"),
    (jaxrnn.mingru(2), "parallel", True, "parallel"),
    (jaxrnn.minlstm(2), "parallel", False, "parallel"),
    (jaxrnn.minlstm(2), "plain", False, "plain"),
])
def test_resolve_path_per_part(part, path, remat, expected):
    assert resolve_path(path, part, remat=remat) == expected


def test_resolve_path_parallel_falls_back_to_auto():
    for part in (jaxrnn.lstm(2), jaxrnn.gru(2), jaxrnn.rnn(2)):
        for remat in (False, True):
            assert resolve_path("parallel", part, remat=remat) == resolve_path("auto", part, remat=remat)


@pytest.mark.parametrize("part", [jaxrnn.stack([jaxrnn.lstm(2)]), jaxrnn.bidirectional(jaxrnn.lstm(2), ELMAN),
                                  jaxrnn.linear(2), jaxrnn.embedding(2)])
def test_resolve_path_of_a_part_without_a_loop_of_its_own(part):
    with pytest.raises(TypeError, match=f"resolve_path: {part.info.kind} has no loop of its own"):
        resolve_path("auto", part)


def test_resolve_path_checks_its_arguments():
    with pytest.raises(ValueError, match="unknown path 'fast'"):
        resolve_path("fast", jaxrnn.lstm(2))
    with pytest.raises(TypeError, match="resolve_path: expected a jaxrnn.Part, got tuple"):
        resolve_path("auto", tuple(jaxrnn.lstm(2)))


# --- LSTMState --------------------------------------------------------------------------------------------------

LSTM = jaxrnn.lstm(H)
LSTM_PARAMS = random_params(LSTM, I)


def test_the_lstm_carry_is_an_lstm_state():
    carry = LSTM.initial_carry((2,))
    assert type(carry) is LSTMState and LSTMState._fields == ("h", "c")
    assert carry.h.shape == carry.c.shape == (2, H)
    assert LSTM.initial_carry(3).h.shape == (3, H) and LSTM.initial_carry().c.shape == (H,)
    final, ys = jaxrnn.scan(LSTM, LSTM_PARAMS, XS)
    assert type(final) is LSTMState
    np.testing.assert_array_equal(final.h, ys[-1])
    state, y = LSTM.step(LSTM_PARAMS, LSTM.initial_carry(B), XS[0])
    assert type(state) is LSTMState
    np.testing.assert_array_equal(state.h, y)


def test_a_plain_tuple_is_taken_for_an_lstm_state():
    h, c = H0, 0.5 * H0
    final, ys = jaxrnn.scan(LSTM, LSTM_PARAMS, XS, LSTMState(h, c), lengths=LENGTHS)
    final_tuple, ys_tuple = jaxrnn.scan(LSTM, LSTM_PARAMS, XS, (h, c), lengths=LENGTHS)
    assert type(final_tuple) is LSTMState
    np.testing.assert_array_equal(ys_tuple, ys)
    np.testing.assert_array_equal(final_tuple.h, final.h)
    np.testing.assert_array_equal(final_tuple.c, final.c)
    close(ys[0], LSTM.step(LSTM_PARAMS, LSTMState(h, c), XS[0])[1])  # the carry was read
    alone = jaxrnn.stack([LSTM])
    (inner,), out = jaxrnn.scan(alone, (LSTM_PARAMS,), XS, ((h, c),), lengths=LENGTHS)
    assert type(inner) is LSTMState
    np.testing.assert_array_equal(out, ys)
    np.testing.assert_array_equal(inner.c, final.c)


def test_a_carry_of_another_structure_is_an_error():
    for carry in (H0, (H0,), (H0, H0, H0), (H0, jnp.zeros((B, H + 1))), LSTMState(H0, jnp.zeros((3, H)))):
        with pytest.raises(ValueError, match="expected carry to be LSTMState with shapes"):
            jaxrnn.scan(LSTM, LSTM_PARAMS, XS, carry)
    with pytest.raises(ValueError, match="expected carry to be"):
        jaxrnn.scan(jaxrnn.stack([LSTM]), (LSTM_PARAMS,), XS, (H0, H0))
    with pytest.raises(ValueError, match="expected carry to be an array of shape"):
        jaxrnn.scan(ELMAN, ELMAN_PARAMS, XS, (H0, H0))


# --- get_layer_carry / set_layer_carry --------------------------------------------------------------------------

VOCAB = 5
DECODER = jaxrnn.stack([jaxrnn.embedding(3), jaxrnn.lstm(H), jaxrnn.linear(2)])
DECODER_PARAMS = random_params(DECODER, VOCAB)
IDS = RNG.integers(0, VOCAB, (T, B)).astype(np.int32)
STATE = LSTMState(H0, -H0)


@functools.cache
def decoder_from_zeros():
    return jaxrnn.scan(DECODER, DECODER_PARAMS, IDS, lengths=LENGTHS)


def test_get_layer_carry_of_a_stack():
    final, _ = decoder_from_zeros()
    assert get_layer_carry(DECODER, final, 1) is final[1]
    assert get_layer_carry(DECODER, final, -2) is final[1]
    assert get_layer_carry(DECODER, final, (1,)) is final[1]
    assert get_layer_carry(DECODER, final, 0) == () and get_layer_carry(DECODER, final, -1) == ()
    assert type(get_layer_carry(DECODER, final, 1)) is LSTMState


def test_get_layer_carry_through_nested_parts():
    inner = jaxrnn.stack([jaxrnn.gru(2), jaxrnn.lstm(3)])
    bi = jaxrnn.bidirectional(jaxrnn.lstm(H), jaxrnn.gru(2))
    part = jaxrnn.stack([jaxrnn.embedding(3), bi, inner])
    carry = part.initial_carry((B,))
    assert carry[1][0] is get_layer_carry(part, carry, (1, 0))
    assert type(get_layer_carry(part, carry, (1, 0))) is LSTMState
    assert get_layer_carry(part, carry, (1, 1)).shape == (B, 2)
    assert get_layer_carry(part, carry, (-1, -1)).h.shape == (B, 3)
    assert get_layer_carry(part, carry, (2, 0)) is carry[2][0]
    assert get_layer_carry(part, carry, 1) is carry[1]
    assert get_layer_carry(bi, carry[1], -1) is carry[1][1]


def test_layer_carry_errors():
    carry = DECODER.initial_carry(B)
    for layer in (3, -4, (3,)):
        with pytest.raises(IndexError, match="out of range for stack.*which has 3 layers"):
            get_layer_carry(DECODER, carry, layer)
        with pytest.raises(IndexError, match="which has 3 layers"):
            set_layer_carry(DECODER, carry, layer, STATE)
    nested = jaxrnn.stack([jaxrnn.bidirectional(jaxrnn.lstm(H), jaxrnn.lstm(H))])
    with pytest.raises(IndexError) as error:
        get_layer_carry(nested, nested.initial_carry(B), (0, 2))
    assert str(error.value) == ("layer (0, 2): index 2 out of range for bidirectional(lstm(4), lstm(4)), "
                                "which has 2 layers")
    with pytest.raises(TypeError, match=r"lstm\(4\) has no layers"):
        get_layer_carry(LSTM, LSTM.initial_carry(B), 0)
    with pytest.raises(TypeError, match=r"lstm\(4\) has no layers"):
        set_layer_carry(LSTM, LSTM.initial_carry(B), 0, STATE)
    with pytest.raises(TypeError, match=r"custom\(\) has no layers"):
        get_layer_carry(ELMAN, H0, 0)
    with pytest.raises(TypeError, match=r"lstm\(4\) has no layers"):  # a path that goes past a cell
        get_layer_carry(DECODER, carry, (1, 0))
    with pytest.raises(TypeError, match="expected a jaxrnn.Part, got tuple"):
        get_layer_carry(tuple(DECODER), carry, 0)
    for layer in ((), True, 1.0, (1, "0")):
        with pytest.raises(TypeError, match="layer: expected an int or a non-empty tuple of ints"):
            get_layer_carry(DECODER, carry, layer)
    for wrong in (carry[:2], list(carry), STATE):
        with pytest.raises(ValueError, match=r"expected the carry of stack\(\[embedding\(3\), lstm\(4\), linear\(2\)"
                                             r"\]\), a tuple of 3, got"):
            get_layer_carry(DECODER, wrong, 1)
        with pytest.raises(ValueError, match="a tuple of 3, got"):
            set_layer_carry(DECODER, wrong, 1, STATE)


def test_set_layer_carry_checks_the_value():
    carry = DECODER.initial_carry(B)
    with pytest.raises(ValueError) as error:
        set_layer_carry(DECODER, carry, 1, LSTMState(H0, jnp.zeros((B, H + 1))))
    assert str(error.value).startswith("layer (1,) (lstm(4)): expected carry to be LSTMState with shapes")
    with pytest.raises(ValueError, match=r"\(lstm\(4\)\): expected carry to be LSTMState"):
        set_layer_carry(DECODER, carry, 1, H0)
    with pytest.raises(ValueError, match=r"\(linear\(2\)\): expected carry to be"):
        set_layer_carry(DECODER, carry, 2, H0)
    bi = jaxrnn.stack([jaxrnn.bidirectional(jaxrnn.lstm(H), jaxrnn.gru(2))])
    with pytest.raises(ValueError, match=r"\(gru\(2\)\): expected carry to be an array of shape \(2, 2\)"):
        set_layer_carry(bi, bi.initial_carry(B), (0, 1), jnp.zeros((B, 3)))


def test_set_layer_carry_returns_a_new_carry():
    carry = DECODER.initial_carry(B)
    new = set_layer_carry(DECODER, carry, -2, (H0, -H0))  # a plain (h, c), stored as an LSTMState
    assert jax.tree_util.tree_structure(new) == jax.tree_util.tree_structure(carry)
    assert type(new) is tuple and len(new) == 3 and new[0] == () and new[2] == ()
    assert type(new[1]) is LSTMState
    np.testing.assert_array_equal(new[1].h, H0)
    np.testing.assert_array_equal(new[1].c, -H0)
    np.testing.assert_array_equal(carry[1].h, np.zeros((B, H)))  # the original is unchanged
    assert get_layer_carry(DECODER, new, 1) is new[1]

    bi = jaxrnn.bidirectional(jaxrnn.lstm(H), jaxrnn.gru(2))
    part = jaxrnn.stack([jaxrnn.embedding(3), bi])
    carry = part.initial_carry(B)
    new = set_layer_carry(part, carry, (1, 0), (H0, H0))
    assert type(new[1][0]) is LSTMState and new[1][1] is carry[1][1] and new[0] == ()
    np.testing.assert_array_equal(new[1][0].c, H0)
    np.testing.assert_array_equal(carry[1][0].c, np.zeros((B, H)))
    new = set_layer_carry(part, carry, (-1, -1), jnp.ones((B, 2)))
    np.testing.assert_array_equal(new[1][1], np.ones((B, 2)))
    assert new[1][0] is carry[1][0]
    new = set_layer_carry(part, new, -1, (STATE, -jnp.ones((B, 2))))
    assert jax.tree_util.tree_structure(new) == jax.tree_util.tree_structure(carry)
    np.testing.assert_array_equal(new[1][1], -np.ones((B, 2)))


def test_a_stack_run_from_a_set_layer_carry():
    carry = set_layer_carry(DECODER, DECODER.initial_carry(B), 1, STATE)
    (c0, c1, c2), ys = jaxrnn.scan(DECODER, DECODER_PARAMS, IDS, carry, lengths=LENGTHS)
    embedded = DECODER_PARAMS[0]["table"][IDS]
    state, hs = jaxrnn.scan(DECODER.info.parts[1], DECODER_PARAMS[1], embedded, STATE, lengths=LENGTHS)
    _, want = jaxrnn.scan(DECODER.info.parts[2], DECODER_PARAMS[2], hs, lengths=LENGTHS)
    close(c1.h, state.h)
    close(c1.c, state.c)
    close(ys, want)
    _, from_zeros = decoder_from_zeros()
    assert not np.allclose(ys, from_zeros)


def test_set_layer_carry_names_the_whole_path_of_a_nested_layer():
    part = jaxrnn.stack([jaxrnn.embedding(3), jaxrnn.bidirectional(jaxrnn.lstm(H), jaxrnn.gru(2))])
    with pytest.raises(ValueError, match=r"^layer \(1, 0\) \(lstm\(4\)\)"):
        set_layer_carry(part, part.initial_carry(B), (1, 0), H0)


def test_replace_keeps_the_contract():
    part = ELMAN._replace(step=elman_step)
    assert part.step is not elman_step  # wrapped to take a key, as Part(...) would
    with pytest.raises(TypeError):
        ELMAN._replace(step=3)


# --- deprecated names and the public names ------------------------------------------------------------------------


def test_deprecated_cell_is_part():
    with pytest.warns(DeprecationWarning, match=r"jaxrnn.Cell is deprecated .* use jaxrnn.Part"):
        assert jaxrnn.Cell is jaxrnn.Part
    with pytest.warns(DeprecationWarning):
        assert isinstance(jaxrnn.lstm(2), jaxrnn.Cell)


def test_deprecated_layer_builds_a_sequence_part():
    calls = []

    def apply(params, xs, carry, **options):
        calls.append(carry)
        return cumulative_sum(params, xs, carry, **options)

    with pytest.warns(DeprecationWarning, match=r"jaxrnn.Layer is deprecated .* sequence=apply"):
        layer = jaxrnn.Layer(cumsum_init, cumsum_initial_carry, apply)
    assert isinstance(layer, Part) and layer.step is None and layer.sequence is apply
    final, ys = jaxrnn.scan(layer, cumsum_init(KEY, I), XS, H0[:, :I])
    [carry] = calls
    np.testing.assert_array_equal(carry, H0[:, :I])
    want = H0[:, :I] + np.cumsum(2.0 * np.asarray(XS), axis=0)
    close(ys, want)
    close(final, want[-1])


def test_deprecated_names_of_other_modules():
    import jaxrnn.cells.activations
    import jaxrnn.training
    import jaxrnn.vocabulary

    for name in ("train_step", "carried_step", "truncated_bptt_step", "TrainState"):
        with pytest.warns(DeprecationWarning, match=f"jaxrnn.{name} is deprecated .* use jaxrnn.training.{name}"):
            assert getattr(jaxrnn, name) is getattr(jaxrnn.training, name)
    with pytest.warns(DeprecationWarning, match="use jaxrnn.vocabulary.Vocabulary"):
        assert jaxrnn.Vocabulary is jaxrnn.vocabulary.Vocabulary
    with pytest.warns(DeprecationWarning, match="jaxrnn.ACTIVATIONS is deprecated"):
        assert jaxrnn.ACTIVATIONS is jaxrnn.cells.activations.ACTIVATIONS


def test_public_names():
    names = jaxrnn.__all__
    assert names == sorted(names) and len(set(names)) == len(names)
    deprecated = {"Cell", "Layer", "train_step", "carried_step", "truncated_bptt_step", "TrainState", "Vocabulary",
                  "ACTIVATIONS"}
    assert not deprecated & set(names)
    assert {"Part", "Info", "Model", "LSTMState", "describe", "scan", "stack", "bidirectional", "get_layer_carry",
            "set_layer_carry", "lstm", "gru", "rnn", "irnn", "mingru", "minlstm", "linear", "embedding"} <= set(names)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        for name in names:
            assert getattr(jaxrnn, name) is not None
    assert not hasattr(jaxrnn, "no_such_name") and not hasattr(jaxrnn, "_no_such_module")


# --- the one Model.apply signature --------------------------------------------------------------------------------

MODEL = jaxrnn.models.many_to_one(LSTM, 2)
MODEL_PARAMS = random_params(MODEL, I)


def test_many_to_one_apply_signature():
    y = MODEL.apply(MODEL_PARAMS, XS, lengths=LENGTHS)
    assert y.shape == (B, 2)
    _, hs = jaxrnn.scan(LSTM, MODEL_PARAMS["cell"], XS, lengths=LENGTHS)
    last = hs[LENGTHS - 1, np.arange(B)]
    readout = MODEL_PARAMS["readout"]
    close(y, last @ readout["kernel"] + readout["bias"])
    close(MODEL.apply(MODEL_PARAMS, jnp.swapaxes(XS, 0, 1), lengths=LENGTHS, time_major=False), y)
    with pytest.raises(TypeError, match="positional argument"):
        MODEL.apply(MODEL_PARAMS, XS, LENGTHS)
    with pytest.raises(TypeError, match="positional argument"):
        MODEL.apply(MODEL_PARAMS, XS, None)
    with pytest.raises(TypeError, match="unexpected keyword argument 'carry'"):
        MODEL.apply(MODEL_PARAMS, XS, carry=None)
    for key in (1, jnp.zeros(3), "key"):
        with pytest.raises(TypeError, match=r"key: expected a random key \(jax.random.key\(seed\)\) or None"):
            MODEL.apply(MODEL_PARAMS, XS, key=key)
    with pytest.raises(ValueError, match="expected the params of a many_to_one model"):
        MODEL.apply(MODEL_PARAMS["cell"], XS)
