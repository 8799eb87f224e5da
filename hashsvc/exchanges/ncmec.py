"""NCMEC hash sharing API v2 (XML), read incrementally by time range.

Source: NCMEC's documentation (https://report.cybertip.org/hashsharing/v2/documentation.pdf) as implemented by
python-threatexchange's `exchanges/clients/ncmec/hash_api.py` and the XML in its `tests/data.py`:
`GET {base}/v2/entries?from=..&to=..` with HTTP basic auth answers `<queryResult>` with `<images>`/`<videos>`
holding `<image>`/`<video>` entries and `<deletedImage>`/`<deletedVideo>` retractions, and
`<paging><next>/v2/entries?...&start=..&size=..&max=..</next></paging>` while more remain. Entries within a
range are not in time order, so the time checkpoint only moves once a whole range is read; in between, the
checkpoint is the `next` link, which resumes the same range at the following page.
Feedback: `PUT {base}/v2/entries/{member}/{id}/{TYPE}/feedback` with a `<feedbackSubmission><negative>` body
naming a reason GUID from `GET {base}/v2/feedback/{TYPE}/reasons`.
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from hashsvc.exchanges.base import Entry, Http, MalformedFeedError, Page, PermanentFeedError, time_range_pages
from hashsvc.exchanges.offload import ParseWorker
from hashsvc.hashes import get_algorithm
from hashsvc.netguard import Guard

DEFAULT_BASE_URL = "https://report.cybertip.org/hashsharing"
NAMESPACE = "https://hashsharing.ncmec.org/hashsharing/v2"
DATE_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
# NCMEC fingerprint names -> ours. MD5 is a hash of the file's bytes, like ours; SHA-1, PhotoDNA, NetClean and
# the video hashes are signal types hashsvc does not compute: kept aside (see Entry.unknown).
SIGNALS = {"md5": "md5", "pdq": "pdq"}
HEX_LENGTHS = {name: get_algorithm(name).hex_length for name in SIGNALS.values()}


def _date(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime(DATE_FORMAT)


def _local(tag: str) -> str:
    return tag.rpartition("}")[2] if tag[:1] == "{" else tag


def parse_entries(body: bytes) -> tuple[list[Entry], str]:
    """The entries of one `<queryResult>` page and its `next` link ('' on the last page)."""
    # NCMEC's one namespace adds nothing but "{...}" to every tag; dropping the declaration before parsing
    # lets the hot loop below use plain tag names (a million entries per first sync). Any other namespace is
    # still handled by _local().
    body = body.replace(b' xmlns="' + NAMESPACE.encode() + b'"', b"", 1)
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        raise MalformedFeedError(f"NCMEC page is not XML: {exc}") from None
    if _local(root.tag) != "queryResult":
        raise MalformedFeedError(f"NCMEC page is a <{_local(root.tag)}>, expected <queryResult>")
    entries: list[Entry] = []
    next_link = ""
    for section in root:
        name = _local(section.tag)
        if name == "paging":
            for child in section:
                if _local(child.tag) == "next":
                    next_link = (child.text or "").strip()
            continue
        if name not in ("images", "videos"):
            continue
        for element in section:
            entries.append(_entry(element))
    return entries, next_link


def _entry(element: ET.Element) -> Entry:
    kind = _local(element.tag).lower()
    deleted = kind.startswith("deleted")
    kind = kind.removeprefix("deleted")
    fields = {_local(child.tag): child for child in element}
    id_element, member = fields.get("id"), fields.get("member")
    raw_id = (id_element.text or "").strip() if id_element is not None else ""
    member_id = (member.get("id") or "").strip() if member is not None else ""
    if not raw_id or not member_id:
        return Entry(entry_id=f"{member_id}-{raw_id}", problem="entry without <id> or <member id>")
    entry_id = f"{member_id}-{raw_id}"  # ids are per member (python-threatexchange keys them the same way)
    # What feedback needs (member and id), and the entry type when it is not the usual image.
    metadata: dict[str, Any] = {"member_id": member_id, "id": raw_id}
    if kind != "image":
        metadata["type"] = kind
    if deleted:
        return Entry(entry_id, deleted=True, metadata=metadata)
    classification = fields.get("classification")
    labels: tuple[str, ...] = ()
    if classification is not None and classification.text:
        labels = (classification.text.strip()[:64],)
    hashes: list[tuple[str, str]] = []
    unknown: dict[str, str] = {}
    problem = None
    prints = fields.get("fingerprints")
    for fingerprint in prints if prints is not None else ():
        text = (fingerprint.text or "").strip()
        if not text:
            continue  # large fingerprints come as links (rel/href) we do not follow
        tag = _local(fingerprint.tag)
        ours = SIGNALS.get(tag.lower())
        if ours is None:
            unknown[tag] = text[:512]
            continue
        value = text.lower()
        if len(value) != HEX_LENGTHS[ours] or not _is_hex(value):
            problem = f"{tag}: not a {ours} hash ({HEX_LENGTHS[ours]} hex digits)"
            continue
        hashes.append((ours, value))
    if not hashes and not unknown and problem is None:
        problem = "entry without fingerprints"
    return Entry(entry_id, tuple(hashes), labels=labels, metadata=metadata, unknown=unknown, problem=problem)


def pack_entries(parsed: tuple[list[Entry], str]) -> tuple[list[tuple[Any, ...]], str]:
    """parse_entries' result as plain tuples, to cross from the parser process (hashsvc.exchanges.offload)."""
    entries, next_link = parsed
    packed = [(e.entry_id, e.hashes, e.deleted, e.labels, e.metadata, e.unknown, e.problem) for e in entries]
    return packed, next_link


def unpack_entries(packed: tuple[list[tuple[Any, ...]], str]) -> tuple[list[Entry], str]:
    entries, next_link = packed
    return [Entry(*fields) for fields in entries], next_link


def _is_hex(value: str) -> bool:
    try:
        return len(bytes.fromhex(value)) * 2 == len(value)  # fromhex skips whitespace between bytes
    except ValueError:
        return False


class NcmecClient:
    """Credentials: `username`, `password`. Config: `base_url` (an environment such as the NGO one)."""

    def __init__(
        self,
        config: Mapping[str, Any],
        credentials: Mapping[str, str],
        *,
        timeout_s: float,
        guard: Guard,
        clock: Callable[[], float] = time.time,
        parse_process: bool = True,
    ) -> None:
        self.clock = clock
        if not credentials.get("username") or not credentials.get("password"):
            raise PermanentFeedError("the ncmec exchange needs credentials username and password")
        self.http = Http(
            config.get("base_url") or DEFAULT_BASE_URL,
            timeout_s=timeout_s,
            guard=guard,
            auth=(credentials["username"], credentials["password"]),
        )
        # A large sync's pages are parsed in a child process (hashsvc.exchanges.offload): the XML costs about as
        # much CPU as writing the entries, and the two then run on two cores. `parse_process=False`: always here.
        self.parser: ParseWorker[tuple[list[Entry], str]] | None = None
        if parse_process:
            self.parser = ParseWorker(parse_entries, pack=pack_entries, unpack=unpack_entries)

    def close(self) -> None:
        self.http.close()
        if self.parser is not None:
            self.parser.close()

    def pages(self, checkpoint: Mapping[str, Any] | None) -> Iterator[Page]:
        return time_range_pages(checkpoint, self.clock, ("from", "to"), self._first, self._follow)

    def _first(self, start: int, end: int) -> tuple[list[Entry], str]:
        response = self.http.request("GET", "v2/entries", params={"from": _date(start), "to": _date(end)})
        return self._parsed(response.content)

    def _follow(self, link: str) -> tuple[list[Entry], str]:
        return self._parsed(self.http.request("GET", link).content)

    def _parsed(self, body: bytes) -> tuple[list[Entry], str]:
        entries, next_link = self.parser(body) if self.parser is not None else parse_entries(body)
        if next_link and not next_link.startswith("/v2/entries?"):
            raise MalformedFeedError("NCMEC next link does not point at /v2/entries")
        return entries, next_link

    def report_false_positive(self, entry_id: str, metadata: Mapping[str, Any]) -> bool:
        member, raw_id = metadata.get("member_id"), metadata.get("id")
        if not member or not raw_id:
            return False
        reported = False
        held = metadata.get("algorithms") or list(SIGNALS.values())
        for signal in (name.upper() for name in SIGNALS.values() if name in held):
            try:
                reasons = ET.fromstring(self.http.request("GET", f"v2/feedback/{signal}/reasons").content)
            except ET.ParseError:
                raise MalformedFeedError("NCMEC feedback reasons are not XML") from None
            guids = [r.get("guid") for r in reasons.iter() if _local(r.tag) == "reason" and r.get("guid")]
            if not guids:
                continue
            root = ET.Element("feedbackSubmission", {"xmlns": NAMESPACE})
            negative = ET.SubElement(root, "negative")
            ET.SubElement(ET.SubElement(negative, "reasonIds"), "guid").text = guids[0]
            self.http.request(
                "PUT",
                f"v2/entries/{member}/{raw_id}/{signal}/feedback",
                content=ET.tostring(root),
                headers={"Content-Type": "application/xml"},
            )
            reported = True
        return reported
