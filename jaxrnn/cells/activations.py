"""Activation functions by name, for configs and for ``rnn(activation=...)``."""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
    "sigmoid": jax.nn.sigmoid,
    "gelu": jax.nn.gelu,
    "elu": jax.nn.elu,
    "identity": lambda x: x,
}


def resolve_activation(activation: str | Callable[[jax.Array], jax.Array]) -> Callable[[jax.Array], jax.Array]:
    """Return ``activation`` if callable, else look its name up in :data:`ACTIVATIONS`."""
    if callable(activation):
        return activation
    if isinstance(activation, str) and activation in ACTIVATIONS:
        return ACTIVATIONS[activation]
    raise ValueError(
        f"unknown activation {activation!r}; expected one of {', '.join(sorted(ACTIVATIONS))} or a callable"
    )


def positive(x: jax.Array) -> jax.Array:
    """``g(x) = x + 1/2`` for ``x >= 0``, ``sigmoid(x)`` below: positive and continuous (Feng et al. 2024).

    The candidate state of the log-space minimal RNNs: positive, so its log exists.
    """
    return jnp.where(x >= 0, x + 0.5, jax.nn.sigmoid(x))


def log_positive(x: jax.Array) -> jax.Array:
    """``log g(x)``, computed without ``log`` of a value near 0: ``log(x + 1/2)`` or ``-softplus(-x)``."""
    return jnp.where(x >= 0, jnp.log(jnp.maximum(x, 0.0) + 0.5), -jax.nn.softplus(-x))
