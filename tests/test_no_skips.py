"""The rule of tests/conftest.py: a session in which any test skips fails, so CI never passes
with a feature or an install step silently missing."""

from __future__ import annotations

from pathlib import Path

import pytest

CONFTEST = Path(__file__).with_name("conftest.py")


def _with_the_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    """The inner session imports the plugins tests/conftest.py names (tests/s3_server.py)."""
    monkeypatch.setenv("PYTHONPATH", str(CONFTEST.parent))


def test_a_skipped_test_fails_the_session(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    _with_the_plugins(monkeypatch)
    pytester.makeconftest(CONFTEST.read_text())
    pytester.makepyfile("import pytest\ndef test_s(): pytest.skip('x')\ndef test_ok(): pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*1 test(s) skipped: no test may skip*"])


def test_a_session_without_skips_passes(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    _with_the_plugins(monkeypatch)
    pytester.makeconftest(CONFTEST.read_text())
    pytester.makepyfile("def test_ok(): pass\n")
    assert pytester.runpytest_subprocess("-p", "no:cacheprovider").ret == pytest.ExitCode.OK
