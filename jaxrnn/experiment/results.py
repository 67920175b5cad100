"""The results: tables and figures made from run folders, never typed or drawn by hand.

The table's columns: experiment, T, cell, hidden, eval loss, baseline,
loss / baseline, eval accuracy, grad decay, steps, wall time, machine.

One row per run folder, from its ``summary.json`` (or its ``diverged.json``
when the NaN guard stopped it). ``grad decay`` is ``eval_grad_decay`` where
an experiment reports it (see :mod:`jaxrnn.gradient_flow`), ``≤ x`` when the
first step's gradient underflowed in every evaluated sequence.

A run of several seeds (``train.seeds``) gives one row per point of its
in-step sweep (one row without a sweep), whose numeric cells -- eval loss,
loss / baseline, eval accuracy, grad decay -- read ``mean ± std (n)``: the
mean and the sample standard deviation over the ``n`` seeds that finished
(:func:`jaxrnn.experiment.replicas.spread`); when some diverged, the eval loss
cell says how many (``0.0123 ± 0.0040 (2), 1 of 3 diverged``; ``all 3
diverged by step 7`` when none finished), and grad decay reads ``≤`` when a
seed's value is a bound. A sweep point's values follow the cell column
(``lstm, optim.learning_rate=0.003``). A sweep folder (``sweep.json``, one
run folder per point, ``SWEEP/<key>=<value>/...``) gives its runs' rows side
by side, in the order of its values. Single-seed rows show plain numbers.

``jaxrnn table runs/`` prints it as Markdown; ``--into FILE`` replaces the
block between ``<!-- results:start -->`` and ``<!-- results:end -->`` in FILE,
and each experiment's own table (its report's ``table``,
:mod:`jaxrnn.experiment.report`) in the block ``<!-- <experiment>:start -->``
... ``<!-- <experiment>:end -->`` where FILE has one; ``--figures DIR`` draws
every report's figures into DIR from the runs of the configs they need.
:func:`draw_sweep` draws a sweep's metrics against its values.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from jaxrnn.experiment import catalog, plots
from jaxrnn.experiment import config as config_lib
from jaxrnn.experiment.registry import CELLS
from jaxrnn.experiment.rundir import RunDir, label
from jaxrnn.experiment.schema import ConfigError

START = "<!-- results:start -->"
END = "<!-- results:end -->"
SWEEP_FILE = "sweep.json"  # a sweep folder's: {"config": name, "sweep": {key: [values]}}
SWEEP_METRICS = ("eval_loss", "eval_accuracy")  # what draw_sweep puts against the swept values, where present


def _order(summary: dict[str, Any]) -> tuple:
    """Window models first, then the cells in the registry's order, then by config name."""
    cells = list(CELLS)
    cell = summary.get("cell")
    return (summary.get("experiment", ""), summary.get("seq_len") or 0, summary.get("kind") == "recurrent",
            cells.index(cell) if cell in cells else len(cells), summary["config"])


def run_folders(paths: Iterable[str | Path]) -> list[RunDir]:
    """The run folders in ``paths``: each a run folder, a sweep folder (its runs, however deeply nested), or a
    folder of them."""
    found = []
    for path in map(Path, paths):
        if (path / "config.yaml").exists():
            candidates = [path]
        elif (path / SWEEP_FILE).exists():
            candidates = _sweep_runs(path)
        else:
            candidates = []
            for child in sorted(p for p in path.glob("*") if p.is_dir()):
                candidates += _sweep_runs(child) if (child / SWEEP_FILE).exists() else [child]
        found += [RunDir(p) for p in candidates if (p / "summary.json").exists() or (p / "diverged.json").exists()]
    return found


def _sweep_runs(folder: Path) -> list[Path]:
    """The run folders of a sweep: its ``key=value`` folders holding a ``config.yaml``, or those of the next key."""
    runs = []
    for child in sorted(p for p in folder.iterdir() if p.is_dir() and "=" in p.name):
        runs += [child] if (child / "config.yaml").exists() else _sweep_runs(child)
    return runs


def _sweep_of(run: RunDir) -> Path | None:
    """The sweep folder ``run`` belongs to (the nearest ``sweep.json`` above its ``key=value`` folders), or ``None``."""
    folder = run.path.parent
    while not (folder / SWEEP_FILE).exists() and "=" in folder.name:
        folder = folder.parent
    return folder if "=" in run.path.name and (folder / SWEEP_FILE).exists() else None


def collect(paths: Iterable[str | Path]) -> list[dict[str, Any]]:
    """The rows of the run folders in ``paths``, a summary each; a diverged run's has ``"diverged"`` and no metrics.

    A run of several replicas gives one row per point of its in-step sweep:
    the run's summary with that point's ``metrics`` (means), ``spread``,
    ``diverged`` (by seed) and ``replicas`` (each one's name, seed and metrics),
    and ``seeds``, their number; a point of one seed gives a row like a
    single run's (no ``spread``). A row of a sweep has ``point``, its values
    by key (those of the sweep folder's and the in-step sweep's), and
    ``sweep``, the sweep folder; a sweep's rows come together, in the order of
    its values. Every row has ``folder``, its run folder.
    """
    ranked = []
    for run in run_folders(paths):
        sweep = _sweep_of(run)
        values = json.loads((sweep / SWEEP_FILE).read_text()).get("sweep", {}) if sweep else {}
        summary = _summary(run)
        if sweep and "point" not in summary:  # a diverged run of the sweep: its point from its folders' names
            summary["point"] = _point_of(run.path.relative_to(sweep), values)
        summary.setdefault("config", run.path.name)
        summary["folder"] = str(run.path)
        for index, row in enumerate(_rows(summary)):
            if sweep:
                row["sweep"] = str(sweep)
            point = row.get("point", {})
            rank = tuple(values[k].index(point[k]) if point.get(k) in values[k] else len(values[k]) for k in values)
            ranked.append((row, (*rank, index)))
    groups: dict[str, list[tuple[dict[str, Any], tuple]]] = {}
    for row, rank in ranked:
        groups.setdefault(row.get("sweep") or row["folder"], []).append((row, rank))
    ordered = sorted(groups.values(), key=lambda group: min(_order(row) for row, _ in group))
    return [row for group in ordered for row, _ in sorted(group, key=lambda pair: pair[1])]


def _summary(run: RunDir) -> dict[str, Any]:
    """The run's ``summary.json``; of a run the NaN guard stopped, one made from its config and ``diverged.json``.

    Raises:
      ConfigError: the summary is not JSON, or not a run's.
    """
    if run.summary_file.exists():
        try:
            summary = run.read_summary()
        except (OSError, ValueError) as error:
            raise ConfigError(f"{run.summary_file}: cannot read it as JSON ({error})") from None
        if not isinstance(summary, dict) or not isinstance(summary.get("metrics"), dict):
            raise ConfigError(f"{run.summary_file}: not a run summary (expected a mapping with \"metrics\")")
        return summary
    config = config_lib.from_dict(run.read_config())
    summary = {"config": config.name, "experiment": config.experiment, "model": config.model.label,
               "kind": config.model.kind, "cell": getattr(config.model, "cell", None),
               "hidden_size": config.model.hidden_size, "clip_norm": config.optim.clip_norm,
               "seq_len": catalog.experiment(config.experiment).length(config), "steps": config.train.steps,
               "metrics": {}}
    stopped = json.loads(run.diverged_file.read_text())
    if "replicas" not in stopped:
        return {**summary, "diverged": stopped}
    # Every replica diverged: the summary of a run of several whose replicas have no metrics.
    names, points = list(stopped["replicas"]), run.points()
    replicas = [{"name": names[i], "seed": int(names[i].rpartition("seed-")[2]), "values": point.values,
                 "diverged": stopped["replicas"][names[i]]} for point in points for i in point.replicas]
    return {**summary, "seeds": config.train.seeds, "replicas": replicas,
            "points": [{"values": point.values, "metrics": {}, "spread": {},
                        "seeds": [r["seed"] for r in replicas if r["values"] == point.values],
                        "diverged": {str(r["seed"]): r["diverged"] for r in replicas if r["values"] == point.values}}
                       for point in points]}


def _point_of(relative: Path, values: dict[str, list[Any]]) -> dict[str, Any]:
    """The point of a sweep's run from its folders' names (``model.hidden_size=32/model.cell=gru``), each value
    the sweep's that the name shows (else the text)."""
    point = {}
    for part in relative.parts:
        key, _, text = part.partition("=")
        point[key] = next((v for v in values.get(key, ()) if label({key: v}) == part), text)
    return point


def _rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """The table's rows of one run: its summary, or of several replicas one row per point (see :func:`collect`)."""
    if "points" not in summary:
        return [summary]
    head = {k: v for k, v in summary.items() if k not in ("metrics", "spread", "diverged", "points", "replicas",
                                                          "seeds", "point")}
    rows = []
    for point in summary["points"]:
        values = {**summary.get("point", {}), **point["values"]}
        members = [r for r in summary["replicas"] if r["values"] == point["values"]]
        row = {**head, **({"point": values} if values else {}), "replicas": members}
        if len(members) == 1:  # a sweep of one seed: a single run's row
            row["metrics"] = members[0].get("metrics", {})
            if "diverged" in members[0]:
                row["diverged"] = members[0]["diverged"]
        else:
            row.update(metrics=point["metrics"], spread=point["spread"], diverged=point["diverged"],
                       seeds=len(members))
        rows.append(row)
    return rows


def markdown(summaries: list[dict[str, Any]]) -> str:
    """The table as GitHub Markdown (the rows of :func:`collect`)."""
    header = ["experiment", "T", "cell", "hidden", "eval loss", "baseline", "loss / baseline",
              "eval accuracy", "grad decay", "steps", "wall time", "machine"]
    rows = [header, ["---"] * len(header)]
    for s in summaries:
        m = s["metrics"]
        loss, baseline = m.get("eval_loss"), m.get("baseline")
        rows.append([
            s.get("experiment", "?"),
            str(s.get("seq_len", "")),
            s.get("model", s.get("cell", "?")) + ("" if s.get("clip_norm", 1.0) is not None else ", no clipping")
            + point_text(s),
            str(s.get("hidden_size") or ""),
            _loss(s),
            _number(baseline),
            _ratio(s, loss, baseline),
            cell(s, "eval_accuracy"),
            _decay(s),
            str(s.get("steps", "")),
            _duration(s.get("wall_time_s")),
            s.get("machine", ""),
        ])
    return "\n".join("| " + " | ".join(row) + " |" for row in rows) + "\n"


def cell(summary: dict[str, Any], name: str, fmt: str | Callable[[float], str] | None = None) -> str:
    """Metric ``name`` of a row as a table shows it: its number, or of several seeds ``mean ± std (n)``.

    ``n``: the seeds that finished; ``""`` when the row has no such metric (or
    none finished). ``fmt``: a format spec (``".3f"``) or a function; by
    default the results table's (4 decimals, or 3 significant digits below 1e-3).
    """
    text = _number if fmt is None else fmt if callable(fmt) else (lambda x: format(x, fmt))
    if "spread" not in summary:
        value = summary["metrics"].get(name)
        return "" if value is None else text(value)
    stats = summary["spread"].get(name, {})
    return f"{text(stats['mean'])} ± {text(stats['std'])} ({stats['n']})" if stats.get("n") else ""


def point_text(summary: dict[str, Any]) -> str:
    """``, optim.learning_rate=0.003``: the values of a sweep's row, after its model's name; ``""`` for others."""
    return f", {label(summary['point'])}" if summary.get("point") else ""


def diverged_text(summary: dict[str, Any]) -> str:
    """``, 1 of 3 diverged``: how many seeds of a row of several the NaN guard stopped; ``""`` when none did."""
    if "spread" not in summary or not summary.get("diverged"):
        return ""
    return f", {len(summary['diverged'])} of {summary['seeds']} diverged"


def _loss(s: dict[str, Any]) -> str:
    """The eval loss cell: the loss, or where the NaN guard stopped the run (how many seeds, of several)."""
    diverged = s.get("diverged")
    if "spread" not in s:
        return f"diverged at step {diverged['step']}" if diverged else _number(s["metrics"].get("eval_loss"))
    if not s["spread"].get("eval_loss", {}).get("n"):
        last = max((d["step"] for d in (diverged or {}).values()), default=None)
        return f"all {s['seeds']} diverged by step {last}" if last is not None else ""
    return cell(s, "eval_loss") + diverged_text(s)


def _ratio(s: dict[str, Any], loss: float | None, baseline: float | None) -> str:
    """The loss / baseline cell (the baseline is every seed's)."""
    if "spread" not in s:
        return _number(loss / baseline) if loss is not None and baseline else ""
    stats = s["spread"].get("eval_loss", {})
    if not baseline or not stats.get("n"):
        return ""
    scaled = {"spread": {"ratio": {k: (v / baseline if k != "n" else v) for k, v in stats.items()}}}
    return cell(scaled, "ratio")


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


def _decay(s: dict[str, Any]) -> str:
    """``eval_grad_decay``: ``≤ x`` where it is a bound (the first step's gradient underflowed in every sequence
    of the run, or of a seed)."""
    if "spread" not in s:
        metrics = s["metrics"]
        if "eval_grad_decay" not in metrics:
            return ""
        bound = metrics.get("eval_grad_underflow", 0.0) >= 1.0  # the value is a bound, not a measurement
        return f"≤ {metrics['eval_grad_decay']:.0f}" if bound else f"{metrics['eval_grad_decay']:.1f}"
    bound = s["spread"].get("eval_grad_underflow", {}).get("max", 0.0) >= 1.0
    text = cell(s, "eval_grad_decay", ".0f" if bound else ".1f")
    return f"≤ {text}" if bound and text else text


def draw_sweep(folder: str | Path) -> list[Path]:
    """Each swept key's figure ``sweep_<key>.png`` in ``folder`` (a sweep folder, or a run with an in-step sweep).

    ``eval_loss`` (and ``eval_accuracy`` where the runs have it) against the
    key's values: the mean over the seeds with their standard deviation as
    error bars, and each seed's value as a dot; the points of the other swept
    keys as separate lines; how many seeds diverged, under a value where some
    did. A log axis for learning rates, and for positive values spanning a
    factor of 100; names (``model.cell``) side by side. Returns the files
    written (none for a key with fewer than two values).
    """
    folder = Path(folder)
    rows = collect([folder])
    keys = list(dict.fromkeys(key for row in rows for key in row.get("point", {})))
    written = []
    for key in keys:
        xs = list(dict.fromkeys(row["point"][key] for row in rows if key in row.get("point", {})))
        metrics = [m for m in SWEEP_METRICS if any(_seed_values(row, m) for row in rows)]
        if len(xs) < 2 or not metrics:
            continue
        numeric = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in xs)
        position = {label({key: x}): x if numeric else i for i, x in enumerate(xs)}
        lines: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            if key in row.get("point", {}):
                lines.setdefault(label({k: v for k, v in row["point"].items() if k != key}), []).append(row)
        fig = plots.figure((5.4 * len(metrics), 4.2))
        for ax, metric in zip(fig.subplots(1, len(metrics), squeeze=False)[0], metrics):
            for text, members in lines.items():
                _sweep_line(ax, members, key, metric, lambda x: position[label({key: x})], text)
            ax.set_xlabel(f"{key}\nmean ± std over the seeds (bars); dots: each seed", fontsize=9)
            ax.set_ylabel(metric)
            if numeric and all(x > 0 for x in xs) and (key.endswith("learning_rate") or max(xs) >= 100 * min(xs)):
                ax.set_xscale("log")
            if not numeric:
                ax.set_xticks(range(len(xs)), [str(x) for x in xs])
            if metric == "eval_loss" and all(v > 0 for row in rows for v in _seed_values(row, metric)):
                ax.set_yscale("log")
            ax.set_title(f"{metric} against {key}", fontsize=10)
            ax.grid(True, which="both", alpha=0.3)
            if any(lines):
                ax.legend(fontsize=8)
        fig.suptitle(rows[0].get("config", ""), fontsize=11)
        fig.tight_layout()
        written.append(plots.save(fig, folder / f"sweep_{key}.png"))
    return written


def _sweep_line(ax: Any, rows: list[dict[str, Any]], key: str, metric: str, at: Callable[[Any], float],
                text: str) -> None:
    """One line of a sweep figure: its rows' mean and std of ``metric`` against ``key``, and each seed's dot."""
    points = sorted(((at(row["point"][key]), _seed_values(row, metric), _diverged_count(row)) for row in rows),
                    key=lambda p: p[0])
    drawn = [(x, v) for x, v, _ in points if v]
    if drawn:
        x = [p[0] for p in drawn]
        means = [float(np.mean(v)) for _, v in drawn]
        stds = [float(np.std(v, ddof=1)) if len(v) > 1 else 0.0 for _, v in drawn]
        line = ax.errorbar(x, means, yerr=stds, fmt="o-", capsize=3, ms=5, label=text or None)
        dots = [(xi, vi) for xi, v in drawn for vi in v]
        ax.scatter(*zip(*dots), s=12, alpha=0.5, color=line.lines[0].get_color(), zorder=3)
    for x, _, lost in points:
        if lost:
            ax.axvline(x, color="tab:red", alpha=0.4, ls=":", lw=1)  # also widens the axis to the value
            ax.annotate(f"{lost} diverged", (x, 0.02), xycoords=("data", "axes fraction"), ha="center", fontsize=7,
                        color="tab:red")


def _seed_values(row: dict[str, Any], metric: str) -> list[float]:
    """Each finished seed's value of ``metric`` in a row (one for a single run's)."""
    own = [r.get("metrics", {}) for r in row["replicas"]] if "replicas" in row else [row["metrics"]]
    return [float(m[metric]) for m in own if m.get(metric) is not None and math.isfinite(m[metric])]


def _diverged_count(row: dict[str, Any]) -> int:
    """How many seeds of a row the NaN guard stopped."""
    if "replicas" in row:
        return sum("diverged" in r for r in row["replicas"])
    return int(bool(row.get("diverged")))
