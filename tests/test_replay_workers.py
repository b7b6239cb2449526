"""`replay --workers N` (docs/scale-out.md "All cores, one machine"): N engines sharing the input
by GPU write exactly the rows one engine writes, every table, bit for bit, on a fleet with
requests, idle streaks, late and duplicate readings and bad rows, in JSON lines, Parquet and
CSV; the replays that cannot be split say so and run one engine; bad settings are errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from test_replay import START, lines, normalized, requests, to_long, write_bytes

from gpuledger import shards
from gpuledger.cli.replay import replay_command
from gpuledger.cli.simulate import simulate_command
from gpuledger.config import load_config
from gpuledger.errors import InputError
from gpuledger.output.sink import read_table
from gpuledger.replay import ReplayError, replay
from gpuledger.replay import run as run_module
from gpuledger.simulate.small_fleet import default_fleet, prom_json_messages
from gpuledger.tables import TABLES

SMALL_CHUNK = 64 << 10
IDLE_CONFIG = """
[engine]
window_s = [60]
allowed_lateness_s = 20
[idle]
threshold = 0.5
ttl_s = 120
"""


@pytest.fixture(scope="module")
def telemetry() -> list[bytes]:
    """Ten minutes of the small fleet, then trouble: readings replayed from the start (late
    for the watermark, duplicates of what was aggregated), bad lines and blank values."""
    good = list(prom_json_messages(default_fleet(), START, 600))
    bad = [
        b'{"bad": 1}',
        b"not json at all",
        json.dumps(
            {
                "name": "DCGM_FI_PROF_GR_ENGINE_ACTIVE",
                "timestamp": "2026-11-28T12:05:00Z",
                "value": "-3",
                "labels": {"UUID": "GPU-bad-value", "gpu": "0", "Hostname": "h"},
            }
        ).encode(),
        json.dumps(
            {
                "name": "DCGM_FI_DEV_FB_USED",
                "timestamp": "2026-11-28T12:05:00Z",
                "value": "1e300",
                "labels": {"UUID": "GPU-blank", "gpu": "0", "Hostname": "h"},
            }
        ).encode(),
    ]
    return good[:6000] + bad + good[6000:] + good[:400]


def replay_all(paths: list[Path], out: Path, workers: int, config: Path | None = None) -> Path:
    cfg = load_config(str(config)) if config is not None else None
    summary = replay(
        paths, out, workers=workers, config=cfg, chunk_bytes=SMALL_CHUNK, flush_bytes=SMALL_CHUNK
    )
    assert summary.workers == workers
    (out / "summary.json").write_text(json.dumps(summary.stats, sort_keys=True))
    return out


def assert_same_output(got: Path, want: Path) -> dict[str, int]:
    """Every table under `got` equals the one under `want` bit for bit (rows sorted), and the
    counters are the same."""
    counts = {}
    for name in TABLES:
        a, b = read_table(got, name), read_table(want, name)
        if b is None or b.num_rows == 0:
            assert a is None or a.num_rows == 0, name
            continue
        assert a is not None, name
        x, y = normalized(a), normalized(b)
        assert x.schema.equals(y.schema), name
        if not x.equals(y):
            diff = [c for c in x.column_names if not x[c].equals(y[c])]
            raise AssertionError(f"{name}: {a.num_rows} vs {b.num_rows} rows; columns {diff}")
        counts[name] = b.num_rows
    got_stats = json.loads((got / "summary.json").read_text())
    assert got_stats == json.loads((want / "summary.json").read_text())
    return counts


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory, telemetry: list[bytes]) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("inputs")
    (tmp / "idle.toml").write_text(IDLE_CONFIG)
    write_bytes(tmp / "telemetry.jsonl", lines(telemetry))
    reqs = requests()
    bad_requests = [b'{"service": "chat", "latency_ms": "fast"}', b'{"ts": 1}']
    write_bytes(tmp / "requests.jsonl", lines(reqs[:1000] + bad_requests + reqs[1000:]))
    good = list(prom_json_messages(default_fleet(), START, 600))
    long = to_long(good + good[:400])  # late and duplicate readings at the end
    # Planted bad rows: no GPU, a value no field allows; both are dead letters by row number.
    bad_rows = long.slice(0, 2).to_pylist()
    bad_rows[0]["gpu"] = None
    bad_rows[1]["value"] = -7.0
    long = pa.concat_tables([long.slice(0, 3000), pa.Table.from_pylist(bad_rows, long.schema),
                             long.slice(3000)])  # fmt: skip
    pq.write_table(long, tmp / "telemetry.parquet", row_group_size=1000)
    csv_table = long.set_column(0, "ts", long.column("ts").cast(pa.int64()))
    pacsv.write_csv(csv_table, tmp / "telemetry.csv")
    with pa.ipc.new_file(str(tmp / "telemetry.arrow"), long.schema) as writer:  # Arrow IPC
        writer.write_table(long, max_chunksize=1000)
    pq.write_table(pa.Table.from_pylist([json.loads(m) for m in reqs]), tmp / "requests.parquet")
    sim = CliRunner().invoke(
        simulate_command,
        ["--duration", "20m", "--gpus", "16", "--out", str(tmp / "sim"), "--format", "parquet"],
    )
    assert sim.exit_code == 0, sim.output
    found = {p.name: p for p in tmp.iterdir()}
    found |= {f"sim/{p.name}": p for p in (tmp / "sim").iterdir()}
    return found


@pytest.mark.parametrize(
    ("telemetry_file", "requests_file"),
    [
        ("telemetry.jsonl", "requests.jsonl"),
        ("telemetry.parquet", "requests.parquet"),
        ("telemetry.csv", "requests.jsonl"),
        ("telemetry.arrow", "requests.parquet"),
        # The simulator's mixed fleet: pools and services span GPUs of several shards, so a
        # sum in another order than the engine's would show in the last bits.
        ("sim/telemetry.parquet", "sim/requests.parquet"),
    ],
)
def test_workers_write_one_engines_rows_bit_for_bit(
    tmp_path: Path, files: dict[str, Path], telemetry_file: str, requests_file: str
) -> None:
    inputs = [files[telemetry_file], files[requests_file]]
    config = files["idle.toml"]
    one = replay_all(inputs, tmp_path / "one", 1, config)
    for n in (2, 3):
        counts = assert_same_output(replay_all(inputs, tmp_path / f"w{n}", n, config), one)
        # The fleet really has every kind of row, so the comparison compares something.
        for table in ("gpu_windows", "pool_windows", "latency_windows", "service_cost_windows"):
            assert counts.get(table, 0) > 0, (n, table)
        # Parquet is read in batches of 65,536 rows: the whole file is one batch, read before
        # the watermark moves, so its replayed readings are duplicates, not late.
        if telemetry_file.startswith("sim/"):
            continue
        late = () if telemetry_file.endswith(".parquet") else ("late_events",)
        for table in ("idle_streaks", "dead_letters", *late):
            assert counts.get(table, 0) > 0, (n, table)


def test_every_shard_holds_gpus_and_pools_span_shards(files: dict[str, Path]) -> None:
    """The split is real: the fleet's GPUs land in both shards of two, and some pool has GPUs
    in both (so its row is merged, not copied)."""
    long = pq.read_table(files["telemetry.parquet"])
    shard = shards.shard_of_rows(long, 2).to_pylist()
    gpus = long["gpu"].to_pylist()
    by_shard: dict[int, set[str]] = {0: set(), 1: set()}
    for g, s in zip(gpus, shard, strict=True):
        if g is not None:
            by_shard[s].add(g)
            assert s == zlib.crc32(g.encode()) % 2 == shards.shard_of_gpu(g, 2)
    assert by_shard[0] and by_shard[1]
    models = {g.model for g in default_fleet()}
    assert any(
        {x.uuid for x in default_fleet() if x.model == m} & by_shard[k]
        for m in models
        for k in (0, 1)
    )
    null_gpu_rows = [s for g, s in zip(gpus, shard, strict=True) if g is None]
    assert null_gpu_rows == [0]


def test_shard_of_rows_refuses_unreadable_batches() -> None:
    with pytest.raises(InputError):
        shards.shard_of_rows(pa.table({"x": [1]}), 2)
    with pytest.raises(InputError, match="count"):
        shards.shard_of_rows(pa.table({"x": [1]}), 0)


def test_replays_that_cannot_be_split_run_one_engine_and_say_why(
    tmp_path: Path, files: dict[str, Path]
) -> None:
    (tmp_path / "agg.toml").write_text(
        '[[aggregations]]\nname = "by_ns"\ngroup_by = ["namespace"]\n'
        'field = "DCGM_FI_PROF_GR_ENGINE_ACTIVE"\nreducer = "mean"\n'
    )
    cfg = load_config(str(tmp_path / "agg.toml"))
    summary = replay([files["telemetry.jsonl"]], tmp_path / "out", workers=2, config=cfg)
    assert summary.workers == 1
    assert summary.one_worker_because is not None
    assert "aggregations" in summary.one_worker_because
    assert "one worker: custom [[aggregations]]" in summary.render()


def test_bad_worker_counts_are_errors(tmp_path: Path, files: dict[str, Path]) -> None:
    with pytest.raises(ReplayError, match="workers must be >= 1"):
        replay([files["telemetry.jsonl"]], tmp_path / "out", workers=0)
    r = CliRunner().invoke(
        replay_command,
        [str(files["telemetry.jsonl"]), "--out", str(tmp_path / "o"), "--workers", "0"],
    )
    assert r.exit_code == 2 and "--workers" in r.output


def test_cli_default_leaves_a_core_to_columnar_input(
    tmp_path: Path, files: dict[str, Path]
) -> None:
    """CSV and Parquet: one engine fewer than the usable cores (the reader takes one)."""
    cores = len(os.sched_getaffinity(0))
    for name in ("telemetry.csv", "telemetry.parquet"):
        r = CliRunner().invoke(
            replay_command, [str(files[name]), "--out", str(tmp_path / name), "--json-summary"]
        )
        assert r.exit_code == 0, r.output
        assert json.loads(r.stdout)["workers"] == max(1, cores - 1), name


@pytest.mark.parametrize(("cores", "engines"), [(1, 1), (2, 1), (4, 3)])
@pytest.mark.parametrize("name", ["telemetry.parquet", "telemetry.csv", "telemetry.arrow"])
def test_columnar_default_leaves_a_core_to_the_reader(
    tmp_path: Path,
    files: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
    cores: int,
    engines: int,
    name: str,
) -> None:
    """On two cores one engine plus the reader beat two engines for Parquet, CSV and Arrow IPC
    (docs/benchmarks.md): the default says so; --workers 2 still splits. JSON lines are not
    columnar and are not held to this rule (below)."""
    monkeypatch.setattr(run_module, "default_workers", lambda: cores)
    summary = replay([files[name]], tmp_path / "default")
    assert summary.workers == engines
    reason = "columnar input is read and split by GPU on a core of its own"
    assert (reason in summary.render()) == (cores == 2)
    assert replay([files[name]], tmp_path / "asked", workers=2).workers == 2


def test_json_lines_telemetry_runs_one_engine_unless_asked(
    tmp_path: Path, files: dict[str, Path]
) -> None:
    """Every worker would decode every JSON line: without --workers, one engine."""
    summary = replay([files["telemetry.jsonl"]], tmp_path / "default")
    assert summary.workers == 1 and summary.one_worker_because is None
    assert replay([files["telemetry.jsonl"]], tmp_path / "asked", workers=2).workers == 2


def test_ctrl_c_stops_every_worker(tmp_path: Path) -> None:
    """SIGINT during a long replay with two workers ends the process promptly (each worker
    finishes at most the chunk in hand), with the CLI's interrupt exit status."""
    big = tmp_path / "big.jsonl"
    with open(big, "wb") as f:  # about 150 MiB: a few seconds of work
        for minute in range(0, 8 * 60, 10):
            f.write(lines(list(prom_json_messages(default_fleet(), START + minute * 60, 600))))
    proc = subprocess.Popen(
        [sys.executable, "-m", "gpuledger", "replay", str(big), "--out", str(tmp_path / "out"),
         "--workers", "2", "--progress", "--chunk-mib", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        # SIGINT back to its default in the child: a runner started in the background (`&`
        # in a script) passes SIGINT down ignored, and Python then never raises
        # KeyboardInterrupt; that, not the replay, made this test fail on such a runner.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    assert proc.stderr is not None
    first = b""
    while b"events" not in first:  # the progress line has begun: the workers are at work
        piece = os.read(proc.stderr.fileno(), 256)
        assert piece, first
        first += piece
    time.sleep(0.2)
    assert proc.poll() is None, "the replay ended before the signal: make the input larger"
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, rest = proc.communicate(timeout=30)
    assert time.monotonic() - sent < 15
    err = first + rest
    assert proc.returncode in (1, 130, -signal.SIGINT), err
    assert b"events" not in out, "a summary after Ctrl-C: the replay ran to its end"
