"""The state of one handler step: event data, recorded outcomes, actions taken.

The API objects a script holds (api.py) all forward to one :class:`Call`; the
script never gets a reference to it. Its methods enforce the call's rules: one
final answer, target limits and checks, proxy() replay against recorded outcomes
(a missing outcome ends the step with Suspend), and what the call gets when the
handler returns.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Sequence
from typing import Any

from callscript.sandbox.guards import StepState, Suspend
from callscript.sandbox.policy import DomainPolicy
from callscript.sandbox.targets import Refused, TargetContext, check_target
from callscript.sandbox.values import URI, EventTime
from callscript.sip.headers import header_key


class ApiError(ValueError):
    """A script used the API wrongly; the message says how."""


class Call:
    """The state of one handler step (internal: scripts never get a reference)."""

    def __init__(
        self,
        data: dict[str, Any],
        outcomes: Sequence[dict[str, Any]],
        rules: DomainPolicy,
        state: StepState,
        served_domains: Sequence[str],
    ) -> None:
        self.state = state
        self.rules = rules
        self.direction: str = data["direction"]
        self.method: str = data["method"]
        self.request_uri: str = data["uri"]
        self.owner: str = data["user"]
        self.contacts: tuple[str, ...] = tuple(data.get("contacts", ()))
        self.time = EventTime(datetime.datetime.fromisoformat(data["time"]))
        hidden = {header_key(name) for name in rules.api.hidden_headers}
        self.headers: list[tuple[str, str, str]] = []
        for name, value in data.get("headers", ()):
            key = header_key(name)
            if key not in hidden:
                self.headers.append((key, name, value))
        self.body: str = data.get("body", "")
        self.target_ctx = TargetContext(
            self.direction, self.owner, self.request_uri, self.contacts, tuple(served_domains)
        )
        self.outcomes = list(outcomes)
        self.actions: list[dict[str, Any]] = []
        self.listeners: dict[str, tuple[Callable[..., Any], int | None]] = {}
        self.final: tuple[str, int | None] | None = None
        self.location: list[str] | None = None
        self.location_fresh = False
        self.redirect_targets: list[str] = []
        self.proxies = 0
        self.waits = 0
        self.logs = 0
        self.pending: dict[str, Any] | None = None

    # -- actions ---------------------------------------------------------------

    def add(self, kind: str, **fields: Any) -> dict[str, Any]:
        """Record an action (the line is the script's)."""
        action = {
            "kind": kind,
            **fields,
            "seq": len(self.actions),
            "line": self.state.script_line(),
        }
        self.actions.append(action)
        return action

    def allow(self, kind: str) -> None:
        """Refuse an action the policy does not allow, or any final one after the answer."""
        if kind not in self.rules.api.actions:
            raise ApiError(f"{kind}() is not allowed by the sandbox policy")
        if self.final is not None:
            by, line = self.final
            where = f" at line {line}" if line is not None else ""
            raise ApiError(f"the call was already answered by {by}{where}")

    def answer(self, kind: str, **fields: Any) -> None:
        """Record a final action."""
        self.allow(kind)
        action = self.add(kind, **fields)
        self.final = (f"{kind}()", action["line"])

    def targets(self, location: object, *, redirect: bool) -> list[str]:
        """The checked target texts of ``location`` (a URI, a str, or a list/tuple of them)."""
        items = list(location) if type(location) in (list, tuple) else [location]  # type: ignore[call-overload]
        limit = self.rules.targets.max_targets
        if len(items) > limit:
            raise ApiError(f"at most {limit} targets per action (the policy's max_targets)")
        out: list[str] = []
        for item in items:
            text = str(item) if type(item) is URI else item
            if type(text) is not str:
                raise ApiError("a target must be a URI or a string such as 'sip:bob@example.com'")
            checked = check_target(
                text, self.target_ctx, self.rules.targets, self.rules.api, redirect=redirect
            )
            if checked not in out:
                out.append(checked)
        return out

    def set_location(self, value: object) -> None:
        self.state.check()
        try:
            self.location = self.targets(value, redirect=False)
        except Refused as exc:
            problem = str(exc)
        else:
            self.location_fresh = True
            return
        raise ApiError(problem)

    def proxy(self, timeout: object, location: object, sequential: object) -> str:
        self.allow("proxy")
        rules = self.rules.targets
        if self.proxies >= rules.max_proxies:
            raise ApiError(
                f"at most {rules.max_proxies} proxy() calls per call (the policy's max_proxies)"
            )
        if timeout is None:
            timeout = rules.default_timeout
        if type(timeout) not in (int, float) or not 1 <= timeout <= rules.max_timeout:  # type: ignore[operator]
            raise ApiError(f"proxy() timeout must be a number of seconds, 1-{rules.max_timeout:g}")
        if type(sequential) is not bool:
            raise ApiError("proxy() sequential must be True or False")
        if location is not None:
            targets = self.targets(location, redirect=False)
        elif self.location is not None:
            targets = self.location
        else:
            targets = list(self.contacts) if self.direction == "incoming" else [self.request_uri]
        self.proxies += 1
        self.location_fresh = False
        action = self.add("proxy", targets=targets, timeout=timeout, sequential=sequential)
        if not targets:
            # Nobody to ring: the attempt fails at once, the same way on every replay.
            return "failure"
        if self.waits >= len(self.outcomes):
            self.pending = action
            self.state.halt(Suspend("waiting for the outcome of proxy()", action["line"]))
        outcome = self.outcomes[self.waits]
        self.waits += 1
        result: str = outcome["result"]
        self.redirect_targets = list(outcome.get("targets", ())) if result == "redirection" else []
        if result == "success":
            self.final = ("proxy()", action["line"])
        return result

    def disposition(self) -> dict[str, Any]:
        """What the call gets once the handler has returned."""
        if self.final is not None:
            kind = self.final[0][:-2]
            if kind == "proxy":
                return {"kind": "proxied"}
            final = next(a for a in reversed(self.actions) if a["kind"] == kind)
            return {k: v for k, v in final.items() if k not in ("seq", "line")}
        if self.location is not None and self.location_fresh and self.location:
            return {
                "kind": "proxy",
                "targets": self.location,
                "timeout": self.rules.targets.default_timeout,
                "sequential": False,
            }
        if self.proxies:
            return {"kind": "relay"}
        return {"kind": "default"}
