"""Driving the console through Flask's test client as a browser would: fetch a page, take its CSRF token,
post the form with it."""

from __future__ import annotations

import re
from typing import Any

from flask.testing import FlaskClient

TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


class Console:
    def __init__(self, client: FlaskClient) -> None:
        self.client = client

    def csrf(self, path: str = "/ui/login") -> str:
        found = TOKEN.search(self.client.get(path).get_data(as_text=True))
        assert found, f"no CSRF token on {path}"
        return found.group(1)

    def sign_in(self, key: str) -> Any:
        return self.client.post("/ui/login", data={"key": key, "csrf_token": self.csrf()})

    def post(
        self, path: str, data: dict[str, Any] | None = None, *, token_from: str = "/ui/login", **options: Any
    ) -> Any:
        """POST a form with the session's CSRF token (any page carries the same one)."""
        return self.client.post(path, data={**(data or {}), "csrf_token": self.csrf(token_from)}, **options)

    def text(self, path: str, **options: Any) -> str:
        return self.client.get(path, **options).get_data(as_text=True)
