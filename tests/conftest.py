"""pytest's hooks and fixtures only: the session's JAX settings, full optimisation on request, and tiny
configs written to tmp_path. Shared helpers and constants live in ``support.py``."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import jax
import pytest

from support import TINY


def pytest_configure(config):
    # The tests compile hundreds of tiny programs whose run is short next to their compile, so
    # compiling dominates their time: skip most of XLA's optimisation (a test that measures what the
    # optimiser does asks for it back with the `optimized_compiles` fixture). The CLI tests run
    # tiny models of the same shapes many times: a persistent compilation cache for this
    # session compiles each shape once.
    jax.config.update("jax_disable_most_optimizations", True)
    # The tests compare functions, not rounding: on a GPU, JAX's default precision runs float32 matrix
    # products in TF32 (about 3 significant digits), and two paths that compute the same function
    # then differ by ~1e-3. Full float32 everywhere (a no-op on the CPU).
    jax.config.update("jax_default_matmul_precision", "highest")
    # pytest-xdist's workers share the cores: each worker's oneDNN calls take its share of them (a team
    # with more threads than free cores stalls at every step's barrier; jaxrnn.onednn.threads).
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        os.environ.setdefault("OMP_NUM_THREADS", str(max(1, len(os.sched_getaffinity(0)) // workers)))
    if os.environ.get("JAXRNN_TEST_CACHE", "1") == "1":
        config._jaxrnn_cache = tempfile.mkdtemp(prefix="jaxrnn-tests-xla-")
        jax.config.update("jax_compilation_cache_dir", config._jaxrnn_cache)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def pytest_unconfigure(config):
    shutil.rmtree(getattr(config, "_jaxrnn_cache", ""), ignore_errors=True)


@pytest.fixture
def optimized_compiles():
    """XLA's full optimisation, for a test that measures what it does (memory, fusion)."""
    jax.config.update("jax_disable_most_optimizations", False)
    yield
    jax.config.update("jax_disable_most_optimizations", True)


@pytest.fixture
def write_config(tmp_path):
    """``write_config(name, **section_updates) -> path`` of a tiny config with the updates merged in
    (``base=``: another config to start from; a new ``experiment`` starts its ``data`` afresh)."""

    def write(name: str = "tiny", base: dict | None = None, **updates) -> Path:
        raw = {k: dict(v) if isinstance(v, dict) else v for k, v in (base or TINY).items()}
        if "experiment" in updates:  # another experiment has its own data section
            raw["data"] = {}
        for section, values in updates.items():
            if isinstance(values, dict):
                raw.setdefault(section, {}).update(values)
            else:
                raw[section] = values
        import yaml

        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(raw))
        return path

    return write
