"""`hashsvc bank create|list|show|update|delete`."""

from __future__ import annotations

from typing import Any

import click

from hashsvc.cli.app import main
from hashsvc.cli.backend import Backend
from hashsvc.cli.options import backend_options, emit, json_option, table
from hashsvc.vocabulary import ACTIONS, CATEGORIES


def _thresholds(values: tuple[str, ...]) -> dict[str, int] | None:
    if not values:
        return None
    result = {}
    for value in values:
        name, _, limit = value.partition("=")
        if not name or not limit.isdigit():
            raise click.BadParameter(
                f"expected ALGORITHM=DISTANCE such as pdq=31, got {value!r}", param_hint="--threshold"
            )
        result[name.strip().lower()] = int(limit)
    return result


def _bank_text(bank: dict[str, Any]) -> str:
    thresholds = ", ".join(f"{k}={v}" for k, v in bank["thresholds"].items()) or "defaults"
    return "\n".join(
        [
            f"bank        {bank['name']}",
            f"category    {bank['category']}",
            f"action      {bank['action']}",
            f"enabled     {'yes' if bank['enabled'] else 'no'}",
            f"thresholds  {thresholds}",
            f"items       {bank['items']}",
            f"description {bank['description']}",
        ]
    )


@main.group("bank")
def bank_group() -> None:
    """Create, list, show, change and delete banks (named hash lists).

    \b
    Example:
        hashsvc bank create ncmec-hashes --category csam --description "NCMEC industry list"
        hashsvc bank list
    """


@bank_group.command("create")
@click.argument("name")
@click.option("--category", required=True, type=click.Choice(CATEGORIES), help="What the bank holds.")
@click.option("--action", type=click.Choice(ACTIONS), default="block", show_default=True, help="What a match does.")
@click.option("--description", default="", help="Free text: the list's origin, owner, licence.")
@click.option("--threshold", "thresholds", multiple=True, help="ALGORITHM=DISTANCE, e.g. pdq=31 (repeatable).")
@click.option("--disabled", is_flag=True, help="Create the bank disabled (its items do not match yet).")
@json_option
@backend_options
def bank_create(
    backend: Backend,
    name: str,
    category: str,
    action: str,
    description: str,
    thresholds: tuple[str, ...],
    disabled: bool,
    as_json: bool,
) -> None:
    """Create a bank.

    \b
    Example:
        hashsvc bank create ncmec-hashes --category csam --threshold pdq=31
    """
    fields: dict[str, Any] = {"name": name, "category": category, "action": action, "description": description}
    if thresholds:
        fields["thresholds"] = _thresholds(thresholds)
    if disabled:
        fields["enabled"] = False
    bank = backend.create_bank(fields)
    emit(as_json, bank, f"created bank {bank['name']} ({bank['category']}, {bank['action']})")


@bank_group.command("list")
@json_option
@backend_options
def bank_list(backend: Backend, as_json: bool) -> None:
    """List banks with their item counts.

    \b
    Example:
        hashsvc bank list
        hashsvc bank list --json | jq -r '.[].name'
    """
    banks = backend.list_banks()
    rows = [(b["name"], b["category"], b["action"], "yes" if b["enabled"] else "no", b["items"]) for b in banks]
    emit(as_json, banks, table(rows, ("NAME", "CATEGORY", "ACTION", "ENABLED", "ITEMS")))


@bank_group.command("show")
@click.argument("name")
@json_option
@backend_options
def bank_show(backend: Backend, name: str, as_json: bool) -> None:
    """Show one bank.

    \b
    Example:
        hashsvc bank show ncmec-hashes
    """
    bank = backend.get_bank(name)
    emit(as_json, bank, _bank_text(bank))


@bank_group.command("update")
@click.argument("name")
@click.option("--category", type=click.Choice(CATEGORIES))
@click.option("--action", type=click.Choice(ACTIONS))
@click.option("--description")
@click.option("--threshold", "thresholds", multiple=True, help="ALGORITHM=DISTANCE, e.g. pdq=24 (repeatable).")
@click.option("--enable/--disable", "enabled", default=None, help="Turn matching of the whole bank on or off.")
@json_option
@backend_options
def bank_update(
    backend: Backend,
    name: str,
    category: str | None,
    action: str | None,
    description: str | None,
    thresholds: tuple[str, ...],
    enabled: bool | None,
    as_json: bool,
) -> None:
    """Change a bank: action, thresholds, description, or disable it as a whole.

    \b
    Example:
        hashsvc bank update ncmec-hashes --action review
        hashsvc bank update ncmec-hashes --disable
    """
    fields: dict[str, Any] = {
        k: v for k, v in {"category": category, "action": action, "description": description}.items() if v is not None
    }
    if thresholds:
        fields["thresholds"] = _thresholds(thresholds)
    if enabled is not None:
        fields["enabled"] = enabled
    if not fields:
        raise click.UsageError("nothing to change: give at least one option")
    bank = backend.update_bank(name, fields)
    emit(as_json, bank, _bank_text(bank))


@bank_group.command("delete")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@json_option
@backend_options
def bank_delete(backend: Backend, name: str, yes: bool, as_json: bool) -> None:
    """Delete a bank with all its items (for good; `bank update --disable` is reversible).

    \b
    Example:
        hashsvc bank delete old-test-bank --yes
    """
    if not yes:
        count = backend.get_bank(name)["items"]
        click.confirm(f"delete bank {name} and its {count} items?", abort=True, err=True)
    backend.delete_bank(name)
    emit(as_json, {"deleted": name}, f"deleted bank {name}")
