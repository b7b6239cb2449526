"""Bad input through the daemon (docs/inputs.md section 3, docs/daemon.md, guarantees 4 and 9):
every bad-input case mixed into good traffic on real topics. The daemon keeps running; each bad
message is exactly one dead letter with its topic, partition, offset and a reason, in the
`dead_letters` table and on the dead-letter topic (with provenance headers); label values that look
like paths are data, never paths; the counters reconcile."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from daemon_harness import (
    TELEMETRY_PARTITIONS,
    DaemonPool,
    Msg,
    Trace,
    TraceProducer,
    assert_counters_reconcile,
    assert_same_tables,
    daemon_config,
    daemon_pool,
    default_gpus,
    engine_settings,
    make_topics,
    output_layout_problems,
    prom_json,
    read_output,
    read_topic,
    reference_ignores,
    reference_tables,
    trace_start,
    unique_name,
)

pytestmark = pytest.mark.kafka

SECONDS = 60
DLQ_HEADERS = ("gpuledger.source", "gpuledger.partition", "gpuledger.offset", "gpuledger.reason")


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[DaemonPool]:
    yield from daemon_pool(tmp_path)


def bad_telemetry(t: int) -> list[tuple[str, bytes]]:
    g = default_gpus()[0]
    good = prom_json("DCGM_FI_PROF_GR_ENGINE_ACTIVE", "0.5", t, g)
    util = prom_json("DCGM_FI_DEV_GPU_UTIL", "150", t, g)

    def value(raw: bytes) -> bytes:
        return good.replace(b'"value":"0.5"', b'"value":' + raw)

    def stamp(ts: bytes) -> bytes:
        return good.replace(rfc(t), ts)

    return [
        ("truncated JSON", good[:57]),
        ("value is an object", value(b'{"v":1}')),
        ("timestamp is a number", stamp(b"").replace(b'"timestamp":""', b'"timestamp":12')),
        ("NaN value", value(b'"NaN"')),
        ("+Inf value", value(b'"+Inf"')),
        ("-Inf value", value(b'"-Inf"')),
        ("utilization 150 %", util),
        ("ratio above 1", value(b'"1.5"')),
        ("timestamp before 2000", stamp(b"1999-12-31T23:59:59Z")),
        ("timestamp far in the future", stamp(b"2999-01-01T00:00:00Z")),
        ("10,000 levels deep", good[:-1] + b',"x":' + b"[" * 10_000 + b"]" * 10_000 + b"}"),
        ("3 MiB message", good[:-1] + b',"padding":"' + b"x" * (3 << 20) + b'"}'),
        ("invalid UTF-8", good.replace(g.pod.encode(), b"\xff\xfe")),
        ("empty message", b""),
        ("no UUID", good.replace(f'"UUID":"{g.uuid}",'.encode(), b"")),
    ]


def rfc(t: int) -> bytes:
    return json.loads(prom_json("x", "0", t, default_gpus()[0]))["timestamp"].encode()


def bad_requests(t: int) -> list[tuple[str, bytes]]:
    ok = {"ts": t + 0.25, "service": "ranker", "namespace": "team-search", "pod": "ranker-0"}

    def req(**kw: object) -> bytes:
        return json.dumps({**ok, "latency_ms": 12.5, **kw}).encode()

    return [
        ("request truncated", req()[:30]),
        ("negative latency", req(latency_ms=-4.0)),
        ("latency is a string", req(latency_ms="fast")),
        ("latency NaN literal", req().replace(b"12.5", b"NaN")),
        ("latency 1e999 (infinite)", req().replace(b"12.5", b"1e999")),
        ("request before 2000", req(ts=946684799.0)),
        ("request far in the future", req(ts=32503680000.0)),
        ("request invalid UTF-8", req().replace(b"ranker-0", b"ranker-\xc3\x28")),
        (
            "request 10,000 levels deep",
            req()[:-1] + b',"x":' + b"[" * 10_000 + b"]" * 10_000 + b"}",
        ),
    ]


def weird_but_valid(t: int) -> list[Msg]:
    """Messages with path-like label values: data, not dead letters."""
    gpus = default_gpus()
    out = []
    for i, (ns, pod, uuid) in enumerate(
        [
            ("team-chat", "../../etc", "../../etc/passwd"),
            ("..", "..", "GPU-dotdot"),
            ("/", "a/../../b", "GPU-slash/../x"),
        ]
    ):
        g = gpus[i]
        value = prom_json(
            "DCGM_FI_PROF_GR_ENGINE_ACTIVE", "0.25", t, g, namespace=ns, pod=pod, UUID=uuid
        )
        out.append(Msg("telemetry", i % TELEMETRY_PARTITIONS, uuid.encode(), value, t))
    request = {
        "ts": t + 0.5,
        "service": "../../etc",
        "namespace": "..",
        "pod": "../../etc",
        "latency_ms": 10.0,
    }
    out.append(Msg("latency", 0, b"weird", json.dumps(request).encode(), t + 0.5))
    return out


def build_messages(start: int) -> list[Msg]:
    """Good traffic for SECONDS event seconds; from second 2 on, one bad message per second
    after that second's good ones (rotating partitions); the path-like labels at second 3."""
    trace = Trace(start)
    bad: list[Msg] = []
    t_bad = start + 2
    for label, value in bad_telemetry(t_bad):
        bad.append(Msg("telemetry", len(bad) % TELEMETRY_PARTITIONS, b"bad", value, None, label))
    for label, value in bad_requests(t_bad):
        bad.append(Msg("latency", len(bad) % 2, b"bad", value, None, label))
    msgs: list[Msg] = []
    for t in range(start, start + SECONDS):
        msgs += trace.second(t)
        if t == start + 3:
            msgs += weird_but_valid(t)
        k = t - (start + 2)
        if 0 <= k < len(bad):
            msgs.append(bad[k])
    assert all(m.bad for m in bad) and len(bad) < SECONDS - 2
    return msgs


def test_every_bad_input_is_one_dead_letter_and_nothing_crashes(
    kafka_bootstrap: str, make_topic, daemons: DaemonPool, tmp_path: Path
) -> None:
    topics = make_topics(make_topic, big=True, dead_letter=True)
    producer = TraceProducer(kafka_bootstrap, topics)
    producer.send(build_messages(trace_start()))
    delivered = producer.flush()
    bad = {(x.topic, x.partition, x.offset): x.msg.bad for x in delivered if x.msg.bad}
    assert len(bad) == 24

    settings = engine_settings()
    top = tmp_path / "isolated"  # the daemons' logs and configs live elsewhere in tmp_path
    base = top / "a" / "b"
    out = base / "out"
    out.mkdir(parents=True)
    around = [top, top / "a", base]
    before = {d: sorted(p.name for p in d.iterdir()) for d in around}
    cfg = daemon_config(
        bootstrap=kafka_bootstrap,
        group=unique_name("bad-input"),
        topics=topics,
        out_dir=out,
        settings=settings,
    )
    d = daemons.start(cfg, name="streaming")
    d.wait_caught_up(60, min_consumed=len(delivered))
    assert d.alive(), d.log_tail()
    rc = d.stop(timeout=10)
    assert rc == 0, d.log_tail()
    c = assert_counters_reconcile(d.stopped())
    assert c["consumed"] == len(delivered), c
    assert c["dead"] == len(bad), c
    first = read_output(out)
    pods = set(first["gpu_windows"].column("pod").to_pylist())
    assert {"../../etc", "..", "a/../../b"} <= pods, "path-like pods missing from gpu_windows"

    rerun = daemons.start(cfg, name="rerun", until_eof=True)
    rerun.run_to_exit(60)
    assert_counters_reconcile(rerun.stopped())

    actual = read_output(out)
    dead = actual["dead_letters"].to_pylist()
    seen = Counter((r["source"], r["partition"], r["offset"]) for r in dead)
    twice = {k: bad.get(k) for k, n in seen.items() if n > 1}
    assert not twice, f"dead letters written more than once: {twice}"
    missing = {k: v for k, v in bad.items() if k not in seen}
    assert not missing, f"bad messages without a dead letter: {missing}"
    not_bad = [k for k in seen if k not in bad]
    assert not not_bad, f"good messages turned into dead letters: {not_bad[:5]}"
    assert all(r["reason"] for r in dead)
    big = next(k for k, v in bad.items() if v == "3 MiB message")
    big_row = next(r for r in dead if (r["source"], r["partition"], r["offset"]) == big)
    assert "max_message_bytes" in big_row["reason"] and big_row["raw_size"] > 3 << 20

    expected = reference_tables(kafka_bootstrap, topics, settings)
    assert_same_tables(actual, expected, ignore=reference_ignores(), label="daemon vs library")
    services = set(actual["latency_windows"].column("service").to_pylist())
    assert "../../etc" in services

    # Label values never became paths: nothing new around OUT, only the table layout in it.
    after = {d: sorted(p.name for p in d.iterdir()) for d in around}
    assert after == before
    assert output_layout_problems(out) == []

    # The dead-letter topic: each dead letter once, with its provenance in headers.
    dlq = [r for recs in read_topic(kafka_bootstrap, topics.dead_letter).values() for r in recs]
    provenance = []
    for r in dlq:
        h = dict(r.headers)
        assert set(DLQ_HEADERS) <= set(h), f"headers {sorted(h)}"
        provenance.append(
            (
                h["gpuledger.source"].decode(),
                int(h["gpuledger.partition"]),
                int(h["gpuledger.offset"]),
            )
        )
        assert h["gpuledger.reason"], h
    dup = [k for k, n in Counter(provenance).items() if n > 1]
    assert not dup, f"dead letters on the topic more than once: {dup}"
    assert set(provenance) == set(bad)
    daemons.assert_json_logs()
