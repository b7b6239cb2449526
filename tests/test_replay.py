"""`gpuledger replay`: every input form gives, row for row, what the library engine gives on
the same events; detection, directories, ordering of several files, dead letters with file
and line, progress, the summary and the CLI, and bounded memory on a file of GBs."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import gpuledger
from gpuledger.cli.replay import replay_command
from gpuledger.output.sink import _sorted, read_table
from gpuledger.replay import Progress, ReplayError, replay, replay_config
from gpuledger.replay.inputs import (
    InputFile,
    ReplayInputError,
    detect_compression,
    detect_format,
    expand_paths,
    time_from_name,
)
from gpuledger.simulate.small_fleet import default_fleet, prom_json_messages

START = 1_795_867_200  # 2026-11-28T12:00:00Z
SMALL_CHUNK = 64 << 10  # many chunks, so windows close and are written along the way
REPO = Path(__file__).resolve().parents[1]

# --- data ---------------------------------------------------------------------------------


def _rfc(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture(scope="module")
def prom() -> list[bytes]:
    return list(prom_json_messages(default_fleet(), START, 600))


def to_wide(messages: list[bytes]) -> list[bytes]:
    names = {
        "DCGM_FI_PROF_GR_ENGINE_ACTIVE": "gr_engine_active",
        "DCGM_FI_DEV_POWER_USAGE": "power_w",
    }
    by_key: dict[tuple[str, str], dict[str, object]] = {}
    for raw in messages:
        m = json.loads(raw)
        lab = m["labels"]
        row = by_key.setdefault(
            (m["timestamp"], lab["UUID"]),
            {
                "ts": m["timestamp"],
                "gpu": lab["UUID"],
                "gpu_index": int(lab["gpu"]),
                "host": lab["Hostname"],
                "model": lab["modelName"],
                "namespace": lab["namespace"],
                "pod": lab["pod"],
                "container": lab["container"],
            },
        )
        row[names[m["name"]]] = float(m["value"])
    return [json.dumps(r).encode() for r in by_key.values()]


def to_exposition(messages: list[bytes]) -> bytes:
    out: list[str] = ["# HELP DCGM_FI_PROF_GR_ENGINE_ACTIVE ratio", "# TYPE x gauge"]
    last = None
    for raw in messages:
        m = json.loads(raw)
        if m["timestamp"] != last:
            secs = datetime.fromisoformat(m["timestamp"].replace("Z", "+00:00")).timestamp()
            out.append(f"# scrape_ts {secs:.0f}")
            last = m["timestamp"]
        labels = ",".join(f'{k}="{v}"' for k, v in m["labels"].items() if k != "__name__")
        out.append(f"{m['name']}{{{labels}}} {m['value']}")
    return ("\n".join(out) + "\n").encode()


def to_long(messages: list[bytes]) -> pa.Table:
    cols: dict[str, list[object]] = {
        k: []
        for k in (
            *("ts", "gpu", "field", "value", "gpu_index", "hostname", "model_name"),
            *("namespace", "pod", "container"),
        )
    }
    for raw in messages:
        m = json.loads(raw)
        lab = m["labels"]
        cols["ts"].append(datetime.fromisoformat(m["timestamp"].replace("Z", "+00:00")))
        cols["gpu"].append(lab["UUID"])
        cols["field"].append(m["name"])
        cols["value"].append(float(m["value"]))
        cols["gpu_index"].append(lab["gpu"])
        cols["hostname"].append(lab["Hostname"])
        cols["model_name"].append(lab["modelName"])
        for k in ("namespace", "pod", "container"):
            cols[k].append(lab[k])
    return pa.table(cols).cast(
        pa.schema(
            [pa.field("ts", pa.timestamp("ms", tz="UTC"))]
            + [pa.field(k, pa.string()) for k in ("gpu", "field")]
            + [pa.field("value", pa.float64())]
            + [pa.field(k, pa.string()) for k in ("gpu_index", "hostname", "model_name")]
            + [pa.field(k, pa.string()) for k in ("namespace", "pod", "container")]
        )
    )


def requests(seconds: int = 600, per_s: int = 5) -> list[bytes]:
    """Requests of two services whose pods are the fleet's (the cost join finds them)."""
    out = []
    for t in range(START, START + seconds):
        for i in range(per_s):
            pod = ("vllm-chat-0", "vllm-chat-1", "ranker-0")[i % 3]
            service, ns = (
                ("chat", "team-chat") if pod.startswith("vllm") else ("rank", "team-search")
            )
            body = {
                "ts": t + i / per_s,
                "service": service,
                "namespace": ns,
                "pod": pod,
                "latency_ms": 50.0 + (t * 7 + i * 13) % 400,
                "ttft_ms": 10.0 + i,
                "status": 500 if (t + i) % 97 == 0 else 200,
                "tokens_in": 100 + i,
                "tokens_out": 20 + i,
            }
            out.append(json.dumps(body).encode())
    return out


def write_bytes(path: Path, data: bytes, compression: str | None = None) -> Path:
    raw = pa.OSFile(str(path), "wb")
    out = pa.CompressedOutputStream(raw, compression) if compression else raw
    out.write(data)
    out.close()
    return path


def lines(messages: list[bytes]) -> bytes:
    return b"\n".join(messages) + b"\n"


# --- comparison -----------------------------------------------------------------------


def library(push: Callable[[gpuledger.Engine], None]) -> gpuledger.Windows:
    engine = gpuledger.Engine(replay_config(None))
    push(engine)
    return engine.finish()


def normalized(t: pa.Table) -> pa.Table:
    if "received_at" in t.column_names:  # wall clock: when the row was made
        t = t.drop_columns(["received_at"])
    return _sorted(t)


def assert_same(out: Path, expected: gpuledger.Windows) -> dict[str, int]:
    """Every table written under `out` equals the library's, row for row."""
    counts = {}
    names = set(expected.tables) | {p.name for p in out.iterdir() if not p.name.startswith(".")}
    for name in sorted(names):
        want = expected.tables.get(name, pa.table({}))
        got = read_table(out, name)
        if want.num_rows == 0:
            assert got is None or got.num_rows == 0, name
            continue
        assert got is not None, name
        assert got.num_rows == want.num_rows, name
        a, b = normalized(got), normalized(want)
        assert a.schema.equals(b.schema), name
        assert a.equals(b), name
        counts[name] = want.num_rows
    return counts


# --- every form equals the library ------------------------------------------------------


@pytest.mark.parametrize("compression", [None, "gzip", "zstd"])
@pytest.mark.parametrize("kind", ["prom_json", "wide_json", "latency_json"])
def test_json_lines_equal_the_library(
    tmp_path: Path, prom: list[bytes], kind: str, compression: str | None
) -> None:
    msgs = {"prom_json": prom, "wide_json": to_wide(prom), "latency_json": requests()}[kind]
    suffix = {None: "", "gzip": ".gz", "zstd": ".zst"}[compression]
    path = write_bytes(tmp_path / f"in.jsonl{suffix}", lines(msgs), compression)
    summary = replay([path], tmp_path / "out", chunk_bytes=SMALL_CHUNK, flush_bytes=SMALL_CHUNK)
    want = library(lambda e: e.push(msgs, format=kind, source=str(path), first_offset=1))
    counts = assert_same(tmp_path / "out", want)
    table = "latency_windows" if kind == "latency_json" else "gpu_windows"
    assert counts[table] > 0
    assert summary.events == len(msgs) and summary.late == 0 and summary.dead == 0
    assert summary.files_written > 2  # windows were written along the way, not only at the end


@pytest.mark.parametrize("compression", [None, "gzip"])
def test_exposition_equals_the_library(
    tmp_path: Path, prom: list[bytes], compression: str | None
) -> None:
    text = to_exposition(prom)
    path = write_bytes(
        tmp_path / ("scrapes.prom" + (".gz" if compression else "")), text, compression
    )
    summary = replay([path], tmp_path / "out", chunk_bytes=SMALL_CHUNK, flush_bytes=SMALL_CHUNK)

    def push(e: gpuledger.Engine) -> None:
        e.push_exposition(text, source=str(path))

    assert assert_same(tmp_path / "out", library(push))["gpu_windows"] == 80
    assert summary.events == len(prom)


def _columnar_files(tmp: Path, table: pa.Table) -> dict[str, Path]:
    paths = {}
    pq.write_table(table, tmp / "long.parquet", row_group_size=1000)
    paths["parquet"] = tmp / "long.parquet"
    with pa.ipc.new_file(str(tmp / "long.arrow"), table.schema) as w:
        for b in table.to_batches(max_chunksize=700):
            w.write_batch(b)
    paths["arrow_file"] = tmp / "long.arrow"
    with pa.ipc.new_stream(str(tmp / "long.arrows"), table.schema) as w:
        for b in table.to_batches(max_chunksize=700):
            w.write_batch(b)
    paths["arrow_stream"] = tmp / "long.arrows"
    csv_table = table.set_column(0, "ts", table.column("ts").cast(pa.int64()))  # epoch ms
    pacsv.write_csv(csv_table, tmp / "long.csv")
    paths["csv"] = tmp / "long.csv"
    buf = (tmp / "long.csv").read_bytes()
    paths["csv_gzip"] = write_bytes(tmp / "long.csv.gz", buf, "gzip")
    paths["parquet_zstd"] = write_bytes(
        tmp / "long.parquet.zst", (tmp / "long.parquet").read_bytes(), "zstd"
    )
    paths["arrow_stream_gzip"] = write_bytes(
        tmp / "long.arrows.gz", (tmp / "long.arrows").read_bytes(), "gzip"
    )
    return paths


@pytest.mark.parametrize(
    "which",
    [
        "parquet",
        "arrow_file",
        "arrow_stream",
        "csv",
        "csv_gzip",
        "parquet_zstd",
        "arrow_stream_gzip",
    ],
)
def test_columnar_forms_equal_the_library(tmp_path: Path, prom: list[bytes], which: str) -> None:
    table = to_long(prom)
    path = _columnar_files(tmp_path, table)[which]
    summary = replay([path], tmp_path / "out", chunk_bytes=SMALL_CHUNK, flush_bytes=SMALL_CHUNK)
    want = library(lambda e: e.push_arrow(table, source=str(path)))
    assert assert_same(tmp_path / "out", want)["gpu_windows"] == 80
    assert summary.events == table.num_rows


def test_wide_parquet_and_requests_csv(tmp_path: Path, prom: list[bytes]) -> None:
    wide = pa.Table.from_pylist([json.loads(m) for m in to_wide(prom)])
    pq.write_table(wide, tmp_path / "wide.parquet", row_group_size=500)
    reqs = pa.Table.from_pylist([json.loads(m) for m in requests()])
    pacsv.write_csv(reqs, tmp_path / "req.csv")
    replay(
        [tmp_path / "wide.parquet", tmp_path / "req.csv"],
        tmp_path / "out",
        chunk_bytes=SMALL_CHUNK,
        flush_bytes=SMALL_CHUNK,
    )

    def push(e: gpuledger.Engine) -> None:
        e.push_arrow(wide, source=str(tmp_path / "wide.parquet"))
        csv_in = pacsv.read_csv(
            tmp_path / "req.csv",
            convert_options=pacsv.ConvertOptions(
                column_types={"service": pa.string(), "namespace": pa.string(), "pod": pa.string()}
                | {k: pa.float64() for k in ("latency_ms", "ttft_ms", "status")}
                | {k: pa.float64() for k in ("tokens_in", "tokens_out")}
            ),
        )
        e.push_arrow(csv_in, source=str(tmp_path / "req.csv"))

    counts = assert_same(tmp_path / "out", library(push))
    assert counts["gpu_windows"] == 80 and counts["service_cost_windows"] == 20


# --- several files ------------------------------------------------------------------------


def test_telemetry_and_requests_merge_by_time(tmp_path: Path, prom: list[bytes]) -> None:
    reqs = requests()
    tel = write_bytes(tmp_path / "telemetry.jsonl", lines(prom))
    lat = write_bytes(tmp_path / "requests.jsonl.zst", lines(reqs), "zstd")
    summary = replay([tel, lat], tmp_path / "out", chunk_bytes=SMALL_CHUNK, flush_bytes=SMALL_CHUNK)

    def push(e: gpuledger.Engine) -> None:
        e.push(prom, source=str(tel), first_offset=1)
        e.push(reqs, format="latency_json", source=str(lat), first_offset=1)

    counts = assert_same(tmp_path / "out", library(push))
    assert counts["service_cost_windows"] == 20 and summary.late == 0
    assert {r["service"] for r in summary.top_headroom} == {"chat", "rank"}

    # One after another, the request file comes after the telemetry's watermark: late.
    given = replay(
        [tel, lat],
        tmp_path / "given",
        chunk_bytes=SMALL_CHUNK,
        flush_bytes=SMALL_CHUNK,
        order="given",
    )
    assert given.late > 0


def test_merging_does_not_rest_on_time_estimates(
    tmp_path: Path, prom: list[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    import gpuledger.replay.inputs as ri

    monkeypatch.setattr(ri, "_first_json_ms", lambda *a, **k: None)
    monkeypatch.setattr(ri, "_last_json_ms", lambda *a, **k: None)
    reqs = requests()
    tel = write_bytes(tmp_path / "telemetry.jsonl", lines(prom))
    lat = write_bytes(tmp_path / "requests.jsonl", lines(reqs))
    summary = replay([tel, lat], tmp_path / "out", chunk_bytes=SMALL_CHUNK)
    assert summary.late == 0

    def push(e: gpuledger.Engine) -> None:
        e.push(prom, source=str(tel), first_offset=1)
        e.push(reqs, format="latency_json", source=str(lat), first_offset=1)

    assert assert_same(tmp_path / "out", library(push))["service_cost_windows"] == 20


def test_directory_of_hourly_files_equals_one_file(tmp_path: Path) -> None:
    msgs = list(prom_json_messages(default_fleet(), START, 3 * 3600 // 4))
    quarter = len(msgs) // 3
    d = tmp_path / "dumps"
    (d / "sub").mkdir(parents=True)
    parts = [msgs[:quarter], msgs[quarter : 2 * quarter], msgs[2 * quarter :]]
    write_bytes(d / "a-00.jsonl", lines(parts[0]))
    write_bytes(d / "sub" / "c-02.jsonl.gz", lines(parts[2]), "gzip")
    write_bytes(d / "b-01.jsonl", lines(parts[1]))
    write_bytes(d / ".hidden.jsonl", b"not json\n")
    files = expand_paths([d])
    assert [Path(f).name for f in files] == ["a-00.jsonl", "b-01.jsonl", "c-02.jsonl.gz"]
    summary = replay([d], tmp_path / "out", chunk_bytes=SMALL_CHUNK, flush_bytes=SMALL_CHUNK)

    def push(e: gpuledger.Engine) -> None:
        for f, part in zip(files, parts, strict=True):
            e.push(part, source=f, first_offset=1)

    assert assert_same(tmp_path / "out", library(push))["gpu_windows"] > 0
    assert summary.late == 0 and summary.dead == 0 and summary.events == len(msgs)


def test_files_in_reverse_time_order_are_merged(tmp_path: Path, prom: list[bytes]) -> None:
    half = len(prom) // 2
    late_file = write_bytes(tmp_path / "a.jsonl", lines(prom[half:]))
    early_file = write_bytes(tmp_path / "b.jsonl", lines(prom[:half]))
    summary = replay(
        [late_file, early_file], tmp_path / "out", chunk_bytes=SMALL_CHUNK, flush_bytes=SMALL_CHUNK
    )
    assert summary.late == 0
    whole = library(lambda e: e.push(prom))
    got = read_table(tmp_path / "out", "gpu_windows")
    assert got is not None and normalized(got).equals(normalized(whole.gpu_windows))


# --- detection ------------------------------------------------------------------------------


def test_format_detection(prom: list[bytes]) -> None:
    assert detect_format("x", prom[0] + b"\n") == "prom_json"
    assert detect_format("x", b"\n\n" + to_wide(prom)[0] + b"\n") == "wide_json"
    assert detect_format("x", requests(1)[0]) == "latency_json"
    vllm = b'{"ts": 1, "usage": {"prompt_tokens": 3}, "metrics": {}}'
    assert detect_format("x", vllm) == "latency_json"
    assert detect_format("x", to_exposition(prom[:4])) == "exposition"
    assert detect_format("x", b'DCGM_FI_DEV_GPU_UTIL{gpu="0",UUID="x"} 87\n') == "exposition"
    assert detect_format("x", b"ts,gpu,field,value\n1,a,b,2\n") == "csv"
    assert detect_format("x", b"PAR1....") == "parquet"
    assert detect_format("x", b"ARROW1\x00\x00") == "arrow"
    assert detect_format("x", b"\xff\xff\xff\xff\x10\x00") == "arrow"
    for bad in (b"", b"hello world, this is text\n", b'{"what": 1}\n'):
        with pytest.raises(ReplayInputError, match="format"):
            detect_format("x", bad)
    assert detect_compression(b"\x1f\x8b\x08\x00") == "gzip"
    assert detect_compression(b"\x28\xb5\x2f\xfd") == "zstd"
    assert detect_compression(b"BZh9") == "bz2"
    assert detect_compression(b'{"ts"') is None


def test_compression_by_magic_not_name(tmp_path: Path, prom: list[bytes]) -> None:
    path = write_bytes(tmp_path / "misnamed.txt", lines(prom[:100]), "zstd")
    f = InputFile(str(path), 0)
    f.peek()
    assert (f.compression, f.format, f.first_ms) == ("zstd", "prom_json", START * 1000)
    assert replay([path], tmp_path / "out").events == 100


def test_format_option_overrides_detection(tmp_path: Path) -> None:
    path = write_bytes(tmp_path / "odd.log", b'{"gpu": "g", "ts": 1795867200, "power_w": 5}\n')
    s = replay([path], tmp_path / "out", format="latency_json")
    assert s.dead == 1  # read as a request: no latency_ms


def test_time_from_file_name() -> None:
    assert time_from_name("dcgm-2026-11-28T12:00:00Z.prom") == START * 1000
    assert time_from_name("scrape_20261128T120000.txt") == START * 1000
    assert time_from_name(f"s-{START}.prom") == START * 1000
    assert time_from_name(f"s-{START * 1000}.prom") == START * 1000
    assert time_from_name("scrape.prom") is None


def test_exposition_time_from_file_name(tmp_path: Path) -> None:
    line = b'DCGM_FI_DEV_GPU_UTIL{gpu="0",UUID="GPU-1",modelName="L40S"} 87\n'
    path = write_bytes(tmp_path / f"scrape-{START + 5}.prom", line * 3)
    summary = replay([path], tmp_path / "out")
    rows = read_table(tmp_path / "out", "gpu_windows")
    assert summary.dead == 0 and rows is not None
    assert rows.column("window_start")[0].as_py().timestamp() == START


# --- bad input -------------------------------------------------------------------------------


def test_bad_lines_are_dead_letters_with_file_and_line(tmp_path: Path, prom: list[bytes]) -> None:
    body = [
        prom[0],
        prom[1],
        b'{"timestamp": "2026-11-28T12:00:0',
        b"",
        prom[2],
        b"\xff\xfe",
        b"[]",
    ]
    path = write_bytes(tmp_path / "bad.jsonl", b"\n".join(body) + b"\n\n" + prom[3])  # no final \n
    summary = replay([path], tmp_path / "out", chunk_bytes=40)
    dead = read_table(tmp_path / "out", "dead_letters")
    assert dead is not None
    assert dead.column("offset").to_pylist() == [3, 6, 7]
    assert set(dead.column("source").to_pylist()) == {str(path)}
    assert dead.column("raw").to_pylist()[0] == body[2]
    assert summary.events == 7 and summary.dead == 3 and summary.stats["aggregated"] == 4


def test_bad_exposition_lines_keep_their_line_numbers_across_chunks(
    tmp_path: Path, prom: list[bytes]
) -> None:
    text = to_exposition(prom[:400]).split(b"\n")
    text[150] = b"DCGM_FI_DEV_GPU_UTIL{gpu=0} 1"  # unquoted label value
    text[333] = b'DCGM_FI_DEV_GPU_UTIL{UUID="g"} not-a-number'
    path = write_bytes(tmp_path / "s.prom.gz", b"\n".join(text), "gzip")
    summary = replay([path], tmp_path / "out", chunk_bytes=1000)
    dead = read_table(tmp_path / "out", "dead_letters")
    assert dead is not None and dead.column("offset").to_pylist() == [151, 334]
    assert dead.column("raw").to_pylist() == [text[150], text[333]]
    assert summary.dead == 2 and summary.stats["aggregated"] == 398


def test_csv_rows_with_wrong_columns_are_reported(tmp_path: Path) -> None:
    text = "ts,gpu,field,value\n" + f"{START}000,GPU-1,DCGM_FI_DEV_GPU_UTIL,50\n"
    text += "1,2\n" + f"{START + 1}000,GPU-1,DCGM_FI_DEV_GPU_UTIL,not-a-number-is-fine-later\n"
    path = write_bytes(tmp_path / "x.csv", text.encode())
    with pytest.raises(ReplayInputError, match=r"x\.csv"):
        replay([path], tmp_path / "out")  # a value that is not a number stops the CSV reader
    text = "ts,gpu,field,value\n" + f"{START}000,GPU-1,DCGM_FI_DEV_GPU_UTIL,50\n" + "1,2\n"
    path = write_bytes(tmp_path / "y.csv", text.encode())
    s = replay([path], tmp_path / "out2")
    assert s.rejected_csv_rows == 1 and s.events == 1
    assert "y.csv row" in s.rejected_examples[0] and "rejected CSV rows 1" in s.render()


def test_old_and_future_traces_are_not_dead_letters(tmp_path: Path) -> None:
    future = 4_102_444_800  # 2100-01-01
    msgs = [
        m.replace(b"2026-11-28", b"2100-01-01")
        for m in prom_json_messages(default_fleet(), future, 5)
    ]
    path = write_bytes(tmp_path / "f.jsonl", lines(msgs))
    assert replay([path], tmp_path / "out").dead == 0
    assert replay([path], tmp_path / "out2", max_future_s=86_400).dead == len(msgs)


def test_unreadable_columnar_file_is_an_error(tmp_path: Path) -> None:
    pq.write_table(pa.table({"x": [1, 2]}), tmp_path / "x.parquet")
    with pytest.raises(ReplayInputError, match=r"x\.parquet.*time column"):
        replay([tmp_path / "x.parquet"], tmp_path / "out")


def test_truncated_or_corrupt_parquet_is_an_error_naming_the_file(
    tmp_path: Path, prom: list[bytes]
) -> None:
    table = to_long(prom)
    pq.write_table(table, tmp_path / "good.parquet", row_group_size=100)
    data = (tmp_path / "good.parquet").read_bytes()
    (tmp_path / "cut.parquet").write_bytes(data[: len(data) // 2])  # footer gone
    with pytest.raises(ReplayInputError, match=r"cut\.parquet"):
        replay([tmp_path / "cut.parquet"], tmp_path / "out1")
    # Footer intact, a data page overwritten: the error comes while reading batches.
    broken = bytearray(data)
    middle = len(data) // 3
    broken[middle : middle + 64] = b"\xff" * 64
    (tmp_path / "bad.parquet").write_bytes(bytes(broken))
    with pytest.raises(ReplayInputError, match=r"bad\.parquet"):
        replay([tmp_path / "bad.parquet"], tmp_path / "out2")


@pytest.mark.parametrize(
    "kind", [pa.string(), pa.large_string(), pa.dictionary(pa.int32(), pa.string())]
)
def test_parquet_label_columns_of_every_string_kind(
    tmp_path: Path, prom: list[bytes], kind: pa.DataType
) -> None:
    table = to_long(prom)
    labels = [f.name for f in table.schema if pa.types.is_string(f.type)]
    table = table.cast(
        pa.schema(pa.field(f.name, kind) if f.name in labels else f for f in table.schema)
    )
    path = tmp_path / "t.parquet"
    pq.write_table(table, path, row_group_size=300)
    replay([path], tmp_path / "out")
    engine = gpuledger.Engine(gpuledger.Config())
    engine.push_arrow(table, source=str(path))
    want = engine.finish().gpu_windows.num_rows
    got = sum(
        pa.ipc.open_file(f).read_all().num_rows
        for f in (tmp_path / "out" / "gpu_windows").rglob("*.arrow")
    )
    assert want > 0
    assert got == want


def test_output_directory_must_be_empty(tmp_path: Path, prom: list[bytes]) -> None:
    path = write_bytes(tmp_path / "a.jsonl", lines(prom[:10]))
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "x").write_text("")
    with pytest.raises(ReplayError, match="not empty"):
        replay([path], tmp_path / "out")
    with pytest.raises(ReplayInputError, match="no such file"):
        replay([tmp_path / "missing.jsonl"], tmp_path / "out3")


# --- progress and summary ------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_progress_line_on_a_terminal() -> None:
    out, clock = io.StringIO(), FakeClock()
    p = Progress(out, clock=clock, tty=True, interval=0.25, width=10)
    p.start(2, 4 << 30)
    assert out.getvalue() == ""
    clock.t += 10
    p.update(5_000_000, 1 << 30)
    first = out.getvalue()
    assert first.startswith("\r[##........]  25% 5,000,000 events 500,000/s")
    assert "1.0 GiB/4.0 GiB ETA 0:00:30" in first
    clock.t += 0.1
    p.update(6_000_000, 2 << 30)  # within the interval: not redrawn
    assert out.getvalue() == first
    clock.t += 0.2
    p.update(6_000_000, 2 << 30)
    assert out.getvalue().count("\r") == 2 and "ETA 0:00:10" in out.getvalue()
    p.finish(8_000_000, 4 << 30)
    assert out.getvalue().endswith(
        "replay: 8,000,000 events, 4.0 GiB in 10.3 s (776,699 events/s)\n"
    )


def test_progress_is_quiet_when_not_a_terminal() -> None:
    out, clock = io.StringIO(), FakeClock()
    p = Progress(out, clock=clock)  # StringIO is no terminal
    p.start(1, 1000)
    for i in range(100):
        clock.t += 1
        p.update(i, i)
    p.finish(100, 1000)
    assert out.getvalue().splitlines() == [
        "replay: 1 file(s), 1000 B",
        "replay: 100 events, 1000 B in 100.0 s (1 events/s)",
    ]


def test_summary_content(tmp_path: Path, prom: list[bytes]) -> None:
    tel = write_bytes(tmp_path / "t.jsonl", lines(prom))
    lat = write_bytes(tmp_path / "r.jsonl", lines(requests()))
    s = replay([tel, lat], tmp_path / "out", chunk_bytes=SMALL_CHUNK, flush_bytes=SMALL_CHUNK)
    gpu = read_table(tmp_path / "out", "gpu_windows")
    assert gpu is not None
    idle = {}
    for r in gpu.to_pylist():
        key = (r["team"], r["namespace"], r["pod"])
        idle[key] = idle.get(key, 0.0) + r["idle_cost_usd"]
    top = sorted(idle.items(), key=lambda kv: -kv[1])[:5]
    assert [(r["team"], r["namespace"], r["pod"]) for r in s.top_idle] == [k for k, _ in top]
    assert [r["idle_cost_usd"] for r in s.top_idle] == pytest.approx([v for _, v in top])
    svc = read_table(tmp_path / "out", "service_cost_windows")
    assert svc is not None
    head = {r["service"]: 0.0 for r in svc.to_pylist()}
    for r in svc.to_pylist():
        head[r["service"]] += r["headroom_cost_usd"]
    assert {r["service"]: r["headroom_cost_usd"] for r in s.top_headroom} == pytest.approx(head)
    assert s.windows == 10 and s.rows["gpu_windows"] == 80
    text = s.render()
    for part in ("events", "windows 10", "dead letters 0", "top idle cost", "top headroom cost"):
        assert part in text
    assert "notebook-forgotten" in text and "chat" in text
    d = json.loads(s.to_json())
    assert d["events"] == len(prom) + len(requests()) and d["late"] == 0
    assert d["top_idle"][0]["idle_cost_usd"] == pytest.approx(top[0][1])


def test_summary_counts_the_smallest_window_only(tmp_path: Path, prom: list[bytes]) -> None:
    cfg = gpuledger.Config.from_dict({"engine": {"window_s": [60, 300]}})
    path = write_bytes(tmp_path / "t.jsonl", lines(prom))
    two = replay([path], tmp_path / "a", config=cfg)
    one = replay([path], tmp_path / "b")
    assert two.rows["gpu_windows"] == 80 + 16
    assert [r["pod"] for r in two.top_idle] == [r["pod"] for r in one.top_idle]
    costs = [r["idle_cost_usd"] for r in two.top_idle]
    assert costs == pytest.approx([r["idle_cost_usd"] for r in one.top_idle])


# --- CLI --------------------------------------------------------------------------------------


def test_cli_replay(tmp_path: Path, prom: list[bytes]) -> None:
    path = write_bytes(tmp_path / "t.jsonl.gz", lines(prom), "gzip")
    cfg = tmp_path / "g.toml"
    cfg.write_text(
        '[prices]\ndefault = 3.0\n[engine]\nwindow_s = [300]\n[output]\nformat = "parquet"\n'
    )
    runner = CliRunner()
    res = runner.invoke(
        replay_command,
        [str(path), "--out", str(tmp_path / "out"), "--config", str(cfg), "--json-summary"],
    )
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["events"] == len(prom) and summary["rows"]["gpu_windows"] == 16
    assert list((tmp_path / "out").glob("gpu_windows/*/*/*.parquet"))
    gpu = read_table(tmp_path / "out", "gpu_windows")
    assert gpu is not None and set(gpu.column("price_usd_per_gpu_hour").to_pylist()) == {3.0}
    assert res.stderr.startswith("replay: 1 file(s)")  # not a terminal: start and end lines

    res = runner.invoke(
        replay_command,
        [
            str(path),
            "--out",
            str(tmp_path / "out2"),
            "--output-format",
            "arrow",
            "--format",
            "prom_json",
        ],
    )
    assert res.exit_code == 0 and "top idle cost" in res.stdout
    assert list((tmp_path / "out2").glob("gpu_windows/*/*/*.arrow"))

    res = runner.invoke(replay_command, [str(path), "--out", str(tmp_path / "out2")])
    assert res.exit_code == 1 and "not empty" in res.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text("[engine]\nwindow_s = [0]\n")
    res = runner.invoke(
        replay_command, [str(path), "--out", str(tmp_path / "o3"), "--config", str(bad)]
    )
    assert res.exit_code == 1 and "engine.window_s[0]" in res.stderr


# --- memory -------------------------------------------------------------------------------------

MEMORY_CEILING_MIB = 1024  # docs/replay.md: typical 170-320 MiB
"""docs/replay.md: a replay's peak RSS stays below this, whatever the input's size."""
BIG_BYTES = int(float(os.environ.get("GPULEDGER_REPLAY_BIG_BYTES", 2.2e9)))


def write_big_prom_json(path: Path, target_bytes: int, gpus: int = 256) -> tuple[int, int]:
    """prometheus-kafka-adapter lines for `gpus` GPUs, one second after another, written
    zstd-compressed by repeating one encoded second with its timestamp replaced. Returns
    the uncompressed size and the number of lines."""
    parts = []
    for g in range(gpus):
        lab = (
            f'"gpu":"{g % 8}","UUID":"GPU-{g:08x}-d9cf-fef3-62e9-000000000000",'
            f'"device":"nvidia{g % 8}","modelName":"NVIDIA H100 80GB HBM3",'
            f'"Hostname":"node-{g // 8}","namespace":"team-{g % 5}","pod":"pod-{g // 2}",'
            f'"container":"main"'
        )
        u = (g * 37 % 100) / 100
        for name, value in (
            ("DCGM_FI_PROF_GR_ENGINE_ACTIVE", f"{u:.3f}"),
            ("DCGM_FI_DEV_POWER_USAGE", f"{80 + 600 * u:.1f}"),
        ):
            parts.append(
                f'{{"timestamp":"@TIMESTAMP@@@@@@@@@@","value":"{value}","name":"{name}",'
                f'"labels":{{"__name__":"{name}",{lab}}}}}\n'
            )
    block = "".join(parts).encode()
    written, t = 0, START
    raw = pa.OSFile(str(path), "wb")
    out = pa.CompressedOutputStream(raw, "zstd")
    while written < target_bytes:
        out.write(block.replace(b"@TIMESTAMP@@@@@@@@@@", _rfc(t).encode()))
        written += len(block)
        t += 1
    out.close()
    return written, (t - START) * len(parts)


def test_replay_of_gigabytes_stays_under_the_memory_ceiling(tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl.zst"
    size, events = write_big_prom_json(path, BIG_BYTES)
    code = "from gpuledger.cli.replay import replay_command; replay_command()"
    cmd = [sys.executable, "-c", code, str(path), "--out", str(tmp_path / "out"), "--json-summary"]
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO)
    assert proc.stdout is not None and proc.stderr is not None
    out, err = proc.stdout.read(), proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - started
    assert proc.returncode == 0, err.decode()
    summary = json.loads(out)
    peak_mib = usage.ru_maxrss / 1024  # KiB on Linux
    print(
        f"\nreplay of {size / 1e9:.2f} GB (zstd) in {seconds:.1f} s, "
        f"{summary['events_per_s']:,.0f} events/s, peak RSS {peak_mib:.0f} MiB"
    )
    assert summary["events"] == events == summary["aggregated"]
    assert summary["dead_letters"] == 0 and summary["late"] == 0
    assert peak_mib < MEMORY_CEILING_MIB
