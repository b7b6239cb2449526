"""Bench: the daemon's cores, `gpuledger run` with `[run] engines = 1` vs `engines = 2` draining
the same Kafka backlog in one run (docs/daemon.md, "Engines: several cores").

A fresh topic (4 partitions, keyed by GPU UUID, lz4) is filled, untimed, with N messages of
the fleet of bench_kafka_pipeline.py (GPUs x 6 DCGM fields at 1 s, prometheus-kafka-adapter
JSON), plus an empty 4-partition latency topic. Each setting then drains the whole topic with
`python -m gpuledger run --until-eof` in its own process and its own fresh consumer group,
round robin (engines=1, engines=2, again...), `--repeat` times; the median wall time from
process start to exit counts. Keyed by GPU, both settings' gpu_windows rows are final and are
checked against the in-process `gpuledger.Engine` over the same messages before a time counts.
A consume-only loop (confluent-kafka `consume()` counting messages, bench_kafka_pipeline.py's)
drains the same topic in the same round robin: it is the ceiling no number of engines can pass,
since fetching and decompressing stay on one consumer.

The broker runs on the same machine: on the 2-core bench machine it takes a share of the cores
the second engine would use, so the ratio here is a floor for a machine with cores to spare.

A second part takes the broker and the consumer out: the first 500,000 messages, consumed once
into memory, pushed by one engine and by N engines in the daemon's threads (`EngineThreads`),
so the engines' own scaling shows apart from the consumer's ceiling.

Usage: python benches/bench_daemon_engines.py [--quick] [--messages N] [--gpus G]
       [--repeat R] [--engines N] [--results NAME]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C
import bench_kafka_pipeline as K

TITLE = "Daemon engines: `gpuledger run` with [run] engines = 1 vs N on one backlog"


def skipped(reason: str, params: dict[str, Any]) -> dict[str, Any]:
    print(f"daemon_engines: skipped: {reason}", flush=True)
    return {
        "bench": "daemon_engines",
        "title": TITLE,
        "params": params,
        "rows": [],
        "targets": [],
        "notes": [f"skipped: {reason}"],
    }


IN_MEMORY_MAX = 500_000  # Message objects held in memory for the engine-only part (~0.5 GB)


def cores_free(threads: int) -> float:
    """Cores `threads` threads actually got just now, each hashing 256 MiB with the GIL
    released (hashlib does): the machine's spare cores at the moment of the measurement."""
    data = b"x" * (64 << 20)

    def work() -> None:
        for _ in range(4):
            hashlib.sha256(data).digest()

    workers = [threading.Thread(target=work) for _ in range(threads)]
    cpu, t0 = time.process_time(), time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return (time.process_time() - cpu) / (time.perf_counter() - t0)


def engines_only(gl: Any, a: dict[str, Any], engines: int, repeat: int) -> dict[str, Any]:
    """The engine work alone: the first messages of the topic consumed once into memory (as
    the daemon receives them, batches of 20,000 `Message`s), then pushed and closed by one
    engine, and by `engines` engines in `EngineThreads` (the daemon's threads, the partitions
    dealt as the daemon deals them), round robin, median of `repeat`. No broker, no consume,
    no output: how far the engines' work itself scales with threads on this machine now."""
    from confluent_kafka import Consumer

    from gpuledger.daemon.engine_threads import EngineThreads

    group = f"{a['run_id']}-in-memory"
    c = Consumer(
        {
            "bootstrap.servers": a["bootstrap"],
            "group.id": group,
            "auto.offset.reset": "earliest",
            **a["consumer"],
        }
    )
    c.subscribe([a["topic"]])
    want = min(a["n"], IN_MEMORY_MAX)
    batches: list[list[Any]] = []
    got = 0
    deadline = time.monotonic() + 120
    while got < want and time.monotonic() < deadline:
        batch = [m for m in c.consume(20_000, timeout=1.0) if m.error() is None]
        if batch:
            batches.append(batch)
            got += len(batch)
    c.close()
    cfg = gl.Config.from_dict({"engine": {"window_s": [K.WINDOW_S]}})
    formats = {a["topic"]: "prom_json"}
    parts = [(a["topic"], p) for p in range(K.PARTITIONS)]
    slots = [parts[i::engines] for i in range(engines)]

    def timed(n_engines: int) -> tuple[float, float, Any]:
        pairs = [(gl.Engine(cfg), ps) for ps in ([parts] if n_engines == 1 else slots)]
        threads = EngineThreads()
        cpu, t0 = time.process_time(), time.perf_counter()
        for batch in batches:
            threads.map(lambda ep, b=batch: ep[0].push_kafka(b, formats, ep[1]), pairs)
        closed = threads.map(lambda ep: ep[0].finish(), pairs)
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu
        threads.shutdown()
        return wall, cpu, [w.gpu_windows for w in closed]

    times: dict[int, list[tuple[float, float]]] = {1: [], engines: []}
    outputs: dict[int, Any] = {}
    for _ in range(repeat):
        for n_engines in times:
            wall, cpu, tables = timed(n_engines)
            times[n_engines].append((wall, cpu))
            outputs[n_engines] = tables
    one = K.windows_of_engine(pa.concat_tables(outputs[1]))
    split = K.windows_of_engine(pa.concat_tables(outputs[engines]))
    ok, why = K.compare(split, one)
    if not ok:
        raise RuntimeError(f"{engines} engines disagree with one: {why}")
    med = {k: sorted(v)[len(v) // 2] for k, v in times.items()}
    return {"messages": got, "times": med, "verified": why, "cores_free": cores_free(engines)}


def run(
    quick: bool,
    messages: int = 2_000_000,
    gpus: int = 128,
    repeat: int = 3,
    engines: int = 2,
) -> dict[str, Any]:
    if quick:
        messages, gpus, repeat = 200_000, 64, 1
    timeout = 90.0 if quick else 1800.0
    bootstrap = K.bootstrap_servers()
    params: dict[str, Any] = {"messages": messages, "gpus": gpus, "fields": 6}
    params |= {"partitions": K.PARTITIONS, "repeat": repeat, "bootstrap": bootstrap}
    problem = K.broker_problem(bootstrap, start_local=not quick) or K.daemon_problem()
    if problem:
        return skipped(problem, params)
    gl = K.import_gpuledger()
    run_id = f"{int(time.time())}-{uuid.uuid4().hex[:6]}"
    topic, lat_topic = f"gl-bench-telemetry-{run_id}", f"gl-bench-latency-{run_id}"
    fleet_seconds = messages // (6 * gpus)
    start = (int(time.time()) - fleet_seconds - 3600) // 3600 * 3600
    settings = [1, engines]
    runs: dict[int, list[dict[str, Any]]] = {n: [] for n in settings}
    consume_only: list[dict[str, Any]] = []
    notes: list[str] = []
    try:
        K.create_topics(bootstrap, [topic, lat_topic], K.PARTITIONS)
        engine = gl.Engine(gl.Config.from_dict({"engine": {"window_s": [K.WINDOW_S]}}))
        produced = K.fill_topic(bootstrap, topic, K.Fleet(gpus, start), fleet_seconds, engine)
        n = produced["messages"]
        ref = K.windows_of_engine(engine.finish().gpu_windows)
        params |= {"messages": n, "ref_windows": len(ref)}
        print(f"daemon_engines: topic filled, {n:,} messages", flush=True)
        a = {"bootstrap": bootstrap, "topic": topic, "latency_topic": lat_topic, "n": n}
        a |= {"run_id": run_id, "consumer": dict(K.CONSUMER_TUNING)}
        for i in range(repeat):
            r = K.run_peer("consume_only", a, timeout, i)
            if r["count"] != n:
                raise RuntimeError(f"consume-only read {r['count']} of {n} messages")
            consume_only.append(r)
            print(f"daemon_engines: consume-only run {i + 1}: {n / r['wall_s']:,.0f} msg/s")
            for setting in settings:  # round robin: load changes hit every contender alike
                rep = i * len(settings) + setting
                r = K.run_daemon_backlog(a, timeout, rep, run={"engines": setting})
                if r["engines"] != min(setting, 2 * K.PARTITIONS):
                    raise RuntimeError(f"engines={setting} ran {r['engines']} engines")
                wrong = K.check_run(f"engines={setting}", r, n, ref)
                if wrong:
                    raise RuntimeError(f"engines={setting}: {wrong}")
                runs[setting].append(r)
                print(
                    f"daemon_engines: engines={setting} run {i + 1}: "
                    f"{n / r['wall_s']:,.0f} msg/s, {r['verified']}",
                    flush=True,
                )
        memory = engines_only(gl, a, engines, repeat)
        print(f"daemon_engines: engines only, in memory: {memory['times']}", flush=True)
    finally:
        K.delete_topics(bootstrap, run_id)
        K.stop_started_broker()

    def med(setting: int, key: str) -> float:
        return statistics.median(r[key] for r in runs[setting])

    floor_s = statistics.median(r["wall_s"] for r in consume_only)
    rows: list[dict[str, Any]] = []
    for setting in settings:
        wall, cpu = med(setting, "wall_s"), med(setting, "cpu_s")
        loop = [r["loop_s"] for r in runs[setting] if r.get("loop_s")]
        walls = [r["wall_s"] for r in runs[setting]]
        rows.append(
            {
                "daemon": f"engines = {setting}",
                "messages": n,
                "wall_s": wall,
                "msg/s": n / wall,
                "msg/s excl. startup": n / statistics.median(loop) if loop else None,
                "cpu_s": cpu,
                "cores used": cpu / wall,
                "peak_rss_mib": med(setting, "peak_rss_mib"),
                "wall_s range": f"{min(walls):.2f}-{max(walls):.2f}",
                "verified": runs[setting][0]["verified"],
                "time vs consume-only": wall / floor_s,
            }
        )
    rows.append(
        {
            "daemon": "consume-only (the ceiling)",
            "messages": n,
            "wall_s": floor_s,
            "msg/s": n / floor_s,
            "cpu_s": statistics.median(r["cpu_s"] for r in consume_only),
            "wall_s range": f"{min(r['wall_s'] for r in consume_only):.2f}-"
            f"{max(r['wall_s'] for r in consume_only):.2f}",
            "verified": "count only",
        }
    )
    m_n = memory["messages"]
    for setting in settings:
        wall, cpu = memory["times"][setting]
        rows.append(
            {
                "daemon": f"engine work only, in memory, {setting} engine(s)",
                "messages": m_n,
                "wall_s": wall,
                "msg/s": m_n / wall,
                "cpu_s": cpu,
                "cores used": cpu / wall,
                "verified": memory["verified"] if setting != 1 else "the reference",
            }
        )
    m_ratio = memory["times"][1][0] / memory["times"][engines][0]
    rows[-1]["vs engines = 1"] = m_ratio
    ratio = med(1, "wall_s") / med(engines, "wall_s")
    rows[1]["vs engines = 1"] = ratio
    print(f"daemon_engines: engines={engines} / engines=1 = {ratio:.2f}x msg/s", flush=True)
    notes += [
        f"engines={engines} vs engines=1: {ratio:.2f}x messages per second (median of {repeat}); "
        f"the daemon's time over consume-only's: engines=1 {med(1, 'wall_s') / floor_s:.2f}x, "
        f"engines={engines} {med(engines, 'wall_s') / floor_s:.2f}x",
        f"engine work only (the first {m_n:,} messages in memory, no broker, no output): "
        f"{engines} engines in threads {m_ratio:.2f}x one engine; 'cores used' shows whether the "
        f"threads got the cores; {engines} threads hashing with the GIL released got "
        f"{memory['cores_free']:.2f} cores right after (what the machine had to spare)",
        f"load average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}",
        "msg/s = messages / median wall time from process start to exit (start-up, group join "
        "and final output included); 'excl. startup' from the `started` to the `stopped` line",
        "the topic is keyed by GPU UUID: every engine's gpu_windows rows are final, checked "
        f"against gpuledger.Engine over the same messages ({len(ref):,} windows)",
        f"{C.machine()['cores']}-core machine shared by the broker, the daemon and other work: "
        "the broker's fetch and compression work takes part of the cores the second engine "
        "would use; read the ratio as a floor",
    ]
    return {
        "bench": "daemon_engines",
        "title": TITLE,
        "params": params,
        "rows": rows,
        "targets": [],
        "notes": notes,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small run, for CI")
    ap.add_argument("--messages", type=int, default=2_000_000)
    ap.add_argument("--gpus", type=int, default=128)
    ap.add_argument("--repeat", type=int, default=3, help="runs per setting (median)")
    ap.add_argument("--engines", type=int, default=2, help="the setting compared with 1")
    ap.add_argument("--results", default="daemon_engines", help="bench-results/<NAME>.md")
    a = ap.parse_args()
    result = run(a.quick, a.messages, a.gpus, a.repeat, a.engines)
    print(C.markdown(result))
    print("written:", C.write_results([result], a.results))


if __name__ == "__main__":
    main()
