"""``jaxrnn launch``: a job of several processes on this machine, to try what a cluster would run.

    jaxrnn launch --processes 2 --devices-per-process 2 adding_t50_lstm --set train.devices=all

starts ``jaxrnn run adding_t50_lstm --set train.devices=all --processes 2
--process-id I --coordinator localhost:PORT`` for ``I = 0, 1`` and waits for
them. Process ``I`` gets ``K = --devices-per-process`` devices: ``K`` forced
host devices on a CPU (``--xla_force_host_platform_device_count``), or the GPUs
``I*K .. I*K+K-1`` (``JAX_LOCAL_DEVICE_IDS``). The processes write to the
launcher's stdout and stderr; process 0 prints the run's lines.

Ctrl-C is passed to every process, which stop together at a record boundary
(a checkpoint written, as a single run stops). When a process fails, the
others stop within JAX's heartbeat timeout; one still running well after that
is killed. The status is the first failed process's (128 + the signal for
one that was killed), 0 when all finished.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

from jaxrnn.experiment import job
from jaxrnn.experiment.job import JobError

# After a process failed, how long the others may take to stop by themselves before they are killed.
GRACE_SECONDS = job.HEARTBEAT_SECONDS + 60


def launch(run_args: list[str], processes: str, devices_per_process: str = "1", port: str | None = None) -> int:
    """Start ``processes`` processes of ``jaxrnn run *run_args`` as one job; their status (see the module).

    Raises:
      JobError: a count or port that is not one.
    """
    count = _whole(processes, "--processes", least=1)
    per = _whole(devices_per_process, "--devices-per-process", least=1)
    port = _free_port() if port is None else _whole(port, "--port", least=1)
    if port > 65535:
        raise JobError(f"--port: expected a port number up to 65535, got {port}")
    children = []
    for index in range(count):
        env = dict(os.environ)
        env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={per}".strip()
        env["JAX_LOCAL_DEVICE_IDS"] = ",".join(str(index * per + d) for d in range(per))
        command = [sys.executable, "-m", "jaxrnn", "run", *run_args, "--processes", str(count),
                   "--process-id", str(index), "--coordinator", f"localhost:{port}"]
        # a session of its own: Ctrl-C on the terminal reaches the launcher, which passes it on once
        children.append(subprocess.Popen(command, env=env, start_new_session=True))
    return _wait(children)


def _wait(children: list[subprocess.Popen]) -> int:
    """Wait for every child; pass Ctrl-C and SIGTERM on; kill those still running long after one failed."""
    def forward(signum, frame):
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    wakeup = signal.set_wakeup_fd(-1)  # the signals are the children's to act on, not the jaxrnn command's
    try:
        failed_at, status, killed = None, 0, set()
        while True:
            codes = [child.poll() for child in children]
            for index, code in enumerate(codes):
                if code and failed_at is None:  # the first failure: its status is the launcher's
                    failed_at, status = time.monotonic(), _status(code)
                    if code < 0:
                        print(f"process {index} of {len(children)} was ended by {signal.Signals(-code).name}",
                              file=sys.stderr, flush=True)
            if None not in codes:
                return status
            if failed_at is not None and time.monotonic() - failed_at > GRACE_SECONDS:
                for index, child in enumerate(children):
                    if codes[index] is None and index not in killed:
                        child.kill()
                        killed.add(index)
                        print(f"process {index} of {len(children)} was still running {GRACE_SECONDS} s after "
                              "another failed; killed it", file=sys.stderr, flush=True)
            time.sleep(0.2)
    finally:
        signal.set_wakeup_fd(wakeup)
        for s, handler in previous.items():
            signal.signal(s, handler)


def _status(code: int) -> int:
    """A child's exit status as a shell reports it: 128 + the signal for one a signal ended."""
    return 128 - code if code < 0 else code


def _whole(text: str | int, name: str, least: int) -> int:
    try:
        value = int(str(text).strip())
    except ValueError:
        value = None
    if value is None or value < least:
        raise JobError(f"{name}: expected a whole number of at least {least}, got {text!r}")
    return value


def _free_port() -> int:
    """A TCP port on localhost that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]
