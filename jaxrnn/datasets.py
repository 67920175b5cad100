"""Real data shipped inside the package: read offline, never downloaded.

Each loader returns plain NumPy arrays; ``jaxrnn/data/README.md`` names the
source and the licence of every file.
"""

from __future__ import annotations

import csv
import gzip
import io
from importlib import resources

import numpy as np

__all__ = ["digits", "python_help", "sunspots"]


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


def python_help() -> str:
    """The help topics of CPython's ``pydoc_data`` (English prose about Python, about 465k characters).

    The text ``help("keywords")`` and friends show, shipped with the Python
    standard library itself (Python Software Foundation License; the topics
    are generated from the Python documentation), so it is on every machine
    with a standard CPython: the character language model's default corpus.

    Raises:
      FileNotFoundError: this Python distribution leaves ``pydoc_data`` out
        (some trim the standard library); point the experiment at your own
        text with ``data.path``.
    """
    try:
        from pydoc_data import topics
    except ImportError:
        raise FileNotFoundError("this Python has no pydoc_data (the standard library's help topics, the default "
                                "corpus): its distribution left them out; give a text file with data.path") from None
    return "".join(topics.topics[name] for name in sorted(topics.topics))


def digits() -> tuple[np.ndarray, np.ndarray]:
    """The 8x8 handwritten digits of scikit-learn (1797 images; UCI, Alpaydin & Kaynak 1998; BSD licence).

    Returns:
      ``(images, labels)``: ``images: (1797, 8, 8)`` float32 pixel counts in
      ``0 .. 16``, ``labels: (1797,)`` int32 digits ``0 .. 9``.
    """
    raw = resources.files("jaxrnn").joinpath("data", "digits.csv.gz").read_bytes()
    table = np.loadtxt(io.StringIO(gzip.decompress(raw).decode("ascii")), delimiter=",")
    return table[:, :64].reshape(-1, 8, 8).astype(np.float32), table[:, 64].astype(np.int32)
