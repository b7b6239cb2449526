"""Runs every gpuledger bench and writes bench-results/latest.md and latest.json.

--quick: small sizes (under a minute in all, for CI); default: the issue's full sizes
(about 12 minutes on the 2-core bench machine, within issue 7's 15). Each bench is also
runnable alone: python benches/bench_<name>.py.
kafka_pipeline and daemon_engines need a Kafka broker (KAFKA_BOOTSTRAP_SERVERS, else the local
one at 127.0.0.1:19092, which the full run starts) and skip with the reason when there is none.
Usage: python benches/run_all.py [--quick] [--only columnar,columnar_parquet,prom_json,...]
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C
import bench_allocate
import bench_boundary
import bench_columnar
import bench_daemon_engines
import bench_kafka_pipeline
import bench_latency
import bench_memory
import bench_prom_json
import bench_replay_json_cli
import bench_replay_parquet
import bench_replay_workers
import bench_report
import bench_sketch

# name -> run(quick): the columnar bench runs twice, from memory and from Parquet. From
# Parquet it runs half the data (12 h of telemetry, 2M requests), to keep the whole suite
# within issue 7's 15 minutes on 2 cores; rates are per row, so they compare.
BENCHES: dict[str, Callable[[bool], dict[str, Any]]] = {
    "columnar": bench_columnar.run,
    "columnar_parquet": functools.partial(
        bench_columnar.run, input_="parquet", seconds=43_200, requests=2_000_000
    ),
    "prom_json": bench_prom_json.run,
    "memory": bench_memory.run,
    "sketch": bench_sketch.run,
    "latency_json": bench_latency.run,
    "kafka_pipeline": bench_kafka_pipeline.run,
    "daemon_engines": bench_daemon_engines.run,
    "replay_parquet": bench_replay_parquet.run,
    "replay_workers": bench_replay_workers.run,
    "replay_json_cli": bench_replay_json_cli.run,
    "boundary": bench_boundary.run,
    "allocate": bench_allocate.run,
    "report": bench_report.run,
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="small sizes, under a minute")
    ap.add_argument("--only", default=",".join(BENCHES), help="comma-separated bench names")
    a = ap.parse_args()
    results: list[dict[str, Any]] = []
    for name in a.only.split(","):
        t0 = time.perf_counter()
        result = BENCHES[name](a.quick)
        result["params"]["bench_wall_s"] = round(time.perf_counter() - t0, 1)
        results.append(result)
        print(C.markdown(result), flush=True)
    # Quick runs (CI) must not overwrite the full results the README quotes.
    path = C.write_results(results, "quick" if a.quick else "latest")
    failed = [t["target"] for r in results for t in r["targets"] if not t["met"]]
    print(f"written: {path}; targets missed: {len(failed)}")


if __name__ == "__main__":
    main()
