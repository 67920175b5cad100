"""Sweeps: one config trained at every combination of the values of some of its keys.

    jaxrnn run adding_t50_gru --seeds 3 --sweep optim.learning_rate=0.001,0.003,0.01
    jaxrnn run adding_t50_gru --seeds 3 --sweep model.hidden_size=16,32,64

A key the compiled step can take as a value (:data:`jaxrnn.experiment.replicas.IN_STEP`:
the learning rate, weight decay and clipping norm through ``optax.inject_hyperparams``,
the cell options that only set the initial parameters, the seed) becomes one
more part of the replica axis: one run folder, every value and seed trained
in one vmapped program. Any other key (sizes, the cell, the data) changes the
program, so each of its values is a run of its own, in the sweep folder::

    SWEEP/sweep.json                               {"config", "sweep", "resolved"}: what to resume
    SWEEP/model.hidden_size=16/                    a run folder (with the in-step part of the sweep)
    SWEEP/model.hidden_size=16/model.cell=gru/     one level per key, for two or more such keys

Each of those runs' summaries records its ``point`` (the values it took).
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

from jaxrnn.experiment import config as config_lib
from jaxrnn.experiment import replicas
from jaxrnn.experiment.rundir import RunDir, write_atomic
from jaxrnn.experiment.schema import Config

FILE = "sweep.json"


def separate(config: Config) -> list[tuple[dict[str, Any], Config]]:
    """``(point, config)`` for each run of ``config``'s sweep: one per combination of its out-of-step values.

    Each config has the point's values set and keeps only the in-step part of
    the sweep. A config without out-of-step keys is one run: ``[({}, config)]``.
    """
    sweep = config.sweep or {}
    outside = {k: v for k, v in sweep.items() if k not in replicas.IN_STEP}
    if not outside:
        return [({}, config)]
    inside = {k: v for k, v in sweep.items() if k in replicas.IN_STEP} or None
    runs = []
    for values in itertools.product(*outside.values()):
        point = dict(zip(outside, values))
        runs.append((point, config_lib.with_values(config, point).model_copy(update={"sweep": inside})))
    return runs


def folder_of(sweep_folder: RunDir, point: dict[str, Any]) -> RunDir:
    """The run folder of ``point`` in the sweep folder: ``SWEEP/<key>=<value>/...``, one level per key."""
    return RunDir(Path(sweep_folder.path, *(f"{k}={replicas.label(v)}" for k, v in point.items())))


def is_sweep(folder: RunDir) -> bool:
    """Whether ``folder`` is a sweep folder (it holds ``sweep.json``)."""
    return (folder.path / FILE).is_file()


def write(config: Config, folder: RunDir) -> None:
    """``sweep.json``: the config's name, its sweep, and the whole resolved config, to resume from."""
    record = {"config": config.name, "sweep": config.sweep, "resolved": config_lib.to_dict(config)}
    write_atomic(folder.path / FILE, json.dumps(record, indent=2) + "\n")


def read(folder: RunDir) -> dict[str, Any]:
    """The resolved config a sweep folder was started with (for ``--resume``)."""
    return json.loads((folder.path / FILE).read_text())["resolved"]
