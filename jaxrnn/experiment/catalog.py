"""What ships: the registered experiments and their configs, found wherever jaxrnn is installed.

The repository's ``experiments/`` and ``configs/`` folders are installed as the
packages ``jaxrnn.experiments`` (whose ``EXPERIMENTS`` registers each
experiment under its name, and ``REPORTS`` what is drawn of its runs) and
``jaxrnn.configs`` (the YAML files), so
``jaxrnn list`` and ``jaxrnn run NAME`` work from any directory.

In a checkout, ``jaxrnn`` may be imported from the checkout's own ``jaxrnn/``
folder (Python puts the working directory first on the path, e.g. for
``python -m jaxrnn`` in the repository's root), which holds neither package:
they are then the checkout's ``experiments/`` and ``configs/`` beside it.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from importlib import resources
from pathlib import Path
from types import ModuleType

import jaxrnn
from jaxrnn.experiment.problem import Experiment
from jaxrnn.experiment.report import Report
from jaxrnn.experiment.schema import ConfigError


def experiments() -> dict[str, Experiment]:
    """Every registered experiment, by name."""
    return shipped("experiments").EXPERIMENTS


def experiment(name: str) -> Experiment:
    """The experiment registered as ``name``.

    Raises:
      ConfigError: no such experiment.
    """
    registered = experiments()
    if name not in registered:
        raise ConfigError(f"unknown experiment {name!r}; allowed: {', '.join(registered)}")
    return registered[name]


def reports() -> dict[str, Report]:
    """What is drawn of each experiment's runs, by experiment name (an experiment may have none)."""
    return shipped("experiments").REPORTS


def report(name: str) -> Report | None:
    """What is drawn of the runs of experiment ``name``; ``None`` if nothing beyond the loss curves."""
    return reports().get(name)


def configs() -> list[Path]:
    """Every shipped config file, sorted by name."""
    folder = Path(str(resources.files(shipped("configs"))))
    return sorted(folder.glob("*.yaml"))


def find_config(name_or_path: str | Path) -> Path:
    """A path as given if it exists or looks like one; else the shipped config of that name."""
    path = Path(name_or_path)
    if path.exists() or path.suffix in (".yaml", ".yml") or len(path.parts) > 1:
        return path
    shipped = {p.stem: p for p in configs()}
    return shipped.get(str(name_or_path), path)


def shipped(name: str) -> ModuleType:
    """The package ``jaxrnn.<name>`` as installed, or else the checkout's ``<name>/`` folder beside ``jaxrnn/``.

    Raises:
      ModuleNotFoundError: neither is there.
    """
    full = f"{jaxrnn.__name__}.{name}"
    try:
        return importlib.import_module(full)
    except ModuleNotFoundError as error:
        if error.name != full:  # the package is there; something it imports is not
            raise
        folder = Path(jaxrnn.__file__).resolve().parent.parent / name
        if not (folder / "__init__.py").is_file():
            raise
    return _import_folder(full, folder)


def _import_folder(full: str, folder: Path) -> ModuleType:
    """Import ``folder`` as the package ``full``, so its modules import each other by their installed names."""
    spec = importlib.util.spec_from_file_location(full, folder / "__init__.py",
                                                  submodule_search_locations=[str(folder)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[full] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[full]
        raise
    setattr(jaxrnn, full.rpartition(".")[2], module)
    return module
