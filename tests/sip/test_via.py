"""Via values: sent-protocol, sent-by and parameters (RFC 3261 §20.42, §18.2.1; RFC 3581)."""

from __future__ import annotations

import pytest

from callscript.sip.errors import LocalProtocolError, ParseError
from callscript.sip.via import MAGIC_COOKIE, Via, parse_via


def test_via_parts_and_branch() -> None:
    """RFC 3261 §20.42: SIP/2.0/transport, sent-by host and port, then parameters."""
    via = parse_via("SIP/2.0/UDP pc33.atlanta.example.com:5066;branch=z9hG4bK776asdhds;ttl=16")
    assert (via.protocol, via.transport) == ("SIP/2.0", "UDP")
    assert (via.host, via.port) == ("pc33.atlanta.example.com", 5066)
    assert via.sent_by == ("pc33.atlanta.example.com", 5066)
    assert via.branch == "z9hG4bK776asdhds" and via.branch.startswith(MAGIC_COOKIE)
    assert via.params["TTL"] == "16"
    assert (
        str(via)
        == via.value
        == "SIP/2.0/UDP pc33.atlanta.example.com:5066;branch=z9hG4bK776asdhds;ttl=16"
    )
    assert Via.parse(str(via)) == via


def test_magic_cookie_marks_rfc3261_branches() -> None:
    """RFC 3261 §8.1.1.7: an RFC 3261 branch starts with the magic cookie z9hG4bK."""
    assert MAGIC_COOKIE == "z9hG4bK"
    assert parse_via("SIP/2.0/UDP h;branch=z9hG4bK").branch == MAGIC_COOKIE
    assert parse_via("SIP/2.0/UDP h").branch is None  # RFC 2543 peers send none


def test_lws_around_slashes_and_colon_is_accepted() -> None:
    """RFC 3261 §25.1: SLASH and COLON allow LWS around them (RFC 4475 §3.1.1.1)."""
    via = parse_via("SIP  /   2.0 /UDP    192.0.2.2 : 5060 ;  branch = z9hG4bK390skdjuw")
    assert (via.transport, via.host, via.port, via.branch) == (
        "UDP",
        "192.0.2.2",
        5060,
        "z9hG4bK390skdjuw",
    )
    assert str(via) == "SIP  /   2.0 /UDP    192.0.2.2 : 5060 ;  branch = z9hG4bK390skdjuw"


def test_protocol_and_transport_are_case_insensitive() -> None:
    """RFC 3261 §25.1: 'sip/2.0/udp' names the same protocol; the transport reads upper-case."""
    assert parse_via("sip/2.0/udp h").transport == "UDP"
    assert parse_via("SIP/2.0/UNKNOWN t4.example.com").transport == "UNKNOWN"


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [
        ("SIP/2.0/UDP [2001:db8::9:1]:6050;branch=z9hG4bKas3", "[2001:db8::9:1]", 6050),
        ("SIP/2.0/TCP [::ffff:192.0.2.10]:19823", "[::ffff:192.0.2.10]", 19823),
        ("SIP/2.0/UDP 255.255.255.255", "255.255.255.255", None),
        ("SIP/2.0/UDP host.example.com.", "host.example.com.", None),
    ],
)
def test_sent_by_forms(text: str, host: str, port: int | None) -> None:
    """RFC 3261 §25.1: sent-by = host [ COLON port ], IPv6 as a reference."""
    via = parse_via(text)
    assert (via.host, via.port) == (host, port)


def test_received_with_or_without_ipv6_brackets() -> None:
    """RFC 5118 §4.5: received=[2001:db8::9:255] and received=2001:db8::9:255 both parse."""
    with_brackets = parse_via(
        "SIP/2.0/UDP [2001:db8::9:1];received=[2001:db8::9:255];branch=z9hG4bKa"
    )
    without = parse_via("SIP/2.0/UDP [2001:db8::9:1];received=2001:db8::9:255;branch=z9hG4bKa")
    assert with_brackets.received == "[2001:db8::9:255]"
    assert without.received == "2001:db8::9:255"
    assert parse_via("SIP/2.0/UDP h;received=192.0.2.1").received == "192.0.2.1"


def test_received_must_be_an_address() -> None:
    """RFC 3261 §20.42: via-received carries an IP address, not a name."""
    for bad in ("example.com", "192.0.2.300", "[2001:db8::g]", "1.2.3"):
        with pytest.raises(ParseError, match="received"):
            parse_via(f"SIP/2.0/UDP h;received={bad}")


def test_rport_is_empty_or_a_port() -> None:
    """RFC 3581 §3: rport is empty in a request and carries the source port in a response."""
    assert parse_via("SIP/2.0/UDP h;rport").rport is None
    assert "rport" in parse_via("SIP/2.0/UDP h;rport").params
    assert parse_via("SIP/2.0/UDP h;rport=5070").rport == 5070
    for bad in ("70000", "x", "123456"):
        with pytest.raises(ParseError, match="rport"):
            parse_via(f"SIP/2.0/UDP h;rport={bad}")


def test_ttl_is_zero_to_255() -> None:
    """RFC 3261 §20.42: via-ttl = "ttl" EQUAL ttl, and ttl = 1*3DIGIT (0-255)."""
    assert parse_via("SIP/2.0/UDP h;ttl=0").params["ttl"] == "0"
    assert parse_via("SIP/2.0/UDP h;ttl=255").params["ttl"] == "255"
    for bad in ("256", "1000", "x"):
        with pytest.raises(ParseError, match="ttl"):
            parse_via(f"SIP/2.0/UDP h;ttl={bad}")


def test_empty_branch_is_refused() -> None:
    """RFC 3261 §20.42: via-branch = "branch" EQUAL token; a bare 'branch' is malformed."""
    for text in ("SIP/2.0/UDP h;branch", "SIP/2.0/UDP h;branch;rport", "SIP/2.0/UDP h;branch="):
        with pytest.raises(ParseError):
            parse_via(text)


def test_other_sip_version_is_505() -> None:
    """RFC 3261 §21.5.6: a Via naming SIP/7.0 is answered 505 Version Not Supported."""
    with pytest.raises(ParseError) as info:
        parse_via("SIP/7.0/UDP host.example.com")
    assert info.value.status == 505


@pytest.mark.parametrize(
    "text",
    [
        "",
        "SIP/2.0/UDP",
        "SIP/2.0 host.example.com",
        "SIP/2.0/UDP host.example.com;;",  # RFC 4475 §3.1.2.1
        "SIP/2.0/UDP 192.0.2.15;;",
        "SIP/2.0/UDP h;",
        "SIP/2.0/UDP h;=x",
        "SIP/2.0/UDP h:65536",
        "SIP/2.0/UDP h:",
        "SIP/2.0/UDP h:abc",
        "SIP/2.0/UDP under_score.example.com",
        "SIP/2.0/UDP 192.0.2.256",
        "SIP/2.0/UDP [2001:db8::1",
        "SIP/2.0/UDP [2001:db8::zz]",
        "SIP/2.0/UDP [1:2:3:4:5:6:7:8:9]:5060",
        "SIP/2.0/UDP 2001:db8::1",
        "HTTP/2.0/UDP h",
        "SIP/2.0/UDP h junk",
        "SIP/2.0/UDP h;x=a b",
        "SIP/2.0//UDP h",
    ],
)
def test_malformed_vias_raise_parse_error(text: str) -> None:
    """RFC 3261 §25.1: stray separators, bad hosts and ports are refused with ParseError."""
    with pytest.raises(ParseError) as info:
        parse_via(text)
    assert info.value.status == 400


def test_with_params_adds_received_and_rport_in_a_copy() -> None:
    """RFC 3261 §18.2.1: a server adds received (and RFC 3581 rport) to the top Via."""
    via = parse_via("SIP/2.0/UDP bobspc.biloxi.example.com:5060;branch=z9hG4bKnashds7;rport")
    stamped = via.with_params(received="192.0.2.4", rport="5061")
    assert stamped.received == "192.0.2.4" and stamped.rport == 5061
    assert str(stamped) == (
        "SIP/2.0/UDP bobspc.biloxi.example.com:5060;branch=z9hG4bKnashds7;rport=5061"
        ";received=192.0.2.4"
    )
    assert via.received is None and via.rport is None
    assert parse_via(str(stamped)) == stamped


def test_constructed_via_prints_and_reparses() -> None:
    """Via(transport, host, port, params) prints a value that parses back equal."""
    via = Via("udp", "proxy.example.com", 5060, {"branch": "z9hG4bKx", "rport": None})
    assert str(via) == "SIP/2.0/UDP proxy.example.com:5060;branch=z9hG4bKx;rport"
    assert parse_via(str(via)) == via
    assert hash(parse_via(str(via))) == hash(via)
    assert repr(via) == "Via('SIP/2.0/UDP proxy.example.com:5060;branch=z9hG4bKx;rport')"
    # A bare IPv6 address becomes a reference.
    assert str(Via("TCP", "2001:db8::1", 5060)) == "SIP/2.0/TCP [2001:db8::1]:5060"


@pytest.mark.parametrize(
    "build",
    [
        lambda: Via("U DP", "h"),
        lambda: Via("UDP", "h\r\nX: y"),
        lambda: Via("UDP", "h;x"),
        lambda: Via("UDP", "h", 70000),
        lambda: Via("UDP", "h", -1),
        lambda: Via("UDP", "h", params={"branch": "a\r\nb"}),
        lambda: Via("UDP", "h", params={"branch": "a,b"}),
        lambda: Via("UDP", "h", params={"bad name": None}),
        lambda: Via("UDP", "h", protocol="SIP/3.0"),
        lambda: Via("UDP", "h").with_params(received="a b"),
    ],
)
def test_constructor_refuses_parts_that_would_not_print_as_one_value(build: object) -> None:
    """Our own code gets LocalProtocolError for a Via that could not be sent."""
    with pytest.raises(LocalProtocolError):
        build()  # type: ignore[operator]


def test_equality_ignores_host_case_and_parameter_order() -> None:
    """Two Vias are equal when transport, sent-by and parameters match."""
    a = parse_via("SIP/2.0/UDP Host.Example.com;branch=z9hG4bK1;rport")
    b = parse_via("SIP/2.0/udp host.example.com ; rport ; branch=z9hG4bK1")
    assert a == b and hash(a) == hash(b)
    assert a != parse_via("SIP/2.0/UDP host.example.com;branch=z9hG4bK2;rport")
    assert a != "SIP/2.0/UDP host.example.com;branch=z9hG4bK1;rport"
