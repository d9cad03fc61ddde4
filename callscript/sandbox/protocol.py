"""The JSON between the SIP process and its workers, and the typed values it becomes.

One JSON object per line, ASCII, over the worker's stdin/stdout; never pickle
(a compromised worker must not be able to run code in the SIP process).

Pool -> worker::

    {"op": "init", "memory_mb": 256, "cache": 256, "modules": ["math"]}
    {"op": "step", "id": 7, "script": {"name": "example.com/alice.py", "digest": "<sha256>",
     "source": "..." or null}, "event": EVENT, "outcomes": [OUTCOME...],
     "rules": DomainPolicy.to_dict(), "served_domains": ["example.com"]}

Worker -> pool: ``{"ready": true}`` once, then per step ``{"id": 7, "status": "need_source"}``
or ``{"id": 7, "cpu": 0.0004, ...runner result...}`` (runner.py documents the result).

EVENT, the data the engine sends for one request (build it with :func:`event_data`)::

    {"direction": "incoming" | "outgoing",
     "method": "INVITE",
     "uri": "sip:alice@example.com",            # the request-URI
     "user": "sip:alice@example.com",           # the script owner's AoR
     "contacts": ["sip:alice@192.0.2.4:5060"],  # the owner's registered contacts
     "time": "2024-05-06T09:30:00+02:00",       # arrival, ISO 8601 in the owner's zone
     "headers": [["From", "\\"Bob\\" <sip:bob@example.org>;tag=1"], ...],  # one per value
     "body": "v=0 ..."}                         # text, "" when none or not UTF-8

OUTCOME, one per proxy() answered: ``{"result": "busy"}`` or ``{"result": "redirection",
"targets": ["sip:..."]}`` (result: success, busy, noanswer, redirection, failure).

Everything a worker returns is re-checked here with exact types and the same
target and text rules the sandbox applied (:func:`parse_reply`); any breach is a
:class:`ProtocolViolation` and the pool kills that worker.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from callscript.sandbox.actions import (
    RESULTS,
    Accept,
    Action,
    Default,
    Disposition,
    Finished,
    Log,
    Pending,
    Proxied,
    Proxy,
    Redirect,
    Reject,
    Relay,
    StepFailed,
    StepResult,
    Voicemail,
    action_dict,
    fallback_action,
)
from callscript.sandbox.policy import DomainPolicy
from callscript.sandbox.targets import (
    Refused,
    TargetContext,
    check_target,
    check_text,
    is_clean_log_text,
)
from callscript.sip.abnf import split_list
from callscript.sip.errors import ParseError
from callscript.sip.headers import LIST_HEADERS, header_key
from callscript.sip.message import Request
from callscript.sip.uri import parse_uri

MAX_LINE = 4 << 20
MAX_FAILURE_MESSAGE = 300


class ProtocolViolation(Exception):
    """A worker sent something it must not; the worker is not trusted any more."""


def encode(message: Mapping[str, Any]) -> bytes:
    """One protocol line."""
    return (
        json.dumps(message, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode()
        + b"\n"
    )


def decode(line: bytes) -> dict[str, Any]:
    """Parse one protocol line from a worker.

    Raises:
        ProtocolViolation: not one JSON object (too long, too deep, not UTF-8...).
    """
    if len(line) > MAX_LINE or not line.endswith(b"\n"):
        raise ProtocolViolation("reply too long or cut short")
    try:
        value = json.loads(line)
    except (ValueError, RecursionError, MemoryError):
        raise ProtocolViolation("reply is not JSON") from None
    if type(value) is not dict:
        raise ProtocolViolation("reply is not a JSON object")
    return value


def target_context(event: Mapping[str, Any], served_domains: Sequence[str]) -> TargetContext:
    """The target rules' view of an event."""
    return TargetContext(
        event["direction"],
        event["user"],
        event["uri"],
        tuple(event.get("contacts", ())),
        tuple(served_domains),
    )


class _Reader:
    """Exact-type reads of one reply, raising ProtocolViolation."""

    def __init__(self, rules: DomainPolicy, ctx: TargetContext, method: str) -> None:
        self.rules = rules
        self.ctx = ctx
        self.method = method

    @staticmethod
    def fields(obj: object, kind: type, *keys: str) -> dict[str, Any]:
        if type(obj) is not kind or (kind is dict and set(obj) != set(keys)):  # type: ignore[call-overload]
            raise ProtocolViolation(f"unexpected value {str(obj)[:60]!r}")
        return obj  # type: ignore[return-value]

    @staticmethod
    def line(value: object) -> int | None:
        if value is None or (type(value) is int and value >= 0):
            return value
        raise ProtocolViolation("bad line number")

    def targets(self, value: object, *, redirect: bool, empty: bool) -> tuple[str, ...]:
        if (
            type(value) is not list
            or len(value) > self.rules.targets.max_targets
            or (not value and not empty)
        ):
            raise ProtocolViolation("bad target list")
        try:
            return tuple(
                check_target(t, self.ctx, self.rules.targets, self.rules.api, redirect=redirect)
                for t in value
            )
        except Refused as exc:
            raise ProtocolViolation(f"refused target: {exc}") from None

    def action(self, obj: object, seq: int | None) -> Action | Disposition:
        if type(obj) is not dict or type(obj.get("kind")) is not str:
            raise ProtocolViolation("an action is not an object with a kind")
        kind = obj["kind"]
        placed = ("seq", "line") if seq is not None else ()
        where: dict[str, Any] = {}
        if seq is not None:
            if obj.get("seq") != seq or type(obj.get("seq")) is not int:
                raise ProtocolViolation("actions out of sequence")
            where = {"seq": seq, "line": self.line(obj.get("line"))}
        if kind == "proxy":
            self.fields(obj, dict, "kind", "targets", "timeout", "sequential", *placed)
            timeout = obj["timeout"]
            if (
                type(timeout) not in (int, float)
                or not 1 <= timeout <= self.rules.targets.max_timeout
            ):
                raise ProtocolViolation("bad proxy timeout")
            if type(obj["sequential"]) is not bool:
                raise ProtocolViolation("bad proxy sequential flag")
            targets = self.targets(obj["targets"], redirect=False, empty=seq is not None)
            return Proxy(targets, timeout, obj["sequential"], **where)
        if kind == "redirect":
            self.fields(obj, dict, "kind", "targets", "permanent", *placed)
            if type(obj["permanent"]) is not bool:
                raise ProtocolViolation("bad redirect flag")
            return Redirect(
                self.targets(obj["targets"], redirect=True, empty=False), obj["permanent"], **where
            )
        if kind == "reject":
            self.fields(obj, dict, "kind", "code", "reason", *placed)
            code, reason = obj["code"], obj["reason"]
            if type(code) is not int or not 400 <= code <= 699:
                raise ProtocolViolation("bad reject code")
            if reason is not None:
                try:
                    check_text(reason, "reason", self.rules.api.max_reason_length)
                except Refused as exc:
                    raise ProtocolViolation(str(exc)) from None
            return Reject(code, reason, **where)
        if kind == "log" and seq is not None:
            self.fields(obj, dict, "kind", "text", *placed)
            if not is_clean_log_text(obj["text"], self.rules.api.max_log_length):
                raise ProtocolViolation("bad log text")
            return Log(obj["text"], **where)
        if kind in ("accept", "voicemail", "default"):
            self.fields(obj, dict, "kind", *placed)
            if kind == "accept" and self.method == "INVITE":
                raise ProtocolViolation("accept() of an INVITE")
            simple = Accept if kind == "accept" else Voicemail if kind == "voicemail" else Default
            return simple(**where)
        if seq is None and kind in ("proxied", "relay"):
            self.fields(obj, dict, "kind")
            return Proxied() if kind == "proxied" else Relay()
        raise ProtocolViolation(f"unknown action kind {kind[:30]!r}")

    def actions(self, value: object) -> tuple[Action, ...]:
        if type(value) is not list:
            raise ProtocolViolation("actions is not a list")
        out = tuple(self.action(obj, seq) for seq, obj in enumerate(value))
        rules = self.rules
        if sum(1 for a in out if isinstance(a, Log)) > rules.api.max_log_lines + 1:
            raise ProtocolViolation("too many log lines")
        if sum(1 for a in out if isinstance(a, Proxy)) > rules.targets.max_proxies:
            raise ProtocolViolation("too many proxy attempts")
        if (
            sum(1 for a in out if isinstance(a, Redirect | Reject | Accept | Voicemail | Default))
            > 1
        ):
            raise ProtocolViolation("more than one final answer")
        return out  # type: ignore[return-value]


def parse_reply(
    reply: Mapping[str, Any],
    rules: DomainPolicy,
    event: Mapping[str, Any],
    served_domains: Sequence[str],
    *,
    elapsed: float = 0.0,
) -> StepResult:
    """Check a worker's step reply and turn it into a typed result.

    Raises:
        ProtocolViolation: anything a correct worker would not have sent.
    """
    reader = _Reader(rules, target_context(event, served_domains), event["method"])
    status = reply.get("status")
    actions = reader.actions(reply.get("actions"))
    if status == "pending":
        proxy = reader.action(reply.get("proxy"), len(actions) - 1) if actions else None
        if not isinstance(proxy, Proxy) or proxy != actions[-1] or not proxy.targets:
            raise ProtocolViolation("pending without its proxy request")
        return Pending(actions, proxy, elapsed)
    if status == "finished":
        disposition = reader.action(reply.get("disposition"), None)
        if isinstance(disposition, Log):
            raise ProtocolViolation("a log line as disposition")
        final = [a for a in actions if not isinstance(a, Proxy | Log)]
        if final:
            # The final action itself, with its place in the script.
            if action_dict(disposition) != {**action_dict(final[0]), "seq": None, "line": None}:
                raise ProtocolViolation("disposition differs from the final action")
            disposition = final[0]
        elif not isinstance(disposition, Proxy | Proxied | Relay | Default):
            raise ProtocolViolation("a final disposition without its action")
        return Finished(actions, disposition, elapsed)
    if status == "failed":
        failure = reader.fields(reply.get("failure"), dict, "kind", "line", "message")
        message = failure["message"]
        if failure["kind"] not in ("error", "timeout", "memory") or not is_clean_log_text(
            message, MAX_FAILURE_MESSAGE
        ):
            raise ProtocolViolation("bad failure report")
        line = reader.line(failure["line"])
        return StepFailed(failure["kind"], line, message, fallback_action(rules), actions, elapsed)
    raise ProtocolViolation("unknown reply status")


def check_outcome(result: str, targets: Iterable[str] = ()) -> dict[str, Any]:
    """The recorded outcome of one proxy() (``result`` one of RESULTS)."""
    if result not in RESULTS:
        raise ValueError(f"unknown proxy outcome {result!r}; expected one of {', '.join(RESULTS)}")
    if result == "redirection":
        return {"result": result, "targets": [str(t) for t in targets]}
    return {"result": result}


_EVENT_FIELDS = {
    "direction": str, "method": str, "uri": str, "user": str, "contacts": list, "time": str,
    "headers": list, "body": str,
}  # fmt: skip


def check_event(data: Mapping[str, Any]) -> None:
    """Check that ``data`` has the documented event shape (the engine's side of the contract).

    Raises:
        ValueError: what is missing or wrong.
    """
    if set(data) != set(_EVENT_FIELDS):
        raise ValueError(f"event data needs exactly the keys {sorted(_EVENT_FIELDS)}")
    for key, kind in _EVENT_FIELDS.items():
        if type(data[key]) is not kind:
            raise ValueError(f"event data: {key} must be a {kind.__name__}")
    if data["direction"] not in ("incoming", "outgoing"):
        raise ValueError("event data: direction must be 'incoming' or 'outgoing'")
    try:
        for uri in (data["uri"], data["user"], *data["contacts"]):
            parse_uri(uri)
        datetime.datetime.fromisoformat(data["time"])
    except (ParseError, TypeError, ValueError) as exc:
        raise ValueError(f"event data: {exc}") from None
    for pair in data["headers"]:
        if type(pair) is not list or len(pair) != 2 or any(type(v) is not str for v in pair):
            raise ValueError("event data: headers must be [name, value] pairs of strings")


def event_data(
    request: Request,
    *,
    direction: str,
    owner: str,
    contacts: Sequence[str],
    time: datetime.datetime,
    hidden_headers: Iterable[str] = (),
    max_body: int = 8192,
) -> dict[str, Any]:
    """The event data for ``request`` (see the module docstring); hidden headers left out.

    Args:
        time: the arrival time, aware, in the owner's time zone.
    """
    hidden = {header_key(name) for name in hidden_headers}
    headers: list[list[str]] = []
    for key, text in request.raw_headers():
        if key in hidden:
            continue
        values = split_list(text) if key in LIST_HEADERS else [text]
        headers += [[key, value] for value in values if value]
    try:
        body = request.body.decode("utf-8") if len(request.body) <= max_body else ""
    except UnicodeDecodeError:
        body = ""
    return {
        "direction": direction,
        "method": request.method,
        "uri": str(request.uri),
        "user": owner,
        "contacts": list(contacts),
        "time": time.isoformat(),
        "headers": headers,
        "body": body,
    }
