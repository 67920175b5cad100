"""The shipped experiments (``experiments/``) through the app: their data preparation, the config mistakes
each reports before a run folder exists, and their end-to-end runs (``-m slow``). The library parts they
use (the language model, the autoregressive models, the datasets) are tested in test_language.py and
test_sequence_models.py, which import only the core."""

from __future__ import annotations

import json
import math

import jax.numpy as jnp
import numpy as np
import pytest

from jaxrnn import datasets
from jaxrnn.experiment import catalog, registry
from jaxrnn.experiment import config as config_lib
from jaxrnn.experiments import digits, sunspots
from support import TINY, cli

# --- charlm: a character language model on a text file ----------------------------------------------------


def charlm_config(write_config, tmp_path, text="abcd efgh ijkl mnop " * 40, **data):
    corpus = tmp_path / "corpus.txt"
    corpus.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    base = {**TINY, "experiment": "charlm", "model": {"cell": "gru", "hidden_size": 8, "num_layers": 1},
            "train": {**TINY["train"], "steps": 4, "batch_size": 4, "eval_every": 4, "checkpoint_every": 2},
            "data": {"path": str(corpus), "window": 10, "eval_streams": 2, "sample_length": 20, **data}}
    return write_config(base=base)


@pytest.mark.parametrize("text, expected", [
    (None, "data.path: no file"),
    ("", "is empty"),
    (b"\xff\xfe\x00bad", "is not UTF-8 text"),
    ("short", "data.window: expected fewer than"),
])
def test_a_text_that_cannot_train_is_one_line_and_status_2(write_config, tmp_path, capsys, text, expected):
    path = charlm_config(write_config, tmp_path, text=text if text is not None else "x")
    if text is None:
        (tmp_path / "corpus.txt").unlink()
    assert cli("run", path, "--out", tmp_path / "run") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and expected in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_charlm_runs_end_to_end_and_samples(write_config, tmp_path, capsys):
    path = charlm_config(write_config, tmp_path, dropout=0.1)
    out = tmp_path / "lm"
    assert cli("run", path, "--out", out) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert {"eval_loss", "eval_bpc", "eval_perplexity", "eval_unigram_bpc", "baseline"} <= set(summary["metrics"])
    assert summary["parameters"] > 0 and (out / "vocabulary.json").exists()
    assert (out / "sample.txt").read_text().startswith("The ")
    capsys.readouterr()
    assert cli("sample", out, "--prompt", "ab", "--length", "15", "--seed", "3") == 0
    first = capsys.readouterr().out
    assert cli("sample", out, "--prompt", "ab", "--length", "15", "--seed", "3") == 0
    assert capsys.readouterr().out == first and first.startswith("ab") and len(first) == 2 + 15 + 1
    for args, message in ((["sample", tmp_path], "is not a run folder"),
                          (["sample", out, "--length", "0"], "--length: expected an integer >= 1"),
                          (["sample", out, "--temperature", "-1"], "--temperature")):
        assert cli(*args) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1


@pytest.mark.slow
def test_the_resumed_language_model_carries_its_state_bit_for_bit(write_config, tmp_path):
    path = charlm_config(write_config, tmp_path)
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    assert cli("run", path, "--out", whole) == 0
    assert cli("run", path, "--out", parts, "--set", "train.steps=2") == 0  # stops after its checkpoint at 2
    (parts / "summary.json").unlink()
    assert cli("run", "--resume", "--out", parts, "--set", "train.steps=4") == 2  # steps is not resumable
    raw = (parts / "config.yaml").read_text().replace("steps: 2", "steps: 4")
    (parts / "config.yaml").write_text(raw)
    assert cli("run", "--resume", "--out", parts) == 0
    losses = lambda d: [json.loads(l).get("loss") for l in (d / "metrics.jsonl").read_text().splitlines()]  # noqa
    assert losses(whole)[-3:] == losses(parts)[-3:]


@pytest.mark.slow
def test_digits_runs_end_to_end(write_config, tmp_path):
    for read in ("pixels", "rows"):
        path = write_config(experiment="digits", data={"read": read}, train={"steps": 3, "eval_every": 3})
        out = tmp_path / read
        assert cli("run", path, "--out", out) == 0
        metrics = json.loads((out / "summary.json").read_text())["metrics"]
        assert 0 <= metrics["eval_accuracy"] <= 1 and metrics["baseline"] == pytest.approx(math.log(10), abs=0.05)


# --- digits: 8x8 images read as sequences of pixels or rows ------------------------------------------------


def test_the_digits_split_and_read_as_sequences():
    train_x, train_y, test_x, test_y = digits.split(0.2)
    assert len(test_y) == 359 and len(train_y) == 1438 and train_x.max() == 1.0
    assert digits.sequences(test_x, "pixels").shape == (64, 359, 1)
    assert digits.sequences(test_x, "rows").shape == (8, 359, 8)
    np.testing.assert_array_equal(digits.sequences(test_x, "pixels")[:8, 0, 0], test_x[0, 0])  # the first row first


# --- sunspots: yearly counts, k-step forecasts ----------------------------------------------------------


def test_k_step_errors_score_each_test_year_from_k_years_before():
    data = sunspots.series(sunspots.Data(first_test_year=1900, last_test_year=1950))
    x = np.asarray(data.values[:, 0])
    n, ks = len(x), [1, 2, 4]
    # The perfect table, F[t, j] = x[t + j + 1] (where it exists), scores 0 at every k.
    perfect = np.zeros((n, 4, 1), np.float32)
    for t in range(n):
        for j in range(4):
            perfect[t, j, 0] = x[min(t + j + 1, n - 1)]
    errors = sunspots.k_step_errors(jnp.asarray(perfect), data, ks)
    for k in ks:
        assert float(errors[f"mse_k{k}"]) == pytest.approx(0.0, abs=1e-10)
    # The persistence table, F[t, j] = x[t], scores the k-year persistence error, in counts too.
    persistence = np.repeat(x[:, None, None], 4, axis=1)
    errors = sunspots.k_step_errors(jnp.asarray(persistence), data, ks)
    test = np.arange(data.split, n)
    for k in ks:
        mse = np.mean((x[test] - x[test - k]) ** 2)
        assert float(errors[f"mse_k{k}"]) == pytest.approx(mse, rel=1e-5)
        assert float(errors[f"rmse_k{k}"]) == pytest.approx(np.sqrt(mse) * data.scale, rel=1e-5)


@pytest.mark.slow
def test_sunspots_experiment_beats_persistence(write_config, tmp_path):
    # A linear AR(8), briefly trained: its one-step forecasts of 1921-2008 beat "next year = this year".
    path = write_config(
        base={**TINY, "experiment": "sunspots", "model": {"kind": "window", "tau": 8, "num_layers": 0}},
        optim={"learning_rate": 0.01},
        train={"steps": 300, "batch_size": 32, "eval_every": 300, "checkpoint_every": 300, "log_every": 100},
        data={"first_test_year": 1921, "horizon": 4},
    )
    out = tmp_path / "ar8"
    assert cli("run", path, "--out", out) == 0
    summary = json.loads((out / "summary.json").read_text())
    metrics = summary["metrics"]
    assert set(metrics) == {"eval_loss", "baseline"} | {f"eval_{m}_k{k}" for m in ("mse", "rmse") for k in (1, 2, 4)}
    assert metrics["eval_loss"] == metrics["eval_mse_k1"] < 0.6 * metrics["baseline"]
    assert metrics["eval_mse_k1"] < metrics["eval_mse_k4"]  # errors compound with the horizon
    assert summary["model"] == "ar(8)" and summary["seq_len"] == 8
    assert (out / "forecasts.png").stat().st_size > 0


def test_a_validation_split_never_sees_the_years_after_it():
    data = sunspots.series(sunspots.Data(first_test_year=1891, last_test_year=1920))
    assert data.values.shape == (221, 1) and data.split == 191
    years, counts = datasets.sunspots()
    np.testing.assert_allclose(data.values[:, 0] * data.scale + data.mean, counts[:221], rtol=1e-5, atol=1e-4)
    assert data.mean == pytest.approx(counts[:191].mean(), rel=1e-6)  # scaled by the training years alone


@pytest.mark.slow
def test_sunspots_latent_model_runs(write_config, tmp_path):
    path = write_config(
        experiment="sunspots",
        model={"cell": "gru", "hidden_size": 4},
        train={"steps": 2, "eval_every": 2},
        data={"seq_len": 8, "horizon": 3},
    )
    out = tmp_path / "gru"
    assert cli("run", path, "--out", out) == 0
    metrics = json.loads((out / "summary.json").read_text())["metrics"]
    assert {"eval_mse_k1", "eval_mse_k2", "eval_mse_k3"} <= set(metrics)
    assert all(np.isfinite(v) for v in metrics.values())


WINDOW = {"kind": "window", "num_layers": 0}


@pytest.mark.parametrize("updates, expected", [
    ({"model": WINDOW}, ["missing key model.tau", "a positive integer"]),
    ({"model": {"cell": "lstm", "hidden_size": 4, "num_layers": 1, "tau": 4}},
     ["unknown key model.tau", "allowed in model: kind, cell, hidden_size"]),
    ({"model": {"cell": "lstm", "hidden_size": 4, "num_layers": 0}}, ["model.num_layers", "positive", "got 0"]),
    ({"model": {**WINDOW, "tau": 4, "dropout": 0.5}}, ["unknown key model.dropout", "allowed in model: kind, tau"]),
    ({"model": {**WINDOW, "tau": 4, "hidden_size": 8}}, ["model.hidden_size", "num_layers 0", "remove it"]),
    ({"model": {"kind": "window", "tau": 4, "num_layers": 1}}, ["model.hidden_size", "expected a positive integer"]),
    ({"model": {"kind": "autoregressive", "tau": 4}}, ["unknown model.kind 'autoregressive'", "recurrent, window"]),
    ({"model": {"cell": "ar", "tau": 4}}, ["unknown model.cell 'ar'", ", ".join(registry.CELLS)]),
    ({"experiment": "adding", "data": {"seq_len": 10}, "model": {**WINDOW, "tau": 4}},
     ["model.kind 'window'", "experiment adding needs a recurrent model"]),
    ({"model": {**WINDOW, "tau": 300}}, ["model.tau", "221 training years", "300"]),
    ({"model": {**WINDOW, "tau": 215}, "data": {"horizon": 8}},
     ["model.tau: expected at most 214", "data.horizon 8", "got 215"]),
    ({"data": {"seq_len": 100, "first_test_year": 1760}}, ["data.seq_len", "60 training years"]),
    ({"data": {"first_test_year": 2000}}, ["data.first_test_year", "1750..1992"]),
    ({"data": {"first_test_year": 1900, "last_test_year": 1899}},
     ["data.last_test_year", ">= data.first_test_year (1900)", "1899"]),
])
def test_bad_sequence_model_configs_exit_2_before_a_run_folder(write_config, capsys, updates, expected):
    base = {**TINY, "experiment": "sunspots", "model": {"cell": "gru", "hidden_size": 4, "num_layers": 1}, "data": {}}
    for section, values in updates.items():
        base[section] = {**base[section], **values} if section == "data" else values
    path = write_config(base=base)
    assert cli("run", path, "--out", path.parent / "run") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for text in expected:
        assert text in err, (text, err)
    assert not (path.parent / "run").exists()


def test_the_naive_config_reads_the_whole_series():
    loaded = config_lib.load("sunspots_naive")
    assert loaded.model.kind == "naive" and loaded.model.label == "naive"
    assert catalog.experiment("sunspots").length(loaded) == 308  # 309 years, every lag
