"""The Rust engine raises the classes of gpuledger.errors (one tree), with typed arguments."""

from __future__ import annotations

import pickle

import pyarrow as pa
import pytest

import gpuledger
from gpuledger import _engine, errors
from gpuledger.sketch import LatencySketch, merge_sketches


def test_engine_module_reexports_the_python_classes() -> None:
    for name in ("GpuledgerError", "ConfigError", "InputError", "ArrowExportError"):
        assert getattr(_engine, name) is getattr(errors, name)
        assert getattr(gpuledger, name) is getattr(errors, name)
    assert gpuledger.config.ConfigError is errors.ConfigError


def test_config_error_from_rust_carries_key_and_problem() -> None:
    # The key holds ": ", which splitting the message text would have cut in the wrong place.
    with pytest.raises(errors.ConfigError) as caught:
        _engine.Engine(prices={"A100: SXM": -1.0})
    e = caught.value
    assert e.key == 'prices."A100: SXM"'
    assert e.problem == "must be a finite number >= 0, got -1"
    assert str(e) == 'prices."A100: SXM": must be a finite number >= 0, got -1'
    assert isinstance(e, ValueError) and isinstance(e, errors.GpuledgerError)
    again = pickle.loads(pickle.dumps(e))
    assert (type(again), again.key, again.problem) == (errors.ConfigError, e.key, e.problem)


@pytest.mark.parametrize(
    ("kwargs", "key", "problem"),
    [
        ({"bogus": 1}, "bogus", "not an engine setting"),
        ({"window_s": [0]}, "engine.window_s", "0 is not a positive number of seconds"),
        ({"units": {"DCGM_FI_DEV_FB_USED": "parsec"}}, "units.DCGM_FI_DEV_FB_USED", None),
        ({"units": {"NOPE": "W"}}, "units.NOPE", "not a field gpuledger aggregates"),
        ({"idle_ttl_s": -1.0}, "idle.ttl_s", "must be a finite number >= 0, got -1"),
        (
            {"aggregations": [{"name": "a", "field": "f", "reducer": "median", "group_by": []}]},
            "aggregations[0].reducer",
            None,
        ),
        ({"aggregations": [{"name": "a"}]}, "aggregations[0].reducer", "required"),
    ],
)
def test_every_config_error_names_its_key(
    kwargs: dict[str, object], key: str, problem: str | None
) -> None:
    with pytest.raises(errors.ConfigError) as caught:
        _engine.Engine(**kwargs)  # type: ignore[arg-type]
    assert caught.value.key == key
    if problem is not None:
        assert caught.value.problem == problem


def test_library_engine_passes_the_rust_config_error_through() -> None:
    # Each aggregation is valid alone (Python checks that); together they need more extra
    # label slots than the engine has, which only the engine knows.
    aggregations = [
        {
            "name": f"a{i}",
            "field": "DCGM_FI_DEV_POWER_USAGE",
            "reducer": "max",
            "group_by": [f"l{i}_{j}" for j in range(5)],
        }
        for i in range(2)
    ]
    config = gpuledger.Config.from_dict({"aggregations": aggregations})
    with pytest.raises(gpuledger.ConfigError) as caught:
        gpuledger.Engine(config)
    assert caught.value.key == "aggregations[1].group_by"
    assert caught.value.problem == "at most 8 labels beyond the standard ones"


def test_input_errors_are_gpuledger_input_errors() -> None:
    engine = _engine.Engine()
    with pytest.raises(errors.InputError, match="form must be"):
        engine.push_arrow(pa.table({"ts": [1]}), form="tall")
    with pytest.raises(errors.InputError, match="unknown message format"):
        engine.push([b"{}"], format="xml")
    with pytest.raises(errors.InputError, match=r"offsets must not decrease"):
        engine.push_buffer(b"abcdef", offsets=[0, 4, 3])
    with pytest.raises(errors.InputError, match="gpu_windows: no column"):
        engine.seed_idle_streaks(pa.table({"x": [1]}))


def test_sketch_errors_keep_their_python_kinds() -> None:
    with pytest.raises(ValueError, match="quantile must be in"):
        LatencySketch().quantile(1.5)
    with pytest.raises(ValueError):
        LatencySketch(relative_accuracy=0.0)
    with pytest.raises(errors.InputError, match="invalid latency sketch bytes"):
        LatencySketch.from_bytes(b"nope")
    coarse = LatencySketch(relative_accuracy=0.05)
    coarse.add(3.0)
    fine = LatencySketch()
    fine.add(3.0)
    with pytest.raises(errors.InputError, match=r"^item 1: cannot merge sketches"):
        merge_sketches([fine, coarse])
