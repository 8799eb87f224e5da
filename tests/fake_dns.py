"""Answers for chosen host names in place of DNS (tests have no network): `answer(monkeypatch, {name: [addresses]})`.

Each lookup of a name takes the next address of its list, and the last one stays: ["93.184.215.14", "127.0.0.1"]
is a name that answers a public address once and loopback from then on (DNS rebinding). Other names resolve as usual.
"""

from __future__ import annotations

import socket
from typing import Any

import pytest


def answer(monkeypatch: pytest.MonkeyPatch, names: dict[str, list[str]]) -> list[str]:
    """Patch socket.getaddrinfo; return the list of names looked up, in order."""
    real = socket.getaddrinfo
    lookups: list[str] = []

    def getaddrinfo(host: str, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in names:
            return real(host, port, *args, **kwargs)
        lookups.append(host)
        queue = names[host]
        address = queue.pop(0) if len(queue) > 1 else queue[0]
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        return [(family, socket.SOCK_STREAM, 6, "", (address, int(port or 0)))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return lookups
