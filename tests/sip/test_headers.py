"""Header names and typed header values (RFC 3261 §7.3, §20, §25.1)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from callscript.sip.address import Address
from callscript.sip.errors import LocalProtocolError, ParseError
from callscript.sip.headers import (
    COMPACT,
    Auth,
    CSeq,
    Date,
    MediaType,
    Number,
    Text,
    header_key,
    make_value,
    parse_auth,
    parse_call_id,
    parse_cseq,
    parse_date,
    parse_media_type,
    parse_retry_after,
    parse_uint,
    parse_values,
    parse_warning,
)
from callscript.sip.uri import URI
from callscript.sip.via import Via

# -- names ---------------------------------------------------------------------------------


RFC3261_COMPACT = {
    "i": "Call-ID",
    "m": "Contact",
    "e": "Content-Encoding",
    "l": "Content-Length",
    "c": "Content-Type",
    "f": "From",
    "s": "Subject",
    "k": "Supported",
    "t": "To",
    "v": "Via",
}


def test_compact_forms_of_rfc3261() -> None:
    """RFC 3261 §7.3.3: the compact forms i m e l c f s k t v name their long headers."""
    for short, name in RFC3261_COMPACT.items():
        assert COMPACT[short] == name
        assert header_key(short) == name
        assert header_key(short.upper()) == name


def test_compact_forms_registered_later() -> None:
    """RFC 3261 §7.3.3: later RFCs add a b d j n o r u x y (IANA header registry)."""
    later = {
        "a": "Accept-Contact",
        "b": "Referred-By",
        "d": "Request-Disposition",
        "j": "Reject-Contact",
        "n": "Identity-Info",
        "o": "Event",
        "r": "Refer-To",
        "u": "Allow-Events",
        "x": "Session-Expires",
        "y": "Identity",
    }
    assert dict(COMPACT) == {**RFC3261_COMPACT, **later}


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("Call-ID", "Call-ID"),
        ("call-id", "Call-ID"),
        ("CALL-ID", "Call-ID"),
        ("Call-Id", "Call-ID"),
        ("cseq", "CSeq"),
        ("MaX-fOrWaRdS", "Max-Forwards"),
        ("www-authenticate", "WWW-Authenticate"),
        (" Via\t", "Via"),
        ("X-Custom", "x-custom"),
        ("NewFangledHeader", "newfangledheader"),
    ],
)
def test_header_names_are_case_insensitive(name: str, key: str) -> None:
    """RFC 3261 §7.3.1: header names compare case-insensitively; known ones get one key."""
    assert header_key(name) == key


@pytest.mark.parametrize("name", ["", "Bad Name", "X:Y", "Ü", "a\x00"])
def test_a_header_name_must_be_a_token(name: str) -> None:
    """RFC 3261 §25.1: header-name = token."""
    with pytest.raises(ParseError):
        header_key(name)


# -- lists ---------------------------------------------------------------------------------


def test_list_values_split_on_commas_outside_quotes_and_angles() -> None:
    """RFC 3261 §7.3.1: a comma-separated list is the same as several header lines."""
    values = parse_values("Contact", '"Lee, M." <sip:a,b@b.example>, <sip:c@d.example>;q=0.5')
    assert [str(v.uri) for v in values if isinstance(v, Address)] == [
        "sip:a,b@b.example",
        "sip:c@d.example",
    ]
    assert parse_values("Require", "a ,b,  c") == [Text("a"), Text("b"), Text("c")]


def test_empty_list_elements_are_refused() -> None:
    """RFC 3261 §7.3.1: a list has no empty elements (RFC 4475 §3.1.2.1)."""
    for key, text in (
        ("Via", "SIP/2.0/UDP h,,SIP/2.0/UDP g"),
        ("Via", "SIP/2.0/UDP h,"),
        ("Contact", "<sip:a@b.example>;,"),
        ("Via", ""),
        ("Route", ""),
    ):
        with pytest.raises(ParseError):
            parse_values(key, text)


def test_some_lists_may_be_empty() -> None:
    """RFC 3261 §20.37: 'Supported:' with no option tags is legal (also Allow, Accept...)."""
    for key in ("Supported", "Allow", "Accept", "Unsupported"):
        assert parse_values(key, "") == []


def test_authorization_values_are_not_split_on_commas() -> None:
    """RFC 3261 §7.3.1: Authorization and WWW-Authenticate repeat as whole lines."""
    values = parse_values("Authorization", 'Digest username="a", realm="b"')
    assert len(values) == 1 and isinstance(values[0], Auth)


def test_unknown_headers_keep_their_text() -> None:
    """An unknown header's value is kept as Text, commas and all."""
    assert parse_values("x-odd", "  ;;,,;;,;  ") == [Text(";;,,;;,;")]


# -- numbers -------------------------------------------------------------------------------


def test_cseq_number_and_method() -> None:
    """RFC 3261 §20.16: CSeq = 1*DIGIT LWS Method, the number below 2**31 when sent."""
    assert parse_cseq("4711 INVITE") == CSeq(4711, "INVITE")
    assert parse_cseq("0009\tINVITE") == CSeq(9, "INVITE")
    assert parse_cseq("  1   OPTIONS  ") == CSeq(1, "OPTIONS")
    assert str(CSeq(1, "ACK")) == "1 ACK" and repr(CSeq(1, "ACK")) == "CSeq(1, 'ACK')"
    assert hash(CSeq(1, "ACK")) == hash(parse_cseq("1 ACK"))


def test_cseq_number_fits_in_32_bits() -> None:
    """RFC 3261 §8.1.1.5: the sequence number is a 32-bit unsigned integer."""
    assert parse_cseq("4294967295 INVITE").number == 2**32 - 1
    assert parse_cseq("0000000004294967295 INVITE").number == 2**32 - 1
    for text in ("4294967296 INVITE", "36893488147419103232 INVITE", "9" * 10000 + " INVITE"):
        with pytest.raises(ParseError, match="CSeq number"):
            parse_cseq(text)


@pytest.mark.parametrize(
    "text",
    ["INVITE", "1", "1INVITE", "-1 INVITE", "1 IN VITE", "1 INV@TE", "١ INVITE", "1\x1cINVITE"],
)
def test_malformed_cseq_is_refused(text: str) -> None:
    """RFC 3261 §20.16: a number, LWS, and a token method; nothing else."""
    with pytest.raises(ParseError):
        parse_cseq(text)


def test_max_forwards_is_zero_to_255() -> None:
    """RFC 3261 §20.22: Max-Forwards is an integer 0-255 (RFC 4475 §3.1.2.4)."""
    assert parse_values("Max-Forwards", "0") == [Number(0)]
    assert parse_values("Max-Forwards", "0068") == [Number(68)]
    assert parse_values("Max-Forwards", "255") == [Number(255)]
    for text in ("256", "300", "-1", "", "7 0", "9" * 5000):
        with pytest.raises(ParseError, match="Max-Forwards"):
            parse_values("Max-Forwards", text)


def test_parse_uint_never_builds_huge_integers() -> None:
    """Huge digit strings are refused by length before any int() conversion."""
    assert parse_uint("0000000000000000000000042") == 42
    for text in ("9" * 100_000, "4294967296", "", "+1", "1.0", "0x10", "١"):
        with pytest.raises(ParseError):
            parse_uint(text)
    assert parse_uint("255", limit=255) == 255


def test_content_length_and_expires_are_32_bit() -> None:
    """RFC 3261 §20.14 / §20.19: Content-Length and Expires are 32-bit decimal values."""
    assert parse_values("Content-Length", "150") == [Number(150)]
    assert parse_values("Expires", "4294967295") == [Number(2**32 - 1)]
    with pytest.raises(ParseError):
        parse_values("Expires", "4294967296")
    with pytest.raises(ParseError):
        parse_values("Content-Length", "-999")
    assert int(Number(7)) == 7 and Number(7) == 7 and Number(7).value == 7
    assert repr(Number(7)) == "Number(7)" and hash(Number(7)) == hash(7)


def test_retry_after_reads_the_seconds() -> None:
    """RFC 3261 §20.33: Retry-After = delta-seconds [ comment ] *( SEMI retry-param )."""
    assert parse_retry_after("18000;duration=3600") == Number(18000)
    assert parse_retry_after("120 (I'm in a meeting)") == Number(120)
    for text in ("soon", "", "99999999999999999999"):
        with pytest.raises(ParseError):
            parse_retry_after(text)


# -- other typed values --------------------------------------------------------------------------


def test_call_id_is_word_at_word() -> None:
    """RFC 3261 §20.8: Call-ID = word [ "@" word ], words with many separators allowed."""
    assert parse_call_id("f81d4fae-7dec-11d0-a765-00a0c91e6bf6@foo.bar.com").text.endswith(
        "foo.bar.com"
    )
    assert parse_call_id("intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{") == Text(
        "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"
    )
    for bad in ("", "a b", "a@b@c", "@b", "a@", "a\x00"):
        with pytest.raises(ParseError):
            parse_call_id(bad)


def test_media_type_with_lws_and_parameters() -> None:
    """RFC 3261 §20.15: m-type SLASH m-subtype *(SEMI m-parameter), LWS around '/'."""
    media = parse_media_type('Multipart/Mixed ; boundary="7a9cbec02ceef655"')
    assert media.mime == "multipart/mixed"
    assert media.params["boundary"] == '"7a9cbec02ceef655"'
    assert parse_media_type("application / sdp") == MediaType("application", "sdp")
    assert repr(MediaType("text", "plain")) == "MediaType('text/plain')"
    assert hash(MediaType("text", "plain")) == hash(parse_media_type("TEXT/Plain"))
    for bad in ("application", "/sdp", "application/", "a/b;", "a b/c"):
        with pytest.raises(ParseError):
            parse_media_type(bad)


def test_digest_credentials_and_unknown_schemes() -> None:
    """RFC 3261 §25.1: auth-scheme LWS auth-param *(COMMA auth-param), any scheme."""
    auth = parse_auth(
        'Digest username="bob", realm="biloxi.com", nonce="dcd98b,7102dd2f0", '
        'uri="sip:bob@biloxi.com", qop=auth, nc=00000001, cnonce="0a4f113b", '
        'response="6629fae49393a05397450978507c4ef1", opaque="5ccc069c403ebaf9f0171e9517f40e41"'
    )
    assert auth.scheme == "Digest"
    assert auth.get("nonce") == "dcd98b,7102dd2f0"
    assert auth.get("qop") == "auth" and auth.get("missing") is None
    assert auth.params["realm"] == '"biloxi.com"'
    assert parse_auth('Digest\trealm="a b"').get("realm") == "a b"
    other = parse_auth("NoOneKnowsThisScheme opaque-data=here")
    assert (other.scheme, other.get("opaque-data")) == ("NoOneKnowsThisScheme", "here")
    assert str(other) == "NoOneKnowsThisScheme opaque-data=here"
    assert repr(other) == "Auth('NoOneKnowsThisScheme opaque-data=here')"
    assert other == parse_auth("NoOneKnowsThisScheme  opaque-data=here")
    assert hash(other) == hash(parse_auth("NoOneKnowsThisScheme opaque-data=here"))


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Dig est realm=a",
        'Digest realm="open',
        'Digest realm="a"junk',
        "Digest realm",
        "Digest realm=",
        "Digest =x",
        "Digest realm=a b",
        "Digest realm=a,,nonce=b",
    ],
)
def test_malformed_auth_is_refused(text: str) -> None:
    """RFC 3261 §25.1: auth-param = auth-param-name EQUAL ( token / quoted-string )."""
    with pytest.raises(ParseError):
        parse_auth(text)


def test_date_is_rfc1123_in_gmt() -> None:
    """RFC 3261 §20.17: Date uses RFC 1123 format and only GMT (RFC 4475 §3.1.2.12)."""
    date = parse_date("Sat, 13 Nov 2010 23:29:00 GMT")
    assert date.moment == datetime(2010, 11, 13, 23, 29, tzinfo=UTC)
    assert str(date) == "Sat, 13 Nov 2010 23:29:00 GMT" and date.value == date.moment
    assert repr(date) == "Date('Sat, 13 Nov 2010 23:29:00 GMT')"
    assert str(Date(date.moment)) == "Sat, 13 Nov 2010 23:29:00 GMT"
    assert hash(Date(date.moment)) == hash(date) and Date(date.moment) == date
    for bad in (
        "Fri, 01 Jan 2010 16:00:00 EST",
        "Fri, 1 Jan 2010 16:00:00 GMT",
        "Fri, 32 Jan 2010 16:00:00 GMT",
        "Fri, 01 Jan 2010 24:00:00 GMT",
        "Fri, 01 Foo 2010 16:00:00 GMT",
        "2010-01-01T16:00:00Z",
    ):
        with pytest.raises(ParseError, match="Date"):
            parse_date(bad)


def test_warning_has_a_three_digit_code() -> None:
    """RFC 3261 §20.43: warn-code SP warn-agent SP warn-text (RFC 4475 §3.1.2.5)."""
    assert parse_warning("307 isi.edu \"Session parameter 'foo' not understood\"").text.startswith(
        "307"
    )
    for bad in ('1812 overture "In Progress"', '30 a "b"', 'abc a "b"', '307 isi.edu "open'):
        with pytest.raises(ParseError):
            parse_warning(bad)


def test_text_values_compare_with_strings() -> None:
    """Text keeps an unknown or free-text value and compares equal to its string."""
    assert Text("x") == "x" and Text("x") == Text("x") and Text("x") != Text("y")
    assert Text("x").value == "x" and repr(Text("x")) == "Text('x')"
    assert hash(Text("x")) == hash("x")


# -- values handed in by our own code ------------------------------------------------------------


def test_make_value_parses_strings_and_ints_into_typed_values() -> None:
    """msg[name] = 'text' or int gives the typed value the header holds."""
    assert make_value("Max-Forwards", 70) == Number(70)
    assert make_value("CSeq", "1 INVITE") == CSeq(1, "INVITE")
    assert isinstance(make_value("Via", "SIP/2.0/UDP h;branch=z9hG4bK1"), Via)
    assert isinstance(make_value("Contact", "*"), Address)
    assert make_value("x-custom", "anything at all") == Text("anything at all")


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("Subject", "a\r\nVia: injected"),
        ("Subject", "a\nb"),
        ("Subject", "a\x00b"),
        ("Subject", "\ud800"),
        ("Max-Forwards", 256),
        ("Max-Forwards", True),
        ("Max-Forwards", 1.5),
        ("Via", "SIP/2.0/UDP a, SIP/2.0/UDP b"),
        ("Via", Text("garbage")),
        ("Via", Address(URI.parse("sip:a@b.example"))),
        ("From", Via("UDP", "h")),
        ("From", Address.any()),
        ("Call-ID", Text("has space")),
        ("Call-ID", Number(5)),
        ("Max-Forwards", Number(300)),
        ("CSeq", CSeq(-1, "INVITE")),
        ("Subject", Text("a\r\nX: y")),
        ("Require", ""),
    ],
)
def test_make_value_refuses_what_would_not_print_as_one_value(key: str, value: object) -> None:
    """Values from our own code that would corrupt the message raise LocalProtocolError."""
    with pytest.raises(LocalProtocolError):
        make_value(key, value)
