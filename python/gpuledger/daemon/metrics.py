"""The daemon's Prometheus endpoint (prometheus-client): message counters that reconcile
(consumed = aggregated + skipped + late + dead), consumer lag, windows and files written,
batch time, watermark delay, whether output is blocked, partitions held, and the business
metrics of gpuledger.daemon.business_metrics."""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from gpuledger.config import Config
from gpuledger.daemon.business_metrics import BusinessMetrics
from gpuledger.daemon.http import Health, serve

SKIP_REASONS = ("unknown_field", "blank", "duplicate", "replayed")


class DaemonMetrics:
    """`health` answers the probes; None: no member state (always ready while alive)."""

    def __init__(self, cfg: Config, health: Health | None = None) -> None:
        obs = cfg.observability
        r = self.registry = CollectorRegistry()
        self.consumed = Counter("gpuledger_messages_consumed", "Messages consumed", registry=r)
        self.aggregated = Counter(
            "gpuledger_messages_aggregated", "Messages aggregated into a window", registry=r
        )
        self.skipped = Counter(
            "gpuledger_messages_skipped",
            "Messages skipped (unknown field, DCGM blank, duplicate, re-read after a restart)",
            ["reason"],
            registry=r,
        )
        self.late = Counter(
            "gpuledger_messages_late", "Messages too late (late_events)", registry=r
        )
        self.dead = Counter("gpuledger_messages_dead", "Dead letters (dead_letters)", registry=r)
        self.windows = Counter("gpuledger_windows_emitted", "Windows closed", registry=r)
        self.files = Counter("gpuledger_files_written", "Output files written", registry=r)
        self.lag = Gauge(
            "gpuledger_consumer_lag_messages",
            "High watermark minus position",
            ["topic", "partition"],
            registry=r,
        )
        self.batch = Histogram(
            "gpuledger_batch_seconds",
            "Time to hand one consumed batch to the engine",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=r,
        )
        self.watermark_delay = Gauge(
            "gpuledger_watermark_delay_seconds",
            "Wall clock minus the event-time watermark",
            registry=r,
        )
        self.blocked = Gauge(
            "gpuledger_output_blocked",
            "1 while the output directory cannot be written",
            registry=r,
        )
        self.health = health or Health(lambda: 1)
        self.partitions = Gauge(
            "gpuledger_partitions_assigned",
            "Input partitions this member holds (readiness needs at least one)",
            registry=r,
        )
        self.partitions.set_function(self.health.partitions)
        # Rates and streaks follow the smallest tumbling window (hopping ones overlap).
        sizes = cfg.engine.window_s or tuple(h.size_s for h in cfg.engine.hopping) or (60,)
        self.business = BusinessMetrics(min(sizes), cfg.idle.ttl_s)
        r.register(self.business)
        self._last: dict[str, int] = {}
        self.port = obs.metrics_port
        self.server = None
        if self.port > 0:
            self.server, _ = serve(r, self.port, obs.metrics_bind, obs.web, self.health)
            self.port = self.server.server_port

    def count(self, totals: Mapping[str, int]) -> None:
        """Advances the counters to the engine's running totals."""

        def delta(key: str) -> int:
            d = totals.get(key, 0) - self._last.get(key, 0)
            return max(d, 0)

        self.consumed.inc(delta("consumed"))
        self.aggregated.inc(delta("aggregated"))
        for reason in SKIP_REASONS:
            self.skipped.labels(reason).inc(delta(f"skipped_{reason}"))
        self.late.inc(delta("late"))
        self.dead.inc(delta("dead"))
        self.windows.inc(delta("windows_emitted"))
        self._last = dict(totals)
