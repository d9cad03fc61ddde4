"""Target, reason and log-text rules (run in the sandbox and again in the SIP process)."""

from __future__ import annotations

import dataclasses
import ipaddress

import pytest

from callscript.sandbox.policy import ApiRules, TargetRules
from callscript.sandbox.targets import (
    Refused,
    TargetContext,
    check_target,
    check_text,
    clean_log_text,
    inet_address,
    is_internal_host,
)

CTX = TargetContext(
    direction="incoming",
    owner="sip:alice@example.com",
    request_uri="sip:alice@example.com",
    contacts=("sip:alice@192.168.1.20:5062;transport=tcp",),
    served_domains=("example.com",),
)
RULES = TargetRules()
API = ApiRules()


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("0x7F000001", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("127.0.0.1.", "127.0.0.1"),
        ("10.1", "10.0.0.1"),
        ("[::1]", "::1"),
        ("[::ffff:127.0.0.1]", "::ffff:7f00:1"),
        ("[fe80::1%eth0]", "fe80::1"),
        ("192.0.2.300", "0.0.0.0"),
        ("1.2.3.4.5", "0.0.0.0"),
        ("example.com", None),
        ("a1.example", None),
    ],
)
def test_inet_address_reads_every_spelling(host: str, address: str | None) -> None:
    """Numeric hosts are read the way inet_aton and IPv6 parsers read them."""
    expected = ipaddress.ip_address(address) if address else None
    assert inet_address(host) == expected


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1", "127.1", "2130706433", "0x7f.1", "0177.0.0.1", "10.0.0.1", "172.16.5.4",
        "192.168.1.1", "169.254.0.1", "100.64.0.1", "0.0.0.0", "224.0.0.1", "255.255.255.255",
        "[::1]", "[::]", "[::ffff:127.0.0.1]", "[::ffff:10.0.0.1]", "[fc00::1]", "[fe80::1]",
        "[2002:7f00:1::]", "[64:ff9b::7f00:1]", "[::127.0.0.1]", "[ff02::1]",
        "localhost", "LocalHost.", "foo.localhost", "ip6-localhost", "192.0.2.300",
    ],
)  # fmt: skip
def test_internal_hosts(host: str) -> None:
    """Loopback, private, link-local, shared, multicast, embedded-IPv4 and local names are internal."""
    assert is_internal_host(host)


@pytest.mark.parametrize(
    "host", ["8.8.8.8", "[2001:4860::8888]", "example.com", "[2002:808:808::]"]
)
def test_global_hosts(host: str) -> None:
    """Global addresses and names are not internal."""
    assert not is_internal_host(host)


@pytest.mark.parametrize(
    ("target", "fragment"),
    [
        ("sip:x@127.0.0.1", "loopback or private"),
        ("sip:x@127.1", "loopback or private"),
        ("sip:x@example.com;maddr=10.0.0.1", "10.0.0.1 is a loopback or private"),
        ("sip:x@evil.org", "not a domain this script may send calls to"),
        ("sip:x@example.com;maddr=evil.org", "evil.org is not a domain"),
        ("sip:x@notexample.com", "not a domain"),
        ("sip:x@example.com?Route=%3Csip:y%40evil.org%3E", "URI headers"),
        ("tel:+15551234", "sip: or sips:"),
        ("mailto:a@example.com", "sip: or sips:"),
        ("sip:x@example.com\r\nX: y", "spaces or control characters"),
        ("sip:x@exämple.com", "spaces or control characters"),
        ("sip:alice@example.com", "loop back to this script"),
        ("sip:alice@Example.COM:5070", "loop back"),
        ("sip:x@" + "a" * 300 + ".example.com", "longer than 256"),
        ("not a uri", "spaces or control"),
        ("sip:", "not a valid SIP URI"),
    ],
)
def test_refused_targets(target: str, fragment: str) -> None:
    """Each rule refuses with a message naming the target and the rule."""
    with pytest.raises(Refused) as info:
        check_target(target, CTX, RULES, API)
    assert fragment in str(info.value)


def test_allowed_targets() -> None:
    """Served domains and subdomains, extra domains, and exact registered contacts pass."""
    assert check_target("sip:bob@example.com", CTX, RULES, API) == "sip:bob@example.com"
    assert check_target("sips:alice@desk.EXAMPLE.com:5061", CTX, RULES, API)
    assert check_target("sip:alice@192.168.1.20:5062", CTX, RULES, API)
    with pytest.raises(Refused):
        check_target("sip:alice@192.168.1.20:5060", CTX, RULES, API)
    extra = dataclasses.replace(RULES, domains=("partner.net",))
    assert check_target("sip:x@pbx.partner.net", CTX, extra, API)
    private = dataclasses.replace(RULES, allow_private=True, domains=("10.0.0.5",))
    assert check_target("sip:x@10.0.0.5", CTX, private, API)
    no_contacts = dataclasses.replace(RULES, allow_contacts=False)
    with pytest.raises(Refused):
        check_target("sip:alice@192.168.1.20:5062", CTX, no_contacts, API)


def test_outgoing_calls_may_go_where_they_were_going() -> None:
    """An outgoing call's own request-URI is always allowed."""
    ctx = dataclasses.replace(CTX, direction="outgoing", request_uri="sip:+15551234@gw.carrier.net")
    assert check_target("sip:+15551234@gw.carrier.net", ctx, RULES, API)
    with pytest.raises(Refused):
        check_target("sip:+15551234@gw.carrier.net", CTX, RULES, API)


def test_redirects_may_go_anywhere_public() -> None:
    """A redirect may name any public domain, never a private address."""
    assert check_target("sip:x@evil.org", CTX, RULES, API, redirect=True)
    with pytest.raises(Refused):
        check_target("sip:x@10.0.0.1", CTX, RULES, API, redirect=True)
    strict = dataclasses.replace(RULES, redirect_anywhere=False)
    with pytest.raises(Refused):
        check_target("sip:x@evil.org", CTX, strict, API, redirect=True)


@pytest.mark.parametrize(
    "reason",
    [
        "a\r\nb",
        "a\nb",
        "a\rb",
        "a\tb",
        "a\x00",
        "a\x7f",
        "a\x85b",
        "a\u2028b",
        "a\u2029b",
        "x" * 129,
        "\ud800",
    ],
)
def test_refused_reasons(reason: str) -> None:
    """Reasons with CR/LF, controls, line separators, lone surrogates or too long are refused."""
    with pytest.raises(Refused):
        check_text(reason, "reason", 128)


def test_reasons_and_log_text() -> None:
    """Plain Unicode passes; log text gets controls escaped and length capped."""
    assert check_text("Busy Here ☎", "reason", 128) == "Busy Here ☎"
    with pytest.raises(Refused):
        check_text(5, "reason", 128)
    assert clean_log_text("a\r\nb\tc\x00\u2028", 100) == "a\\r\\nb\\tc\\x00\\x2028"
    assert clean_log_text("x" * 50, 10) == "x" * 9 + "…"
