"""`gpuledger replay PATH... --out DIR`: recorded traces through the engine into Arrow or
Parquet files, deterministically (docs/replay.md). The maintainer registers `replay_command`
on the `gpuledger` group."""

from __future__ import annotations

import sys

import click

from gpuledger.cli.options import (
    config_option,
    config_or_exit,
    max_future_option,
    output_format_option,
)
from gpuledger.errors import GpuledgerError
from gpuledger.replay.detect import FORMATS
from gpuledger.replay.run import ORDERS, Progress, replay


@click.command("replay")
@click.argument(
    "paths",
    nargs=-1,
    required=True,
    type=click.Path(exists=True),
    metavar="PATH [PATH ...]",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Output directory, empty or absent [default: [output] dir of the configuration].",
)
@config_option
@click.option(
    "--format",
    "input_format",
    type=click.Choice(["auto", *FORMATS]),
    default="auto",
    show_default=True,
    help="Input format of every file; auto detects it per file.",
)
@click.option(
    "--form",
    type=click.Choice(["long", "wide", "requests"]),
    default=None,
    help="Columnar form (Parquet, Arrow, CSV) [default: detected from the columns].",
)
@output_format_option
@click.option(
    "--order",
    type=click.Choice(ORDERS),
    default="time",
    show_default=True,
    help="time: merge the files by event time, each its own partition; "
    "given: one file after another, as one stream.",
)
@max_future_option
@click.option(
    "--chunk-mib",
    type=click.FloatRange(min=0.0625),
    default=8.0,
    show_default=True,
    help="Input read per chunk; windows are closed and written after every chunk.",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Engines sharing the work by GPU, one thread each; 1 = one engine "
    "[default: the usable cores; 1 for JSON lines telemetry].",
)
@click.option("--json-summary", is_flag=True, help="Print the summary as JSON.")
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Progress line on stderr [default: when stderr is a terminal].",
)
def replay_command(
    paths: tuple[str, ...],
    out_dir: str | None,
    config_path: str | None,
    input_format: str,
    form: str | None,
    output_format: str | None,
    order: str,
    max_future_s: float | None,
    chunk_mib: float,
    workers: int | None,
    json_summary: bool,
    progress: bool | None,
) -> None:
    """Replay recorded telemetry and request events from files.

    PATH is a file or a directory (its files, sorted). Every input form is read: JSON lines
    (prometheus-kafka-adapter, wide, request latency), dcgm-exporter exposition text,
    Parquet, Arrow IPC and CSV, plain or gzip/zstd/bz2 compressed. Closed windows are
    written under --out as they close; the end of input closes every window.
    """
    cfg = config_or_exit(config_path)
    bar = Progress(sys.stderr, tty=progress)
    try:
        summary = replay(
            list(paths),
            out_dir if out_dir is not None else cfg.output.dir,
            config=cfg,
            format=None if input_format == "auto" else input_format,
            form=form,
            output_format=output_format,
            order=order,
            chunk_bytes=max(1, round(chunk_mib * (1 << 20))),
            max_future_s=max_future_s,
            progress=bar,
            workers=workers,
        )
    except (GpuledgerError, ValueError, OSError) as e:
        raise click.ClickException(str(e)) from e
    click.echo(summary.to_json() if json_summary else summary.render())
