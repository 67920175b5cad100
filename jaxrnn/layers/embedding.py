"""Token input: an embedding table, ``x_t = E[id_t]``, as a part without state.

The bottom layer of a language model: it reads integer ids, one per step,
``(T, *batch)``, and hands the layer above it vectors ``(T, *batch, E)``.
:func:`jaxrnn.scan` applies it to the whole sequence at once (a gather).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxrnn import checks
from jaxrnn.parts import Info, Part, stateless


def embedding(features: int, *, param_dtype: Any = jnp.float32, stddev: float = 1.0) -> Part:
    """``x = table[id]``: a ``(V, E)`` table, ``V`` the vocabulary size (``init``'s ``input_size``).

    Args:
      features: ``E``, the size of each token's vector.
      param_dtype: dtype of the table.
      stddev: the table starts as ``N(0, stddev^2)`` (Flax's and PyTorch's default, 1).

    Params: ``table: (V, E)``. Its ``step`` takes ids of any integer dtype.
    Ids outside ``[0, V)`` are an error when their values are known (a
    ``ValueError`` when ``jaxrnn.scan`` or ``step`` is called on concrete ids,
    a numpy constant inside ``jit`` included); traced ids are checked with
    ``jaxrnn.scan(..., checked=True)`` through ``checkify``, and otherwise
    look up a vector of NaNs -- never another token's vector. Padding (``scan``'s ``lengths``)
    may hold any id. Map unknown tokens to an id of their own first
    (:class:`jaxrnn.vocabulary.Vocabulary` does).
    """
    features = checks.size("features", features)
    checks.floating_dtype("param_dtype", param_dtype)
    stddev = checks.number("stddev", stddev)

    def init(key: jax.Array, input_size: int) -> dict[str, jax.Array]:
        vocab = checks.size("input_size", input_size)
        checks.random_key("key", key)
        return {"table": (stddev * jax.random.normal(key, (vocab, features))).astype(param_dtype)}

    def lookup(params: dict[str, jax.Array], ids: jax.Array) -> jax.Array:
        table, ids = params["table"], jnp.asarray(ids)
        inside = (ids >= 0) & (ids < table.shape[0])
        vectors = jnp.take(table, jnp.where(inside, ids, 0), axis=0)
        return jnp.where(inside[..., None], vectors, jnp.asarray(jnp.nan, table.dtype))

    return stateless(init, lookup, validate=check_ids, info=Info("embedding", features, reads_ids=True))


def check_ids(params: dict[str, jax.Array], ids: Any, checked: bool) -> None:
    """Raise unless every id lies in ``[0, V)``: at once for known values; through ``checkify`` for traced
    ones when ``checked``."""
    dtype = ids.dtype if hasattr(ids, "dtype") else np.asarray(ids).dtype
    if not jnp.issubdtype(dtype, jnp.integer):
        raise TypeError(f"expected integer ids, got dtype {dtype}")
    vocab = params["table"].shape[0]
    checks.in_range(ids, 0, vocab - 1, f"expected token ids in [0, {vocab}) (the embedding's vocabulary), got ids "
                    "from {lo} to {hi}", checked=checked)
