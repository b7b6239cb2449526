"""An independent, deliberately naive plain-Python model of gpuledger's window engine.

It reads prometheus-kafka-adapter JSON messages (docs/inputs.md 1a) and produces the rows of
`gpu_windows`, `pool_windows`, `late_events` and `dead_letters` plus the engine counters,
following docs/schema.md and docs/design.md (the engine's choices where
the docs are silent). It shares no code with the engine and imports nothing from gpuledger:
the tests compare the two.

The model mirrors the engine's API (`push`, `mark_idle`, `poll`, `advance_to`, `finish`,
`stats`) because window closing and lateness depend on when those calls happen. It keeps every
accepted reading forever (the engine drops panes no open window needs; that never changes a
result, see "Pane retention" below) and recomputes each window from scratch when it closes.

Modelled rules, each from docs/schema.md or docs/design.md:

* Time is integer milliseconds. Windows are epoch aligned: family (size, slide) has windows
  `[k*slide, k*slide + size)`; tumbling families have slide == size. Families are the
  `window_s` sizes in order, then the hopping windows in order.
* Watermark: per input partition (a source and partition together), the largest event time
  of a valid, non-blank reading seen (late and duplicate readings included); overall, the
  minimum over partitions not marked idle, minus `allowed_lateness_s`; it only moves at
  `poll`/`advance_to`/`finish` and never moves back. A partition marked idle counts again
  once it sends data. With no active partition the watermark stays where it is (nothing
  closes before the first watermark). `advance_to(t)` moves the watermark (not the event
  time) to at least `t`; `finish()` closes every window holding data.
* A close at watermark `wm` emits, per family, every window whose end is in `(previous wm, wm]`
  and that holds any accepted reading, ordered by (end, family, start); rows of one window are
  ordered by (gpu_uuid, namespace, pod, container, hostname).
* A reading is late for a family when the newest window of that family holding it ends at or
  before the watermark of the last close; it gets one `late_events` row per family it missed
  (naming that newest window; `lateness_s` = last-close watermark - window end). It is stored
  (and can still be aggregated or be a duplicate) if at least one family had it on time.
* Duplicates: same series (every label that identifies a series), field and timestamp among
  the stored readings; the larger value is kept.
* One message, one counter: aggregated (new reading), skipped_duplicate, late (missed every
  family), skipped_blank (value >= 9.2e18), skipped_unknown_field (a metric name the engine
  does not aggregate; checked before the timestamp and labels), else dead (invalid JSON,
  timestamp, value, range or missing UUID).
* gpu_windows: `u` is GR_ENGINE_ACTIVE when the series reported it in the window, else
  GPU_UTIL / 100; covered_s = min(samples * interval, window length); busy_gpu_s =
  sum(u) * interval (= util_mean * covered_s), scaled down with covered_s when the cap binds;
  quantiles by linear interpolation between closest ranks; energy_j = counter increase
  (a decrease is a reset: the new value is the increase) over the window's readings preceded by
  the series' last reading in the pane just before the window, in J; with fewer than two
  points power_mean_w * covered_s (null without power).
* pool_windows: per (team, model): sums of the pool's gpu_windows rows; per
  `sample_interval_s` bucket, demand D is the sum over the pool's GPUs of the mean of each
  GPU's `u` readings in the bucket and P the number of GPUs with a reading there; empty
  buckets count as 0; p95 by linear interpolation; mean price = cost_usd / gpu_s * 3600
  (the model's price when gpu_s is 0).

Pane retention: the engine drops a pane once every window holding it or the next pane has
closed. Any window that can still be emitted, and the pane just before it (the energy
boundary), is therefore still held, and a reading that is on time for some family always finds
an earlier copy of itself; so keeping everything, as this model does, gives the same results.
"""

from __future__ import annotations

import calendar
import itertools
import json
import math
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

GR = "DCGM_FI_PROF_GR_ENGINE_ACTIVE"
GPU_UTIL = "DCGM_FI_DEV_GPU_UTIL"
SM_ACTIVE = "DCGM_FI_PROF_SM_ACTIVE"
FB_USED = "DCGM_FI_DEV_FB_USED"
POWER = "DCGM_FI_DEV_POWER_USAGE"
ENERGY = "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"

# Known fields and their valid value range (inclusive) in the default units.
VALID_RANGE = {
    GR: (0.0, 1.0),
    GPU_UTIL: (0.0, 100.0),
    SM_ACTIVE: (0.0, 1.0),
    FB_USED: (0.0, math.inf),
    POWER: (0.0, math.inf),
    ENERGY: (0.0, math.inf),
}
BLANK_AT = 9.2e18
MIN_VALID_MS = 946_684_800_000  # 2000-01-01T00:00:00Z


@dataclass(frozen=True, order=True)
class Series:
    """The labels that identify one GPU series (its row key plus attribution)."""

    gpu_uuid: str
    namespace: str
    pod: str
    container: str
    hostname: str
    model_name: str
    gpu_index: int | None


@dataclass
class Counters:
    consumed: int = 0
    aggregated: int = 0
    skipped_unknown_field: int = 0
    skipped_blank: int = 0
    skipped_duplicate: int = 0
    skipped_replayed: int = 0  # restarts only (Engine.resume); the reference never resumes
    late: int = 0
    dead: int = 0
    windows_emitted: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass
class Output:
    """Rows produced by one call; timestamps are integer milliseconds."""

    gpu_windows: list[dict[str, Any]] = field(default_factory=list)
    pool_windows: list[dict[str, Any]] = field(default_factory=list)
    late_events: list[dict[str, Any]] = field(default_factory=list)
    dead_letters: list[dict[str, Any]] = field(default_factory=list)

    def extend(self, other: Output) -> None:
        self.gpu_windows += other.gpu_windows
        self.pool_windows += other.pool_windows
        self.late_events += other.late_events
        self.dead_letters += other.dead_letters


class _Dead(Exception):
    pass


def quantile_linear(values: list[float], q: float) -> float | None:
    """numpy's default ("linear") quantile: interpolate between the closest ranks."""
    if not values:
        return None
    s = sorted(values)
    h = (len(s) - 1) * q
    lo = math.floor(h)
    hi = math.ceil(h)
    return s[lo] + (h - lo) * (s[hi] - s[lo])


def parse_rfc3339_seconds(text: str) -> int:
    """`YYYY-MM-DDTHH:MM:SSZ` (the adapter's form) to epoch milliseconds."""
    if not isinstance(text, str) or len(text) != 20 or text[-1] != "Z":
        raise _Dead("timestamp")
    try:
        st = time.strptime(text, "%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        raise _Dead("timestamp") from None
    return calendar.timegm(st) * 1000


def _align_down(t: int, step: int) -> int:
    return t - t % step


class ReferenceEngine:
    def __init__(
        self,
        *,
        window_s: list[int],
        hopping: list[tuple[int, int]] = (),  # type: ignore[assignment]
        allowed_lateness_s: float = 30.0,
        sample_interval_s: float = 1.0,
        prices: dict[str, float] | None = None,
        teams: dict[str, str] | None = None,
        max_future_s: float = 86_400.0,
    ) -> None:
        self.families = [(w * 1000, w * 1000) for w in window_s] + [
            (size * 1000, slide * 1000) for size, slide in hopping
        ]
        g = 0
        for size, slide in self.families:
            g = math.gcd(g, math.gcd(size, slide))
        self.pane_ms = g
        self.lateness_ms = round(allowed_lateness_s * 1000)
        self.interval = sample_interval_s
        prices = dict(prices or {"default": 2.0})
        self.default_price = prices.pop("default", 2.0)
        self.prices = prices
        self.teams = dict(teams or {})
        self.max_future_ms = round(max_future_s * 1000)
        # (source, partition) -> [max event time, idle]
        self.partitions: dict[tuple[str, int], list[Any]] = {}
        self.wm: int | None = None  # watermark of the last close; None = before any close
        # pane start -> series -> field -> {ts: value}
        self.store: dict[int, dict[Series, dict[str, dict[int, float]]]] = defaultdict(
            lambda: defaultdict(lambda: defaultdict(dict))
        )
        self.stats = Counters()
        self._late: list[dict[str, Any]] = []
        self._dead: list[dict[str, Any]] = []

    # --- input ------------------------------------------------------------------------------

    def push(
        self,
        messages: list[bytes],
        *,
        source: str = "",
        partition: int = 0,
        first_offset: int = 0,
    ) -> None:
        for i, raw in enumerate(messages):
            offset = first_offset + i
            self.stats.consumed += 1
            try:
                self._one(raw, source, partition, offset)
            except _Dead as e:
                self.stats.dead += 1
                self._dead.append(
                    {
                        "source": source,
                        "partition": partition,
                        "offset": offset,
                        "raw": raw[:4096],
                        "raw_size": len(raw),
                        "why": str(e),
                    }
                )

    def _one(self, raw: bytes, source: str, partition: int, offset: int) -> None:
        try:
            m = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise _Dead("json") from None
        if not isinstance(m, dict) or not all(k in m for k in ("timestamp", "value", "name")):
            raise _Dead("json")
        name = m["name"]
        if not isinstance(name, str) or not isinstance(m["timestamp"], str):
            raise _Dead("json")
        labels = m.get("labels", {})
        if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
            raise _Dead("json")
        value = self._number(m["value"])
        if name not in VALID_RANGE:
            self.stats.skipped_unknown_field += 1
            return
        ts = parse_rfc3339_seconds(m["timestamp"])
        uuid = labels.get("UUID", "")
        if not uuid:
            raise _Dead("uuid")
        if math.isfinite(value) and value >= BLANK_AT:
            self.stats.skipped_blank += 1
            return
        lo, hi = VALID_RANGE[name]
        if not math.isfinite(value) or not lo <= value <= hi:
            raise _Dead("value")
        if ts < MIN_VALID_MS or ts > time.time() * 1000 + self.max_future_ms:
            raise _Dead("time")
        series = self._series(uuid, labels)
        self._observe((source, partition), ts)
        on_time = False
        for size, slide in self.families:
            newest_end = _align_down(ts, slide) + size
            if self.wm is None or newest_end > self.wm:
                on_time = True
                continue
            self._late.append(
                {
                    "stream": "gpu_telemetry",
                    "key": series.gpu_uuid,
                    "namespace": series.namespace,
                    "pod": series.pod,
                    "field": name,
                    "event_time": ts,
                    "window_start": newest_end - size,
                    "window_end": newest_end,
                    "lateness_s": (self.wm - newest_end) / 1000.0,
                    "source": source,
                    "partition": partition,
                    "offset": offset,
                }
            )
        if not on_time:
            self.stats.late += 1
            return
        values = self.store[_align_down(ts, self.pane_ms)][series][name]
        if ts in values:
            values[ts] = max(values[ts], value)
            self.stats.skipped_duplicate += 1
        else:
            values[ts] = value
            self.stats.aggregated += 1

    @staticmethod
    def _number(v: Any) -> float:
        if isinstance(v, bool):
            raise _Dead("json")
        if isinstance(v, (int, float)):
            return float(v)
        if isinstance(v, str):
            try:
                return float(v.strip())
            except ValueError:
                raise _Dead("value") from None
        raise _Dead("json")

    @staticmethod
    def _series(uuid: str, labels: dict[str, str]) -> Series:
        mig = labels.get("GPU_I_ID", "")
        index = labels.get("gpu", "")
        return Series(
            gpu_uuid=f"{uuid}/{mig}" if mig else uuid,
            namespace=labels.get("namespace", ""),
            pod=labels.get("pod", ""),
            container=labels.get("container", ""),
            hostname=labels.get("hostname") or labels.get("Hostname", ""),
            model_name=labels.get("modelName", ""),
            gpu_index=int(index) if index.isdigit() else None,
        )

    def _observe(self, key: tuple[str, int], ts: int) -> None:
        clock = self.partitions.setdefault(key, [ts, False])
        clock[0] = max(clock[0], ts)
        clock[1] = False

    def mark_idle(self, partition: int, source: str = "") -> None:
        if (source, partition) in self.partitions:
            self.partitions[(source, partition)][1] = True

    # --- closing ----------------------------------------------------------------------------

    def _candidate(self) -> int | None:
        active = [c[0] for c in self.partitions.values() if not c[1]]
        return min(active) - self.lateness_ms if active else None

    def poll(self) -> Output:
        return self._close(self._candidate())

    def advance_to(self, seconds: float) -> Output:
        target = round(seconds * 1000)
        c = self._candidate()
        return self._close(target if c is None else max(c, target))

    def finish(self) -> Output:
        target = self._candidate()
        if self.store:
            last = max(
                ts
                for pane in self.store.values()
                for s in pane.values()
                for v in s.values()
                for ts in v
            )
            end = max(_align_down(last, slide) + size for size, slide in self.families)
            target = end if target is None else max(target, end)
        return self._close(target)

    def _close(self, target: int | None) -> Output:
        prev = self.wm
        if target is not None and (prev is None or target > prev):
            self.wm = target
        out = Output(late_events=self._late, dead_letters=self._dead)
        self._late, self._dead = [], []
        if self.wm is None or self.wm == prev or not self.store:
            return out
        wm = self.wm
        panes = {p for p, pane in self.store.items() if pane}
        first_pane, last_pane = min(panes), max(panes)
        due = []
        for k, (size, slide) in enumerate(self.families):
            start = _align_down(first_pane - size, slide)
            while start <= last_pane and start + size <= wm:
                end = start + size
                if (prev is None or end > prev) and any(
                    p in panes for p in range(start, end, self.pane_ms)
                ):
                    due.append((end, k, start))
                start += slide
        for end, _, start in sorted(due):
            self._emit(start, end, out)
            self.stats.windows_emitted += 1
        return out

    def _points(self, start: int, end: int) -> dict[Series, dict[str, list[tuple[int, float]]]]:
        out: dict[Series, dict[str, list[tuple[int, float]]]] = defaultdict(
            lambda: defaultdict(list)
        )
        for p in range(start, end, self.pane_ms):
            for series, fields in self.store.get(p, {}).items():
                for name, values in fields.items():
                    out[series][name].extend(values.items())
        for fields in out.values():
            for pts in fields.values():
                pts.sort()
        return out

    def price_of(self, model: str) -> float:
        return self.prices.get(model, self.default_price)

    def team_of(self, namespace: str) -> str:
        return self.teams.get(namespace, namespace)

    def _emit(self, start: int, end: int, out: Output) -> None:
        window_s = (end - start) / 1000.0
        points = self._points(start, end)
        rows: list[tuple[Series, list[tuple[int, float]], dict[str, Any]]] = []
        for series in sorted(
            points, key=lambda s: (s.gpu_uuid, s.namespace, s.pod, s.container, s.hostname)
        ):
            f = points[series]
            # u: GR_ENGINE_ACTIVE when the series reported it in this window, else GPU_UTIL/100
            gr = f.get(GR, [])
            u = list(gr) if gr else [(t, v / 100.0) for t, v in f.get(GPU_UTIL, [])]
            us = [v for _, v in u]
            n = len(us)
            raw_covered = n * self.interval
            covered = min(raw_covered, window_s)
            mean = sum(us) / n if n else None
            if mean is None:
                busy = 0.0
            elif raw_covered <= window_s:
                busy = sum(us) * self.interval
            else:
                busy = mean * covered
            idle = covered - busy
            power = [v for _, v in f.get(POWER, [])]
            power_mean = sum(power) / len(power) if power else None
            energy_pts = [v for _, v in f.get(ENERGY, [])]
            before = self.store.get(start - self.pane_ms, {}).get(series, {}).get(ENERGY)
            if before:
                energy_pts.insert(0, before[max(before)])
            if len(energy_pts) >= 2:
                increase = 0.0
                for a, b in itertools.pairwise(energy_pts):
                    increase += b - a if b >= a else b
                energy = increase / 1000.0
            elif power_mean is not None:
                energy = power_mean * covered
            else:
                energy = None
            fb = [v for _, v in f.get(FB_USED, [])]
            price = self.price_of(series.model_name)
            allocated = series.pod != ""
            cost = covered / 3600.0 * price
            row = {
                "window_start": start,
                "window_end": end,
                "gpu_uuid": series.gpu_uuid,
                "namespace": series.namespace,
                "pod": series.pod,
                "hostname": series.hostname,
                "gpu_index": series.gpu_index,
                "model_name": series.model_name,
                "container": series.container,
                "team": self.team_of(series.namespace),
                "samples": n,
                "covered_s": covered,
                "util_mean": mean,
                "util_min": min(us) if us else None,
                "util_max": max(us) if us else None,
                "util_p50": quantile_linear(us, 0.5),
                "util_p95": quantile_linear(us, 0.95),
                "busy_gpu_s": busy,
                "idle_gpu_s": idle,
                "allocated": allocated,
                "fb_used_max_mib": max(fb) if fb else None,
                "power_mean_w": power_mean,
                "energy_j": energy,
                "price_usd_per_gpu_hour": price,
                "cost_usd": cost,
                "idle_cost_usd": idle / 3600.0 * price,
                "unallocated_cost_usd": 0.0 if allocated else cost,
            }
            rows.append((series, u, row))
        out.gpu_windows += [row for _, _, row in rows]
        out.pool_windows += self._pools(start, end, rows)

    def _pools(
        self,
        start: int,
        end: int,
        rows: list[tuple[Series, list[tuple[int, float]], dict[str, Any]]],
    ) -> list[dict[str, Any]]:
        bucket_ms = max(1, round(self.interval * 1000))
        n_buckets = -(-(end - start) // bucket_ms)
        window_s = (end - start) / 1000.0
        pools: dict[tuple[str, str], list[tuple[Series, list[tuple[int, float]], dict[str, Any]]]]
        pools = defaultdict(list)
        for series, u, row in rows:
            pools[(row["team"], series.model_name)].append((series, u, row))
        out = []
        for (team, model), members in sorted(pools.items()):
            prow = [row for _, _, row in members]
            # GPU -> bucket -> its u readings (from every row of the pool)
            readings: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
            for series, u, _ in members:
                for t, v in u:
                    readings[series.gpu_uuid][(t - start) // bucket_ms].append(v)
            # Demand in fixed point, 2^32 units per busy GPU, each GPU's bucket mean rounded
            # half away from zero (docs/schema.md).
            units = [0] * n_buckets
            provisioned = [0] * n_buckets
            for buckets in readings.values():
                for b, vs in buckets.items():
                    units[b] += _demand_units(sum(vs) / len(vs))
                    provisioned[b] += 1
            demand = [d / 2**32 for d in units]
            gpu_s = sum(r["covered_s"] for r in prow)
            busy = sum(r["busy_gpu_s"] for r in prow)
            cost = sum(r["cost_usd"] for r in prow)
            prov_mean = sum(provisioned) / n_buckets
            p95 = quantile_linear(demand, 0.95)
            assert p95 is not None
            buffer = prov_mean - p95
            mean_price = cost / gpu_s * 3600.0 if gpu_s > 0 else self.price_of(model)
            out.append(
                {
                    "window_start": start,
                    "window_end": end,
                    "team": team,
                    "model_name": model,
                    "gpus": len({r["gpu_uuid"] for r in prow}),
                    "gpu_s": gpu_s,
                    "busy_gpu_s": busy,
                    "idle_gpu_s": sum(r["idle_gpu_s"] for r in prow),
                    "cost_usd": cost,
                    "idle_cost_usd": sum(r["idle_cost_usd"] for r in prow),
                    "provisioned_mean_gpus": prov_mean,
                    "demand_mean_gpus": sum(demand) / n_buckets,
                    "demand_p95_gpus": p95,
                    "demand_peak_gpus": max(demand),
                    "buffer_gpus": buffer,
                    "buffer_cost_usd": max(buffer, 0.0) * window_s / 3600.0 * mean_price,
                    "utilization": busy / gpu_s if gpu_s > 0 else None,
                    "demand_buckets": units,
                    "provisioned_buckets": provisioned,
                }
            )
        return out


def _demand_units(mean_utilization: float) -> int:
    """A GPU's bucket mean in units of 2^-32 busy GPU, rounded half away from zero."""
    scaled = abs(mean_utilization) * 2**32
    return int(math.copysign(math.floor(scaled + 0.5), mean_utilization))
