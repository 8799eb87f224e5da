"""Settings: declared once, parsed and validated at start-up, failing fast on bad values.

Precedence: defaults < `HASHSVC_*` environment variables < explicit overrides (CLI flags, tests). Every
setting is listed in `SETTINGS` with its type, default and help; the README's configuration table is made
from the same list, and a test checks that it stays documented.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hashsvc.errors import ValidationError


@dataclass(frozen=True)
class Settings:
    data_dir: str = field(default="index", metadata={"help": "Folder for the embedded store and index snapshots."})
    database_url: str = field(
        default="",
        metadata={"help": "SQLAlchemy URL of the store; empty means sqlite:///<data_dir>/hashsvc.db."},
    )
    max_upload_bytes: int = field(
        default=50 * 1024 * 1024, metadata={"help": "Largest accepted upload, in bytes (50 MiB)."}
    )
    max_pixels: int = field(
        default=100_000_000,
        metadata={"help": "Largest image, in pixels (width x height from the header, checked before decoding)."},
    )
    max_frames: int = field(
        default=1000,
        metadata={"help": "Most frames decoded when every k-th frame is asked for; the first frame is always hashed."},
    )
    decode_timeout_s: float = field(
        default=5.0, metadata={"help": "Wall-clock budget for decoding one image, in seconds."}
    )
    max_decode_mb: int = field(
        default=256,
        metadata={
            "help": "Peak memory decoding one image may take, estimated from its header before decoding, in MiB; "
            "more is 413 too_expensive."
        },
    )
    sandbox: bool = field(
        default=True,
        metadata={
            "help": "Decode and hash uploads in a pool of worker processes with hard limits. 0 hashes in the "
            "calling process: for tests and embedding only, never for serving untrusted uploads."
        },
    )
    sandbox_workers: int = field(
        default=0, metadata={"help": "Sandbox worker processes per serving process; 0 = HASHSVC_MAX_INFLIGHT."}
    )
    sandbox_memory_mb: int = field(
        default=1024,
        metadata={
            "help": "Address-space limit (RLIMIT_AS) of each sandbox worker, in MiB; a warm worker maps about "
            "315 MiB before its first job."
        },
    )
    sandbox_recycle_mb: int = field(
        default=256,
        metadata={"help": "A sandbox worker whose resident memory exceeds this after a job is replaced, in MiB."},
    )

    work_size: int = field(
        default=400,
        metadata={"help": "Shorter side big images are decoded down to before hashing; 0 = full resolution."},
    )
    index_crops: str = field(
        default="95,90,80",
        metadata={
            "help": "Crops stored with an item added from an image, as % of each side kept, each at the centre and "
            "in the 4 corners (3 sizes = 15 extra PDQ hashes per item; with any, the centred square too); "
            "empty for none.",
            "parse": "percentages",
        },
    )
    pixel_rules: str = field(
        default="hashsvc",
        metadata={
            "help": "'hashsvc' (composite alpha on white, scale 16-bit) or 'threatexchange' (its conversions).",
            "choices": ("hashsvc", "threatexchange"),
        },
    )
    poll_interval_s: float = field(
        default=0.25, metadata={"help": "How often each serving process reads the change log, in seconds."}
    )
    fresh_read_timeout_s: float = field(
        default=2.0,
        metadata={
            "help": "A match first applies every change the store had committed when it arrived (an item added "
            "just before, through any replica, matches at once), waiting at most this many seconds; 0 = no check "
            "(a change is then seen within HASHSVC_POLL_INTERVAL_S)."
        },
    )
    snapshot_interval_s: float = field(
        default=300.0,
        metadata={"help": "How often a serving process writes index snapshots (0 = never), in seconds."},
    )
    host: str = field(default="127.0.0.1", metadata={"help": "Address `hashsvc serve` binds to."})
    port: int = field(default=8080, metadata={"help": "Port `hashsvc serve` listens on."})
    workers: int = field(
        default=2, metadata={"help": "Server worker processes (each holds its own index and sandbox)."}
    )
    threads: int = field(
        default=8, metadata={"help": "Threads per worker process that run complete requests through the app."}
    )
    header_timeout_s: float = field(
        default=10.0,
        metadata={"help": "A client must send a request's headers within this many seconds (else 408)."},
    )
    max_header_bytes: int = field(
        default=65536, metadata={"help": "Largest request line plus headers, in bytes (else 414 or 431)."}
    )
    body_timeout_s: float = field(
        default=60.0, metadata={"help": "A request body must arrive whole within this many seconds (else 408)."}
    )
    min_body_rate: int = field(
        default=65536,
        metadata={"help": "After 2 s, a request body must keep arriving at this many bytes/s on average (else 408)."},
    )
    max_buffered_mb: int = field(
        default=512,
        metadata={"help": "Request bodies one process may hold while they arrive, in MiB (beyond: 503)."},
    )
    max_connections: int = field(
        default=1024, metadata={"help": "Requests one worker process handles at once, slow ones included."}
    )
    max_inflight: int = field(
        default=2,
        metadata={"help": "Requests one process hashes or matches at once; more wait for a slot (see below)."},
    )
    queue_timeout_s: float = field(
        default=0.25,
        metadata={"help": "How long a request waits for a slot before the answer is 503 with Retry-After."},
    )
    key_rate_per_s: float = field(
        default=20000.0,
        metadata={"help": "Queries per second one API key may make, per process (an image or a hash set is one)."},
    )
    key_burst: int = field(
        default=20000,
        metadata={"help": "Queries a key may make at once before its rate applies (20 full batches of hash sets)."},
    )
    key_max_inflight: int = field(
        default=0,
        metadata={"help": "Slots one key may hold per process; 0 = any free slot, its fair share when others wait."},
    )
    fair_share_window_s: float = field(
        default=2.0,
        metadata={"help": "A key counts as active for fair sharing this long after its last request, in seconds."},
    )
    probe_radius_pdq: int = field(
        default=16,
        metadata={"help": "A query whose PDQ is 1 to this many bits from an earlier matched query probes it."},
    )
    probe_radius_short: int = field(
        default=4, metadata={"help": "The same radius for pHash and dHash (64 bits)."}
    )
    probe_budget: int = field(
        default=8,
        metadata={"help": "Probes of one matched query a key may make before its answers are frozen and audited."},
    )
    probe_window_s: float = field(
        default=86400.0,
        metadata={"help": "How long a key's matched queries and flags are remembered after their last use, in s."},
    )
    probe_anchors: int = field(
        default=1024, metadata={"help": "Matched queries remembered per key and process (oldest unflagged go first)."}
    )
    request_log: bool = field(
        default=True,
        metadata={"help": "One JSON line per request on stderr (id, key name, endpoint, status, decision, time)."},
    )

    events_retention_days: float = field(
        default=90.0,
        metadata={"help": "Match events (and resolved reviews) older than this are pruned in the background, in days."},
    )
    events_allow_sample: float = field(
        default=0.0,
        metadata={"help": "Share of `allow` decisions recorded as events too (0 to 1); block and review always are."},
    )
    # 0.25 s, not 0.05: every commit makes every other connection to a SQLite store drop its page cache, and the
    # writer pays a fixed cost per commit. Single lookups that all matched cost 1.13-1.14x the server's CPU with
    # recording on at 0.05 s, 1.07x at 0.25 s (side by side, docs/workflow.md); the price is a SIGKILL losing up
    # to 0.25 s of events, and webhooks leaving up to 0.2 s later.
    events_flush_s: float = field(
        default=0.25,
        metadata={"help": "Events are written in batches at least this often, in seconds (off the request path)."},
    )
    events_buffer: int = field(
        default=10000,
        metadata={"help": "Events one process may hold before writing; when full, matching waits for the writer."},
    )
    review_claim_s: float = field(
        default=900.0,
        metadata={"help": "How long an analyst's claim on a review lasts before others may take it, in s."},
    )
    flood_max_contents: int = field(
        default=100,
        metadata={
            "help": "An item matched by more distinct content_ids (or uploads) than this within the flood window is "
            "quarantined: its blocks drop to review until an analyst re-arms it. 0 = off."
        },
    )
    flood_window_s: float = field(
        default=3600.0, metadata={"help": "The flood guard's window, in seconds."}
    )
    retrohunt_days: float = field(
        default=0.0,
        metadata={
            "help": "Keep the PDQ hashes (never images) of uploads this many days, and search newly added items "
            "against them (retro-hunt); 0 = off."
        },
    )
    webhook_retry_for_s: float = field(
        default=172800.0,
        metadata={"help": "A webhook delivery is retried with exponential backoff for this long, in s (48 h)."},
    )
    webhook_timeout_s: float = field(
        default=5.0,
        metadata={"help": "Time one webhook delivery attempt may take in all (connect, send, read the answer), in s."},
    )
    webhook_allowed_networks: str = field(
        default="",
        metadata={
            "help": "Comma-separated CIDRs webhooks may target although they are private, loopback or link-local "
            "(refused otherwise; cloud metadata addresses always are), e.g. 10.0.0.0/8."
        },
    )
    record_events: bool = field(
        default=True,
        metadata={
            "help": "Record match events (and so reviews, the flood guard's counts, webhooks and retained uploads); "
            "0 makes the service a pure lookup, as before events existed."
        },
    )
    lease_ttl_s: float = field(
        default=30.0,
        metadata={"help": "Background work (deliveries, pruning, retro-hunt) moves to another process this long "
                  "after its holder dies, in seconds."},
    )
    exchange_key: str = field(
        default="",
        metadata={
            "help": "Fernet keys that encrypt partner-feed credentials at rest, comma-separated: the first encrypts, "
            "the others still decrypt (rotation). Prefer HASHSVC_EXCHANGE_KEY_FILE."
        },
    )
    exchange_key_file: str = field(
        default="",
        metadata={"help": "File holding the exchange credential keys, one per line, newest first (mode 0600)."},
    )
    exchange_timeout_s: float = field(
        default=60.0, metadata={"help": "Timeout of each request to a partner feed, in seconds."}
    )
    exchange_allowed_networks: str = field(
        default="",
        metadata={
            "help": "Comma-separated CIDRs partner feeds may reach although they are private, loopback or link-local "
            "(refused otherwise, when added and at every connection; cloud metadata addresses always are)."
        },
    )
    exchange_batch_entries: int = field(
        default=50_000,
        metadata={
            "help": "A sync writes consecutive partner pages in one transaction, with the checkpoint, up to this many "
            "entries, and reads as many ahead meanwhile (fewer commits: a first sync is faster; an interrupted one "
            "redoes at most one batch; memory: about 1 KB per entry)."
        },
    )
    exchange_parse_process: str = field(
        default="auto",
        metadata={
            "help": "Parse a large NCMEC sync's pages in a child process: 'auto' (when a core is free for it: 2+ cores "
            "with SQLite, 3+ with PostgreSQL, whose backend keeps one busy), 'on' or 'off'.",
            "choices": ("auto", "on", "off"),
        },
    )
    exchange_lease_s: float = field(
        default=300.0,
        metadata={
            "help": "How long a sync holds an exchange without writing a page before another replica may take it, in s."
        },
    )
    exchange_max_backoff_s: float = field(
        default=6 * 3600.0, metadata={"help": "Longest wait after repeated failed syncs of one exchange, in seconds."}
    )
    exchange_scheduler: bool = field(
        default=False,
        metadata={
            "help": "Sync due partner feeds from every serving process (a lease in the store lets one process sync "
            "an exchange at a time, across replicas). Or run `hashsvc exchange run` beside the server."
        },
    )
    features: bool = field(
        default=True,
        metadata={
            "help": "Local-feature second stage (crop-robust): items added from images store up to 256 ORB features; "
            "an upload the hashes did not block is checked against them. 0 = off (nothing extracted or stored)."
        },
    )
    feature_budget_ms: float = field(
        default=50.0,
        metadata={"help": "Time the local-feature stage may spend verifying candidates per upload, in ms."},
    )
    feature_index: str = field(
        default="ivf",
        metadata={
            "help": "FAISS index of stored features: 'ivf' (inverted lists, exact below 65,536 descriptors), "
            "'hnsw' (graph) or 'flat' (exact scan); see docs/local-features.md.",
            "choices": ("ivf", "hnsw", "flat"),
        },
    )
    video_max_duration_s: float = field(
        default=600.0,
        metadata={"help": "Longest video or animation accepted, in seconds (declared or decoded; else 413)."},
    )
    video_max_pixels: int = field(
        default=3840 * 2160, metadata={"help": "Largest video frame, in pixels (from the header and every frame)."}
    )
    video_max_frames: int = field(
        default=40_000, metadata={"help": "Most frames decoded from one video (all of them, not only those hashed)."}
    )
    video_timeout_s: float = field(
        default=60.0, metadata={"help": "Wall-clock budget for decoding and hashing one video, in seconds."}
    )
    video_seconds_per_hash: float = field(
        default=1.0,
        metadata={"help": "vPDQ frame sampling: one frame hashed per this many seconds (vpdq's default 1; 0 = all)."},
    )
    console_secret_key: str = field(
        default="",
        metadata={
            "help": "Secret that signs the web console's session cookies; empty: one is generated into "
            "<data_dir>/console-secret (mode 0600) and shared by the processes that use that folder. Set the same "
            "value on every replica behind one load balancer."
        },
    )
    console_idle_s: float = field(
        default=1800.0, metadata={"help": "A console session unused this long is signed out, in seconds (30 min)."}
    )
    console_session_s: float = field(
        default=43200.0,
        metadata={"help": "A console session ends this long after sign-in whatever its use, in seconds (12 h)."},
    )

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir}/hashsvc.db"


ENV_PREFIX = "HASHSVC_"
SETTINGS: tuple[dataclasses.Field[Any], ...] = dataclasses.fields(Settings)


def _coerce(name: str, kind: type, raw: Any) -> Any:
    if isinstance(raw, kind) and not (kind is int and isinstance(raw, bool)):
        return raw
    try:
        if kind is bool:
            text = str(raw).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(text)
        value = kind(raw)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"setting {name}: cannot read {raw!r} as {kind.__name__}") from exc
    if kind in (int, float) and value < 0:
        raise ValidationError(f"setting {name}: must not be negative, got {raw!r}")
    return value


def load_settings(
    overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Build Settings from defaults, then `HASHSVC_*` variables, then `overrides` (None values ignored).

    Raises ValidationError naming the setting when a value cannot be parsed.
    """
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    types = {f.name: type(f.default) for f in SETTINGS}
    for name, kind in types.items():
        env_name = ENV_PREFIX + name.upper()
        if env_name in environ:
            values[name] = _coerce(env_name, kind, environ[env_name])
    for name, raw in (overrides or {}).items():
        if raw is None:
            continue
        if name not in types:
            raise ValidationError(f"unknown setting {name!r}")
        values[name] = _coerce(name, types[name], raw)
    for spec in SETTINGS:
        choices = spec.metadata.get("choices")
        if choices and spec.name in values and values[spec.name] not in choices:
            raise ValidationError(f"setting {spec.name}: {values[spec.name]!r} is not one of {', '.join(choices)}")
        if spec.metadata.get("parse") == "percentages" and spec.name in values:
            percentages(spec.name, values[spec.name])
    return Settings(**values)


def percentages(name: str, text: str) -> tuple[float, ...]:
    """'95,90,80' -> (0.95, 0.9, 0.8); each strictly between 0 and 100. Empty text: none."""
    fractions = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        try:
            value = float(part)
        except ValueError:
            raise ValidationError(f"setting {name}: {part!r} is not a number (expected e.g. 95,90,80)") from None
        if not 0 < value < 100:
            raise ValidationError(f"setting {name}: {part!r} must be a percentage between 0 and 100")
        fractions.append(value / 100)
    if len(fractions) > MAX_CROP_SIZES:
        # Each size is 5 crops; an item holds at most 64 hashes (store limit).
        raise ValidationError(f"setting {name}: at most {MAX_CROP_SIZES} crop sizes, got {len(fractions)}")
    return tuple(fractions)


MAX_CROP_SIZES = 8
