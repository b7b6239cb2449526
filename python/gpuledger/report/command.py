"""The `gpuledger report` command: the HTML report, the terminal summary or `--json`."""

from __future__ import annotations

import sys

import click

__all__ = ["report_command"]


@click.command("report")
@click.argument("dirs", nargs=-1, required=True)
@click.option("--out", "-o", default="report.html", show_default=True, help="HTML file to write.")
@click.option(
    "--since",
    default=None,
    help="Start: RFC 3339 (2026-11-28T00:00:00Z) or relative before now (7d, 12h).",
)
@click.option("--until", default=None, help="End (exclusive), same forms as --since.")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="TOML configuration: prices, SLOs, idle TTL (also GPULEDGER_* variables).",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print the headline figures as one JSON object on stdout (USD).",
)
def report_command(
    dirs: tuple[str, ...],
    out: str,
    since: str | None,
    until: str | None,
    config_path: str | None,
    as_json: bool,
) -> None:
    """Write the cost report of gpuledger output DIRS (daemon, replay or combined output;
    Arrow or Parquet; paths or URIs) as one self-contained HTML file."""
    from gpuledger.config import ConfigError
    from gpuledger.report import ReportError, report

    try:
        result = report(list(dirs), out, since=since, until=until, config=config_path)
    except (ReportError, ConfigError) as e:
        raise click.ClickException(str(e)) from None
    except ImportError as e:  # plotly and numpy come with the `report` extra
        raise click.ClickException(
            f"gpuledger report needs {e.name}: pip install 'gpuledger[report]'"
        ) from None
    for problem in result.problems:
        click.echo(f"warning: {problem}", err=True)
    if as_json:
        click.echo(result.to_json())
        return
    for line in result.summary_lines():
        click.echo(line)
    size = result.html_bytes / 1e6
    click.echo(f"Report written to {result.path} ({size:.1f} MB)", file=sys.stdout)
