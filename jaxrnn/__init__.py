"""jaxrnn: recurrent neural networks as pure JAX functions.

A :class:`Cell` is three pure functions (``init``, ``initial_carry``,
``step``); :func:`scan` lifts a cell over time with ``lax.scan``; ``jit``,
``grad`` and ``vmap`` compose with everything.
"""

from jaxrnn import interop
from jaxrnn.cells.activations import ACTIVATIONS
from jaxrnn.cells.base import Cell, SplitStep
from jaxrnn.cells.elman import rnn
from jaxrnn.cells.gru import gru
from jaxrnn.cells.lstm import lstm
from jaxrnn.deep import stack
from jaxrnn.directions import Layer, bidirectional
from jaxrnn.unroll import scan

# The lecture's sequence models and the tools around them (after the cells: ``models`` builds on them).
from jaxrnn import autoregressive, datasets, gradient_flow, models  # noqa: E402  isort: skip

__all__ = [
    "ACTIVATIONS",
    "Cell",
    "Layer",
    "SplitStep",
    "autoregressive",
    "bidirectional",
    "datasets",
    "gradient_flow",
    "gru",
    "interop",
    "lstm",
    "models",
    "rnn",
    "scan",
    "stack",
]
__version__ = "0.1.0"
