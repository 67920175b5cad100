"""What the minimal RNNs (:func:`jaxrnn.mingru`, :func:`jaxrnn.minlstm`) share: gates from the input alone.

Every gate pre-activation is a block of one product, ``k = x W + b`` with
``W: (I, n H)``, ``b: (n H,)``; no block reads ``h_{t-1}``, which is what
makes the recurrence linear in ``h`` and the sequence computable at once.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

from jaxrnn import checks
from jaxrnn.cells.kernels import Initializer, gate_kernel, matmul
from jaxrnn.checks import check_input
from jaxrnn.parts import BatchShape, zeros_carry


def input_gates(hidden_size: int, blocks: int, *, param_dtype: Any, dtype: Any, kernel_init: Initializer
                ) -> tuple[int, Callable, Callable, Callable]:
    """``(H, init, initial_carry, gates)`` of a minimal cell with ``blocks`` gate blocks.

    ``init(key, I)`` gives ``{"input_kernel": (I, blocks H), "bias": (blocks H,)}``
    (each block initialised by ``kernel_init``, zero bias); ``initial_carry``
    zeros ``(*batch, H)``; ``gates(params, x, like)`` the ``blocks``
    pre-activations ``(..., H)`` of ``x: (..., I)``, the product in ``dtype``,
    the result in ``like``'s dtype (float32 at least).
    """
    H = checks.size("hidden_size", hidden_size)
    checks.floating_dtype("param_dtype", param_dtype)
    checks.floating_dtype("dtype", dtype, optional=True)
    checks.function("kernel_init", kernel_init)

    def init(key: jax.Array, input_size: int) -> dict[str, jax.Array]:
        input_size = checks.size("input_size", input_size)
        checks.random_key("key", key)
        return {"input_kernel": gate_kernel(key, input_size, H, blocks, kernel_init, param_dtype),
                "bias": jnp.zeros((blocks * H,), param_dtype)}

    def initial_carry(batch_shape: BatchShape = (), dtype: Any = jnp.float32) -> jax.Array:
        return zeros_carry(H, batch_shape, dtype)

    def gates(params, x, like):
        check_input(x, params["input_kernel"].shape[0])
        k = matmul(x, params["input_kernel"], dtype)
        k = (k + params["bias"].astype(k.dtype)).astype(jnp.promote_types(like.dtype, jnp.float32))
        return jnp.split(k, blocks, axis=-1)

    return H, init, initial_carry, gates
