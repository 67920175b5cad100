"""Plots of a run, written as PNG with matplotlib's Agg canvas (no display, no global backend)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def loss_curves(
    records: Sequence[dict[str, Any]],
    path: str | Path,
    *,
    baseline: float | None = None,
    title: str = "",
    ylabel: str = "loss",
) -> Path:
    """Training loss and evaluation loss against step, log scale, with the baseline as a dashed line.

    ``records`` are the rows of ``metrics.jsonl``: those with ``loss`` are
    training points, those with ``eval_loss`` evaluation points.
    """
    train = [(r["step"], r["loss"]) for r in records if "loss" in r]
    evals = [(r["step"], r["eval_loss"]) for r in records if "eval_loss" in r]
    fig, ax = axes()
    if train:
        ax.plot(*zip(*train), lw=1, alpha=0.8, label="train")
    if evals:
        ax.plot(*zip(*evals), "o-", ms=3, lw=1.5, label="eval")
    if baseline is not None:
        ax.axhline(baseline, color="k", ls="--", lw=1, label=f"baseline {baseline:.3g}")
    if any(v > 0 for _, v in train + evals):
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    return save(fig, path)


def metric_curve(records: Sequence[dict[str, Any]], name: str, path: str | Path, *, title: str = "") -> Path:
    """One evaluation metric (e.g. ``eval_accuracy``) against step."""
    points = [(r["step"], r[name]) for r in records if name in r]
    fig, ax = axes()
    if points:
        ax.plot(*zip(*points), "o-", ms=3)
    ax.set_xlabel("step")
    ax.set_ylabel(name)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    return save(fig, path)


def figure(size: tuple[float, float] = (6.4, 4.0)) -> Figure:
    """A new figure on its own Agg canvas (no display, no global backend)."""
    fig = Figure(figsize=size)
    FigureCanvasAgg(fig)
    return fig


def axes(size: tuple[float, float] = (6.4, 4.0), margins: tuple[float, float, float, float] = (0.15, 0.97, 0.12, 0.92)):
    """``(figure, axes)`` of a new figure on its own Agg canvas; ``margins``: left, right, bottom, top."""
    fig = figure(size)
    left, right, bottom, top = margins
    fig.subplots_adjust(left=left, right=right, bottom=bottom, top=top)
    return fig, fig.add_subplot()


def save(fig: Figure, path: str | Path) -> Path:
    """Write ``fig`` as a PNG at ``path`` (its folder created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path
