"""Combines the partial rows of scaled-out gpuledger instances into one row per key.

Several `gpuledger run` daemons in one Kafka consumer group split the input partitions, so
each writes *partial* rows for the keys whose events span partitions, and one instance can
write two partial rows for a key after a rebalance. This module merges them by key: sums add,
extremes take the extreme, means are re-weighted by their counts, ratios are recomputed from
the combined sums and latency quantiles from the merged sketches. Quantities that partial rows
cannot give exactly follow a documented approximate rule. docs/scale-out.md has the rule of
every column; a key with a single row comes out unchanged.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

import pyarrow as pa

from gpuledger._engine import schemas
from gpuledger.errors import CombineError
from gpuledger.output.combine_rules import Sources, distinct_rows
from gpuledger.output.object_store import is_uri, local_path, store_for
from gpuledger.output.sink import (
    FORMATS,
    TABLE_NAME,
    ArrowSink,
    list_files,
    output_files,
    read_table,
)
from gpuledger.tables import EVENT_TABLES, KEYED_TABLES

__all__ = [
    "EVENT_TABLES",
    "KEYS",
    "CombineError",
    "check_out_dir",
    "combine_dirs",
    "combine_tables",
    "read_dirs",
    "write_combined",
]

KEYS = KEYED_TABLES
"""The key of each table combined by key (`gpuledger.tables`, docs/schema.md); tables of
single events (`EVENT_TABLES`) are never partial, concatenated without exact duplicates."""
WRITER_ID = "combined"
BATCH_KEY = "combined"

# --- public API ------------------------------------------------------------------------------


def combine_tables(
    tables: Mapping[str, pa.Table], one_row_per_key: Collection[str] = ()
) -> dict[str, pa.Table]:
    """One row per key for every table of `tables` (which may hold several partial rows per
    key), with the same schema. `gpu_windows`, `pool_windows`, `latency_windows` and
    `service_cost_windows` are combined by key; `late_events` and `dead_letters` lose exact
    duplicate rows; any other table (custom aggregations, window functions) is returned as
    it is. Tables named in `one_row_per_key` are known to hold one row per key (shards'
    disjoint GPUs): they are only sorted by key. Raises CombineError for a schema that is not
    gpuledger's."""
    for name, table in tables.items():
        if table.num_columns and (name in KEYS or name in EVENT_TABLES):
            _check_schema(name, table)
    sources = Sources(tables, one_row_per_key)
    out: dict[str, pa.Table] = {}
    for name, table in tables.items():
        if not table.num_columns or (name not in KEYS and name not in EVENT_TABLES):
            out[name] = table  # empty, or not combinable: docs/scale-out.md
        elif name in EVENT_TABLES:
            out[name] = distinct_rows(table)
        else:
            out[name] = sources.combined(name)
    return out


def read_dirs(in_dirs: Sequence[str | os.PathLike[str]]) -> dict[str, pa.Table]:
    """Every table under every directory of `in_dirs` (gpuledger output directories), each
    concatenated over the directories in their order, tables by name. Raises CombineError
    when one table's files do not share a schema."""
    names_given = [os.fspath(d) for d in in_dirs]
    dirs = [d if is_uri(d) else Path(local_path(d)) for d in names_given]
    for d in dirs:
        if isinstance(d, Path) and not d.is_dir():
            raise FileNotFoundError(f"no output directory {d}")
    names = sorted({n for d in dirs for n in _table_names(d)})
    tables: dict[str, pa.Table] = {}
    for name in names:
        parts: list[tuple[str | Path, pa.Table]] = []
        for d in dirs:
            try:
                t = read_table(d, name)
            except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
                raise CombineError(f"table {name!r}: the files under {d} disagree: {e}") from e
            if t.num_columns:
                parts.append((d, t))
        try:
            tables[name] = pa.concat_tables([t for _, t in parts], promote_options="default")
        except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
            where = ", ".join(str(d) for d, _ in parts)
            raise CombineError(f"table {name!r}: schemas differ between {where}: {e}") from e
    return tables


def write_combined(
    tables: Mapping[str, pa.Table], out_dir: str | os.PathLike[str], *, format: str = "arrow"
) -> list[Path]:
    """Writes combined tables under `out_dir` as writer `combined`, batch `combined`: the
    same combination written again is a no-op, a different one an OutputConflictError."""
    sink = ArrowSink(out_dir, format=format, writer_id=WRITER_ID)
    return sink.write(tables, batch_key=BATCH_KEY)


def combine_dirs(
    in_dirs: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str] | None = None,
    *,
    format: str = "arrow",
) -> dict[str, pa.Table]:
    """Reads every table of every directory of `in_dirs`, combines them (`combine_tables`)
    and, when `out_dir` is given, writes the result there (`write_combined`). `out_dir` must
    not be one of the inputs: its partial rows would be read again with the combined ones."""
    if format not in FORMATS:
        raise ValueError(f"format must be one of {sorted(FORMATS)}, not {format!r}")
    if out_dir is not None:
        check_out_dir(in_dirs, out_dir)
    combined = combine_tables(read_dirs(in_dirs))
    if out_dir is not None:
        write_combined(combined, out_dir, format=format)
    return combined


def check_out_dir(
    in_dirs: Sequence[str | os.PathLike[str]], out_dir: str | os.PathLike[str]
) -> None:
    """Raises CombineError when `out_dir` is one of `in_dirs`."""

    def where(d: str | os.PathLike[str]) -> str:
        d = os.fspath(d)
        return d.rstrip("/") if is_uri(d) else str(Path(local_path(d)).resolve())

    out = where(out_dir)
    for d in in_dirs:
        if where(d) == out:
            raise CombineError(f"output directory {out_dir} is also an input; use a new one")


# --- reading and checking ----------------------------------------------------------------------


def _table_names(out_dir: str | Path) -> list[str]:
    """Tables with at least one file under `out_dir` (skips `.staging` and strays)."""
    if isinstance(out_dir, str):  # a URI
        names = store_for(out_dir).children()
        return [n for n in names if TABLE_NAME.fullmatch(n) and output_files(out_dir, n)]
    return [
        e.name
        for e in sorted(out_dir.iterdir())
        if TABLE_NAME.fullmatch(e.name) and e.is_dir() and list_files(out_dir, e.name)
    ]


def _check_schema(name: str, table: pa.Table) -> None:
    """Same column names and types as gpuledger's table `name` (any order, any nullability),
    and no null keys: the rules below know every column."""
    want = schemas()[name]
    have = table.schema
    problems = [f"missing column {f.name!r}" for f in want if have.get_field_index(f.name) < 0]
    problems += [f"unknown column {n!r}" for n in have.names if want.get_field_index(n) < 0]
    if len(set(have.names)) != len(have.names):
        problems.append("duplicate column names")
    for f in want:
        i = have.get_field_index(f.name)
        if i >= 0 and not have.field(i).type.equals(f.type):
            problems.append(f"column {f.name!r} is {have.field(i).type}, expected {f.type}")
    for k in KEYS.get(name, ()):
        if not problems and table.column(k).null_count:
            problems.append(f"key column {k!r} has nulls")
    if problems:
        raise CombineError(f"cannot combine {name}: " + "; ".join(problems))
