"""Parameters to and from PyTorch's ``nn.RNN``, ``nn.LSTM`` and ``nn.GRU``.

PyTorch is not a dependency, and this module never imports it: state dicts
may hold tensors or anything ``numpy.asarray`` accepts, and the torch objects
it makes or checks come from the ``torch`` its caller imported. The
mapping, for layer ``k`` (``_reverse`` appended for the backward direction of
a bidirectional PyTorch module):

==========================  ==========================================
PyTorch                     jaxrnn
==========================  ==========================================
``weight_ih_lk  (G*H, I)``  ``input_kernel (I, G*H)`` (transposed)
``weight_hh_lk  (G*H, H)``  ``recurrent_kernel (H, G*H)`` (transposed)
``bias_ih_lk + bias_hh_lk`` ``bias`` (``rnn``, ``lstm``: they only add up)
``bias_ih_lk``, ``bias_hh_lk`` ``bias``, ``recurrent_bias`` (``gru(reset_after=True)``)
==========================  ==========================================

Gate orders agree: LSTM input, forget, cell, output; GRU reset, update, new.

What a part is comes from what it says it is, ``part.info`` (:class:`jaxrnn.Info`),
never from its params: the module from ``info.kind`` (``"rnn"``, ``"lstm"``,
``"gru"`` with ``info.variant == "reset_after"``), ``nn.RNN``'s nonlinearity from
``info.activation``, ``hidden_size`` from ``info.size``, ``bias`` from the
``use_bias`` option, the layers from a stack's ``info.parts`` and the directions
from a bidirectional layer's. A part of kind ``"custom"`` (built with
``jaxrnn.Part(...)``) is refused whatever its params' shapes; a part that says it
is a cell must hold that cell's params.
A module built with ``bias=False`` is a cell whose biases are zero
(``jaxrnn.rnn(H, use_bias=False)`` holds none; ``lstm`` and ``gru`` hold zeros).

Strict by default, like ``load_state_dict(strict=True)``: :func:`from_torch`
reads every key (under ``prefix``) into the part or fails naming the keys
missing and unexpected, and a module passed in place of its state dict is
checked against the part for what the weights cannot show (``nn.RNN``'s
nonlinearity, ``bias``, ``proj_size``, the layers and directions).

Dtypes: :func:`from_torch` casts every value to the dtype ``part.init`` gives
(the cells' ``param_dtype``; float64 rounds to float32), as ``load_state_dict``
casts to the module's; :func:`to_torch` writes the params' dtype, bfloat16 as
float32 (exactly: numpy has no bfloat16 that ``torch.from_numpy`` takes).
"""

from __future__ import annotations

import re
import sys
from typing import Any, Callable, Mapping, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxrnn import checks
from jaxrnn.layers.bidirectional import check_params as check_bidirectional_params
from jaxrnn.layers.stack import check_layers
from jaxrnn.parts import Params, Part, describe

__all__ = ["StateDictMismatch", "TorchSpec", "check_module", "from_torch", "to_torch", "torch_layers", "torch_module",
           "torch_spec"]

SUPPORTED = ("interop supports jaxrnn.rnn (tanh or relu), jaxrnn.lstm, jaxrnn.gru(reset_after=True), and stacks "
             "and bidirectional layers of them")

# PyTorch's names for the parameters of layer k of an nn.RNN/LSTM/GRU (hr: nn.LSTM's projection)
_TORCH_KEY = re.compile(r"(weight|bias)_(ih|hh|hr)_l(\d+)(_reverse)?")
_MODES = {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}  # info.kind -> nn.<mode>
_GATES = {"rnn": 1, "lstm": 4, "gru": 3}  # the G of a (G*H, I) weight


class TorchSpec(NamedTuple):
    """What a PyTorch recurrent module is, less its input size: the arguments that build it (:func:`torch_spec`).

    ``kind`` is ``"rnn"``, ``"lstm"`` or ``"gru"``; ``nonlinearity`` is
    ``nn.RNN``'s (``None`` for the others); ``bias``: whether the cells hold biases.
    """

    kind: str
    hidden_size: int
    nonlinearity: str | None
    bias: bool
    num_layers: int
    bidirectional: bool

    def __str__(self) -> str:
        options = [f"hidden_size={self.hidden_size}", f"num_layers={self.num_layers}", f"bias={self.bias}",
                   f"bidirectional={self.bidirectional}"]
        if self.nonlinearity is not None:
            options.append(f"nonlinearity={self.nonlinearity!r}")
        return f"nn.{_MODES[self.kind]}({', '.join(options)})"


class StateDictMismatch(KeyError, ValueError):
    """A state dict whose keys are not the part's: ``missing_keys`` and ``unexpected_keys``.

    A ``KeyError`` (a key is missing) and a ``ValueError`` (the dict does not fit
    the part), so either ``except`` catches it.
    """

    def __init__(self, message: str, missing_keys: list[str], unexpected_keys: list[str]):
        super().__init__(message)
        self.missing_keys, self.unexpected_keys = missing_keys, unexpected_keys

    def __str__(self) -> str:  # KeyError's would quote the message
        return str(self.args[0])


def from_torch(part: Part, source: Any, layer: int = 0, *, reverse: bool = False, prefix: str = "",
               strict: bool = True) -> Params:
    """jaxrnn params for ``part`` from a PyTorch module or its state dict.

    Args:
      part: read from its ``info`` (see the module's docstring):
        ``jaxrnn.rnn`` (``activation="tanh"`` or ``"relu"``), ``jaxrnn.lstm``,
        ``jaxrnn.gru(reset_after=True)`` (PyTorch's GRU is the reset-after
        variant); a ``jaxrnn.bidirectional`` of two of them (merge ``"concat"``),
        which reads layer ``layer`` and its ``_reverse``; or a ``jaxrnn.stack``
        of these, which reads PyTorch layers ``layer``, ``layer + 1``, ... --
        ``nn.LSTM(I, H, num_layers=k, bidirectional=True)`` is
        ``stack([bidirectional(lstm(H), lstm(H))] * k)``.
      source: an ``nn.RNN``/``nn.LSTM``/``nn.GRU``, checked against ``part``
        (:func:`check_module`; with ``strict=False`` its layers and directions
        may outnumber the part's); a model holding one, with ``prefix`` its
        name; or a state dict (``module.state_dict()``, ``model.state_dict()``
        with ``prefix``): names to tensors (on any device, requiring grad or
        not, any floating dtype) or anything ``numpy.asarray`` takes. A state
        dict cannot tell ``nn.RNN``'s nonlinearity: pass the module to have it
        checked.
      layer: the first PyTorch layer to read (``_lk`` suffix).
      reverse: read the backward direction (``_reverse``) into a cell or a stack of cells.
      prefix: the module's name in a model (``"rnn"`` or ``"rnn."``): of a
        state dict, only the keys that start with ``"rnn."`` are read (that
        start dropped), and ``strict`` applies to them alone; of a model, its
        submodule ``rnn``. Never guessed: without it, keys under a prefix are
        unexpected, and the error lists the prefixes found.
      strict: every key under ``prefix`` must be one the part reads, and every
        key it reads must be there. ``strict=False`` ignores the keys the part
        does not read (to take some layers of a module) and reads missing
        biases as zeros; biases the part has no place for must still be zero.

    Returns:
      params shaped like ``part.init``'s, in its dtypes.

    Raises:
      StateDictMismatch: (a ``KeyError`` and a ``ValueError``) keys missing or
        unexpected; the message names them, what the state dict holds, and a
        prefix its keys share.
      ValueError: a part PyTorch has no counterpart for, a module that is not
        the part's, shapes that do not fit, nonzero biases for a cell without them.
      TypeError: arguments of the wrong type, values that are not floating point.
    """
    checks.part("part", part)
    layer, reverse = checks.size("layer", layer, minimum=0), checks.flag("reverse", reverse)
    strict, prefix = checks.flag("strict", strict), _prefix(prefix)
    spec = torch_spec(part)
    module = _recurrent_module(source, prefix)
    if module is not None:
        _check_module(spec, module, whole=strict)
        whole = scope = dict(module.state_dict())
    elif isinstance(source, Mapping):
        whole = dict(source)
        if not all(isinstance(key, str) for key in whole):
            raise TypeError(f"state_dict: expected string keys, got {sorted({type(k).__name__ for k in whole})}")
        scope = {key[len(prefix):]: value for key, value in whole.items() if key.startswith(prefix)}
    else:
        raise TypeError(f"source: expected an nn.RNN/nn.LSTM/nn.GRU or a mapping of names to arrays "
                        f"(module.state_dict()), got {type(source).__name__}")

    slots = _slots(part, layer, reverse)
    has_bias = bool(module.bias) if module is not None else any(_is_bias(key) for key in scope)
    expected = [key for slot in slots for key in _keys(slot, spec.bias and has_bias)]
    missing = [key for key in expected if key not in scope]
    unexpected = [key for key in scope if key not in set(expected)]
    if (strict and (missing or unexpected)) or any(not _is_bias(key) for key in missing):
        raise _mismatch(spec, slots, scope, whole, prefix, missing, unexpected if strict else [])
    if not spec.bias:  # strict=False with biases for cells built without: dropping them must change nothing
        for key in (key for slot in slots for key in _keys(slot, True) if _is_bias(key) and key in scope):
            if np.any(_numpy(prefix + key, scope[key])):
                raise ValueError(f"{prefix + key} is nonzero, but the cells were built with use_bias=False: "
                                 f"build them with use_bias=True")

    arrays = {key: _numpy(prefix + key, scope[key]) for key in expected if key in scope}
    first = arrays[_keys(slots[0], False)[0]]
    if first.ndim != 2:
        raise ValueError(f"{prefix + _keys(slots[0], False)[0]}: expected a matrix (gates * hidden, input), "
                         f"got shape {first.shape}")
    input_size = int(first.shape[1])  # static: a traced size could not shape the params
    template = jax.eval_shape(lambda key: part.init(key, input_size), jax.random.key(0))
    return _walk(part, template, layer, reverse,
                 lambda cell, cell_spec, t, n, r: _layer_from_torch(cell_spec, t, arrays, prefix, n, r))


def to_torch(part: Part, params: Params, layer: int = 0, *, reverse: bool = False, bias: bool | None = None,
             prefix: str = "") -> dict[str, np.ndarray]:
    """A PyTorch state dict for ``params``: the inverse of :func:`from_torch`.

    ``module.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()})``
    (strict) into the matching module -- :func:`torch_module` builds it --
    computes the same function. A stack fills layers ``layer``, ``layer + 1``,
    ...; a bidirectional layer fills a layer and its ``_reverse``.

    Args:
      part, params: a part :func:`from_torch` takes, and its params.
      layer, reverse: the first PyTorch layer to fill, and the direction (cells and stacks of cells).
      bias: whether the module has biases. ``None``: as the cells do
        (``jaxrnn.lstm`` and ``gru`` always, ``rnn`` with ``use_bias``).
        ``False``: no bias keys (for ``nn.LSTM(bias=False)``), and the params'
        biases must be zero. ``True`` with ``rnn(use_bias=False)``: zeros.
      prefix: put in front of every key (``"rnn"`` or ``"rnn."``), to fill a model's state dict.

    Returns:
      ``{name: array}``: writable C-contiguous numpy arrays of their own, in the
      params' dtype (bfloat16 as float32, exactly).

    Raises:
      ValueError: a part PyTorch has no counterpart for, params that do not fit
        it, nonzero biases with ``bias=False``.
      TypeError: arguments of the wrong type.
    """
    checks.part("part", part)
    layer, reverse = checks.size("layer", layer, minimum=0), checks.flag("reverse", reverse)
    bias, prefix = None if bias is None else checks.flag("bias", bias), _prefix(prefix)
    spec = torch_spec(part)
    kernel = _first_input_kernel(params)
    if kernel is None or not jax.tree_util.tree_leaves(params):
        raise ValueError(f"params do not fit this part: expected the params of {spec}, got {_shapes(params)}")
    expected = jax.eval_shape(lambda key: part.init(key, int(np.shape(kernel)[0])), jax.random.key(0))
    if _shapes(params) != _shapes(expected):  # the structure too: a dict's keys, a stack's layers
        raise ValueError(f"params do not fit this part: expected shapes {_shapes(expected)}, got {_shapes(params)}")
    out: dict[str, np.ndarray] = {}
    write_bias = spec.bias if bias is None else bias
    _walk(part, params, layer, reverse,
          lambda cell, cell_spec, p, n, r: out.update(_layer_to_torch(cell_spec, p, n, r, write_bias)))
    return {prefix + key: value for key, value in out.items()}


def check_module(part: Part, module: Any) -> None:
    """Raise unless ``module`` (an ``nn.RNN``/``nn.LSTM``/``nn.GRU``) is the PyTorch module of ``part``.

    Compares what the state dict cannot show or shows only by its shapes: the
    kind of cell, ``nn.RNN``'s nonlinearity against the cells' activation,
    ``hidden_size``, ``num_layers``, ``bidirectional``, ``bias`` (a module
    without biases fits cells with them: zeros), and ``proj_size`` (which no
    jaxrnn cell has). ``batch_first`` and ``dropout`` do not change the params:
    pass ``time_major=False`` to :func:`jaxrnn.scan` for the former.

    Raises:
      ValueError: every difference, each as what the part has and what the module has.
      TypeError: ``module`` is not an ``nn.RNN``/``nn.LSTM``/``nn.GRU``.
    """
    checks.part("part", part)
    spec = torch_spec(part)
    found = _recurrent_module(module, "", "module")
    if found is None:
        raise TypeError(f"module: expected an nn.RNN, nn.LSTM or nn.GRU, got {type(module).__name__}")
    _check_module(spec, found, whole=True)


def torch_module(part: Part, params: Params, *, bias: bool | None = None, batch_first: bool = False) -> Any:
    """A new ``nn.RNN``/``nn.LSTM``/``nn.GRU`` holding ``params``: it computes what ``part`` does.

    Built with the part's sizes, layers, directions and nonlinearity, the
    stack's ``dropout`` (which PyTorch also applies between layers), in the
    params' dtype, and loaded with ``load_state_dict(strict=True)`` from
    :func:`to_torch` (``bias`` as there). It uses the ``torch`` the caller
    imported: jaxrnn never imports it (slow, and not a dependency).

    Raises:
      ImportError: ``torch`` has not been imported.
      ValueError, TypeError: as :func:`to_torch`.
    """
    torch = sys.modules.get("torch")
    if torch is None:
        raise ImportError('torch_module builds a PyTorch module: import torch first (pip install "jaxrnn[torch]")')
    checks.part("part", part)
    batch_first = checks.flag("batch_first", batch_first)
    spec = torch_spec(part)
    state = to_torch(part, params, bias=bias)
    bias = spec.bias if bias is None else bias
    dropout = part.info.option("dropout", 0.0) if part.info.kind == "stack" and spec.num_layers > 1 else 0.0
    options = dict(num_layers=spec.num_layers, bias=bias, batch_first=batch_first, bidirectional=spec.bidirectional,
                   dropout=float(dropout))
    if spec.kind == "rnn":
        options["nonlinearity"] = spec.nonlinearity
    cls = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[spec.kind]
    module = cls(int(state["weight_ih_l0"].shape[1]), spec.hidden_size, **options)
    dtype = np.dtype(jax.tree_util.tree_leaves(params)[0].dtype).name
    module = module.to(getattr(torch, dtype))
    module.load_state_dict({key: torch.from_numpy(value) for key, value in state.items()}, strict=True)
    return module


def torch_layers(part: Part) -> int:
    """How many PyTorch layers ``part`` holds: one per cell or bidirectional layer of a stack (``part.info.parts``)."""
    info = part.info
    return sum(torch_layers(p) for p in info.parts) if info.kind == "stack" else 1


def torch_spec(part: Part) -> TorchSpec:
    """The PyTorch module ``part`` is (:class:`TorchSpec`), or why there is none.

    Read from what the part says it is (``part.info``: its kind, size,
    activation, variant, options, and the parts of a stack or a bidirectional
    layer), never guessed from its params. One PyTorch module holds one kind,
    size, nonlinearity and bias of cell in every layer and direction, and its
    layers are all bidirectional or none.

    Raises:
      ValueError: a part PyTorch has no counterpart for; the message names it (:func:`jaxrnn.describe`).
    """
    checks.part("part", part)
    cells: list[_CellSpec] = []
    _walk(part, None, 0, False, lambda cell, spec, tree, n, r: cells.append(spec))
    specs = set(cells)
    if len(specs) > 1:
        described = sorted(f"{s.kind}({s.hidden}{'' if s.activation is None else f', {s.activation}'}"
                           f"{'' if s.bias else ', no bias'})" for s in specs)
        raise ValueError(f"a PyTorch module holds one kind of cell (size, activation, bias) in every layer; "
                         f"this part mixes {', '.join(described)}: {describe(part)}")
    layers = _torch_layer_parts(part)
    directions = {p.info.kind == "bidirectional" for p in layers}
    if len(directions) > 1:
        raise ValueError(f"a PyTorch module's layers are all bidirectional or none; this stack mixes them: "
                         f"{describe(part)}")
    kind, hidden, activation, bias = specs.pop()
    return TorchSpec(kind, hidden, activation, bias, len(layers), directions.pop())


# --- the part's side: what part.info says ------------------------------------------------------------------


class _CellSpec(NamedTuple):
    """What PyTorch needs of one cell, from its ``info``."""

    kind: str
    hidden: int
    activation: str | None
    bias: bool


def _torch_layer_parts(part: Part) -> list[Part]:
    """The parts that are PyTorch's layers ``0, 1, ...``: ``part``'s stacks flattened, bottom first."""
    info = part.info
    return [p for sub in info.parts for p in _torch_layer_parts(sub)] if info.kind == "stack" else [part]


def _cell_spec(cell: Part) -> _CellSpec:
    """The :class:`_CellSpec` of a cell PyTorch has a module for, read from ``cell.info``; or why it has none."""
    info = cell.info
    if info.kind == "gru" and info.variant != "reset_after":
        what = "the original GRU (the reset gate before the recurrent product)" if info.variant is None \
            else f"the {info.variant!r} variant"
        raise ValueError(f"PyTorch's nn.GRU is the reset-after variant; {describe(cell)} is {what}: "
                         f"build the cell with jaxrnn.gru({info.size if info.size is not None else 'H'}, "
                         f"reset_after=True)")
    if info.kind not in _MODES:
        hint = (" (a part built with jaxrnn.Part(...) is 'custom' unless given info=jaxrnn.Info(kind, size, ...): "
                "interop reads what a part says it is, never its params' shapes)" if info.kind == "custom" else "")
        raise ValueError(f"{SUPPORTED}; {describe(cell)} is of kind {info.kind!r}, which no PyTorch recurrent "
                         f"module computes{hint}")
    if isinstance(info.size, bool) or not isinstance(info.size, (int, np.integer)) or info.size < 1:
        raise ValueError(f"{describe(cell)}: info.size must be the cell's hidden size (a positive int), "
                         f"got {info.size!r}")
    activation = info.activation if info.kind == "rnn" else None
    if info.kind == "rnn" and activation not in ("tanh", "relu"):
        raise ValueError(f"PyTorch's nn.RNN computes tanh or relu; this cell computes "
                         f"{'an unnamed function' if activation is None else repr(activation)}: "
                         f"{describe(cell)}; build it with jaxrnn.rnn(H, activation='tanh') or 'relu'")
    return _CellSpec(info.kind, int(info.size), activation, bool(info.option("use_bias", True)))


def _check_cell_params(cell: Part, spec: _CellSpec, tree: Any) -> None:
    """Raise unless ``tree`` (the cell's params, or their shapes) is what its ``info`` says the cell is.

    A part is trusted to say what it is; its params must then be those of that cell:
    ``input_kernel (I, G*H)``, ``recurrent_kernel (H, G*H)``, ``bias (G*H,)``
    (with biases), ``recurrent_bias (G*H,)`` (a GRU with biases).
    """
    width = _GATES[spec.kind] * spec.hidden
    names = ["input_kernel", "recurrent_kernel"] + (["bias"] if spec.bias else [])
    names += ["recurrent_bias"] if spec.kind == "gru" and spec.bias else []
    fits = isinstance(tree, Mapping) and sorted(tree) == sorted(names)
    if fits:
        shapes = {name: tuple(np.shape(value)) for name, value in tree.items()}
        fits = (len(shapes["input_kernel"]) == 2 and shapes["input_kernel"][1] == width
                and shapes["recurrent_kernel"] == (spec.hidden, width)
                and all(shapes[name] == (width,) for name in names[2:]))
    if not fits:
        expected = {"input_kernel": ("I", width), "recurrent_kernel": (spec.hidden, width),
                    **{name: (width,) for name in names[2:]}}
        raise ValueError(f"{describe(cell)} says it is a {spec.kind} cell of size {spec.hidden} (its info), but "
                         f"its params are not those of one: expected {expected}, got {_shapes(tree)}")


def _walk(part: Part, tree: Any, layer: int, reverse: bool, visit: Callable[..., Any]) -> Any:
    """``visit(cell, cell_spec, cell_tree, torch_layer, reverse)`` for each cell of ``part``, in PyTorch's order.

    Returns ``tree``'s structure with each cell's subtree replaced by what ``visit`` returns;
    ``tree=None`` walks the part alone (``visit`` gets ``None``). Raises for a part PyTorch has no module for.
    """
    info = part.info
    if info.kind == "stack":
        if info.option("residual", False):
            raise ValueError(f"PyTorch's recurrent modules have no residual connections: build the stack with "
                             f"residual=False, not {describe(part)}")
        if tree is not None:
            check_layers(tree, tree, len(info.parts))
        out = []
        for sub, subtree in zip(info.parts, (None,) * len(info.parts) if tree is None else tree):
            out.append(_walk(sub, subtree, layer, reverse, visit))
            layer += torch_layers(sub)
        return tuple(out)
    if info.kind == "bidirectional":
        merge = info.option("merge", "concat")
        if not (isinstance(merge, str) and merge == "concat"):
            raise ValueError(f"PyTorch's bidirectional layers concatenate the directions; this one merges by "
                             f"{merge!r}: {describe(part)}")
        if any(p.info.kind in ("stack", "bidirectional") for p in info.parts):
            raise ValueError(f"a PyTorch bidirectional layer is one cell per direction; stack bidirectional "
                             f"layers instead of {describe(part)}")
        if reverse:
            raise ValueError(f"reverse=True reads one direction, into a cell or a stack of cells; {describe(part)} "
                             f"reads both (a PyTorch bidirectional layer is one cell per direction)")
        if tree is not None:
            check_bidirectional_params(tree)
        forward, backward = info.parts
        return {"forward": _walk(forward, None if tree is None else tree["forward"], layer, False, visit),
                "backward": _walk(backward, None if tree is None else tree["backward"], layer, True, visit)}
    spec = _cell_spec(part)
    if tree is not None:
        _check_cell_params(part, spec, tree)
    return visit(part, spec, tree, layer, reverse)


def _slots(part: Part, layer: int, reverse: bool) -> list[tuple[int, bool]]:
    """``(torch_layer, reverse)`` of each cell of ``part``, in PyTorch's order."""
    slots: list[tuple[int, bool]] = []
    _walk(part, None, layer, reverse, lambda cell, spec, tree, n, r: slots.append((n, r)))
    return slots


def _first_input_kernel(params: Any) -> Any:
    """The ``input_kernel`` of the first cell of ``params`` (its input size), or ``None``."""
    while isinstance(params, (tuple, list)) and params:
        params = params[0]
    if isinstance(params, Mapping) and "forward" in params:
        return _first_input_kernel(params["forward"])
    return params.get("input_kernel") if isinstance(params, Mapping) else None


def _shapes(tree: Any) -> Any:
    try:
        return jax.tree_util.tree_map(lambda a: tuple(np.shape(a)), tree)
    except TypeError:
        return type(tree).__name__


# --- the state dict's side ---------------------------------------------------------------------------------


def _suffix(layer: int, reverse: bool) -> str:
    return f"_l{layer}" + ("_reverse" if reverse else "")


def _keys(slot: tuple[int, bool], bias: bool) -> list[str]:
    """The keys of one layer and direction: the weights, and the biases if ``bias``."""
    names = ("weight_ih", "weight_hh") + (("bias_ih", "bias_hh") if bias else ())
    return [name + _suffix(*slot) for name in names]


def _is_bias(key: str) -> bool:
    match = _TORCH_KEY.fullmatch(key)
    return match is not None and match[1] == "bias"


def _layer_from_torch(cell: _CellSpec, template: dict, arrays: dict[str, np.ndarray], prefix: str, layer: int,
                      reverse: bool) -> dict:
    """One cell's params from layer ``layer`` (and direction) of the state dict, shaped and typed as ``template``."""
    suffix = _suffix(layer, reverse)
    kind, hidden, gates_hidden = cell.kind, cell.hidden, _GATES[cell.kind] * cell.hidden
    shapes = {"weight_ih": template["input_kernel"].shape[::-1], "weight_hh": (gates_hidden, hidden),
              "bias_ih": (gates_hidden,), "bias_hh": (gates_hidden,)}
    for name, shape in shapes.items():  # in PyTorch's terms, as the keys are
        value = arrays.get(name + suffix)
        if value is not None and value.shape != shape:
            raise ValueError(f"{prefix}{name}{suffix} does not fit a {kind}({hidden}) cell: expected shape {shape}, "
                             f"got {value.shape}")
    zeros = np.zeros(gates_hidden, arrays[f"weight_hh{suffix}"].dtype)  # a module without biases: they are zero
    b_ih, b_hh = arrays.get(f"bias_ih{suffix}", zeros), arrays.get(f"bias_hh{suffix}", zeros)
    params = {"input_kernel": arrays[f"weight_ih{suffix}"].T, "recurrent_kernel": arrays[f"weight_hh{suffix}"].T}
    if kind == "gru":  # the reset-after GRU keeps both: r multiplies the recurrent one
        params["bias"], params["recurrent_bias"] = b_ih, b_hh
    else:  # they only add up
        params["bias"] = b_ih + b_hh
    return {name: jnp.asarray(params[name], value.dtype) for name, value in template.items()}


def _layer_to_torch(cell: _CellSpec, params: dict, layer: int, reverse: bool, bias: bool) -> dict[str, np.ndarray]:
    """Layer ``layer``'s (and direction's) entries of a state dict from one cell's params."""
    suffix = _suffix(layer, reverse)
    params = {name: _writable(value) for name, value in params.items()}
    out = {f"weight_ih{suffix}": _writable(params["input_kernel"].T),
           f"weight_hh{suffix}": _writable(params["recurrent_kernel"].T)}
    biases = [name for name in ("bias", "recurrent_bias") if name in params]
    if not bias:
        nonzero = [name for name in biases if np.any(params[name])]
        if nonzero:
            raise ValueError(f"bias=False: the cell of layer {layer}{' (reverse)' if reverse else ''} has nonzero "
                             f"{' and '.join(nonzero)}, which a PyTorch module without biases cannot hold")
        return out
    zeros = np.zeros(out[f"weight_hh{suffix}"].shape[:1], out[f"weight_hh{suffix}"].dtype)
    if cell.kind == "gru":
        out[f"bias_ih{suffix}"] = params["bias"] if "bias" in params else zeros
        out[f"bias_hh{suffix}"] = params["recurrent_bias"] if "recurrent_bias" in params else zeros.copy()
    else:  # PyTorch's two biases only add up: all of it on the input side
        out[f"bias_ih{suffix}"] = params["bias"] if "bias" in params else zeros
        out[f"bias_hh{suffix}"] = zeros.copy()
    return out


def _writable(value: Any) -> np.ndarray:
    """``value`` as a writable C-contiguous numpy array of its own; bfloat16 widened to float32.

    ``np.asarray`` of a jax array is a read-only view, and ``torch.from_numpy``
    warns about those (and has no bfloat16).
    """
    value = np.asarray(value)
    return np.array(value, dtype=np.float32 if value.dtype == jnp.bfloat16 else value.dtype, order="C", copy=True)


def _numpy(key: str, value: Any) -> np.ndarray:
    """A state dict's value as numpy: tensors detached and moved to the CPU, bfloat16 tensors widened exactly."""
    if hasattr(value, "detach"):  # a torch.Tensor, possibly on a GPU or requiring grad
        value = value.detach()
        if str(getattr(value, "dtype", "")) == "torch.bfloat16":  # tensor.numpy() has no bfloat16
            value = value.float()
        value = value.cpu().numpy()
    array = np.asarray(value)
    if not jnp.issubdtype(array.dtype, jnp.floating):
        raise TypeError(f"{key}: expected floating-point values, got {array.dtype}")
    return array


def _prefix(prefix: Any) -> str:
    """A module's name as the start of its state dict keys: ``"rnn"`` and ``"rnn."`` are ``"rnn."``."""
    if not isinstance(prefix, str):
        raise TypeError(f"prefix: expected a string (a module's name, 'rnn' or 'rnn.'), got {type(prefix).__name__}")
    return prefix if prefix == "" or prefix.endswith(".") else prefix + "."


def _prefixes(keys) -> list[str]:
    """The prefixes under which keys of a PyTorch recurrent module sit (``"rnn."`` of ``"rnn.weight_ih_l0"``)."""
    found = set()
    for key in keys:
        head, _, name = key.rpartition(".")
        if head and _TORCH_KEY.fullmatch(name):
            found.add(head + ".")
    return sorted(found)


def _held(scope: Mapping[str, Any]) -> str | None:
    """The PyTorch module a state dict holds, read off its keys and shapes (for messages)."""
    found = [match for match in map(_TORCH_KEY.fullmatch, scope) if match]
    if not found:
        return None
    layers = sorted({int(match[3]) for match in found})
    options = [f"bias={any(m[1] == 'bias' for m in found)}", f"bidirectional={any(m[4] for m in found)}"]
    if layers[0] == 0:
        options.insert(0, f"num_layers={layers[-1] + 1}")
    within = "" if layers[0] == 0 else f"layers {layers[0]} to {layers[-1]} of "
    shape = tuple(np.shape(scope.get(f"weight_hh_l{layers[0]}", ())))
    if any(m[2] == "hr" for m in found):
        return f"{within}nn.LSTM({', '.join(['proj_size > 0'] + options)})"
    if len(shape) != 2 or shape[1] == 0 or shape[0] % shape[1] or shape[0] // shape[1] not in (1, 3, 4):
        return f"{within}a recurrent module ({', '.join(options)})"
    mode = {1: "RNN", 3: "GRU", 4: "LSTM"}[shape[0] // shape[1]]
    return f"{within}nn.{mode}({', '.join([f'hidden_size={shape[1]}'] + options)})"


def _mismatch(spec: TorchSpec, slots, scope, whole, prefix: str, missing: list[str], unexpected: list[str]):
    def listed(keys):
        shown = [prefix + key for key in keys[:12]]
        return ", ".join(shown) + (f" and {len(keys) - 12} more" if len(keys) > 12 else "")

    parts = []
    if missing:
        parts.append(f"missing keys {listed(missing)}")
    if unexpected:
        parts.append(f"unexpected keys {listed(unexpected)}")
    layers = sorted({n for n, _ in slots})
    message = f"state dict does not fit the part: {'; '.join(parts)}. The part reads {spec}"
    message += f" from layer {layers[0]}" if layers[0] else ""
    held = _held(scope)
    message += f"; the state dict{f' under {prefix!r}' if prefix else ''} holds {held}" if held else ""
    others = [p for p in _prefixes(whole) if p != prefix]
    if others and (missing or not held):
        message += (f". The keys of a recurrent module are under {', '.join(map(repr, others))}: pass "
                    + (f"prefix={others[0]!r}" if len(others) == 1 else "prefix= the one to read"))
    if spec.kind == "rnn" and not spec.bias and any(_is_bias(key) for key in unexpected):
        message += ". The cells were built with use_bias=False: build them with use_bias=True for the biases"
    elif unexpected and not missing:
        message += ". strict=False reads the part's keys and ignores the others"
    return StateDictMismatch(message, [prefix + key for key in missing], [prefix + key for key in unexpected])


# --- modules -----------------------------------------------------------------------------------------------


def _recurrent_module(source: Any, prefix: str, name: str = "source") -> Any:
    """``source`` (or its submodule named ``prefix``) if it is a torch module, else ``None``.

    Only an object of an imported torch can be a torch module, so torch is never imported here.
    """
    torch = sys.modules.get("torch")
    if torch is None or not isinstance(source, torch.nn.Module):
        return None
    model = source
    if prefix:
        try:
            source = model.get_submodule(prefix[:-1])
        except AttributeError as error:
            raise ValueError(f"prefix: the model has no submodule {prefix[:-1]!r}; its recurrent modules are "
                             f"{', '.join(_recurrent_names(torch, model)) or 'none'}") from error
    if not isinstance(source, torch.nn.RNNBase):
        inside = _recurrent_names(torch, source)
        raise TypeError(f"{name}: expected an nn.RNN, nn.LSTM or nn.GRU, got a {type(source).__name__}"
                        + (f"; its recurrent modules are {', '.join(inside)}: pass prefix= the name of one"
                           if inside else ""))
    return source


def _recurrent_names(torch: Any, model: Any) -> list[str]:
    return [repr(name) for name, sub in model.named_modules() if isinstance(sub, torch.nn.RNNBase)]


def _module_spec(module: Any) -> TorchSpec:
    mode = str(module.mode)
    kind, nonlinearity = {"RNN_TANH": ("rnn", "tanh"), "RNN_RELU": ("rnn", "relu"), "LSTM": ("lstm", None),
                          "GRU": ("gru", None)}[mode]
    return TorchSpec(kind, int(module.hidden_size), nonlinearity, bool(module.bias), int(module.num_layers),
                bool(module.bidirectional))


def _check_module(spec: TorchSpec, module: Any, whole: bool) -> None:
    """Raise with every difference between the part's :class:`TorchSpec` and the module's.

    ``whole=False`` (``from_torch(strict=False)``) lets the module have more
    layers and directions than the part reads.
    """
    theirs = _module_spec(module)
    differences = []
    if getattr(module, "proj_size", 0):
        differences.append(f"proj_size: jaxrnn's cells have no projection, the module has "
                           f"proj_size={module.proj_size}")
    if theirs.kind != spec.kind:
        differences.append(f"kind: the part is {spec.kind}, the module an nn.{_MODES[theirs.kind]}")
    elif theirs.nonlinearity != spec.nonlinearity:
        differences.append(f"nonlinearity: the part's rnn computes {spec.nonlinearity}, "
                           f"the module {theirs.nonlinearity}")
    if theirs.hidden_size != spec.hidden_size:
        differences.append(f"hidden_size: the part has {spec.hidden_size}, the module {theirs.hidden_size}")
    if theirs.bias and not spec.bias:
        differences.append("bias: the part's cells were built with use_bias=False, the module has biases")
    if whole and theirs.num_layers != spec.num_layers:
        differences.append(f"num_layers: the part has {spec.num_layers}, the module {theirs.num_layers}")
    if whole and theirs.bidirectional != spec.bidirectional:
        differences.append(f"bidirectional: the part is {spec.bidirectional}, the module {theirs.bidirectional}")
    if differences:
        raise ValueError(f"the module {theirs} is not the part's {spec}: {'; '.join(differences)}")
