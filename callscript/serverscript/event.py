"""``event``: the request a server script's handler is called with.

The per-user names (``method``, ``uri``, ``event['Header']``, ``location``,
``action``...) plus what a server needs to decide: where the request came from,
whether it is for this server or its domains, whether it is within a dialog.
``event.request`` is the live :class:`~callscript.sip.message.Request` (the
script is trusted): changes made before ``forward()`` go out with it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Generic, TypeVar

from callscript.serverscript.actions import Actions
from callscript.serverscript.bridge import BlockingActions
from callscript.serverscript.call import RoutedRequest
from callscript.serverscript.forwarding import Targets, to_uris
from callscript.sip.errors import ParseError
from callscript.sip.events import Peer
from callscript.sip.message import Request
from callscript.sip.uri import URI

if TYPE_CHECKING:
    from callscript.serverscript.router import ScriptRouter

A = TypeVar("A", Actions, BlockingActions)


class Event(Generic[A]):
    """The request being routed; ``event.action`` holds what can be done with it.

    ``Event[Actions]`` (alias :data:`AsyncEvent`) is what an ``async def`` handler
    gets, ``Event[BlockingActions]`` (:data:`BlockingEvent`) what a plain one gets.
    """

    __slots__ = ("_action", "_call", "_router")
    _action: A

    def __init__(self, router: ScriptRouter, call: RoutedRequest, action: A) -> None:
        self._router = router
        self._call = call
        self._action = action

    @property
    def action(self) -> A:
        """What the handler can do (coroutines in an ``async def`` handler)."""
        return self._action

    @property
    def request(self) -> Request:
        """The live request (after the core removed the Route values naming this server)."""
        return self._call.request

    @property
    def method(self) -> str:
        """INVITE, REGISTER, OPTIONS..."""
        return self._call.request.method

    @property
    def uri(self) -> URI:
        """The Request-URI."""
        return self._call.request.uri

    @property
    def user(self) -> str:
        """The address-of-record the Request-URI names (``sip:bob@example.com``)."""
        uri = self._call.request.uri
        return uri.aor if uri.is_sip else str(uri)

    @property
    def from_uri(self) -> URI:
        """The From URI (who the request claims to come from)."""
        return self._call.request.from_addr.uri

    @property
    def to_uri(self) -> URI:
        """The To URI."""
        return self._call.request.to_addr.uri

    @property
    def call_id(self) -> str:
        """The Call-ID."""
        return self._call.request.call_id

    @property
    def max_forwards(self) -> int | None:
        """Max-Forwards as received (the core answered 0 with 483 already), or None."""
        return self._call.request.max_forwards

    @property
    def size(self) -> int:
        """The request's length in bytes (as held: without the Route values naming us)."""
        return len(bytes(self._call.request))

    @property
    def source(self) -> Peer:
        """Where the request came from: ``.transport``, ``.host``, ``.port``."""
        return self._call.source

    @property
    def in_dialog(self) -> bool:
        """The request belongs to a dialog (its To has a tag)."""
        return self._call.in_dialog

    @property
    def is_self(self) -> bool:
        """Addressed to this server itself: one of our hosts or domains, no user part."""
        return self._router.config.is_self(self._call.request.uri)

    @property
    def for_us(self) -> bool:
        """The Request-URI is in one of our domains (or names this server)."""
        return self._router.config.serves(self._call.request.uri)

    @property
    def from_us(self) -> bool:
        """The From URI claims one of our domains (a caller we must authenticate)."""
        try:
            return self._router.config.serves(self._call.request.from_addr.uri)
        except ParseError:
            return False

    @property
    def trusted(self) -> bool:
        """The source is in the configured trusted networks."""
        return self._router.policy.trusted(self._call.source)

    @property
    def location(self) -> list[URI]:
        """The targets forward() and proxy() use; lookup() fills it; assign a URI, a str or a list."""
        return list(self._call.location)

    @location.setter
    def location(self, value: Targets | None) -> None:
        self._call.location = to_uris(value)
        self._call.bindings = None

    @property
    def redirect_targets(self) -> list[URI]:
        """The Contacts of the 3xx that made the last proxy() return 'redirection'."""
        return list(self._call.redirect_targets)

    def __getitem__(self, name: str) -> object:
        """A header's value (a list for list headers such as Via or Contact), or None."""
        return self._call.request.get(name)

    def __setitem__(self, name: str, value: object) -> None:
        """Replace a header (every value) before forwarding."""
        self._call.request[name] = value

    def __delitem__(self, name: str) -> None:
        """Remove a header before forwarding."""
        self._call.request.discard(name)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._call.request

    def __repr__(self) -> str:
        return f"<event {self.method} {self.uri}>"


AsyncEvent = Event[Actions]
BlockingEvent = Event[BlockingActions]
