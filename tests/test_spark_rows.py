"""The in-task half of the Spark backfill without Spark: rows in any order cut back into their
files and replay's chunks, gaps in row numbers pushed as separate runs with their own first
row (so offsets stay the files' row numbers), and the replay names of archive files."""

from __future__ import annotations

import os

import pyarrow as pa
import pytest

from gpuledger.errors import ReplayInputError
from gpuledger.spark.archive import _replay_name
from gpuledger.spark.rows import FILE_ID, MODIFIED_MS, ROW_INDEX, SHARD, FileInfo, split_files

START_MS = 1_795_867_200_000


def rows(file_ids: list[int], row_numbers: list[int]) -> pa.Table:
    n = len(row_numbers)
    return pa.table(
        {
            "ts": pa.array([START_MS + 1000 * r for r in row_numbers], pa.timestamp("ms", "UTC")),
            "value": pa.array([float(r) for r in row_numbers]),
            FILE_ID: pa.array(file_ids, pa.int64()),
            ROW_INDEX: pa.array(row_numbers, pa.int64()),
            MODIFIED_MS: pa.array([1_700_000_000_123] * n, pa.int64()),
            SHARD: pa.array([0] * n, pa.int32()),
        }
    )


def test_rows_in_any_order_come_back_as_files_chunks_and_runs() -> None:
    files = {7: FileInfo("b.parquet", 1), -3: FileInfo("a.parquet", 0)}
    # File 7: rows 0-4 and 8-11 (5-7 are another shard's), chunks of 4 rows; file -3: 2 rows.
    numbers = [11, 0, 3, 9, 1, 10, 2, 8, 4, 1, 0]
    ids = [7] * 9 + [-3] * 2
    got = split_files(rows(ids, numbers), files, None, chunk_rows=4)
    by_name = {f.info.source: f for f in got}
    assert set(by_name) == {"a.parquet", "b.parquet"}
    b = by_name["b.parquet"]
    assert b.modified_s == 1_700_000_000.123
    assert b.first_ms == START_MS
    # chunks [0-3], [4], [8-11]; row 4 alone in its chunk, 5-7 missing
    runs = [[(r.first_row, r.rows.column("value").to_pylist()) for r in c.runs] for c in b.chunks]
    assert runs == [
        [(0, [0.0, 1.0, 2.0, 3.0])],
        [(4, [4.0])],
        [(8, [8.0, 9.0, 10.0, 11.0])],
    ]
    assert [c.end_ms for c in b.chunks] == [START_MS + 3000, START_MS + 4000, START_MS + 11_000]
    assert b.chunks[0].runs[0].rows.column_names == ["ts", "value"]  # no provenance columns
    gap = split_files(rows([7, 7, 7], [2, 0, 3]), files, "long", chunk_rows=100)[0]
    assert [(r.first_row, r.rows.num_rows) for r in gap.chunks[0].runs] == [(0, 1), (2, 2)]
    assert gap.form == "long"
    in_order = split_files(rows([-3, 7, 7, 7], [0, 0, 1, 3]), files, None, chunk_rows=100)
    assert [
        (f.info.source, [(r.first_row, r.rows.num_rows) for r in f.chunks[0].runs])
        for f in in_order
    ] == [
        ("a.parquet", [(0, 1)]),
        ("b.parquet", [(0, 2), (3, 1)]),
    ]


def test_rows_of_an_unlisted_file_are_an_error() -> None:
    with pytest.raises(ReplayInputError, match="not in the input's listing"):
        split_files(rows([5], [0]), {7: FileInfo("b", 0)}, None, chunk_rows=4)


def test_files_are_named_as_replay_names_them() -> None:
    base = os.path.abspath("archive")
    uri = "file://" + base + "/2026/11/a.parquet"
    assert _replay_name(uri, ["other", "archive"]) == (1, "archive/2026/11/a.parquet")
    assert _replay_name(uri, [base + "/2026/11/a.parquet"]) == (0, base + "/2026/11/a.parquet")
    assert _replay_name("s3a://b/tel/x.parquet", ["s3://b/tel/"]) == (0, "s3://b/tel/x.parquet")
    assert _replay_name("s3a://b/y.parquet", ["s3://b/tel"]) == (1, "s3a://b/y.parquet")
