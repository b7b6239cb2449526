"""Columnar input (inputs.md 1d): long and wide Arrow forms from pyarrow and Polars give the
same windows as the equivalent JSON messages; bad rows are dead letters."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import polars as pl
import pyarrow as pa
import pytest

import gpuledger
from gpuledger.simulate.small_fleet import default_fleet, prom_json_messages

START = 1_795_867_200


def long_table(messages: list[bytes]) -> pa.Table:
    """The same samples as the JSON messages, in the long columnar form."""
    cols: dict[str, list[object]] = {
        k: []
        for k in (
            *("ts", "gpu", "field", "value", "gpu_index", "hostname", "model_name"),
            *("namespace", "pod", "container"),
        )
    }
    for raw in messages:
        m = json.loads(raw)
        lab = m["labels"]
        ts = datetime.fromisoformat(m["timestamp"].replace("Z", "+00:00"))
        cols["ts"].append(ts)
        cols["gpu"].append(lab["UUID"])
        cols["field"].append(m["name"])
        cols["value"].append(float(m["value"]))
        cols["gpu_index"].append(int(lab["gpu"]))
        cols["hostname"].append(lab["Hostname"])
        cols["model_name"].append(lab["modelName"])
        for k in ("namespace", "pod", "container"):
            cols[k].append(lab[k])
    return pa.table(cols).cast(
        pa.schema(
            [pa.field("ts", pa.timestamp("us", tz="UTC"))]
            + [pa.field(k, pa.string()) for k in ("gpu", "field")]
            + [pa.field("value", pa.float64()), pa.field("gpu_index", pa.int64())]
            + [pa.field(k, pa.string()) for k in ("hostname", "model_name")]
            + [pa.field(k, pa.string()) for k in ("namespace", "pod", "container")]
        )
    )


def windows_from_json(messages: list[bytes]) -> pa.Table:
    e = gpuledger.Engine()
    e.push(messages)
    return e.poll().concat(e.finish()).gpu_windows


def windows_from_arrow(data: object, **kw: object) -> pa.Table:
    e = gpuledger.Engine()
    e.push_arrow(data, **kw)  # type: ignore[arg-type]
    return e.poll().concat(e.finish()).gpu_windows


@pytest.fixture(scope="module")
def messages() -> list[bytes]:
    return list(prom_json_messages(default_fleet(), START, 300))


def test_long_form_pyarrow_equals_json(messages: list[bytes]) -> None:
    assert windows_from_arrow(long_table(messages)).equals(windows_from_json(messages))


def test_long_form_dictionary_and_other_time_units(messages: list[bytes]) -> None:
    t = long_table(messages)
    t = t.set_column(0, "ts", t.column("ts").cast(pa.timestamp("s", tz="UTC")))
    for name in ("gpu", "field", "pod"):
        i = t.schema.get_field_index(name)
        t = t.set_column(i, name, t.column(name).dictionary_encode())
    assert windows_from_arrow(t, form="long").equals(windows_from_json(messages))


def test_polars_dataframe_goes_in_through_the_pycapsule(messages: list[bytes]) -> None:
    df = pl.from_arrow(long_table(messages))
    assert isinstance(df, pl.DataFrame)
    df = df.with_columns(pl.col("gpu").cast(pl.Categorical))
    assert windows_from_arrow(df).equals(windows_from_json(messages))


def test_wide_form_matches_long_form() -> None:
    ts = [START + s for s in range(120)]
    wide = pa.table(
        {
            "ts": pa.array([float(t) for t in ts]),
            "gpu": ["GPU-w"] * 120,
            "gpu_index": [3] * 120,
            "host": ["n1"] * 120,
            "model": ["NVIDIA L4"] * 120,
            "namespace": ["ns"] * 120,
            "pod": ["p"] * 120,
            "container": ["c"] * 120,
            "gr_engine_active": [0.5] * 60 + [None] * 60,
            "gpu_util": [10.0] * 120,
            "power_w": [200.0] * 120,
        }
    )
    w = windows_from_arrow(wide).to_pylist()
    assert [r["samples"] for r in w] == [60, 60]
    assert [r["util_mean"] for r in w] == [0.5, pytest.approx(0.1)]
    assert w[0]["power_mean_w"] == 200.0 and w[0]["gpu_index"] == 3
    assert w[0]["hostname"] == "n1" and w[0]["model_name"] == "NVIDIA L4"


def test_bad_rows_are_dead_letters_with_row_numbers() -> None:
    t = pa.table(
        {
            "ts": pa.array([START, None, START, START], pa.int64()),
            "gpu": ["G", "G", None, "G"],
            "field": ["DCGM_FI_DEV_GPU_UTIL"] * 4,
            "value": [50.0, 50.0, 50.0, float("nan")],
        }
    )
    e = gpuledger.Engine()
    e.push_arrow(t, source="file.parquet", first_row=10)
    dead = e.finish().dead_letters.to_pydict()
    assert dead["offset"] == [11, 12, 13]
    assert dead["source"] == ["file.parquet"] * 3
    assert "null timestamp" in dead["reason"][0]
    assert "UUID" in dead["reason"][1]
    assert "non-finite" in dead["reason"][2]
    assert e.stats()["aggregated"] == 1


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (pa.table({"gpu": ["G"], "field": ["x"], "value": [1.0]}), "no time column"),
        (pa.table({"ts": [START], "field": ["x"], "value": [1.0]}), "no GPU column"),
        (pa.table({"ts": [START], "gpu": ["G"], "field": ["x"], "value": ["1"]}), "numeric"),
        (pa.table({"ts": [START], "gpu": [1], "field": ["x"], "value": [1.0]}), "string"),
    ],
)
def test_unreadable_batches_raise_input_error(table: pa.Table, message: str) -> None:
    with pytest.raises(gpuledger.InputError, match=message):
        gpuledger.Engine().push_arrow(table)


def test_columnar_timestamp_units_agree() -> None:
    base = datetime(2026, 11, 28, 12, 0, 0, tzinfo=timezone.utc)
    variants = [
        pa.array([base], pa.timestamp("ns", tz="UTC")),
        pa.array([START * 1000], pa.int64()),  # integer milliseconds (above 1e11)
        pa.array([float(START)], pa.float64()),  # Unix seconds
        pa.array(["2026-11-28T12:00:00Z"]),
    ]
    starts = []
    for ts in variants:
        t = pa.table({"ts": ts, "gpu": ["G"], "field": ["DCGM_FI_DEV_GPU_UTIL"], "value": [1.0]})
        starts.append(windows_from_arrow(t).column("window_start")[0].as_py())
    assert starts == [base] * 4


def test_duckdb_result_goes_in_through_the_pycapsule(messages: list[bytes]) -> None:
    import duckdb

    table = long_table(messages)
    con = duckdb.connect()
    con.register("samples", table)
    relation = con.sql("select * from samples order by ts, gpu, field")
    assert hasattr(relation, "__arrow_c_stream__")  # the relation itself, no pyarrow step
    assert windows_from_arrow(relation).equals(windows_from_json(messages))


def test_unit_overrides_from_configuration() -> None:
    # newer dcgm-exporter: GPU_UTIL as a ratio, framebuffer in bytes
    t = pa.table(
        {
            "ts": [START, START],
            "gpu": ["G", "G"],
            "field": ["DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_FB_USED"],
            "value": [0.25, 2.0 * 1024 * 1024 * 1024],
        }
    )
    units = {"DCGM_FI_DEV_GPU_UTIL": "ratio", "DCGM_FI_DEV_FB_USED": "bytes"}
    e = gpuledger.Engine(gpuledger.Config.from_dict({"units": units}))
    e.push_arrow(t)
    (row,) = e.finish().gpu_windows.to_pylist()
    assert row["util_mean"] == pytest.approx(0.25)
    assert row["fb_used_max_mib"] == pytest.approx(2048.0)
