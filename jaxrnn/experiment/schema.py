"""The config schema: each section a frozen pydantic model, defaults in one place.

A config has five sections::

    experiment: adding            # a name in the registry of experiments
    model:  a recurrent model {cell, hidden_size, num_layers, ...}   -> Recurrent
            or a window model {kind: window, tau, ...}              -> Window
    optim:  {name, learning_rate, clip_norm, ...}                   -> Optim
    train:  {steps, batch_size, seed, eval_every, checkpoint_every, ...}  -> Train
    data:   the experiment's own section (its ``Data`` model)

Keys without a default below must be written in every config file. Unknown
keys, wrong types, non-finite numbers and values out of range are errors;
:mod:`jaxrnn.experiment.config` turns them into one line that names the key,
what is allowed and what came. Cell, optimiser and schedule names are read
from :mod:`jaxrnn.experiment.registry`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

import optax
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, create_model, model_validator
from pydantic_core import PydanticCustomError

import jaxrnn
from jaxrnn.experiment import optim, registry
from jaxrnn.experiment.fields import (
    MAX_SEED,
    Name,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    Rate,
    Seed,
)


class ConfigError(ValueError):
    """A config that cannot run; ``str(error)`` is one line for the user."""


def rule(field: str, message: str) -> PydanticCustomError:
    """An error of a rule between keys of one section, reported at ``<section>.<field>``."""
    return PydanticCustomError("rule", "{message}", {"field": field, "message": message})


class Section(BaseModel):
    """A config section: frozen, unknown keys rejected, strict types, numbers finite (:mod:`.fields`)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, strict=True)


class _Recurrent(Section):
    """A recurrent model: ``num_layers`` cells of ``hidden_size`` units (a stack when more than one).

    ``dropout`` drops the input of every layer but the first (so it needs two
    layers or more). The cell options of :data:`jaxrnn.experiment.registry.CELL_OPTIONS`
    are keys too (``chrono``, ``spectral_radius``, ...), for the cells whose
    registry entry lists them.
    """

    kind: Literal["recurrent"] = "recurrent"
    cell: Literal[tuple(registry.CELLS)]
    hidden_size: PositiveInt
    num_layers: PositiveInt
    dropout: Rate = 0.0
    residual: bool = False

    @model_validator(mode="after")
    def _rules(self) -> "_Recurrent":
        accepts = registry.CELLS[self.cell].options
        for option in registry.CELL_OPTIONS:
            if getattr(self, option) is not None and option not in accepts:
                having = [name for name, entry in registry.CELLS.items() if option in entry.options]
                cells = f"cells {', '.join(having)} have" if len(having) > 1 else f"cell {having[0]} has"
                raise rule(option, f"only {cells} this option; remove it for cell {self.cell}")
        if self.dropout and self.num_layers < 2:
            raise rule("dropout", f"expected 0.0 for num_layers 1 (dropout acts between layers), got {self.dropout}")
        if self.residual and self.num_layers < 2:
            raise rule("residual", "expected false for num_layers 1 (residual connections join layers), got true")
        return self

    @property
    def label(self) -> str:
        """``lstm``, ``lstm chrono(70)``, ``rnn radius 1.5``, ...: the model in a table or a title."""
        options = [" " + option.label.format(getattr(self, name)) for name, option in registry.CELL_OPTIONS.items()
                   if getattr(self, name) is not None]
        return self.cell + "".join(options)

    @property
    def description(self) -> str:
        """``lstm x2 hidden 64``: the model in a line."""
        return f"{self.label} x{self.num_layers} hidden {self.hidden_size}"

    def build(self) -> jaxrnn.Part:
        """The cell: ``registry.CELLS[cell]``, stacked ``num_layers`` deep."""
        entry = registry.CELLS[self.cell]
        options = {o: getattr(self, o) for o in entry.options if getattr(self, o) is not None}
        cells = [entry.factory(self.hidden_size, **options) for _ in range(self.num_layers)]
        if self.num_layers == 1:
            return cells[0]
        return jaxrnn.stack(cells, residual=self.residual, dropout=self.dropout)


# The cell options become keys of the section, typed by the registry, null when unset.
Recurrent = create_model("Recurrent", __base__=_Recurrent, __doc__=_Recurrent.__doc__,
                         **{name: (option.type | None, None) for name, option in registry.CELL_OPTIONS.items()})


class Window(Section):
    """A window model, the classic AR(``tau``): no recurrence, the last ``tau`` observations in.

    ``num_layers: 0`` is the linear AR (``tau: 1``, the Markov model); else an
    MLP with ``num_layers`` hidden layers of ``hidden_size`` units.
    """

    kind: Literal["window"]
    tau: PositiveInt
    num_layers: NonNegativeInt = 0
    hidden_size: PositiveInt | None = None

    @model_validator(mode="after")
    def _rules(self) -> "Window":
        if self.num_layers and self.hidden_size is None:
            raise rule("hidden_size", f"expected a positive integer: the units of each of the {self.num_layers} "
                                      "hidden layers")
        if not self.num_layers and self.hidden_size is not None:
            raise rule("hidden_size", "expected none for num_layers 0 (the linear AR has no hidden units); remove it")
        return self

    @property
    def label(self) -> str:
        """``ar(8)``, ``ar(8) mlp``."""
        return f"ar({self.tau})" + (" mlp" if self.num_layers else "")

    @property
    def description(self) -> str:
        return self.label + (f" ({self.num_layers} x {self.hidden_size} units)" if self.num_layers else " (linear)")

    def build(self) -> jaxrnn.models.Model:
        return jaxrnn.autoregressive.ar(self.tau, (self.hidden_size,) * self.num_layers)


class Naive(Section):
    """The naive model: a linear regression on the whole history, ``x^_t = b + sum_k A_k x_{t-k}``.

    No keys of its own: the history reaches back to the first observation, so
    its weights grow with the longest series it reads (see ``jaxrnn.autoregressive.naive``).
    """

    kind: Literal["naive"]

    @property
    def label(self) -> str:
        return "naive"

    @property
    def description(self) -> str:
        return "naive (linear, on the whole history)"

    @property
    def num_layers(self) -> int:
        return 0

    @property
    def hidden_size(self) -> None:
        return None

    def build(self, max_len: int) -> jaxrnn.models.Model:
        """The naive model of sequences up to ``max_len`` steps long."""
        return jaxrnn.autoregressive.naive(max_len)


MODEL_KINDS: dict[str, type[Section]] = {"recurrent": Recurrent, "window": Window, "naive": Naive}


def _kind(value: Any) -> str | None:
    if isinstance(value, dict):
        return str(value["kind"]) if "kind" in value else "recurrent"
    return getattr(value, "kind", None)


Model = Annotated[Union[tuple(Annotated[cls, Tag(kind)] for kind, cls in MODEL_KINDS.items())], Discriminator(_kind)]


class Optim(Section):
    """The Optax optimiser, its learning-rate schedule and gradient clipping (``null``: none)."""

    name: Literal[tuple(registry.OPTIMIZERS)]
    learning_rate: PositiveFloat
    clip_norm: PositiveFloat | None
    schedule: Literal[tuple(registry.SCHEDULES)] = "constant"
    warmup_steps: NonNegativeInt = 0
    momentum: Rate = 0.9
    weight_decay: NonNegativeFloat = 0.0

    def build(self, total_steps: int) -> tuple[optax.GradientTransformation, optax.Schedule]:
        """The optimiser and its schedule (to log ``lr_t``), for a run of ``total_steps``."""
        lr = optim.schedule(self.schedule, self.learning_rate, total_steps, self.warmup_steps)
        tx = optim.optimizer(self.name, lr, clip_norm=self.clip_norm, momentum=self.momentum,
                             weight_decay=self.weight_decay)
        return tx, lr


class Train(Section):
    """The training loop: how long, how big a batch, how often to evaluate and save, how many seeds.

    ``seeds: N`` trains the model from seeds ``seed .. seed + N - 1`` side by
    side, in one vmapped step (:mod:`jaxrnn.experiment.replicas`).
    """

    steps: PositiveInt
    batch_size: PositiveInt
    seed: Seed
    seeds: PositiveInt = 1
    eval_every: PositiveInt
    checkpoint_every: PositiveInt
    eval_batches: PositiveInt = 4
    log_every: PositiveInt = 50
    keep_checkpoints: PositiveInt = 3
    # data-parallel over this many devices ("all": every visible one); jaxrnn.experiment.data_parallel
    devices: Literal["all"] | PositiveInt = 1

    @model_validator(mode="after")
    def _rules(self) -> "Train":
        if self.seed + self.seeds - 1 > MAX_SEED:
            raise rule("seeds", f"expected at most {MAX_SEED - self.seed + 1} for seed {self.seed} "
                                f"(the last seed, seed + seeds - 1, must stay <= {MAX_SEED}), got {self.seeds}")
        return self


class Config(Section):
    """A whole experiment config; each experiment narrows ``experiment`` and ``data``.

    ``name`` defaults to the config file's stem. ``sweep``: dotted keys and
    the values each takes, e.g. ``{"optim.learning_rate": [0.001, 0.003]}``
    (the CLI's ``--sweep``; :mod:`jaxrnn.experiment.replicas`).
    """

    experiment: str
    model: Model
    optim: Optim
    train: Train
    data: Section
    name: Name | None = None
    sweep: dict[str, Annotated[list[Any], Field(min_length=1)]] | None = None
