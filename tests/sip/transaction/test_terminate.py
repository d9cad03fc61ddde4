"""The transaction user may end a transaction it gave up on."""

from __future__ import annotations

from callscript.sip.events import Peer, TransactionTerminated
from callscript.sip.message import Request
from callscript.sip.transaction.layer import TransactionLayer


def _invite() -> Request:
    return Request(
        "INVITE",
        "sip:bob@192.0.2.20",
        [
            ("Via", "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-term1"),
            ("Max-Forwards", 70),
            ("From", "<sip:alice@example.com>;tag=a"),
            ("To", "<sip:bob@example.com>"),
            ("Call-ID", "term-1"),
            ("CSeq", "1 INVITE"),
        ],
    )


def test_terminate_ends_a_client_transaction_and_its_timers() -> None:
    """RFC 3261 §9.1: a client transaction given up after its CANCEL ends at once, timers and all."""
    layer = TransactionLayer()
    key = layer.send_request(_invite(), Peer("UDP", "192.0.2.20", 5060), now=0.0)
    assert key in layer and layer.next_deadline() is not None
    assert [out.message.method for out in layer.messages_to_send()] == ["INVITE"]
    layer.terminate(key)
    events = list(iter(layer.next_event, None))
    assert TransactionTerminated(key) in events
    assert key not in layer
    # Timer A would have retransmitted at 0.5 s, 1.5 s...: nothing goes out any more.
    layer.handle_timers(now=100.0)
    assert layer.messages_to_send() == []
    assert layer.next_deadline() is None
    assert len(layer) == 0


def test_terminate_of_an_unknown_key_is_ignored() -> None:
    """Ending a transaction that already ended does nothing."""
    layer = TransactionLayer()
    layer.terminate("C nothing INVITE")
    assert layer.next_event() is None
