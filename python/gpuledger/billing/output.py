"""Builds the rows of `allocated_costs`: the bill's own columns copied, the allocated costs,
the FOCUS 1.3 allocation columns and gpuledger's x_ columns (docs/schema.md)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from gpuledger.billing.focus import ALLOCATED_COLUMNS, SPLIT_MONEY_COLUMNS
from gpuledger.billing.money import MONEY

if TYPE_CHECKING:
    import numpy.typing as npt

__all__ = ["METHOD", "PRICE_BILL", "PRICE_LIST", "TagMaker", "list_rows", "schema_for"]

METHOD = {
    "usage": "gpuledger-busy-gpu-seconds",
    "allocation": "gpuledger-held-gpu-seconds",
}
IDLE_METHOD = "gpuledger-idle"
IDLE_SHARED_SUFFIX = "-idle-shared"
UNMONITORED_METHOD = "gpuledger-unmonitored"
LIST_METHOD = "gpuledger-list-price"
PRICE_BILL, PRICE_LIST = "bill", "list"


def schema_for(bill_columns: list[str], bill_schema: pa.Schema) -> pa.Schema:
    """The bill's columns (as read), then ALLOCATED_COLUMNS (a bill column of the same name,
    e.g. a FOCUS 1.3 AllocatedTags, is replaced)."""
    ours = {name for name, _ in ALLOCATED_COLUMNS}
    fields = [bill_schema.field(c) for c in bill_columns if c not in ours]
    return pa.schema(fields + [pa.field(n, t) for n, t in ALLOCATED_COLUMNS])


class TagMaker:
    """AllocatedTags JSON per distinct (namespace, pod, team, service, model, node), cached:
    pods repeat over many charge periods."""

    def __init__(self, service_of: Callable[[str, str], str | None]) -> None:
        self.service_of = service_of
        self.cache: dict[tuple[str, ...], str] = {}

    def pod(self, namespace: str, pod: str, team: str, model: str, node: str) -> str:
        key = (namespace, pod, team, model, node)
        text = self.cache.get(key)
        if text is None:
            tags: dict[str, str] = {"namespace": namespace, "pod": pod, "team": team}
            service = self.service_of(namespace, pod)
            if service:
                tags["service"] = service
            tags |= {"gpu_model": model, "node": node}
            text = self.cache[key] = json.dumps(tags, ensure_ascii=False)
        return text

    def idle(self, node: str, shared: bool) -> str:
        key = ("\0idle", node, str(shared))
        text = self.cache.get(key)
        if text is None:
            tags = {"allocation": "idle-shared" if shared else "idle", "node": node}
            text = self.cache[key] = json.dumps(tags, ensure_ascii=False)
        return text


def list_rows(
    groups: pa.Table,
    schema: pa.Schema,
    resource_of: Mapping[str, str],
    tags: TagMaker,
    money: Callable[[Any], pa.Array[Any]],
) -> pa.Table:
    """Rows for telemetry no bill row covers: one per (node, UTC hour, pod), priced at the
    configuration's list price (gpu_windows cost_usd), x_PriceSource = "list". `groups`:
    hostname, hour (ms), namespace, pod, team, model_name, covered_s, busy_gpu_s, cost_usd."""
    n = groups.num_rows
    hosts = groups["hostname"].to_pylist()
    pods = groups["pod"].to_pylist()
    namespaces = groups["namespace"].to_pylist()
    teams = groups["team"].to_pylist()
    models = groups["model_name"].to_pylist()
    hour = np.asarray(groups["hour"].to_numpy(), dtype=np.int64)
    cost = money(groups["cost_usd"])
    held = np.asarray(groups["covered_s"].to_numpy(), dtype=np.float64)
    busy = np.minimum(np.asarray(groups["busy_gpu_s"].to_numpy(), dtype=np.float64), held)
    allocated = [bool(p) for p in pods]
    cols: dict[str, pa.Array[Any]] = {}
    for f in schema:
        cols[f.name] = pa.nulls(n, f.type)
    text = pa.string()

    def put(name: str, values: Any, kind: pa.DataType = text) -> None:
        if name in cols:
            cols[name] = values if isinstance(values, pa.Array) else pa.array(values, kind)

    put("ResourceId", [resource_of.get(h) if h is not None else None for h in hosts])
    put("ResourceName", hosts)
    put("ChargeCategory", ["Usage"] * n)
    put(
        "ChargeDescription", ["GPU time without a bill row, priced at the gpuledger list price"] * n
    )
    put("BillingCurrency", ["USD"] * n)
    put(
        "ChargePeriodStart",
        pa.array(hour, pa.timestamp("ms")).cast(schema.field("ChargePeriodStart").type),
    )
    put(
        "ChargePeriodEnd",
        pa.array(hour + 3_600_000, pa.timestamp("ms")).cast(schema.field("ChargePeriodEnd").type),
    )
    for c in SPLIT_MONEY_COLUMNS:
        if c != "ContractedCost":
            put(c, cost, MONEY)
    put("AllocatedMethodId", [LIST_METHOD] * n)
    put(
        "AllocatedResourceId",
        [f"{ns}/{p}" if p else None for ns, p in zip(namespaces, pods, strict=True)],
    )
    put("AllocatedResourceName", [p if p else None for p in pods])
    put(
        "AllocatedTags",
        [
            tags.pod(ns, p, t, m, h) if a else tags.idle(h, False)
            for ns, p, t, m, h, a in zip(
                namespaces, pods, teams, models, hosts, allocated, strict=True
            )
        ],
    )
    put("x_GpuSeconds", pa.array(held))
    put("x_BusyGpuSeconds", pa.array(busy))
    put("x_IdleGpuSeconds", pa.array(held - busy))
    put("x_UtilizationMean", pa.array(_ratio(busy, held), from_pandas=True))
    put("x_Team", [t if a else None for t, a in zip(teams, allocated, strict=True)])
    put("x_PriceSource", [PRICE_LIST] * n)
    return pa.table(cols, schema=schema)


def _ratio(num: npt.NDArray[np.float64], den: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
