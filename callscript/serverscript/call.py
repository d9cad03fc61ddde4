"""What the runtime keeps about one request while the admin's handler routes it.

One :class:`RoutedRequest` per request the proxy core hands over. It lives as
long as the handler runs and is never shared between requests; the handler
sees it only through :class:`~callscript.serverscript.event.Event`.
"""

from __future__ import annotations

import concurrent.futures
import enum
from dataclasses import dataclass, field
from typing import Any

from callscript.sip.auth import AuthResult, AuthStatus
from callscript.sip.events import Peer
from callscript.sip.message import Request, Response
from callscript.sip.uri import URI
from callscript.store.base import Binding


class CallEnded(Exception):
    """Raised in a blocking handler when its request is gone (the caller cancelled it, or
    the server is stopping). The runtime catches it; handlers need not."""


class AuthOutcome(enum.Enum):
    """What :meth:`Actions.verify` concluded (the digest statuses, plus ``MISMATCH``)."""

    OK = "ok"
    MISSING = "missing"
    STALE = "stale"
    FAILED = "failed"
    MALFORMED = "malformed"
    MISMATCH = "mismatch"
    """The credentials are good but belong to another user than the request claims."""


@dataclass(frozen=True, slots=True)
class Authentication:
    """The outcome of ``event.action.verify()``: true when the request is authenticated.

    ``status`` is an :class:`AuthOutcome` value (``'ok'``, ``'missing'``,
    ``'stale'``, ``'failed'``, ``'malformed'``, ``'mismatch'``); ``username`` the
    digest user name when the password was right; ``reason`` is for logs only.
    """

    status: str
    username: str | None = None
    reason: str = ""

    def __bool__(self) -> bool:
        return self.status == AuthOutcome.OK.value

    @classmethod
    def of(cls, result: AuthResult, expected_user: str | None) -> Authentication:
        """From a digest result; good credentials of another user are a ``mismatch``."""
        if result.status is AuthStatus.OK and result.username != expected_user:
            return cls(AuthOutcome.MISMATCH.value, result.username, "credentials of another user")
        return cls(result.status.value, result.username, result.reason)


@dataclass(slots=True)
class RoutedRequest:
    """The state of one request being routed by the admin's handler.

    Attributes:
        ctx: the proxy core's response context key.
        request: the live request (after RFC 3261 §16.4 route preprocessing).
        source: where it came from.
        in_dialog: it carries a To tag.
        record_route: the handler asked for Record-Route (``record_route()``).
        record_routed: our Record-Route is already in the request.
        location: the targets ``forward()``/``proxy()`` use when given none.
        bindings: what ``lookup()`` found (forked by q-value groups).
        last: the response a non-final ``proxy()`` ended with, if not forwarded.
        redirect_targets: the Contacts of the 3xx that made ``proxy()`` return 'redirection'.
        auth: the last ``verify()`` result (``challenge()`` reads ``stale`` from it).
        forwarded_stateless: the request went on statelessly; the core forgot it.
        ended: the request is gone; blocking handlers get :class:`CallEnded`.
    """

    ctx: str
    request: Request
    source: Peer
    in_dialog: bool
    record_route: bool = False
    record_routed: bool = False
    location: list[URI] = field(default_factory=list)
    bindings: list[Binding] | None = None
    last: Response | None = None
    redirect_targets: list[URI] = field(default_factory=list)
    auth: Authentication | None = None
    forwarded_stateless: bool = False
    ended: bool = False
    waiting: set[concurrent.futures.Future[Any]] = field(default_factory=set)

    def end(self) -> None:
        """The request is gone: wake every blocking call of the handler with CallEnded."""
        self.ended = True
        for future in list(self.waiting):
            future.cancel()
