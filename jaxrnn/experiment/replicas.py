"""Replicas: one run's seeds (and the values of a swept hyperparameter), trained side by side in one program.

``train.seeds: N`` trains the run's model ``N`` times, from seeds ``s, s+1, ..., s+N-1``
(``s = train.seed``); a sweep over a key the compiled step can take as a value
(:data:`IN_STEP`) multiplies them by its values. Each replica is the run of its
own config (:class:`Replica`): its parameters, optimiser state, data, dropout
keys and evaluation set are those of a single run with that ``train.seed`` and
those values. The replicas' states are stacked along a leading axis and one
``jax.vmap``-ed update steps them all (:mod:`jaxrnn.experiment.stepper`).

A replica whose loss or gradient becomes NaN/infinite stops there (its state
stays the last good one); the others go on. The run folder holds, beside the
whole run's files, one folder per replica (``seed-3``, or
``optim.learning_rate=0.003/seed-3``) with what a single run of it would leave:
its records, its summary (or ``diverged.json``), its figures.

Statistics over the replicas of one sweep point (:func:`spread`)::

    mean = sum_i m_i / n,   std = sqrt(sum_i (m_i - mean)^2 / (n - 1)),   n = replicas that finished
"""

from __future__ import annotations

import itertools
import math
from typing import Any, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxrnn.experiment import config as config_lib
from jaxrnn.experiment.schema import Config

# Keys a sweep can put on the replica axis: the compiled step takes them as values. The optimiser's
# through optax.inject_hyperparams; the cell options only change the initial parameters.
IN_STEP = ("train.seed", "optim.learning_rate", "optim.weight_decay", "optim.clip_norm", "optim.momentum",
           "model.spectral_radius", "model.chrono")


class Replica(NamedTuple):
    """One of a run's replicas.

    Attributes:
      config: its own config: the run's, with its ``train.seed`` and swept values, ``train.seeds: 1``, no sweep.
      name: its folder in the run folder: ``seed-3``, ``optim.learning_rate=0.003/seed-3``.
      values: the swept values it takes, by key (``{}`` without a sweep).
    """

    config: Config
    name: str
    values: dict[str, Any]

    @property
    def seed(self) -> int:
        return self.config.train.seed


def of(config: Config) -> list[Replica]:
    """The replicas of ``config``: each point of its in-step sweep, times ``train.seeds`` seeds.

    One replica (the config itself) when it has one seed and no in-step sweep.
    """
    sweep = {k: v for k, v in (config.sweep or {}).items() if k in IN_STEP}
    points = [dict(zip(sweep, values)) for values in itertools.product(*sweep.values())]
    out = []
    for values in points:
        base = values.get("train.seed", config.train.seed)
        for i in range(config.train.seeds):
            seed = base + i
            changes = {**values, "train.seed": seed, "train.seeds": 1}
            parts = [f"{k}={label(v)}" for k, v in values.items() if k != "train.seed"]
            name = "/".join([*parts, f"seed-{seed}"])
            out.append(Replica(config_lib.with_values(config, changes), name, values))
    return out


def label(value: Any) -> str:
    """A value as a folder name shows it: ``0.003``, ``64``, ``lstm``."""
    return f"{value:g}" if isinstance(value, float) else str(value)


def stack(trees: Sequence[Any]) -> Any:
    """The trees' leaves stacked along a new leading axis (one entry per replica)."""
    return jax.tree_util.tree_map(lambda *leaves: jnp.stack(leaves), *trees)


def take(tree: Any, index: int) -> Any:
    """Replica ``index`` of a stacked tree."""
    return jax.tree_util.tree_map(lambda leaf: leaf[index], tree)


class Halted(NamedTuple):
    """Where each replica stopped: the step whose loss or gradient was not finite (0: still training).

    Part of the state a checkpoint holds, so a resumed run knows it too.
    """

    step: jax.Array  # int32 (R,)
    loss: jax.Array  # float32 (R,)
    grad_norm: jax.Array  # float32 (R,)

    @classmethod
    def none(cls, count: int) -> "Halted":
        return cls(jnp.zeros((count,), jnp.int32), jnp.zeros((count,), jnp.float32),
                   jnp.zeros((count,), jnp.float32))


def spread(values: Sequence[float]) -> dict[str, float | int]:
    """``{"mean", "std", "min", "max", "n"}`` of the finite ``values`` (``std``: the sample's, 0 for one value).

    An empty list gives ``{"n": 0}``.
    """
    finite = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not finite:
        return {"n": 0}
    array = np.asarray(finite, np.float64)
    return {"mean": float(array.mean()), "std": float(array.std(ddof=1)) if len(array) > 1 else 0.0,
            "min": float(array.min()), "max": float(array.max()), "n": len(finite)}


def aggregate(summaries: Sequence[dict[str, Any]], names: Sequence[str] = ()) -> dict[str, dict[str, float | int]]:
    """Each metric's :func:`spread` over the finished replicas' summaries (a diverged one has no metrics).

    ``names``: metrics to include even where no replica finished (their spread is ``{"n": 0}``).
    """
    finished = [s["metrics"] for s in summaries if s.get("metrics")]
    names = list(dict.fromkeys([*names, *(name for m in finished for name in m)]))
    return {name: spread([m.get(name) for m in finished]) for name in names}
