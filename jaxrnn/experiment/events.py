"""TensorBoard event files of a run: its records as scalars, one TensorBoard run per replica.

    DIR/events.out.tfevents.*           one replica: the run folder is the TensorBoard run
    DIR/seed-3/events.out.tfevents.*    several (train.seeds, a sweep): one per replica, in its folder
                                        (DIR/optim.learning_rate=0.003/seed-3/ for a sweep point), none in DIR

so ``tensorboard --logdir runs`` shows ``NAME``, or ``NAME/seed-0``, ``NAME/seed-1``, ... side by side.
Each record of ``metrics.jsonl`` becomes scalars at its step, written by tensorboardX: a training
record's ``loss``, ``grad_norm``, ``lr``, ``steps_per_sec``, ... as ``train/loss``, ``train/grad_norm``, ...;
an evaluation record's ``eval_loss``, ``eval_accuracy``, ... as ``eval/loss``, ``eval/accuracy``, ...
``step`` and ``time`` are not scalars, and a replica's ``None`` (it had stopped) is not written. The
values are float32, as TensorBoard stores scalars.

A run resumed from the checkpoint of step ``s`` adds an event file to each folder that begins with a
purge at ``s`` (tensorboardX's ``purge_step``): TensorBoard drops the values of step ``s`` on that the
earlier files hold, and the new file writes again the records of step ``s`` that ``metrics.jsonl``
kept, then those after it; TensorBoard shows one value per tag and step, those of ``metrics.jsonl``.
A run that starts from step 0 (afresh, ``--overwrite``, or ``--resume`` with no checkpoint yet) has
dropped its records, and removes the event files an earlier run left.

Only records are written (every ``train.log_every`` steps, and at evaluations): tensorboardX builds
each scalar's event in the training loop (some 60 us on a CPU core) and queues it to a thread of its
own, which writes it (flushed every :data:`FLUSH_SECONDS`, and on close).
"""

from __future__ import annotations

import contextlib
import numbers
from pathlib import Path
from typing import Any

from jaxrnn.experiment.rundir import RunDir

PATTERN = "events.out.tfevents.*"  # the event files' names (tensorboardX's, TensorBoard's)
FLUSH_SECONDS = 5  # at most this long between an event and the file holding it (a live TensorBoard sees it then)
NOT_SCALARS = ("step", "time")


def tag(name: str) -> str:
    """The TensorBoard tag of a record's key: ``eval_loss`` -> ``eval/loss``, ``grad_norm`` -> ``train/grad_norm``."""
    return f"eval/{name.removeprefix('eval_')}" if name.startswith("eval_") else f"train/{name}"


def scalars(record: dict[str, Any], replica: int | None = None) -> list[tuple[str, float]]:
    """``(tag, value)`` of each number in ``record``: of replica ``replica`` in a record of several (a list per
    key; a plain number is every replica's), skipping ``step``, ``time``, ``None`` and what is not a number."""
    out = []
    for name, value in record.items():
        if name in NOT_SCALARS:
            continue
        if isinstance(value, list):
            value = value[replica or 0]
        if isinstance(value, numbers.Real) and not isinstance(value, bool):
            out.append((tag(name), float(value)))
    return out


class Events:
    """The event files of the run in ``folder``, whose replicas are ``names``, going on from step ``start``.

    A context manager: entering opens one writer per TensorBoard run (purging the steps from ``start`` on
    and writing again the records of ``metrics.jsonl`` at ``start``, which must already be truncated there),
    :meth:`write` adds a record, leaving flushes and closes them.
    """

    def __init__(self, folder: RunDir, names: list[str], start: int):
        self.folder = folder
        self.names = names
        self.start = start
        self._writers: list[Any] = []

    def folders(self) -> list[Path]:
        """Where the event files go: the run folder, or each replica's folder (in the order of ``names``)."""
        if len(self.names) == 1:
            return [self.folder.path]
        return [self.folder.replica(name).path for name in self.names]

    def __enter__(self) -> "Events":
        # tensorboardX imports torch when it is installed (a second or two): only a run that trains pays it.
        from tensorboardX import SummaryWriter

        folders = self.folders()
        if self.start == 0:
            for path in {self.folder.path, *folders}:
                for old in path.glob(PATTERN):
                    old.unlink()
        try:
            for path in folders:
                path.mkdir(parents=True, exist_ok=True)
                # A name of its own: the default's time has seconds, and a writer opening a file that
                # exists (a run resumed within the second it started) would empty it.
                earlier = len(list(path.glob(PATTERN)))
                self._writers.append(SummaryWriter(str(path), purge_step=self.start or None, max_queue=1000,
                                                   flush_secs=FLUSH_SECONDS, filename_suffix=f".{earlier}"))
            if self.start:
                for record in self.folder.records():
                    if record["step"] == self.start:
                        self.write(record)
        except BaseException:
            self.close()
            raise
        return self

    def write(self, record: dict[str, Any]) -> None:
        """Add one record of ``metrics.jsonl`` (a value per replica, with several) at its ``step``."""
        step = record["step"]
        several = len(self._writers) > 1
        for index, writer in enumerate(self._writers):
            for name, value in scalars(record, index if several else None):
                writer.add_scalar(name, value, step)

    def close(self) -> None:
        """Flush and close every writer."""
        writers, self._writers = self._writers, []
        with contextlib.ExitStack() as closing:  # every one, even if one fails
            for writer in writers:
                closing.callback(writer.close)

    def __exit__(self, *exc_info: Any) -> None:
        self.close()
