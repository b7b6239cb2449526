"""Custom per-window aggregations without writing Rust (docs/custom-aggregations.md).

1. A built-in reducer from configuration: the p95 of DCGM_FI_PROF_PIPE_TENSOR_ACTIVE (tensor
   core activity, a field the built-in tables do not use) per host and namespace.
2. A vectorized Python window function: per namespace, the share of GPU-seconds spent with
   the tensor cores nearly idle while the GPU reported being busy, computed with pyarrow
   compute on each closed window's points.

Run: python examples/custom_aggregations.py
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

import gpuledger
from gpuledger.output.text import render

# The same as this TOML in a config file (see docs/custom-aggregations.md):
#   [[aggregations]]
#   name = "tensor_active_p95"
#   field = "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE"
#   reducer = "quantile"
#   q = 0.95
#   group_by = ["Hostname", "namespace"]
CONFIG = {
    "engine": {"window_s": [60]},
    "aggregations": [
        {
            "name": "tensor_active_p95",
            "field": "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE",
            "reducer": "quantile",
            "q": 0.95,
            "group_by": ["Hostname", "namespace"],
        }
    ],
}

START = 1_795_867_200  # 2026-11-28T12:00:00Z


def busy_without_tensor_cores(points: pa.Table) -> pa.Table:
    """Per namespace: seconds where GR_ENGINE_ACTIVE > 0.5 but tensor activity < 0.05."""
    wide = points.filter(
        pc.is_in(
            points["field"],
            pa.array(["DCGM_FI_PROF_GR_ENGINE_ACTIVE", "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE"]),
        )
    )
    gr = wide.filter(pc.equal(wide["field"], "DCGM_FI_PROF_GR_ENGINE_ACTIVE"))
    tensor = wide.filter(pc.equal(wide["field"], "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE"))
    keys = ["namespace", "gpu_uuid", "ts"]
    joined = gr.select([*keys, "value"]).join(
        tensor.select([*keys, "value"]).rename_columns([*keys, "tensor"]), keys
    )
    wasted = pc.and_(pc.greater(joined["value"], 0.5), pc.less(joined["tensor"], 0.05))
    joined = joined.append_column("wasted_s", pc.cast(wasted, pa.float64()))
    out = joined.group_by("namespace").aggregate([("wasted_s", "sum")])
    return out.rename_columns(["namespace", "busy_without_tensor_s"])


def messages() -> list[bytes]:
    """Two GPUs for three minutes; GPU b is busy but never uses its tensor cores."""
    out = []
    for s in range(180):
        stamp = f"2026-11-28T12:{s // 60:02d}:{s % 60:02d}Z"
        for gpu, ns, gr, tensor in (("GPU-a", "team-a", 0.9, 0.6), ("GPU-b", "team-b", 0.8, 0.0)):
            for name, value in (
                ("DCGM_FI_PROF_GR_ENGINE_ACTIVE", gr),
                ("DCGM_FI_PROF_PIPE_TENSOR_ACTIVE", tensor + (s % 10) / 100),
            ):
                out.append(
                    (
                        f'{{"timestamp":"{stamp}","value":"{value}","name":"{name}",'
                        f'"labels":{{"UUID":"{gpu}","Hostname":"node-1","namespace":"{ns}",'
                        f'"pod":"{ns}-0","modelName":"NVIDIA H100 80GB HBM3"}}}}'
                    ).encode()
                )
    return out


def main() -> dict[str, pa.Table]:
    config = gpuledger.Config.from_dict(CONFIG)
    engine = gpuledger.Engine(
        config,
        window_functions={"busy_without_tensor_cores": busy_without_tensor_cores},
        fields=["DCGM_FI_PROF_PIPE_TENSOR_ACTIVE"],
    )
    engine.push(messages())
    done = engine.finish()
    for name in ("tensor_active_p95", "busy_without_tensor_cores"):
        table = done[name]
        print(f"\n{name}\n{render(table, [c for c in table.column_names if c != 'window_end'])}")
    return dict(done.tables)


if __name__ == "__main__":
    main()
