"""Console page "Test an image" (scope `match`): what the service would decide for an upload, and why.

The image is read into memory, matched through `Service.match_image` exactly as POST /v1/match does (the key's
rate, fair slot, probe screening and disclosure all apply), and dropped: it is not stored, not logged and never
sent back. The answer shows the decision, each match and the query's own hashes. No event is recorded: a test
by an analyst is not an upload and must not open a review or fire a webhook.
"""

from __future__ import annotations

from flask import request

from hashsvc.api.context import service
from hashsvc.api.limits import caller, charge, key_slot
from hashsvc.ui import forms
from hashsvc.ui.blueprint import bp, page
from hashsvc.ui.session import requires


@bp.route("/test", methods=["GET", "POST"])
@requires("match")
def test_image() -> tuple[str, int]:
    if request.method == "GET":
        return page("test.html", result=None, title="Test an image")
    data = forms.upload("image")
    charge(1)
    with key_slot():
        result = service().match_image(data, caller(), record=False)
    del data
    return page("test.html", result=result, hashes=_hash_rows(result.get("hashes", {})), title="Test an image")


def _hash_rows(hashes: dict[str, object]) -> list[tuple[str, str, object]]:
    """(algorithm, value, quality) per query hash, in a stable order."""
    rows = []
    for name, value in hashes.items():
        if isinstance(value, dict):
            rows.append((name, str(value.get("value")), value.get("quality")))
        elif isinstance(value, list):  # a video's vPDQ frames: their count, not thousands of rows
            rows.append((name, f"{len(value)} frame hashes", None))
        else:
            rows.append((name, str(value), None))
    return rows
