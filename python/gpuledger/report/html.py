"""Writes the report as one self-contained HTML file: Plotly's JavaScript and the styles are
inlined, the figures are JSON in the page, so it opens from disk with the network off."""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from importlib import resources

import plotly.graph_objects as go
import plotly.io as pio
from plotly.offline import get_plotlyjs, get_plotlyjs_version

from gpuledger.report import charts
from gpuledger.report.agg_gpu import LOW_COVERAGE, models_without_price
from gpuledger.report.arrow_util import pc
from gpuledger.report.build import ReportData
from gpuledger.report.chart_style import LOW_UTILIZATION, team_label
from gpuledger.report.headline import Headline, usd
from gpuledger.report.period import fmt_ms

__all__ = ["render"]

_STYLE = """
:root { --ink:#1d2433; --muted:#5b6475; --line:#e3e6ec; --bg:#f6f7f9; --trap:#b35900;
        --save:#00704f; --bad:#b03a00; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
       color:var(--ink); background:var(--bg); }
header { background:#1d2433; color:#fff; padding:20px 32px; }
header h1 { margin:0 0 4px; font-size:22px; }
header p { margin:0; color:#c8cede; }
nav { padding:8px 32px; background:#fff; border-bottom:1px solid var(--line); }
nav a { margin-right:16px; color:#0b5cad; text-decoration:none; }
main { max-width:1280px; margin:0 auto; padding:16px 32px 48px; }
section { background:#fff; border:1px solid var(--line); border-radius:8px; padding:16px 20px;
          margin:16px 0; }
section h2 { margin:0 0 4px; font-size:18px; }
.lede { color:var(--muted); margin:0 0 8px; }
.cards { display:grid; grid-template-columns:repeat(auto-fit,minmax(190px,1fr)); gap:12px;
         margin:12px 0; }
.card { border:1px solid var(--line); border-radius:6px; padding:10px 12px; }
.card .label { color:var(--muted); font-size:12px; }
.card .figure { font-size:22px; font-weight:600; }
.card.trap .figure { color:var(--trap); } .card.save .figure { color:var(--save); }
.note { color:var(--muted); font-size:13px; }
.problems { background:#fff4e5; border:1px solid #f0c36d; border-radius:6px; padding:8px 12px; }
table { border-collapse:collapse; width:100%; margin:8px 0; font-size:13px; }
th, td { text-align:left; padding:4px 8px; border-bottom:1px solid var(--line); }
td.num, th.num { text-align:right; font-variant-numeric:tabular-nums; }
.chart { width:100%; }
.missing { color:var(--muted); font-style:italic; }
"""

# Draws every figure, then marks the page ready (the browser test and bench wait for it).
_LOADER = """
(function () {
  var specs = document.querySelectorAll('script[type="application/json"][data-figure]');
  var done = [];
  specs.forEach(function (s) {
    var fig = JSON.parse(s.textContent);
    var config = {responsive: true, displaylogo: false};
    done.push(Plotly.newPlot(s.getAttribute('data-figure'), fig.data, fig.layout, config));
  });
  Promise.all(done).then(function () {
    document.body.setAttribute('data-ready-ms', String(performance.now()));
    document.body.setAttribute('data-ready', '1');
  });
})();
"""


@dataclass
class _Page:
    sections: list[str] = field(default_factory=list)
    nav: list[tuple[str, str]] = field(default_factory=list)
    figures: int = 0

    def figure(self, fig: go.Figure) -> str:
        self.figures += 1
        div = f"chart-{self.figures}"
        spec = pio.to_json(fig, validate=False).replace("</", "<\\/")
        return (
            f'<div class="chart" id="{div}"></div>'
            f'<script type="application/json" data-figure="{div}">{spec}</script>'
        )

    def section(self, key: str, title: str, lede: str, body: str) -> None:
        self.nav.append((key, title))
        self.sections.append(
            f'<section id="{key}" data-section="{key}"><h2>{_e(title)}</h2>'
            f'<p class="lede">{lede}</p>{body}</section>'
        )


def _e(text: object) -> str:
    return html.escape(str(text))


def _missing(table: str) -> str:
    return f'<p class="missing">No <code>{_e(table)}</code> rows in the input for this period.</p>'


def _card(key: str, label: str, value: Decimal | None, kind: str = "", extra: str = "") -> str:
    shown = "not in the input" if value is None else usd(value)
    return (
        f'<div class="card {kind}"><div class="label">{_e(label)}</div>'
        f'<div class="figure" data-key="{key}">{_e(shown)}</div>'
        f'<div class="note">{extra}</div></div>'
    )


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], numeric: set[int]) -> str:
    head = "".join(
        f'<th class="num">{_e(h)}</th>' if i in numeric else f"<th>{_e(h)}</th>"
        for i, h in enumerate(headers)
    )
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="num">{_e(c)}</td>' if i in numeric else f"<td>{_e(c)}</td>"
            for i, c in enumerate(r)
        )
        + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


CARTESIAN_VERSION = "4.1.1"  # of vendor/plotly-cartesian.min.js (vendor/README.md)


def plotly_js() -> str:
    """The plotly.js to inline: the vendored cartesian bundle (1.5 MB: scatter, bar, heatmap)
    when it is the version plotly.py was built for, else plotly.py's full bundle (4.8 MB)."""
    if get_plotlyjs_version() == CARTESIAN_VERSION:
        bundle = resources.files("gpuledger.report") / "vendor" / "plotly-cartesian.min.js"
        if bundle.is_file():
            return bundle.read_text(encoding="utf-8")
    return str(get_plotlyjs())


def render(data: ReportData, h: Headline) -> str:
    page = _Page()
    _headline(page, data, h)
    _idle(page, data)
    _utilization(page, data)
    _buffers(page, data)
    _latency(page, data)
    _forgotten(page, data)
    _quality(page, data)
    nav = "".join(f'<a href="#{k}">{_e(t)}</a>' for k, t in page.nav)
    dirs = ", ".join(data.dirs)
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>gpuledger cost report {h.start} to {h.end}</title>"
        f"<style>{_STYLE}</style><script>{plotly_js()}</script></head><body>"
        f"<header><h1>Where the GPU money goes</h1><p>{_e(h.start)} to {_e(h.end)} · "
        f"{h.gpus:,} GPUs · from {_e(dirs)}</p></header><nav>{nav}</nav><main>"
        + "".join(page.sections)
        + f"</main><script>{_LOADER}</script></body></html>"
    )


def _headline(page: _Page, data: ReportData, h: Headline) -> None:
    share = "" if h.idle_share is None else f"{h.idle_share:.0%} of spend"
    cards = [
        _card("gpu_spend_usd", "GPU spend", h.gpu_spend),
        _card("idle_spend_usd", "idle spend", h.idle_spend, "trap", _e(share)),
        _card("buffer_cost_usd", "buffer above P95 demand", h.buffer_cost, "trap"),
        _card("headroom_cost_usd", "latency headroom", h.headroom_cost, "trap"),
        _card("forgotten_cost_usd", "forgotten experiments", h.forgotten_cost, "trap"),
        _card(
            "saving_total_usd",
            "acting would save up to",
            h.saving_total,
            "save",
            "idle streaks cut at the TTL + buffers cut to P95 demand",
        ),
    ]
    if h.billed is None:
        bill = (
            '<p class="note" data-key="billing">Billed spend: the bill was not allocated '
            "(no <code>allocated_costs</code> table in the input), so the figures are at "
            "list price.</p>"
        )
    else:
        items = "; ".join(
            f"{_e(cur)} {eff.quantize(Decimal('0.01')):,} billed (EffectiveCost) against "
            f"{lst.quantize(Decimal('0.01')):,} at list price (ListCost)"
            for cur, (eff, lst, _b) in sorted(h.billed.items())
        )
        bill = f'<p class="note" data-key="billing">Billed spend: {items}.</p>'
    problems = ""
    if data.problems:
        items = "".join(f"<li>{_e(p)}</li>" for p in data.problems[:20])
        more = f"<li>… and {len(data.problems) - 20} more</li>" if len(data.problems) > 20 else ""
        problems = (
            f'<div class="problems" data-key="problems"><b>Incomplete input:</b> '
            f"<ul>{items}{more}</ul></div>"
        )
    ttl_h = data.config.idle.ttl_s / 3600
    lede = (
        f"Totals of the output tables for the period. Savings: forgotten pods stopped once "
        f"idle for the TTL ({ttl_h:g} h), pool capacity cut to its P95 demand; the two can "
        "overlap where a forgotten pod sits in a buffered pool, so their sum is an upper "
        "bound."
    )
    body = (
        problems
        + f'<div class="cards">{"".join(cards)}</div>'
        + bill
        + page.figure(charts.headline_chart(h))
    )
    page.section("headline", "Headline", _e(lede), body)


def _idle(page: _Page, data: ReportData) -> None:
    title = "Idle cost by team"
    if data.gpu is None:
        page.section("idle", title, "", _missing("gpu_windows"))
        return
    teams = data.gpu.by_team.sort_by([("idle_cost", "descending")])
    rows = []
    for r in teams.to_pylist():  # one row per team
        cost, idle = Decimal(r["cost"]), Decimal(r["idle_cost"])
        share = f"{idle / cost:.0%}" if cost else "-"
        rows.append([team_label(r["team"]), usd(idle), usd(cost), share])
    body = page.figure(charts.idle_by_team_chart(data.gpu.idle_by_team, data.bucket_s))
    body += _table(["team", "idle cost", "GPU spend", "idle share"], rows, {1, 2, 3})
    page.section(
        "idle",
        title,
        "Money paid for GPU time the GPUs spent idle, by the team "
        "holding them (unallocated GPUs count as their own team).",
        body,
    )


def _utilization(page: _Page, data: ReportData) -> None:
    title = "Utilization"
    if data.gpu is None:
        page.section("utilization", title, "", _missing("gpu_windows"))
        return
    body = page.figure(charts.heatmap_chart(data.gpu.heatmap, data.bucket_s))
    body += page.figure(charts.util_distribution_chart(data.gpu.util_hist))
    if data.pools is not None:
        low = data.pools.totals.filter(
            pc.less(data.pools.totals.column("utilization"), LOW_UTILIZATION)
        )
        names = [
            f"{team_label(a)} / {b} ({u:.0%})"
            for a, b, u in zip(
                low.column("team").to_pylist(),
                low.column("model_name").to_pylist(),
                low.column("utilization").to_pylist(),
                strict=False,
            )
        ]
        body += (
            f'<p class="note">Pools below 35 % utilization over the period: '
            f"{_e(', '.join(names) or 'none')}.</p>"
        )
    page.section(
        "utilization",
        title,
        "Each row a GPU, each column a time bucket, colour its "
        "busy share; below, how the fleet's GPU-hours spread over utilization. The "
        "first trap: clusters below 35 % utilization.",
        body,
    )


def _buffers(page: _Page, data: ReportData) -> None:
    title = "Buffer by pool"
    if data.pools is None:
        page.section("buffers", title, "", _missing("pool_windows"))
        return
    body = page.figure(charts.pool_buffer_chart(data.pools))
    body += page.figure(charts.pool_time_chart(data.pools, data.bucket_s))
    rows = [
        [
            team_label(r["team"]),
            str(r["model_name"]),
            f"{r['capacity']:.2f}",
            f"{r['demand_p95']:.2f}",
            f"{r['buffer']:.2f}",
            usd(Decimal(r["buffer_cost"])),
        ]
        for r in data.pools.totals.to_pylist()  # one row per pool
    ]
    body += _table(
        [
            "team",
            "GPU model",
            "capacity (GPUs)",
            "P95 demand (GPUs)",
            "buffer (GPUs)",
            "buffer cost",
        ],
        rows,
        {2, 3, 4, 5},
    )
    page.section(
        "buffers",
        title,
        "Capacity each pool kept, its P95 demand and the buffer "
        "between them, with its dollars. The second trap: 20 % buffers kept just in "
        "case.",
        body,
    )


def _latency(page: _Page, data: ReportData) -> None:
    title = "Tail latency by service"
    lat = data.latency
    if lat is None or lat.services is None:
        page.section("latency", title, "", _missing("latency_windows"))
        return
    body = ""
    if lat.over_time is not None:
        body += page.figure(charts.latency_chart(lat, data.bucket_s))
    else:
        body += _missing("latency_windows")
    cols = set(lat.services.column_names)
    rows = []
    for r in lat.services.to_pylist():  # one row per service
        met = r.get("met_share")
        rows.append(
            [
                str(r["service"]),
                f"{r['requests']:,}" if "requests" in cols and r["requests"] is not None else "-",
                f"{r['slo_ms']:.0f} ms at {r['slo_target']:.0%}" if r.get("slo_ms") else "-",
                f"{r['p95']:.1f} / {r['p99']:.1f} ms" if r.get("p95") is not None else "-",
                "-" if met is None else f"{met:.0%}",
                usd(Decimal(r["headroom_cost"])) if r.get("headroom_cost") is not None else "-",
                f"{r['headroom_gpus']:.2f} of {r['provisioned']:.2f}"
                if r.get("headroom_gpus") is not None
                else "-",
            ]
        )
    body += _table(
        [
            "service",
            "requests",
            "SLO",
            "p95 / p99",
            "SLO met (windows)",
            "headroom cost",
            "headroom GPUs (mean)",
        ],
        rows,
        {1, 4, 5, 6},
    )
    page.section(
        "latency",
        title,
        "Latency quantiles from the merged sketches against each "
        "service's SLO, the share of windows meeting it and the cost of the capacity "
        "held above demand. The third trap: 2x capacity kept warm for a P95 target.",
        body,
    )


def _forgotten(page: _Page, data: ReportData) -> None:
    title = "Forgotten experiments"
    s = data.streaks
    if s is None:
        page.section("forgotten", title, "", _missing("idle_streaks"))
        return
    if s.table.num_rows == 0:
        page.section(
            "forgotten",
            title,
            "",
            "<p>No pod stayed idle beyond the TTL.</p>" + page.figure(charts.forgotten_chart(s)),
        )
        return
    rows = [
        [
            str(r["namespace"]),
            str(r["pod"]),
            str(r["gpu_uuid"]),
            fmt_ms(int(r["streak_start"].timestamp() * 1000)),
            f"{r['streak_s'] / 3600:.1f}",
            usd(Decimal(r["idle_cost"])),
            f"{r['beyond_ttl_s'] / 3600:.1f} h",
        ]
        for r in s.table.slice(0, 200).to_pylist()  # at most 200 rows shown
    ]
    more = "" if s.table.num_rows <= 200 else f"<p class=note>{s.table.num_rows - 200} more.</p>"
    body = (
        page.figure(charts.forgotten_chart(s))
        + _table(
            ["namespace", "pod", "GPU", "idle since", "idle hours", "cost", "TTL exceeded by"],
            rows,
            {4, 5, 6},
        )
        + more
    )
    page.section(
        "forgotten",
        title,
        f"Pods idle beyond the TTL ({s.ttl_s / 3600:g} h), by dollars burned. The fourth trap.",
        body,
    )


def _quality(page: _Page, data: ReportData) -> None:
    title = "Data quality"
    g, ev, st = data.gpu, data.events, data.stats
    rows: list[list[str]] = [
        [
            "late events",
            f"{ev.late_events:,}",
            ", ".join(f"{r['stream']}: {r['count']:,}" for r in ev.late_by_stream.to_pylist()),
        ],
        [
            "dead letters",
            f"{ev.dead_letters:,}",
            ", ".join(
                f"{r['reason']}: {r['count']:,}" for r in ev.dead_by_reason.slice(0, 5).to_pylist()
            ),
        ],
    ]
    if g is not None:
        unpriced = models_without_price(g.by_model, data.config.prices)
        share = g.low_coverage_windows / g.windows if g.windows else 0.0
        rows += [
            [
                "GPUs without a pod",
                f"{g.unallocated_gpus:,} of {g.gpus:,}",
                f"{usd(g.unallocated_cost)} of spend on unallocated GPUs",
            ],
            [
                "GPU models without a price",
                f"{len(unpriced):,}",
                (
                    "priced at the default "
                    + f"${data.config.prices['default']:g}/GPU-hour: "
                    + ", ".join(unpriced)
                )
                if unpriced
                else "every model has a [prices] entry",
            ],
            [
                f"GPU windows below {LOW_COVERAGE:.0%} sample coverage",
                f"{g.low_coverage_windows:,} of {g.windows:,} ({share:.1%})",
                f"{usd(g.low_coverage_cost)} of spend in them",
            ],
        ]
    sizes = ", ".join(f"{s:g} s" for s in sorted(st.window_sizes_s))
    used = ", ".join(f"{s:g} s" for s in sorted(st.used_window_s))
    rows += [
        [
            "partial rows combined",
            f"{st.partial_rows:,}",
            "rows of several instances merged by key before summing (docs/scale-out.md)",
        ],
        ["window sizes", sizes or "-", f"figures use {used or '-'}"],
        [
            "files set aside",
            f"{len(data.problems):,}",
            "; ".join(data.problems[:5]) if data.problems else "every file was read",
        ],
    ]
    table = _table(["check", "count", "detail"], rows, {1})
    body = (
        page.figure(charts.coverage_chart(g.coverage_hist))
        if g is not None
        else _missing("gpu_windows")
    ) + table
    page.section("quality", title, "Numbers you bill on must show their gaps.", body)
