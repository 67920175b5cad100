"""PyTorch parity, both ways.

Through the committed fixtures in ``tests/fixtures`` (made by ``make_torch_fixtures.py``; these
tests need numpy only, so they always run): each is a small ``nn.RNN``/``nn.LSTM``/``nn.GRU``
(two layers, bidirectional, without biases, packed variable-length batches) with its state dict,
inputs, initial state, outputs, final state and the gradient of ``sum(out * loss_weight)`` w.r.t.
the inputs, all from PyTorch.

With PyTorch installed (``pip install -e .[torch]``; the tests that need it skip without it), every
layout against live modules: ``from_torch`` of a seeded module, the same outputs and final states
on full and packed batches, and ``to_torch`` loaded back with ``load_state_dict(strict=True)``.
"""

from __future__ import annotations

import copy
import functools
import importlib.util
import pathlib
import re
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrnn
from jaxrnn.interop import StateDictMismatch, check_module, from_torch, to_torch, torch_module, torch_spec
from support import CELLS, H, assert_trees_close, random_params

FIXTURES = pathlib.Path(__file__).parent / "fixtures"
NAMES = sorted(path.stem for path in FIXTURES.glob("*.npz"))
needs_torch = pytest.mark.skipif(importlib.util.find_spec("torch") is None,
                                 reason="PyTorch is not installed (pip install -e .[torch])")


@functools.cache
def load(name: str) -> dict[str, np.ndarray]:
    with np.load(FIXTURES / f"{name}.npz") as data:
        return {key: data[key] for key in data.files}


def state_dict(fixture) -> dict[str, np.ndarray]:
    return {key[3:]: value for key, value in fixture.items() if key.startswith("sd/")}


@functools.cache
def part_for(mode: str, hidden: int, layers: int, bidirectional: bool, bias: bool = True) -> jaxrnn.Part:
    """The jaxrnn part of ``nn.<mode>`` (``"RNN_TANH"``, ``"RNN_RELU"``, ``"LSTM"``, ``"GRU"``): one
    object per layout, so the functions compiled for it are reused. ``bias`` matters to ``rnn`` only
    (``lstm`` and ``gru`` hold zero biases for a module without)."""
    if not mode.startswith("RNN") and not bias:
        return part_for(mode, hidden, layers, bidirectional, True)

    def cell():
        if mode.startswith("RNN"):
            return jaxrnn.rnn(hidden, activation=mode[4:].lower(), use_bias=bias)
        return jaxrnn.lstm(hidden) if mode == "LSTM" else jaxrnn.gru(hidden, reset_after=True)

    layer = (lambda: jaxrnn.bidirectional(cell(), cell())) if bidirectional else cell
    return jaxrnn.stack([layer() for _ in range(layers)]) if layers > 1 else layer()


def carry_from_torch(layers: int, bidirectional: bool, h0, c0=None):
    """PyTorch's initial state ``(layers * directions, B, H)`` as the part's carry."""
    states = list(h0) if c0 is None else list(zip(h0, c0))  # (layer, direction) in PyTorch's order
    per_layer = [(states[2 * n], states[2 * n + 1]) for n in range(layers)] if bidirectional else states
    return tuple(per_layer) if layers > 1 else per_layer[0]


def carry_to_torch(carry, layers: int, bidirectional: bool, lstm: bool):
    """The part's final carry as PyTorch's ``(h_n, c_n or None)``."""
    per_layer = list(carry) if layers > 1 else [carry]
    states = [state for pair in per_layer for state in pair] if bidirectional else per_layer
    if lstm:
        return jnp.stack([h for h, _ in states]), jnp.stack([c for _, c in states])
    return jnp.stack(states), None


@functools.cache
def runner(part, layers: int, bidirectional: bool, lstm: bool):
    """``forward(params, xs, carry, lengths) -> (out, h_n, c_n)``, compiled once per part."""
    def forward(params, xs, carry, lengths):
        final, out = jaxrnn.scan(part, params, xs, carry, lengths=lengths)
        return (out, *carry_to_torch(final, layers, bidirectional, lstm))

    return jax.jit(forward)


@functools.cache
def live_runner(part, layers: int, bidirectional: bool, lstm: bool):
    """``forward(params, xs, carry, lengths)`` on the full batch and on the padded one, in one compiled call."""
    def forward(params, xs, carry, lengths):
        full, padded = (jaxrnn.scan(part, params, xs, carry, lengths=n) for n in (None, lengths))
        return [(out, *carry_to_torch(final, layers, bidirectional, lstm)) for final, out in (full, padded)]

    return jax.jit(forward)


@functools.cache
def model(name: str):
    """The jaxrnn model matching fixture ``name``: ``(forward, part, params, carry)``.

    ``forward(params, xs, carry, lengths)`` returns ``(out, h_n, c_n or None)`` laid out like
    PyTorch's; ``part`` is a cell, a stack, a bidirectional layer, or a stack of them."""
    fixture = load(name)
    mode, hidden = str(fixture["mode"]), fixture["h0"].shape[-1]
    mode = f"RNN_{str(fixture['nonlinearity']).upper()}" if mode == "RNN" else mode
    layers, bidirectional, bias = int(fixture["num_layers"]), bool(fixture["bidirectional"]), bool(fixture["bias"])
    part = part_for(mode, hidden, layers, bidirectional, bias)
    carry = carry_from_torch(layers, bidirectional, fixture["h0"], fixture.get("c0"))
    return runner(part, layers, bidirectional, mode == "LSTM"), part, from_torch(part, state_dict(fixture)), carry


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
    def zeros(a):
        return None if a is None else jnp.zeros_like(a)
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
    assert {str(load(n)["mode"]) for n in NAMES if not bool(load(n)["bias"])} == {"RNN", "LSTM", "GRU"}


@pytest.mark.parametrize("name", NAMES)
def test_to_torch_gives_back_the_state_dict_strict_loads(name):
    """``to_torch(from_torch(sd))`` has exactly the keys and shapes of the PyTorch state dict (what
    ``load_state_dict(strict=True)`` checks, biases absent for ``bias=False``), the same weights,
    and biases that add up the same (``rnn`` and ``lstm`` hold their sum; ``gru`` both, exactly)."""
    sd, fixture = state_dict(load(name)), load(name)
    _, part, params, _ = model(name)
    back = to_torch(part, params, bias=bool(fixture["bias"]))
    assert {k: v.shape for k, v in back.items()} == {k: v.shape for k, v in sd.items()}
    for key, value in sd.items():
        if key.startswith("weight") or str(fixture["mode"]) == "GRU":
            np.testing.assert_array_equal(back[key], value)
        elif key.startswith("bias_ih"):
            other = key.replace("bias_ih", "bias_hh")
            np.testing.assert_array_equal(back[key] + back[other], value + sd[other])
    assert_trees_close(from_torch(part, back), params, rtol=0, atol=0)


# --- to_torch / from_torch -----------------------------------------------------------------------------------

TORCH_CELLS = ["rnn_tanh", "rnn_relu", "rnn_nobias", "lstm", "gru_reset_after"]


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
    """A stack fills and reads PyTorch layers ``layer``, ``layer + 1``, ...; ``strict=False`` reads one of them."""
    deep = jaxrnn.stack([CELLS["lstm"], CELLS["lstm"]])
    params = (random_params(CELLS["lstm"], seed=1), random_params(CELLS["lstm"], seed=2, input_size=H))
    sd = to_torch(deep, params, layer=1)
    assert sorted(sd) == sorted(f"{w}_l{n}" for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh") for n in (1, 2))
    assert_trees_close(from_torch(deep, sd, layer=1), params, rtol=0, atol=0)
    assert_trees_close(from_torch(CELLS["lstm"], sd, layer=2, strict=False), params[1], rtol=0, atol=0)
    with pytest.raises(StateDictMismatch, match=r"unexpected keys weight_ih_l1, weight_hh_l1, bias_ih_l1, bias_hh_l1"):
        from_torch(CELLS["lstm"], sd, layer=2)


def test_strict_refuses_keys_the_part_does_not_read():
    """A 1-layer part from a 2-layer (or bidirectional) state dict names the keys left over and what
    the dict holds, like ``load_state_dict(strict=True)``; ``strict=False`` reads the first layer."""
    sd = state_dict(load("lstm_2layer"))
    with pytest.raises(StateDictMismatch) as error:
        from_torch(jaxrnn.lstm(4), sd)
    assert isinstance(error.value, KeyError) and isinstance(error.value, ValueError)
    assert error.value.unexpected_keys == ["weight_ih_l1", "weight_hh_l1", "bias_ih_l1", "bias_hh_l1"]
    assert error.value.missing_keys == []
    assert "nn.LSTM(hidden_size=4, num_layers=2, bias=True, bidirectional=False)" in str(error.value)
    assert "strict=False" in str(error.value)
    two = from_torch(jaxrnn.stack([jaxrnn.lstm(4), jaxrnn.lstm(4)]), sd)
    assert_trees_close(from_torch(jaxrnn.lstm(4), sd, strict=False), two[0], rtol=0, atol=0)
    with pytest.raises(StateDictMismatch, match=r"unexpected keys weight_ih_l0_reverse, .*bidirectional=True"):
        from_torch(jaxrnn.lstm(4), state_dict(load("lstm_bidirectional")))


def test_strict_refuses_missing_keys():
    """A key the part reads must be there: no bias silently read as zero, no direction made up."""
    sd = state_dict(load("lstm"))
    partial = {k: v for k, v in sd.items() if k != "bias_hh_l0"}
    with pytest.raises(StateDictMismatch, match=r"missing keys bias_hh_l0\b") as error:
        from_torch(jaxrnn.lstm(4), partial)
    assert error.value.missing_keys == ["bias_hh_l0"] and error.value.unexpected_keys == []
    relaxed = from_torch(jaxrnn.lstm(4), partial, strict=False)  # reads the missing bias as zero, as asked
    np.testing.assert_array_equal(relaxed["bias"], sd["bias_ih_l0"])
    with pytest.raises(KeyError, match=r"missing keys weight_hh_l0\b"):  # a weight has no default, even then
        from_torch(jaxrnn.lstm(4), {k: v for k, v in sd.items() if k != "weight_hh_l0"}, strict=False)
    with pytest.raises(StateDictMismatch, match=r"missing keys weight_ih_l0_reverse, .*bidirectional=False"):
        from_torch(jaxrnn.bidirectional(jaxrnn.lstm(4), jaxrnn.lstm(4)), sd)


def test_modules_without_biases():
    """``bias=False`` both ways, strict: an LSTM/GRU reads zero biases (``rnn`` may hold none), and
    ``to_torch(bias=False)`` writes none -- and refuses to drop biases that are not zero."""
    for name in ("rnn_tanh_nobias", "lstm_2layer_nobias", "gru_bidirectional_nobias_packed"):
        sd = state_dict(load(name))
        assert not any(key.startswith("bias") for key in sd)
        _, part, params, _ = model(name)
        assert sorted(to_torch(part, params, bias=False)) == sorted(sd)
    params = from_torch(jaxrnn.lstm(4), state_dict(load("lstm_2layer_nobias")), strict=False)
    np.testing.assert_array_equal(params["bias"], 0.0)
    biased = from_torch(jaxrnn.rnn(4), state_dict(load("rnn_tanh_nobias")))  # a cell with biases: zeros
    np.testing.assert_array_equal(biased["bias"], 0.0)
    with pytest.raises(ValueError, match=r"bias=False: the cell of layer 0 has nonzero bias, which a PyTorch"):
        to_torch(CELLS["lstm"], random_params(CELLS["lstm"], seed=4), bias=False)
    with pytest.raises(ValueError, match=r"nonzero bias and recurrent_bias"):
        to_torch(CELLS["gru_reset_after"], random_params(CELLS["gru_reset_after"], seed=4), bias=False)
    unbiased = to_torch(CELLS["rnn_nobias"], random_params(CELLS["rnn_nobias"], seed=4), bias=True)
    np.testing.assert_array_equal(unbiased["bias_ih_l0"], 0.0)
    np.testing.assert_array_equal(unbiased["bias_hh_l0"], 0.0)
    assert unbiased["bias_ih_l0"].shape == (H,)


def test_to_torch_arrays_are_writable_and_their_own():
    """``torch.from_numpy`` warns about read-only arrays: each value owns writable, C-contiguous memory."""
    deep = jaxrnn.stack([jaxrnn.bidirectional(CELLS["gru_reset_after"], CELLS["gru_reset_after"])] * 2)
    params = random_params(deep, seed=0, input_size=3)
    sd = to_torch(deep, params)
    for key, value in sd.items():
        assert isinstance(value, np.ndarray) and value.flags.writeable and value.flags.c_contiguous, key
        assert value.flags.owndata or value.base is None or value.base.flags.owndata, key
    kernel = np.array(params[0]["forward"]["input_kernel"])
    sd["weight_ih_l0"][...] = 7.0  # the params are not written through
    np.testing.assert_array_equal(params[0]["forward"]["input_kernel"], kernel)


def test_prefix_reads_one_module_of_a_model():
    """A model's state dict: the keys are under the module's name. Without ``prefix`` the error names
    the prefixes; with it, that module alone is read (strictly), never another one."""
    encoder, decoder = state_dict(load("lstm")), state_dict(load("lstm_2layer"))
    model_sd = {**{f"encoder.{k}": v for k, v in encoder.items()}, **{f"decoder.{k}": v for k, v in decoder.items()},
                "head.weight": np.ones((2, 4), np.float32)}
    with pytest.raises(StateDictMismatch, match=r"under 'decoder\.', 'encoder\.': pass prefix= the one to read"):
        from_torch(jaxrnn.lstm(4), model_sd)
    assert_trees_close(from_torch(jaxrnn.lstm(4), model_sd, prefix="encoder."), from_torch(jaxrnn.lstm(4), encoder),
                       rtol=0, atol=0)
    deep = jaxrnn.stack([jaxrnn.lstm(4), jaxrnn.lstm(4)])
    assert_trees_close(from_torch(deep, model_sd, prefix="decoder"), from_torch(deep, decoder), rtol=0, atol=0)
    with pytest.raises(StateDictMismatch, match=r"unexpected keys decoder\.weight_ih_l1"):
        from_torch(jaxrnn.lstm(4), model_sd, prefix="decoder.")  # strict within the module
    with pytest.raises(StateDictMismatch, match=r"under 'rnn\.': pass prefix='rnn\.'"):
        from_torch(jaxrnn.lstm(4), {f"rnn.{k}": v for k, v in encoder.items()})
    with pytest.raises(StateDictMismatch, match=r"missing keys enc\.weight_ih_l0.*under 'decoder\.', 'encoder\.'"):
        from_torch(jaxrnn.lstm(4), model_sd, prefix="enc")  # 'enc.' is not 'encoder.'
    written = to_torch(jaxrnn.lstm(4), from_torch(jaxrnn.lstm(4), encoder), prefix="rnn")
    assert sorted(written) == sorted(f"rnn.{k}" for k in encoder)
    with pytest.raises(TypeError, match=r"prefix: expected a string"):
        from_torch(jaxrnn.lstm(4), encoder, prefix=None)


def test_the_elman_cell_names_its_activation():
    """``rnn``'s info says its nonlinearity, which its params cannot: interop reads it."""
    assert jaxrnn.rnn(3).info.activation == "tanh"  # the default, jnp.tanh, is found by identity
    assert jaxrnn.rnn(3, activation="relu").info.activation == "relu"
    assert jaxrnn.rnn(3, activation=jax.nn.relu).info.activation == "relu"
    assert jaxrnn.irnn(3).info.activation == "relu"
    assert jaxrnn.rnn(3, activation=lambda x: x).info.activation is None
    assert torch_spec(jaxrnn.rnn(3, activation="relu")).nonlinearity == "relu"
    assert str(torch_spec(part_for("RNN_RELU", 4, 2, True, False))) == (
        "nn.RNN(hidden_size=4, num_layers=2, bias=False, bidirectional=True, nonlinearity='relu')")


def test_activations_pytorch_has_no_module_for_are_refused():
    sd = state_dict(load("rnn_tanh"))
    for cell, named in ((jaxrnn.rnn(4, activation="gelu"), "'gelu'"),
                        (jaxrnn.rnn(4, activation=lambda x: x), "an unnamed function")):
        with pytest.raises(ValueError, match=f"nn.RNN computes tanh or relu; this cell computes {named}"):
            from_torch(cell, sd)
        with pytest.raises(ValueError, match="nn.RNN computes tanh or relu"):
            to_torch(cell, random_params(cell, seed=0, input_size=3))


def test_values_are_cast_to_the_parts_dtype():
    """Values of any floating dtype become the part's ``param_dtype`` (float64 rounds, as
    ``load_state_dict`` casts to the module's); ``to_torch`` writes the params' dtype, bfloat16 as
    float32; values that are not floating point are refused, by name."""
    sd = state_dict(load("gru"))
    wide = {k: v.astype(np.float64) + 1e-12 for k, v in sd.items()}
    part = jaxrnn.gru(4, reset_after=True)
    params = from_torch(part, wide)
    assert {leaf.dtype for leaf in jax.tree_util.tree_leaves(params)} == {jnp.dtype(jnp.float32)}
    assert_trees_close(params, from_torch(part, sd), rtol=0, atol=0)
    half = jaxrnn.gru(4, reset_after=True, param_dtype=jnp.bfloat16)
    narrow = from_torch(half, sd)
    assert {leaf.dtype for leaf in jax.tree_util.tree_leaves(narrow)} == {jnp.dtype(jnp.bfloat16)}
    back = to_torch(half, narrow)
    assert {value.dtype for value in back.values()} == {np.dtype(np.float32)}
    np.testing.assert_array_equal(back["weight_hh_l0"], np.asarray(narrow["recurrent_kernel"], np.float32).T)
    with pytest.raises(TypeError, match=r"weight_ih_l0: expected floating-point values, got int64"):
        from_torch(part, {**sd, "weight_ih_l0": np.ones((12, 3), np.int64)})


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


def test_the_reset_before_gru_is_rejected_with_a_clear_message():
    """PyTorch's GRU is the reset-after variant; ``gru()`` (reset before the product) cannot hold its weights."""
    sd = state_dict(load("gru"))
    with pytest.raises(ValueError, match=r"reset_after=True"):
        from_torch(jaxrnn.gru(4), sd)
    with pytest.raises(ValueError, match=r"reset_after=True"):
        to_torch(CELLS["gru"], random_params(CELLS["gru"], seed=3))
    with pytest.raises(ValueError, match=r"nn.GRU is the reset-after variant; gru\(4\) is the original GRU"):
        torch_spec(jaxrnn.stack([jaxrnn.gru(4)] * 2))


def test_what_a_part_is_comes_from_its_info_not_its_params():
    """A part built by hand from an LSTM's functions is of kind ``"custom"``: its (H, 4H) recurrent
    kernel does not make it an ``nn.LSTM``. A part that says it is an LSTM is read as one, and must
    then hold an LSTM's params; cells PyTorch has no module for are refused by kind."""
    lstm = jaxrnn.lstm(4)
    custom = jaxrnn.Part(lstm.init, lstm.initial_carry, lstm.step)
    assert custom.info.kind == "custom"
    sd = state_dict(load("lstm"))
    refused = r"custom\(\) is of kind 'custom', which no PyTorch recurrent module computes"
    with pytest.raises(ValueError, match=refused):
        from_torch(custom, sd)
    with pytest.raises(ValueError, match=refused):
        to_torch(custom, random_params(lstm, seed=0, input_size=3))
    with pytest.raises(ValueError, match=refused):
        torch_spec(jaxrnn.stack([lstm, custom]))
    with pytest.raises(ValueError, match=refused):
        from_torch(jaxrnn.bidirectional(lstm, custom), state_dict(load("lstm_bidirectional")))
    for cell in (jaxrnn.mingru(4), jaxrnn.minlstm(4), jaxrnn.linear(4)):
        with pytest.raises(ValueError, match=f"interop supports .*; {re.escape(jaxrnn.describe(cell))} is of kind "
                                             f"'{cell.info.kind}'"):
            torch_spec(cell)

    declared = jaxrnn.Part(lstm.init, lstm.initial_carry, lstm.step, info=jaxrnn.Info("lstm", 4))
    assert torch_spec(declared) == torch_spec(lstm)
    assert_trees_close(from_torch(declared, sd), from_torch(lstm, sd), rtol=0, atol=0)
    gru = jaxrnn.gru(4, reset_after=True)
    liar = jaxrnn.Part(gru.init, gru.initial_carry, gru.step, info=jaxrnn.Info("lstm", 4))  # a GRU's params
    with pytest.raises(ValueError, match=r"lstm\(4\) says it is a lstm cell of size 4 \(its info\), but its params "
                                         r"are not those of one"):
        to_torch(liar, random_params(gru, seed=0, input_size=3))
    with pytest.raises(ValueError, match=r"says it is a lstm cell of size 4"):
        from_torch(liar, sd)


def test_the_module_is_read_from_the_parts_description():
    """Kind, size, nonlinearity, bias, layers (nested stacks flattened) and directions, from ``info``;
    the errors name the part as the call that builds it."""
    lstm = jaxrnn.lstm(4)
    assert torch_spec(jaxrnn.stack([jaxrnn.stack([lstm, lstm]), lstm])).num_layers == 3
    deep = jaxrnn.stack([jaxrnn.stack([lstm, lstm]), lstm])
    params = random_params(deep, seed=0, input_size=3)
    assert sorted({key[-2:] for key in to_torch(deep, params)}) == ["l0", "l1", "l2"]
    assert_trees_close(from_torch(deep, to_torch(deep, params)), params, rtol=0, atol=0)
    spec = torch_spec(jaxrnn.stack([jaxrnn.bidirectional(jaxrnn.rnn(5, activation="relu", use_bias=False),
                                                         jaxrnn.rnn(5, activation="relu", use_bias=False))] * 3))
    assert (spec.kind, spec.hidden_size, spec.nonlinearity, spec.bias, spec.num_layers, spec.bidirectional) == (
        "rnn", 5, "relu", False, 3, True)
    with pytest.raises(ValueError, match=re.escape("residual=False, not stack([lstm(4), lstm(4)], residual=True)")):
        torch_spec(jaxrnn.stack([lstm, lstm], residual=True))
    with pytest.raises(ValueError, match=re.escape("merges by 'mean': bidirectional(lstm(4), lstm(4), merge='mean')")):
        torch_spec(jaxrnn.bidirectional(lstm, lstm, merge="mean"))
    with pytest.raises(ValueError, match=re.escape("this part mixes gru(4), lstm(4): "
                                                   "stack([lstm(4), gru(4, reset_after=True)])")):
        torch_spec(jaxrnn.stack([lstm, jaxrnn.gru(4, reset_after=True)]))
    with pytest.raises(ValueError, match=re.escape("'gelu': rnn(4, activation='gelu')")):
        torch_spec(jaxrnn.rnn(4, activation="gelu"))
    pair = jaxrnn.bidirectional(lstm, lstm)
    with pytest.raises(ValueError, match=r"reverse=True reads one direction"):
        to_torch(pair, random_params(pair, seed=0, input_size=3), reverse=True)


def test_mismatched_state_dicts_are_rejected():
    sd = state_dict(load("lstm"))
    with pytest.raises(ValueError, match=r"weight_ih_l0 does not fit a lstm\(5\) cell: expected shape \(20, 3\), "
                                         r"got \(16, 3\)"):
        from_torch(jaxrnn.lstm(5), sd)
    with pytest.raises(ValueError, match=r"weight_ih_l0 does not fit a rnn\(4\) cell: expected shape \(4, 3\)"):
        from_torch(jaxrnn.rnn(4), sd)
    with pytest.raises(KeyError, match=r"missing keys weight_ih_l1, weight_hh_l1, bias_ih_l1, bias_hh_l1"):
        from_torch(jaxrnn.lstm(4), sd, layer=1)
    with pytest.raises(ValueError, match=r"unexpected keys bias_ih_l0, bias_hh_l0.*built with use_bias=False"):
        from_torch(jaxrnn.rnn(4, use_bias=False), state_dict(load("rnn_tanh")))
    with pytest.raises(ValueError, match=r"bias_ih_l0 is nonzero, but the cells were built with use_bias=False"):
        from_torch(jaxrnn.rnn(4, use_bias=False), state_dict(load("rnn_tanh")), strict=False)
    zero_biases = {k: (v * 0 if k.startswith("bias") else v) for k, v in state_dict(load("rnn_tanh")).items()}
    assert set(from_torch(jaxrnn.rnn(4, use_bias=False), zero_biases, strict=False)) == {"input_kernel",
                                                                                       "recurrent_kernel"}
    unbiased = {k: v for k, v in state_dict(load("rnn_tanh")).items() if k.startswith("weight")}
    assert set(from_torch(jaxrnn.rnn(4, use_bias=False), unbiased)) == {"input_kernel", "recurrent_kernel"}


def test_a_deep_bidirectional_encoder_is_one_expression():
    """``stack([bidirectional(lstm, lstm)] * 2, dropout=p)`` over a padded batch, run by the same ``scan``
    call as a cell, with PyTorch's weights: PyTorch's outputs (eval mode: no dropout without a key),
    time-major or batch-major; dropout with a key."""
    fixture = load("lstm_2layer_bidirectional_packed")
    hidden = fixture["h0"].shape[-1]
    encoder = jaxrnn.stack([jaxrnn.bidirectional(jaxrnn.lstm(hidden), jaxrnn.lstm(hidden)),
                            jaxrnn.bidirectional(jaxrnn.lstm(hidden), jaxrnn.lstm(hidden))], dropout=0.5)
    params = from_torch(encoder, state_dict(fixture))
    xs, lengths = jnp.asarray(fixture["x"]), jnp.asarray(fixture["lengths"])
    carry = carry_from_torch(2, True, fixture["h0"], fixture["c0"])
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
    init = lambda part: random_params(part, seed=0, input_size=3)  # noqa: E731
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
    tanh, relu, unbiased = jaxrnn.rnn(4), jaxrnn.rnn(4, activation="relu"), jaxrnn.rnn(4, use_bias=False)
    for mixed, named in ((jaxrnn.stack([cell, jaxrnn.gru(4, reset_after=True)]), "gru(4), lstm(4)"),
                         (jaxrnn.stack([cell, jaxrnn.lstm(5)]), "lstm(4), lstm(5)"),
                         (jaxrnn.bidirectional(cell, jaxrnn.lstm(5)), "lstm(4), lstm(5)"),
                         (jaxrnn.stack([tanh, relu]), "rnn(4, relu), rnn(4, tanh)"),
                         (jaxrnn.stack([tanh, unbiased]), "rnn(4, tanh), rnn(4, tanh, no bias)")):
        with pytest.raises(ValueError, match=re.escape(f"one kind of cell (size, activation, bias) in every layer; "
                                                       f"this part mixes {named}")):
            to_torch(mixed, init(mixed))
    half = jaxrnn.stack([jaxrnn.bidirectional(cell, cell), cell])
    with pytest.raises(ValueError, match="all bidirectional or none"):
        to_torch(half, init(half))
    deep = jaxrnn.stack([cell, cell])
    with pytest.raises(ValueError, match="params do not fit this part"):
        to_torch(deep, init(deep)[:1])  # a layer short
    with pytest.raises(ValueError, match="params do not fit this part"):
        to_torch(jaxrnn.gru(4, reset_after=True), init(cell))  # an LSTM's params for a GRU
    with pytest.raises(TypeError, match="source: expected an nn.RNN/nn.LSTM/nn.GRU or a mapping"):
        from_torch(cell, list(sd.items()))
    with pytest.raises(TypeError, match="layer: expected an integer >= 0, got '0'"):
        from_torch(cell, sd, layer="0")
    with pytest.raises(TypeError, match="strict: expected True or False, got 1"):
        from_torch(cell, sd, strict=1)
    with pytest.raises(TypeError, match="reverse: expected True or False, got 'yes'"):
        to_torch(cell, init(cell), reverse="yes")
    with pytest.raises(TypeError, match="bias: expected True or False, got 0"):
        to_torch(cell, init(cell), bias=0)


# --- against PyTorch itself (skipped without it) -------------------------------------------------------------

LAYOUTS = [(mode, layers, bidirectional, bias) for mode in ("RNN_TANH", "RNN_RELU", "LSTM", "GRU")
           for layers in (1, 2) for bidirectional in (False, True) for bias in (True, False)]
LIVE_T, LIVE_B, LIVE_I, LIVE_H = 6, 3, 3, 4
LIVE_LENGTHS = [6, 2, 4]  # unsorted: pack_padded_sequence(enforce_sorted=False)


def live_module(mode: str, layers: int, bidirectional: bool, bias: bool, seed: int):
    """A seeded ``nn.RNN``/``nn.LSTM``/``nn.GRU`` (float32, PyTorch's own initialisation, biases included)."""
    import torch

    torch.manual_seed(seed)
    options = {"nonlinearity": mode[4:].lower()} if mode.startswith("RNN") else {}
    cls = {"LSTM": torch.nn.LSTM, "GRU": torch.nn.GRU}.get(mode, torch.nn.RNN)
    return cls(LIVE_I, LIVE_H, num_layers=layers, bias=bias, bidirectional=bidirectional, **options)


def layout_id(layout_: tuple) -> str:
    mode, layers, bidirectional, bias = layout_
    return f"{mode.lower()}-{layers}layer{'-bidirectional' if bidirectional else ''}{'' if bias else '-nobias'}"


@needs_torch
@pytest.mark.parametrize("mode,layers,bidirectional,bias", LAYOUTS, ids=map(layout_id, LAYOUTS))
def test_every_pytorch_layout_both_ways_strict(mode, layers, bidirectional, bias):
    """A seeded module read into its part (strict, checked against it): PyTorch's outputs and final
    states on a full and on a packed batch; written back, ``load_state_dict(strict=True)`` into a
    fresh module holds the same tensors (``rnn``/``lstm`` biases: the same sum, which is all the
    part holds) and reads back into the same params, exactly; ``torch_module`` builds that module."""
    import torch
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    seed, lstm = LAYOUTS.index((mode, layers, bidirectional, bias)), mode == "LSTM"
    module = live_module(mode, layers, bidirectional, bias, seed)
    part = part_for(mode, LIVE_H, layers, bidirectional, bias)
    params = from_torch(part, module)
    assert_trees_close(from_torch(part, module.state_dict()), params, rtol=0, atol=0)

    generator = torch.Generator().manual_seed(seed)
    states = layers * (2 if bidirectional else 1)
    x = torch.randn(LIVE_T, LIVE_B, LIVE_I, generator=generator)
    h0, c0 = (torch.randn(states, LIVE_B, LIVE_H, generator=generator) for _ in range(2))
    reference = copy.deepcopy(module).double()  # float64: the reference is exact, jaxrnn runs float32
    carry = carry_from_torch(layers, bidirectional, h0.numpy(), c0.numpy() if lstm else None)
    results = live_runner(part, layers, bidirectional, lstm)(params, jnp.asarray(x.numpy()), carry,
                                                              jnp.asarray(LIVE_LENGTHS))
    for lengths, got in zip((None, LIVE_LENGTHS), results):
        inputs = x.double()
        if lengths is not None:
            inputs = pack_padded_sequence(inputs, torch.tensor(lengths), enforce_sorted=False)
        with torch.no_grad():
            out, final = reference(inputs, (h0.double(), c0.double()) if lstm else h0.double())
        if lengths is not None:
            out, _ = pad_packed_sequence(out, total_length=LIVE_T)
        expected = (out, *final) if lstm else (out, final)
        for name, value, want in zip(("out", "h_n", "c_n"), got, expected):
            np.testing.assert_allclose(value, want.numpy(), rtol=1e-5, atol=1e-5, err_msg=f"{name}, lengths={lengths}")

    back = to_torch(part, params, bias=bias)
    fresh = live_module(mode, layers, bidirectional, bias, seed + 1000)
    fresh.load_state_dict({key: torch.from_numpy(value) for key, value in back.items()}, strict=True)
    original, loaded = module.state_dict(), fresh.state_dict()
    assert list(loaded) == list(original)
    for key in original:
        if key.startswith("weight") or mode == "GRU":
            assert torch.equal(loaded[key], original[key]), key
        elif key.startswith("bias_ih"):
            other = key.replace("bias_ih", "bias_hh")
            assert torch.equal(loaded[key] + loaded[other], original[key] + original[other]), key
    assert_trees_close(from_torch(part, fresh), params, rtol=0, atol=0)
    built = torch_module(part, params, bias=bias)
    assert type(built) is type(module)
    check_module(part, built)
    assert all(torch.equal(built.state_dict()[key], value) for key, value in loaded.items())


@needs_torch
def test_a_module_is_checked_against_the_part():
    """What a state dict cannot show -- ``nn.RNN``'s nonlinearity, a projection, biases the cells
    lack -- or shows only as stray keys: the module says, and a part that does not match is refused."""
    import torch

    relu = torch.nn.RNN(3, 4, nonlinearity="relu")
    with pytest.raises(ValueError, match=r"nonlinearity: the part's rnn computes tanh, the module relu"):
        from_torch(jaxrnn.rnn(4), relu)
    with pytest.raises(ValueError, match=r"nonlinearity"):
        check_module(jaxrnn.rnn(4), relu)
    assert set(from_torch(jaxrnn.rnn(4, activation="relu"), relu)) == {"input_kernel", "recurrent_kernel", "bias"}
    from_torch(jaxrnn.rnn(4), relu.state_dict())  # a state dict cannot tell: documented, pass the module
    deep = torch.nn.LSTM(3, 4, num_layers=2, bidirectional=True)
    with pytest.raises(ValueError, match=r"is not the part's .*num_layers: the part has 1, the module 2; "
                                         r"bidirectional: the part is False, the module True"):
        from_torch(jaxrnn.lstm(4), deep)
    one = from_torch(jaxrnn.bidirectional(jaxrnn.lstm(4), jaxrnn.lstm(4)), deep, strict=False)  # its first layer
    assert_trees_close(one, from_torch(part_for("LSTM", 4, 2, True), deep)[0], rtol=0, atol=0)
    for part, message in ((jaxrnn.lstm(5), "hidden_size: the part has 5, the module 4"),
                          (jaxrnn.gru(4, reset_after=True), "kind: the part is gru, the module an nn.LSTM")):
        with pytest.raises(ValueError, match=message):
            from_torch(part, torch.nn.LSTM(3, 4))
    with pytest.raises(ValueError, match=r"reset_after=True"):
        from_torch(jaxrnn.gru(4), torch.nn.GRU(3, 4))
    with pytest.raises(ValueError, match=r"proj_size: jaxrnn's cells have no projection, the module has proj_size=2"):
        from_torch(jaxrnn.lstm(4), torch.nn.LSTM(3, 4, proj_size=2))
    with pytest.raises(ValueError, match=r"bias: the part's cells were built with use_bias=False, the module has"):
        from_torch(jaxrnn.rnn(4, use_bias=False), torch.nn.RNN(3, 4))
    with pytest.raises(TypeError, match=r"module: expected an nn.RNN, nn.LSTM or nn.GRU, got a Linear$"):
        check_module(jaxrnn.lstm(4), torch.nn.Linear(3, 4))


@needs_torch
def test_a_model_holding_two_recurrent_modules():
    """A model, or its state dict: ``prefix`` names the module to read; without it, the error lists them."""
    import torch

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder, self.decoder = torch.nn.LSTM(3, 4), torch.nn.LSTM(4, 4, num_layers=2)
            self.head = torch.nn.Linear(4, 2)

    torch.manual_seed(0)
    model_ = Model()
    cell, deep = jaxrnn.lstm(4), jaxrnn.stack([jaxrnn.lstm(4), jaxrnn.lstm(4)])
    with pytest.raises(TypeError, match=r"got a Model; its recurrent modules are 'encoder', 'decoder': pass prefix="):
        from_torch(cell, model_)
    with pytest.raises(StateDictMismatch, match=r"under 'decoder\.', 'encoder\.'"):
        from_torch(cell, model_.state_dict())
    assert_trees_close(from_torch(deep, model_, prefix="decoder"), from_torch(deep, model_.decoder), rtol=0, atol=0)
    assert_trees_close(from_torch(cell, model_.state_dict(), prefix="encoder."), from_torch(cell, model_.encoder),
                       rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"prefix: the model has no submodule 'rnn'; its recurrent modules are "
                                         r"'encoder', 'decoder'"):
        from_torch(cell, model_, prefix="rnn")


@needs_torch
def test_tensors_of_any_dtype_requiring_grad_or_not():
    """Tensors are detached; float64 and bfloat16 tensors are cast to the part's dtype, explicitly."""
    import torch

    torch.manual_seed(1)
    module = torch.nn.GRU(3, 4, num_layers=2)
    assert all(p.requires_grad for p in module.parameters())
    part = part_for("GRU", 4, 2, False)
    params = from_torch(part, module)
    assert_trees_close(from_torch(part, copy.deepcopy(module).double()), params, rtol=0, atol=0)
    half = copy.deepcopy(module).to(torch.bfloat16)
    widened = from_torch(part, half)
    assert {leaf.dtype for leaf in jax.tree_util.tree_leaves(widened)} == {jnp.dtype(jnp.float32)}
    assert_trees_close(widened, jax.tree_util.tree_map(lambda a: a.astype(jnp.bfloat16).astype(jnp.float32), params),
                       rtol=0, atol=0)
    bf16 = jaxrnn.stack([jaxrnn.gru(4, reset_after=True, param_dtype=jnp.bfloat16)] * 2)
    narrow = from_torch(bf16, half)
    assert {leaf.dtype for leaf in jax.tree_util.tree_leaves(narrow)} == {jnp.dtype(jnp.bfloat16)}
    rebuilt = torch_module(bf16, narrow)
    assert {p.dtype for p in rebuilt.parameters()} == {torch.bfloat16}
    assert all(torch.equal(rebuilt.state_dict()[k], v) for k, v in half.state_dict().items())


@needs_torch
def test_to_torch_loads_without_a_warning():
    """Writable arrays: ``torch.from_numpy`` does not warn, and the tensors do not share the params' memory."""
    import torch

    part = part_for("LSTM", 4, 2, True)
    params = random_params(part, seed=0, input_size=3)
    module = torch.nn.LSTM(3, 4, num_layers=2, bidirectional=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        module.load_state_dict({k: torch.from_numpy(v) for k, v in to_torch(part, params).items()}, strict=True)
    built = torch_module(part, params, batch_first=True)
    assert built.batch_first and built.dropout == 0.0
    stacked = jaxrnn.stack([jaxrnn.lstm(4)] * 2, dropout=0.25)
    dropped = torch_module(stacked, random_params(stacked, seed=1, input_size=3))
    assert dropped.dropout == 0.25 and dropped.num_layers == 2
