"""Options the commands that replay recorded files share (`replay`, `spark-backfill`), and the
configuration loading whose error becomes the command's own."""

from __future__ import annotations

import click

from gpuledger.config import Config, load_config
from gpuledger.errors import ConfigError
from gpuledger.output.sink import FORMATS as OUTPUT_FORMATS

config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="TOML configuration: windows, prices, teams, SLOs... (also GPULEDGER_* variables).",
)
output_format_option = click.option(
    "--output-format",
    type=click.Choice(sorted(OUTPUT_FORMATS)),
    default=None,
    help="Output file format [default: [output] format of the configuration, arrow].",
)
max_future_option = click.option(
    "--max-future-s",
    type=float,
    default=None,
    help="Event times later than now plus this are dead letters [default: no check].",
)


def config_or_exit(config_path: str | None) -> Config:
    """The configuration; a ConfigError ends the command with its message (exit status 1)."""
    try:
        return load_config(config_path)
    except ConfigError as e:
        raise click.ClickException(str(e)) from None
