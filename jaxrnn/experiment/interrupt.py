"""Ctrl-C (SIGINT) for the whole ``jaxrnn`` command: one line on stderr and exit status 130, never a traceback.

A Python signal handler that raises ``KeyboardInterrupt`` fires wherever the
main thread happens to be: inside an import, inside one of JAX's callbacks
(where the exception is printed as "Exception ignored" and the command goes
on), or while XLA compiles on threads of its own, which an interpreter
shutdown then races (a crash after the message). So within :func:`handled`
the handler raises nothing. The signal also lands in a pipe
(``signal.set_wakeup_fd``) read by a watcher thread, which acts even while the
main thread waits inside XLA (it releases the GIL there):

* by default, the watcher prints the message and ends the process at once
  with ``os._exit``: no exception unwinds through JAX and no interpreter
  shutdown runs, so set-up, a compile or a long generation stop at once;
* within :func:`deferred` (a training loop after its first step), the first
  Ctrl-C only sets :attr:`Request.requested`, which the loop reads between
  steps, so the checkpoints it started are written; a second ends the
  process at once.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from typing import Callable, Iterator

EXIT_INTERRUPTED = 130  # what a shell reports for a command ended by SIGINT: 128 + 2

_FLUSH_SECONDS = 1.0  # how long the buffered output may take to flush before the process ends anyway


class Request:
    """Whether Ctrl-C asked the code within :func:`deferred` to stop at its next safe point."""

    def __init__(self) -> None:
        self.requested = False


class _Watcher:
    """The thread that reads the signals out of the wakeup pipe and acts on them."""

    def __init__(self, message: Callable[[], str]):
        self.message = message
        self.request: Request | None = None  # set within deferred()
        self._read, self._write = os.pipe()
        os.set_blocking(self._write, False)  # the signal handler must never block on a full pipe
        self._thread = threading.Thread(target=self._watch, name="jaxrnn-interrupt", daemon=True)

    def start(self) -> None:
        self._thread.start()
        self._previous_fd = signal.set_wakeup_fd(self._write, warn_on_full_buffer=False)
        self._previous_handler = signal.signal(signal.SIGINT, _ignore)

    def stop(self) -> None:
        signal.signal(signal.SIGINT, self._previous_handler)
        signal.set_wakeup_fd(self._previous_fd)
        os.close(self._write)  # the watcher reads the end of the pipe and returns
        self._thread.join()
        os.close(self._read)

    def _watch(self) -> None:
        while True:
            signals = os.read(self._read, 64)
            if not signals:
                return
            for _ in range(signals.count(signal.SIGINT)):  # other signals with Python handlers are not ours
                self._interrupted()

    def _interrupted(self) -> None:
        request = self.request
        if request is not None and not request.requested:
            request.requested = True  # the loop stops at its next step boundary
        else:
            _exit_at_once(self.message)


_watcher: _Watcher | None = None


def _ignore(signum, frame) -> None:
    """The Python-level handler: the watcher thread acts; raising here would land anywhere in the main thread."""


@contextlib.contextmanager
def handled(message: Callable[[], str] = lambda: "interrupted") -> Iterator[None]:
    """Within, Ctrl-C ends the process with ``message()`` on stderr and status 130 (see the module).

    Outside the main thread (no signal handlers there), within another
    :func:`handled`, or where SIGINT is ignored (a command started in the
    background by a shell), it does nothing.
    """
    global _watcher
    if (_watcher is not None or threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is signal.SIG_IGN):
        yield
        return
    watcher = _Watcher(message)
    watcher.start()
    _watcher = watcher
    try:
        yield
    finally:
        _watcher = None
        watcher.stop()


def explain(message: Callable[[], str]) -> None:
    """From now on, an interruption prints ``message()`` (e.g. how to resume the run, once its folder is known;
    nothing if it is empty)."""
    if _watcher is not None:
        _watcher.message = message


@contextlib.contextmanager
def deferred() -> Iterator[Request]:
    """Within, the first Ctrl-C sets the request's ``requested`` instead of ending the process; a second ends it.

    Without :func:`handled` (the runner called from Python), the first Ctrl-C
    sets the flag and the second raises ``KeyboardInterrupt`` as usual;
    outside the main thread, nothing is caught.
    """
    request = Request()
    if _watcher is not None:
        _watcher.request = request
        try:
            yield request
        finally:
            _watcher.request = None
        return
    if threading.current_thread() is not threading.main_thread():
        yield request
        return

    def first(signum, frame) -> None:
        request.requested = True
        signal.signal(signal.SIGINT, previous)

    previous = signal.signal(signal.SIGINT, first)
    try:
        yield request
    finally:
        signal.signal(signal.SIGINT, previous)


def _exit_at_once(message: Callable[[], str]) -> None:
    """Flush what the command printed, write ``message()`` as one line on stderr, end the process with status 130."""
    try:
        text = message()
    except Exception:  # the message reads the run folder; the exit must happen regardless
        text = "interrupted"
    flush()
    # On a terminal the line starts on a line of its own, after the "^C" echo or a progress bar.
    start = "\n" if _isatty(sys.stderr) else ""
    try:
        if text:  # an empty message: another process speaks for this one
            os.write(2, f"{start}{text}\n".encode())
    except OSError:
        pass
    os._exit(EXIT_INTERRUPTED)


def flush() -> None:
    """Flush stdout and stderr, unless it takes too long (the main thread may hold a stream's lock)."""
    def flush() -> None:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError, AttributeError):
                pass

    flusher = threading.Thread(target=flush, daemon=True)
    flusher.start()
    flusher.join(_FLUSH_SECONDS)


def _isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (OSError, ValueError, AttributeError):
        return False
