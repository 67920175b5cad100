"""Which machine and software produced a set of numbers, and the file name they go under."""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
from pathlib import Path
from typing import Any


def cpu_model() -> str:
    """The CPU's model name from ``/proc/cpuinfo`` (or ``platform`` elsewhere)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def cpu_cores() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def device() -> dict[str, Any]:
    """The device JAX runs on: ``{"kind", "name", "slug", ...}``."""
    import jax

    dev = jax.devices()[0]
    cores = cpu_cores()
    cpu = f"{cpu_model()}, {cores} cores"
    if dev.platform == "cpu":
        name = cpu
        kind = "cpu"
    else:
        name = f"{dev.device_kind} ({dev.platform}, {len(jax.devices())} visible)"
        kind = "gpu" if dev.platform in ("gpu", "cuda", "rocm") else dev.platform
    base = dev.device_kind if kind != "cpu" else f"{cpu_model()} {cores}c"
    return {"kind": kind, "name": name, "host_cpu": cpu, "cores": cores, "jax_backend": jax.default_backend(),
            "slug": slug(f"{kind}-{base}")}


def slug(text: str) -> str:
    """``"gpu-NVIDIA H100 80GB HBM3"`` -> ``"gpu-nvidia-h100-80gb-hbm3"``."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "unknown"


def software() -> dict[str, Any]:
    """Versions and the precision settings that change the numbers."""
    import jax

    info: dict[str, Any] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "jax": jax.__version__,
        "jax_default_matmul_precision": jax.config.jax_default_matmul_precision,
        "XLA_FLAGS": os.environ.get("XLA_FLAGS"),
        "XLA_PYTHON_CLIENT_PREALLOCATE": os.environ.get("XLA_PYTHON_CLIENT_PREALLOCATE"),
    }
    try:
        import jaxlib

        info["jaxlib"] = jaxlib.__version__
    except ImportError:
        pass
    for package in ("flax", "jaxrnn"):
        try:
            info[package] = __import__(package).__version__
        except (ImportError, AttributeError):
            info[package] = None
    info["jaxrnn_git"] = git_state()
    try:
        import torch
    except ImportError:
        info["torch"] = None
        return info
    info["torch"] = torch.__version__
    info["torch_num_threads"] = torch.get_num_threads()
    info["torch_cuda"] = torch.cuda.is_available()
    if torch.cuda.is_available():
        info["torch_device"] = torch.cuda.get_device_name(0)
        info["torch_cudnn"] = torch.backends.cudnn.version()
        info["torch_cudnn_allow_tf32"] = torch.backends.cudnn.allow_tf32
        info["torch_matmul_allow_tf32"] = torch.backends.cuda.matmul.allow_tf32
    return info


def git_state() -> dict[str, Any] | None:
    """The commit of the jaxrnn checkout being measured and whether ``jaxrnn/`` differs from it."""
    try:
        import jaxrnn

        root = Path(jaxrnn.__file__).resolve().parent.parent
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
        status = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--", "jaxrnn"],
                                capture_output=True, text=True, timeout=10, check=True).stdout
    except (ImportError, OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "jaxrnn_modified": bool(status.strip())}
