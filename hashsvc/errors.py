"""The one exception hierarchy: every domain error knows how it surfaces.

`code` is machine-readable and stable (clients branch on it), `message` is for humans, `http_status` is what
the API answers and `exit_code` what the CLI exits with. Only the API and the CLI translate these; the core
raises them and never imports Flask or click.
"""

from __future__ import annotations

from typing import ClassVar


class HashsvcError(Exception):
    """Base class: a failure that a caller caused or can act on."""

    code: str = "error"
    http_status: int = 400
    exit_code: int = 1

    def __init__(self, message: str, *, code: str | None = None, http_status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if http_status is not None:
            self.http_status = http_status

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


class MediaError(HashsvcError):
    """Untrusted image bytes were rejected: too large, not an image, corrupt, too slow to decode...

    Codes: `empty`, `too_large`, `too_many_pixels`, `too_expensive` (decoding would take more memory than
    allowed), `unsupported_format`, `corrupt`, `decode_timeout`; for videos also `video_too_long` and
    `too_many_frames`.
    """

    code = "corrupt"
    http_status = 422

    _STATUS: ClassVar[dict[str, int]] = {
        "empty": 400,
        "too_large": 413,
        "too_many_pixels": 413,
        "too_expensive": 413,
        "unsupported_format": 415,
        "corrupt": 422,
        "decode_timeout": 422,
        "video_too_long": 413,
        "too_many_frames": 413,
    }

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message, code=code, http_status=self._STATUS.get(code, 422))


class InvalidHashError(HashsvcError):
    """A hash a client sent is malformed (bad hex, wrong length, unknown algorithm)."""

    code = "invalid_hash"
    http_status = 400


class NotFoundError(HashsvcError):
    code = "not_found"
    http_status = 404


class ConflictError(HashsvcError):
    code = "conflict"
    http_status = 409


class ValidationError(HashsvcError):
    code = "invalid_request"
    http_status = 400


class NotReadyError(HashsvcError):
    code = "not_ready"
    http_status = 503


class UnauthorizedError(HashsvcError):
    """No API key, or one that is unknown or revoked."""

    code = "unauthorized"
    http_status = 401


class ForbiddenError(HashsvcError):
    """A valid key without the scope the operation needs."""

    code = "forbidden"
    http_status = 403


class OverloadedError(HashsvcError):
    """At capacity: the client should retry after the Retry-After delay."""

    code = "overloaded"
    http_status = 503


class RateLimitedError(HashsvcError):
    """The key has spent its request budget: retry after `retry_after_s` whole seconds (the Retry-After header)."""

    code = "rate_limited"
    http_status = 429

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = max(1, retry_after_s)
