"""RFC 4475 and RFC 5118 torture messages, one case per row of each expectations.tsv.

The corpus is read in place, as bytes, from the shared ``conformance/`` folder:
env ``CALLSCRIPT_CONFORMANCE``, else ``<repo root>/../shared/conformance``. Each
file is handed to ``parse_message`` as one UDP datagram. ``parser=parse`` rows
must parse (valid ones also validate and re-serialize to an equal message);
``parser=reject`` rows must raise ``ParseError`` (never another exception), with
a reason that names the defect and the status a server answers with.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from callscript.sip.abnf import unescape
from callscript.sip.errors import ParseError
from callscript.sip.framing import StreamFramer
from callscript.sip.headers import Auth, MediaType
from callscript.sip.message import Message, Request, Response, parse_message
from callscript.sip.via import MAGIC_COOKIE

REPO = Path(__file__).resolve().parents[2]


def conformance_root() -> Path:
    """Where the shared corpus lives (it may be absent)."""
    env = os.environ.get("CALLSCRIPT_CONFORMANCE")
    return Path(env) if env else REPO.parent / "shared" / "conformance"


ROOT = conformance_root()
MISSING = (
    f"conformance corpus not found at {ROOT}: put the shared conformance/ folder "
    "(rfc4475/, rfc5118/) there, or point CALLSCRIPT_CONFORMANCE at it"
)


def rows(corpus: str) -> list[object]:
    """One pytest param per expectations.tsv row, or a single skipped param."""
    table = ROOT / corpus / "expectations.tsv"
    if not table.is_file():
        return [pytest.param(None, marks=pytest.mark.skip(reason=MISSING), id="missing")]
    with open(table, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        return [pytest.param(row, id=row["name"]) for row in reader]


def read(corpus: str, name: str) -> bytes:
    """The file's bytes, never decoded or 'fixed'."""
    return (ROOT / corpus / f"{name}.dat").read_bytes()


def rejection(data: bytes) -> ParseError:
    """The ParseError that parse_message, or validate() right after it, raises."""
    try:
        msg = parse_message(data)
    except ParseError as exc:
        return exc
    with pytest.raises(ParseError) as info:
        msg.validate()
    return info.value


def assert_round_trip(msg: Message, data: bytes) -> None:
    """Serializing gives back an equal message; untouched lines keep their bytes."""
    again = parse_message(bytes(msg))
    if "Content-Length" not in msg:
        # RFC 3261 §18.3: serialization always writes Content-Length (inv2543 has none).
        assert again["Content-Length"] == len(msg.body)
        again.discard("Content-Length")
    else:
        # Nothing changed, so the message prints as the datagram's bytes, byte for byte.
        assert data.startswith(bytes(msg))
    assert again == msg
    again.validate()


# -- the properties each summary names ----------------------------------------------


def check_wsinv(msg: Message) -> None:
    assert isinstance(msg, Request) and msg.method == "INVITE"
    assert msg.to_addr.tag == "1918181833n"
    assert msg.from_addr.display == 'J Rosenberg \\"'
    assert msg.from_addr.tag == "98asjd8"
    assert msg.max_forwards == 68
    assert (msg.cseq.number, msg.cseq.method) == (9, "INVITE")
    assert [(v.transport, v.host, v.branch) for v in msg.via] == [
        ("UDP", "192.0.2.2", "390skdjuw"),
        ("TCP", "spindle.example.com", "z9hG4bK9ikj8"),
        ("UDP", "192.168.255.111", "z9hG4bK30239"),
    ]
    contact = msg.contacts[0]
    assert contact.display == 'Quoted string ""'
    assert dict(contact.params) == {"newparam": "newvalue", "secondparam": None, "q": "0.33"}
    assert msg["NewFangledHeader"] == "newfangled value continued newfangled value"
    assert msg["UnknownHeaderWithUnusualValue"] == ";;,,;;,;"
    assert msg["Subject"] == ""
    assert msg["Route"][0].uri.lr


def check_intmeth(msg: Message) -> None:
    assert isinstance(msg, Request)
    assert msg.method == "!interesting-Method0123456789_*+`.%indeed'~"
    assert msg.cseq.method == msg.method
    assert msg.uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert msg.uri.password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"
    # Quoted-pairs carry raw BEL, NUL and DEL into the display name.
    assert msg.to_addr.display == "BEL:\x07 NUL:\x00 DEL:\x7f"
    assert msg.from_addr.display == "token1~` token2'+_ token3*%!.-"
    assert msg.from_addr.params["fromParam''~+*_!.-%"] == '"работающий"'
    assert msg.from_addr.tag == "_token~1'+`*%!-."
    assert msg.call_id == "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"
    assert msg["extensionHeader-!.%*+_`'~"] == "\ufeff大停電"


def check_esc01(msg: Message) -> None:
    assert isinstance(msg, Request)
    assert unescape(msg.uri.user or "") == "sips:user@example.com"
    # Escaped reserved characters stay distinct from the characters themselves.
    assert msg.uri == "sip:sips%3auser%40example.com@example.net"
    assert msg.to_addr.uri == "sip:user@example.com"
    assert msg.from_addr.uri.user is not None
    assert unescape(msg.from_addr.uri.user) == "I have spaces"
    contact = msg.contacts[0].uri
    assert contact == "sip:caller@host5.example.net;lr;name=value%2541"
    assert contact != "sip:caller@host5.example.net;lr;name=valueA"


def check_escnull(msg: Message) -> None:
    assert isinstance(msg, Request) and msg.method == "REGISTER"
    users = [unescape(c.uri.user or "") for c in msg.contacts]
    assert users == ["\x00", "\x00\x00"]
    assert msg.contacts[0].uri != msg.contacts[1].uri
    assert unescape(msg.to_addr.uri.user or "") == "null-\x00-null"


def check_esc02(msg: Message) -> None:
    assert isinstance(msg, Request)
    assert msg.method == "RE%47IST%45R" and msg.method != "REGISTER"
    assert len(msg.contacts) == 2
    assert msg["C%6Fntact"] == "<sip:alias2@host2.example.com>"
    assert msg.to_addr.display == "%Z%45"


def check_lwsdisp(msg: Message) -> None:
    assert msg.from_addr.display == "caller"
    assert msg.from_addr.uri == "sip:caller@example.com"


def check_longreq(msg: Message) -> None:
    assert len(msg.via) == 34
    assert len(msg["Via"]) == 34
    assert msg.to_addr.display is not None and "extreme proportion" in msg.to_addr.display
    assert len(msg.call_id) > 100
    assert msg.via[0].host == "sip33.example.com"


def check_dblreq(msg: Message) -> None:
    assert isinstance(msg, Request) and msg.method == "REGISTER"
    assert msg.body == b""
    assert b"INVITE" not in bytes(msg)


def check_semiuri(msg: Message) -> None:
    assert isinstance(msg, Request)
    assert msg.uri.user == "user;par=u%40example.net"
    assert unescape(msg.uri.user) == "user;par=u@example.net"
    assert msg.uri.host == "example.com"
    assert "par" not in msg.uri.params
    assert [str(m) for m in msg["Accept"]][-1] == "message/sipfrag"


def check_transports(msg: Message) -> None:
    assert [v.transport for v in msg.via] == ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]


def check_mpart01(msg: Message) -> None:
    assert len(msg.body) == msg["Content-Length"].value
    assert b"\x00" in msg.body and any(byte >= 0x80 for byte in msg.body)
    content_type = msg["Content-Type"]
    assert isinstance(content_type, MediaType) and content_type.mime == "multipart/mixed"


def check_unreason(msg: Message) -> None:
    assert isinstance(msg, Response) and msg.status == 200
    assert msg.reason == "= 2**3 * 5**2 но сто девяносто девять - простое"


def check_noreason(msg: Message) -> None:
    assert isinstance(msg, Response) and msg.status == 100
    assert msg.reason == ""


def check_badbranch(msg: Message) -> None:
    assert msg.top_via.branch == MAGIC_COOKIE


def check_insuf(msg: Message) -> None:
    for key in ("Call-ID", "From", "To"):
        assert key not in msg
    with pytest.raises(ParseError):
        msg.call_id  # noqa: B018


def check_unkscm(msg: Message) -> None:
    assert isinstance(msg, Request)
    assert msg.uri.scheme == "nobodyknowsthisscheme"
    assert msg.uri.opaque == "totallyopaquecontent"
    assert str(msg.uri) == "nobodyKnowsThisScheme:totallyopaquecontent"


def check_novelsc(msg: Message) -> None:
    assert isinstance(msg, Request)
    assert (msg.uri.scheme, msg.uri.opaque) == ("soap.beep", "//192.0.2.103:3002")


def check_unksm2(msg: Message) -> None:
    assert str(msg.to_addr.uri) == "isbn:2983792873"
    assert msg.from_addr.uri.scheme == "http"
    assert str(msg.contacts[0].uri) == "name:John_Smith"


def check_bext01(msg: Message) -> None:
    assert msg["Require"] == ["nothingSupportsThis", "nothingSupportsThisEither"]
    assert msg["Proxy-Require"] == ["noProxiesSupportThis", "norDoAnyProxiesSupportThis"]


def check_invut(msg: Message) -> None:
    assert msg["Content-Type"].mime == "application/unknownformat"


def check_regaut01(msg: Message) -> None:
    auth = msg["Authorization"][0]
    assert isinstance(auth, Auth)
    assert auth.scheme == "NoOneKnowsThisScheme" and auth.get("opaque-data") == "here"


def check_multi01(msg: Message) -> None:
    for key in ("Call-ID", "To", "From", "Max-Forwards", "CSeq"):
        assert len(msg.get_all(key)) == 2


def check_bcast(msg: Message) -> None:
    assert isinstance(msg, Response)
    assert msg.via[1].host == "255.255.255.255"


def check_zeromf(msg: Message) -> None:
    assert msg.max_forwards == 0


def check_cparam01(msg: Message) -> None:
    contact = msg.contacts[0]
    assert "unknownparam" in contact.params
    assert "unknownparam" not in contact.uri.params


def check_cparam02(msg: Message) -> None:
    contact = msg.contacts[0]
    assert "unknownparam" not in contact.params
    assert "unknownparam" in contact.uri.params


def check_regescrt(msg: Message) -> None:
    uri = msg.contacts[0].uri
    assert uri.headers == (("Route", "%3Csip:sip.example.com%3E"),)
    assert str(uri) == "sip:user@example.com?Route=%3Csip:sip.example.com%3E"


def check_sdp01(msg: Message) -> None:
    assert [m.mime for m in msg["Accept"]] == ["text/nobodyknowsthis"]


def check_inv2543(msg: Message) -> None:
    assert msg.top_via.branch is None
    assert msg.from_addr.tag is None
    assert msg.max_forwards is None
    assert "Content-Length" not in msg
    assert msg.body.startswith(b"v=0") and msg.body.endswith(b"RTP/AVP 0\r\n")


CHECKS_4475: dict[str, Callable[[Message], None]] = {
    name.removeprefix("check_"): check
    for name, check in dict(globals()).items()
    if name.startswith("check_") and callable(check)
}

# What each rejection's reason must name (a regex), per row.
REASONS_4475 = {
    "badinv01": r"empty element in Via",
    "clerr": r"Content-Length 9999 exceeds",
    "ncl": r"Content-Length '-999'",
    "scalar02": r"CSeq number '36893488147419103232'",
    "scalarlg": r"CSeq number",
    "quotbal": r"unterminated quoted string",
    "ltgtruri": r"Request-URI.*not an absolute URI",
    "lwsruri": r"whitespace inside the Request-URI",
    "lwsstart": r"more than one SP",
    "trws": r"whitespace after the SIP-Version",
    "escruri": r"Request-URI must not carry headers",
    "baddate": r"bad Date.*GMT",
    "regbadct": r"must be enclosed in '<>'",
    "badaspec": r"whitespace inside '<\.\.\.>'",
    # The archived file's header section never ends; see the test below for the name.
    "baddn": r"not terminated by an empty line",
    "badvers": r"version 7\.0 not supported",
    "mismatch01": r"CSeq method INVITE does not match OPTIONS",
    "mismatch02": r"CSeq method INVITE does not match NEWMETHOD",
    "bigcode": r"status code",
    "mcl01": r"conflicting Content-Length",
    "test": r"request line",
}


def expected_status(row: dict[str, str]) -> int:
    """505 where the tsv asks for it; every other rejection answers 400."""
    return 505 if row["server_answer"].startswith("505") else 400


@pytest.mark.timeout(5)
@pytest.mark.parametrize("row", rows("rfc4475"))
def test_rfc4475_vector(row: dict[str, str]) -> None:
    """RFC 4475 §3: each torture message is parsed or refused as the RFC asks."""
    name = row["name"]
    data = read("rfc4475", name)
    if row["parser"] == "reject":
        # liberal_ok rows included: we refuse them all rather than repair them.
        error = rejection(data)
        assert error.status == expected_status(row)
        assert re.search(REASONS_4475[name], str(error)), str(error)
        return
    msg = parse_message(data)
    if row["valid"] == "yes":
        msg.validate()
        assert_round_trip(msg, data)
    else:
        # insuf, multi01: parseable, but a server answers 400.
        with pytest.raises(ParseError) as info:
            msg.validate()
        assert info.value.status == 400
    check = CHECKS_4475.get(name)
    if check is not None:
        check(msg)


@pytest.mark.timeout(5)
def test_rfc4475_baddn_names_the_display_name_once_terminated() -> None:
    """RFC 4475 §3.1.2.15: unquoted display names with commas are refused by name."""
    if not ROOT.is_dir():
        pytest.skip(MISSING)
    error = rejection(read("rfc4475", "baddn") + b"\r\n")
    assert error.status == 400
    assert "must be quoted" in str(error)


def test_rfc4475_every_row_has_a_property_check_or_a_reason() -> None:
    """Every row of the table is pinned by a property check or a rejection reason."""
    table = ROOT / "rfc4475" / "expectations.tsv"
    if not table.is_file():
        pytest.skip(MISSING)
    with open(table, newline="", encoding="utf-8") as f:
        names = {row["name"] for row in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)}
    assert names == set(CHECKS_4475) | set(REASONS_4475)


# -- RFC 5118 -------------------------------------------------------------------------


def check6_ipv6_good(msg: Message) -> None:
    assert isinstance(msg, Request)
    assert (msg.uri.host, msg.uri.port) == ("[2001:db8::10]", None)
    assert msg.top_via.host == "[2001:db8::9:1]"
    assert msg.contacts[0].uri.host == "[2001:db8::1]"


def check6_port_ambiguous(msg: Message) -> None:
    assert isinstance(msg, Request)
    assert (msg.uri.host, msg.uri.port) == ("[2001:db8::10:5070]", None)


def check6_port_unambiguous(msg: Message) -> None:
    assert isinstance(msg, Request)
    assert (msg.uri.host, msg.uri.port) == ("[2001:db8::10]", 5070)


def check6_via_received_param_with_delim(msg: Message) -> None:
    assert msg.top_via.received == "[2001:db8::9:255]"


def check6_via_received_param_no_delim(msg: Message) -> None:
    assert msg.top_via.received == "2001:db8::9:255"


def check6_ipv6_in_sdp(msg: Message) -> None:
    assert len(msg.body) == msg["Content-Length"].value
    assert b"IN IP6 2001:db8::20" in msg.body


def check6_mult_ip_in_header(msg: Message) -> None:
    assert [(v.host, v.port) for v in msg.via] == [
        ("[2001:db8::9:1]", 6050),
        ("192.0.2.1", None),
        ("[2001:db8::9:255]", None),
    ]
    assert msg.via[2].received == "192.0.2.200"


def check6_mult_ip_in_sdp(msg: Message) -> None:
    assert b"IN IP4" in msg.body and b"IN IP6" in msg.body


def check6_ipv4_mapped_ipv6(msg: Message) -> None:
    assert [(v.host, v.port) for v in msg.via] == [
        ("[::ffff:192.0.2.10]", 19823),
        ("[::ffff:192.0.2.2]", None),
    ]
    assert msg.contacts[0].uri.host == "[::ffff:192.0.2.2]"


def check6_ipv6_bug_abnf_3_colons(msg: Message) -> None:
    assert isinstance(msg, Request)
    assert msg.uri.host == "[2001:db8:::192.0.2.1]"
    assert msg.to_addr.uri.host == "[2001:db8:::192.0.2.1]"


def check6_ipv6_correct_abnf_2_colons(msg: Message) -> None:
    assert isinstance(msg, Request)
    assert msg.uri.host == "[2001:db8::192.0.2.1]"


CHECKS_5118: dict[str, Callable[[Message], None]] = {
    name.removeprefix("check6_").replace("_", "-"): check
    for name, check in dict(globals()).items()
    if name.startswith("check6_") and callable(check)
}


@pytest.mark.timeout(5)
@pytest.mark.parametrize("row", rows("rfc5118"))
def test_rfc5118_vector(row: dict[str, str]) -> None:
    """RFC 5118 §4: IPv6 references parse (wire/ copies); bare IPv6 in a URI is refused."""
    name = row["name"]
    data = read("rfc5118/wire", name)
    if row["parser"] == "reject":
        error = rejection(data)
        assert error.status == 400
        assert "IPv6 address without '[ ]'" in str(error)
        return
    msg = parse_message(data)
    msg.validate()
    assert_round_trip(msg, data)
    CHECKS_5118[name](msg)


# The archive's own defects (README): Content-Length too large, header section unterminated.
ARCHIVE_DEFECTS = {
    "ipv6-in-sdp": "exceeds",
    "mult-ip-in-sdp": "exceeds",
    "ipv6-bug-abnf-3-colons": "not terminated by an empty line",
    "ipv6-correct-abnf-2-colons": "not terminated by an empty line",
}


@pytest.mark.timeout(5)
@pytest.mark.parametrize("row", rows("rfc5118"))
def test_rfc5118_archive_bytes_with_bare_lf_parse(row: dict[str, str]) -> None:
    """RFC 3261 §7: bare-LF line ends parse like CRLF ones (a documented deviation)."""
    name = row["name"]
    raw = read("rfc5118", name)
    assert b"\r" not in raw
    if name in ARCHIVE_DEFECTS:
        assert ARCHIVE_DEFECTS[name] in str(rejection(raw))
        return
    msg = parse_message(raw)
    wire = parse_message(read("rfc5118/wire", name))
    assert msg.start_line == wire.start_line
    # wire/ differs from the archive only in line ends and Content-Length digits.
    msg.discard("Content-Length")
    wire.discard("Content-Length")
    assert list(msg.raw_headers()) == list(wire.raw_headers())
    assert msg.body == raw[raw.index(b"\n\n") + 2 :]
    # Serialized, the header section uses CRLF line ends only.
    out = bytes(msg)
    head = out[: out.index(b"\r\n\r\n")]
    assert head.count(b"\n") == head.count(b"\r\n")


# -- the framing vectors on a stream ------------------------------------------------------


@pytest.mark.timeout(5)
@pytest.mark.parametrize(("name", "complete"), [("clerr", False), ("ncl", None), ("mcl01", None)])
def test_rfc4475_framing_vectors_on_a_stream(name: str, complete: bool | None) -> None:
    """RFC 3261 §18.3: on TCP a bad Content-Length breaks the stream; a long one waits."""
    if not ROOT.is_dir():
        pytest.skip(MISSING)
    framer = StreamFramer()
    data = read("rfc4475", name)
    if complete is None:
        with pytest.raises(ParseError) as info:
            framer.feed(data)
        assert info.value.status == 400
        assert framer.broken
    else:
        # 9999 announced bytes never come: the framer holds what it has, bounded by max_size.
        assert framer.feed(data) == []
        assert framer.buffered == len(data)
