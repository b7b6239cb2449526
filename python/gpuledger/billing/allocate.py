"""`allocate`: splits the GPU nodes' rows of FOCUS bills among the pods that used them, by
the GPU-seconds in gpuledger's `gpu_windows` (docs/billing.md has the method)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as _compute

from gpuledger.billing.aggregate import Telemetry, aggregate_telemetry
from gpuledger.billing.bill_reader import KEEP, MAPPED_OTHER, NOT_MAPPED, BillRead, read_bills
from gpuledger.billing.focus import SPLIT_MONEY_COLUMNS
from gpuledger.billing.grid import build_grid
from gpuledger.billing.mig import instance_shares, profiles_from_tables
from gpuledger.billing.money import from_unscaled, money_from_floats, to_unscaled
from gpuledger.billing.output import (
    IDLE_METHOD,
    IDLE_SHARED_SUFFIX,
    METHOD,
    PRICE_BILL,
    UNMONITORED_METHOD,
    TagMaker,
    list_rows,
    schema_for,
)
from gpuledger.billing.reconcile import reconcile
from gpuledger.billing.resources import ResourceMap, load_table
from gpuledger.billing.settings import BASES, BillingSettings, read_settings
from gpuledger.billing.split import split_exact
from gpuledger.billing.telemetry import find_files, split_uuid
from gpuledger.billing.usage import PeriodUsage, period_usage
from gpuledger.config import Config
from gpuledger.errors import MappingError
from gpuledger.output.sink import read_table

# pyarrow-stubs type many compute functions too narrowly for Arrow's own behaviour (a
# ChunkedArray where an Array is listed, string scalars): the calls are typed Any here and
# checked by the tests instead.
pc: Any = _compute

if TYPE_CHECKING:
    import numpy.typing as npt

__all__ = ["TABLE", "Allocation", "allocate"]

TABLE = "allocated_costs"
US_PER_MS = 1000


@dataclass(frozen=True)
class Allocation:
    """The result: `allocated_costs` rows, the reconciliation per currency, the rejected bill
    rows, and figures about the inputs."""

    allocated_costs: pa.Table
    reconciliation: pa.Table
    rejected: pa.Table
    bill_rows_read: int
    telemetry_rows: int
    combined_keys: int
    window_s: float

    @property
    def balanced(self) -> bool:
        """Every currency's allocated totals equal its bill totals (and every bill row's)."""
        col = self.reconciliation["balanced"]
        return bool(pc.all(col).as_py()) if len(col) else True

    def tables(self) -> dict[str, pa.Table]:
        return {TABLE: self.allocated_costs}


def allocate(
    bills: Sequence[str | os.PathLike[str]],
    windows: Sequence[str | os.PathLike[str]],
    *,
    resources: str | os.PathLike[str] | None = None,
    basis: str | None = None,
    share_idle: bool | None = None,
    config: Config | None = None,
    window_s: int | None = None,
    reject_bad_rows: bool = False,
) -> Allocation:
    """Splits the `Usage` rows of the mapped GPU nodes of FOCUS `bills` (CSV, CSV.gz,
    Parquet) among pods by the `gpu_windows` under the gpuledger output directories
    `windows`. `resources` (CSV/Parquet/TOML hostname -> ResourceId), `basis` ("usage":
    busy GPU-seconds, or "allocation": held GPU-seconds), `share_idle` and `window_s`
    override `[billing]` of `config`. Raises BillError / MappingError / ConfigError."""
    cfg = config or Config()
    settings = read_settings(cfg.billing)
    if basis is not None:
        settings = replace(settings, basis=basis)
    if share_idle is not None:
        settings = replace(settings, share_idle=share_idle)
    if window_s is not None:
        settings = replace(settings, window_s=window_s)
    if settings.basis not in BASES:
        raise ValueError(f"basis must be one of {', '.join(BASES)}, not {settings.basis!r}")
    rmap = _resource_map(settings, resources)
    node_column = rmap.label
    # A table alone names its nodes; only a rule needs the label values of the telemetry.
    labels = [node_column] if rmap.rule is not None else []
    files = find_files(windows, label_columns=labels, window_s=settings.window_s)
    node_values = files.labels[node_column] if labels else sorted(rmap.table)
    mapping = rmap.resolve(node_values)
    resource_ids = sorted(set(mapping.values()))
    index_of = {rid: i for i, rid in enumerate(resource_ids)}
    node_resource = np.array([index_of.get(mapping.get(v, ""), -1) for v in node_values], np.int64)
    id_set = pa.array(resource_ids, pa.string())

    def classify(batch: pa.Table) -> npt.NDArray[np.int8]:
        mapped = np.asarray(
            pc.is_in(batch["ResourceId"], value_set=id_set).to_numpy(zero_copy_only=False), bool
        )
        usage = np.asarray(
            pc.fill_null(pc.equal(batch["ChargeCategory"], "Usage"), False).to_numpy(
                zero_copy_only=False
            ),
            bool,
        )
        return np.where(mapped & usage, KEEP, np.where(mapped, MAPPED_OTHER, NOT_MAPPED)).astype(
            np.int8
        )

    bill = read_bills(bills, classify, reject_bad_rows=reject_bad_rows)
    rows = bill.rows
    resource = np.asarray(
        pc.index_in(rows["ResourceId"], value_set=id_set).to_numpy(zero_copy_only=False),
        dtype=np.int64,
    )
    start = _ms(rows["ChargePeriodStart"])
    end = _ms(rows["ChargePeriodEnd"])
    grid, period_of_row = build_grid(resource, start, end)
    telemetry = aggregate_telemetry(files, grid, node_column, node_values, node_resource)
    shares = _mig_shares(telemetry, windows, settings)
    usage = period_usage(telemetry.cells, grid, shares)
    tags = TagMaker(cfg.services.service_of_pod)
    schema = schema_for(bill.columns, rows.schema)
    split_table = _split_rows(
        rows, period_of_row, grid.period_end - grid.period_start, usage, settings, tags, schema
    )
    resource_of = {host: rid for host, rid in mapping.items()}
    unbilled = list_rows(telemetry.unbilled, schema, resource_of, tags, money_from_floats)
    table = pa.concat_tables([split_table, unbilled]) if unbilled.num_rows else split_table
    reconciliation = reconcile(bill, table)
    return Allocation(
        allocated_costs=table,
        reconciliation=reconciliation,
        rejected=_rejected(bill),
        bill_rows_read=bill.rows_read,
        telemetry_rows=telemetry.rows,
        combined_keys=telemetry.combined_keys,
        window_s=files.window_ms / 1000.0,
    )


def _ms(column: pa.ChunkedArray[Any]) -> npt.NDArray[np.int64]:
    return np.asarray(column.cast(pa.int64()).to_numpy(), dtype=np.int64)


def _resource_map(
    settings: BillingSettings, resources: str | os.PathLike[str] | None
) -> ResourceMap:
    table: dict[str, str] = dict(settings.resources)
    file = resources if resources is not None else settings.resources_file
    if file is not None:
        table |= load_table(file)
    rule = settings.rule
    if rule is not None and rule.label != "hostname" and table:
        raise MappingError(
            f"the resource table maps hostnames but billing.resource_label is {rule.label!r}: "
            "use one or the other"
        )
    if not table and rule is None:
        raise MappingError(
            "no resource mapping: give --resources FILE, [billing] resources, or a rule "
            "(billing.resource_pattern)"
        )
    return ResourceMap(table, rule)


def _mig_shares(
    telemetry: Telemetry, windows: Sequence[str | os.PathLike[str]], settings: BillingSettings
) -> dict[str, float]:
    cells = telemetry.cells
    if cells.num_rows == 0:
        return {}
    _, is_mig = split_uuid(cells["gpu_uuid"])
    if not is_mig.any():
        return {}
    mig = (
        cells.filter(pa.array(is_mig))
        .group_by(["gpu_uuid"], use_threads=False)
        .aggregate([("model_name", "first")])
    )
    known = profiles_from_tables([read_table(d, settings.mig_profile_table) for d in windows])
    uuids = [str(u) for u in mig["gpu_uuid"].to_pylist()]
    models = [str(m or "") for m in mig["model_name_first"].to_pylist()]
    pairs = list(zip(uuids, models, strict=True))
    return instance_shares(pairs, known, settings.mig_profiles)


def _split_rows(
    rows: pa.Table,
    period_of_row: npt.NDArray[np.int64],
    period_ms: npt.NDArray[np.int64],
    usage: PeriodUsage,
    settings: BillingSettings,
    tags: TagMaker,
    schema: pa.Schema,
) -> pa.Table:
    """One row per (bill row, pod), plus idle and unmonitored rows, costs split exactly."""
    n_bill = rows.num_rows
    pods = usage.pods
    pod_period = np.asarray(pods["period"].to_numpy(), dtype=np.int64)
    n_periods = len(usage.gpus)
    first_pod = np.searchsorted(pod_period, np.arange(n_periods))
    pod_count = np.bincount(pod_period, minlength=n_periods) if n_periods else np.zeros(0, np.int64)
    monitored = usage.monitored[period_of_row] if n_bill else np.zeros(0, bool)
    n_pods_row = np.where(monitored, pod_count[period_of_row] if n_bill else 0, 0)
    n_parts_row = np.where(monitored, n_pods_row + 1, 1)  # pods + idle, or unmonitored
    part_bill = np.repeat(np.arange(n_bill, dtype=np.int64), n_parts_row)
    offsets = np.repeat(np.cumsum(n_parts_row) - n_parts_row, n_parts_row)
    k = np.arange(len(part_bill)) - offsets  # index of the part within its bill row
    part_period = period_of_row[part_bill]
    is_pod = monitored[part_bill] & (k < n_pods_row[part_bill])
    is_idle = monitored[part_bill] & ~is_pod
    pod_row = np.where(is_pod, first_pod[part_period] + k, 0)
    held = np.asarray(pods["held_s"].to_numpy(), dtype=np.float64)
    busy = np.asarray(pods["busy_s"].to_numpy(), dtype=np.float64)
    basis_s = busy if settings.basis == "usage" else held
    w_pod = np.rint(basis_s * 1e6).astype(np.int64)
    weights = np.where(is_pod, w_pod[pod_row] if len(w_pod) else 0, 0).astype(np.int64)
    capacity_us = usage.gpus * period_ms * US_PER_MS
    starts = (
        np.flatnonzero(np.r_[True, part_bill[1:] != part_bill[:-1]])
        if len(part_bill)
        else np.zeros(0, np.int64)
    )
    pod_sum = np.add.reduceat(weights, starts) if len(starts) else np.zeros(0, np.int64)
    idle_w = (
        np.maximum(capacity_us[period_of_row] - pod_sum, 0) if n_bill else np.zeros(0, np.int64)
    )
    shared = np.zeros(n_bill, dtype=bool)
    if settings.share_idle:
        shared = pod_sum > 0
        idle_w = np.where(shared, 0, idle_w)
    weights = np.where(is_idle, idle_w[part_bill] if n_bill else 0, weights)
    weights = np.where(~monitored[part_bill], 1, weights).astype(np.int64)
    take_bill: Any = pa.array(part_bill)
    out = rows.take(take_bill)
    for c in SPLIT_MONEY_COLUMNS:
        if c in rows.column_names:
            parts = split_exact(to_unscaled(rows[c]), part_bill, weights)
            out = out.set_column(out.schema.get_field_index(c), c, from_unscaled(parts))
    # x_ columns: GPU-seconds of each part.
    period_s = period_ms / 1000.0
    held_sum = (
        np.bincount(pod_period, weights=held, minlength=n_periods) if n_periods else np.zeros(0)
    )
    idle_gpu_s = np.maximum(usage.capacity_s - held_sum, 0.0)
    p_part = part_period
    gpu_s = np.where(
        is_pod,
        held[pod_row] if len(held) else 0.0,
        np.where(is_idle, idle_gpu_s[p_part] if n_periods else 0.0, np.nan),
    )
    busy_s = np.where(
        is_pod,
        busy[pod_row] if len(busy) else 0.0,
        np.where(is_idle, usage.unallocated_busy_s[p_part] if n_periods else 0.0, np.nan),
    )
    unmonitored_gpu_s = usage.gpus[p_part] * period_s[p_part] if n_periods else np.zeros(0)
    gpu_s = np.where(
        ~monitored[part_bill], np.where(unmonitored_gpu_s > 0, unmonitored_gpu_s, np.nan), gpu_s
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        util = np.where(gpu_s > 0, busy_s / np.where(gpu_s > 0, gpu_s, 1.0), np.nan)
    # Text columns, vectorized: codes into small vocabularies, JSON per distinct pod.
    method = METHOD[settings.basis]
    vocab = [
        method,
        method + IDLE_SHARED_SUFFIX,
        IDLE_METHOD,
        IDLE_METHOD + IDLE_SHARED_SUFFIX,
        UNMONITORED_METHOD,
    ]
    sh = shared[part_bill] if n_bill else np.zeros(0, bool)
    code = np.where(is_pod, np.where(sh, 1, 0), np.where(is_idle, np.where(sh, 3, 2), 4))
    codes: Any = pa.array(code.astype(np.int32))
    methods = pa.array(vocab, pa.string()).take(codes)
    pod_idx = pa.array(np.where(is_pod, pod_row, 0).astype(np.int64), mask=~is_pod)
    pod_id = pc.binary_join_element_wise(pods["namespace"], pods["pod"], "/")
    res_id = _arr(pc.take(pod_id, pod_idx))
    res_name = _arr(pc.take(pods["pod"], pod_idx))
    team = _arr(pc.take(pods["team"], pod_idx))
    pod_tags = _pod_tags(pods, tags)
    idle_host = _idle_hosts(pods, pod_period, n_periods, rows, period_of_row)
    idle_tags = _idle_tags(idle_host, part_period, sh, is_idle, tags)
    tag_text = pc.if_else(pa.array(is_pod), pc.take(pod_tags, pod_idx), idle_tags)
    zeros: Any = pa.array(np.zeros(len(part_bill), np.int32))
    extra: dict[str, pa.Array[Any]] = {
        "AllocatedMethodId": methods,
        "AllocatedResourceId": res_id,
        "AllocatedResourceName": res_name,
        "AllocatedTags": _arr(tag_text),
        "x_GpuSeconds": pa.array(gpu_s, pa.float64(), from_pandas=True),
        "x_BusyGpuSeconds": pa.array(busy_s, pa.float64(), from_pandas=True),
        "x_IdleGpuSeconds": pa.array(gpu_s - busy_s, pa.float64(), from_pandas=True),
        "x_UtilizationMean": pa.array(util, pa.float64(), from_pandas=True),
        "x_Team": team,
        "x_PriceSource": pa.array([PRICE_BILL], pa.string()).take(zeros),
    }
    columns = []
    for f in schema:
        columns.append(extra[f.name] if f.name in extra else out[f.name].combine_chunks())
    return pa.Table.from_arrays(columns, schema=schema)


def _arr(value: Any) -> pa.Array[Any]:
    return value.combine_chunks() if isinstance(value, pa.ChunkedArray) else value


def _pod_tags(pods: pa.Table, tags: TagMaker) -> pa.Array[Any]:
    """AllocatedTags of every pods row, the JSON built once per distinct pod."""
    cols = ["namespace", "pod", "team", "model_name", "hostname"]
    key = pc.binary_join_element_wise(*[pods[c] for c in cols], "\x1f")
    enc: Any = _arr(pc.dictionary_encode(key))
    texts = [tags.pod(*k.split("\x1f")) for k in enc.dictionary.to_pylist()]
    return pa.array(texts, pa.string()).take(enc.indices)


def _idle_hosts(
    pods: pa.Table,
    pod_period: npt.NDArray[np.int64],
    n_periods: int,
    rows: pa.Table,
    period_of_row: npt.NDArray[np.int64],
) -> npt.NDArray[np.object_]:
    """A node name per period: a hostname its pods ran on, else the bill's ResourceName."""
    host: npt.NDArray[np.object_] = np.full(n_periods, "", dtype=object)
    if len(period_of_row):
        names = np.asarray(
            pc.fill_null(rows["ResourceName"], "").to_numpy(zero_copy_only=False), dtype=object
        )
        host[period_of_row] = names
    if len(pod_period):
        hostnames = np.asarray(pods["hostname"].to_numpy(zero_copy_only=False), dtype=object)
        first = np.r_[True, pod_period[1:] != pod_period[:-1]]
        host[pod_period[first]] = hostnames[first]
    return host


def _idle_tags(
    host: npt.NDArray[np.object_],
    part_period: npt.NDArray[np.int64],
    shared: npt.NDArray[np.bool_],
    is_idle: npt.NDArray[np.bool_],
    tags: TagMaker,
) -> pa.Array[Any]:
    """AllocatedTags of idle parts (null elsewhere), the JSON built once per (node, shared)."""
    n = len(part_period)
    if n == 0:
        return pa.array([], pa.string())
    names = host[part_period] if len(host) else np.full(n, "", dtype=object)
    key = pa.array(np.where(shared, "1", "0").astype(object) + names.astype(object), pa.string())
    enc: Any = _arr(pc.dictionary_encode(key))
    texts = [tags.idle(k[1:], k[0] == "1") for k in enc.dictionary.to_pylist()]
    codes = np.asarray(enc.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
    idx: Any = pa.array(np.where(is_idle, codes, 0), mask=~is_idle)
    return pa.array(texts, pa.string()).take(idx)


def _rejected(bill: BillRead) -> pa.Table:
    return pa.table(
        {
            "file": pa.array([r.file for r in bill.rejected], pa.string()),
            "row": pa.array([r.row for r in bill.rejected], pa.int64()),
            "column": pa.array([r.column for r in bill.rejected], pa.string()),
            "reason": pa.array([r.reason for r in bill.rejected], pa.string()),
        }
    )
