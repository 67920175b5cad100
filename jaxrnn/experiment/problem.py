"""What an experiment is: a value registered under its name, which turns a config into a :class:`Problem`.

An experiment module (``experiments/<name>.py``, installed as
``jaxrnn.experiments.<name>``) defines ``EXPERIMENT = Experiment(...)``; the
registry ``jaxrnn.experiments.EXPERIMENTS`` lists them; the runner owns
everything they share (training, evaluation, files, checkpoints, resume).
What is drawn of the runs (figures, README tables) is the experiment's
report, apart from its problem (:mod:`jaxrnn.experiment.report`).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Sequence

import jax

from jaxrnn.experiment.keys import Purpose, key
from jaxrnn.experiment.rundir import RunDir
from jaxrnn.experiment.schema import Config, ConfigError, Recurrent, Section


class Problem(NamedTuple):
    """What an experiment hands the runner.

    Attributes:
      init: ``init(key) -> params``.
      loss: ``loss(params, batch, *, key) -> (loss, aux)``, the training objective;
        ``key`` is the per-step dropout key (``None`` without dropout).
      metrics: ``metrics(params, batch) -> {"loss": ..., ...}`` for evaluation
        (reported as ``eval_loss``, ``eval_accuracy``, ...).
      batch: ``batch(step) -> batch``, the training batch at a step (a pure
        function of the seed and the step).
      eval_batches: the fixed evaluation set.
      baseline: the loss of the task's trivial strategy, for comparison.
      analysis: ``analysis(params, folder) -> extra | None``: the experiment's
        own measurements of the trained model, after training: the arrays its
        report draws (``.npz`` files in the run folder), a text sample; a dict
        it returns joins the summary's metrics. Or ``None``.
      carry: for a model whose state runs on from batch to batch (windows of
        a long text), ``carry() -> carry`` its initial state; ``loss`` is then
        ``loss(params, carry, batch, *, key) -> (loss, (carry, aux))``, the runner
        hands each step the carry the last one left (``jaxrnn.training.carried_step``)
        and checkpoints it with the train state. ``None``: no carry.
      setup: ``setup(folder)``: files the run needs beside its checkpoints
        (a vocabulary), written before training; or ``None``.
      dropout: draw a dropout key per step even where ``model.dropout`` is 0
        (the experiment's model drops elsewhere, e.g. around an embedding).
      sample: ``sample(key) -> batch``, the training batch of a key, such that
        ``batch(step) == sample(key(train.seed, TRAIN, step))`` (:func:`batches`
        makes both); with it, several replicas (``train.seeds``) draw their
        batches in one compiled, vmapped call. ``None``: each replica calls ``batch``.
      batch_axes: where a batch holds its examples, for data-parallel training
        (``train.devices``): a prefix of the batch's pytree giving each
        leaf's batch axis (``1`` for time-major ``(T, B, ...)``), or ``None``
        for a leaf every device reads whole. ``None`` here: the batches cannot
        be split (e.g. drawn inside the step), so ``train.devices`` must be 1.
        Split, ``loss`` runs on each device's share and its value and metrics
        are averaged across the devices: they must be means over the examples.
        A carry is split along its leading axis.
    """

    init: Callable[[jax.Array], Any]
    loss: Callable[..., tuple[jax.Array, dict[str, jax.Array]]]
    metrics: Callable[[Any, Any], dict[str, jax.Array]]
    batch: Callable[[int], Any]
    eval_batches: Sequence[Any]
    baseline: float
    analysis: Callable[[Any, RunDir], dict[str, float] | None] | None = None
    carry: Callable[[], Any] | None = None
    setup: Callable[[RunDir], None] | None = None
    dropout: bool = False
    batch_axes: Any = None
    sample: Callable[[jax.Array], Any] | None = None


def _no_check(config: Config) -> None:
    return None


class Experiment(NamedTuple):
    """An experiment, as a value.

    Attributes:
      name: the config's ``experiment:``.
      data: the schema of its configs' ``data`` section.
      problem: ``problem(config) -> Problem``: data, model, loss and metrics.
      length: ``length(config) -> int``: the sequence length the model reads
        (the results table's ``T``).
      check: ``check(config)``: raise :class:`~jaxrnn.experiment.schema.ConfigError`
        for what the section schemas cannot see (keys of two sections that must
        agree), so a bad config fails at load time, before a run folder exists.
      description: one line for ``jaxrnn list`` and the README.
      sample: ``sample(config, params, folder, *, prompt, length, temperature,
        top_k, seed, progress) -> text``: what ``jaxrnn sample RUN_DIR`` prints,
        for an experiment whose model writes; or ``None``. ``progress`` is
        ``None`` or ``progress(k)``, to call after each ``k`` characters drawn
        (``language.generate``'s ``progress``), for a progress bar.
    """

    name: str
    data: type[Section]
    problem: Callable[[Config], Problem]
    length: Callable[[Config], int]
    check: Callable[[Config], None] = _no_check
    description: str = ""
    sample: Callable[..., str] | None = None


def batches(sample: Callable[[jax.Array], Any], seed: int, eval_batches: int) -> tuple[Callable[[int], Any], list[Any]]:
    """``(batch_at, eval_set)``: the training batch at a step, and the fixed evaluation set, from ``sample(key)``."""
    eval_set = [sample(key(seed, Purpose.EVAL, i)) for i in range(eval_batches)]
    return (lambda step: sample(key(seed, Purpose.TRAIN, step))), eval_set


def needs_recurrent(config: Config) -> None:
    """The ``check`` of an experiment whose model must carry a state: a window model is an error."""
    if not isinstance(config.model, Recurrent):
        raise ConfigError(f"model.kind {config.model.kind!r}: experiment {config.experiment} needs a recurrent "
                          "model (kind recurrent, with a model.cell)")
