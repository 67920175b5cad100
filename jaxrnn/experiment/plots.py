"""Plots of a run, written as PNG with matplotlib's Agg canvas (no display, no global backend)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def loss_curves(
    records: Sequence[dict[str, Any]],
    path: str | Path,
    *,
    baseline: float | None = None,
    title: str = "",
    ylabel: str = "loss",
    band: str | None = None,
) -> Path:
    """Training loss and evaluation loss against step, log scale, with the baseline as a dashed line.

    ``records`` are the rows of ``metrics.jsonl``: those with ``loss`` are
    training points, those with ``eval_loss`` evaluation points. A record of
    several replicas holds a list per metric: drawn as the mean with the
    min-max band, which ``band`` names in the legend (e.g. ``min-max of 3 seeds``).
    """
    fig, ax = axes()
    train = curve(ax, records, "loss", label="train", band=band, lw=1, alpha=0.8)
    evals = curve(ax, records, "eval_loss", "o-", label="eval", band=band, ms=3, lw=1.5)
    if baseline is not None:
        ax.axhline(baseline, color="k", ls="--", lw=1, label=f"baseline {baseline:.3g}")
    if any(v > 0 for v in train + evals):
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    return save(fig, path)


def curve(ax: Any, records: Sequence[dict[str, Any]], name: str, fmt: str = "-", *, label: str | None = None,
          band: str | None = None, **style: Any) -> list[float]:
    """Draw metric ``name`` of ``records`` against step on ``ax``; the values drawn (means, for replicas).

    A record's value is a number, or a list of one per replica (``None``: a
    replica that had stopped): then the mean over the replicas present, and a
    shaded band from their min to their max, ``band`` saying so in the legend.
    """
    points = [(r["step"], r[name]) for r in records if name in r]
    steps, means, lows, highs = [], [], [], []
    for step, value in points:
        values = [v for v in (value if isinstance(value, list) else [value]) if v is not None]
        if values:
            steps.append(step)
            means.append(float(np.mean(values)))
            lows.append(min(values))
            highs.append(max(values))
    if not steps:
        return []
    spread = any(isinstance(v, list) for _, v in points)
    text = f"{label} (mean; band: {band})" if spread and band and label else label
    (line,) = ax.plot(steps, means, fmt, label=text, **style)
    if spread:
        ax.fill_between(steps, lows, highs, color=line.get_color(), alpha=0.2, lw=0)
    return means


def metric_curve(records: Sequence[dict[str, Any]], name: str, path: str | Path, *, title: str = "",
                 band: str | None = None) -> Path:
    """One evaluation metric (e.g. ``eval_accuracy``) against step; of replicas, the mean and its band."""
    fig, ax = axes()
    curve(ax, records, name, "o-", label=name if band else None, band=band, ms=3)
    if band:
        ax.legend()
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
