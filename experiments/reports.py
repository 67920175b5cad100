"""What the experiments show of their runs: each run's figures, and the README's tables and figures.

Every function here draws from run folders only -- the records, the summaries
and the arrays an experiment's ``analysis`` saved (``predictions.npz``,
``forecasts.npz``, ...) -- so a figure is made again without training again
(:mod:`jaxrnn.experiment.report`). :data:`REPORTS` registers them by
experiment name; ``digits`` has none (its loss curves are the runner's).

A run of several seeds (``train.seeds``) is shown as a distribution: its
curves are the mean over the seeds with a shaded min-max band (the legend
says so), the curves of its replicas' arrays (each in the replica's folder,
:meth:`~jaxrnn.experiment.rundir.RunDir.replica_dirs`) likewise (the geometric
mean, for gradient norms), one per point of an in-step sweep; a scatter of
predictions shows the first seed's, its title says so; the tables give
``mean ± std (n)`` (:func:`jaxrnn.experiment.results.cell`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from jaxrnn.experiment import plots, results
from jaxrnn.experiment.report import Figure, Report
from jaxrnn.experiment.rundir import RunDir
from jaxrnn.experiment.schema import Config
from jaxrnn.experiments import sunspots
from jaxrnn.tasks.adding import BASELINE_MSE


def _series(run: RunDir) -> list[tuple[str, list[int]]]:
    """Each point of ``run``'s in-step sweep (the whole run without one): its label (``""`` without a sweep) and
    the indices of its replicas in the lists of the run's records."""
    return [(point.label, point.replicas) for point in run.points()]


def _named(text: str, point: str) -> str:
    """A legend's ``text``, with the sweep point's values when there are some."""
    return f"{text}, {point}" if point else text


def _band(count: int) -> str | None:
    """What the shaded band of ``count`` seeds is, for the legend (``None``: one seed, no band)."""
    return f"min-max of {count} seeds" if count > 1 else None


def _arrays(run: RunDir, file: str) -> list[tuple[str, list[Any]]]:
    """Each point of ``run``'s in-step sweep (the whole run without one): its label and the arrays ``file`` (an
    analysis' ``.npz``) of its replicas (the run's own, of a run of one); a diverged replica has none, a point
    none of whose replicas finished is left out."""
    dirs = run.replica_dirs()
    points = [(point.label, [dirs[i].path / file for i in point.replicas]) for point in run.points()]
    return [(text, [np.load(path) for path in paths if path.exists()]) for text, paths in points
            if any(path.exists() for path in paths)]


def _before_and_after(folder: RunDir, file: str, x: Any, labels: dict[str, str], axis_labels: tuple[str, str],
                      title: str, name: str) -> None:
    """A log-scale figure ``name`` of the curves ``init`` and ``trained`` of each replica's ``file``: per sweep
    point, the geometric mean over the seeds with their min-max band. ``x(saved, n)``: the abscissae of ``n``
    values; ``labels``: each curve's legend."""
    fig, ax = plots.axes(margins=(0.13, 0.97, 0.12, 0.92))
    for point, saved in _arrays(folder, file):
        for curve, text in labels.items():
            stacked = np.stack([s[curve] for s in saved], axis=1)  # (n, seeds)
            plots.mean_curve(ax, x(saved[0], len(stacked)), stacked, label=_named(text, point),
                             band=_band(len(saved)), geometric=True)
    ax.set_yscale("log")
    ax.set_xlabel(axis_labels[0])
    ax.set_ylabel(axis_labels[1])
    ax.set_title(title)
    ax.legend(fontsize=8)
    plots.save(fig, folder.path / name)


# --- adding ------------------------------------------------------------------------------------------------


def adding_run(config: Config, folder: RunDir) -> None:
    """``predictions.png``: the answers against the true sums of the evaluation batch (of a run of several seeds,
    the first seed's); ``gradient_flow.png``: ``|dy/dx_t|`` against ``t`` on a log scale (the geometric mean over
    the batch, and over the seeds with their min-max band), before and after training."""
    setting = f"{config.model.label}, T = {config.data.seq_len}"
    dirs = folder.replica_dirs()
    shown = next(d for d in dirs if (d.path / "predictions.npz").exists())
    saved = np.load(shown.path / "predictions.npz")
    count = len(dirs)
    fig, ax = plots.axes((4.5, 4.5), (0.15, 0.96, 0.12, 0.9 if count > 1 else 0.92))  # room for a second title line
    ax.scatter(saved["target"].ravel(), saved["predicted"].ravel(), s=6, alpha=0.6)
    ax.plot([0, 2], [0, 2], "k--", lw=1)
    ax.axhline(1.0, color="grey", lw=0.8, ls=":", label="baseline answer 1")
    ax.set_xlabel("true sum")
    ax.set_ylabel("predicted sum")
    first = f"\n{shown.path.relative_to(folder.path)}, the first of {count} replicas" if count > 1 else ""
    ax.set_title(f"{config.name}: {setting}{first}", fontsize=10 if first else None)
    ax.legend()
    plots.save(fig, folder.path / "predictions.png")

    _before_and_after(folder, "input_gradients.npz", lambda saved, n: np.arange(1, n + 1),
                      {"init": "at initialisation", "trained": f"after {config.train.steps} steps"},
                      ("step t", "|dy/dx_t|, geometric mean"),
                      f"{config.name}: gradient reaching each step ({setting})", "gradient_flow.png")


ADDING_CURVES = tuple(f"adding_t{T}_{cell}" for T in (50, 200) for cell in ("rnn", "lstm", "gru"))


def draw_adding_curves(runs: dict[str, RunDir], path: Path) -> None:
    """The evaluation MSE of the rnn, lstm and gru against the training step, on one axis for each T (of several
    seeds, the mean and the min-max band)."""
    fig = plots.figure((11, 4.0))
    axes = fig.subplots(1, 2, sharey=True)
    for ax, T in zip(axes, (50, 200)):
        for cell in ("rnn", "lstm", "gru"):
            run = runs[f"adding_t{T}_{cell}"]
            records, model = run.records(), run.read_summary()["model"]
            for point, replicas in _series(run):
                plots.curve(ax, records, "eval_loss", "o-", label=_named(model, point), band=_band(len(replicas)),
                            replicas=replicas, ms=2, lw=1.2)
        ax.axhline(BASELINE_MSE, color="k", ls="--", lw=1, label="baseline 1/6 (always answer 1)")
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_title(f"the adding problem, T = {T}")
        ax.grid(True, which="major", alpha=0.3)
    axes[0].set_ylabel("evaluation MSE")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    plots.save(fig, path)


# --- copying -----------------------------------------------------------------------------------------------


def copying_run(config: Config, folder: RunDir) -> None:
    """``accuracy.png``: the fraction of recalled symbols right at each evaluation (of several seeds, the mean and
    the min-max band; one curve per point of an in-step sweep)."""
    series = _series(folder)
    plots.metric_curve(folder.records(), "eval_accuracy", folder.path / "accuracy.png",
                       title=f"{config.name}: recalled symbols right", band=_band(len(series[0][1])),
                       points=series if len(series) > 1 else ())


# --- sunspots ----------------------------------------------------------------------------------------------


def sunspots_run(config: Config, folder: RunDir) -> None:
    """``forecasts.png``: the test years (and the 20 before) with the 1-step and the ``horizon``-step forecasts
    (of several seeds, the mean and the min-max band)."""
    series = _arrays(folder, "forecasts.npz")
    test_years = series[0][1][0]["years"]
    years, counts = sunspots.observations()
    shown = (years >= test_years[0] - 20) & (years <= test_years[-1])
    fig, ax = plots.axes((8, 3.8), (0.09, 0.98, 0.13, 0.9))
    ax.plot(years[shown], counts[shown], "k-", lw=1.2, label="observed")
    for point, saved in series:
        _forecast_curves(ax, test_years, saved, point, ("1-step forecast", "{}-step forecast"))
    ax.axvline(test_years[0] - 0.5, color="grey", lw=0.8, ls=":")
    ax.set_xlabel("year")
    ax.set_ylabel("sunspot number")
    ax.set_title(f"{config.name}: {config.model.label}, test years {test_years[0]}-{test_years[-1]}")
    ax.legend(loc="upper left", fontsize=8)
    plots.save(fig, folder.path / "forecasts.png")


def _forecast_curves(ax: Any, years: np.ndarray, saved: list[Any], point: str, texts: tuple[str, str]) -> None:
    """The 1-step and the longest forecasts of the replicas' ``forecasts.npz``: the mean, the min-max band."""
    forecasts = np.stack([s["forecasts"] for s in saved], axis=-1)  # (years, horizon, seeds)
    first, longest = texts
    for k, text in ((0, first), (-1, longest.format(forecasts.shape[1]))):
        plots.mean_curve(ax, years, forecasts[:, k], label=_named(text, point), band=_band(len(saved)), lw=1)


SUNSPOT_MODELS = ("sunspots_markov", "sunspots_ar8", "sunspots_ar8_mlp", "sunspots_naive", "sunspots_rnn",
                  "sunspots_lstm", "sunspots_gru")


def draw_sunspot_forecasts(runs: dict[str, RunDir], path: Path) -> None:
    """Each model's 1-step and longest forecasts of the test years against the observed numbers (of several
    seeds, the mean and the min-max band)."""
    fig = plots.figure((12, 8.5))
    axes = fig.subplots(4, 2, sharex=True, sharey=True).ravel()
    for ax, name in zip(axes, SUNSPOT_MODELS):
        series = _arrays(runs[name], "forecasts.npz")
        first = series[0][1][0]
        ax.plot(first["years"], first["observed"], "k-", lw=1.2, label="observed")
        for point, saved in series:
            _forecast_curves(ax, first["years"], saved, point, ("1 year ahead", "{} years ahead"))
        ax.set_title(runs[name].read_summary()["model"], fontsize=10)
        ax.set_ylim(-30, 260)
        ax.grid(True, alpha=0.3)
    axes[-1].axis("off")
    axes[-3].xaxis.set_tick_params(labelbottom=True)  # above the empty panel
    axes[0].legend(fontsize=8, loc="upper left")
    axes[-2].set_xlabel("year")
    fig.tight_layout()
    plots.save(fig, path)


def sunspots_table(summaries: list[dict[str, Any]]) -> str:
    """RMSE in sunspot counts of the k-step forecasts of the test years, every model beside persistence
    (of several seeds, ``mean ± std (n)``).

    Persistence, ``x^_s = x_{s-k}``, is computed from the data, on the test
    years of the first run's config.
    """
    ks = sorted({int(k.split("_k")[1]) for s in summaries for k in s["metrics"] if k.startswith("eval_rmse_k")})
    data = sunspots.Data(**RunDir(summaries[0]["folder"]).read_config()["data"])
    x, split = sunspots.observations().counts[: len(sunspots.series(data).values)], sunspots.training_years(data)
    test = np.arange(split, len(x))
    persistence = [float(np.sqrt(np.mean((x[test] - x[test - k]) ** 2))) for k in ks]
    rows = ["| model | " + " | ".join(f"k = {k}" for k in ks) + " |", "| --- |" + " ---: |" * len(ks),
            "| persistence (`x^_s = x_{s-k}`) | " + " | ".join(f"{v:.1f}" for v in persistence) + " |"]
    for s in summaries:
        if not any(f"eval_rmse_k{k}" in s["metrics"] for k in ks):  # diverged: no forecasts
            continue
        units = f" ({s['hidden_size']} units)" if s.get("hidden_size") else ""
        rmses = " | ".join(results.cell(s, f"eval_rmse_k{k}", ".1f") for k in ks)
        rows.append(f"| {s['model']}{units}{results.point_text(s)}{results.diverged_text(s)} | " + rmses + " |")
    return "\n".join(rows) + "\n"


# --- gradient_flow -----------------------------------------------------------------------------------------


def gradient_flow_run(config: Config, folder: RunDir) -> None:
    """The adding problem's figures, and ``state_gradients.png``: ``||ds_T/ds_{T-k}||`` against ``k`` (of several
    seeds, the geometric mean and the min-max band)."""
    adding_run(config, folder)
    _before_and_after(folder, "state_gradients.npz", lambda saved, n: saved["k"],
                      {"init": "init", "trained": "trained"}, ("distance k = T - t (steps)", "||ds_T / ds_{T-k}||"),
                      f"{config.name}: {config.model.label}, T = {config.data.seq_len}", "state_gradients.png")


GRADIENT_FLOW_MODELS = ("gradient_flow_rnn_r0.5", "gradient_flow_rnn_r1.0", "gradient_flow_rnn_r1.5",
                        "gradient_flow_irnn", "gradient_flow_lstm", "gradient_flow_gru")
CLIPPING = ("gradient_flow_rnn_r1.5", "gradient_flow_rnn_r1.5_noclip")


def draw_gradient_flow(runs: dict[str, RunDir], path: Path) -> None:
    """``||ds_T/ds_{T-k}||`` against ``k`` for every model, at initialisation and after training (of several
    seeds, the geometric mean over them and their min-max band)."""
    fig = plots.figure((11, 4.2))
    axes = fig.subplots(1, 2, sharey=True)
    for name in GRADIENT_FLOW_MODELS:
        model = runs[name].read_summary()["model"]
        for point, saved in _arrays(runs[name], "state_gradients.npz"):
            for ax, curve in zip(axes, ("init", "trained")):
                plots.mean_curve(ax, saved[0]["k"], np.stack([s[curve] for s in saved], axis=1),
                                 label=_named(model, point), band=_band(len(saved)), geometric=True)
    for ax, title in zip(axes, ("at initialisation", "after training on the adding problem")):
        ax.set_yscale("log")
        ax.set_xlabel("distance k = T - t (steps)")
        ax.set_title(title)
        ax.grid(True, which="major", alpha=0.3)
    axes[0].set_ylabel("||ds_T / ds_{T-k}||, geometric mean")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    plots.save(fig, path)


def draw_clipping(runs: dict[str, RunDir], path: Path) -> None:
    """The exploding RNN's training loss with and without clipping, side by side, on the same seeds (of several,
    the mean and the min-max band)."""
    fig = plots.figure((11, 4.0))
    axes = fig.subplots(1, 2, sharey=True)
    for ax, name in zip(axes, CLIPPING):
        run = runs[name]
        records = run.records()
        for point, replicas in _series(run):
            plots.curve(ax, records, "loss", label=_named("training loss", point), band=_band(len(replicas)),
                        replicas=replicas, lw=1)
        clip = run.read_config()["optim"]["clip_norm"]
        ax.set_title(("no clipping" if clip is None else f"clipped at global norm {clip}") + f":\n{run.outcome()}",
                     fontsize=10)
        ax.axhline(BASELINE_MSE, color="k", ls="--", lw=1, label="baseline 1/6")
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.grid(True, which="major", alpha=0.3)
    axes[0].set_ylabel("MSE")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    plots.save(fig, path)


def gradient_flow_table(summaries: list[dict[str, Any]]) -> str:
    """The per-step factor of ``||ds_T/ds_{T-k}||`` before and after training, and whether the task was solved
    (of several seeds, ``mean ± std (n)``, and how many solved it)."""
    rows = ["| model | per-step factor at init | after training | eval MSE | solved |",
            "| --- | ---: | ---: | ---: | --- |"]
    for s in summaries:
        m = s["metrics"]
        if "eval_decay_rate" not in m:
            continue
        clip = "" if s.get("clip_norm", 1.0) is not None else " (no clipping)"
        if "spread" in s:
            solved = s["spread"]["eval_solved"]
            solved = f"{round(solved['mean'] * solved['n'])} of {solved['n']}"
        else:
            solved = "yes" if m["eval_solved"] else "no"
        rows.append(f"| {s['model']}{clip}{results.point_text(s)}{results.diverged_text(s)} | "
                    f"{results.cell(s, 'eval_decay_rate_init', '.3f')} | {results.cell(s, 'eval_decay_rate', '.3f')} | "
                    f"{results.cell(s, 'eval_loss', '.2e')} | {solved} |")
    return "\n".join(rows) + "\n"


# --- charlm ------------------------------------------------------------------------------------------------


def charlm_table(summaries: list[dict[str, Any]]) -> str:
    """Validation bits per character of each model (of several seeds, ``mean ± std (n)``), its size, the unigram
    baseline, the start of its sample (of several seeds, the first one's)."""
    rows = ["| model | parameters | validation BPC | unigram BPC | steps | sample (temperature 0.7) |",
            "| --- | ---: | ---: | ---: | ---: | --- |"]
    for s in summaries:
        m = s["metrics"]
        if "eval_bpc" not in m:
            continue
        finished = [r for r in s.get("replicas", ()) if r.get("metrics")]
        folder = Path(s["folder"]) / finished[0]["name"] if finished else Path(s["folder"])
        start = folder / "sample.txt"
        text = start.read_text(encoding="utf-8")[:80] if start.exists() else ""
        text = text.replace("|", "\\|").replace("\n", "⏎").replace("`", "'")
        whose = f" (seed {finished[0]['seed']})" if "spread" in s and finished else ""
        units = f" ({s['num_layers']} x {s['hidden_size']})"
        rows.append(f"| {s['model']}{units}{results.point_text(s)}{results.diverged_text(s)} | "
                    f"{s.get('parameters', 0):,} | {results.cell(s, 'eval_bpc', '.3f')} | "
                    f"{m.get('eval_unigram_bpc', float('nan')):.3f} | {s['steps']} | `{text}`{whose} |")
    return "\n".join(rows) + "\n"


REPORTS: dict[str, Report] = {
    "adding": Report(run=adding_run, figures=(Figure("adding.png", ADDING_CURVES, draw_adding_curves),)),
    "copying": Report(run=copying_run),
    "sunspots": Report(run=sunspots_run, table=sunspots_table,
                       figures=(Figure("sunspots.png", SUNSPOT_MODELS, draw_sunspot_forecasts),)),
    "gradient_flow": Report(run=gradient_flow_run, table=gradient_flow_table,
                            figures=(Figure("gradient_flow.png", GRADIENT_FLOW_MODELS, draw_gradient_flow),
                                     Figure("clipping.png", CLIPPING, draw_clipping))),
    "charlm": Report(table=charlm_table),
}
