"""Progress of a training loop (or of a long generation): a tqdm bar on a terminal, plain periodic lines otherwise."""

from __future__ import annotations

import sys
from typing import Any, TextIO

from tqdm.auto import tqdm


class Progress:
    """Show ``step/total``, the loss and steps/s.

    Args:
      total: the last step.
      start: the step training starts from (> 0 when resumed).
      interactive: a tqdm bar if true, lines if false; default: whether
        ``stream`` is a terminal.
      stream: where to write (default ``sys.stderr`` for the bar, ``sys.stdout`` for lines).
      unit: what is counted, for the bar (``step``, ``char``).
    """

    def __init__(self, total: int, start: int = 0, interactive: bool | None = None, stream: TextIO | None = None,
                 unit: str = "step"):
        if interactive is None:
            interactive = (stream or sys.stderr).isatty()
        self.total = total
        self.interactive = interactive
        self.stream = stream
        self._bar = (
            tqdm(total=total, initial=start, file=stream or sys.stderr, dynamic_ncols=True, unit=unit)
            if interactive
            else None
        )

    def advance(self, n: int = 1) -> None:
        """Count ``n`` more steps done (moves the bar; lines are written by :meth:`report`)."""
        if self._bar is not None:
            self._bar.update(n)

    def report(self, record: dict[str, Any]) -> None:
        """Show a training record (``step``, ``loss``, ``steps_per_sec``, ...)."""
        if self._bar is not None:
            self._bar.set_postfix(loss=f"{record['loss']:.4g}", sps=f"{record.get('steps_per_sec', 0):.1f}")
        else:
            self.write(format_record(record, self.total))

    def write(self, text: str) -> None:
        """A line of its own (under the bar on a terminal)."""
        if self._bar is not None:
            self._bar.write(text, file=self.stream or sys.stderr)
        else:
            print(text, file=self.stream or sys.stdout, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def format_record(record: dict[str, Any], total: int | None = None) -> str:
    """``step 100/2000  loss 0.1634  grad_norm 0.21  lr 0.001  steps/s 41.2`` (eval records likewise)."""
    width = len(str(total)) if total else 0
    parts = [f"step {record['step']:>{width}}" + (f"/{total}" if total else "")]
    for name, value in record.items():
        if name in ("step", "time"):
            continue
        label = "steps/s" if name == "steps_per_sec" else name
        parts.append(f"{label} {value:.4g}" if isinstance(value, float) else f"{label} {value}")
    return "  ".join(parts)
