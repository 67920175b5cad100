"""A character vocabulary: text to integer ids and back, unknown characters mapped explicitly.

Id 0 is the unknown character: a character the vocabulary was not built
from encodes as 0 (never silently dropped) and decodes as ``unknown``
(``"\\ufffd"``, the replacement character, by default). The other ids are the
characters of the text it was built from, in sorted order.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Iterable, NamedTuple

import numpy as np

__all__ = ["UNKNOWN_ID", "Vocabulary"]

UNKNOWN_ID = 0


class Vocabulary(NamedTuple):
    """The characters with an id of their own, ``chars[i - 1]`` for id ``i``; id 0 stands for any other."""

    chars: tuple[str, ...]
    unknown: str = "\ufffd"

    @classmethod
    def from_text(cls, text: str, *, min_count: int = 1, unknown: str = "\ufffd") -> "Vocabulary":
        """The characters of ``text`` seen at least ``min_count`` times (rarer ones become unknown)."""
        if not isinstance(text, str) or not text:
            raise ValueError("text: expected a non-empty str to build a vocabulary from")
        counts = Counter(text)
        return cls(tuple(sorted(c for c, n in counts.items() if n >= min_count and c != unknown)), unknown)

    @property
    def size(self) -> int:
        """The number of ids, the unknown one included: an embedding's ``input_size``."""
        return len(self.chars) + 1

    def encode(self, text: str) -> np.ndarray:
        """``(len(text),)`` int32 ids; characters outside the vocabulary are ``UNKNOWN_ID``."""
        index = {c: i + 1 for i, c in enumerate(self.chars)}
        return np.fromiter((index.get(c, UNKNOWN_ID) for c in text), np.int32, count=len(text))

    def decode(self, ids: Iterable[int]) -> str:
        """The text of ``ids``; ``UNKNOWN_ID`` (and any id out of range) as ``unknown``."""
        chars = (self.unknown, *self.chars)
        return "".join(chars[i] if 0 <= i < len(chars) else self.unknown for i in np.asarray(ids).ravel().tolist())

    def save(self, path: str | Path) -> None:
        """Write the vocabulary as JSON (readable by :meth:`load`)."""
        Path(path).write_text(json.dumps({"chars": list(self.chars), "unknown": self.unknown}, ensure_ascii=False),
                              encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> "Vocabulary":
        """A vocabulary written by :meth:`save`."""
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return cls(tuple(data["chars"]), data["unknown"])
