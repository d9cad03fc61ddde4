"""The pump between the transports, the proxy core and the engine (STYLE §2).

Peer bytes enter here and only here: each datagram or framed stream message
is parsed once; a ParseError is answered (400/505/513 with a reason) or
dropped, counted, and the next message is served. After every input the
core's messages go out, its events go to the engine, and the one timer is
re-armed at the core's next deadline.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from callscript.metrics import Metrics
from callscript.sip.errors import ParseError
from callscript.sip.events import Peer
from callscript.sip.message import Request, Response, parse_message
from callscript.sip.proxy.core import ProxyCore
from callscript.sip.proxy.events import ProxyEvent
from callscript.sip.receive import stamp_via
from callscript.transport.manager import TransportManager

log = logging.getLogger("callscript.driver")


@dataclass(slots=True)
class DriverStats:
    """Counters of what the driver saw."""

    requests: int = 0
    responses: int = 0
    malformed: int = 0
    errors: int = 0


class Driver:
    """Feeds the core from the transports and the clock; hands its events to ``dispatch``."""

    def __init__(
        self,
        core: ProxyCore,
        transports: TransportManager,
        *,
        loop: asyncio.AbstractEventLoop,
        max_message_size: int = 65535,
        metrics: Metrics | None = None,
    ) -> None:
        self.core = core
        self.transports = transports
        self.loop = loop
        self.max_message_size = max_message_size
        self.dispatch: Callable[[ProxyEvent], None] = lambda event: None
        self.stats = DriverStats()
        self.metrics = metrics or Metrics()
        self._timer: asyncio.TimerHandle | None = None
        self._deadline: float | None = None

    @property
    def now(self) -> float:
        """The loop's clock, which the core's deadlines are measured on."""
        return self.loop.time()

    def on_message(self, data: bytes, source: Peer, listener: object = None) -> None:
        """A datagram or a framed stream message arrived."""
        try:
            self._receive(data, source)
        except Exception:  # an adapter must keep serving whatever one message did
            self.stats.errors += 1
            log.exception("error while handling a message from %s:%s", source.host, source.port)
        self.after_input()

    def _receive(self, data: bytes, source: Peer) -> None:
        try:
            message = parse_message(data, max_size=self.max_message_size)
            _check_framing_headers(message)
            if isinstance(message, Request):
                # RFC 3261 §18.2.1: note where the request really came from.
                stamp_via(message, source)
        except ParseError as exc:
            self.stats.malformed += 1
            log.info("malformed message from %s:%s: %s", source.host, source.port, exc)
            # Answered with a reason naming what and where, or dropped (responses, no Via...).
            self.transports.answer_malformed(data, exc, source)
            return
        try:
            if isinstance(message, Request):
                self.stats.requests += 1
                self.metrics.inc("callscript_sip_requests_total", method=message.method)
                self.core.handle_request(message, source, now=self.now)
            else:
                self.stats.responses += 1
                self.core.handle_response(message, source, now=self.now)
        except ParseError as exc:
            # A header the transaction layer needed (RFC 2543 matching reads the
            # Request-URI, To and From) is malformed: the layer kept no state.
            self.stats.malformed += 1
            log.info("unusable message from %s:%s: %s", source.host, source.port, exc)
            if isinstance(message, Request):
                self.transports.answer_malformed(data, exc, source)

    def on_transport_error(self, peer: Peer, exc: BaseException | None = None) -> None:
        """Sending to ``peer`` failed (RFC 3261 §17.1.4)."""
        try:
            self.core.handle_transport_error(peer, now=self.now)
        except Exception:
            self.stats.errors += 1
            log.exception("error while handling a transport failure to %s", peer)
        self.after_input()

    def after_input(self) -> None:
        """Send what the core produced, dispatch its events, re-arm the timer."""
        core = self.core
        for out in core.messages_to_send():
            try:
                self.transports.send(bytes(out.message), out.peer)
            except Exception:
                self.stats.errors += 1
                log.exception("cannot send to %s", out.peer)
        while (event := core.next_event()) is not None:
            try:
                self.dispatch(event)
            except Exception:
                self.stats.errors += 1
                log.exception("engine failed on %r", event)
        self._rearm(core.next_deadline())

    def _rearm(self, deadline: float | None) -> None:
        if deadline == self._deadline and self._timer is not None:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._deadline = deadline
        if deadline is not None:
            self._timer = self.loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._deadline = None
        try:
            self.core.handle_timers(now=self.now)
        except Exception:
            self.stats.errors += 1
            log.exception("error while running timers")
        self.after_input()

    def close(self) -> None:
        """Stop the timer."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def _check_framing_headers(message: Request | Response) -> None:
    # The transaction layer matches on these; a message without them cannot be handled.
    message.top_via  # noqa: B018 - parsing is the check
    message.cseq  # noqa: B018
    if isinstance(message, Request):
        message.call_id  # noqa: B018
        message.from_addr  # noqa: B018
        message.to_addr  # noqa: B018
