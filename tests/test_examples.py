"""The documented examples run and give the figures their docs state."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def load(name: str) -> object:
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_custom_aggregations_example(capsys: pytest.CaptureFixture[str]) -> None:
    tables = load("custom_aggregations").main()  # type: ignore[attr-defined]
    p95 = tables["tensor_active_p95"].to_pylist()
    assert len(p95) == 6  # 3 windows x 2 (host, namespace) groups
    by_ns = {r["namespace"]: r["value"] for r in p95}
    assert by_ns == {"team-a": pytest.approx(0.69), "team-b": pytest.approx(0.09)}
    assert all(r["samples"] == 60 and r["Hostname"] == "node-1" for r in p95)
    wasted = tables["busy_without_tensor_cores"].to_pylist()
    assert {(r["namespace"], r["busy_without_tensor_s"]) for r in wasted} == {
        ("team-a", 0.0),
        ("team-b", 30.0),
    }
    assert len(wasted) == 6 and all(r["window_start"] is not None for r in wasted)
    assert "busy_without_tensor_s" in capsys.readouterr().out
