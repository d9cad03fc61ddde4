"""The sans-I/O transport rules: Via stamping, response routing, size-based transport, 400s."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from callscript.sip.errors import ParseError
from callscript.sip.events import Peer
from callscript.sip.message import Request, Response, parse_message
from callscript.sip.receive import (
    build_error_response,
    error_response,
    request_transport,
    response_peer,
    split_at_failure,
    stamp_via,
)
from callscript.sip.via import Via

UDP_SOURCE = Peer("UDP", "203.0.113.9", 4000)

OPTIONS = (
    b"OPTIONS sip:bob@example.com SIP/2.0\r\n"
    b"Max-Forwards: 70\r\n"
    b"To: <sip:bob@example.com>\r\n"
    b"From: <sip:alice@example.com>;tag=a1\r\n"
    b"Call-ID: c1@host\r\n"
    b"CSeq: 1 OPTIONS\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKabc;rport, , SIP/2.0/UDP 192.0.2.2\r\n"
    b"Content-Length: 0\r\n\r\n"
)


def request_with_via(via: str) -> Request:
    return Request(
        "OPTIONS",
        "sip:bob@example.com",
        [
            ("Via", via),
            ("Via", "SIP/2.0/UDP 198.51.100.7;branch=z9hG4bKlower"),
            ("From", "<sip:alice@example.com>;tag=1"),
            ("To", "<sip:bob@example.com>"),
            ("Call-ID", "abc"),
            ("CSeq", "1 OPTIONS"),
        ],
    )


def response_with_via(via: str) -> Response:
    return Response(
        200,
        "OK",
        [
            ("Via", via),
            ("From", "<sip:alice@example.com>;tag=1"),
            ("To", "<sip:bob@example.com>;tag=2"),
            ("Call-ID", "abc"),
            ("CSeq", "1 OPTIONS"),
        ],
    )


def validation_error(data: bytes) -> ParseError:
    try:
        parse_message(data).validate()
    except ParseError as exc:
        return exc
    raise AssertionError("the message is valid")


def answer(data: bytes, error: ParseError, source: Peer | None = None) -> Response:
    out = error_response(data, error, source=source)
    assert out is not None
    response = parse_message(out)
    assert isinstance(response, Response)
    response.validate()
    return response


# -- stamp_via ---------------------------------------------------------------------


def test_stamp_via_leaves_a_sent_by_that_matches_the_source():
    """RFC 3261 §18.2.1: no received parameter when sent-by is the source address."""
    request = request_with_via("SIP/2.0/UDP 203.0.113.9:4000;branch=z9hG4bK1")
    stamp_via(request, UDP_SOURCE)
    assert str(request.top_via) == "SIP/2.0/UDP 203.0.113.9:4000;branch=z9hG4bK1"


def test_stamp_via_adds_received_when_sent_by_differs():
    """RFC 3261 §18.2.1: received=<source ip> when sent-by names another address."""
    request = request_with_via("SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bK1")
    stamp_via(request, UDP_SOURCE)
    assert request.top_via.received == "203.0.113.9"
    assert request.top_via.rport is None
    assert request.via[1].received is None  # only the top Via changes


def test_stamp_via_adds_received_when_sent_by_is_a_name():
    """RFC 3261 §18.2.1: a sent-by host name always gets received."""
    request = request_with_via("SIP/2.0/TCP client.example.com;branch=z9hG4bK1")
    stamp_via(request, Peer("TCP", "203.0.113.9", 51000, connection=3))
    assert request.top_via.received == "203.0.113.9"


def test_stamp_via_compares_ipv6_addresses_by_value():
    """RFC 3261 §18.2.1: [2001:db8::1] and 2001:DB8:0::1 are the same address."""
    request = request_with_via("SIP/2.0/UDP [2001:DB8:0::1]:5060;branch=z9hG4bK1")
    stamp_via(request, Peer("UDP", "2001:db8::1", 5060))
    assert request.top_via.received is None
    stamp_via(request, Peer("UDP", "2001:db8::2", 5060))
    assert request.top_via.received == "2001:db8::2"


def test_stamp_via_fills_an_empty_rport_and_always_adds_received():
    """RFC 3581 §4: an empty rport gets the source port; received is added even on a match."""
    request = request_with_via("SIP/2.0/UDP 203.0.113.9:5060;rport;branch=z9hG4bK1")
    stamp_via(request, UDP_SOURCE)
    via = request.top_via
    assert (via.received, via.rport) == ("203.0.113.9", 4000)
    assert (
        str(via) == "SIP/2.0/UDP 203.0.113.9:5060;rport=4000;branch=z9hG4bK1;received=203.0.113.9"
    )


def test_stamp_via_without_via_raises_parse_error():
    """A request without Via cannot be stamped; the caller answers or drops it."""
    request = Request("OPTIONS", "sip:bob@example.com", [("Call-ID", "x")])
    try:
        stamp_via(request, UDP_SOURCE)
    except ParseError:
        return
    raise AssertionError("expected ParseError")


# -- response_peer ---------------------------------------------------------------------


def test_response_peer_udp_uses_received_and_rport():
    """RFC 3581 §4: received and rport on UDP: to that address and port."""
    response = response_with_via(
        "SIP/2.0/UDP 10.0.0.5:5070;branch=z9hG4bK1;rport=4000;received=203.0.113.9"
    )
    assert response_peer(response) == Peer("UDP", "203.0.113.9", 4000)


def test_response_peer_udp_uses_received_with_the_sent_by_port():
    """RFC 3261 §18.2.2: received without rport: that address, the sent-by port or 5060."""
    with_port = response_with_via("SIP/2.0/UDP 10.0.0.5:5070;branch=z9hG4bK1;received=203.0.113.9")
    assert response_peer(with_port) == Peer("UDP", "203.0.113.9", 5070)
    default = response_with_via("SIP/2.0/UDP host.example;branch=z9hG4bK1;received=203.0.113.9")
    assert response_peer(default) == Peer("UDP", "203.0.113.9", 5060)


def test_response_peer_udp_maddr_wins():
    """RFC 3261 §18.2.2: maddr: to that address at the sent-by port, even with received."""
    response = response_with_via(
        "SIP/2.0/UDP 10.0.0.5:5070;branch=z9hG4bK1;maddr=192.0.2.44;received=203.0.113.9;rport=4000"
    )
    assert response_peer(response) == Peer("UDP", "192.0.2.44", 5070)


def test_response_peer_udp_falls_back_to_sent_by():
    """RFC 3261 §18.2.2: no received: to the sent-by address and port."""
    response = response_with_via("SIP/2.0/UDP [2001:db8::7]:5080;branch=z9hG4bK1")
    assert response_peer(response) == Peer("UDP", "2001:db8::7", 5080)


def test_response_peer_names_need_dns():
    """RFC 3263 §5: a sent-by host name is resolved by the caller, so None here."""
    assert response_peer(response_with_via("SIP/2.0/UDP client.example;branch=z9hG4bK1")) is None
    tcp = response_with_via("SIP/2.0/TCP client.example:5062;branch=z9hG4bK1")
    assert response_peer(tcp) is None
    maddr = response_with_via("SIP/2.0/UDP 10.0.0.5;maddr=lan.example;branch=z9hG4bK1")
    assert response_peer(maddr) is None


def test_response_peer_stream_reuses_the_request_connection():
    """RFC 3261 §18.2.2: on TCP the response goes back over the request's connection."""
    source = Peer("TCP", "203.0.113.9", 51000, connection=12)
    response = response_with_via("SIP/2.0/TCP 10.0.0.5;branch=z9hG4bK1;received=203.0.113.9")
    assert response_peer(response, source) is source


def test_response_peer_stream_without_connection_uses_received_and_sent_by_port():
    """RFC 3261 §18.2.2: no connection: connect to received at the sent-by port (not rport)."""
    response = response_with_via(
        "SIP/2.0/TCP 10.0.0.5:5062;branch=z9hG4bK1;received=203.0.113.9;rport=51000"
    )
    assert response_peer(response) == Peer("TCP", "203.0.113.9", 5062)
    unpinned = Peer("TCP", "203.0.113.9", 51000)
    assert response_peer(response, unpinned) == Peer("TCP", "203.0.113.9", 5062)


def test_response_peer_tls_default_port_is_5061():
    """RFC 3261 §19.1.2: the default port of TLS is 5061."""
    response = response_with_via("SIP/2.0/TLS 192.0.2.8;branch=z9hG4bK1")
    assert response_peer(response) == Peer("TLS", "192.0.2.8", 5061)


def test_response_peer_unknown_transport_or_missing_via_is_none():
    """Transports callscript does not run (SCTP) and responses without Via give None."""
    assert response_peer(response_with_via("SIP/2.0/SCTP 192.0.2.8;branch=z9hG4bK1")) is None
    assert response_peer(Response(200, "OK", [("Call-ID", "x")])) is None


# -- request_transport ---------------------------------------------------------------------


def test_request_transport_switches_large_udp_requests_to_tcp():
    """RFC 3261 §18.1.1: a UDP request larger than 1300 bytes goes over TCP."""
    peer = Peer("UDP", "192.0.2.1", 5060)
    assert request_transport(1300, peer) == "UDP"
    assert request_transport(1301, peer) == "TCP"
    assert request_transport(900, peer, mtu_limit=800) == "TCP"


def test_request_transport_uses_the_path_mtu_when_known():
    """RFC 3261 §18.1.1: within 200 bytes of a known path MTU goes over TCP."""
    peer = Peer("UDP", "192.0.2.1", 5060)
    assert request_transport(8800, peer, path_mtu=9000) == "UDP"
    assert request_transport(8801, peer, path_mtu=9000) == "TCP"
    assert request_transport(1300, peer, path_mtu=1500) == "UDP"
    assert request_transport(1201, peer, path_mtu=1400) == "TCP"


def test_request_transport_keeps_stream_transports():
    """Only UDP requests change transport; TCP and TLS stay as chosen."""
    assert request_transport(60000, Peer("TLS", "192.0.2.1", 5061)) == "TLS"
    assert request_transport(10, Peer("TCP", "192.0.2.1", 5060)) == "TCP"


# -- error_response -------------------------------------------------------------------


def test_error_response_says_what_was_wrong_and_where():
    """A malformed request gets 400 whose reason names the line and the problem."""
    response = answer(OPTIONS, validation_error(OPTIONS))
    assert response.status == 400
    assert response.reason == "Bad Request (line 7: bad Via header: empty element in Via list)"
    assert [str(v) for v in response.via] == ["SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKabc;rport"]
    assert str(response.from_addr) == "<sip:alice@example.com>;tag=a1"
    assert response.call_id == "c1@host"
    assert (response.cseq.number, response.cseq.method) == (1, "OPTIONS")
    assert response.body == b""
    assert response["Content-Length"].number == 0


def test_error_response_adds_a_to_tag_stable_across_retransmissions():
    """RFC 3261 §8.2.6.2: the response gets a To tag, the same for every retransmission."""
    error = validation_error(OPTIONS)
    first = answer(OPTIONS, error).to_addr
    again = answer(OPTIONS, error).to_addr
    assert first.tag and first.tag == again.tag
    assert str(first.uri) == "sip:bob@example.com"
    other = OPTIONS.replace(b"Call-ID: c1@host", b"Call-ID: c2@host")
    assert answer(other, validation_error(other)).to_addr.tag != first.tag


def test_error_response_keeps_an_existing_to_tag():
    """RFC 3261 §8.2.6.2: a To tag in the request is copied unchanged."""
    data = OPTIONS.replace(b"To: <sip:bob@example.com>", b"To: <sip:bob@example.com>;tag=dlg9")
    assert answer(data, validation_error(data)).to_addr.tag == "dlg9"


def test_error_response_stamps_the_via_with_the_source():
    """RFC 3581 §4: with the source known, the copied Via gets received and rport."""
    response = answer(OPTIONS, validation_error(OPTIONS), UDP_SOURCE)
    assert (response.top_via.received, response.top_via.rport) == ("203.0.113.9", 4000)
    assert response_peer(response) == UDP_SOURCE


def test_error_response_uses_the_error_status():
    """A version error gets 505, an oversize message 513, each with its own reason."""
    data = OPTIONS.replace(b"SIP/2.0\r\n", b"SIP/3.0\r\n", 1)
    try:
        parse_message(data)
    except ParseError as exc:
        response = answer(data, exc)
    assert response.status == 505
    assert response.reason.startswith("Version Not Supported (line 1: ")
    big = OPTIONS + b"x" * 100
    try:
        parse_message(big, max_size=len(OPTIONS))
    except ParseError as exc:
        response = answer(big, exc)
    assert response.status == 513
    assert response.reason.startswith("Message Too Large (")


def test_error_response_reads_folded_headers():
    """RFC 3261 §7.3.1: a header continued on the next line is read as one value."""
    data = OPTIONS.replace(b"From: <sip:", b"From:\r\n   <sip:")
    assert answer(data, ParseError("something")).from_addr.tag == "a1"


def test_error_response_keeps_the_reason_phrase_printable_and_short():
    """Peer bytes quoted in a reason never bring control characters or unbounded length."""
    error = ParseError("bad \x00\x1b[31m \u00e9 value " + "x" * 500, line=3)
    response = answer(OPTIONS, error)
    assert response.reason.startswith("Bad Request (line 3: bad ??[31m ? value xxx")
    assert len(response.reason) <= 200
    assert response.reason.isascii()


def test_error_response_drops_what_it_cannot_answer():
    """No response without Via, From, To, Call-ID or CSeq, nor to responses or ACKs."""
    error = ParseError("broken")
    for name in (b"Via", b"From", b"To", b"Call-ID", b"CSeq"):
        lines = [line for line in OPTIONS.split(b"\r\n") if not line.startswith(name + b":")]
        assert error_response(b"\r\n".join(lines), error) is None, name
    response = bytes(response_with_via("SIP/2.0/UDP 10.0.0.5;branch=z9hG4bK1"))
    assert error_response(response, error) is None
    ack = OPTIONS.replace(b"OPTIONS", b"ACK")
    assert error_response(ack, error) is None
    assert error_response(b"", error) is None
    assert error_response(b"\r\n\r\n", error) is None


def test_error_response_echoes_unparseable_headers_as_received():
    """RFC 4475 §3.1.2.16: a request whose Via cannot be read still learns why (505 or 400),
    with the headers echoed byte for byte; the manager sends such answers only to the source."""
    error = ParseError("SIP version 7.0 not supported", status=505)
    bad_top_via = OPTIONS.replace(b"Via: SIP/2.0/UDP 192.0.2.1", b"Via: SIP/2.0/UDP 192.0.2.1 x")
    data = error_response(bad_top_via, error)
    assert data is not None
    assert data.startswith(b"SIP/2.0 505 Version Not Supported (SIP version 7.0 not supported)")
    assert (
        b"\r\nVia: SIP/2.0/UDP 192.0.2.1 x:5060;branch=z9hG4bKabc;rport, , SIP/2.0/UDP 192.0.2.2\r\n"
        in data
    )
    control = OPTIONS.replace(b"Via: SIP/2.0/UDP 192.0.2.1", b"Via: SIP/2.0/UDP 192.0.2.1 \x01")
    assert error_response(control, error) is None  # never echo control characters


@given(st.binary(max_size=400))
def test_error_response_never_raises_on_arbitrary_bytes(data: bytes):
    """Bad input never crashes: any bytes give a response or None."""
    result = error_response(data, ParseError("x"), source=UDP_SOURCE)
    assert result is None or result.startswith(b"SIP/2.0 400 ")


@given(st.integers(0, len(OPTIONS)), st.binary(max_size=20), st.integers(0, 999))
def test_error_response_never_raises_on_damaged_requests(cut: int, junk: bytes, status: int):
    """Damaged requests and odd statuses give a response that frames and parses, or None, never an
    exception. (Headers echoed as received may themselves be as broken as the request's.)"""
    data = OPTIONS[:cut] + junk + OPTIONS[cut:]
    response = build_error_response(data, ParseError("x", status=status), source=UDP_SOURCE)
    if response is not None:
        assert 400 <= response.status <= 699
        reparsed = parse_message(bytes(response))
        assert isinstance(reparsed, Response) and reparsed.status == response.status


def test_error_response_to_a_request_with_a_good_via_list_copies_all_of_it():
    """Every Via is copied when all can be read, top first."""
    data = OPTIONS.replace(b", , ", b", ")
    response = answer(data, ParseError("bad Max-Forwards", line=2))
    assert [v.host for v in response.via] == ["192.0.2.1", "192.0.2.2"]
    assert isinstance(response.top_via, Via)


def test_split_at_failure_finds_the_broken_message():
    """Whole messages before the broken one are cut out; the rest is the broken message."""
    good = b"OPTIONS sip:a@b SIP/2.0\r\nCall-ID: 1\r\nContent-Length: 2\r\n\r\nhi"
    broken = b"OPTIONS sip:a@b SIP/2.0\r\nCall-ID: 2\r\n\r\n"
    assert split_at_failure(b"\r\n" + good + good + broken, 1000) == ([good, good], broken)
    assert split_at_failure(good, 10) == ([], good)  # too large for the limit: the broken one
    assert split_at_failure(b"partial head", 1000) == ([], b"partial head")
