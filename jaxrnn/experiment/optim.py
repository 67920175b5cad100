"""Optimisers and learning-rate schedules by name, with gradient clipping.

    g <- g * min(1, c / ||g||_2)        clip by global norm c (over all leaves)
    params <- params + update(g, lr_t)  adam | adamw | sgd (momentum) | rmsprop

Clipping by the global norm is the classic remedy for exploding gradients:
it keeps the direction of the gradient and bounds the length of the step.

The names are :data:`jaxrnn.experiment.registry.OPTIMIZERS` and ``SCHEDULES``.
"""

from __future__ import annotations

import optax

from jaxrnn.experiment.registry import OPTIMIZERS, SCHEDULES


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
    if name not in SCHEDULES:
        raise ValueError(f"unknown schedule {name!r}; expected one of {', '.join(SCHEDULES)}")
    return SCHEDULES[name](learning_rate, total_steps, warmup_steps)


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
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; expected one of {', '.join(OPTIMIZERS)}")
    tx = OPTIMIZERS[name](learning_rate, momentum=momentum, weight_decay=weight_decay)
    if clip_norm is not None:
        tx = optax.chain(optax.clip_by_global_norm(clip_norm), tx)
    return tx
