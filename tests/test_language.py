"""Language models: embedding and readout, the metrics by hand, generation against a loop of argmax steps,
streams that cover the text once and carry the state, the vocabulary and the corpora. (The ``charlm`` and
``digits`` experiments, through the app, are in test_experiments.py.)"""

from __future__ import annotations

import functools
import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxrnn
from jaxrnn import datasets, language, training
from jaxrnn.vocabulary import UNKNOWN_ID, Vocabulary
from support import H

V, E = 7, 5  # vocabulary, embedding features
MODEL = language.language_model(jaxrnn.gru(H, reset_after=True), V, E)
PARAMS = MODEL.init(jax.random.key(0), V)


def test_embedding_and_readout_shapes():
    table, core, readout = PARAMS
    assert table["table"].shape == (V, E) and readout["kernel"].shape == (H, V)
    ids = jnp.array([[1, 2, 3], [4, 5, 6]])  # (T=2, B=3)
    carry, logits = jaxrnn.scan(MODEL, PARAMS, ids)
    assert logits.shape == (2, 3, V) and carry[1].shape == (3, H)
    np.testing.assert_allclose(jaxrnn.scan(MODEL, PARAMS, ids.T, time_major=False)[1], jnp.swapaxes(logits, 0, 1),
                               rtol=1e-6)
    _, embedded = jaxrnn.scan(jaxrnn.embedding(E), table, ids)
    np.testing.assert_array_equal(embedded, np.asarray(table["table"])[np.asarray(ids)])


def test_cross_entropy_bits_and_perplexity_by_hand():
    logits = jnp.log(jnp.array([[[0.5, 0.25, 0.25]], [[0.1, 0.1, 0.8]]]))  # (T=2, B=1, 3): probabilities
    targets = jnp.array([[0], [2]])
    expected = -(math.log(0.5) + math.log(0.8)) / 2
    assert float(language.cross_entropy(logits, targets)) == pytest.approx(expected, rel=1e-6)
    assert float(language.bits_per_token(logits, targets)) == pytest.approx(expected / math.log(2), rel=1e-6)
    assert float(language.perplexity(logits, targets)) == pytest.approx(math.exp(expected), rel=1e-6)
    # lengths: only the first step of the sequence counts
    assert float(language.cross_entropy(logits, targets, lengths=jnp.array([1]))) == pytest.approx(-math.log(0.5))
    with pytest.raises(ValueError, match=r"expected targets of shape \(2, 1\)"):
        language.cross_entropy(logits, targets[:1])
    with pytest.raises(TypeError, match="expected integer targets"):
        language.cross_entropy(logits, targets.astype(jnp.float32))


def greedy_by_hand(prompt, length):
    """A Python loop of the model's own step, each time the most likely token."""
    carry = MODEL.initial_carry()
    for token in prompt:
        carry, logits = MODEL.step(PARAMS, carry, jnp.asarray(token))
    out = []
    for _ in range(length):
        token = int(jnp.argmax(logits))
        out.append(token)
        carry, logits = MODEL.step(PARAMS, carry, jnp.asarray(token))
    return out


def test_greedy_generation_is_a_loop_of_argmax_steps():
    prompt = [1, 4, 2]
    tokens = language.generate(MODEL, PARAMS, jnp.array(prompt), 6, key=jax.random.key(0), temperature=0.0)
    assert tokens.shape == (6,) and tokens.dtype == jnp.int32
    assert tokens.tolist() == greedy_by_hand(prompt, 6)
    cold = language.generate(MODEL, PARAMS, jnp.array(prompt), 6, key=jax.random.key(5), temperature=1e-4)
    assert cold.tolist() == tokens.tolist()  # temperature -> 0 is greedy
    top1 = language.generate(MODEL, PARAMS, jnp.array(prompt), 6, key=jax.random.key(5), temperature=2.0, top_k=1)
    assert top1.tolist() == tokens.tolist()  # only the most likely token is allowed


def test_sampling_is_reproducible_and_batched_prompts_are_each_prompt_alone():
    prompts = jnp.array([[1, 3, 0], [2, 3, 6]])  # (P=2, B=3): time-major, three prompts
    a = language.generate(MODEL, PARAMS, prompts, 8, key=jax.random.key(1))
    b = language.generate(MODEL, PARAMS, prompts, 8, key=jax.random.key(1))
    c = language.generate(MODEL, PARAMS, prompts, 8, key=jax.random.key(2))
    assert a.shape == (8, 3)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    greedy = language.generate(MODEL, PARAMS, prompts, 5, key=jax.random.key(0), temperature=0.0)
    for column, prompt in zip(greedy.T, prompts.T):
        assert column.tolist() == greedy_by_hand(prompt.tolist(), 5)
    one = language.generate(MODEL, PARAMS, jnp.array([5]), 3, key=jax.random.key(0), temperature=0.0)
    assert one.tolist() == greedy_by_hand([5], 3)  # a prompt of one token: nothing to warm up on


def test_batch_major_generation_is_the_time_major_one_transposed():
    prompts = jnp.array([[1, 3, 0], [2, 3, 6], [4, 4, 1]])  # (P=3, B=3): a transposed mix-up would show
    key = jax.random.key(4)
    time_major = language.generate(MODEL, PARAMS, prompts, 7, key=key)
    batch_major = language.generate(MODEL, PARAMS, prompts.T, 7, key=key, time_major=False)
    assert time_major.shape == batch_major.shape[::-1] == (7, 3)
    np.testing.assert_array_equal(batch_major, time_major.T)
    # more batch axes, (P, 2, 3) and (2, 3, P): each prompt's tokens as in the batch of three
    greedy = language.generate(MODEL, PARAMS, prompts, 4, key=key, temperature=0.0)
    grid = jnp.stack([prompts, prompts[:, ::-1]], axis=1)
    tokens = language.generate(MODEL, PARAMS, grid, 4, key=key, temperature=0.0)
    np.testing.assert_array_equal(tokens, jnp.stack([greedy, greedy[:, ::-1]], axis=1))
    np.testing.assert_array_equal(language.generate(MODEL, PARAMS, jnp.moveaxis(grid, 0, -1), 4, key=key,
                                                    temperature=0.0, time_major=False), jnp.moveaxis(tokens, 0, -1))


def test_a_single_prompt_is_the_same_in_either_layout():
    prompt, key = jnp.array([1, 4, 2]), jax.random.key(6)
    tokens = language.generate(MODEL, PARAMS, prompt, 6, key=key)
    assert tokens.shape == (6,)
    np.testing.assert_array_equal(language.generate(MODEL, PARAMS, prompt, 6, key=key, time_major=False), tokens)
    assert language.generate(MODEL, PARAMS, prompt, 6, key=key, temperature=0.0).tolist() == greedy_by_hand(
        prompt.tolist(), 6)


@pytest.mark.parametrize("prompt, time_major", [([1, 4, 2], True), ([[1, 3, 0], [2, 3, 6]], True),
                                                ([[1, 2], [3, 3], [0, 6]], False)],
                         ids=["one", "batched", "batch-major"])
def test_a_generation_in_pieces_is_one_generation(prompt, time_major, monkeypatch):
    """Token i is drawn with fold_in(key, i): n tokens and then m more from the returned state are the n + m
    tokens of one call, and so are the pieces of CHUNK tokens a long generation runs in."""
    prompt, key, time = jnp.array(prompt), jax.random.key(3), 0 if time_major else -1
    run = functools.partial(language.generate, MODEL, PARAMS, key=key, time_major=time_major)
    whole = run(prompt, 10)
    assert whole.shape[time] == 10
    first, state = run(prompt, 4, return_state=True)
    rest, state = run(None, 6, state=state, return_state=True)
    np.testing.assert_array_equal(jnp.concatenate([first, rest], axis=time), whole)
    batch = prompt.shape[1:] if time_major else prompt.shape[:-1]
    assert int(state.drawn) == 10 and state.token.shape == batch
    monkeypatch.setattr(language, "CHUNK", 3)
    pieces = []
    np.testing.assert_array_equal(run(prompt, 10, progress=pieces.append), whole)
    assert pieces == [3, 3, 3, 1]
    with pytest.raises(ValueError, match="not both"):
        run(prompt, 2, state=state)


@pytest.mark.parametrize("call, exception, match", [
    (lambda: language.generate(MODEL, PARAMS, jnp.array([1.0]), 3, key=jax.random.key(0)), ValueError, "prompt"),
    (lambda: language.generate(MODEL, PARAMS, jnp.zeros((0,), jnp.int32), 3, key=jax.random.key(0)), ValueError,
     r"P >= 1"),
    (lambda: language.generate(MODEL, PARAMS, jnp.array([1]), 0, key=jax.random.key(0)), ValueError, "length"),
    (lambda: language.generate(MODEL, PARAMS, jnp.array([1]), 3, key=jax.random.key(0), temperature=-1.0),
     ValueError, "temperature: expected a number >= 0"),
    (lambda: language.generate(MODEL, PARAMS, jnp.array([1]), 3, key=jax.random.key(0), top_k=0), ValueError,
     "top_k"),
    (lambda: language.generate(MODEL, PARAMS, jnp.array([1]), 3, key=0), TypeError, "key: expected a random key"),
    (lambda: language.generate(MODEL, PARAMS, jnp.array([1]), 3, key=jax.random.key(0), time_major="no"), TypeError,
     "time_major: expected True or False"),
    (lambda: language.generate(MODEL, PARAMS, jnp.zeros((2, 0), jnp.int32), 3, key=jax.random.key(0),
                               time_major=False), ValueError, r"\(\*batch, P\) with P >= 1"),
    (lambda: language.generate(jaxrnn.bidirectional(jaxrnn.gru(H), jaxrnn.gru(H)), None, jnp.array([1]), 3,
                               key=jax.random.key(0)), TypeError, "can be stepped .* reads whole sequences only"),
    (lambda: language.streams(np.arange(10), 4, 3), ValueError, "too short for one window"),
    (lambda: language.streams(np.ones(10), 2, 2), ValueError, "integer ids"),
    (lambda: language.language_model("gru", V, E), TypeError, "core"),
    (lambda: Vocabulary.from_text(""), ValueError, "non-empty"),
])
def test_bad_input_is_a_clear_error(call, exception, match):
    with pytest.raises(exception, match=match):
        call()


def test_streams_cover_the_text_once_and_carry_the_state():
    tokens = np.arange(1, 104)  # 103 distinct ids: where each lands is visible
    cut = language.streams(tokens, batch_size=4, window=5)  # streams of 25, windows of 5: 4 windows, 1 left
    assert cut.inputs.shape == (4, 5, 4)
    seen = np.sort(cut.inputs.ravel())
    assert len(set(seen.tolist())) == seen.size  # no token twice
    per_stream = tokens[:100].reshape(4, 25)
    np.testing.assert_array_equal(np.sort(cut.inputs.ravel()), np.sort(per_stream[:, :20].ravel()))
    np.testing.assert_array_equal(cut.targets, cut.inputs + 1)  # each target the next token
    # A model fed the windows with its carry handed on equals the model fed each whole stream at once.
    model = language.language_model(jaxrnn.lstm(4), 110, 3)
    params = model.init(jax.random.key(1), 110)
    carry, windowed = model.initial_carry((4,)), []
    for w in range(4):
        carry, logits = jaxrnn.scan(model, params, jnp.asarray(cut.inputs[w]), carry)
        windowed.append(logits)
    whole_carry, whole = jaxrnn.scan(model, params, jnp.asarray(per_stream[:, :20].T))
    np.testing.assert_allclose(jnp.concatenate(windowed), whole, rtol=2e-5, atol=2e-6)
    for a, b in zip(jax.tree_util.tree_leaves(carry), jax.tree_util.tree_leaves(whole_carry)):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6)


def test_carried_step_is_one_chunk_of_truncated_bptt():
    model = language.language_model(jaxrnn.rnn(4), 9, 3)
    params = model.init(jax.random.key(2), 9)
    tx = optax.sgd(0.1)

    def loss(params, carry, batch, *, key):
        carry, logits = jaxrnn.scan(model, params, batch[0], carry)
        return language.cross_entropy(logits, batch[1]), (carry, {})

    ids = jnp.asarray(np.random.default_rng(0).integers(0, 9, (6, 2)))
    batch = (ids[:-1], ids[1:])
    start = training.init(params, tx), model.initial_carry((2,))
    state, carry, _ = training.carried_step(loss, tx)(*start, batch)
    state2, carry2, _ = training.truncated_bptt_step(loss, tx, 5)(*start, batch)
    for a, b in zip(jax.tree_util.tree_leaves((state, carry)), jax.tree_util.tree_leaves((state2, carry2))):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_vocabulary_round_trip_and_unknown_characters(tmp_path):
    vocab = Vocabulary.from_text("hello world")
    assert vocab.size == len(set("hello world")) + 1
    ids = vocab.encode("hello, world!")
    assert ids.dtype == np.int32 and (ids == UNKNOWN_ID).sum() == 2  # ',' and '!' are not in it
    assert vocab.decode(vocab.encode("hello world")) == "hello world"
    assert vocab.decode(ids) == "hello\ufffd world\ufffd"
    vocab.save(tmp_path / "v.json")
    assert Vocabulary.load(tmp_path / "v.json") == vocab
    assert json.loads((tmp_path / "v.json").read_text())["chars"] == list(vocab.chars)


def test_the_default_corpus_ships_with_python(monkeypatch):
    text = datasets.python_help()
    assert 400_000 < len(text) < 600_000 and 'The "assert" statement' in text
    import sys

    monkeypatch.setitem(sys.modules, "pydoc_data", None)  # a distribution that stripped it
    with pytest.raises(FileNotFoundError, match="no pydoc_data .* give a text file with data.path"):
        datasets.python_help()


def test_the_digits_ship_with_the_package():
    images, labels = datasets.digits()
    assert images.shape == (1797, 8, 8) and labels.shape == (1797,) and images.max() == 16
    assert np.bincount(labels).min() > 170  # ten balanced classes


def test_a_prompt_out_of_the_vocabulary_is_an_error_not_token_0_forever():
    model = language.language_model(jaxrnn.gru(4), 5, 3)
    params = model.init(jax.random.key(0), 5)
    for bad in ([1, 5], [-1, 2]):
        with pytest.raises(ValueError, match=r"expected token ids in \[0, 5\)"):
            language.generate(model, params, jnp.array(bad), 3, key=jax.random.key(1))
