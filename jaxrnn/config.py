"""Experiment configs: YAML files loaded into typed, frozen dataclasses.

A config has five sections::

    experiment: adding            # which module of experiments/ runs it
    model:  {cell, hidden_size, num_layers, ...}          -> Model
    optim:  {name, learning_rate, clip_norm, ...}         -> Optim
    train:  {steps, batch_size, seed, eval_every, checkpoint_every, ...}  -> Train
    data:   {seq_len, ...}        # the experiment's own dataclass

The keys without a default below must be written in every config file.
Overrides ``a.b=value`` (the CLI's ``--set``) are applied to the YAML before
validation and converted to the key's type. Every mistake raises
:class:`ConfigError` with a one-line message that names the key or value and
says what is allowed.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import yaml

CELLS = ("rnn", "lstm", "gru")
WINDOW_MODELS = ("ar",)  # the lecture's AR(tau): no recurrent cell
OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
SCHEDULES = ("constant", "cosine", "warmup", "warmup_cosine")


class ConfigError(ValueError):
    """A config that cannot run; ``str(error)`` is one line for the user."""


def choice(*allowed: str) -> dict[str, Any]:
    """Field metadata: the value must be one of ``allowed``."""
    return {"choices": tuple(allowed)}


def check(predicate: Callable[[Any], bool], allowed: str) -> dict[str, Any]:
    """Field metadata: the value must satisfy ``predicate``; ``allowed`` says what is."""
    return {"check": predicate, "allowed": allowed}


def _positive(x):
    return x > 0


def _non_negative(x):
    return x >= 0


def _rate(x):
    return 0.0 <= x < 1.0


def _positive_or_null(x):
    return x is None or x > 0


def _chrono(x):
    return x is None or x > 2


@dataclasses.dataclass(frozen=True)
class Model:
    """The sequence model.

    A recurrent ``cell`` (rnn, lstm, gru): ``num_layers`` cells of
    ``hidden_size`` units and a readout; ``chrono: T_max`` starts an lstm's
    forget and input biases with the chrono initialisation (see
    ``jaxrnn.lstm``). ``cell: ar``: the lecture's AR(``tau``), no recurrence,
    an MLP on the last ``tau`` observations with ``num_layers`` hidden layers
    of ``hidden_size`` units (``num_layers: 0``: the linear AR).
    """

    cell: str = dataclasses.field(metadata=choice(*CELLS, *WINDOW_MODELS))
    hidden_size: int = dataclasses.field(metadata=check(_positive, "a positive integer"))
    num_layers: int = dataclasses.field(metadata=check(_non_negative, "a non-negative integer"))
    dropout: float = dataclasses.field(default=0.0, metadata=check(_rate, "a number in [0, 1)"))
    residual: bool = False
    tau: int | None = dataclasses.field(default=None, metadata=check(_positive_or_null, "a positive integer (cell ar only)"))
    chrono: int | None = dataclasses.field(default=None, metadata=check(_chrono, "null or an integer > 2 (cell lstm only)"))

    @property
    def label(self) -> str:
        """``lstm``, ``lstm chrono(70)``, ..., or ``ar(8)``: the model in a table or a title."""
        if self.cell not in WINDOW_MODELS:
            return self.cell + (f" chrono({self.chrono})" if self.chrono is not None else "")
        return f"{self.cell}({self.tau})" + (" mlp" if self.num_layers else "")

    def __post_init__(self):
        if self.cell in WINDOW_MODELS:
            if self.tau is None:
                raise ConfigError(f"missing key model.tau (cell {self.cell}, the window model of experiment sunspots, "
                                  "needs its window: a positive integer)")
            if self.dropout:
                raise ConfigError(f"model.dropout: expected 0.0 for cell {self.cell} (it drops between recurrent layers), got {self.dropout}")
            if self.residual:
                raise ConfigError(f"model.residual: expected false for cell {self.cell} (it joins recurrent layers), got true")
        else:
            if self.tau is not None:
                raise ConfigError(f"model.tau: only cell ar has a window; remove it for cell {self.cell}")
            if self.num_layers < 1:
                raise ConfigError(f"model.num_layers: expected a positive integer for cell {self.cell}, got {self.num_layers}")
        if self.chrono is not None and self.cell != "lstm":
            raise ConfigError(f"model.chrono: only cell lstm has a chrono initialisation; remove it for cell {self.cell}")


@dataclasses.dataclass(frozen=True)
class Optim:
    """The Optax optimiser, its learning-rate schedule and gradient clipping."""

    name: str = dataclasses.field(metadata=choice(*OPTIMIZERS))
    learning_rate: float = dataclasses.field(metadata=check(_positive, "a positive number"))
    clip_norm: float | None = dataclasses.field(metadata=check(_positive_or_null, "a positive number or null"))
    schedule: str = dataclasses.field(default="constant", metadata=choice(*SCHEDULES))
    warmup_steps: int = dataclasses.field(default=0, metadata=check(_non_negative, "a non-negative integer"))
    momentum: float = dataclasses.field(default=0.9, metadata=check(_rate, "a number in [0, 1)"))
    weight_decay: float = dataclasses.field(default=0.0, metadata=check(_non_negative, "a non-negative number"))


@dataclasses.dataclass(frozen=True)
class Train:
    """The training loop: how long, how big a batch, how often to evaluate and save."""

    steps: int = dataclasses.field(metadata=check(_positive, "a positive integer"))
    batch_size: int = dataclasses.field(metadata=check(_positive, "a positive integer"))
    seed: int = dataclasses.field(metadata=check(_non_negative, "a non-negative integer"))
    eval_every: int = dataclasses.field(metadata=check(_positive, "a positive integer"))
    checkpoint_every: int = dataclasses.field(metadata=check(_positive, "a positive integer"))
    eval_batches: int = dataclasses.field(default=4, metadata=check(_positive, "a positive integer"))
    log_every: int = dataclasses.field(default=50, metadata=check(_positive, "a positive integer"))
    keep_checkpoints: int = dataclasses.field(default=3, metadata=check(_positive, "a positive integer"))


@dataclasses.dataclass(frozen=True)
class Config:
    """A whole experiment config. ``name`` defaults to the file's stem."""

    experiment: str
    model: Model
    optim: Optim
    train: Train
    data: Any
    name: str | None = None


SECTIONS: dict[str, type] = {"model": Model, "optim": Optim, "train": Train}


def load(
    path: str | Path,
    overrides: Iterable[str] = (),
    experiments: Mapping[str, type] | None = None,
) -> Config:
    """Read the YAML file at ``path``, apply ``overrides`` and validate.

    Args:
      path: the config file.
      overrides: ``"section.key=value"`` strings, applied in order.
      experiments: experiment name -> dataclass of its ``data`` section. The
        ``experiment`` key must be one of its names. ``None`` skips that check
        and keeps ``data`` as a plain dict.

    Raises:
      ConfigError: with a one-line message.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path} ('jaxrnn list' shows the configs)")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or "invalid YAML"
        raise ConfigError(f"{path}:{where} is not valid YAML: {problem}") from None
    except OSError as error:
        raise ConfigError(f"cannot read config file {path}: {error.strerror}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of sections (experiment, model, optim, train, data)")
    raw = apply_overrides(raw, overrides)
    raw.setdefault("name", path.stem)
    return from_dict(raw, experiments)


def apply_overrides(raw: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """A copy of ``raw`` with each ``"a.b=value"`` set; the value stays text until validation."""
    raw = {k: dict(v) if isinstance(v, dict) else v for k, v in raw.items()}
    for item in overrides:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set expects key=value (e.g. optim.learning_rate=0.01), got {item!r}")
        *sections, leaf = key.split(".")
        node = raw
        for depth, section in enumerate(sections):
            child = node.get(section)
            if child is None:
                child = node[section] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"--set {key}: {'.'.join(sections[: depth + 1])} is not a section")
            node = child
        if isinstance(node.get(leaf), dict):
            raise ConfigError(f"--set {key}: {key} is a section; set one of its keys, e.g. {key}.{next(iter(node[leaf]), 'key')}")
        node[leaf] = _Text(value)
    return raw


class _Text(str):
    """A value typed on the command line: converted to its key's type, never taken as-is for non-strings."""


def from_dict(raw: Mapping[str, Any], experiments: Mapping[str, type] | None = None) -> Config:
    """Validate a nested mapping (parsed YAML) into a :class:`Config`."""
    known = ("experiment", *SECTIONS, "data", "name")
    _reject_unknown(raw, known, "")
    for key in ("experiment", *SECTIONS):
        if key not in raw:
            raise ConfigError(f"missing key {key}" + (" (a section)" if key in SECTIONS else ""))
    experiment = _convert(raw["experiment"], str, "experiment")
    if experiments is not None and experiment not in experiments:
        raise ConfigError(f"unknown experiment {experiment!r}; allowed: {', '.join(sorted(experiments))}")
    sections = {name: _dataclass(cls, raw[name], name) for name, cls in SECTIONS.items()}
    data = raw.get("data", {})
    if experiments is not None:
        data = _dataclass(experiments[experiment], data, "data")
    elif not isinstance(data, dict):
        raise ConfigError(f"data: expected a section (a mapping), got {data!r}")
    name = raw.get("name")
    name = None if name is None else _convert(name, str, "name")
    return Config(experiment=experiment, data=data, name=name, **sections)


def to_dict(config: Config) -> dict[str, Any]:
    """The plain nested dict of ``config``, ready for ``yaml.safe_dump``; :func:`from_dict` inverts it."""
    out = dataclasses.asdict(config)
    if not dataclasses.is_dataclass(config.data):
        out["data"] = dict(config.data)
    return out


def dump(config: Config) -> str:
    """``config`` as YAML text, sections in the canonical order."""
    return yaml.safe_dump(to_dict(config), sort_keys=False)


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}} -> {"a.b": 1}``."""
    flat = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _dataclass(cls: type, raw: Any, prefix: str):
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{prefix}: expected a section (a mapping of keys), got {raw!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    _reject_unknown(raw, tuple(fields), prefix + ".")
    hints = typing.get_type_hints(cls)
    values = {}
    for name, field in fields.items():
        key = f"{prefix}.{name}"
        if name not in raw:
            if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
                raise ConfigError(f"missing key {key} ({_allowed(field, hints[name])})")
            continue
        value = _convert(raw[name], hints[name], key)
        _validate(value, field, hints[name], key)
        values[name] = value
    return cls(**values)


def _reject_unknown(raw: Mapping[str, Any], allowed: tuple[str, ...], prefix: str) -> None:
    for key in raw:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f" (did you mean {prefix}{close[0]}?)" if close else ""
            where = f"in {prefix[:-1]}" if prefix else "at the top level"
            raise ConfigError(f"unknown key {prefix}{key}{hint}; allowed {where}: {', '.join(allowed)}")


def _validate(value: Any, field: dataclasses.Field, tp: Any, key: str) -> None:
    meta = field.metadata
    if "choices" in meta and value not in meta["choices"]:
        raise ConfigError(f"unknown {key} {value!r}; allowed: {', '.join(meta['choices'])}")
    if "check" in meta and not meta["check"](value):
        raise ConfigError(f"{key}: expected {meta['allowed']}, got {value!r}")


def _allowed(field: dataclasses.Field, tp: Any) -> str:
    meta = field.metadata
    if "choices" in meta:
        return "one of " + ", ".join(meta["choices"])
    if "allowed" in meta:
        return meta["allowed"]
    return _type_name(tp)


_NULLS = ("null", "none", "~", "")
_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")


def _convert(value: Any, tp: Any, key: str) -> Any:
    """``value`` as type ``tp`` (bool, int, float, str, or an Optional of one), or ConfigError.

    Text from ``--set`` is parsed; so is a YAML string where a number is
    expected, because YAML 1.1 reads ``1e-3`` (no dot) as a string.
    """
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        if value is None or (isinstance(value, _Text) and value.strip().lower() in _NULLS):
            return None
        tp = inner[0]
    text = value.strip() if isinstance(value, str) else None
    if tp is bool:
        if isinstance(value, bool):
            return value
        if text is not None and text.lower() in _TRUE + _FALSE:
            return text.lower() in _TRUE
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if text is not None:
            try:
                number = float(text.replace("_", ""))
            except ValueError:
                number = math.nan
            if number.is_integer():
                return int(number)
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if text is not None:
            try:
                return float(text.replace("_", ""))
            except ValueError:
                pass
    elif tp is str:
        if isinstance(value, str):
            return str(value)
    else:  # pragma: no cover - a field type this module does not support
        raise TypeError(f"unsupported config type {tp!r} for {key}")
    nullable = " or null" if args and type(None) in args else ""
    raise ConfigError(f"{key}: expected {_type_name(tp)}{nullable}, got {value!r}")


def _type_name(tp: Any) -> str:
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(tp, str(tp))
