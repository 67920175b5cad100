"""Token input: an embedding table, ``x_t = E[id_t]``, as a part without state.

The bottom layer of a language model: it reads integer ids, one per step,
``(T, *batch)``, and hands the layer above it vectors ``(T, *batch, E)``.
:func:`jaxrnn.scan` applies it to the whole sequence at once (a gather).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxrnn import checks
from jaxrnn.parts import BatchShape, Cell, Pointwise, batch_tuple


def embedding(features: int, *, param_dtype: Any = jnp.float32, stddev: float = 1.0) -> Cell:
    """``x = table[id]``: a ``(V, E)`` table, ``V`` the vocabulary size (``init``'s ``input_size``).

    Args:
      features: ``E``, the size of each token's vector.
      param_dtype: dtype of the table.
      stddev: the table starts as ``N(0, stddev^2)`` (Flax's and PyTorch's default, 1).

    Params: ``table: (V, E)``. Its ``step`` takes ids of any integer dtype; ids
    outside ``[0, V)`` are clamped to it (JAX's gather), so map unknown tokens
    to an id of their own first (:class:`jaxrnn.vocabulary.Vocabulary` does).
    """
    features = checks.size("features", features)
    checks.floating_dtype("param_dtype", param_dtype)
    stddev = checks.number("stddev", stddev)

    def init(key: jax.Array, input_size: int) -> dict[str, jax.Array]:
        vocab = checks.size("input_size", input_size)
        checks.random_key("key", key)
        return {"table": (stddev * jax.random.normal(key, (vocab, features))).astype(param_dtype)}

    def initial_carry(batch_shape: BatchShape = (), dtype: Any = jnp.float32) -> tuple:
        batch_tuple(batch_shape)  # checked, though an embedding keeps no state
        return ()

    def lookup(params: dict[str, jax.Array], ids: jax.Array) -> jax.Array:
        ids = jnp.asarray(ids)
        if not jnp.issubdtype(ids.dtype, jnp.integer):
            raise TypeError(f"expected integer ids, got dtype {ids.dtype}")
        return jnp.take(params["table"], ids, axis=0)

    return Cell(init, initial_carry, Pointwise(lookup, reads_ids=True))
