"""Transaction keys: which transaction a message belongs to (RFC 3261 §17.1.3, §17.2.3, §9.2).

A key is a plain string, so the layer finds a transaction with one dict
lookup. Client and server keys cannot collide (``C`` / ``S`` prefixes).

- Client (§17.1.3): the branch of the top Via and the CSeq method. A CANCEL
  carries the branch of its INVITE but is a different transaction.
- Server, RFC 3261 peers (branch starts with ``z9hG4bK``, §17.2.3): branch,
  sent-by of the top Via, and method, with ACK counted as INVITE.
- Server, RFC 2543 peers (no magic cookie): Request-URI, To tag, From tag,
  Call-ID, CSeq number, top Via and method. An ACK is looked up under the
  INVITE's key and must also carry the To tag of the response the
  transaction sent (checked by the layer).

Every function reads only the headers it needs and raises ``ParseError`` when
one of them is missing or malformed.
"""

from __future__ import annotations

from callscript.sip.message import Request, Response
from callscript.sip.via import MAGIC_COOKIE, Via


def client_key(branch: str, method: str) -> str:
    """The key of the client transaction that sent ``method`` with ``branch``."""
    return f"C {branch} {method}"


def response_key(response: Response) -> str | None:
    """The key of the client transaction a response matches, ``None`` without a branch.

    Raises:
        ParseError: no (or a bad) top Via or CSeq.
    """
    # RFC 3261 §17.1.3: top Via branch and CSeq method; a CANCEL's responses match the CANCEL.
    branch = response.top_via.branch
    if not branch:
        return None
    return client_key(branch, response.cseq.method)


def is_rfc3261_branch(via: Via) -> bool:
    """Whether the Via's branch starts with the magic cookie (RFC 3261 §8.1.1.7)."""
    branch = via.branch
    return branch is not None and branch.startswith(MAGIC_COOKIE)


def server_key(request: Request, *, method: str | None = None, to_tag: str | None = "") -> str:
    """The key of the server transaction ``request`` belongs to.

    Args:
        request: a received request.
        method: the method to key under instead of the request's (ACK and
            CANCEL look for their INVITE with ``"INVITE"``).
        to_tag: for RFC 2543 keys, the To tag to use instead of the request's
            (``""`` means the request's own).

    Raises:
        ParseError: a header the key needs is missing or malformed.
    """
    method = method or request.method
    if method == "ACK":
        method = "INVITE"
    via = request.top_via
    if is_rfc3261_branch(via):
        # RFC 3261 §17.2.3: branch, sent-by and method (ACK as INVITE) identify the transaction.
        host, port = via.sent_by
        return f"S {via.branch} {host.lower()}:{port or ''} {method}"
    # RFC 3261 §17.2.3: without the cookie, match on Request-URI, To tag, From tag, Call-ID,
    # CSeq number and top Via (RFC 2543 peers).
    if to_tag == "":
        to_tag = request.to_addr.tag
    parts = (
        str(request.uri),
        to_tag,
        request.from_addr.tag,
        request.call_id,
        request.cseq.number,
        _via_identity(via),
        method,
    )
    return f"S2543 {parts!r}"


def ack_keys(ack: Request) -> tuple[str, ...]:
    """Keys of the INVITE server transactions an ACK may belong to, most likely first.

    For an RFC 2543 ACK the INVITE had either no To tag (the ACK carries the
    tag of the response) or the same one (a re-INVITE); both are tried and
    the layer checks the tag against the response the transaction sent.

    Raises:
        ParseError: a header the key needs is missing or malformed.
    """
    if is_rfc3261_branch(ack.top_via):
        return (server_key(ack, method="INVITE"),)
    tag = ack.to_addr.tag
    if tag is None:
        return (server_key(ack, method="INVITE"),)
    return (server_key(ack, method="INVITE", to_tag=None), server_key(ack, method="INVITE"))


def _via_identity(via: Via) -> str:
    params = ";".join(f"{name}={value}" for name, value in sorted(via.params.items(), key=str))
    return f"{via.transport} {via.host.lower()}:{via.port or ''} {params}"
