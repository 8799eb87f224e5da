"""The `hashsvc` command: a thin shell over the service layer and the HTTP client.

Commands parse options, call one use case (locally through `Service` and the service modules, or remotely
through `hashsvc.client`) and print. Errors become a message and an exit code in one place (`app.py`).
"""

from hashsvc.cli import (  # noqa: F401 - importing registers the commands
    aftermatch,
    audit,
    banks,
    basic,
    bench,
    exchanges,
    items,
    keys,
    scan,
    transfer,
    video,
)
from hashsvc.cli.app import main

__all__ = ["main"]
