"""The exchange types: which config and credentials each needs, and how to build its client."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from hashsvc.exchanges.base import Client
from hashsvc.exchanges.ncmec import NcmecClient
from hashsvc.exchanges.stopncii import StopNciiClient
from hashsvc.exchanges.tat import TatClient
from hashsvc.exchanges.threatexchange import ThreatExchangeClient
from hashsvc.exchanges.url import Parser, UrlClient
from hashsvc.netguard import Guard


@dataclass(frozen=True)
class ExchangeType:
    name: str
    description: str
    credentials: tuple[str, ...]  # required credential fields
    optional_credentials: tuple[str, ...] = ()
    config: tuple[str, ...] = ("base_url",)  # accepted config fields
    feedback: bool = False  # whether the partner's API takes false-positive feedback


TYPES: dict[str, ExchangeType] = {
    t.name: t
    for t in (
        ExchangeType("ncmec", "NCMEC hash sharing API v2", ("username", "password"), feedback=True),
        ExchangeType(
            "stopncii",
            "StopNCII.org hash exchange",
            ("subscription_key", "fetch_function_key"),
            ("feedback_function_key",),
            feedback=True,
        ),
        ExchangeType("tat", "Tech Against Terrorism hash list", ("username", "password")),
        ExchangeType(
            "threatexchange",
            "Meta ThreatExchange threat_updates",
            ("access_token",),
            config=("base_url", "privacy_group"),
        ),
        ExchangeType("url", "a hash list at an HTTP(S) URL", (), ("bearer",), config=("url", "format", "algorithm")),
    )
}


def make_client(
    kind: str,
    config: Mapping[str, Any],
    credentials: Mapping[str, str],
    *,
    timeout_s: float,
    parse: Parser,
    guard: Guard,
    clock: Callable[[], float] = time.time,
    parse_process: bool = True,
) -> Client:
    """The client of an exchange type. `guard` checks every address it connects to (hashsvc.netguard);
    `clock` ends the time ranges of NCMEC and ThreatExchange (tests); `parse_process` lets a large NCMEC sync
    parse its pages in a child process (hashsvc.exchanges.offload)."""
    if kind == "url":
        return UrlClient(config, credentials, timeout_s=timeout_s, parse=parse, guard=guard)
    if kind == "ncmec":
        return NcmecClient(
            config, credentials, timeout_s=timeout_s, guard=guard, clock=clock, parse_process=parse_process
        )
    if kind == "threatexchange":
        return ThreatExchangeClient(config, credentials, timeout_s=timeout_s, guard=guard, clock=clock)
    if kind == "stopncii":
        return StopNciiClient(config, credentials, timeout_s=timeout_s, guard=guard)
    return TatClient(config, credentials, timeout_s=timeout_s, guard=guard)
