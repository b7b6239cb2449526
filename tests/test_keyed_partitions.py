"""Keyed partitions (docs/scale-out.md, "Keyed partitions"): `gpuledger simulate --kafka` keys
telemetry by GPU UUID and requests by service; three `gpuledger run` members of one consumer
group over those topics write final gpu_windows and latency_windows rows (no key in two
members' output, nothing to combine), late events and dead letters once each; the pool rows,
whose keys span GPUs of several partitions, combine into one uninterrupted run's exactly."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from click.testing import CliRunner
from daemon_harness import (
    DaemonPool,
    Topics,
    assert_same_tables,
    concat_outputs,
    daemon_config,
    daemon_pool,
    engine_settings,
    read_output,
    trace_start,
    unique_name,
)

from gpuledger.cli.simulate import simulate_command
from gpuledger.combine import combine_tables
from gpuledger.tables import KEYED_TABLES

pytestmark = pytest.mark.kafka

MEMBERS = 3
PARTITIONS = 6


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[DaemonPool]:
    yield from daemon_pool(tmp_path)


def current_assignment(member: Any) -> set[str]:
    """The "topic:partition"s a member holds after its last assignment or revocation."""
    held: set[str] = set()
    for e in member.read_events():
        if e.get("event") == "assigned":
            held = set(e.get("partitions", []))
        elif e.get("event") == "revoked":
            held = set()
    return held


def before(tables: dict[str, pa.Table], end: Any) -> dict[str, pa.Table]:
    """The window tables' rows of windows ending by `end`; the other tables as they are."""
    out = {}
    for name, table in tables.items():
        if name in KEYED_TABLES and table.num_rows:
            table = table.filter(pc.less_equal(table["window_end"], end))
        out[name] = table
    return out


def keys_of(table: pa.Table, name: str) -> set[tuple[Any, ...]]:
    if table.num_rows == 0:  # a member without rows of the table reads as no columns
        return set()
    columns = [table.column(k).to_pylist() for k in KEYED_TABLES[name]]
    return set(zip(*columns, strict=True))


def test_three_members_on_keyed_topics_write_final_rows(
    kafka_bootstrap: str, make_topic: Any, daemons: DaemonPool, tmp_path: Path
) -> None:
    topics = Topics(
        telemetry=make_topic(partitions=PARTITIONS),
        latency=make_topic(partitions=PARTITIONS),
        dead_letter="",
    )
    settings = engine_settings()
    group = unique_name("keyed")

    def cfg(out: Path, group: str = group) -> dict[str, Any]:
        return daemon_config(
            bootstrap=kafka_bootstrap, group=group, topics=topics, out_dir=out, settings=settings
        )

    outs = [tmp_path / f"member-{i}" for i in range(MEMBERS)]
    members = [daemons.start(cfg(out), name=f"member-{i}") for i, out in enumerate(outs)]
    # Every member holds partitions before anything is produced: no rebalance mid-data.
    deadline = time.monotonic() + 60
    while True:
        held = [current_assignment(m) for m in members]
        if all(held) and sum(map(len, held)) == 2 * PARTITIONS:
            break
        assert time.monotonic() < deadline, f"assignments did not settle: {held}"
        time.sleep(0.2)
    assert all(not (a & b) for i, a in enumerate(held) for b in held[i + 1 :])

    r = CliRunner().invoke(
        simulate_command,
        [
            "--scenario",
            "mixed",
            "--start",
            str(trace_start()),
            "--duration",
            "4m",
            "--gpus",
            "24",
            "--kafka",
            kafka_bootstrap,
            "--telemetry-topic",
            topics.telemetry,
            "--latency-topic",
            topics.latency,
        ],
    )
    assert r.exit_code == 0, r.output
    for m in members:
        m.wait_caught_up(60, min_consumed=1)
    # Windows close once the partitions without data (requests keyed to other members'
    # partitions) are marked idle, idle_timeout_s of wall clock after assignment: wait for
    # each member's first written windows, or a fast machine stops them before any.
    for m in members:
        m.wait_for_event("flushed", 60)
    for m in members:
        assert m.stop(timeout=20) == 0, m.log_tail()

    ref_out = tmp_path / "uninterrupted"
    ref = daemons.start(cfg(ref_out, unique_name("ref")), name="ref", until_eof=True)
    ref.run_to_exit(120)
    parts = [read_output(out) for out in outs]
    logs = "\n".join(m.log_tail() for m in members)
    assert sum(p["gpu_windows"].num_rows > 0 for p in parts) == MEMBERS, (
        f"a member wrote nothing:\n{logs}"
    )
    # Stopped members keep their last open windows for the next run (docs/daemon.md), the
    # draining reference closes every window: compare the windows every member closed.
    closed_through = min(pc.max(p["gpu_windows"]["window_end"]).as_py() for p in parts)
    parts = [before(p, closed_through) for p in parts]
    want = before(read_output(ref_out), closed_through)

    # Final rows: a GPU's and a service's key is in one member's output only.
    for name in ("gpu_windows", "latency_windows"):
        seen: set[tuple[Any, ...]] = set()
        for p in parts:
            mine = keys_of(p[name], name)
            assert len(mine) == p[name].num_rows, f"{name}: a member wrote a key twice"
            assert not (seen & mine), f"{name}: keys in two members' output"
            seen |= mine
        assert seen, f"{name} is empty"
    together = concat_outputs(*parts)
    assert_same_tables(
        together,
        want,
        tables=("gpu_windows", "latency_windows", "late_events", "dead_letters"),
        label="members vs uninterrupted",
    )
    # Pools group GPUs of several partitions: partial rows, merged exactly.
    combined = combine_tables(together)
    pool_keys = [(k, "ascending") for k in KEYED_TABLES["pool_windows"]]
    assert (
        combined["pool_windows"].to_pylist() == want["pool_windows"].sort_by(pool_keys).to_pylist()
    )
