"""Reading Parquet archives into Spark DataFrames with each row's provenance (file, row
number, file modification time: Spark's `_metadata` columns), and naming the files as
`gpuledger replay` names the same paths (the `source` of dead letters and late events)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlparse

from gpuledger.errors import ReplayInputError
from gpuledger.spark.rows import FILE_ID, MODIFIED_MS, ROW_INDEX, FileInfo

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

__all__ = ["file_infos", "read_parquet", "spark_path", "with_provenance"]


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


def _spellings(uri: str) -> set[str]:
    """The ways Spark writes a file's path: `inputFiles()` gives `file:///x`, the
    `_metadata.file_path` column `file:/x`; either may be URL-encoded or not."""
    out = {uri, unquote(uri)}
    if uri.startswith("file:///"):
        out |= {"file:/" + uri[len("file:///") :], "file:/" + unquote(uri[len("file:///") :])}
    return out


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


def file_infos(
    spark: SparkSession, uris: Iterable[str], roots: Sequence[str]
) -> dict[int, FileInfo]:
    """The input's files (Spark's `inputFiles()`) by `FILE_ID`, each with its replay name
    and place in replay's order: the roots in the order given, the files under a directory
    sorted by path. The ids are computed by Spark itself (`xxhash64`) on every spelling of
    each path; two files with one id raise ReplayInputError."""
    from pyspark.sql import functions as F

    named = sorted((*_replay_name(u, roots), u) for u in set(uris))
    infos = {u: FileInfo(source, i) for i, (_, source, u) in enumerate(named)}
    pairs = [(s, u) for u in infos for s in sorted(_spellings(u))]
    if not pairs:
        return {}
    frame = spark.createDataFrame(pairs, "spelling string, uri string")
    ids = frame.select(F.xxhash64("spelling").alias("id"), "uri").toArrow()
    out: dict[int, FileInfo] = {}
    for file_id, uri in zip(ids["id"].to_pylist(), ids["uri"].to_pylist(), strict=True):
        info = infos[str(uri)]
        if out.setdefault(int(str(file_id)), info) != info:
            raise ReplayInputError(f"{uri} and {out[int(str(file_id))].source}: same file id")
    return out


def with_provenance(df: DataFrame) -> DataFrame:
    """`df` (read from files by Spark) with each row's file (`FILE_ID`), row number in the
    file and the file's modification time (epoch ms) as columns."""
    from pyspark.sql import functions as F

    return df.select(
        "*",
        F.xxhash64(F.col("_metadata.file_path")).alias(FILE_ID),
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
        raise ReplayInputError(f"{', '.join(paths)}: {e}") from e
    return with_provenance(df)
