"""API keys: `Authorization: Bearer <key>` on every endpoint but health, readiness, metrics and the spec."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from flask import g, request

from hashsvc.api.context import service
from hashsvc.errors import ForbiddenError, UnauthorizedError
from hashsvc.store import Actor

F = TypeVar("F", bound=Callable[..., Any])


def _bearer_token() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def require(scope: str) -> Callable[[F], F]:
    """Let the view run only for a valid, unrevoked key that carries `scope`; sets `g.key` and `g.actor`."""

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            token = _bearer_token()
            if token is None:
                raise UnauthorizedError("missing API key: send 'Authorization: Bearer <key>'")
            key = service().authenticate(token)
            if key is None:
                raise UnauthorizedError("unknown or revoked API key")
            if not key.allows(scope):
                raise ForbiddenError(f"this key lacks the '{scope}' scope")
            g.key = key  # its disclosure and limits (hashsvc.api.limits)
            g.actor = Actor(key.name, request.remote_addr)
            return view(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate
