"""The results: tables and figures made from run folders, never typed or drawn by hand.

The table's columns: experiment, T, cell, hidden, eval loss, baseline,
loss / baseline, eval accuracy, grad decay, steps, wall time, machine.

One row per run folder, from its ``summary.json`` (or its ``diverged.json``
when the NaN guard stopped it). ``grad decay`` is ``eval_grad_decay`` where
an experiment reports it (see :mod:`jaxrnn.gradient_flow`), ``≤ x`` when the
first step's gradient underflowed in every evaluated sequence.

``jaxrnn table runs/`` prints it as Markdown; ``--into FILE`` replaces the
block between ``<!-- results:start -->`` and ``<!-- results:end -->`` in FILE,
and each experiment's own table (its report's ``table``,
:mod:`jaxrnn.experiment.report`) in the block ``<!-- <experiment>:start -->``
... ``<!-- <experiment>:end -->`` where FILE has one; ``--figures DIR`` draws
every report's figures into DIR from the runs of the configs they need.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

from jaxrnn.experiment import catalog
from jaxrnn.experiment import config as config_lib
from jaxrnn.experiment.registry import CELLS
from jaxrnn.experiment.rundir import RunDir
from jaxrnn.experiment.schema import ConfigError

START = "<!-- results:start -->"
END = "<!-- results:end -->"


def _order(summary: dict[str, Any]) -> tuple:
    """Window models first, then the cells in the registry's order, then by config name."""
    cells = list(CELLS)
    cell = summary.get("cell")
    return (summary.get("experiment", ""), summary.get("seq_len") or 0, summary.get("kind") == "recurrent",
            cells.index(cell) if cell in cells else len(cells), summary["config"])


def run_folders(paths: Iterable[str | Path]) -> list[RunDir]:
    """The run folders in ``paths``: each a run folder, or a folder of them."""
    found = []
    for path in map(Path, paths):
        candidates = [path] if (path / "config.yaml").exists() else sorted(p for p in path.glob("*") if p.is_dir())
        found += [RunDir(p) for p in candidates if (p / "summary.json").exists() or (p / "diverged.json").exists()]
    return found


def collect(paths: Iterable[str | Path]) -> list[dict[str, Any]]:
    """The summaries of the run folders in ``paths``; a diverged run's has ``"diverged"`` and no metrics."""
    summaries = []
    for run in run_folders(paths):
        if run.summary_file.exists():
            try:
                summary = run.read_summary()
            except (OSError, ValueError) as error:
                raise ConfigError(f"{run.summary_file}: cannot read it as JSON ({error})") from None
            if not isinstance(summary, dict) or not isinstance(summary.get("metrics"), dict):
                raise ConfigError(f"{run.summary_file}: not a run summary (expected a mapping with \"metrics\")")
        else:
            config = config_lib.from_dict(run.read_config())
            summary = {"config": config.name, "experiment": config.experiment, "model": config.model.label,
                       "kind": config.model.kind, "cell": getattr(config.model, "cell", None),
                       "hidden_size": config.model.hidden_size, "clip_norm": config.optim.clip_norm,
                       "seq_len": catalog.experiment(config.experiment).length(config), "steps": config.train.steps,
                       "metrics": {}, "diverged": json.loads(run.diverged_file.read_text())}
        summary.setdefault("config", run.path.name)
        summary["folder"] = str(run.path)
        summaries.append(summary)
    summaries.sort(key=_order)
    return summaries


def markdown(summaries: list[dict[str, Any]]) -> str:
    """The table as GitHub Markdown."""
    header = ["experiment", "T", "cell", "hidden", "eval loss", "baseline", "loss / baseline",
              "eval accuracy", "grad decay", "steps", "wall time", "machine"]
    rows = [header, ["---"] * len(header)]
    for s in summaries:
        m = s["metrics"]
        loss, baseline = m.get("eval_loss"), m.get("baseline")
        diverged = s.get("diverged")
        rows.append([
            s.get("experiment", "?"),
            str(s.get("seq_len", "")),
            s.get("model", s.get("cell", "?")) + ("" if s.get("clip_norm", 1.0) is not None else ", no clipping"),
            str(s.get("hidden_size") or ""),
            f"diverged at step {diverged['step']}" if diverged else _number(loss),
            _number(baseline),
            _number(loss / baseline) if loss is not None and baseline else "",
            _number(m["eval_accuracy"]) if "eval_accuracy" in m else "",
            _decay(m),
            str(s.get("steps", "")),
            _duration(s.get("wall_time_s")),
            s.get("machine", ""),
        ])
    return "\n".join("| " + " | ".join(row) + " |" for row in rows) + "\n"


def experiment_tables(summaries: list[dict[str, Any]]) -> dict[str, str]:
    """Each experiment's own table of its runs, by experiment name (the name of its README block)."""
    tables = {}
    for name, report in catalog.reports().items():
        own = [s for s in summaries if s.get("experiment") == name]
        if report.table is not None and own:
            tables[name] = report.table(own)
    return tables


def embed(table: str, path: str | Path, block: str = "results", *, required: bool = True) -> bool:
    """Replace the text between ``<!-- block:start -->`` and ``<!-- block:end -->`` of ``path`` with ``table``.

    Returns whether the block was there; a missing block is an error when ``required``.
    """
    start, end = f"<!-- {block}:start -->", f"<!-- {block}:end -->"
    path = Path(path)
    text = path.read_text()
    if start not in text or end not in text:
        if required:
            raise ValueError(f"{path} has no {start} ... {end} block to fill")
        return False
    before, rest = text.split(start, 1)
    _, after = rest.split(end, 1)
    path.write_text(f"{before}{start}\n{table}{end}{after}")
    return True


def figures(paths: Iterable[str | Path], folder: str | Path) -> list[Path]:
    """Draw every report's figures into ``folder`` from the runs in ``paths``; the files written.

    Raises:
      ConfigError: a figure needs the run of a config that is not there (it names the config and how to run it).
    """
    paths = list(map(Path, paths))
    runs = {run.path.name: run for run in run_folders(paths)}
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for report in catalog.reports().values():
        for figure in report.figures:
            missing = [name for name in figure.needs if name not in runs]
            if missing:
                where = ", ".join(map(str, paths))
                more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
                raise ConfigError(f"figure {figure.name} needs the run of config {missing[0]} (not in {where}): "
                                  f"jaxrnn run {missing[0]}" + more)
            figure.draw({name: runs[name] for name in figure.needs}, folder / figure.name)
            written.append(folder / figure.name)
    return written


def _number(x: float | None) -> str:
    if x is None:
        return ""
    return f"{x:.2e}" if x != 0 and abs(x) < 1e-3 else f"{x:.4f}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def _decay(metrics: dict[str, float]) -> str:
    if "eval_grad_decay" not in metrics:
        return ""
    bound = metrics.get("eval_grad_underflow", 0.0) >= 1.0  # the value is a bound, not a measurement
    return f"≤ {metrics['eval_grad_decay']:.0f}" if bound else f"{metrics['eval_grad_decay']:.1f}"
