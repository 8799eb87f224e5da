"""`hashsvc bench`: the benchmarks that ship with the package."""

from __future__ import annotations

import sys

import click

from hashsvc.cli.app import main


@main.group("bench")
def bench_group() -> None:
    """Benchmarks on your own sample images.

    \b
    Example:
        hashsvc bench robustness ../shared/corpus --limit 50
    """


@bench_group.command(
    "robustness", context_settings={"ignore_unknown_options": True, "help_option_names": []}, add_help_option=False
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def robustness_command(args: tuple[str, ...]) -> None:
    """Edit every image in a folder 55 ways, hash originals and edits, and report recall and false positives
    per method (ours, naive PDQ, pHash). Pass --help for the options.

    \b
    Example:
        hashsvc bench robustness ../shared/corpus --results results/robustness
    """
    from hashsvc.bench.robustness_cli import main as run  # imports matplotlib; only this command needs it

    sys.exit(run(list(args), prog="hashsvc bench robustness"))
