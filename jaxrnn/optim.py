"""Optimisers and learning-rate schedules by name, with gradient clipping.

    g <- g * min(1, c / ||g||_2)        clip by global norm c (over all leaves)
    params <- params + update(g, lr_t)  adam | adamw | sgd (momentum) | rmsprop

Clipping by the global norm is the lecture's remedy for exploding gradients:
it keeps the direction of the gradient and bounds the length of the step.
"""

from __future__ import annotations

import optax

from jaxrnn.config import OPTIMIZERS, SCHEDULES, Optim

def schedule(
    name: str,
    learning_rate: float,
    total_steps: int,
    warmup_steps: int = 0,
) -> optax.Schedule:
    """The learning rate ``lr_t`` at step ``t``.

    * ``constant``: ``lr``.
    * ``cosine``: ``lr * (1 + cos(pi t / T)) / 2``, from ``lr`` at ``t = 0`` to 0 at ``T = total_steps``.
    * ``warmup``: linear from 0 to ``lr`` over ``warmup_steps``, then ``lr``.
    * ``warmup_cosine``: linear warm-up, then cosine decay to 0 at ``total_steps``.
    """
    if name == "constant":
        return optax.constant_schedule(learning_rate)
    if name == "cosine":
        return optax.cosine_decay_schedule(learning_rate, max(total_steps, 1))
    if name == "warmup":
        return optax.join_schedules(
            [optax.linear_schedule(0.0, learning_rate, max(warmup_steps, 1)), optax.constant_schedule(learning_rate)],
            [warmup_steps],
        )
    if name == "warmup_cosine":
        return optax.warmup_cosine_decay_schedule(
            0.0, learning_rate, max(warmup_steps, 1), max(total_steps, warmup_steps + 1)
        )
    raise ValueError(f"unknown schedule {name!r}; expected one of {', '.join(SCHEDULES)}")


def optimizer(
    name: str,
    learning_rate: float | optax.Schedule,
    *,
    clip_norm: float | None = None,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
) -> optax.GradientTransformation:
    """An Optax optimiser by name, preceded by clipping when ``clip_norm`` is set.

    Args:
      name: ``adam``, ``adamw`` (decoupled ``weight_decay``), ``sgd`` (heavy-ball
        ``momentum``; 0 for plain SGD) or ``rmsprop`` (``momentum`` too).
      learning_rate: a number or a schedule ``step -> lr``.
      clip_norm: rescale the gradient to global norm at most ``clip_norm``.
      momentum, weight_decay: as above; ignored by the optimisers that lack them.
    """
    if name == "adam":
        tx = optax.adam(learning_rate)
    elif name == "adamw":
        tx = optax.adamw(learning_rate, weight_decay=weight_decay)
    elif name == "sgd":
        tx = optax.sgd(learning_rate, momentum=momentum or None)
    elif name == "rmsprop":
        tx = optax.rmsprop(learning_rate, momentum=momentum or None)
    else:
        raise ValueError(f"unknown optimizer {name!r}; expected one of {', '.join(OPTIMIZERS)}")
    if clip_norm is not None:
        tx = optax.chain(optax.clip_by_global_norm(clip_norm), tx)
    return tx


def from_config(config: Optim, total_steps: int) -> tuple[optax.GradientTransformation, optax.Schedule]:
    """The optimiser of an ``optim`` config section and its schedule (to log ``lr_t``)."""
    lr = schedule(config.schedule, config.learning_rate, total_steps, config.warmup_steps)
    tx = optimizer(
        config.name, lr, clip_norm=config.clip_norm, momentum=config.momentum, weight_decay=config.weight_decay
    )
    return tx, lr
