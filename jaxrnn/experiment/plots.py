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
    points: Sequence[tuple[str, Sequence[int]]] = (),
) -> Path:
    """Training loss and evaluation loss against step, log scale, with the baseline as a dashed line.

    ``records`` are the rows of ``metrics.jsonl``: those with ``loss`` are
    training points, those with ``eval_loss`` evaluation points. A record of
    several replicas holds a list per metric: drawn as the mean with the
    min-max band, which ``band`` names in the legend (e.g. ``min-max of 3 seeds``).
    ``points``: ``(label, replica indices)`` of each point of an in-step
    sweep, each drawn as its own pair of curves.
    """
    fig, ax = axes()
    train, evals = [], []
    for text, replicas in points or [("", None)]:
        prefix = f"{text}: " if text else ""
        train += curve(ax, records, "loss", label=prefix + "train", band=band, replicas=replicas, lw=1, alpha=0.8)
        evals += curve(ax, records, "eval_loss", "o-", label=prefix + "eval", band=band, replicas=replicas, ms=3,
                       lw=1.5)
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
          band: str | None = None, replicas: Sequence[int] | None = None, **style: Any) -> list[float]:
    """Draw metric ``name`` of ``records`` against step on ``ax``; the values drawn (means, for replicas).

    A record's value is a number, or a list of one per replica (``None``: a
    replica that had stopped): then the mean over the replicas present, and a
    shaded band from their min to their max, ``band`` saying so in the legend
    (:func:`mean_curve`). ``replicas``: the indices of the replicas to draw (a
    sweep point's), all by default; one is drawn as a plain line.
    """
    steps, rows = [], []
    for record in records:
        if name not in record:
            continue
        value = record[name]
        if isinstance(value, list) and replicas is not None:
            value = [value[i] for i in replicas]
        row = [np.nan if v is None else float(v) for v in (value if isinstance(value, list) else [value])]
        if any(np.isfinite(row)):
            steps.append(record["step"])
            rows.append(row)
    if not steps:
        return []
    means = mean_curve(ax, steps, np.asarray(rows), fmt, label=label, band=band, **style)
    return [float(v) for v in means]


def mean_curve(ax: Any, x: Sequence[float], values: np.ndarray, fmt: str = "-", *, label: str | None = None,
           band: str | None = None, geometric: bool = False, **style: Any) -> np.ndarray:
    """Draw the mean over the replicas of ``values`` (``(len(x), replicas)``, NaN where one is missing) against ``x``.

    Of several replicas, a shaded band from their min to their max, the legend
    saying ``label (mean; band: <band>)``; of one, its plain line.
    ``geometric``: the geometric mean (of gradient norms, on a log axis), where
    a replica's 0 (an underflow) leaves a gap. Returns the means drawn.
    """
    values = np.asarray(values, np.float64).reshape(len(x), -1)
    present = np.isfinite(values)
    count = present.sum(axis=1)
    filled = np.where(present, values, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        if geometric:
            logs = np.where(present, np.log(np.where(present & (values > 0), values, 0.0)), 0.0)
            means = np.exp(logs.sum(axis=1) / count)
            means[means <= 0] = np.nan
        else:
            means = filled.sum(axis=1) / count
    several = values.shape[1] > 1
    text = f"{label} (mean; band: {band})" if several and band and label else label
    (line,) = ax.plot(x, means, fmt, label=text, **style)
    if several:
        lows = np.where(present, values, np.inf).min(axis=1)
        highs = np.where(present, values, -np.inf).max(axis=1)
        shown = np.isfinite(lows) & (lows > 0) if geometric else np.isfinite(lows)
        ax.fill_between(np.asarray(x)[shown], lows[shown], highs[shown], color=line.get_color(), alpha=0.2, lw=0)
    return means


def metric_curve(records: Sequence[dict[str, Any]], name: str, path: str | Path, *, title: str = "",
                 band: str | None = None, points: Sequence[tuple[str, Sequence[int]]] = ()) -> Path:
    """One evaluation metric (e.g. ``eval_accuracy``) against step; of replicas, the mean and its band.

    ``points``: ``(label, replica indices)`` of each point of an in-step
    sweep, one curve each; without, one curve of all the replicas.
    """
    fig, ax = axes()
    for text, replicas in points or [(name, None)]:
        curve(ax, records, name, "o-", label=text if band or points else None, band=band, replicas=replicas, ms=3)
    if band or points:
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
