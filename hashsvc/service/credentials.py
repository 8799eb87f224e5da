"""Partner credentials encrypted at rest with Fernet (AES-128-CBC + HMAC-SHA256, from `cryptography`).

The keys come from HASHSVC_EXCHANGE_KEY_FILE (one per line) or HASHSVC_EXCHANGE_KEY (comma-separated), newest
first: the first key encrypts, every key decrypts (MultiFernet), so a key is rotated by putting a new one in
front, running `hashsvc exchange rotate-credentials` (which re-encrypts every stored secret with it), then
dropping the old one. The store only ever sees tokens; the API and the CLI only ever say whether an exchange
has credentials.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from hashsvc.config import Settings
from hashsvc.errors import HashsvcError, ValidationError

MAX_CREDENTIALS_BYTES = 16 * 1024


class CredentialsKeyError(HashsvcError):
    """No key is configured, or none of the configured keys opens a stored secret."""

    code = "credentials_key"
    # The server is not set up to hold partner secrets: the request cannot succeed as things are (not a crash).
    http_status = 409


def new_key() -> str:
    return Fernet.generate_key().decode()


def _keys(settings: Settings) -> list[str]:
    text = settings.exchange_key.replace(",", "\n")
    if settings.exchange_key_file:
        try:
            text = Path(settings.exchange_key_file).read_text()
        except OSError as exc:
            raise CredentialsKeyError(f"cannot read HASHSVC_EXCHANGE_KEY_FILE: {exc.strerror}") from None
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


class Vault:
    """Encrypts and decrypts exchange credentials with the configured keys."""

    def __init__(self, settings: Settings) -> None:
        keys = _keys(settings)
        self._fernet: MultiFernet | None = None
        if keys:
            try:
                self._fernet = MultiFernet([Fernet(k.encode()) for k in keys])
            except ValueError:
                raise CredentialsKeyError(
                    "an exchange key is not a Fernet key (32 url-safe base64 bytes); make one with "
                    "`hashsvc exchange new-key`"
                ) from None

    def _require(self) -> MultiFernet:
        if self._fernet is None:
            raise CredentialsKeyError(
                "no key to encrypt partner credentials: set HASHSVC_EXCHANGE_KEY_FILE (see `hashsvc exchange new-key`)"
            )
        return self._fernet

    def encrypt(self, credentials: Mapping[str, str]) -> str:
        """Raises ValidationError (not an object of strings, too big), CredentialsKeyError."""
        if not isinstance(credentials, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in credentials.items()
        ):
            raise ValidationError("credentials must be a JSON object of strings")
        clear = json.dumps(dict(credentials)).encode()
        if len(clear) > MAX_CREDENTIALS_BYTES:
            raise ValidationError(f"credentials must be at most {MAX_CREDENTIALS_BYTES} bytes")
        return self._require().encrypt(clear).decode()

    def decrypt(self, token: str | None) -> dict[str, str]:
        if token is None:
            return {}
        try:
            return dict(json.loads(self._require().decrypt(token.encode())))
        except InvalidToken:
            raise CredentialsKeyError("none of the configured exchange keys opens these credentials") from None

    def rotate(self, token: str) -> str:
        """The same secret encrypted with the newest key."""
        try:
            return self._require().rotate(token.encode()).decode()
        except InvalidToken:
            raise CredentialsKeyError("none of the configured exchange keys opens these credentials") from None
