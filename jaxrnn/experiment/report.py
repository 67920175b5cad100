"""What is shown of an experiment's runs: each run's own figures, and the README's tables and figures.

An experiment's problem trains and measures; its report only draws, and only
from run folders -- the records, the summaries and the arrays the problem's
``analysis`` saved -- never from a live model, so every figure and table can
be made again from the folders alone. The shipped reports are registered by
experiment name in ``jaxrnn.experiments.REPORTS`` (:func:`jaxrnn.experiment.catalog.reports`);
an experiment without one shows its loss curves only (which the runner draws).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, NamedTuple

from jaxrnn.experiment.rundir import RunDir
from jaxrnn.experiment.schema import Config


class Figure(NamedTuple):
    """A figure of the README, drawn from the run folders of shipped configs (``jaxrnn table --figures DIR``).

    Attributes:
      name: its file name, e.g. ``gradient_flow.png``.
      needs: the config names whose runs it draws.
      draw: ``draw(runs, path)``, ``runs`` the run folders by config name.
    """

    name: str
    needs: tuple[str, ...]
    draw: Callable[[dict[str, RunDir], Path], None]


class Report(NamedTuple):
    """What is shown of one experiment's runs.

    Attributes:
      run: ``run(config, folder)``: the figures of one run (PNG files in its
        folder), drawn by the runner after training and the problem's
        ``analysis``; or ``None``.
      table: ``table(summaries) -> markdown``: the experiment's own table of
        its runs, for the block ``<!-- <name>:start -->`` ... ``<!-- <name>:end -->``
        of a README (``jaxrnn table --into``); or ``None``. Each summary is a
        run's ``summary.json`` with its ``folder``.
      figures: the README's figures drawn from the experiment's runs.
    """

    run: Callable[[Config, RunDir], None] | None = None
    table: Callable[[list[dict[str, Any]]], str] | None = None
    figures: tuple[Figure, ...] = ()
