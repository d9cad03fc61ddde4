"""Hypothesis strategies for SIP text, built from the RFC 3261 §25.1 grammar.

Each strategy draws the *text* a peer could send together with a small model
of what it means (``UriModel``, ``AddressModel``, ``ViaModel``, ``MessageModel``),
so that tests can check both ``parse(text)`` against the model and
``bytes(parse(raw)) == raw``. The alphabets below are copied from the ABNF,
not from the parser, so the two are checked against each other.
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field

from hypothesis import strategies as st

from callscript.sip.headers import KNOWN

ALPHA = string.ascii_letters
DIGIT = string.digits
ALNUM = ALPHA + DIGIT
# RFC 3261 §25.1
TOKEN_CHARS = ALNUM + "-.!%*_+`'~"
MARK = "-_.!~*'()"
UNRESERVED = ALNUM + MARK
USER_UNRESERVED = "&=+$,;?/"
PASSWORD_EXTRA = "&=+$,"
PARAM_UNRESERVED = "[]/:&+$"
HNV_UNRESERVED = "[]/?:+$"
WORD_CHARS = TOKEN_CHARS + '()<>:\\"/[]?{}'
RESERVED = ";/?:@&=+$,"

# Header names the stack knows (any spelling), which unknown-header names must avoid.
KNOWN_LOWER = frozenset(name.lower() for name in KNOWN)
COMPACT = {
    "Accept-Contact": "a", "Referred-By": "b", "Content-Type": "c", "Content-Encoding": "e",
    "From": "f", "Call-ID": "i", "Supported": "k", "Content-Length": "l", "Contact": "m",
    "Subject": "s", "To": "t", "Via": "v",
}  # fmt: skip


def escape(ch: str, *, upper: bool = True) -> str:
    """``%HH`` for every UTF-8 byte of ``ch``."""
    return "".join(f"%{b:02X}" if upper else f"%{b:02x}" for b in ch.encode("utf-8"))


def text_of(alphabet: str, *, min_size: int = 1, max_size: int = 10) -> st.SearchStrategy[str]:
    """Characters of ``alphabet``, some written as escapes (RFC 3261 §25.1 escaped)."""
    piece = st.one_of(
        st.sampled_from(alphabet),
        st.builds(escape, st.sampled_from(alphabet), upper=st.booleans()),
        st.integers(0, 255).map(lambda b: f"%{b:02X}"),
    )
    return st.lists(piece, min_size=min_size, max_size=max_size).map("".join)


tokens = st.text(TOKEN_CHARS, min_size=1, max_size=10)
words = st.text(WORD_CHARS, min_size=1, max_size=12)


@st.composite
def hostnames(draw: st.DrawFn) -> str:
    """RFC 3261 §25.1: hostname = *( domainlabel "." ) toplabel [ "." ]."""

    def label(first: str) -> st.SearchStrategy[str]:
        middle = st.text(ALNUM + "-", max_size=6)
        return st.one_of(
            st.sampled_from(first),
            st.tuples(st.sampled_from(first), middle, st.sampled_from(ALNUM)).map("".join),
        )

    labels = draw(st.lists(label(ALNUM), max_size=3))
    top = draw(label(ALPHA))
    dot = draw(st.sampled_from(["", "", "."]))
    return ".".join([*labels, top]) + dot


ipv4 = st.ip_addresses(v=4).map(str)
ipv6 = st.ip_addresses(v=6).map(lambda a: a.compressed)
ipv6_references = st.one_of(
    ipv6.map(lambda a: f"[{a}]"), st.ip_addresses(v=6).map(lambda a: f"[{a.exploded}]")
)
hosts = st.one_of(hostnames(), ipv4, ipv6_references)
ports = st.one_of(st.none(), st.integers(0, 65535))


def unique_params(
    names: st.SearchStrategy[str], values: st.SearchStrategy[str | None], *, max_size: int = 3
) -> st.SearchStrategy[list[tuple[str, str | None]]]:
    """Parameters whose names differ case-insensitively (a repeated name keeps the last)."""
    return st.lists(st.tuples(names, values), max_size=max_size, unique_by=lambda p: p[0].lower())


@dataclass(frozen=True)
class UriModel:
    """What a URI text means; ``text`` is how it is written."""

    text: str
    scheme: str
    user: str | None = None
    password: str | None = None
    host: str = ""
    port: int | None = None
    params: tuple[tuple[str, str | None], ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    opaque: str = ""


@st.composite
def sip_uris(draw: st.DrawFn, *, headers: bool = True) -> UriModel:
    """RFC 3261 §19.1.1: sip:/sips: URIs with every optional part."""
    scheme = draw(st.sampled_from(["sip", "sips", "SIP", "Sips"]))
    user = draw(st.none() | text_of(UNRESERVED + USER_UNRESERVED))
    password = draw(st.none() | text_of(UNRESERVED + PASSWORD_EXTRA, min_size=0)) if user else None
    host = draw(hosts)
    port = draw(ports)
    paramchars = UNRESERVED + PARAM_UNRESERVED
    params = draw(unique_params(text_of(paramchars), st.none() | text_of(paramchars)))
    uri_headers = (
        draw(
            st.lists(
                st.tuples(
                    text_of(UNRESERVED + HNV_UNRESERVED),
                    text_of(UNRESERVED + HNV_UNRESERVED, min_size=0),
                ),
                max_size=2,
            )
        )
        if headers
        else []
    )
    text = f"{scheme}:"
    if user is not None:
        text += user + (f":{password}" if password is not None else "") + "@"
    text += host + (f":{port}" if port is not None else "")
    text += "".join(f";{n}" if v is None else f";{n}={v}" for n, v in params)
    if uri_headers:
        text += "?" + "&".join(f"{n}={v}" for n, v in uri_headers)
    return UriModel(
        text,
        scheme.lower(),
        user,
        password,
        host,
        port,
        tuple((n.lower(), v) for n, v in params),
        tuple(uri_headers),
    )


@st.composite
def tel_uris(draw: st.DrawFn) -> UriModel:
    """RFC 3966: a global number with visual separators and parameters."""
    digits = draw(st.lists(st.sampled_from(DIGIT + DIGIT + "-.()"), min_size=1, max_size=12))
    number = "+" + draw(st.sampled_from(DIGIT)) + "".join(digits)
    # RFC 3966 §3: pname = 1*( alphanum / "-" ), pvalue = 1*paramchar.
    pnames = st.text(ALNUM + "-", min_size=1, max_size=8)
    params = draw(
        unique_params(pnames, st.none() | text_of(UNRESERVED + PARAM_UNRESERVED), max_size=2)
    )
    text = "tel:" + number + "".join(f";{n}" if v is None else f";{n}={v}" for n, v in params)
    return UriModel(text, "tel", user=number, params=tuple((n.lower(), v) for n, v in params))


@st.composite
def opaque_uris(draw: st.DrawFn) -> UriModel:
    """Any other absolute URI, kept as opaque text (RFC 4475 §3.3.2-3.3.4)."""
    scheme = draw(
        st.tuples(st.sampled_from(ALPHA), st.text(ALNUM + "+-.", max_size=8))
        .map("".join)
        .filter(lambda s: s.lower() not in ("sip", "sips", "tel"))
    )
    rest = draw(st.text(UNRESERVED + ";?:@&=+$,/[]#", min_size=1, max_size=20))
    return UriModel(f"{scheme}:{rest}", scheme.lower(), opaque=rest)


uris = st.one_of(sip_uris(), sip_uris(headers=False), tel_uris(), opaque_uris())


# -- addresses -------------------------------------------------------------------------


def quoted(text: str, escape_more: frozenset[int] = frozenset()) -> str:
    """RFC 3261 §25.1 quoted-string: ``"`` and ``\\`` (and chosen others) as quoted-pairs."""
    out = []
    for i, ch in enumerate(text):
        if (
            ch in '"\\'
            or ord(ch) < 0x20
            or ord(ch) == 0x7F
            or (i in escape_more and ord(ch) < 0x80)
        ):
            out.append("\\" + ch)
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


# Display text: printable ASCII and UTF-8, tabs, and (as quoted-pairs) controls other than CR/LF.
display_chars = st.characters(
    blacklist_categories=("Cs",), blacklist_characters="\r\n", max_codepoint=0x3000
)


@dataclass(frozen=True)
class AddressModel:
    """What an address text means."""

    text: str
    display: str | None
    uri: UriModel
    params: tuple[tuple[str, str | None], ...] = ()


gen_values = st.one_of(
    tokens,
    hostnames(),
    ipv4,
    ipv6_references,
    st.text(display_chars, max_size=8).map(quoted),
)
SWS = st.sampled_from(["", "", " ", "  ", "\t"])


@st.composite
def addresses(draw: st.DrawFn, *, uri: st.SearchStrategy[UriModel] = uris) -> AddressModel:
    """RFC 3261 §25.1: ( name-addr / addr-spec ) *( SEMI generic-param ), LWS where allowed."""
    model = draw(uri)
    params = draw(unique_params(tokens, st.none() | gen_values))
    form = draw(st.sampled_from(["quoted", "tokens", "bare-angle", "addr-spec"]))
    display: str | None = None
    if form == "addr-spec" and any(ch in model.text for ch in ";?,"):
        form = "bare-angle"
    if form == "quoted":
        display = draw(st.text(display_chars, max_size=12))
        more = frozenset(draw(st.lists(st.integers(0, 11), max_size=3)))
        head = quoted(display, more) + draw(SWS) + "<" + model.text + ">"
    elif form == "tokens":
        display = " ".join(draw(st.lists(tokens, min_size=1, max_size=3)))
        head = display + draw(st.sampled_from([" ", "  ", "\t"])) + "<" + model.text + ">"
        display = " ".join(display.split())
    elif form == "bare-angle":
        head = "<" + model.text + ">"
    else:
        head = model.text
    tail = ""
    for name, value in params:
        tail += draw(SWS) + ";" + draw(SWS) + name
        if value is not None:
            tail += draw(SWS) + "=" + draw(SWS) + value
    return AddressModel(head + tail, display, model, tuple((n.lower(), v) for n, v in params))


# -- Via -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ViaModel:
    """What a Via value means."""

    text: str
    transport: str
    host: str
    port: int | None
    params: tuple[tuple[str, str | None], ...]


via_param = st.one_of(
    st.tuples(st.just("branch"), tokens.map(lambda t: "z9hG4bK" + t)),
    st.tuples(st.just("received"), st.one_of(ipv4, ipv6, ipv6_references)),
    st.tuples(st.just("rport"), st.none() | st.integers(0, 65535).map(str)),
    st.tuples(st.just("ttl"), st.integers(0, 255).map(str)),
    st.tuples(st.just("maddr"), st.one_of(hostnames(), ipv4)),
    st.tuples(
        tokens.filter(lambda t: t.lower() not in ("branch", "received", "rport", "ttl", "maddr")),
        st.none() | tokens,
    ),
)


@st.composite
def vias(draw: st.DrawFn) -> ViaModel:
    """RFC 3261 §20.42: sent-protocol LWS sent-by *( SEMI via-params ), LWS around '/'."""
    name = draw(st.sampled_from(["SIP", "SIP", "sip"]))
    transport = draw(st.one_of(st.sampled_from(["UDP", "TCP", "TLS", "SCTP", "ws"]), tokens))
    slash = [draw(SWS) + "/" + draw(SWS) for _ in range(2)]
    host = draw(hosts)
    port = draw(ports)
    params = draw(st.lists(via_param, max_size=4, unique_by=lambda p: p[0].lower()))
    lws = draw(st.sampled_from([" ", "  ", "\t"]))
    text = f"{name}{slash[0]}2.0{slash[1]}{transport}{lws}{host}"
    if port is not None:
        text += f"{draw(SWS)}:{draw(SWS)}{port}"
    for pname, value in params:
        text += draw(SWS) + ";" + draw(SWS) + pname
        if value is not None:
            text += draw(SWS) + "=" + draw(SWS) + value
    return ViaModel(text, transport.upper(), host, port, tuple((n.lower(), v) for n, v in params))


# -- messages ---------------------------------------------------------------------------


def spellings(name: str) -> st.SearchStrategy[str]:
    """Ways to write a header name: as is, any case, compact form (RFC 3261 §7.3.3)."""
    options = [st.just(name), st.just(name.lower()), st.just(name.upper())]
    options.append(
        st.lists(st.booleans(), min_size=len(name), max_size=len(name)).map(
            lambda flips: "".join(
                c.upper() if f else c.lower() for c, f in zip(name, flips, strict=True)
            )
        )
    )
    if name in COMPACT:
        options.append(st.sampled_from([COMPACT[name], COMPACT[name].upper()]))
    return st.one_of(options)


@dataclass
class MessageModel:
    """A message drawn as header lines plus what they mean."""

    raw: bytes
    method: str
    uri: UriModel | None
    status: int | None
    reason: str | None
    vias: list[ViaModel]
    from_: AddressModel
    to: AddressModel
    call_id: str
    cseq: tuple[int, str]
    max_forwards: int | None
    contacts: list[AddressModel]
    unknown: list[tuple[str, str]]
    body: bytes
    lines: list[str] = field(default_factory=list)


@st.composite
def header_line(draw: st.DrawFn, name: str, values: list[str]) -> str:
    """One header line: name, HCOLON, values joined by COMMA, maybe folded (RFC 3261 §7.3.1)."""
    spelled = draw(spellings(name))
    colon = (
        draw(st.sampled_from(["", "", " ", "\t"]))
        + ":"
        + draw(st.sampled_from([" ", " ", "", "  ", "\r\n ", "\r\n\t"]))
    )
    seps = [draw(st.sampled_from([", ", ",", " , ", ",\r\n ", ",\r\n\t  "])) for _ in values[1:]]
    text = values[0] + "".join(sep + value for sep, value in zip(seps, values[1:], strict=True))
    return spelled + colon + text


methods = st.one_of(
    st.sampled_from(["INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER"]), tokens
)
reasons = st.text(
    st.characters(blacklist_categories=("Cs", "Cc"), max_codepoint=0x3000), max_size=20
).map(lambda r: r.strip(" "))
unknown_names = tokens.filter(lambda n: n.lower() not in KNOWN_LOWER and len(n) > 1)
unknown_values = st.text(
    st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp"), max_codepoint=0x3000), max_size=20
).map(lambda v: v.strip(" \t"))


@st.composite
def messages(draw: st.DrawFn) -> MessageModel:
    """A request or response (RFC 3261 §7) whose header section uses all of the above."""
    is_request = draw(st.booleans())
    method = draw(methods)
    request_uri = (
        draw(st.one_of(sip_uris(headers=False), tel_uris(), opaque_uris())) if is_request else None
    )
    status = None if is_request else draw(st.integers(100, 699))
    reason = None if is_request else draw(reasons)
    via_values = draw(st.lists(vias(), min_size=1, max_size=4))
    from_ = draw(addresses())
    to = draw(addresses())
    local, host = draw(words), draw(st.none() | words)
    call_id = local if host is None else f"{local}@{host}"
    number = draw(st.integers(0, 2**32 - 1))
    zeros = "0" * draw(st.integers(0, 2))
    max_forwards = draw(st.none() | st.integers(0, 255))
    contacts = draw(st.lists(addresses(uri=st.one_of(sip_uris(), tel_uris())), max_size=3))
    unknown = draw(st.lists(st.tuples(unknown_names, unknown_values), max_size=3))
    body = draw(st.binary(max_size=64))

    headers: list[str] = []
    # Via values, over one or more lines, top first.
    split = draw(st.integers(1, len(via_values)))
    headers.append(draw(header_line("Via", [v.text for v in via_values[:split]])))
    if via_values[split:]:
        headers.append(draw(header_line("Via", [v.text for v in via_values[split:]])))
    others = [
        draw(header_line("From", [from_.text])),
        draw(header_line("To", [to.text])),
        draw(header_line("Call-ID", [call_id])),
        draw(
            header_line(
                "CSeq", [f"{zeros}{number}{draw(st.sampled_from([' ', '  ', chr(9)]))}{method}"]
            )
        ),
    ]
    if max_forwards is not None:
        others.append(draw(header_line("Max-Forwards", [f"{zeros}{max_forwards}"])))
    if contacts:
        others.append(draw(header_line("Contact", [c.text for c in contacts])))
    others += [draw(header_line(name, [value or "x"])) for name, value in unknown]
    if body:
        others.append(draw(header_line("Content-Type", ["application/octet-stream"])))
    others.append(draw(header_line("Content-Length", [str(len(body))])))
    headers += draw(st.permutations(others))
    if is_request:
        assert request_uri is not None
        start = f"{method} {request_uri.text} SIP/2.0"
    else:
        start = f"SIP/2.0 {status} {reason}"
    raw = ("\r\n".join([start, *headers]) + "\r\n\r\n").encode("utf-8") + body
    return MessageModel(
        raw,
        method,
        request_uri,
        status,
        reason,
        via_values,
        from_,
        to,
        call_id,
        (number, method),
        max_forwards,
        contacts,
        [(n, v or "x") for n, v in unknown],
        body,
        headers,
    )
