"""The analyst console (/ui/) through Flask's test client: sign-in, cookies, expiry, CSRF, scopes, headers,
no images, and that changes go through the service and into the audit log like the API's.

The browser tests (tests/test_console_browser.py) drive the same pages in Chromium against a live server."""

from __future__ import annotations

import datetime as dt
import io
import os
import stat
from pathlib import Path

import pytest
from api_fixtures import Api
from console_helpers import Console
from images import encode, photo

from hashsvc.errors import ValidationError
from hashsvc.store import NewItem, Store
from hashsvc.store.aftermatch import EventFilter, NewEvent, activity, insert_events
from hashsvc.ui import CSP
from hashsvc.ui import session as console_session
from hashsvc.ui.secret import SECRET_FILE

PDQ = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"


@pytest.fixture
def all_scopes(api: Api) -> str:
    """A key that may see every page."""
    return api.service.store.create_api_key("lead", ["match", "curate", "admin"], actor="test")[1]


def signed_in(api: Api, token: str) -> Console:
    console = Console(api.client)
    assert console.sign_in(token).status_code == 303
    return console


def test_signing_in_gives_a_strict_http_only_cookie_and_signing_out_ends_the_session(api: Api) -> None:
    console = Console(api.client)
    assert api.client.get("/ui/banks").headers["Location"].startswith("/ui/login")
    response = console.sign_in(api.keys["curate"])
    assert response.headers["Location"] == "/ui/"
    cookie = next(v for v in response.headers.getlist("Set-Cookie") if v.startswith("hashsvc_console="))
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/ui" in cookie
    assert "Secure" not in cookie  # plain HTTP (loopback): a Secure cookie would never come back
    assert api.keys["curate"] not in cookie  # the key travels encrypted, never in clear
    assert "Signed in as <strong>curate-key</strong>" in console.text("/ui/banks")
    assert console.post("/ui/logout", token_from="/ui/banks").headers["Location"] == "/ui/login?why=signed_out"
    assert api.client.get("/ui/banks").status_code == 302


def test_the_cookie_is_secure_over_tls_and_a_wrong_key_is_refused(api: Api) -> None:
    secure = Console(api.app.test_client())
    secure.client.environ_base["wsgi.url_scheme"] = "https"
    response = secure.client.post(
        "/ui/login", data={"key": api.keys["admin"], "csrf_token": secure.csrf()}, base_url="https://localhost"
    )
    assert "Secure" in next(v for v in response.headers.getlist("Set-Cookie") if v.startswith("hashsvc_console="))
    refused = Console(api.client).sign_in("hsk_not-a-key")
    assert refused.status_code == 401 and "unknown, revoked or expired" in refused.get_data(as_text=True)


def test_sessions_end_when_idle_too_long_after_their_absolute_limit_and_when_the_key_is_revoked(
    make_api, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = make_api(console_idle_s=60, console_session_s=300)
    now = [1_000_000.0]
    monkeypatch.setattr(console_session, "clock", lambda: now[0])
    console = signed_in(api, api.keys["curate"])
    for _ in range(5):  # used every 50 s: not idle, but past 300 s since sign-in at the sixth request
        now[0] += 50
        assert api.client.get("/ui/banks").status_code == 200
    now[0] += 51
    assert api.client.get("/ui/banks").headers["Location"].endswith("why=expired")

    signed_in(api, api.keys["curate"])
    now[0] += 61  # idle longer than console_idle_s
    assert api.client.get("/ui/banks").headers["Location"].endswith("why=expired")

    signed_in(api, api.keys["curate"])
    key_id = next(k["id"] for k in api.service.list_keys() if k["name"] == "curate-key")
    api.client.delete(f"/v1/keys/{key_id}", headers=api.headers("admin"))
    assert api.client.get("/ui/banks").headers["Location"].endswith("why=key")
    assert console.sign_in(api.keys["curate"]).status_code == 401


def test_a_form_posted_without_its_csrf_token_is_refused_and_changes_nothing(api: Api) -> None:
    console = signed_in(api, api.keys["curate"])
    for data in ({"name": "sneaky", "category": "csam"}, {"name": "sneaky", "category": "csam", "csrf_token": "x"}):
        response = api.client.post("/ui/banks", data=data)
        assert response.status_code == 400
        assert "security token" in response.get_data(as_text=True)
    assert api.service.list_banks() == []
    assert console.post("/ui/banks", {"name": "fine", "category": "csam"}).status_code == 303
    assert [b["name"] for b in api.service.list_banks()] == ["fine"]


def test_a_match_only_key_sees_no_curation_page_and_may_not_post_to_one(api: Api) -> None:
    api.post_json("/v1/banks", {"name": "known", "category": "csam"})
    console = signed_in(api, api.keys["match"])
    assert api.client.get("/ui/").headers["Location"] == "/ui/test"
    nav = console.text("/ui/test")
    assert "Test an image" in nav and "/ui/banks" not in nav and "/ui/audit" not in nav
    curation = ("/ui/overview", "/ui/banks", "/ui/banks/known", "/ui/reviews", "/ui/exchanges", "/ui/audit", "/ui/keys")
    for path in curation:
        assert api.client.get(path).status_code == 403, path
    forms = (
        ("/ui/banks", {"name": "x", "category": "csam"}),
        ("/ui/banks/known/delete", {"confirm_name": "known"}),
        ("/ui/keys", {"name": "mine", "scope_admin": "on"}),
    )
    for path, data in forms:
        assert console.post(path, data, token_from="/ui/test").status_code == 403, path
    assert [b["name"] for b in api.service.list_banks()] == ["known"]


def test_every_page_sends_the_security_headers_and_no_image(api: Api, all_scopes: str) -> None:
    console = signed_in(api, all_scopes)
    console.post("/ui/banks", {"name": "demo", "category": "csam"})
    item = api.post_json("/v1/banks/demo/items", {"hashes": {"pdq": PDQ}, "reference": "R-1"}).json
    pages = ["/ui/login", "/ui/overview", "/ui/banks", "/ui/banks/demo", "/ui/banks/demo/edit",
             "/ui/banks/demo/delete", f"/ui/items/{item['id']}", f"/ui/items/{item['id']}/delete", "/ui/test",
             "/ui/reviews", "/ui/exchanges", "/ui/audit", "/ui/keys", "/ui/banks/demo?reference=R-1",
             f"/ui/banks/demo?hash={PDQ}&distance=4", "/ui/no-such-page"]
    for path in pages:
        response = api.client.get(path)
        assert response.status_code == (404 if path.endswith("no-such-page") else 200), path
        headers = response.headers
        assert headers["Content-Security-Policy"] == CSP, path
        assert headers["Referrer-Policy"] == "no-referrer" and headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Cache-Control"] == "no-store", path
        body = response.get_data(as_text=True)
        assert "<img" not in body and "<script" not in body and "style=" not in body, path
    assert "R-1" in console.text(f"/ui/banks/demo?hash={PDQ}&distance=4")
    assert "R-1" in console.text("/ui/banks/demo?reference=R-1")
    assert "No items." in console.text("/ui/banks/demo?reference=R-2")


def test_testing_an_image_shows_the_decision_and_hashes_but_never_the_image_and_records_no_event(
    api: Api, all_scopes: str
) -> None:
    console = signed_in(api, all_scopes)
    console.post("/ui/banks", {"name": "demo", "category": "csam"})
    image = encode(photo(seed=21))
    added = console.post("/ui/banks/demo/items", {"image": (io.BytesIO(image), "a.jpg"), "reference": "CASE-9"},
                         content_type="multipart/form-data")
    assert added.status_code == 303 and "/ui/items/" in added.headers["Location"]
    api.sync()
    result = console.post("/ui/test", {"image": (io.BytesIO(encode(photo(seed=21), quality=60)), "b.jpg")},
                          token_from="/ui/test", content_type="multipart/form-data")
    body = result.get_data(as_text=True)
    assert 'id="decision">block<' in body and "CASE-9" in body and "pdq" in body
    assert "<img" not in body and "base64" not in body
    api.service.after.events.flush()
    assert api.service.after.list_events(EventFilter(), 10)["events"] == []


def test_console_changes_go_to_the_audit_log_under_the_keys_name(api: Api, all_scopes: str) -> None:
    console = signed_in(api, all_scopes)
    console.post("/ui/banks", {"name": "demo", "category": "csam", "threshold_pdq": "20"})
    assert api.service.get_bank("demo")["thresholds"] == {"pdq": 20}
    item = api.post_json("/v1/banks/demo/items", {"hashes": {"pdq": PDQ}}).json
    console.post(f"/ui/items/{item['id']}/status", {"status": "disabled", "reason": "false positive"})
    entries = api.service.audit_page({"limit": "2"})["entries"]
    assert [(e["actor"], e["action"]) for e in entries] == [("lead", "item.disable"), ("curate-key", "item.add")]
    page = console.text(f"/ui/items/{item['id']}")
    assert "false positive" in page and "item.disable" in page
    csv_text = console.text("/ui/audit.csv?actor=lead")
    assert csv_text.splitlines()[0].startswith("id,at,actor,action") and "item.disable" in csv_text


def test_an_import_shows_its_bad_lines(api: Api, all_scopes: str) -> None:
    console = signed_in(api, all_scopes)
    console.post("/ui/banks", {"name": "demo", "category": "csam"})
    listing = f"{PDQ}\nnot-a-hash\n".encode()
    response = console.post("/ui/banks/demo/import", {"file": (io.BytesIO(listing), "l.txt"), "format": "hex",
                                                       "algorithm": "pdq"}, content_type="multipart/form-data")
    body = response.get_data(as_text=True)
    assert response.status_code == 200 and "<dd>1</dd>" in body and "<td>2</td>" in body


def test_the_secret_is_made_on_first_use_0600_and_shared_by_every_app_on_the_data_folder(
    make_api, tmp_path: Path
) -> None:
    first, second = make_api(), make_api()
    path = tmp_path / "data" / SECRET_FILE
    assert not path.exists()  # building the app writes nothing; the first console page does
    signed_in(first, first.keys["curate"])
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    cookie = first.client.get_cookie("hashsvc_console", path="/ui")
    second.client.set_cookie("hashsvc_console", cookie.value, path="/ui")
    assert second.client.get("/ui/banks").status_code == 200  # another worker reads the same session


def test_a_configured_secret_too_short_fails_at_start_up(make_api) -> None:
    with pytest.raises(ValidationError, match="at least 32 characters"):
        make_api(console_secret_key="short")


def test_sign_in_goes_back_only_to_console_pages(api: Api) -> None:
    console = Console(api.client)
    tries = (("/ui/banks", "/ui/banks"), ("//evil.example/ui/", "/ui/"), ("https://evil.example", "/ui/"))
    for wanted, landing in tries:
        response = api.client.post("/ui/login", data={"key": api.keys["curate"], "next": wanted,
                                                      "csrf_token": console.csrf()})
        assert response.headers["Location"] == landing


def test_the_overview_counts_decisions_and_matches_per_bank_and_day(api: Api) -> None:
    api.post_json("/v1/banks", {"name": "demo", "category": "csam"})
    api.post_json("/v1/banks/demo/items", {"hashes": {"pdq": PDQ}})
    api.sync()
    api.post_json("/v1/match/hashes", {"pdq": PDQ}, scope="match")
    facts = api.service.overview(days=3)
    assert len(facts["days"]) == 3
    assert facts["activity"] == {"demo": [{"block": 0, "review": 0, "matches": 0}] * 2 + [
        {"block": 1, "review": 0, "matches": 1}]}
    assert facts["reviews"]["open"] == 0 and facts["quarantined"] == 0 and facts["index"]["ready"]


def test_activity_is_counted_per_period_bank_and_decision_on_every_back_end(store: Store) -> None:
    """The overview's one grouped query (a CASE over the period bounds) reads the same on SQLite and PostgreSQL."""
    store.create_bank("a", category="csam", actor="test")
    store.create_bank("b", category="csam", actor="test", action="review")
    (one,) = store.add_items("a", [NewItem({"pdq": PDQ})], actor="test")
    (two,) = store.add_items("b", [NewItem({"md5": "d35c785545392755e7e4164457657269"})], actor="test")
    start = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    bounds = [start + dt.timedelta(days=n) for n in range(4)]

    def event(day: float, decision: str, *matched: tuple[str, int]) -> NewEvent:
        return NewEvent("match", start + dt.timedelta(days=day), f"u{day}{decision}", decision=decision,
                        matches=[{"bank": bank, "item_id": item} for bank, item in matched])

    insert_events(store.engine, [
        event(0.5, "block", ("a", one)),
        event(0.7, "block", ("a", one), ("b", two)),
        event(2.1, "review", ("b", two)),
        event(3.5, "block", ("a", one)),  # after the last bound: not counted
        event(-0.5, "block", ("a", one)),  # before the first: not counted
    ])
    found = sorted((r["period"], r["bank"], r["decision"], r["events"], r["matches"])
                   for r in activity(store.engine, bounds))
    assert found == [(0, "a", "block", 2, 2), (0, "b", "block", 1, 1), (2, "b", "review", 1, 1)]


def test_a_review_is_claimed_and_resolved_from_the_console(api: Api, all_scopes: str) -> None:
    api.post_json("/v1/banks", {"name": "watch", "category": "terror", "action": "review"})
    item = api.post_json("/v1/banks/watch/items", {"hashes": {"pdq": PDQ}}).json
    api.sync()
    assert api.post_json("/v1/match/hashes", {"pdq": PDQ}, scope="match").json["decision"] == "review"
    api.service.after.events.flush()
    (review,) = api.service.after.reviews.list()["reviews"]
    console = signed_in(api, all_scopes)
    assert PDQ in console.text(f"/ui/reviews/{review['id']}")  # the evidence: the upload's own hash
    assert console.post(f"/ui/reviews/{review['id']}/claim").status_code == 303
    assert api.service.after.reviews.get(review["id"])["claimed_by"] == "lead"
    console.post(f"/ui/reviews/{review['id']}/resolve",
                 {"resolution": "false_positive", "reason": "a meme", "disable_item": "true"})
    resolved = api.service.after.reviews.get(review["id"])
    outcome = (resolved["status"], resolved["resolution"], resolved["resolved_by"])
    assert outcome == ("resolved", "false_positive", "lead")
    assert api.service.get_item(item["id"])["status"] == "disabled"
