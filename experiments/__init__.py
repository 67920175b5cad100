"""The experiments jaxrnn ships, registered by name (installed as ``jaxrnn.experiments``).

Each module defines ``EXPERIMENT``, a :class:`~jaxrnn.experiment.problem.Experiment`
value: its ``data`` section's schema and how a config becomes a problem to
train. A new experiment is one module here, one line below, and its configs in
``configs/``.
"""

from jaxrnn.experiment.problem import Experiment
from jaxrnn.experiments import adding, charlm, copying, digits, gradient_flow, sunspots

EXPERIMENTS: dict[str, Experiment] = {
    e.name: e for e in (adding.EXPERIMENT, copying.EXPERIMENT, sunspots.EXPERIMENT, gradient_flow.EXPERIMENT,
                        charlm.EXPERIMENT, digits.EXPERIMENT)
}
