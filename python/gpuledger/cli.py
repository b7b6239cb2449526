"""The `gpuledger` command line."""

from __future__ import annotations

import time

import click
import pyarrow.compute as pc

import gpuledger
from gpuledger.cli_combine import combine_command
from gpuledger.fleet import default_fleet, prom_json_messages
from gpuledger.table_text import render

# 2026-11-28T12:00:00Z: the embedded fleet's first sample.
DEMO_START_S = 1_795_867_200


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(gpuledger.__version__, prog_name="gpuledger")
def main() -> None:
    """gpuledger: what your GPUs cost, busy and idle, from DCGM telemetry."""


@main.command()
@click.option("--minutes", default=10, show_default=True, help="Length of simulated telemetry.")
@click.option("--window-s", default=60, show_default=True, help="Tumbling window size.")
@click.option("--rows", default=24, show_default=True, help="Window rows to print.")
def demo(minutes: int, window_s: int, rows: int) -> None:
    """Run the engine on an embedded simulated fleet (no Kafka needed)."""
    fleet = default_fleet()
    messages = list(prom_json_messages(fleet, DEMO_START_S, minutes * 60))
    engine = gpuledger.Engine(gpuledger.Config.from_dict({"engine": {"window_s": [window_s]}}))
    started = time.perf_counter()
    engine.push(messages, source="embedded-fleet")
    table = engine.poll().concat(engine.finish()).gpu_windows
    elapsed = time.perf_counter() - started
    stats = engine.stats()
    click.echo(
        f"{len(fleet)} GPUs, {minutes} min of 1 s DCGM samples: {stats['consumed']:,} "
        f"prometheus-kafka-adapter JSON messages decoded and windowed in Rust in "
        f"{elapsed * 1000:.0f} ms.\n"
    )
    cols = ["window_start", "gpu_uuid", "namespace", "pod", "samples", "util_mean"]
    cols += ["busy_gpu_s", "idle_gpu_s"]
    click.echo(render(table, cols, limit=rows))
    busy: float = pc.sum(table.column("busy_gpu_s")).as_py()
    idle: float = pc.sum(table.column("idle_gpu_s")).as_py()
    click.echo(
        f"\n{table.num_rows} gpu_windows rows; busy {busy / 3600:.2f} GPU-h, "
        f"idle {idle / 3600:.2f} GPU-h ({idle / (busy + idle):.0%} of covered time idle)."
    )


@main.command()
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="TOML configuration (settings also from GPULEDGER_* environment variables).",
)
@click.option(
    "--until-eof",
    is_flag=True,
    help="Treat the end of every assigned partition as end of input: close every window, "
    "write, commit and exit 0 (drains a topic; used by tests and benchmarks).",
)
def run(config_path: str | None, until_eof: bool) -> None:
    """Run the streaming daemon: Kafka in, Arrow files out, exactly once."""
    from gpuledger.config import ConfigError, load_config
    from gpuledger.daemon import Daemon

    try:
        cfg = load_config(config_path)
    except ConfigError as e:
        raise click.ClickException(str(e)) from None
    raise SystemExit(Daemon(cfg, until_eof=until_eof).run())


main.add_command(combine_command)


if __name__ == "__main__":
    main()
