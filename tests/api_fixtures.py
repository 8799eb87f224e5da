"""API fixtures: a real app over a real SQLite store in tmp_path, driven through Flask's test client.

The index is loaded synchronously and tests call `sync()` after a change instead of waiting for the tail
thread, so that every test is deterministic; the replica tests exercise the real tailing.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from hashsvc.api import create_app
from hashsvc.config import Settings, load_settings
from hashsvc.service.service import Service
from hashsvc.store import Store, upgrade


@dataclass
class Api:
    app: Flask
    client: FlaskClient
    service: Service
    keys: dict[str, str]  # scope -> token

    def headers(self, scope: str = "admin") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[scope]}"}

    def sync(self) -> None:
        self.service.live.catch_up()

    def upload(self, path: str, data: bytes, scope: str = "match", **fields: str) -> Any:
        form: dict[str, Any] = {"image": (io.BytesIO(data), "upload.jpg"), **fields}
        return self.client.post(path, data=form, headers=self.headers(scope), content_type="multipart/form-data")

    def post_json(self, path: str, body: Any, scope: str = "curate") -> Any:
        return self.client.post(path, json=body, headers=self.headers(scope))


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    return load_settings({"data_dir": str(tmp_path / "data"), "snapshot_interval_s": 0, **overrides}, environ={})


@pytest.fixture
def make_api(tmp_path: Path) -> Iterator[Callable[..., Api]]:
    services: list[Service] = []

    def make(**overrides: Any) -> Api:
        settings = make_settings(tmp_path, **overrides)
        Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
        upgrade(settings.resolved_database_url)
        keys = {}
        with Store(settings.resolved_database_url) as store:
            for scope in ("match", "curate", "admin"):
                if not any(key.name == f"{scope}-key" for key in store.list_api_keys()):
                    keys[scope] = store.create_api_key(f"{scope}-key", [scope], actor="test")[1]
        service = Service(settings)
        services.append(service)
        service.live.load()
        app = create_app(settings, service=service, background=False)
        return Api(app, app.test_client(), service, keys)

    yield make
    for service in services:
        service.close()


@pytest.fixture
def api(make_api: Callable[..., Api]) -> Api:
    return make_api()
