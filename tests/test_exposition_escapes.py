"""Label escapes in exposition text are read as Prometheus reads them (issue 19 item 7):
`\\\\`, `\\"` and `\\n` are unescaped; any other backslash stays as written. The reference
here is prometheus-client's own text parser, run on the same text."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

import gpuledger
from gpuledger.cli import main
from gpuledger.output.sink import read_table

TS_MS = 1_795_867_201_000
# Pieces of a label value as written: plain characters and two-character escapes, known
# (`\\`, `\"`, `\n`) and unknown (`\z`, `\t`, `\é`, `\ `).
PIECES = ["a", "z", "n", "é", " ", "\\\\", '\\"', "\\n", "\\z", "\\t", "\\é", "\\ "]


def line(written: str, gpu: str = "GPU-1") -> str:
    return f'DCGM_FI_DEV_GPU_UTIL{{UUID="{gpu}",pod="{written}"}} 50 {TS_MS}\n'


def prometheus_reads(written: str) -> str:
    (family,) = text_string_to_metric_families(line(written))
    (sample,) = family.samples
    return str(sample.labels["pod"])


def gpuledger_reads(written: str) -> tuple[str, int]:
    e = gpuledger.Engine()
    e.push_exposition(line(written).encode(), source="scrape.prom")
    out = e.finish()
    pods = out.gpu_windows.column("pod").to_pylist()
    return (pods[0] if pods else ""), out.dead_letters.num_rows


def test_the_issue_example_is_kept_not_dead_lettered() -> None:
    written = "b\\\\a\\z"  # foo="b\\a\z" as it appears in the text
    assert prometheus_reads(written) == "b\\a\\z"
    assert gpuledger_reads(written) == ("b\\a\\z", 0)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=12).map("".join))
def test_every_mix_of_escapes_reads_as_prometheus_reads_it(written: str) -> None:
    assert gpuledger_reads(written) == (prometheus_reads(written), 0)


def test_replay_of_an_exposition_file_keeps_unknown_escapes(tmp_path: Path) -> None:
    scrape = tmp_path / "scrape.prom"
    scrape.write_text(line("team\\x\\\\2") + line("ok", gpu="GPU-2"), encoding="utf-8")
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["replay", str(scrape), "--out", str(out)])
    assert result.exit_code == 0, result.output
    pods = read_table(out, "gpu_windows").column("pod").to_pylist()
    assert sorted(pods) == ["ok", "team\\x\\2"]
    assert read_table(out, "dead_letters").num_rows == 0
