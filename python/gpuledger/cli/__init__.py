"""The `gpuledger` command line: the `main` group with `run` and `demo` here, every other
subcommand in its own module of this package (`replay`, `combine`, `simulate`/`produce`,
`spark-backfill`),
imported only when used (`lazy`), so `gpuledger run` starts without loading the rest."""

from __future__ import annotations

import time

import click

import gpuledger
from gpuledger.cli.lazy import LazyGroup

# 2026-11-28T00:00:00Z: the embedded fleet's first sample.
DEMO_START_S = 1_795_824_000


@click.group(
    cls=LazyGroup,
    lazy={
        "allocate": "gpuledger.billing.command:allocate_command",
        "combine": "gpuledger.cli.combine:combine_command",
        "report": "gpuledger.report.command:report_command",
        "replay": "gpuledger.cli.replay:replay_command",
        "simulate": "gpuledger.cli.simulate:simulate_command",
        "spark-backfill": "gpuledger.cli.spark_backfill:spark_backfill_command",
        "produce": "gpuledger.cli.simulate:produce_command",
    },
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(gpuledger.__version__, prog_name="gpuledger")
def main() -> None:
    """gpuledger: what your GPUs cost, busy and idle, from DCGM telemetry."""


@main.command()
@click.option("--minutes", default=120, show_default=True, help="Length of simulated telemetry.")
@click.option("--window-s", default=60, show_default=True, help="Tumbling window size.")
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    default=None,
    help="Output directory (default: a new temporary directory).",
)
@click.option("--idle-ttl-s", default=1800.0, show_default=True, help="Forgotten-pod TTL.")
def demo(minutes: int, window_s: int, out: str | None, idle_ttl_s: float) -> None:
    """Run the daemon on the embedded simulated fleet (no Kafka needed) and summarize costs."""
    import tempfile
    from pathlib import Path

    from gpuledger.cli.demo import (
        LATENCY,
        TELEMETRY,
        demo_config,
        report_lines,
        run_demo,
        summary_lines,
    )
    from gpuledger.daemon.log import EventLog
    from gpuledger.simulate.topics import simulated_topics

    out_dir = Path(out) if out else Path(tempfile.mkdtemp(prefix="gpuledger-demo-"))
    cfg = demo_config(window_s, idle_ttl_s)
    built = time.perf_counter()
    topics = simulated_topics(DEMO_START_S, minutes * 60, telemetry=TELEMETRY, latency=LATENCY)
    built = time.perf_counter() - built
    events = sum(len(p) for parts in topics.values() for p in parts)
    click.echo(
        f"gpuledger demo: {minutes} min of a simulated 16-GPU fleet (a training cluster, a "
        f"buffered inference pool, a bursty chat service, forgotten experiments; "
        f"`gpuledger simulate --scenario mixed`) and its request traffic: {events:,} Kafka "
        f"messages generated in {built:.1f} s, now through the daemon's main loop, in "
        f"process, into {out_dir}"
    )
    started = time.perf_counter()
    code, tables = run_demo(cfg, topics, out_dir, EventLog("human"))
    elapsed = time.perf_counter() - started
    files = sum(1 for _ in out_dir.rglob("*.arrow"))
    click.echo(f"\n{files} Arrow files written in {elapsed:.1f} s.\n")
    for line in summary_lines(tables) + report_lines(out_dir, cfg):
        click.echo(line)
    if code == 0:
        from gpuledger.cli.demo import allocate_demo_bill

        for line in allocate_demo_bill(cfg, out_dir, DEMO_START_S, minutes * 60):
            click.echo(line)
    raise SystemExit(code)


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
    from gpuledger.config import load_config
    from gpuledger.daemon.loop import Daemon
    from gpuledger.errors import ConfigError

    try:
        cfg = load_config(config_path)
        daemon = Daemon(cfg, until_eof=until_eof)  # TLS files and the port are checked here
    except ConfigError as e:
        raise click.ClickException(str(e)) from None
    raise SystemExit(daemon.run())


if __name__ == "__main__":
    main()
