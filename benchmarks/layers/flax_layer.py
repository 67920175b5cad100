"""Flax as its users write it: ``nn.RNN`` over a cell, default (batch-major) layout."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.layers.jax_common import JAX_DTYPES, jax_case
from benchmarks.shapes import Shape
from benchmarks.timing import Case

CELLS = {"lstm": "OptimizedLSTMCell", "gru": "GRUCell", "rnn": "SimpleCell"}


def unavailable() -> str | None:
    import flax.linen  # noqa: F401  (an ImportError is reported by layers.unavailable)

    return None


def build(cell: str, shape: Shape, mode: str, dtype: str, xs: np.ndarray) -> Case:
    import flax.linen as nn

    kw = {} if dtype == "float32" else {"dtype": jnp.bfloat16}  # float32 params, bfloat16 compute
    model = nn.RNN(getattr(nn, CELLS[cell])(features=shape.H, **kw))
    x = jnp.asarray(np.ascontiguousarray(xs.transpose(1, 0, 2)), JAX_DTYPES[dtype])  # (B, T, I)
    carry_kw = {}
    if kw and cell == "rnn":
        # SimpleCell(dtype=bfloat16) returns a bfloat16 carry from a float32 initial one, which
        # lax.scan rejects; a Flax user passes a bfloat16 initial carry.
        carry_kw = {"initial_carry": jnp.zeros((shape.B, shape.H), jnp.bfloat16)}
    params = model.init(jax.random.key(0), x, **carry_kw)["params"]

    def apply(params, x):
        return model.apply({"params": params}, x, **carry_kw)

    dtype_kw = ", dtype=jnp.bfloat16" if kw else ""
    carry_arg = ", initial_carry=zeros((B, H), bfloat16)" if carry_kw else ""
    what = f"nn.RNN(nn.{CELLS[cell]}({shape.H}{dtype_kw})).apply(params, x[B, T, I]{carry_arg})"
    return jax_case("Flax", what, apply, params, x, mode)
