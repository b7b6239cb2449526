"""Business metrics on the daemon's `/metrics`: idle cost rate by team, buffer cost by pool,
SLO met share and headroom cost by service, and the idle streaks open beyond the TTL, fed
from the closed window tables as they are written (docs/daemon.md, "Business metrics").

Everything is aggregated with pyarrow (`group_by`) before it reaches Python: only one small
row per label set (team, pool, service, pod) crosses over, never one per window row. The
figures are floats for alerting and dashboards; the exact money is in the output files.

Cardinality is bounded: at most `MAX_LABEL_SETS` teams, pools and services each (later ones
are counted under "__other__"), and the `TOP_STREAK_PODS` pods with the costliest open
streaks by name plus one "__other__" series for the rest.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

OTHER = "__other__"
MAX_LABEL_SETS = 200  # per family: teams, (team, model) pools, services
TOP_STREAK_PODS = 20  # pods named in the idle-streak series; the rest are OTHER
HOUR_S = 3600.0

Labels = tuple[str, ...]


def _millis(column: Any) -> Any:
    return pc.cast(pc.cast(column, pa.timestamp("ms", tz="UTC")), pa.int64())


class _Family:
    """Sums of value columns per label set: running totals (for counters) and the sums over
    the newest window seen (for gauges). Label sets past `MAX_LABEL_SETS` become OTHER."""

    def __init__(self, keys: Sequence[str], values: Sequence[str]) -> None:
        self.keys = tuple(keys)
        self.values = tuple(values)
        self.admitted: set[Labels] = set()
        self.totals: dict[Labels, dict[str, float]] = {}
        self.newest: dict[Labels, dict[str, float]] = {}
        self.newest_end: int | None = None

    def _label(self, labels: Labels) -> Labels:
        if labels in self.admitted:
            return labels
        if len(self.admitted) < MAX_LABEL_SETS:
            self.admitted.add(labels)
            return labels
        return tuple(OTHER for _ in labels)

    def _sums(self, table: pa.Table) -> Iterator[tuple[Labels, dict[str, float]]]:
        if table.num_rows == 0:
            return
        grouped = table.group_by(list(self.keys)).aggregate([(v, "sum") for v in self.values])
        for row in grouped.to_pylist():  # one row per label set
            labels = self._label(tuple(str(row[k]) for k in self.keys))
            yield labels, {v: float(row[f"{v}_sum"] or 0.0) for v in self.values}

    @staticmethod
    def _add(into: dict[Labels, dict[str, float]], labels: Labels, sums: dict[str, float]) -> None:
        acc = into.setdefault(labels, dict.fromkeys(sums, 0.0))
        for k, x in sums.items():
            acc[k] += x

    def add(self, table: pa.Table, ends: Any) -> None:
        """`table`: rows of one window size; `ends`: their window ends (ms)."""
        for labels, sums in self._sums(table):
            self._add(self.totals, labels, sums)
        if table.num_rows == 0:
            return
        end = pc.max(ends).as_py()
        if self.newest_end is None or end > self.newest_end:
            self.newest_end, self.newest = end, {}
        if end == self.newest_end:
            for labels, sums in self._sums(table.filter(pc.equal(ends, end))):
                self._add(self.newest, labels, sums)


class BusinessMetrics:
    """A prometheus-client collector. `observe(tables)` takes the window tables the daemon
    has just written; `window_s` is the smallest tumbling window (the one the rates and
    streaks are read from); `ttl_s` is `[idle] ttl_s`."""

    def __init__(self, window_s: int, ttl_s: float) -> None:
        self.window_ms = int(window_s) * 1000
        self.ttl_s = ttl_s
        self._lock = threading.Lock()
        self.teams = _Family(("team",), ("idle_cost_usd", "cost_usd", "idle_gpu_s", "covered_s"))
        self.pools = _Family(("team", "model_name"), ("buffer_cost_usd", "buffer_gpus"))
        self.service_costs = _Family(("service",), ("headroom_cost_usd", "met", "judged"))
        self.latency = _Family(("service",), ("requests", "slo_violations"))
        self.targets: dict[str, float] = {}  # service -> slo_target of its latest window
        self.streaks: pa.Table | None = None  # latest row per (namespace, pod, gpu_uuid)
        self.newest_end: int | None = None

    # --- feeding ------------------------------------------------------------------------

    def _one_size(self, table: pa.Table | None) -> tuple[pa.Table, Any] | None:
        if table is None or table.num_rows == 0 or "window_end" not in table.column_names:
            return None
        ends = _millis(table.column("window_end"))
        size = pc.subtract(ends, _millis(table.column("window_start")))
        mask = pc.equal(size, pa.scalar(self.window_ms, pa.int64()))
        return table.filter(mask), pc.filter(ends, mask)

    def observe(self, tables: Mapping[str, pa.Table]) -> None:
        with self._lock:
            gpu = self._one_size(tables.get("gpu_windows"))
            if gpu is not None:
                self.teams.add(*gpu)
                if len(gpu[1]):
                    end = pc.max(gpu[1]).as_py()
                    self.newest_end = max(end, self.newest_end or end)
            pool = self._one_size(tables.get("pool_windows"))
            if pool is not None:
                self.pools.add(*pool)
            cost = self._one_size(tables.get("service_cost_windows"))
            if cost is not None:
                t, ends = cost
                slo_met: Any = pc.cast(t.column("slo_met"), pa.float64())
                met: Any = pc.fill_null(slo_met, 0.0)
                judged: Any = pc.cast(pc.is_valid(t.column("slo_met")), pa.float64())
                self.service_costs.add(
                    t.append_column("met", met).append_column("judged", judged), ends
                )
            lat = self._one_size(tables.get("latency_windows"))
            if lat is not None and lat[0].num_rows:
                self.latency.add(*lat)
                targets = lat[0].group_by("service").aggregate([("slo_target", "max")])
                for row in targets.to_pylist():  # one row per service
                    if len(self.targets) < MAX_LABEL_SETS or row["service"] in self.targets:
                        self.targets[str(row["service"])] = float(row["slo_target_max"])
            streaks = tables.get("idle_streaks")
            if streaks is not None and streaks.num_rows:
                self._observe_streaks(streaks)

    def _observe_streaks(self, rows: pa.Table) -> None:
        keys = ["namespace", "pod", "gpu_uuid"]
        cols = ["team", "streak_s", "idle_cost_usd", "ended"]
        # Plain (nullable) fields, so later batches concatenate whatever their schema says.
        new = pa.table(
            {c: rows.column(c) for c in [*keys, *cols]}
            | {"as_of_ms": _millis(rows.column("as_of"))}
        )
        both = new if self.streaks is None else pa.concat_tables([self.streaks, new])
        # The newest row of each streak wins (a final `ended` row closes it).
        last = (
            both.sort_by("as_of_ms")
            .group_by(keys, use_threads=False)
            .aggregate([(c, "last") for c in [*cols, "as_of_ms"]])
        )
        latest = pa.table(
            {k: last[k] for k in keys} | {c: last[f"{c}_last"] for c in [*cols, "as_of_ms"]}
        )
        self.streaks = latest.filter(pc.invert(latest.column("ended")))

    def _open_streaks(self) -> pa.Table | None:
        """Open streaks: not ended, and updated within two windows of the newest window (a
        GPU that stopped reporting altogether gets no final row)."""
        if self.streaks is None or self.streaks.num_rows == 0:
            return None
        if self.newest_end is None:
            return self.streaks
        horizon = pa.scalar(self.newest_end - 2 * self.window_ms, pa.int64())
        self.streaks = self.streaks.filter(pc.greater_equal(self.streaks["as_of_ms"], horizon))
        return self.streaks

    # --- exposition ---------------------------------------------------------------------

    def describe(self) -> list[Metric]:
        return list(self._families())

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            yield from self._families()

    def _families(self) -> Iterator[Metric]:
        per_hour = HOUR_S * 1000.0 / self.window_ms

        def gauge(name: str, doc: str, fam: _Family, col: str, scale: float = 1.0) -> Metric:
            g = GaugeMetricFamily(name, doc, labels=list(fam.keys))
            for labels, sums in sorted(fam.newest.items()):
                g.add_metric(list(labels), sums[col] * scale)
            return g

        def counter(name: str, doc: str, fam: _Family, col: str) -> Metric:
            c = CounterMetricFamily(name, doc, labels=list(fam.keys))
            for labels, sums in sorted(fam.totals.items()):
                c.add_metric(list(labels), sums[col])
            return c

        t, p, s, lat = self.teams, self.pools, self.service_costs, self.latency
        yield gauge(
            "gpuledger_team_idle_cost_usd_per_hour",
            "Idle GPU cost rate of the team in the newest closed window, USD per hour",
            t,
            "idle_cost_usd",
            per_hour,
        )
        yield gauge(
            "gpuledger_team_cost_usd_per_hour",
            "GPU cost rate of the team in the newest closed window, USD per hour",
            t,
            "cost_usd",
            per_hour,
        )
        yield counter(
            "gpuledger_team_idle_cost_usd",
            "Idle GPU cost of the team in closed windows, USD",
            t,
            "idle_cost_usd",
        )
        yield counter(
            "gpuledger_team_cost_usd", "GPU cost of the team in closed windows, USD", t, "cost_usd"
        )
        yield gauge(
            "gpuledger_pool_buffer_cost_usd_per_hour",
            "Cost rate of the pool's GPUs beyond p95 demand in the newest window, USD per hour",
            p,
            "buffer_cost_usd",
            per_hour,
        )
        yield gauge(
            "gpuledger_pool_buffer_gpus",
            "Provisioned GPUs minus p95 demand of the pool in the newest window",
            p,
            "buffer_gpus",
        )
        yield counter(
            "gpuledger_pool_buffer_cost_usd",
            "Buffer cost of the pool in closed windows, USD",
            p,
            "buffer_cost_usd",
        )
        yield gauge(
            "gpuledger_service_headroom_cost_usd_per_hour",
            "Cost rate of the service's provisioned GPUs beyond demand, USD per hour",
            s,
            "headroom_cost_usd",
            per_hour,
        )
        yield counter(
            "gpuledger_service_headroom_cost_usd",
            "Headroom cost of the service in closed windows, USD",
            s,
            "headroom_cost_usd",
        )
        yield counter(
            "gpuledger_service_slo_met_windows",
            "Closed windows in which the service met its SLO (slo_met true)",
            s,
            "met",
        )
        yield counter(
            "gpuledger_service_slo_judged_windows",
            "Closed windows with requests, in which slo_met was decided",
            s,
            "judged",
        )
        share = GaugeMetricFamily(
            "gpuledger_service_slo_met_share",
            "Share of the service's requests within slo_latency_ms in the newest window",
            labels=["service"],
        )
        target = GaugeMetricFamily(
            "gpuledger_service_slo_target", "The service's slo_target", labels=["service"]
        )
        for labels, sums in sorted(lat.newest.items()):
            if sums["requests"] > 0:
                share.add_metric(list(labels), 1.0 - sums["slo_violations"] / sums["requests"])
        yield share
        for service, value in sorted(self.targets.items()):
            target.add_metric([service], value)
        yield target
        yield counter(
            "gpuledger_service_requests",
            "Requests of the service in closed windows",
            lat,
            "requests",
        )
        yield counter(
            "gpuledger_service_slo_violations",
            "Requests of the service slower than slo_latency_ms in closed windows",
            lat,
            "slo_violations",
        )
        yield from self._streak_families()
        newest = GaugeMetricFamily(
            "gpuledger_business_window_end_seconds",
            "End of the newest closed window the business metrics come from (Unix time)",
        )
        if self.newest_end is not None:
            newest.add_metric([], self.newest_end / 1000.0)
        yield newest

    def _streak_families(self) -> Iterator[Metric]:
        count = GaugeMetricFamily(
            "gpuledger_idle_streaks_open",
            "(pod, GPU) idle streaks open beyond [idle] ttl_s",
        )
        total = GaugeMetricFamily(
            "gpuledger_idle_streaks_open_cost_usd",
            "Idle cost so far of the streaks open beyond the TTL, USD",
        )
        labels = ["namespace", "pod"]
        cost = GaugeMetricFamily(
            "gpuledger_idle_streak_cost_usd",
            f"Idle cost so far of the pod's open streaks beyond the TTL, USD (top "
            f"{TOP_STREAK_PODS} pods by cost, the rest as {OTHER})",
            labels=labels,
        )
        length = GaugeMetricFamily(
            "gpuledger_idle_streak_seconds",
            "Longest open idle streak of the pod, seconds",
            labels=labels,
        )
        gpus = GaugeMetricFamily(
            "gpuledger_idle_streak_gpus", "GPUs of the pod in an open idle streak", labels=labels
        )
        open_ = self._open_streaks()
        n = 0 if open_ is None else open_.num_rows
        count.add_metric([], float(n))
        if open_ is None or n == 0:
            total.add_metric([], 0.0)
            yield from (count, total, cost, length, gpus)
            return
        total.add_metric([], float(pc.sum(open_["idle_cost_usd"]).as_py() or 0.0))
        by_pod = (
            open_.group_by(["namespace", "pod"])
            .aggregate([("idle_cost_usd", "sum"), ("streak_s", "max"), ("gpu_uuid", "count")])
            .sort_by([("idle_cost_usd_sum", "descending"), ("namespace", "ascending")])
        )
        top = by_pod.slice(0, TOP_STREAK_PODS)
        for row in top.to_pylist():  # at most TOP_STREAK_PODS rows
            key = [str(row["namespace"]), str(row["pod"])]
            cost.add_metric(key, float(row["idle_cost_usd_sum"]))
            length.add_metric(key, float(row["streak_s_max"]))
            gpus.add_metric(key, float(row["gpu_uuid_count"]))
        rest = by_pod.slice(TOP_STREAK_PODS)
        if rest.num_rows:
            key = [OTHER, OTHER]
            cost.add_metric(key, float(pc.sum(rest["idle_cost_usd_sum"]).as_py()))
            length.add_metric(key, float(pc.max(rest["streak_s_max"]).as_py()))
            gpus.add_metric(key, float(pc.sum(rest["gpu_uuid_count"]).as_py()))
        yield from (count, total, cost, length, gpus)
