"""The report's charts as Plotly figures, one function per picture. Every chart has a title
saying what it shows, axis units, a legend and a hover with exact values."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
import pyarrow as pa
from plotly.subplots import make_subplots

from gpuledger.report.agg_events import StreakResult
from gpuledger.report.agg_gpu import COVERAGE_BINS, HIST_BINS, Heatmap
from gpuledger.report.agg_latency import LatencyResult
from gpuledger.report.agg_pools import PoolResult
from gpuledger.report.arrow_util import pc
from gpuledger.report.chart_style import (
    BAD,
    LOW_UTILIZATION,
    MAX_POOLS,
    MAX_SERVICES,
    MAX_STREAKS,
    MAX_TEAMS,
    PALETTE,
    SAVE,
    SPEND,
    TOP,
    TRAP,
    as_float,
    bucket_label,
    layout,
    team_label,
    times,
    with_alpha,
)
from gpuledger.report.headline import Headline

__all__ = [
    "coverage_chart",
    "forgotten_chart",
    "headline_chart",
    "heatmap_chart",
    "idle_by_team_chart",
    "latency_chart",
    "pool_buffer_chart",
    "pool_time_chart",
    "util_distribution_chart",
]


def headline_chart(h: Headline) -> go.Figure:
    fig = go.Figure()
    groups = (
        ("spend", SPEND, [("GPU spend", h.gpu_spend), ("idle spend", h.idle_spend)]),
        (
            "cost traps",
            TRAP,
            [
                ("buffer above P95 demand", h.buffer_cost),
                ("latency headroom", h.headroom_cost),
                ("forgotten experiments", h.forgotten_cost),
            ],
        ),
        (
            "what acting would save",
            SAVE,
            [
                ("idle streaks cut at the TTL", h.saving_idle_ttl),
                ("buffers cut to P95 demand", h.saving_buffer),
            ],
        ),
    )
    for name, colour, bars in groups:
        shown = [(label, v) for label, v in bars if v is not None]
        fig.add_trace(
            go.Bar(
                name=name,
                orientation="h",
                y=[label for label, _ in shown],
                x=[as_float(v) for _, v in shown],
                marker_color=colour,
                text=[f"${as_float(v):,.2f}" for _, v in shown],
                textposition="auto",
                hovertemplate="%{y}: $%{x:,.2f}<extra>%{fullData.name}</extra>",
            )
        )
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(title_text="USD over the period", tickprefix="$")
    return layout(fig, "Where the GPU money went, and what acting would save (USD)", 360)


def idle_by_team_chart(t: pa.Table, bucket_s: int) -> go.Figure:
    """Stacked area of idle USD per bucket, the MAX_TEAMS teams idling most, the rest
    summed as 'other teams'."""
    per_team = (
        t.group_by(["team"])
        .aggregate([("idle_cost", "sum")])
        .sort_by([("idle_cost_sum", "descending"), ("team", "ascending")])
    )
    teams = per_team.column("team").to_pylist()
    top, rest = teams[:MAX_TEAMS], teams[MAX_TEAMS:]
    fig = go.Figure()
    unit = bucket_label(bucket_s)
    for i, team in enumerate(top):
        rows = t.filter(pc.equal(t.column("team"), team))
        _area(fig, team_label(team), rows, PALETTE[i % len(PALETTE)], unit)
    if rest:
        rows = t.filter(pc.is_in(t.column("team"), value_set=pa.array(rest, pa.string())))
        rows = (
            rows.group_by(["bucket"])
            .aggregate([("idle_cost", "sum")])
            .rename_columns(["bucket", "idle_cost"])
            .sort_by("bucket")
        )
        _area(fig, f"{len(rest)} other teams", rows, "#999999", unit)
    fig.update_xaxes(title_text="time (UTC)")
    fig.update_yaxes(title_text=f"idle cost, USD per {unit}", tickprefix="$")
    return layout(
        fig, f"Idle GPU cost by team, USD per {unit} (stacked)", 400, hovermode="x unified"
    )


def _area(fig: go.Figure, name: str, rows: pa.Table, colour: str, unit: str) -> None:
    fig.add_trace(
        go.Scatter(
            name=name,
            x=times(rows.column("bucket").to_numpy()),
            y=rows.column("idle_cost").to_numpy(),
            stackgroup="idle",
            mode="lines",
            line={"width": 0.5, "color": colour},
            hovertemplate=f"{name}: $%{{y:,.2f}} idle per {unit}<extra></extra>",
        )
    )


def heatmap_chart(hm: Heatmap, bucket_s: int) -> go.Figure:
    labels = []
    seen: set[str] = set()
    for gpu, team in zip(hm.gpus, hm.teams, strict=False):
        label = f"{team_label(team)} · {gpu[:12]}"
        while label in seen:
            label += "·"
        seen.add(label)
        labels.append(label)
    if hm.others:
        labels.append(f"{hm.others} other GPUs (mean)")
    # Drop the empty buckets at the edges of the period.
    filled = np.flatnonzero(~np.all(np.isnan(hm.z), axis=0))
    lo, hi = (int(filled[0]), int(filled[-1]) + 1) if len(filled) else (0, hm.z.shape[1])
    z = np.round(hm.z[:, lo:hi] * 100.0, 1)
    rows = len(labels)
    fig = go.Figure(
        go.Heatmap(
            name="utilization",
            z=z,
            x=times(hm.buckets_ms[lo:hi]),
            y=labels,
            zmin=0,
            zmax=100,
            colorscale="Viridis",
            colorbar={"title": {"text": "busy %"}, "ticksuffix": " %"},
            hovertemplate="%{y}<br>%{x}<br>utilization %{z:.1f} %<extra></extra>",
            showlegend=True,
        )
    )
    fig.update_yaxes(
        autorange="reversed",
        title_text="GPU (busiest first)",
        showticklabels=rows <= 60,
        type="category",
    )
    fig.update_xaxes(title_text="time (UTC)")
    shown = f"{len(hm.gpus)} GPUs" + (
        f", {hm.others} more averaged in the last row" if hm.others else ""
    )
    return layout(
        fig,
        f"GPU utilization over time, % busy per {bucket_label(bucket_s)} ({shown})",
        max(360, min(900, 140 + rows * 16)),
        margin={"l": 230 if rows <= 60 else 70, "r": 30, "t": TOP, "b": 60},
    )


def util_distribution_chart(hist: pa.Table) -> go.Figure:
    hours = np.zeros(HIST_BINS)
    bins = hist.column("bin").to_numpy()
    hours[bins] = hist.column("covered_s").to_numpy() / 3600.0
    width = 100 / HIST_BINS
    centres = np.arange(HIST_BINS) * width + width / 2
    low = centres < LOW_UTILIZATION * 100
    total = hours.sum()
    low_share = hours[low].sum() / total if total else 0.0
    fig = go.Figure()
    for name, mask, colour in (
        ("below 35 % (the first trap)", low, BAD),
        ("35 % and above", ~low, SPEND),
    ):
        fig.add_trace(
            go.Bar(
                name=name,
                x=centres[mask],
                y=hours[mask],
                width=width * 0.95,
                marker_color=colour,
                customdata=np.stack([centres[mask] - width / 2, centres[mask] + width / 2], -1),
                hovertemplate="utilization %{customdata[0]:.0f}-%{customdata[1]:.0f} %: "
                "%{y:,.2f} GPU-hours<extra></extra>",
            )
        )
    fig.add_vline(
        x=LOW_UTILIZATION * 100,
        line_dash="dash",
        line_color="#333",
        annotation_text="35 %",
        annotation_position="top right",
    )
    fig.update_xaxes(
        title_text="utilization of a GPU in a window, %", range=[0, 100], ticksuffix=" %"
    )
    fig.update_yaxes(title_text="GPU-hours")
    return layout(
        fig,
        f"Fleet utilization distribution: {low_share:.0%} of GPU-hours below 35 % busy",
        360,
    )


def _pool_label(team: object, model: object) -> str:
    return f"{team_label(team)} / {model}"


def pool_buffer_chart(pools: PoolResult) -> go.Figure:
    t = pools.totals
    labels = [
        _pool_label(a, b)
        for a, b in zip(
            t.column("team").to_pylist(), t.column("model_name").to_pylist(), strict=False
        )
    ]
    capacity = t.column("capacity").to_numpy()
    demand = t.column("demand_p95").to_numpy()
    buffer = t.column("buffer").to_numpy()
    share = np.where(capacity > 0, buffer / np.maximum(capacity, 1e-9), 0.0)
    dollars = pc.cast(t.column("buffer_cost"), pa.float64()).to_numpy()
    fig = go.Figure(
        go.Bar(
            name="buffer cost",
            orientation="h",
            y=labels,
            x=dollars,
            marker_color=TRAP,
            text=[f"${v:,.2f} · {s:.0%} of capacity" for v, s in zip(dollars, share, strict=False)],
            textposition="auto",
            customdata=np.stack([capacity, demand, buffer, share * 100], -1),
            hovertemplate="%{y}<br>buffer cost $%{x:,.2f}<br>capacity %{customdata[0]:.2f} GPUs"
            "<br>P95 demand %{customdata[1]:.2f} GPUs<br>buffer %{customdata[2]:.2f} GPUs "
            "(%{customdata[3]:.0f} % of capacity)<extra></extra>",
        )
    )
    fig.update_yaxes(autorange="reversed", type="category")
    fig.update_xaxes(title_text="buffer cost, USD over the period", tickprefix="$")
    return layout(
        fig,
        "Buffer cost by pool: capacity kept above P95 demand (USD)",
        max(300, 150 + 34 * len(labels)),
        margin={"l": 320, "r": 30, "t": TOP, "b": 60},
    )


def pool_time_chart(pools: PoolResult, bucket_s: int) -> go.Figure:
    """One panel per pool (the MAX_POOLS costliest buffers): capacity, P95 demand and the
    buffer shaded between them."""
    t = pools.over_time
    top = pools.totals.slice(0, MAX_POOLS)
    names = [
        _pool_label(a, b)
        for a, b in zip(
            top.column("team").to_pylist(), top.column("model_name").to_pylist(), strict=False
        )
    ]
    dollars = pc.cast(top.column("buffer_cost"), pa.float64()).to_pylist()
    fig = make_subplots(
        rows=len(names),
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.09,
        subplot_titles=[f"{n}: buffer ${d:,.2f}" for n, d in zip(names, dollars, strict=False)],
    )
    unit = bucket_label(bucket_s)
    for i, (team, model) in enumerate(
        zip(top.column("team").to_pylist(), top.column("model_name").to_pylist(), strict=False),
        start=1,
    ):
        rows = t.filter(
            pc.and_(pc.equal(t.column("team"), team), pc.equal(t.column("model_name"), model))
        )
        x = times(rows.column("bucket").to_numpy())
        label = names[i - 1]
        fig.add_trace(
            go.Scatter(
                name="P95 demand",
                x=x,
                y=rows.column("demand_p95").to_numpy(),
                mode="lines",
                line={"color": SPEND, "width": 2},
                legendgroup="demand",
                showlegend=i == 1,
                hovertemplate=f"{label}<br>P95 demand %{{y:.2f}} GPUs<extra></extra>",
            ),
            row=i,
            col=1,
        )
        fig.add_trace(
            go.Scatter(
                name="capacity (shaded: the buffer)",
                x=x,
                y=rows.column("capacity").to_numpy(),
                mode="lines",
                line={"color": TRAP, "width": 2},
                fill="tonexty",
                fillcolor=with_alpha(TRAP, 0.25),
                legendgroup="capacity",
                showlegend=i == 1,
                hovertemplate=f"{label}<br>capacity %{{y:.2f}} GPUs<extra></extra>",
            ),
            row=i,
            col=1,
        )
        fig.update_yaxes(title_text="GPUs", rangemode="tozero", row=i, col=1)
    fig.update_xaxes(title_text="time (UTC)", row=len(names), col=1)
    return layout(
        fig,
        f"Capacity and P95 demand over time, GPUs (mean per {unit}), the pools with the "
        "costliest buffers",
        140 + 200 * len(names),
        hovermode="x unified",
    )


def latency_chart(lat: LatencyResult, bucket_s: int) -> go.Figure:
    t = lat.over_time
    assert t is not None
    totals = (
        t.group_by(["service"])
        .aggregate([("requests", "sum")])
        .sort_by([("requests_sum", "descending"), ("service", "ascending")])
    )
    services = totals.column("service").to_pylist()[:MAX_SERVICES]
    fig = make_subplots(
        rows=len(services),
        cols=1,
        shared_xaxes=True,
        subplot_titles=[str(s) for s in services],
        vertical_spacing=0.08,
    )
    styles = (("p50", "#56B4E9", "p50"), ("p95", "#0072B2", "p95"), ("p99", "#CC79A7", "p99"))
    unit = bucket_label(bucket_s)
    for i, service in enumerate(services, start=1):
        rows = t.filter(pc.equal(t.column("service"), service))
        x = times(rows.column("bucket").to_numpy())
        for column, colour, name in styles:
            fig.add_trace(
                go.Scatter(
                    name=name,
                    x=x,
                    y=rows.column(column).to_numpy(),
                    mode="lines",
                    line={"color": colour, "width": 1.8},
                    legendgroup=name,
                    showlegend=i == 1,
                    hovertemplate=f"{service} {name}: %{{y:.1f}} ms<extra></extra>",
                ),
                row=i,
                col=1,
            )
        slo = rows.column("slo_ms").to_numpy()
        fig.add_trace(
            go.Scatter(
                name="SLO",
                x=x,
                y=slo,
                mode="lines",
                line={"color": BAD, "dash": "dash", "width": 1.5},
                legendgroup="SLO",
                showlegend=i == 1,
                hovertemplate=f"{service} SLO: %{{y:.0f}} ms<extra></extra>",
            ),
            row=i,
            col=1,
        )
        fig.update_yaxes(title_text="ms", rangemode="tozero", row=i, col=1)
    fig.update_xaxes(title_text="time (UTC)", row=len(services), col=1)
    return layout(
        fig,
        f"Request latency by service, p50 / p95 / p99 per {unit} against the SLO (ms)",
        160 + 220 * len(services),
        hovermode="x unified",
    )


def forgotten_chart(streaks: StreakResult) -> go.Figure:
    t = streaks.table.slice(0, MAX_STREAKS)
    labels = [
        f"{ns}/{pod}"
        for ns, pod in zip(
            t.column("namespace").to_pylist(), t.column("pod").to_pylist(), strict=False
        )
    ]
    hours = t.column("streak_s").to_numpy() / 3600.0
    beyond = t.column("beyond_ttl_s").to_numpy() / 3600.0
    fig = go.Figure(
        go.Bar(
            name="idle cost",
            orientation="h",
            y=labels,
            x=pc.cast(t.column("idle_cost"), pa.float64()).to_numpy(),
            marker_color=BAD,
            customdata=np.stack([hours, beyond], -1),
            hovertemplate="%{y}<br>burned $%{x:,.2f} idle<br>idle %{customdata[0]:.1f} h, "
            "TTL exceeded by %{customdata[1]:.1f} h<extra></extra>",
        )
    )
    fig.update_yaxes(autorange="reversed", type="category")  # labels say namespace/pod
    fig.update_xaxes(title_text="idle cost of the streak, USD", tickprefix="$")
    return layout(
        fig,
        "Forgotten experiments (namespace/pod): dollars burned while idle beyond the TTL",
        max(300, 140 + 28 * len(labels)),
        margin={"l": 260, "r": 30, "t": TOP, "b": 60},
    )


def coverage_chart(hist: pa.Table) -> go.Figure:
    counts = np.zeros(COVERAGE_BINS)
    counts[hist.column("bin").to_numpy()] = hist.column("windows").to_numpy()
    width = 100 / COVERAGE_BINS
    names = [f"{int(i * width)}-{int((i + 1) * width)} %" for i in range(COVERAGE_BINS)]
    colours = [BAD if i < COVERAGE_BINS - 1 else SAVE for i in range(COVERAGE_BINS)]
    fig = go.Figure(
        go.Bar(
            name="GPU windows",
            x=names,
            y=counts,
            marker_color=colours,
            hovertemplate="coverage %{x}: %{y:,} GPU windows<extra></extra>",
        )
    )
    fig.update_xaxes(title_text="share of the window covered by samples", type="category")
    if counts.max() > 1000:  # a few gappy windows next to many full ones: log, powers of 10
        fig.update_yaxes(title_text="GPU windows (log scale)", type="log", dtick=1)
    else:
        fig.update_yaxes(title_text="GPU windows")
    return layout(fig, "Sample coverage of GPU windows (windows below 90 % have gaps)", 340)


def figure_names(figs: Sequence[tuple[str, go.Figure]]) -> list[str]:
    return [n for n, _ in figs]
