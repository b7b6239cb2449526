"""`gpuledger spark-backfill --telemetry PATH --requests PATH --out DIR`: Parquet archives
(local or `s3://`) through gpuledger engines inside Spark, written as `gpuledger replay` writes
the same files (docs/scale-out.md, "Spark"). Also `python -m gpuledger.spark` and the script
given to `spark-submit`. Needs the `gpuledger[spark]` extra."""

from __future__ import annotations

import json
import os
import sys

import click

from gpuledger.cli.options import (
    config_option,
    config_or_exit,
    max_future_option,
    output_format_option,
)
from gpuledger.errors import GpuledgerError
from gpuledger.replay.run import ORDERS


@click.command("spark-backfill")
@click.option(
    "--telemetry",
    multiple=True,
    metavar="PATH",
    help="Parquet telemetry (long or wide form): a file or a directory, local or s3://; "
    "repeat for several.",
)
@click.option(
    "--requests",
    multiple=True,
    metavar="PATH",
    help="Parquet request events: a file or a directory, local or s3://; repeat for several.",
)
@click.option("--out", "out_dir", required=True, help="Output directory or s3:// prefix, empty.")
@config_option
@click.option(
    "--form",
    type=click.Choice(["long", "wide"]),
    default=None,
    help="Telemetry form [default: detected from the columns].",
)
@output_format_option
@click.option(
    "--order",
    type=click.Choice(ORDERS),
    default="time",
    show_default=True,
    help="As replay's: time merges the files by event time; given reads one after another.",
)
@click.option(
    "--shards",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Engines (Spark tasks) the telemetry is split into, by GPU.",
)
@click.option(
    "--chunk-rows",
    type=click.IntRange(min=1),
    default=65_536,
    show_default=True,
    help="Rows of a file per chunk; windows close after every chunk, as in replay.",
)
@max_future_option
@click.option(
    "--master",
    default=None,
    help="Spark master, e.g. local[4] [default: spark-submit's, else local[*]].",
)
@click.option("--json-summary", is_flag=True, help="Print the summary as JSON.")
def spark_backfill_command(
    telemetry: tuple[str, ...],
    requests: tuple[str, ...],
    out_dir: str,
    config_path: str | None,
    form: str | None,
    output_format: str | None,
    order: str,
    shards: int,
    chunk_rows: int,
    max_future_s: float | None,
    master: str | None,
    json_summary: bool,
) -> None:
    """Backfill every gpuledger table from Parquet archives with Spark.

    Telemetry is split by GPU across --shards engines, requests go to every engine, and the
    shards' rows are merged into the rows one engine writes: those of `gpuledger replay` on
    the same files.
    """
    if not telemetry and not requests:
        raise click.UsageError("give --telemetry and/or --requests")
    cfg = config_or_exit(config_path)
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise click.ClickException(
            "pyspark is not installed: pip install 'gpuledger[spark]'"
        ) from None
    from gpuledger.spark import backfill
    from gpuledger.spark.s3a import s3a_session_settings

    # Python workers must run this interpreter (it has gpuledger and pyarrow), not python3.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.appName("gpuledger-backfill")
    if master is not None:
        builder = builder.master(master)
    # s3:// input: the s3a connector and the AWS_* variables' endpoint and region (a session
    # that exists already, e.g. under spark-submit, keeps the settings it was started with).
    for key, value in s3a_session_settings([*telemetry, *requests], os.environ).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    try:
        summary = backfill(
            spark,
            out_dir,
            telemetry=list(telemetry),
            requests=list(requests),
            config=cfg,
            output_format=output_format,
            telemetry_form=form,
            order=order,
            chunk_rows=chunk_rows,
            shards=shards,
            max_future_s=max_future_s,
        )
    except (GpuledgerError, ValueError, OSError) as e:
        raise click.ClickException(str(e)) from e
    if json_summary:
        click.echo(json.dumps(summary.as_dict(), sort_keys=True))
    else:
        click.echo(summary.render())
