"""Every `hashsvc` command (and sub-command) documents itself with an `Example:` block in --help."""

from __future__ import annotations

import re
from collections.abc import Iterator

import click
from click.testing import CliRunner

from hashsvc.cli import main


def commands(group: click.Group, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for name, command in sorted(group.commands.items()):
        yield (*prefix, name)
        if isinstance(command, click.Group):
            yield from commands(command, (*prefix, name))


def test_every_command_has_help_with_an_example() -> None:
    names = list(commands(main))
    assert {"bank", "add", "import", "export", "disable", "enable", "delete", "search", "match", "keys"} <= {
        n[0] for n in names
    }
    runner = CliRunner()
    for path in [(), *names]:
        result = runner.invoke(main, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "Example:" in result.output, f"hashsvc {' '.join(path)} --help has no Example: block"
        assert re.search(r"\n\s+(\S+=\S+ )*hashsvc ", result.output.split("Example:", 1)[1]), path


def test_curation_commands_offer_both_modes_and_json() -> None:
    runner = CliRunner()
    for path in commands(main):
        command = main
        for part in path:
            command = command.commands[part]  # type: ignore[attr-defined]
        if isinstance(command, click.Group) or path[0] in ("hash", "migrate", "init", "serve", "bench"):
            continue
        if path == ("exchange", "new-key"):  # prints a random key: no store, no server
            continue
        options = {opt for param in command.params for opt in param.opts}
        assert {"--url", "--key", "--database-url", "--json"} <= options, path
    assert runner.invoke(main, ["frobnicate"]).exit_code == 2
