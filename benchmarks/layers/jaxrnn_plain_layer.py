"""jaxrnn on its XLA loop, ``path="plain"``: on a CPU, beside jaxrnn's default (the oneDNN path where it is
built), the baseline that path is measured against. Elsewhere ``"auto"`` never takes ``"plain"`` for these
cells, and :mod:`benchmarks.loop` compares the paths there.
"""

from __future__ import annotations

import jax

from benchmarks.layers.jaxrnn_layer import build_plain as build  # noqa: F401  (the layer module's build)


def unavailable() -> str | None:
    if jax.default_backend() != "cpu":
        return "the CPU's baseline of the oneDNN path (on this backend benchmarks.loop compares the paths)"
    return None
