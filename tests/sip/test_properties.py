"""Properties of the message layer over generated input (Hypothesis).

* Text drawn from the RFC 3261 grammar (``strategies.py``) parses to what it
  means, validates, serializes back byte for byte, and re-parses equal.
* Messages built through the API survive ``parse(bytes(m)) == m``.
* Arbitrary and mutated bytes only ever raise ``ParseError``.
* The stream framer cuts the same messages however the bytes arrive.
* URI comparison is reflexive and symmetric, hash-consistent, and treats an
  escaped unreserved character as the character itself.
"""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

try:  # tests/ may or may not be a package; both layouts work
    from tests.sip.strategies import (
        RESERVED,
        UNRESERVED,
        USER_UNRESERVED,
        AddressModel,
        MessageModel,
        UriModel,
        ViaModel,
        addresses,
        escape,
        hosts,
        messages,
        sip_uris,
        uris,
        vias,
    )
except ImportError:  # pragma: no cover
    from strategies import (
        RESERVED,
        UNRESERVED,
        USER_UNRESERVED,
        AddressModel,
        MessageModel,
        UriModel,
        ViaModel,
        addresses,
        escape,
        hosts,
        messages,
        sip_uris,
        uris,
        vias,
    )

from callscript.sip.abnf import unescape
from callscript.sip.address import Address, parse_address
from callscript.sip.errors import LocalProtocolError, ParseError
from callscript.sip.framing import PING, StreamFramer
from callscript.sip.headers import CSeq
from callscript.sip.message import Message, Request, Response, parse_message
from callscript.sip.uri import URI, parse_uri
from callscript.sip.via import Via, parse_via

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# Whole generated messages cost more to draw; fewer examples keep the suite quick.
HEAVY = settings(SETTINGS, max_examples=100)


def assert_uri_matches(uri: URI, model: UriModel) -> None:
    assert uri.scheme == model.scheme
    if model.scheme in ("sip", "sips"):
        assert (uri.user, uri.password, uri.host, uri.port) == (
            model.user,
            model.password,
            model.host,
            model.port,
        )
        assert dict(uri.params) == dict(model.params)
        assert uri.headers == model.headers
    elif model.scheme == "tel":
        assert uri.user == model.user
        assert dict(uri.params) == dict(model.params)
    else:
        assert uri.opaque == model.opaque


def assert_address_matches(addr: Address, model: AddressModel) -> None:
    assert addr.display == model.display
    assert dict(addr.params) == dict(model.params)
    assert str(addr.uri) == model.uri.text
    assert_uri_matches(addr.uri, model.uri)


def assert_via_matches(via: Via, model: ViaModel) -> None:
    assert (via.transport, via.host, via.port) == (model.transport, model.host, model.port)
    assert dict(via.params) == dict(model.params)


# -- grammar-drawn text ------------------------------------------------------------------


@SETTINGS
@given(uris)
def test_uri_text_parses_to_its_parts_and_prints_back(model: UriModel) -> None:
    """RFC 3261 §19.1.1: every URI part is read as written and printed back unchanged."""
    uri = parse_uri(model.text)
    assert str(uri) == model.text
    assert_uri_matches(uri, model)
    again = parse_uri(str(uri))
    assert again == uri and hash(again) == hash(uri)


@SETTINGS
@given(addresses())
def test_address_text_parses_to_display_uri_and_params(model: AddressModel) -> None:
    """RFC 3261 §25.1: name-addr and addr-spec forms with LWS where the grammar allows it."""
    addr = parse_address(model.text)
    assert_address_matches(addr, model)
    assert str(addr) == model.text.strip(" \t")
    rebuilt = Address(addr.uri, addr.display, addr.params)
    assert parse_address(str(rebuilt)) == addr
    assert parse_address(str(rebuilt)).display == addr.display


@SETTINGS
@given(vias())
def test_via_text_parses_to_transport_sent_by_and_params(model: ViaModel) -> None:
    """RFC 3261 §20.42: LWS around '/' and ':' and ';' and '=' is read like none."""
    via = parse_via(model.text)
    assert_via_matches(via, model)
    assert str(via) == model.text
    rebuilt = Via(via.transport, via.host, via.port, via.params)
    assert parse_via(str(rebuilt)) == via


def check_message(msg: Message, model: MessageModel) -> None:
    if model.uri is not None:
        assert isinstance(msg, Request)
        assert msg.method == model.method
        assert_uri_matches(msg.uri, model.uri)
    else:
        assert isinstance(msg, Response)
        assert (msg.status, msg.reason) == (model.status, model.reason)
    assert len(msg.via) == len(model.vias)
    for via, via_model in zip(msg.via, model.vias, strict=True):
        assert_via_matches(via, via_model)
    assert_address_matches(msg.from_addr, model.from_)
    assert_address_matches(msg.to_addr, model.to)
    assert msg.call_id == model.call_id
    assert (msg.cseq.number, msg.cseq.method) == model.cseq
    assert msg.max_forwards == model.max_forwards
    assert len(msg.contacts) == len(model.contacts)
    for contact, contact_model in zip(msg.contacts, model.contacts, strict=True):
        assert_address_matches(contact, contact_model)
    for name, value in model.unknown:
        assert value in msg.get_all(name)
    assert msg.body == model.body


@HEAVY
@given(messages())
def test_generated_message_parses_validates_and_serializes_byte_for_byte(
    model: MessageModel,
) -> None:
    """RFC 3261 §7.3.1: folding, compact names and any name case read as the plain form."""
    msg = parse_message(model.raw)
    msg.validate()
    check_message(msg, model)
    assert bytes(msg) == model.raw
    again = parse_message(bytes(msg))
    assert again == msg
    assert msg.copy() == msg


@HEAVY
@given(messages())
def test_message_built_through_the_api_round_trips(model: MessageModel) -> None:
    """parse(bytes(m)) == m for a message built from typed values, not from text."""
    parsed = parse_message(model.raw)
    headers: list[tuple[str, object]] = [("Via", v) for v in parsed.via]
    headers += [
        ("From", Address(parsed.from_addr.uri, parsed.from_addr.display, parsed.from_addr.params)),
        ("To", Address(parsed.to_addr.uri, parsed.to_addr.display, parsed.to_addr.params)),
        ("Call-ID", parsed.call_id),
        ("CSeq", CSeq(parsed.cseq.number, parsed.cseq.method)),
    ]
    if parsed.max_forwards is not None:
        headers.append(("Max-Forwards", parsed.max_forwards))
    headers += [("Contact", c) for c in parsed.contacts]
    headers += [(name, value) for name, value in model.unknown]
    built: Message
    if isinstance(parsed, Request):
        built = Request(parsed.method, parsed.uri, headers)
    else:
        assert isinstance(parsed, Response)
        built = Response(parsed.status, parsed.reason, headers)
    built.set_body(model.body, "application/octet-stream" if model.body else None)
    again = parse_message(bytes(built))
    again.validate()
    assert again == built
    check_message(again, model)


# -- bad input only ever raises ParseError ----------------------------------------------------


def exercise(data: bytes) -> None:
    """Parse, validate and read everything; only ParseError may come out."""
    try:
        msg = parse_message(data)
    except ParseError:
        return
    bytes(msg)
    str(msg)
    copy = msg.copy()
    assert copy == msg
    for name in msg.header_names():
        with contextlib.suppress(ParseError):
            msg.get_all(name)
    for accessor in ("via", "top_via", "from_addr", "to_addr", "call_id", "cseq", "contacts"):
        with contextlib.suppress(ParseError):
            getattr(msg, accessor)
    if isinstance(msg, Request):
        with contextlib.suppress(ParseError):
            msg.uri  # noqa: B018
    try:
        msg.validate()
    except ParseError as exc:
        assert 400 <= exc.status <= 599
        return
    # A message that validates also re-serializes to an equal one.
    again = parse_message(bytes(msg))
    if "Content-Length" not in msg:
        again.discard("Content-Length")
    assert again == msg


@SETTINGS
@given(st.binary(max_size=512))
def test_arbitrary_bytes_only_raise_parse_error(data: bytes) -> None:
    """Random bytes never crash the parser: ParseError or a message."""
    exercise(data)


@SETTINGS
@given(
    st.text(
        st.sampled_from([*'SIP/2.0 INVITE sip:a@b.c;<>"\\,:=%0F\r\n\t ;tag=z9hG4bK', "\x00", "é"]),
        max_size=300,
    )
)
def test_sip_looking_noise_only_raises_parse_error(text: str) -> None:
    """Noise made of SIP's own separators never crashes the parser."""
    exercise(text.encode("utf-8"))
    exercise(("INVITE sip:a@b SIP/2.0\r\nVia: " + text + "\r\n\r\n").encode("utf-8"))


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A valid message with bytes flipped, inserted, removed or cut off."""
    data = bytearray(draw(messages()).raw)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "duplicate"]))
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        if kind == "flip":
            data[at] = draw(st.sampled_from(b'\x00\r\n \t:;,<>"\\%@[]=/\xff\xc3A0'))
        elif kind == "insert":
            data[at:at] = draw(
                st.sampled_from([b"\r\n", b"\r\n ", b" ", b",", b";", b'"', b"<", b"9" * 30])
            )
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 8))]
        elif kind == "truncate":
            del data[at:]
        else:
            data[at:at] = data[at : at + draw(st.integers(1, 40))]
    return bytes(data)


@HEAVY
@given(mutated())
def test_mutated_messages_only_raise_parse_error(data: bytes) -> None:
    """A damaged message is refused with ParseError, or parsed; nothing else escapes."""
    exercise(data)


# -- stream framing ----------------------------------------------------------------------------


@st.composite
def streams(draw: st.DrawFn) -> tuple[list[bytes], bytes]:
    """Messages and CRLF keep-alives back to back, as a TCP peer sends them."""
    parts: list[bytes] = []
    expected: list[bytes] = []
    for model in draw(st.lists(messages(), min_size=1, max_size=4)):
        crlfs = draw(st.integers(0, 5))
        parts.append(b"\r\n" * crlfs)
        expected += [PING] * (crlfs // 2)
        parts.append(model.raw)
        expected.append(model.raw)
    return expected, b"".join(parts)


@HEAVY
@given(streams(), st.data())
def test_framer_gives_the_same_messages_whole_bytewise_and_in_chunks(
    stream: tuple[list[bytes], bytes], data: st.DataObject
) -> None:
    """RFC 3261 §18.3: framing by Content-Length does not depend on how reads are split."""
    expected, wire = stream
    whole = StreamFramer().feed(wire)
    framer = StreamFramer()
    bytewise = [out for i in range(len(wire)) for out in framer.feed(wire[i : i + 1])]
    framer = StreamFramer()
    chunked: list[bytes] = []
    at = 0
    while at < len(wire):
        size = data.draw(st.integers(1, 200))
        chunked += framer.feed(wire[at : at + size])
        at += size
    assert whole == bytewise == chunked == expected
    assert framer.buffered == 0
    for raw in (m for m in whole if m != PING):
        assert parse_message(raw) == parse_message(raw.lstrip(b"\r\n"))


# -- URI comparison ---------------------------------------------------------------------------


@SETTINGS
@given(uris, uris)
def test_uri_equality_is_reflexive_symmetric_and_hash_consistent(a: UriModel, b: UriModel) -> None:
    """RFC 3261 §19.1.4: a URI equals itself; a == b iff b == a; equal URIs hash alike."""
    ua, ub = parse_uri(a.text), parse_uri(b.text)
    assert ua == ua and ua == parse_uri(a.text)
    assert (ua == ub) == (ub == ua)
    if ua == ub:
        assert hash(ua) == hash(ub)


@st.composite
def respelled_users(draw: st.DrawFn) -> tuple[str, str, bool]:
    """A user part and the same user with some characters escaped or un-escaped."""
    chars = draw(st.lists(st.sampled_from(UNRESERVED + USER_UNRESERVED), min_size=1, max_size=10))
    plain = "".join(chars)
    flips = draw(st.lists(st.booleans(), min_size=len(chars), max_size=len(chars)))
    upper = draw(st.booleans())
    other = "".join(escape(c, upper=upper) if f else c for c, f in zip(chars, flips, strict=True))
    # Escaping a reserved character changes the URI; escaping any other does not.
    same = not any(f and c in RESERVED for c, f in zip(chars, flips, strict=True))
    return plain, other, same


@SETTINGS
@given(respelled_users(), hosts)
def test_escaped_and_plain_unreserved_characters_compare_equal(
    users: tuple[str, str, bool], host: str
) -> None:
    """RFC 3261 §19.1.4: an escaped unreserved character equals the character itself."""
    plain, other, same = users
    a, b = parse_uri(f"sip:{plain}@{host}"), parse_uri(f"sip:{other}@{host}")
    assert (a == b) is same
    assert (b == a) is same
    assert unescape(a.user or "") == unescape(b.user or "")
    if same:
        assert hash(a) == hash(b)


@SETTINGS
@given(sip_uris(), st.sampled_from(["host", "port", "user"]))
def test_changed_uri_parts_print_and_reparse(model: UriModel, part: str) -> None:
    """uri.replace() keeps every other part and prints a URI that parses back equal."""
    uri = parse_uri(model.text)
    value: object = {"host": "changed.example.com", "port": 5070, "user": "changed"}[part]
    changed = uri.replace(**{part: value})
    assert getattr(changed, part) == value
    again = parse_uri(str(changed))
    assert again == changed
    assert again.params == uri.params


@SETTINGS
@given(st.text(max_size=10), st.sampled_from("\r\n \t\x00"), st.text(max_size=10))
def test_uri_replace_never_prints_an_injected_line(before: str, bad: str, after: str) -> None:
    """A changed URI never carries CR, LF or whitespace: it raises instead."""
    with pytest.raises(LocalProtocolError):
        URI.parse("sip:a@b.example").replace(user=before + bad + after)
