"""cuDNN called from JAX: ``jax.experimental.rnn.lstm`` (LSTM only, CUDA GPUs only).

Its layout is batch-major, its weights one flat vector from ``init_lstm_weight``;
float32 only, TF32 allowed (its default, as PyTorch's cuDNN RNNs).
"""

from __future__ import annotations

import numpy as np

from benchmarks.layers import Unavailable
from benchmarks.shapes import Shape
from benchmarks.timing import Case


def unavailable() -> str | None:
    try:
        import jax
        from jax.experimental import rnn  # noqa: F401
    except ImportError as error:
        return f"jax.experimental.rnn not importable ({error})"
    if jax.default_backend() != "gpu":
        return f"needs a CUDA GPU (JAX backend here: {jax.default_backend()})"
    try:
        version = str(jax.devices()[0].client.platform_version).lower()
    except AttributeError:
        version = ""
    if "rocm" in version or "hip" in version:
        return "cuDNN only; this GPU runs ROCm"
    return None


def build(cell: str, shape: Shape, mode: str, dtype: str, xs: np.ndarray) -> Case:
    import jax
    import jax.numpy as jnp
    from jax.experimental import rnn

    from benchmarks.layers.jax_common import JAX_DTYPES, jax_case

    if cell != "lstm":
        raise Unavailable("jax.experimental.rnn has an LSTM only")
    if dtype != "float32":
        raise Unavailable("jax.experimental.rnn lowers float32 only (jaxlib gpu_rnn)")
    B, T, I, H = shape
    jdtype = JAX_DTYPES[dtype]
    weights = rnn.init_lstm_weight(jax.random.key(0), I, H, 1, False).astype(jdtype)
    x = jnp.asarray(np.ascontiguousarray(xs.transpose(1, 0, 2)), jdtype)  # (B, T, I)
    h0 = jnp.zeros((1, B, H), jdtype)
    c0 = jnp.zeros((1, B, H), jdtype)
    seq_lengths = jnp.full((B,), T, jnp.int32)

    def apply(weights, x):
        y, _, _ = rnn.lstm(x, h0, c0, weights, seq_lengths, input_size=I, hidden_size=H,
                           num_layers=1, dropout=0.0, bidirectional=False)
        return y

    what = f"jax.experimental.rnn.lstm(x[B, T, I], h0, c0, weights, seq_lengths, {I}, {H}, 1, 0.0, False)"
    return jax_case("jax.experimental.rnn", what, apply, weights, x, mode)
