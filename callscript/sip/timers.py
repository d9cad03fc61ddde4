"""Timer names and durations of RFC 3261 §17 and Appendix A (RFC 6026 §8 adds L and M).

Durations are derived from T1, T2 and T4, never written as literals elsewhere.
Retransmission timers (A, E, G) run only on unreliable transports; wait
timers (D, I, J, K) are zero on reliable ones.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class TimerName(enum.Enum):
    """The RFC's timer letters."""

    A = "A"  # INVITE client retransmit
    B = "B"  # INVITE client transaction timeout
    C = "C"  # proxy INVITE transaction timeout (§16.6 step 11)
    D = "D"  # INVITE client wait for response retransmits
    E = "E"  # non-INVITE client retransmit
    F = "F"  # non-INVITE client transaction timeout
    G = "G"  # INVITE server final-response retransmit
    H = "H"  # INVITE server wait for ACK
    I = "I"  # noqa: E741 - the RFC's name: INVITE server wait for ACK retransmits
    J = "J"  # non-INVITE server wait for request retransmits
    K = "K"  # non-INVITE client wait for response retransmits
    L = "L"  # RFC 6026: INVITE server Accepted state
    M = "M"  # RFC 6026: INVITE client Accepted state


@dataclass(frozen=True, slots=True)
class TimerConfig:
    """T1, T2, T4 (RFC 3261 Appendix A) and the values derived from them.

    Args:
        t1: RTT estimate, 0.5 s by default.
        t2: maximum retransmit interval for non-INVITE requests and INVITE responses, 4 s.
        t4: maximum time a message stays in the network, 5 s.
        timer_c: proxy INVITE timeout, more than 3 minutes (§16.6 step 11).
    """

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0
    timer_c: float = 180.0

    def __post_init__(self) -> None:
        if not (0 < self.t1 <= self.t2) or self.t4 <= 0 or self.timer_c <= 0:
            raise ValueError("timers need 0 < T1 <= T2, T4 > 0 and Timer C > 0")

    # RFC 3261 Appendix A: B, F, H, J are 64*T1.
    @property
    def timeout(self) -> float:
        """64*T1: Timers B, F, H, J (and L, M per RFC 6026)."""
        return 64 * self.t1

    def wait(self, name: TimerName, *, reliable: bool) -> float:
        """Duration of a wait timer (D, I, K) for the transport's kind."""
        if reliable:
            return 0.0
        if name is TimerName.D:
            # RFC 3261 §17.1.1.2: Timer D is at least 32 s on unreliable transports.
            return max(32.0, self.timeout)
        if name in (TimerName.I, TimerName.K):
            return self.t4
        if name is TimerName.J:
            return self.timeout
        raise ValueError(f"{name} is not a wait timer")
