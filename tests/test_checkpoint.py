"""Checkpoints: exact round trip of a train state, the last few kept, nothing half-written."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxrnn
from jaxrnn import models, training
from jaxrnn.experiment.checkpoint import Checkpointer

TX = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(optax.cosine_decay_schedule(1e-3, 10)))
MODEL = models.many_to_one(jaxrnn.stack([jaxrnn.lstm(4), jaxrnn.lstm(4)]), 1)


@jax.jit
def a_state(key):
    """A train state after one update: params of a 2-layer stack, Adam moments, counts."""
    state = training.init(MODEL.init(key, 2), TX)
    grads = jax.tree_util.tree_map(jnp.ones_like, state.params)
    return training.apply_gradients(state, grads, jnp.array(1.0), TX)[0]


def test_round_trip_is_exact(tmp_path):
    state = a_state(jax.random.key(0))
    with Checkpointer(tmp_path / "ckpt") as checkpoints:
        checkpoints.save(1, state)
        checkpoints.wait()
        restored = checkpoints.restore(a_state(jax.random.key(1)))
    assert jax.tree_util.tree_structure(restored) == jax.tree_util.tree_structure(state)
    for a, b in zip(jax.tree_util.tree_leaves(restored), jax.tree_util.tree_leaves(state)):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    assert isinstance(restored, training.TrainState) and int(restored.step) == 1


def test_keeps_the_last_few(tmp_path):
    state = a_state(jax.random.key(0))
    with Checkpointer(tmp_path, keep=2) as checkpoints:
        for step in (2, 4, 6, 8):
            checkpoints.save(step, state._replace(step=jnp.asarray(step, jnp.int32)))
        checkpoints.wait()
        assert checkpoints.steps() == [6, 8] and checkpoints.latest() == 8
        assert int(checkpoints.restore(state, step=6).step) == 6
    # only finished checkpoints are on disk: no temporary folders left behind
    assert sorted(p.name for p in tmp_path.iterdir()) == ["6", "8"]
    # a new manager over the same folder sees them
    with Checkpointer(tmp_path, keep=2) as again:
        assert again.latest() == 8


def test_restore_without_checkpoint_raises(tmp_path):
    with Checkpointer(tmp_path) as checkpoints:
        assert checkpoints.latest() is None
        with pytest.raises(FileNotFoundError):
            checkpoints.restore(a_state(jax.random.key(0)))
