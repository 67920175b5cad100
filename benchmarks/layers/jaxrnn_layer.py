"""jaxrnn as a user writes it: a cell factory with default options, ``jaxrnn.scan``, time-major inputs.

``scan_options`` (empty by default, ``--scan KEY=VALUE`` on the command line)
passes public keyword arguments to ``jaxrnn.scan`` -- to compare its options,
never to tune the default run.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

import jaxrnn
from benchmarks.layers.jax_common import JAX_DTYPES, jax_case
from benchmarks.shapes import Shape
from benchmarks.timing import Case
from jaxrnn.loop import resolve_path

# gru: the cuDNN/PyTorch/Flax variant, so that all frameworks compute the same
# function (jaxrnn's default gru is the reset-before variant: reset gate before the product).
PLAIN = "jaxrnn plain"  # the framework name of build_plain's column

FACTORIES = {
    "lstm": ("jaxrnn.lstm({H}{kw})", lambda H, **kw: jaxrnn.lstm(H, **kw)),
    "gru": ("jaxrnn.gru({H}, reset_after=True{kw})", lambda H, **kw: jaxrnn.gru(H, reset_after=True, **kw)),
    "rnn": ("jaxrnn.rnn({H}{kw})", lambda H, **kw: jaxrnn.rnn(H, **kw)),
}


def unavailable() -> str | None:
    return None


def path_taken(rnn_cell: jaxrnn.Part, apply, params, x, scan_options: dict, mode: str) -> str:
    """The path ``jaxrnn.scan`` took in ``mode``: :func:`jaxrnn.loop.resolve_path`'s, or ``"plain"`` where the
    oneDNN path declined the call (read off the traced program, differentiated for ``train``: no oneDNN
    custom call in it)."""
    path = resolve_path(scan_options.get("path", "auto"), rnn_cell, remat=scan_options.get("remat", False))
    traced = jax.grad(lambda p, x: jnp.sum(apply(p, x))) if mode == "train" else apply
    if path == "onednn" and "jaxrnn_onednn_forward" not in str(jax.make_jaxpr(traced)(params, x)):
        return "plain"
    return path


def build(cell: str, shape: Shape, mode: str, dtype: str, xs: np.ndarray, scan_options: dict | None = None,
          framework: str = "jaxrnn") -> Case:
    # bfloat16: float32 parameters, matrix products in bfloat16 (the cell's `dtype`).
    kw = {} if dtype == "float32" else {"dtype": jnp.bfloat16}
    template, factory = FACTORIES[cell]
    rnn_cell = factory(shape.H, **kw)
    params = rnn_cell.init(jax.random.key(0), shape.I)
    x = jnp.asarray(xs, JAX_DTYPES[dtype])  # (T, B, I): jaxrnn's layout

    scan_options = dict(scan_options or {})

    def apply(params, x):
        return jaxrnn.scan(rnn_cell, params, x, **scan_options)[1]

    name = template.format(H=shape.H, kw=", dtype=jnp.bfloat16" if kw else "")
    extra = "".join(f", {k}={v!r}" for k, v in scan_options.items())
    case = jax_case(framework, f"jaxrnn.scan({name}, params, x[T, B, I]{extra})[1]", apply, params, x, mode)
    return dataclasses.replace(case, path=path_taken(rnn_cell, apply, params, x, scan_options, mode))


def build_plain(cell: str, shape: Shape, mode: str, dtype: str, xs: np.ndarray) -> Case:
    """jaxrnn on its XLA loop (``path="plain"``): on a CPU, the baseline of the oneDNN path beside it."""
    return build(cell, shape, mode, dtype, xs, {"path": "plain"}, framework=PLAIN)
