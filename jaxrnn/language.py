"""Language models: a latent autoregressive model over tokens, trained, measured and sampled.

    x_t = E[id_t],   h_t = f(h_{t-1}, x_t),   p(id_{t+1} | id_1..t) = softmax(h_t W + b)

:func:`language_model` builds the model around any cell or stack: an
embedding, the core, a readout to logits over the vocabulary. When the core
can be stepped, so can the model, and the same params run whole sequences
through :func:`jaxrnn.scan` (training) and one token at a time through its
``step`` (:func:`generate`; time-major like the rest of jaxrnn). :func:`streams`
cuts a long text into windows for truncated backpropagation through time; the
metrics are the token cross-entropy, bits per token and perplexity.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxrnn import checks
from jaxrnn.layers.embedding import embedding
from jaxrnn.layers.linear import linear
from jaxrnn.layers.stack import stack
from jaxrnn.loop import scan
from jaxrnn.masking import valid_mask
from jaxrnn.parts import Part, describe

__all__ = [
    "CHUNK", "Generation", "Streams", "bits_per_token", "cross_entropy", "generate", "language_model", "perplexity",
    "sample_token", "streams"
]


def language_model(core: Part, vocab_size: int, embedding_size: int, *, dropout: float = 0.0) -> Part:
    """``stack([embedding(E), core, linear(V)], dropout=dropout)``: ids in, logits over ``V`` tokens out.

    Args:
      core: a cell or a stack (a layer makes a model that cannot be stepped).
      vocab_size: ``V``, the number of token ids; also ``init``'s ``input_size``.
      embedding_size: ``E``.
      dropout: rate of dropout on the embedding's output and on the core's
        output before the readout (with a key only: training).

    Returns:
      The model; ``init(key, V)`` gives params ``(table, core_params, readout)``.
    """
    checks.part("core", core)
    vocab_size = checks.size("vocab_size", vocab_size)
    return stack([embedding(embedding_size), core, linear(vocab_size)], dropout=dropout)


# --- metrics ------------------------------------------------------------------------------------------------


def cross_entropy(logits: jax.Array, targets: jax.Array, lengths: jax.Array | None = None) -> jax.Array:
    """Mean ``-log p(target)`` in nats over the tokens, time-major ``logits: (T, *batch, V)``, ``targets: (T, *batch)``.

    With ``lengths`` (``batch``-shaped), only each sequence's first ``lengths[b]`` tokens count.
    """
    logits, targets = jnp.asarray(logits), jnp.asarray(targets)
    if logits.shape[:-1] != targets.shape:
        raise ValueError(f"expected targets of shape {logits.shape[:-1]} (the logits' without the vocabulary axis), "
                         f"got {targets.shape}")
    if not jnp.issubdtype(targets.dtype, jnp.integer):
        raise TypeError(f"expected integer targets, got dtype {targets.dtype}")
    losses = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), targets)
    if lengths is None:
        return jnp.mean(losses)
    valid = valid_mask(targets.shape[0], jnp.asarray(lengths)).astype(losses.dtype)
    return jnp.sum(losses * valid) / jnp.maximum(jnp.sum(valid), 1.0)


def bits_per_token(logits: jax.Array, targets: jax.Array, lengths: jax.Array | None = None) -> jax.Array:
    """:func:`cross_entropy` in bits: ``CE / ln 2`` (bits per character for a character model)."""
    return cross_entropy(logits, targets, lengths) / math.log(2.0)


def perplexity(logits: jax.Array, targets: jax.Array, lengths: jax.Array | None = None) -> jax.Array:
    """``exp(CE)``: the number of equally likely tokens the model's uncertainty amounts to."""
    return jnp.exp(cross_entropy(logits, targets, lengths))


# --- streams for truncated backpropagation through time ------------------------------------------------


class Streams(NamedTuple):
    """A long token sequence as ``B`` parallel streams cut into consecutive windows of ``T`` steps.

    Attributes:
      inputs: ``(W, T, B)`` int32: window ``w`` of stream ``b`` is ``inputs[w, :, b]``.
      targets: ``(W, T, B)``: the next token of each input.
    """

    inputs: np.ndarray
    targets: np.ndarray


def streams(tokens: Any, batch_size: int, window: int) -> Streams:
    """Cut ``tokens`` into ``batch_size`` contiguous streams, each into windows of ``window`` steps.

    Stream ``b`` is ``tokens[b L : (b+1) L]`` with ``L = len(tokens) // batch_size``
    (the remainder is dropped); its windows follow each other, so a model that
    hands its carry from window ``w`` to ``w + 1`` reads each stream as one
    sequence (:func:`jaxrnn.training.carried_step`). Every token but the last
    ``L mod window + 1`` of each stream is an input exactly once, and the
    target of each input is the token after it.

    Raises:
      ValueError: too few tokens for one window per stream.
    """
    tokens = np.asarray(tokens)
    if tokens.ndim != 1 or not np.issubdtype(tokens.dtype, np.integer):
        raise ValueError("tokens: expected a 1-D array of integer ids, "
                         f"got shape {tokens.shape} and dtype {tokens.dtype}")
    batch_size, window = checks.size("batch_size", batch_size), checks.size("window", window)
    length = tokens.size // batch_size
    windows = (length - 1) // window
    if windows < 1:
        raise ValueError(f"{tokens.size} tokens make {batch_size} streams of {length}: too short for one window of "
                         f"{window} steps and its targets; use a smaller batch_size or window")
    per_stream = tokens[: batch_size * length].reshape(batch_size, length)
    used = windows * window
    cut = lambda a: a.reshape(batch_size, windows, window).transpose(1, 2, 0)  # noqa: E731
    return Streams(cut(per_stream[:, :used]).astype(np.int32), cut(per_stream[:, 1:used + 1]).astype(np.int32))


# --- generation ---------------------------------------------------------------------------------------


# Tokens per compiled call of a long generation: between calls, the caller shows progress and Ctrl-C gets a turn.
CHUNK = 4096


class Generation(NamedTuple):
    """Where a generation stands, to go on from (``generate(..., state=...)``); the same in either layout.

    Attributes:
      carry: the model's carry after reading every token before ``token``.
      token: the last token, not read yet, of shape ``batch``: ``()`` for a prompt ``(P,)``.
      drawn: how many tokens were drawn so far (token ``i`` is drawn with ``fold_in(key, i)``).
    """

    carry: Any
    token: jax.Array
    drawn: jax.Array


def generate(model: Part, params: Any, prompt: Any, length: int, *, key: jax.Array, temperature: float = 1.0,
             top_k: int | None = None, state: Generation | None = None, return_state: bool = False,
             progress: Callable[[int], None] | None = None,
             time_major: bool = True) -> jax.Array | tuple[jax.Array, Generation]:
    """Read ``prompt``, then draw ``length`` tokens, each from ``softmax(logits / temperature)``.

    The carry is warmed on the prompt by :func:`jaxrnn.scan`; the tokens are
    drawn by a ``lax.scan`` of ``model.step``, each step fed the token drawn
    before it, in pieces of at most :data:`CHUNK` tokens: one compiled
    function serves every full piece, and between pieces ``progress`` is
    called and Ctrl-C can stop the loop. Token ``i`` is drawn with the key
    ``fold_in(key, i)``, so the pieces change nothing: ``n`` tokens are the
    first ``n`` of ``n + m`` with the same key, and a generation that goes on
    from a returned ``state`` continues it exactly.

    Layout: time-major, as everywhere in jaxrnn -- a prompt ``(P, *batch)``
    (``(P, B)`` for ``B`` prompts of equal length) gives tokens ``(n, *batch)``;
    with ``time_major=False``, a prompt ``(*batch, P)`` gives ``(*batch, n)``.
    One prompt ``(P,)`` gives ``(n,)`` either way.

    Args:
      model: a :func:`language_model` of a cell (it is stepped).
      params: its params.
      prompt: integer ids, ``(P, *batch)`` (``(*batch, P)`` with ``time_major=False``); ``P >= 1``.
        ``None`` to go on from ``state`` instead.
      length: ``n``, how many tokens to draw.
      key: random key; the same key gives the same tokens.
      temperature: ``0`` takes the most likely token (greedy); higher flattens
        the distribution, lower sharpens it.
      top_k: draw only among the ``k`` most likely tokens; ``None`` for all.
      state: where an earlier call (``return_state=True``) stopped; give the same ``key``.
      return_state: return ``(tokens, state)``, to go on from later.
      progress: ``progress(k)`` after each piece of ``k`` tokens.
      time_major: ``False`` for a batch-major ``prompt`` and result (time on the last axis).

    Returns:
      int32 ids ``(n, *batch)`` (``(*batch, n)`` with ``time_major=False``); with
      ``return_state``, and the :class:`Generation` after them.

    Raises:
      TypeError: ``model`` cannot be stepped, ``key`` is not a random key, ``time_major`` not a bool.
      ValueError: a prompt that is not integer ids with ``P >= 1`` or has ids outside the vocabulary, both or
        neither of ``prompt`` and ``state``, or ``length``, ``temperature``, ``top_k`` out of range.
    """
    if not isinstance(model, Part) or model.step is None:
        raise TypeError("model: expected a jaxrnn.Part that can be stepped (a language_model of a cell), got "
                        + (describe(model) + ", which reads whole sequences only" if isinstance(model, Part)
                           else type(model).__name__))
    if (prompt is None) == (state is None):
        raise ValueError("prompt: expected ids to start from, or None with a state to go on from (not both)")
    time_major = checks.flag("time_major", time_major)
    length = checks.size("length", length)
    temperature = checks.number("temperature", temperature)
    if temperature < 0:
        raise ValueError(f"temperature: expected a number >= 0, got {temperature}")
    if top_k is not None:
        top_k = checks.size("top_k", top_k)
    checks.random_key("key", key)
    if state is None:
        prompt = _prompt(prompt, time_major)
        _check_ids(model, params, prompt)
        state = _start(model, params, prompt)
    pieces = []
    for size in _pieces(length):
        tokens, state = _draw(model, params, state, size, key, jnp.float32(temperature), top_k)
        if progress is not None or length > CHUNK:
            tokens.block_until_ready()  # progress counts what is done; Ctrl-C waits for a piece, not the whole
        pieces.append(tokens)
        if progress is not None:
            progress(size)
    tokens = pieces[0] if len(pieces) == 1 else jnp.concatenate(pieces)
    if not time_major:
        tokens = jnp.moveaxis(tokens, 0, -1)
    return (tokens, state) if return_state else tokens


def _prompt(prompt: Any, time_major: bool) -> jax.Array:
    """The prompt time-major, ``(P, *batch)``."""
    prompt = jnp.asarray(prompt)
    layout = "(P, *batch)" if time_major else "(*batch, P)"
    if prompt.ndim < 1 or prompt.shape[0 if time_major else -1] < 1 or not jnp.issubdtype(prompt.dtype, jnp.integer):
        raise ValueError(f"prompt: expected integer ids of shape {layout} with P >= 1 (time_major={time_major}), "
                         f"got shape {prompt.shape} and dtype {prompt.dtype}")
    return prompt if time_major else jnp.moveaxis(prompt, -1, 0)


def _check_ids(model: Part, params: Any, prompt: jax.Array) -> None:
    """The prompt's ids within the vocabulary of the model's embedding, checked while their values are known
    (inside the compiled generation they are not, and an id out of range would read NaNs)."""
    if model.validate is not None:
        model.validate(params, np.asarray(prompt), False)


def _pieces(length: int) -> list[int]:
    """``length`` as full pieces of :data:`CHUNK` tokens and the rest."""
    full, rest = divmod(length, CHUNK)
    return [CHUNK] * full + ([rest] if rest else [])


@functools.partial(jax.jit, static_argnames=("model",))
def _start(model, params, prompt) -> Generation:
    """The carry warmed on all but the time-major prompt's last token, which is read first when drawing."""
    carry, _ = scan(model, params, prompt[:-1])
    return Generation(carry, prompt[-1].astype(jnp.int32), jnp.zeros((), jnp.int32))


@functools.partial(jax.jit, static_argnames=("model", "length", "top_k"))
def _draw(model, params, state: Generation, length, key, temperature, top_k) -> tuple[jax.Array, Generation]:
    """``length`` tokens drawn from ``state``, time-major ``(n, *batch)``, and the state after them."""
    def draw(running, index):
        carry, token = running
        carry, logits = model.step(params, carry, token)
        token = sample_token(jax.random.fold_in(key, index), logits, temperature, top_k).astype(jnp.int32)
        return (carry, token), token

    indices = state.drawn + jnp.arange(length, dtype=jnp.int32)
    (carry, token), tokens = jax.lax.scan(draw, (state.carry, state.token), indices)
    return tokens, Generation(carry, token, state.drawn + length)


def sample_token(key: jax.Array, logits: jax.Array, temperature: jax.Array, top_k: int | None = None) -> jax.Array:
    """One token per row of ``logits: (..., V)``: greedy at ``temperature == 0``, else from the tempered softmax."""
    logits = logits.astype(jnp.float32)
    if top_k is not None and top_k < logits.shape[-1]:
        kth = jax.lax.top_k(logits, top_k)[0][..., -1:]
        logits = jnp.where(logits < kth, -jnp.inf, logits)
    greedy = jnp.argmax(logits, axis=-1)
    drawn = jax.random.categorical(key, logits / jnp.maximum(temperature, 1e-6), axis=-1)
    return jnp.where(temperature > 0, drawn, greedy)
