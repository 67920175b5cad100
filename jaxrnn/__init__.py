"""jaxrnn: recurrent neural networks as pure JAX functions.

Every part -- a cell (:func:`lstm`, :func:`gru`, ...), a readout
(:func:`linear`), an :func:`embedding`, a :func:`stack`, a
:func:`bidirectional` layer -- is a :class:`Part`: ``init``,
``initial_carry``, an optional one-step ``step`` and an optional
whole-sequence ``sequence``, pure functions over pytrees. :func:`scan` runs
any part over a sequence; ``jit``, ``grad`` and ``vmap`` compose with
everything. The modules hold the rest: :mod:`jaxrnn.models`,
:mod:`jaxrnn.language`, :mod:`jaxrnn.training` (Optax), :mod:`jaxrnn.interop`
(PyTorch), :mod:`jaxrnn.gradient_flow`, :mod:`jaxrnn.autoregressive`, ...

This package needs only jax, numpy and optax. The experiment app (YAML configs,
the runner, checkpoints, plots, the ``jaxrnn`` command) is :mod:`jaxrnn.experiment`.

The names below are loaded on first use (PEP 562), so ``import jaxrnn`` is
quick and the ``jaxrnn`` command can handle Ctrl-C before JAX is imported.
"""

from __future__ import annotations

import importlib
import importlib.util
import warnings
from typing import TYPE_CHECKING, Any

# Each public name and the module that defines it.
_NAMES = {
    "Info": "jaxrnn.parts",
    "LSTMState": "jaxrnn.cells.lstm",
    "Model": "jaxrnn.parts",
    "Part": "jaxrnn.parts",
    "bidirectional": "jaxrnn.layers.bidirectional",
    "describe": "jaxrnn.parts",
    "embedding": "jaxrnn.layers.embedding",
    "get_layer_carry": "jaxrnn.layers.layer_carry",
    "gru": "jaxrnn.cells.gru",
    "irnn": "jaxrnn.cells.elman",
    "linear": "jaxrnn.layers.linear",
    "lstm": "jaxrnn.cells.lstm",
    "mingru": "jaxrnn.cells.mingru",
    "minlstm": "jaxrnn.cells.minlstm",
    "rnn": "jaxrnn.cells.elman",
    "scan": "jaxrnn.loop",
    "set_layer_carry": "jaxrnn.layers.layer_carry",
    "stack": "jaxrnn.layers.stack",
}
# The public modules, imported on first use as jaxrnn.<name>.
_MODULES = ("autoregressive", "datasets", "gradient_flow", "interop", "language", "linear_recurrence", "loop",
            "models", "onednn", "parts", "split", "tasks", "training", "vocabulary")
# Names of earlier releases: each still works, with a DeprecationWarning naming the one to use.
_MOVED = {
    "ACTIVATIONS": ("jaxrnn.cells.activations", "ACTIVATIONS", "a name table of the experiment configs"),
    "Cell": ("jaxrnn.parts", "Part", "jaxrnn.Part: every part is one type now"),
    "Layer": ("jaxrnn.parts", "_layer", "jaxrnn.Part(init, initial_carry, sequence=apply)"),
    "TrainState": ("jaxrnn.training", "TrainState", "jaxrnn.training.TrainState"),
    "Vocabulary": ("jaxrnn.vocabulary", "Vocabulary", "jaxrnn.vocabulary.Vocabulary"),
    "carried_step": ("jaxrnn.training", "carried_step", "jaxrnn.training.carried_step"),
    "train_step": ("jaxrnn.training", "train_step", "jaxrnn.training.train_step"),
    "truncated_bptt_step": ("jaxrnn.training", "truncated_bptt_step", "jaxrnn.training.truncated_bptt_step"),
}

__all__ = sorted([*_NAMES, *_MODULES])
__version__ = "0.2.0"


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        module, attribute, instead = _MOVED[name]
        warnings.warn(f"jaxrnn.{name} is deprecated and will be removed; use {instead}", DeprecationWarning,
                      stacklevel=2)
        return getattr(importlib.import_module(module), attribute)
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
        loop,
        models,
        onednn,
        parts,
        split,
        tasks,
        training,
        vocabulary,
    )
    from jaxrnn.cells.elman import irnn, rnn
    from jaxrnn.cells.gru import gru
    from jaxrnn.cells.lstm import LSTMState, lstm
    from jaxrnn.cells.mingru import mingru
    from jaxrnn.cells.minlstm import minlstm
    from jaxrnn.layers.bidirectional import bidirectional
    from jaxrnn.layers.embedding import embedding
    from jaxrnn.layers.layer_carry import get_layer_carry, set_layer_carry
    from jaxrnn.layers.linear import linear
    from jaxrnn.layers.stack import stack
    from jaxrnn.loop import scan
    from jaxrnn.parts import Info, Model, Part, describe
