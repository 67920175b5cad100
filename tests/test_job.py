"""A run trained by several processes (``jaxrnn run --processes``, ``jaxrnn launch``): where each process learns
its place, how a dead process's end reads, and -- under ``-m slow`` -- real jobs of processes on this machine
(CPU devices, gloo collectives, the coordinator on localhost): the losses of one process, files written once,
a killed process, resume on another number of processes, Ctrl-C, SLURM's variables and bad input.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from jaxrnn.experiment import job, stderr_filter
from jaxrnn.experiment.job import Job, JobError
from support import ROOT, TINY, cli

FIXTURES = ROOT / "tests" / "fixtures" / "job"


# --- where a process learns its place in the job ---------------------------------------------------------


def test_one_process_without_flags_or_environment():
    assert job.resolve(environ={}) == Job()
    assert job.resolve("1", environ={}).single


def test_flags_then_environment():
    env = {"JAX_NUM_PROCESSES": "4", "JAX_PROCESS_ID": "3", "JAX_COORDINATOR_ADDRESS": "node0:1234"}
    assert job.resolve(environ=env) == Job(4, 3, "node0:1234", "environment")
    assert job.resolve("2", "1", "here:99", environ=env) == Job(2, 1, "here:99", "flags")
    assert job.resolve(environ=env).label() == "process 3 of 4"


def test_slurm_under_srun():
    env = {"SLURM_JOB_ID": "77", "SLURM_STEP_NODELIST": "node[01-02]", "SLURM_NTASKS": "2", "SLURM_PROCID": "1",
           "SLURM_LOCALID": "0"}
    assert job.resolve(environ=env) == Job(2, 1, None, "SLURM")  # JAX picks the coordinator from the node list
    assert job.resolve(environ={**env, "SLURM_NTASKS": "1"}).single  # one task: no job
    assert job.resolve("1", environ=env).single  # the flag wins


def test_auto_leaves_it_to_jax():
    assert job.resolve("auto", environ={}) == Job(None, None, None, "auto")
    assert job.resolve("AUTO", "2", environ={}).index == 2


@pytest.mark.parametrize("args, message", [
    (("0",), "--processes: expected a positive whole number or auto, got '0'"),
    (("two",), "--processes: expected a positive whole number or auto, got 'two'"),
    (("2", None, "h:1"), "process-id (0 .. 1) is missing"),
    (("2", "2", "h:1"), "--process-id: 2 is not a process of a job of 2 (0 .. 1)"),
    (("2", "-1", "h:1"), "--process-id: expected a whole number, got '-1'"),
    (("2", "1"), "where is the coordinator? give --coordinator HOST:PORT"),
    (("2", "1", "nohost"), "--coordinator: expected HOST:PORT (e.g. node0:1234), got 'nohost'"),
    (("2", "1", "h:70000"), "--coordinator: expected HOST:PORT"),
    ((None, "1"), "--process-id 1 without --processes"),
])
def test_bad_places_name_the_flag(args, message):
    with pytest.raises(JobError, match=re.escape(message)):
        job.resolve(*args, environ={})


def test_bad_environment_names_the_variable():
    with pytest.raises(JobError, match="JAX_NUM_PROCESSES: expected a positive whole number, got 'x'"):
        job.resolve(environ={"JAX_NUM_PROCESSES": "x"})


def test_cli_rejects_a_bad_place_before_anything_runs(write_config, capsys):
    config = write_config()
    assert cli("run", config, "--processes", "2", "--coordinator", "h:1") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: --processes 2: this process's --process-id (0 .. 1) is missing (or JAX_PROCESS_ID)"]
    assert cli("run", config, "--processes", "2", "--process-id", "0", "--coordinator", "h:1",
               "--join-timeout", "0") == 2
    assert "--join-timeout: expected seconds in (0, 86400], got 0" in capsys.readouterr().err
    assert job.current() == Job()  # a process that never joined is one process again


def test_process_0_refuses_a_coordinator_port_that_is_taken():
    with socket.socket() as taken:
        taken.bind(("", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(JobError, match=f"--coordinator localhost:{port}: process 0 serves the coordinator on "
                                           f"port {port} of its host, but it is taken"):
            job.start(Job(2, 0, f"localhost:{port}"))


@pytest.mark.parametrize("args, message", [
    (["-n", "0", "tiny"], "--processes: expected a whole number of at least 1, got '0'"),
    (["-n", "2"], "jaxrnn launch needs what each process runs: CONFIG [run options]"),
    (["-n", "2", "--devices-per-process", "x", "tiny"], "--devices-per-process: expected a whole number"),
    (["-n", "2", "--port", "70000", "tiny"], "--port: expected a port number up to 65535, got 70000"),
    (["-n", "2", "tiny", "--process-id", "1"], "jaxrnn launch sets --process-id of each process itself"),
    (["-n", "2", "tiny", "--coordinator=h:1"], "jaxrnn launch sets --coordinator of each process itself"),
])
def test_launch_rejects_bad_input_before_starting_processes(args, message, capsys):
    assert cli("launch", *args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


def test_launch_checks_the_run_options_once(capsys):
    assert cli("launch", "-n", "2", "tiny", "--bogus") == 2
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err


# --- how a job's fatal end reads ----------------------------------------------------------------------------


def filtered(log: str, index: int = 0) -> list[str]:
    """The lines the stderr filter makes of a real process's stderr (saved from a job whose peer was killed)."""
    done = subprocess.run([sys.executable, "-I", stderr_filter.__file__, str(index), "2"],
                          input=(FIXTURES / log).read_bytes(), capture_output=True, timeout=60)
    assert done.returncode == 0
    return done.stdout.decode().splitlines()


@pytest.mark.parametrize("log, index, reason", [
    ("peer_died.log", 0, "process 1 of the job stopped answering (it died or was killed)"),
    ("coordinator_lost.log", 1, "the job's coordinator (process 0) went away"),
])
def test_a_fatal_end_is_one_line_and_the_report_is_kept(log, index, reason):
    raw = (FIXTURES / log).read_text()
    assert "Terminating process because the JAX distributed service" in raw and "[Gloo]" in raw
    lines = filtered(log, index)
    stops = [line for line in lines if "stopped:" in line]
    assert len(stops) == 1 and stops[0].startswith(f"process {index} of 2: stopped: {reason}")
    assert "rerun every process with --resume" in stops[0]
    assert not [line for line in lines if re.match(r"^[EFW]\d{4} |\s+@ |\[Gloo\]|\*\*\* Check failure", line)]
    # what the process printed before passes through
    assert [line for line in lines if re.match(r"^\d+ \d+ [\d.]+$", line)]
    report = Path(re.search(r"JAX's report: (\S+)\)", stops[0]).group(1))
    try:
        assert "Terminating process because" in report.read_text()
    finally:
        report.unlink()


def test_the_process_own_stop_line_is_the_only_one():
    said = "process 1 of 2: stopped: another process of the job went away in the middle of a step (x); rerun\n"
    text = said.encode() + (FIXTURES / "coordinator_lost.log").read_bytes() + said.encode()
    done = subprocess.run([sys.executable, "-I", stderr_filter.__file__, "1", "2"], input=text,
                          capture_output=True, timeout=60)
    assert [line for line in done.stdout.decode().splitlines() if "stopped:" in line] == [said.strip()]


def test_progress_and_plain_lines_pass_untouched():
    text = b"step 1/9\rstep 2/9\r[Gloo] Rank 0 is connected to 1 peer ranks.\nwarning: something\nno newline"
    done = subprocess.run([sys.executable, "-I", stderr_filter.__file__, "0", "2"], input=text,
                          capture_output=True, timeout=60)
    assert done.stdout == b"step 1/9\rstep 2/9\rwarning: something\nno newline"


# --- real jobs on this machine (slow) ------------------------------------------------------------------------

STEPS = 40
CONFIG = {**TINY, "train": {**TINY["train"], "steps": STEPS, "log_every": 5, "checkpoint_every": 10,
                            "eval_every": 20, "devices": "all", "batch_size": 8}}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def slurm_job_id() -> int:
    """A SLURM job id whose coordinator port is free here: JAX takes port 61440 + (job id % 4096)."""
    for job_id in np.random.default_rng().permutation(4096):
        with socket.socket() as s:
            try:
                s.bind(("localhost", 61440 + int(job_id)))
            except OSError:
                continue
        return int(job_id)
    pytest.skip("no free port in 61440..65535")


def environment(devices: int, **extra: str) -> dict[str, str]:
    return {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}", "JAX_PLATFORMS": "cpu",
            **extra}


def jaxrnn(*args, devices: int = 4, env: dict | None = None, **options) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "jaxrnn", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env or environment(devices), **options)


def finish(proc: subprocess.Popen, timeout: float = 300) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def member(config: Path, out: Path, index: int, port: int, *extra, count: int = 2, devices: int = 2):
    """Process ``index`` of a job of ``count``, started by hand (as a cluster's scheduler would)."""
    return jaxrnn("run", config, "--out", out, "--progress", "lines", "--processes", count, "--process-id", index,
                  "--coordinator", f"localhost:{port}", *extra, devices=devices)


def records(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]


def losses(folder: Path) -> dict[tuple[int, str], float]:
    return {(r["step"], k): v for r in records(folder) for k, v in r.items() if k in ("loss", "eval_loss")}


def assert_losses_close(a: Path, b: Path, rtol: float) -> None:
    la, lb = losses(a), losses(b)
    assert la.keys() == lb.keys() and la
    for k in la:
        np.testing.assert_allclose(la[k], lb[k], rtol=rtol, err_msg=str(k))


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("job") / "tiny.yaml"
    path.write_text(yaml.safe_dump(CONFIG))
    return path


@pytest.fixture(scope="module")
def single(config, tmp_path_factory) -> Path:
    """The run on one process of 4 devices: what a job of 2 x 2 must give."""
    out = tmp_path_factory.mktemp("single") / "run"
    code, _, err = finish(jaxrnn("run", config, "--out", out, "--progress", "lines"))
    assert code == 0, err
    return out


@pytest.mark.slow
def test_two_processes_of_two_devices_train_the_run_of_one_and_process_0_writes(config, single, tmp_path):
    out = tmp_path / "job"
    code, stdout, stderr = finish(jaxrnn("launch", "--processes", 2, "--devices-per-process", 2, config,
                                         "--out", out, "--progress", "lines", env=environment(1)))
    assert code == 0, stderr
    assert stderr == ""  # no collectives' chatter, no runtime logs, nothing from process 1
    assert stdout.count(" -> ") == 1 and stdout.count("done in") == 1 and stdout.count("step 40/40") == 1
    # the first steps to float32 rounding, the whole run close: the gradients are summed in another order
    first = {k: v for k, v in losses(out).items() if k[0] <= 10}
    for k, v in first.items():
        np.testing.assert_allclose(v, losses(single)[k], rtol=1e-5, err_msg=str(k))
    assert_losses_close(out, single, rtol=1e-3)
    steps = [r["step"] for r in records(out)]
    assert steps == [r["step"] for r in records(single)]  # each record once
    assert len(list(out.glob("events.out.tfevents.*"))) == 1
    assert sorted(int(p.name) for p in (out / "checkpoints").iterdir()) == [10, 20, 30, 40]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["devices"] == 4 and summary["steps"] == STEPS
    assert not list(out.glob(".job"))


@pytest.mark.slow
def test_a_killed_process_ends_the_job_in_one_line_and_it_resumes_on_one_process_or_two(config, single, tmp_path):
    out = tmp_path / "job"
    port = free_port()
    many = config.with_name("long.yaml")
    many.write_text(yaml.safe_dump({**CONFIG, "train": {**CONFIG["train"], "steps": 200}}))
    first, second = (member(many, out, i, port) for i in range(2))
    deadline = time.monotonic() + 240
    while not (out / "checkpoints" / "20").exists():  # a complete checkpoint, and training going on
        assert time.monotonic() < deadline and first.poll() is None, first.communicate()
        time.sleep(0.2)
    second.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    code, _, err = finish(first, timeout=120)
    assert time.monotonic() - killed < 60 + 10  # the heartbeat's bound, and the process's own exit
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("process 0 of 2: stopped: "), err
    assert "rerun every process with --resume" in lines[0]
    second.communicate()

    # a save the dead process left half-written is never read; 2 -> 1 process, its records go on
    complete = sorted(int(p.name) for p in (out / "checkpoints").iterdir() if p.name.isdigit())
    (out / "checkpoints" / "190.orbax-checkpoint-tmp-1").mkdir()
    (out / "checkpoints" / "190.orbax-checkpoint-tmp-1" / "junk").write_text("half")
    code, stdout, err = finish(jaxrnn("run", "--resume", "--out", out, "--progress", "lines", devices=4),
                               timeout=600)
    assert code == 0, err
    assert f"resumed from the checkpoint of step {complete[-1]}" in stdout
    steps = [r["step"] for r in records(out) if "loss" in r]
    assert steps == list(range(5, 201, 5))

    # 1 -> 2 processes: the one-process run, cut back to its checkpoint of step 20, goes on as a job
    again = tmp_path / "again"
    shutil.copytree(single, again)
    for step in (30, 40):
        shutil.rmtree(again / "checkpoints" / str(step))
    code, stdout, err = finish(jaxrnn("launch", "-n", 2, "--devices-per-process", 2, "--", "--resume", "--out", again,
                                      "--progress", "lines", env=environment(1)))
    assert code == 0, err
    assert "resumed from the checkpoint of step 20" in stdout
    assert_losses_close(again, single, rtol=1e-4)


@pytest.mark.slow
def test_a_job_refuses_bad_input_in_one_line(config, tmp_path):
    port, lonely = free_port(), free_port()
    started = {
        # a batch that does not split across all devices of all processes
        "batch": jaxrnn("launch", "-n", 2, "--devices-per-process", 2, config, "--out", tmp_path / "b",
                        "--set", "train.batch_size=6", env=environment(1)),
        # fewer devices than the job holds
        "devices": jaxrnn("launch", "-n", 2, config, "--out", tmp_path / "d", "--set", "train.devices=1",
                          env=environment(1)),
        # the processes disagree on their number
        "two": member(config, tmp_path / "m", 0, port),
        "three": member(config, tmp_path / "m", 1, port, count=3),
        # nobody at the coordinator
        "alone": member(config, tmp_path / "a", 1, lonely, "--join-timeout", 5),
        # the coordinator, waiting for a process that never comes
        "first": member(config, tmp_path / "f", 0, free_port(), "--join-timeout", 5),
    }
    began = time.monotonic()
    done = {name: finish(proc, timeout=240) for name, proc in started.items()}
    for name, (code, _, err) in done.items():
        assert code == 2, (name, err)
        assert len(err.strip().splitlines()) == 1, (name, err)
    assert "train.batch_size: 6 does not divide across 4 devices of 2 processes" in done["batch"][2]
    assert "train.devices: 1, but this job's 2 processes hold 2 cpu devices" in done["devices"][2]
    assert "start every process with the same --processes" in done["two"][2]
    assert "--processes 3, but the job at" in done["three"][2]
    assert "nothing answers at the coordinator" in done["alone"][2]
    assert "not every one of the job's 2 processes joined the coordinator" in done["first"][2]
    assert time.monotonic() - began < 120


@pytest.mark.slow
def test_slurm_variables_make_a_job_and_ctrl_c_stops_it_together(config, tmp_path):
    out = tmp_path / "slurm"
    job_id = slurm_job_id()
    slurm = {"SLURM_JOB_ID": str(job_id), "SLURM_STEP_NODELIST": "localhost", "SLURM_NTASKS": "2",
             "SLURM_LOCALID": "0"}
    procs = [jaxrnn("run", config, "--out", out, "--progress", "lines",
                    env=environment(2, **slurm, SLURM_PROCID=str(i))) for i in range(2)]
    results = [finish(p) for p in procs]
    assert [r[0] for r in results] == [0, 0], results[0][2] + results[1][2]
    assert json.loads((out / "summary.json").read_text())["devices"] == 4
    assert results[1][1] == "" and results[1][2] == ""  # process 1 prints nothing

    # Ctrl-C on the launcher: both processes stop at the same record boundary, process 0 says how to go on
    slow = config.with_name("slow.yaml")
    slow.write_text(yaml.safe_dump({**CONFIG, "train": {**CONFIG["train"], "steps": 4000}}))
    launcher = jaxrnn("launch", "-n", 2, "--devices-per-process", 2, slow, "--out", tmp_path / "c", "--progress",
                      "lines", env=environment(1))
    deadline = time.monotonic() + 240
    while not (tmp_path / "c" / "checkpoints" / "10").exists():
        assert time.monotonic() < deadline and launcher.poll() is None
        time.sleep(0.2)
    launcher.send_signal(signal.SIGINT)
    code, stdout, err = finish(launcher, timeout=120)
    assert code == 130, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("interrupted; continue with: jaxrnn run --resume --out"), err
    last = records(tmp_path / "c")[-1]["step"]
    assert last % 5 == 0 and last < 4000


@pytest.mark.slow
def test_a_hung_process_ends_the_job_within_the_heartbeat_bound(config, tmp_path):
    """A process that stops answering without dying (SIGSTOP: no connection resets, no error in a step): JAX's
    distributed service ends the other after the heartbeat timeout, and the filter makes that one line."""
    out, port = tmp_path / "hung", free_port()
    long = config.with_name("hung.yaml")
    long.write_text(yaml.safe_dump({**CONFIG, "train": {**CONFIG["train"], "steps": 4000}}))
    first, second = (member(long, out, i, port) for i in range(2))
    deadline = time.monotonic() + 240
    while not (out / "checkpoints" / "10").exists():
        assert time.monotonic() < deadline and first.poll() is None, first.communicate()
        time.sleep(0.2)
    second.send_signal(signal.SIGSTOP)
    stopped = time.monotonic()
    try:
        code, _, err = finish(first, timeout=120)
        assert time.monotonic() - stopped < job.HEARTBEAT_SECONDS + 30
    finally:
        second.kill()
        second.communicate()
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("process 0 of 2: stopped: process 1 of the job stopped answering"), err
    Path(re.search(r"JAX's report: (\S+)\)", lines[0]).group(1)).unlink()
