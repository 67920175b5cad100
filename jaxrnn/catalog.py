"""Where the runnable things are: ``configs/*.yaml`` and ``experiments/*.py`` of the repository.

An experiment module ``experiments/<name>.py`` provides:

* ``Data``: a dataclass, the schema of its configs' ``data`` section;
* ``run(config, folder, *, resume=False, interactive=None) -> summary``: build
  the data and the model from the config, train, evaluate, plot;
* optionally ``check(config)``: raise :class:`~jaxrnn.config.ConfigError` for
  what the section schemas cannot see (keys that must agree with each other or
  with the data), so a bad config fails at load time, before a run folder exists.

The config key ``experiment: <name>`` picks the module.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import jaxrnn
from jaxrnn import config as config_lib

PACKAGE_ROOT = Path(jaxrnn.__file__).resolve().parent.parent


def root() -> Path:
    """The folder holding ``configs/`` and ``experiments/``: the repository of this package
    (an editable install), else the current directory."""
    for candidate in (PACKAGE_ROOT, Path.cwd()):
        if (candidate / "experiments").is_dir():
            return candidate
    return Path.cwd()


def configs() -> list[Path]:
    """Every config file, sorted by name."""
    return sorted((root() / "configs").glob("*.yaml"))


def find_config(name_or_path: str | Path) -> Path:
    """A path as given if it exists; else ``configs/<name>.yaml`` of the repository."""
    path = Path(name_or_path)
    if path.exists() or path.suffix in (".yaml", ".yml") or len(path.parts) > 1:
        return path
    candidate = root() / "configs" / f"{path}.yaml"
    return candidate if candidate.exists() else path


def experiments() -> dict[str, Path]:
    """Experiment name -> its module file."""
    return {p.stem: p for p in sorted((root() / "experiments").glob("*.py")) if not p.stem.startswith("_")}


def experiment(name: str) -> ModuleType:
    """The experiment module ``experiments/<name>.py``, imported once."""
    module_name = f"jaxrnn_experiments.{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    files = experiments()
    if name not in files:
        raise config_lib.ConfigError(f"unknown experiment {name!r}; allowed: {', '.join(files)}")
    spec = importlib.util.spec_from_file_location(module_name, files[name])
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses resolve their annotations through it
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise
    return module


def data_schemas() -> dict[str, type]:
    """Experiment name -> the dataclass of its ``data`` section, for :func:`jaxrnn.config.load`."""
    return {name: experiment(name).Data for name in experiments()}


def load(name_or_path: str | Path, overrides=()) -> config_lib.Config:
    """Load and validate a config (by path or by name) against the experiments here."""
    config = config_lib.load(find_config(name_or_path), overrides, data_schemas())
    check = getattr(experiment(config.experiment), "check", None)
    if check is not None:
        check(config)
    return config
