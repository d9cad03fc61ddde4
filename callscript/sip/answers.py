"""A UAS core's 2xx retransmissions (RFC 3261 §13.3.1.4), sans-I/O.

The INVITE server transaction does not resend a 2xx (RFC 6026: it passes the
2xx and its ACK between the TU and the network): the UAS core does, since the
2xx travels end to end and a hop on the way may be unreliable. Each 2xx is
resent at T1, 2*T1, 4*T1..., capped at T2, whatever the transport, until its
ACK arrives; after 64*T1 without one the answer is given up, and the session
should then end with a BYE.

Time is passed in (``now``); the adapter calls :meth:`AnswerRetransmits.handle_timers`
at :meth:`AnswerRetransmits.next_deadline`.
"""

from __future__ import annotations

from dataclasses import dataclass

from callscript.sip.dialog import DialogId
from callscript.sip.message import Request, Response
from callscript.sip.timers import TimerConfig


@dataclass(slots=True)
class _Answer:
    key: str
    response: Response
    next_at: float
    interval: float
    give_up_at: float


@dataclass(frozen=True, slots=True)
class Resend:
    """A 2xx to send again in server transaction ``key`` (which may have ended)."""

    key: str
    response: Response


class AnswerRetransmits:
    """The 2xx to INVITE we sent that still wait for their ACK (see the module docstring)."""

    def __init__(self, timers: TimerConfig) -> None:
        self._timers = timers
        self._answers: dict[tuple[DialogId, int], _Answer] = {}

    def start(self, dialog_id: DialogId, key: str, response: Response, *, now: float) -> None:
        """Track ``response`` (just sent in server transaction ``key``) until its ACK."""
        t1 = self._timers.t1
        # RFC 3261 §13.3.1.4: retransmit from T1, doubling up to T2, for 64*T1.
        self._answers[(dialog_id, response.cseq.number)] = _Answer(
            key, response, now + t1, t1, now + self._timers.timeout
        )

    def acknowledged(self, ack: Request) -> bool:
        """An ACK arrived; True when it stops a 2xx we were resending."""
        dialog_id = DialogId.of_request(ack)
        if dialog_id is None:
            return False
        # RFC 3261 §13.3.1.4: the ACK (same dialog, CSeq number of the INVITE) stops the resends.
        return self._answers.pop((dialog_id, ack.cseq.number), None) is not None

    def waiting(self, dialog_id: DialogId) -> bool:
        """Whether a 2xx in ``dialog_id`` still waits for its ACK."""
        return any(key[0] == dialog_id for key in self._answers)

    def handle_timers(self, *, now: float) -> tuple[list[Resend], list[DialogId]]:
        """The 2xx due again at ``now``, and the dialogs whose ACK never came."""
        resend: list[Resend] = []
        lost: list[DialogId] = []
        for ident, answer in list(self._answers.items()):
            if answer.give_up_at <= now:
                del self._answers[ident]
                lost.append(ident[0])
            elif answer.next_at <= now:
                resend.append(Resend(answer.key, answer.response))
                answer.interval = min(2 * answer.interval, self._timers.t2)
                answer.next_at = now + answer.interval
        return resend, lost

    def next_deadline(self) -> float | None:
        """When :meth:`handle_timers` must next run (``None``: nothing waits)."""
        times = [min(a.next_at, a.give_up_at) for a in self._answers.values()]
        return min(times) if times else None

    def __len__(self) -> int:
        return len(self._answers)
