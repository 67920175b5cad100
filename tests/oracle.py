"""An independent oracle for jaxrnn: every part's sequence function written out from its equations.

Nothing here calls the library's math. A part is described by a small *spec* (:class:`Cell`,
:class:`Embedding`, :class:`Linear`, :class:`Stack`, :class:`Bi`); :func:`build` turns a spec into the
library's part (the only use of jaxrnn here), and :func:`run` computes the part's ``(final_carry, ys)``
from the library's params pytree, step by step, in float64:

* ``run(spec, params, xs, ...)`` with numpy (the default): a Python loop over time, float64;
* ``run(..., xp=jax.numpy)``: the same formulas through ``lax.scan``, for float64 gradients, JVPs and
  Hessians by JAX's autodiff of *these* formulas (call it under ``jax.enable_x64(True)``).

The equations (row-vector style, as the params are laid out; ``s`` the logistic sigmoid):

* rnn:   ``h = phi(x U + h W + b)``, ``phi`` tanh or relu (irnn: relu);
* lstm:  ``[i f g o] = x U + h W + b``; ``c = s(f) c + s(i) tanh(g)``; ``h = s(o) tanh(c)``; carry ``(h, c)``;
* gru (Cho et al., reset before the product): ``[r z] = s(x U_rz + h W_rz + b_rz)``,
  ``h~ = tanh(x U_h + (r h) W_h + b_h)``, ``h = (1 - z) h + z h~``;
* gru reset_after (cuDNN/PyTorch): ``r, z = s(x U_r + b_r + h W_r + bh_r), s(...)``,
  ``n = tanh(x U_n + b_n + r (h W_n + bh_n))``, ``h = (1 - z) n + z h``;
* mingru (Feng et al. 2024): ``z = s(x W_z + b_z)``, ``h = (1 - z) h + z g(x W_h + b_h)``,
  ``g(v) = v + 1/2`` for ``v >= 0``, ``s(v)`` below;
* minlstm: ``f, i = s(x W_f + b_f), s(x W_i + b_i)``; ``h = f/(f+i) h + i/(f+i) g(x W_h + b_h)``, with
  ``f/(f+i) = s(log f - log i)`` (finite where both gates underflow);
* embedding: ``x = E[id]``, NaN for an id outside ``[0, V)``; linear: ``y = x K + b``.

``lengths``: a step ``t >= lengths[b]`` keeps the carry and outputs zeros (so with ``reverse`` each
sequence is read backwards from its own last element). A stack feeds each layer the one below
(``residual``: adds the layer's input to its output from the second layer on); a bidirectional layer
runs ``forward`` in the given direction and ``backward`` in the other and merges (``concat``, ``sum``),
padding outputs zero.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import numpy as np

# --- specs ---------------------------------------------------------------------------------------------

CELL_KINDS = ("rnn_tanh", "rnn_relu", "irnn", "lstm", "gru", "gru_ra", "mingru", "minlstm")


@dataclasses.dataclass(frozen=True)
class Cell:
    kind: str
    hidden: int


@dataclasses.dataclass(frozen=True)
class Embedding:
    features: int


@dataclasses.dataclass(frozen=True)
class Linear:
    features: int


@dataclasses.dataclass(frozen=True)
class Stack:
    parts: tuple
    residual: bool = False


@dataclasses.dataclass(frozen=True)
class Bi:
    forward: Any
    backward: Any
    merge: str = "concat"


def build(spec):
    """The library's part for ``spec``."""
    import jaxrnn

    if isinstance(spec, Cell):
        return {
            "rnn_tanh": lambda h: jaxrnn.rnn(h),
            "rnn_relu": lambda h: jaxrnn.rnn(h, activation="relu"),
            "irnn": lambda h: jaxrnn.irnn(h),
            "lstm": lambda h: jaxrnn.lstm(h),
            "gru": lambda h: jaxrnn.gru(h),
            "gru_ra": lambda h: jaxrnn.gru(h, reset_after=True),
            "mingru": lambda h: jaxrnn.mingru(h),
            "minlstm": lambda h: jaxrnn.minlstm(h),
        }[spec.kind](spec.hidden)
    if isinstance(spec, Embedding):
        return jaxrnn.embedding(spec.features)
    if isinstance(spec, Linear):
        return jaxrnn.linear(spec.features)
    if isinstance(spec, Stack):
        return jaxrnn.stack([build(p) for p in spec.parts], residual=spec.residual)
    if isinstance(spec, Bi):
        return jaxrnn.bidirectional(build(spec.forward), build(spec.backward), merge=spec.merge)
    raise TypeError(spec)


def reads_ids(spec) -> bool:
    if isinstance(spec, Embedding):
        return True
    if isinstance(spec, Stack):
        return reads_ids(spec.parts[0])
    if isinstance(spec, Bi):
        return reads_ids(spec.forward)
    return False


def out_features(spec, input_size: int) -> int:
    if isinstance(spec, Cell):
        return spec.hidden
    if isinstance(spec, (Embedding, Linear)):
        return spec.features
    if isinstance(spec, Stack):
        for part in spec.parts:
            input_size = out_features(part, input_size)
        return input_size
    if isinstance(spec, Bi):
        f, b = out_features(spec.forward, input_size), out_features(spec.backward, input_size)
        return f + b if spec.merge == "concat" else f
    raise TypeError(spec)


def describe(spec) -> str:
    if isinstance(spec, Cell):
        return spec.kind
    if isinstance(spec, Embedding):
        return f"emb{spec.features}"
    if isinstance(spec, Linear):
        return f"lin{spec.features}"
    if isinstance(spec, Stack):
        return "stack" + ("+res" if spec.residual else "") + "[" + ", ".join(describe(p) for p in spec.parts) + "]"
    if isinstance(spec, Bi):
        return f"bi-{spec.merge}({describe(spec.forward)}, {describe(spec.backward)})"
    raise TypeError(spec)


# --- the math ------------------------------------------------------------------------------------------


def sigmoid(xp, v):
    return 0.5 * (1.0 + xp.tanh(0.5 * v))  # no overflow for any v


def positive(xp, v):
    return xp.where(v >= 0, v + 0.5, sigmoid(xp, v))


def split(xp, a, n):
    size = a.shape[-1] // n
    return [a[..., k * size:(k + 1) * size] for k in range(n)]


def cell_step(xp, kind: str, p: dict, carry, x):
    """One step of a cell: ``(carry, y)``."""
    if kind in ("rnn_tanh", "rnn_relu", "irnn"):
        a = x @ p["input_kernel"] + carry @ p["recurrent_kernel"]
        if "bias" in p:
            a = a + p["bias"]
        h = xp.tanh(a) if kind == "rnn_tanh" else xp.where(a > 0, a, 0.0 * a)
        return h, h
    if kind == "lstm":
        h, c = carry
        i, f, g, o = split(xp, x @ p["input_kernel"] + h @ p["recurrent_kernel"] + p["bias"], 4)
        c = sigmoid(xp, f) * c + sigmoid(xp, i) * xp.tanh(g)
        h = sigmoid(xp, o) * xp.tanh(c)
        new = (h, c) if type(carry) is tuple else type(carry)(h, c)  # the caller's tuple, or jaxrnn.LSTMState
        return new, h
    if kind == "gru":
        h = carry
        xr, xz, xh = split(xp, x @ p["input_kernel"] + p["bias"], 3)
        hr, hz = split(xp, h @ p["recurrent_kernel"], 2)
        r, z = sigmoid(xp, xr + hr), sigmoid(xp, xz + hz)
        cand = xp.tanh(xh + (r * h) @ p["candidate_kernel"])
        h = (1.0 - z) * h + z * cand
        return h, h
    if kind == "gru_ra":
        h = carry
        xr, xz, xn = split(xp, x @ p["input_kernel"] + p["bias"], 3)
        hr, hz, hn = split(xp, h @ p["recurrent_kernel"] + p["recurrent_bias"], 3)
        r, z = sigmoid(xp, xr + hr), sigmoid(xp, xz + hz)
        n = xp.tanh(xn + r * hn)
        h = (1.0 - z) * n + z * h
        return h, h
    if kind == "mingru":
        h = carry
        kz, kh = split(xp, x @ p["input_kernel"] + p["bias"], 2)
        z = sigmoid(xp, kz)
        h = (1.0 - z) * h + z * positive(xp, kh)
        return h, h
    if kind == "minlstm":
        h = carry
        kf, ki, kh = split(xp, x @ p["input_kernel"] + p["bias"], 3)
        # f / (f + i) = s(log f - log i), with log s(v) = -log(1 + e^-v): finite where f and i underflow
        d = xp.logaddexp(0.0, -ki) - xp.logaddexp(0.0, -kf)
        h = sigmoid(xp, d) * h + sigmoid(xp, -d) * positive(xp, kh)
        return h, h
    raise ValueError(kind)


def initial_carry(spec, batch_shape, xp=np):
    def zeros(n):
        return xp.zeros(tuple(batch_shape) + (n,), xp.float64)
    if isinstance(spec, Cell):
        return (zeros(spec.hidden), zeros(spec.hidden)) if spec.kind == "lstm" else zeros(spec.hidden)
    if isinstance(spec, (Embedding, Linear)):
        return ()
    if isinstance(spec, Stack):
        return tuple(initial_carry(p, batch_shape, xp) for p in spec.parts)
    if isinstance(spec, Bi):
        return (initial_carry(spec.forward, batch_shape, xp), initial_carry(spec.backward, batch_shape, xp))
    raise TypeError(spec)


def _expand(xp, mask, like):
    return xp.reshape(mask, mask.shape + (1,) * (like.ndim - mask.ndim))


def _time_loop(xp, step, carry, xs, valid, reverse):
    """``for t`` (backwards with ``reverse``): ``carry, y = step(carry, xs[t])``, frozen where not ``valid[t]``."""
    tree_map = jax.tree_util.tree_map

    def body(carry, inputs):
        x, ok = inputs
        new, y = step(carry, x)
        new = tree_map(lambda n, o: xp.where(_expand(xp, ok, n), n, o), new, carry)
        return new, xp.where(_expand(xp, ok, y), y, 0.0 * y)

    if xp is np:
        ys = [None] * xs.shape[0]
        for t in (reversed(range(xs.shape[0])) if reverse else range(xs.shape[0])):
            carry, ys[t] = body(carry, (xs[t], valid[t]))
        if not ys:
            return carry, None
        return carry, np.stack(ys)
    from jax import lax

    if xs.shape[0] == 0:
        return carry, None
    return lax.scan(body, carry, (xs, valid), reverse=reverse)


def valid_mask(xp, time, batch_shape, lengths):
    if lengths is None:
        return xp.ones((time,) + tuple(batch_shape), bool)
    steps = xp.reshape(xp.arange(time), (time,) + (1,) * len(batch_shape))
    return steps < xp.asarray(lengths)


def run(spec, params, xs, carry=None, *, lengths=None, reverse=False, xp=np):
    """``(final_carry, ys)`` of ``spec``'s part over time-major ``xs``, in float64 (numpy) or with ``xp``'s dtype.

    ``xs``: ``(T, *batch, I)``, or integer ids ``(T, *batch)`` for a part that reads ids.
    """
    ids = reads_ids(spec)
    if xp is np:
        params = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), params)
        xs = np.asarray(xs) if ids else np.asarray(xs, np.float64)
        carry = None if carry is None else jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), carry)
    batch_shape = xs.shape[1:] if ids else xs.shape[1:-1]
    if carry is None:
        carry = initial_carry(spec, batch_shape, xp)
    valid = valid_mask(xp, xs.shape[0], batch_shape, lengths)
    return _run(xp, spec, params, xs, carry, valid, reverse)


def _run(xp, spec, params, xs, carry, valid, reverse):
    if isinstance(spec, Embedding):
        table = params["table"]
        vocab = table.shape[0]
        inside = (xs >= 0) & (xs < vocab)
        rows = table[xp.clip(xs, 0, vocab - 1)]
        rows = xp.where(_expand(xp, inside, rows), rows, xp.nan)
        return (), xp.where(_expand(xp, valid, rows), rows, 0.0)
    if isinstance(spec, Linear):
        ys = xs @ params["kernel"] + params["bias"]
        return (), xp.where(_expand(xp, valid, ys), ys, 0.0)
    if isinstance(spec, Cell):
        final, ys = _time_loop(xp, lambda c, x: cell_step(xp, spec.kind, params, c, x), carry, xs, valid, reverse)
        if ys is None:  # T = 0
            ys = xp.zeros(xs.shape[:-1] + (spec.hidden,), xp.float64)
        return final, ys
    if isinstance(spec, Stack):
        finals = []
        for layer, (part, p, c) in enumerate(zip(spec.parts, params, carry)):
            c, ys = _run(xp, part, p, xs, c, valid, reverse)
            xs = xs + ys if spec.residual and layer > 0 else ys
            finals.append(c)
        return tuple(finals), xs
    if isinstance(spec, Bi):
        cf, yf = _run(xp, spec.forward, params["forward"], xs, carry[0], valid, reverse)
        cb, yb = _run(xp, spec.backward, params["backward"], xs, carry[1], valid, not reverse)
        ys = xp.concatenate([yf, yb], axis=-1) if spec.merge == "concat" else yf + yb
        return (cf, cb), xp.where(_expand(xp, valid, ys), ys, 0.0)
    raise TypeError(spec)


# --- many-to-one ---------------------------------------------------------------------------------------


def final_output(spec, params, xs, valid, lengths, reverse, xp=np):
    """A part's output once it has read each whole sequence, ``(*batch, O)`` (zeros for length 0).

    A cell (or a stateless part) reading forwards answers with its output at the last valid step;
    reading backwards, with its output at ``t = 0``. A bidirectional layer merges its forward
    direction's final output with its backward direction's (read the other way): PyTorch's ``h_n`` of
    both. A stack answers with its top recurrent layer's final output (plus the input at the same end,
    when residual), passed through the stateless layers above it.
    """
    time = xs.shape[0]

    def end(ys):
        if time == 0:
            return xp.zeros(ys.shape[1:])
        if reverse:
            picked = ys[0]
        else:
            index = xp.clip(lengths - 1, 0, time - 1)
            picked = xp.take_along_axis(ys, index[None, ..., None], axis=0)[0]
        return xp.where((lengths > 0)[..., None], picked, 0.0)

    def stateless(s):
        return isinstance(s, (Embedding, Linear))
    if isinstance(spec, Bi):
        f = final_output(spec.forward, params["forward"], xs, valid, lengths, reverse, xp)
        b = final_output(spec.backward, params["backward"], xs, valid, lengths, not reverse, xp)
        merged = xp.concatenate([f, b], axis=-1) if spec.merge == "concat" else f + b
        return xp.where((lengths > 0)[..., None], merged, 0.0)
    if isinstance(spec, Stack) and not all(stateless(p) for p in spec.parts):
        top = max(n for n, p in enumerate(spec.parts) if not stateless(p))
        for layer in range(top):
            batch_shape = xs.shape[1:-1] if not reads_ids(spec.parts[layer]) else xs.shape[1:]
            carry = initial_carry(spec.parts[layer], batch_shape, xp)
            _, ys = _run(xp, spec.parts[layer], params[layer], xs, carry, valid, reverse)
            xs = xs + ys if spec.residual and layer > 0 else ys
        y = final_output(spec.parts[top], params[top], xs, valid, lengths, reverse, xp)
        if spec.residual and top > 0:
            y = y + end(xs)
        for layer in range(top + 1, len(spec.parts)):
            p = params[layer]
            out = y @ p["kernel"] + p["bias"]
            y = y + out if spec.residual else out
        return y
    batch_shape = xs.shape[1:] if reads_ids(spec) else xs.shape[1:-1]
    _, ys = _run(xp, spec, params, xs, initial_carry(spec, batch_shape, xp), valid, reverse)
    return end(ys)


def many_to_one(core, params, xs, *, lengths=None, xp=np):
    """``jaxrnn.models.many_to_one(core, O)``'s answer: the readout of the core's :func:`final_output`."""
    ids = reads_ids(core)
    if xp is np:
        params = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), params)
        xs = np.asarray(xs) if ids else np.asarray(xs, np.float64)
    batch_shape = xs.shape[1:] if ids else xs.shape[1:-1]
    lengths = xp.full(batch_shape, xs.shape[0]) if lengths is None else xp.asarray(lengths)
    valid = valid_mask(xp, xs.shape[0], batch_shape, lengths)
    answer = final_output(core, params["cell"], xs, valid, lengths, False, xp)
    return answer @ params["readout"]["kernel"] + params["readout"]["bias"]
