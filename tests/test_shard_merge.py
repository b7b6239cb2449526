"""`gpuledger.shards.merge_shards`' pool merge (`_engine.merge_pool_windows`, in Rust): the
partial pool rows of shard engines give one engine's rows bit for bit, and partial rows that
no single engine could have written are refused with a CombineError."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from gpuledger import Config
from gpuledger.cli.simulate import simulate_command
from gpuledger.engine import Engine
from gpuledger.errors import CombineError
from gpuledger.shards import merge_shards
from gpuledger.tables import KEYED_TABLES

POOL_KEY = [(k, "ascending") for k in KEYED_TABLES["pool_windows"]]


@pytest.fixture(scope="module")
def long(tmp_path_factory: pytest.TempPathFactory) -> pa.Table:
    """The simulator's mixed fleet: its pools have GPUs in several shards."""
    out = tmp_path_factory.mktemp("sim")
    args = ["--duration", "10m", "--gpus", "16", "--out", str(out), "--format", "parquet"]
    sim = CliRunner().invoke(simulate_command, args)
    assert sim.exit_code == 0, sim.output
    return pq.read_table(out / "telemetry.parquet")


def tables(engine: Engine, data: pa.Table) -> dict[str, pa.Table]:
    engine.push_arrow(data)
    return engine.finish().tables


def config(sample_interval_s: float = 1.0) -> Config:
    engine: dict[str, Any] = {"window_s": [60], "sample_interval_s": sample_interval_s}
    return Config.from_dict({"engine": engine})


@pytest.mark.parametrize("count", [2, 3])
def test_shards_pool_rows_merge_into_one_engines_bit_for_bit(long: pa.Table, count: int) -> None:
    one = tables(Engine(config()), long)["pool_windows"].sort_by(POOL_KEY)
    parts = [tables(Engine(config(), shard=(k, count, True)), long) for k in range(count)]
    partial = sum(p["pool_windows"].num_rows for p in parts)
    assert partial > one.num_rows > 0  # some pools really have GPUs in several shards
    merged = merge_shards(parts)["pool_windows"]
    assert merged.schema == one.schema
    assert merged.equals(one)


def test_partial_rows_of_different_bucket_counts_are_refused(long: pa.Table) -> None:
    """Shards that ran with different sample intervals cut windows into different buckets:
    their pool rows are not parts of one engine's."""
    parts = [
        tables(Engine(config(interval), shard=(k, 2, True)), long)
        for k, interval in enumerate((1.0, 2.0))
    ]
    with pytest.raises(CombineError, match="disagree on the number of buckets"):
        merge_shards(parts)


def test_a_missing_pool_column_is_refused(long: pa.Table) -> None:
    parts = [tables(Engine(config(), shard=(k, 2, True)), long) for k in range(2)]
    for p in parts:
        p["pool_windows"] = p["pool_windows"].drop_columns(["demand_buckets"])
    with pytest.raises(CombineError, match="demand_buckets"):
        merge_shards(parts)


def test_pool_rows_of_other_column_types_are_refused(long: pa.Table) -> None:
    """As `combine` refuses tables that are not gpuledger's types: large_string labels."""
    parts = [tables(Engine(config(), shard=(k, 2, True)), long) for k in range(2)]
    for p in parts:
        t = p["pool_windows"]
        wide = [
            pa.field(f.name, pa.large_string()) if f.type == pa.string() else f for f in t.schema
        ]
        p["pool_windows"] = t.cast(pa.schema(wide))
    with pytest.raises(CombineError, match="team is LargeUtf8, not string"):
        merge_shards(parts)
