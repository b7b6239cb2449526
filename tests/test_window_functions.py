"""Python window functions: called once per closed window with its points; errors and bad
return values are reported clearly; names cannot shadow tables."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
import pytest

import gpuledger
from gpuledger.simulate.small_fleet import default_fleet, prom_json_messages

START = 1_795_867_200


def messages() -> list[bytes]:
    msgs = list(prom_json_messages(default_fleet()[:2], START, 180))
    extra = [
        m.replace(b"DCGM_FI_DEV_POWER_USAGE", b"DCGM_FI_DEV_SM_CLOCK")
        for m in msgs
        if b"DCGM_FI_DEV_POWER_USAGE" in m
    ]
    return msgs + extra


def test_called_per_window_with_only_that_windows_points() -> None:
    calls: list[tuple[object, int]] = []

    def count(points: pa.Table) -> pa.Table:
        starts = pc.unique(points["window_start"])
        assert len(starts) == 1
        calls.append((starts[0].as_py(), points.num_rows))
        by_field = points.group_by("field").aggregate([("value", "count")])
        return by_field

    e = gpuledger.Engine(window_functions={"counts": count}, fields=["DCGM_FI_DEV_SM_CLOCK"])
    e.push(messages())
    out = e.finish()["counts"].to_pylist()
    assert len(calls) == 3  # three one-minute windows
    # per window: 2 GPUs x 60 s x (GR, power, SM clock)
    assert [n for _, n in calls] == [360, 360, 360]
    fields = {r["field"]: r["value_count"] for r in out}
    assert fields["DCGM_FI_DEV_SM_CLOCK"] == 120
    assert all(r["window_start"] is not None for r in out)


def test_fields_not_kept_are_unknown_and_dropped() -> None:
    seen: set[str] = set()

    def fields(points: pa.Table) -> pa.Table:
        seen.update(points["field"].to_pylist())
        return pa.table({"n": [points.num_rows]})

    e = gpuledger.Engine(window_functions={"f": fields})
    e.push(messages())
    e.finish()
    assert "DCGM_FI_DEV_SM_CLOCK" not in seen
    assert e.stats()["skipped_unknown_field"] == 2 * 180


def test_failing_function_names_itself() -> None:
    def boom(points: pa.Table) -> pa.Table:
        raise RuntimeError("nope")

    e = gpuledger.Engine(window_functions={"boom": boom})
    e.push(messages())
    with pytest.raises(gpuledger.WindowFunctionError, match=r"'boom' failed.*nope"):
        e.finish()


def test_non_table_result_is_an_error() -> None:
    e = gpuledger.Engine(window_functions={"bad": lambda points: 42})  # type: ignore[dict-item]
    e.push(messages())
    with pytest.raises(gpuledger.WindowFunctionError, match="returned int"):
        e.finish()


@pytest.mark.parametrize("name", ["gpu_windows", "window_points", "Bad-Name"])
def test_names_cannot_shadow_tables(name: str) -> None:
    with pytest.raises(gpuledger.ConfigError, match=f"window_functions.{name}"):
        gpuledger.Engine(window_functions={name: lambda p: p})
