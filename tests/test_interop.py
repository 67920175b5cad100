"""PyTorch parity through the committed fixtures in ``tests/fixtures`` (made by
``make_torch_fixtures.py``; these tests need numpy only), and the ``to_torch`` mapping.

Each fixture is a small ``nn.RNN``/``nn.LSTM``/``nn.GRU`` (incl. two layers, bidirectional, and
packed variable-length batches) with its state dict, inputs, initial state, outputs, final
state and the gradient of ``sum(out * loss_weight)`` w.r.t. the inputs, all from PyTorch.
"""

from __future__ import annotations

import functools
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from support import CELLS, H, assert_trees_close, random_params

import jaxrnn
from jaxrnn.interop import from_torch, to_torch


FIXTURES = pathlib.Path(__file__).parent / "fixtures"
NAMES = sorted(path.stem for path in FIXTURES.glob("*.npz"))


@functools.cache
def load(name: str) -> dict[str, np.ndarray]:
    with np.load(FIXTURES / f"{name}.npz") as data:
        return {key: data[key] for key in data.files}


def state_dict(fixture) -> dict[str, np.ndarray]:
    return {key[3:]: value for key, value in fixture.items() if key.startswith("sd/")}


@functools.cache
def model(name: str):
    """The jaxrnn model matching fixture ``name``: ``(forward, cell, params, carry)``.

    ``forward(params, xs, carry, lengths)`` returns ``(out, h_n, c_n or None)`` laid out like
    PyTorch's; ``cell`` is the part (a stack for two layers; a bidirectional layer, or a stack of them)."""
    fixture = load(name)
    sd, hidden = state_dict(fixture), fixture["h0"].shape[-1]
    mode, layers = str(fixture["mode"]), int(fixture["num_layers"])
    factory = {"RNN": lambda: jaxrnn.rnn(hidden, activation=str(fixture["nonlinearity"])),
               "LSTM": lambda: jaxrnn.lstm(hidden),
               "GRU": lambda: jaxrnn.gru(hidden, reset_after=True)}[mode]
    is_lstm = mode == "LSTM"
    # PyTorch's initial state (layers * directions, B, H) -> one jaxrnn carry per layer/direction
    states = [(h, c) for h, c in zip(fixture["h0"], fixture["c0"])] if is_lstm else list(fixture["h0"])

    def torch_layout(carries):  # list of per-layer carries -> (h_n, c_n)
        if is_lstm:
            return jnp.stack([h for h, _ in carries]), jnp.stack([c for _, c in carries])
        return jnp.stack(carries), None

    if bool(fixture["bidirectional"]):  # nn.X(num_layers=k, bidirectional=True): k bidirectional layers stacked
        layers_ = [jaxrnn.bidirectional(factory(), factory()) for _ in range(layers)]
        part = jaxrnn.stack(layers_) if layers > 1 else layers_[0]
        pairs = tuple((states[2 * n], states[2 * n + 1]) for n in range(layers))
        carry = pairs if layers > 1 else pairs[0]

        def forward(params, xs, carry, lengths):
            final, out = jaxrnn.scan(part, params, xs, carry, lengths=lengths)
            per_layer = final if layers > 1 else (final,)
            return (out, *torch_layout([c for pair in per_layer for c in pair]))

        return jax.jit(forward), part, from_torch(part, sd), carry

    cell = jaxrnn.stack([factory() for _ in range(layers)]) if layers > 1 else factory()
    params = from_torch(cell, sd)

    def forward(params, xs, carry, lengths):
        final, out = jaxrnn.scan(cell, params, xs, carry, lengths=lengths)
        return (out, *torch_layout(list(final) if layers > 1 else [final]))

    return jax.jit(forward), cell, params, tuple(states) if layers > 1 else states[0]


@pytest.mark.parametrize("name", NAMES)
def test_matches_pytorch_outputs_final_state_and_input_gradient(name):
    fixture = load(name)
    forward, _, params, carry = model(name)
    lengths = fixture.get("lengths")
    (out, h_n, c_n), vjp = jax.vjp(lambda xs: forward(params, xs, carry, lengths), jnp.asarray(fixture["x"]))
    np.testing.assert_allclose(out, fixture["out"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(h_n, fixture["h_n"], rtol=1e-5, atol=1e-5)
    if c_n is not None:
        np.testing.assert_allclose(c_n, fixture["c_n"], rtol=1e-5, atol=1e-5)
    zeros = lambda a: None if a is None else jnp.zeros_like(a)
    (grad_x,) = vjp((jnp.asarray(fixture["loss_weight"]), zeros(h_n), zeros(c_n)))
    np.testing.assert_allclose(grad_x, fixture["grad_x"], rtol=1e-4, atol=1e-5)


def test_fixtures_cover_the_variants():
    """The committed fixtures still include every kind of module the tests above should see."""
    kinds = {(str(load(n)["mode"]), int(load(n)["num_layers"]), bool(load(n)["bidirectional"]), "lengths" in load(n))
             for n in NAMES}
    assert {("RNN", 1, False, False), ("LSTM", 1, False, False), ("GRU", 1, False, False), ("RNN", 2, False, False),
            ("LSTM", 2, False, False), ("GRU", 2, False, False), ("LSTM", 1, True, False),
            ("LSTM", 1, True, True), ("LSTM", 2, True, True), ("GRU", 2, True, True),
            ("RNN", 2, True, True)} <= kinds
    assert {str(load(n)["nonlinearity"]) for n in NAMES if str(load(n)["mode"]) == "RNN"} == {"tanh", "relu"}


# --- to_torch / from_torch -----------------------------------------------------------------------------------

TORCH_CELLS = ["rnn_tanh", "rnn_nobias", "lstm", "gru_reset_after"]


@pytest.mark.parametrize("name", TORCH_CELLS)
@pytest.mark.parametrize("layer,reverse", [(0, False), (1, True)])
def test_from_torch_inverts_to_torch(name, layer, reverse):
    """params -> state dict -> params is the identity (dtypes included), for any layer and direction."""
    cell = CELLS[name]
    params = random_params(cell, seed=0)
    sd = to_torch(cell, params, layer, reverse=reverse)
    suffix = f"_l{layer}" + ("_reverse" if reverse else "")
    assert all(key.endswith(suffix) for key in sd)
    assert_trees_close(from_torch(cell, sd, layer, reverse=reverse), params, rtol=0, atol=0)


def test_stack_round_trip_and_layer_offset():
    """A stack fills and reads PyTorch layers ``layer``, ``layer + 1``, ...."""
    deep = jaxrnn.stack([CELLS["lstm"], CELLS["lstm"]])
    params = (random_params(CELLS["lstm"], seed=1), random_params(CELLS["lstm"], seed=2, input_size=H))
    sd = to_torch(deep, params, layer=1)
    assert sorted(sd) == sorted(f"{w}_l{n}" for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh") for n in (1, 2))
    assert_trees_close(from_torch(deep, sd, layer=1), params, rtol=0, atol=0)
    assert_trees_close(from_torch(CELLS["lstm"], sd, layer=2), params[1], rtol=0, atol=0)


@pytest.mark.parametrize("name", ["rnn_tanh_2layer", "lstm_2layer", "gru_2layer", "lstm_bidirectional",
                                  "gru_2layer_bidirectional_packed"])
def test_to_torch_gives_a_loadable_equivalent_state_dict(name):
    """``to_torch(from_torch(sd))`` has exactly the keys and shapes of the PyTorch state dict (what
    ``load_state_dict(strict=True)`` checks), the same weights, and biases that add up the same."""
    sd = state_dict(load(name))
    _, part, params, _ = model(name)
    back = to_torch(part, params)
    assert {k: v.shape for k, v in back.items()} == {k: v.shape for k, v in sd.items()}
    for key, value in sd.items():
        if key.startswith("weight") or "GRU" == str(load(name)["mode"]):
            np.testing.assert_array_equal(back[key], value)
        elif key.startswith("bias_ih"):
            other = key.replace("bias_ih", "bias_hh")
            np.testing.assert_allclose(back[key] + back[other], value + sd[other], rtol=1e-6)


def test_from_torch_accepts_tensor_like_and_nested_lists():
    """Values may be anything array-like: nested lists, or objects with ``.detach().cpu().numpy()``."""

    class FakeTensor:  # the part of torch.Tensor's interface from_torch may use
        def __init__(self, value):
            self.value = np.asarray(value)

        def detach(self):
            return self

        def cpu(self):
            return self

        def numpy(self):
            return self.value

    sd = state_dict(load("lstm"))
    expected = from_torch(jaxrnn.lstm(4), sd)
    assert_trees_close(from_torch(jaxrnn.lstm(4), {k: FakeTensor(v) for k, v in sd.items()}), expected, rtol=0, atol=0)
    assert_trees_close(from_torch(jaxrnn.lstm(4), {k: v.tolist() for k, v in sd.items()}), expected, rtol=0, atol=0)


def test_lecture_gru_is_rejected_with_a_clear_message():
    """PyTorch's GRU is the reset-after variant; the lecture's ``gru()`` cannot hold its weights."""
    sd = state_dict(load("gru"))
    with pytest.raises(ValueError, match=r"reset_after=True"):
        from_torch(jaxrnn.gru(4), sd)
    with pytest.raises(ValueError, match=r"reset_after=True"):
        to_torch(CELLS["gru"], random_params(CELLS["gru"], seed=3))


def test_mismatched_state_dicts_are_rejected():
    sd = state_dict(load("lstm"))
    with pytest.raises(ValueError, match=r"does not fit a lstm cell: \w+ expected shape \(.*20.*\), got \(.*16.*\)"):
        from_torch(jaxrnn.lstm(5), sd)
    with pytest.raises(ValueError, match=r"does not fit"):
        from_torch(jaxrnn.rnn(4), sd)
    with pytest.raises(KeyError, match=r"weight_ih_l1"):
        from_torch(jaxrnn.lstm(4), sd, layer=1)
    with pytest.raises(ValueError, match=r"use_bias=False"):
        from_torch(jaxrnn.rnn(4, use_bias=False), state_dict(load("rnn_tanh")))
    unbiased = {k: v for k, v in state_dict(load("rnn_tanh")).items() if k.startswith("weight")}
    assert set(from_torch(jaxrnn.rnn(4, use_bias=False), unbiased)) == {"input_kernel", "recurrent_kernel"}


def test_a_deep_bidirectional_encoder_is_one_expression():
    """``stack([bidirectional(lstm, lstm)] * 2, dropout=p)`` over a padded batch, run by the same ``scan``
    call as a cell, with PyTorch's weights: PyTorch's outputs (eval mode: no dropout without a key),
    time-major or batch-major; dropout with a key."""
    fixture = load("lstm_2layer_bidirectional_packed")
    H = fixture["h0"].shape[-1]
    encoder = jaxrnn.stack([jaxrnn.bidirectional(jaxrnn.lstm(H), jaxrnn.lstm(H)),
                            jaxrnn.bidirectional(jaxrnn.lstm(H), jaxrnn.lstm(H))], dropout=0.5)
    params = from_torch(encoder, state_dict(fixture))
    xs, lengths = jnp.asarray(fixture["x"]), jnp.asarray(fixture["lengths"])
    states = [(h, c) for h, c in zip(fixture["h0"], fixture["c0"])]  # (layer, direction) in PyTorch's order
    carry = ((states[0], states[1]), (states[2], states[3]))
    _, ys = jaxrnn.scan(encoder, params, xs, carry, lengths=lengths)
    np.testing.assert_allclose(ys, fixture["out"], rtol=1e-5, atol=1e-5)
    _, batch_major = jaxrnn.scan(encoder, params, jnp.swapaxes(xs, 0, 1), carry, lengths=lengths, time_major=False)
    np.testing.assert_allclose(jnp.swapaxes(batch_major, 0, 1), ys, rtol=1e-6, atol=1e-6)
    _, dropped = jaxrnn.scan(encoder, params, xs, carry, lengths=lengths, key=jax.random.key(0))
    assert not np.allclose(dropped, ys)
    np.testing.assert_array_equal(dropped[int(lengths[1]):, 1], 0.0)


def test_parts_pytorch_cannot_hold_are_rejected():
    cell = jaxrnn.lstm(4)
    sd = state_dict(load("lstm_2layer"))
    init = lambda part: part.init(jax.random.key(0), 3)  # noqa: E731
    with pytest.raises(ValueError, match="no residual connections"):
        from_torch(jaxrnn.stack([cell, cell], residual=True), sd)
    summed = jaxrnn.bidirectional(cell, cell, merge="sum")
    with pytest.raises(ValueError, match="concatenate the directions; this one merges by 'sum'"):
        to_torch(summed, init(summed))
    nested = jaxrnn.bidirectional(jaxrnn.stack([cell, cell]), jaxrnn.stack([cell, cell]))
    with pytest.raises(ValueError, match="one cell per direction"):
        to_torch(nested, init(nested))
    with pytest.raises(ValueError, match="interop supports"):
        to_torch(jaxrnn.linear(3), init(jaxrnn.linear(3)))
    for mixed in (jaxrnn.stack([cell, jaxrnn.gru(4, reset_after=True)]), jaxrnn.stack([cell, jaxrnn.lstm(5)]),
                  jaxrnn.bidirectional(cell, jaxrnn.lstm(5))):
        with pytest.raises(ValueError, match="one kind and size of cell in every layer; this part mixes"):
            to_torch(mixed, init(mixed))
    half = jaxrnn.stack([jaxrnn.bidirectional(cell, cell), cell])
    with pytest.raises(ValueError, match="all bidirectional or none"):
        to_torch(half, init(half))
    deep = jaxrnn.stack([cell, cell])
    with pytest.raises(ValueError, match="params do not fit this part"):
        to_torch(deep, init(deep)[:1])  # a layer short
    with pytest.raises(ValueError, match="params do not fit this part"):
        to_torch(jaxrnn.gru(4, reset_after=True), init(cell))  # an LSTM's params for a GRU
    with pytest.raises(TypeError, match="state_dict: expected a mapping"):
        from_torch(cell, list(sd.items()))
    with pytest.raises(TypeError, match="layer: expected an integer >= 0, got '0'"):
        from_torch(cell, sd, layer="0")
    with pytest.raises(TypeError, match="reverse: expected True or False, got 'yes'"):
        to_torch(cell, init(cell), reverse="yes")
