"""A FOCUS 1.0 bill for a simulated fleet, in the exact shape of the FinOps sample
(`tests/data/focus-sample-1.0`): its 44 columns in its order, `NULL` for nulls, times as
`YYYY-MM-DD HH:MM:SS` (UTC), costs with 11 decimals, JSON `Tags`. One `Usage` row per GPU
host per hour it ran; a commitment (savings plan) covers part of the fleet, so its
EffectiveCost is below ListCost and its BilledCost is 0. `resources.csv` maps each host to
its instance id for `gpuledger allocate --resources`."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

from gpuledger.simulate.fleet import SimGpu

__all__ = ["FOCUS_COLUMNS", "INSTANCE_TYPES", "instance_id", "write_bill"]

FOCUS_COLUMNS = (
    "AvailabilityZone",
    "BilledCost",
    "BillingAccountId",
    "BillingAccountName",
    "BillingCurrency",
    "BillingPeriodEnd",
    "BillingPeriodStart",
    "ChargeCategory",
    "ChargeClass",
    "ChargeDescription",
    "ChargeFrequency",
    "ChargePeriodEnd",
    "ChargePeriodStart",
    "CommitmentDiscountCategory",
    "CommitmentDiscountId",
    "CommitmentDiscountName",
    "CommitmentDiscountStatus",
    "CommitmentDiscountType",
    "ConsumedQuantity",
    "ConsumedUnit",
    "ContractedCost",
    "ContractedUnitPrice",
    "EffectiveCost",
    "InvoiceIssuerName",
    "ListCost",
    "ListUnitPrice",
    "PricingCategory",
    "PricingQuantity",
    "PricingUnit",
    "ProviderName",
    "PublisherName",
    "RegionId",
    "RegionName",
    "ResourceId",
    "ResourceName",
    "ResourceType",
    "ServiceCategory",
    "Id",
    "ServiceName",
    "SkuId",
    "SkuPriceId",
    "SubAccountId",
    "SubAccountName",
    "Tags",
)
"""The columns of the FinOps FOCUS 1.0 sample, in its order."""

INSTANCE_TYPES = {
    "NVIDIA H100 80GB HBM3": ("p5.48xlarge", Decimal("98.32")),
    "NVIDIA A100-SXM4-80GB": ("p4de.24xlarge", Decimal("40.96576")),
    "NVIDIA L40S": ("g6e.48xlarge", Decimal("30.13118")),
}
"""GPU model -> (instance type, on-demand USD per instance-hour for 8 GPUs)."""
COMMITTED_RATE = Decimal("0.55")  # a 3-year savings plan: 45 % off the on-demand rate
SAVINGS_PLAN = "arn:aws:savingsplans::123456789012:savingsplan/6f1d1c2e-gpuledger-sim"
_Q = Decimal("0.00000000001")  # the sample's 11 decimals


def instance_id(host: str) -> str:
    """A stable EC2-style instance id for a simulated host."""
    return "i-0" + hashlib.sha256(host.encode()).hexdigest()[:16]


def _text(v: str | None) -> str:
    return "NULL" if v is None else '"' + v.replace('"', '""') + '"'


def _num(v: Decimal) -> str:
    return str(v.quantize(_Q))


def _time(s: int) -> str:
    return datetime.fromtimestamp(s, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def write_bill(
    gpus: Sequence[SimGpu],
    start_s: int,
    duration_s: int,
    out_dir: str | Path,
    *,
    committed_share: float = 0.5,
) -> tuple[Path, Path]:
    """Writes OUT/bill.focus.csv and OUT/resources.csv for the hosts of `gpus` over the
    hours [start, start + duration) touches; returns both paths. The first
    `committed_share` of the hosts (by name) run under the savings plan."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    hosts: dict[str, tuple[str, int]] = {}
    for g in gpus:
        model, n = hosts.get(g.host, (g.model.name, 0))
        hosts[g.host] = (model, n + 1)
    names = sorted(hosts)
    committed = set(names[: round(len(names) * committed_share)])
    first = start_s - start_s % 3600
    last = start_s + duration_s
    month = datetime.fromtimestamp(first, tz=timezone.utc).replace(day=1, hour=0)
    next_month = month.replace(year=month.year + month.month // 12, month=month.month % 12 + 1)
    period = (next_month.strftime("%Y-%m-%d %H:%M:%S"), month.strftime("%Y-%m-%d %H:%M:%S"))
    bill = out / "bill.focus.csv"
    row_id = 1
    with open(bill, "w", encoding="utf-8", newline="\n") as f:
        f.write(",".join(f'"{c}"' for c in FOCUS_COLUMNS) + "\n")
        for t in range(first, last, 3600):
            for host in names:
                model, n = hosts[host]
                itype, rate8 = INSTANCE_TYPES.get(model, ("p5.48xlarge", Decimal("98.32")))
                rate = rate8 * n / 8
                is_committed = host in committed
                effective = rate * COMMITTED_RATE if is_committed else rate
                billed = Decimal(0) if is_committed else rate
                team = host.rsplit("-", 1)[0]
                tags = json.dumps({"cluster": "gpuledger-sim", "nodepool": team})
                values = {
                    "AvailabilityZone": _text("us-east-1a"),
                    "BilledCost": _num(billed),
                    "BillingAccountId": _text("123456789012"),
                    "BillingAccountName": _text("gpuledger-sim"),
                    "BillingCurrency": _text("USD"),
                    "BillingPeriodEnd": _text(period[0]),
                    "BillingPeriodStart": _text(period[1]),
                    "ChargeCategory": _text("Usage"),
                    "ChargeClass": "NULL",
                    "ChargeDescription": _text(
                        f"${rate:f} per {'Compute Savings Plan' if is_committed else 'On Demand'} "
                        f"Linux {itype} Instance Hour"
                    ),
                    "ChargeFrequency": _text("Usage-Based"),
                    "ChargePeriodEnd": _text(_time(t + 3600)),
                    "ChargePeriodStart": _text(_time(t)),
                    "CommitmentDiscountCategory": _text("Spend") if is_committed else "NULL",
                    "CommitmentDiscountId": _text(SAVINGS_PLAN) if is_committed else "NULL",
                    "CommitmentDiscountName": "NULL",
                    "CommitmentDiscountStatus": _text("Used") if is_committed else "NULL",
                    "CommitmentDiscountType": _text("Compute Savings Plan")
                    if is_committed
                    else "NULL",
                    "ConsumedQuantity": "1.000000000000000",
                    "ConsumedUnit": _text("Hours"),
                    "ContractedCost": _num(effective),
                    "ContractedUnitPrice": _num(effective),
                    "EffectiveCost": _num(effective),
                    "InvoiceIssuerName": _text("Amazon Web Services, Inc."),
                    "ListCost": _num(rate),
                    "ListUnitPrice": _text(f"{rate:f}"),
                    "PricingCategory": _text("Committed" if is_committed else "Standard"),
                    "PricingQuantity": "1.00000000000",
                    "PricingUnit": _text("Hours"),
                    "ProviderName": _text("AWS"),
                    "PublisherName": _text("Amazon Web Services, Inc."),
                    "RegionId": _text("us-east-1"),
                    "RegionName": _text("US East (N. Virginia)"),
                    "ResourceId": _text(instance_id(host)),
                    "ResourceName": _text(host),
                    "ResourceType": _text("instance"),
                    "ServiceCategory": _text("Compute"),
                    "Id": str(row_id),
                    "ServiceName": _text("Amazon Elastic Compute Cloud"),
                    "SkuId": _text(itype.upper().replace(".", "")),
                    "SkuPriceId": _text(f"{itype.upper().replace('.', '')}.OD"),
                    "SubAccountId": _text("210987654321"),
                    "SubAccountName": _text("gpu-platform"),
                    "Tags": _text(tags),
                }
                f.write(",".join(values[c] for c in FOCUS_COLUMNS) + "\n")
                row_id += 1
    resources = out / "resources.csv"
    with open(resources, "w", encoding="utf-8", newline="\n") as f:
        f.write("hostname,ResourceId\n")
        for host in names:
            f.write(f"{host},{instance_id(host)}\n")
    return bill, resources
