"""The file sink: hive layout by UTC hour, deterministic names, atomic and idempotent writes,
conflicts refused, failures reported as SinkWriteError with nothing partial left behind, and
the files readable by pyarrow.dataset, Polars and DuckDB."""

from __future__ import annotations

import ctypes
import errno
import os
import pickle
import stat
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

import gpuledger
import gpuledger.output.durable as durable_module
from gpuledger.config import OutputConfig
from gpuledger.output.sink import (
    ArrowSink,
    OutputConflictError,
    SinkWriteError,
    list_files,
    read_table,
)
from gpuledger.simulate.small_fleet import default_fleet, prom_json_messages

START = 1_795_867_200  # 2026-11-28T12:00:00Z
UTC = timezone.utc
FORMATS = ["arrow", "parquet"]
EXT = {"arrow": ".arrow", "parquet": ".parquet"}


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def defaults(kind: pa.DataType) -> Any:
    if pa.types.is_string(kind):
        return ""
    if pa.types.is_binary(kind):
        return b""
    if pa.types.is_boolean(kind):
        return False
    if pa.types.is_integer(kind):
        return 0
    if pa.types.is_floating(kind):
        return 0.0
    if pa.types.is_timestamp(kind):
        return at("2026-11-28T12:00:00")
    if pa.types.is_list(kind):
        return []
    raise AssertionError(kind)


def make(table: str, rows: list[dict[str, Any]], schema: pa.Schema | None = None) -> pa.Table:
    """A table of the engine's schema for `table`; unnamed columns take a neutral value."""
    schema = schema if schema is not None else gpuledger.schemas()[table]
    full = [{f.name: row.get(f.name, defaults(f.type)) for f in schema} for row in rows]
    return pa.Table.from_pylist(full, schema=schema)


def gpu_rows(*starts: str, window_s: int = 60, **labels: Any) -> pa.Table:
    rows = []
    for i, s in enumerate(starts):
        start = at(s)
        row = {"window_start": start, "window_end": start + timedelta(seconds=window_s)}
        row |= {"gpu_uuid": f"GPU-{i}", "samples": 60 + i, "util_mean": 0.5, "cost_usd": 0.1 * i}
        rows.append(row | labels)
    return make("gpu_windows", rows)


def tree(root: Path) -> list[str]:
    """Every file under `root`, relative, sorted."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def rerun_windows() -> gpuledger.Windows:
    """Real engine output over 11:58..12:02 UTC: windows on both sides of an hour."""
    engine = gpuledger.Engine()
    engine.push(list(prom_json_messages(default_fleet(), START - 120, 240)))
    return engine.poll().concat(engine.finish())


@pytest.fixture(scope="module")
def engine_windows() -> gpuledger.Windows:
    return rerun_windows()


# --- layout -----------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_layout_names_and_schema(
    tmp_path: Path, fmt: str, engine_windows: gpuledger.Windows
) -> None:
    written = ArrowSink(tmp_path, format=fmt, writer_id="w1").write(
        engine_windows, batch_key="wm1795867320000"
    )
    name = f"part-wm1795867320000-w1{EXT[fmt]}"
    want = [
        f"{table}/date=2026-11-28/hour={hour}/{name}"
        for table in ("gpu_windows", "pool_windows")
        for hour in ("11", "12")
    ]
    assert [str(p.relative_to(tmp_path)) for p in written] == want
    assert tree(tmp_path) == want  # empty late_events / dead_letters: nothing, not even a dir
    # A restarted run re-emitting the same windows for the same input position: no new file.
    assert (
        ArrowSink(tmp_path, format=fmt, writer_id="w1").write(
            rerun_windows(), batch_key="wm1795867320000"
        )
        == []
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == [".staging", "gpu_windows", "pool_windows"]

    for table in ("gpu_windows", "pool_windows"):
        back = read_table(tmp_path, table)
        assert back.schema == gpuledger.schemas()[table]  # timestamp[ms, tz=UTC] kept
        assert back.equals(read_table_of(engine_windows[table]))
    for path in written:  # each file holds exactly the rows of its hour
        rows = pa.ipc.open_file(path).read_all() if fmt == "arrow" else pq.read_table(path)
        hours = {t.strftime("date=%Y-%m-%d/hour=%H") for t in rows["window_start"].to_pylist()}
        assert hours == {f"{path.parent.parent.name}/{path.parent.name}"}
        assert all(t.tzinfo is not None for t in rows["window_start"].to_pylist())


def read_table_of(table: pa.Table) -> pa.Table:
    """What read_table returns for these rows: all of them, sorted by every column."""
    from gpuledger.output.sink import _sorted

    return _sorted(table.combine_chunks())


def test_arrow_is_ipc_file_format_and_parquet_is_zstd(tmp_path: Path) -> None:
    table = gpu_rows("2026-11-28T12:00:00")
    (arrow,) = ArrowSink(tmp_path / "a").write({"gpu_windows": table}, batch_key="1")
    (parquet,) = ArrowSink(tmp_path / "p", format="parquet").write(
        {"gpu_windows": table}, batch_key="1"
    )
    assert arrow.read_bytes()[:6] == b"ARROW1"  # the file format, not the stream format
    assert pa.ipc.open_file(arrow).read_all().equals(table)
    meta = pq.ParquetFile(parquet).metadata
    assert meta.row_group(0).column(0).compression == "ZSTD"
    assert pq.ParquetFile(parquet).read().equals(table)


def test_rows_of_one_batch_in_two_hours_go_to_two_partitions(tmp_path: Path) -> None:
    table = gpu_rows(
        "2026-11-28T00:59:00",
        "2026-11-28T01:00:00",
        "2026-11-28T00:30:00",  # a one-hour window spanning 00:30..01:30: by its start
        "2026-11-28T23:59:00",  # and the day rolls over
        "2026-11-29T00:00:00",
    )
    table = table.set_column(
        1,
        "window_end",
        pc.add(
            table["window_start"],
            pa.array([60_000, 60_000, 3_600_000, 60_000, 60_000]).cast(pa.duration("ms")),
        ),
    )
    written = ArrowSink(tmp_path).write({"gpu_windows": table}, batch_key="b")
    assert [str(p.relative_to(tmp_path / "gpu_windows")) for p in written] == [
        "date=2026-11-28/hour=00/part-b-0.arrow",
        "date=2026-11-28/hour=01/part-b-0.arrow",
        "date=2026-11-28/hour=23/part-b-0.arrow",
        "date=2026-11-29/hour=00/part-b-0.arrow",
    ]
    uuids = [pa.ipc.open_file(p).read_all()["gpu_uuid"].to_pylist() for p in written]
    assert uuids == [["GPU-0", "GPU-2"], ["GPU-1"], ["GPU-3"], ["GPU-4"]]


def test_rows_in_time_order_are_cut_by_hour_across_chunks(tmp_path: Path) -> None:
    starts = [f"2026-11-28T{h:02d}:{m:02d}:00" for h in (10, 11, 12) for m in (0, 20, 40)]
    whole = gpu_rows(*starts)
    # As closed windows arrive: several chunks, an hour spanning two of them.
    table = pa.concat_tables([whole.slice(0, 4), whole.slice(4, 0), whole.slice(4, 5)])
    written = ArrowSink(tmp_path).write({"gpu_windows": table}, batch_key="b")
    got = [pa.ipc.open_file(p).read_all()["gpu_uuid"].to_pylist() for p in written]
    assert got == [[f"GPU-{i}" for i in range(h, h + 3)] for h in (0, 3, 6)]
    assert [p.parent.name for p in written] == ["hour=10", "hour=11", "hour=12"]


def test_partitions_are_utc_whatever_the_time_zone(tmp_path: Path) -> None:
    schema = pa.schema(
        [("window_start", pa.timestamp("us", tz="America/New_York")), ("v", pa.int64())]
    )
    # 2026-11-28T23:30Z is 18:30 in New York: the partition is the UTC one.
    rows = pa.Table.from_pylist(
        [{"window_start": at("2026-11-28T23:30:00"), "v": 1}], schema=schema
    )
    naive = pa.table(
        {"window_start": pa.array([at("2026-11-28T05:10:00")], pa.timestamp("s")), "v": [2]}
    )
    written = ArrowSink(tmp_path).write({"custom_ny": rows, "custom_naive": naive}, batch_key="k")
    assert [str(p.relative_to(tmp_path)) for p in written] == [
        "custom_ny/date=2026-11-28/hour=23/part-k-0.arrow",
        "custom_naive/date=2026-11-28/hour=05/part-k-0.arrow",
    ]
    assert read_table(tmp_path, "custom_ny").schema == schema  # the time zone is kept


def test_each_table_is_partitioned_by_its_own_time_column(tmp_path: Path) -> None:
    late = make(
        "late_events",
        [{"event_time": at("2026-11-28T10:59:59"), "window_start": at("2026-11-28T11:00:00")}],
    )
    dead = make("dead_letters", [{"received_at": at("2026-11-28T09:00:00"), "raw": b"{"}])
    streaks = pa.table(
        {"as_of": pa.array([at("2026-11-28T08:15:00")], pa.timestamp("ms", tz="UTC")), "n": [1]}
    )
    custom = pa.table(
        {
            "window_start": pa.array([at("2026-11-28T07:00:00")], pa.timestamp("ms", tz="UTC")),
            "p99": [0.5],
        }
    )
    written = ArrowSink(tmp_path).write(
        {"late_events": late, "dead_letters": dead, "idle_streaks": streaks, "util_p99": custom},
        batch_key="k",
    )
    assert [str(p.relative_to(tmp_path).parent) for p in written] == [
        "late_events/date=2026-11-28/hour=10",
        "dead_letters/date=2026-11-28/hour=09",
        "idle_streaks/date=2026-11-28/hour=08",
        "util_p99/date=2026-11-28/hour=07",
    ]


def test_tables_without_a_usable_time_column_are_refused_before_writing(tmp_path: Path) -> None:
    good = gpu_rows("2026-11-28T12:00:00")
    sink = ArrowSink(tmp_path)
    with pytest.raises(ValueError, match="'mystery'"):
        sink.write({"gpu_windows": good, "mystery": pa.table({"x": [1]})}, batch_key="k")
    with pytest.raises(ValueError, match=r"'late_events'.*event_time"):
        sink.write({"late_events": pa.table({"window_start": good["window_start"]})}, batch_key="k")
    with pytest.raises(ValueError, match="not a timestamp"):
        sink.write({"custom": pa.table({"window_start": [1]})}, batch_key="k")
    nulls = pa.table({"window_start": pa.array([None, 0], pa.timestamp("ms", tz="UTC"))})
    with pytest.raises(ValueError, match="nulls"):
        sink.write({"custom": nulls}, batch_key="k")
    assert tree(tmp_path) == []


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"format": "csv"}, "format"),
        ({"writer_id": "a/b"}, "writer_id"),
        ({"writer_id": ""}, "writer_id"),
        ({"writer_id": "../x"}, "writer_id"),
        ({"durable": "never"}, "durable"),
    ],
)
def test_bad_sink_settings(tmp_path: Path, kwargs: dict[str, str], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ArrowSink(tmp_path, **kwargs)


@pytest.mark.parametrize("key", ["", "a/b", "../x", "a-b", "wm 1", "x" * 129, "ü"])
def test_bad_batch_keys(tmp_path: Path, key: str) -> None:
    with pytest.raises(ValueError, match="batch_key"):
        ArrowSink(tmp_path).write({"gpu_windows": gpu_rows("2026-11-28T12:00:00")}, batch_key=key)
    assert tree(tmp_path) == []


@pytest.mark.parametrize("name", ["../gpu_windows", "Gpu", "a/b", "", "x" * 65, "date=1"])
def test_bad_table_names(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match="table name"):
        ArrowSink(tmp_path).write({name: gpu_rows("2026-11-28T12:00:00")}, batch_key="k")
    assert tree(tmp_path) == []


def test_label_values_never_become_paths(tmp_path: Path) -> None:
    out = tmp_path / "out"
    hostile = gpu_rows(
        "2026-11-28T12:00:00",
        "2026-11-28T12:01:00",
        pod="../../etc",
        namespace="..",
        hostname="/",
        container="a\x00b",
        model_name="date=1999-01-01",
    ).set_column(2, "gpu_uuid", pa.array(["/etc/passwd", "../../../../tmp/x"]))
    written = ArrowSink(out).write({"gpu_windows": hostile}, batch_key="k")
    assert [p.resolve().is_relative_to(out.resolve()) for p in written] == [True]
    assert tree(out) == ["gpu_windows/date=2026-11-28/hour=12/part-k-0.arrow"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert read_table(out, "gpu_windows").equals(read_table_of(hostile))


def test_accepts_a_windows_object_and_plain_mappings(
    tmp_path: Path, engine_windows: gpuledger.Windows
) -> None:
    a = ArrowSink(tmp_path / "a").write(engine_windows, batch_key="k")
    b = ArrowSink(tmp_path / "b").write(dict(engine_windows.tables), batch_key="k")
    assert [p.relative_to(tmp_path / "a") for p in a] == [p.relative_to(tmp_path / "b") for p in b]


def test_from_config(tmp_path: Path) -> None:
    sink = ArrowSink.from_config(
        OutputConfig(dir=str(tmp_path), format="parquet"), writer_id="gpuledger-1"
    )
    (path,) = sink.write({"gpu_windows": gpu_rows("2026-11-28T12:00:00")}, batch_key="wm5")
    assert path.name == "part-wm5-gpuledger-1.parquet"


# --- readers ------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_readable_by_pyarrow_dataset(
    tmp_path: Path, fmt: str, engine_windows: gpuledger.Windows
) -> None:
    ArrowSink(tmp_path, format=fmt).write(engine_windows, batch_key="k")
    dataset = ds.dataset(
        tmp_path / "gpu_windows",
        format="ipc" if fmt == "arrow" else "parquet",
        partitioning="hive",
    )
    table = dataset.to_table()
    assert table.num_rows == engine_windows.gpu_windows.num_rows
    assert table.schema.field("window_start").type == pa.timestamp("ms", tz="UTC")
    for start, date, hour in zip(
        table["window_start"].to_pylist(),
        table["date"].to_pylist(),
        table["hour"].to_pylist(),
        strict=True,
    ):
        assert (start.strftime("%Y-%m-%d"), start.hour) == (date, hour)
    eleven = dataset.to_table(filter=ds.field("hour") == 11)
    assert 0 < eleven.num_rows < table.num_rows


@pytest.mark.parametrize("fmt", FORMATS)
def test_readable_by_polars(tmp_path: Path, fmt: str, engine_windows: gpuledger.Windows) -> None:
    import polars as pl

    ArrowSink(tmp_path, format=fmt).write(engine_windows, batch_key="k")
    scan = pl.scan_ipc if fmt == "arrow" else pl.scan_parquet
    glob = str(tmp_path / "gpu_windows" / "**" / f"*{EXT[fmt]}")
    df = scan(glob, hive_partitioning=True).collect()
    assert df.height == engine_windows.gpu_windows.num_rows
    assert df.schema["window_start"] == pl.Datetime("ms", "UTC")
    assert df.schema["date"] == pl.Date
    hours = df.select((pl.col("window_start").dt.hour() == pl.col("hour")).all()).item()
    assert hours
    per_hour = dict(df.group_by("hour").len().iter_rows())
    assert set(per_hour) == {11, 12}


def test_parquet_readable_by_duckdb(tmp_path: Path, engine_windows: gpuledger.Windows) -> None:
    import duckdb

    ArrowSink(tmp_path, format="parquet").write(engine_windows, batch_key="k")
    glob = str(tmp_path / "gpu_windows" / "*" / "*" / "*.parquet")
    rows = duckdb.sql(
        f"select hour, count(*), bool_and(hour(window_start at time zone 'UTC') = hour) "
        f"from read_parquet('{glob}', hive_partitioning = true) group by hour order by hour"
    ).fetchall()
    assert [(h, ok) for h, _, ok in rows] == [(11, True), (12, True)]
    assert sum(n for _, n, _ in rows) == engine_windows.gpu_windows.num_rows
    kind = duckdb.sql(f"describe select window_start from read_parquet('{glob}')").fetchall()
    assert kind[0][1] == "TIMESTAMP WITH TIME ZONE"


# --- idempotency and conflicts ------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_same_batch_again_is_skipped(tmp_path: Path, fmt: str) -> None:
    table = gpu_rows("2026-11-28T12:00:00", "2026-11-28T12:01:00", "2026-11-28T13:00:00")
    first = ArrowSink(tmp_path, format=fmt).write({"gpu_windows": table}, batch_key="wm1")
    assert len(first) == 2
    before = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in first}
    # A restarted daemon re-emits the same windows for the same input position, maybe in
    # another row order and in other chunks.
    again = pa.concat_tables([table.slice(2), table.slice(0, 2).take([1, 0])])
    sink = ArrowSink(tmp_path, format=fmt)
    assert sink.write({"gpu_windows": again}, batch_key="wm1") == []
    assert sink.write({"gpu_windows": table}, batch_key="wm1") == []
    assert {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in first} == before
    assert read_table(tmp_path, "gpu_windows").num_rows == 3


def test_nan_values_compare_equal_on_rewrite(tmp_path: Path) -> None:
    table = gpu_rows("2026-11-28T12:00:00", "2026-11-28T12:00:00")
    table = table.set_column(
        table.schema.get_field_index("util_mean"), "util_mean", pa.array([float("nan"), None])
    )
    sink = ArrowSink(tmp_path, format="parquet")
    assert len(sink.write({"gpu_windows": table}, batch_key="k")) == 1
    assert sink.write({"gpu_windows": table.take([1, 0])}, batch_key="k") == []


@pytest.mark.parametrize("fmt", FORMATS)
def test_different_rows_under_a_taken_name_raise(tmp_path: Path, fmt: str) -> None:
    table = gpu_rows("2026-11-28T12:00:00", "2026-11-28T12:01:00")
    sink = ArrowSink(tmp_path, format=fmt)
    (path,) = sink.write({"gpu_windows": table}, batch_key="wm1")
    content = path.read_bytes()
    changed = table.set_column(
        table.schema.get_field_index("samples"), "samples", pa.array([60, 999], pa.int64())
    )
    for other in (changed, table.slice(0, 1), pa.concat_tables([table, table.slice(1)])):
        with pytest.raises(OutputConflictError, match="different rows") as info:
            sink.write({"gpu_windows": other}, batch_key="wm1")
        assert isinstance(info.value, gpuledger.GpuledgerError)
        assert info.value.path == path
        assert str(pickle.loads(pickle.dumps(info.value))) == str(info.value)
        assert path.read_bytes() == content
    # Nothing of a batch is written when one of its files conflicts.
    pools = make("pool_windows", [{"window_start": at("2026-11-28T12:00:00")}])
    with pytest.raises(OutputConflictError):
        sink.write({"pool_windows": pools, "gpu_windows": changed}, batch_key="wm1")
    assert list_files(tmp_path, "pool_windows") == []
    # Another batch key is another file.
    assert len(sink.write({"gpu_windows": changed}, batch_key="wm2")) == 1


def test_unreadable_existing_file_is_a_conflict(tmp_path: Path) -> None:
    table = gpu_rows("2026-11-28T12:00:00")
    (path,) = ArrowSink(tmp_path).write({"gpu_windows": table}, batch_key="k")
    path.write_bytes(b"not arrow")
    with pytest.raises(OutputConflictError, match="unreadable"):
        ArrowSink(tmp_path).write({"gpu_windows": table}, batch_key="k")
    assert path.read_bytes() == b"not arrow"


def test_switching_format_does_not_write_a_batch_twice(tmp_path: Path) -> None:
    table = gpu_rows("2026-11-28T12:00:00")
    (path,) = ArrowSink(tmp_path, format="arrow").write({"gpu_windows": table}, batch_key="k")
    parquet = ArrowSink(tmp_path, format="parquet")
    assert parquet.write({"gpu_windows": table}, batch_key="k") == []
    with pytest.raises(OutputConflictError) as info:
        parquet.write({"gpu_windows": gpu_rows("2026-11-28T12:00:30")}, batch_key="k")
    assert info.value.path == path
    assert list_files(tmp_path, "gpu_windows") == [path]


def test_writers_of_one_directory_keep_their_own_files(tmp_path: Path) -> None:
    a = gpu_rows("2026-11-28T12:00:00", pod="a")
    b = gpu_rows("2026-11-28T12:00:00", pod="b")
    (pa_,) = ArrowSink(tmp_path, writer_id="gpuledger-0").write({"gpu_windows": a}, batch_key="7")
    (pb,) = ArrowSink(tmp_path, writer_id="gpuledger-1").write({"gpu_windows": b}, batch_key="7")
    assert (pa_.name, pb.name) == ("part-7-gpuledger-0.arrow", "part-7-gpuledger-1.arrow")
    assert read_table(tmp_path, "gpu_windows")["pod"].to_pylist() == ["a", "b"]


# --- atomicity, temporary files, failures -------------------------------------------------


def stray_temp(out: Path, writer: str = "0", ext: str = "arrow", key: str = "wm9") -> Path:
    """What a writer killed between creating and renaming its file leaves behind."""
    (out / ".staging").mkdir(parents=True, exist_ok=True)
    path = out / ".staging" / f".part-{key}-{writer}.{ext}.tmp-4242-0123abcd"
    path.write_bytes(b"half a file")
    return path


@pytest.mark.parametrize("fmt", FORMATS)
def test_temporary_files_are_invisible_to_readers(
    tmp_path: Path, fmt: str, engine_windows: gpuledger.Windows
) -> None:
    import polars as pl

    ArrowSink(tmp_path, format=fmt).write(engine_windows, batch_key="k")
    stray_temp(tmp_path, writer="other", ext=fmt)  # another writer's, so it stays
    n = engine_windows.gpu_windows.num_rows
    table_dir = tmp_path / "gpu_windows"
    kind = "ipc" if fmt == "arrow" else "parquet"
    scan = pl.scan_ipc if fmt == "arrow" else pl.scan_parquet
    glob = str(table_dir / "**" / f"*{EXT[fmt]}")

    def readers_see() -> list[int]:
        return [
            ds.dataset(table_dir, format=kind, partitioning="hive").to_table().num_rows,
            scan(glob, hive_partitioning=True).collect().height,
            read_table(tmp_path, "gpu_windows").num_rows,
        ]

    assert readers_see() == [n, n, n]
    # Temporary files never enter the table's directory, so even a directory scan (which in
    # Polars does not skip hidden files) sees only whole files.
    assert scan(str(table_dir), hive_partitioning=True).collect().height == n
    # A hidden file in a partition (not the sink's doing) is still skipped by the others.
    (table_dir / "date=2026-11-28/hour=12" / f".part-x-0{EXT[fmt]}.tmp-1-ab").write_bytes(b"x")
    assert readers_see() == [n, n, n]
    assert all(not p.name.startswith(".") for p in list_files(tmp_path, "gpu_windows"))


def test_partition_directories_only_ever_hold_whole_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[list[str]] = []
    real_replace = os.replace

    def replace(src: Any, dst: Any) -> None:
        seen.append(sorted(p.name for p in Path(dst).parent.iterdir()))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    sink = ArrowSink(tmp_path)
    sink.write({"gpu_windows": gpu_rows("2026-11-28T12:00:00")}, batch_key="1")
    sink.write({"gpu_windows": gpu_rows("2026-11-28T12:01:00")}, batch_key="2")
    assert seen == [[], ["part-1-0.arrow"]]  # just before each rename


def test_start_removes_only_its_own_temporary_files(tmp_path: Path) -> None:
    mine = [stray_temp(tmp_path), stray_temp(tmp_path, ext="parquet", key="x.y")]
    theirs = stray_temp(tmp_path, writer="1")
    staging = tmp_path / ".staging"
    part = tmp_path / "gpu_windows" / "date=2026-11-28" / "hour=12"
    part.mkdir(parents=True)
    keep = [
        theirs,
        staging / ".hidden",
        staging / ".part-wm9-0.arrow.tmp",
        staging / "notes.txt",
        part / "part-wm9-0.arrow",
        part / ".part-wm9-0.arrow.tmp-1-ab",  # not in the staging directory
    ]
    for p in keep[1:]:
        p.write_bytes(b"x")
    sink = ArrowSink(tmp_path)
    assert all(not p.exists() for p in mine)
    assert all(p.exists() for p in keep)
    assert sink.cleanup_temp() == []  # the constructor did it already
    ArrowSink(tmp_path, writer_id="1")
    assert not theirs.exists()
    again = stray_temp(tmp_path, writer="1")
    assert ArrowSink(tmp_path, writer_id="2").cleanup_temp() == []
    assert sink.cleanup_temp() == []
    assert again.exists()


def test_new_sink_on_missing_or_unlistable_directory_starts(tmp_path: Path) -> None:
    ArrowSink(tmp_path / "not" / "yet")
    (tmp_path / "file").write_bytes(b"")
    ArrowSink(tmp_path / "file")


class Crash(BaseException):
    """Stands for the process dying at that point."""


@pytest.mark.parametrize("fmt", FORMATS)
def test_failed_rename_leaves_nothing_and_the_retry_writes(
    tmp_path: Path, fmt: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = gpu_rows("2026-11-28T12:00:00", "2026-11-28T13:00:00")
    sink = ArrowSink(tmp_path, format=fmt)

    def broken_replace(src: Any, dst: Any) -> None:
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(SinkWriteError) as info:
        sink.write({"gpu_windows": table}, batch_key="k")
    assert info.value.errno == errno.EIO
    assert tree(tmp_path) == []  # no final file, no temporary file
    monkeypatch.undo()
    written = sink.write({"gpu_windows": table}, batch_key="k")
    assert len(written) == 2
    assert read_table(tmp_path, "gpu_windows").equals(read_table_of(table))


def test_crash_before_rename_is_cleaned_at_next_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = gpu_rows("2026-11-28T12:00:00")
    real_unlink = os.unlink

    def crash(src: Any, dst: Any) -> None:
        raise Crash

    monkeypatch.setattr(os, "replace", crash)
    monkeypatch.setattr(os, "unlink", lambda p: None)  # the process is gone: no cleanup
    with pytest.raises(Crash):
        ArrowSink(tmp_path).write({"gpu_windows": table}, batch_key="k")
    monkeypatch.undo()
    assert os.unlink is real_unlink
    (temp,) = (tmp_path / ".staging").glob(".part-k-0.arrow.tmp-*")
    assert list_files(tmp_path, "gpu_windows") == []
    sink = ArrowSink(tmp_path)  # the restart
    assert not temp.exists()
    assert len(sink.write({"gpu_windows": table}, batch_key="k")) == 1
    assert tree(tmp_path) == ["gpu_windows/date=2026-11-28/hour=12/part-k-0.arrow"]


def test_interrupt_mid_write_removes_the_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(fd: int) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        ArrowSink(tmp_path).write({"gpu_windows": gpu_rows("2026-11-28T12:00:00")}, batch_key="k")
    assert tree(tmp_path) == []


def test_file_is_synced_before_rename_and_directory_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append("fsync dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "fsync file")
        real_fsync(fd)

    def replace(src: Any, dst: Any) -> None:
        assert Path(src).name.startswith(".") and not Path(dst).name.startswith(".")
        events.append("rename")
        real_replace(src, dst)

    (tmp_path / "gpu_windows/date=2026-11-28/hour=12").mkdir(parents=True)
    (tmp_path / ".staging").mkdir()
    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    ArrowSink(tmp_path).write({"gpu_windows": gpu_rows("2026-11-28T12:00:00")}, batch_key="k")
    assert events == ["fsync file", "rename", "fsync dir"]
    events.clear()  # new directories: each new entry is made durable in its parent
    ArrowSink(tmp_path).write({"gpu_windows": gpu_rows("2026-11-29T00:00:00")}, batch_key="k")
    assert events == ["fsync dir", "fsync dir", "fsync file", "rename", "fsync dir"]


def test_on_sync_defers_every_fsync_to_one_sync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append("dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(durable_module, "_LIBC_SYNCFS", None)  # the fallback: fsync each
    sink = ArrowSink(tmp_path, durable="on_sync")
    written = sink.write({"gpu_windows": gpu_rows("2026-11-28T12:00:00")}, batch_key="a")
    written += sink.write({"gpu_windows": gpu_rows("2026-11-28T13:00:00")}, batch_key="b")
    assert synced == []
    # Readers already see whole files; only durability waits for sync().
    assert [pa.ipc.open_file(f).read_all().num_rows for f in written] == [1, 1]
    sink.sync()
    # Each file once; each directory that gained an entry once (hour dirs, date dir, table
    # dir, the output dir and .staging's parent are all among them).
    assert synced.count("file") == 2
    new_dirs = {
        tmp_path,
        tmp_path / "gpu_windows",
        tmp_path / "gpu_windows/date=2026-11-28",
        tmp_path / "gpu_windows/date=2026-11-28/hour=12",
        tmp_path / "gpu_windows/date=2026-11-28/hour=13",
    }
    assert synced.count("dir") == len(new_dirs)
    synced.clear()
    sink.sync()  # nothing new
    assert synced == []


def test_on_sync_uses_syncfs_and_reports_its_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Linux has syncfs(2) (the project's CI and deployments); elsewhere the fsync fallback,
    # tested above, is all there is.
    assert durable_module._LIBC_SYNCFS is not None or not sys.platform.startswith("linux")
    if durable_module._LIBC_SYNCFS is None:
        return
    calls: list[int] = []

    def syncfs(fd: int) -> int:
        calls.append(fd)
        return 0

    monkeypatch.setattr(durable_module, "_LIBC_SYNCFS", syncfs)
    monkeypatch.setattr(os, "fsync", lambda fd: pytest.fail("fsync with syncfs at hand"))
    sink = ArrowSink(tmp_path, durable="on_sync")
    sink.write({"gpu_windows": gpu_rows("2026-11-28T12:00:00")}, batch_key="a")
    sink.sync()
    assert len(calls) == 1

    def failing(fd: int) -> int:
        ctypes.set_errno(errno.EIO)
        return -1

    monkeypatch.setattr(durable_module, "_LIBC_SYNCFS", failing)
    sink.write({"gpu_windows": gpu_rows("2026-11-28T13:00:00")}, batch_key="b")
    with pytest.raises(SinkWriteError) as info:
        sink.sync()
    assert info.value.errno == errno.EIO
    monkeypatch.setattr(durable_module, "_LIBC_SYNCFS", syncfs)
    sink.sync()  # what failed is synced again
    assert len(calls) == 2


def test_real_syncfs_runs(tmp_path: Path) -> None:
    sink = ArrowSink(tmp_path, durable="on_sync")
    sink.write({"gpu_windows": gpu_rows("2026-11-28T12:00:00")}, batch_key="a")
    sink.sync()  # the platform's own call (syncfs on Linux), for real
    assert len(list_files(tmp_path, "gpu_windows")) == 1


def test_permission_denied_is_a_sink_write_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Tests run as root, which chmod does not stop: the refusal is simulated.
    real_open = os.open

    def refuse(path: Any, flags: int, mode: int = 0o777, **kw: Any) -> int:
        if ".tmp-" in os.fspath(path):
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
        return real_open(path, flags, mode, **kw)

    table = gpu_rows("2026-11-28T12:00:00")
    sink = ArrowSink(tmp_path)
    monkeypatch.setattr(os, "open", refuse)
    with pytest.raises(SinkWriteError) as info:
        sink.write({"gpu_windows": table}, batch_key="k")
    err = info.value
    final = tmp_path / "gpu_windows/date=2026-11-28/hour=12/part-k-0.arrow"
    assert isinstance(err, OSError) and isinstance(err, gpuledger.GpuledgerError)
    assert (err.errno, err.filename, err.path) == (errno.EACCES, str(final), final)
    assert str(err) == f"[Errno {errno.EACCES}] Permission denied: '{final}'"
    assert isinstance(err.__cause__, PermissionError)
    copy = pickle.loads(pickle.dumps(err))
    assert (type(copy), copy.errno, copy.path) == (SinkWriteError, errno.EACCES, final)
    assert tree(tmp_path) == []
    monkeypatch.undo()  # permissions fixed: the same write goes through
    assert sink.write({"gpu_windows": table}, batch_key="k") == [final]


def test_output_directory_under_a_file_is_a_sink_write_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"")
    sink = ArrowSink(tmp_path / "file" / "out")
    with pytest.raises(SinkWriteError) as info:
        sink.write({"gpu_windows": gpu_rows("2026-11-28T12:00:00")}, batch_key="k")
    assert info.value.errno == errno.ENOTDIR
    assert tree(tmp_path) == ["file"]


def test_disk_full_midway_then_retry_writes_only_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = gpu_rows("2026-11-28T12:00:00", "2026-11-28T13:00:00", "2026-11-28T14:00:00")
    sink = ArrowSink(tmp_path, format="parquet")
    real_write = os.write
    calls = []

    def write(fd: int, data: Any) -> int:
        calls.append(fd)
        if len(calls) >= 2:  # the first file fits, then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", write)
    with pytest.raises(SinkWriteError) as info:
        sink.write({"gpu_windows": table}, batch_key="k")
    monkeypatch.undo()
    assert info.value.errno == errno.ENOSPC
    assert "No space left" in str(info.value)
    done = ["gpu_windows/date=2026-11-28/hour=12/part-k-0.parquet"]
    assert tree(tmp_path) == done  # one whole file, no temporary file
    rest = sink.write({"gpu_windows": table}, batch_key="k")  # space freed: the retry
    assert [str(p.relative_to(tmp_path)) for p in rest] == [
        "gpu_windows/date=2026-11-28/hour=13/part-k-0.parquet",
        "gpu_windows/date=2026-11-28/hour=14/part-k-0.parquet",
    ]
    assert read_table(tmp_path, "gpu_windows").equals(read_table_of(table))


def test_fsync_failure_is_a_sink_write_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(SinkWriteError):
        ArrowSink(tmp_path).write({"gpu_windows": gpu_rows("2026-11-28T12:00:00")}, batch_key="k")
    monkeypatch.undo()
    assert list_files(tmp_path, "gpu_windows") == []


# --- read_table / list_files --------------------------------------------------------------


def test_read_table_combines_formats_writers_and_schema_versions(tmp_path: Path) -> None:
    assert read_table(tmp_path, "gpu_windows").num_rows == 0
    assert list_files(tmp_path, "gpu_windows") == []
    new = gpu_rows("2026-11-28T12:00:00", "2026-11-28T13:00:00", pod="new")
    old = gpu_rows("2026-11-28T12:30:00", pod="old").drop_columns(["energy_j"])
    ArrowSink(tmp_path, format="parquet", writer_id="a").write({"gpu_windows": new}, batch_key="2")
    ArrowSink(tmp_path, writer_id="b").write({"gpu_windows": old}, batch_key="1")
    (tmp_path / "gpu_windows/date=2026-11-28/hour=12/notes.txt").write_text("x")
    files = list_files(tmp_path, "gpu_windows")
    assert [str(p.relative_to(tmp_path / "gpu_windows")) for p in files] == [
        "date=2026-11-28/hour=12/part-1-b.arrow",
        "date=2026-11-28/hour=12/part-2-a.parquet",
        "date=2026-11-28/hour=13/part-2-a.parquet",
    ]
    back = read_table(tmp_path, "gpu_windows")
    assert "date" not in back.column_names and "hour" not in back.column_names
    assert back["window_start"].to_pylist() == [
        at("2026-11-28T12:00:00"),
        at("2026-11-28T12:30:00"),
        at("2026-11-28T13:00:00"),
    ]
    assert back["energy_j"].to_pylist() == [0.0, None, 0.0]
    with pytest.raises(ValueError, match="table name"):
        read_table(tmp_path, "../gpu_windows")
    with pytest.raises(NotADirectoryError):  # unreadable output is an error, not "no rows"
        list_files(tmp_path / "gpu_windows/date=2026-11-28/hour=12/notes.txt", "gpu_windows")


def test_read_table_is_sorted_by_every_sortable_column(tmp_path: Path) -> None:
    schema = pa.schema(
        [
            ("window_start", pa.timestamp("ms", tz="UTC")),
            ("tags", pa.list_(pa.string())),
            ("name", pa.dictionary(pa.int32(), pa.string())),
            ("v", pa.float64()),
        ]
    )
    t0 = at("2026-11-28T12:00:00")
    rows = [
        {"window_start": t0, "tags": ["x"], "name": "b", "v": 2.0},
        {"window_start": t0, "tags": [], "name": "a", "v": None},
        {"window_start": t0, "tags": None, "name": "a", "v": 1.0},
    ]
    table = pa.Table.from_pylist(rows, schema=schema)
    sink = ArrowSink(tmp_path)
    sink.write({"custom": table.slice(0, 2)}, batch_key="1")
    sink.write({"custom": table.slice(2)}, batch_key="2")
    back = read_table(tmp_path, "custom")
    assert back.schema == schema
    assert back.to_pylist() == [rows[2], rows[1], rows[0]]
    # Rows that tie on every sortable column still compare equal in any order.
    assert sink.write({"custom": table.slice(0, 2).take([1, 0])}, batch_key="1") == []
