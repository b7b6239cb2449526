"""Business metrics (gpuledger.daemon.business_metrics) from real engine output: the rates, counters
and open idle streaks equal independent Decimal arithmetic over the same window rows, and the
label cardinality stays within its documented bound."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

import pyarrow as pa
import pytest
from fleet_topics import fleet_topics
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

import gpuledger
from gpuledger.daemon import business_metrics
from gpuledger.daemon.business_metrics import OTHER, TOP_STREAK_PODS, BusinessMetrics

START = 1_795_867_200  # 2026-11-28T12:00:00Z
SECONDS = 900
TTL_S = 180.0


def scrape(bm: BusinessMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = CollectorRegistry()
    registry.register(bm)
    text = generate_latest(registry).decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def named(samples, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {labels: v for (n, labels), v in samples.items() if n == name}


@pytest.fixture(scope="module")
def closed_windows() -> list[dict[str, pa.Table]]:
    """The engine's closed windows, one dict per poll, as the daemon hands them over."""
    cfg = gpuledger.Config.from_dict(
        {
            "engine": {"window_s": [60], "allowed_lateness_s": 5, "max_future_s": 1e9},
            "idle": {"ttl_s": TTL_S},
            "teams": {"team-chat": "chat", "team-search": "search"},
            "services": {
                "chat-llm": {"slo_latency_ms": 120.0, "slo_target": 0.9},
                "pods": [{"pattern": "vllm-chat-*", "service": "chat-llm"}],
            },
        }
    )
    topics = fleet_topics(START, SECONDS, telemetry="tel", latency="lat", partitions=1)
    engine = gpuledger.Engine(cfg)
    polls = []
    tel, lat = topics["tel"][0], topics["lat"][0]
    step = len(tel) // 15
    for i in range(0, len(tel), step):
        engine.push([m for m, _ in tel[i : i + step]], format="prom_json", source="tel")
        until = tel[min(i + step, len(tel)) - 1][1]
        engine.push(
            [m for m, ts in lat if tel[i][1] <= ts <= until], format="latency_json", source="lat"
        )
        polls.append(engine.poll().tables)
    polls.append(engine.finish().tables)
    return [{n: t for n, t in p.items() if t.num_rows} for p in polls]


def all_rows(polls, name: str) -> list[dict]:
    return [r for p in polls if name in p for r in p[name].to_pylist()]


def close(a: float, b: Decimal) -> bool:
    return abs(Decimal(repr(a)) - b) <= Decimal("1e-9") * max(Decimal(1), abs(b))


def test_team_pool_and_service_figures_equal_independent_sums(closed_windows) -> None:
    bm = BusinessMetrics(60, TTL_S)
    for tables in closed_windows:
        bm.observe(tables)
    samples = scrape(bm)

    gpu = all_rows(closed_windows, "gpu_windows")
    newest = max(r["window_end"] for r in gpu)
    per_hour = Decimal(3600) / Decimal(60)
    idle_rate: dict[str, Decimal] = defaultdict(Decimal)
    idle_total: dict[str, Decimal] = defaultdict(Decimal)
    for r in gpu:
        idle_total[r["team"]] += Decimal(repr(r["idle_cost_usd"]))
        if r["window_end"] == newest:
            idle_rate[r["team"]] += Decimal(repr(r["idle_cost_usd"])) * per_hour
    got_rate = named(samples, "gpuledger_team_idle_cost_usd_per_hour")
    assert {dict(k)["team"] for k in got_rate} == set(idle_rate) and len(idle_rate) >= 3
    for team, want in idle_rate.items():
        assert close(got_rate[(("team", team),)], want), team
    got_total = named(samples, "gpuledger_team_idle_cost_usd_total")
    for team, want in idle_total.items():
        assert close(got_total[(("team", team),)], want), team
    # The forgotten notebook makes research's idle cost visible.
    assert got_total[(("team", "team-research"),)] > 0

    pools = [r for r in all_rows(closed_windows, "pool_windows") if r["window_end"] == newest]
    buffer: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for r in pools:
        buffer[(r["team"], r["model_name"])] += Decimal(repr(r["buffer_cost_usd"])) * per_hour
    got_buffer = named(samples, "gpuledger_pool_buffer_cost_usd_per_hour")
    assert len(got_buffer) == len(buffer) > 0
    for (team, model), want in buffer.items():
        assert close(got_buffer[(("model_name", model), ("team", team))], want)

    lat = all_rows(closed_windows, "latency_windows")
    assert lat, "the trace has requests"
    newest_lat = max(r["window_end"] for r in lat)
    requests = sum(r["requests"] for r in lat if r["window_end"] == newest_lat)
    slow = sum(r["slo_violations"] for r in lat if r["window_end"] == newest_lat)
    share = named(samples, "gpuledger_service_slo_met_share")[(("service", "chat-llm"),)]
    assert close(share, Decimal(1) - Decimal(slow) / Decimal(requests))
    total = named(samples, "gpuledger_service_requests_total")[(("service", "chat-llm"),)]
    assert total == sum(r["requests"] for r in lat)
    violations = named(samples, "gpuledger_service_slo_violations_total")
    assert violations[(("service", "chat-llm"),)] == sum(r["slo_violations"] for r in lat)
    assert named(samples, "gpuledger_service_slo_target") == {(("service", "chat-llm"),): 0.9}

    costs = all_rows(closed_windows, "service_cost_windows")
    newest_cost = max(r["window_end"] for r in costs)
    headroom = sum(
        Decimal(repr(r["headroom_cost_usd"])) * per_hour
        for r in costs
        if r["window_end"] == newest_cost and r["service"] == "chat-llm"
    )
    got = named(samples, "gpuledger_service_headroom_cost_usd_per_hour")
    assert close(got[(("service", "chat-llm"),)], headroom)
    met = named(samples, "gpuledger_service_slo_met_windows_total")[(("service", "chat-llm"),)]
    judged = named(samples, "gpuledger_service_slo_judged_windows_total")
    chat = [r for r in costs if r["service"] == "chat-llm"]
    assert met == sum(1 for r in chat if r["slo_met"] is True)
    assert judged[(("service", "chat-llm"),)] == sum(1 for r in chat if r["slo_met"] is not None)
    assert named(samples, "gpuledger_business_window_end_seconds") == {(): newest.timestamp()}


def test_open_idle_streaks_follow_the_latest_row(closed_windows) -> None:
    bm = BusinessMetrics(60, TTL_S)
    for tables in closed_windows:
        bm.observe(tables)
    samples = scrape(bm)
    rows = all_rows(closed_windows, "idle_streaks")
    assert rows, "the forgotten notebook idles beyond the TTL"
    latest: dict[tuple[str, str, str], dict] = {}
    for r in sorted(rows, key=lambda r: r["as_of"]):
        latest[(r["namespace"], r["pod"], r["gpu_uuid"])] = r
    open_ = [r for r in latest.values() if not r["ended"]]
    assert samples[("gpuledger_idle_streaks_open", ())] == len(open_) >= 1
    want = sum(Decimal(repr(r["idle_cost_usd"])) for r in open_)
    assert close(samples[("gpuledger_idle_streaks_open_cost_usd", ())], want)
    pod = (("namespace", "team-research"), ("pod", "notebook-forgotten"))
    assert samples[("gpuledger_idle_streak_gpus", pod)] == 1
    assert samples[("gpuledger_idle_streak_seconds", pod)] > TTL_S

    # A final row closes the streak.
    [last] = [r for r in open_ if r["pod"] == "notebook-forgotten"]
    ended = pa.Table.from_pylist(
        [{**last, "ended": True}],
        schema=closed_windows[0].get("idle_streaks", pa.Table.from_pylist(rows)).schema,
    )
    bm.observe({"idle_streaks": ended})
    after = scrape(bm)
    assert after[("gpuledger_idle_streaks_open", ())] == len(open_) - 1
    assert ("gpuledger_idle_streak_gpus", pod) not in after


def streak_rows(n: int, as_of_ms: int) -> pa.Table:
    return pa.table(
        {
            "namespace": [f"ns-{i % 3}" for i in range(n)],
            "pod": [f"pod-{i:03d}" for i in range(n)],
            "team": ["t"] * n,
            "gpu_uuid": [f"GPU-{i}" for i in range(n)],
            "model_name": ["m"] * n,
            "streak_start": pa.array([as_of_ms - 10_000_000] * n, pa.timestamp("ms", tz="UTC")),
            "as_of": pa.array([as_of_ms] * n, pa.timestamp("ms", tz="UTC")),
            "streak_s": [10_000.0 + i for i in range(n)],
            "idle_gpu_s": [float(i) for i in range(n)],
            "idle_cost_usd": [float(i + 1) for i in range(n)],
            "ended": [False] * n,
        }
    )


def test_streak_series_are_the_top_pods_plus_other() -> None:
    n = TOP_STREAK_PODS + 13
    bm = BusinessMetrics(60, TTL_S)
    bm.observe({"idle_streaks": streak_rows(n, 1_800_000_000_000)})
    samples = scrape(bm)
    cost = named(samples, "gpuledger_idle_streak_cost_usd")
    assert len(cost) == TOP_STREAK_PODS + 1
    # The costliest pods are named: costs n, n-1, ... ; the 13 cheapest are OTHER.
    named_costs = sorted((v for k, v in cost.items() if dict(k)["pod"] != OTHER), reverse=True)
    assert named_costs == [float(n - i) for i in range(TOP_STREAK_PODS)]
    assert cost[(("namespace", OTHER), ("pod", OTHER))] == sum(range(1, 14))
    assert samples[("gpuledger_idle_streaks_open", ())] == n
    assert samples[("gpuledger_idle_streaks_open_cost_usd", ())] == sum(range(1, n + 1))
    gpus = named(samples, "gpuledger_idle_streak_gpus")
    assert gpus[(("namespace", OTHER), ("pod", OTHER))] == 13


def test_streaks_of_gpus_that_stopped_reporting_age_out() -> None:
    bm = BusinessMetrics(60, TTL_S)
    bm.observe({"idle_streaks": streak_rows(2, 1_800_000_000_000)})
    gpu = pa.table(
        {
            "window_start": pa.array([1_800_000_300_000 - 60_000], pa.timestamp("ms", tz="UTC")),
            "window_end": pa.array([1_800_000_300_000], pa.timestamp("ms", tz="UTC")),
            "team": ["t"],
            "idle_cost_usd": [0.0],
            "cost_usd": [1.0],
            "idle_gpu_s": [0.0],
            "covered_s": [60.0],
        }
    )
    bm.observe({"gpu_windows": gpu})  # five minutes on, the two streaks had no row
    assert scrape(bm)[("gpuledger_idle_streaks_open", ())] == 0


def test_team_label_sets_are_capped(monkeypatch) -> None:
    monkeypatch.setattr(business_metrics, "MAX_LABEL_SETS", 2)
    bm = BusinessMetrics(60, TTL_S)
    end = 1_800_000_060_000
    gpu = pa.table(
        {
            "window_start": pa.array([end - 60_000] * 4, pa.timestamp("ms", tz="UTC")),
            "window_end": pa.array([end] * 4, pa.timestamp("ms", tz="UTC")),
            "team": ["a", "b", "c", "d"],
            "idle_cost_usd": [1.0, 2.0, 3.0, 4.0],
            "cost_usd": [1.0, 2.0, 3.0, 4.0],
            "idle_gpu_s": [0.0] * 4,
            "covered_s": [60.0] * 4,
        }
    )
    bm.observe({"gpu_windows": gpu})
    total = named(scrape(bm), "gpuledger_team_idle_cost_usd_total")
    assert len(total) == 3
    assert total[(("team", OTHER),)] == 7.0  # c + d
    assert sum(total.values()) == 10.0
