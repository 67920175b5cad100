"""The results table: one row per run folder, made from its ``summary.json``, never typed by hand.

    | experiment | T | cell | hidden | eval loss | baseline | loss / baseline | eval accuracy | grad decay | steps | wall time | machine |

``grad decay`` is ``eval_grad_decay`` where an experiment reports it (see :mod:`jaxrnn.gradient_flow`),
``≤ x`` when the first step's gradient underflowed in every evaluated sequence.

``jaxrnn table runs/`` prints it as Markdown; ``--into FILE`` replaces the
block between ``<!-- results:start -->`` and ``<!-- results:end -->`` in FILE.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

from jaxrnn.experiment.registry import CELLS

START = "<!-- results:start -->"
END = "<!-- results:end -->"


def _order(summary: dict[str, Any]) -> tuple:
    """Window models first, then the cells in the registry's order, then by config name."""
    cells = list(CELLS)
    cell = summary.get("cell")
    return (summary.get("experiment", ""), summary.get("seq_len") or 0, summary.get("kind") != "window",
            cells.index(cell) if cell in cells else len(cells), summary["config"])


def collect(paths: Iterable[str | Path]) -> list[dict[str, Any]]:
    """The summaries of the run folders in ``paths`` (each a run folder or a folder of them)."""
    summaries = []
    for path in map(Path, paths):
        files = [path / "summary.json"] if (path / "summary.json").exists() else sorted(path.glob("*/summary.json"))
        for file in files:
            summary = json.loads(file.read_text())
            summary.setdefault("config", file.parent.name)
            summary["folder"] = str(file.parent)
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
        rows.append([
            s.get("experiment", "?"),
            str(s.get("seq_len", "")),
            s.get("model", s.get("cell", "?")),
            str(s.get("hidden_size") or ""),
            _number(loss),
            _number(baseline),
            _number(loss / baseline) if loss is not None and baseline else "",
            _number(m["eval_accuracy"]) if "eval_accuracy" in m else "",
            _decay(m),
            str(s.get("steps", "")),
            _duration(s.get("wall_time_s")),
            s.get("machine", ""),
        ])
    return "\n".join("| " + " | ".join(row) + " |" for row in rows) + "\n"


def embed(table: str, path: str | Path) -> None:
    """Replace the text between the ``START`` and ``END`` markers of ``path`` with ``table``."""
    path = Path(path)
    text = path.read_text()
    if START not in text or END not in text:
        raise ValueError(f"{path} has no {START} ... {END} block to fill")
    before, rest = text.split(START, 1)
    _, after = rest.split(END, 1)
    path.write_text(f"{before}{START}\n{table}{END}{after}")


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
