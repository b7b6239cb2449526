"""The headline figures of the period (exact USD), as a dict for `--json` and as the lines
of the terminal summary."""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from gpuledger.report.build import ReportData
from gpuledger.report.period import fmt_ms

__all__ = ["Headline", "headline", "to_json", "usd"]

CENT = Decimal("0.01")


def usd(value: Decimal) -> str:
    """$1,234.56 (rounded half-even to the cent)."""
    q = value.quantize(CENT, rounding=ROUND_HALF_EVEN)
    sign = "-" if q < 0 else ""
    return f"{sign}${abs(q):,.2f}"


@dataclass(frozen=True)
class Headline:
    start: str
    end: str
    gpus: int
    gpu_spend: Decimal | None
    idle_spend: Decimal | None
    idle_share: float | None
    buffer_cost: Decimal | None
    headroom_cost: Decimal | None
    forgotten_cost: Decimal | None
    saving_idle_ttl: Decimal | None
    saving_buffer: Decimal | None
    saving_total: Decimal | None
    billed: dict[str, tuple[Decimal, Decimal, Decimal]] | None

    def money(self) -> dict[str, Decimal | None]:
        return {
            "gpu_spend_usd": self.gpu_spend,
            "idle_spend_usd": self.idle_spend,
            "buffer_cost_usd": self.buffer_cost,
            "headroom_cost_usd": self.headroom_cost,
            "forgotten_cost_usd": self.forgotten_cost,
            "saving_idle_ttl_usd": self.saving_idle_ttl,
            "saving_buffer_usd": self.saving_buffer,
            "saving_total_usd": self.saving_total,
        }


def headline(data: ReportData) -> Headline:
    gpu, pools, lat, streaks = data.gpu, data.pools, data.latency, data.streaks
    saving_ttl = streaks.saving if streaks is not None else None
    saving_buffer = pools.buffer_cost if pools is not None else None
    parts = [s for s in (saving_ttl, saving_buffer) if s is not None]
    idle_share = None
    if gpu is not None and gpu.cost > 0:
        idle_share = float(gpu.idle_cost / gpu.cost)
    return Headline(
        start=fmt_ms(data.start_ms),
        end=fmt_ms(data.end_ms),
        gpus=gpu.gpus if gpu is not None else 0,
        gpu_spend=gpu.cost if gpu is not None else None,
        idle_spend=gpu.idle_cost if gpu is not None else None,
        idle_share=idle_share,
        buffer_cost=pools.buffer_cost if pools is not None else None,
        headroom_cost=lat.headroom_cost if lat is not None and lat.services is not None else None,
        forgotten_cost=streaks.cost if streaks is not None else None,
        saving_idle_ttl=saving_ttl,
        saving_buffer=saving_buffer,
        saving_total=sum(parts, Decimal(0)) if parts else None,
        billed=data.billing.by_currency if data.billing is not None else None,
    )


def _cents(v: Decimal | None) -> float | None:
    return None if v is None else float(v.quantize(CENT, rounding=ROUND_HALF_EVEN))


def to_json(h: Headline, out: str | None, problems: list[str]) -> str:
    """One JSON object: money in USD rounded to the cent (null: the table was absent)."""
    doc: dict[str, Any] = {"period_start": h.start, "period_end": h.end, "gpus": h.gpus}
    doc.update({k: _cents(v) for k, v in h.money().items()})
    doc["idle_share"] = None if h.idle_share is None else round(h.idle_share, 4)
    doc["billing"] = (
        None
        if h.billed is None
        else {
            cur: {"effective_cost": _cents(e), "list_cost": _cents(li), "billed_cost": _cents(b)}
            for cur, (e, li, b) in sorted(h.billed.items())
        }
    )
    doc["report"] = out
    doc["problems"] = problems
    return json.dumps(doc)


def summary_lines(h: Headline) -> list[str]:
    """The terminal summary."""

    def show(v: Decimal | None) -> str:
        return "not in the input" if v is None else usd(v)

    share = "" if h.idle_share is None else f" ({h.idle_share:.0%} of spend)"
    lines = [
        f"Period {h.start} to {h.end}, {h.gpus:,} GPUs",
        f"  GPU spend                    {show(h.gpu_spend)}",
        f"  idle spend                   {show(h.idle_spend)}{share}",
        f"  buffer above P95 demand      {show(h.buffer_cost)}",
        f"  latency headroom             {show(h.headroom_cost)}",
        f"  forgotten experiments        {show(h.forgotten_cost)}",
        f"  acting would save up to      {show(h.saving_total)} "
        f"(idle streaks cut at the TTL {show(h.saving_idle_ttl)}; buffers cut to P95 demand "
        f"{show(h.saving_buffer)})",
    ]
    if h.billed is None:
        lines.append("  billed spend                 not allocated (no allocated_costs table)")
    else:
        for cur, (eff, lst, _billed) in sorted(h.billed.items()):
            lines.append(
                f"  billed spend ({cur})          {eff.quantize(CENT):,} effective, "
                f"{lst.quantize(CENT):,} at list price"
            )
    return lines
