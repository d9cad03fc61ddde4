"""REGISTER processing (RFC 3261 §10.3), as pure decisions over the current bindings.

The registrar never touches storage: :func:`decide_register` reads the
request and the address-of-record's current bindings and returns what to
save, what to remove, or the error to answer. The engine applies the
changes to the location store and answers with :func:`ok_response`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from callscript.sip.address import Address
from callscript.sip.errors import ParseError
from callscript.sip.headers import Number
from callscript.sip.message import Request, Response
from callscript.sip.reply import make_response
from callscript.sip.uri import URI

_UINT32 = 2**32 - 1
_DIGITS = re.compile(r"[0-9]+")
_QVALUE = re.compile(r"0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?")
_UNSAFE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


class CurrentBinding(Protocol):
    """What the registrar reads of a stored binding."""

    @property
    def contact(self) -> str: ...

    @property
    def call_id(self) -> str: ...

    @property
    def cseq(self) -> int: ...

    @property
    def q(self) -> float: ...

    @property
    def expires_at(self) -> float: ...


@dataclass(frozen=True, slots=True)
class ContactUpdate:
    """A binding to add or refresh: ``contact`` (URI text), ``q`` and ``expires`` (seconds)."""

    contact: str
    q: float
    expires: int


@dataclass(slots=True)
class RegisterDecision:
    """The outcome of a REGISTER: an error response, or changes to apply.

    ``remove_all``: drop every binding of the AOR (``Contact: *``, RFC 3261 §10.3 step 6).
    ``saves`` / ``removes``: bindings to write and contacts (URI text) to delete.
    """

    aor: str
    error: Response | None = None
    remove_all: bool = False
    saves: list[ContactUpdate] = field(default_factory=list)
    removes: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class RegistrarPolicy:
    """Expiry limits (RFC 3261 §10.2.1, §10.3 step 7)."""

    default_expires: int = 3600
    min_expires: int = 60
    max_expires: int = 86400


def aor_of(uri: URI) -> str:
    """RFC 3261 §10.3 step 5: the address-of-record key of a To URI (``sip:user@host``)."""
    return uri.aor


def decide_register(
    request: Request,
    current: Sequence[CurrentBinding],
    policy: RegistrarPolicy,
    *,
    tag: str,
) -> RegisterDecision:
    """Decide what a REGISTER does (RFC 3261 §10.3 steps 5-7).

    Whatever the request holds, the outcome is a decision: unreadable Contact,
    Expires or ``q`` values give a 400 decision whose reason names the problem.

    Args:
        request: a validated REGISTER whose authentication the engine checked (steps 1-4).
        current: the AOR's current bindings.
        tag: a To tag for error responses.
    """
    try:
        to_uri = request.to_addr.uri
    except ParseError as exc:
        return RegisterDecision(aor="", error=_bad_request(request, f"bad To: {exc}", tag))
    # RFC 3261 §10.3 step 5: the To header must hold a valid SIP or SIPS address-of-record.
    if not to_uri.is_sip or not to_uri.user:
        error = _bad_request(request, "To must be a SIP or SIPS address-of-record", tag)
        return RegisterDecision(aor=str(to_uri), error=error)
    decision = RegisterDecision(aor=aor_of(to_uri))
    try:
        _decide(decision, request, current, policy, tag)
    except ParseError as exc:
        decision.error = _bad_request(request, str(exc), tag)
    if decision.error is not None:
        decision.saves, decision.removes, decision.remove_all = [], [], False
    return decision


def _decide(
    decision: RegisterDecision,
    request: Request,
    current: Sequence[CurrentBinding],
    policy: RegistrarPolicy,
    tag: str,
) -> None:
    contacts = request.contacts
    header_expires = _header_expires(request)
    # RFC 3261 §10.3 step 6: '*' is allowed only alone and with Expires 0.
    if any(c.star for c in contacts):
        if len(contacts) != 1 or header_expires != 0:
            decision.error = _bad_request(
                request, "Contact * needs Expires 0 and no other Contact", tag
            )
            return
        # RFC 3261 §10.3 step 6: a binding of this Call-ID is removed only by a higher CSeq.
        if _out_of_order(request, current):
            decision.error = _bad_request(request, "CSeq out of order for this Call-ID", tag)
            return
        decision.remove_all = True
        return
    stored = [(_stored_uri(b.contact), b) for b in current]
    for contact in contacts:
        uri = contact.uri
        expires = _contact_expires(contact, header_expires, policy)
        # RFC 3261 §10.3 step 7: a non-zero expiry below Min-Expires is refused with 423.
        if 0 < expires < policy.min_expires:
            decision.error = make_response(
                request, 423, to_tag=tag, headers=[("Min-Expires", policy.min_expires)]
            )
            return
        expires = min(expires, policy.max_expires)
        existing = next((b for s, b in stored if s is not None and s == uri), None)
        # RFC 3261 §10.3 step 7: the same Call-ID with a CSeq not higher aborts the update.
        if (
            existing is not None
            and existing.call_id == request.call_id
            and request.cseq.number <= existing.cseq
        ):
            decision.error = _bad_request(request, "CSeq out of order for this Call-ID", tag)
            return
        if expires == 0:
            decision.removes.append(str(uri))
        else:
            decision.saves.append(ContactUpdate(str(uri), _q(contact), expires))


def _bad_request(request: Request, reason: str, tag: str) -> Response:
    text = _UNSAFE.sub("?", reason)[:150]
    return make_response(request, 400, f"Bad Request ({text})", to_tag=tag)


def ok_response(
    request: Request, bindings: Sequence[CurrentBinding], *, now: float, tag: str
) -> Response:
    """RFC 3261 §10.3 step 8: 200 OK listing every current binding with its remaining expiry."""
    contacts = [
        Address(
            b.contact, params={"expires": str(max(0, int(b.expires_at - now))), **_q_param(b.q)}
        )
        for b in bindings
    ]
    headers: list[tuple[str, object]] = [("Contact", contacts)] if contacts else []
    return make_response(request, 200, to_tag=tag, headers=headers)


def _header_expires(request: Request) -> int | None:
    value = request.get("Expires")
    if value is None:
        return None
    if not isinstance(value, Number):
        raise ParseError(f"bad Expires header {str(value)[:40]!r}")
    return min(value.number, _UINT32)


def _contact_expires(contact: Address, header_expires: int | None, policy: RegistrarPolicy) -> int:
    # RFC 3261 §10.2.1.1: the Contact's expires parameter wins over the Expires header.
    param = contact.params.get("expires")
    if param is not None:
        if not _DIGITS.fullmatch(param):
            raise ParseError(f"bad expires parameter {param[:40]!r}")
        digits = param.lstrip("0") or "0"
        return _UINT32 if len(digits) > 10 else min(int(digits), _UINT32)
    if header_expires is not None:
        return header_expires
    return policy.default_expires


def _q(contact: Address) -> float:
    value = contact.params.get("q")
    if value is None:
        return 1.0
    # RFC 3261 §20.10: a qvalue is a decimal from 0 to 1 with at most three decimals.
    if not _QVALUE.fullmatch(value):
        raise ParseError(f"bad q value {value[:40]!r}")
    return float(value)


def _q_param(q: float) -> dict[str, str | None]:
    return {} if q == 1.0 else {"q": f"{q:.3g}"}


def _stored_uri(text: str) -> URI | None:
    try:
        return URI.parse(text)
    except ParseError:
        return None  # a stored contact we cannot read matches nothing


def _out_of_order(request: Request, current: Sequence[CurrentBinding]) -> bool:
    return any(b.call_id == request.call_id and request.cseq.number <= b.cseq for b in current)
