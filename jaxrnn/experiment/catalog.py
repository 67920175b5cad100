"""What ships: the registered experiments and their configs, found wherever jaxrnn is installed.

The repository's ``experiments/`` and ``configs/`` folders are installed as the
packages ``jaxrnn.experiments`` (whose ``EXPERIMENTS`` registers each
experiment under its name) and ``jaxrnn.configs`` (the YAML files), so
``jaxrnn list`` and ``jaxrnn run NAME`` work from any directory.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from jaxrnn.experiment.problem import Experiment
from jaxrnn.experiment.schema import ConfigError


def experiments() -> dict[str, Experiment]:
    """Every registered experiment, by name."""
    from jaxrnn.experiments import EXPERIMENTS

    return EXPERIMENTS


def experiment(name: str) -> Experiment:
    """The experiment registered as ``name``.

    Raises:
      ConfigError: no such experiment.
    """
    registered = experiments()
    if name not in registered:
        raise ConfigError(f"unknown experiment {name!r}; allowed: {', '.join(registered)}")
    return registered[name]


def configs() -> list[Path]:
    """Every shipped config file, sorted by name."""
    folder = Path(str(resources.files("jaxrnn.configs")))
    return sorted(folder.glob("*.yaml"))


def find_config(name_or_path: str | Path) -> Path:
    """A path as given if it exists or looks like one; else the shipped config of that name."""
    path = Path(name_or_path)
    if path.exists() or path.suffix in (".yaml", ".yml") or len(path.parts) > 1:
        return path
    shipped = {p.stem: p for p in configs()}
    return shipped.get(str(name_or_path), path)
