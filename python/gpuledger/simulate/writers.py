"""Writing a simulation to files in `OUT/`:

- `telemetry.jsonl` (prom_json or wide_json: one message per line), `telemetry.prom`
  (exposition) or `telemetry.parquet` (the long columnar form of docs/inputs.md 1d:
  `ts, gpu, field, value, gpu_index, hostname, model_name, namespace, pod, container`);
- `requests.jsonl` (docs/inputs.md 2) or `requests.parquet` (the same columns);
- `simulation.json`: the scenario, its parameters and the figures it was built with.

Line files get `.gz` or `.zst` appended when compressed. Same seed, same bytes.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from gpuledger.simulate.compression import EXTENSIONS, GzipWriter, open_write
from gpuledger.simulate.encode import FIELDS, Encoder, request_json, row_values
from gpuledger.simulate.simulation import Simulation

FLUSH_TICKS = 30


def _schema(*fields: tuple[str, pa.DataType]) -> pa.Schema:
    return pa.schema([pa.field(name, t) for name, t in fields])


STR = pa.string()
LONG_SCHEMA = _schema(
    ("ts", pa.timestamp("s", tz="UTC")),
    ("gpu", STR),
    ("field", STR),
    ("value", pa.float64()),
    ("gpu_index", pa.int32()),
    ("hostname", STR),
    ("model_name", STR),
    ("namespace", STR),
    ("pod", STR),
    ("container", STR),
)
REQUEST_SCHEMA = _schema(
    ("ts", pa.timestamp("ms", tz="UTC")),
    ("service", STR),
    ("namespace", STR),
    ("pod", STR),
    ("latency_ms", pa.float64()),
    ("ttft_ms", pa.float64()),
    ("status", pa.int32()),
    ("tokens_in", pa.int64()),
    ("tokens_out", pa.int64()),
    ("request_id", STR),
)


@dataclass
class WriteReport:
    files: list[Path] = field(default_factory=list)
    telemetry_messages: int = 0
    request_messages: int = 0
    seconds: float = 0.0

    @property
    def messages(self) -> int:
        return self.telemetry_messages + self.request_messages

    @property
    def rate(self) -> float:
        return self.messages / self.seconds if self.seconds > 0 else 0.0


def write_files(
    sim: Simulation, out_dir: str | Path, fmt: str, compress: str = "none"
) -> WriteReport:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    if fmt == "parquet":
        report = _write_parquet(sim, out)
    else:
        report = _write_lines(sim, out, fmt, EXTENSIONS[compress])
    manifest = out / "simulation.json"
    manifest.write_text(
        json.dumps({**sim.describe(), "format": fmt, "compress": compress}, indent=2) + "\n"
    )
    report.files.append(manifest)
    report.seconds = time.perf_counter() - started
    return report


def _write_lines(sim: Simulation, out: Path, fmt: str, ext: str) -> WriteReport:
    tel_path = out / (("telemetry.prom" if fmt == "exposition" else "telemetry.jsonl") + ext)
    req_path = out / ("requests.jsonl" + ext)
    report = WriteReport(files=[tel_path, req_path])
    enc = Encoder()
    per_row = 1 if fmt == "wide_json" else len(FIELDS)
    tel = open_write(tel_path)
    req = open_write(req_path)
    try:
        tel_buf: list[str] = []
        req_buf: list[str] = []
        for n, tick in enumerate(sim.ticks(), 1):
            tel_buf.extend(enc.telemetry(fmt, tick.ts, tick.rows))
            report.telemetry_messages += len(tick.rows) * per_row
            for r in tick.requests:
                req_buf.append(request_json(r))
            report.request_messages += len(tick.requests)
            if n % FLUSH_TICKS == 0:
                _flush(tel, tel_buf)
                _flush(req, req_buf)
        _flush(tel, tel_buf)
        _flush(req, req_buf)
    finally:
        tel.close()
        req.close()
    return report


def _flush(f: pa.NativeFile | GzipWriter, buf: list[str]) -> None:
    if buf:
        buf.append("")
        f.write("\n".join(buf).encode())
        buf.clear()


def _write_parquet(sim: Simulation, out: Path) -> WriteReport:
    tel_path, req_path = out / "telemetry.parquet", out / "requests.parquet"
    report = WriteReport(files=[tel_path, req_path])
    opts = {"compression": "zstd", "write_statistics": True}
    tel = pq.ParquetWriter(str(tel_path), LONG_SCHEMA, **opts)  # type: ignore[arg-type]
    req = pq.ParquetWriter(str(req_path), REQUEST_SCHEMA, **opts)  # type: ignore[arg-type]
    try:
        cols: dict[str, list[object]] = {f.name: [] for f in LONG_SCHEMA}
        rcols: dict[str, list[object]] = {f.name: [] for f in REQUEST_SCHEMA}
        for n, tick in enumerate(sim.ticks(), 1):
            for r in tick.rows:
                g, p = r.gpu, r.placement
                for f, v in zip(FIELDS, row_values(r), strict=True):
                    cols["ts"].append(tick.ts)
                    cols["gpu"].append(g.uuid)
                    cols["field"].append(f)
                    cols["value"].append(float(v))
                    cols["gpu_index"].append(g.index)
                    cols["hostname"].append(g.host)
                    cols["model_name"].append(g.model.name)
                    cols["namespace"].append(p.namespace)
                    cols["pod"].append(p.pod)
                    cols["container"].append(p.container)
            report.telemetry_messages += len(tick.rows) * len(FIELDS)
            for q in tick.requests:
                rcols["ts"].append(round(q.ts * 1000))
                for name in REQUEST_SCHEMA.names[1:]:
                    rcols[name].append(getattr(q, name))
            report.request_messages += len(tick.requests)
            if n % (2 * FLUSH_TICKS) == 0:
                _flush_table(tel, cols, LONG_SCHEMA)
                _flush_table(req, rcols, REQUEST_SCHEMA)
        _flush_table(tel, cols, LONG_SCHEMA)
        _flush_table(req, rcols, REQUEST_SCHEMA)
    finally:
        tel.close()
        req.close()
    return report


def _flush_table(w: pq.ParquetWriter, cols: dict[str, list[object]], schema: pa.Schema) -> None:
    if not cols["ts"]:
        return
    arrays = []
    for f in schema:
        values = cols[f.name]
        if pa.types.is_timestamp(f.type):
            arrays.append(pa.array(values, pa.int64()).cast(f.type))
        else:
            arrays.append(pa.array(values, f.type))
        values.clear()
    w.write_table(pa.Table.from_arrays(arrays, schema=schema))
