"""Running the API under gunicorn, configured from Settings (no gunicorn config file to keep in sync)."""

from __future__ import annotations

import os
import tempfile
from typing import Any

from gunicorn.app.base import BaseApplication

from hashsvc.config import Settings


class _Gunicorn(BaseApplication):  # type: ignore[misc]
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        super().__init__()

    def load_config(self) -> None:
        options: dict[str, Any] = {
            "bind": f"{self.settings.host}:{self.settings.port}",
            "workers": self.settings.workers,
            "threads": self.settings.threads,
            "worker_class": "gthread",
            "timeout": int(self.settings.request_timeout_s),
            "graceful_timeout": 10,
            "accesslog": None,
            # Bounded request lines and headers: a hostile client cannot make the parser hold much.
            "limit_request_line": 8190,
            "limit_request_fields": 100,
            "limit_request_field_size": 8190,
        }
        for key, value in options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        # Runs in each worker after the fork: every worker owns its store connections, index and threads.
        from hashsvc.api import create_app

        return create_app(self.settings)


def serve(settings: Settings) -> None:
    """Serve until interrupted. Metrics of all workers are aggregated through a shared folder."""
    if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="hashsvc-metrics-")
    _Gunicorn(settings).run()
