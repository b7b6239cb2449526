"""The FOCUS columns gpuledger reads and writes: which a bill must have, which hold money or
times, and the columns `allocated_costs` adds after the bill's own (docs/schema.md)."""

from __future__ import annotations

import pyarrow as pa

__all__ = [
    "ALLOCATED_COLUMNS",
    "MONEY_COLUMNS",
    "OPTIONAL_MONEY_COLUMNS",
    "REQUIRED_COLUMNS",
    "ROW_FILE",
    "ROW_NUMBER",
    "SPLIT_MONEY_COLUMNS",
    "TIME",
    "TIME_COLUMNS",
]

TIME = pa.timestamp("ms", tz="UTC")

REQUIRED_COLUMNS = (
    "BilledCost",
    "BillingCurrency",
    "ChargeCategory",
    "ChargePeriodEnd",
    "ChargePeriodStart",
    "EffectiveCost",
    "ListCost",
    "ResourceId",
    "ResourceName",
    "ResourceType",
    "ServiceName",
    "SkuId",
    "SubAccountId",
    "Tags",
)
"""The columns of the spec (billing.md) that every bill must have, FOCUS 1.0 to 1.2."""

MONEY_COLUMNS = ("BilledCost", "EffectiveCost", "ListCost")
"""Cost columns every bill has; they must hold a decimal on every row."""
OPTIONAL_MONEY_COLUMNS = ("ContractedCost",)
"""Cost columns read as money when present; null stays null."""
SPLIT_MONEY_COLUMNS = (*MONEY_COLUMNS, *OPTIONAL_MONEY_COLUMNS)
"""Every cost column an allocated row holds its part of (the parts sum to the bill's)."""
TIME_COLUMNS = ("ChargePeriodStart", "ChargePeriodEnd")
OPTIONAL_TIME_COLUMNS = ("BillingPeriodStart", "BillingPeriodEnd")

ROW_FILE = "x_BillFile"
ROW_NUMBER = "x_BillRowNumber"

ALLOCATED_COLUMNS: tuple[tuple[str, pa.DataType], ...] = (
    ("AllocatedMethodId", pa.string()),
    ("AllocatedResourceId", pa.string()),
    ("AllocatedResourceName", pa.string()),
    ("AllocatedTags", pa.string()),
    ("x_GpuSeconds", pa.float64()),
    ("x_BusyGpuSeconds", pa.float64()),
    ("x_IdleGpuSeconds", pa.float64()),
    ("x_UtilizationMean", pa.float64()),
    ("x_Team", pa.string()),
    ("x_PriceSource", pa.string()),
    (ROW_FILE, pa.string()),
    (ROW_NUMBER, pa.int64()),
)
"""The columns `allocated_costs` appends after the bill's own, in order."""
