"""A run folder: everything one run of an experiment leaves behind.

    DIR/config.yaml      the resolved config (every key, defaults filled in)
    DIR/metrics.jsonl    one JSON object per line: training records
                         {"step", "loss", "grad_norm", "lr", "steps_per_sec", "time", ...}
                         and evaluation records {"step", "eval_loss", ..., "time"}
    DIR/events.out.tfevents.*  the records as TensorBoard scalars (train/loss, eval/loss, ...;
                         :mod:`jaxrnn.experiment.events`), in each replica's folder instead with several
    DIR/summary.json     {"metrics": {"eval_loss", "baseline", ...}, "steps", "wall_time_s", "machine", ...}
    DIR/diverged.json    instead of a summary, when the NaN guard stopped the run:
                         {"step", "loss", "grad_norm", "last_checkpoint"}
    DIR/*.npz            the arrays an experiment's analysis saved (forecasts, gradient norms, ...)
    DIR/*.png            plots: the loss curves, and the figures the experiment's report draws from the arrays
    DIR/checkpoints/     orbax checkpoints, by step
    DIR/seed-3/ ...      with several replicas (train.seeds, a sweep), each replica's own records,
                         summary and figures, as a single run of it leaves them
                         (DIR/optim.learning_rate=0.003/seed-3/ for a sweep point); DIR's records
                         then hold a list per metric, one value per replica, and its summary the spread
                         (RunDir.replica_dirs and RunDir.points read them back)

``time`` is the run's wall-clock seconds so far, summed over resumed segments.
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any, Iterator, NamedTuple

import jax
import yaml


class Point(NamedTuple):
    """One point of a run's in-step sweep (the whole run, without a sweep), as :meth:`RunDir.points` reads it.

    Attributes:
      values: the swept values, by key (``{}`` without a sweep).
      replicas: the indices of its replicas, in :meth:`RunDir.replica_dirs` and in the lists of the run's records.
    """

    values: dict[str, Any]
    replicas: list[int]

    @property
    def label(self) -> str:
        """``optim.learning_rate=0.003``; ``""`` without a sweep."""
        return label(self.values)


def label(values: dict[str, Any]) -> str:
    """Swept values as a figure or a table names them: ``optim.learning_rate=0.003, model.chrono=True``."""
    return ", ".join(f"{key}={value:g}" if isinstance(value, float) else f"{key}={value}"
                     for key, value in values.items())


class RunDir:
    """Paths and reading/writing of one run folder (created on first write)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.config_file = self.path / "config.yaml"
        self.metrics_file = self.path / "metrics.jsonl"
        self.summary_file = self.path / "summary.json"
        self.diverged_file = self.path / "diverged.json"
        self.checkpoints = self.path / "checkpoints"

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def replica(self, name: str) -> "RunDir":
        """The folder of replica ``name`` (``seed-3``, ``optim.learning_rate=0.003/seed-3``)."""
        return RunDir(self.path / name)

    def replica_folders(self) -> list[Path]:
        """The top folders of this run's replicas: ``seed-*``, and a sweep's ``key=value`` folders."""
        if not self.path.is_dir():
            return []
        return sorted(p for p in self.path.iterdir() if p.is_dir() and (p.name.startswith("seed-") or "=" in p.name))

    def replica_dirs(self) -> list["RunDir"]:
        """The folders of this run's replicas, in the order of its records' lists; ``[self]`` for a run of one.

        Read from the summary's ``replicas`` (or, when every replica diverged,
        from ``diverged.json``'s); a diverged replica's folder has no analysis files.
        """
        return [self.replica(name) for name in self._replicas()] or [self]

    def points(self) -> list[Point]:
        """The points of this run's in-step sweep, each with its replicas; one point ``({}, [0, ...])`` without a sweep.

        When every replica diverged (no summary), the values are read from
        the replicas' folder names, as text.
        """
        values: dict[str, tuple[dict[str, Any], list[int]]] = {}
        summary = self.read_summary() if self.summary_file.exists() else {}
        for index, name in enumerate(self._replicas() or [""]):
            if summary.get("replicas"):
                own = summary["replicas"][index].get("values", {})
            else:  # optim.learning_rate=0.003/seed-3
                own = dict(part.split("=", 1) for part in name.split("/")[:-1])
            key = label(own)
            values.setdefault(key, (own, []))[1].append(index)
        return [Point(own, indices) for own, indices in values.values()]

    def _replicas(self) -> list[str]:
        """The names of the replicas, from the summary or ``diverged.json``; ``[]`` for a run of one."""
        if self.summary_file.exists():
            return [r["name"] for r in self.read_summary().get("replicas", ())]
        if self.diverged_file.exists():
            return list(json.loads(self.diverged_file.read_text()).get("replicas", {}))
        return []

    def reset(self) -> None:
        """Remove the records, summary and ``diverged.json``: the folder of a replica about to be written again."""
        for path in (self.metrics_file, self.summary_file, self.diverged_file):
            path.unlink(missing_ok=True)

    def holds_run(self) -> bool:
        """Whether a run here has something to keep: a checkpoint or a summary.

        A run that failed before its first checkpoint leaves only its config
        and a few records, and may be started again in place.
        """
        saved = self.checkpoints.is_dir() and any(p.name.isdigit() for p in self.checkpoints.iterdir())
        return saved or self.summary_file.exists()

    def write_config(self, text: str) -> None:
        write_atomic(self.config_file, text)

    def read_config(self) -> dict[str, Any]:
        return yaml.safe_load(self.config_file.read_text())

    def append(self, record: dict[str, Any]) -> None:
        """Append one record to ``metrics.jsonl`` (flushed, so a crash loses at most this line)."""
        self.path.mkdir(parents=True, exist_ok=True)
        with self.metrics_file.open("a") as f:
            f.write(json.dumps(record) + "\n")

    def records(self) -> list[dict[str, Any]]:
        """All records of ``metrics.jsonl``, in order; a torn last line (killed mid-write) is skipped."""
        return list(self._read_records())

    def _read_records(self) -> Iterator[dict[str, Any]]:
        if not self.metrics_file.exists():
            return
        for line in self.metrics_file.read_text().splitlines():
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                continue

    def truncate(self, step: int, final_eval: bool = True) -> list[dict[str, Any]]:
        """Drop the records after ``step`` (the checkpoint a resumed run restarts from); return the rest.

        ``final_eval=False`` also drops the evaluation records at ``step`` itself.
        """
        kept = [r for r in self._read_records()
                if r["step"] < step or (r["step"] == step and (final_eval or "loss" in r))]
        if self.metrics_file.exists():
            self.write_records(kept)
        return kept

    def write_records(self, records: list[dict[str, Any]]) -> None:
        """Replace ``metrics.jsonl`` with ``records``, at once (atomically)."""
        write_atomic(self.metrics_file, "".join(json.dumps(r) + "\n" for r in records))

    def write_summary(self, summary: dict[str, Any]) -> None:
        write_atomic(self.summary_file, json.dumps(summary, indent=2) + "\n")

    def read_summary(self) -> dict[str, Any]:
        return json.loads(self.summary_file.read_text())

    def write_diverged(self, record: dict[str, Any]) -> None:
        write_atomic(self.diverged_file, json.dumps(record, indent=2) + "\n")

    def outcome(self) -> str:
        """What became of the run, in a few words: its final loss, or where the NaN guard stopped it.

        Of several replicas: the mean loss of the first sweep point's seeds, and how many of them diverged.
        """
        if self.diverged_file.exists():
            d = json.loads(self.diverged_file.read_text())
            if "replicas" in d:
                return (f"all {len(d['replicas'])} replicas diverged, the last at step {d['step']}, "
                        "stopped by the NaN guard")
            return f"diverged at step {d['step']} (loss {d['loss']:.3g}), stopped by the NaN guard"
        if self.summary_file.exists():
            s = self.read_summary()
            if "seeds" not in s:
                return f"eval loss {s['metrics']['eval_loss']:.3g} after {s['steps']} steps"
            seeds, diverged = len(s["points"][0]["seeds"]), len(s.get("diverged") or {})
            if "eval_loss" not in s["metrics"]:
                last = max(d["step"] for d in s["diverged"].values())
                return f"all {seeds} seeds diverged by step {last}, stopped by the NaN guard"
            lost = f", {diverged} of {seeds} seeds diverged" if diverged else ""
            return (f"eval loss {s['metrics']['eval_loss']:.3g} (mean of {seeds - diverged} seeds) "
                    f"after {s['steps']} steps{lost}")
        return "unfinished"


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def machine() -> str:
    """A short description of where this process computes, e.g. ``cpu: AMD EPYC, 2 cores``."""
    device = jax.devices()[0]
    if device.platform == "cpu":
        return f"cpu: {_cpu_model()}, {os.cpu_count()} cores"
    return f"{device.platform}: {device.device_kind}"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
