"""Every bad-input case of docs/inputs.md section 3 for GPU telemetry: each bad message is a
dead letter with its provenance and a reason (or a counted skip), nothing crashes, the good
messages around it still count, and the counters reconcile."""

from __future__ import annotations

import pytest

import gpuledger

GOOD = (
    b'{"timestamp":"2026-11-28T12:00:01Z","value":"0.5","name":"DCGM_FI_PROF_GR_ENGINE_ACTIVE",'
    b'"labels":{"UUID":"GPU-1","gpu":"0","modelName":"NVIDIA L4","Hostname":"h",'
    b'"namespace":"ns","pod":"p","container":"c"}}'
)


def with_value(value: bytes) -> bytes:
    return GOOD.replace(b'"value":"0.5"', b'"value":' + value)


def with_time(ts: bytes) -> bytes:
    return GOOD.replace(b"2026-11-28T12:00:01Z", ts)


def run(bad: bytes) -> tuple[dict[str, int], dict[str, list[object]], gpuledger.Windows]:
    """Pushes good, bad, good at offsets 7, 8, 9 of partition 2; returns stats, dead letters
    and the closed windows."""
    e = gpuledger.Engine()
    later = GOOD.replace(b"12:00:01", b"12:00:02")
    e.push([GOOD, bad, later], source="gpu-telemetry", partition=2, first_offset=7)
    w = e.finish()
    stats = e.stats()
    assert stats["consumed"] == 3
    assert stats["consumed"] == sum(
        v for k, v in stats.items() if k not in ("consumed",) and k != "windows_emitted"
    )
    return stats, w.dead_letters.to_pydict(), w


def assert_dead(bad: bytes, reason: str) -> None:
    stats, dead, w = run(bad)
    assert stats["dead"] == 1 and stats["aggregated"] == 2
    assert dead["source"] == ["gpu-telemetry"]
    assert dead["partition"] == [2] and dead["offset"] == [8]
    assert reason in dead["reason"][0], dead["reason"][0]
    assert dead["raw"][0] == bad[:4096] and dead["raw_size"] == [len(bad)]
    assert w.gpu_windows.column("samples").to_pylist() == [2]


def test_truncated_json() -> None:
    assert_dead(GOOD[:57], "invalid JSON")


def test_wrong_type_of_value() -> None:
    assert_dead(with_value(b'{"v":1}'), "value is an object, expected a string holding a number")


def test_wrong_type_of_timestamp() -> None:
    bad = with_time(b"").replace(b'"timestamp":""', b'"timestamp":12')
    assert_dead(bad, "timestamp is a number, expected an RFC 3339 string")


def test_value_not_a_number() -> None:
    assert_dead(with_value(b'"fast"'), "not a number")


def test_nan_value() -> None:
    assert_dead(with_value(b'"NaN"'), "non-finite")


def test_infinite_value() -> None:
    assert_dead(with_value(b'"+Inf"'), "non-finite")


def test_utilization_above_100_percent() -> None:
    bad = with_value(b'"101"').replace(b"DCGM_FI_PROF_GR_ENGINE_ACTIVE", b"DCGM_FI_DEV_GPU_UTIL")
    assert_dead(bad, "outside the valid range")


def test_ratio_above_one() -> None:
    assert_dead(with_value(b'"1.5"'), "outside the valid range")


def test_negative_power() -> None:
    bad = with_value(b'"-3"').replace(b"DCGM_FI_PROF_GR_ENGINE_ACTIVE", b"DCGM_FI_DEV_POWER_USAGE")
    assert_dead(bad, "outside the valid range")


def test_timestamp_before_2000() -> None:
    assert_dead(with_time(b"1999-12-31T23:59:59Z"), "before 2000")


def test_timestamp_far_in_the_future() -> None:
    assert_dead(with_time(b"2999-01-01T00:00:00Z"), "max_future_s")


def test_timestamp_not_rfc3339() -> None:
    assert_dead(with_time(b"28/11/2026 12:00"), "not RFC 3339")


def test_deeply_nested_message() -> None:
    bad = GOOD[:-1] + b',"x":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    assert_dead(bad, "invalid JSON")


def test_multi_megabyte_message() -> None:
    bad = GOOD[:-1] + b',"padding":"' + b"x" * (3 << 20) + b'"}'
    assert_dead(bad, "max_message_bytes")


def test_invalid_utf8() -> None:
    assert_dead(GOOD.replace(b'"pod":"p"', b'"pod":"\xff\xfe"'), "invalid JSON")


def test_missing_gpu_identity() -> None:
    assert_dead(GOOD.replace(b'"UUID":"GPU-1",', b""), "missing UUID")


def test_empty_message() -> None:
    assert_dead(b"", "invalid JSON")


def test_label_values_like_paths_are_data_not_paths() -> None:
    traversal = GOOD.replace(b'"pod":"p"', b'"pod":"../../etc"').replace(
        b'"UUID":"GPU-1"', b'"UUID":"../../etc/passwd"'
    )
    e = gpuledger.Engine()
    e.push([traversal])
    rows = e.finish().gpu_windows.to_pylist()
    assert rows[0]["pod"] == "../../etc" and rows[0]["gpu_uuid"] == "../../etc/passwd"


@pytest.mark.parametrize(
    ("message", "counter"),
    [
        (with_value(b'"9223372036854775794"'), "skipped_blank"),
        (
            GOOD.replace(b"DCGM_FI_PROF_GR_ENGINE_ACTIVE", b"DCGM_FI_DEV_MEMORY_TEMP"),
            "skipped_unknown_field",
        ),
        (GOOD, "skipped_duplicate"),
    ],
)
def test_blank_unknown_and_duplicate_are_counted_skips(message: bytes, counter: str) -> None:
    stats, dead, _ = run(message)
    assert stats[counter] == 1 and stats["dead"] == 0 and dead["offset"] == []


def test_dead_letter_raw_bytes_are_truncated_to_the_configured_size() -> None:
    cfg = gpuledger.Config.from_dict({"engine": {"dead_letter_max_bytes": 16}})
    e = gpuledger.Engine(cfg)
    e.push([b"{" + b"x" * 100])
    dead = e.finish().dead_letters.to_pydict()
    assert dead["raw"] == [b"{" + b"x" * 15] and dead["raw_size"] == [101]
