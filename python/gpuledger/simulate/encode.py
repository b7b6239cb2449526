"""Message encoders, built with f-strings from cached label fragments (json.dumps per message
would be several times slower). Telemetry encoders return one chunk per GPU-second
(several lines for `prom_json` and `exposition`); `keyed_messages` splits them into Kafka
messages keyed by GPU UUID.

Formats: `prom_json` (prometheus-kafka-adapter, five DCGM fields per GPU-second, docs/inputs.md 1a),
`wide_json` (one message per GPU-second, 1b), `exposition` (dcgm-exporter text after a
`# scrape_ts` line, 1c) and the request events of docs/inputs.md 2. Label values are generated
names without quotes or backslashes, so they need no escaping.
"""

from __future__ import annotations

from datetime import datetime, timezone

from gpuledger.simulate.base import Request
from gpuledger.simulate.fleet import Placement, SimGpu
from gpuledger.simulate.simulation import Row

TELEMETRY_FORMATS = ("prom_json", "wide_json", "exposition", "parquet")

FIELDS = (
    "DCGM_FI_PROF_GR_ENGINE_ACTIVE",
    "DCGM_FI_DEV_GPU_UTIL",
    "DCGM_FI_DEV_FB_USED",
    "DCGM_FI_DEV_POWER_USAGE",
    "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION",
)


def rfc3339(ts: int) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def row_values(r: Row) -> tuple[str, str, str, str, str]:
    """The five field values as exported, in `FIELDS` order."""
    return (f"{r.util:.3f}", str(r.util_pct), str(r.fb_mib), f"{r.power_w:.1f}", str(r.energy_mj))


class Encoder:
    """Caches the label part of each (GPU, placement) and encodes ticks."""

    def __init__(self) -> None:
        self._prom: dict[tuple[str, Placement], list[str]] = {}
        self._wide: dict[tuple[str, Placement], str] = {}
        self._expo: dict[tuple[str, Placement], str] = {}

    def _prom_tails(self, g: SimGpu, p: Placement) -> list[str]:
        """What follows each of the five values in the adapter messages of a GPU-second."""
        key = (g.uuid, p)
        found = self._prom.get(key)
        if found is None:
            labels = (
                f'"gpu":"{g.index}","UUID":"{g.uuid}","pci_bus_id":"{g.pci_bus_id}",'
                f'"device":"nvidia{g.index}","modelName":"{g.model.name}",'
                f'"Hostname":"{g.host}","namespace":"{p.namespace}","pod":"{p.pod}",'
                f'"container":"{p.container}"'
            )
            found = [f'","name":"{f}","labels":{{"__name__":"{f}",{labels}}}}}' for f in FIELDS]
            for i in range(len(found) - 1):
                found[i] += "\n"
            self._prom[key] = found
        return found

    def prom_json(self, ts: int, rows: list[Row]) -> list[str]:
        h = f'{{"timestamp":"{rfc3339(ts)}","value":"'
        out = []
        for r in rows:
            a, b, c, d, e = self._prom_tails(r.gpu, r.placement)
            out.append(
                f"{h}{r.util:.3f}{a}{h}{r.util_pct}{b}{h}{r.fb_mib}{c}"
                f"{h}{r.power_w:.1f}{d}{h}{r.energy_mj}{e}"
            )
        return out

    def wide_json(self, ts: int, rows: list[Row]) -> list[str]:
        out = []
        for r in rows:
            key = (r.gpu.uuid, r.placement)
            labels = self._wide.get(key)
            if labels is None:
                g, p = r.gpu, r.placement
                labels = (
                    f'"gpu":"{g.uuid}","gpu_index":{g.index},"host":"{g.host}",'
                    f'"model":"{g.model.name}","namespace":"{p.namespace}","pod":"{p.pod}",'
                    f'"container":"{p.container}"'
                )
                self._wide[key] = labels
            out.append(
                f'{{"ts":{ts}.0,{labels},"gr_engine_active":{r.util:.3f},'
                f'"gpu_util":{r.util_pct},"fb_used_mib":{r.fb_mib},'
                f'"power_w":{r.power_w:.1f},"energy_mj":{r.energy_mj}}}'
            )
        return out

    def exposition(self, ts: int, rows: list[Row]) -> list[str]:
        """One scrape: a `# scrape_ts` line, then per GPU its five sample lines."""
        out = [f"# scrape_ts {ts}"]
        for r in rows:
            key = (r.gpu.uuid, r.placement)
            labels = self._expo.get(key)
            if labels is None:
                g, p = r.gpu, r.placement
                labels = (
                    f'{{gpu="{g.index}",UUID="{g.uuid}",pci_bus_id="{g.pci_bus_id}",'
                    f'device="nvidia{g.index}",modelName="{g.model.name}",Hostname="{g.host}",'
                    f'container="{p.container}",namespace="{p.namespace}",pod="{p.pod}"}} '
                )
                self._expo[key] = labels
            out.append(
                "\n".join(f"{f}{labels}{v}" for f, v in zip(FIELDS, row_values(r), strict=True))
            )
        return out

    def telemetry(self, fmt: str, ts: int, rows: list[Row]) -> list[str]:
        """One chunk per GPU (`prom_json` and `exposition`: several lines joined by newlines;
        `exposition` starts with its `# scrape_ts` line)."""
        if fmt == "prom_json":
            return self.prom_json(ts, rows)
        if fmt == "wide_json":
            return self.wide_json(ts, rows)
        if fmt == "exposition":
            return self.exposition(ts, rows)
        raise ValueError(f"no message encoding for format {fmt!r}")

    def keyed_messages(self, fmt: str, ts: int, rows: list[Row]) -> list[tuple[str, str]]:
        """(GPU UUID, message) for each message of a second (`prom_json`, `wide_json`)."""
        chunks = self.telemetry(fmt, ts, rows)
        if fmt == "wide_json":
            return [(r.gpu.uuid, c) for r, c in zip(rows, chunks, strict=True)]
        if fmt == "prom_json":
            return [
                (r.gpu.uuid, m) for r, c in zip(rows, chunks, strict=True) for m in c.split("\n")
            ]
        raise ValueError(f"format {fmt!r} is not one message per line")


def request_json(r: Request) -> str:
    return (
        f'{{"ts":{r.ts:.3f},"service":"{r.service}","namespace":"{r.namespace}",'
        f'"pod":"{r.pod}","latency_ms":{r.latency_ms:.2f},"ttft_ms":{r.ttft_ms:.2f},'
        f'"status":{r.status},"tokens_in":{r.tokens_in},"tokens_out":{r.tokens_out},'
        f'"request_id":"{r.request_id}"}}'
    )
