"""`gpuledger report` from the command line and the library: headline figures equal
independent sums of the output tables, partial rows combined once, Parquet and URIs, the
allocated bill, and every kind of bad input with its message and exit code."""

from __future__ import annotations

import json
import os
import shutil
import stat
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest
from click.testing import CliRunner
from report_data import TTL_S, cents, config, independent_sums, outputs

from gpuledger.cli import main
from gpuledger.output.sink import list_files, read_file, read_table
from gpuledger.report import ReportError, report
from gpuledger.report.build import build
from gpuledger.report.period import Period, parse_time


@pytest.fixture(scope="session")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return outputs(tmp_path_factory)


def _config_file(tmp_path: Path) -> Path:
    p = tmp_path / "gpuledger.toml"
    prices = "\n".join(f'"{k}" = {v}' for k, v in config().prices.items())
    p.write_text(
        f"[idle]\nttl_s = {TTL_S}\n[prices]\n{prices}\n"
        '[services."chat-llm"]\nslo_latency_ms = 200.0\nslo_target = 0.95\n'
    )
    return p


def _json(args: list[str]) -> dict[str, object]:
    result = CliRunner().invoke(main, ["report", *args, "--json"])
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def _money(doc: dict[str, object]) -> dict[str, Decimal]:
    keys = (
        "gpu_spend_usd",
        "idle_spend_usd",
        "buffer_cost_usd",
        "headroom_cost_usd",
        "forgotten_cost_usd",
    )
    return {k: cents(doc[k]) for k in keys}


def test_headline_equals_independent_sums(data: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    doc = _json([str(data["full"]), "--out", str(out), "--config", str(_config_file(tmp_path))])
    want = independent_sums(data["full"])
    assert _money(doc) == want
    assert want["gpu_spend_usd"] > 0 and want["forgotten_cost_usd"] > 0
    assert doc["saving_total_usd"] is not None and doc["billing"] is None
    assert doc["problems"] == [] and out.stat().st_size > 1_000_000


def test_terminal_summary_names_the_figures(data: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    result = CliRunner().invoke(main, ["report", str(data["full"]), "--out", str(out)])
    assert result.exit_code == 0, result.output
    gpu = independent_sums(data["full"])["gpu_spend_usd"]
    assert f"GPU spend                    ${gpu:,.2f}" in result.output
    assert "not allocated" in result.output and f"Report written to {out}" in result.output


def test_parquet_and_uri_inputs_give_the_same_figures(data: dict[str, Path]) -> None:
    want = independent_sums(data["full"])
    assert _money(_json([str(data["parquet"]), "--out", "/dev/null"])) == want
    assert _money(_json([data["full"].as_uri(), "--out", "/dev/null"])) == want


def test_partial_rows_of_two_instances_are_combined_once(data: dict[str, Path]) -> None:
    full = independent_sums(data["full"])
    both = report([data["part_a"], data["part_b"]], out=None, config=config())
    assert cents(both.headline.gpu_spend) == full["gpu_spend_usd"]
    assert cents(both.headline.idle_spend) == full["idle_spend_usd"]
    stats = build([data["part_a"], data["part_b"]], Period(), config()).stats
    assert stats.partial_rows > 0  # pool and service rows were split between the instances
    # Summing the partial pool rows without combining would count each GPU-second once too;
    # the figures below come from combined rows: the pools' GPU spend equals the fleet's.
    pools = build([data["part_a"], data["part_b"]], Period(), config()).pools
    assert pools is not None
    assert cents(sum(pools.totals.column("cost").to_pylist(), Decimal(0))) == full["gpu_spend_usd"]


def test_a_directory_given_twice_counts_once(data: dict[str, Path]) -> None:
    once = report([data["full"]], out=None).headline
    twice = report([data["full"], data["full"]], out=None).headline
    assert twice.gpu_spend == once.gpu_spend and twice.buffer_cost == once.buffer_cost


def test_since_until_select_windows_by_start(data: dict[str, Path]) -> None:
    doc = _json(
        [
            str(data["full"]),
            "--out",
            "/dev/null",
            "--since",
            "2026-11-28T00:30:00Z",
            "--until",
            "2026-11-28T01:00:00Z",
        ]
    )
    where = (
        "{t} >= TIMESTAMPTZ '2026-11-28 00:30:00+00' AND {t} < TIMESTAMPTZ '2026-11-28 01:00:00+00'"
    )
    assert _money(doc) == independent_sums(data["full"], where)
    assert doc["period_start"] == "2026-11-28T00:30:00Z"
    assert doc["period_end"] == "2026-11-28T01:00:00Z"


def test_relative_and_rfc3339_times() -> None:
    now = 1_795_900_000.0
    assert parse_time("7d", now_s=now) == (now - 7 * 86400) * 1000
    assert parse_time("1d12h", now_s=now) == (now - 36 * 3600) * 1000
    assert parse_time("2026-11-28") == 1_795_824_000_000
    assert parse_time("2026-11-28T01:00:00+01:00") == 1_795_824_000_000
    with pytest.raises(ReportError, match="cannot read time 'yesterday'"):
        parse_time("yesterday")


def test_allocated_bill_is_shown_next_to_list_price(data: dict[str, Path], tmp_path: Path) -> None:
    d = tmp_path / "with-bill"
    shutil.copytree(data["full"], d)
    money = pa.decimal128(38, 10)
    start = pa.array(
        [1_795_824_000_000, 1_795_827_600_000, 1_795_824_000_000], pa.timestamp("ms", tz="UTC")
    )
    bill = pa.table(
        {
            "ChargePeriodStart": start,
            "BillingCurrency": ["USD", "USD", "EUR"],
            "EffectiveCost": pa.array(
                [Decimal("40.1234567891"), Decimal("20.5"), Decimal("3")], money
            ),
            "ListCost": pa.array([Decimal("60.25"), Decimal("30.125"), Decimal("4")], money),
            "BilledCost": pa.array([Decimal("41"), Decimal("21"), Decimal("3")], money),
            "x_Team": ["ml-training", "team-chat", "team-chat"],
            "x_PriceSource": ["contract", "contract", "list"],
            "AllocatedResourceId": pa.array(["GPU-1", None, "GPU-2"], pa.string()),
        }
    )
    # The layout of every output table (issue 21 writes this one); its partition is not read.
    part = d / "allocated_costs" / "date=2026-11-28" / "hour=00"
    part.mkdir(parents=True)
    _rewrite(part / "part-bill-0.arrow", bill)
    doc = _json([str(d), "--out", str(tmp_path / "r.html")])
    assert doc["billing"] == {
        "EUR": {"effective_cost": 3.0, "list_cost": 4.0, "billed_cost": 3.0},
        "USD": {"effective_cost": 60.62, "list_cost": 90.38, "billed_cost": 62.0},
    }
    page = (tmp_path / "r.html").read_text()
    assert "USD 60.62 billed (EffectiveCost) against 90.38 at list price" in page


# --- bad input ---------------------------------------------------------------------------------


def _fails(args: list[str]) -> str:
    result = CliRunner().invoke(main, ["report", *args])
    assert result.exit_code != 0, result.output
    return result.output


def test_empty_directory_fails_naming_it(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    out = _fails([str(empty), "--out", str(tmp_path / "r.html")])
    assert f"no gpuledger output under {empty}" in out
    assert not (tmp_path / "r.html").exists()
    assert f"no output directory {tmp_path / 'nope'}" in _fails([str(tmp_path / "nope")])


def test_only_some_tables_reports_what_there_is(data: dict[str, Path], tmp_path: Path) -> None:
    d = tmp_path / "gpu-only"
    shutil.copytree(data["full"] / "gpu_windows", d / "gpu_windows")
    doc = _json([str(d), "--out", str(tmp_path / "r.html")])
    assert cents(doc["gpu_spend_usd"]) == independent_sums(data["full"])["gpu_spend_usd"]
    assert doc["buffer_cost_usd"] is None and doc["headroom_cost_usd"] is None
    # Empty tables write no files: GPU windows without idle_streaks mean no forgotten pod.
    assert doc["forgotten_cost_usd"] == 0.0
    page = (tmp_path / "r.html").read_text()
    for table in ("pool_windows", "latency_windows"):
        assert f"No <code>{table}</code> rows in the input" in page
    assert "No pod stayed idle beyond the TTL" in page


def _rewrite(path: Path, table: pa.Table) -> None:
    with pa.OSFile(str(path), "wb") as f, pa.ipc.new_file(f, table.schema) as w:
        w.write_table(table)


def test_tables_of_another_version_are_set_aside_by_file(
    data: dict[str, Path], tmp_path: Path
) -> None:
    d = tmp_path / "mixed-versions"
    shutil.copytree(data["full"], d)
    files = list_files(d, "gpu_windows")
    old, odd = files[0], files[1]
    t = read_file(old)
    lost = Decimal(0)
    for f in (old, odd):
        rows = read_file(f)
        lost += sum((Decimal(str(v)) for v in rows.column("cost_usd").to_pylist()), Decimal(0))
    _rewrite(old, t.drop_columns(["idle_cost_usd"]))  # an older version without the column
    u = read_file(odd)
    i = u.schema.get_field_index("covered_s")
    _rewrite(odd, u.set_column(i, "covered_s", u.column(i).cast(pa.string())))
    result = CliRunner().invoke(
        main, ["report", str(d), "--out", str(tmp_path / "r.html"), "--json"]
    )
    assert result.exit_code == 0, result.output
    assert (
        f"{old}: gpu_windows written by another gpuledger version? no column "
        "'idle_cost_usd'" in result.stderr
    )
    assert (
        f"{odd}: gpu_windows written by another gpuledger version? column 'covered_s' "
        "is string, expected double" in result.stderr
    )
    doc = json.loads(result.stdout.strip().splitlines()[-1])
    assert len(doc["problems"]) == 2
    full = independent_sums(data["full"])["gpu_spend_usd"]
    assert cents(doc["gpu_spend_usd"]) == cents(Decimal(str(full)) - lost)
    assert "Incomplete input" in (tmp_path / "r.html").read_text()


def test_a_time_range_without_data_fails_saying_what_there_is(
    data: dict[str, Path], tmp_path: Path
) -> None:
    out = _fails(
        [str(data["full"]), "--since", "2026-12-01T00:00:00Z", "--out", str(tmp_path / "r.html")]
    )
    assert "no rows to report from 2026-12-01T00:00:00Z to the end" in out
    assert "the output covers 2026-11-28T00:00:00Z to 2026-11-28T02:00:00Z" in out
    out = _fails([str(data["full"]), "--since", "2026-12-02", "--until", "2026-12-01"])
    assert "empty time range" in out


def test_a_corrupt_file_is_named_and_the_rest_reported(
    data: dict[str, Path], tmp_path: Path
) -> None:
    d = tmp_path / "corrupt"
    shutil.copytree(data["full"], d)
    bad = list_files(d, "pool_windows")[3]
    bad.write_bytes(bad.read_bytes()[:100])
    result = CliRunner().invoke(main, ["report", str(d), "--out", str(tmp_path / "r.html")])
    assert result.exit_code == 0, result.output
    assert f"warning: {bad}: cannot be read as arrow" in result.stderr
    assert (tmp_path / "r.html").exists()
    # Nothing readable at all: a clear failure, no report.
    e = tmp_path / "all-corrupt"
    shutil.copytree(data["full"] / "gpu_windows", e / "gpu_windows")
    for f in list_files(e, "gpu_windows"):
        f.write_bytes(b"not arrow")
    out = _fails([str(e), "--out", str(tmp_path / "none.html")])
    assert "no rows to report" in out and "cannot be read as arrow" in out
    assert not (tmp_path / "none.html").exists()


def test_combined_output_reads_like_the_daemon_output(
    data: dict[str, Path], tmp_path: Path
) -> None:
    from gpuledger.output.combine import combine_dirs

    combined = tmp_path / "combined"
    combine_dirs([data["part_a"], data["part_b"]], combined)
    direct = report([data["part_a"], data["part_b"]], out=None, config=config()).headline
    again = report([combined], out=None, config=config()).headline
    assert again.money() == direct.money()
    assert read_table(combined, "gpu_windows").num_rows > 0


def test_demo_ends_with_the_report(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = CliRunner().invoke(main, ["demo", "--minutes", "30", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert f"Cost report: {out / 'report.html'}" in result.output
    page = (out / "report.html").read_text()
    for key in ("headline", "idle", "utilization", "buffers", "latency", "forgotten", "quality"):
        assert f'data-section="{key}"' in page
    assert "not in the input" not in page  # every table of the demo is there
    assert "No pod stayed idle beyond the TTL" in page  # 30 min: no streak reached the TTL


def test_writing_to_a_device_keeps_the_device(data: dict[str, Path]) -> None:
    """`--out /dev/null` (as root too) writes to the device: an atomic rename over it would
    turn /dev/null into a regular file for every process on the machine."""
    before = os.stat("/dev/null")
    assert stat.S_ISCHR(before.st_mode)
    r = CliRunner().invoke(main, ["report", str(data["full"]), "--out", "/dev/null", "--json"])
    assert r.exit_code == 0, r.output
    after = os.stat("/dev/null")
    assert stat.S_ISCHR(after.st_mode) and after.st_rdev == before.st_rdev
