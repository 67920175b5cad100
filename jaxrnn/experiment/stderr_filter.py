"""The stderr of one process of a multi-process job, filtered: JAX's fatal end of a job as one line.

When a process of a job dies, JAX's distributed service ends every other
process from a thread of its own (a C++ ``LOG(FATAL)``: a page of log lines
and a stack trace, and no Python code runs). This script, started by
:func:`jaxrnn.experiment.job.filter_stderr` as a separate process reading the
job process's stderr, passes everything through but that: from the first line
of the fatal end on, it writes one line saying which process was lost and how
to go on, keeps the rest in a log file, and names the file. It also drops the
collectives' connection chatter (``[Gloo] Rank 0 is connected to 3 peer
ranks``) and the coordination service's routine log lines.

Run as a script (``python -I stderr_filter.py PROCESS PROCESSES [OUT_FD REAL_OUT_FD]``), it
imports nothing but the standard library: its stdin is the job process's
stderr, its stdout the real stderr; the job process's stdout, when given, is
passed on without the collectives' chatter (which gloo prints there). It
ignores Ctrl-C and ends when its inputs do.
"""

from __future__ import annotations

import os
import re
import select
import signal
import sys
import tempfile

# A line the job process writes itself when it stops because of the job: the filter passes it and adds none.
STOPPED = "process {index} of {count}: stopped:"

_GLOG = re.compile(rb"^[IWEF]\d{4} \d\d:\d\d:\d\d\.\d+ +\d+ (\S+?):\d+\]")
# Where JAX's distributed runtime logs from: its lines are the service's business, kept out of the run's output.
_DISTRIBUTED = (b"coordination_service", b"client.h", b"client.cc", b"preemption_sync_manager",
                b"distributed", b"service.cc")
_FATAL = (b"Terminating process because the JAX distributed service detected fatal errors",
          b"terminate called after throwing")
_UNHEALTHY = re.compile(rb"unhealthy \(stopped sending heartbeats\):\s*([\d\s,]+)")


def reason(text: bytes) -> str:
    """What the fatal end in ``text`` says happened, in a few words."""
    dead = _UNHEALTHY.search(text)
    if dead:
        ids = sorted({int(i) for i in re.findall(rb"\d+", dead.group(1))})
        which = ", ".join(str(i) for i in ids)
        return f"process {which} of the job stopped answering (it died or was killed)"
    if b"RegisterTask" in text or b"Wait_for_all_tasks_to_register" in text:
        return "not every process of the job joined the coordinator"
    if b"Socket closed" in text or b"Connection reset" in text or b"UNAVAILABLE" in text:
        return "the job's coordinator (process 0) went away (it died or was killed)"
    return "JAX's distributed service ended the job (another process failed)"


def main(argv: list[str]) -> int:
    """``argv``: this process's index and the job's count; then the descriptors of the job process's stdout
    and of the real stdout, to pass on without the collectives' chatter. Stdin is its stderr."""
    index, count = int(argv[0]), int(argv[1])
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    said = STOPPED.format(index=index, count=count).encode()
    streams = {0: _Stream(sys.stdout.fileno())}
    if len(argv) > 3:
        streams[int(argv[2])] = _Stream(int(argv[3]), plain=True)
    routine: list[bytes] = []  # the runtime's routine lines, for the report if the job ends
    swallowed: list[bytes] = []
    told = False  # a stop line was written (by the process, or by this filter)
    fatal = False
    while streams:
        ready, _, _ = select.select(list(streams), [], [])
        for fd in ready:
            stream = streams[fd]
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # a pseudo-terminal whose other end closed
                chunk = b""
            if not chunk:
                if stream.pending and not fatal:
                    stream.write(stream.pending)
                swallowed.append(stream.pending)
                del streams[fd]
                continue
            stream.pending += chunk
            # split after each \n or \r (a progress bar redraws with \r), keeping the separators
            pieces = re.split(rb"(?<=[\n\r])", stream.pending)
            stream.pending = pieces.pop()
            continued = False  # the lines after a routine log line, in the same write, are its own
            for piece in pieces:
                if piece.startswith(said):  # the process's own line, even after the fatal end began
                    if not told:
                        stream.write(piece)
                    told = True
                    continue
                fatal = fatal or (not stream.plain and any(mark in piece for mark in _FATAL))
                if fatal and not stream.plain:
                    swallowed.append(piece)
                    continue
                log = None if stream.plain else _GLOG.match(piece)
                if log:
                    continued = any(name in log.group(1) for name in _DISTRIBUTED)  # the runtime's own
                if continued or piece.startswith(b"[Gloo] "):
                    routine = (routine + [piece])[-200:]
                    continue
                if not fatal:
                    stream.write(piece)
    if fatal:
        text = b"".join(routine + swallowed)
        log = _keep(text, index)
        if not told:
            line = (f"{said.decode()} {reason(text)}, and the job cannot go on without it; rerun every process "
                    f"with --resume to continue from the last complete checkpoint (JAX's report: {log})\n")
            os.write(sys.stdout.fileno(), line.encode())
    return 0


class _Stream:
    """One output of the job process: where it goes, and what came of it after its last line break."""

    def __init__(self, out: int, plain: bool = False):
        self.out = out
        self.plain = plain  # stdout: only the collectives' chatter is dropped
        self.pending = b""

    def write(self, data: bytes) -> None:
        while data:
            data = data[os.write(self.out, data):]


def _keep(text: bytes, index: int) -> str:
    """``text`` in a log file of its own; the file's path."""
    handle, path = tempfile.mkstemp(prefix=f"jaxrnn-process-{index}-", suffix=".log")
    with os.fdopen(handle, "wb") as f:
        f.write(text)
    return path


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
