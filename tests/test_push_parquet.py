"""Engine.push_parquet: Parquet batches pushed straight from the Rust reader give what
push_arrow gives on the same table (every table, every counter), with and without the
read-ahead thread, in chunks of any size; reading and column errors are InputError; and
replay's Parquet chunks must be pushed in order."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import gpuledger
from gpuledger import _engine
from gpuledger.replay.inputs import InputFile
from gpuledger.simulate.small_fleet import default_fleet, prom_json_messages

START = 1_795_867_200  # 2026-11-28T12:00:00Z


def long_table(seconds: int) -> pa.Table:
    """The simulated fleet in the long form, with the cases the engine treats specially:
    a value out of range (a dead letter), a DCGM blank, an unknown field, and a null label."""
    rows: dict[str, list[object]] = {
        k: [] for k in ("ts", "gpu", "field", "value", "hostname", "namespace", "pod")
    }
    for raw in prom_json_messages(default_fleet(), START, seconds):
        m = json.loads(raw)
        lab = m["labels"]
        rows["ts"].append(datetime.fromisoformat(m["timestamp"].replace("Z", "+00:00")))
        rows["gpu"].append(lab["UUID"])
        rows["field"].append(m["name"])
        rows["value"].append(float(m["value"]))
        rows["hostname"].append(lab["Hostname"])
        rows["namespace"].append(lab["namespace"])
        rows["pod"].append(lab["pod"])
    n = len(rows["ts"])
    rows["value"][n // 3] = 250.0  # utilization above 100 %: a dead letter
    rows["value"][n // 2] = 9.3e18  # a DCGM blank: a counted skip
    rows["field"][n // 4] = "DCGM_FI_DEV_SOMETHING_NEW"  # unknown: a counted skip
    rows["namespace"][2 * n // 3] = None  # a null label in one batch
    return pa.table(rows).cast(
        pa.schema(
            [pa.field("ts", pa.timestamp("ms", tz="UTC")), pa.field("gpu", pa.string())]
            + [pa.field("field", pa.string()), pa.field("value", pa.float64())]
            + [pa.field(k, pa.string()) for k in ("hostname", "namespace", "pod")]
        )
    )


@pytest.fixture(scope="module")
def table() -> pa.Table:
    return long_table(240)


@pytest.fixture(scope="module")
def parquet_file(table: pa.Table, tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("pq") / "t.parquet"
    pq.write_table(table, path, row_group_size=2_000)
    return str(path)


def everything(engine: gpuledger.Engine) -> dict[str, object]:
    out = {name: t.to_pylist() for name, t in engine.finish().tables.items()}
    out["stats"] = engine.stats()
    return out


def new_engine() -> gpuledger.Engine:
    engine = gpuledger.Engine(gpuledger.Config())
    engine.set_receive_time(START + 3600.0)  # dead letters' received_at, the same for both
    return engine


def expected(table: pa.Table, path: str) -> dict[str, object]:
    engine = new_engine()
    engine.push_arrow(table, source=path)
    return everything(engine)


@pytest.mark.parametrize("read_ahead", [0, 2])
@pytest.mark.parametrize("max_bytes", [1, 200_000, 1 << 30])
def test_push_parquet_equals_push_arrow(
    table: pa.Table, parquet_file: str, read_ahead: int, max_bytes: int
) -> None:
    want = expected(table, parquet_file)
    engine = new_engine()
    reader = _engine.ParquetBatches(parquet_file, 1_000, read_ahead=read_ahead)
    rows, ends = 0, []
    while True:
        n, end = engine.push_parquet(reader, max_bytes, source=parquet_file, first_row=rows)
        if n == 0:
            break
        rows += n
        ends.append(end)
    assert rows == table.num_rows
    # Each chunk's newest event time, non-decreasing here (the fleet is in time order).
    assert ends == sorted(ends)
    assert ends[-1] == (START + 239) * 1000
    got = everything(engine)
    assert got == want
    stats = got["stats"]
    assert isinstance(stats, dict)
    assert stats["dead"] == 1 and stats["skipped_blank"] == 1
    assert stats["skipped_unknown_field"] >= 1
    # Once the file has ended, further calls push nothing.
    assert engine.push_parquet(reader, max_bytes) == (0, None)


def test_push_parquet_errors(tmp_path: Path, table: pa.Table) -> None:
    engine = gpuledger.Engine(gpuledger.Config())
    no_time = tmp_path / "no_time.parquet"
    pq.write_table(table.drop_columns(["ts"]), no_time)
    reader = _engine.ParquetBatches(str(no_time))
    with pytest.raises(_engine.InputError, match="rows from 7: no time column"):
        engine.push_parquet(reader, 1 << 20, first_row=7)
    good = tmp_path / "good.parquet"
    pq.write_table(table, good, row_group_size=500)
    broken = bytearray(good.read_bytes())
    middle = len(broken) // 3
    broken[middle : middle + 64] = b"\xff" * 64
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(bytes(broken))
    reader = _engine.ParquetBatches(str(bad), 500, read_ahead=2)
    with pytest.raises(_engine.InputError, match="reading Parquet"):
        while engine.push_parquet(reader, 1 << 30)[0]:
            pass
    with pytest.raises(_engine.InputError, match="form must be"):
        engine.push_parquet(_engine.ParquetBatches(str(good)), 1, form="tall")


def test_parquet_chunks_must_be_pushed_before_the_next(parquet_file: str) -> None:
    f = InputFile(parquet_file, 0, chunk_bytes=10_000)
    f.peek()
    chunks = f.chunks()
    first = next(chunks)
    assert first.records == 0 and first.end_ms is None  # known once pushed
    with pytest.raises(RuntimeError, match="must be pushed"):
        next(chunks)
    chunks.close()


def test_polls_hand_out_one_empty_batch_per_table() -> None:
    engine = gpuledger.Engine(gpuledger.Config())
    first, second = engine._core.poll(), engine._core.poll()
    assert first.keys() == second.keys()
    for name in first:
        assert first[name] is second[name]  # exported once, reused
        assert first[name].num_rows == 0
        assert first[name].schema == gpuledger.schemas()[name]


def test_empty_batches_and_files(tmp_path: Path, table: pa.Table) -> None:
    engine = new_engine()
    labels = ("gpu", "field", "hostname", "namespace", "pod")
    empty = table.slice(0, 0)
    dictionaries = empty.cast(
        pa.schema(
            pa.field(f.name, pa.dictionary(pa.int32(), pa.string())) if f.name in labels else f
            for f in empty.schema
        )
    )
    for t in (empty, dictionaries):
        engine.push_arrow(t)
        for batch in t.to_batches(max_chunksize=10) or [pa.RecordBatch.from_pylist([], t.schema)]:
            engine.push_arrow(batch, form="long")
    path = tmp_path / "empty.parquet"
    pq.write_table(empty, path)
    assert engine.push_parquet(_engine.ParquetBatches(str(path)), 1 << 20) == (0, None)
    assert engine.stats()["consumed"] == 0


def request_table(n: int) -> pa.Table:
    """Request events in the columnar form, with a negative latency (a dead letter) and a
    null pod."""
    services = ["chat", "embed", "rerank"]
    rows = {
        "ts": [datetime.fromtimestamp(START + i * 0.05, tz=timezone.utc) for i in range(n)],
        "service": [services[i % 3] for i in range(n)],
        "pod": [f"{services[i % 3]}-{i % 5}" for i in range(n)],
        "latency_ms": [float(20 + (i * 37) % 400) for i in range(n)],
        "status": [500 if i % 97 == 0 else 200 for i in range(n)],
    }
    rows["latency_ms"][n // 2] = -5.0
    rows["pod"][n // 3] = None
    return pa.table(rows)


@pytest.mark.parametrize("read_ahead", [0, 3])
def test_push_parquet_file_equals_push_arrow(
    tmp_path: Path, table: pa.Table, parquet_file: str, read_ahead: int
) -> None:
    engine = new_engine()
    assert engine.push_parquet_file(parquet_file, batch_rows=777, read_ahead=read_ahead) == (
        table.num_rows
    )
    assert everything(engine) == expected(table, parquet_file)  # source: the path
    requests = request_table(5_000)
    path = tmp_path / "requests.parquet"
    pq.write_table(requests, path, row_group_size=1_500)
    engine = new_engine()
    engine.push_parquet_file(path, source="req", batch_rows=1_000, read_ahead=read_ahead)
    want = new_engine()
    want.push_arrow(requests, source="req")
    got = everything(engine)
    assert got == everything(want)
    stats = got["stats"]
    assert isinstance(stats, dict)
    assert stats["consumed"] == 5_000 and stats["dead"] == 1
    assert any(r["requests"] for r in got["latency_windows"])  # type: ignore[attr-defined]


def test_push_parquet_file_bad_input(tmp_path: Path, table: pa.Table) -> None:
    engine = new_engine()
    with pytest.raises(gpuledger.InputError, match=r"missing\.parquet"):
        engine.push_parquet_file(tmp_path / "missing.parquet")
    text = tmp_path / "not.parquet"
    text.write_text('{"ts": 1}\n')
    with pytest.raises(gpuledger.InputError, match=r"not\.parquet"):
        engine.push_parquet_file(text)
    with pytest.raises(ValueError, match="batch_rows"):
        engine.push_parquet_file(text, batch_rows=0)
    with pytest.raises(ValueError, match="read_ahead"):
        engine.push_parquet_file(text, read_ahead=-1)
    # A batch whose columns cannot be read: an InputError, the engine still usable.
    no_time = tmp_path / "no_time.parquet"
    pq.write_table(table.drop_columns(["ts"]), no_time)
    with pytest.raises(gpuledger.InputError, match="rows from 0: no time column"):
        engine.push_parquet_file(no_time)
    assert engine.stats()["consumed"] == 0
    ok = tmp_path / "ok.parquet"
    pq.write_table(table, ok)
    engine.push_parquet_file(ok)
    assert engine.stats()["consumed"] == table.num_rows
