"""Markdown tables (one per shape) and the JSON record of a run."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

from benchmarks.layers import REFERENCE

RESULTS_DIR = Path(__file__).resolve().parent / "results"

LEGEND = ("ms: median of {repeats} timed steps after {warmup} warm-up steps (±: interquartile range / median); "
          "÷ jaxrnn: peer median / jaxrnn median, > 1 means jaxrnn is faster; compile s: trace + lower + "
          "compile (JAX frameworks; PyTorch has no compile step, its first call is in the JSON).")
CELL_NOTE = {
    "lstm": "lstm: jaxrnn.lstm, Flax OptimizedLSTMCell, torch nn.LSTM, jax.experimental.rnn.lstm (cuDNN)",
    "gru": ("gru: jaxrnn.gru(H, reset_after=True) -- the cuDNN/PyTorch/Flax GRU, the same function as "
            "Flax GRUCell and torch nn.GRU (jaxrnn's default gru resets before the product, reset_after=False)"),
    "rnn": "rnn: jaxrnn.rnn (tanh), Flax SimpleCell, torch nn.RNN (tanh)",
}
LAYOUTS = ("layouts, each framework's default: jaxrnn and PyTorch time-major (T, B, I); "
           "Flax and jax.experimental.rnn batch-major (B, T, I)")


def _ms(record: dict[str, Any]) -> str:
    if record["status"] != "ok":
        return "—" if record["status"] == "skipped" else "error"
    median = record["median_ms"]
    text = f"{median:.{3 if median < 1 else 2 if median < 10 else 1 if median < 100 else 0}f}"
    spread = 100 * record["iqr_ms"] / median if median else 0.0
    return f"{text} ±{spread:.0f}%"


def _ratio(record: dict[str, Any]) -> str:
    ratio = record.get("ratio")
    return "—" if ratio is None else f"{ratio:.2f}x"


def shape_table(records: Sequence[dict[str, Any]], frameworks: Sequence[str], title: str,
                repeats: int, warmup: int, notes: Sequence[str] = ()) -> str:
    """One markdown table: a row per (cell, mode), a column per framework, ratios against jaxrnn."""
    peers = [f for f in frameworks if f != REFERENCE]
    compiled = [f for f in frameworks if any(r["framework"] == f and r.get("compile_s") is not None
                                             for r in records)]
    header = ["cell", "mode", f"{REFERENCE} path", f"{REFERENCE} ms"]
    for peer in peers:
        header += [f"{peer} ms", f"{peer} ÷ {REFERENCE}"]
    if compiled:
        header.append(f"compile s ({', '.join(compiled)})")
    lines = [title, "", "| " + " | ".join(header) + " |",
             "| " + " | ".join(["---"] * 3 + ["---:"] * (len(header) - 3)) + " |"]
    keys = list(dict.fromkeys((r["cell"], r["mode"]) for r in records))
    errors: list[str] = []
    for cell, mode in keys:
        row = {r["framework"]: r for r in records if r["cell"] == cell and r["mode"] == mode}
        label = f"{cell} (reset_after)" if cell == "gru" else cell
        cells = [label, mode, row.get(REFERENCE, {}).get("path") or "—",
                 _ms(row[REFERENCE]) if REFERENCE in row else "—"]
        for peer in peers:
            record = row.get(peer)
            cells += [_ms(record), _ratio(record)] if record else ["—", "—"]
        if compiled:
            cells.append(" / ".join("—" if row.get(f, {}).get("compile_s") is None else f"{row[f]['compile_s']:.2f}"
                                    for f in compiled))
        lines.append("| " + " | ".join(cells) + " |")
        for framework, record in row.items():
            if record["status"] == "error":
                errors.append(f"- {framework} {cell} {mode}: error: {record['reason']}")
    lines += ["", LEGEND.format(repeats=repeats, warmup=warmup), ""]
    lines += [f"- {CELL_NOTE[cell]}" for cell in dict.fromkeys(cell for cell, _ in keys) if cell in CELL_NOTE]
    lines.append(f"- {LAYOUTS}")
    lines += [f"- {note}" for note in notes] + errors
    return "\n".join(lines)


def default_json_path(device_slug: str, dtype: str, variant: str = "") -> Path:
    """``results/<device>[-<dtype>][-<variant>].json``: float32 and default options need no suffix."""
    suffix = "" if dtype == "float32" else f"-{dtype}"
    suffix += f"-{variant}" if variant else ""
    return RESULTS_DIR / f"{device_slug}{suffix}.json"


def write_json(result: dict[str, Any], path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(result, indent=1, default=str) + "\n")
    tmp.replace(path)
    return path


def save(result: dict[str, Any], path: str | os.PathLike | None, name: str) -> Path:
    """Write ``result`` to ``path``, or by default to ``results/<device>-<name>.json``, and say where."""
    path = write_json(result, path or RESULTS_DIR / f"{result['device']['slug']}-{name}.json")
    print(f"\nJSON: {path}")
    return path
