"""`[run] engines = 2` against a real broker (docs/daemon.md, "Engines: several cores"): on
topics keyed by GPU and service the daemon's gpu_windows, latency_windows and idle_streaks
rows equal `gpuledger replay` of the same files with no combining, its dead letters
equal an `engines = 1` daemon's, and its pool and service rows combine into replay's; on
unkeyed topics its partial rows combine into replay's (the columns docs/scale-out.md calls
exact); a SIGTERM stops it cleanly with its final windows written, and a restart finishes
the rest exactly once; a SIGKILL loop loses and repeats nothing."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from click.testing import CliRunner
from daemon_harness import (
    APPROXIMATE_WHEN_COMBINED,
    ContinuousProducer,
    DaemonPool,
    Trace,
    assert_counters_reconcile,
    assert_same_tables,
    assert_tables_close,
    combine,
    daemon_config,
    daemon_pool,
    engine_settings,
    make_topics,
    read_output,
    toml_dumps,
    trace_start,
    unique_name,
)

from gpuledger.cli import main
from gpuledger.output.combine import KEYS
from gpuledger.output.sink import read_table

pytestmark = pytest.mark.kafka

PARTITIONS = 4
WINDOWS = ("gpu_windows", "pool_windows", "latency_windows", "service_cost_windows")
SETTINGS: dict[str, Any] = {
    "engine": {
        "window_s": [60],
        "allowed_lateness_s": 10,
        "idle_timeout_s": 2,
        "max_future_s": 1e10,  # the simulated days are in the past of the Kafka timestamps
    },
    "idle": {"ttl_s": 300},
    "prices": {"NVIDIA H100 80GB HBM3": 4.5, "NVIDIA A100-SXM4-80GB": 3.0, "NVIDIA L40S": 1.2},
    "services": {
        "chat-llm": {"slo_latency_ms": 200.0, "slo_target": 0.95},
        # An engine holding a serving pod's GPUs but not its requests still knows its service.
        "pods": [
            {"namespace": "team-chat", "pattern": "vllm-chat-*", "service": "chat-llm"},
            {"namespace": "team-assist", "pattern": "assist-*", "service": "assist-llm"},
        ],
    },
}
# Columns docs/scale-out.md does not call exact for partial rows of unkeyed topics (a GPU's
# readings spread over engines): quantiles of partial samples, power and energy counters.
APPROXIMATE_UNKEYED = {
    "gpu_windows": ("util_p50", "util_p95", "power_mean_w", "energy_j"),
    "latency_windows": (
        "ttft_p50_ms",
        "ttft_p95_ms",
        "ttft_p99_ms",
        "rate_p99_rps",
        "peak_to_mean",
    ),
    **APPROXIMATE_WHEN_COMBINED,
}
BAD_LINES = [
    b"not json at all",
    b'{"timestamp":"yesterday","value":"1","name":"DCGM_FI_PROF_GR_ENGINE_ACTIVE","labels":{}}',
]


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[DaemonPool]:
    yield from daemon_pool(tmp_path)


def replay_of(root: Path, telemetry: Path, requests: Path) -> dict[str, pa.Table]:
    """`gpuledger replay` of the files with the daemons' settings: every window table."""
    config = root / "gpuledger.toml"
    config.write_text(toml_dumps(SETTINGS))
    out = root / f"replay-{telemetry.stem}"
    r = CliRunner().invoke(
        main,
        [
            "replay",
            str(telemetry),
            str(requests),
            "--out",
            str(out),
            "--config",
            str(config),
            "--no-progress",
        ],
    )
    assert r.exit_code == 0, r.output
    replay = {name: read_table(out, name) for name in (*WINDOWS, "idle_streaks")}
    assert all(replay[name].num_rows for name in WINDOWS)
    return replay


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A 10-minute mixed fleet (16 GPUs) with bad lines, as files, and `gpuledger replay` of
    those files."""
    root = tmp_path_factory.mktemp("engines")
    sim = root / "sim"
    r = CliRunner().invoke(
        main,
        ["simulate", "--scenario", "mixed", "--duration", "10m", "--gpus", "16", "--out", str(sim)],
    )
    assert r.exit_code == 0, r.output
    telemetry = sim / "telemetry.jsonl"
    lines = telemetry.read_bytes().splitlines()
    # Bad lines early, in the middle and at the end. (No late reading: whether one is late in
    # the daemon depends on when its engine's empty partitions are marked idle, i.e. on wall
    # clock, which docs/daemon.md's ordering assumption rules out.)
    lines[100:100] = BAD_LINES
    lines[len(lines) // 2 : len(lines) // 2] = BAD_LINES
    telemetry.write_bytes(b"\n".join([*lines, *BAD_LINES]) + b"\n")
    return {"sim": sim, "replay": replay_of(root, telemetry, sim / "requests.jsonl")}


def produce(bootstrap: str, make_topic: Any, sim: Path, *, keyed: bool) -> dict[str, str]:
    topics = {
        "telemetry": make_topic(partitions=PARTITIONS),
        "latency": make_topic(partitions=PARTITIONS),
    }
    for file, topic, key in (
        ("telemetry.jsonl", topics["telemetry"], "gpu" if keyed else "none"),
        ("requests.jsonl", topics["latency"], "service" if keyed else "none"),
    ):
        r = CliRunner().invoke(
            main,
            [
                "produce",
                str(sim / file),
                "--topic",
                topic,
                "--bootstrap",
                bootstrap,
                "--key-by",
                key,
            ],
        )
        assert r.exit_code == 0, r.output
    return topics


def config(
    bootstrap: str, topics: Mapping[str, str], out: Path, engines: int, group: str = ""
) -> dict[str, Any]:
    return {
        **SETTINGS,
        "kafka": {"bootstrap_servers": bootstrap, "group_id": group or unique_name("engines")},
        "topics": {
            "telemetry": topics["telemetry"],
            "telemetry_format": "prom_json",
            "latency": topics["latency"],
        },
        "output": {"dir": str(out), "format": "arrow"},
        "observability": {"metrics_port": 0, "log_format": "json", "status_interval_s": 1.0},
        "run": {"engines": engines, "flush_interval_s": 0.5, "batch_messages": 2_000},
    }


def engines_of(daemon: Any) -> list[int]:
    return [e.get("engines") for e in daemon.named("assigned") if e.get("partitions")]


def keys_twice(table: pa.Table, name: str) -> int:
    """Keys with more than one row: partial rows (0 when every row is final)."""
    if table.num_rows == 0:
        return 0
    counts = table.group_by(list(KEYS[name])).aggregate([([], "count_all")])
    return int(pc.sum(pc.greater(counts["count_all"], 1)).as_py() or 0)


def writers(out: Path, table: str) -> set[str]:
    return {p.name.rsplit("-", 1)[-1].split(".")[0] for p in (out / table).rglob("*.arrow")}


def test_two_engines_on_keyed_topics_write_final_rows_equal_to_replay(
    kafka_bootstrap: str,
    make_topic: Any,
    daemons: DaemonPool,
    simulated: dict[str, Any],
    tmp_path: Path,
) -> None:
    topics = produce(kafka_bootstrap, make_topic, simulated["sim"], keyed=True)
    outs = {n: tmp_path / f"engines-{n}" for n in (1, 2)}
    runs = {
        n: daemons.start(
            config(kafka_bootstrap, topics, outs[n], n), name=f"engines-{n}", until_eof=True
        )
        for n in (1, 2)
    }
    for d in runs.values():
        d.run_to_exit(180)
        assert_counters_reconcile(d.stopped())
    assert engines_of(runs[2]) == [2] and engines_of(runs[1]) == [1]
    got = {
        n: {**read_output(out), "idle_streaks": read_table(out, "idle_streaks")}
        for n, out in outs.items()
    }
    replay = simulated["replay"]

    # Every GPU and every service in one engine: final rows, nothing to combine.
    for name in ("gpu_windows", "latency_windows"):
        assert got[2][name].num_rows and keys_twice(got[2][name], name) == 0, name
    assert_same_tables(
        got[2],
        replay,
        tables=("gpu_windows", "latency_windows", "idle_streaks"),
        label="engines=2 vs replay",
    )
    assert_same_tables(
        got[1], replay, tables=(*WINDOWS, "idle_streaks"), label="engines=1 vs replay"
    )
    # Bad rows (the replay's name their file, the daemons their topic): each once.
    assert got[2]["dead_letters"].num_rows == 3 * len(BAD_LINES)
    assert_same_tables(
        got[2], got[1], tables=("late_events", "dead_letters"), label="engines 2 vs 1"
    )
    # Pools and services hold GPUs of both engines: partial rows, combined exactly.
    assert keys_twice(got[2]["pool_windows"], "pool_windows") > 0
    assert len(writers(outs[2], "gpu_windows")) == 2
    combined = combine(got[2])
    assert combined is not None
    assert_same_tables(
        combined,
        replay,
        tables=("gpu_windows", "pool_windows", "latency_windows"),
        label="combined engines=2 vs replay",
    )
    assert_tables_close(
        combined,
        replay,
        tables=("service_cost_windows",),
        exclude=APPROXIMATE_WHEN_COMBINED,
        label="combined service rows",
    )
    daemons.assert_json_logs()


def test_two_engines_on_unkeyed_topics_combine_into_replay(
    kafka_bootstrap: str,
    make_topic: Any,
    daemons: DaemonPool,
    simulated: dict[str, Any],
    tmp_path: Path,
) -> None:
    # The simulated GPUs send both GR_ENGINE_ACTIVE and GPU_UTIL: an engine that receives only
    # a GPU's GPU_UTIL readings of a window uses them, and the combined row mixes the two
    # signals (docs/scale-out.md, gpu_windows). Here every GPU sends one signal.
    sim = tmp_path / "sim"
    sim.mkdir()
    lines = (simulated["sim"] / "telemetry.jsonl").read_bytes().splitlines()
    util = b'"name":"DCGM_FI_DEV_GPU_UTIL"'
    (sim / "telemetry.jsonl").write_bytes(b"\n".join(x for x in lines if util not in x) + b"\n")
    (sim / "requests.jsonl").write_bytes((simulated["sim"] / "requests.jsonl").read_bytes())
    replay = replay_of(tmp_path, sim / "telemetry.jsonl", sim / "requests.jsonl")
    topics = produce(kafka_bootstrap, make_topic, sim, keyed=False)
    out = tmp_path / "engines-2"
    d = daemons.start(config(kafka_bootstrap, topics, out, 2), name="unkeyed", until_eof=True)
    d.run_to_exit(180)
    assert_counters_reconcile(d.stopped())
    assert engines_of(d) == [2]
    got = read_output(out)
    # Readings of one GPU reach both engines: partial rows, as with two group members.
    assert keys_twice(got["gpu_windows"], "gpu_windows") > 0
    assert got["dead_letters"].num_rows == 3 * len(BAD_LINES)
    combined = combine(got)
    assert combined is not None
    assert_tables_close(
        combined,
        replay,
        tables=WINDOWS,
        exclude=APPROXIMATE_UNKEYED,
        label="combined engines=2 vs replay",
    )


def test_sigterm_with_two_engines_writes_final_windows_and_a_restart_the_rest(
    kafka_bootstrap: str,
    make_topic: Any,
    daemons: DaemonPool,
    simulated: dict[str, Any],
    tmp_path: Path,
) -> None:
    topics = produce(kafka_bootstrap, make_topic, simulated["sim"], keyed=True)
    out = tmp_path / "out"
    cfg = config(kafka_bootstrap, topics, out, 2, group=unique_name("sigterm"))
    first = daemons.start(cfg, name="streaming")
    first.wait_caught_up(60, min_consumed=1)
    # Windows close once the latency partitions no service is keyed to are marked idle
    # (idle_timeout_s of wall clock); the newest stay open until the quiet close, 12 s later.
    deadline = time.monotonic() + 60
    while not read_table(out, "gpu_windows").num_rows:
        assert time.monotonic() < deadline and first.alive(), first.log_tail()
        time.sleep(0.2)
    assert first.stop(timeout=20) == 0, first.log_tail()
    stopped = first.stopped()
    assert stopped.get("exit_code") == 0
    assert_counters_reconcile(stopped)
    assert first.named("stopping") and engines_of(first) == [2]
    written = read_table(out, "gpu_windows")
    assert written.num_rows, "no windows written before the stop"
    # Stopped while the stream is open: the windows the watermark passed are written, the
    # newest stay open (their events are above the committed offsets).
    newest = pc.max(written["window_end"]).as_py()
    assert newest < pc.max(simulated["replay"]["gpu_windows"]["window_end"]).as_py()

    second = daemons.start(cfg, name="restart", until_eof=True)
    second.run_to_exit(180)
    # Two slots again; in a slot, latency partitions no service is keyed to have no checkpoint
    # (nothing was read from them) and get an engine of their own: two to four engines.
    [restarted] = engines_of(second)
    assert 2 <= restarted <= 4
    got = {**read_output(out), "idle_streaks": read_table(out, "idle_streaks")}
    # Every row once: nothing the first run wrote is written again.
    assert keys_twice(got["gpu_windows"], "gpu_windows") == 0
    assert_same_tables(
        got,
        simulated["replay"],
        tables=("gpu_windows", "latency_windows"),
        label="stop + restart vs replay",
    )
    assert got["dead_letters"].num_rows == 3 * len(BAD_LINES)
    combined = combine(got)
    assert combined is not None
    assert_same_tables(
        combined, simulated["replay"], tables=("pool_windows",), label="combined pools"
    )
    daemons.assert_json_logs()


def test_sigkill_loop_with_two_engines_writes_every_row_once(
    kafka_bootstrap: str, make_topic: Any, daemons: DaemonPool, tmp_path: Path
) -> None:
    """Guarantee 1 with `engines = 2` (batches pushed while the next is consumed): SIGKILLs at
    random moments while a producer writes, restarts, a final drain; the rows equal one
    uninterrupted `engines = 1` run's: the keyed tables as they are, pools and services once
    combined."""
    topics = make_topics(make_topic)  # telemetry keyed by GPU, requests by service
    trace = Trace(trace_start(), bad_every_s=20)
    settings = engine_settings()
    out = tmp_path / "out-crashed"
    cfg = daemon_config(
        bootstrap=kafka_bootstrap,
        group=unique_name("crash-engines"),
        topics=topics,
        out_dir=out,
        settings=settings,
        client={"session.timeout.ms": 6000},
    )
    cfg["kafka"]["instance_id"] = "crash-engines-member"
    cfg["run"]["engines"] = 2
    producer = ContinuousProducer(kafka_bootstrap, topics, trace, duration_s=20.0, speed=5.0)
    rng = random.Random(20261207)
    producer.start()
    kills = flushed_before_kill = 0
    while kills < 6 or producer.is_alive():
        d = daemons.start(cfg, name=f"killed-{kills}")
        d.wait_for_event("assigned", 30)
        time.sleep(rng.uniform(0.5, 3.0))
        assert d.alive(), f"run {kills} exited on its own ({d.poll()}):\n{d.log_tail()}"
        d.sigkill()
        flushed_before_kill += bool(d.named("flushed"))
        kills += 1
        assert kills <= 30
    delivered = producer.finish()
    assert flushed_before_kill >= 2, f"only {flushed_before_kill} of {kills} kills after a flush"
    drain = daemons.start(cfg, name="drain", until_eof=True)
    drain.run_to_exit(60)
    assert_counters_reconcile(drain.stopped())

    ref_out = tmp_path / "out-uninterrupted"
    ref_cfg = daemon_config(
        bootstrap=kafka_bootstrap,
        group=unique_name("crash-engines-ref"),
        topics=topics,
        out_dir=ref_out,
        settings=settings,
    )
    ref = daemons.start(ref_cfg, name="uninterrupted", until_eof=True)
    ref.run_to_exit(60)
    assert assert_counters_reconcile(ref.stopped())["consumed"] == len(delivered)
    crashed, uninterrupted = read_output(out), read_output(ref_out)
    assert_same_tables(
        crashed,
        uninterrupted,
        tables=("gpu_windows", "latency_windows", "late_events", "dead_letters"),
        label=f"engines=2 after {kills} SIGKILLs vs uninterrupted",
    )
    combined = combine(crashed)
    assert combined is not None
    assert_tables_close(
        combined,
        uninterrupted,
        tables=("pool_windows", "service_cost_windows"),
        exclude=APPROXIMATE_WHEN_COMBINED,
        label="combined pools and services",
    )
