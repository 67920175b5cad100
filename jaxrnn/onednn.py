"""The ``"onednn"`` path: a cell's whole sequence as one call of oneDNN's recurrent primitive, on x86 CPUs.

oneDNN (the library behind PyTorch's CPU ``nn.LSTM``) has fused primitives for
the vanilla RNN (tanh, ReLU), the LSTM, the GRU and the linear-before-reset
GRU, forward and backward. jaxrnn reaches them through two XLA FFI custom
calls in a small extension (``jaxrnn/_native/onednn_rnn.cc``, built when the
package is installed) and a custom VJP: the forward keeps oneDNN's workspace,
the backward hands it back with the cotangents. A cell built by
:func:`jaxrnn.rnn`, :func:`jaxrnn.lstm` or :func:`jaxrnn.gru` carries a
:class:`Recurrence`, how its parameters map onto oneDNN's
(``weights_layer: (I, G, H)``, ``weights_iter: (H, G, H)``, ``bias: (G', H)``,
gates in oneDNN's order), and :func:`jaxrnn.scan` takes this path for it
when :func:`jaxrnn.loop.resolve_path` says so: ``path="onednn"``, or
``"auto"`` on a CPU where the extension loaded, for a step at least
:data:`AUTO_MIN_WIDTH` wide (batch * gates * hidden), and for the vanilla
RNN only when it is differentiated.

It computes the same function as ``"plain"`` (the tests hold it to a float64
loop: values, gradients, lengths, reverse, batch axes, ``vmap``, ``jit``).
Where it cannot, :meth:`Recurrence.applies` is false and the cell runs
``"plain"`` instead: another dtype than float32, ``remat`` (oneDNN keeps every
step), forward-mode differentiation seen while tracing (``jvp``, ``jacfwd``,
``hessian``; a function jit-compiled before ``jax.jvp`` reaches it is not
seen, and JAX then refuses forward mode of the custom VJP with an error),
``vmap`` and differentiation together seen while tracing, an empty sequence
or batch, the LSTM or the ReLU RNN with ``lengths``.

``JAXRNN_ONEDNN=0`` in the environment keeps ``"auto"`` off this path (and
``path="onednn"`` falls back to ``"plain"``); :func:`status` says why the path
is or is not there. oneDNN runs on ``OMP_NUM_THREADS`` threads when that is
set, else on one thread or on the cores of the device, whichever ran the
shape faster lately (:func:`threads`).
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import functools
import importlib.metadata
import math
import os
import platform
import sys
from pathlib import Path
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.custom_batching import custom_vmap

__all__ = ["AUTO_MIN_WIDTH", "KINDS", "Recurrence", "available", "notice", "status", "switched_off", "threads"]

# oneDNN's primitive for each cell, as the extension numbers them.
KINDS = {"rnn_tanh": 0, "rnn_relu": 1, "lstm": 2, "gru": 3, "gru_reset_after": 4}
_BOUNDED = ("rnn_tanh", "gru", "gru_reset_after")  # kinds whose state stays in [-1, 1] over padding
_GATES = {"rnn_tanh": 1, "rnn_relu": 1, "lstm": 4, "gru": 3, "gru_reset_after": 3}
# "auto" takes the path when batch * gates * hidden (the width of a step's gate pre-activations) is at least
# this; below it a call's fixed cost leaves the gain uncertain (benchmarks/README.md, "The oneDNN path on
# the CPU", has the measurements).
AUTO_MIN_WIDTH = 4096
ENV = "JAXRNN_ONEDNN"
FFI_JAXLIB = (0, 10)  # the jaxlib whose XLA FFI headers (API 0.3) the extension is built with

Weights = tuple[jax.Array, jax.Array, jax.Array]


@dataclasses.dataclass(frozen=True)
class Recurrence:
    """How a cell maps onto one of oneDNN's recurrent primitives.

    Attributes:
      kind: a key of :data:`KINDS`.
      weights: ``weights(params) -> (weights_layer (I, G, H), weights_iter (H, G, H), bias (G', H))`` in
        oneDNN's gate order, computed with differentiable array operations (so gradients reach ``params``
        through them); ``G'`` is 4 for ``"gru_reset_after"`` (its extra bias inside the reset), else ``G``.
      compute_dtype: the cell's ``dtype`` option; the path takes ``None`` and float32 only.
    """

    kind: str
    weights: Callable[[Any], Weights]
    compute_dtype: Any = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"Recurrence: unknown kind {self.kind!r}; expected one of {', '.join(KINDS)}")

    def applies(self, params: Any, xs: jax.Array, carry: Any, *, lengths: jax.Array | None = None,
                remat: bool = False, auto: bool = False) -> bool:
        """Whether :meth:`__call__` computes this sequence (else run ``"plain"``); see the module docstring.

        ``auto``: asked by ``path="auto"``, which also wants the step wide enough to gain from oneDNN
        (:data:`AUTO_MIN_WIDTH`).
        """
        states = jax.tree_util.tree_leaves(carry)
        leaves = [xs, *states, *jax.tree_util.tree_leaves(params)]
        tracers = _tracers(leaves)
        differentiated = bool({"LinearizeTracer", "JVPTracer"} & tracers)
        if auto and math.prod(xs.shape[1:-1]) * _GATES[self.kind] * states[0].shape[-1] < AUTO_MIN_WIDTH:
            return False
        if auto and self.kind.startswith("rnn") and not differentiated:
            return False  # the vanilla RNN's forward alone: XLA's loop measured as fast or faster
        return (available() and not remat and xs.ndim >= 2 and xs.shape[0] > 0 and math.prod(xs.shape[1:]) > 0
                and all(leaf.dtype == jnp.float32 for leaf in leaves)
                and (self.compute_dtype is None or jnp.dtype(self.compute_dtype) == jnp.float32)
                and (lengths is None or self.kind in _BOUNDED)
                # forward mode (a JVPTracer at some level) the custom VJP does not take; vmap and differentiation
                # together would take one oneDNN call per mapped element ("plain" runs them as one batch)
                and "JVPTracer" not in tracers and not ("BatchTracer" in tracers and differentiated))

    def __call__(self, params: Any, xs: jax.Array, carry: Any, *, lengths: jax.Array | None = None,
                 reverse: bool = False) -> tuple[Any, jax.Array]:
        """``(final_carry, ys)`` over time-major ``xs: (T, *batch, I)``, as :func:`jaxrnn.scan` returns them.

        Padding (``lengths``) must already be zero in ``xs``; it keeps the carry and outputs zeros.
        """
        time, batch, features = xs.shape[0], xs.shape[1:-1], xs.shape[-1]
        n = math.prod(batch)
        leaves, tree = jax.tree_util.tree_flatten(carry)
        h0 = leaves[0].reshape(n, -1)
        c0 = leaves[1].reshape(n, -1) if self.kind == "lstm" else jnp.zeros((0,), jnp.float32)
        x = xs.reshape(time, n, features)
        weights = self.weights(params)
        kind = KINDS[self.kind]
        if lengths is None:
            x = x[::-1] if reverse else x
            y, h, c = _rnn(kind, x, h0, c0, *weights)
            y = y[::-1] if reverse else y
            final = [h, c] if self.kind == "lstm" else [h]
        else:  # bounded kinds only: the padding, zero, runs after each sequence's end and is cut off
            size = jnp.clip(lengths.reshape(n).astype(jnp.int32), 0, time)  # as masking reads a traced length
            steps = jnp.arange(time, dtype=jnp.int32)[:, None]
            valid = steps < size
            order = jnp.where(valid, size - 1 - steps, steps) if reverse else None  # each sequence read backwards
            if reverse:
                x = jnp.take_along_axis(x, order[:, :, None], axis=0)
            y, _, _ = _rnn(kind, x, h0, c0, *weights)
            last = jnp.take_along_axis(y, jnp.maximum(size - 1, 0)[None, :, None], axis=0)[0]
            final = [jnp.where((size > 0)[:, None], last, h0)]
            if reverse:
                y = jnp.take_along_axis(y, order[:, :, None], axis=0)
            y = jnp.where(valid[:, :, None], y, 0.0)
        final = [f.reshape(leaf.shape).astype(leaf.dtype) for f, leaf in zip(final, leaves)]
        return jax.tree_util.tree_unflatten(tree, final), y.reshape(time, *batch, -1)


def _tracers(leaves: list[Any]) -> set[str]:
    """The kinds of tracer wrapping ``leaves``, at every level (seen while tracing: a function compiled
    before a transformation reaches it shows none of that transformation's)."""
    seen = set()
    for leaf in leaves:
        for _ in range(64):
            if not isinstance(leaf, jax.core.Tracer):
                break
            seen.add(type(leaf).__name__)
            leaf = getattr(leaf, "primal", getattr(leaf, "val", None))
    return seen


# --- the extension --------------------------------------------------------------------------------


def switched_off() -> bool:
    """Whether ``JAXRNN_ONEDNN`` says no (``0``, ``false``, ``no``, ``off``)."""
    return os.environ.get(ENV, "1").strip().lower() in ("0", "false", "no", "off")


@functools.cache
def _library() -> tuple[ctypes.CDLL | None, str, bool]:
    """The loaded extension, a line saying why the path is or is not there, and whether it is missing where
    it should run (not switched off, an x86-64 Linux machine): what :func:`notice` tells."""
    if switched_off():
        return None, f"switched off ({ENV}={os.environ[ENV]})", False
    if sys.platform != "linux" or platform.machine().lower() not in ("x86_64", "amd64"):
        return None, f"oneDNN's path is built for x86-64 Linux; this is {sys.platform} on {platform.machine()}", False
    jaxlib = _jaxlib_version()
    if _version(jaxlib) < FFI_JAXLIB:
        return None, (f"the oneDNN extension needs jaxlib >= {'.'.join(map(str, FFI_JAXLIB))} (its XLA FFI "
                      f"headers), this is {jaxlib}"), True
    built = sorted(Path(__file__).parent.glob("_onednn*.so"))
    if not built:
        return None, ("the oneDNN extension was not built when jaxrnn was installed (no C++ compiler?); "
                      "reinstall with g++ present to use it"), True
    try:
        with _short_spin():
            ctypes.CDLL(_libdnnl(), mode=ctypes.RTLD_GLOBAL)  # the extension's libdnnl.so.3, found by its soname
        lib = ctypes.CDLL(str(built[0]))
        lib.jaxrnn_onednn_workspace_size.restype = ctypes.c_int64
        lib.jaxrnn_onednn_workspace_size.argtypes = [ctypes.c_int64] * 5
        lib.jaxrnn_onednn_version.restype = ctypes.c_int64
        for name in ("jaxrnn_onednn_forward", "jaxrnn_onednn_backward"):
            jax.ffi.register_ffi_target(name, jax.ffi.pycapsule(getattr(lib, name)), platform="cpu")
    except (OSError, AttributeError) as error:
        return None, f"the oneDNN extension did not load: {error}", True
    _keep_freed_memory()
    version = lib.jaxrnn_onednn_version()
    return lib, f"oneDNN {version // 10000}.{version // 100 % 100}.{version % 100}, {built[0].name}", False


@contextlib.contextmanager
def _short_spin():
    """Load libgomp (oneDNN's OpenMP runtime) with ``GOMP_SPINCOUNT=2000``, unless the user set how its
    threads wait (``GOMP_SPINCOUNT``, ``OMP_WAIT_POLICY``); the environment is as it was afterwards.

    A team's threads wait for each other at every time step of a recurrent primitive. By default libgomp's
    threads spin there about 300,000 times before they sleep, and a thread that spins while another has lost
    its core to some other program keeps that one from its work, step after step; spinning 2,000 times is as
    fast on idle cores (``benchmarks/README.md``, "The oneDNN path on the CPU"). libgomp reads this when it
    is loaded: where something loaded it before, its setting stays.
    """
    if any(name in os.environ for name in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")):
        yield
        return
    os.environ["GOMP_SPINCOUNT"] = "2000"
    try:
        yield
    finally:
        del os.environ["GOMP_SPINCOUNT"]


def _keep_freed_memory() -> None:
    """Let glibc's malloc keep freed blocks of up to 64 MB for the next allocation, unless the user set its
    thresholds (``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_``).

    oneDNN's training forward keeps a workspace of every step's gates and states (tens of MB), which XLA
    allocates afresh for each step; by default glibc maps every block over 32 MB from the kernel and
    unmaps it when freed, so each step paid to fault in and zero all its pages again.
    """
    if any(name in os.environ for name in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # another C library: its own policy
        return
    m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
    libc.mallopt(m_mmap_threshold, 64 << 20)
    libc.mallopt(m_trim_threshold, 128 << 20)


def _jaxlib_version() -> str:
    return importlib.metadata.version("jaxlib")


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".")[:2] if part.isdigit())


def _libdnnl() -> str:
    """The path of oneDNN's ``libdnnl.so.3`` from the ``onednn-cpu-gomp`` package, else its soname."""
    try:
        files = importlib.metadata.files("onednn-cpu-gomp") or []
    except importlib.metadata.PackageNotFoundError:
        files = []
    found = [f for f in files if f.name == "libdnnl.so.3"]
    return str(found[0].locate()) if found else "libdnnl.so.3"


def available() -> bool:
    """Whether the ``"onednn"`` path can run here (the extension built and loaded, not switched off)."""
    return _library()[0] is not None


def status() -> str:
    """One line: the oneDNN version and extension the path runs on, or why it is not available."""
    return _library()[1]


def notice() -> str | None:
    """One line for a user on an x86 CPU whose install could not build the extension, else ``None``."""
    _, why, missing = _library()
    if not missing or jax.default_backend() != "cpu":
        return None
    return f"note: jaxrnn's oneDNN CPU path is off: {why}; running on XLA's loop"


def threads() -> int:
    """The most threads one oneDNN call runs on: ``OMP_NUM_THREADS`` if set (then exactly that many), else
    this process's cores per CPU device, as XLA's own thread pool and PyTorch take all of them.

    Without ``OMP_NUM_THREADS`` a call runs on one thread or on all, whichever ran its shape faster lately
    (the extension times both, three times each, then tries the slower again every 16 calls): a team waits
    at every time step's barrier for its slowest thread, so on cores that other programs keep busy one
    thread can be several times faster than all, and on idle cores slower. Calls at once never hold more
    threads in all than there are cores, and the threads spin only briefly before they sleep
    (:func:`_short_spin`).
    """
    wanted = _omp_num_threads()
    if wanted is not None:
        return wanted
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // max(1, jax.local_device_count("cpu")))


def _omp_num_threads() -> int | None:
    """The user's ``OMP_NUM_THREADS`` (its first entry) if it is a positive integer, else ``None``."""
    wanted = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    return int(wanted) if wanted.isdigit() and int(wanted) > 0 else None


def _threads_attribute() -> np.int64:
    """:func:`threads` as the custom calls take it: negative where the extension may choose fewer (one)."""
    return np.int64(threads() if _omp_num_threads() is not None else -threads())


@functools.lru_cache(maxsize=256)
def _workspace_bytes(kind: int, time: int, n: int, features: int, hidden: int) -> int:
    size = _library()[0].jaxrnn_onednn_workspace_size(kind, time, n, features, hidden)
    if size < 0:
        raise ValueError(f"oneDNN has no primitive of kind {kind} for T={time}, N={n}, I={features}, H={hidden}")
    return size


# --- the calls, batched by vmap -------------------------------------------------------------------
#
# Under vmap the forward without a backward folds the mapped axis into oneDNN's batch when the weights are
# shared. With a backward, the weights' gradient must stay per mapped element (vmap of grad gives one per
# element), and oneDNN sums it over the batch: so the training forward and the backward run once per
# mapped element (lax.map), each with its own workspace. (``Recurrence.applies`` keeps a traced vmap on
# "plain"; these rules serve a function jit-compiled before it was vmapped.)


def _shape_structs(*arrays: jax.Array) -> tuple[jax.ShapeDtypeStruct, ...]:
    return tuple(jax.ShapeDtypeStruct(a.shape, jnp.float32) for a in arrays)


def _sequential(call, args: tuple[jax.Array, ...], batched: list[bool]):
    """``call`` once per mapped element (``lax.map``), the unmapped arguments shared."""
    def one(slices):
        it = iter(slices)
        return call(*[next(it) if b else a for a, b in zip(args, batched)])

    return lax.map(one, [a for a, b in zip(args, batched) if b])


def _fold(size: int, a: jax.Array, mapped: bool, timed: bool) -> jax.Array:
    """The mapped axis (0) into oneDNN's batch: ``(K, T, N, F) -> (T, K*N, F)``, ``(K, N, H) -> (K*N, H)``."""
    if a.ndim == 1 + mapped:  # c0 of size 0, for the cells without a cell state
        return a[0] if mapped else a
    a = a if mapped else jnp.broadcast_to(a, (size, *a.shape))
    return jnp.moveaxis(a, 0, 1).reshape(a.shape[1], -1, a.shape[-1]) if timed else a.reshape(-1, a.shape[-1])


def _unfold(size: int, a: jax.Array, timed: bool) -> jax.Array:
    if a.ndim == 1:
        return jnp.broadcast_to(a, (size, *a.shape))
    if timed:
        return jnp.moveaxis(a.reshape(a.shape[0], size, -1, a.shape[-1]), 1, 0)
    return a.reshape(size, -1, a.shape[-1])


@functools.cache
def _calls(kind: int):
    """The forward (with and without a workspace) and backward custom calls of ``kind``, batched by vmap."""

    def forward(training, x, h0, c0, wl, wi, b):
        time, n, features = x.shape
        hidden = h0.shape[-1]
        bytes_ = _workspace_bytes(kind, time, n, features, hidden) if training else 0
        shapes = (*_shape_structs(jax.ShapeDtypeStruct((time, n, hidden), x.dtype), h0, c0),
                  jax.ShapeDtypeStruct((bytes_,), jnp.uint8))
        call = jax.ffi.ffi_call("jaxrnn_onednn_forward", shapes)
        return call(x, h0, c0, wl, wi, b, kind=np.int64(kind), threads=_threads_attribute(), training=training)

    @custom_vmap
    def training(x, h0, c0, wl, wi, b):
        return forward(True, x, h0, c0, wl, wi, b)

    @custom_vmap
    def inference(x, h0, c0, wl, wi, b):
        return forward(False, x, h0, c0, wl, wi, b)[:3]

    @custom_vmap
    def backward(x, h0, c0, wl, wi, b, y, h, c, workspace, dy, dh, dc):
        call = jax.ffi.ffi_call("jaxrnn_onednn_backward", _shape_structs(x, h0, c0, wl, wi, b))
        return call(x, h0, c0, wl, wi, b, y, h, c, workspace, dy, dh, dc, kind=np.int64(kind),
                    threads=_threads_attribute())

    @training.def_vmap
    def _(size, batched, *args):
        return _sequential(training, args, batched), (True,) * 4

    @inference.def_vmap
    def _(size, batched, *args):
        if any(batched[3:]):  # weights of their own per element
            return _sequential(inference, args, batched), (True,) * 3
        x, h0, c0 = (_fold(size, a, m, t) for a, m, t in zip(args, batched, (True, False, False)))
        y, h, c = inference(x, h0, c0, *args[3:])
        return (_unfold(size, y, True), _unfold(size, h, False), _unfold(size, c, False)), (True,) * 3

    @backward.def_vmap
    def _(size, batched, *args):
        return _sequential(backward, args, batched), (True,) * 6

    return training, inference, backward


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _rnn(kind: int, x, h0, c0, wl, wi, b):
    """``(y (T, N, H), h_T (N, H), c_T)`` of oneDNN's primitive ``kind`` (``c`` of size 0 but for the LSTM)."""
    return _calls(kind)[1](x, h0, c0, wl, wi, b)


def _rnn_forward(kind, x, h0, c0, wl, wi, b):
    y, h, c, workspace = _calls(kind)[0](x, h0, c0, wl, wi, b)
    return (y, h, c), (x, h0, c0, wl, wi, b, y, h, c, workspace)


def _rnn_backward(kind, saved, cotangents):
    dy, dh, dc = cotangents
    return _calls(kind)[2](*saved, dy, dh, dc)


_rnn.defvjp(_rnn_forward, _rnn_backward)
