"""The README's Python examples run as written (with the arrays they leave to the reader filled in)."""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrnn
from jaxrnn.tasks import adding
from support import ROOT, B, T

ENCODER_DECODER = "### An encoder-decoder: one layer's carry"


def examples() -> list[str]:
    """The Python blocks of the README, up to "Extending jaxrnn" (whose blocks are outlines, with ``...``),
    but the encoder-decoder's, which trains a model and has a test of its own."""
    text = (ROOT / "README.md").read_text().split("## Extending jaxrnn")[0]
    return [code for code in re.findall(r"```python\n(.*?)```", text, flags=re.S) if "set_layer_carry" not in code]


def encoder_decoder_example() -> str:
    section = (ROOT / "README.md").read_text().split(ENCODER_DECODER)[1]
    return re.search(r"```python\n(.*?)```", section, flags=re.S).group(1)


@pytest.mark.slow
def test_the_encoder_decoder_example_reverses_digits():
    """The README's encoder-decoder, run as written: the encoder's final LSTM state, handed to the decoder's
    LSTM layer by set_layer_carry, is all the decoder knows of the source, so reversing whole sequences
    right (greedy decoding by step) shows the carry went where it should."""
    scope: dict = {}
    exec(compile(encoder_decoder_example(), "README.md", "exec"), scope)
    assert float(scope["accuracy"]) > 0.95, float(scope["accuracy"])
    # Without the encoder's state the decoder cannot know the digits: chance is 10^-5 per sequence.
    blind = scope["reverse"]({**scope["params"], "encoder": jax.tree_util.tree_map(jnp.zeros_like,
                                                                                  scope["params"]["encoder"])},
                             scope["source"])
    assert float(jnp.mean(jnp.all(blind == scope["source"][::-1], axis=0))) < 0.05


@pytest.mark.slow
def test_the_readme_examples_run():
    rng = np.random.default_rng(0)

    class TorchModule:  # what nn.LSTM(8, 64, num_layers=2, bidirectional=True).state_dict() holds
        def state_dict(self):
            encoder = jaxrnn.stack([jaxrnn.bidirectional(jaxrnn.lstm(64), jaxrnn.lstm(64))] * 2)
            return jaxrnn.interop.to_torch(encoder, encoder.init(jax.random.key(5), 8))

    scope = {
        "x_t": jnp.ones(8), "xs": jnp.ones((T, 8)), "batch": jnp.asarray(rng.normal(size=(T, B, 8)), jnp.float32),
        "batch_first": jnp.ones((B, T, 8)), "lengths": jnp.array([T, 2, 4]), "dropout_key": jax.random.key(3),
        "loss": lambda params: sum(jnp.sum(leaf) for leaf in jax.tree_util.tree_leaves(params)),
        "torch_module": TorchModule(),
        "batches": [adding.sample(jax.random.key(i), 4, 10) for i in range(2)],
        "text": "The quick brown fox jumps over the lazy dog. " * 3,
    }
    found = examples()
    assert len(found) >= 2
    for code in found:
        exec(compile(code, "README.md", "exec"), scope)
    assert scope["ys"].shape == (T, B, 128)
    assert int(scope["state"].step) == 2
    assert scope["logits"].shape == (len(scope["text"]), 1, scope["vocab"].size)
    assert scope["tokens"].shape == (200,)
    assert np.isfinite(float(scope["mse"]))


def test_the_readme_has_no_placeholders_and_no_empty_generated_block():
    text = (ROOT / "README.md").read_text()
    assert not re.findall(r"\b[A-Z][A-Z_]*_(?:TEXT|NUMBERS|TODO)\b|\bTODO\b", text)
    blocks = re.findall(r"<!-- (\w+):start -->(.*?)<!-- \1:end -->", text, flags=re.S)
    assert {name for name, _ in blocks} >= {"results", "charlm", "sunspots", "gradient_flow", "benchmarks"}
    assert all(body.strip() for _, body in blocks), [name for name, body in blocks if not body.strip()]
