"""TensorBoard's event files of a run (jaxrnn.experiment.events), read back byte by byte.

The files are TFRecords -- an 8-byte length, its 4-byte masked CRC-32C, the data, the data's masked CRC-32C --
whose data is an ``Event`` proto. :func:`tensorboard_view` reads them the way TensorBoard's reader does, so
the tests check what TensorBoard would show: each tag's values in metrics.jsonl's order, one per step, equal
(as float32) to the records'.
"""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
from tensorboardX.proto.event_pb2 import Event, SessionLog
from tensorboardX.record_writer import masked_crc32c

from jaxrnn.experiment import progress
from jaxrnn.experiment.events import Events, scalars
from jaxrnn.experiment.rundir import RunDir
from support import cli

# What the shipped smoke config (the adding problem) writes: its training and evaluation records' keys.
SMOKE_TAGS = {"train/loss", "train/grad_norm", "train/lr", "train/steps_per_sec",
              "eval/loss", "eval/grad_decay", "eval/grad_underflow"}


def event_files(folder):
    """The event files directly in ``folder``, in the order TensorBoard reads them (by name)."""
    return sorted(folder.glob("events.out.tfevents.*"))


def read_events(path):
    """The ``Event`` protos of one event file, each record's framing and both CRCs checked."""
    data, events, at = path.read_bytes(), [], 0
    while at < len(data):
        header = data[at:at + 8]
        (length,) = struct.unpack("<Q", header)
        assert struct.unpack("<I", data[at + 8:at + 12])[0] == masked_crc32c(header)
        payload = data[at + 12:at + 12 + length]
        assert struct.unpack("<I", data[at + 12 + length:at + 16 + length])[0] == masked_crc32c(payload)
        events.append(Event.FromString(payload))
        at += 16 + length
    assert at == len(data), f"{path}: a torn record at the end"
    return events


def is_purge(event):
    return event.HasField("session_log") and event.session_log.status == SessionLog.START


def raw_scalars(path):
    """``(tag, step, value)`` of every scalar in one event file, as written (duplicates and all)."""
    return [(v.tag, e.step, v.simple_value) for e in read_events(path) for v in e.summary.value]


def tensorboard_view(folder):
    """``{tag: [(step, value), ...]}`` as TensorBoard shows the run in ``folder``.

    Its event files are read in name order; in files of version ``brain.Event:2`` (each must be), a
    ``SessionLog.START`` event at step ``s`` (tensorboardX's ``purge_step``) drops every value of step ``>= s``
    read before it, of every tag: the rule of TensorBoard's ``EventAccumulator`` (``purge_orphaned_data``).
    """
    view = {}
    for path in event_files(folder):
        events = read_events(path)
        assert events[0].file_version == "brain.Event:2", path
        for event in events:
            if is_purge(event):
                view = {tag: [(s, v) for s, v in values if s < event.step] for tag, values in view.items()}
            for value in event.summary.value:
                view.setdefault(value.tag, []).append((event.step, value.simple_value))
    return {tag: values for tag, values in view.items() if values}


def expected(records, replica=None):
    """``{tag: [(step, value), ...]}`` of metrics.jsonl's records (of one replica's values, with several):
    ``eval_x`` is ``eval/x``, any other key but step and time ``train/key``, values as float32, None left out."""
    out = {}
    for record in records:
        for key, value in record.items():
            value = value[replica] if isinstance(value, list) else value
            if key in ("step", "time") or value is None:
                continue
            tag = f"eval/{key[len('eval_'):]}" if key.startswith("eval_") else f"train/{key}"
            out.setdefault(tag, []).append((record["step"], float(np.float32(value))))
    return out


def records(folder):
    return [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]


def test_one_seed_writes_its_records_into_the_run_folder(tmp_path):
    out = tmp_path / "run"
    assert cli("run", "smoke", "--out", out, "--progress", "lines") == 0
    (path,) = event_files(out)
    assert not any(is_purge(e) for e in read_events(path))
    view = tensorboard_view(out)
    assert set(view) == SMOKE_TAGS
    assert view == expected(records(out))
    assert [s for s, _ in view["train/loss"]] == [1, 2, 3, 4, 5, 6] and [s for s, _ in view["eval/loss"]] == [3, 6]
    assert not list(out.rglob("*/events.out.tfevents.*"))  # nothing in the subfolders (checkpoints)


@pytest.mark.slow
def test_several_seeds_write_one_tensorboard_run_per_replica(tmp_path):
    out = tmp_path / "run"
    assert cli("run", "smoke", "--seeds", "2", "--out", out, "--progress", "lines") == 0
    assert event_files(out) == []  # the run folder holds a list per metric: its replicas are the runs
    rows = records(out)
    views = []
    for i, name in enumerate(["seed-0", "seed-1"]):
        assert len(event_files(out / name)) == 1
        view = tensorboard_view(out / name)
        assert set(view) == SMOKE_TAGS
        assert view == expected(rows, i) == expected(records(out / name))  # its own records, as _finish writes them
        views.append(view)
    assert views[0]["train/loss"] != views[1]["train/loss"]  # the seeds differ


def interrupt_after(steps, monkeypatch):
    """Ctrl-C, as the runner sees it (``KeyboardInterrupt`` at a step boundary), right after step ``steps``."""
    advance, calls = progress.Progress.advance, []

    def killed(self, n=1):
        advance(self, n)
        calls.append(n)
        if len(calls) == steps:
            raise KeyboardInterrupt

    monkeypatch.setattr(progress.Progress, "advance", killed)


@pytest.mark.slow
def test_a_resumed_run_shows_one_value_per_tag_and_step(tmp_path, monkeypatch, capsys):
    """Stopped after step 5 (checkpoints at 2 and 4), resumed from 4, then resumed once finished (only the final
    evaluation again): each resume adds a file that purges from its checkpoint's step, the raw files hold steps
    4 and 5 twice, and TensorBoard's view is metrics.jsonl's records, one value per tag and step."""
    out = tmp_path / "run"
    interrupt_after(5, monkeypatch)
    assert cli("run", "smoke", "--out", out, "--progress", "lines") == 130
    monkeypatch.undo()
    (first,) = event_files(out)
    assert [s for t, s, _ in raw_scalars(first) if t == "train/loss"] == [1, 2, 3, 4, 5]

    assert cli("run", "--resume", "--out", out, "--progress", "lines") == 0
    assert "resumed from the checkpoint of step 4" in capsys.readouterr().out
    old, new = event_files(out)
    assert old == first
    events = read_events(new)
    assert [e.step for e in events if is_purge(e)] == [4]
    assert min(i for i, e in enumerate(events) if is_purge(e)) < min(i for i, e in enumerate(events) if e.summary.value)
    written = [s for t, s, _ in raw_scalars(old) + raw_scalars(new) if t == "train/loss"]
    assert written == [1, 2, 3, 4, 5, 4, 5, 6]  # step 4 (kept by metrics.jsonl) written again, 5 trained again
    view = tensorboard_view(out)
    assert set(view) == SMOKE_TAGS and view == expected(records(out))
    for tag, values in view.items():
        steps = [s for s, _ in values]
        assert steps == sorted(set(steps)), tag  # one value per step

    assert cli("run", "--resume", "--out", out, "--progress", "lines") == 0  # finished: evaluates step 6 again
    last = event_files(out)[-1]
    assert len(event_files(out)) == 3 and [e.step for e in read_events(last) if is_purge(e)] == [6]
    view = tensorboard_view(out)
    assert view == expected(records(out))
    assert [s for s, _ in view["train/loss"]] == [1, 2, 3, 4, 5, 6] and [s for s, _ in view["eval/loss"]] == [3, 6]


# --- Events alone: no training ----------------------------------------------------------------------------


def test_scalars_are_tagged_by_group_and_leave_out_step_time_and_stopped_replicas():
    record = {"step": 7, "loss": [0.5, None], "eval_accuracy": [0.25, 0.75], "steps_per_sec": 10.0, "time": 3.0,
              "note": "text"}
    assert scalars(record, 0) == [("train/loss", 0.5), ("eval/accuracy", 0.25), ("train/steps_per_sec", 10.0)]
    assert scalars(record, 1) == [("eval/accuracy", 0.75), ("train/steps_per_sec", 10.0)]
    assert scalars({"step": 1, "eval_loss": 2, "lr": 0.1}) == [("eval/loss", 2.0), ("train/lr", 0.1)]


@pytest.mark.parametrize("names", [["seed-0"], ["seed-0", "seed-1"]])
def test_a_start_from_step_0_removes_the_event_files_an_earlier_run_left(tmp_path, names):
    folder = RunDir(tmp_path / "run")
    for path in [folder.path, *(folder.replica(n).path for n in names)]:
        path.mkdir(parents=True, exist_ok=True)
        (path / "events.out.tfevents.1.host.0").write_bytes(b"stale")
    with Events(folder, names, 0) as events:
        events.write({"step": 1, "loss": 1.0 if len(names) == 1 else [1.0, 2.0], "time": 0.1})
    folders = [folder.path] if len(names) == 1 else [folder.replica(n).path for n in names]
    assert all(len(event_files(f)) == 1 for f in folders)
    assert len(names) == 1 or event_files(folder.path) == []
    assert [tensorboard_view(f) for f in folders] == [{"train/loss": [(1, float(i + 1))]} for i in range(len(folders))]


def test_writers_opened_within_one_second_keep_each_its_own_file(tmp_path):
    """Resumed twice from step 2 at once: three files (none emptied by the next), two purges at step 2."""
    folder = RunDir(tmp_path / "run")
    for step in (1, 2, 3):
        folder.append({"step": step, "loss": float(step), "time": 0.1})
    with Events(folder, ["seed-0"], 0) as events:
        for record in folder.records():
            events.write(record)
    folder.truncate(2)
    for _ in range(2):
        with Events(folder, ["seed-0"], 2) as events:
            events.write({"step": 3, "loss": 30.0, "time": 0.2})
    files = event_files(folder.path)
    assert len(files) == 3
    assert [[s for t, s, _ in raw_scalars(f)] for f in files] == [[1, 2, 3], [2, 3], [2, 3]]
    assert tensorboard_view(folder.path) == {"train/loss": [(1, 1.0), (2, 2.0), (3, 30.0)]}
