"""Shared fixtures: tiny configs written to tmp_path, and the CLI called in-process."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import jax
import pytest

ROOT = Path(__file__).resolve().parent.parent

TINY = {
    "experiment": "adding",
    "model": {"cell": "lstm", "hidden_size": 8, "num_layers": 1},
    "optim": {"name": "adam", "learning_rate": 0.01, "clip_norm": 1.0},
    "train": {"steps": 6, "batch_size": 8, "seed": 0, "eval_every": 3, "checkpoint_every": 2,
              "eval_batches": 1, "log_every": 1, "keep_checkpoints": 5},
    "data": {"seq_len": 10},
}


def pytest_configure(config):
    # The tests compile hundreds of tiny programs that each run for microseconds, so compiling
    # dominates their time: skip most of XLA's optimisation (a test that measures what the
    # optimiser does asks for it back with the `optimized_compiles` fixture). The CLI tests run
    # tiny models of the same shapes many times: a persistent compilation cache for this
    # session compiles each shape once.
    jax.config.update("jax_disable_most_optimizations", True)
    # The tests compare functions, not rounding: on a GPU, JAX's default precision runs float32 matrix
    # products in TF32 (about 3 significant digits), and two paths that compute the same function
    # then differ by ~1e-3. Full float32 everywhere (a no-op on the CPU).
    jax.config.update("jax_default_matmul_precision", "highest")
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


def cli(*args: str) -> int:
    """``jaxrnn ARGS`` in this process; its exit status."""
    from jaxrnn.experiment.cli import main  # the app's imports (pydantic, yaml, ...) only where the app is tested

    try:
        return main([str(a) for a in args])
    except SystemExit as exit:  # argparse's usage errors
        return exit.code


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
