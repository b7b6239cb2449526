"""The replay summary's grouped sums (`gpuledger.replay.group_sums`, no Acero) equal pyarrow's
`Table.group_by` on the same rows: nulls as their own key, null values as 0, chunked columns,
empty input."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest

from gpuledger.replay.group_sums import count_distinct, sum_by
from gpuledger.simulate.small_fleet import default_fleet, prom_json_messages

START = 1_795_867_200  # 2026-11-28T12:00:00Z


def table(rows: int, seed: int) -> pa.Table:
    rng = random.Random(seed)
    teams = ["a", "b", "", None]
    pods = [f"p{i}" for i in range(7)] + [None]

    def pick(values: list[str | None]) -> list[str | None]:
        return [rng.choice(values) for _ in range(rows)]

    return pa.table(
        {
            "team": pick(teams),
            "pod": pick(pods),
            "x": [rng.choice([None, rng.random()]) for _ in range(rows)],
            "y": [rng.uniform(-5, 5) for _ in range(rows)],
        }
    )


@pytest.mark.parametrize("rows", [0, 1, 50, 3000])
def test_sums_equal_pyarrow_group_by(rows: int) -> None:
    t = table(rows, rows)
    # Two chunks, to check chunked columns are read whole.
    t = pa.concat_tables([t.slice(0, rows // 3), t.slice(rows // 3)])
    got = sum_by([t.column("team"), t.column("pod")], [t.column("x"), t.column("y")])
    want = t.group_by(["team", "pod"]).aggregate([("x", "sum"), ("y", "sum")])
    expected = {(r["team"], r["pod"]): (r["x_sum"] or 0.0, r["y_sum"]) for r in want.to_pylist()}
    assert len(got) == len(expected)
    for key, sums in got:
        assert sums == pytest.approx(list(expected[key])), key
    assert count_distinct([t.column("team"), t.column("pod")]) == want.num_rows


def test_distinct_windows_of_int_columns() -> None:
    s = pa.chunked_array([[0, 60, 60, 0], [120, 0]], pa.int64())
    e = pa.chunked_array([[60, 120, 120, 60], [180, 3600]], pa.int64())
    assert count_distinct([s, e]) == 4


def test_a_replay_does_not_import_acero_or_pandas(tmp_path: Path) -> None:
    """Importing pyarrow's Acero (Table.group_by) pulls in pyarrow.dataset and pandas: 0.2 s
    of a replay's start."""
    data = tmp_path / "in.jsonl"
    data.write_bytes(b"\n".join(prom_json_messages(default_fleet(), START, 180)) + b"\n")
    code = (
        "import sys\n"
        "from gpuledger.cli import main\n"
        f"sys.argv = ['gpuledger', 'replay', {str(data)!r}, '--out', {str(tmp_path / 'o')!r}]\n"
        "try:\n"
        "    main()\n"
        "finally:\n"
        "    gone = ('pyarrow.acero', 'pyarrow.dataset', 'pandas')\n"
        "    print('imported:', sorted(m for m in gone if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "top idle cost" in out.stdout, out.stderr  # the summary was made
    assert "imported: []" in out.stdout, out.stdout
