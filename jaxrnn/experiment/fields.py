"""The value types of config keys: strict, finite, bounded numbers and safe names.

Strict: a number key takes a number, not ``"8"``, ``8.0`` for an integer, or
``true`` (YAML's ``yes``); a flag takes ``true``/``false``. One exception: a
number key also takes a string that reads as a number, because YAML 1.1 reads
``1e-3`` (no dot) as a string. Integers stay below ``2**31`` (``2**32`` for a
seed), so no size or seed overflows downstream.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, Field

MAX_INT = 2**31 - 1
MAX_SEED = 2**32 - 1


def _number_from_text(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return value
    return value


Int = Annotated[int, Field(le=MAX_INT)]
Float = Annotated[float, BeforeValidator(_number_from_text)]
PositiveInt = Annotated[int, Field(gt=0, le=MAX_INT)]
NonNegativeInt = Annotated[int, Field(ge=0, le=MAX_INT)]
Seed = Annotated[int, Field(ge=0, le=MAX_SEED)]
PositiveFloat = Annotated[Float, Field(gt=0)]
NonNegativeFloat = Annotated[Float, Field(ge=0)]
Rate = Annotated[Float, Field(ge=0, lt=1)]
# A config's name is its run folder's name: letters, digits, '.', '_' and '-', not starting with '.'.
Name = Annotated[str, Field(pattern=r"^[\w-][\w.-]*$")]
