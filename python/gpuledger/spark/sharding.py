"""The Spark side of a sharded backfill: telemetry rows tagged with the shard of their GPU (the
engine's own label rules, `gpuledger.shards.shard_of_rows`, on one row per label combination,
joined back in the JVM), requests joined to every shard, and the first pass that plans the
chunks' order and watermark (`clocks`, `plan`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from gpuledger.replay.event_times import TIME_COLUMNS
from gpuledger.shards import shard_of_rows
from gpuledger.spark.clocks import STATS_DDL, chunk_stats
from gpuledger.spark.plan import Step, plan
from gpuledger.spark.rows import META_COLUMNS, SHARD
from gpuledger.spark.task import TaskSpec

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

__all__ = ["chunk_plan", "to_every_shard", "with_shard"]


def with_shard(spark: SparkSession, df: DataFrame, shards: int, form: str | None) -> DataFrame:
    """Telemetry rows with the shard that owns their GPU (one shard: all of them in 0).

    A row's shard depends only on its labels, so Spark finds one row per distinct combination
    of label-like columns (strings, integers, booleans; not the time or float columns), the
    engine's own rules (`shard_of_rows`) give those few rows their shards on the driver, and a
    broadcast join tags every row in the JVM: the rows never pass through Python for it."""
    from pyspark.sql import functions as F

    data_columns = [c for c in df.columns if c not in META_COLUMNS]
    labels = [f.name for f in df.schema.fields if f.name in data_columns and _label_like(f)]
    if shards == 1 or not labels:  # no label column: no readable GPU, every row is shard 0
        return df.withColumn(SHARD, F.lit(0).cast("int"))
    rows = df.select(*data_columns).dropDuplicates(labels).toArrow()
    ids = shard_of_rows(rows, shards, form).cast(pa.int32())
    keys = rows.select(labels).rename_columns([_KEY + c for c in labels])
    table = spark.createDataFrame(keys.append_column(SHARD, ids))
    same = [df[c].eqNullSafe(table[_KEY + c]) for c in labels]
    joined = df.join(F.broadcast(table), same, "left")
    return joined.drop(*[_KEY + c for c in labels]).fillna(0, subset=[SHARD])


_KEY = "_gl_key_"


def _label_like(field: Any) -> bool:
    from pyspark.sql.types import BooleanType, IntegralType, StringType

    if field.name in TIME_COLUMNS:
        return False
    return isinstance(field.dataType, (StringType, IntegralType, BooleanType))


def to_every_shard(spark: SparkSession, df: DataFrame, shards: int) -> DataFrame:
    """Request rows joined to every shard id (each engine joins them to its own GPUs)."""
    from pyspark.sql import functions as F

    ids = spark.range(shards).select(F.col("id").cast("int").alias(SHARD))
    return df.crossJoin(ids)


def chunk_plan(
    spec: TaskSpec, telemetry: DataFrame | None, requests: DataFrame | None
) -> list[Step]:
    """The first pass (per-chunk stats of every file, `mapInArrow` then a max per file and
    chunk) and the plan every shard follows."""
    from pyspark.sql import functions as F

    parts: list[pa.Table] = []
    for df, form in ((telemetry, spec.telemetry_form), (requests, "requests")):
        if df is None:
            continue

        def stats(
            batches: Iterator[pa.RecordBatch], form: str | None = form
        ) -> Iterator[pa.RecordBatch]:
            return chunk_stats(spec, form, batches)

        merged = (
            df.mapInArrow(stats, STATS_DDL)
            .groupBy("file_id", "chunk")
            .agg(
                *(F.max(c).alias(c) for c in ("newest_ms", "covered_ms", "end_ms", "first_ms")),
                F.max("has_first").alias("has_first"),
            )
        )
        parts.append(merged.toArrow())
    stats_table = pa.concat_tables(parts)
    lateness_ms = round(spec.config.engine.allowed_lateness_s * 1000)
    return plan(stats_table, spec.files, spec.order, lateness_ms)
