"""`gpuledger allocate`: the real FOCUS sample read as is, GPU nodes mapped onto its EC2
instance rows, exact sums on every bill row, MIG, pod changes, unmonitored rows, list-priced
telemetry, daily periods, bases, idle sharing, partial rows of two instances."""

from __future__ import annotations

import csv
from collections import Counter
from decimal import Decimal
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from billing_helpers import (
    SAMPLE,
    T0,
    check_every_row,
    gpu_bill_row,
    sample_rows,
    window,
    write_bill,
    write_windows,
)
from click.testing import CliRunner

from gpuledger.billing import MappingError, allocate
from gpuledger.billing.bill_reader import read_bills
from gpuledger.cli import main
from gpuledger.config import Config
from gpuledger.sink import read_table


def _resources(tmp: Path, pairs: dict[str, str]) -> Path:
    p = tmp / "resources.csv"
    p.write_text("hostname,ResourceId\n" + "".join(f"{h},{r}\n" for h, r in pairs.items()))
    return p


def test_real_sample_is_read_as_is_every_provider() -> None:
    read = read_bills([SAMPLE], lambda b: np.ones(b.num_rows, dtype=np.int8))
    assert read.rows_read == 1000 and not read.rejected
    assert Counter(read.rows["ProviderName"].to_pylist()) == {
        "AWS": 942,
        "Microsoft": 51,
        "Oracle": 7,
    }
    rows = sample_rows()
    for c in ("BilledCost", "EffectiveCost", "ListCost"):
        want = sum(Decimal(r[c]) for r in rows)
        assert pc.sum(read.rows[c]).as_py() == want
    # NULL spelling, times, untouched text and x_ columns kept
    first = read.rows.slice(0, 1).to_pylist()[0]
    assert first["AvailabilityZone"] is None and first["Tags"] is None
    assert first["ChargePeriodStart"].isoformat() == "2024-09-18T22:00:00+00:00"
    assert first["ConsumedQuantity"] == "2.000000000000000"
    oracle = read.rows.filter(pc.equal(read.rows["ProviderName"], "Oracle"))
    assert oracle["BillingAccountName"].to_pylist()[0] == ""  # quoted "" stays text


def _sample_with_gpus(tmp: Path) -> tuple[Path, Path, Path, list[dict[str, str]]]:
    rows = sample_rows()
    ec2 = [
        r
        for r in rows
        if r["ResourceId"].startswith("i-") and "Instance Hour" in r["ChargeDescription"]
    ]
    mapped = ec2[:2]
    hosts = {
        "gpu-a": mapped[0]["ResourceId"],
        "gpu-b": mapped[1]["ResourceId"],
        "gpu-c": "i-0gpu000000000000c",
    }
    win: list = []
    for host, row in (("gpu-a", mapped[0]), ("gpu-b", mapped[1])):
        start = int(
            pc.strptime(pa.array([row["ChargePeriodStart"]]), "%Y-%m-%d %H:%M:%S", "s")[0].value
        )
        for m in range(60):
            win.append(
                window(host, f"GPU-{host}-0", start + 60 * m, pod=f"{host}-job", busy=20 + m % 7)
            )
            win.append(window(host, f"GPU-{host}-1", start + 60 * m, ns="", pod="", busy=0.0))
    extra = []
    for h in range(3):  # a GPU instance in the sample's shape, three hours
        extra.append(
            gpu_bill_row(hosts["gpu-c"], T0 + 3600 * h, T0 + 3600 * (h + 1), "98.32000000000")
        )
        for m in range(60):
            for g in range(4):
                pod = "train-0" if g < 3 else "serve-0"
                win.append(
                    window(
                        "gpu-c",
                        f"GPU-c{g}",
                        T0 + 3600 * h + 60 * m,
                        pod=pod,
                        ns="ml",
                        busy=10.0 * g + 5,
                    )
                )
    bill = write_bill(tmp / "bill.csv", rows + extra)
    out = write_windows(tmp / "win", win)
    return bill, out, _resources(tmp, hosts), rows + extra


def test_sample_with_gpu_nodes_every_row_exact_and_cli(tmp_path: Path) -> None:
    bill, win, res, rows = _sample_with_gpus(tmp_path)
    result = allocate([bill], [win], resources=res)
    t = result.allocated_costs
    assert result.balanced
    ids = {p.split(",")[1] for p in res.read_text().splitlines()[1:]}
    split = [r for r in rows if r["ChargeCategory"] == "Usage" and r["ResourceId"] in ids]
    assert len(split) >= 5  # the mapped sample instances' rows (any usage) + 3 GPU rows
    assert check_every_row(bill, t) == len(split)
    rec = result.reconciliation.to_pylist()[0]
    mapped_ids = ids
    want_total = sum(Decimal(r["EffectiveCost"]) for r in split)
    assert rec["bill_EffectiveCost"] == want_total == rec["allocated_EffectiveCost"]
    assert rec["not_mapped_rows"] + rec["mapped_not_usage_rows"] + rec["bill_rows_split"] == 1003
    assert mapped_ids
    # pods of gpu-c: split by busy GPU-seconds, idle row keeps the rest
    c = t.filter(pc.equal(t["ResourceId"], "i-0gpu000000000000c"))
    first = c.filter(pc.equal(c["x_BillRowNumber"], 1001)).to_pylist()
    by = {r["AllocatedResourceId"]: r for r in first}
    assert by["ml/train-0"]["x_BusyGpuSeconds"] == pytest.approx(60 * (5 + 15 + 25))
    assert by["ml/serve-0"]["x_BusyGpuSeconds"] == pytest.approx(60 * 35)
    assert by[None]["AllocatedMethodId"] == "gpuledger-idle"
    cost = Decimal("98.32")
    assert by["ml/train-0"]["EffectiveCost"] == pytest.approx(
        cost * Decimal(2700) / Decimal(14400), abs=Decimal("1e-17")
    )
    assert sum(r["x_GpuSeconds"] for r in first) == pytest.approx(4 * 3600)
    # the command: writes allocated_costs, prints the reconciliation, a rerun is a no-op
    out = tmp_path / "out"
    args = [
        "allocate",
        "--bill",
        str(bill),
        "--windows",
        str(win),
        "--resources",
        str(res),
        "--out",
        str(out),
    ]
    r1 = CliRunner().invoke(main, args)
    assert r1.exit_code == 0, r1.output
    assert "totals equal" in r1.output and "USD:" in r1.output
    written = read_table(out, "allocated_costs")
    assert written.num_rows == t.num_rows
    assert sorted(
        pc.unique(written["x_BillRowNumber"]).to_pylist(), key=lambda v: v or 0
    ) == sorted(pc.unique(t["x_BillRowNumber"]).to_pylist(), key=lambda v: v or 0)
    r2 = CliRunner().invoke(main, args)
    assert r2.exit_code == 0 and "0 files written" in r2.output


def test_pod_change_inside_an_hour_and_basis_and_share_idle(tmp_path: Path) -> None:
    rows = []
    for m in range(60):
        pod = "a" if m < 20 else "b"
        rows.append(window("n1", "GPU-1", T0 + 60 * m, pod=pod, busy=30.0 if pod == "a" else 15.0))
    win = write_windows(tmp_path / "win", rows)
    bill = write_bill(tmp_path / "bill.csv", [gpu_bill_row("i-1", T0, T0 + 3600, "36.00000000000")])
    res = _resources(tmp_path, {"n1": "i-1"})
    usage = {
        r["AllocatedResourceId"]: r
        for r in allocate([bill], [win], resources=res).allocated_costs.to_pylist()
    }
    assert usage["team-a/a"]["x_GpuSeconds"] == 1200 and usage["team-a/b"]["x_GpuSeconds"] == 2400
    assert usage["team-a/a"]["EffectiveCost"] == Decimal(36) * 600 / 3600  # busy 600 of 3600
    assert usage["team-a/b"]["EffectiveCost"] == Decimal(36) * 600 / 3600
    assert usage[None]["EffectiveCost"] == Decimal(24)
    held = {
        r["AllocatedResourceId"]: r
        for r in allocate(
            [bill], [win], resources=res, basis="allocation"
        ).allocated_costs.to_pylist()
    }
    assert held["team-a/a"]["EffectiveCost"] == 12 and held["team-a/b"]["EffectiveCost"] == 24
    assert held["team-a/a"]["AllocatedMethodId"] == "gpuledger-held-gpu-seconds"
    assert held[None]["EffectiveCost"] == 0
    shared = {
        r["AllocatedResourceId"]: r
        for r in allocate([bill], [win], resources=res, share_idle=True).allocated_costs.to_pylist()
    }
    assert shared["team-a/a"]["EffectiveCost"] == 18 == shared["team-a/b"]["EffectiveCost"]
    assert shared["team-a/a"]["AllocatedMethodId"] == "gpuledger-busy-gpu-seconds-idle-shared"
    assert (
        shared[None]["EffectiveCost"] == 0
        and shared[None]["AllocatedMethodId"] == "gpuledger-idle-idle-shared"
    )


def test_unmonitored_bill_row_and_list_priced_telemetry(tmp_path: Path) -> None:
    rows = [window("n1", "GPU-1", T0 + 3600 + 60 * m, busy=60.0, price=4.0) for m in range(30)]
    rows += [window("stray", "GPU-9", T0 + 60 * m, busy=6.0, price=2.0) for m in range(10)]
    win = write_windows(tmp_path / "win", rows)
    bill = write_bill(tmp_path / "bill.csv", [gpu_bill_row("i-1", T0, T0 + 3600, "7.00000000001")])
    res = _resources(tmp_path, {"n1": "i-1"})
    result = allocate([bill], [win], resources=res)
    t = result.allocated_costs.to_pylist()
    unmon = [r for r in t if r["AllocatedMethodId"] == "gpuledger-unmonitored"]
    assert len(unmon) == 1 and unmon[0]["EffectiveCost"] == Decimal("7.00000000001")
    listed = [r for r in t if r["x_PriceSource"] == "list"]
    n1 = [r for r in listed if r["ResourceName"] == "n1"]
    assert len(n1) == 1 and n1[0]["ResourceId"] == "i-1"
    assert n1[0]["EffectiveCost"] == Decimal("2")  # 30 min at 4 USD/h
    stray = [r for r in listed if r["ResourceName"] == "stray"]
    assert stray[0]["ResourceId"] is None and float(stray[0]["ListCost"]) == pytest.approx(
        10 / 60 * 2.0
    )
    assert result.balanced


def test_daily_charge_period_and_windows_cut_at_boundaries(tmp_path: Path) -> None:
    day = T0
    rows = [
        window("n1", "GPU-1", day + 3600 * h, length=3600, busy=1800.0, pod=f"p{h % 2}")
        for h in range(24)
    ]
    # 420 s windows straddle the hour boundary of an hourly row of another node
    aligned = day - day % 420  # windows are aligned to the epoch
    rows += [window("n2", "GPU-2", aligned + 420 * k, length=420, busy=420.0) for k in range(19)]
    win = tmp_path / "win"
    write_windows(win, rows[:24], key="a")
    write_windows(win, rows[24:], key="b")
    bill = write_bill(
        tmp_path / "bill.csv",
        [
            gpu_bill_row("i-1", day, day + 86400, "240.00000000000"),
            gpu_bill_row("i-2", day, day + 3600, "10.00000000000"),
            gpu_bill_row("i-2", day + 3600, day + 7200, "10.00000000000"),
        ],
    )
    res = _resources(tmp_path, {"n1": "i-1", "n2": "i-2"})
    result = allocate([bill], [win], resources=res, window_s=3600)
    t = result.allocated_costs.to_pylist()
    daily = [r for r in t if r["ResourceId"] == "i-1"]
    assert sum(r["x_GpuSeconds"] for r in daily) == pytest.approx(86400)
    assert sum(r["EffectiveCost"] for r in daily) == 240
    assert {r["AllocatedResourceId"]: r["EffectiveCost"] for r in daily}["team-a/p0"] == 60
    assert check_every_row(bill, result.allocated_costs) == 3  # i-2: unmonitored at 3600 s
    cut = allocate([bill], [win], resources=res, window_s=420).allocated_costs.to_pylist()
    n2 = [
        r
        for r in cut
        if r["ResourceId"] == "i-2" and r["AllocatedResourceId"] and r["x_PriceSource"] == "bill"
    ]
    first, second = sorted(n2, key=lambda r: r["x_BillRowNumber"])
    assert first["x_GpuSeconds"] == pytest.approx(3600) and second["x_GpuSeconds"] == pytest.approx(
        3600
    )
    outside = [r for r in cut if r["ResourceId"] == "i-2" and r["x_PriceSource"] == "list"]
    assert sum(r["x_GpuSeconds"] for r in outside) == pytest.approx(19 * 420 - 7200)


def test_mig_slices(tmp_path: Path) -> None:
    rows = []
    for m in range(60):
        rows.append(
            window(
                "n1",
                "GPU-M/1",
                T0 + 60 * m,
                pod="big",
                busy=60.0,
                model="NVIDIA H100 80GB HBM3 MIG 3g.40gb",
            )
        )
        rows.append(
            window(
                "n1", "GPU-M/2", T0 + 60 * m, pod="small", busy=60.0, model="NVIDIA H100 80GB HBM3"
            )
        )
    win = write_windows(tmp_path / "win", rows)
    profiles = pa.table(
        {
            "window_start": pa.array([T0 * 1000], pa.timestamp("ms", tz="UTC")),
            "window_end": pa.array([(T0 + 60) * 1000], pa.timestamp("ms", tz="UTC")),
            "UUID": ["GPU-M"],
            "GPU_I_ID": ["2"],
            "GPU_I_PROFILE": ["1g.10gb"],
            "value": [1.0],
            "samples": pa.array([1], pa.int64()),
        }
    )
    from gpuledger.sink import ArrowSink

    ArrowSink(win).write({"mig_profiles": profiles}, batch_key="m")
    bill = write_bill(tmp_path / "bill.csv", [gpu_bill_row("i-1", T0, T0 + 3600, "7.00000000000")])
    res = _resources(tmp_path, {"n1": "i-1"})
    t = {
        r["AllocatedResourceId"]: r
        for r in allocate([bill], [win], resources=res).allocated_costs.to_pylist()
    }
    assert t["team-a/big"]["x_GpuSeconds"] == pytest.approx(3600 * 3 / 7)
    assert t["team-a/small"]["x_GpuSeconds"] == pytest.approx(3600 / 7)
    # weights are whole micro-GPU-seconds: 3/7 of an hour is not, so within 1e-6 USD
    near = {"abs": Decimal("1e-6")}
    assert t["team-a/big"]["EffectiveCost"] == pytest.approx(Decimal(3), **near)
    assert t["team-a/small"]["EffectiveCost"] == pytest.approx(Decimal(1), **near)
    assert t[None]["EffectiveCost"] == pytest.approx(Decimal(3), **near)  # 3 slices unused
    assert sum(r["EffectiveCost"] for r in t.values()) == 7
    (win / "mig_profiles").rename(tmp_path / "gone")
    with pytest.raises(MappingError, match="GPU-M/2"):
        allocate([bill], [win], resources=res)


def test_partial_rows_of_two_instances_are_combined(tmp_path: Path) -> None:
    a = [window("n1", "GPU-1", T0 + 60 * m, covered=40.0, busy=20.0) for m in range(60)]
    b = [window("n1", "GPU-1", T0 + 60 * m, covered=20.0, busy=10.0) for m in range(60)]
    write_windows(tmp_path / "w1", a, writer="gpuledger-0")
    write_windows(tmp_path / "w2", b, writer="gpuledger-1")
    bill = write_bill(tmp_path / "bill.csv", [gpu_bill_row("i-1", T0, T0 + 3600, "10.00000000000")])
    res = _resources(tmp_path, {"n1": "i-1"})
    result = allocate([bill], [tmp_path / "w1", tmp_path / "w2"], resources=res)
    assert result.combined_keys == 60
    pod = next(r for r in result.allocated_costs.to_pylist() if r["AllocatedResourceId"])
    assert pod["x_GpuSeconds"] == pytest.approx(3600) and pod["x_BusyGpuSeconds"] == pytest.approx(
        1800
    )
    assert pod["EffectiveCost"] == 5


def test_resources_from_toml_parquet_config_and_rule(tmp_path: Path) -> None:
    win = write_windows(
        tmp_path / "win", [window("node-i-0abc", "GPU-1", T0 + 60 * m) for m in range(60)]
    )
    bill = write_bill(
        tmp_path / "bill.csv", [gpu_bill_row("i-0abc", T0, T0 + 3600, "1.00000000000")]
    )
    toml = tmp_path / "r.toml"
    toml.write_text('[resources]\n"node-i-0abc" = "i-0abc"\n')
    pq_path = tmp_path / "r.parquet"
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"hostname": ["node-i-0abc"], "ResourceId": ["i-0abc"]}), pq_path)
    rule = Config.from_dict({"billing": {"resource_pattern": r"node-(i-[0-9a-f]+)"}})
    inline = Config.from_dict({"billing": {"resources": {"node-i-0abc": "i-0abc"}}})
    for kwargs in (
        {"resources": toml},
        {"resources": pq_path},
        {"config": rule},
        {"config": inline},
    ):
        r = allocate([bill], [win], **kwargs)
        assert r.reconciliation["bill_rows_split"].to_pylist() == [1], kwargs
    with pytest.raises(MappingError, match="no resource mapping"):
        allocate([bill], [win])


def test_duckdb_query_of_the_docs_rolls_up_by_team(tmp_path: Path) -> None:
    import duckdb

    bill, win, res, _ = _sample_with_gpus(tmp_path)
    out = tmp_path / "out"
    r = CliRunner().invoke(
        main,
        [
            "allocate",
            "--bill",
            str(bill),
            "--windows",
            str(win),
            "--resources",
            str(res),
            "--out",
            str(out),
            "--format",
            "parquet",
        ],
    )
    assert r.exit_code == 0, r.output
    doc = (Path(__file__).resolve().parents[1] / "docs" / "billing.md").read_text()
    sql = doc.split("```sql\n", 1)[1].split("```", 1)[0]
    sql = sql.replace("'bill.csv'", f"'{bill}'").replace("'gpuledger-out/", f"'{out}/")
    got = duckdb.sql(sql).fetchall()
    teams = {row[0]: Decimal(row[2]) for row in got}
    alloc = read_table(out, "allocated_costs")
    billed = alloc.filter(pc.equal(alloc["x_PriceSource"], "bill"))
    want: dict[str, Decimal] = {}
    for t, c in zip(billed["x_Team"].to_pylist(), billed["EffectiveCost"].to_pylist(), strict=True):
        want[t or "(idle or unmonitored)"] = want.get(t or "(idle or unmonitored)", Decimal(0)) + c
    assert teams == want
    with open(bill, newline="") as f:
        total_bill = sum(
            Decimal(x["EffectiveCost"])
            for x in csv.DictReader(f)
            if x["ResourceId"] in set(alloc["ResourceId"].to_pylist())
            and x["ChargeCategory"] == "Usage"
        )
    assert sum(teams.values()) == total_bill


def test_simulated_fleet_mapped_onto_sample_ec2_rows(tmp_path: Path) -> None:
    """The simulator's GPU hosts, run for the hour of a real EC2 instance row of the sample,
    take that instance's id; a second host takes an instance billed in another hour."""
    import gpuledger
    from gpuledger.simulate import Simulation
    from gpuledger.simulate.writers import write_files
    from gpuledger.sink import ArrowSink

    rows = sample_rows()
    ec2 = [r for r in rows if r["ResourceId"].startswith("i-") and r["ChargeCategory"] == "Usage"]
    first, other = (
        ec2[0],
        next(r for r in ec2 if r["ChargePeriodStart"] != ec2[0]["ChargePeriodStart"]),
    )
    start = int(
        pc.strptime(pa.array([first["ChargePeriodStart"]]), "%Y-%m-%d %H:%M:%S", "s")[0].value
    )
    sim = Simulation("training", seed=3, start_s=start, duration_s=3600, gpus=16)
    write_files(sim, tmp_path / "sim", "prom_json")
    cfg = gpuledger.Config.from_dict({"engine": {"max_future_s": 10 * 365 * 86400.0}})
    engine = gpuledger.Engine(cfg)
    engine.push_buffer((tmp_path / "sim" / "telemetry.jsonl").read_bytes(), format="prom_json")
    ArrowSink(tmp_path / "win").write(engine.finish(), batch_key="sim")
    hosts = sorted({g.host for g in sim.gpus})
    res = _resources(tmp_path, {hosts[0]: first["ResourceId"], hosts[1]: other["ResourceId"]})
    result = allocate([SAMPLE], [tmp_path / "win"], resources=res)
    t = result.allocated_costs
    assert result.balanced
    mapped = {first["ResourceId"], other["ResourceId"]}
    split = [r for r in rows if r["ChargeCategory"] == "Usage" and r["ResourceId"] in mapped]
    assert check_every_row(SAMPLE, t) == len(split)
    mine = t.filter(pc.equal(t["ResourceId"], first["ResourceId"])).to_pylist()
    in_hour = [
        r
        for r in mine
        if r["x_PriceSource"] == "bill" and r["ChargePeriodStart"].timestamp() == start
    ]
    pods = [r for r in in_hour if r["AllocatedResourceId"]]
    assert pods and all(r["x_Team"] for r in pods)
    assert sum(
        r["x_GpuSeconds"] for r in in_hour if r["x_BillRowNumber"] == in_hour[0]["x_BillRowNumber"]
    ) == pytest.approx(8 * 3600)
    methods = set(t["AllocatedMethodId"].to_pylist())
    assert "gpuledger-unmonitored" in methods  # `other`'s hours have no telemetry
    assert "gpuledger-list-price" in methods  # hosts[1]'s hour is in no bill row of its own
