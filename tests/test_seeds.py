"""Seeds and sweeps: N replicas of a run in one vmapped program (``train.seeds``, ``--sweep``), end to end.

Each replica must be the run of its own config -- the same records and final
metrics as a single run with that seed or those values, to float32 rounding
(the vmapped program batches the same arithmetic differently) -- and the NaN
guard, checkpoints, resume and bad input must behave per replica as they do
for a single run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml

from jaxrnn.experiment import replicas
from support import ROOT, TINY, cli


def records(folder):
    """metrics.jsonl without the timings."""
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in ("time", "steps_per_sec")} for r in rows]


def assert_same_records(a, b, rtol=2e-5):
    ra, rb = records(a), records(b)
    assert [sorted(r) for r in ra] == [sorted(r) for r in rb] and ra
    for x, y in zip(ra, rb):
        for k in x:
            np.testing.assert_allclose(x[k], y[k], rtol=rtol, atol=1e-7, err_msg=f"{k} at step {x['step']}")


def summary(folder):
    return json.loads((folder / "summary.json").read_text())


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    """The tiny config, as a file."""
    path = tmp_path_factory.mktemp("config") / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY))
    return path


@pytest.mark.slow  # ~10 s: room under the fast suite's 3 minutes
def test_each_seed_is_the_run_of_its_own_seed(config, tmp_path):
    """The tiny config run with 3 seeds, and the single run of seed 2 to hold its last seed to."""
    out = tmp_path
    assert cli("run", config, "--seeds", "3", "--out", out / "three", "--progress", "lines") == 0
    assert cli("run", config, "--set", "train.seed=2", "--out", out / "single2", "--progress", "lines") == 0
    three = out / "three"
    for seed in (2,):
        assert_same_records(three / f"seed-{seed}", out / f"single{seed}")
        own, single = summary(three / f"seed-{seed}")["metrics"], summary(out / f"single{seed}")["metrics"]
        assert own.keys() == single.keys()
        for name in own:
            np.testing.assert_allclose(own[name], single[name], rtol=2e-5, atol=1e-7, err_msg=name)
    # the run's own records hold one value per seed, and its summary their spread
    rows = records(three)
    assert all(len(r["loss"]) == 3 for r in rows if "loss" in r)
    whole = summary(three)
    losses = [summary(three / f"seed-{s}")["metrics"]["eval_loss"] for s in range(3)]
    spread = whole["spread"]["eval_loss"]
    assert spread["n"] == 3 and whole["seeds"] == 3 and whole["diverged"] == {}
    np.testing.assert_allclose([spread["mean"], spread["std"], spread["min"], spread["max"]],
                               [np.mean(losses), np.std(losses, ddof=1), min(losses), max(losses)], rtol=1e-12)
    assert whole["metrics"]["eval_loss"] == spread["mean"]
    assert [r["name"] for r in whole["replicas"]] == ["seed-0", "seed-1", "seed-2"]
    # the figures: the run's loss curves (mean and band), and each seed's own
    assert (three / "loss.png").stat().st_size > 0 and (three / "seed-2" / "loss.png").stat().st_size > 0
    # three seeds: three initialisations and three data streams
    first = [r["loss"] for r in records(three) if "loss" in r][0]
    assert len(set(first)) == 3


@pytest.mark.slow
def test_an_in_step_sweep_gives_the_run_of_each_value(config, tmp_path):
    assert cli("run", config, "--sweep", "optim.learning_rate=0.003,0.01", "--out", tmp_path / "swept",
               "--progress", "lines") == 0
    assert cli("run", config, "--set", "optim.learning_rate=0.003", "--out", tmp_path / "single",
               "--progress", "lines") == 0
    assert_same_records(tmp_path / "swept" / "optim.learning_rate=0.003" / "seed-0", tmp_path / "single")
    # the learning rate of 0.01 is seed 0's run of the config itself
    whole = summary(tmp_path / "swept")
    assert [p["values"] for p in whole["points"]] == [{"optim.learning_rate": 0.003}, {"optim.learning_rate": 0.01}]
    lr = [r["lr"] for r in records(tmp_path / "swept") if "lr" in r][0]
    np.testing.assert_allclose(lr, [0.003, 0.01], rtol=1e-6)


@pytest.mark.slow  # ~10 s: room under the fast suite's 3 minutes
def test_one_diverging_replica_stops_alone_and_spoils_nothing(config, tmp_path, capsys):
    swept = tmp_path / "swept"
    assert cli("run", config, "--sweep", "optim.learning_rate=0.01,1e30", "--out", swept, "--progress", "lines") == 0
    said = capsys.readouterr().out
    assert "optim.learning_rate=1e+30/seed-0 diverged at step" in said and "1 of 2 replicas go on" in said
    bad, good = swept / "optim.learning_rate=1e+30" / "seed-0", swept / "optim.learning_rate=0.01" / "seed-0"
    stop = json.loads((bad / "diverged.json").read_text())
    assert stop["step"] >= 1 and not (bad / "summary.json").exists()
    whole = summary(swept)
    assert whole["points"][1]["diverged"] == {"0": stop} and whole["points"][1]["spread"]["eval_loss"] == {"n": 0}
    # after the stop, the diverged replica's values are null in the run's records
    after = [r for r in records(swept) if "loss" in r and r["step"] > stop["step"]]
    assert after and all(r["loss"][1] is None and r["loss"][0] is not None for r in after)
    # the other replica is the plain run of the config: not corrupted by its neighbour
    assert cli("run", config, "--out", tmp_path / "plain", "--progress", "lines") == 0
    assert_same_records(good, tmp_path / "plain")


def test_every_replica_diverging_stops_the_run_with_its_last_good_checkpoint(config, tmp_path, capsys):
    folder = tmp_path / "bad"
    status = cli("run", config, "--seeds", "2", "--set", "optim.learning_rate=1e30", "--out", folder,
                 "--progress", "lines")
    err = capsys.readouterr().err
    assert status == 1 and err.count("\n") == 1 and "every one of the 2 replicas stopped" in err, err
    stop = json.loads((folder / "diverged.json").read_text())
    assert set(stop["replicas"]) == {"seed-0", "seed-1"}
    assert not (folder / "summary.json").exists()


@pytest.mark.slow
def test_an_interrupted_run_of_seeds_resumes_to_the_uninterrupted_one(config, tmp_path, monkeypatch):
    from test_cli import interrupt_after

    assert cli("run", config, "--seeds", "2", "--out", tmp_path / "whole", "--progress", "lines") == 0
    with monkeypatch.context() as patch:
        interrupt_after(3, patch)
        assert cli("run", config, "--seeds", "2", "--out", tmp_path / "cut", "--progress", "lines") == 130
    assert cli("run", "--resume", "--out", tmp_path / "cut", "--progress", "lines") == 0
    assert_same_records(tmp_path / "cut", tmp_path / "whole", rtol=0)
    for seed in (0, 1):
        assert_same_records(tmp_path / "cut" / f"seed-{seed}", tmp_path / "whole" / f"seed-{seed}", rtol=0)


@pytest.mark.slow
def test_a_run_of_seeds_killed_hard_resumes_to_the_uninterrupted_one(write_config, tmp_path):
    config = write_config(train={**TINY["train"], "steps": 60, "checkpoint_every": 5, "eval_every": 20})
    command = [sys.executable, "-m", "jaxrnn", "run", str(config), "--seeds", "2", "--progress", "lines"]
    assert subprocess.run([*command, "--out", str(tmp_path / "whole")], cwd=ROOT, capture_output=True).returncode == 0
    cut = tmp_path / "cut"
    proc = subprocess.Popen([*command, "--out", str(cut)], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    start = time.monotonic()
    while not (cut / "checkpoints" / "15").exists() and proc.poll() is None and time.monotonic() - start < 120:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    done = subprocess.run([*command[:4], "--resume", "--out", str(cut), "--progress", "lines"], cwd=ROOT,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert_same_records(cut, tmp_path / "whole", rtol=0)


@pytest.mark.slow
def test_a_sweep_over_a_key_that_changes_the_program_runs_each_value(config, tmp_path, capsys):
    folder = tmp_path / "sizes"
    assert cli("run", config, "--sweep", "model.hidden_size=4,8", "--seeds", "2", "--out", folder,
               "--progress", "lines") == 0
    assert json.loads((folder / "sweep.json").read_text())["sweep"] == {"model.hidden_size": [4, 8]}
    for size in (4, 8):
        run = summary(folder / f"model.hidden_size={size}")
        assert run["point"] == {"model.hidden_size": size} and run["hidden_size"] == size
        assert run["spread"]["eval_loss"]["n"] == 2
    capsys.readouterr()
    # resumed, the finished runs are left as they are
    assert cli("run", "--resume", "--out", folder, "--progress", "lines") == 0
    assert "(2 finished before)" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["--seeds", "0"], "train.seeds: expected a positive integer, got 0"),
    (["--seeds", "two"], "train.seeds: expected an integer, got 'two'"),
    (["--set", "train.seed=4294967295", "--seeds", "2"], "train.seeds: expected at most 1 for seed 4294967295"),
    (["--sweep", "optim.learning_rat=0.1,0.2"],
     "sweep: unknown key optim.learning_rat (did you mean optim.learning_rate?)"),
    (["--sweep", "optim.lr=0.1,0.2"], "sweep: unknown key optim.lr (did you mean optim.learning_rate?)"),
    (["--sweep", "optim.learning_rate=fast,0.1"], "sweep optim.learning_rate='fast': optim.learning_rate: expected"),
    (["--sweep", "optim.learning_rate=0.1,0.1"], "sweep optim.learning_rate: a value is given twice"),
    (["--sweep", "optim.learning_rate"], "--sweep expects key=value,value,..."),
    (["--sweep", "optim.learning_rate=0.1,"], "--sweep optim.learning_rate: an empty value"),
    (["--sweep", "train.seed=1,2", "--seeds", "2"], "sweep train.seed: train.seeds is 2"),
    (["--sweep", "optim.clip_norm=null,1"], "sweep optim.clip_norm: expected numbers only"),
    (["--sweep", "name=a,b"], "sweep name: this key cannot be swept"),
    (["--sweep", "model.cell=lstm,lsmt"], "sweep model.cell='lsmt': unknown model.cell 'lsmt'"),
])
def test_bad_seeds_and_sweeps_are_one_line_and_status_2(config, tmp_path, capsys, args, message):
    assert cli("run", config, *args, "--out", tmp_path / "run") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "run").exists()


def test_replicas_of_a_config_name_their_folders():
    from jaxrnn.experiment import config as config_lib

    raw = {**TINY, "train": {**TINY["train"], "seed": 5, "seeds": 2}, "sweep": {"optim.learning_rate": [0.1, 0.2]}}
    members = replicas.of(config_lib.from_dict(raw))
    assert [m.name for m in members] == ["optim.learning_rate=0.1/seed-5", "optim.learning_rate=0.1/seed-6",
                                         "optim.learning_rate=0.2/seed-5", "optim.learning_rate=0.2/seed-6"]
    assert [(m.config.train.seed, m.config.optim.learning_rate, m.config.train.seeds, m.config.sweep)
            for m in members] == [(5, 0.1, 1, None), (6, 0.1, 1, None), (5, 0.2, 1, None), (6, 0.2, 1, None)]


def test_spread_is_the_sample_statistics_of_the_finite_values():
    assert replicas.spread([1.0, 2.0, 6.0]) == {"mean": 3.0, "std": pytest.approx(np.std([1, 2, 6], ddof=1)),
                                                "min": 1.0, "max": 6.0, "n": 3}
    assert replicas.spread([4.0, None, float("nan")]) == {"mean": 4.0, "std": 0.0, "min": 4.0, "max": 4.0, "n": 1}
    assert replicas.spread([]) == {"n": 0}


@pytest.mark.slow
def test_sample_reads_the_first_seed_or_the_seed_whose_folder_is_given(tmp_path, capsys):
    folder = tmp_path / "charlm"
    assert cli("run", "charlm_gru", "--seeds", "2", "--out", folder, "--progress", "lines",
               *[a for s in ("train.steps=4", "train.eval_every=2", "train.checkpoint_every=2", "data.window=10",
                             "model.hidden_size=8", "data.embedding_size=4") for a in ("--set", s)]) == 0
    capsys.readouterr()
    texts = {}
    for where in ("", "seed-0", "seed-1"):
        assert cli("sample", folder / where, "--length", "200", "--temperature", "0") == 0
        texts[where] = capsys.readouterr().out
    assert texts[""] == texts["seed-0"] != texts["seed-1"]
    assert cli("sample", folder / "seed-7") == 2
    assert "not a replica of the run" in capsys.readouterr().err


@pytest.mark.slow
def test_a_run_made_before_seeds_existed_resumes_and_refuses_other_seeds(config, tmp_path, capsys):
    old = tmp_path / "old"
    assert cli("run", config, "--out", old, "--progress", "lines") == 0
    raw = yaml.safe_load((old / "config.yaml").read_text())
    del raw["train"]["seeds"], raw["sweep"]  # as a run of jaxrnn 0.2.0 wrote it
    (old / "config.yaml").write_text(yaml.safe_dump(raw))
    assert cli("run", "--resume", "--out", old, "--seeds", "2") == 2
    assert "--resume: train.seeds is 2 but the run in" in capsys.readouterr().err
    assert cli("run", "--resume", "--out", old, "--progress", "lines") == 0


@pytest.mark.parametrize("loop", ["vmap", "map"])
def test_both_replica_loops_step_each_replica_as_its_single_run(loop):
    """vmap (a GPU's) and lax.map (the CPU's default) compute the same update, forced here on the CPU."""
    from jaxrnn.experiment import catalog, stepper
    from jaxrnn.experiment import config as config_lib

    config = config_lib.from_dict({**TINY, "train": {**TINY["train"], "seeds": 2}})
    members = replicas.of(config)
    experiment = catalog.experiment(config.experiment)
    problems = [experiment.problem(m.config) for m in members]
    both = stepper.build(config, problems, members, loop=loop)
    single = stepper.build(members[1].config, [problems[1]])
    saved, alone = both.saved, single.saved
    for step in range(3):
        saved, metrics = both(saved, step)
        alone, own = single(alone, step)
        for name in ("loss", "grad_norm"):
            np.testing.assert_allclose(metrics[name][1], own[name][0], rtol=1e-5, err_msg=f"{name} at {step}")
    assert len(set(metrics["loss"])) == 2


def test_the_default_replica_loop_is_lax_map_on_a_cpu_and_vmap_elsewhere():
    from jaxrnn.experiment import stepper

    assert [stepper.replica_loop(b) for b in ("cpu", "gpu", "tpu")] == ["map", "vmap", "vmap"]
    from jaxrnn.experiment import catalog
    from jaxrnn.experiment import config as config_lib

    config = config_lib.from_dict({**TINY, "train": {**TINY["train"], "seeds": 2}})
    members = replicas.of(config)
    problems = [catalog.experiment(config.experiment).problem(m.config) for m in members]
    with pytest.raises(ValueError, match="loop: expected one of vmap, map, got 'scan'"):
        stepper.build(config, problems, members, loop="scan")
