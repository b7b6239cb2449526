"""Bad bills are a clear error naming file, row and column, or (asked for) rejected rows
counted with their row numbers; bills as gzip and Parquet read the same as CSV; exact
splits under random usage and random costs (hypothesis)."""

from __future__ import annotations

import gzip
from decimal import Decimal
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest
from billing_helpers import (
    T0,
    check_every_row,
    gpu_bill_row,
    header,
    window,
    write_bill,
    write_windows,
)
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gpuledger.billing import BillError, allocate
from gpuledger.billing.bill_reader import read_bills
from gpuledger.cli import main


def _all(b: pa.Table) -> np.ndarray:
    return np.ones(b.num_rows, dtype=np.int8)


def _setup(tmp: Path, rows: list[dict[str, str]]) -> tuple[Path, Path, Path]:
    bill = write_bill(tmp / "bill.csv", rows)
    win = write_windows(tmp / "win", [window("n1", "GPU-1", T0 + 60 * m) for m in range(60)])
    res = tmp / "r.csv"
    res.write_text("hostname,ResourceId\nn1,i-1\n")
    return bill, win, res


def test_missing_required_column_names_file_and_column(tmp_path: Path) -> None:
    cols = [c for c in header() if c != "EffectiveCost"]
    bill = write_bill(tmp_path / "b.csv", [gpu_bill_row("i-1", T0, T0 + 3600, "1")], cols)
    with pytest.raises(
        BillError, match=r"b\.csv: not a FOCUS bill: missing required column\(s\) EffectiveCost"
    ):
        read_bills([bill], _all)


@pytest.mark.parametrize(
    ("change", "column", "reason"),
    [
        ({"EffectiveCost": "12,5"}, "EffectiveCost", "not a decimal number"),
        ({"BilledCost": "0.1234567890123456789"}, "BilledCost", "at most 18 decimal places"),
        ({"ListCost": "NULL"}, "ListCost", "empty"),
        ({"ChargePeriodStart": "yesterday"}, "ChargePeriodStart", "not a timestamp"),
        ({"ChargePeriodEnd": "2026-11-27 00:00:00"}, "ChargePeriodEnd", "not after"),
        ({"Tags": "{not json"}, "Tags", "not a JSON object"),
        ({"BillingCurrency": "NULL"}, "BillingCurrency", "empty"),
    ],
)
def test_unparseable_row_is_an_error_or_a_counted_rejection(
    tmp_path: Path, change: dict[str, str], column: str, reason: str
) -> None:
    good = gpu_bill_row("i-1", T0, T0 + 3600, "3.00000000000")
    bill, win, res = _setup(tmp_path, [good, good | change, good])
    with pytest.raises(BillError, match=rf"bill\.csv: row 2: {column}: .*{reason}"):
        allocate([bill], [win], resources=res)
    result = allocate([bill], [win], resources=res, reject_bad_rows=True)
    rejected = result.rejected.to_pylist()
    assert [(r["row"], r["column"]) for r in rejected] == [(2, column)]
    assert result.reconciliation["bill_rows_split"].to_pylist() == [2]
    assert check_every_row(bill, result.allocated_costs) == 2
    out = CliRunner().invoke(
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
            str(tmp_path / "o"),
            "--reject-bad-rows",
        ],
    )
    assert out.exit_code == 0 and "1 bill rows rejected" in out.output and "row 2" in out.output
    err = CliRunner().invoke(
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
            str(tmp_path / "o2"),
        ],
    )
    assert err.exit_code != 0 and "row 2" in err.output


def test_wrong_field_count_row(tmp_path: Path) -> None:
    good = gpu_bill_row("i-1", T0, T0 + 3600, "3.00000000000")
    bill, win, res = _setup(tmp_path, [good, good])
    with open(bill, "a") as f:
        f.write('"only","three","fields"\n')
    with pytest.raises(BillError, match=r"row 3: 3 fields, the header has 44"):
        allocate([bill], [win], resources=res)
    result = allocate([bill], [win], resources=res, reject_bad_rows=True)
    assert [(r["row"], r["column"]) for r in result.rejected.to_pylist()] == [(3, None)]


def test_not_a_bill_and_gzip_and_parquet_read_the_same(tmp_path: Path) -> None:
    junk = tmp_path / "junk.csv"
    junk.write_text("a,b\n1,2\n")
    with pytest.raises(BillError, match="missing required column"):
        read_bills([junk], _all)
    rows = [
        gpu_bill_row("i-1", T0 + 3600 * h, T0 + 3600 * (h + 1), f"{h}.12345678901")
        for h in range(5)
    ]
    bill = write_bill(tmp_path / "bill.csv", rows)
    gz = tmp_path / "bill.csv.gz"
    gz.write_bytes(gzip.compress(bill.read_bytes()))
    parquet = tmp_path / "bill.parquet"
    table = pcsv.read_csv(
        bill, convert_options=pcsv.ConvertOptions(null_values=["NULL"], strings_can_be_null=True)
    )
    table = table.set_column(
        table.schema.get_field_index("EffectiveCost"),
        "EffectiveCost",
        table["EffectiveCost"].cast(pa.decimal128(20, 11)),
    )
    pq.write_table(table, parquet)
    want = read_bills([bill], _all).rows.drop_columns(["x_BillFile"])
    for other in (gz, parquet):
        got = read_bills([other], _all).rows.drop_columns(["x_BillFile"])
        for c in ("EffectiveCost", "BilledCost", "ChargePeriodStart", "ResourceId", "Tags"):
            assert got[c].to_pylist() == want[c].to_pylist(), (other, c)


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    usage=st.lists(
        st.lists(st.tuples(st.integers(0, 3), st.floats(0, 60)), min_size=1, max_size=4),
        min_size=1,
        max_size=3,
    ),
    costs=st.lists(
        st.decimals(
            min_value=Decimal("-1000"),
            max_value=Decimal("100000"),
            places=18,
            allow_nan=False,
            allow_infinity=False,
        ),
        min_size=1,
        max_size=3,
    ),
)
def test_random_usage_and_costs_split_exactly(
    tmp_path_factory: pytest.TempPathFactory, usage: list, costs: list
) -> None:
    tmp = tmp_path_factory.mktemp("h")
    win_rows = []
    bill_rows = []
    for h, gpus in enumerate(usage):
        for g, (pod, busy) in enumerate(gpus):
            for m in range(0, 60, 15):
                win_rows.append(
                    window(
                        "n1",
                        f"GPU-{g}",
                        T0 + 3600 * h + 60 * m,
                        pod=f"p{pod}" if pod else "",
                        ns="ns" if pod else "",
                        busy=busy,
                    )
                )
        for c in costs:
            bill_rows.append(gpu_bill_row("i-1", T0 + 3600 * h, T0 + 3600 * (h + 1), str(c)))
    bill = write_bill(tmp / "bill.csv", bill_rows)
    win = write_windows(tmp / "win", win_rows)
    res = tmp / "r.csv"
    res.write_text("hostname,ResourceId\nn1,i-1\n")
    for basis in ("usage", "allocation"):
        for share in (False, True):
            r = allocate([bill], [win], resources=res, basis=basis, share_idle=share)
            assert r.balanced
            assert check_every_row(bill, r.allocated_costs) == len(bill_rows)
            parts = r.allocated_costs.to_pylist()
            for row in parts:  # each part within one unit of its exact proportional share
                if row["AllocatedResourceId"] and row["x_BillRowNumber"]:
                    weight = row["x_BusyGpuSeconds"] if basis == "usage" else row["x_GpuSeconds"]
                    if not share:
                        c = Decimal(bill_rows[row["x_BillRowNumber"] - 1]["EffectiveCost"])
                        gpus = max(len(g) for g in usage)  # GPUs the node ever showed
                        exact = c * Decimal(round(weight * 1e6)) / Decimal(gpus * 3600 * 10**6)
                        assert abs(row["EffectiveCost"] - exact) <= Decimal("1e-18")
