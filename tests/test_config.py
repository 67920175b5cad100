"""Configs: every file in configs/ validates; each kind of mistake is one line and exit status 2."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pydantic
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import jaxrnn
from jaxrnn.experiment import catalog, config, registry
from jaxrnn.experiment.schema import ConfigError
from support import ROOT, TINY, cli


def required_keys(raw: dict) -> list[str]:
    """The keys without a default in the schema of ``raw``'s experiment and model kind."""
    schema = config.schema(raw["experiment"])
    keys = ["experiment"]
    for section in config.SECTIONS:
        field = schema.model_fields[section]
        cls = config.section_class(field.annotation, raw.get(section, {}))
        keys += [f"{section}.{name}" for name, f in cls.model_fields.items() if f.is_required()]
    return keys


def config_files():
    return sorted((ROOT / "configs").glob("*.yaml"))


def test_the_configs_exist():
    names = {p.stem for p in config_files()}
    for task in ("adding_t50", "adding_t200", "copying", "charlm"):
        for cell in ("rnn", "lstm", "gru", "mingru", "minlstm"):
            assert any(n.startswith(task) and n.endswith(cell) for n in names), (task, cell)


@pytest.mark.parametrize("path", config_files(), ids=lambda p: p.stem)
def test_every_config_loads_and_writes_every_required_key(path):
    loaded = config.load(path)
    assert loaded.name == path.stem
    raw = yaml.safe_load(path.read_text())
    flat = config.flatten(raw)
    missing = [key for key in required_keys(raw) if key not in flat]
    assert not missing, f"{path.name} lacks {missing}"
    # the resolved form round-trips
    assert config.from_dict(yaml.safe_load(config.dump(loaded))) == loaded


def test_every_registered_cell_name_builds_the_library_cell():
    """A config's ``model.cell`` names the library's factory of that name (so the core's tests of each
    factory cover what a config builds), and every name builds, alone and stacked."""
    from jaxrnn.experiment.schema import Recurrent

    assert list(registry.CELLS) == list(Recurrent.model_fields["cell"].annotation.__args__)
    for name, entry in registry.CELLS.items():
        assert entry.factory is getattr(jaxrnn, name), name
        for layers in (1, 2):
            cell = Recurrent(cell=name, hidden_size=4, num_layers=layers).build()
            ys = jaxrnn.scan(cell, cell.init(jax.random.key(0), 3), jnp.zeros((2, 3)))[1]
            assert ys.shape == (2, 4)


def test_set_converts_to_the_key_type(write_config):
    loaded = config.load(write_config(), [
        "model.hidden_size=16", "optim.learning_rate=1e-3", "optim.clip_norm=null", "model.residual=yes",
        "model.cell=gru", "train.steps=1_000", "data.seq_len=20", "model.dropout=0", "model.num_layers=2",
        "name=007",
    ])
    assert loaded.model.hidden_size == 16 and type(loaded.model.hidden_size) is int
    assert loaded.optim.learning_rate == 1e-3 and type(loaded.optim.learning_rate) is float
    assert loaded.optim.clip_norm is None
    assert loaded.model.residual is True
    assert loaded.model.cell == "gru"
    assert loaded.train.steps == 1000
    assert loaded.data.seq_len == 20
    assert type(loaded.model.dropout) is float
    assert loaded.name == "007"  # a text key keeps the text as typed (YAML would read the number 7)


def test_yaml_numbers_without_a_dot_are_numbers(write_config):
    # YAML 1.1 reads 1e-3 as a string; a config still means the number.
    path = write_config()
    path.write_text(path.read_text().replace("learning_rate: 0.01", "learning_rate: 1e-3"))
    assert config.load(path).optim.learning_rate == 1e-3


def test_defaults_fill_optional_keys(write_config):
    loaded = config.load(write_config())
    assert loaded.optim.schedule == "constant" and loaded.model.dropout == 0.0


@pytest.mark.parametrize("updates, overrides, expected", [
    ({"model": {"hiden_size": 8}}, [], ["model.hiden_size", "hidden_size", "did you mean"]),
    ({"extra": 1}, [], ["unknown key extra", "experiment, model"]),
    ({}, ["train.stepz=3"], ["train.stepz", "steps"]),
    ({"model": {"cell": "transformer"}}, [], ["model.cell", "'transformer'", ", ".join(registry.CELLS)]),
    ({"optim": {"name": "lion"}}, [], ["optim.name", "'lion'", ", ".join(registry.OPTIMIZERS)]),
    ({"optim": {"schedule": "step"}}, [], ["optim.schedule", ", ".join(registry.SCHEDULES)]),
    ({"experiment": "parity"}, [], ["experiment", "'parity'", ", ".join(catalog.experiments())]),
    ({"model": {"hidden_size": "big"}}, [], ["model.hidden_size", "integer", "'big'"]),
    ({}, ["model.hidden_size=1.5"], ["model.hidden_size", "integer", "1.5"]),
    ({}, ["optim.learning_rate=fast"], ["optim.learning_rate", "a number", "fast"]),
    ({}, ["optim.learning_rate=-1"], ["optim.learning_rate", "positive"]),
    ({}, ["optim.clip_norm=none!"], ["optim.clip_norm", "or null"]),
    ({}, ["model.residual=maybe"], ["model.residual", "true or false"]),
    ({"model": {"cell": 3}}, [], ["model.cell", "a string"]),
    ({"data": {"seq_len": 1}}, [], ["data.seq_len", ">= 2"]),
    ({}, ["train.devices=0"], ["train.devices: expected one of all or a positive integer, got 0"]),
    ({}, ["train.devices=some"], ["train.devices: expected one of all or a positive integer, got 'some'"]),
    ({"model": "lstm"}, [], ["model", "a section"]),
    ({}, ["model=lstm"], ["model is a section", "model.cell"]),
    ({}, ["nonsense"], ["--set expects key=value"]),
    ({"model": {"cell": "gru", "chrono": 50}}, [], ["model.chrono", "only cell lstm", "cell gru"]),
    ({"model": {"cell": "lstm", "chrono": 2}}, [], ["model.chrono", "an integer > 2", "2"]),
    ({}, ["optim.learning_rate=inf"], ["optim.learning_rate", "finite", "inf"]),
    ({}, ["optim.clip_norm=.nan"], ["optim.clip_norm", "finite", "nan"]),
    ({}, ["train.steps=yes"], ["train.steps", "an integer", "True"]),
    ({}, ["model.dropout=0.5"], ["model.dropout", "num_layers 1", "0.5"]),
    ({"model": {"residual": True}}, [], ["model.residual", "num_layers 1"]),
    ({"model": {"kind": "lstm"}}, [], ["unknown model.kind 'lstm'", "recurrent, window"]),
    ({"model": {"kind": None}}, [], ["unknown model.kind 'None'", "recurrent, window"]),
    ({"model": {"hidden_size": "8"}}, [], ["model.hidden_size", "expected an integer", "'8'"]),
    ({"model": {"hidden_size": 8.0}}, [], ["model.hidden_size", "expected an integer", "8.0"]),
    ({"model": {"residual": 1}}, [], ["model.residual", "true or false", "got 1"]),
    ({}, ["train.seed=99999999999999999999999"], ["train.seed", "0..4294967295"]),
    ({}, ["model.hidden_size=10000000000000"], ["model.hidden_size", "2147483647"]),
    ({}, ["name=../../x"], ["name", "letters, digits", "'../../x'"]),
    ({}, [".x=1"], ["--set .x", "empty key"]),
    ({}, ["model..cell=gru"], ["--set model..cell", "empty key"]),
])
def test_config_errors_exit_2_with_one_line(write_config, capsys, updates, overrides, expected):
    path = write_config(**updates)
    args = ["run", path, "--out", path.parent / "run"]
    for item in overrides:
        args += ["--set", item]
    assert cli(*args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for text in expected:
        assert text in err, (text, err)
    assert not (path.parent / "run").exists()


def test_chrono_reaches_the_lstm_and_the_label(write_config):
    """``model.chrono`` is the lstm's chrono initialisation: b_f = log U(1, T_max - 1), b_i = -b_f."""
    loaded = config.load(write_config(model={"cell": "lstm", "hidden_size": 16, "chrono": 40}))
    assert loaded.model.label == "lstm chrono(40)"
    bias = loaded.model.build().init(jax.random.key(0), 3)["bias"].reshape(4, 16)
    assert np.all(bias[1] > 0) and np.all(bias[1] <= np.log(39)) and np.all(bias[0] == -bias[1])
    assert config.load(write_config(model={"cell": "lstm", "hidden_size": 16})).model.label == "lstm"


def test_missing_key_is_named(write_config, capsys):
    path = write_config()
    raw = yaml.safe_load(path.read_text())
    del raw["optim"]["clip_norm"]
    path.write_text(yaml.safe_dump(raw))
    assert cli("run", path) == 2
    err = capsys.readouterr().err
    assert "missing key optim.clip_norm" in err and "positive number or null" in err


def test_a_key_written_twice_is_an_error(tmp_path, capsys):
    path = tmp_path / "twice.yaml"
    path.write_text(yaml.safe_dump(TINY).replace("  cell: lstm\n", "  cell: lstm\n  cell: gru\n"))
    assert cli("run", path) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "duplicate key 'cell'" in err and "line" in err


def test_missing_file_and_bad_yaml(tmp_path, capsys):
    assert cli("run", tmp_path / "nope.yaml") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not found" in err and "nope.yaml" in err
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: {cell: lstm\n  hidden_size: [")
    assert cli("run", bad) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not valid YAML" in err and "line" in err


def test_load_errors_are_config_errors(write_config):
    with pytest.raises(ConfigError, match="unknown key model.units"):
        config.load(write_config(model={"units": 3}))
    with pytest.raises(ConfigError, match="config file not found"):
        config.load("does/not/exist.yaml")


def test_configs_are_frozen(write_config):
    loaded = config.load(write_config())
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        loaded.model.cell = "gru"


def test_config_by_name_resolves_in_configs():
    assert catalog.find_config("smoke") == ROOT / "configs" / "smoke.yaml"


def test_a_config_anywhere_runs_a_shipped_experiment(tmp_path, monkeypatch):
    """A user's own YAML file, in any folder, names a registered experiment; names resolve to shipped files."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump(TINY))
    assert config.load("mine.yaml").experiment == "adding"
    assert config.load("smoke").name == "smoke"
    assert {p.stem for p in catalog.configs()} == {p.stem for p in (ROOT / "configs").glob("*.yaml")}


# --- random valid configs round-trip through YAML ------------------------------------------------------


def _field_values(annotation, metadata=()):
    """A strategy for the values a field admits, read off its annotation (the schema, not a copy of it)."""
    members = config.annotated_members(annotation, list(metadata))
    options = []
    for tp, meta in members:
        bounds = {type(m).__name__: getattr(m, type(m).__name__.lower())
                  for m in meta if hasattr(m, type(m).__name__.lower())}
        if tp is type(None):
            options.append(st.none())
        elif tp is bool:
            options.append(st.booleans())
        elif tp is str:
            options.append(st.text("abcxyz_0123", min_size=1, max_size=8))
        elif getattr(tp, "__origin__", None) is not None or str(tp).startswith("typing.Literal"):
            options.append(st.sampled_from(list(config.literal_choices(tp))))
        elif tp is int:
            low = bounds.get("Ge", bounds.get("Gt", -10**6 - 1) + 1)
            options.append(st.integers(low, bounds.get("Le", max(low, 0) + 10**4)))
        elif tp is float:
            options.append(st.floats(bounds.get("Ge", bounds.get("Gt", 0.0)), bounds.get("Lt", bounds.get("Le", 1e6)),
                                     exclude_min="Gt" in bounds, exclude_max="Lt" in bounds, allow_nan=False))
    return st.one_of(options)


def _section(cls, **fixed):
    fields = {name: _field_values(f.annotation, f.metadata)
              for name, f in cls.model_fields.items() if name not in fixed}
    required = {name: fields.pop(name) for name in list(fields) if cls.model_fields[name].is_required()}
    return st.fixed_dictionaries({**required, **{k: st.just(v) for k, v in fixed.items()}}, optional=fields)


@st.composite
def valid_configs(draw):
    from jaxrnn.experiment.schema import Optim, Recurrent, Train, Window

    experiment = draw(st.sampled_from(list(catalog.experiments())))
    data_cls = config.schema(experiment).model_fields["data"].annotation
    kind = draw(st.sampled_from(["recurrent", "window"] if experiment == "sunspots" else ["recurrent"]))
    model = draw(_section(Window, kind="window") if kind == "window" else _section(Recurrent))
    raw = {"experiment": experiment, "model": model, "optim": draw(_section(Optim)), "train": draw(_section(Train)),
           "data": draw(_section(data_cls)), "name": draw(_field_values(str | None))}
    try:
        return config.from_dict(raw)
    except ConfigError:  # keys of one section that must agree, or a window too long for the data
        from hypothesis import assume

        assume(False)


@settings(max_examples=60, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
@given(valid_configs())
def test_random_valid_configs_round_trip_through_yaml(loaded):
    """Any valid config, written as YAML (what a run folder keeps) and read back, is the same config."""
    assert config.from_dict(yaml.safe_load(config.dump(loaded))) == loaded
