"""Whether a config's model can fit in memory, estimated from shapes before anything is allocated.

    needed >= bytes(params) + bytes(gradients) + bytes(optimiser state)     (about 4 x params for Adam)

``jax.eval_shape`` traces the train state's ``init`` without running it, so
the estimate of a model of 10^16 parameters takes as long as that of a small
one. Activations, batches and XLA's scratch space come on top, so the
estimate is a lower bound: a config above it cannot run, and says so at once
instead of allocating for minutes first.
"""

from __future__ import annotations

import os
from typing import Any, Callable, NamedTuple

import jax
import optax

from jaxrnn import training
from jaxrnn.experiment.schema import Config, ConfigError


class Estimate(NamedTuple):
    """What a train state needs: ``parameters`` (a count) and ``bytes`` (parameters, gradients, optimiser state)."""

    parameters: int
    parameter_bytes: int
    bytes: int


class Capacity(NamedTuple):
    """The memory the state must fit in: ``bytes`` of ``where`` (a device, or the host's RAM)."""

    bytes: int
    where: str
    shared: bool  # the host's memory: every device of a data-parallel run holds its replica in it


def estimate(init: Callable[[jax.Array], Any], tx: optax.GradientTransformation) -> Estimate:
    """The size of the train state of ``init(key)``'s params under ``tx``, plus one gradient, from shapes alone."""
    state = jax.eval_shape(lambda key: training.init(init(key), tx), jax.random.key(0))
    params = _bytes(state.params)
    count = sum(int(leaf.size) for leaf in jax.tree_util.tree_leaves(state.params))
    return Estimate(count, params, _bytes(state) + params)


def capacity(device: jax.Device) -> Capacity:
    """The memory of ``device``: its allocator's limit on an accelerator, the physical RAM on a CPU."""
    stats = _memory_stats(device)
    if stats and stats.get("bytes_limit"):
        return Capacity(int(stats["bytes_limit"]), f"{device.platform} device {device.device_kind}", shared=False)
    return Capacity(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"), f"{device.platform} host", shared=True)


def check(config: Config, init: Callable[[jax.Array], Any], tx: optax.GradientTransformation, devices: int,
          replicas: int = 1) -> None:
    """That the parameters of ``config``'s model, their gradients and ``tx``'s state fit in memory.

    ``devices``: how many devices the run replicates the state on (they share
    the memory of a CPU host); ``replicas``: how many models train side by
    side (seeds, sweep values).

    Raises:
      ConfigError: one line with the estimate, the memory and the keys that set the model's size.
    """
    needed = estimate(init, tx)
    room = capacity(jax.devices()[0])
    total = needed.bytes * (devices if room.shared else 1) * replicas
    if total <= room.bytes:
        return
    copies = f" on each of {devices} devices" if room.shared and devices > 1 else ""
    times = f" for each of {replicas} replicas (train.seeds, sweep)" if replicas > 1 else ""
    raise ConfigError(
        f"model: {needed.parameters:,} parameters{times} need at least {human(total)} "
        f"({human(needed.parameter_bytes)} of parameters, plus their gradients and {config.optim.name}'s "
        f"state{copies}), more than the {human(room.bytes)} of the {room.where}; use a smaller {_size_keys(config)}"
    )


def human(count: int) -> str:
    """``16.2 GB``: bytes in decimal units."""
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if count < 1000 or unit == "PB":
            return f"{count:.3g} {unit}" if unit != "B" else f"{count} B"
        count /= 1000
    raise AssertionError("unreachable")


def _bytes(tree: Any) -> int:
    return sum(int(leaf.size) * leaf.dtype.itemsize for leaf in jax.tree_util.tree_leaves(tree))


def _memory_stats(device: jax.Device) -> dict[str, Any] | None:
    """The allocator's statistics; ``None`` where the platform keeps none (the CPU)."""
    try:
        return device.memory_stats()
    except Exception:  # some platforms raise rather than return None; the host's RAM is the answer then
        return None


def _size_keys(config: Config) -> str:
    """The model's keys that set its size, e.g. ``model.hidden_size or model.num_layers``."""
    keys = [f"model.{name}" for name in ("hidden_size", "num_layers") if getattr(config.model, name, None)]
    return " or ".join(keys) or "model"
