"""Reading a config: YAML, ``--set`` overrides, validation against the schema, one-line errors.

The schema (:mod:`jaxrnn.experiment.schema`) is validated by pydantic: one
model per experiment, told apart by the ``experiment`` key. Every mistake
becomes a :class:`ConfigError` whose message is one line, formatted here from
pydantic's first error: the key, what is allowed (read off the schema) and
what came, with a "did you mean" for a misspelt key. Overrides ``a.b=value``
(the CLI's ``--set``) are read as YAML values, except for keys the schema
types as text, which take the text as given.
"""

from __future__ import annotations

import difflib
import functools
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Iterable, Literal, Mapping, Union

import yaml
from pydantic import BaseModel, Discriminator, Tag, TypeAdapter, ValidationError, create_model

from jaxrnn.experiment import catalog
from jaxrnn.experiment.fields import MAX_INT, MAX_SEED
from jaxrnn.experiment.schema import MODEL_KINDS, Config, ConfigError

SECTIONS = ("model", "optim", "train", "data")


def load(name_or_path: str | Path, overrides: Iterable[str] = (), sweeps: Iterable[str] = ()) -> Config:
    """Read a config file (a path, or the name of a shipped config), apply ``overrides`` and ``sweeps``, validate.

    Args:
      name_or_path: a YAML file, or a name that ``jaxrnn list`` shows.
      overrides: ``"section.key=value"`` strings, applied in order.
      sweeps: ``"section.key=v1,v2,..."`` strings (the CLI's ``--sweep``), each
        setting the values ``sweep`` gives that key.

    Raises:
      ConfigError: with a one-line message.
    """
    path = catalog.find_config(name_or_path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {name_or_path} ('jaxrnn list' shows the configs)")
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or "invalid YAML"
        raise ConfigError(f"{path}:{where} is not valid YAML: {problem}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"cannot read config file {path}: {getattr(error, 'strerror', None) or error}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of sections (experiment, model, optim, train, data)")
    raw = apply_overrides(raw, overrides)
    raw = apply_sweeps(raw, sweeps)
    raw.setdefault("name", Path(path).stem)
    return from_dict(raw)


class _Loader(yaml.SafeLoader):
    """YAML's safe loader, except that a key written twice in a mapping is an error, not the last one winning."""

    def construct_mapping(self, node, deep=False):
        keys = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in keys:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            keys.add(key)
        return super().construct_mapping(node, deep)


def from_dict(raw: Mapping[str, Any]) -> Config:
    """Validate a nested mapping (parsed YAML) into the :class:`Config` of its experiment.

    Runs the experiment's ``check`` too. Raises :class:`ConfigError`.
    """
    raw = dict(raw)
    raw.setdefault("data", {})
    try:
        config = _adapter().validate_python(_typed(raw))
    except ValidationError as error:
        raise ConfigError(message(error)) from None
    catalog.experiment(config.experiment).check(config)
    return _checked_sweep(config) if config.sweep else config


# Keys no sweep may take: they name the run, or are the seeds' own axis.
NOT_SWEPT = ("experiment", "name", "train.seeds")


def apply_sweeps(raw: dict[str, Any], sweeps: Iterable[str]) -> dict[str, Any]:
    """A copy of ``raw`` whose ``sweep`` holds each ``"a.b=v1,v2"``'s values, read as YAML values."""
    sweeps = list(sweeps)
    if not sweeps:
        return raw
    raw = dict(raw)
    sweep = dict(raw.get("sweep") or {})
    for item in sweeps:
        key, sep, values = item.partition("=")
        key = key.strip()
        if not sep or not key or not values.strip():
            raise ConfigError(f"--sweep expects key=value,value,... (e.g. optim.learning_rate=0.001,0.003), "
                              f"got {item!r}")
        parts = [v.strip() for v in values.split(",")]
        if not all(parts):
            raise ConfigError(f"--sweep {key}: an empty value in {values!r}; expected value,value,...")
        sweep[key] = [_yaml_value(v) for v in parts]
    raw["sweep"] = sweep
    return raw


def _suggestion(key: str, keys: list[str]) -> str | None:
    """The key ``key`` was likely meant to be: one of its section whose words' initials it is
    (``optim.lr`` -> ``optim.learning_rate``), or the closest spelling."""
    section, _, leaf = key.rpartition(".")
    for candidate in keys:
        own, _, name = candidate.rpartition(".")
        if own == section and len(leaf) > 1 and leaf == "".join(word[:1] for word in name.split("_")):
            return candidate
    close = difflib.get_close_matches(key, keys, n=1)
    return close[0] if close else None


def _checked_sweep(config: Config) -> Config:
    """``config`` with each swept value checked (as its key's own value would be) and typed.

    Raises:
      ConfigError: an unknown key, a key no sweep takes, a value its key does not
        allow, a value given twice, or ``train.seed`` swept beside ``train.seeds``.
    """
    flat = flatten(to_dict(config.model_copy(update={"sweep": None})))
    flat.pop("sweep", None)
    typed = {}
    for key, values in config.sweep.items():
        if key in NOT_SWEPT or key == "sweep":
            raise ConfigError(f"sweep {key}: this key cannot be swept; a sweep takes a key of the model, optim, "
                              "train or data sections (train.seeds sets the seeds instead)")
        if key not in flat:
            close = _suggestion(key, list(flat))
            hint = f" (did you mean {close}?)" if close else ""
            raise ConfigError(f"sweep: unknown key {key}{hint}; a sweep takes a config key, e.g. optim.learning_rate")
        typed[key] = []
        for value in values:
            try:
                single = with_values(config, {key: value})
            except ConfigError as error:
                raise ConfigError(f"sweep {key}={value!r}: {error}") from None
            typed[key].append(flatten(to_dict(single))[key])
        if len({repr(v) for v in typed[key]}) != len(typed[key]):
            raise ConfigError(f"sweep {key}: a value is given twice in {typed[key]}; give each once")
    if "train.seed" in typed and config.train.seeds > 1:
        raise ConfigError(f"sweep train.seed: train.seeds is {config.train.seeds}, which already trains seeds "
                          f"{config.train.seed}..{config.train.seed + config.train.seeds - 1}; sweep one or the other")
    if "optim.clip_norm" in typed and None in typed["optim.clip_norm"]:
        raise ConfigError("sweep optim.clip_norm: expected numbers only (the swept values share one compiled "
                          f"step, which clips), got {typed['optim.clip_norm']}; run the null value on its own")
    return config.model_copy(update={"sweep": typed})


def dump(config: Config) -> str:
    """``config`` as YAML text, every key written; :func:`from_dict` of it gives ``config`` back."""
    return yaml.safe_dump(to_dict(config), sort_keys=False)


def to_dict(config: Config) -> dict[str, Any]:
    """The plain nested dict of ``config``."""
    return config.model_dump(mode="json")


def with_values(config: Config, values: dict[str, Any]) -> Config:
    """``config`` with each dotted key of ``values`` set, validated, without a sweep."""
    raw = to_dict(config)
    raw["sweep"] = None
    for key, value in values.items():
        *sections, leaf = key.split(".")
        node = raw
        for section in sections:
            node = node[section]
        node[leaf] = value
    return from_dict(raw)


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}} -> {"a.b": 1}``."""
    flat = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def schema(experiment: str) -> type[Config]:
    """The config model of ``experiment``: :class:`Config` with its ``data`` section."""
    return _schemas()[experiment]


@functools.cache
def _schemas() -> dict[str, type[Config]]:
    return {
        name: create_model(f"{name.title()}Config", __base__=Config, experiment=(Literal[name], ...),
                           data=(experiment.data, ...))
        for name, experiment in catalog.experiments().items()
    }


def _experiment_of(raw: Any) -> Any:
    return raw.get("experiment") if isinstance(raw, dict) else getattr(raw, "experiment", None)


@functools.cache
def _adapter() -> TypeAdapter:
    members = tuple(Annotated[cls, Tag(name)] for name, cls in _schemas().items())
    return TypeAdapter(Annotated[Union[members], Discriminator(_experiment_of)])


# --- overrides ----------------------------------------------------------------------------------------


class _Text(str):
    """A value typed on the command line; :func:`_typed` reads it as its key's type."""


def apply_overrides(raw: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """A copy of ``raw`` with each ``"a.b=value"`` set; the value stays text until typed by the schema."""
    raw = {k: dict(v) if isinstance(v, dict) else v for k, v in raw.items()}
    for item in overrides:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set expects key=value (e.g. optim.learning_rate=0.01), got {item!r}")
        *sections, leaf = key.split(".")
        if not all(part.strip() for part in [*sections, leaf]):
            raise ConfigError(f"--set {key}: an empty key between dots; expected section.key=value")
        node = raw
        for depth, section in enumerate(sections):
            child = node.get(section)
            if child is None:
                child = node[section] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"--set {key}: {'.'.join(sections[: depth + 1])} is not a section")
            node = child
        if isinstance(node.get(leaf), dict):
            raise ConfigError(f"--set {key}: {key} is a section; set one of its keys, "
                              f"e.g. {key}.{next(iter(node[leaf]), 'key')}")
        node[leaf] = _Text(value)
    return raw


def _typed(raw: dict[str, Any], cls: type[BaseModel] | None = None) -> dict[str, Any]:
    """``raw`` with each ``--set`` text read as a YAML value, or kept as text where the schema wants text."""
    if cls is None:
        experiment = raw.get("experiment")
        cls = _schemas().get(experiment) if isinstance(experiment, str) else None
    out = {}
    for key, value in raw.items():
        field = cls.model_fields.get(key) if cls is not None else None
        if isinstance(value, _Text):
            out[key] = str(value) if field is not None and _is_text(field.annotation) else _yaml_value(value)
        elif isinstance(value, dict) and field is not None:
            out[key] = _typed(value, section_class(field.annotation, value))
        else:
            out[key] = value
    return out


def _yaml_value(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _is_text(annotation: Any) -> bool:
    inner = [a for a in _members(annotation) if a is not type(None)]
    return bool(inner) and all(a is str or (typing.get_origin(a) is Literal and all(isinstance(v, str) for v in
                                                                                  typing.get_args(a))) for a in inner)


def section_class(annotation: Any, raw: Any) -> type[BaseModel] | None:
    """The section model ``raw`` is validated as: a model, or the member of the ``model`` union its kind picks."""
    sections = _sections(annotation)
    if not isinstance(sections, dict):
        return sections
    return sections.get(raw.get("kind", "recurrent") if isinstance(raw, dict) else None)


def _sections(annotation: Any) -> type[BaseModel] | dict[str, type[BaseModel]] | None:
    """The section model of a field, the ``model`` union's members by kind, or ``None`` for a value."""
    models = [m for m in _members(annotation) if isinstance(m, type) and issubclass(m, BaseModel)]
    return models[0] if len(models) == 1 else (MODEL_KINDS if models else None)


def _members(annotation: Any) -> list[Any]:
    """The types an annotation admits, ``Annotated`` and unions unwrapped."""
    return [tp for tp, _ in annotated_members(annotation, [])]


# --- errors -------------------------------------------------------------------------------------------

_TYPE_ERRORS = {"int_type", "int_parsing", "int_from_float", "float_type", "float_parsing", "bool_type",
                "bool_parsing", "string_type", "bool_not_number"}
_SECTION_ERRORS = {"model_type", "model_attributes_type", "dict_type"}


def message(error: ValidationError) -> str:
    """One line for the first error of ``error``: the key, what is allowed, what came."""
    first = error.errors()[0]
    kind, loc, got = first["type"], first["loc"], first.get("input")
    keys, owner, field = _locate(loc)
    key = ".".join(keys)
    if kind == "union_tag_not_found" and not keys:
        return f"missing key experiment (one of {', '.join(catalog.experiments())})"
    if kind == "union_tag_invalid":
        tags = list(catalog.experiments()) if not keys else list(MODEL_KINDS)
        name = "experiment" if not keys else f"{key}.kind"
        return f"unknown {name} {first['ctx']['tag']!r}; allowed: {', '.join(tags)}"
    if kind in _SECTION_ERRORS or kind == "union_tag_not_found":
        return f"{key}: expected a section (a mapping of keys), got {got!r}"
    if kind == "missing":
        return f"missing key {key} ({describe(field.annotation if field else None, field.metadata if field else ())})"
    if kind == "extra_forbidden":
        allowed = list(owner.model_fields) if owner is not None else []
        close = difflib.get_close_matches(keys[-1], allowed, n=1)
        prefix = ".".join(keys[:-1])
        hint = f" (did you mean {prefix + '.' if prefix else ''}{close[0]}?)" if close else ""
        where = f"in {prefix}" if prefix else "at the top level"
        return f"unknown key {key}{hint}; allowed {where}: {', '.join(allowed)}"
    if kind == "rule":
        return f"{'.'.join([*keys, first['ctx']['field']])}: {first['ctx']['message']}"
    annotation, metadata = (field.annotation, field.metadata) if field else (None, ())
    if annotation is not None and len(_members(annotation)) > 1 and literal_choices(annotation):
        return f"{key}: expected {describe(annotation, metadata)}, got {got!r}"  # e.g. 'all' or a count
    if kind == "literal_error":
        choices = ", ".join(map(str, literal_choices(annotation)))
        if isinstance(got, str):
            return f"unknown {key} {got!r}; allowed: {choices}"
        return f"{key}: expected a string (one of {choices}), got {got!r}"
    if kind in _TYPE_ERRORS:
        return f"{key}: expected {describe(annotation, metadata, constraints=False)}, got {got!r}"
    if kind == "less_than_equal" and first["ctx"].get("le") in (MAX_INT, MAX_SEED):
        return f"{key}: expected {describe(annotation, metadata, guards=True)}, got {got!r}"
    if kind == "string_pattern_mismatch":
        return f"{key}: expected letters, digits, '.', '_' and '-' (it names the run folder), got {got!r}"
    if kind == "finite_number":
        return f"{key}: expected a finite number ({describe(annotation, metadata)}), got {got!r}"
    if annotation is not None:
        return f"{key}: expected {describe(annotation, metadata)}, got {got!r}"
    return f"{key}: {first['msg']}"


def _locate(loc: tuple) -> tuple[list[str], type[BaseModel] | None, Any]:
    """The config keys of a pydantic ``loc`` (union tags dropped), the section holding the last one, and its field."""
    owner: Any = _schemas().get(loc[0]) if loc else None
    if owner is None:
        return [str(part) for part in loc], None, None
    keys, parent, field = [], None, None
    for part in loc[1:]:
        if isinstance(owner, dict):  # the model union: this part is the tag of its member
            owner = owner.get(part)
            continue
        if owner is None and field is not None:  # past a key's value: the member of a union of values
            break
        parent, field = owner, None
        keys.append(str(part))
        if owner is None or part not in owner.model_fields:
            owner = None
            continue
        field = owner.model_fields[part]
        owner = _sections(field.annotation)
    return keys, parent, field


def literal_choices(annotation: Any) -> list[Any]:
    """The values a ``Literal`` annotation (or a union holding one) allows."""
    return [v for m in _members(annotation) if typing.get_origin(m) is Literal for v in typing.get_args(m)]


def describe(annotation: Any, metadata: Iterable[Any] = (), *, constraints: bool = True, guards: bool = False) -> str:
    """What a field admits, read off its annotation: ``a positive integer``, ``a number in [0, 1)``, ``... or null``."""
    if annotation is None:
        return "a value"
    members = annotated_members(annotation, list(metadata))
    nullable = any(tp is type(None) for tp, _ in members)
    texts = [_describe_one(tp, meta, constraints, guards) for tp, meta in members if tp is not type(None)]
    text = " or ".join(dict.fromkeys(texts)) or "null"
    return text + (" or null" if nullable and texts else "")


def annotated_members(annotation: Any, metadata: list[Any] = ()) -> list[tuple[Any, list[Any]]]:
    """``(type, constraints)`` for each member of a (possibly Annotated, possibly union) annotation."""
    metadata = list(metadata)
    while typing.get_origin(annotation) is Annotated:
        annotation, *extra = typing.get_args(annotation)
        metadata = metadata + [m for e in extra for m in getattr(e, "metadata", [e])]
    if typing.get_origin(annotation) in (Union, types.UnionType):
        return [pair for a in typing.get_args(annotation) for pair in annotated_members(a, metadata)]
    return [(annotation, metadata)]


def _describe_one(tp: Any, metadata: list[Any], constraints: bool, guards: bool) -> str:
    if typing.get_origin(tp) is Literal:
        return "one of " + ", ".join(map(str, typing.get_args(tp)))
    if tp is bool:
        return "true or false"
    if tp is str:
        return "a string"
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return "a section"
    if tp not in (int, float):
        return f"a {getattr(tp, '__name__', tp)}"
    noun, article = ("integer", "an") if tp is int else ("number", "a")
    bounds = {type(m).__name__: getattr(m, type(m).__name__.lower()) for m in metadata
              if type(m).__name__ in ("Gt", "Ge", "Lt", "Le")}  # annotated_types' bounds, as pydantic keeps them
    if bounds.get("Le") in (MAX_INT, MAX_SEED) and not guards:
        del bounds["Le"]  # the overflow guard of every integer: said only when it is what was broken
    if not constraints or not bounds:
        return f"{article} {noun}"
    if bounds == {"Gt": 0}:
        return f"a positive {noun}"
    if bounds == {"Ge": 0}:
        return f"a non-negative {noun}"
    if set(bounds) == {"Ge", "Lt"}:
        return f"{article} {noun} in [{bounds['Ge']}, {bounds['Lt']})"
    if set(bounds) == {"Ge", "Le"}:
        return f"{article} {noun} in {bounds['Ge']}..{bounds['Le']}"
    symbols = {"Gt": ">", "Ge": ">=", "Lt": "<", "Le": "<="}
    return f"{article} {noun} " + " and ".join(f"{symbols[k]} {v}" for k, v in bounds.items())
