"""The simulator's FOCUS bill has the real sample's exact shape and a commitment on part of
the fleet; `[billing]` is part of the configuration; the command exits non-zero when the
allocated totals differ from the bill's."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from billing_helpers import SAMPLE
from click.testing import CliRunner

import gpuledger
from gpuledger.billing import allocate
from gpuledger.billing import command as command_module
from gpuledger.cli import main
from gpuledger.config import ConfigError, load_config
from gpuledger.simulate import Simulation
from gpuledger.simulate.bill import write_bill
from gpuledger.sink import ArrowSink


def test_simulated_bill_has_the_sample_shape_and_a_commitment(tmp_path: Path) -> None:
    sim = Simulation("mixed", seed=1, start_s=1_795_824_000, duration_s=2 * 3600)
    bill, resources = write_bill(sim.gpus, sim.ctx.start_s, sim.ctx.duration_s, tmp_path)
    sample_head = SAMPLE.read_text().splitlines()[0]
    assert bill.read_text().splitlines()[0] == sample_head  # same columns, order, quoting
    rows = list(csv.DictReader(bill.open()))
    hosts = {g.host for g in sim.gpus}
    assert len(rows) == 2 * len(hosts)
    committed = [r for r in rows if r["PricingCategory"] == "Committed"]
    on_demand = [r for r in rows if r["PricingCategory"] == "Standard"]
    assert committed and on_demand
    assert all(float(r["EffectiveCost"]) < float(r["ListCost"]) for r in committed)
    assert all(r["EffectiveCost"] == r["ListCost"] == r["BilledCost"] for r in on_demand)
    assert all(r["CommitmentDiscountId"] == "NULL" for r in on_demand)  # the sample's NULL
    assert rows[0]["ChargePeriodStart"] == "2026-11-28 00:00:00"
    # allocated against the fleet's own telemetry: every row split, totals equal
    engine = gpuledger.Engine(gpuledger.Config())
    from gpuledger.simulate.writers import write_files

    write_files(sim, tmp_path / "sim", "prom_json")
    engine.push_buffer((tmp_path / "sim" / "telemetry.jsonl").read_bytes(), format="prom_json")
    ArrowSink(tmp_path / "win").write(engine.finish(), batch_key="sim")
    result = allocate([bill], [tmp_path / "win"], resources=resources)
    rec = result.reconciliation.to_pylist()[0]
    assert result.balanced and rec["bill_rows_split"] == len(rows)
    assert rec["unmonitored_EffectiveCost"] == 0


def test_billing_section_in_the_configuration(tmp_path: Path) -> None:
    cfg_file = tmp_path / "g.toml"
    cfg_file.write_text('[billing]\nbasis = "allocation"\nshare_idle = true\n')
    cfg = load_config(cfg_file, env={})
    assert cfg.billing["basis"] == "allocation"
    bad = tmp_path / "bad.toml"
    bad.write_text('[billing]\nbasis = "vibes"\n')
    from gpuledger.billing.settings import read_settings

    with pytest.raises(ConfigError, match=r"billing\.basis"):
        read_settings(load_config(bad, env={}).billing)
    typo = tmp_path / "typo.toml"
    typo.write_text("[billing]\nshare_idel = true\n")
    with pytest.raises(ConfigError, match=r"billing\.share_idel: unknown key"):
        read_settings(load_config(typo, env={}).billing)
    r = CliRunner().invoke(
        main,
        [
            "allocate",
            "--bill",
            str(SAMPLE),
            "--windows",
            str(tmp_path),
            "--out",
            str(tmp_path / "o"),
            "--config",
            str(bad),
        ],
    )
    assert r.exit_code == 1 and "billing.basis" in r.output


def test_command_exits_non_zero_when_totals_differ(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pyarrow as pa

    real = command_module.allocate

    def broken(*args: object, **kwargs: object) -> object:
        result = real(*args, **kwargs)  # type: ignore[arg-type]
        rec = result.reconciliation.set_column(
            result.reconciliation.schema.get_field_index("balanced"), "balanced", pa.array([False])
        )
        from dataclasses import replace

        return replace(result, reconciliation=rec)

    sim = Simulation("training", seed=1, start_s=1_795_824_000, duration_s=600, gpus=8)
    bill, resources = write_bill(sim.gpus, sim.ctx.start_s, sim.ctx.duration_s, tmp_path)
    win = tmp_path / "win"
    win.mkdir()
    monkeypatch.setattr(command_module, "allocate", broken)
    r = CliRunner().invoke(
        main,
        [
            "allocate",
            "--bill",
            str(bill),
            "--windows",
            str(win),
            "--resources",
            str(resources),
            "--out",
            str(tmp_path / "o"),
        ],
    )
    assert r.exit_code == 1 and "differ from the bill" in r.output


def test_simulate_bill_option_writes_bill_and_resources(tmp_path: Path) -> None:
    out = tmp_path / "sim"
    args = ["simulate", "--scenario", "training", "--gpus", "8", "--duration", "5m"]
    r = CliRunner().invoke(main, [*args, "--out", str(out), "--bill"])
    assert r.exit_code == 0, r.output
    assert (out / "bill.focus.csv").exists() and (out / "resources.csv").exists()
    hosts = (out / "resources.csv").read_text().splitlines()[1:]
    assert len(hosts) == 1 and hosts[0].startswith("train-")
