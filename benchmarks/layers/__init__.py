"""One recurrent layer per framework, written as that framework's users write it.

Each module here has ``build(cell, shape, mode, dtype, xs) -> Case`` and
``unavailable() -> str | None`` (why the framework cannot run here, or ``None``).
``xs`` is one shared array of inputs, time-major ``(T, B, I)`` float32 numpy; a
layer moves it into its framework's default layout and dtype before timing.

* ``train``: one forward + backward step of one layer, loss = mean(outputs**2),
  gradients with respect to the parameters *and* the inputs (as a layer inside a
  deeper network needs them);
* ``infer``: forward only, returning the outputs of every step.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from benchmarks.shapes import Shape
from benchmarks.timing import Case

CELLS = ("lstm", "gru", "rnn")
MODES = ("train", "infer")
DTYPES = ("float32", "bfloat16")

# Table order: jaxrnn first, the peers after it.
FRAMEWORKS: dict[str, str] = {
    "jaxrnn": "benchmarks.layers.jaxrnn_layer",
    "jaxrnn plain": "benchmarks.layers.jaxrnn_plain_layer",
    "Flax": "benchmarks.layers.flax_layer",
    "PyTorch": "benchmarks.layers.torch_layer",
    "jax.experimental.rnn": "benchmarks.layers.cudnn_layer",
}
REFERENCE = "jaxrnn"


class Unavailable(Exception):
    """This framework cannot run this case here (not installed, no GPU, no such cell)."""


def module(framework: str) -> ModuleType:
    return importlib.import_module(FRAMEWORKS[framework])


def unavailable(framework: str) -> str | None:
    """Why ``framework`` cannot run on this machine, or ``None`` if it can."""
    try:
        return module(framework).unavailable()
    except ImportError as error:
        return f"not importable ({error})"


def build(framework: str, cell: str, shape: Shape, mode: str, dtype: str, xs, scan_options=None) -> Case:
    """``framework``'s case; ``scan_options`` (keyword arguments of ``jaxrnn.scan``) apply to jaxrnn only."""
    if cell not in CELLS or mode not in MODES or dtype not in DTYPES:
        raise ValueError(f"unknown cell/mode/dtype {cell!r}/{mode!r}/{dtype!r}")
    if framework == REFERENCE:
        return module(framework).build(cell, shape, mode, dtype, xs, scan_options or {})
    return module(framework).build(cell, shape, mode, dtype, xs)
