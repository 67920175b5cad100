"""A job: one run trained by several processes at once, typically one per host (``jax.distributed``).

Every process of a job runs the same ``jaxrnn run`` command; together they
hold the devices that ``train.devices: all`` splits each batch across
(:mod:`jaxrnn.experiment.data_parallel`), and each step is one program over
all of them. Every process draws the same batches from the same keys and
places its own devices' share; process 0 alone writes the records, figures,
summary and progress; the checkpoints are written the way Orbax writes them
from many hosts (each process its own shards, process 0 the metadata and the
final rename), into a folder every process must see.

Where a process learns its place in the job, the first that applies:

1. the flags ``--processes N --process-id I --coordinator HOST:PORT``;
2. the environment: ``JAX_NUM_PROCESSES``, ``JAX_PROCESS_ID``,
   ``JAX_COORDINATOR_ADDRESS`` (the last is JAX's own);
3. SLURM, under ``srun`` with more than one task: ``SLURM_NTASKS``,
   ``SLURM_PROCID``, the coordinator on the step's first node (as JAX picks it);
4. ``--processes auto``: JAX's own cluster detection (Cloud TPU VMs, GKE,
   Kubernetes indexed jobs, Open MPI).

Otherwise the run is one process, and nothing here does anything.

A job fails as a whole: when one process dies, JAX's distributed service ends
the others within :data:`HEARTBEAT_SECONDS` (each says so in one line,
:mod:`jaxrnn.experiment.stderr_filter`), and ``--resume`` on every process
goes on from the last complete checkpoint, on any number of processes.
"""

from __future__ import annotations

import atexit
import inspect
import os
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass
from typing import Mapping

from jaxrnn.experiment import interrupt, stderr_filter

# A process that stops sending heartbeats counts as dead after this long: a bound on how long the others wait.
HEARTBEAT_SECONDS = 30
JOIN_SECONDS = 120  # how long, by default, the processes may take to find each other
EXIT_USAGE = 2
EXIT_JOB = 3

_SLURM = ("SLURM_JOB_ID", "SLURM_STEP_NODELIST", "SLURM_NTASKS", "SLURM_PROCID", "SLURM_LOCALID")


class JobError(ValueError):
    """The job cannot start as asked: one line, naming the flag or variable."""


@dataclass(frozen=True)
class Job:
    """This process's place in its job.

    Attributes:
      processes: how many processes; ``None``: JAX's cluster detection says.
      index: this process's id, ``0 .. processes - 1``; ``None``: JAX's cluster detection says.
      coordinator: ``HOST:PORT`` of process 0's coordination service; ``None``: JAX picks it (SLURM, clusters).
      source: where the values came from, for messages (``flags``, ``environment``, ``SLURM``, ``auto``).
    """

    processes: int | None = 1
    index: int | None = 0
    coordinator: str | None = None
    source: str = "flags"

    @property
    def single(self) -> bool:
        """One process: no job to join."""
        return self.processes == 1

    @property
    def primary(self) -> bool:
        """Process 0 (or not yet known: auto detection), the one that writes."""
        return self.index in (0, None)

    def label(self) -> str:
        """``process 1 of 2`` (as far as known before joining)."""
        return f"process {'?' if self.index is None else self.index} of {self.processes or '?'}"


_current = Job()
_joined = False  # whether this process joined a job (start)
_filter: subprocess.Popen | None = None  # the process filtering this one's output (filter_stderr)


def current() -> Job:
    """The job this process joined (:func:`start`); one process before that."""
    return _current


def declare(place: Job) -> Job:
    """Take ``place`` as this process's place in its job until it joins (:func:`start`); return it."""
    global _current
    _current = place
    return place


def forget() -> None:
    """Back to one process, unless this one joined a job (which lasts as long as the process)."""
    global _current
    if not _joined:
        _current = Job()


def resolve(processes: str | None = None, process_id: str | None = None, coordinator: str | None = None,
            environ: Mapping[str, str] | None = None) -> Job:
    """This process's place in its job, from the flags, else the environment, else SLURM (see the module).

    Raises:
      JobError: a value that is not a count, an id outside ``0 .. processes - 1``, several processes and no way
        to find the coordinator.
    """
    env = os.environ if environ is None else environ
    source = "flags"
    if processes is None and env.get("JAX_NUM_PROCESSES"):
        processes, source = env["JAX_NUM_PROCESSES"], "environment"
    if process_id is None and env.get("JAX_PROCESS_ID"):
        process_id = env["JAX_PROCESS_ID"]
    coordinator = coordinator or env.get("JAX_COORDINATOR_ADDRESS") or None
    flag = "--processes" if source == "flags" else "JAX_NUM_PROCESSES"
    if processes is None and all(k in env for k in _SLURM) and _count(env["SLURM_NTASKS"], "SLURM_NTASKS") > 1:
        processes, source = env["SLURM_NTASKS"], "SLURM"
        process_id = env["SLURM_PROCID"] if process_id is None else process_id
        flag = "SLURM_NTASKS"
    if processes is None:
        if process_id is not None and str(process_id).strip() not in ("0", ""):
            raise JobError(f"--process-id {process_id} without --processes: how many processes does the job have?")
        return Job()
    if str(processes).strip().lower() == "auto":
        index = None if process_id is None else _count(process_id, "--process-id", least=0)
        return Job(None, index, _address(coordinator) if coordinator else None, "auto")
    count = _count(processes, flag)
    if count == 1:
        return Job(1, 0, None, source)
    if process_id is None:
        raise JobError(f"{flag} {count}: this process's --process-id (0 .. {count - 1}) is missing "
                       "(or JAX_PROCESS_ID)")
    index = _count(process_id, "--process-id" if source == "flags" else "JAX_PROCESS_ID", least=0)
    if index >= count:
        raise JobError(f"--process-id: {index} is not a process of a job of {count} (0 .. {count - 1})")
    if coordinator is None and source != "SLURM":
        raise JobError(f"{flag} {count}: where is the coordinator? give --coordinator HOST:PORT (process 0's host "
                       "and a free port; or JAX_COORDINATOR_ADDRESS)")
    return Job(count, index, _address(coordinator) if coordinator else None, source)


def _count(text: str, name: str, least: int = 1) -> int:
    try:
        value = int(str(text).strip())
    except ValueError:
        value = None
    if value is None or value < least:
        raise JobError(f"{name}: expected {'a whole number' if least == 0 else 'a positive whole number'}"
                       f"{' or auto' if name == '--processes' else ''}, got {text!r}")
    return value


def _address(text: str) -> str:
    host, _, port = text.strip().rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise JobError(f"--coordinator: expected HOST:PORT (e.g. node0:1234), got {text!r}")
    return f"{host}:{port}"


def start(job: Job, timeout: float = JOIN_SECONDS) -> Job:
    """Join ``job``: from here on, every process sees every device of it. Call before JAX's first use.

    This process's stderr then goes through :mod:`jaxrnn.experiment.stderr_filter`.
    Collectives between CPU processes go through gloo. A job whose processes
    do not all join within ``timeout`` seconds ends each process that waited
    with one line and status 2.

    Raises:
      JobError: the processes disagree on how many they are; JAX found no
        cluster (``auto``); a value JAX refuses.
    """
    global _current, _joined
    if job.single:
        return job
    import jax

    if job.index == 0 and job.coordinator:
        _check_free(job.coordinator)
    if job.index is not None:
        filter_stderr(job.index, job.processes or 0)
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    waiting = threading.Timer(timeout, _not_joined, (job, timeout))
    waiting.daemon = True
    waiting.start()
    try:
        # JAX's own limit is later than ours: _not_joined says why, then JAX would end the process its own way
        options = {"initialization_timeout": int(timeout) + 60, "heartbeat_timeout_seconds": HEARTBEAT_SECONDS,
                   "shutdown_timeout_seconds": 3600}  # process 0 may analyse the model long after the others
        known = inspect.signature(jax.distributed.initialize).parameters
        jax.distributed.initialize(job.coordinator, job.processes, job.index,
                                   **{k: v for k, v in options.items() if k in known})
    except (ValueError, TypeError, RuntimeError) as error:
        waiting.cancel()
        first = (str(error).strip().splitlines() or ["?"])[0]
        if job.processes is None and "coordinator_address" in first:
            raise JobError("--processes auto: JAX found no cluster here (SLURM under srun, a Cloud TPU VM, GKE, "
                           "Kubernetes, Open MPI); give --processes N --process-id I --coordinator HOST:PORT") from None
        raise JobError(f"{job.label()}: could not join the job: {first}") from None
    waiting.cancel()
    _joined = True
    joined = Job(jax.process_count(), jax.process_index(), job.coordinator, job.source)
    _current = joined
    mismatch = job.processes is not None and job.processes != joined.processes
    if anyone(mismatch):
        if mismatch:
            said = "--processes" if job.source == "flags" else f"{job.source}:"
            raise JobError(f"{said} {job.processes}, but the job at {job.coordinator} has {joined.processes} "
                           "processes: start every process with the same --processes")
        raise JobError(f"another process of the job was started with another --processes than this one's "
                       f"{joined.processes}: start every process with the same --processes")
    return joined


def _check_free(address: str) -> None:
    """That process 0 can serve the coordinator on ``address``'s port (JAX's service crashes when it cannot).

    Raises:
      JobError: something already listens on the port here.
    """
    port = int(address.rpartition(":")[2])
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the service binds: TIME_WAIT is no obstacle
        try:
            probe.bind(("", port))
        except OSError as error:
            raise JobError(f"--coordinator {address}: process 0 serves the coordinator on port {port} of its host, "
                           f"but it is taken ({error.strerror}); pick a free port") from None


def _not_joined(job: Job, timeout: float) -> None:
    """The job did not come together in time: say why as well as can be told, and end this process (status 2)."""
    if job.coordinator and job.index not in (0, None) and not _answers(job.coordinator):
        why = (f"nothing answers at the coordinator {job.coordinator} (is process 0 running there, "
               "and is the address right?)")
    else:
        count = f"{job.processes} " if job.processes else ""
        at = f" {job.coordinator}" if job.coordinator else ""
        why = (f"not every one of the job's {count}processes joined the coordinator{at} "
               "(did they all start, with the same --processes?)")
    _say(f"{job.label()}: could not join the job within {timeout:.0f} s: {why}")
    _drain()
    os._exit(EXIT_USAGE)


def _answers(address: str) -> bool:
    """Whether something accepts a TCP connection at ``HOST:PORT``."""
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=5):
            return True
    except OSError:
        return False


def stop(reason: str) -> None:
    """End this process of a failed job at once with one line (status 3): no exit handlers, which would wait
    for the processes that are gone."""
    job = current()
    _say(f"{stderr_filter.STOPPED.format(index=job.index, count=job.processes)} {reason}; rerun every process "
         "with --resume to continue from the last complete checkpoint")
    _drain()
    os._exit(EXIT_JOB)


def _say(line: str) -> None:
    """``line`` on stderr after what the process printed before it, from any thread."""
    interrupt.flush()
    os.write(2, (line + "\n").encode())


def primary() -> bool:
    """Whether this process writes the run's files: process 0 of the job (the only one, alone)."""
    import jax

    return jax.process_index() == 0


def barrier(name: str) -> None:
    """Wait until every process of the job gets here (nothing with one process)."""
    import jax

    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def anyone(flag: bool) -> bool:
    """Whether ``flag`` is true in any process of the job (``flag`` itself with one process)."""
    import jax

    if jax.process_count() == 1:
        return bool(flag)
    import numpy as np
    from jax.experimental import multihost_utils

    return bool(np.any(multihost_utils.process_allgather(np.asarray([bool(flag)]))))


def filter_stderr(index: int, count: int) -> None:
    """From now on, this process's stderr (fd 2) goes through :mod:`~jaxrnn.experiment.stderr_filter`,
    run as a process of its own so that it outlives a fatal end of this one; its stdout too, for the
    collectives' chatter.

    On a terminal the filter reads a pseudo-terminal, so that a progress bar
    still sees one.
    """
    pipes = [os.openpty() if os.isatty(fd) else os.pipe() for fd in (1, 2)]
    (out_read, out_write), (err_read, err_write) = pipes
    real_out, real_err = os.dup(1), os.dup(2)
    global _filter
    _filter = subprocess.Popen([sys.executable, "-I", stderr_filter.__file__, str(index), str(count), str(out_read),
                                str(real_out)], stdin=err_read, stdout=real_err, stderr=real_err,
                               pass_fds=(out_read, real_out), start_new_session=True)
    for fd in (out_read, err_read, real_out, real_err):
        os.close(fd)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(out_write, 1)
    os.dup2(err_write, 2)
    os.close(out_write)
    os.close(err_write)
    atexit.register(_drain)


def _drain() -> None:
    """Let the filter write what this process wrote before the process ends (so a shell's prompt comes after)."""
    if _filter is None:
        return
    interrupt.flush()
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)  # the filter's inputs end: it writes the rest and stops
    os.dup2(devnull, 2)
    try:
        _filter.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass
