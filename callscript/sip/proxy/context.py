"""Response contexts of a stateful proxy: branches and the best response (RFC 3261 §16.7).

A :class:`ResponseContext` belongs to one server transaction. It holds the
target groups still to try (groups run one after the other; the targets of a
group are forked in parallel), the branches started so far and their final
responses. The core drives it; this module only keeps state and chooses.

Branch states::

    PENDING --provisional--> RINGING --final--> DONE
       \\________________________final_______/
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field

from callscript.sip.events import Peer
from callscript.sip.message import Request, Response
from callscript.sip.uri import URI


@dataclass(frozen=True, slots=True)
class Target:
    """Where one branch goes: a new Request-URI (``None`` keeps it) and the peers to try in order.

    ``peers`` is the RFC 3263 §4.3 failover list: on a transport error, a timeout
    or a 503 the next peer is tried with a new branch.
    """

    uri: URI | None
    peers: tuple[Peer, ...]

    def __post_init__(self) -> None:
        if not self.peers:
            raise ValueError("a target needs at least one peer")


class BranchState(enum.Enum):
    """Where a branch is in its life."""

    PENDING = "pending"  # request sent, nothing but 100 received
    RINGING = "ringing"  # a provisional response above 100 received
    DONE = "done"  # a final response received or made up (408, 503)


@dataclass(slots=True)
class Branch:
    """One forwarded copy of the request and its client transaction."""

    target: Target
    index: int
    key: str = ""
    peer_index: int = 0
    state: BranchState = BranchState.PENDING
    final: Response | None = None
    timer_c: float | None = None
    cancelled: bool = False
    received_final: bool = False

    @property
    def peer(self) -> Peer:
        """The peer currently tried."""
        return self.target.peers[self.peer_index]

    @property
    def has_next_peer(self) -> bool:
        """Whether RFC 3263 §4.3 failover has another peer to try."""
        return self.peer_index + 1 < len(self.target.peers)


@dataclass(slots=True)
class ResponseContext:
    """The state of one proxied request (RFC 3261 §16.7).

    ``loop_hash`` is the RFC 3261 §16.6 step 8 hash of the request as it arrived
    (before §16.4 preprocessing), which every branch carries.
    """

    key: str
    request: Request
    source: Peer
    loop_hash: str = ""
    groups: list[list[Target]] = field(default_factory=list)
    branches: list[Branch] = field(default_factory=list)
    forward_final: bool = True
    ring_timeout: float | None = None
    ring_deadline: float | None = None
    answered: bool = False
    final_sent: bool = False
    caller_cancelled: bool = False
    six_xx: bool = False
    proxying: bool = False
    stored: list[Response] = field(default_factory=list)

    def live_branches(self) -> list[Branch]:
        """Branches still waiting for a final response."""
        return [b for b in self.branches if b.state is not BranchState.DONE]

    def branch_count(self) -> int:
        """How many branches were started (their indexes make branch ids unique)."""
        return len(self.branches)


def best_response(responses: list[Response]) -> tuple[int, Response | None]:
    """RFC 3261 §16.7 step 6: choose the response to forward among final non-2xx ones.

    Returns the status to send (503 becomes 500, no response means 408) and the
    chosen response, or ``None`` when the proxy must make one up.
    """
    if not responses:
        # RFC 3261 §16.7 step 6: no final response at all is treated as 408.
        return 408, None
    six = [r for r in responses if r.status >= 600]
    if six:
        return six[0].status, six[0]
    lowest = min(r.status // 100 for r in responses)
    candidates = [r for r in responses if r.status // 100 == lowest]
    # RFC 3261 §16.7 step 6: prefer responses that let the caller retry usefully.
    for preferred in (401, 407, 415, 420, 484):
        for response in candidates:
            if response.status == preferred:
                return preferred, response
    chosen = candidates[0]
    # RFC 3261 §16.7 step 6: a 503 is not forwarded as such; send 500 instead.
    if chosen.status == 503:
        return 500, chosen
    return chosen.status, chosen


def merge_challenges(forwarded: Response, others: Iterable[Response]) -> None:
    """RFC 3261 §16.7 step 7: a forwarded 401/407 carries every other branch's challenges.

    Args:
        forwarded: the chosen 401/407 (a copy), changed in place.
        others: the other final responses of the context; the challenges of their
            401s and 407s are added unchanged (raw header lines, never re-serialized).
    """
    if forwarded.status not in (401, 407):
        return
    for response in others:
        if response.status not in (401, 407):
            continue
        for key in ("WWW-Authenticate", "Proxy-Authenticate"):
            for line in response._header_lines(key):
                forwarded._append_line(key, line)
