"""Partner hash feeds: one small client per partner API, all speaking the same `Entry`/`Page` language.

This package is a lower layer beside `store`: it knows HTTP and the partners' wire formats, never the store or
the service. `hashsvc.service.exchanges` drives a client page by page and writes each page, with its
checkpoint, in one store transaction.
"""

from hashsvc.exchanges.base import (
    Client,
    Entry,
    FeedError,
    MalformedFeedError,
    Page,
    PermanentFeedError,
    RateLimitedFeedError,
    TransientFeedError,
)
from hashsvc.exchanges.registry import TYPES, ExchangeType, make_client

__all__ = [
    "TYPES",
    "Client",
    "Entry",
    "ExchangeType",
    "FeedError",
    "MalformedFeedError",
    "Page",
    "PermanentFeedError",
    "RateLimitedFeedError",
    "TransientFeedError",
    "make_client",
]
