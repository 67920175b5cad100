"""Every way ``jaxrnn.scan`` can run a cell computes the same function.

The reference is the ``"plain"`` path: ``lax.scan`` of ``cell.step`` under
JAX's own autodiff. The ``"projected"`` and ``"fused"`` paths (input
projection before the loop; a custom derivative with the weight gradient after the loop)
must match it in values and in gradients, with ``lengths`` and ``reverse``.
"""

from __future__ import annotations

import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.ad_checkpoint import print_saved_residuals
from jax.test_util import check_grads

import jaxrnn
from jaxrnn.loop import chunk_size, resolve_path
from jaxrnn.split import halves_of
from support import CELLS, FACTORIES, B, H, I, T, assert_trees_close

FAST_PATHS = ("projected", "fused")

# Each step kind of the shared cells, one ReLU cell without a bias (the fused path's derivative of the
# activation, and params without ``bias``) and a residual stack of two kinds.
PARTS = {
    **{name: CELLS[name] for name in ("rnn_tanh", "lstm", "gru", "gru_reset_after")},
    "rnn_relu_nobias": jaxrnn.rnn(H, activation="relu", use_bias=False),
    "stack": jaxrnn.stack([CELLS["lstm"], CELLS["gru_reset_after"]], residual=True),
}


def _loss_and_grads(cell, paths, reverse, lengths):
    """For each path: outputs, final carry and the gradient of a loss that weighs every output and carry
    entry differently; all paths in one program (one compile)."""

    def loss(params, xs, carry, path):
        final, ys = jaxrnn.scan(cell, params, xs, carry, reverse=reverse, lengths=lengths, path=path)
        weights = jnp.linspace(-1.0, 2.0, ys.size).reshape(ys.shape)
        carry_term = sum(jnp.sum(jnp.cos(leaf)) for leaf in jax.tree_util.tree_leaves(final))
        return jnp.sum(weights * jnp.sin(ys)) + carry_term, (final, ys)

    def all_paths(params, xs, carry):
        grad = jax.value_and_grad(loss, argnums=(0, 1, 2), has_aux=True)
        return [grad(params, xs, carry, path) for path in paths]

    return jax.jit(all_paths)


def _inputs(cell, key=0):
    k_p, k_x, k_c = jax.random.split(jax.random.key(key), 3)
    params = cell.init(k_p, I)
    xs = jax.random.normal(k_x, (T, B, I))
    carry = jax.tree_util.tree_map(
        lambda leaf: 0.5 * jax.random.normal(k_c, leaf.shape), cell.initial_carry((B,))
    )
    return params, xs, carry


@pytest.mark.parametrize("name", sorted(PARTS))
# Reversed with lengths in the fast suite, forwards without with -m slow (test_edges.py runs the paths forwards too)
@pytest.mark.parametrize("reverse, masked", [pytest.param(False, False, marks=pytest.mark.slow), (True, True)])
def test_fast_paths_match_plain_values_and_gradients(name, reverse, masked):
    cell = PARTS[name]
    params, xs, carry = _inputs(cell)
    lengths = jnp.array([T, 2, 0]) if masked else None
    ((_, reference), reference_grads), *fast = _loss_and_grads(cell, ("plain", *FAST_PATHS), reverse, lengths)(
        params, xs, carry)
    for (_, outputs), grads in fast:
        assert_trees_close(outputs, reference, rtol=2e-5, atol=2e-5)
        assert_trees_close(grads, reference_grads, rtol=2e-5, atol=2e-5)



@pytest.mark.parametrize("name", ["rnn_tanh", "lstm", "gru_reset_after"])
@pytest.mark.parametrize("precision", ["bf16 products", "bf16 params and inputs"])
def test_fused_path_in_bfloat16_matches_plain(name, precision):
    """bfloat16 through the fused VJP: the plain path's values and gradients, to bf16 precision.

    ``bf16 products`` (``dtype=bfloat16``, the GPU's fast mode) gives ``xp`` and
    ``hp`` in bf16; ``bf16 params and inputs`` with the float32 carry gives a bf16
    ``xp`` and a float32 ``hp``, whose sum an additive cell must not save alone.
    """
    if precision == "bf16 products":
        cell = FACTORIES[name](dtype=jnp.bfloat16)
        params, xs, carry = _inputs(cell)
    else:
        cell = FACTORIES[name](param_dtype=jnp.bfloat16)
        params, xs, carry = _inputs(cell)
        xs = xs.astype(jnp.bfloat16)
    lengths = jnp.array([T, 2, 0])
    ((_, reference), reference_grads), ((_, outputs), grads) = _loss_and_grads(cell, ("plain", "fused"), True, lengths)(
        params, xs, carry)
    assert_trees_close(outputs, reference, rtol=2e-5, atol=2e-2)
    assert_trees_close(grads, reference_grads, rtol=2e-5, atol=5e-2)

@pytest.mark.parametrize("name", ["lstm", "gru_reset_after", "rnn_tanh"])
def test_fused_path_derivatives_of_both_modes_match_finite_differences(name):
    """Forward mode (``jvp``) and reverse mode; second order (``hessian``) is held to the oracle in test_edges.py."""
    cell = PARTS[name]
    params, xs, carry = _inputs(cell, key=1)
    lengths = jnp.array([T, 3, 1])

    def f(params, xs, carry):
        final, ys = jaxrnn.scan(cell, params, xs, carry, lengths=lengths, reverse=True, path="fused")
        return jnp.sum(jnp.sin(ys)) + sum(jnp.sum(leaf**2) for leaf in jax.tree_util.tree_leaves(final))

    with jax.enable_x64(True):
        params, xs, carry = jax.tree_util.tree_map(lambda a: a.astype(jnp.float64), (params, xs, carry))
        check_grads(jax.jit(f), (params, xs, carry), order=1, modes=["fwd", "rev"], atol=1e-5, rtol=1e-5)


def test_fused_path_under_vmap_matches_batch_axis():
    cell = PARTS["lstm"]
    params, xs, _ = _inputs(cell)
    lengths = jnp.array([T, 4, 1])

    def vmapped(p, path):  # one (T, I) sequence at a time
        return jax.vmap(lambda x, n: jaxrnn.scan(cell, p, x, lengths=n, path=path)[1], in_axes=(1, 0), out_axes=1)(
            xs, lengths)

    @jax.jit
    def both(params):
        batched = lambda p: jaxrnn.scan(cell, p, xs, lengths=lengths, path="plain")[1]  # noqa: E731
        grad = lambda f: jax.grad(lambda p: jnp.sum(f(p) ** 2))(params)  # noqa: E731
        by_vmap = lambda p: vmapped(p, "fused")  # noqa: E731
        return (by_vmap(params), grad(by_vmap)), (batched(params), grad(batched))

    fused, plain = both(params)
    assert_trees_close(fused, plain, rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("name", ["rnn_tanh", "rnn_relu_nobias", "lstm", "gru_reset_after"])
def test_additive_flag_holds_exactly_where_update_reads_only_the_sum(name):
    """``additive`` lets the fused path save ``xp + hp`` alone, so it must be true of ``update``.

    It is structural: a step built by ``Split.from_sum`` is handed the sum and cannot read
    ``xp`` and ``hp`` apart; the GRU's reset gate reads ``hp`` alone, so it is built otherwise."""
    step = halves_of(PARTS[name])
    params, _, carry = _inputs(PARTS[name])
    k_x, k_h = jax.random.split(jax.random.key(2))
    gates = step.product(params, carry).shape
    xp, hp = jax.random.normal(k_x, gates), jax.random.normal(k_h, gates)
    split, summed = step.update(carry, xp, hp), step.update(carry, xp + hp, jnp.zeros(gates))
    same = all(np.allclose(a, b, atol=1e-6) for a, b in zip(jax.tree_util.tree_leaves(split),
                                                             jax.tree_util.tree_leaves(summed)))
    assert step.additive == same == (name != "gru_reset_after")


@pytest.mark.parametrize("name", ["rnn_tanh", "lstm", "gru_reset_after"])
def test_fused_path_saves_only_the_carry_and_the_products_per_step(name, capsys):
    """Per step reverse mode keeps the carry and ``xp + hp`` (additive) or ``xp`` and ``hp``; not the activations.

    Read from what JAX saves for the backward pass, so the fused path's tangent rule must be
    rematerialised for this to hold (autodiff of the loop would keep every gate's activation)."""
    cell = PARTS[name]
    params, xs, carry = _inputs(cell)
    print_saved_residuals(
        lambda p, x: jnp.sum(jaxrnn.scan(cell, p, x, path="fused")[1]), params, xs)
    saved = [line for line in capsys.readouterr().out.splitlines() if "from the argument" not in line]
    shapes = [m.group(1) for m in map(re.compile(r"^\S+\[([\d,]+)\]").match, saved) if m]
    per_step = sum(math.prod(map(int, shape.split(","))) for shape in shapes
                   if tuple(map(int, shape.split(",")))[:2] == (T, B) and shape.count(",") >= 2) // T
    carry_size = sum(leaf.size for leaf in jax.tree_util.tree_leaves(carry))
    halves = halves_of(cell)
    gates = halves.project(params, xs).shape[-1] * B
    assert per_step == carry_size + (gates if halves.additive else 2 * gates)


def test_path_resolution():
    lstm, reset_before_gru = PARTS["lstm"], PARTS["gru"]
    custom = jaxrnn.Part(lstm.init, lstm.initial_carry, lambda p, c, x: (c, x))
    cpu_choice = "onednn" if "onednn" in lstm.info.paths else "plain"
    assert resolve_path("auto", lstm) == (cpu_choice if jax.default_backend() == "cpu" else "fused")
    assert resolve_path("fused", lstm) == "fused"
    assert resolve_path("fused", lstm, remat=True) == "projected"  # remat is about memory: no stored residuals
    assert resolve_path("fused", reset_before_gru) == "projected"  # reset gate between the products
    assert resolve_path("fused", custom) == "plain"
    assert resolve_path("projected", custom) == "plain"


def test_unknown_path_is_rejected():
    cell = PARTS["lstm"]
    params, xs, _ = _inputs(cell)
    with pytest.raises(ValueError, match="unknown path 'cudnn'; expected one of auto, plain, projected, fused"):
        jaxrnn.scan(cell, params, xs, path="cudnn")


def test_lengths_captured_inside_jit_are_still_range_checked():
    cell = PARTS["lstm"]
    params, xs, _ = _inputs(cell)
    for bad in (np.array([T + 1, 1, 1]), [-1, 2, 3]):
        with pytest.raises(ValueError, match=rf"expected lengths in \[0, {T}\]"):
            jax.jit(lambda p, x, bad=bad: jaxrnn.scan(cell, p, x, lengths=bad)[1])(params, xs)


@pytest.mark.parametrize("cell, path, steps", [(jaxrnn.lstm(16), "plain", 1024), (jaxrnn.mingru(8), "parallel", 512)],
                         ids=["lstm-plain", "mingru-parallel"])
def test_remat_keeps_about_sqrt_t_carries_instead_of_every_step(optimized_compiles, cell, path, steps):
    """The compiled training step's temporaries shrink several-fold with ``remat``: chunks of ~sqrt(T) steps
    (on the parallel path each chunk's steps at once) are recomputed in the backward pass, not the whole sequence."""
    params = cell.init(jax.random.key(0), 4)
    xs = jnp.zeros((steps, 2, 4))

    def temporaries(remat):
        loss = lambda p, x: jnp.mean(jaxrnn.scan(cell, p, x, remat=remat, path=path)[1] ** 2)  # noqa: E731
        compiled = jax.jit(jax.grad(loss, argnums=(0, 1))).lower(params, xs).compile()
        return compiled.memory_analysis().temp_size_in_bytes

    assert temporaries(False) > 4 * temporaries(True)


@pytest.mark.parametrize("time, size", [(0, 1), (1, 1), (7, 3), (100, 10), (1000, 25), (8192, 64), (97, 10)])
def test_checkpoint_chunks_are_about_sqrt_t(time, size):
    assert chunk_size(time) == size
