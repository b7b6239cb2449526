"""Bill allocation: FOCUS bills split among pods by the GPU-seconds gpuledger measured
(docs/billing.md). `allocate(...)` returns Arrow tables; `gpuledger allocate` is the command."""

from gpuledger.billing.allocate import TABLE, Allocation, allocate
from gpuledger.billing.money import MONEY
from gpuledger.errors import BillError, BillingError, MappingError, ReconciliationError

__all__ = [
    "MONEY",
    "TABLE",
    "Allocation",
    "BillError",
    "BillingError",
    "MappingError",
    "ReconciliationError",
    "allocate",
]
