"""jaxrnn: recurrent neural networks as pure JAX functions.

A :class:`Cell` is three pure functions (``init``, ``initial_carry``,
``step``); :func:`scan` lifts any part (a cell, a :func:`stack`, a
:func:`bidirectional` layer) over time with ``lax.scan``; ``jit``, ``grad`` and
``vmap`` compose with everything; :mod:`jaxrnn.training` trains it with Optax.

This package needs only jax, numpy and optax. The experiment app (YAML configs,
the runner, checkpoints, plots, the ``jaxrnn`` command) is :mod:`jaxrnn.experiment`.

The names below are loaded on first use (PEP 562), so ``import jaxrnn`` is
quick and the ``jaxrnn`` command can handle Ctrl-C before JAX is imported.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import TYPE_CHECKING, Any

# Each public name and the module that defines it; the modules exported as themselves.
_NAMES = {
    "ACTIVATIONS": "jaxrnn.cells.activations",
    "Cell": "jaxrnn.parts",
    "Layer": "jaxrnn.parts",
    "Parallel": "jaxrnn.parts",
    "Pointwise": "jaxrnn.parts",
    "SplitStep": "jaxrnn.parts",
    "TrainState": "jaxrnn.training",
    "Vocabulary": "jaxrnn.vocabulary",
    "bidirectional": "jaxrnn.layers.bidirectional",
    "carried_step": "jaxrnn.training",
    "embedding": "jaxrnn.layers.embedding",
    "gru": "jaxrnn.cells.gru",
    "irnn": "jaxrnn.cells.elman",
    "linear": "jaxrnn.layers.linear",
    "lstm": "jaxrnn.cells.lstm",
    "mingru": "jaxrnn.cells.mingru",
    "minlstm": "jaxrnn.cells.minlstm",
    "rnn": "jaxrnn.cells.elman",
    "scan": "jaxrnn.loop",
    "stack": "jaxrnn.layers.stack",
    "train_step": "jaxrnn.training",
    "truncated_bptt_step": "jaxrnn.training",
}
_MODULES = ("autoregressive", "datasets", "gradient_flow", "interop", "language", "linear_recurrence", "models",
            "tasks", "training")

__all__ = sorted([*_NAMES, *_MODULES])
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name not in _NAMES:  # a module of the package (jaxrnn.models, jaxrnn.loop, ...), imported on first use
        if not name.startswith("_") and importlib.util.find_spec(f"jaxrnn.{name}") is not None:
            return importlib.import_module(f"jaxrnn.{name}")
        raise AttributeError(f"module 'jaxrnn' has no attribute {name!r}")
    value = getattr(importlib.import_module(_NAMES[name]), name)
    globals()[name] = value  # once loaded, an ordinary attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


if TYPE_CHECKING:  # what the lazy names are, for type checkers and editors
    from jaxrnn import (
        autoregressive,
        datasets,
        gradient_flow,
        interop,
        language,
        linear_recurrence,
        models,
        tasks,
        training,
    )
    from jaxrnn.cells.activations import ACTIVATIONS
    from jaxrnn.cells.elman import irnn, rnn
    from jaxrnn.cells.gru import gru
    from jaxrnn.cells.lstm import lstm
    from jaxrnn.cells.mingru import mingru
    from jaxrnn.cells.minlstm import minlstm
    from jaxrnn.layers.bidirectional import bidirectional
    from jaxrnn.layers.embedding import embedding
    from jaxrnn.layers.linear import linear
    from jaxrnn.layers.stack import stack
    from jaxrnn.loop import scan
    from jaxrnn.parts import Cell, Layer, Parallel, Pointwise, SplitStep
    from jaxrnn.training import TrainState, carried_step, train_step, truncated_bptt_step
    from jaxrnn.vocabulary import Vocabulary
