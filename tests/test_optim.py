"""Optimisers and schedules by name; clipping by global norm."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxrnn.experiment import optim
from jaxrnn.experiment.registry import OPTIMIZERS, SCHEDULES
from jaxrnn.experiment.schema import Optim


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_every_optimizer_descends(name):
    params = {"w": jnp.array([1.0, -2.0])}
    tx = optim.optimizer(name, 0.1, clip_norm=1.0, weight_decay=0.01)
    state = tx.init(params)
    grads = {"w": params["w"]}  # of 0.5 ||w||^2
    updates, _ = tx.update(grads, state, params)
    new = optax.apply_updates(params, updates)
    assert float(jnp.sum(new["w"] ** 2)) < float(jnp.sum(params["w"] ** 2))


def test_clipping_rescales_to_the_global_norm():
    params = {"a": jnp.zeros(2), "b": jnp.zeros(1)}
    grads = {"a": jnp.array([3.0, 0.0]), "b": jnp.array([4.0])}  # global norm 5
    tx = optim.optimizer("sgd", 1.0, clip_norm=1.0, momentum=0.0)
    updates, _ = tx.update(grads, tx.init(params), params)
    np.testing.assert_allclose(updates["a"], [-0.6, 0.0], rtol=1e-6)
    np.testing.assert_allclose(updates["b"], [-0.8], rtol=1e-6)
    unclipped = optim.optimizer("sgd", 1.0, momentum=0.0)
    updates, _ = unclipped.update(grads, unclipped.init(params), params)
    np.testing.assert_allclose(updates["b"], [-4.0])


def test_schedules():
    assert float(optim.schedule("constant", 0.1, 100)(50)) == pytest.approx(0.1)
    cosine = optim.schedule("cosine", 0.1, 100)
    assert float(cosine(0)) == pytest.approx(0.1) and float(cosine(50)) == pytest.approx(0.05)
    assert float(cosine(100)) == pytest.approx(0.0, abs=1e-9)
    warmup = optim.schedule("warmup", 0.1, 100, warmup_steps=10)
    assert float(warmup(0)) == 0.0
    assert float(warmup(5)) == pytest.approx(0.05) and float(warmup(60)) == pytest.approx(0.1)
    wc = optim.schedule("warmup_cosine", 0.1, 100, warmup_steps=10)
    assert float(wc(0)) == 0.0
    assert float(wc(10)) == pytest.approx(0.1) and float(wc(100)) == pytest.approx(0.0, abs=1e-9)


def test_unknown_names_raise():
    with pytest.raises(ValueError, match=", ".join(OPTIMIZERS)):
        optim.optimizer("lion", 0.1)
    with pytest.raises(ValueError, match=", ".join(SCHEDULES)):
        optim.schedule("step", 0.1, 10)


def test_the_config_section_builds_its_schedule():
    tx, lr = Optim(name="adamw", learning_rate=0.2, clip_norm=None, schedule="cosine").build(10)
    assert float(lr(0)) == pytest.approx(0.2) and float(lr(10)) == pytest.approx(0.0, abs=1e-9)
    assert isinstance(tx, optax.GradientTransformation)
