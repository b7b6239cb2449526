"""`gpuledger allocate`: split FOCUS bills among pods by measured GPU use, write the table
`allocated_costs` with the same sink as every table, print the reconciliation per currency
and exit 1 if the allocated totals ever differ from the bill's."""

from __future__ import annotations

import hashlib
from pathlib import Path

import click
import pyarrow as pa

from gpuledger.billing.allocate import TABLE, allocate
from gpuledger.billing.reconcile import reconciliation_lines
from gpuledger.config import ConfigError, load_config
from gpuledger.errors import BillingError
from gpuledger.output.sink import FORMATS, ArrowSink

WRITER_ID = "allocate"


def batch_key(table: pa.Table) -> str:
    """The batch key of an allocation: a digest of the bills' (provider, billing account,
    billing period) sets. Allocating the same bill again is a no-op (identical files) or an
    OutputConflictError (changed rows), never a second copy; other bills get other keys."""
    cols = [
        c
        for c in ("ProviderName", "BillingAccountId", "BillingPeriodStart")
        if c in table.column_names
    ]
    keys = (
        sorted({tuple(str(v) for v in r.values()) for r in table.select(cols).to_pylist()})
        if cols
        else []
    )
    digest = hashlib.sha256(repr(keys).encode()).hexdigest()[:16]
    return f"focus.{digest}"


@click.command("allocate")
@click.option(
    "--bill",
    "bills",
    multiple=True,
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="FOCUS bill: CSV, CSV.gz or Parquet (repeat for several).",
)
@click.option(
    "--windows",
    "windows",
    multiple=True,
    required=True,
    type=click.Path(exists=True, file_okay=False),
    help="gpuledger output directory with gpu_windows (repeat: instances are combined).",
)
@click.option(
    "--resources",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="hostname -> ResourceId table: CSV/Parquet (hostname, ResourceId) or TOML [resources].",
)
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False),
    help="Output directory: allocated_costs/ is written there (may be a --windows directory).",
)
@click.option(
    "--basis",
    type=click.Choice(["usage", "allocation"]),
    default=None,
    help="usage: busy GPU-seconds (default); allocation: held GPU-seconds.",
)
@click.option(
    "--share-idle",
    is_flag=True,
    default=None,
    help="Share idle GPU-seconds' cost among the pods in proportion (the rows say so).",
)
@click.option(
    "--window-s",
    type=click.IntRange(min=1),
    default=None,
    help="Which gpu_windows size to read (default: the smallest present).",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="TOML configuration ([billing], [services], [output]).",
)
@click.option(
    "--format",
    "format_",
    type=click.Choice(sorted(FORMATS)),
    default=None,
    help="File format (default: [output] format).",
)
@click.option(
    "--reject-bad-rows",
    is_flag=True,
    help="Count unparseable bill rows (listed with their row numbers) instead of stopping.",
)
def allocate_command(
    bills: tuple[str, ...],
    windows: tuple[str, ...],
    resources: str | None,
    out_dir: str,
    basis: str | None,
    share_idle: bool | None,
    window_s: int | None,
    config_path: str | None,
    format_: str | None,
    reject_bad_rows: bool,
) -> None:
    """Split the GPU nodes' rows of FOCUS bills among pods by what the GPUs did."""
    try:
        cfg = load_config(config_path)
        result = allocate(
            bills,
            windows,
            resources=resources,
            basis=basis,
            share_idle=share_idle or None,
            config=cfg,
            window_s=window_s,
            reject_bad_rows=reject_bad_rows,
        )
    except (BillingError, ConfigError, FileNotFoundError) as e:
        raise click.ClickException(str(e)) from None
    table = result.allocated_costs
    sink = ArrowSink(out_dir, format=format_ or cfg.output.format, writer_id=WRITER_ID)
    files = sink.write({TABLE: table}, batch_key=batch_key(table))
    click.echo(
        f"{result.bill_rows_read:,} bill rows read, {result.telemetry_rows:,} gpu_windows rows "
        f"({result.window_s:g} s windows, {result.combined_keys:,} partial keys combined); "
        f"{table.num_rows:,} allocated_costs rows, {len(files)} files written under "
        f"{Path(out_dir) / TABLE}"
    )
    for r in result.rejected.to_pylist():
        click.echo(f"rejected: {r['file']}: row {r['row']}: {r['column'] or ''}: {r['reason']}")
    if result.rejected.num_rows:
        click.echo(f"{result.rejected.num_rows} bill rows rejected (not allocated)")
    for line in reconciliation_lines(result.reconciliation):
        click.echo(line)
    if not result.balanced:
        click.echo("error: allocated totals differ from the bill", err=True)
        raise SystemExit(1)
