"""The CLI imports a subcommand's module only when that command is used."""

from __future__ import annotations

import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from gpuledger.cli import main
from gpuledger.cli.lazy import LazyGroup

LAZY_MODULES = (
    "gpuledger.cli.replay",
    "gpuledger.cli.simulate",
    "gpuledger.cli.combine",
    "gpuledger.billing.command",
)


def test_run_does_not_import_the_other_commands() -> None:
    code = (
        "import sys\n"
        "from gpuledger.cli import main\n"
        "try:\n"
        "    main(['run', '--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print([m for m in {LAZY_MODULES!r} if m in sys.modules])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_help_lists_every_command_and_each_one_runs() -> None:
    runner = CliRunner()
    listed = runner.invoke(main, ["--help"])
    assert listed.exit_code == 0
    for name in ("allocate", "combine", "demo", "produce", "replay", "run", "simulate"):
        assert f"  {name} " in listed.output
        assert runner.invoke(main, [name, "--help"]).exit_code == 0


def test_an_unknown_command_is_a_usage_error() -> None:
    result = CliRunner().invoke(main, ["replya"])
    assert result.exit_code == 2
    assert "No such command 'replya'" in result.output


def test_a_lazy_name_that_is_not_a_command_is_refused() -> None:
    group = LazyGroup(lazy={"bad": "gpuledger.cli.lazy:LazyGroup"})
    with pytest.raises(TypeError, match="not a click command"):
        group.get_command(click.Context(group), "bad")
