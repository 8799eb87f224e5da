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


def _bearer_token() -> str:
    """The key from `Authorization: Bearer <key>`; a header in another shape gets an error that says what is wrong."""
    header = request.headers.get("Authorization", "").strip()
    if not header:
        raise UnauthorizedError("missing API key: send 'Authorization: Bearer <key>'")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer":
        # The commonest mistake is the bare key; say so without echoing the header (it may be a real secret).
        named = scheme.isalpha() and len(scheme) <= 16 and token  # a scheme word such as Basic or Token
        hint = f"the scheme is {scheme!r}, not 'Bearer'" if named else "the header holds no 'Bearer ' prefix"
        raise UnauthorizedError(f"malformed Authorization header: {hint}; send 'Authorization: Bearer <key>'")
    if not token.strip():
        raise UnauthorizedError("empty API key: send 'Authorization: Bearer <key>'")
    return token.strip()


def require(scope: str) -> Callable[[F], F]:
    """Let the view run only for a valid, unrevoked key that carries `scope`; sets `g.key` and `g.actor`."""

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            token = _bearer_token()
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
