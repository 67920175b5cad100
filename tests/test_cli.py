"""The runner end to end through the CLI: files, resume, the NaN guard, list and table.

The runs that train are marked ``slow``: ``python -m pytest -m slow`` runs them, and CI does.
"""

from __future__ import annotations

import io
import json
import os
import signal
import site
import subprocess
import sys
import threading
import time

import jax
import numpy as np
import pytest

from jaxrnn import training
from jaxrnn.experiment import catalog, progress, registry, results, runner
from jaxrnn.experiment import config as config_lib
from jaxrnn.experiment.checkpoint import Checkpointer
from support import ROOT, cli


def final_state(folder, config_path):
    """The train state of the newest checkpoint in ``folder``."""
    config = config_lib.load(config_path)
    tx, _ = config.optim.build(config.train.steps)
    like = training.init(catalog.experiment(config.experiment).problem(config).init(jax.random.key(0)), tx)
    with Checkpointer(folder / "checkpoints") as checkpoints:
        return checkpoints.restore(like)


def losses(folder):
    """metrics.jsonl without the timings."""
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in ("time", "steps_per_sec")} for r in rows]


def interrupt_after(steps, monkeypatch, real=False):
    """Ctrl-C right after training step ``steps`` of the next run: as the runner sees it (``KeyboardInterrupt``),
    or ``real``: a SIGINT sent to this process, which the command's handler turns into a stop between steps."""
    advance, calls = progress.Progress.advance, []

    def killed(self, n=1):
        advance(self, n)
        calls.append(n)
        if len(calls) == steps:
            if real:
                signal.raise_signal(signal.SIGINT)
            else:
                raise KeyboardInterrupt

    monkeypatch.setattr(progress.Progress, "advance", killed)


def spawn(command, **options):
    """``subprocess.Popen(command)`` with Ctrl-C's default action in the child, which a test run started in the
    background would hand down as ignored (the command, rightly, leaves an ignored SIGINT ignored). A signal
    this process handles is reset to its default in the child."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return subprocess.Popen(command, **options)
    finally:
        signal.signal(signal.SIGINT, previous)


def ctrl_c(args, cwd, at, timeout=120):
    """``python -m jaxrnn ARGS`` in a process sent SIGINT ``at`` seconds after its start, or once
    ``at(stdout_lines)`` holds; ``(returncode, stdout, stderr)``."""
    proc = spawn([sys.executable, "-m", "jaxrnn", *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                 text=True, cwd=cwd)
    lines, start = [], time.monotonic()

    def read():
        for line in proc.stdout:
            lines.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    ready = (lambda: time.monotonic() - start >= at) if isinstance(at, (int, float)) else (lambda: at(lines))
    while not ready() and proc.poll() is None and time.monotonic() - start < timeout:
        time.sleep(0.02)
    assert proc.poll() is None, f"the command ended before Ctrl-C: {proc.returncode}, {proc.stderr.read()}"
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=60)  # a run that ignored the signal goes on: fail, rather than wait for it
    finally:
        proc.kill()
    reader.join(timeout)
    return proc.returncode, "".join(lines), proc.stderr.read()


def assert_clean_interrupt(returncode, err):
    """Exit status 130 and one line on stderr: no traceback, nothing ignored, no crash."""
    assert returncode == 130, (returncode, err)  # a segfault is -11, SIGINT's default action -2
    assert "Traceback" not in err and "Exception ignored" not in err, err
    assert err.count("\n") == 1 and err.startswith("interrupted"), err


def test_run_writes_every_file_it_promises(write_config, tmp_path, capsys):
    path = write_config()
    out = tmp_path / "run"
    assert cli("run", path, "--out", out) == 0
    stdout = capsys.readouterr().out
    assert "step 6/6" in stdout and "eval_loss" in stdout  # plain lines off a terminal
    for name in ("config.yaml", "metrics.jsonl", "summary.json", "loss.png", "predictions.png", "gradient_flow.png"):
        assert (out / name).stat().st_size > 0, name
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["metrics"]) == {"eval_loss", "eval_grad_decay", "eval_grad_underflow", "baseline"}
    assert summary["metrics"]["baseline"] == pytest.approx(1 / 6)
    assert summary["steps"] == 6 and summary["wall_time_s"] > 0 and summary["machine"]
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if "loss" in r]
    assert [r["step"] for r in train] == [1, 2, 3, 4, 5, 6]
    assert all({"grad_norm", "lr", "time"} <= set(r) for r in train)
    assert all("steps_per_sec" in r for r in train[1:])
    assert [r["step"] for r in records if "eval_loss" in r] == [3, 6]
    with Checkpointer(out / "checkpoints") as checkpoints:
        assert checkpoints.steps() == [2, 4, 6]
    assert config_lib.load(out / "config.yaml").train == config_lib.load(path).train


@pytest.mark.slow
def test_copying_reports_accuracy(write_config, tmp_path):
    path = write_config(experiment="copying", data={"delay": 3, "length": 2, "symbols": 3},
                        train={"steps": 2, "eval_every": 2})
    out = tmp_path / "copy"
    assert cli("run", path, "--out", out) == 0
    metrics = json.loads((out / "summary.json").read_text())["metrics"]
    assert set(metrics) == {"eval_loss", "eval_accuracy", "baseline"}
    assert metrics["baseline"] == pytest.approx(2 * np.log(3) / (3 + 4))
    assert (out / "accuracy.png").exists()


@pytest.mark.slow
def test_resume_ends_with_the_parameters_of_an_uninterrupted_run(write_config, tmp_path, monkeypatch, capsys):
    """Killed after step 5, the run resumes by the command it printed (its --set values are in the run
    folder), and ends bit for bit where an uninterrupted run ends."""
    path = write_config(model={"cell": "gru", "num_layers": 2, "dropout": 0.25})
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    assert cli("run", path, "--out", whole, "--set", "optim.schedule=cosine") == 0

    # Kill the second run after step 5: checkpoints 2 and 4 are on disk, step 5 is lost.
    interrupt_after(5, monkeypatch)
    assert cli("run", path, "--out", parts, "--set", "optim.schedule=cosine") == 130
    hint = capsys.readouterr().err
    assert "--resume" in hint and "--set" not in hint
    monkeypatch.undo()
    with Checkpointer(parts / "checkpoints") as checkpoints:
        assert checkpoints.steps() == [2, 4]
    assert not (parts / "summary.json").exists()

    command = hint.split("continue with: jaxrnn ")[1].split()
    assert cli(*command) == 0
    assert "resumed from the checkpoint of step 4" in capsys.readouterr().out
    a, b = final_state(whole, path), final_state(parts, path)
    assert int(a.step) == int(b.step) == 6
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        np.testing.assert_array_equal(x, y)  # bit for bit
    assert losses(whole) == losses(parts)
    summary = lambda d: json.loads((d / "summary.json").read_text())["metrics"]  # noqa: E731
    assert summary(whole) == summary(parts)


@pytest.mark.slow
def test_resuming_a_finished_run_only_evaluates_again(write_config, tmp_path):
    path = write_config(train={"steps": 2, "eval_every": 1})
    out = tmp_path / "run"
    assert cli("run", path, "--out", out) == 0
    before = losses(out)
    assert cli("run", path, "--out", out, "--resume") == 0
    assert losses(out) == before


@pytest.mark.slow
def test_an_existing_run_is_not_overwritten_by_accident(write_config, tmp_path, capsys):
    path = write_config(train={"steps": 2})
    out = tmp_path / "run"
    assert cli("run", path, "--out", out) == 0
    capsys.readouterr()
    assert cli("run", path, "--out", out) == 2
    err = capsys.readouterr().err
    assert "already holds a run" in err and "--resume" in err and "--overwrite" in err
    assert cli("run", path, "--out", out, "--resume", "--set", "optim.learning_rate=0.5") == 2
    err = capsys.readouterr().err
    assert "optim.learning_rate" in err and "0.5" in err and err.count("\n") == 1
    assert cli("run", path, "--out", out, "--overwrite", "--set", "optim.learning_rate=0.5") == 0
    assert config_lib.load(out / "config.yaml").optim.learning_rate == 0.5
    other = write_config(name="other", train={"steps": 2})
    assert cli("run", other, "--out", out, "--resume") == 2
    assert "--resume: name is 'other' but the run in" in capsys.readouterr().err


@pytest.mark.slow
def test_nan_guard_stops_and_keeps_the_last_good_checkpoint(write_config, tmp_path, capsys):
    path = write_config(model={"cell": "rnn"}, train={"steps": 20, "checkpoint_every": 1, "eval_every": 100})
    out = tmp_path / "diverge"
    status = cli("run", path, "--out", out, "--set", "optim.name=sgd", "--set", "optim.learning_rate=1e30",
                 "--set", "optim.clip_norm=null", "--set", "optim.momentum=0")
    assert status == 1
    err = capsys.readouterr().err
    assert "diverged" in err and "at step" in err and "last good checkpoint is step" in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not (out / "summary.json").exists()
    state = final_state(out, out / "config.yaml")
    bad_step = int(err.split("at step ")[1].split()[0])
    assert int(state.step) == bad_step - 1
    assert all(np.isfinite(leaf).all() for leaf in jax.tree_util.tree_leaves(state))


def test_list_shows_every_config(capsys):
    assert cli("list") == 0
    lines = capsys.readouterr().out.splitlines()
    names = sorted(p.stem for p in (ROOT / "configs").glob("*.yaml"))
    assert sorted(line.split()[0] for line in lines) == names
    assert not any("INVALID" in line for line in lines)
    by_name = {line.split()[0]: line for line in lines}  # the model as the part describes itself
    assert " lstm(64, chrono=70) " in by_name["copying_t50_lstm"], by_name["copying_t50_lstm"]
    assert " rnn(32, activation='tanh', spectral_radius=0.5) " in by_name["gradient_flow_rnn_r0.5"]


@pytest.mark.slow
def test_table_from_run_folders(write_config, tmp_path, capsys):
    for cell in ("gru", "rnn"):
        path = write_config(name=f"tiny_{cell}", model={"cell": cell}, train={"steps": 2})
        assert cli("run", path, "--out", tmp_path / "runs" / f"tiny_{cell}") == 0
    capsys.readouterr()
    assert cli("table", tmp_path / "runs") == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].startswith("| experiment | T | cell |")
    assert [row.split("|")[3].strip() for row in table[2:]] == ["rnn", "gru"]
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{results.START}\nold\n{results.END}\n\nafter\n")
    assert cli("table", tmp_path / "runs", "--into", readme, "--out", tmp_path / "table.md") == 0
    text = readme.read_text()
    assert "old" not in text and "| rnn |" in text.replace("  ", " ") and text.endswith("after\n")
    written = (tmp_path / "table.md").read_text()
    assert written.startswith("<!-- generated by `jaxrnn table") and written.split("-->\n\n", 1)[1] in text
    assert cli("table", tmp_path / "nothing") == 2


def test_progress_bar_on_a_terminal_and_lines_elsewhere():
    stream = io.StringIO()
    bar = progress.Progress(10, interactive=True, stream=stream)
    bar.advance(5)
    bar.report({"step": 5, "loss": 0.25, "steps_per_sec": 12.0})
    bar.close()
    assert "5/10" in stream.getvalue() and "loss=0.25" in stream.getvalue()
    stream = io.StringIO()
    lines = progress.Progress(10, interactive=False, stream=stream)
    lines.report({"step": 5, "loss": 0.25, "steps_per_sec": 12.0, "time": 1.0})
    assert stream.getvalue() == "step  5/10  loss 0.25  steps/s 12\n"


def _subprocess(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "jaxrnn", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=120)


# Ctrl-C at moments from the imports to training. The fast suite keeps 2.5 s: set-up on most machines (the app's
# imports, building the problem, the first compile), where a KeyboardInterrupt raised inside JAX is swallowed
# ("Exception ignored") or races XLA's threads at exit (a segfault after the message).
MOMENTS = [pytest.param(moment, marks=pytest.mark.slow) for moment in (0.2, 1.0, 3.0, "header", "first checkpoint")]


@pytest.mark.parametrize("moment", [2.5, *MOMENTS])
def test_ctrl_c_at_any_moment_of_a_run_is_one_line_and_status_130(write_config, tmp_path, moment):
    """Ctrl-C to a real run: status 130, one line on stderr (with the resume command once a checkpoint exists),
    never a traceback, an ignored exception or a segfault."""
    path = write_config(train={"steps": 100000, "eval_every": 100000, "checkpoint_every": 5, "log_every": 5})
    out = tmp_path / "run"
    at = {"header": lambda lines: any(" steps -> " in line for line in lines),
          "first checkpoint": lambda lines: (out / "checkpoints" / "5").is_dir()}.get(moment, moment)
    returncode, _, err = ctrl_c(["run", path, "--out", out, "--progress", "lines"], tmp_path, at)
    assert_clean_interrupt(returncode, err)
    if not any((out / "checkpoints").glob("[0-9]*")):  # nothing saved: no resume command that resumes nothing
        assert "--resume" not in err, err
    if moment == "header":  # compiling the first step
        assert err == "interrupted before the first checkpoint (nothing to resume)\n"
    if moment == "first checkpoint":
        assert err.strip().endswith(f"jaxrnn run --resume --out {out}")


@pytest.mark.slow
def test_ctrl_c_during_training_stops_at_a_step_boundary_with_the_resume_command(write_config, tmp_path, capsys,
                                                                                     monkeypatch):
    """A real SIGINT after step 3 (checkpoints every 2 steps): training stops between steps, the checkpoints
    it started are written, and the command prints how to resume."""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers live in the main thread")
    path = write_config(train={"steps": 6, "checkpoint_every": 2, "eval_every": 100})
    out = tmp_path / "run"
    interrupt_after(3, monkeypatch, real=True)
    # A test run started in the background has SIGINT ignored, which the command leaves as it is: Python's own here.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        assert cli("run", path, "--out", out) == 130
    finally:
        signal.signal(signal.SIGINT, previous)
    err = capsys.readouterr().err
    assert err == f"interrupted; continue with: jaxrnn run --resume --out {out}\n"
    with Checkpointer(out / "checkpoints") as checkpoints:
        assert checkpoints.steps() in ([2], [2, 4])  # the step the signal came in, or the next, then stop
    assert not (out / "summary.json").exists()


@pytest.mark.slow
def test_ctrl_c_stops_a_long_sample_at_once(write_config, tmp_path):
    """Ctrl-C while a long sample (a million characters) is drawn ends `jaxrnn sample` promptly, in one line,
    rather than after the whole sample."""
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("abcd efgh ijkl mnop " * 40)
    path = write_config(experiment="charlm", model={"cell": "gru", "hidden_size": 128, "num_layers": 1},
                        train={"steps": 2, "batch_size": 4, "eval_every": 2, "checkpoint_every": 2},
                        data={"path": str(corpus), "window": 10, "eval_streams": 2, "sample_length": 20})
    out = tmp_path / "lm"
    assert cli("run", path, "--out", out) == 0
    started = time.monotonic()  # how long this machine takes to start drawing: imports, restore, compile
    subprocess.run([sys.executable, "-m", "jaxrnn", "sample", out, "--length", "10"], check=True, cwd=tmp_path,
                   capture_output=True, timeout=120)
    drawing = time.monotonic() - started + 2.0
    returncode, text, err = ctrl_c(["sample", out, "--length", "1000000"], tmp_path, at=drawing)
    assert_clean_interrupt(returncode, err)
    assert err == "interrupted\n" and text == "" and time.monotonic() - started < 2 * drawing + 10


def new_devices():
    """More devices than this process sees."""
    return len(jax.devices()) + 1


@pytest.mark.parametrize("override, message", [
    (lambda: f"train.devices={new_devices()}", "train.devices: "),
    (lambda: "model.hidden_size=100000000", "use a smaller model.hidden_size or model.num_layers"),
], ids=["devices", "memory"])
def test_errors_found_before_training_leave_no_run_folder_and_no_header(write_config, tmp_path, capsys, override,
                                                                         message):
    """Devices that are not there, a model that cannot fit in memory (told from shapes, in a moment): status 2,
    one line, before the header is printed or the run folder made."""
    out = tmp_path / "run"
    assert cli("run", write_config(), "--out", out, "--set", override()) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and not out.exists()
    assert captured.err.count("\n") == 1 and captured.err.startswith("error: ") and message in captured.err
    if "hidden_size" in override():
        assert "parameters need at least" in captured.err and "more than the" in captured.err


def test_sample_length_has_a_bound(tmp_path, capsys):
    assert cli("sample", tmp_path, "--length", "100000000") == 2
    assert capsys.readouterr().err == "error: --length: expected an integer >= 1 and <= 1000000, got 100000000\n"


def test_python_dash_m_jaxrnn_works_from_the_root_of_a_checkout():
    """From the repository's root, ``python -m jaxrnn`` imports the checkout's ``jaxrnn/`` (the working
    directory comes first on the path), which holds neither ``configs`` nor ``experiments``: the wheel maps
    them into the package. ``-S`` without the editable install's path hook is what ``pip install .`` leaves."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(site.getsitepackages())}
    proc = subprocess.run([sys.executable, "-S", "-m", "jaxrnn", "list"], capture_output=True, text=True, cwd=ROOT,
                          env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    names = sorted(p.stem for p in (ROOT / "configs").glob("*.yaml"))
    assert sorted(line.split()[0] for line in proc.stdout.splitlines()) == names


def test_a_real_process_exits_2_on_a_bad_config(write_config):
    proc = _subprocess("run", write_config(model={"cell": "lstn"}), "--out", "/nonexistent/never")
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "Traceback" not in proc.stderr
    assert f"unknown model.cell 'lstn'; allowed: {', '.join(registry.CELLS)}" in proc.stderr


def test_the_default_run_folder_is_runs_slash_config_name(write_config):
    config = config_lib.load(write_config())
    assert runner.default_folder(config).path.as_posix() == "runs/tiny"


@pytest.mark.slow
def test_resume_with_nothing_to_resume_says_so(write_config, tmp_path, capsys):
    path = write_config(train={"steps": 2})
    assert cli("run", path, "--out", tmp_path / "fresh", "--resume") == 0
    assert "nothing to resume" in capsys.readouterr().out
    assert cli("run", "--resume", "--out", tmp_path / "absent") == 2
    assert "no run to resume" in capsys.readouterr().err
    assert cli("run") == 2
    assert "needs a CONFIG" in capsys.readouterr().err


@pytest.mark.slow
def test_the_resume_hint_works_without_out_and_a_changed_config_is_refused(write_config, tmp_path, monkeypatch,
                                                                             capsys):
    """A run into the default folder (its name from --set) is interrupted; the printed command resumes it.
    Resuming with a config file that differs from the run's is an error naming the key."""
    monkeypatch.chdir(tmp_path)
    path = write_config(train={"steps": 4, "checkpoint_every": 2})
    interrupt_after(3, monkeypatch)
    assert cli("run", path, "--set", "name=renamed", "--set", "optim.learning_rate=0.02") == 130
    hint = capsys.readouterr().err
    monkeypatch.undo()
    monkeypatch.chdir(tmp_path)
    assert "--out runs/renamed" in hint
    assert cli(*hint.split("continue with: jaxrnn ")[1].split()) == 0
    assert "resumed from the checkpoint of step 2" in capsys.readouterr().out
    assert config_lib.load(tmp_path / "runs" / "renamed" / "config.yaml").optim.learning_rate == 0.02
    assert cli("run", path, "--out", "runs/renamed", "--resume", "--set", "name=renamed") == 2  # lr 0.01 vs 0.02
    err = capsys.readouterr().err
    assert "optim.learning_rate is 0.01 but the run in runs/renamed used 0.02" in err and err.count("\n") == 1


@pytest.mark.slow
def test_ctrl_c_stops_a_real_run_between_steps(write_config, tmp_path):
    """SIGINT to a real process: exit 130 with the resume command, no crash; the command resumes it."""
    path = write_config(train={"steps": 100000, "checkpoint_every": 5, "log_every": 5, "eval_every": 100000})
    out = tmp_path / "run"
    proc = spawn([sys.executable, "-m", "jaxrnn", "run", str(path), "--out", str(out), "--progress", "lines"],
                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    deadline = time.time() + 120
    while not (out / "checkpoints" / "5").exists() and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert_clean_interrupt(proc.returncode, err)
    assert err.strip().endswith(f"jaxrnn run --resume --out {out}")
    assert not (out / "summary.json").exists()


@pytest.mark.slow
def test_resume_needs_only_the_run_folder(write_config, tmp_path, capsys):
    path = write_config(train={"steps": 4, "checkpoint_every": 2})
    out = tmp_path / "run"
    assert cli("run", path, "--out", out, "--set", "train.steps=2") == 0
    assert cli("run", "--resume", "--out", out) == 0  # the saved config: 2 steps, already done
    assert json.loads((out / "summary.json").read_text())["steps"] == 2


@pytest.mark.slow
def test_a_run_that_failed_before_its_first_checkpoint_can_be_run_again(write_config, tmp_path, capsys):
    path = write_config(train={"steps": 2})
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.yaml").write_text("experiment: adding\n")  # what a run that died at once leaves
    (out / "metrics.jsonl").write_text('{"step": 1, "loss": 123.0, "stale": true}\n')
    assert cli("run", path, "--out", out) == 0
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert records[0]["step"] == 1 and not any("stale" in r for r in records)
    assert (out / "summary.json").exists()


@pytest.mark.slow
@pytest.mark.parametrize("args", [
    ["run", "{config}", "--out", "/proc/jaxrnn-run"],
    ["table", "{runs}", "--out", "/proc/jaxrnn-table/t.md"],
    ["table", "{runs}", "--into", "/nonexistent/README.md"],
])
def test_file_system_failures_are_one_line_and_status_2(write_config, tmp_path, capsys, args):
    path = write_config(train={"steps": 1, "eval_every": 1})
    assert cli("run", path, "--out", tmp_path / "runs" / "tiny") == 0
    capsys.readouterr()
    args = [a.format(config=path, runs=tmp_path / "runs") for a in args]
    assert cli(*args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err, err


def test_a_closed_pipe_ends_list_quietly(tmp_path):
    proc = subprocess.run(f"{sys.executable} -m jaxrnn list | head -1", shell=True, capture_output=True, text=True,
                          cwd=tmp_path, timeout=120)
    assert proc.stdout.count("\n") == 1 and proc.stderr == "", proc.stderr


def test_an_unexpected_error_is_one_line_with_a_way_to_the_traceback(write_config, monkeypatch, capsys):
    from jaxrnn.experiment import catalog as catalog_lib

    def broken(*args, **kwargs):
        raise RuntimeError("something inside broke\nsecond line")

    monkeypatch.setattr(catalog_lib, "configs", broken)
    assert cli("list") == 3
    err = capsys.readouterr().err
    assert err == "error: RuntimeError: something inside broke (JAXRNN_DEBUG=1 shows the traceback)\n"
    monkeypatch.setenv("JAXRNN_DEBUG", "1")
    with pytest.raises(RuntimeError):
        cli("list")
