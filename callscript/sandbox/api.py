"""The objects a script sees inside the worker: ``basic``, ``event``, ``event.action``, ``log``.

Each forwards to the step's :class:`~callscript.sandbox.call.Call`: the event data,
the outcomes recorded so far, the actions the script took. Every action is a plain
JSON-able dict (``{"kind": "reject", "code": 603, "reason": "Decline", "seq": 2,
"line": 7}``) checked here, at the line that made it, and again by the SIP
process. ``proxy()`` consumes the next recorded outcome; when there is none the
step stops with :class:`Suspend` and the SIP process replays it once the outcome
is known (see runner.py).

Rules enforced here:
    * one final answer per call: after reject/redirect/accept/voicemail/default, or a
      proxy() that returned 'success', another final action is an error that names
      the first one and its line;
    * targets: at most ``max_targets`` per action, ``max_proxies`` proxy() calls per
      event, only allowed domains or registered contacts, no private addresses
      (targets.py);
    * codes 400-699, reasons and URIs free of CR/LF and controls, lengths capped;
    * hidden headers (Authorization...) are not there at all: not by ``event[...]``,
      ``in``, iteration, unpacking or ``str(event)``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

from callscript.sandbox.call import ApiError, Call
from callscript.sandbox.guards import scrub
from callscript.sandbox.targets import Refused, check_text, clean_log_text
from callscript.sandbox.values import URI, Header, show
from callscript.sip.errors import ParseError
from callscript.sip.headers import LIST_HEADERS, header_key
from callscript.sip.uri import parse_uri

_F = TypeVar("_F", bound=Callable[..., Any])


def _api(func: _F) -> _F:
    """An API entry point: stopped steps answer nothing, internal errors stay internal."""

    @functools.wraps(func)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        call: Call = self._call
        call.state.check()
        problem: str | None = None
        try:
            return func(self, *args, **kwargs)
        except Refused as exc:
            problem = str(exc)
        except (ValueError, TypeError, MemoryError, RecursionError):
            raise
        except Exception:
            problem = f"internal error in {func.__name__}()"
        # Raised outside the handler so that no internal exception rides along as context.
        raise ApiError(problem)

    return wrapper  # type: ignore[return-value]


class Action:
    """``event.action``: what a script can do with the call."""

    __slots__ = ("_call",)

    def __init__(self, call: Call) -> None:
        self._call = call

    @_api
    def proxy(
        self, timeout: object = None, location: object = None, sequential: object = False
    ) -> str:
        """Ring ``location`` (or event.location, or the registered contacts); returns
        'success', 'busy', 'noanswer', 'redirection' or 'failure'."""
        return self._call.proxy(timeout, location, sequential)

    @_api
    def redirect(self, location: object = None, permanent: object = False) -> None:
        """Answer 302 (301 when ``permanent``) with ``location`` as Contact."""
        call = self._call
        call.allow("redirect")
        if type(permanent) is not bool:
            raise ApiError("redirect() permanent must be True or False")
        if location is None:
            location = call.location
        targets = call.targets(location, redirect=True) if location is not None else []
        if not targets:
            raise ApiError("redirect() needs a location")
        call.answer("redirect", targets=targets, permanent=permanent)

    @_api
    def reject(self, code: object = 603, reason: object = None) -> None:
        """Answer with a final error response, ``code`` 400-699."""
        if type(code) is not int or not 400 <= code <= 699:
            raise ApiError("reject() code must be an integer 400-699")
        if reason is not None:
            reason = check_text(reason, "reject() reason", self._call.rules.api.max_reason_length)
        self._call.answer("reject", code=code, reason=reason)

    @_api
    def accept(self) -> None:
        """Answer 200 OK to a request other than INVITE (OPTIONS, MESSAGE...)."""
        if self._call.method == "INVITE":
            raise ApiError("accept() answers requests other than INVITE; use proxy()")
        self._call.answer("accept")

    @_api
    def voicemail(self) -> None:
        """Send the call to the owner's voicemail."""
        self._call.answer("voicemail")

    @_api
    def default(self) -> None:
        """Route the call as if there were no script."""
        self._call.answer("default")

    def __repr__(self) -> str:
        return "<action>"


class Event:
    """``event``: the request a handler is called with."""

    __slots__ = ("_action", "_call", "_uri", "_user")

    def __init__(self, call: Call) -> None:
        self._call = call
        self._action = Action(call)
        self._uri = URI(call.request_uri)
        self._user = URI(call.owner)

    method = property(lambda self: self._call.method, doc="INVITE, MESSAGE, OPTIONS...")
    direction = property(lambda self: self._call.direction, doc="'incoming' or 'outgoing'.")
    uri = property(lambda self: self._uri, doc="The request-URI.")
    user = property(lambda self: self._user, doc="The script owner's address of record.")
    time = property(lambda self: self._call.time, doc="Arrival time in the owner's time zone.")
    action = property(lambda self: self._action, doc="What the script can do with the call.")

    @property
    def contacts(self) -> list[URI]:
        """The owner's registered contacts."""
        return [URI(c) for c in self._call.contacts]

    @property
    def location(self) -> list[URI]:
        """The target set (empty until assigned); assign a URI, a str or a list."""
        return [URI(t) for t in self._call.location or ()]

    @property
    def redirect_targets(self) -> list[URI]:
        """The Contacts of the 3xx that made the last proxy() return 'redirection'."""
        out = []
        for text in self._call.redirect_targets:
            try:
                out.append(URI.wrap(parse_uri(text)))
            except ParseError:
                continue
        return out

    def __getitem__(self, name: object) -> Header | list[Header] | None:
        if type(name) is not str:
            raise TypeError("a header name must be a string")
        try:
            key = header_key(name)
        except ParseError:
            return None
        values = [Header(k, value) for k, _, value in self._call.headers if k == key]
        if not values:
            return None
        return values if key in LIST_HEADERS or len(values) > 1 else values[0]

    def __contains__(self, name: object) -> bool:
        return type(name) is str and self[name] is not None

    def __iter__(self) -> Any:
        names: list[str] = []
        for key, _, _ in self._call.headers:
            if key not in names:
                names.append(key)
        return iter(names)

    def __str__(self) -> str:
        call = self._call
        lines = [f"{call.method} {call.request_uri} SIP/2.0"]
        lines += [f"{name}: {value}" for _, name, value in call.headers]
        return "\r\n".join(lines) + "\r\n\r\n" + call.body

    def __repr__(self) -> str:
        return f"<event {self._call.method} {self._call.request_uri}>"


class EventWriter:
    """What ``_write_(event)`` returns: only ``event.location`` can be assigned."""

    __slots__ = ("_call",)
    _call: Call

    def __init__(self, event: Event) -> None:
        object.__setattr__(self, "_call", event._call)

    def __setattr__(self, name: str, value: object) -> None:
        if name != "location":
            raise TypeError(f"event.{name} cannot be assigned; only event.location can")
        self._call.set_location(value)

    def __delattr__(self, name: str) -> NoReturn:
        raise TypeError(f"event.{name} cannot be deleted")


class Basic:
    """``basic``: registers the handlers (``addEventListener`` or the ``@basic.on`` form)."""

    __slots__ = ("_call",)

    def __init__(self, call: Call) -> None:
        self._call = call

    @_api
    def addEventListener(self, kind: object, handler: object) -> None:
        """Call ``handler(event)`` for 'incoming' or 'outgoing' requests."""
        if type(kind) is not str or kind not in ("incoming", "outgoing"):
            raise ApiError("the event must be 'incoming' or 'outgoing'")
        if not callable(handler):
            raise ApiError("the handler must be a function taking the event")
        if kind in self._call.listeners:
            line = self._call.listeners[kind][1]
            raise ApiError(f"a handler for {kind!r} was already registered at line {line}")
        self._call.listeners[kind] = (handler, self._call.state.script_line())

    @_api
    def on(self, kind: object) -> Callable[[Any], Any]:
        """``@basic.on('incoming')``: the decorator form of addEventListener."""
        if type(kind) is not str or kind not in ("incoming", "outgoing"):
            raise ApiError("the event must be 'incoming' or 'outgoing'")

        def register(handler: Any) -> Any:
            self.addEventListener(kind, handler)
            return handler

        return register

    def __repr__(self) -> str:
        return "<basic>"


class Log:
    """``log(*values)``: one line in the owner's log (count and length capped)."""

    __slots__ = ("_call",)

    def __init__(self, call: Call) -> None:
        self._call = call

    def __call__(self, *values: object) -> None:
        call = self._call
        call.state.check()
        api = call.rules.api
        if call.logs > api.max_log_lines:
            return
        call.logs += 1
        if call.logs > api.max_log_lines:
            text = "log limit reached: later lines are dropped"
        else:
            text = " ".join(show(v, api.max_log_length) for v in values)
        call.add("log", text=clean_log_text(scrub(text), api.max_log_length))

    def __repr__(self) -> str:
        return "<log>"


PUBLIC_API = {
    Event: frozenset(
        {
            "method",
            "uri",
            "direction",
            "user",
            "contacts",
            "time",
            "location",
            "action",
            "redirect_targets",
        }
    ),
    Action: frozenset({"proxy", "redirect", "reject", "accept", "voicemail", "default"}),
    Basic: frozenset({"addEventListener", "on"}),
    Log: frozenset(),
}
