"""`gpuledger combine`: merges the partial rows that scaled-out instances wrote (several output
directories, or one directory several writers share) into one row per key, written as a new
output directory. The rules are gpuledger.output.combine's (docs/scale-out.md)."""

from __future__ import annotations

import os

import click

from gpuledger.errors import GpuledgerError
from gpuledger.output.combine import check_out_dir, combine_tables, read_dirs, write_combined
from gpuledger.output.object_store import is_uri, local_path
from gpuledger.output.sink import FORMATS


@click.command("combine")
@click.argument(
    "in_dirs",
    nargs=-1,
    required=True,
    type=str,  # a directory or a URI (s3://bucket/prefix...); read_dirs checks it
    metavar="IN_DIR [IN_DIR ...]",
)
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=str,
    help="New output directory or URI for the combined tables (not one of the inputs).",
)
@click.option(
    "--format",
    "format_",
    type=click.Choice(sorted(FORMATS)),
    default="arrow",
    show_default=True,
    help="File format of the combined tables.",
)
def combine_command(in_dirs: tuple[str, ...], out_dir: str, format_: str) -> None:
    """Combine the partial rows of several gpuledger instances into one row per key.

    Reads every table under each IN_DIR, combines rows of the same key (sums add, sketches
    merge; docs/scale-out.md has every column's rule) and writes the result to OUT_DIR.
    """
    for d in in_dirs:  # a URI is checked when it is read
        if not is_uri(d) and not os.path.isdir(local_path(d)):
            raise click.BadParameter(f"{d!r} is not a directory", param_hint="IN_DIR")
    try:
        check_out_dir(in_dirs, out_dir)
        tables = read_dirs(in_dirs)
        combined = combine_tables(tables)
        files = write_combined(combined, out_dir, format=format_)
    except (GpuledgerError, ValueError, OSError) as e:
        raise click.ClickException(str(e)) from e
    if not tables:
        click.echo(f"no tables under {', '.join(map(str, in_dirs))}")
        return
    width = max(map(len, tables))
    for name, table in tables.items():
        rows_in, rows_out = table.num_rows, combined[name].num_rows
        click.echo(f"{name:<{width}}  {rows_in:>9,} rows in  {rows_out:>9,} rows out")
    click.echo(f"{len(files)} files written under {out_dir}")
