"""The experiments jaxrnn ships, registered by name (installed as ``jaxrnn.experiments``).

Each experiment module defines ``EXPERIMENT``, a
:class:`~jaxrnn.experiment.problem.Experiment` value: its ``data`` section's
schema and how a config becomes a problem to train. :mod:`.reports` holds
what is drawn of their runs (each run's figures, the README's tables and
figures), by experiment name. A new experiment is one module here, one line
below, and its configs in ``configs/``; its figures, if any, one entry in
``REPORTS``.
"""

from jaxrnn.experiment.problem import Experiment
from jaxrnn.experiment.report import Report
from jaxrnn.experiments import adding, charlm, copying, digits, gradient_flow, reports, sunspots

EXPERIMENTS: dict[str, Experiment] = {
    e.name: e for e in (adding.EXPERIMENT, copying.EXPERIMENT, sunspots.EXPERIMENT, gradient_flow.EXPERIMENT,
                        charlm.EXPERIMENT, digits.EXPERIMENT)
}
REPORTS: dict[str, Report] = reports.REPORTS
