"""The GPU telemetry forms of inputs.md 1a-1c through the Python API: the spec's own examples
decode, and the same samples in every form give the same windows."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

import gpuledger
from gpuledger.simulate.small_fleet import default_fleet, prom_json_messages

START = 1_795_867_200

SPEC_WIDE = (
    b'{"ts":1764331201.0,"gpu":"GPU-604ac76c-d9cf-fef3-62e9-d92044ab6e52","gpu_index":3,'
    b'"host":"gpu-node-17","model":"NVIDIA H100 80GB HBM3","namespace":"team-search",'
    b'"pod":"ranker-7f9c-2","container":"main","gr_engine_active":0.734,"fb_used_mib":40211,'
    b'"power_w":512.5}'
)
SPEC_EXPOSITION = (
    b'DCGM_FI_DEV_GPU_UTIL{gpu="0",UUID="GPU-585834da-79ca-0599-5140-4ffdb131ae93",'
    b'pci_bus_id="00000000:4E:00.0",device="nvidia0",modelName="NVIDIA L40S",Hostname="l40s-1",'
    b'container="tensorflow",namespace="research",pod="tensorflow-0"} 87\n'
)


def windows(engine: gpuledger.Engine) -> list[dict[str, object]]:
    return engine.finish().gpu_windows.to_pylist()


def test_spec_wide_example() -> None:
    e = gpuledger.Engine()
    e.push([SPEC_WIDE], format="wide_json")
    (row,) = windows(e)
    assert row["gpu_uuid"] == "GPU-604ac76c-d9cf-fef3-62e9-d92044ab6e52"
    assert row["hostname"] == "gpu-node-17" and row["gpu_index"] == 3
    assert row["util_mean"] == pytest.approx(0.734)
    assert row["fb_used_max_mib"] == 40211 and row["power_mean_w"] == 512.5


def test_spec_exposition_example_with_scrape_ts() -> None:
    e = gpuledger.Engine()
    e.push_exposition(b"# scrape_ts 1795867201\n" + SPEC_EXPOSITION, source="scrape.prom")
    (row,) = windows(e)
    assert row["gpu_uuid"] == "GPU-585834da-79ca-0599-5140-4ffdb131ae93"
    assert row["util_mean"] == pytest.approx(0.87) and row["pod"] == "tensorflow-0"
    assert row["window_start"].timestamp() == START


def test_exposition_without_time_is_a_dead_letter_per_line() -> None:
    e = gpuledger.Engine()
    e.push_exposition(b"# HELP x\n" + SPEC_EXPOSITION * 2, source="f.prom")
    dead = e.finish().dead_letters.to_pydict()
    assert dead["offset"] == [2, 3]
    assert all("no timestamp" in r for r in dead["reason"])


def test_exposition_default_time() -> None:
    e = gpuledger.Engine()
    e.push_exposition(SPEC_EXPOSITION, default_ts=START + 5)
    assert windows(e)[0]["samples"] == 1


def to_wide(messages: list[bytes]) -> list[bytes]:
    """The fleet's prom JSON samples regrouped as one wide message per GPU per second."""
    by_key: dict[tuple[str, str], dict[str, object]] = {}
    names = {
        "DCGM_FI_PROF_GR_ENGINE_ACTIVE": "gr_engine_active",
        "DCGM_FI_DEV_POWER_USAGE": "power_w",
    }
    for raw in messages:
        m = json.loads(raw)
        lab = m["labels"]
        row = by_key.setdefault(
            (m["timestamp"], lab["UUID"]),
            {
                "ts": m["timestamp"],
                "gpu": lab["UUID"],
                "gpu_index": int(lab["gpu"]),
                "host": lab["Hostname"],
                "model": lab["modelName"],
                "namespace": lab["namespace"],
                "pod": lab["pod"],
                "container": lab["container"],
            },
        )
        row[names[m["name"]]] = float(m["value"])
    return [json.dumps(r).encode() for r in by_key.values()]


def to_exposition(messages: list[bytes]) -> bytes:
    out: list[str] = []
    last = None
    for raw in messages:
        m = json.loads(raw)
        if m["timestamp"] != last:
            secs = datetime.fromisoformat(m["timestamp"].replace("Z", "+00:00")).timestamp()
            out.append(f"# scrape_ts {secs:.0f}")
            last = m["timestamp"]
        labels = ",".join(f'{k}="{v}"' for k, v in m["labels"].items() if k != "__name__")
        out.append(f"{m['name']}{{{labels}}} {m['value']}")
    return ("\n".join(out) + "\n").encode()


def test_same_samples_in_every_form_give_the_same_windows() -> None:
    msgs = list(prom_json_messages(default_fleet(), START, 180))
    a = gpuledger.Engine()
    a.push(msgs)
    b = gpuledger.Engine()
    b.push(to_wide(msgs), format="wide_json")
    c = gpuledger.Engine()
    c.push_exposition(to_exposition(msgs))
    wa, wb, wc = (e.finish().gpu_windows for e in (a, b, c))
    assert wa.num_rows == 24
    assert wa.equals(wb)
    assert wa.equals(wc)


def test_unknown_format_is_an_input_error() -> None:
    with pytest.raises(gpuledger.InputError, match="unknown message format"):
        gpuledger.Engine().push([b"{}"], format="csv")
