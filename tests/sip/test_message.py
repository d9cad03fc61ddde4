"""Requests and responses: parse, read, change, serialize, validate (RFC 3261 §7, §8.1.1, §18.3)."""

from __future__ import annotations

import pytest

from callscript.sip.address import Address
from callscript.sip.errors import LocalProtocolError, ParseError
from callscript.sip.headers import CSeq, Number, Text
from callscript.sip.message import Request, Response, parse_message
from callscript.sip.uri import URI
from callscript.sip.via import Via

INVITE = (
    b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n"
    b"Via: SIP/2.0/UDP bigbox3.site3.atlanta.example.com;branch=z9hG4bK77ef4c2312983.1,"
    b" SIP/2.0/TCP client.atlanta.example.com:5060;branch=z9hG4bK74bf9;received=192.0.2.101\r\n"
    b"Max-Forwards: 70\r\n"
    b'To: "Bob" <sip:bob@biloxi.example.com>\r\n'
    b'From: "Alice" <sip:alice@atlanta.example.com>;tag=1928301774\r\n'
    b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Contact: <sip:alice@pc33.atlanta.example.com>\r\n"
    b"X-Odd-Spacing :   kept   exactly  \r\n"
    b"Subject: folded\r\n   over two lines\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: 5\r\n"
    b"\r\n"
    b"v=0\r\n"
)

RESPONSE = (
    b"SIP/2.0 180 Ringing\r\n"
    b"Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds;received=192.0.2.1\r\n"
    b'To: "Bob" <sip:bob@biloxi.example.com>;tag=a6c85cf\r\n'
    b'From: "Alice" <sip:alice@atlanta.example.com>;tag=1928301774\r\n'
    b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)


def invite() -> Request:
    msg = parse_message(INVITE)
    assert isinstance(msg, Request)
    return msg


# -- reading ---------------------------------------------------------------------------------


def test_request_line_and_typed_header_values() -> None:
    """RFC 3261 §7.1: the request line gives method and Request-URI; headers give typed values."""
    msg = invite()
    assert msg.method == "INVITE"
    assert msg.uri == URI.parse("sip:bob@biloxi.example.com")
    assert msg["From"].uri.host == "atlanta.example.com"
    assert msg["From"].params["tag"] == "1928301774"
    assert msg["To"].display == "Bob"
    assert msg["Max-Forwards"].value == 70
    assert msg["CSeq"] == CSeq(314159, "INVITE")
    assert msg["Call-ID"] == "a84b4c76e66710@pc33.atlanta.example.com"
    assert msg["X-Odd-Spacing"] == "kept   exactly"
    assert msg["Subject"] == "folded over two lines"
    assert msg.body == b"v=0\r\n"


def test_list_headers_give_every_value_top_first() -> None:
    """RFC 3261 §7.3.1: Via values over several lines and commas read as one list, top first."""
    msg = invite()
    hosts = [v.host for v in msg["Via"]]
    assert hosts == [
        "pc33.atlanta.example.com",
        "bigbox3.site3.atlanta.example.com",
        "client.atlanta.example.com",
    ]
    assert msg.via == msg["Via"] == msg.get_all("v")
    assert msg.top_via.branch == "z9hG4bK776asdhds"
    assert msg.via[2].received == "192.0.2.101"


def test_names_are_case_insensitive_and_compact_forms_work() -> None:
    """RFC 3261 §7.3.3: 'v', 'VIA' and 'Via' name the same header."""
    msg = invite()
    assert msg["f"] == msg["FROM"] == msg["from"]
    assert "i" in msg and "CALL-ID" in msg and "Route" not in msg
    assert msg.get("m") == msg.contacts
    assert msg.get("Route") == [] and msg.get("Expires") is None and msg.get("Expires", 5) == 5
    with pytest.raises(KeyError):
        msg["Expires"]
    assert "bad name" not in msg and 42 not in msg
    assert msg.get("bad name", "d") == "d" and msg.get_all("bad name") == []


def test_typed_accessors_for_the_stack() -> None:
    """from_addr, to_addr, call_id, cseq, max_forwards and contacts read the usual headers."""
    msg = invite()
    assert msg.from_addr.tag == "1928301774" and msg.to_addr.tag is None
    assert msg.call_id == "a84b4c76e66710@pc33.atlanta.example.com"
    assert (msg.cseq.number, msg.cseq.method) == (314159, "INVITE")
    assert msg.max_forwards == 70
    assert [str(c.uri) for c in msg.contacts] == ["sip:alice@pc33.atlanta.example.com"]
    assert msg.header_names()[0] == "Via"
    assert ("Subject", "folded over two lines") in list(msg.raw_headers())


def test_missing_required_header_raises_parse_error_from_accessors() -> None:
    """A missing Call-ID/From/To/CSeq/Via is the peer's error: ParseError, not KeyError."""
    msg = parse_message(b"OPTIONS sip:a@b.example SIP/2.0\r\nContent-Length: 0\r\n\r\n")
    for accessor in ("top_via", "from_addr", "to_addr", "call_id", "cseq"):
        with pytest.raises(ParseError, match="missing"):
            getattr(msg, accessor)
    assert msg.via == [] and msg.contacts == [] and msg.max_forwards is None


def test_response_status_reason_and_method() -> None:
    """RFC 3261 §7.2: the status line gives status and reason; the method comes from CSeq."""
    msg = parse_message(RESPONSE)
    assert isinstance(msg, Response)
    assert (msg.status, msg.reason, msg.method) == (180, "Ringing", "INVITE")
    assert msg.to_addr.tag == "a6c85cf"
    assert repr(msg) == "<Response 180 Ringing>"
    assert repr(invite()) == "<Request INVITE sip:bob@biloxi.example.com>"


def test_untouched_lines_serialize_byte_for_byte() -> None:
    """A received message prints exactly as received, odd spacing and folds included."""
    assert bytes(invite()) == INVITE
    assert bytes(parse_message(RESPONSE)) == RESPONSE
    assert str(invite()) == INVITE.decode()
    msg = invite()
    msg.set_top("Via", msg.top_via.with_params(received="192.0.2.9"))
    out = bytes(msg)
    assert b"X-Odd-Spacing :   kept   exactly  \r\n" in out
    assert b"Subject: folded\r\n   over two lines\r\n" in out


def test_serialization_adds_content_length_when_absent() -> None:
    """RFC 3261 §18.3: Content-Length is always written, so a stream peer can frame it."""
    msg = parse_message(b"OPTIONS sip:a@b.example SIP/2.0\r\nCall-ID: x\r\n\r\nbody")
    assert "Content-Length" not in msg and msg.body == b"body"
    assert bytes(msg).endswith(b"Call-ID: x\r\nContent-Length: 4\r\n\r\nbody")


# -- changing ---------------------------------------------------------------------------------


def test_insert_via_on_top_and_pop_it_again() -> None:
    """RFC 3261 §16.7 step 3: the proxy pops its own Via; insert() pushes one on top."""
    msg = invite()
    mine = Via("UDP", "proxy.example.com", 5060, {"branch": "z9hG4bKproxy1"})
    msg.insert("Via", mine)
    assert msg.top_via == mine and len(msg.via) == 4
    assert bytes(msg).startswith(
        b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP proxy.example.com:5060;branch=z9hG4bKproxy1\r\n"
    )
    assert msg.pop("Via") == mine
    assert bytes(msg) == INVITE


def test_pop_from_a_line_holding_several_values() -> None:
    """RFC 3261 §7.3.1: popping the top value of a comma list keeps the rest of the line."""
    msg = invite()
    msg.pop("v")
    top = msg.pop("Via")
    assert top.host == "bigbox3.site3.atlanta.example.com"
    assert [v.host for v in msg.via] == ["client.atlanta.example.com"]
    kept = b"Via: SIP/2.0/TCP client.atlanta.example.com:5060;branch=z9hG4bK74bf9;received="
    assert kept + b"192.0.2.101\r\n" in bytes(msg)
    msg.pop("Via")
    assert "Via" not in msg
    with pytest.raises(KeyError):
        msg.pop("Via")


def test_set_top_replaces_only_the_topmost_value() -> None:
    """RFC 3261 §18.2.1: received is added to the top Via; the others stay as they were."""
    msg = invite()
    msg.pop("Via")
    msg.set_top("Via", msg.top_via.with_params(received="192.0.2.7"))
    assert msg.via[0].received == "192.0.2.7"
    assert msg.via[1].received == "192.0.2.101"
    with pytest.raises(KeyError):
        msg.set_top("Route", Address(URI.parse("sip:p.example;lr")))


def test_record_route_is_prepended() -> None:
    """RFC 3261 §16.6 step 4: a proxy inserts its Record-Route above any existing ones."""
    msg = invite()
    first = Address(URI.parse("sip:p1.example.com;lr"))
    second = Address(URI.parse("sip:p2.example.com;lr"))
    msg.insert("Record-Route", first)
    msg.insert("Record-Route", second)
    assert [str(a.uri) for a in msg["Record-Route"]] == [
        "sip:p2.example.com;lr",
        "sip:p1.example.com;lr",
    ]
    assert msg.header_names()[:2] == ["Record-Route", "Record-Route"]
    assert parse_message(bytes(msg)) == msg


def test_max_forwards_decrement() -> None:
    """RFC 3261 §16.6 step 3: the proxy decrements Max-Forwards in its copy."""
    msg = invite()
    copy = msg.copy()
    copy["Max-Forwards"] = copy.max_forwards - 1  # type: ignore[operator]
    assert copy.max_forwards == 69 and msg.max_forwards == 70
    assert b"Max-Forwards: 69\r\n" in bytes(copy)


def test_request_uri_replace() -> None:
    """RFC 3261 §16.6 step 2: the Request-URI of a copy is replaced by the target."""
    msg = invite()
    msg.uri = URI.parse("sip:bob@192.0.2.4:5070")
    assert bytes(msg).startswith(b"INVITE sip:bob@192.0.2.4:5070 SIP/2.0\r\n")
    msg.uri = "sips:bob@biloxi.example.com"  # type: ignore[assignment]
    assert msg.uri.secure
    with pytest.raises(ParseError):
        msg.uri = "not a uri"  # type: ignore[assignment]
    with pytest.raises(LocalProtocolError):
        msg.uri = URI("sip", host="evil\r\nVia: x")
    with pytest.raises(LocalProtocolError):
        msg.uri = URI("sip", host="bücher.example")


def test_add_replace_discard_and_delete_headers() -> None:
    """add() appends, msg[name] = v replaces every line, discard()/del remove them."""
    msg = invite()
    msg.add("Route", Address(URI.parse("sip:p1.example.com;lr")))
    msg.add("Route", "<sip:p2.example.com;lr>")
    assert len(msg["Route"]) == 2
    msg["Route"] = [Address(URI.parse("sip:p3.example.com;lr")), "<sip:p4.example.com;lr>"]
    assert [str(r.uri) for r in msg["Route"]] == ["sip:p3.example.com;lr", "sip:p4.example.com;lr"]
    assert msg.header_names().count("Route") == 1
    msg["Via"] = Via("TCP", "only.example.com", None, {"branch": "z9hG4bK1"})
    assert len(msg.via) == 1 and msg.header_names().count("Via") == 1
    assert msg.discard("Route") == 1 and "Route" not in msg
    assert msg.discard("Route") == 0
    msg["X-New"] = "hello"
    assert msg["x-new"] == "hello" and b"X-New: hello\r\n" in bytes(msg)
    del msg["x-new"]
    with pytest.raises(KeyError):
        del msg["x-new"]
    msg["v"] = "SIP/2.0/UDP compact.example.com;branch=z9hG4bK2"
    assert b"Via: SIP/2.0/UDP compact.example.com;branch=z9hG4bK2\r\n" in bytes(msg)
    assert parse_message(bytes(msg)) == msg


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("Subject", "x\r\nVia: SIP/2.0/UDP evil"),
        ("Via", []),
        ("From", [Address(URI.parse("sip:a@b.example")), Address(URI.parse("sip:c@d.example"))]),
        ("Bad Name", "x"),
        ("Max-Forwards", 256),
        ("Via", Text("garbage")),
    ],
)
def test_changes_that_would_corrupt_the_message_raise(name: str, value: object) -> None:
    """Our own mistakes raise LocalProtocolError and leave the message as it was."""
    msg = invite()
    for change in (msg.__setitem__, msg.add, msg.insert):
        with pytest.raises(LocalProtocolError):
            change(name, value)
    assert bytes(msg) == INVITE


def test_set_body_keeps_content_length_and_type_in_step() -> None:
    """RFC 3261 §20.14: Content-Length counts the body's octets."""
    msg = invite()
    msg.set_body(b"\x00\xff binary", "application/octet-stream")
    assert msg["Content-Length"] == Number(9)
    assert msg["Content-Type"].mime == "application/octet-stream"
    assert bytes(msg).endswith(b"Content-Length: 9\r\n\r\n\x00\xff binary")
    assert parse_message(bytes(msg)).body == b"\x00\xff binary"


def test_copy_is_independent() -> None:
    """copy() shares nothing that a change to either message can reach."""
    msg = invite()
    copy = msg.copy()
    assert copy == msg
    copy.insert("Via", Via("UDP", "p.example.com", None, {"branch": "z9hG4bKc"}))
    copy["Max-Forwards"] = 1
    copy.uri = URI.parse("sip:other@example.com")
    copy.set_body(b"")
    copy.pop("Contact")
    assert bytes(msg) == INVITE
    assert msg != copy
    response = parse_message(RESPONSE)
    twin = response.copy()
    assert isinstance(twin, Response) and twin == response and twin is not response


def test_constructed_request_and_response_round_trip() -> None:
    """parse(bytes(m)) == m for messages built through the API."""
    request = Request(
        "OPTIONS",
        "sip:carol@chicago.example.com",
        [
            ("Via", Via("UDP", "pc33.atlanta.example.com", None, {"branch": "z9hG4bKhjhs8ass877"})),
            ("Max-Forwards", 70),
            ("To", "<sip:carol@chicago.example.com>"),
            ("From", Address(URI.parse("sip:alice@atlanta.example.com"), "Alice", {"tag": "1928"})),
            ("Call-ID", "a84b4c76e66710"),
            ("CSeq", CSeq(63104, "OPTIONS")),
            ("Accept", "application/sdp"),
        ],
    )
    again = parse_message(bytes(request))
    again.validate()
    assert again["Content-Length"] == 0
    again.discard("Content-Length")
    assert again == request
    response = Response(200, "OK", [("Via", request.top_via), ("CSeq", request.cseq)], b"hi")
    response.set_body(b"hi")
    assert parse_message(bytes(response)) == response
    assert bytes(Response(100)).startswith(b"SIP/2.0 100 \r\n")


@pytest.mark.parametrize(
    "build",
    [
        lambda: Request("BAD METHOD", "sip:a@b.example"),
        lambda: Request("", "sip:a@b.example"),
        lambda: Response(99, "x"),
        lambda: Response(700, "x"),
        lambda: Response(200, "O\r\nK"),
        lambda: Response(200, "lone \ud800 surrogate"),
    ],
)
def test_constructors_refuse_bad_start_lines(build: object) -> None:
    """RFC 3261 §7.1, §7.2: a method is a token; status is 100-699; no controls in the reason."""
    with pytest.raises(LocalProtocolError):
        build()  # type: ignore[operator]


# -- parsing details ---------------------------------------------------------------------------


def test_crlfs_before_the_start_line_are_ignored() -> None:
    """RFC 3261 §7.5: CRLFs received before a start line are skipped."""
    assert parse_message(b"\r\n\r\n" + RESPONSE) == parse_message(RESPONSE)


def test_datagram_body_is_cut_at_content_length() -> None:
    """RFC 4475 §3.1.1.8: octets after Content-Length in a datagram are ignored."""
    msg = parse_message(RESPONSE.replace(b"Content-Length: 0", b"l: 2") + b"abXYZ")
    assert msg.body == b"ab"
    folded = RESPONSE.replace(b"Content-Length: 0", b"Content-Length:\r\n 3") + b"abcd"
    assert parse_message(folded).body == b"abc"
    assert (
        parse_message(RESPONSE.replace(b"Content-Length: 0", b"Content-Length: 002") + b"ab").body
        == b"ab"
    )


def test_datagram_without_content_length_runs_to_its_end() -> None:
    """RFC 3261 §18.3: on UDP without Content-Length the body is the rest of the datagram."""
    msg = parse_message(RESPONSE.replace(b"Content-Length: 0\r\n", b"") + b"rest of it")
    assert msg.body == b"rest of it"


def test_content_length_longer_than_the_datagram_is_refused() -> None:
    """RFC 3261 §18.3: a datagram shorter than its Content-Length is discarded (400)."""
    with pytest.raises(ParseError, match="exceeds") as info:
        parse_message(RESPONSE.replace(b"Content-Length: 0", b"Content-Length: 9999") + b"short")
    assert info.value.status == 400


def test_conflicting_content_lengths_are_refused_and_equal_ones_validate_as_duplicates() -> None:
    """RFC 3261 §18.3: two different Content-Length values cannot frame (RFC 4475 §3.3.9)."""
    two = RESPONSE.replace(b"Content-Length: 0\r\n", b"Content-Length: 0\r\nl: 1\r\n")
    with pytest.raises(ParseError, match="conflicting Content-Length"):
        parse_message(two + b"x")
    same = parse_message(
        RESPONSE.replace(b"Content-Length: 0\r\n", b"Content-Length: 0\r\nl: 0\r\n")
    )
    with pytest.raises(ParseError, match="more than one Content-Length"):
        same.validate()


@pytest.mark.parametrize("value", [b"-999", b"abc", b"1 2", b"", b"99999999999999999999999"])
def test_bad_content_length_is_refused(value: bytes) -> None:
    """RFC 3261 §20.14: Content-Length = 1*DIGIT (RFC 4475 §3.1.2.3)."""
    with pytest.raises(ParseError, match="Content-Length"):
        parse_message(RESPONSE.replace(b"Content-Length: 0", b"Content-Length: " + value))


def test_message_larger_than_max_size_is_513() -> None:
    """RFC 3261 §21.5.14: a message over the configured size is answered 513."""
    with pytest.raises(ParseError) as info:
        parse_message(INVITE, max_size=100)
    assert info.value.status == 513
    assert parse_message(INVITE, max_size=len(INVITE)) == invite()


def test_bare_lf_line_ends_are_accepted() -> None:
    """RFC 3261 §7: bare-LF line ends parse like CRLF ones (a documented deviation)."""
    msg = parse_message(RESPONSE.replace(b"\r\n", b"\n"))
    assert msg == parse_message(RESPONSE)
    assert bytes(msg) == RESPONSE


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "not terminated"),
        (b"INVITE sip:a@b SIP/2.0\r\nVia: x", "not terminated"),
        (b"INVITE sip:a@b SIP/2.0\r\nVia: a\rb\r\n\r\n", "bare CR or LF"),
        (b"INVITE sip:a@b SIP/2.0\r\nVia: a\nb: c\r\n\r\n", "bare CR or LF"),
        (b"INVITE sip:a@b SIP/2.0\r\n folded: start\r\n\r\n", "continuation line"),
        (b"INVITE sip:a@b SIP/2.0\r\nTo: x\r\nno colon here\r\n\r\n", "without a name"),
        (b"INVITE sip:a@b SIP/2.0\r\nTo: x\r\n: empty name\r\n\r\n", "without a name"),
        (b"INVITE sip:a@b SIP/2.0\r\nBad Name: x\r\n\r\n", "bad header name"),
    ],
)
def test_malformed_header_sections(data: bytes, reason: str) -> None:
    """RFC 3261 §7.3.1: header lines are 'name: value' with CRLF ends and LWS folds."""
    with pytest.raises(ParseError, match=reason):
        parse_message(data)


def test_header_errors_name_their_line() -> None:
    """A bad header line reports its line number, counting folded lines."""
    data = b"INVITE sip:a@b SIP/2.0\r\nSubject: a\r\n b\r\nVia: x\r\nBad Name: y\r\n\r\n"
    with pytest.raises(ParseError) as info:
        parse_message(data)
    assert info.value.line == 4
    bad_via = parse_message(b"INVITE sip:a@b SIP/2.0\r\nSubject: a\r\n b\r\nVia: x\r\n\r\n")
    with pytest.raises(ParseError) as info:
        bad_via.validate()
    assert info.value.line == 4 and "bad Via header" in str(info.value)


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"INVITE  sip:a@b SIP/2.0", "more than one SP"),
        (b"INVITE sip:a@b SIP/2.0  ", "after the SIP-Version"),
        (b"INVITE sip:a@b; lr SIP/2.0", "inside the Request-URI"),
        (b"INVITE sip:a@b", "missing element"),
        (b"INV ITE", "missing element"),
        (b"INV@TE sip:a@b SIP/2.0", "not a token"),
        (b"INVITE sip:a@b HTTP/1.1", "bad SIP version"),
        (b"INVITE sip:a@b SIP/2", "bad SIP version"),
    ],
)
def test_request_line_errors_name_the_problem(line: bytes, reason: str) -> None:
    """RFC 3261 §7.1: Method SP Request-URI SP SIP-Version, one SP each (RFC 4475 §3.1.2.9)."""
    with pytest.raises(ParseError, match=reason) as info:
        parse_message(line + b"\r\n\r\n")
    assert info.value.line == 1 and info.value.status == 400


def test_other_sip_versions_are_505_and_the_version_is_case_insensitive() -> None:
    """RFC 3261 §21.5.6: SIP/3.0 gets 505; 'sip/2.0' is SIP/2.0."""
    for line in (b"INVITE sip:a@b SIP/3.0", b"SIP/7.0 200 OK"):
        with pytest.raises(ParseError) as info:
            parse_message(line + b"\r\n\r\n")
        assert info.value.status == 505
    msg = parse_message(b"OPTIONS sip:a@b.example sip/2.0\r\n\r\n")
    assert msg.start_line == "OPTIONS sip:a@b.example SIP/2.0"


@pytest.mark.parametrize(
    ("line", "status", "reason"),
    [
        (b"SIP/2.0 200 OK", 200, "OK"),
        (b"SIP/2.0 100 ", 100, ""),
        (b"SIP/2.0 100", 100, ""),
        (b"SIP/2.0 699 Weird\tbut fine", 699, "Weird\tbut fine"),
    ],
)
def test_status_lines(line: bytes, status: int, reason: str) -> None:
    """RFC 3261 §7.2: SIP-Version SP Status-Code SP Reason-Phrase; the reason may be empty."""
    msg = parse_message(line + b"\r\n\r\n")
    assert isinstance(msg, Response) and (msg.status, msg.reason) == (status, reason)


@pytest.mark.parametrize(
    "line", [b"SIP/2.0 4294967301 Big", b"SIP/2.0 20 OK", b"SIP/2.0 2OO OK", b"SIP/2.0 200OK"]
)
def test_status_code_must_be_three_digits(line: bytes) -> None:
    """RFC 3261 §7.2: Status-Code is 3DIGIT (RFC 4475 §3.1.2.19)."""
    with pytest.raises(ParseError, match="three digits"):
        parse_message(line + b"\r\n\r\n")


@pytest.mark.parametrize("code", [b"000", b"099", b"700", b"999"])
def test_status_code_must_be_100_to_699(code: bytes) -> None:
    """RFC 3261 §21: responses run from 1xx to 6xx."""
    with pytest.raises(ParseError, match="100-699"):
        parse_message(b"SIP/2.0 " + code + b" X\r\n\r\n")


# -- validate -----------------------------------------------------------------------------------


def test_valid_messages_validate() -> None:
    """A complete request and response pass validate()."""
    invite().validate()
    parse_message(RESPONSE).validate()


@pytest.mark.parametrize("header", [b"To", b"From", b"CSeq", b"Call-ID", b"Via"])
def test_missing_mandatory_header_fails_validation(header: bytes) -> None:
    """RFC 3261 §8.1.1: To, From, CSeq, Call-ID and Via are mandatory (RFC 4475 §3.3.1)."""
    lines = [ln for ln in RESPONSE.split(b"\r\n") if not ln.startswith(header + b":")]
    msg = parse_message(b"\r\n".join(lines))
    with pytest.raises(ParseError, match=f"missing {header.decode()}") as info:
        msg.validate()
    assert info.value.status == 400


@pytest.mark.parametrize("header", [b"To", b"From", b"CSeq", b"Call-ID", b"Max-Forwards"])
def test_duplicated_single_header_fails_validation(header: bytes) -> None:
    """RFC 3261 §7.3.1: headers that are not lists appear once (RFC 4475 §3.3.8)."""
    line = next(ln for ln in INVITE.split(b"\r\n") if ln.startswith(header + b":"))
    msg = parse_message(INVITE.replace(line + b"\r\n", line + b"\r\n" + line + b"\r\n"))
    with pytest.raises(ParseError, match=f"more than one {header.decode()}"):
        msg.validate()


def test_cseq_method_must_match_the_request_method() -> None:
    """RFC 3261 §8.1.1.5: the CSeq method matches the request's (RFC 4475 §3.1.2.17)."""
    msg = parse_message(INVITE.replace(b"INVITE sip:", b"OPTIONS sip:"))
    with pytest.raises(ParseError, match="CSeq method INVITE does not match OPTIONS"):
        msg.validate()


def test_request_uri_may_not_carry_headers() -> None:
    """RFC 3261 §19.1.1: headers are not allowed in a Request-URI (RFC 4475 §3.1.2.11)."""
    msg = parse_message(
        INVITE.replace(b"sip:bob@biloxi.example.com SIP", b"sip:bob@b.example?Route=x SIP")
    )
    with pytest.raises(ParseError, match="must not carry headers") as info:
        msg.validate()
    assert info.value.line == 1


def test_control_characters_fail_validation() -> None:
    """RFC 3261 §25.1: TEXT-UTF8 and Reason-Phrase exclude control characters (HTAB aside)."""
    with pytest.raises(ParseError, match="control character in Subject"):
        parse_message(INVITE.replace(b"over two lines", b"over\x00two")).validate()
    with pytest.raises(ParseError, match="reason phrase"):
        parse_message(RESPONSE.replace(b"Ringing", b"Ring\x07ing")).validate()


def test_bad_uri_inside_an_address_fails_validation() -> None:
    """The URI of an address is parsed lazily; validate() parses and checks it."""
    msg = parse_message(
        INVITE.replace(b"<sip:alice@pc33.atlanta.example.com>", b"<sip:alice@bad_host>")
    )
    with pytest.raises(ParseError, match="bad Contact URI"):
        msg.validate()


# -- linear time and no hangs -------------------------------------------------------------------

HEAD = (
    b"INVITE sip:a@b.example SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP h.example;branch=z9hG4bK1\r\n"
    b"To: <sip:a@b.example>\r\nFrom: <sip:c@d.example>;tag=1\r\n"
    b"Call-ID: x\r\nCSeq: 1 INVITE\r\n"
)


def outcome(data: bytes) -> str:
    """Parse, validate, print; 'ok' or the ParseError text (nothing else may escape)."""
    try:
        msg = parse_message(data)
        msg.validate()
        bytes(msg)
        return "ok"
    except ParseError as exc:
        return str(exc)


@pytest.mark.timeout(20)
def test_one_megabyte_of_folded_header_lines() -> None:
    """RFC 3261 §7.3.1: a header folded 350,000 times is joined and unfolded in linear time."""
    data = HEAD + b"X-Long: a" + b"\r\n b" * 350_000 + b"\r\nContent-Length: 0\r\n\r\n"
    assert outcome(data) == "ok"
    spaces = HEAD + b"X-Sp: a" + b" " * 1_000_000 + b"x\r\n b\r\nContent-Length: 0\r\n\r\n"
    assert outcome(spaces) == "ok"


@pytest.mark.timeout(20)
def test_ten_thousand_headers() -> None:
    """10,000 header lines (and 10,000 Vias) parse and validate."""
    many = (
        HEAD + b"".join(b"X-H%d: v\r\n" % i for i in range(10_000)) + b"Content-Length: 0\r\n\r\n"
    )
    assert outcome(many) == "ok"
    vias = HEAD + b"".join(b"Via: SIP/2.0/UDP h%d.example\r\n" % i for i in range(10_000))
    assert outcome(vias + b"Content-Length: 0\r\n\r\n") == "ok"
    assert len(parse_message(vias + b"\r\n").via) == 10_001


@pytest.mark.timeout(20)
def test_huge_numbers_are_refused_without_huge_arithmetic() -> None:
    """RFC 4475 §3.1.2.4: overlarge CSeq, Content-Length, Max-Forwards, status stay strings."""
    digits = b"9" * 100_000
    assert "CSeq number" in outcome(HEAD.replace(b"CSeq: 1", b"CSeq: " + digits) + b"\r\n")
    assert "Content-Length" in outcome(HEAD + b"Content-Length: " + digits + b"\r\n\r\n")
    assert "Max-Forwards" in outcome(HEAD + b"Max-Forwards: " + digits + b"\r\n\r\n")
    assert "three digits" in outcome(b"SIP/2.0 " + digits + b" OK\r\n\r\n")
    assert "port" in outcome(HEAD.replace(b"h.example;", b"h.example:" + digits + b";") + b"\r\n")
    assert "port" in outcome(
        HEAD.replace(b"sip:a@b.example SIP", b"sip:a@b:" + digits + b" SIP") + b"\r\n"
    )


@pytest.mark.timeout(20)
def test_deeply_nested_quotes_and_brackets() -> None:
    """Deep runs of quotes, backslashes and angle brackets end in a result or a ParseError."""
    for value in (
        b'"\\' * 300_000,
        b'"\\"' * 300_000 + b"<sip:a@b>",
        b"<" * 300_000 + b"sip:a@b" + b">" * 300_000,
        b"<" * 500_000,
        b'"' * 500_001,
        b"(" * 300_000,
        b"a " * 300_000 + b"<sip:a@b>",
        b"<sip:a@b>," * 50_000 + b"<sip:a@b>",
        b";" * 500_000,
    ):
        for header in (b"To", b"Contact", b"Via", b"X-Any"):
            data = HEAD.replace(b"To: <sip:a@b.example>\r\n", b"") + header + b": " + value
            result = outcome(data + b"\r\nContent-Length: 0\r\n\r\n")
            assert isinstance(result, str)


@pytest.mark.timeout(20)
def test_long_runs_inside_uris_and_vias() -> None:
    """Million-character hosts, labels and parameter lists fail in linear time."""
    for uri in (
        b"sip:" + b"a" * 1_000_000 + b"!",
        b"sip:b" + b";x" * 300_000 + b";",
        b"sip:" + b"a-" * 300_000,
    ):
        assert outcome(b"INVITE " + uri + b" SIP/2.0\r\n\r\n") != "ok"
    for via in (b"a" * 1_000_000 + b"!", b"a." * 500_000 + b"!", b"h" + b";a" * 300_000 + b";"):
        assert "Via" in outcome(
            HEAD + b"Via: SIP/2.0/UDP " + via + b"\r\nContent-Length: 0\r\n\r\n"
        )


@pytest.mark.timeout(20)
def test_a_megabyte_of_crlf_or_lf_datagrams() -> None:
    """1 MB of CRLFs or LFs is refused as having no header section."""
    assert "not terminated" in outcome(b"\r\n" * 500_000)
    assert outcome(b"\n" * 1_000_000) != "ok"
