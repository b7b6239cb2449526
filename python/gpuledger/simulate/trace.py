"""Request arrivals from the Azure LLM inference traces of November 2023 (CC-BY 4.0).

The two CSVs shipped in `data/azure-llm-2023/` (code and conversation traffic, about one
hour each, columns `TIMESTAMP,ContextTokens,GeneratedTokens`) give real arrival times and
token counts. `arrivals()` shifts a trace to the simulation start and loops it when the
simulation is longer than the trace: loop `k` starts `k * period_s` later, where `period_s`
is the trace's span rounded up to the next whole second.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from importlib import resources

TRACES = ("conv", "code")
_DATA_DIR = ("data", "azure-llm-2023")


@dataclass(frozen=True)
class Trace:
    """One trace, relative to its first request: offsets in seconds, token counts."""

    name: str
    offsets_s: tuple[float, ...]
    tokens_in: tuple[int, ...]
    tokens_out: tuple[int, ...]

    @property
    def period_s(self) -> int:
        """Length of one loop: the span of the trace rounded up to whole seconds (>= 1)."""
        return int(self.offsets_s[-1]) + 1

    def __len__(self) -> int:
        return len(self.offsets_s)


def read_data(name: str) -> str:
    """The text of a file shipped in `gpuledger/simulate/data/azure-llm-2023/`."""
    base = resources.files("gpuledger.simulate")
    for part in _DATA_DIR:
        base = base / part
    return (base / name).read_text(encoding="utf-8")


def _seconds(stamp: str) -> float:
    # "2023-11-16 18:17:03.9799600": 7 fractional digits, more than fromisoformat takes on 3.10.
    day, _, frac = stamp.partition(".")
    whole = datetime.fromisoformat(day).timestamp()
    return whole + (float("0." + frac) if frac else 0.0)


@functools.cache
def load(name: str) -> Trace:
    """The `conv` or `code` trace (parsed once per process)."""
    if name not in TRACES:
        raise ValueError(f"unknown trace {name!r}: expected one of {', '.join(TRACES)}")
    text = read_data(f"AzureLLMInferenceTrace_{name}.csv")
    stamps: list[float] = []
    tin: list[int] = []
    tout: list[int] = []
    for line in text.splitlines()[1:]:
        if not line.strip():
            continue
        stamp, ctx, gen = line.split(",")
        stamps.append(_seconds(stamp))
        tin.append(int(ctx))
        tout.append(int(gen))
    first = stamps[0]
    return Trace(name, tuple(s - first for s in stamps), tuple(tin), tuple(tout))


def arrivals(
    trace: Trace, duration_s: float, shift_s: float = 0.0
) -> Iterator[tuple[float, int, int]]:
    """(seconds since the simulation start, tokens_in, tokens_out) of every request that
    arrives in `[0, duration_s)`, in order. `shift_s` starts the trace that far into itself
    (another service can replay a different part of the same trace)."""
    period = trace.period_s
    shift = shift_s % period
    # Loop k covers [k*period - shift, (k+1)*period - shift) of simulation time.
    k = 0
    while k * period - shift < duration_s:
        base = k * period - shift
        for off, tin, tout in zip(trace.offsets_s, trace.tokens_in, trace.tokens_out, strict=True):
            t = base + off
            if t < 0.0:
                continue
            if t >= duration_s:
                return
            yield t, tin, tout
        k += 1
