"""The bill next to the list price: when an input directory holds `allocated_costs` (FOCUS
columns, issue 21), the headline shows billed spend (`EffectiveCost`) beside list-price
spend (`ListCost`), per billing currency; without it, it says the bill was not allocated.
Kept apart so the columns can follow that table as it settles."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import pyarrow as pa

from gpuledger.report.inputs import Inputs
from gpuledger.report.period import Period

__all__ = ["TABLE", "BillingResult", "read_billing"]

TABLE = "allocated_costs"
_MONEY = pa.decimal128(38, 10)
EXPECTED = pa.schema(
    [  # type: ignore[arg-type]  # (name, type) pairs: the stubs want DataType, not object
        ("EffectiveCost", _MONEY),
        ("ListCost", _MONEY),
        ("BilledCost", _MONEY),
        ("BillingCurrency", pa.string()),
        ("ChargePeriodStart", pa.timestamp("ms", tz="UTC")),
        ("x_Team", pa.string()),
    ]
)


@dataclass(frozen=True)
class BillingResult:
    """Sums per currency: {currency: (effective, list, billed)}, exact decimals."""

    by_currency: dict[str, tuple[Decimal, Decimal, Decimal]]
    rows: int


def read_billing(inputs: Inputs, period: Period) -> BillingResult | None:
    """None when no input directory has a usable `allocated_costs` table."""
    if TABLE not in inputs.files:
        return None
    t = inputs.read_all(TABLE, EXPECTED.names, EXPECTED)
    if t is None:
        return None
    t = period.filter(t, "ChargePeriodStart")
    sums = t.group_by(["BillingCurrency"], use_threads=False).aggregate(
        [("EffectiveCost", "sum"), ("ListCost", "sum"), ("BilledCost", "sum")]
    )
    out: dict[str, tuple[Decimal, Decimal, Decimal]] = {}
    for row in sums.to_pylist():  # one row per currency
        out[str(row["BillingCurrency"])] = (
            Decimal(row["EffectiveCost_sum"] or 0),
            Decimal(row["ListCost_sum"] or 0),
            Decimal(row["BilledCost_sum"] or 0),
        )
    return BillingResult(by_currency=out, rows=t.num_rows)
