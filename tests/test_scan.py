"""``jaxrnn.scan``: gradients against finite differences, and properties that must hold
for any inputs (checked with hypothesis against an independent way to compute the same thing).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jax.test_util import check_grads

import jaxrnn
from support import (
    CELL_NAMES,
    CELLS,
    PROPERTY,
    B,
    H,
    I,
    T,
    assert_trees_close,
    random_carry,
    random_inputs,
    random_params,
    run,
    step_loop,
)

seeds = st.integers(0, 2**31 - 1)
cell_names = st.sampled_from(CELL_NAMES)
maybe_lengths = st.one_of(st.none(), st.lists(st.integers(0, T), min_size=B, max_size=B))


# ``remat``, ``unroll`` and the loop's ``path`` must not change the function: each variant is held
# to the ``plain`` path (autodiff of ``lax.scan`` of the step) in the same direction. (Every path
# in both directions is also compared in test_paths.py.)
FUSED = "fused" if "fused" in jaxrnn.loop.PATHS else "auto"
BASELINES = (dict(path="plain", reverse=False), dict(path="plain", reverse=True))
VARIANTS = (
    dict(remat=True, reverse=False),
    dict(remat=True, unroll=2, reverse=True),
    dict(unroll=3, reverse=False),
    dict(unroll=2, path=FUSED, reverse=True),
)
# The loop transformations do not depend on the cell: one of each carry structure and step kind.
LOOP_CELLS = ["rnn_nobias", "lstm", "gru_reset_after"]


@functools.partial(jax.jit, static_argnames="cell")
def outputs_and_grads(cell, params, xs, carry, lengths):
    """For ``BASELINES + VARIANTS``: ``scan``'s outputs, and the gradient of a scalar of them w.r.t.
    params, inputs and initial carry; all in one program (one compile instead of many)."""

    def loss(params, xs, carry, options):
        out = jaxrnn.scan(cell, params, xs, carry, lengths=lengths, **options)
        return sum(jnp.sum(jnp.square(leaf)) for leaf in jax.tree_util.tree_leaves(out)), out

    def grad(options):
        return jax.grad(functools.partial(loss, options=options), (0, 1, 2), has_aux=True)
    return [grad(options)(params, xs, carry)[::-1] for options in BASELINES + VARIANTS]


def test_empty_sequence_returns_initial_carry():
    """``T == 0``: no step runs; the carry comes back unchanged and ``ys`` is empty."""
    cell = CELLS["lstm"]
    params, carry = random_params(cell, seed=5), random_carry(cell, (B,), seed=6)
    final, ys = jaxrnn.scan(cell, params, jnp.zeros((0, B, I)), carry)
    assert ys.shape == (0, B, H)
    assert_trees_close(final, carry, rtol=0, atol=0)


# --- gradients against finite differences ----------------------------------------------------------------


@pytest.mark.parametrize("name", CELL_NAMES)
def test_gradients_match_finite_differences(name):
    """Reverse-mode gradients of ``scan`` w.r.t. params, inputs and carry, in float64, against
    finite differences (``jax.test_util.check_grads``), on the path with the hand-written VJP
    (``fused``), without and with lengths and reverse; the other paths must agree with it (below)."""
    cell = CELLS[name]
    with jax.enable_x64(True):
        params = random_params(cell, seed=7, dtype=np.float64)
        carry = random_carry(cell, (B,), seed=8, dtype=np.float64)
        xs = random_inputs((4, B, I), seed=9, dtype=np.float64)
        lengths = jnp.array([4, 1, 0])

        def f(p, x, c):
            return (jaxrnn.scan(cell, p, x, c, path=FUSED),
                    jaxrnn.scan(cell, p, x, c, lengths=lengths, reverse=True, path=FUSED))

        check_grads(jax.jit(f), (params, xs, carry), order=1, modes=["rev"], atol=1e-6, rtol=1e-6)


# --- properties ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", CELL_NAMES)
@PROPERTY
@given(seed=seeds, lengths=st.lists(st.integers(0, T), min_size=B, max_size=B), reverse=st.booleans())
def test_masked_batch_equals_each_sequence_alone(name, seed, lengths, reverse):
    """A padded batch with ``lengths`` == each sequence ``xs[:L_b, b]`` stepped through alone (a
    Python loop of ``cell.step``): same outputs up to its length and zeros after, final carry
    the one at its true end."""
    cell = CELLS[name]
    params, carry = random_params(cell, seed), random_carry(cell, (B,), seed + 1)
    xs = random_inputs((T, B, I), seed + 2)
    final, ys = run(cell, params, xs, carry, lengths=jnp.array(lengths), reverse=reverse)
    for b, length in enumerate(lengths):
        carry_b = jax.tree_util.tree_map(lambda a: a[b], carry)
        final_alone, ys_alone = step_loop(cell, params, xs[:length, b], carry_b, reverse=reverse)
        assert_trees_close(jax.tree_util.tree_map(lambda a: a[b], final), final_alone)
        assert_trees_close(list(ys[:length, b]), ys_alone)
        np.testing.assert_array_equal(ys[length:, b], 0.0)


@pytest.mark.parametrize("name", CELL_NAMES)
@PROPERTY
@given(seed=seeds)
def test_reverse_equals_flip_scan_flip(name, seed):
    """``reverse=True`` == flip the inputs in time, scan forwards, flip the outputs back."""
    cell = CELLS[name]
    params, xs = random_params(cell, seed), random_inputs((T, B, I), seed + 1)
    final, ys = run(cell, params, xs[::-1])
    assert_trees_close(run(cell, params, xs, reverse=True), (final, ys[::-1]))


@functools.partial(jax.jit, static_argnames=("cell", "reverse"))
def scan_and_vmapped_scan(cell, params, xs, carry, lengths, *, reverse):
    """``scan`` of ``xs: (T, 2, 3, I)``, and ``vmap(vmap(...))`` of the scan of one ``(T, I)`` sequence."""

    def one(x, c, length):  # x: (T, I), c: leaves (H,), length: ()
        return jaxrnn.scan(cell, params, x, c, lengths=length, reverse=reverse)

    vmapped = jax.vmap(jax.vmap(one, in_axes=(1, 0, 0), out_axes=(0, 1)), in_axes=(1, 0, 0), out_axes=(0, 1))
    return jaxrnn.scan(cell, params, xs, carry, lengths=lengths, reverse=reverse), vmapped(xs, carry, lengths)


@pytest.mark.slow  # vmap is held to the float64 oracle in the fast suite (test_edges.py)
@PROPERTY
@given(name=cell_names, seed=seeds, reverse=st.booleans())
def test_batch_axes_equal_vmap(name, seed, reverse):
    """Two batch axes ``(T, 2, 3, I)``, with lengths of shape ``(2, 3)`` == ``vmap(vmap(...))``."""
    cell = CELLS[name]
    params, carry = random_params(cell, seed), random_carry(cell, (2, 3), seed + 1)
    xs = random_inputs((T, 2, 3, I), seed + 2)
    lengths = jnp.asarray(np.random.default_rng(seed).integers(0, T + 1, (2, 3)), jnp.int32)
    batched, vmapped = scan_and_vmapped_scan(cell, params, xs, carry, lengths, reverse=reverse)
    assert_trees_close(batched, vmapped)


@settings(PROPERTY, max_examples=6)  # each eager call compiles its loop anew
@given(name=cell_names, seed=seeds, lengths=maybe_lengths, reverse=st.booleans())
def test_jit_equals_eager(name, seed, lengths, reverse):
    """``jax.jit(scan)`` == ``scan`` run op by op."""
    cell = CELLS[name]
    params, xs = random_params(cell, seed), random_inputs((T, B, I), seed + 1)
    lengths = None if lengths is None else jnp.array(lengths)
    eager = jaxrnn.scan(cell, params, xs, lengths=lengths, reverse=reverse)
    assert_trees_close(run(cell, params, xs, lengths=lengths, reverse=reverse), eager)


# remat on every path is also held to the oracle in test_edges.py: one cell here, all of them with -m slow.
@pytest.mark.parametrize("name", [n if n == "lstm" else pytest.param(n, marks=pytest.mark.slow) for n in LOOP_CELLS])
@PROPERTY
@given(seed=seeds, lengths=st.lists(st.integers(0, T), min_size=B, max_size=B))
def test_remat_and_unroll_change_neither_values_nor_gradients(name, seed, lengths):
    """``remat``, ``unroll=k`` (also on the ``fused`` path, with its custom VJP): the same outputs and
    the same gradients as the ``plain`` path, with lengths, in either direction."""
    cell = CELLS[name]
    params, carry = random_params(cell, seed), random_carry(cell, (B,), seed + 1)
    xs = random_inputs((T, B, I), seed + 2)
    forward, backward, *others = outputs_and_grads(cell, params, xs, carry, jnp.array(lengths))
    for options, other in zip(VARIANTS, others):
        baseline = backward if options["reverse"] else forward
        assert_trees_close(other, baseline, err_msg=f"scan options {options}")


def scan_unrolls(jaxpr):
    """The ``unroll`` of every ``scan`` in ``jaxpr``, nested ones (a custom VJP's loop) included."""
    found = []
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "scan":
            found.append(eqn.params["unroll"])
        for value in eqn.params.values():
            for item in value if isinstance(value, (tuple, list)) else (value,):
                inner = getattr(item, "jaxpr", item)  # a ClosedJaxpr holds its Jaxpr
                if hasattr(inner, "eqns"):
                    found += scan_unrolls(inner)
    return found


def scan_unroll(cell, steps, unroll, path="plain"):
    """The ``unroll`` of the loop that ``scan`` traces for ``steps`` steps on ``path``."""
    params = random_params(cell, 0)
    jaxpr = jax.make_jaxpr(lambda xs: jaxrnn.scan(cell, params, xs, unroll=unroll, path=path))(jnp.zeros((steps, B, I)))
    (unroll,) = set(scan_unrolls(jaxpr.jaxpr))
    return unroll


@pytest.mark.parametrize("unroll, steps, expected", [(True, 5, 5), (4, 40, 4), (False, 40, 1), (100, 5, 5)])
def test_unroll_is_taken_as_given_up_to_the_cap(unroll, steps, expected, recwarn):
    assert scan_unroll(CELLS["lstm"], steps, unroll) == expected
    assert not recwarn.list


@pytest.mark.parametrize("backend, steps, expected", [("cpu", 40, 1), ("gpu", 40, 8), ("gpu", 5, 5), ("tpu", 40, 1)])
def test_default_unroll_is_chosen_per_backend(backend, steps, expected, monkeypatch, recwarn):
    # The default follows the loop sweep in benchmarks/README.md: 8 steps per iteration on a GPU, none on
    # XLA:CPU (where unrolling only adds work); a backend the sweep has not covered keeps 1.
    monkeypatch.setattr(jax, "default_backend", lambda: backend)
    assert scan_unroll(CELLS["lstm"], steps, None) == expected
    assert not recwarn.list


@pytest.mark.parametrize("path", ["plain", FUSED])
@pytest.mark.parametrize("unroll", [True, 1000])
def test_unroll_is_capped_so_compilation_cannot_explode(unroll, path):
    # Unrolling all 40 steps would multiply compile time far beyond the 40x of the loop body.
    with pytest.warns(UserWarning, match="capped at jaxrnn.loop.MAX_UNROLL = 16"):
        assert scan_unroll(CELLS["gru_reset_after"], 40, unroll, path) == jaxrnn.loop.MAX_UNROLL


@pytest.mark.parametrize("poison", [np.nan, np.inf, -np.inf, 1e30])
def test_padding_reaches_neither_values_nor_gradients(poison):
    """Whatever the padded steps hold, the values and every gradient are those of zero padding, and the
    padding's own gradient is zero (``jnp.where`` would otherwise differentiate the discarded step)."""
    cell = jaxrnn.stack([jaxrnn.bidirectional(CELLS["lstm"], CELLS["gru_reset_after"]), CELLS["rnn_nobias"]])
    params = cell.init(jax.random.key(0), I)
    xs = random_inputs((T, B, I), 1)
    lengths = jnp.array([T, 2, 0])
    padded = jnp.arange(T)[:, None] >= lengths[None, :]
    poisoned = jnp.where(padded[..., None], poison, xs)

    @jax.jit
    def value_and_grads(params, xs):
        def loss(params, xs):
            final, ys = jaxrnn.scan(cell, params, xs, lengths=lengths)
            return jnp.sum(jnp.sin(ys)) + sum(jnp.sum(leaf) for leaf in jax.tree_util.tree_leaves(final))
        return jax.value_and_grad(loss, argnums=(0, 1))(params, xs)

    (value, (d_params, d_xs)), (clean, clean_grads) = value_and_grads(params, poisoned), value_and_grads(
        params, jnp.where(padded[..., None], 0.0, xs))
    assert np.isfinite(value) and value == clean
    assert_trees_close(d_params, clean_grads[0], rtol=0, atol=0)
    assert np.all(np.asarray(d_xs)[np.asarray(padded)] == 0)
