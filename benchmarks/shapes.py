"""Problem sizes: ``B`` batch, ``T`` sequence length, ``I`` input size, ``H`` hidden size."""

from __future__ import annotations

import re
from typing import NamedTuple


class Shape(NamedTuple):
    B: int
    T: int
    I: int
    H: int

    @property
    def name(self) -> str:
        return f"B{self.B} T{self.T} I{self.I} H{self.H}"

    def as_dict(self) -> dict[str, int]:
        return self._asdict()


# The preset shapes: the CPU pair fits a 2-core machine, the GPU pair one GPU of 80 GB.
PRESETS: dict[str, tuple[Shape, ...]] = {
    "cpu": (Shape(32, 128, 64, 128), Shape(64, 256, 128, 256)),
    "gpu": (Shape(64, 512, 256, 512), Shape(128, 1024, 1024, 1024)),
    "tiny": (Shape(2, 4, 3, 4),),
}
PRESETS["all"] = PRESETS["cpu"] + PRESETS["gpu"]

_SPEC = re.compile(r"^B(\d+)[ x_-]*T(\d+)[ x_-]*I(\d+)[ x_-]*H(\d+)$", re.IGNORECASE)


def parse_shape(spec: str) -> Shape:
    """``"B32T128I64H128"`` (spaces, ``x``, ``_`` or ``-`` allowed between fields) to a :class:`Shape`."""
    match = _SPEC.match(spec.strip())
    if not match:
        raise ValueError(f"expected a shape like B32T128I64H128, got {spec!r}")
    return Shape(*(int(g) for g in match.groups()))


def parse_shapes(spec: str) -> list[Shape]:
    """A comma-separated list of preset names (``cpu``, ``gpu``, ``all``, ``tiny``) and/or shape specs."""
    shapes: list[Shape] = []
    for item in (part.strip() for part in spec.split(",")):
        if not item:
            continue
        for shape in PRESETS.get(item.lower()) or (parse_shape(item),):
            if shape not in shapes:
                shapes.append(shape)
    if not shapes:
        raise ValueError(f"no shapes in {spec!r}")
    return shapes
