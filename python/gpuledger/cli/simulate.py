"""`gpuledger simulate` and `gpuledger produce` (registered in cli.py by the maintainer).

simulate: a seeded GPU fleet and its inference traffic (docs/simulate.md) to files or Kafka.
produce: a recorded trace (JSON lines, optionally .gz/.zst; one message per line) into Kafka.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

from gpuledger.simulate import (
    DEFAULT_START_S,
    SCENARIOS,
    Simulation,
    parse_duration,
    parse_start,
    write_files,
)
from gpuledger.simulate.compression import read_lines
from gpuledger.simulate.encode import TELEMETRY_FORMATS, rfc3339
from gpuledger.simulate.kafka_out import KEYS, PacedProducer, ProduceReport, produce_simulation


def _params(values: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for v in values:
        key, eq, value = v.partition("=")
        if not eq or not key.strip():
            raise click.BadParameter(f"expected KEY=VALUE, got {v!r}", param_hint="--param")
        out[key.strip()] = value.strip()
    return out


def _summary(report: ProduceReport) -> str:
    return (
        f"{report.delivered:,} delivered, {report.failed:,} failed in {report.seconds:.2f} s "
        f"({report.rate:,.0f} msg/s)"
    )


@click.command("simulate")
@click.option(
    "--scenario",
    type=click.Choice(list(SCENARIOS)),
    default="mixed",
    show_default=True,
    help="What to simulate (docs/simulate.md lists the figures each one shows).",
)
@click.option("--seed", type=int, default=1, show_default=True, help="Same seed, same bytes.")
@click.option(
    "--start",
    default=rfc3339(DEFAULT_START_S),
    show_default=True,
    help="First sample time: ISO 8601 (UTC unless an offset is given) or Unix seconds.",
)
@click.option("--duration", default="2h", show_default=True, help="e.g. 2h, 90m, 1h30m, 600.")
@click.option(
    "--gpus", type=click.IntRange(min=1), default=None, help="Fleet size (default per scenario)."
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Directory for telemetry.*, requests.* and simulation.json.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(TELEMETRY_FORMATS),
    default="prom_json",
    show_default=True,
    help="Telemetry form (Kafka takes prom_json or wide_json).",
)
@click.option(
    "--compress",
    type=click.Choice(["none", "gz", "zst"]),
    default="none",
    show_default=True,
    help="Compress the line files (.gz / .zst appended to their names).",
)
@click.option(
    "--window-s",
    type=click.IntRange(min=1),
    default=60,
    show_default=True,
    help="The window the engine will use: pool and SLO sizing happen per window.",
)
@click.option(
    "-p",
    "--param",
    "params",
    multiple=True,
    metavar="KEY=VALUE",
    help="Scenario parameter, e.g. capacity_factor=0.6 (mixed: bursty.capacity_factor=0.6).",
)
@click.option(
    "--bill",
    "with_bill",
    is_flag=True,
    help="Also write bill.focus.csv (a FOCUS bill of the fleet, savings plan on half of it) "
    "and resources.csv to --out (docs/billing.md).",
)
@click.option("--kafka", "bootstrap", default=None, help="Produce to this Kafka bootstrap instead.")
@click.option("--telemetry-topic", default="gpu-telemetry", show_default=True)
@click.option("--latency-topic", default="request-latency", show_default=True)
@click.option(
    "--rate",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Kafka messages per second (token bucket); 0 = as fast as possible.",
)
def simulate_command(
    scenario: str,
    seed: int,
    start: str,
    duration: str,
    gpus: int | None,
    out_dir: str | None,
    fmt: str,
    compress: str,
    window_s: int,
    params: tuple[str, ...],
    with_bill: bool,
    bootstrap: str | None,
    telemetry_topic: str,
    latency_topic: str,
    rate: float,
) -> None:
    """Generate a deterministic GPU fleet and its inference traffic (Azure LLM trace)."""
    if out_dir is None and bootstrap is None:
        raise click.UsageError("give --out DIR or --kafka BOOTSTRAP")
    if bootstrap is not None and fmt not in ("prom_json", "wide_json"):
        raise click.UsageError("--kafka takes --format prom_json or wide_json")
    try:
        sim = Simulation(
            scenario,
            seed=seed,
            start_s=parse_start(start),
            duration_s=parse_duration(duration),
            gpus=gpus,
            window_s=window_s,
            params=_params(params),
        )
    except ValueError as e:
        raise click.UsageError(str(e)) from None
    info = sim.describe()
    click.echo(
        f"{scenario}: {info['gpus']} GPUs, {sim.ctx.duration_s:,} s from "
        f"{rfc3339(sim.ctx.start_s)}, seed {seed}",
        err=True,
    )
    for part, figures in sim.parts().items():
        click.echo(f"  {part}: {json.dumps(figures)}", err=True)
    if out_dir is not None:
        report = write_files(sim, out_dir, fmt, compress)
        click.echo(
            f"wrote {report.telemetry_messages:,} telemetry and {report.request_messages:,} "
            f"request messages in {report.seconds:.2f} s ({report.rate:,.0f} msg/s): "
            + ", ".join(str(p) for p in report.files)
        )
        if with_bill:
            from gpuledger.simulate.bill import write_bill

            bill, resources = write_bill(sim.gpus, sim.ctx.start_s, sim.ctx.duration_s, out_dir)
            click.echo(f"wrote the fleet's FOCUS bill {bill} and its resource map {resources}")
    if bootstrap is not None:
        producer = PacedProducer(bootstrap, rate, progress=sys.stderr)
        tel, req = produce_simulation(sim, fmt, producer, telemetry_topic, latency_topic)
        result = producer.close()
        click.echo(
            f"produced {tel:,} telemetry messages to {telemetry_topic} and {req:,} requests to "
            f"{latency_topic}: {_summary(result)}"
        )
        if result.failed:
            raise click.ClickException(f"{result.failed} messages failed: {result.first_error}")


@click.command("produce")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--topic", required=True, help="Kafka topic to produce to.")
@click.option(
    "--bootstrap",
    default="127.0.0.1:9092",
    show_default=True,
    envvar="KAFKA_BOOTSTRAP_SERVERS",
    help="Kafka bootstrap servers (also KAFKA_BOOTSTRAP_SERVERS).",
)
@click.option(
    "--rate",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Messages per second (token bucket); 0 = as fast as possible.",
)
@click.option(
    "--key-by",
    type=click.Choice(["none", "gpu", "host", "service"]),
    default="none",
    show_default=True,
    help="Key each message by its GPU UUID (gpu) or hostname (host) for telemetry, by its "
    "service for requests, so each key stays in one partition and consumer-group members "
    "write final rows (docs/scale-out.md).",
)
def produce_command(
    files: tuple[str, ...], topic: str, bootstrap: str, rate: float, key_by: str
) -> None:
    """Load recorded traces (JSON lines, optionally .gz/.zst) into a Kafka topic."""
    producer = PacedProducer(bootstrap, rate, progress=sys.stderr)
    unkeyed = 0
    started = time.monotonic()
    for path in files:
        n = 0
        for line in read_lines(path):
            key = None
            if key_by != "none":
                key = KEYS[key_by](line)
                if key is None:
                    unkeyed += 1
            producer.send(topic, line, key)
            n += 1
        click.echo(f"{Path(path).name}: {n:,} messages", err=True)
    result = producer.close()
    keyed = (
        f"; {result.keyed:,} keyed by {key_by}, {unkeyed:,} without one" if key_by != "none" else ""
    )
    click.echo(
        f"produced {result.produced:,} messages from {len(files)} file(s) to {topic} in "
        f"{time.monotonic() - started:.2f} s: {_summary(result)}{keyed}"
    )
    if result.failed:
        raise click.ClickException(f"{result.failed} messages failed: {result.first_error}")
