"""Parameters to and from PyTorch's ``nn.RNN``, ``nn.LSTM`` and ``nn.GRU``.

PyTorch is not a dependency: state dicts may hold tensors or anything
``numpy.asarray`` accepts. The mapping, for layer ``k`` (``_reverse`` appended
for the backward direction of a bidirectional PyTorch module):

==========================  ==========================================
PyTorch                     jaxrnn
==========================  ==========================================
``weight_ih_lk  (G*H, I)``  ``input_kernel (I, G*H)`` (transposed)
``weight_hh_lk  (G*H, H)``  ``recurrent_kernel (H, G*H)`` (transposed)
``bias_ih_lk + bias_hh_lk`` ``bias`` (``rnn``, ``lstm``: they only add up)
``bias_ih_lk``, ``bias_hh_lk`` ``bias``, ``recurrent_bias`` (``gru(reset_after=True)``)
==========================  ==========================================

Gate orders agree: LSTM input, forget, cell, output; GRU reset, update, new.
"""

from __future__ import annotations

from typing import Any, Mapping

import jax
import numpy as np

from jaxrnn import checks
from jaxrnn.layers.bidirectional import Bidirectional
from jaxrnn.layers.stack import check_layers, layers_of
from jaxrnn.parts import Cell, Layer, Params, Part, SplitStep


SUPPORTED = ("interop supports jaxrnn.rnn, jaxrnn.lstm, jaxrnn.gru(reset_after=True), and stacks and "
             "bidirectional layers of them")


def from_torch(part: Part, state_dict: Mapping[str, Any], layer: int = 0, *, reverse: bool = False) -> Params:
    """jaxrnn params for ``part`` from a PyTorch state dict.

    Args:
      part: ``jaxrnn.rnn``, ``jaxrnn.lstm``, ``jaxrnn.gru(reset_after=True)``
        (PyTorch's GRU is the reset-after variant); a ``jaxrnn.bidirectional``
        of two of them (merge ``"concat"``), which reads layer ``layer`` and its
        ``_reverse``; or a ``jaxrnn.stack`` of these, which takes PyTorch layers
        ``layer``, ``layer + 1``, ... -- ``nn.LSTM(num_layers=k,
        bidirectional=True)`` is ``stack([bidirectional(lstm(H), lstm(H))] * k)``.
      state_dict: ``module.state_dict()`` of an ``nn.RNN``/``nn.LSTM``/``nn.GRU``:
        tensors (on any device) or anything ``numpy.asarray`` takes.
      layer: the first PyTorch layer to read (``_lk`` suffix).
      reverse: read the backward direction (``_reverse``) into a cell or a stack of cells.

    Returns:
      params shaped and typed like ``part.init``'s.

    Raises:
      KeyError: the state dict lacks a layer.
      ValueError: a part PyTorch has no counterpart for, or shapes that do not fit.
    """
    checks.part("part", part)
    if not isinstance(state_dict, Mapping):
        raise TypeError(f"state_dict: expected a mapping of names to arrays (module.state_dict()), "
                        f"got {type(state_dict).__name__}")
    layer, reverse = checks.size("layer", layer, minimum=0), checks.flag("reverse", reverse)
    arrays = {name: _numpy(value) for name, value in state_dict.items()}
    first = _get(arrays, "weight_ih", layer, reverse)
    input_size = int(first.shape[1])  # static: a traced size could not shape the params
    template = jax.eval_shape(lambda key: part.init(key, input_size), jax.random.key(0))
    return _walk(part, template, layer, reverse, lambda t, n, r: _layer_from_torch(t, arrays, n, r))


def to_torch(part: Part, params: Params, layer: int = 0, *, reverse: bool = False) -> dict[str, np.ndarray]:
    """A PyTorch state dict (numpy arrays; wrap with ``torch.from_numpy``) for ``params``.

    The inverse of :func:`from_torch`: ``load_state_dict`` of the result into
    the matching PyTorch module computes the same function. A stack fills
    layers ``layer``, ``layer + 1``, ...; a bidirectional layer fills a layer
    and its ``_reverse``.
    """
    checks.part("part", part)
    layer, reverse = checks.size("layer", layer, minimum=0), checks.flag("reverse", reverse)
    first = jax.tree_util.tree_leaves(params)
    kernel = _first_input_kernel(params)
    if kernel is None or not first:
        raise ValueError(SUPPORTED)
    checks.check_params_fit(part, params, int(np.shape(kernel)[0]))
    expected = jax.eval_shape(lambda key: part.init(key, int(np.shape(kernel)[0])), jax.random.key(0))
    shapes = lambda tree: jax.tree_util.tree_map(lambda a: tuple(np.shape(a)), tree)  # noqa: E731
    if shapes(params) != shapes(expected):
        raise ValueError(f"params do not fit this part: expected shapes {shapes(expected)}, got {shapes(params)}")
    out: dict[str, np.ndarray] = {}
    _walk(part, params, layer, reverse, lambda p, n, r: out.update(_layer_to_torch(p, n, r)))
    return out


def _first_input_kernel(params: Any) -> Any:
    """The ``input_kernel`` of the first cell of ``params`` (its input size), or ``None``."""
    while isinstance(params, (tuple, list)) and params:
        params = params[0]
    if isinstance(params, Mapping) and "forward" in params:
        return _first_input_kernel(params["forward"])
    return params.get("input_kernel") if isinstance(params, Mapping) else None


def torch_layers(part: Part) -> int:
    """How many PyTorch layers ``part`` holds: one per cell or bidirectional layer of a stack."""
    stacked = layers_of(part)
    return 1 if stacked is None else sum(torch_layers(p) for p in stacked.parts)


def _walk(part: Part, tree: Any, layer: int, reverse: bool, visit) -> Any:
    """``visit(cell_params, torch_layer, reverse)`` for each cell of ``part``, in PyTorch's layer order.

    Checks first that ``part`` is what one PyTorch module holds: one cell kind
    and size in every layer and direction, every layer bidirectional or none.
    """
    kinds = {(_cell_kind(cell), _hidden(cell)) for cell in _cells(part)}
    if len(kinds) > 1:
        raise ValueError(f"a PyTorch module holds one kind and size of cell in every layer; this part mixes "
                         f"{', '.join(f'{k}({h})' for k, h in sorted(kinds))}")
    layers = layers_of(part).parts if layers_of(part) is not None else (part,)
    if len({isinstance(p, Layer) for p in layers}) > 1:
        raise ValueError("a PyTorch module's layers are all bidirectional or none; this stack mixes them")
    return _walk_unchecked(part, tree, layer, reverse, visit)


def _cells(part: Part) -> list[Part]:
    """The cells of ``part``, through stacks and bidirectional layers."""
    stacked = layers_of(part)
    if stacked is not None:
        return [cell for p in stacked.parts for cell in _cells(p)]
    if isinstance(part, Layer) and isinstance(part.apply, Bidirectional):
        return _cells(part.apply.forward) + _cells(part.apply.backward)
    return [part]


def _cell_kind(cell: Part) -> str:
    shapes = jax.eval_shape(lambda key: cell.init(key, 1), jax.random.key(0)) if isinstance(cell, Cell) else None
    return _kind(shapes) if isinstance(shapes, Mapping) and "recurrent_kernel" in shapes else type(cell).__name__


def _hidden(cell: Part) -> int:
    shapes = jax.eval_shape(lambda key: cell.init(key, 1), jax.random.key(0)) if isinstance(cell, Cell) else None
    return int(shapes["recurrent_kernel"].shape[0]) if isinstance(shapes, Mapping) and "recurrent_kernel" in shapes else 0


def _walk_unchecked(part: Part, tree: Any, layer: int, reverse: bool, visit) -> Any:
    stacked = layers_of(part)
    if stacked is not None:
        if stacked.residual:
            raise ValueError("PyTorch's recurrent modules have no residual connections: build the stack with residual=False")
        check_layers(tree, tree, len(stacked.parts))
        out = []
        for sub, subtree in zip(stacked.parts, tree):
            out.append(_walk_unchecked(sub, subtree, layer, reverse, visit))
            layer += torch_layers(sub)
        return tuple(out)
    if isinstance(part, Layer) and isinstance(part.apply, Bidirectional):
        directions = part.apply
        if directions.merge != "concat":
            raise ValueError(f"PyTorch's bidirectional layers concatenate the directions; this one merges by {directions.merge!r}")
        if reverse or layers_of(directions.forward) or layers_of(directions.backward):
            raise ValueError("a PyTorch bidirectional layer is one cell per direction; stack bidirectional layers instead")
        return {"forward": _walk_unchecked(directions.forward, tree["forward"], layer, False, visit),
                "backward": _walk_unchecked(directions.backward, tree["backward"], layer, True, visit)}
    if isinstance(part, Cell) and isinstance(part.step, SplitStep):
        return visit(tree, layer, reverse)
    raise ValueError(SUPPORTED)


def _layer_from_torch(template: dict, arrays: dict[str, np.ndarray], layer: int, reverse: bool) -> dict:
    kind = _kind(template)
    w_ih, w_hh = _get(arrays, "weight_ih", layer, reverse), _get(arrays, "weight_hh", layer, reverse)
    b_ih, b_hh = _get(arrays, "bias_ih", layer, reverse, None), _get(arrays, "bias_hh", layer, reverse, None)
    params = {"input_kernel": w_ih.T, "recurrent_kernel": w_hh.T}
    if kind == "gru":
        params["bias"], params["recurrent_bias"] = _or_zeros(b_ih, w_ih), _or_zeros(b_hh, w_ih)
    elif "bias" in template:
        params["bias"] = _or_zeros(b_ih, w_ih) + _or_zeros(b_hh, w_ih)
    elif b_ih is not None and (np.any(b_ih) or np.any(_or_zeros(b_hh, w_ih))):
        raise ValueError(f"layer {layer} of the state dict has biases, but the cell was built with use_bias=False")
    for name, spec in template.items():
        if params[name].shape != spec.shape:
            raise ValueError(f"state dict layer {layer} does not fit a {kind} cell: {name} expected shape "
                             f"{spec.shape}, got {params[name].shape}")
        params[name] = jax.numpy.asarray(params[name], spec.dtype)
    return params


def _layer_to_torch(params: dict, layer: int, reverse: bool) -> dict[str, np.ndarray]:
    kind = _kind(params)
    params = {name: _torch_compatible(value) for name, value in params.items()}
    suffix = f"_l{layer}" + ("_reverse" if reverse else "")
    w_ih = np.asarray(params["input_kernel"]).T
    out = {f"weight_ih{suffix}": w_ih, f"weight_hh{suffix}": np.asarray(params["recurrent_kernel"]).T}
    if kind == "gru":
        out[f"bias_ih{suffix}"] = np.asarray(params["bias"])
        out[f"bias_hh{suffix}"] = np.asarray(params["recurrent_bias"])
    elif "bias" in params:
        out[f"bias_ih{suffix}"] = np.asarray(params["bias"])
        out[f"bias_hh{suffix}"] = np.zeros_like(out[f"bias_ih{suffix}"])
    return out


def _kind(params: Mapping[str, Any]) -> str:
    """Which PyTorch module a layer's params correspond to, read off their keys and shapes."""
    if not isinstance(params, Mapping) or "recurrent_kernel" not in params:
        raise ValueError(SUPPORTED)
    if "candidate_kernel" in params:
        raise ValueError("PyTorch's nn.GRU is the reset-after variant: build the cell with jaxrnn.gru(H, reset_after=True)")
    if "recurrent_bias" in params:
        return "gru"
    hidden, width = params["recurrent_kernel"].shape
    kinds = {hidden: "rnn", 4 * hidden: "lstm"}
    if width not in kinds:
        raise ValueError(f"recurrent_kernel of shape {(hidden, width)} fits no PyTorch module: expected "
                         f"({hidden}, {hidden}) for nn.RNN or ({hidden}, {4 * hidden}) for nn.LSTM")
    return kinds[width]


def _get(arrays: dict, name: str, layer: int, reverse: bool, *default: Any) -> Any:
    key = f"{name}_l{layer}" + ("_reverse" if reverse else "")
    if key in arrays:
        return arrays[key]
    if default:
        return default[0]
    raise KeyError(f"state dict has no {key!r}; it has {', '.join(sorted(arrays))}")


def _or_zeros(bias: np.ndarray | None, weight: np.ndarray) -> np.ndarray:
    return np.zeros(weight.shape[0], weight.dtype) if bias is None else bias


def _torch_compatible(value: Any) -> np.ndarray:
    """``value`` as numpy, bfloat16 widened to float32 (``torch.from_numpy`` has no bfloat16)."""
    value = np.asarray(value)
    return value.astype(np.float32) if value.dtype == jax.numpy.bfloat16 else value


def _numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch.Tensor, possibly on a GPU or requiring grad
        value = value.detach().cpu().numpy()
    return np.asarray(value)
