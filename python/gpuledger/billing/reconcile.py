"""The reconciliation of an allocation, per currency: the bill's total of the rows split
equals the allocated total (and each bill row equals the sum of its parts), and how it
divides into pods, idle and unmonitored; list-priced telemetry and the rows passed through
are counted beside it."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as _compute

from gpuledger.billing.bill_reader import MAPPED_OTHER, NOT_MAPPED, BillRead
from gpuledger.billing.focus import MONEY_COLUMNS, ROW_FILE, ROW_NUMBER
from gpuledger.billing.money import MONEY, to_unscaled

# pyarrow-stubs type many compute functions too narrowly for Arrow's own behaviour (a
# ChunkedArray where an Array is listed, string scalars): the calls are typed Any here and
# checked by the tests instead.
pc: Any = _compute

if TYPE_CHECKING:
    import numpy.typing as npt

__all__ = ["reconcile", "reconciliation_lines"]

_KEYS = [ROW_FILE, ROW_NUMBER]


def _sum(t: pa.Table, column: str) -> Decimal:
    v = pc.sum(t[column]).as_py() if t.num_rows else None
    return Decimal(0) if v is None else Decimal(v)


def reconcile(bill: BillRead, allocated: pa.Table) -> pa.Table:
    """One row per currency of the bill rows split (and of list-priced telemetry)."""
    rows = bill.rows.select([ROW_FILE, ROW_NUMBER, "BillingCurrency", *MONEY_COLUMNS])
    small = allocated.select(
        [
            "x_PriceSource",
            "AllocatedMethodId",
            ROW_FILE,
            ROW_NUMBER,
            "BillingCurrency",
            *MONEY_COLUMNS,
        ]
    )
    from_bill = small.filter(pc.equal(small["x_PriceSource"], "bill"))
    listed = small.filter(pc.equal(small["x_PriceSource"], "list"))
    method = from_bill["AllocatedMethodId"]
    seen: set[str] = set()
    for t in (rows, listed, bill.totals):
        seen.update(str(c) for c in t["BillingCurrency"].to_pylist() if c is not None)
    currencies = sorted(seen)
    unbalanced = _unbalanced_rows(rows, from_bill)
    out: dict[str, list[Any]] = {}

    def put(name: str, value: Any) -> None:
        out.setdefault(name, []).append(value)

    for cur in currencies:
        b = rows.filter(pc.equal(rows["BillingCurrency"], cur))
        a = from_bill.filter(pc.equal(from_bill["BillingCurrency"], cur))
        m = pc.fill_null(pc.equal(from_bill["BillingCurrency"], cur), False)
        put("BillingCurrency", cur)
        put("bill_rows_split", b.num_rows)
        balanced = True
        for c in MONEY_COLUMNS:
            bill_total, alloc_total = _sum(b, c), _sum(a, c)
            put(f"bill_{c}", bill_total)
            put(f"allocated_{c}", alloc_total)
            balanced &= bill_total == alloc_total
        for part, test in (
            ("pods", pc.invert(pc.starts_with(method, "gpuledger-idle"))),
            ("idle", pc.starts_with(method, "gpuledger-idle")),
            ("unmonitored", pc.equal(method, "gpuledger-unmonitored")),
        ):
            if part == "pods":
                test = pc.and_(test, pc.invert(pc.equal(method, "gpuledger-unmonitored")))
            put(f"{part}_EffectiveCost", _sum(from_bill.filter(pc.and_(m, test)), "EffectiveCost"))
        lst = listed.filter(pc.equal(listed["BillingCurrency"], cur))
        put("list_priced_rows", lst.num_rows)
        put("list_priced_EffectiveCost", _sum(lst, "EffectiveCost"))
        for cls, name in ((NOT_MAPPED, "not_mapped"), (MAPPED_OTHER, "mapped_not_usage")):
            t = bill.totals.filter(
                pc.and_(
                    pc.equal(bill.totals["BillingCurrency"], cur),
                    pc.equal(bill.totals["class"], cls),
                )
            )
            put(f"{name}_rows", int(pc.sum(t["rows"]).as_py() or 0) if t.num_rows else 0)
            put(f"{name}_EffectiveCost", _sum(t, "EffectiveCost"))
        bad = unbalanced.get(str(cur), 0)
        put("bill_rows_unbalanced", bad)
        put("balanced", balanced and bad == 0)
    types = {n: (MONEY if n.endswith("Cost") else None) for n in out}
    return pa.table({n: pa.array(v, types[n]) for n, v in out.items()}) if out else _empty()


def _empty() -> pa.Table:
    return pa.table(
        {"BillingCurrency": pa.array([], pa.string()), "balanced": pa.array([], pa.bool_())}
    )


def _row_keys(t: pa.Table, files: pa.Array[Any]) -> npt.NDArray[np.int64]:
    code = np.asarray(
        pc.index_in(t[ROW_FILE], value_set=files).to_numpy(zero_copy_only=False), np.int64
    )
    number = np.asarray(t[ROW_NUMBER].to_numpy(), dtype=np.int64)
    return (code << 40) | number


def _unbalanced_rows(rows: pa.Table, parts: pa.Table) -> dict[str, int]:
    """Bill rows whose parts do not sum to them, per currency, checked again from the
    written columns (not from the split's own arrays)."""
    if rows.num_rows == 0:
        return {}
    files = pc.unique(rows[ROW_FILE])
    want = _row_keys(rows, files)
    have = _row_keys(parts, files) if parts.num_rows else np.zeros(0, np.int64)
    starts = (
        np.flatnonzero(np.r_[True, have[1:] != have[:-1]]) if len(have) else np.zeros(0, np.int64)
    )
    if len(starts) == len(want) and np.array_equal(have[starts], want):  # parts in bill order
        bad = np.zeros(rows.num_rows, dtype=bool)
        for c in MONEY_COLUMNS:
            part_sums = np.add.reduceat(to_unscaled(parts[c]), starts)
            bad |= np.asarray(part_sums != to_unscaled(rows[c]), dtype=bool)
        out: dict[str, int] = {}
        currency = rows["BillingCurrency"].to_pylist()
        for i in np.flatnonzero(bad):
            cur = str(currency[i])
            out[cur] = out.get(cur, 0) + 1
        return out
    aggs: list[Any] = [(c, "sum") for c in MONEY_COLUMNS]
    sums: pa.Table = parts.group_by(_KEYS, use_threads=False).aggregate(aggs)
    joined = rows.select([*_KEYS, "BillingCurrency", *MONEY_COLUMNS]).join(
        sums, keys=_KEYS, join_type="left outer"
    )
    mismatch: Any = pa.array([False] * joined.num_rows)
    for c in MONEY_COLUMNS:
        same = pc.fill_null(pc.equal(joined[c], joined[f"{c}_sum"]), False)
        mismatch = pc.or_(mismatch, pc.invert(same))
    counts: dict[str, int] = {}
    currencies = joined["BillingCurrency"].to_pylist()
    for cur_value, is_bad in zip(currencies, mismatch.to_pylist(), strict=True):
        cur = str(cur_value)
        if is_bad:
            counts[cur] = counts.get(cur, 0) + 1
    return counts


def reconciliation_lines(table: pa.Table) -> list[str]:
    """The reconciliation as text, one block per currency."""
    lines: list[str] = []
    for r in table.to_pylist():
        cur = r["BillingCurrency"]
        ok = "equal" if r["balanced"] else "DIFFERENT"
        lines.append(f"{cur}: {r['bill_rows_split']:,} bill rows of mapped GPU nodes split")
        for c in MONEY_COLUMNS:
            lines.append(
                f"  {c:<14} bill {r[f'bill_{c}']:>26,f}  allocated {r[f'allocated_{c}']:>26,f}"
            )
        lines.append(
            f"  EffectiveCost to pods {r['pods_EffectiveCost']:,f}, "
            f"idle {r['idle_EffectiveCost']:,f}, "
            f"unmonitored {r['unmonitored_EffectiveCost']:,f}"
        )
        lines.append(f"  totals {ok}; bill rows whose parts differ: {r['bill_rows_unbalanced']}")
        lines.append(
            f"  list-priced telemetry without a bill row: {r['list_priced_rows']:,} rows, "
            f"{r['list_priced_EffectiveCost']:,f}"
        )
        lines.append(
            f"  passed through: {r['not_mapped_rows']:,} rows of other resources "
            f"({r['not_mapped_EffectiveCost']:,f}), {r['mapped_not_usage_rows']:,} "
            f"non-Usage rows of mapped nodes ({r['mapped_not_usage_EffectiveCost']:,f})"
        )
    return lines
