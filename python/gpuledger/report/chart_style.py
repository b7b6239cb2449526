"""The report charts' common look: the palette (Okabe-Ito, readable with the common
colour-vision deficiencies), the limits on series per chart, title and legend placement, and
the small conversions every chart uses."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import numpy as np
import plotly.graph_objects as go

LOW_UTILIZATION = 0.35  # the first trap: clusters below 35 % utilization
# Okabe-Ito, readable by people with the common colour-vision deficiencies.
PALETTE = (
    "#0072B2",
    "#E69F00",
    "#009E73",
    "#CC79A7",
    "#56B4E9",
    "#D55E00",
    "#F0E442",
    "#999999",
    "#000000",
)
SPEND, TRAP, SAVE, BAD = "#0072B2", "#E69F00", "#009E73", "#D55E00"
MAX_TEAMS = 8
MAX_POOLS = 4
MAX_SERVICES = 6
MAX_STREAKS = 20
TOP = 100  # px above the plot: title, then legend


def layout(fig: go.Figure, title: str, height: int = 380, **kw: Any) -> go.Figure:
    settings: dict[str, Any] = {
        # Title and legend placed in pixels from the top (container coordinates), so a
        # legend never runs into the title or into the subplot titles below it.
        "title": {
            "text": title,
            "x": 0.0,
            "xanchor": "left",
            "font": {"size": 16},
            "yref": "container",
            "y": 1 - 14 / height,
            "yanchor": "top",
        },
        "template": "plotly_white",
        "height": height,
        "margin": {"l": 70, "r": 30, "t": TOP, "b": 60},
        "showlegend": True,
        "legend": {
            "orientation": "h",
            "yref": "container",
            "y": 1 - 46 / height,
            "yanchor": "top",
            "xanchor": "left",
            "x": 0.0,
        },
        "hoverlabel": {"namelength": -1},
        "font": {"family": "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", "size": 12},
    }
    settings.update(kw)
    fig.update_layout(**settings)
    return fig


def times(ms: Any) -> np.ndarray:
    return np.asarray(ms, dtype="int64").astype("datetime64[ms]")


def team_label(name: object) -> str:
    return str(name) if name else "(unallocated)"


def as_float(v: Decimal | None) -> float:
    return 0.0 if v is None else float(v)


def bucket_label(bucket_s: int) -> str:
    names = {
        60: "minute",
        300: "5 min",
        900: "15 min",
        1800: "30 min",
        3600: "hour",
        10_800: "3 h",
        21_600: "6 h",
        43_200: "12 h",
        86_400: "day",
        604_800: "week",
    }
    return names.get(bucket_s, f"{bucket_s} s")


def with_alpha(hex_colour: str, a: float) -> str:
    r, g, b = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{a})"
