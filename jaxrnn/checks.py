"""Checks that turn mistakes into clear errors, naming the argument, what was expected and what came.

Two kinds: arguments of the factories and ``init`` (sizes, flags, dtypes),
checked when a part is built; and shapes and dtypes of arrays, checked from
static shapes only, so they run once while tracing and cost nothing inside ``jit``.
"""

from __future__ import annotations

import numbers
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import checkify

from jaxrnn.parts import Part

# --- arguments ------------------------------------------------------------------------------------


def size(name: str, value: Any, *, minimum: int = 1) -> int:
    """``value`` as an int, if it is an integer (not a bool) of at least ``minimum``.

    Raises:
      TypeError: not an integer (``2.5``, ``"8"``, ``True``).
      ValueError: an integer below ``minimum``.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Integral, np.integer)):
        raise TypeError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    return int(value)


def flag(name: str, value: Any) -> bool:
    """``value`` if it is a bool (``"no"`` or ``0`` would silently mean something else)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: expected True or False, got {value!r}")
    return bool(value)


def number(name: str, value: Any) -> float:
    """``value`` as a float, if it is a finite real number."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a finite number, got {value!r}")
    if not np.isfinite(value):
        raise ValueError(f"{name}: expected a finite number, got {value!r}")
    return float(value)


def random_key(name: str, value: Any, *, optional: bool = False) -> Any:
    """``value`` if it is a JAX random key (``jax.random.key(seed)``, or a legacy ``PRNGKey``)."""
    if value is None and optional:
        return None
    typed = isinstance(value, jax.Array) and jnp.issubdtype(value.dtype, jax.dtypes.prng_key)
    legacy = hasattr(value, "dtype") and getattr(value, "shape", None) == (2,) and value.dtype == jnp.uint32
    if not (typed or legacy):
        got = f"an array of shape {value.shape} and dtype {value.dtype}" if hasattr(value, "dtype") else repr(value)
        raise TypeError(f"{name}: expected a random key (jax.random.key(seed)){' or None' if optional else ''}, "
                        f"got {got}")
    return value


def rate(name: str, value: Any) -> float:
    """``value`` as a float in ``[0, 1)`` (a dropout rate)."""
    value = number(name, value)
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{name}: expected a number in [0, 1), got {value!r}")
    return value


def floating_dtype(name: str, value: Any, *, optional: bool = False) -> Any:
    """``value`` if it names a floating-point dtype (``None`` too, when ``optional``)."""
    if value is None and optional:
        return None
    try:
        dtype = jnp.dtype(value)
    except TypeError:
        dtype = None
    if dtype is None or not jnp.issubdtype(dtype, jnp.floating):
        expected = "a floating-point dtype" + (" or None" if optional else "")
        raise TypeError(f"{name}: expected {expected} (e.g. jnp.float32, jnp.bfloat16), got {value!r}")
    return value


def function(name: str, value: Any) -> Callable:
    """``value`` if it is callable."""
    if not callable(value):
        raise TypeError(f"{name}: expected a callable, got {value!r}")
    return value


def part(name: str, value: Any) -> Part:
    """``value`` if it is a :class:`~jaxrnn.Part` (a cell, a stack, a layer)."""
    if not isinstance(value, Part):
        raise TypeError(f"{name}: expected a jaxrnn.Part (a cell, a stack, a layer), got {type(value).__name__}")
    return value


def cell_arguments(hidden_size: Any, param_dtype: Any, dtype: Any, kernel_init: Any, recurrent_init: Any) -> int:
    """The arguments every cell factory shares; returns ``hidden_size`` as an int."""
    floating_dtype("param_dtype", param_dtype)
    floating_dtype("dtype", dtype, optional=True)
    function("kernel_init", kernel_init)
    function("recurrent_init", recurrent_init)
    return size("hidden_size", hidden_size)


# --- arrays, at trace time ------------------------------------------------------------------------


def check_kernel(params: Any, name: str, shape: tuple[int, ...]) -> None:
    """Raise unless ``params[name]`` has ``shape`` (a cell handed another cell's params)."""
    got = tuple(jnp.shape(params[name]))
    if got != tuple(shape):
        raise ValueError(f"{name}: expected shape {tuple(shape)}, got {got} (params of another cell or size?)")


def check_input(x: jax.Array, input_size: int) -> None:
    """Raise unless ``x`` is floating point with ``input_size`` features on its last axis."""
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"expected a floating-point input, got dtype {x.dtype}")
    if x.ndim == 0:
        raise ValueError(f"expected an input of shape (..., {input_size}), got a scalar")
    if x.shape[-1] != input_size:
        raise ValueError(f"expected input size {input_size}, got {x.shape[-1]} (input shape {x.shape})")


def check_carry(carry: Any, expected_shape: tuple[int, ...], n: int) -> None:
    """Raise unless ``carry`` holds ``n`` floating arrays of ``expected_shape``.

    ``n == 1`` means the carry is a single array; otherwise a tuple of ``n``.
    """
    leaves = (carry,) if n == 1 else carry
    what = "an array" if n == 1 else f"a tuple of {n} arrays"
    if n != 1 and (not isinstance(carry, (tuple, list)) or len(carry) != n):
        raise ValueError(f"expected carry to be {what} of shape {expected_shape}, got {_describe(carry)}")
    for leaf in leaves:
        if not hasattr(leaf, "shape") or tuple(leaf.shape) != tuple(expected_shape):
            raise ValueError(f"expected carry to be {what} of shape {expected_shape}, got {_describe(carry)}")
        if not jnp.issubdtype(leaf.dtype, jnp.floating):
            raise TypeError(f"expected a floating-point carry, got dtype {leaf.dtype}")


def _describe(tree: Any) -> str:
    """``array of shape (2, 4)`` or ``tuple with shapes ((2, 4), (2, 4))``."""
    if hasattr(tree, "shape"):
        return f"an array of shape {tuple(tree.shape)}"
    shapes = jax.tree_util.tree_map(lambda a: tuple(getattr(a, "shape", ())), tree)
    return f"{type(tree).__name__} with shapes {shapes}"


def check_carry_like(carry: Any, expected: Any) -> Any:
    """``carry`` in the structure of ``expected`` (e.g. ``initial_carry``'s), whose shapes it must have.

    A plain tuple where ``expected`` has a named one (``(h, c)`` for an
    :class:`~jaxrnn.LSTMState`) is taken as that named tuple.

    Raises:
      ValueError: another structure or other shapes.
    """
    leaves, tree = jax.tree_util.tree_flatten(carry)
    expected_leaves, expected_tree = jax.tree_util.tree_flatten(expected)
    same_tree = tree == expected_tree or _untyped(carry) == _untyped(expected)
    if not same_tree or any(tuple(jnp.shape(a)) != tuple(b.shape) for a, b in zip(leaves, expected_leaves)):
        raise ValueError(f"expected carry to be {_describe(expected)}, got {_describe(carry)}")
    return carry if tree == expected_tree else jax.tree_util.tree_unflatten(expected_tree, leaves)


def _untyped(tree: Any) -> Any:
    """``tree``'s structure with named tuples as plain tuples and arrays as ``None``."""
    if isinstance(tree, list):
        return [_untyped(t) for t in tree]
    if isinstance(tree, tuple):  # a named tuple too
        return tuple(_untyped(t) for t in tree)
    if isinstance(tree, dict):
        return {k: _untyped(v) for k, v in tree.items()}
    return None


def check_hidden(carry: Any, hidden_size: int, n: int) -> None:
    """Raise unless every carry leaf ends in ``hidden_size`` (batch axes are checked later, against the input)."""
    first = carry[0] if n != 1 and isinstance(carry, (tuple, list)) and carry else carry
    batch_shape = tuple(getattr(first, "shape", (None,))[:-1])
    check_carry(carry, batch_shape + (hidden_size,), n)


def fits(init: Callable[[Any, int], Any]) -> Callable[[Any, Any, bool], None]:
    """A part's ``validate`` for features: the params must have the structure ``init`` gives for the input's
    feature size (:func:`check_params_fit`)."""

    def validate(params: Any, xs: Any, checked: bool) -> None:
        del checked  # shapes only
        check_params_fit(init, params, np.shape(xs)[-1])

    return validate


def check_params_fit(init: Callable[[Any, int], Any], params: Any, input_size: int) -> None:
    """Raise unless ``params`` has the structure (the keys, the layers) ``init(key, input_size)`` gives.

    Params of another kind of part fail here, with both structures, instead of
    inside the step; shapes are left to the steps' checks (which say "input
    size" where that is what differs), and dtypes may differ (cast params).
    """
    expected = jax.eval_shape(lambda key: init(key, input_size), jax.random.key(0))
    if jax.tree_util.tree_structure(params) != jax.tree_util.tree_structure(expected):
        shapes = jax.tree_util.tree_map(lambda a: tuple(a.shape), expected)
        raise ValueError(f"params do not fit this part: expected the structure of {shapes}, "
                         f"got {_describe_params(params)}")


def _describe_params(params: Any) -> str:
    try:
        return str(jax.tree_util.tree_map(lambda a: tuple(jnp.shape(a)), params))
    except TypeError:
        return f"a {type(params).__name__}"


def known_values(array: Any) -> np.ndarray | None:
    """``array``'s values where they are known while tracing (numpy, lists, concrete arrays, a numpy constant
    inside ``jit``), else ``None``. Read them before ``jnp.asarray``, which inside ``jit`` traces even a constant."""
    try:
        return np.asarray(array)
    except jax.errors.TracerArrayConversionError:
        return None


def in_range(array: Any, low: int, high: int, message: str, *, checked: bool) -> None:
    """Every entry of ``array`` in ``[low, high]``: a ``ValueError`` now where the values are known; with
    ``checked``, a ``checkify`` check of traced ones. ``message`` names ``{lo}`` and ``{hi}``, the values' range."""
    values = known_values(array)
    if values is not None:
        if values.size and (values.min() < low or values.max() > high):
            raise ValueError(message.format(lo=values.min(), hi=values.max()))
    elif checked and array.size:
        checkify.check(jnp.all((array >= low) & (array <= high)), message, lo=jnp.min(array), hi=jnp.max(array))
