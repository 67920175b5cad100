"""Sequence classification on real data: handwritten digits read pixel by pixel, or row by row.

Data: scikit-learn's 8x8 handwritten digits (1797 images, shipped in
``jaxrnn/data``; ``jaxrnn.datasets.digits``), pixels scaled to ``[0, 1]``. A
fixed shuffle (numpy's generator from seed 0, whatever ``train.seed``) puts
``data.test`` of them aside for the test.

``data.read``: ``pixels``, one pixel per step (``T = 64``, ``I = 1``): the
class depends on pixels up to 63 steps before the answer; ``rows``, one row
of 8 pixels per step (``T = 8``, ``I = 8``).

Model: many-to-one, the cell reads the image and a linear readout of its
last output gives logits over the 10 digits. Loss: cross-entropy (nats).
Reported: ``eval_loss`` and ``eval_accuracy`` on the test images. Baseline:
the cross-entropy of answering every image with the training set's class
frequencies (``ln 10`` for balanced classes).
"""

from __future__ import annotations

import functools
from typing import Annotated, Literal

import jax
import jax.numpy as jnp
import numpy as np
import optax
from pydantic import Field

from jaxrnn import datasets, models
from jaxrnn.experiment.keys import Purpose, key
from jaxrnn.experiment.problem import Experiment, Problem, needs_recurrent
from jaxrnn.experiment.schema import Config, Section

CLASSES = 10


class Data(Section):
    """``data`` section: how an image becomes a sequence, and the share of images kept for the test."""

    read: Literal["pixels", "rows"] = "pixels"
    test: Annotated[float, Field(gt=0, lt=1)] = 0.2


def sequences(images: np.ndarray, read: str) -> np.ndarray:
    """``(N, 8, 8)`` images as time-major sequences: ``(64, N, 1)`` pixel by pixel, ``(8, N, 8)`` row by row."""
    if read == "pixels":
        return images.reshape(len(images), 64, 1).transpose(1, 0, 2)
    return images.transpose(1, 0, 2)


def split(test: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(train_images, train_labels, test_images, test_labels)``, images scaled to ``[0, 1]``, a fixed shuffle."""
    images, labels = datasets.digits()
    order = np.random.default_rng(0).permutation(len(labels))
    cut = len(labels) - int(round(test * len(labels)))
    train, held = order[:cut], order[cut:]
    return images[train] / 16.0, labels[train], images[held] / 16.0, labels[held]


def problem(config: Config) -> Problem:
    """Random minibatches of the training images; the test images in one batch."""
    data = config.data
    train_x, train_y, test_x, test_y = split(data.test)
    xs, ys = jnp.asarray(sequences(train_x, data.read)), jnp.asarray(train_y)
    net = models.many_to_one(config.model.build(), CLASSES)
    batch_size = config.train.batch_size

    @jax.jit
    def batch(batch_key):
        i = jax.random.randint(batch_key, (batch_size,), 0, ys.shape[0])
        return xs[:, i], ys[i]

    def loss(params, batch, *, key):
        logits = net.apply(params, batch[0], key=key)
        accuracy = jnp.mean(jnp.argmax(logits, -1) == batch[1])
        return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, batch[1])), {"accuracy": accuracy}

    def metrics(params, batch):
        logits = net.apply(params, batch[0])
        return {"loss": jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, batch[1])),
                "accuracy": jnp.mean(jnp.argmax(logits, -1) == batch[1])}

    frequencies = np.bincount(train_y, minlength=CLASSES) / len(train_y)
    return Problem(
        init=functools.partial(net.init, input_size=xs.shape[-1]),
        loss=loss,
        metrics=metrics,
        batch=lambda step: batch(key(config.train.seed, Purpose.TRAIN, step)),
        eval_batches=[(jnp.asarray(sequences(test_x, data.read)), jnp.asarray(test_y))],
        baseline=float(-np.mean(np.log(frequencies[test_y]))),
        batch_axes=(1, 0),  # images (T, B, I), labels (B,)
        sample=batch,
    )


EXPERIMENT = Experiment(
    name="digits",
    data=Data,
    problem=problem,
    length=lambda config: 64 if config.data.read == "pixels" else 8,
    check=needs_recurrent,
    description="handwritten 8x8 digits read pixel by pixel (T = 64) or row by row (T = 8): test accuracy",
)
