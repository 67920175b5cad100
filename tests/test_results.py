"""Tables and figures made from run folders: the results table, each experiment's own table, the README's
figures, and a clear error when a figure's run is missing. Run folders here are written by hand (fast);
the end-to-end runs that make real ones are in test_cli.py and the experiments' tests."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from jaxrnn.experiment import catalog, results
from support import TINY, cli


def fake_run(root, name, experiment="adding", model=None, metrics=None, diverged=None, files=()):
    """A run folder as the runner leaves it: config.yaml, metrics.jsonl, and summary.json or diverged.json."""
    folder = root / name
    folder.mkdir(parents=True)
    config = {**TINY, "experiment": experiment, "name": name, "model": model or TINY["model"],
              "data": {} if experiment != "adding" else TINY["data"]}
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in (
        {"step": 1, "loss": 0.5}, {"step": 2, "loss": 0.3}, {"step": 2, "eval_loss": 0.2})))
    if diverged:
        (folder / "diverged.json").write_text(json.dumps(diverged))
    else:
        summary = {"metrics": {"eval_loss": 0.2, "baseline": 1 / 6, **(metrics or {})}, "config": name,
                   "experiment": experiment, "kind": "recurrent", "cell": "lstm", "model": name, "hidden_size": 8,
                   "num_layers": 1, "clip_norm": 1.0, "seq_len": 10, "steps": 2, "wall_time_s": 1.0, "machine": "m"}
        (folder / "summary.json").write_text(json.dumps(summary))
    for file, content in files:
        np.savez(folder / file, **content)
    return folder


def test_a_diverged_run_is_a_row_that_says_so(tmp_path):
    fake_run(tmp_path, "fine")
    fake_run(tmp_path, "exploded", model={**TINY["model"], "cell": "rnn"},
             diverged={"step": 7, "loss": float("nan"), "grad_norm": float("inf"), "last_checkpoint": 6})
    table = results.markdown(results.collect([tmp_path]))
    assert "| diverged at step 7 |" in table and "| 0.2000 |" in table


def test_each_experiment_fills_its_own_block_of_a_readme(tmp_path, capsys):
    runs = tmp_path / "runs"
    metrics = {"eval_decay_rate_init": 0.5, "eval_decay_rate": 0.25, "eval_solved": 0.0}
    fake_run(runs, "gradient_flow_rnn", experiment="gradient_flow", metrics=metrics)
    readme = tmp_path / "README.md"
    readme.write_text("a\n<!-- results:start -->\nold\n<!-- results:end -->\nb\n"
                      "<!-- gradient_flow:start -->\nold\n<!-- gradient_flow:end -->\nc\n")
    assert cli("table", runs, "--into", readme) == 0
    text = readme.read_text()
    assert "old" not in text and "| gradient_flow_rnn | 0.500 | 0.250 | 2.00e-01 | no |" in text


def test_the_figures_need_their_runs_and_say_which_is_missing(tmp_path, capsys):
    runs = tmp_path / "runs"
    fake_run(runs, "adding_t50_rnn")
    assert cli("table", runs, "--figures", tmp_path / "figures") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "figure adding.png needs the run of config adding_t50_lstm" in err and "jaxrnn run adding_t50_lstm" in err


def test_every_figure_draws_from_its_runs(tmp_path):
    """Every report's figure, from run folders holding what the experiments' analyses write."""
    runs = tmp_path / "runs"
    k = np.arange(11)
    for report in catalog.reports().values():
        for figure in report.figures:
            for name in figure.needs:
                if (runs / name).exists():
                    continue
                files = [("state_gradients.npz", {"k": k, "init": 0.9 ** k, "trained": 0.8 ** k}),
                         ("forecasts.npz", {"years": np.arange(1921, 1931), "observed": np.arange(10.0),
                                            "forecasts": np.ones((10, 3))})]
                fake_run(runs, name, files=files)
    (runs / "gradient_flow_rnn_r1.5_noclip" / "summary.json").unlink()
    (runs / "gradient_flow_rnn_r1.5_noclip" / "diverged.json").write_text(json.dumps(
        {"step": 2, "loss": float("nan"), "grad_norm": float("nan"), "last_checkpoint": None}))
    written = results.figures([runs], tmp_path / "figures")
    expected = {f.name for r in catalog.reports().values() for f in r.figures}
    assert {p.name for p in written} == expected >= {"adding.png", "sunspots.png", "gradient_flow.png", "clipping.png"}
    assert all(p.stat().st_size > 10_000 for p in written)


def test_every_report_is_of_a_registered_experiment():
    assert set(catalog.reports()) <= set(catalog.experiments())


def test_the_sunspots_table_puts_every_model_beside_persistence(tmp_path):
    runs = tmp_path / "runs"
    rmse = {f"eval_rmse_k{k}": float(k) for k in (1, 2, 4, 8)}
    fake_run(runs, "sunspots_ar8", experiment="sunspots", model={"kind": "window", "tau": 8}, metrics=rmse)
    own = results.experiment_tables(results.collect([runs]))["sunspots"]
    lines = own.splitlines()
    assert lines[0] == "| model | k = 1 | k = 2 | k = 4 | k = 8 |"
    assert lines[2] == "| persistence (`x^_s = x_{s-k}`) | 30.4 | 54.3 | 85.1 | 64.9 |"  # 1921-2008, from the data
    assert lines[3].endswith("| 1.0 | 2.0 | 4.0 | 8.0 |")


@pytest.mark.slow
def test_the_gradient_flow_experiment_runs_end_to_end(write_config, tmp_path):
    path = write_config(experiment="gradient_flow", model={"cell": "rnn", "spectral_radius": 1.5},
                        data={"seq_len": 6, "analysis_sequences": 2}, train={"steps": 2, "eval_every": 2})
    out = tmp_path / "gf"
    assert cli("run", path, "--out", out) == 0
    metrics = json.loads((out / "summary.json").read_text())["metrics"]
    assert {"eval_decay_rate_init", "eval_decay_rate", "eval_solved", "eval_loss"} <= set(metrics)
    saved = np.load(out / "state_gradients.npz")
    assert saved["init"].shape == (7,) and saved["init"][0] == pytest.approx(1.0)  # k = 0: the identity
    assert (out / "state_gradients.png").stat().st_size > 0


def test_a_broken_summary_is_one_line_and_status_2(tmp_path, capsys):
    runs = tmp_path / "runs"
    fake_run(runs, "fine")
    (fake_run(runs, "torn") / "summary.json").write_text('{"metrics": {"eval_lo')
    assert cli("table", runs) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "torn/summary.json: cannot read it as JSON" in err
    (runs / "torn" / "summary.json").write_text('{"steps": 3}')
    assert cli("table", runs) == 2
    assert "not a run summary" in capsys.readouterr().err
