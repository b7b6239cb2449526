"""`replay.event_times.batch_time_ms` on timestamp columns of every unit: epoch ms from the
integer values, without importing pandas (pyarrow's timestamp `as_py()` does, which cost
every replay process 0.3-0.5 s)."""

from __future__ import annotations

import subprocess
import sys

import pyarrow as pa
import pytest

from gpuledger.replay.event_times import batch_time_ms

# 2026-11-28T12:00:01.123456Z and 12:05:00Z in microseconds.
EARLY_US, LATE_US = 1_795_867_201_123_456, 1_795_867_500_000_000


@pytest.mark.parametrize(("unit", "per_us"), [("s", 1e-6), ("ms", 1e-3), ("us", 1), ("ns", 1e3)])
@pytest.mark.parametrize("tz", [None, "UTC"])
def test_every_unit_gives_epoch_ms(unit: str, per_us: float, tz: str | None) -> None:
    values = pa.array([int(EARLY_US * per_us), None, int(LATE_US * per_us)], pa.int64())
    batch = pa.record_batch({"ts": values.cast(pa.timestamp(unit, tz))})
    early_ms = 1_795_867_201_000 if unit == "s" else 1_795_867_201_123
    assert batch_time_ms(batch) == 1_795_867_500_000
    assert batch_time_ms(batch, largest=False) == early_ms


def test_only_nulls_give_none() -> None:
    batch = pa.record_batch({"ts": pa.nulls(2, pa.timestamp("ms", "UTC"))})
    assert batch_time_ms(batch) is None


def test_reading_timestamps_does_not_import_pandas() -> None:
    # Built from a buffer: pa.array() and pa.record_batch(dict) import pandas themselves.
    code = (
        "import sys, pyarrow as pa\n"
        "from gpuledger.replay.event_times import batch_time_ms\n"
        "data = pa.py_buffer((1).to_bytes(8, 'little') + (2).to_bytes(8, 'little'))\n"
        "ts = pa.Array.from_buffers(pa.timestamp('ms', 'UTC'), 2, [None, data])\n"
        "b = pa.RecordBatch.from_arrays([ts], names=['ts'])\n"
        "assert batch_time_ms(b) == 2 and batch_time_ms(b, largest=False) == 1\n"
        "print('pandas' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
