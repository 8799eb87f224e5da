"""Real `hashsvc serve` processes (granian) for replica and end-to-end tests, spoken to over loopback HTTP."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

HASHSVC = str(Path(sys.executable).with_name("hashsvc"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LiveServer:
    def __init__(self, database_url: str, data_dir: Path, **settings: object) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "HASHSVC_DATABASE_URL": database_url,
            "HASHSVC_DATA_DIR": str(data_dir),
            "HASHSVC_PORT": str(self.port),
            "HASHSVC_WORKERS": "1",
            "HASHSVC_POLL_INTERVAL_S": "0.1",
            **{f"HASHSVC_{k.upper()}": str(v) for k, v in settings.items()},
        }
        self.env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        self.log = data_dir / f"server-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> LiveServer:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            self.process = subprocess.Popen([HASHSVC, "serve"], env=self.env, stdout=log, stderr=log)
        self.wait_for("/healthz", 30)
        return self

    def __enter__(self) -> LiveServer:
        """Start unless started, and wait until ready (the index loaded); leaving the block stops the server.

        Replicas start together with `with LiveServer(...).start() as a, LiveServer(...).start() as b:`.
        """
        if self.process is None:
            self.start()
        try:
            self.wait_for("/readyz", 60)
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def wait_for(self, path: str, timeout_s: float, status: int = 200) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()[-2000:]}")
            try:
                if self.request("GET", path)[0] == status:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"{path} did not answer {status} within {timeout_s} s; log: {self.log.read_text()[-2000:]}")

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        token: str | None = None,
        data: bytes | None = None,
        content_type: str = "application/json",
    ) -> tuple[int, Any]:
        payload = data if data is not None else (json.dumps(body).encode() if body is not None else None)
        headers = {"Content-Type": content_type} if payload is not None else {}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        request = urllib.request.Request(self.url + path, data=payload, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                raw = response.read()
                status = response.status
        except urllib.error.HTTPError as error:
            raw = error.read()
            status = error.code
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, raw.decode(errors="replace")
