"""The outbound address guard (hashsvc.netguard) that webhooks and partner feeds share: which addresses it
refuses, what an allowed network opens, and that its httpx transport checks and pins every connection."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from exchange_fakes import FakeHashList
from fake_dns import answer

from hashsvc.errors import ValidationError
from hashsvc.netguard import Guard, TargetRefused

LOOPBACK = "127.0.0.0/8"
SETTING = "HASHSVC_EXCHANGE_ALLOWED_NETWORKS"
PUBLIC = "93.184.215.14"  # a global address that nothing here connects to


@pytest.fixture
def hash_list() -> Iterator[FakeHashList]:
    with FakeHashList() as fake:
        yield fake


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/hook",
        "http://localhost:9/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.1/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/hook",
        "http://[fe80::1]/hook",
        "http://[::ffff:169.254.169.254]/hook",
        "http://0.0.0.0/hook",
    ],
)
def test_loopback_private_link_local_and_metadata_targets_are_refused(url: str) -> None:
    with pytest.raises(TargetRefused):
        Guard().check_url(url)


def test_allowed_networks_open_private_targets_but_never_metadata() -> None:
    parts, address = Guard.from_setting(LOOPBACK, SETTING).check_url("http://127.0.0.1:8080/x")
    assert (parts.port, str(address)) == (8080, "127.0.0.1")
    with pytest.raises(TargetRefused, match="metadata"):
        Guard.from_setting("169.254.0.0/16", SETTING).check_url("http://169.254.169.254/")
    for bad in ("ftp://example.com/", "http:///nohost", "http://user:pw@example.com/", "x" * 3000):
        with pytest.raises(ValidationError):
            Guard().check_url(bad)


def test_a_refusal_names_the_setting_that_would_allow_it_and_a_bad_setting_fails_fast() -> None:
    with pytest.raises(TargetRefused, match=SETTING):
        Guard.from_setting("", SETTING).check_url("http://10.0.0.8/list.csv")
    with pytest.raises(ValidationError, match="exchange_allowed_networks"):
        Guard.from_setting("10.0.0.0/33", SETTING)


def test_a_name_resolving_to_a_private_address_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    answer(monkeypatch, {"partner.internal": ["10.9.8.7"], "partner.example": [PUBLIC]})
    with pytest.raises(TargetRefused, match=r"10\.9\.8\.7"):
        Guard().check_url("https://partner.internal/feed")
    assert str(Guard().check_url("https://partner.example/feed")[1]) == PUBLIC


def test_the_transport_refuses_a_connection_to_loopback_and_sends_nothing(hash_list: FakeHashList) -> None:
    refusing = Guard.from_setting("", SETTING).transport()
    with httpx.Client(transport=refusing) as client, pytest.raises(TargetRefused, match=SETTING):
        client.get(hash_list.url + "/list.csv")
    assert hash_list.requests == []
    with httpx.Client(transport=Guard.from_setting(LOOPBACK, SETTING).transport()) as client:
        assert client.get(hash_list.url + "/list.csv").status_code == 200
    assert len(hash_list.requests) == 1


def test_the_transport_checks_the_address_at_connect_time_dns_rebinding(
    monkeypatch: pytest.MonkeyPatch, hash_list: FakeHashList
) -> None:
    """A name that answered a public address when it was configured and answers loopback when the connection is
    made is refused then, and the request never reaches the loopback server."""
    answer(monkeypatch, {"partner.example": [PUBLIC, "127.0.0.1"]})
    guard = Guard.from_setting("", SETTING)
    port = hash_list.url.rsplit(":", 1)[1]
    url = f"http://partner.example:{port}/list.csv"
    guard.check_url(url)  # configuration time: public
    with httpx.Client(transport=guard.transport()) as client, pytest.raises(TargetRefused, match=r"127\.0\.0\.1"):
        client.get(url)
    assert hash_list.requests == []


def test_the_transport_connects_to_the_address_it_checked(
    monkeypatch: pytest.MonkeyPatch, hash_list: FakeHashList
) -> None:
    """One lookup per connection: the address checked is the one connected to, with the name in the Host header."""
    lookups = answer(monkeypatch, {"partner.example": ["127.0.0.1"]})
    port = hash_list.url.rsplit(":", 1)[1]
    with httpx.Client(transport=Guard.from_setting(LOOPBACK, SETTING).transport()) as client:
        response = client.get(f"http://partner.example:{port}/list.csv")
    assert response.request.headers["host"] == f"partner.example:{port}"
    assert lookups == ["partner.example"] and len(hash_list.requests) == 1
