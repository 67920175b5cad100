"""Real data shipped inside the package: read offline, never downloaded.

Each loader returns plain NumPy arrays; ``jaxrnn/data/README.md`` names the
source and the licence of every file.
"""

from __future__ import annotations

import csv
import io
from importlib import resources

import numpy as np


def _csv(name: str) -> tuple[list[str], np.ndarray]:
    text = resources.files("jaxrnn").joinpath("data", name).read_text(encoding="utf-8")
    header, *rows = list(csv.reader(io.StringIO(text)))
    return header, np.asarray(rows, dtype=np.float64)


def sunspots() -> tuple[np.ndarray, np.ndarray]:
    """Yearly mean sunspot numbers 1700-2008 (NOAA NGDC, public domain).

    Returns:
      ``(years, counts)``: ``years: (309,)`` int, 1700..2008; ``counts: (309,)``
      float32, the yearly mean (Wolf) sunspot number, 0.0 to 190.2. The series
      has the ~11-year solar cycle with irregular peak heights: the classic
      test bed of autoregressive models (Yule, 1927).
    """
    _, table = _csv("sunspots_yearly.csv")
    return table[:, 0].astype(np.int64), table[:, 1].astype(np.float32)
