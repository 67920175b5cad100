"""How a step is timed: compile apart, warm up, then N timed calls that wait for the device.

Every framework hands the timer a :class:`Case`: a zero-argument ``step`` that runs
one full step and returns only once the device has finished (``block_until_ready``
for JAX, ``torch.cuda.synchronize`` for PyTorch on a GPU). JAX functions are
lowered and compiled ahead of the first call, so compile time is measured on its
own and never leaks into a timed step.

The first call of each case is timed on its own (it may allocate, plan cuDNN
kernels, ...). The cases of one (shape, cell, mode) are then timed in
interleaved rounds -- one call of each, in a fresh random order every round --
so that a noisy machine slows every framework alike and the ratios stay fair.
The order is random rather than rotating so that no case follows the same
neighbour more often than another does (a step can leave work behind it:
PyTorch's OpenMP threads spin for a while after each parallel region).
"""

from __future__ import annotations

import dataclasses
import random
import time
from typing import Any, Callable, Sequence

import numpy as np


@dataclasses.dataclass
class Case:
    """One framework's layer, ready to run.

    Attributes:
      framework: its name in the tables (``"jaxrnn"``, ``"Flax"``, ...).
      what: the exact call being timed, for the record.
      step: runs one step and waits until the device is done.
      compile_s: trace + lower + compile time in seconds (``None`` where there is no compiler).
      device: where it runs (``"cpu"``, ``"cuda"``, ...).
      path: for jaxrnn, the way ``jaxrnn.scan`` ran the loop (``"onednn"``, ``"plain"``, ``"fused"``, ...).
    """

    framework: str
    what: str
    step: Callable[[], Any]
    compile_s: float | None = None
    device: str = "cpu"
    path: str | None = None


@dataclasses.dataclass
class Timing:
    """Summary of the timed calls of one case, in milliseconds."""

    median_ms: float
    q1_ms: float
    q3_ms: float
    min_ms: float
    mean_ms: float
    first_call_ms: float
    times_ms: list[float]

    @property
    def iqr_ms(self) -> float:
        return self.q3_ms - self.q1_ms

    @classmethod
    def of(cls, times_s: Sequence[float], first_call_s: float) -> "Timing":
        ms = np.asarray(times_s, dtype=np.float64) * 1e3
        q1, median, q3 = np.percentile(ms, [25, 50, 75])
        return cls(float(median), float(q1), float(q3), float(ms.min()), float(ms.mean()),
                   first_call_s * 1e3, [round(float(t), 4) for t in ms])

    def as_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "iqr_ms": self.iqr_ms}


def compile_jax(fn: Callable[..., Any], *args: Any) -> tuple[Callable[[], Any], float]:
    """``jax.jit(fn)`` lowered and compiled for ``args``; returns ``(step, compile_seconds)``.

    ``step()`` calls the compiled executable on ``args`` and blocks until its
    outputs are ready.
    """
    import jax

    start = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    compile_s = time.perf_counter() - start

    def step() -> Any:
        return jax.block_until_ready(compiled(*args))

    return step, compile_s


def timed(step: Callable[[], Any]) -> float:
    """Seconds one call of ``step`` takes (``step`` waits for the device itself)."""
    start = time.perf_counter()
    step()
    return time.perf_counter() - start


def measure(cases: Sequence[Case], first_call_s: Sequence[float], repeats: int, warmup: int,
            interleave: bool = True, seed: int = 0) -> list[Timing]:
    """Time cases that have made their first call: ``warmup`` untimed calls, then ``repeats`` timed ones.

    With ``interleave``, every round calls each case once, in an order drawn
    afresh (from ``seed``) for each round; without, each case runs all its
    calls back to back.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    for case in cases:
        for _ in range(warmup):
            case.step()
    times: list[list[float]] = [[] for _ in cases]
    n = len(cases)
    if interleave:
        order = list(range(n))
        rng = random.Random(seed)
        for _ in range(repeats):
            rng.shuffle(order)
            for i in order:
                times[i].append(timed(cases[i].step))
    else:
        for i, case in enumerate(cases):
            times[i] = [timed(case.step) for _ in range(repeats)]
    return [Timing.of(t, f) for t, f in zip(times, first_call_s)]
