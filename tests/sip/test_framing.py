"""Stream (TCP/TLS) framing: RFC 3261 §18.3 Content-Length, §7.5 CRLFs, RFC 5626 keep-alives."""

from __future__ import annotations

import pytest

from callscript.sip.errors import LocalProtocolError, ParseError
from callscript.sip.framing import PING, PONG, StreamFramer
from callscript.sip.message import parse_message


def message(
    body: bytes = b"", length: bytes | None = None, name: bytes = b"Content-Length"
) -> bytes:
    """A small OPTIONS with the given body and Content-Length text."""
    value = str(len(body)).encode() if length is None else length
    return (
        b"OPTIONS sip:carol@chicago.example.com SIP/2.0\r\n"
        b"Via: SIP/2.0/TCP pc33.atlanta.example.com;branch=z9hG4bKhjhs8ass877\r\n"
        b"To: <sip:carol@chicago.example.com>\r\n"
        b"From: <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
        b"Call-ID: a84b4c76e66710\r\n"
        b"CSeq: 63104 OPTIONS\r\n" + name + b": " + value + b"\r\n\r\n" + body
    )


def test_several_messages_in_one_read() -> None:
    """RFC 3261 §18.3: Content-Length says where each message ends on a stream."""
    first, second, third = message(b"one"), message(), message(b"\r\n\r\nthree\r\n")
    framer = StreamFramer()
    assert framer.feed(first + second + third) == [first, second, third]
    assert framer.buffered == 0
    assert parse_message(third).body == b"\r\n\r\nthree\r\n"


def test_a_message_split_across_reads() -> None:
    """RFC 3261 §18.3: a message arrives whole however the reads cut it."""
    data = message(b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\n")
    for cut in (1, 10, data.index(b"\r\n\r\n") + 2, data.index(b"\r\n\r\n") + 4, len(data) - 1):
        framer = StreamFramer()
        assert framer.feed(data[:cut]) == []
        assert framer.buffered == cut
        assert framer.feed(data[cut:]) == [data]
    framer = StreamFramer()
    out = [m for i in range(len(data)) for m in framer.feed(data[i : i + 1])]
    assert out == [data]


def test_content_length_spellings() -> None:
    """RFC 3261 §7.3.3: 'l' and any case name Content-Length; LWS and a fold may surround it."""
    for name, value in (
        (b"l", b"3"),
        (b"L", b"3"),
        (b"content-length", b"3"),
        (b"CONTENT-LENGTH ", b"3"),
        (b"Content-Length", b"\r\n 3"),
        (b"Content-Length", b"003  "),
    ):
        data = message(b"abc", value, name)
        assert StreamFramer().feed(data + message()) == [data, message()]


def test_crlf_between_messages_is_skipped_and_double_crlf_is_a_ping() -> None:
    """RFC 3261 §7.5: CRLFs before a start line are ignored; RFC 5626 §3.5.1: CRLFCRLF pings."""
    framer = StreamFramer()
    assert framer.feed(b"\r\n") == []
    assert framer.feed(message()) == [message()]
    assert framer.feed(b"\r\n\r\n") == [PING]
    assert framer.feed(b"\r\n") == []
    assert framer.feed(b"\r\n") == [PING]
    assert framer.feed(b"\r") == []
    assert framer.feed(b"\n\r\n" + message()) == [PING, message()]
    assert framer.feed(b"\r\n\r\n\r\n\r\n") == [PING, PING]
    assert PONG == b"\r\n"


def test_missing_content_length_breaks_the_stream() -> None:
    """RFC 3261 §18.3: Content-Length MUST be present on stream transports; else 400 and close."""
    data = message().replace(b"Content-Length: 0\r\n", b"")
    framer = StreamFramer()
    with pytest.raises(ParseError, match="Content-Length is required") as info:
        framer.feed(data)
    assert info.value.status == 400
    assert framer.broken
    with pytest.raises(LocalProtocolError):
        framer.feed(message())


@pytest.mark.parametrize(
    ("value", "reason"),
    [(b"-999", "bad Content-Length"), (b"abc", "bad Content-Length"), (b"", "bad Content-Length"),
     (b"1 2", "bad Content-Length"), (b"99999999999", "bad Content-Length")],
)  # fmt: skip
def test_bad_content_length_breaks_the_stream(value: bytes, reason: str) -> None:
    """RFC 3261 §20.14: Content-Length = 1*DIGIT; anything else is a 400 (RFC 4475 §3.1.2.3)."""
    framer = StreamFramer()
    with pytest.raises(ParseError, match=reason) as info:
        framer.feed(message(length=value))
    assert info.value.status == 400 and framer.broken


def test_conflicting_content_lengths_break_the_stream() -> None:
    """RFC 3261 §18.3: two different Content-Length values cannot frame (RFC 4475 §3.3.9)."""
    data = message(b"abc").replace(b"Content-Length: 3\r\n", b"Content-Length: 3\r\nl: 5\r\n")
    framer = StreamFramer()
    with pytest.raises(ParseError, match="conflicting") as info:
        framer.feed(data)
    assert info.value.status == 400 and framer.broken


def test_oversize_message_is_513() -> None:
    """RFC 3261 §21.5.14: a message larger than max_size is 513, announced or not."""
    framer = StreamFramer(max_size=1000)
    with pytest.raises(ParseError) as info:
        framer.feed(message(length=b"5000"))
    assert info.value.status == 513 and framer.broken
    endless = StreamFramer(max_size=1000)
    endless.feed(b"OPTIONS sip:a@b SIP/2.0\r\n")
    with pytest.raises(ParseError, match="header section longer") as info:
        for _ in range(100):
            endless.feed(b"X-Filler: " + b"x" * 50 + b"\r\n")
    assert info.value.status == 513
    assert StreamFramer(max_size=len(message(b"abc"))).feed(message(b"abc")) == [message(b"abc")]


def test_waiting_for_a_long_body_holds_only_what_arrived() -> None:
    """RFC 4475 §3.1.2.2: a Content-Length larger than what came waits, bounded by max_size."""
    framer = StreamFramer()
    data = message(b"short", length=b"9999")
    assert framer.feed(data) == []
    assert framer.buffered == len(data) and not framer.broken


@pytest.mark.timeout(20)
def test_a_megabyte_of_crlfs() -> None:
    """RFC 5626 §3.5.1: a flood of CRLFs yields pings in linear time, and nothing is buffered."""
    framer = StreamFramer()
    out = framer.feed(b"\r\n" * 500_000)
    assert out == [PING] * 250_000
    assert framer.buffered == 0
    assert framer.feed(message()) == [message()]


@pytest.mark.timeout(20)
def test_many_small_reads_stay_linear() -> None:
    """A 60 kB message fed one byte at a time completes: each byte is scanned a bounded time."""
    data = message(b"x" * 60_000)
    framer = StreamFramer()
    out = [m for i in range(len(data)) for m in framer.feed(data[i : i + 1])]
    assert out == [data]
