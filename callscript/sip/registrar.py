"""REGISTER processing (RFC 3261 §10.3), as pure decisions over the current bindings.

The registrar never touches storage: :func:`decide_register` reads the
request and the address-of-record's current bindings and returns what to
save, what to remove, or the error to answer. The engine applies the
changes to the location store and answers with :func:`ok_response`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, cast

from callscript.sip.address import Address
from callscript.sip.errors import ParseError
from callscript.sip.headers import Number
from callscript.sip.message import Request, Response
from callscript.sip.reply import make_response
from callscript.sip.uri import URI

_UINT32 = 2**32 - 1


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

    Args:
        request: a validated REGISTER whose authentication the engine checked (steps 1-4).
        current: the AOR's current bindings.
        tag: a To tag for error responses.
    """
    to_uri = request.to_addr.uri
    # RFC 3261 §10.3 step 5: the To header must hold a valid SIP or SIPS address-of-record.
    if not to_uri.is_sip or not to_uri.user:
        error = make_response(
            request, 400, "To must be a SIP or SIPS address-of-record", to_tag=tag
        )
        return RegisterDecision(aor=str(to_uri), error=error)
    decision = RegisterDecision(aor=aor_of(to_uri))
    contacts = request.contacts
    header_expires = _header_expires(request)
    # RFC 3261 §10.3 step 6: '*' is allowed only alone and with Expires 0.
    if any(c.star for c in contacts):
        if len(contacts) != 1 or header_expires != 0:
            decision.error = make_response(
                request, 400, "Contact * needs Expires 0 and no other Contact", to_tag=tag
            )
            return decision
        if _out_of_order(request, current):
            decision.error = make_response(
                request, 400, "CSeq out of order for this Call-ID", to_tag=tag
            )
            return decision
        decision.remove_all = True
        return decision
    by_key = {_contact_key(b.contact): b for b in current}
    for contact in contacts:
        expires = _contact_expires(contact, header_expires, policy)
        # RFC 3261 §10.3 step 7: a non-zero expiry below Min-Expires is refused with 423.
        if 0 < expires < policy.min_expires:
            decision.error = make_response(
                request, 423, to_tag=tag, headers=[("Min-Expires", policy.min_expires)]
            )
            return decision
        expires = min(expires, policy.max_expires)
        existing = by_key.get(_contact_key(str(contact.uri)))
        # RFC 3261 §10.3 step 7: the same Call-ID with a CSeq not higher aborts the update.
        if (
            existing is not None
            and existing.call_id == request.call_id
            and request.cseq.number <= existing.cseq
        ):
            decision.error = make_response(
                request, 400, "CSeq out of order for this Call-ID", to_tag=tag
            )
            return decision
        if expires == 0:
            decision.removes.append(str(contact.uri))
        else:
            decision.saves.append(ContactUpdate(str(contact.uri), _q(contact), expires))
    return decision


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
    return cast(Number, value).number if value is not None else None


def _contact_expires(contact: Address, header_expires: int | None, policy: RegistrarPolicy) -> int:
    # RFC 3261 §10.2.1.1: the Contact's expires parameter wins over the Expires header.
    param = contact.params.get("expires")
    if param is not None:
        if not param.isdigit():
            raise ParseError(f"bad expires parameter {param!r}")
        return min(int(param[:11]), _UINT32)
    if header_expires is not None:
        return header_expires
    return policy.default_expires


def _q(contact: Address) -> float:
    value = contact.params.get("q")
    if value is None:
        return 1.0
    try:
        q = float(value)
    except ValueError:
        raise ParseError(f"bad q value {value!r}") from None
    # RFC 3261 §20.10: qvalue is between 0 and 1.
    if not 0.0 <= q <= 1.0:
        raise ParseError(f"q value {value!r} outside 0-1")
    return q


def _q_param(q: float) -> dict[str, str | None]:
    return {} if q == 1.0 else {"q": f"{q:.3g}"}


def _contact_key(text: str) -> tuple[object, ...]:
    uri = URI.parse(text)
    return (uri.scheme, uri.user, uri.host.lower(), uri.port, uri.transport)


def _out_of_order(request: Request, current: Sequence[CurrentBinding]) -> bool:
    return any(b.call_id == request.call_id and request.cseq.number <= b.cseq for b in current)
