"""jaxrnn: recurrent neural networks as pure JAX functions.

A :class:`Cell` is three pure functions (``init``, ``initial_carry``,
``step``); :func:`scan` lifts any part (a cell, a :func:`stack`, a
:func:`bidirectional` layer) over time with ``lax.scan``; ``jit``, ``grad`` and
``vmap`` compose with everything; :mod:`jaxrnn.training` trains it with Optax.

This package needs only jax, numpy and optax. The experiment app (YAML configs,
the runner, checkpoints, plots, the ``jaxrnn`` command) is :mod:`jaxrnn.experiment`.
"""

from jaxrnn.cells.activations import ACTIVATIONS
from jaxrnn.cells.elman import irnn, rnn
from jaxrnn.cells.gru import gru
from jaxrnn.cells.lstm import lstm
from jaxrnn.cells.mingru import mingru
from jaxrnn.cells.minlstm import minlstm
from jaxrnn.layers.bidirectional import bidirectional
from jaxrnn.layers.linear import linear
from jaxrnn.layers.stack import stack
from jaxrnn.loop import scan
from jaxrnn.parts import Cell, Layer, Parallel, Pointwise, SplitStep
from jaxrnn.layers.embedding import embedding
from jaxrnn.training import TrainState, carried_step, train_step, truncated_bptt_step

from jaxrnn import (autoregressive, datasets, gradient_flow, interop, language, linear_recurrence, models,  # isort: skip
                    tasks, training)
from jaxrnn.vocabulary import Vocabulary  # noqa: E402  isort: skip

__all__ = [
    "ACTIVATIONS",
    "Cell",
    "Layer",
    "Parallel",
    "Pointwise",
    "SplitStep",
    "TrainState",
    "Vocabulary",
    "autoregressive",
    "bidirectional",
    "carried_step",
    "datasets",
    "embedding",
    "gradient_flow",
    "gru",
    "interop",
    "irnn",
    "linear",
    "language",
    "linear_recurrence",
    "lstm",
    "mingru",
    "minlstm",
    "models",
    "rnn",
    "scan",
    "stack",
    "tasks",
    "train_step",
    "training",
    "truncated_bptt_step",
]
__version__ = "0.1.0"
