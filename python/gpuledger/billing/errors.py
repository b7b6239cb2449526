"""The exceptions of bill allocation (all `gpuledger.GpuledgerError`s and `ValueError`s)."""

from __future__ import annotations

from gpuledger._engine import GpuledgerError

__all__ = ["BillError", "BillingError", "MappingError", "ReconciliationError"]


class BillingError(GpuledgerError, ValueError):
    """Bill allocation cannot proceed; the message names the file, row or setting at fault."""


class BillError(BillingError):
    """A bill that cannot be read: not a FOCUS CSV/Parquet file, a required column missing,
    or an unparseable row (named by file, row number and column)."""


class MappingError(BillingError):
    """The hostname -> ResourceId mapping or the MIG profiles cannot be used as given."""


class ReconciliationError(BillingError):
    """The allocated parts do not add up to the bill (a bug: never expected)."""
