"""Configs: every file in configs/ validates; each kind of mistake is one line and exit status 2."""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
import pytest
import yaml

from jaxrnn import catalog, config
from jaxrnn.config import ConfigError

from conftest import ROOT, cli

REQUIRED = ["experiment", "model.cell", "model.hidden_size", "model.num_layers", "optim.name",
            "optim.learning_rate", "optim.clip_norm", "train.steps", "train.batch_size", "train.seed",
            "train.eval_every", "train.checkpoint_every", "data.seq_len"]


def config_files():
    return sorted((ROOT / "configs").glob("*.yaml"))


def test_the_configs_exist():
    names = {p.stem for p in config_files()}
    for task in ("adding_t50", "adding_t200", "copying"):
        for cell in ("rnn", "lstm", "gru"):
            assert any(n.startswith(task) and n.endswith(cell) for n in names), (task, cell)


@pytest.mark.parametrize("path", config_files(), ids=lambda p: p.stem)
def test_every_config_loads_and_writes_every_required_key(path):
    loaded = catalog.load(path)
    assert loaded.name == path.stem
    flat = config.flatten(yaml.safe_load(path.read_text()))
    missing = [key for key in REQUIRED if key not in flat]
    assert not missing, f"{path.name} lacks {missing}"
    # the resolved form round-trips
    assert config.from_dict(yaml.safe_load(config.dump(loaded)), catalog.data_schemas()) == loaded


def test_set_converts_to_the_key_type(write_config):
    loaded = catalog.load(write_config(), [
        "model.hidden_size=16", "optim.learning_rate=1e-3", "optim.clip_norm=null", "model.residual=yes",
        "model.cell=gru", "train.steps=1_000", "data.seq_len=20", "model.dropout=0",
    ])
    assert loaded.model.hidden_size == 16 and type(loaded.model.hidden_size) is int
    assert loaded.optim.learning_rate == 1e-3 and type(loaded.optim.learning_rate) is float
    assert loaded.optim.clip_norm is None
    assert loaded.model.residual is True
    assert loaded.model.cell == "gru"
    assert loaded.train.steps == 1000
    assert loaded.data.seq_len == 20
    assert type(loaded.model.dropout) is float


def test_yaml_numbers_without_a_dot_are_numbers(write_config):
    # YAML 1.1 reads 1e-3 as a string; a config still means the number.
    path = write_config()
    path.write_text(path.read_text().replace("learning_rate: 0.01", "learning_rate: 1e-3"))
    assert catalog.load(path).optim.learning_rate == 1e-3


def test_defaults_fill_optional_keys(write_config):
    loaded = catalog.load(write_config())
    assert loaded.optim.schedule == "constant" and loaded.model.dropout == 0.0


@pytest.mark.parametrize("updates, overrides, expected", [
    ({"model": {"hiden_size": 8}}, [], ["model.hiden_size", "hidden_size", "did you mean"]),
    ({"extra": 1}, [], ["unknown key extra", "experiment, model"]),
    ({}, ["train.stepz=3"], ["train.stepz", "steps"]),
    ({"model": {"cell": "transformer"}}, [], ["model.cell", "'transformer'", "rnn, lstm, gru"]),
    ({"optim": {"name": "lion"}}, [], ["optim.name", "'lion'", "adam, adamw, sgd, rmsprop"]),
    ({"optim": {"schedule": "step"}}, [], ["optim.schedule", "constant, cosine"]),
    ({"experiment": "parity"}, [], ["experiment", "'parity'", "adding, copying"]),
    ({"model": {"hidden_size": "big"}}, [], ["model.hidden_size", "integer", "'big'"]),
    ({}, ["model.hidden_size=1.5"], ["model.hidden_size", "integer", "1.5"]),
    ({}, ["optim.learning_rate=fast"], ["optim.learning_rate", "a number", "fast"]),
    ({}, ["optim.learning_rate=-1"], ["optim.learning_rate", "positive"]),
    ({}, ["optim.clip_norm=none!"], ["optim.clip_norm", "or null"]),
    ({}, ["model.residual=maybe"], ["model.residual", "true or false"]),
    ({"model": {"cell": 3}}, [], ["model.cell", "a string"]),
    ({"data": {"seq_len": 1}}, [], ["data.seq_len", ">= 2"]),
    ({"model": "lstm"}, [], ["model", "a section"]),
    ({}, ["model=lstm"], ["model is a section", "model.cell"]),
    ({}, ["nonsense"], ["--set expects key=value"]),
    ({"model": {"cell": "gru", "chrono": 50}}, [], ["model.chrono", "only cell lstm", "cell gru"]),
    ({"model": {"cell": "lstm", "chrono": 2}}, [], ["model.chrono", "an integer > 2", "2"]),
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
    from jaxrnn import models

    loaded = catalog.load(write_config(model={"cell": "lstm", "hidden_size": 16, "chrono": 40}))
    assert loaded.model.label == "lstm chrono(40)"
    bias = models.cell_from_config(loaded.model).init(jax.random.key(0), 3)["bias"].reshape(4, 16)
    assert np.all(bias[1] > 0) and np.all(bias[1] <= np.log(39)) and np.all(bias[0] == -bias[1])
    assert catalog.load(write_config(model={"cell": "lstm", "hidden_size": 16})).model.label == "lstm"


def test_missing_key_is_named(write_config, capsys):
    path = write_config()
    raw = yaml.safe_load(path.read_text())
    del raw["optim"]["clip_norm"]
    path.write_text(yaml.safe_dump(raw))
    assert cli("run", path) == 2
    err = capsys.readouterr().err
    assert "missing key optim.clip_norm" in err and "positive number or null" in err


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
        catalog.load(write_config(model={"units": 3}))
    with pytest.raises(ConfigError, match="config file not found"):
        config.load("does/not/exist.yaml")


def test_configs_are_frozen_dataclasses(write_config):
    loaded = catalog.load(write_config())
    with pytest.raises(dataclasses.FrozenInstanceError):
        loaded.model.cell = "gru"


def test_config_by_name_resolves_in_configs():
    assert catalog.find_config("smoke") == ROOT / "configs" / "smoke.yaml"
