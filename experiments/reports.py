"""What the experiments show of their runs: each run's figures, and the README's tables and figures.

Every function here draws from run folders only -- the records, the summaries
and the arrays an experiment's ``analysis`` saved (``predictions.npz``,
``forecasts.npz``, ...) -- so a figure is made again without training again
(:mod:`jaxrnn.experiment.report`). :data:`REPORTS` registers them by
experiment name; ``digits`` has none (its loss curves are the runner's).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from jaxrnn.experiment import plots
from jaxrnn.experiment.report import Figure, Report
from jaxrnn.experiment.rundir import RunDir
from jaxrnn.experiment.schema import Config
from jaxrnn.experiments import sunspots
from jaxrnn.tasks.adding import BASELINE_MSE

# --- adding ------------------------------------------------------------------------------------------------


def adding_run(config: Config, folder: RunDir) -> None:
    """``predictions.png``: the answers against the true sums of the evaluation batch; ``gradient_flow.png``:
    ``|dy/dx_t|`` against ``t`` on a log scale (the geometric mean over the batch), before and after training."""
    setting = f"{config.model.label}, T = {config.data.seq_len}"
    saved = np.load(folder.path / "predictions.npz")
    fig, ax = plots.axes((4.5, 4.5), (0.15, 0.96, 0.12, 0.92))
    ax.scatter(saved["target"].ravel(), saved["predicted"].ravel(), s=6, alpha=0.6)
    ax.plot([0, 2], [0, 2], "k--", lw=1)
    ax.axhline(1.0, color="grey", lw=0.8, ls=":", label="baseline answer 1")
    ax.set_xlabel("true sum")
    ax.set_ylabel("predicted sum")
    ax.set_title(f"{config.name}: {setting}")
    ax.legend()
    plots.save(fig, folder.path / "predictions.png")

    curves = np.load(folder.path / "input_gradients.npz")
    fig, ax = plots.axes(margins=(0.13, 0.97, 0.12, 0.92))
    for label, curve in (("at initialisation", curves["init"]),
                         (f"after {config.train.steps} steps", curves["trained"])):
        ax.plot(np.arange(1, len(curve) + 1), curve, label=label)
    ax.set_yscale("log")
    ax.set_xlabel("step t")
    ax.set_ylabel("|dy/dx_t|, geometric mean")
    ax.set_title(f"{config.name}: gradient reaching each step ({setting})")
    ax.legend()
    plots.save(fig, folder.path / "gradient_flow.png")


ADDING_CURVES = tuple(f"adding_t{T}_{cell}" for T in (50, 200) for cell in ("rnn", "lstm", "gru"))


def draw_adding_curves(runs: dict[str, RunDir], path: Path) -> None:
    """The evaluation MSE of the rnn, lstm and gru against the training step, on one axis for each T."""
    fig = plots.figure((11, 4.0))
    axes = fig.subplots(1, 2, sharey=True)
    for ax, T in zip(axes, (50, 200)):
        for cell in ("rnn", "lstm", "gru"):
            run = runs[f"adding_t{T}_{cell}"]
            points = [(r["step"], r["eval_loss"]) for r in run.records() if "eval_loss" in r]
            ax.plot(*zip(*points), "o-", ms=2, lw=1.2, label=run.read_summary()["model"])
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
    """``accuracy.png``: the fraction of recalled symbols right at each evaluation."""
    plots.metric_curve(folder.records(), "eval_accuracy", folder.path / "accuracy.png",
                       title=f"{config.name}: recalled symbols right")


# --- sunspots ----------------------------------------------------------------------------------------------


def sunspots_run(config: Config, folder: RunDir) -> None:
    """``forecasts.png``: the test years (and the 20 before) with the 1-step and the ``horizon``-step forecasts."""
    saved = np.load(folder.path / "forecasts.npz")
    test_years, forecasts = saved["years"], saved["forecasts"]
    horizon = forecasts.shape[1]
    years, counts = sunspots.observations()
    shown = (years >= test_years[0] - 20) & (years <= test_years[-1])
    fig, ax = plots.axes((8, 3.8), (0.09, 0.98, 0.13, 0.9))
    ax.plot(years[shown], counts[shown], "k-", lw=1.2, label="observed")
    ax.plot(test_years, forecasts[:, 0], "-", lw=1, label="1-step forecast")
    ax.plot(test_years, forecasts[:, -1], "-", lw=1, label=f"{horizon}-step forecast")
    ax.axvline(test_years[0] - 0.5, color="grey", lw=0.8, ls=":")
    ax.set_xlabel("year")
    ax.set_ylabel("sunspot number")
    ax.set_title(f"{config.name}: {config.model.label}, test years {test_years[0]}-{test_years[-1]}")
    ax.legend(loc="upper left", fontsize=8)
    plots.save(fig, folder.path / "forecasts.png")


SUNSPOT_MODELS = ("sunspots_markov", "sunspots_ar8", "sunspots_ar8_mlp", "sunspots_naive", "sunspots_rnn",
                  "sunspots_lstm", "sunspots_gru")


def draw_sunspot_forecasts(runs: dict[str, RunDir], path: Path) -> None:
    """Each model's 1-step and longest forecasts of the test years against the observed numbers."""
    fig = plots.figure((12, 8.5))
    axes = fig.subplots(4, 2, sharex=True, sharey=True).ravel()
    for ax, name in zip(axes, SUNSPOT_MODELS):
        saved = np.load(runs[name].path / "forecasts.npz")
        horizon = saved["forecasts"].shape[1]
        ax.plot(saved["years"], saved["observed"], "k-", lw=1.2, label="observed")
        ax.plot(saved["years"], saved["forecasts"][:, 0], lw=1, label="1 year ahead")
        ax.plot(saved["years"], saved["forecasts"][:, -1], lw=1, label=f"{horizon} years ahead")
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
    """RMSE in sunspot counts of the k-step forecasts of the test years, every model beside persistence.

    Persistence, ``x^_s = x_{s-k}``, is computed from the data, on the test
    years of the first run's config.
    """
    ks = sorted(int(k.split("_k")[1]) for k in summaries[0]["metrics"] if k.startswith("eval_rmse_k"))
    data = sunspots.Data(**RunDir(summaries[0]["folder"]).read_config()["data"])
    x, split = sunspots.observations().counts[: len(sunspots.series(data).values)], sunspots.training_years(data)
    test = np.arange(split, len(x))
    persistence = [float(np.sqrt(np.mean((x[test] - x[test - k]) ** 2))) for k in ks]
    rows = ["| model | " + " | ".join(f"k = {k}" for k in ks) + " |", "| --- |" + " ---: |" * len(ks),
            "| persistence (`x^_s = x_{s-k}`) | " + " | ".join(f"{v:.1f}" for v in persistence) + " |"]
    for s in summaries:
        if s.get("diverged"):
            continue
        units = f" ({s['hidden_size']} units)" if s.get("hidden_size") else ""
        rmses = " | ".join(f"{s['metrics'][f'eval_rmse_k{k}']:.1f}" for k in ks)
        rows.append(f"| {s['model']}{units} | " + rmses + " |")
    return "\n".join(rows) + "\n"


# --- gradient_flow -----------------------------------------------------------------------------------------


def gradient_flow_run(config: Config, folder: RunDir) -> None:
    """The adding problem's figures, and ``state_gradients.png``: ``||ds_T/ds_{T-k}||`` against ``k``."""
    adding_run(config, folder)
    saved = np.load(folder.path / "state_gradients.npz")
    fig, ax = plots.axes(margins=(0.13, 0.97, 0.12, 0.92))
    for name in ("init", "trained"):
        curve = saved[name]
        ax.plot(saved["k"], np.where(curve > 0, curve, np.nan), label=name)
    ax.set_yscale("log")
    ax.set_xlabel("distance k = T - t (steps)")
    ax.set_ylabel("||ds_T / ds_{T-k}||")
    ax.set_title(f"{config.name}: {config.model.label}, T = {config.data.seq_len}")
    ax.legend()
    plots.save(fig, folder.path / "state_gradients.png")


GRADIENT_FLOW_MODELS = ("gradient_flow_rnn_r0.5", "gradient_flow_rnn_r1.0", "gradient_flow_rnn_r1.5",
                        "gradient_flow_irnn", "gradient_flow_lstm", "gradient_flow_gru")
CLIPPING = ("gradient_flow_rnn_r1.5", "gradient_flow_rnn_r1.5_noclip")


def draw_gradient_flow(runs: dict[str, RunDir], path: Path) -> None:
    """``||ds_T/ds_{T-k}||`` against ``k`` for every model, at initialisation and after training."""
    fig = plots.figure((11, 4.2))
    axes = fig.subplots(1, 2, sharey=True)
    for name in GRADIENT_FLOW_MODELS:
        saved = np.load(runs[name].path / "state_gradients.npz")
        label = runs[name].read_summary()["model"]
        for ax, curve in zip(axes, (saved["init"], saved["trained"])):
            ax.plot(saved["k"], np.where(curve > 0, curve, np.nan), label=label)
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
    """The exploding RNN's training loss with and without clipping, side by side, on the same seed."""
    fig = plots.figure((11, 4.0))
    axes = fig.subplots(1, 2, sharey=True)
    for ax, name in zip(axes, CLIPPING):
        run = runs[name]
        train = [(r["step"], r["loss"]) for r in run.records() if "loss" in r]
        ax.plot(*zip(*train), lw=1, label="training loss")
        clip = run.read_config()["optim"]["clip_norm"]
        ax.set_title(("no clipping" if clip is None else f"clipped at global norm {clip}") + f": {run.outcome()}",
                     fontsize=10)
        ax.axhline(BASELINE_MSE, color="k", ls="--", lw=1, label="baseline 1/6")
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.grid(True, which="major", alpha=0.3)
    axes[0].set_ylabel("MSE")
    axes[0].legend()
    fig.tight_layout()
    plots.save(fig, path)


def gradient_flow_table(summaries: list[dict[str, Any]]) -> str:
    """The per-step factor of ``||ds_T/ds_{T-k}||`` before and after training, and whether the task was solved."""
    rows = ["| model | per-step factor at init | after training | eval MSE | solved |",
            "| --- | ---: | ---: | ---: | --- |"]
    for s in summaries:
        m = s["metrics"]
        if "eval_decay_rate" not in m:
            continue
        clip = "" if s.get("clip_norm", 1.0) is not None else " (no clipping)"
        rows.append(f"| {s['model']}{clip} | {m['eval_decay_rate_init']:.3f} | {m['eval_decay_rate']:.3f} | "
                    f"{m['eval_loss']:.2e} | {'yes' if m['eval_solved'] else 'no'} |")
    return "\n".join(rows) + "\n"


# --- charlm ------------------------------------------------------------------------------------------------


def charlm_table(summaries: list[dict[str, Any]]) -> str:
    """Validation bits per character of each model, its size, the unigram baseline, the start of its sample."""
    rows = ["| model | parameters | validation BPC | unigram BPC | steps | sample (temperature 0.7) |",
            "| --- | ---: | ---: | ---: | ---: | --- |"]
    for s in summaries:
        m = s["metrics"]
        if "eval_bpc" not in m:
            continue
        start = Path(s["folder"]) / "sample.txt"
        text = start.read_text(encoding="utf-8")[:80] if start.exists() else ""
        text = text.replace("|", "\\|").replace("\n", "⏎").replace("`", "'")
        units = f" ({s['num_layers']} x {s['hidden_size']})"
        rows.append(f"| {s['model']}{units} | {s.get('parameters', 0):,} | {m['eval_bpc']:.3f} | "
                    f"{m.get('eval_unigram_bpc', float('nan')):.3f} | {s['steps']} | `{text}` |")
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
