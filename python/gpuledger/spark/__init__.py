"""Spark backfill: every gpuledger table from Spark DataFrames of telemetry and requests (or from
Parquet archives, local or `s3://`), one gpuledger engine per shard inside Spark's Arrow-native
`mapInArrow` (one shard) or `applyInArrow` (several), rows equal to `gpuledger replay` of the same
files (docs/scale-out.md, "Spark"). Needs the `gpuledger[spark]` extra (pyspark 4).

>>> from gpuledger.spark import backfill
>>> backfill(spark, "out/", telemetry=["s3://archive/telemetry/"], requests=["s3://archive/requests/"])
"""

from gpuledger.spark.archive import file_infos, read_parquet, with_provenance
from gpuledger.spark.backfill import CHUNK_ROWS, BackfillSummary, backfill, compute_tables

__all__ = [
    "CHUNK_ROWS",
    "BackfillSummary",
    "backfill",
    "compute_tables",
    "file_infos",
    "read_parquet",
    "with_provenance",
]
