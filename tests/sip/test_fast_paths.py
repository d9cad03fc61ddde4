"""The message layer's shortcuts agree with its careful paths (bench/parse.py shaped them).

Header lines in their common shape go through one regular expression over the whole
line, typed values handed to ``msg[...]`` are used as they are, ``with_params`` checks
only what changed, and a datagram without a body is split once. Each test here pins a
shortcut to what the general path says, or to a refusal that must survive it.
"""

from __future__ import annotations

import ipaddress
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callscript.sip.abnf import split_simple_params
from callscript.sip.address import Address, _parse_address_slow, parse_address_line
from callscript.sip.errors import LocalProtocolError, ParseError
from callscript.sip.headers import (
    CSeq,
    Number,
    parse_call_id,
    parse_call_id_line,
    parse_cseq,
    parse_cseq_line,
)
from callscript.sip.message import Request, Response, parse_message
from callscript.sip.uri import HOST_RE, HOSTNAME, IPV4, ip_literal, parse_uri
from callscript.sip.via import Via, _parse_via_slow, parse_via_line
from tests.sip.strategies import SWS, AddressModel, ViaModel, addresses, vias, words

LWS = st.sampled_from(["", " ", "  ", "\t", " \t"])


@given(vias(), LWS, LWS)
def test_via_line_parser_agrees_with_the_careful_parser(
    model: ViaModel, before: str, after: str
) -> None:
    """RFC 3261 §20.42: a Via line read in one match means what the careful parser reads."""
    text = model.text
    fast = parse_via_line(f"Via:{before}{text}{after}")
    if fast is None:
        return  # not the common shape: the general path reads it
    slow = _parse_via_slow(text)
    assert (fast.transport, fast.host, fast.port) == (slow.transport, slow.host, slow.port)
    assert dict(fast.params) == dict(slow.params) and fast.branch == slow.branch
    assert str(fast) == text


@given(addresses(), LWS, LWS)
def test_address_line_parser_agrees_with_the_careful_parser(
    model: AddressModel, before: str, after: str
) -> None:
    """RFC 3261 §25.1: a name-addr line read in one match means what the careful parser reads."""
    text = model.text
    fast = parse_address_line(f"From:{before}{text}{after}")
    if fast is None:
        return
    slow = _parse_address_slow(text)
    assert (fast.display, fast._uri_text, fast.tag) == (slow.display, slow._uri_text, slow.tag)
    assert dict(fast.params) == dict(slow.params)
    assert str(fast) == text


@given(st.integers(0, 2**32 - 1), st.sampled_from(["INVITE", "ACK", "X-Y"]), SWS, SWS)
def test_cseq_line_parser_agrees_with_the_careful_parser(
    number: int, method: str, before: str, after: str
) -> None:
    """RFC 3261 §20.16: CSeq read in one match is the CSeq the careful parser reads."""
    fast = parse_cseq_line(f"CSeq:{before}{number} {method}{after}")
    assert fast is None or fast == parse_cseq(f"{number} {method}")
    if len(str(number)) < 10:
        assert fast == CSeq(number, method)


@given(words, st.none() | words, SWS)
def test_call_id_line_parser_agrees_with_the_careful_parser(
    local: str, host: str | None, before: str
) -> None:
    """RFC 3261 §20.8: Call-ID read in one match is the careful parser's word [@ word]."""
    text = local if host is None else f"{local}@{host}"
    fast = parse_call_id_line(f"Call-ID:{before}{text}")
    assert fast is not None and fast == parse_call_id(text)


@pytest.mark.parametrize(
    "line",
    [
        "Via: SIP/2.0/UDP a.example.com;branch=z9hG4bK1, SIP/2.0/UDP b.example.com",
        "Via: SIP/2.0/UDP [2001:db8::1]:5060;branch=z9hG4bK1",
        "Via: SIP / 2.0 / UDP a.example.com;branch=z9hG4bK1",
        'Via: SIP/2.0/UDP a.example.com;branch=z9hG4bK1;x="quoted"',
        "Via: SIP/2.0/UDP a.example.com;branch=z9hG4bK1\r\n ;rport",
    ],
)
def test_via_lines_outside_the_common_shape_take_the_general_path(line: str) -> None:
    """RFC 3261 §7.3.1: lists, IPv6, LWS around '/', quoted values and folds are read in full."""
    assert parse_via_line(line) is None
    msg = parse_message(f"OPTIONS sip:a@b.example SIP/2.0\r\n{line}\r\n\r\n".encode())
    assert msg.top_via.branch == "z9hG4bK1"


def test_header_values_with_cr_or_lf_never_reach_a_line() -> None:
    """RFC 3261 §25.1: a quoted-string holds no CR or LF, so no value can start a header."""
    evil = '"a\r\nEvil: 1"'
    via = Via("UDP", "a.example.com", 5060, {"branch": "z9hG4bK1"})
    for build in (
        lambda: Via("UDP", "a.example.com", 5060, {"branch": "z9hG4bK1", "x": evil}),
        lambda: via.with_params(x=evil),
        lambda: Address("sip:a@b.example", params={"x": evil}),
        lambda: Address("sip:a@b.example").with_params(x='"a\nb"'),
        lambda: Address(parse_uri("sip:a@b.example").replace(host="b.example>x")),
    ):
        with pytest.raises(LocalProtocolError):
            build()
    msg = Request("OPTIONS", "sip:a@b.example")
    for name, value in (("Subject", "a\r\nEvil: 1"), ("Max-Forwards", "1\r\nX: y")):
        with pytest.raises(LocalProtocolError):
            msg[name] = value
    assert b"Evil" not in bytes(msg)


def test_typed_values_handed_in_are_used_as_they_are() -> None:
    """Our own Via, Address and int values go into the line without being parsed back."""
    msg = parse_message(b"OPTIONS sip:a@b.example SIP/2.0\r\nVia: SIP/2.0/UDP x.example\r\n\r\n")
    via = Via("UDP", "proxy.example", 5060, {"branch": "z9hG4bK1"})
    route = Address("sip:proxy.example;lr")
    msg.insert("Via", via)
    msg.insert("Record-Route", route)
    msg["Max-Forwards"] = 69
    assert msg.top_via is via and msg["Record-Route"][0] is route
    assert isinstance(msg["Max-Forwards"], Number) and msg.max_forwards == 69
    assert msg.header_names()[:2] == ["Record-Route", "Via"]
    again = parse_message(bytes(msg))
    assert again.top_via == via and again.max_forwards == 69
    assert again["Record-Route"][0].uri == route.uri


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("From", Via("UDP", "a.example")),
        ("Via", Address("sip:a@b.example")),
        ("To", Address.any()),
        ("Max-Forwards", 256),
        ("Max-Forwards", -1),
        ("Max-Forwards", True),
        ("Call-ID", 3.5),
    ],
)
def test_typed_values_of_the_wrong_kind_are_still_refused(name: str, value: object) -> None:
    """The shortcut for typed values keeps every refusal of the general path."""
    with pytest.raises(LocalProtocolError):
        Request("OPTIONS", "sip:a@b.example")[name] = value


def test_with_params_changes_only_the_parameters() -> None:
    """with_params keeps host, port, URI and display name as they were, byte for byte."""
    via = parse_message(
        b"OPTIONS sip:a@b.example SIP/2.0\r\nVia: SIP/2.0/udp 192.0.2.1:05060;branch=z9hG4bK1\r\n"
        b'From: "A" <sip:%61@b.example;x=1>;tag=9\r\n\r\n'
    )
    top = via.top_via.with_params(received="192.0.2.9", rport="5060")
    assert (top.transport, top.host, top.port, top.branch) == ("UDP", "192.0.2.1", 5060, "z9hG4bK1")
    assert str(top) == "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1;received=192.0.2.9;rport=5060"
    sender = via.from_addr.with_params(tag="10")
    assert str(sender) == "A <sip:%61@b.example;x=1>;tag=10" and sender.tag == "10"
    with pytest.raises(LocalProtocolError):
        Address.any().with_params(expires="0")


ADDRESS_LIKE = ("1.2.3.4", "255.255.255.255", "0.0.0.0", "256.1.1.1", "01.2.3.4", "1.2.3")
OTHER_HOSTS = ("1.2.3.4.5", "a.example", "", "[::1]", "::1", "[1.2.3.4]", "[2001:db8::1]")


@pytest.mark.parametrize("host", [*ADDRESS_LIKE, *OTHER_HOSTS, "2001:db8::1", "[", "[x]"])
def test_ip_literal_reads_what_ipaddress_reads(host: str) -> None:
    """ip_literal's shortcuts for dotted quads and names give ipaddress's answer."""
    try:
        expected = ipaddress.ip_address(host[1:-1] if host.startswith("[") else host)
    except ValueError:
        expected = None
    got = ip_literal(host)
    assert got == expected and type(got) is type(expected)


NAME_LIKE = ("1.2.3.4.example", "a.example.", "-a.example", "a-.example", "a..example", "x")


@pytest.mark.parametrize("host", [*ADDRESS_LIKE, *NAME_LIKE, "1a.b2", "192.168.001.1", "a_b.ex"])
def test_host_pattern_tries_addresses_first_and_accepts_the_same_hosts(host: str) -> None:
    """RFC 3261 §25.1: host = hostname / IPv4address, whichever order the pattern tries."""
    plain = re.compile(rf"{HOSTNAME}|{IPV4}")
    assert bool(HOST_RE.fullmatch(host)) == bool(plain.fullmatch(host))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", {}),
        (";lr", {"lr": None}),
        (";Tag=1;TAG=2", {"tag": "2"}),
        (";a=1;b", {"a": "1", "b": None}),
        (";;", None),
        (";a=", None),
        (";=a", None),
        (";a==b", None),
        (";a=b=c", None),
    ],
)
def test_simple_parameters_split_once_or_send_the_text_to_the_careful_path(
    text: str, expected: dict[str, str | None] | None
) -> None:
    """RFC 3261 §25.1: generic-param = token [ EQUAL gen-value ]; nothing empty passes."""
    got = split_simple_params(text)
    assert (None if got is None else dict(got)) == expected


def test_datagram_without_a_body_reads_like_any_other() -> None:
    """RFC 3261 §18.3: the one-split reading of a bodyless datagram gives the usual message."""
    head = b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP a.example;branch=z9hG4bK1\r\nContent-Length: 0"
    plain = parse_message(head + b"\r\n\r\n")
    assert isinstance(plain, Response) and plain.body == b"" and plain.top_via.branch
    assert parse_message(b"\r\n\r\n" + head + b"\r\n\r\n") == plain
    assert parse_message(head + b"\r\n\r\nleft over\r\n\r\n").body == b""
    with pytest.raises(ParseError, match="exceeds"):
        parse_message(head.replace(b"th: 0", b"th: 5") + b"\r\n\r\n")
    bare = parse_message(b"SIP/2.0 100\r\n\r\n")
    assert isinstance(bare, Response) and (bare.status, bare.reason) == (100, "")
