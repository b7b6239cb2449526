"""Reading Parquet archives into Spark DataFrames with each row's provenance (file, row
number, file modification time: Spark's `_metadata` columns), and naming the files as
`gpuledger replay` names the same paths (the `source` of dead letters and late events)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlparse

from gpuledger.errors import ReplayInputError
from gpuledger.spark.rows import FILE_ID, FILE_PATH, MODIFIED_MS, ROW_INDEX, FileInfo

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

__all__ = ["file_infos", "list_files", "read_parquet", "spark_path", "with_provenance"]


def spark_path(path: str) -> str:
    """`path` as Spark's Hadoop file systems take it: `s3://` is read by the s3a connector
    (`s3a://`), a local path stays as it is."""
    if path.startswith("s3://"):
        return "s3a://" + path[len("s3://") :]
    return path


def local_path(uri: str) -> str | None:
    """The local path of a `file:` URI or a plain path; None for other schemes."""
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        return os.path.normpath(unquote(parsed.path))
    return None


def _replay_name(uri: str, roots: Sequence[str]) -> tuple[int, str]:
    """(index of the root the file is under, the file's name as replay would give it: the
    root as given joined with the file's path below it)."""
    local = local_path(uri)
    for i, root in enumerate(roots):
        if local is not None and local_path(spark_path(root)) is not None:
            base = os.path.abspath(root)
            if local == base:
                return i, root
            if local.startswith(base.rstrip(os.sep) + os.sep):
                return i, os.path.join(root, os.path.relpath(local, base))
        else:
            base = spark_path(root).rstrip("/")
            if uri == base:
                return i, root
            if uri.startswith(base + "/"):
                return i, root.rstrip("/") + uri[len(base) :]
    return len(roots), local if local is not None else uri


def file_infos(listing: Iterable[tuple[int, str]], roots: Sequence[str]) -> dict[int, FileInfo]:
    """The input's files, (`FILE_ID`, Spark's path) pairs, by id, each with its replay name and
    place in replay's order: the roots in the order given, the files under a directory sorted
    by path."""
    named = sorted((*_replay_name(path, roots), file_id) for file_id, path in listing)
    return {file_id: FileInfo(source, i) for i, (_, source, file_id) in enumerate(named)}


def list_files(df: DataFrame) -> list[tuple[int, str]]:
    """(`FILE_ID`, path) of every file `df`'s rows come from. From Spark's file listing
    (`inputFiles()`, no pass over the data; ids computed on the driver as Spark's `xxhash64`
    computes them, on each way Spark spells a path); a DataFrame without one (cached, or not read
    from files) takes a pass over two columns instead. A row of a file missing from the listing
    stops the task with an error (`rows.split_files`), so a listing that misses files cannot go
    unnoticed."""
    from pyspark.sql import functions as F

    uris = df.inputFiles()
    rows: list[tuple[object, object, object]]
    if uris:
        rows = [(spark_xxhash64(s), u, u) for u in sorted(set(uris)) for s in sorted(_spellings(u))]
    else:
        table = (
            df.groupBy(FILE_ID)
            .agg(F.min(FILE_PATH).alias("uri"), F.max(FILE_PATH).alias("other"))
            .toArrow()
        )
        rows = list(zip(*(table.column(i).to_pylist() for i in range(3)), strict=True))
    seen: dict[int, str] = {}
    for file_id, path, other in rows:
        key = int(str(file_id))
        if seen.setdefault(key, str(path)) != path or path != other:
            raise ReplayInputError(f"{path} and {other or seen[key]}: same file id {file_id}")
    return sorted(seen.items())


SPARK_HASH_SEED = 42
"""The seed of Spark's `xxhash64` function."""


def spark_xxhash64(text: str) -> int:
    """Spark's `xxhash64(text)` (XXH64 of the UTF-8 bytes, seed 42, as a signed 64-bit
    number), on the driver: the files' ids without a Spark job (0.2 s each backfill)."""
    import xxhash

    value = xxhash.xxh64_intdigest(text.encode("utf-8"), seed=SPARK_HASH_SEED)
    return value - (1 << 64) if value >= 1 << 63 else value


def _spellings(uri: str) -> set[str]:
    """The ways Spark writes a file's path: `inputFiles()` gives `file:///x`, the
    `_metadata.file_path` column `file:/x`; either may be URL-encoded or not."""
    out = {uri, unquote(uri)}
    if uri.startswith("file:///"):
        rest = uri[len("file:///") :]
        out |= {"file:/" + rest, "file:/" + unquote(rest)}
    return out


def with_provenance(df: DataFrame) -> DataFrame:
    """`df` (read from files by Spark) with each row's file (`FILE_ID`), row number in the
    file and the file's modification time (epoch ms) as columns."""
    from pyspark.sql import functions as F

    return df.select(
        "*",
        F.xxhash64(F.col("_metadata.file_path")).alias(FILE_ID),
        F.col("_metadata.file_path").alias(FILE_PATH),
        F.col("_metadata.row_index").alias(ROW_INDEX),
        F.unix_millis(F.col("_metadata.file_modification_time")).alias(MODIFIED_MS),
    )


def read_parquet(spark: SparkSession, paths: Sequence[str]) -> DataFrame:
    """The Parquet files at `paths` (files or directories, read recursively; names starting
    with "." or "_" left out, as replay does), with provenance columns."""
    if not paths:
        raise ReplayInputError("no input paths")
    reader = spark.read.option("recursiveFileLookup", "true")
    try:
        df = reader.parquet(*[spark_path(p) for p in paths])
    except Exception as e:  # pyspark's AnalysisException: a path that does not exist
        raise ReplayInputError(f"{', '.join(paths)}: {_reason(e)}") from e
    return with_provenance(df)


def _reason(e: Exception) -> str:
    """Why Spark could not read the paths, without the Java stack: the s3a connector missing
    from the session says how to add it."""
    text = str(e)
    if "S3AFileSystem not found" in text:
        from gpuledger.spark.s3a import HADOOP_AWS, hadoop_version

        version = hadoop_version() or "<the Hadoop version of your Spark>"
        return (
            "this Spark session cannot read s3:// (no s3a connector): start it with "
            f"--packages {HADOOP_AWS}:{version} (or spark.jars.packages), or run "
            "`gpuledger spark-backfill`, which adds it to the session it starts"
        )
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("\tat ")]
    return " ".join(lines[:3])
