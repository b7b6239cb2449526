"""Request latency through the Python API: the spec's and vLLM's forms, latency_windows
columns, SLOs from configuration, the service cost join, and sketches in output columns
that merge across windows."""

from __future__ import annotations

import json

import numpy as np
import pytest

import gpuledger
from gpuledger.simulate.small_fleet import default_fleet, prom_json_messages

START = 1_795_867_200

SPEC = (
    b'{"ts":1764331201.532,"service":"chat-llm","namespace":"team-chat",'
    b'"pod":"vllm-chat-5d8c-0","latency_ms":182.4,"ttft_ms":41.0,"status":200,'
    b'"tokens_in":512,"tokens_out":128,"request_id":"r-8f1c"}'
)


def req(ts: float, latency: float, **kw: object) -> bytes:
    body = {"ts": ts, "service": "svc", "latency_ms": latency, **kw}
    return json.dumps(body).encode()


def test_spec_example() -> None:
    e = gpuledger.Engine()
    e.push([SPEC], format="latency_json", source="request-latency")
    (row,) = e.finish().latency_windows.to_pylist()
    assert row["service"] == "chat-llm" and row["requests"] == 1 and row["errors"] == 0
    assert row["latency_mean_ms"] == pytest.approx(182.4)
    assert row["latency_p50_ms"] == pytest.approx(182.4, rel=0.01)
    assert row["ttft_p50_ms"] == pytest.approx(41.0, rel=0.01)
    assert (row["tokens_in"], row["tokens_out"]) == (512, 128)
    assert (row["slo_latency_ms"], row["slo_target"]) == (200.0, 0.95)
    assert row["slo_violations"] == 0 and row["burn_rate"] == 0.0


def test_vllm_form_and_slo_from_configuration() -> None:
    cfg = gpuledger.Config.from_dict(
        {"services": {"llama": {"slo_latency_ms": 300.0, "slo_target": 0.9}}}
    )
    vllm = {
        "ts": START + 1,
        "model": "llama",
        "usage": {"prompt_tokens": 100, "completion_tokens": 20},
        "metrics": {"queue_time_ms": 5, "time_to_first_token_ms": 45, "generation_time_ms": 300},
    }
    e = gpuledger.Engine(cfg)
    e.push([json.dumps(vllm).encode()] * 1, format="latency_json")
    (row,) = e.finish().latency_windows.to_pylist()
    assert row["service"] == "llama" and row["latency_max_ms"] == 350.0
    assert (row["slo_latency_ms"], row["slo_violations"]) == (300.0, 1)
    assert row["burn_rate"] == pytest.approx(10.0)


def test_burstiness_and_errors() -> None:
    # 60 requests in one second of a 60 s window, 2 of them errors
    msgs = [req(START + 5 + i / 100, 50.0, status=503 if i < 2 else 200) for i in range(60)]
    e = gpuledger.Engine()
    e.push(msgs, format="latency_json")
    (row,) = e.finish().latency_windows.to_pylist()
    assert row["rate_mean_rps"] == 1.0
    assert row["rate_p99_rps"] == pytest.approx(60 * 0.41)  # p99 over 59 zeros and one 60
    assert row["error_ratio"] == pytest.approx(2 / 60)


def test_bad_requests_are_dead_letters() -> None:
    bad = [
        req(START, -1.0),
        req(START, float("nan")).replace(b"NaN", b'"NaN"'),
        b'{"ts":1795867200,"service":"svc"}',
        b'{"ts":1795867200,"latency_ms":3}',
        b"\xff",
        req(START, 5.0, tokens_in=-3),
    ]
    e = gpuledger.Engine()
    e.push([req(START, 5.0), *bad], format="latency_json", first_offset=10)
    w = e.finish()
    dead = w.dead_letters.to_pydict()
    assert dead["offset"] == list(range(11, 17))
    reasons = " | ".join(dead["reason"])
    for part in ("latency_ms -1", "missing latency_ms", "no services.pods rule", "tokens_in"):
        assert part in reasons
    assert w.latency_windows.column("requests").to_pylist() == [1]


def test_service_cost_join_through_the_api() -> None:
    cfg = gpuledger.Config.from_dict(
        {
            "prices": {"default": 2.0, "NVIDIA H100 80GB HBM3": 3.6},
            "services": {"pods": [{"pattern": "vllm-chat-*", "service": "chat"}]},
        }
    )
    fleet = default_fleet()
    e = gpuledger.Engine(cfg)
    e.push(list(prom_json_messages(fleet, START, 60)))
    reqs = [
        json.dumps(
            {
                "ts": START + i % 60,
                "namespace": "team-chat",
                "pod": f"vllm-chat-{i % 2}",
                "latency_ms": 80.0,
                "tokens_in": 100,
                "tokens_out": 50,
            }
        ).encode()
        for i in range(120)
    ]
    e.push(reqs, format="latency_json", source="request-latency")
    w = e.finish()
    (row,) = w.service_cost_windows.to_pylist()
    gpu = w.gpu_windows.to_pylist()
    chat_rows = [r for r in gpu if r["pod"].startswith("vllm-chat-")]
    assert row["service"] == "chat" and row["requests"] == 120
    assert (row["pods"], row["gpus"]) == (2, 2)
    assert row["cost_usd"] == pytest.approx(sum(r["cost_usd"] for r in chat_rows))
    assert row["busy_gpu_s"] == pytest.approx(sum(r["busy_gpu_s"] for r in chat_rows))
    assert row["cost_per_1k_requests_usd"] == pytest.approx(row["cost_usd"] / 120 * 1000)
    assert row["cost_per_1m_tokens_usd"] == pytest.approx(row["cost_usd"] / 18_000 * 1e6)
    assert row["headroom_gpus"] == pytest.approx(row["provisioned_gpus"] - row["demand_mean_gpus"])
    assert row["slo_met"] is True


def test_sketch_column_merges_across_windows() -> None:
    rng = np.random.default_rng(3)
    lat = np.exp(rng.normal(4.0, 1.0, 6000))
    msgs = [req(START + i * 0.05, float(v)) for i, v in enumerate(lat)]
    e = gpuledger.Engine()
    e.push(msgs, format="latency_json")
    t = e.finish().latency_windows
    assert t.num_rows == 5  # 300 s of requests in 60 s windows
    merged = gpuledger.merge_sketches(t.column("latency_sketch"))
    assert merged.count == 6000
    for q in (0.5, 0.95, 0.99, 0.999):
        exact = float(np.quantile(lat, q, method="inverted_cdf"))
        assert merged.quantile(q) == pytest.approx(exact, rel=0.01)


def test_columnar_requests_equal_json_requests() -> None:
    import pyarrow as pa

    rows = [
        {
            "ts": START + i * 0.25,
            "service": f"s{i % 2}",
            "namespace": "n",
            "pod": f"p{i % 3}",
            "latency_ms": 10.0 + i,
            "ttft_ms": 2.0,
            "status": 503 if i % 7 == 0 else 200,
            "tokens_in": 5,
            "tokens_out": 7,
            "request_id": f"r{i}",
        }
        for i in range(400)
    ]
    a = gpuledger.Engine()
    a.push([json.dumps(r).encode() for r in rows], format="latency_json")
    b = gpuledger.Engine()
    b.push_arrow(pa.Table.from_pylist(rows))
    ta, tb = a.finish().latency_windows, b.finish().latency_windows
    assert ta.num_rows == 4 and ta.equals(tb)


def test_columnar_bad_request_rows_are_dead_letters() -> None:
    import pyarrow as pa

    t = pa.table(
        {"ts": [START, START, None], "service": ["s", "s", "s"], "latency_ms": [5.0, -1.0, 3.0]}
    )
    e = gpuledger.Engine()
    e.push_arrow(t, form="requests", source="requests.parquet")
    dead = e.finish().dead_letters.to_pydict()
    assert dead["offset"] == [1, 2]
    assert "latency_ms -1" in dead["reason"][0] and "null timestamp" in dead["reason"][1]


def test_dictionary_and_plain_columns_and_json_agree_on_every_row_kind() -> None:
    """Dictionary-encoded label columns take the engine's per-batch fast path; odd rows
    (a bad value, a service only the pod rules name, a null service, a duplicate id, a
    late event) leave it. Plain strings and JSON must give the same tables."""
    import pyarrow as pa

    def rows(t0: float, n: int) -> list[dict[str, object]]:
        out: list[dict[str, object]] = [
            {
                "ts": t0 + i * 0.5,
                "service": ["chat", "embed", ""][i % 3] if i % 11 else None,
                "namespace": "team",
                "pod": f"vllm-chat-{i % 4}" if i % 3 == 2 else f"embed-{i % 2}",
                "latency_ms": -1.0 if i == 7 else 20.0 + i % 50,
                "ttft_ms": None if i % 5 == 0 else 3.0,
                "status": 500 if i % 13 == 0 else 200,
                "tokens_in": 10,
                "tokens_out": 4,
                "request_id": f"r{t0}-{i % 150}",  # ids repeat: duplicates
            }
            for i in range(n)
        ]
        return out

    first, second = rows(START, 300), rows(START + 240, 200)
    second[5]["ts"] = START + 1  # late by then: its windows have closed
    cfg = {"services": {"pods": [{"pattern": "vllm-chat-*", "service": "chat"}]}}
    labels = ("service", "namespace", "pod")

    def arrow(batch: list[dict[str, object]], dictionary: bool) -> pa.Table:
        t = pa.Table.from_pylist(batch)
        for c in labels if dictionary else ():
            t = t.set_column(t.schema.get_field_index(c), c, t.column(c).dictionary_encode())
        return t

    def run(kind: str) -> dict[str, pa.Table]:
        e = gpuledger.Engine(gpuledger.Config.from_dict(cfg))
        parts = []
        for batch in (first, second):
            if kind == "json":
                msgs = [
                    json.dumps({k: v for k, v in r.items() if v is not None}).encode()
                    for r in batch
                ]
                e.push(msgs, format="latency_json", source="s")
            else:
                e.push_arrow(arrow(batch, kind == "dict"), form="requests", source="s")
            parts.append(e.poll())  # closes windows: the second batch's old row is late
        parts.append(e.finish())
        names = ("latency_windows", "service_cost_windows", "late_events", "dead_letters")
        return {n: pa.concat_tables([p[n] for p in parts]) for n in names}

    dict_w, plain_w, json_w = run("dict"), run("plain"), run("json")
    assert dict_w["latency_windows"].num_rows >= 8
    # -1 ms, and rows naming no service whose pod no rule matches
    assert dict_w["dead_letters"].num_rows >= 2 and dict_w["late_events"].num_rows >= 1
    for w in (plain_w, json_w):
        for table in ("latency_windows", "service_cost_windows", "late_events"):
            assert dict_w[table].equals(w[table]), table
        assert dict_w["dead_letters"].column("reason").equals(w["dead_letters"].column("reason"))
