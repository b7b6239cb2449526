"""Reading `s3://` archives in a Spark session the backfill starts itself: Hadoop's s3a
connector (`hadoop-aws` of the Hadoop version PySpark ships, fetched by Spark from Maven
Central) and the same `AWS_*` variables gpuledger's own object store client reads, so one
set of variables serves the input (read by Spark) and the output (written by gpuledger)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path

HADOOP_AWS = "org.apache.hadoop:hadoop-aws"
"""The s3a connector's Maven coordinates (without the version: it must be the Hadoop version
Spark was built with)."""

_HADOOP_JAR = re.compile(r"hadoop-client-api-(\d+\.\d+\.\d+)\.jar")


def reads_s3(paths: Iterable[str]) -> bool:
    """True when any input path is on S3 (`s3://` or `s3a://`)."""
    return any(p.startswith(("s3://", "s3a://")) for p in paths)


def hadoop_version(jars_dir: Path | None = None) -> str | None:
    """The Hadoop version of the installed PySpark (from its `hadoop-client-api` jar), or None
    when PySpark's jars are not where the wheel puts them (a Spark distribution: its
    spark-submit's `--packages` decides)."""
    if jars_dir is None:
        try:
            import pyspark
        except ImportError:
            return None
        jars_dir = Path(pyspark.__file__).parent / "jars"
    if not jars_dir.is_dir():
        return None
    for jar in sorted(jars_dir.iterdir()):
        if m := _HADOOP_JAR.fullmatch(jar.name):
            return m.group(1)
    return None


def s3a_settings(env: Mapping[str, str]) -> dict[str, str]:
    """Spark settings that point s3a at the store the `AWS_*` variables name: an endpoint
    (`AWS_ENDPOINT_URL_S3`, else `AWS_ENDPOINT_URL`: an S3-compatible server, reached with
    path-style requests as such servers expect) and a region (`AWS_REGION`, else
    `AWS_DEFAULT_REGION`). Credentials are not copied into the settings (they would show in
    Spark's UI and logs): s3a's default provider chain reads `AWS_ACCESS_KEY_ID` and
    `AWS_SECRET_ACCESS_KEY` (and profiles, web identity, instance roles) itself."""
    settings: dict[str, str] = {}
    endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL")
    if endpoint:
        settings["spark.hadoop.fs.s3a.endpoint"] = endpoint
        settings["spark.hadoop.fs.s3a.path.style.access"] = "true"
        if endpoint.startswith("http://"):
            settings["spark.hadoop.fs.s3a.connection.ssl.enabled"] = "false"
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
    if region:
        settings["spark.hadoop.fs.s3a.endpoint.region"] = region
    return settings


def s3a_session_settings(paths: Iterable[str], env: Mapping[str, str]) -> dict[str, str]:
    """What a session the backfill builds itself needs to read `paths`: nothing for local
    paths; for `s3://` ones the connector package (unless `GPULEDGER_SPARK_S3A_PACKAGES` names
    other coordinates, or is empty because the jars are on the class path already) and the
    settings of `s3a_settings`."""
    if not reads_s3(paths):
        return {}
    settings = s3a_settings(env)
    packages = env.get("GPULEDGER_SPARK_S3A_PACKAGES")
    if packages is None:
        version = hadoop_version()
        packages = f"{HADOOP_AWS}:{version}" if version else ""
    if packages:
        settings["spark.jars.packages"] = packages
    return settings
