"""`gpuledger simulate`: a deterministic (seeded) GPU fleet and its inference traffic.

Scenarios (`SCENARIOS`; figures to expect in docs/simulate.md): `training`, `buffer`,
`bursty`, `forgotten` and `mixed`. Request arrivals and token counts come from the Azure LLM
inference traces of November 2023 (CC-BY 4.0, shipped in `data/azure-llm-2023/`), latencies
from a queueing model of load and tokens (`latency.py`).

>>> sim = Simulation("bursty", seed=1, start_s=1_795_824_000, duration_s=600, gpus=4)
>>> write_files(sim, "out", "prom_json")        # out/telemetry.jsonl, out/requests.jsonl
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

from gpuledger.simulate.scenarios import SCENARIOS
from gpuledger.simulate.simulation import Simulation, Tick
from gpuledger.simulate.writers import WriteReport, write_files

# 2026-11-28T00:00:00Z
DEFAULT_START_S = 1_795_824_000

_UNITS = {"": 1, "s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(s|min|m|h|d)?", re.IGNORECASE)


def parse_duration(text: str) -> int:
    """'2h', '90m', '1h30m', '45s', '1d' or plain seconds -> whole seconds (>= 1)."""
    s = text.strip().lower()
    total = 0.0
    pos = 0
    for m in _DURATION.finditer(s):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS[m.group(2) or ""]
        pos = m.end()
    if pos != len(s) or not s or total < 1:
        raise ValueError(f"invalid duration {text!r}: use e.g. 2h, 90m, 1h30m, 3600")
    return int(total)


def parse_start(text: str) -> int:
    """ISO 8601 (UTC when no offset is given; 'Z' allowed) or Unix seconds -> whole seconds."""
    s = text.strip()
    if re.fullmatch(r"\d+(\.\d+)?", s):
        return int(float(s))
    try:
        dt = datetime.fromisoformat(s.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"invalid start {text!r}: use ISO 8601, e.g. 2026-11-28T00:00:00Z"
        ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return int(dt.timestamp())


__all__ = [
    "DEFAULT_START_S",
    "SCENARIOS",
    "Simulation",
    "Tick",
    "WriteReport",
    "parse_duration",
    "parse_start",
    "write_files",
]
