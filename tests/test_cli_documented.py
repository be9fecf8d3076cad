"""Every command is in the README's command table (and the table names no other), and every
option of kb and of each command has help text that ``--help`` shows (as sqlite-utils
checks its docs)."""
from __future__ import annotations

import re
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from kb.cli import COMMANDS, cli

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
TABLE = [line for line in README.splitlines() if line.startswith("| `kb ")]


def test_the_readme_table_names_only_commands() -> None:
    named = {m for row in TABLE for m in re.findall(r"`kb ([a-z]+)", row.split(" | ")[0])}
    assert named - set(COMMANDS) == set()


@pytest.mark.parametrize("name", list(COMMANDS))
def test_command_is_in_the_readme_table(name: str) -> None:
    assert any(re.search(rf"`kb {name}[ `]", row.split(" | ")[0]) for row in TABLE), name


@pytest.mark.parametrize("name", [None, *COMMANDS])
def test_every_option_has_help_shown_by_help(name: str | None) -> None:
    command = cli if name is None else cli.get_command(click.Context(cli), name)
    assert command is not None and (command.help or "").strip()
    shown = CliRunner().invoke(cli, [*([name] if name else []), "--help"], terminal_width=200)
    assert shown.exit_code == 0, shown.output
    for param in command.params:
        if isinstance(param, click.Option) and not param.hidden:
            assert (param.help or "").strip(), f"{param.opts} has no help"
            for opt in param.opts:
                assert opt in shown.output, opt
