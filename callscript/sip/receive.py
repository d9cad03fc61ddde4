"""Transport-layer rules that need no sockets: RFC 3261 §18.1.1, §18.2.1, §18.2.2; RFC 3581 §4.

- :func:`stamp_via`: what a server writes into the top Via of a request it
  receives (``received``, ``rport``), RFC 3261 §18.2.1 and RFC 3581 §4.
- :func:`response_peer`: where a response goes when only its Via is known
  (stateless forwarding, stray responses), RFC 3261 §18.2.2 and RFC 3581 §4.
- :func:`request_transport`: a request too large for UDP goes over TCP,
  RFC 3261 §18.1.1.
- :func:`error_response`: the 400 (or 505, 513...) answering a malformed
  request, with a reason phrase saying what was wrong and where; ``None``
  when the request cannot be answered (so it is dropped).
- :func:`split_at_failure`: on a stream whose framing failed, the whole
  messages before the broken one, and the broken one to answer.

The asyncio adapters in ``callscript.transport`` call these; they do no I/O.
"""

from __future__ import annotations

import hashlib
from types import MappingProxyType

from callscript.errors import SipError
from callscript.sip.abnf import split_list
from callscript.sip.address import Address, parse_address
from callscript.sip.errors import ParseError
from callscript.sip.events import TRANSPORTS, Peer
from callscript.sip.headers import CSeq, Text, header_key, parse_call_id, parse_cseq
from callscript.sip.message import Request, Response, parse_message
from callscript.sip.uri import ip_literal
from callscript.sip.via import Via, parse_via

# The port when a Via names none: 5060, or 5061 for TLS (RFC 3261 §19.1.2).
DEFAULT_PORTS = MappingProxyType({"UDP": 5060, "TCP": 5060, "TLS": 5061})

REASONS = MappingProxyType(
    {
        400: "Bad Request",
        413: "Request Entity Too Large",
        414: "Request-URI Too Long",
        416: "Unsupported URI Scheme",
        420: "Bad Extension",
        505: "Version Not Supported",
        513: "Message Too Large",
    }
)

# How much of a malformed message error_response reads, and how long its reason may be.
_HEAD_LIMIT = 65536
_REASON_LIMIT = 200


def _bare_ip(host: str) -> str | None:
    """The IP literal ``host`` names, without brackets and in canonical form; None for a name."""
    address = ip_literal(host)
    return None if address is None else str(address)


def stamped_via(via: Via, source: Peer) -> Via:
    """``via`` with ``received`` and ``rport`` set as a server receiving from ``source`` does.

    See :func:`stamp_via`.
    """
    source_ip = _bare_ip(source.host) or source.host
    params = via.params
    if "rport" in params and not params.get("rport"):
        # RFC 3581 §4: an empty rport is filled with the source port, and received is added
        # even when sent-by already holds the source address.
        return via.with_params(received=source_ip, rport=str(source.port))
    if _bare_ip(via.host) != source_ip:
        # RFC 3261 §18.2.1: add received when sent-by is a name or differs from the source address.
        return via.with_params(received=source_ip)
    return via


def stamp_via(request: Request, source: Peer) -> None:
    """Add ``received`` (and fill an empty ``rport``) on the top Via of a received request.

    Args:
        request: the request as received; changed in place.
        source: where it came from (the packet's source address and port).

    Raises:
        ParseError: the request has no readable Via.
    """
    via = request.top_via
    stamped = stamped_via(via, source)
    if stamped is not via:
        request.set_top("Via", stamped)


def _peer(transport: str, host: str | None, port: int) -> Peer | None:
    if host is None or not 0 < port < 65536:
        return None
    return Peer(transport, host, port)


def response_peer(response: Response, source: Peer | None = None) -> Peer | None:
    """Where to send ``response``, from its top Via (and the request's ``source`` if known).

    Args:
        response: a response about to be sent; its top Via is the request's,
            already stamped with ``received``/``rport``.
        source: the Peer the request came from, when known; on TCP/TLS it
            pins the connection to answer over.

    Returns:
        The Peer (transport from the Via), or ``None`` when the Via names a
        host rather than an IP address (the caller resolves it, RFC 3263 §5),
        names an unsupported transport, or cannot be read.
    """
    try:
        via = response.top_via
    except ParseError:
        return None
    transport = via.transport
    if transport not in TRANSPORTS:
        return None
    sent_by_port = via.port or DEFAULT_PORTS[transport]
    received = via.received
    if transport != "UDP":
        if source is not None and source.connection is not None and source.transport == transport:
            # RFC 3261 §18.2.2: reliable transport: back over the connection the request came on.
            return source
        # RFC 3261 §18.2.2: else open a connection to received (or sent-by) at the sent-by port.
        return _peer(transport, _bare_ip(received or via.host), sent_by_port)
    maddr = via.params.get("maddr")
    if maddr:
        # RFC 3261 §18.2.2: maddr: to that address, at the sent-by port or 5060.
        return _peer(transport, _bare_ip(maddr), sent_by_port)
    if received:
        rport = via.rport
        if rport is not None:
            # RFC 3581 §4: received and rport: to that address and that port.
            return _peer(transport, _bare_ip(received), rport)
        # RFC 3261 §18.2.2: received: to that address, at the sent-by port or 5060.
        return _peer(transport, _bare_ip(received), sent_by_port)
    # RFC 3261 §18.2.2: otherwise to sent-by (a name needs RFC 3263 §5: None here).
    return _peer(transport, _bare_ip(via.host), sent_by_port)


def request_transport(
    size: int, peer: Peer, *, mtu_limit: int = 1300, path_mtu: int | None = None
) -> str:
    """The transport to send a request of ``size`` bytes to ``peer`` over.

    Args:
        size: the serialized request's length in bytes.
        peer: the chosen destination.
        mtu_limit: the size limit when the path MTU is unknown (1300 bytes).
        path_mtu: the path MTU when known.

    Returns:
        ``peer.transport``, or ``"TCP"`` when a UDP request is too large; the
        caller then updates the Via transport (and falls back to UDP if the
        TCP connection fails, as RFC 3261 §18.1.1 allows).
    """
    if peer.transport != "UDP":
        return peer.transport
    limit = mtu_limit if path_mtu is None else path_mtu - 200
    # RFC 3261 §18.1.1: over 1300 bytes (MTU unknown) or within 200 bytes of the path MTU: TCP.
    return "TCP" if size > limit else "UDP"


def _header_lines(data: bytes) -> list[str]:
    data = data[:_HEAD_LIMIT].lstrip(b"\r\n")
    end = data.find(b"\r\n\r\n")
    if end < 0:
        end = data.find(b"\n\n")
    head = data if end < 0 else data[:end]
    lines: list[str] = []
    for raw in head.decode("utf-8", "surrogateescape").split("\n"):
        line = raw.removesuffix("\r")
        if line[:1] in (" ", "\t") and len(lines) > 1:
            # RFC 3261 §7.3.1: a line starting with whitespace continues the previous header.
            lines[-1] += " " + line.strip(" \t")
        else:
            lines.append(line)
    return lines


def _fields(lines: list[str]) -> dict[str, list[str]]:
    fields: dict[str, list[str]] = {}
    for line in lines:
        name, colon, value = line.partition(":")
        if not colon:
            continue
        try:
            key = header_key(name)
        except ParseError:
            continue
        fields.setdefault(key, []).append(value.strip(" \t"))
    return fields


def _readable_vias(texts: list[str]) -> list[Via]:
    """The Via values up to the first one that cannot be read."""
    vias: list[Via] = []
    for text in texts:
        for part in split_list(text):
            try:
                vias.append(parse_via(part))
            except ParseError:
                return vias
    return vias


def _first(fields: dict[str, list[str]], key: str) -> str:
    values = fields.get(key)
    if not values:
        raise ParseError(f"missing {key}")
    return values[0]


def _printable(text: str) -> str:
    text = "".join(ch if " " <= ch <= "~" else "?" for ch in text)
    return text if len(text) <= _REASON_LIMIT else text[: _REASON_LIMIT - 3] + "..."


def build_error_response(
    data: bytes, error: ParseError, *, source: Peer | None = None
) -> Response | None:
    """The response :func:`error_response` serializes, or ``None``. Never raises."""
    try:
        response = _build_error_response(data, error, source)
    except (SipError, ValueError):
        response = None
    if response is not None:
        return response
    try:
        return _build_raw_error_response(data, error)
    except (SipError, ValueError):
        return None


def _build_raw_error_response(data: bytes, error: ParseError) -> Response | None:
    # The headers a response copies could not all be read (RFC 4475 §3.1.2.4 scalar02,
    # §3.1.2.16 badvers...): echo their lines as received, which only the sender reads,
    # so that it still learns why. The answer goes back to where the bytes came from.
    lines = _header_lines(data)
    if lines[0][:4].upper() == "SIP/" or lines[0].split(" ", 1)[0] == "ACK":
        return None
    fields = _fields(lines[1:])
    copied: list[tuple[str, str]] = []
    for key in ("Via", "From", "To", "Call-ID", "CSeq"):
        values = fields.get(key)
        if not values or any(not _plain(value) for value in values):
            return None
        copied += [(key, value) for value in (values if key == "Via" else values[:1])]
    cseq_method = fields["CSeq"][0].split()[-1:]
    if cseq_method == ["ACK"]:
        return None
    status = error.status if 400 <= error.status <= 699 else 400
    response = Response(status, _printable(f"{REASONS.get(status, REASONS[400])} ({error})"))
    for key, value in copied:
        response._append_line(key, f"{key}: {value}")
    return response


def _plain(value: str) -> bool:
    return bool(value) and all(" " <= ch <= "~" or ch == "\t" for ch in value)


def _build_error_response(data: bytes, error: ParseError, source: Peer | None) -> Response | None:
    lines = _header_lines(data)
    start = lines[0]
    if start[:4].upper() == "SIP/":
        # A malformed response is dropped silently: nobody answers a response.
        return None
    fields = _fields(lines[1:])
    vias = _readable_vias(fields.get("Via", []))
    if not vias:
        return None
    from_addr: Address = parse_address(_first(fields, "From"))
    to_addr: Address = parse_address(_first(fields, "To"))
    call_id: Text = parse_call_id(_first(fields, "Call-ID"))
    cseq: CSeq = parse_cseq(_first(fields, "CSeq"))
    for address in (from_addr, to_addr):
        address.uri  # noqa: B018 - parsing is the check: never echo a URI we cannot read
    if cseq.method == "ACK" or start.split(" ", 1)[0] == "ACK":
        # An ACK is never answered: it has no server transaction to respond from.
        return None
    if to_addr.tag is None:
        # RFC 3261 §8.2.6.2: the UAS adds a To tag, the same one for every retransmission;
        # a digest of the request's identifiers stays the same across retransmissions.
        seed = "\n".join((call_id.text, from_addr.tag or "", str(cseq), vias[0].branch or ""))
        digest = hashlib.sha256(seed.encode("utf-8", "surrogateescape")).hexdigest()
        to_addr = to_addr.with_params(tag=digest[:16])
    if source is not None:
        vias[0] = stamped_via(vias[0], source)
    status = error.status if 400 <= error.status <= 699 else 400
    title = REASONS.get(status, REASONS[400])
    reason = _printable(f"{title} ({error})")
    headers: list[tuple[str, object]] = [("Via", via) for via in vias]
    headers += [("From", from_addr), ("To", to_addr), ("Call-ID", call_id), ("CSeq", cseq)]
    return Response(status, reason, headers)


def error_response(data: bytes, error: ParseError, *, source: Peer | None = None) -> bytes | None:
    """The response to a malformed request, or ``None`` when it must be dropped.

    Args:
        data: the bytes received (a datagram, or one message framed on a stream).
        error: why they could not be used; ``error.status`` (400, 505, 513,
            416...) is the status answered, and the reason phrase names the
            problem and its line, e.g. ``Bad Request (line 7: bad Via header: ...)``.
        source: where the bytes came from; when given, the top Via gets
            ``received``/``rport`` (RFC 3261 §18.2.1, RFC 3581 §4) so that
            :func:`response_peer` finds the way back.

    Returns:
        The serialized response, built only when the request's Via, From, To,
        Call-ID and CSeq can be read (they are copied, and a To tag added).
        ``None`` for responses, ACKs and unreadable requests. Never raises.
    """
    response = build_error_response(data, error, source=source)
    return None if response is None else bytes(response)


def split_at_failure(buf: bytes, max_size: int) -> tuple[list[bytes], bytes]:
    """Cut unframed bytes into the whole messages before the one that broke framing, and that one.

    The framer drops the messages it completed in a read that ends in an
    error; this finds them again (each needs a usable Content-Length and to
    fit ``max_size``) so they are still delivered, and isolates the broken
    message so the error response answers the right request.
    """
    good: list[bytes] = []
    pos = 0
    while True:
        while buf.startswith(b"\r\n", pos):
            pos += 2
        end = buf.find(b"\r\n\r\n", pos)
        if end < 0:
            break
        try:
            message = parse_message(buf[pos:])
        except ParseError:
            break
        stop = end + 4 + len(message.body)
        if "Content-Length" not in message or stop - pos > max_size:
            break
        good.append(buf[pos:stop])
        pos = stop
    return good, buf[pos:]
