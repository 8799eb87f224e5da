"""Store-specific errors, subclasses of the project's hierarchy so that the API and CLI surface them unchanged."""

from __future__ import annotations

from hashsvc.errors import HashsvcError


class SchemaOutOfDateError(HashsvcError):
    """The database has no schema, or an older one: run `hashsvc.store.upgrade(url)` (or `alembic upgrade head`)."""

    code = "store_schema_out_of_date"
    http_status = 503
    exit_code = 3
