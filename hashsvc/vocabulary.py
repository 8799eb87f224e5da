"""Names the command line offers as choices, kept in a module with no imports of its own.

`hashsvc --help` builds every command's options, so the choices must not drag in the store (SQLAlchemy) or the
service layer (numba) just to list a few words. The store and the service import these names from here.
"""

from __future__ import annotations

CATEGORIES = ("csam", "terror", "ncii", "other")  # what a bank holds
ACTIONS = ("block", "review", "log", "allow")  # a bank's action on a match; allow: an allowlist bank (docs/workflow.md)
SCOPES = ("match", "curate", "admin", "metrics")  # explicit: a key holds exactly the scopes it was given
REVIEW_RESOLUTIONS = ("confirmed", "false_positive", "dismissed")  # how an analyst closes a review
WEBHOOK_TYPES = ("block", "review", "retrohunt_hit", "quarantine", "review_resolved")  # events a webhook can want
EXCHANGE_TYPES = ("ncmec", "stopncii", "tat", "threatexchange", "url")  # partner feeds (hashsvc.exchanges)
VPDQ_SIGNAL_TYPE = "vpdq"  # python-threatexchange's (and HMA's) name for a vPDQ signal in a list
LIST_FORMATS = ("csv", "jsonl", "hex", "threatexchange")  # hash-list files `hashsvc import` / `export` read and write
