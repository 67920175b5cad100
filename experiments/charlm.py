"""A character language model: the latent autoregressive model over text, trained, measured and sampled.

    x_t = E[c_t],   h_t = f(h_{t-1}, x_t),   p(c_{t+1} | c_1..t) = softmax(h_t W + b)

Data: the text of CPython's own help topics (``jaxrnn.datasets.python_help``,
about 465k characters of English about Python), or a UTF-8 file of your own
(``data.path``). The first ``1 - data.validation`` of it trains, the rest
validates. The character vocabulary is built from the training text
(``vocabulary.json`` in the run folder); a character it lacks reads as the
unknown id, explicitly.

Training: the text cut into ``train.batch_size`` parallel streams and windows
of ``data.window`` characters (:func:`jaxrnn.language.streams`); each step
trains on the next window of every stream, starting from the state the last
window left (truncated backpropagation through time), and the state is reset
at the start of each pass over the text.

Evaluation: ``eval_loss`` is the validation cross-entropy in nats per
character, ``eval_bpc`` the same in bits, ``eval_perplexity`` its ``exp``,
with the state carried through the whole validation text. Baseline: the
unigram model (each character with its training frequency), ~4.7 bits per
character on the default text. Files: ``sample.txt``, generated from
``data.prompt`` after training.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Annotated, Callable

import jax
import jax.numpy as jnp
import numpy as np
from pydantic import Field

import jaxrnn
from jaxrnn import datasets, language
from jaxrnn.experiment.fields import PositiveInt, Rate
from jaxrnn.experiment.problem import Experiment, Problem, needs_recurrent
from jaxrnn.experiment.rundir import RunDir
from jaxrnn.experiment.schema import Config, ConfigError, Section
from jaxrnn.vocabulary import Vocabulary

VOCABULARY = "vocabulary.json"


class Data(Section):
    """``data`` section: the text, its split, the windows and the model's embedding and dropout."""

    path: Annotated[str, Field(min_length=1)] | None = None  # null: CPython's help topics
    validation: Annotated[float, Field(gt=0, lt=1)] = 0.1
    window: PositiveInt = 100
    eval_streams: PositiveInt = 16
    embedding_size: PositiveInt = 32
    dropout: Rate = 0.0
    prompt: Annotated[str, Field(min_length=1)] = "The "
    sample_length: PositiveInt = 400
    temperature: Annotated[float, Field(ge=0)] = 0.7


def text(data: Data) -> str:
    """The corpus: ``data.path`` read as UTF-8, or CPython's help topics.

    Raises:
      ConfigError: the file is missing, empty or not UTF-8, or this Python lacks its help topics.
    """
    if data.path is None:
        try:
            return datasets.python_help()
        except FileNotFoundError as error:
            raise ConfigError(f"data.path: {error}") from None
    path = Path(data.path).expanduser()
    try:
        content = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"data.path: no file {path}") from None
    except UnicodeDecodeError as error:
        raise ConfigError(f"data.path: {path} is not UTF-8 text (byte {error.start}: {error.reason})") from None
    except OSError as error:
        raise ConfigError(f"data.path: cannot read {path}: {error.strerror}") from None
    if not content:
        raise ConfigError(f"data.path: {path} is empty")
    return content


class Corpus:
    """The text of a config, split, with its vocabulary and encoded ids."""

    def __init__(self, data: Data):
        full = text(data)
        split = int(len(full) * (1 - data.validation))
        self.train_text, self.valid_text = full[:split], full[split:]
        self.vocabulary = Vocabulary.from_text(self.train_text)
        self.train = self.vocabulary.encode(self.train_text)
        self.valid = self.vocabulary.encode(self.valid_text)

    def unigram_loss(self) -> float:
        """Cross-entropy (nats per character) of the validation text under the training characters' frequencies
        (add-one smoothed, so an unseen character costs a finite amount)."""
        counts = np.bincount(self.train, minlength=self.vocabulary.size) + 1.0
        log_p = np.log(counts / counts.sum())
        return float(-np.mean(log_p[self.valid]))


def model(config: Config, vocabulary_size: int) -> jaxrnn.Part:
    """Embedding, the configured core, and a readout to the vocabulary's logits (``language.language_model``)."""
    return language.language_model(config.model.build(), vocabulary_size, config.data.embedding_size,
                                   dropout=config.data.dropout)


def check(config: Config) -> None:
    """A recurrent model, a text that can be read, and enough of it for one window per stream."""
    needs_recurrent(config)
    corpus = Corpus(config.data)
    for name, tokens, streams in (("training", corpus.train, config.train.batch_size),
                                  ("validation", corpus.valid, config.data.eval_streams)):
        if len(tokens) // streams <= config.data.window:
            raise ConfigError(f"data.window: expected fewer than the {len(tokens) // streams} characters of each of "
                              f"the {streams} {name} streams, got {config.data.window}")


def problem(config: Config) -> Problem:
    """Streams of the training text, the validation text in one pass, the model and its sample."""
    data = config.data
    corpus = Corpus(data)
    vocab = corpus.vocabulary
    net = model(config, vocab.size)
    train = language.streams(corpus.train, config.train.batch_size, data.window)
    valid = language.streams(corpus.valid, data.eval_streams, data.window)
    inputs, targets = jnp.asarray(train.inputs), jnp.asarray(train.targets)
    windows = inputs.shape[0]

    def loss(params, carry, batch, *, key):
        window_inputs, window_targets, reset = batch
        carry = jax.tree_util.tree_map(lambda c: jnp.where(reset, jnp.zeros_like(c), c), carry)
        carry, logits = jaxrnn.scan(net, params, window_inputs, carry, key=key)
        ce = language.cross_entropy(logits, window_targets)
        return ce, (carry, {"bpc": ce / math.log(2.0)})

    def metrics(params, streams):
        def window(carry, batch):
            carry, logits = jaxrnn.scan(net, params, batch[0], carry)
            return carry, language.cross_entropy(logits, batch[1])

        _, losses = jax.lax.scan(window, net.initial_carry((data.eval_streams,)), streams)
        ce = jnp.mean(losses)
        return {"loss": ce, "bpc": ce / math.log(2.0), "perplexity": jnp.exp(ce)}

    def analysis(params, folder: RunDir) -> dict[str, float]:
        (folder.path / "sample.txt").write_text(
            sample(config, params, vocab, data.prompt, data.sample_length, data.temperature, None, seed=0) + "\n",
            encoding="utf-8")
        return {"eval_unigram_bpc": corpus.unigram_loss() / math.log(2.0)}

    return Problem(
        init=functools.partial(net.init, input_size=vocab.size),
        loss=loss,
        metrics=metrics,
        batch=lambda step: (inputs[step % windows], targets[step % windows], jnp.asarray(step % windows == 0)),
        eval_batches=[(jnp.asarray(valid.inputs), jnp.asarray(valid.targets))],
        baseline=corpus.unigram_loss(),
        analysis=analysis,
        carry=lambda: net.initial_carry((config.train.batch_size,)),
        setup=lambda folder: vocab.save(folder.path / VOCABULARY),
        dropout=data.dropout > 0,
        batch_axes=(1, 1, None),  # inputs and targets (T, B); the reset flag, whole on every device
    )


def sample(config: Config, params, vocabulary: Vocabulary, prompt: str, length: int, temperature: float,
           top_k: int | None, seed: int, progress: Callable[[int], None] | None = None) -> str:
    """``prompt`` and ``length`` characters drawn after it by the model of ``config`` with ``params``;
    ``progress(k)`` after each piece of ``k`` (``language.generate``)."""
    net = model(config, vocabulary.size)
    tokens = language.generate(net, params, vocabulary.encode(prompt), length, key=jax.random.key(seed),
                               temperature=temperature, top_k=top_k, progress=progress)
    return prompt + vocabulary.decode(np.asarray(tokens))


def sample_run(config: Config, params, folder: RunDir, *, prompt: str, length: int, temperature: float,
               top_k: int | None, seed: int, progress: Callable[[int], None] | None = None) -> str:
    """:func:`sample` with the vocabulary the run saved (the ``jaxrnn sample`` command)."""
    vocabulary = Vocabulary.load(folder.path / VOCABULARY)
    return sample(config, params, vocabulary, prompt, length, temperature, top_k, seed, progress)


EXPERIMENT = Experiment(
    name="charlm",
    data=Data,
    problem=problem,
    length=lambda config: config.data.window,
    check=check,
    description="a character language model of CPython's help text: bits per character, and samples",
    sample=sample_run,
)
