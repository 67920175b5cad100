"""Tables and figures made from run folders: the results table, each experiment's own table, the README's
figures, and a clear error when a figure's run is missing. Run folders here are written by hand (fast);
the end-to-end runs that make real ones are in test_cli.py and the experiments' tests."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from jaxrnn.experiment import catalog, plots, replicas, results
from jaxrnn.experiment import config as config_lib
from jaxrnn.experiment.rundir import RunDir, label
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


# --- runs of several seeds ---------------------------------------------------------------------------------


def fake_seeds_run(root, name, losses, experiment="adding", model=None, sweep=None, metrics=None, files=()):
    """A run of several replicas as the runner leaves it: the whole run's list-valued records and summary (or,
    when every replica diverged, its ``diverged.json``), and each replica's folder with its own.

    ``losses``: each replica's eval loss (``None``: stopped by the NaN guard at step 2), seeds 0, 1, ... of
    each value of ``sweep`` (``{key: [values]}``, one in-step key) in turn; ``metrics``: more metrics, by name a
    value for every replica or a list of one each; ``files``: each replica's arrays, as in :func:`fake_run`.
    """
    folder = fake_run(root, name, experiment=experiment, model=model)
    head = {k: v for k, v in json.loads((folder / "summary.json").read_text()).items() if k != "metrics"}
    ((key, values),) = (sweep or {None: [None]}).items()
    seeds = len(losses) // len(values)
    summaries, rows = [], []
    for i, loss in enumerate(losses):
        point = {} if key is None else {key: values[i // seeds]}
        own = "/".join([*([label(point)] if point else []), f"seed-{i % seeds}"])
        sub = folder / own
        sub.mkdir(parents=True)
        more = {k: v[i] if isinstance(v, list) else v for k, v in (metrics or {}).items()}
        records = [{"step": 1, "loss": 0.5 + i}, {"step": 2, "loss": 0.3 + i if loss is not None else float("nan")}]
        if loss is None:
            stop = {"step": 2, "loss": float("nan"), "grad_norm": float("inf")}
            (sub / "diverged.json").write_text(json.dumps(stop))
            summary = {"metrics": {}, "diverged": stop}
        else:
            records.append({"step": 2, "eval_loss": loss, **more})
            summary = {**head, "metrics": {"eval_loss": loss, "baseline": 1 / 6, **more}}
            (sub / "summary.json").write_text(json.dumps(summary))
            for file, content in files:
                np.savez(sub / file, **{k: v * (1 + 0.1 * i) if k != "k" and k != "years" and k != "observed" else v
                                        for k, v in content.items()})
        (sub / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
        summaries.append({**summary, "seed": i % seeds, "values": point, "name": own})
        rows.append({"name": own, "seed": i % seeds, "values": point,
                     **({"metrics": summary["metrics"]} if loss is not None else {"diverged": summary["diverged"]})})
    lists = [{"step": 1, "loss": [0.5 + i for i in range(len(losses))]},
             {"step": 2, "loss": [0.3 + i if v is not None else None for i, v in enumerate(losses)]},
             {"step": 2, "eval_loss": list(losses),
              **{k: [s["metrics"].get(k) for s in summaries] for k in (metrics or {})}}]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lists))
    points = []
    for value in values:
        point = {} if key is None else {key: value}
        own = [s for s in summaries if s["values"] == point]
        spread = replicas.aggregate(own)
        points.append({"values": point, "seeds": [s["seed"] for s in own],
                       "diverged": {str(s["seed"]): s["diverged"] for s in own if s.get("diverged")},
                       "metrics": {k: v["mean"] for k, v in spread.items() if v["n"]}, "spread": spread})
    (folder / "summary.json").unlink()
    if all(loss is None for loss in losses):
        (folder / "diverged.json").write_text(json.dumps(
            {"step": 2, "loss": float("nan"), "grad_norm": float("inf"), "last_checkpoint": None,
             "replicas": {s["name"]: s["diverged"] for s in summaries}}))
    else:
        (folder / "summary.json").write_text(json.dumps(
            {**head, "seeds": seeds, "metrics": points[0]["metrics"], "spread": points[0]["spread"],
             "diverged": points[0]["diverged"], "points": points, "replicas": rows}))
    return folder


def test_a_run_of_several_seeds_reads_mean_std_n_and_how_many_diverged(tmp_path):
    fake_run(tmp_path, "single")
    metrics = {"eval_accuracy": [0.5, 0.7, 0.0], "eval_grad_decay": [-1.0, -2.0, 0.0]}
    fake_seeds_run(tmp_path, "three", [0.2, 0.4, None], metrics=metrics)
    fake_seeds_run(tmp_path, "lost", [None, None], model={**TINY["model"], "cell": "gru"})
    lines = results.markdown(results.collect([tmp_path])).splitlines()
    single, three, lost = lines[2:]  # "lost", all diverged: its row made from its config (model gru)
    assert single == "| adding | 10 | single | 8 | 0.2000 | 0.1667 | 1.2000 |  |  | 2 | 1 s | m |"  # as before
    # std of (0.2, 0.4): 0.1414; of the ratios to 1/6: 0.8485; n counts the seeds that finished
    assert "| 0.3000 ± 0.1414 (2), 1 of 3 diverged | 0.1667 | 1.8000 ± 0.8485 (2) | 0.6000 ± 0.1414 (2) |" in three
    assert "| -1.5 ± 0.7 (2) |" in three
    assert lost.startswith("| adding | 10 | gru | 8 | all 2 diverged by step 2 |  |  |")


def test_the_points_of_an_in_step_sweep_are_rows_in_order_labelled_with_their_values(tmp_path):
    fake_seeds_run(tmp_path, "lr", [0.3, 0.5, 0.1, 0.2], sweep={"optim.learning_rate": [0.03, 0.001]})
    fake_seeds_run(tmp_path, "lr_one_seed", [0.3, None], sweep={"optim.learning_rate": [0.03, 0.001]})
    rows = [line for line in results.markdown(results.collect([tmp_path])).splitlines()[2:]]
    assert [row.split(" | ")[2] for row in rows] == [
        "lr, optim.learning_rate=0.03", "lr, optim.learning_rate=0.001",
        "lr_one_seed, optim.learning_rate=0.03", "lr_one_seed, optim.learning_rate=0.001"]
    assert "| 0.4000 ± 0.1414 (2) |" in rows[0] and "| 0.1500 ± 0.0707 (2) |" in rows[1]
    assert "| 0.3000 |" in rows[2] and "| diverged at step 2 |" in rows[3]  # one seed: a single run's cells


def test_a_sweep_folder_is_found_and_its_rows_come_together_in_the_order_of_its_values(tmp_path):
    runs = tmp_path / "runs"
    sweep = runs / "sizes"
    sweep.mkdir(parents=True)
    (sweep / "sweep.json").write_text(json.dumps({"config": "sizes", "sweep": {"model.hidden_size": [64, 8],
                                                                               "model.cell": ["lstm", "gru"]}}))
    losses = {(64, "lstm"): [0.1, 0.2], (64, "gru"): [0.3, 0.4], (8, "lstm"): [0.5, 0.6]}
    for (size, cell), seeds in losses.items():
        model = {**TINY["model"], "hidden_size": size, "cell": cell}
        folder = fake_seeds_run(sweep / f"model.hidden_size={size}", f"model.cell={cell}", seeds, model=model)
        summary = json.loads((folder / "summary.json").read_text())
        summary.update(point={"model.hidden_size": size, "model.cell": cell}, config="sizes", cell=cell, model=cell)
        (folder / "summary.json").write_text(json.dumps(summary))
    lost = fake_run(sweep / "model.hidden_size=8", "model.cell=gru",
                    model={**TINY["model"], "hidden_size": 8, "cell": "gru"},
                    diverged={"step": 3, "loss": float("nan"), "grad_norm": float("inf"), "last_checkpoint": None})
    config = yaml.safe_load((lost / "config.yaml").read_text())
    (lost / "config.yaml").write_text(yaml.safe_dump({**config, "name": "sizes"}))  # a sweep's runs: its config's name
    fake_run(runs, "adding_lstm")  # a run beside the sweep, whose row sorts before it
    assert len(results.run_folders([runs])) == 5 and len(results.run_folders([sweep])) == 4
    rows = results.collect([runs])
    assert [r.get("point") for r in rows] == [None, {"model.hidden_size": 64, "model.cell": "lstm"},
                                              {"model.hidden_size": 64, "model.cell": "gru"},
                                              {"model.hidden_size": 8, "model.cell": "lstm"},
                                              {"model.hidden_size": 8, "model.cell": "gru"}]
    lines = results.markdown(rows).splitlines()[2:]
    assert "| lstm, model.hidden_size=64, model.cell=lstm | 8 | 0.1500 ± 0.0707 (2) |" in lines[1]
    assert "| gru, model.hidden_size=8, model.cell=gru | 8 | diverged at step 3 |" in lines[4]

    written = results.draw_sweep(sweep)
    assert [p.name for p in written] == ["sweep_model.hidden_size.png", "sweep_model.cell.png"]
    assert all(p.parent == sweep and p.stat().st_size > 10_000 for p in written)


def test_the_experiment_tables_show_the_spread_of_several_seeds(tmp_path):
    runs = tmp_path / "runs"
    fake_seeds_run(runs, "gradient_flow_rnn", [0.2, 0.001, 0.0], experiment="gradient_flow",
                   metrics={"eval_decay_rate_init": [0.5, 0.6, 0.7], "eval_decay_rate": 0.25,
                            "eval_solved": [0.0, 1.0, 1.0]})
    fake_run(runs, "gradient_flow_gru", experiment="gradient_flow",
             metrics={"eval_decay_rate_init": 0.5, "eval_decay_rate": 0.25, "eval_solved": 0.0})
    rmse = {f"eval_rmse_k{k}": [float(k), float(k) + 2] for k in (1, 2, 4, 8)}
    fake_seeds_run(runs, "sunspots_gru", [0.1, 0.2], experiment="sunspots", metrics=rmse)
    charlm = fake_seeds_run(runs, "charlm_gru", [1.0, None, 3.0], experiment="charlm",
                            metrics={"eval_bpc": [2.0, None, 2.5], "eval_unigram_bpc": 4.3})
    (charlm / "seed-0" / "sample.txt").write_text("The | sample\n")
    tables = results.experiment_tables(results.collect([runs]))
    flow = tables["gradient_flow"].splitlines()
    assert "| gradient_flow_rnn | 0.600 ± 0.100 (3) | 0.250 ± 0.000 (3) | 6.70e-02 ± 1.15e-01 (3) | 2 of 3 |" in flow
    assert "| gradient_flow_gru | 0.500 | 0.250 | 2.00e-01 | no |" in flow  # a single run's, as before
    assert tables["sunspots"].splitlines()[3] == (
        "| sunspots_gru (8 units) | 2.0 ± 1.4 (2) | 3.0 ± 1.4 (2) | 5.0 ± 1.4 (2) | 9.0 ± 1.4 (2) |")
    assert tables["charlm"].splitlines()[2] == (
        "| charlm_gru (1 x 8), 1 of 3 diverged | 0 | 2.250 ± 0.354 (2) | 4.300 | 2 | `The \\| sample⏎` (seed 0) |")


def test_the_mean_curve_of_gradient_norms_is_geometric_with_a_min_max_band():
    fig, ax = plots.axes()
    means = plots.mean_curve(ax, [0, 1, 2], np.array([[1.0, 4.0], [0.0, 1.0], [2.0, np.nan]]), label="norm",
                             band="min-max of 2 seeds", geometric=True)
    np.testing.assert_allclose(means, [2.0, np.nan, 2.0])  # an underflowed 0 is a gap; a missing seed is left out
    assert ax.get_lines()[0].get_label() == "norm (mean; band: min-max of 2 seeds)" and len(ax.collections) == 1
    fig, ax = plots.axes()
    plots.mean_curve(ax, [0, 1], np.array([[1.0], [2.0]]), label="one", band="min-max of 1 seeds")
    assert ax.get_lines()[0].get_label() == "one" and not ax.collections  # one seed: its line, no band


def test_every_figure_draws_runs_of_several_seeds(tmp_path):
    """The README's figures and each run's, from runs of several seeds (built by hand): the mean and the band."""
    runs = tmp_path / "runs"
    k = np.arange(11)
    files = [("state_gradients.npz", {"k": k, "init": 0.9 ** k, "trained": 0.8 ** k}),
             ("input_gradients.npz", {"init": 0.9 ** k, "trained": 0.8 ** k}),
             ("predictions.npz", {"predicted": np.ones(4), "target": np.ones(4)}),
             ("forecasts.npz", {"years": np.arange(1921, 1931), "observed": np.arange(10.0),
                                "forecasts": np.ones((10, 3))})]
    for report in catalog.reports().values():
        for figure in report.figures:
            for name in figure.needs:
                if name == "gradient_flow_lstm":  # an in-step sweep, one of whose points diverged
                    fake_seeds_run(runs, name, [0.1, 0.2, None, None], sweep={"optim.learning_rate": [0.01, 1.0]},
                                   files=files)
                elif not (runs / name).exists():
                    fake_seeds_run(runs, name, [None] * 3 if name.endswith("noclip") else [0.1, 0.2, None],
                                   files=files)
    written = results.figures([runs], tmp_path / "figures")
    assert {p.name for p in written} == {f.name for r in catalog.reports().values() for f in r.figures}
    assert all(p.stat().st_size > 10_000 for p in written)

    accuracy = {"eval_accuracy": [0.2, 0.4, 0.6, 0.8]}
    folders = {"copying": fake_seeds_run(runs, "copy", [0.1, 0.2, 0.3, 0.4], experiment="copying", metrics=accuracy,
                                         sweep={"optim.learning_rate": [0.01, 0.1]}),
               "sunspots": runs / "sunspots_gru", "gradient_flow": runs / "gradient_flow_lstm"}
    for experiment, folder in folders.items():
        config = config_lib.from_dict({**TINY, "experiment": experiment, "name": folder.name,
                                       "data": {"delay": 5} if experiment == "copying" else {}})
        catalog.report(experiment).run(config, RunDir(folder))
    for png in ("copy/accuracy.png", "sunspots_gru/forecasts.png", "gradient_flow_lstm/state_gradients.png",
                "gradient_flow_lstm/gradient_flow.png", "gradient_flow_lstm/predictions.png"):
        assert (runs / png).stat().st_size > 10_000, png


@pytest.fixture(scope="module")
def seeds_run(tmp_path_factory):
    """A real, tiny gradient_flow run through the command line: 2 seeds at each of 2 learning rates."""
    root = tmp_path_factory.mktemp("seeds")
    config = {**TINY, "experiment": "gradient_flow", "name": "flow",
              "model": {"cell": "rnn", "hidden_size": 4, "num_layers": 1},
              "data": {"seq_len": 5, "analysis_sequences": 2},
              "train": {**TINY["train"], "steps": 4, "eval_every": 2, "checkpoint_every": 4}}
    path = root / "flow.yaml"
    path.write_text(yaml.safe_dump(config))
    out = root / "flow"
    assert cli("run", path, "--seeds", "2", "--sweep", "optim.learning_rate=0.01,0.003", "--out", out,
               "--progress", "lines") == 0
    return RunDir(out)


@pytest.mark.slow
def test_a_real_run_of_several_seeds_gives_its_rows_and_figures(seeds_run):
    assert [p.path.name for p in seeds_run.replica_dirs()] == ["seed-0", "seed-1"] * 2
    assert [(p.label, p.replicas) for p in seeds_run.points()] == [("optim.learning_rate=0.01", [0, 1]),
                                                                   ("optim.learning_rate=0.003", [2, 3])]
    rows = results.markdown(results.collect([seeds_run.path])).splitlines()[2:]
    assert len(rows) == 2 and "optim.learning_rate=0.01 |" in rows[0] and "optim.learning_rate=0.003 |" in rows[1]
    assert all(" ± " in row and "(2) |" in row for row in rows)
    flow = results.experiment_tables(results.collect([seeds_run.path]))["gradient_flow"].splitlines()[2:]
    assert len(flow) == 2 and all(row.count(" ± ") == 3 for row in flow)
    for png in ("loss.png", "predictions.png", "gradient_flow.png", "state_gradients.png"):
        assert (seeds_run.path / png).stat().st_size > 10_000, png
    assert seeds_run.outcome().startswith("eval loss ") and "(mean of 2 seeds) after 4 steps" in seeds_run.outcome()
    (written,) = results.draw_sweep(seeds_run.path)
    assert written == seeds_run.path / "sweep_optim.learning_rate.png" and written.stat().st_size > 10_000
