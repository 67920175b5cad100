"""Everything the app builds from a name: cells, optimisers, learning-rate schedules.

The one place a config's ``model.cell``, ``optim.name`` and ``optim.schedule``
are looked up (experiments have their own registry, ``jaxrnn.experiments``).
A new cell is one file in ``jaxrnn/cells/`` and one entry in :data:`CELLS`; a
new optimiser or schedule one entry here. The config's allowed names, the
``jaxrnn list`` and results-table labels and the tests read these tables.

A cell's ``options`` names keys of the ``model`` section that reach its
factory when set; :data:`CELL_OPTIONS` gives each its type (the schema makes
it a key) and its label. A cell with a new option adds it there too.
"""

from __future__ import annotations

from typing import Annotated, Any, Callable, NamedTuple

import optax
from pydantic import Field

import jaxrnn
from jaxrnn.experiment.fields import Int, PositiveFloat


class CellEntry(NamedTuple):
    """A cell factory ``factory(hidden_size, **options) -> Cell`` and the option keys it takes."""

    factory: Callable[..., jaxrnn.Part]
    options: tuple[str, ...] = ()


CELLS: dict[str, CellEntry] = {
    "rnn": CellEntry(jaxrnn.rnn, options=("spectral_radius",)),
    "lstm": CellEntry(jaxrnn.lstm, options=("chrono",)),
    "gru": CellEntry(jaxrnn.gru),
    "irnn": CellEntry(jaxrnn.irnn, options=("spectral_radius",)),
    "mingru": CellEntry(jaxrnn.mingru),
    "minlstm": CellEntry(jaxrnn.minlstm),
}

class CellOption(NamedTuple):
    """A key of the ``model`` section that reaches a cell's factory: its type and how it shows in a label."""

    type: Any
    label: str  # "{}" stands for the value: "chrono({})" -> "lstm chrono(70)"


CELL_OPTIONS: dict[str, CellOption] = {
    "chrono": CellOption(Annotated[Int, Field(gt=2)], "chrono({})"),
    "spectral_radius": CellOption(PositiveFloat, "radius {}"),
}

# name -> factory(learning_rate, *, momentum, weight_decay)
OPTIMIZERS: dict[str, Callable[..., optax.GradientTransformation]] = {
    "adam": lambda lr, *, momentum, weight_decay: optax.adam(lr),
    "adamw": lambda lr, *, momentum, weight_decay: optax.adamw(lr, weight_decay=weight_decay),
    "sgd": lambda lr, *, momentum, weight_decay: optax.sgd(lr, momentum=momentum or None),
    "rmsprop": lambda lr, *, momentum, weight_decay: optax.rmsprop(lr, momentum=momentum or None),
}

# name -> factory(learning_rate, total_steps, warmup_steps)
SCHEDULES: dict[str, Callable[[float, int, int], optax.Schedule]] = {
    "constant": lambda lr, total, warmup: optax.constant_schedule(lr),
    "cosine": lambda lr, total, warmup: optax.cosine_decay_schedule(lr, max(total, 1)),
    "warmup": lambda lr, total, warmup: optax.join_schedules(
        [optax.linear_schedule(0.0, lr, max(warmup, 1)), optax.constant_schedule(lr)], [warmup]),
    "warmup_cosine": lambda lr, total, warmup: optax.warmup_cosine_decay_schedule(
        0.0, lr, max(warmup, 1), max(total, warmup + 1)),
}
