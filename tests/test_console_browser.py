"""The console in a real browser: Debian's Chromium driven by Playwright against a live `hashsvc serve`.

One server and one browser for the module. The walk-through signs in, creates a bank, fills it by import and by
image, tests an edited copy (blocked), disables the item with a reason (the test then allows), reads the audit
log and signs out. Every page is checked with axe-core (no serious or critical finding) and photographed at
1280 px: into tmp by default, into docs/console/ with HASHSVC_UPDATE_SCREENSHOTS=1 (how the docs' screenshots
are made). Without Chromium or Playwright these tests skip, except under HASHSVC_STRICT=1 (CI), where they fail.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from availability import skip_or_fail
from images import encode, photo
from live_server import LiveServer

from hashsvc.store import Store, upgrade

CHROMIUM = Path(os.environ.get("HASHSVC_CHROMIUM", "/usr/bin/chromium"))
DOCS_SHOTS = Path(__file__).resolve().parents[1] / "docs" / "console"
UPDATE_SHOTS = os.environ.get("HASHSVC_UPDATE_SCREENSHOTS", "") not in ("", "0")
WIDE, NARROW = 1280, 400
PDQ = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"
OTHER_PDQ = "0f0f0f31e0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9bdd"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        skip_or_fail(f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        skip_or_fail("playwright is not installed (pip install -e '.[dev]')")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM))
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, dict[str, str]]]:
    folder = tmp_path_factory.mktemp("console")
    url = f"sqlite:///{folder}/store.db"
    upgrade(url)
    with Store(url) as store:
        keys = {
            "lead": store.create_api_key("lead", ["match", "curate", "admin"], actor="test")[1],
            "match": store.create_api_key("pipeline", ["match"], actor="test")[1],
        }
    # The feed below points at loopback (tests have no network or DNS): partner URLs there must be allowed.
    settings = {"snapshot_interval_s": 0, "sandbox_workers": 1, "exchange_allowed_networks": "127.0.0.0/8"}
    with LiveServer(url, folder / "data", **settings) as live:
        yield live, keys


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = DOCS_SHOTS if UPDATE_SHOTS else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def check(shots: Path) -> Callable[[Any, str], None]:
    """Run axe-core on the page, assert no serious or critical finding, and photograph it (1280 px wide)."""
    from axe_playwright_python.sync_playwright import Axe

    axe = Axe()

    def run(page: Any, name: str) -> None:
        found = axe.run(page).response["violations"]
        bad = [(v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3]) for v in found
               if v["impact"] in ("serious", "critical")]
        assert bad == [], f"{name}: {bad}"
        AXE_SUMMARY[name] = sorted(f"{v['id']}:{v['impact']}" for v in found)
        page.screenshot(path=str(shots / f"{name}.png"), full_page=True)

    return run


AXE_SUMMARY: dict[str, list[str]] = {}  # page -> the minor/moderate findings axe reported (printed at the end)


@pytest.fixture(scope="module", autouse=True)
def _axe_report() -> Iterator[None]:
    yield
    if AXE_SUMMARY:
        print("\naxe-core findings per page (none serious or critical):")
        for name, found in sorted(AXE_SUMMARY.items()):
            print(f"  {name}: {', '.join(found) or 'none'}")


def sign_in(page: Any, base: str, key: str) -> None:
    page.goto(f"{base}/ui/login")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()


def test_an_analyst_curates_tests_and_audits_in_the_browser(
    browser: Any, server: tuple[LiveServer, dict[str, str]], check: Callable[[Any, str], None], tmp_path: Path
) -> None:
    live, keys = server
    base = live.url
    # Some history for the overview, the review queue and the exchanges page: as a pipeline would make it.
    for path, body in (
        ("/v1/banks", {"name": "watchlist", "category": "terror", "action": "review"}),
        ("/v1/banks/watchlist/items", {"hashes": {"pdq": OTHER_PDQ}, "reference": "TAT-77"}),
        ("/v1/exchanges", {"name": "tat-feed", "type": "url", "bank": "watchlist",
                           "config": {"url": "https://127.0.0.1:9/t.txt", "format": "hex", "algorithm": "pdq"}}),
    ):
        status, answer = live.request("POST", path, body, keys["lead"])
        assert status == 201, answer
    live.wait_for("/readyz", 10)
    _until(lambda: live.request("POST", "/v1/match/hashes", {"pdq": OTHER_PDQ, "content_id": "upload-1"},
                                keys["match"])[1]["decision"] == "review")
    # Uploads blocked by the demo bank's imported hash, so that the overview's chart has two banks.
    blocked = [{"pdq": PDQ, "content_id": f"upload-{n}"} for n in range(2, 5)]

    context = browser.new_context(viewport={"width": WIDE, "height": 900})
    page = context.new_page()
    page.goto(f"{base}/ui/login")
    check(page, "login")
    sign_in(page, base, keys["lead"])
    page.wait_for_url("**/ui/overview")

    page.goto(f"{base}/ui/banks")
    page.get_by_label("Name").fill("demo")
    page.get_by_label("Category").select_option("csam")
    page.get_by_label("Description").fill("Known images, from the hotline")
    check(page, "banks")
    page.get_by_role("button", name="Create bank").click()
    page.wait_for_url("**/ui/banks/demo")
    assert "Bank demo created." in page.content()

    listing = tmp_path / "partner-list.txt"
    listing.write_text(f"{PDQ}\nthis-is-not-a-hash\n")
    page.get_by_label("List file").set_input_files(str(listing))
    page.get_by_label("Format").select_option("hex")
    page.get_by_label("Algorithm (hex lists only)").select_option("pdq")
    page.get_by_role("button", name="Import").click()
    assert page.get_by_role("cell", name="this-is-not-a-hash").count() == 0  # bad lines are named, not echoed
    assert "Lines not imported" in page.content() and page.get_by_role("cell", name="2", exact=True).count() == 1
    check(page, "import")

    original = photo(640, 480, seed=31)
    (tmp_path / "photo.jpg").write_bytes(encode(original))
    (tmp_path / "edited.jpg").write_bytes(encode(original.resize((320, 240)), quality=60))
    _until(lambda: all(live.request("POST", "/v1/match/hashes", body, keys["match"])[1]["decision"] == "block"
                       for body in blocked))
    page.goto(f"{base}/ui/overview")
    check(page, "overview")

    page.goto(f"{base}/ui/banks/demo")
    page.get_by_label("Image file").set_input_files(str(tmp_path / "photo.jpg"))
    page.locator("#add-reference").fill("CASE-1")
    page.get_by_role("button", name="Add image").click()
    page.wait_for_url("**/ui/items/*")
    item_url = page.url
    assert "CASE-1" in page.content() and "<img" not in page.content()

    _test_image(page, base, tmp_path / "edited.jpg", "block")
    check(page, "test")

    page.goto(item_url)
    page.get_by_label("Reason (required)").fill("false positive: a stock photo")
    page.get_by_role("button", name="Disable item").click()
    assert "false positive: a stock photo" in page.content()
    check(page, "item")
    _test_image(page, base, tmp_path / "edited.jpg", "allow")

    page.goto(f"{base}/ui/banks/demo")
    check(page, "bank")
    page.goto(f"{base}/ui/audit?actor=lead&action=item.*")
    rows = page.locator("tbody tr").all_inner_texts()
    assert any("item.disable" in row and "false positive: a stock photo" in row for row in rows)
    assert any("item.add" in row for row in rows)
    check(page, "audit")

    page.goto(f"{base}/ui/reviews")
    page.get_by_role("link", name=re.compile(r"^Review \d+$")).first.click()
    page.get_by_role("button", name="Claim this review").click()
    check(page, "review")
    page.goto(f"{base}/ui/reviews")
    check(page, "reviews")
    page.goto(f"{base}/ui/exchanges")
    check(page, "exchanges")
    page.goto(f"{base}/ui/keys")
    page.get_by_label("Name").fill("moderation-tool")
    page.get_by_label("match").check()
    page.get_by_role("button", name="Create key").click()
    assert page.get_by_label("Secret").input_value().startswith("hsk_")
    check(page, "keys")
    page.goto(f"{base}/ui/banks/demo/delete")
    check(page, "confirm-delete")

    narrow = browser.new_context(viewport={"width": NARROW, "height": 800}, storage_state=context.storage_state())
    small = narrow.new_page()
    for path in ("/ui/overview", "/ui/banks/demo", item_url.removeprefix(base), "/ui/audit"):
        small.goto(base + path)
        assert small.evaluate("document.documentElement.scrollWidth") <= NARROW, path  # tables scroll, pages do not
    narrow.close()

    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/ui/login?why=signed_out")
    page.goto(f"{base}/ui/banks")
    assert "/ui/login" in page.url
    context.close()


def test_a_match_only_key_sees_no_curation_page_and_a_form_without_its_token_is_refused(
    browser: Any, server: tuple[LiveServer, dict[str, str]]
) -> None:
    live, keys = server
    context = browser.new_context(viewport={"width": WIDE, "height": 900})
    page = context.new_page()
    sign_in(page, live.url, keys["match"])
    page.wait_for_url("**/ui/test")
    links = page.get_by_role("navigation", name="Console").get_by_role("link").all_inner_texts()
    assert links == ["Test an image"]
    page.keyboard.press("Tab")  # the first stop is the skip link, which takes the keyboard to the content
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    assert page.goto(f"{live.url}/ui/banks").status == 403
    assert page.goto(f"{live.url}/ui/keys").status == 403

    lead = browser.new_context()
    admin = lead.new_page()
    sign_in(admin, live.url, keys["lead"])
    admin.goto(f"{live.url}/ui/banks")
    admin.locator("form.grid-form input[name=csrf_token]").evaluate("input => input.remove()")
    admin.get_by_label("Name").fill("forged")
    admin.get_by_label("Category").select_option("csam")
    with admin.expect_navigation() as navigation:
        admin.get_by_role("button", name="Create bank").click()
    assert navigation.value.status == 400
    assert "security token" in admin.content()
    assert live.request("GET", "/v1/banks/forged", token=keys["lead"])[0] == 404
    lead.close()
    context.close()


def _test_image(page: Any, base: str, image: Path, expected: str) -> None:
    """Upload on the test page until the decision is `expected` (the server's index follows the change log
    within a poll interval)."""
    deadline = time.monotonic() + 10
    while True:
        page.goto(f"{base}/ui/test")
        page.get_by_label("Image file").set_input_files(str(image))
        page.get_by_role("button", name="Test").click()
        decision = page.locator("#decision").inner_text()
        if decision == expected or time.monotonic() > deadline:
            assert decision == expected
            return
        time.sleep(0.2)


def _until(condition: Callable[[], bool], timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)
