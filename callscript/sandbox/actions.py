"""The values a script's decisions become: actions, dispositions and step results.

The style guide's "script calls become action values": ``event.action.reject(code=603)``
arrives in the SIP process as ``Reject(603, seq=2, line=7)`` once protocol.py has
checked the worker's JSON. ``seq`` is the action's place in the call (replays repeat
it), ``line`` the script line that made it; both are None for values the sandbox
made up (an implicit proxy to event.location, a fallback).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from callscript.sandbox.policy import DomainPolicy

RESULTS = ("success", "busy", "noanswer", "redirection", "failure")
FAILURE_KINDS = ("error", "timeout", "memory", "crash", "quarantined")


@dataclass(frozen=True, slots=True)
class Proxy:
    """Ring ``targets`` in parallel for ``timeout`` seconds, or, when ``sequential``,
    one after another for ``timeout`` seconds each. An empty ``targets`` (no contact
    to ring) appears only among past actions: the sandbox answered it 'failure'."""

    targets: tuple[str, ...]
    timeout: float
    sequential: bool = False
    seq: int | None = None
    line: int | None = None
    kind = "proxy"


@dataclass(frozen=True, slots=True)
class Redirect:
    """Answer 302 (301 when ``permanent``) with ``targets`` as Contacts."""

    targets: tuple[str, ...]
    permanent: bool = False
    seq: int | None = None
    line: int | None = None
    kind = "redirect"

    @property
    def status(self) -> int:
        """301 or 302."""
        return 301 if self.permanent else 302


@dataclass(frozen=True, slots=True)
class Reject:
    """Answer ``code`` (400-699) with ``reason`` (None: the code's usual phrase)."""

    code: int
    reason: str | None = None
    seq: int | None = None
    line: int | None = None
    kind = "reject"


@dataclass(frozen=True, slots=True)
class Accept:
    """Answer 200 OK (requests other than INVITE)."""

    seq: int | None = None
    line: int | None = None
    kind = "accept"


@dataclass(frozen=True, slots=True)
class Voicemail:
    """Send the call to the owner's voicemail."""

    seq: int | None = None
    line: int | None = None
    kind = "voicemail"


@dataclass(frozen=True, slots=True)
class Default:
    """Route the call as if there were no script."""

    seq: int | None = None
    line: int | None = None
    kind = "default"


@dataclass(frozen=True, slots=True)
class Log:
    """A line for the owner's log."""

    text: str
    seq: int | None = None
    line: int | None = None
    kind = "log"


@dataclass(frozen=True, slots=True)
class Proxied:
    """Disposition: a proxy() was answered ('success'); nothing more to do."""

    kind = "proxied"


@dataclass(frozen=True, slots=True)
class Relay:
    """Disposition: the handler returned after failed proxy attempts; send the caller
    the best response of the last one (480 when no target was tried)."""

    kind = "relay"


Action = Proxy | Redirect | Reject | Accept | Voicemail | Default | Log
Disposition = Proxy | Redirect | Reject | Accept | Voicemail | Default | Proxied | Relay


def action_dict(value: Action | Disposition) -> dict[str, Any]:
    """An action or disposition as JSON-able values (``{"kind": "reject", ...}``)."""
    out: dict[str, Any] = {"kind": value.kind}
    out.update({k: list(v) if isinstance(v, tuple) else v for k, v in asdict(value).items()})
    return out


@dataclass(frozen=True, slots=True)
class Pending:
    """The handler waits in proxy(): carry out ``proxy``, then resume with its outcome."""

    actions: tuple[Action, ...]
    proxy: Proxy
    elapsed: float = 0.0


@dataclass(frozen=True, slots=True)
class Finished:
    """The handler returned; the call gets ``disposition``."""

    actions: tuple[Action, ...]
    disposition: Disposition
    elapsed: float = 0.0


@dataclass(frozen=True, slots=True)
class StepFailed:
    """The step failed (kind: error, timeout, memory, crash, quarantined); the call gets
    ``fallback`` from the policy."""

    kind: str
    line: int | None
    message: str
    fallback: Disposition
    actions: tuple[Action, ...] = ()
    elapsed: float = 0.0


StepResult = Pending | Finished | StepFailed


def fallback_action(rules: DomainPolicy) -> Disposition:
    """The policy's fallback as a disposition."""
    value = rules.failure.action
    if value["kind"] == "reject":
        return Reject(int(value["code"]))  # type: ignore[call-overload]
    return Voicemail() if value["kind"] == "voicemail" else Default()
