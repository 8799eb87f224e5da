"""Console sign-in: an API key exchanged for a signed session cookie, checked again on every request.

The cookie (Flask's signed session) holds the key encrypted with a key derived from the console secret, never in
clear: it is re-checked with `Service.authenticate` on every request, the same rule as the API's bearer tokens,
so a revoked, expired or rotated-out key signs its sessions out (within the service's key cache of 2 s on other
processes). Sessions also end after `console_idle_s` without use and `console_session_s` after sign-in.

CSRF: every session, even before sign-in, carries a random token; every form sends it back in `csrf_token`, and
a POST without the session's token is refused (400) before any view runs. An own 20 lines rather than
Flask-WTF: the console has no WTForms forms, and the cookie is SameSite=Strict anyway (defence in depth).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from typing import Any, TypeVar

from cryptography.fernet import Fernet, InvalidToken
from flask import Flask, current_app, g, redirect, request, session, url_for
from flask.sessions import SecureCookieSessionInterface
from werkzeug.exceptions import BadRequest

from hashsvc.api.context import service
from hashsvc.config import Settings
from hashsvc.errors import ForbiddenError
from hashsvc.store import Actor, ApiKey
from hashsvc.ui.secret import session_secret

F = TypeVar("F", bound=Callable[..., Any])
COOKIE = "hashsvc_console"
CSRF_FIELD = "csrf_token"
EXTENSION = "hashsvc.console"


def clock() -> float:
    """Seconds since the epoch: session ages are wall-clock times kept in the cookie (tests move this clock)."""
    return time.time()


class CsrfError(BadRequest):
    description = "This form was sent without its security token (or with an old one). Reload the page and retry."


class ConsoleSessions(SecureCookieSessionInterface):
    """Flask's signed cookie, marked Secure when the request came over TLS (a plain-HTTP loopback deployment
    still gets a cookie the browser sends back), signed with the console secret, read on first use."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return request.is_secure or bool(app.config["SESSION_COOKIE_SECURE"])

    def get_signing_serializer(self, app: Flask) -> Any:
        if not app.secret_key:
            app.secret_key = app.extensions[EXTENSION].secret
        return super().get_signing_serializer(app)


class Sessions:
    """The console's secrets and time limits. The secret file is read (or made) when a console page is first
    asked for, not when the app is built: commands that build the app without serving it write nothing."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        if settings.console_secret_key:
            session_secret(settings)  # a configured secret that is too short fails at start-up
        self.idle_s = settings.console_idle_s
        self.max_s = settings.console_session_s

    @functools.cached_property
    def secret(self) -> bytes:
        return session_secret(self.settings)

    @functools.cached_property
    def fernet(self) -> Fernet:
        """Encrypts the key inside the cookie, with a key of its own derived from the same secret."""
        derived = hashlib.sha256(b"hashsvc console key encryption\0" + self.secret).digest()
        return Fernet(base64.urlsafe_b64encode(derived))


def init_app(app: Flask, settings: Settings) -> None:
    app.extensions[EXTENSION] = Sessions(settings)
    app.session_interface = ConsoleSessions()
    app.config.update(
        SESSION_COOKIE_NAME=COOKIE,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_PATH="/ui",
        PERMANENT_SESSION_LIFETIME=int(settings.console_session_s),
    )


def _sessions() -> Sessions:
    return current_app.extensions[EXTENSION]  # type: ignore[no-any-return]


def csrf_token() -> str:
    if CSRF_FIELD not in session:
        session[CSRF_FIELD] = secrets.token_urlsafe(32)
    return str(session[CSRF_FIELD])


def load() -> None:
    """Before every console request: refuse a POST without its CSRF token, then find the signed-in key."""
    g.key, g.actor, g.signed_out = None, None, None
    if request.method == "POST":
        sent = request.form.get(CSRF_FIELD, "")
        expected = session.get(CSRF_FIELD)
        if not expected or not hmac.compare_digest(str(sent), str(expected)):
            raise CsrfError()
    sealed = session.get("key")
    if not sealed:
        return
    now = clock()
    sessions = _sessions()
    if now - session.get("seen", 0) > sessions.idle_s or now - session.get("since", 0) > sessions.max_s:
        _end("expired")
        return
    try:
        token = sessions.fernet.decrypt(sealed.encode()).decode()
    except (InvalidToken, UnicodeDecodeError):
        _end("expired")
        return
    key = service().authenticate(token)
    if key is None:
        _end("key")  # revoked, expired, or an old secret past its rotation grace
        return
    g.key, g.actor = key, Actor(key.name, request.remote_addr)
    session["seen"] = now


def _end(reason: str) -> None:
    session.clear()
    g.signed_out = reason


def sign_in(token: str) -> ApiKey | None:
    """Start a session for this key if it is valid; a new session (and CSRF token) either way."""
    key = service().authenticate(token.strip())
    if key is None:
        return None
    now = clock()
    session.clear()  # no fixation: nothing from before sign-in survives
    session.permanent = True  # the cookie carries Max-Age = console_session_s
    session.update(key=_sessions().fernet.encrypt(token.strip().encode()).decode(), since=now, seen=now)
    csrf_token()
    return key


def sign_out() -> None:
    session.clear()


def requires(scope: str) -> Callable[[F], F]:
    """Let a console view run only for a signed-in key with `scope`: else to the sign-in page, or 403."""

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if g.key is None:
                wanted = request.full_path if request.method == "GET" else None
                return redirect(url_for("ui.login", next=wanted, why=g.signed_out))
            if not g.key.allows(scope):
                raise ForbiddenError(f"your key lacks the '{scope}' scope this page needs")
            return view(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def can(scope: str) -> bool:
    key: ApiKey | None = g.get("key")
    return key is not None and key.allows(scope)
