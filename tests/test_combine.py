"""Combining the partial rows of scaled-out instances (gpuledger.output.combine,
`gpuledger combine`): two engines over disjoint partitions, combined, against one engine over
every partition. Exact columns must match; approximate ones must follow the rule
docs/scale-out.md states."""

from __future__ import annotations

import json
import random
import zlib
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import click
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from click.testing import CliRunner

import gpuledger
from gpuledger.cli.combine import combine_command
from gpuledger.output.combine import KEYS, CombineError, combine_dirs, combine_tables
from gpuledger.output.sink import ArrowSink, list_files, read_table
from gpuledger.simulate.small_fleet import default_fleet, prom_json_messages
from gpuledger.sketch import LatencySketch

START = 1_795_867_200  # 2026-11-28T12:00:00Z
SECONDS = 300
CONFIG = {
    "engine": {"window_s": [60, 300]},
    "prices": {"default": 2.0, "NVIDIA H100 80GB HBM3": 3.6},
    "services": {
        "chat": {"slo_latency_ms": 120.0, "slo_target": 0.9},
        "pods": [
            {"pattern": "vllm-chat-*", "service": "chat"},
            {"pattern": "ranker-*", "service": "search"},
        ],
    },
}
PODS = [
    ("team-chat", "vllm-chat-0"),
    ("team-chat", "vllm-chat-1"),
    ("team-search", "ranker-0"),
    ("team-search", "ranker-1"),
]
# Columns whose combination is approximate (docs/scale-out.md); every other one is exact.
APPROXIMATE = {
    "gpu_windows": {"util_p50", "util_p95"},
    "pool_windows": set(),  # exact: per-bucket demand is carried and merged
    "latency_windows": {"rate_p99_rps", "peak_to_mean", "ttft_p50_ms", "ttft_p95_ms"}
    | {"ttft_p99_ms", "latency_sketch"},  # the sketch's float sum may round differently
    "service_cost_windows": {"pods", "gpus"},
}

Tables = dict[str, pa.Table]
Row = dict[str, Any]


# --- the scenario: 8 GPUs and 4 serving pods, events spread over 4 partitions ---------------


def telemetry() -> list[bytes]:
    return list(prom_json_messages(default_fleet(), START, SECONDS))


def requests(n: int = 3000, seed: int = 1) -> list[bytes]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        namespace, pod = rng.choice(PODS)
        event = {
            "ts": START + rng.random() * SECONDS,
            "namespace": namespace,
            "pod": pod,
            "latency_ms": rng.lognormvariate(4.3, 0.6),
            "status": 503 if rng.random() < 0.03 else 200,
            "tokens_in": rng.randint(1, 500),
            "tokens_out": rng.randint(1, 200),
            "request_id": f"r{i}",
        }
        if rng.random() < 0.8:
            event["ttft_ms"] = rng.lognormvariate(3.0, 0.5)
        out.append(json.dumps(event).encode())
    return out


def by_gpu_second(message: bytes) -> int:
    """A partition per (GPU, second): a GPU's readings of one second stay together."""
    m = json.loads(message)
    return zlib.crc32((m["labels"]["UUID"] + m["timestamp"]).encode()) % 4


def by_message(message: bytes) -> int:
    """Any partition for any message, as an unkeyed producer does."""
    return zlib.crc32(message) % 4


def run(
    partitions: Iterable[int],
    *,
    split: Callable[[bytes], int] = by_gpu_second,
    config: Mapping[str, Any] = CONFIG,
) -> Tables:
    """One engine over `partitions` of the telemetry and request streams."""
    gpu, lat = telemetry(), requests()
    engine = gpuledger.Engine(gpuledger.Config.from_dict(dict(config)))
    for p in partitions:
        engine.push([m for m in gpu if split(m) == p], source="gpu-telemetry", partition=p)
        engine.push(
            [m for i, m in enumerate(lat) if i % 4 == p],
            format="latency_json",
            source="request-latency",
            partition=p,
        )
    return dict(engine.finish().tables)


def concat(*parts: Mapping[str, pa.Table]) -> Tables:
    return {n: pa.concat_tables([p[n] for p in parts]) for n in parts[0]}


@pytest.fixture(scope="module")
def whole() -> Tables:
    return run(range(4))


@pytest.fixture(scope="module")
def parts() -> tuple[Tables, Tables]:
    return run([0]), run([1, 2, 3])  # uneven, so that weights matter


@pytest.fixture(scope="module")
def combined(parts: tuple[Tables, Tables]) -> Tables:
    return combine_tables(concat(*parts))


def keyed(table: pa.Table, name: str) -> dict[tuple[Any, ...], Row]:
    rows: dict[tuple[Any, ...], Row] = {}
    for r in table.to_pylist():
        key = tuple(r[k] for k in KEYS[name])
        assert key not in rows, f"{name}: two rows for {key}"
        rows[key] = r
    return rows


def same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == pytest.approx(b, rel=1e-12, abs=1e-9)
    return bool(a == b)


def partial_rows(parts: tuple[Tables, Tables], name: str, key: tuple[Any, ...]) -> list[Row]:
    return [keyed(p[name], name)[key] for p in parts if key in keyed(p[name], name)]


# --- exact columns -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(KEYS))
def test_combined_parts_equal_one_engine_over_everything(
    name: str, whole: Tables, parts: tuple[Tables, Tables], combined: Tables
) -> None:
    got, want = keyed(combined[name], name), keyed(whole[name], name)
    assert combined[name].schema == whole[name].schema
    assert got.keys() == want.keys()
    # The scenario really has partial rows: most keys got a row from both engines.
    both = sum(len(partial_rows(parts, name, k)) == 2 for k in want)
    assert both >= len(want) * 3 // 4
    for key, row in want.items():
        for column, value in row.items():
            if column not in APPROXIMATE[name]:
                assert same(got[key][column], value), (name, key, column)


def test_unkeyed_telemetry_keeps_the_additive_columns_exact(whole: Tables) -> None:
    # A GPU's utilization and power readings of one second can reach different instances:
    # utilization stays exact; power, weighted by utilization samples, is approximate.
    a, b = run([0], split=by_message), run([1, 2, 3], split=by_message)
    got = keyed(combine_tables(concat(a, b))["gpu_windows"], "gpu_windows")
    want = keyed(whole["gpu_windows"], "gpu_windows")
    assert got.keys() == want.keys()
    exact = ["samples", "covered_s", "util_mean", "util_min", "util_max", "busy_gpu_s"]
    exact += ["idle_gpu_s", "cost_usd", "idle_cost_usd", "unallocated_cost_usd"]
    for key, row in want.items():
        for column in exact:
            assert same(got[key][column], row[column]), (key, column)
        assert got[key]["power_mean_w"] == pytest.approx(row["power_mean_w"], rel=0.05)


def test_coverage_stays_capped_at_the_window_length() -> None:
    # A 3 s sample interval for 1 s samples: the parts' covered time adds up to more than
    # the window, and the larger part alone is capped already.
    config = CONFIG | {"engine": {"window_s": [60], "sample_interval_s": 3.0}}
    whole = run(range(4), config=config)["gpu_windows"]
    a, b = run([0], config=config), run([1, 2, 3], config=config)
    got = keyed(combine_tables(concat(a, b))["gpu_windows"], "gpu_windows")
    for key, row in keyed(whole, "gpu_windows").items():
        assert row["covered_s"] == 60.0
        for column in ("covered_s", "busy_gpu_s", "idle_gpu_s", "cost_usd", "idle_cost_usd"):
            assert same(got[key][column], row[column]), (key, column)


# --- approximate columns follow their documented rule ------------------------------------------


def weighted(rows: list[Row], column: str, weight: str) -> float:
    used = [r for r in rows if r[column] is not None]
    return sum(r[column] * r[weight] for r in used) / sum(r[weight] for r in used)


def test_util_quantiles_are_samples_weighted_means_of_the_parts(
    whole: Tables, parts: tuple[Tables, Tables], combined: Tables
) -> None:
    got = keyed(combined["gpu_windows"], "gpu_windows")
    for key, row in keyed(whole["gpu_windows"], "gpu_windows").items():
        rows = partial_rows(parts, "gpu_windows", key)
        for q in ("util_p50", "util_p95"):
            if len(rows) == 2:
                assert got[key][q] == pytest.approx(weighted(rows, q, "samples"), rel=1e-12)
            assert got[key][q] == pytest.approx(row[q], abs=0.05)  # utilization is 0..1


# Pool columns re-added from combined gpu_windows rows whose GPUs were split between the
# parts: those rows' util_mean is a weighted mean of the parts, exact up to rounding.
POOL_FROM_SPLIT_GPU_ROWS = {"busy_gpu_s", "idle_gpu_s", "idle_cost_usd", "utilization"}


@pytest.mark.parametrize("split", [by_gpu_second, by_message])
def test_pool_rows_equal_one_engine_bit_for_bit(
    split: Callable[[bytes], int], whole: Tables
) -> None:
    # The scenario: partial producers over disjoint partitions of the same pools
    # (keyed by GPU and second, or not keyed at all), combined. Demand, its p95, the buffer
    # and its cost are one engine's values to the last bit.
    a, b = run([0], split=split), run([1, 2, 3], split=split)
    want = keyed(whole["pool_windows"], "pool_windows")
    assert all(len(partial_rows((a, b), "pool_windows", k)) == 2 for k in want)
    got = keyed(combine_tables(concat(a, b))["pool_windows"], "pool_windows")
    assert got.keys() == want.keys()
    for key, row in want.items():
        for column, value in row.items():
            if column in POOL_FROM_SPLIT_GPU_ROWS:
                assert same(got[key][column], value), (key, column)
            else:
                assert got[key][column] == value, (key, column)


def test_pool_rows_of_gpu_disjoint_parts_are_one_engines_rows(whole: Tables) -> None:
    # Parts that split the fleet by GPU (replay --workers, topics keyed by GPU): every
    # column of every pool row is one engine's, bit for bit.
    def by_gpu(message: bytes) -> int:
        uuid = json.loads(message)["labels"]["UUID"]  # GPU-<fleet position, 8 hex digits>-...
        return int(uuid[4:12], 16) % 2  # the fleet's pools are pairs of neighbours

    a, b = run([0], split=by_gpu), run([1], split=by_gpu)
    assert (
        sum(
            len(partial_rows((a, b), "pool_windows", k)) == 2
            for k in keyed(whole["pool_windows"], "pool_windows")
        )
        > 0
    )
    got = combine_tables(concat(a, b))["pool_windows"]
    assert got.equals(
        whole["pool_windows"].sort_by([(k, "ascending") for k in KEYS["pool_windows"]])
    )


def test_pool_demand_vectors_are_the_sums_of_the_parts(
    whole: Tables, parts: tuple[Tables, Tables], combined: Tables
) -> None:
    got = keyed(combined["pool_windows"], "pool_windows")
    for key, row in keyed(whole["pool_windows"], "pool_windows").items():
        rows = partial_rows(parts, "pool_windows", key)
        for column in ("demand_buckets", "provisioned_buckets"):
            added = [sum(v) for v in zip(*(r[column] for r in rows), strict=True)]
            assert got[key][column] == added == row[column]
        assert got[key]["provisioned_mean_gpus"] == sum(row["provisioned_buckets"]) / len(
            row["provisioned_buckets"]
        )
        assert got[key]["demand_peak_gpus"] == max(row["demand_buckets"]) / 2**32


def test_pool_parts_of_different_bucket_counts_are_refused(parts: tuple[Tables, Tables]) -> None:
    a = parts[0]
    config = CONFIG | {"engine": {"window_s": [60, 300], "sample_interval_s": 2.0}}
    other = run([1, 2, 3], config=config)
    with pytest.raises(CombineError, match="length of demand_buckets"):
        combine_tables(
            {"pool_windows": pa.concat_tables([a["pool_windows"], other["pool_windows"]])}
        )


def test_latency_quantiles_come_from_the_merged_sketch(whole: Tables, combined: Tables) -> None:
    got = keyed(combined["latency_windows"], "latency_windows")
    for key, row in keyed(whole["latency_windows"], "latency_windows").items():
        for q in ("latency_p50_ms", "latency_p90_ms", "latency_p95_ms", "latency_p99_ms"):
            assert got[key][q] == pytest.approx(row[q], rel=0.01)
        assert got[key]["latency_p999_ms"] == pytest.approx(row["latency_p999_ms"], rel=0.01)
        mine = LatencySketch.from_bytes(got[key]["latency_sketch"])
        theirs = LatencySketch.from_bytes(row["latency_sketch"])
        assert (mine.count, mine.min, mine.max) == (theirs.count, theirs.min, theirs.max)
        assert mine.buckets() == theirs.buckets()
        assert mine.sum == pytest.approx(theirs.sum, rel=1e-12)


def test_rate_p99_and_ttft_follow_their_rules(
    whole: Tables, parts: tuple[Tables, Tables], combined: Tables
) -> None:
    got = keyed(combined["latency_windows"], "latency_windows")
    for key, row in keyed(whole["latency_windows"], "latency_windows").items():
        rows = partial_rows(parts, "latency_windows", key)
        c = got[key]
        assert c["rate_p99_rps"] == pytest.approx(sum(r["rate_p99_rps"] for r in rows))
        assert max(r["rate_p99_rps"] for r in rows) <= row["rate_p99_rps"] <= row["requests"]
        assert c["peak_to_mean"] == pytest.approx(c["rate_p99_rps"] / c["rate_mean_rps"])
        for q in ("ttft_p50_ms", "ttft_p95_ms", "ttft_p99_ms"):
            assert c[q] == pytest.approx(weighted(rows, q, "requests"), rel=1e-12)
        assert c["ttft_p50_ms"] == pytest.approx(row["ttft_p50_ms"], rel=0.05)


def test_service_distinct_counts_are_the_largest_partial_count(
    whole: Tables, parts: tuple[Tables, Tables], combined: Tables
) -> None:
    got = keyed(combined["service_cost_windows"], "service_cost_windows")
    for key, row in keyed(whole["service_cost_windows"], "service_cost_windows").items():
        rows = partial_rows(parts, "service_cost_windows", key)
        for column in ("pods", "gpus"):
            assert got[key][column] == max(r[column] for r in rows)
            assert got[key][column] <= row[column] <= sum(r[column] for r in rows)


def test_without_companion_tables_the_fallbacks_apply(
    whole: Tables, parts: tuple[Tables, Tables]
) -> None:
    both = concat(*parts)
    pool = combine_tables({"pool_windows": both["pool_windows"]})["pool_windows"]
    for key, row in keyed(pool, "pool_windows").items():
        rows = partial_rows(parts, "pool_windows", key)
        assert row["gpus"] == max(r["gpus"] for r in rows)  # a lower bound
    cost = combine_tables({"service_cost_windows": both["service_cost_windows"]})
    got = keyed(cost["service_cost_windows"], "service_cost_windows")
    for key, row in keyed(whole["service_cost_windows"], "service_cost_windows").items():
        # Every partial row had cost, so tokens are recovered exactly from the ratios.
        assert same(got[key]["cost_per_1m_tokens_usd"], row["cost_per_1m_tokens_usd"])
        met = {r["slo_met"] for r in partial_rows(parts, "service_cost_windows", key)}
        assert got[key]["slo_met"] == (met.pop() if len(met) == 1 else None)


# --- identity, configuration and event tables ---------------------------------------------------


def test_single_row_keys_come_out_unchanged(whole: Tables, parts: tuple[Tables, Tables]) -> None:
    again = combine_tables(whole)
    for name in KEYS:
        assert again[name].equals(whole[name].sort_by([(k, "ascending") for k in KEYS[name]]))
    # One GPU only in the first part, its cost off by a dollar: among keys that do get
    # combined, its rows come out bit-identical, nothing recomputed.
    first, second = parts
    gpu_rows = first["gpu_windows"]
    gpu = gpu_rows["gpu_uuid"][0].as_py()
    mine = pc.equal(gpu_rows["gpu_uuid"], gpu)
    i = gpu_rows.schema.get_field_index("cost_usd")
    odd_cost = pc.if_else(mine, pc.add(gpu_rows["cost_usd"], 1.0), gpu_rows["cost_usd"])
    gpu_rows = gpu_rows.set_column(i, gpu_rows.schema.field(i), odd_cost)
    rest = second["gpu_windows"].filter(pc.not_equal(second["gpu_windows"]["gpu_uuid"], gpu))
    out = combine_tables({"gpu_windows": pa.concat_tables([gpu_rows, rest])})["gpu_windows"]
    assert out.num_rows < gpu_rows.num_rows + rest.num_rows  # other keys were combined
    kept = out.filter(pc.equal(out["gpu_uuid"], gpu))
    want = gpu_rows.filter(mine).sort_by([(k, "ascending") for k in KEYS["gpu_windows"]])
    assert kept.equals(want)


def test_combining_twice_changes_nothing(combined: Tables) -> None:
    again = combine_tables(combined)
    for name, table in combined.items():
        assert again[name].equals(table), name


def test_different_prices_weigh_by_covered_time(parts: tuple[Tables, Tables]) -> None:
    first, second = parts
    gpu = second["gpu_windows"]
    for column in ("price_usd_per_gpu_hour", "cost_usd", "idle_cost_usd"):
        i = gpu.schema.get_field_index(column)
        gpu = gpu.set_column(i, gpu.schema.field(i), pc.multiply(gpu[column], 2.0))
    out = combine_tables({"gpu_windows": pa.concat_tables([first["gpu_windows"], gpu])})
    got = keyed(out["gpu_windows"], "gpu_windows")
    for key in got:
        rows = [r for t in (first["gpu_windows"], gpu) for r in keyed(t, "gpu_windows").values()]
        rows = [r for r in rows if tuple(r[k] for k in KEYS["gpu_windows"]) == key]
        assert got[key]["cost_usd"] == pytest.approx(sum(r["cost_usd"] for r in rows))


def test_different_slos_are_refused(parts: tuple[Tables, Tables]) -> None:
    first, second = parts
    lat = second["latency_windows"]
    i = lat.schema.get_field_index("slo_latency_ms")
    lat = lat.set_column(i, lat.schema.field(i), pc.add(lat["slo_latency_ms"], 1.0))
    with pytest.raises(CombineError, match="disagree on slo_latency_ms"):
        combine_tables({"latency_windows": pa.concat_tables([first["latency_windows"], lat])})


def event_table(name: str, rows: list[Row]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=gpuledger.schemas()[name])


def test_event_tables_lose_exact_duplicates_only() -> None:
    at = datetime(2026, 11, 28, 12, 0, 5, tzinfo=timezone.utc)
    dead = {"source": "gpu-telemetry", "partition": 1, "offset": 7, "received_at": at}
    dead |= {"reason": "not JSON", "raw": b"\xff", "raw_size": 1}
    late = {"stream": "gpu_telemetry", "key": "GPU-1", "namespace": "", "pod": ""}
    late |= {"field": "DCGM_FI_DEV_GPU_UTIL", "event_time": at, "window_start": at}
    late |= {"window_end": at, "lateness_s": 3.0, "source": "t", "partition": 0, "offset": 1}
    out = combine_tables(
        {
            "dead_letters": event_table("dead_letters", [dead, dead, dead | {"offset": 8}]),
            "late_events": event_table("late_events", [late, late | {"partition": 2}, late]),
        }
    )
    assert sorted(out["dead_letters"]["offset"].to_pylist()) == [7, 8]
    assert sorted(out["late_events"]["partition"].to_pylist()) == [0, 2]
    assert out["dead_letters"].schema == gpuledger.schemas()["dead_letters"]


def test_other_tables_pass_through_concatenated() -> None:
    custom = pa.table({"window_start": [1, 1], "group": ["a", "a"], "value": [1.0, 2.0]})
    assert combine_tables({"tensor_active_p95": custom})["tensor_active_p95"] is custom


def test_empty_inputs(tmp_path: Path) -> None:
    assert combine_tables({}) == {}
    empty = pa.table({})
    assert combine_tables({"gpu_windows": empty})["gpu_windows"] is empty
    schema = gpuledger.schemas()["latency_windows"]
    out = combine_tables({"latency_windows": schema.empty_table()})["latency_windows"]
    assert out.num_rows == 0 and out.schema == schema
    assert combine_dirs([tmp_path]) == {}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t.set_column(10, "samples", t["samples"].cast(pa.float64())), "'samples' is"),
        (lambda t: t.drop_columns(["energy_j"]), "missing column 'energy_j'"),
        (lambda t: t.append_column("extra", t["samples"]), "unknown column 'extra'"),
    ],
)
def test_foreign_schemas_are_refused(
    whole: Tables, change: Callable[[pa.Table], pa.Table], message: str
) -> None:
    with pytest.raises(CombineError, match=message):
        combine_tables({"gpu_windows": change(whole["gpu_windows"])})


def test_directories_with_mismatched_schemas_are_refused(whole: Tables, tmp_path: Path) -> None:
    gpu = whole["gpu_windows"]
    other = gpu.set_column(10, "samples", gpu["samples"].cast(pa.string()))
    ArrowSink(tmp_path / "a").write({"gpu_windows": gpu}, batch_key="x")
    ArrowSink(tmp_path / "b").write({"gpu_windows": other}, batch_key="x")
    with pytest.raises(CombineError, match="gpu_windows"):
        combine_dirs([tmp_path / "a", tmp_path / "b"])


# --- directories and the command line ----------------------------------------------------------


def test_one_directory_with_two_partial_rows_of_one_writer(
    parts: tuple[Tables, Tables], combined: Tables, tmp_path: Path
) -> None:
    # After a rebalance an instance writes a second partial row for a window it saw before.
    sink = ArrowSink(tmp_path / "out", writer_id="gpuledger-0")
    sink.write(parts[0], batch_key="wm1")
    sink.write(parts[1], batch_key="wm2")
    got = combine_dirs([tmp_path / "out"])
    for name in KEYS:
        mine, theirs = keyed(got[name], name), keyed(combined[name], name)
        assert mine.keys() == theirs.keys()
        for key, row in theirs.items():
            for column, value in row.items():
                assert same(mine[key][column], value), (name, key, column)


@pytest.mark.parametrize("fmt", ["arrow", "parquet"])
def test_cli_combines_two_output_directories(
    parts: tuple[Tables, Tables], combined: Tables, tmp_path: Path, fmt: str
) -> None:
    a, b, out = tmp_path / "a", tmp_path / "b", tmp_path / "out"
    ArrowSink(a, writer_id="gpuledger-0").write(parts[0], batch_key="wm1")
    ArrowSink(b, writer_id="gpuledger-1").write(parts[1], batch_key="wm1")
    runner = CliRunner()
    r = runner.invoke(combine_command, [str(a), str(b), "--out", str(out), "--format", fmt])
    assert r.exit_code == 0, r.output
    n_in = len(parts[0]["gpu_windows"]) + len(parts[1]["gpu_windows"])
    n_out = len(combined["gpu_windows"])
    line = next(x for x in r.output.splitlines() if x.startswith("gpu_windows"))
    assert line.split() == ["gpu_windows", str(n_in), "rows", "in", str(n_out), "rows", "out"]
    expected = tmp_path / "expected"
    ArrowSink(expected).write(combined, batch_key="x")
    for name in KEYS:
        assert all(f.name == f"part-combined-combined.{fmt}" for f in list_files(out, name))
        assert read_table(out, name).equals(read_table(expected, name)), name
    # Running again over the same input is a no-op: the same files, nothing new written.
    r = runner.invoke(combine_command, [str(a), str(b), "--out", str(out), "--format", fmt])
    assert r.exit_code == 0 and "0 files written" in r.output


def test_cli_in_a_group_and_its_errors(tmp_path: Path) -> None:
    @click.group()
    def main() -> None: ...

    main.add_command(combine_command)
    runner = CliRunner()
    r = runner.invoke(main, ["combine", str(tmp_path), "--out", str(tmp_path / "out")])
    assert r.exit_code == 0 and "no tables" in r.output
    r = runner.invoke(main, ["combine", str(tmp_path), "--out", str(tmp_path)])
    assert r.exit_code == 1 and "also an input" in r.output
    r = runner.invoke(main, ["combine", str(tmp_path / "missing"), "--out", str(tmp_path)])
    assert r.exit_code == 2
    with pytest.raises(CombineError, match="also an input"):
        combine_dirs([tmp_path], tmp_path)


def test_pool_rows_without_per_bucket_columns_are_refused(parts: tuple[Tables, Tables]) -> None:
    # Output written before demand_buckets / provisioned_buckets cannot be merged exactly.
    old = concat(*parts)["pool_windows"].drop_columns(["demand_buckets", "provisioned_buckets"])
    with pytest.raises(CombineError, match="missing column 'demand_buckets'"):
        combine_tables({"pool_windows": old})
