"""Per-key limits as the views apply them: the key's rate (429 rate_limited) and its fair admission slot.

Both read the key that `auth.require` put in `g.key`, with the key's own overrides or the server's settings.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from flask import Flask, Response, g

from hashsvc.api.context import admission, rate_limiter, service
from hashsvc.api.errors import error_response
from hashsvc.errors import RateLimitedError
from hashsvc.service.disclosure import Caller
from hashsvc.store import ApiKey


def charge(cost: int = 1) -> None:
    """Spend `cost` of the caller's queries (an image or a hash set is one), or raise RateLimitedError."""
    key: ApiKey = g.key
    settings = service().settings
    rate = key.rate_per_s if key.rate_per_s is not None else settings.key_rate_per_s
    burst = key.burst if key.burst is not None else settings.key_burst
    rate_limiter().charge(key.name, cost, rate, burst)


@contextmanager
def key_slot() -> Iterator[None]:
    """One admission slot for the caller's key (fair between keys; see hashsvc.api.admission)."""
    key: ApiKey = g.key
    with admission().slot(key.name, key.max_inflight):
        yield


def caller() -> Caller:
    """The caller as the service's match methods want it: the key, and the client's address for the audit log."""
    return Caller(g.key, g.actor.remote_addr)


def init_app(app: Flask) -> None:
    @app.errorhandler(RateLimitedError)
    def rate_limited(exc: RateLimitedError) -> Response:
        # More specific than the generic HashsvcError handler: Flask picks the nearest class in the MRO.
        return error_response(429, exc.code, exc.message, {"Retry-After": str(exc.retry_after_s)})
