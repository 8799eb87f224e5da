"""The one way an endpoint reads a JSON request body (see hashsvc.json_input for what it guards against)."""

from __future__ import annotations

from typing import Any

from flask import request

from hashsvc import json_input
from hashsvc.errors import ValidationError


def json_body() -> Any:
    """The parsed body; 400 invalid_request if it is not JSON, not parseable, or nested too deep."""
    if not request.is_json:
        raise ValidationError("the request body must be JSON (Content-Type: application/json)")
    return json_input.loads(request.get_data(cache=False))
