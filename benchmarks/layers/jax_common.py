"""The part every JAX framework shares: the loss, the gradient, compiling into a :class:`Case`."""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

from benchmarks.timing import Case, compile_jax

JAX_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def jax_case(framework: str, what: str, apply: Callable[[Any, jax.Array], jax.Array], params: Any,
             x: jax.Array, mode: str) -> Case:
    """Compile ``apply(params, x) -> outputs`` (``infer``) or its training step (``train``).

    The training step is ``jax.value_and_grad`` of ``mean(outputs**2)`` with
    respect to ``params`` and ``x``.
    """
    if mode == "train":
        def loss(p, x):
            return jnp.mean(jnp.square(apply(p, x).astype(jnp.float32)))

        fn = jax.value_and_grad(loss, argnums=(0, 1))
        what = f"jax.value_and_grad(mean({what}**2), argnums=(params, x))"
    else:
        fn = apply
    step, compile_s = compile_jax(fn, params, x)
    return Case(framework, what, step, compile_s, device=jax.devices()[0].platform)
