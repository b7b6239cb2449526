"""Plain-text rendering of Arrow tables for the terminal (no pandas needed)."""

from __future__ import annotations

from datetime import datetime

import pyarrow as pa


def _cell(v: object) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3f}"
    if isinstance(v, datetime):
        return v.strftime("%H:%M:%S")
    return str(v)


def render(table: pa.Table | pa.RecordBatch, columns: list[str], limit: int = 40) -> str:
    """Renders `columns` of the first `limit` rows as an aligned text table."""
    rows = [
        [_cell(v) for v in r]
        for r in zip(*(table.column(c).to_pylist() for c in columns), strict=True)
    ]
    shown = rows[:limit]
    widths = [max([len(c)] + [len(r[i]) for r in shown]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in shown]
    if len(rows) > limit:
        lines.append(f"... {len(rows) - limit} more rows")
    return "\n".join(lines)
