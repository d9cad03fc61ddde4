"""The stack handler of a scenario run: every message goes to its call, by Call-ID.

A UAC run creates its calls itself (:meth:`Endpoint.new_call`); a UAS run
lets the endpoint create one for each new Call-ID a request arrives with
(while ``accepting``) and hands it to ``on_new_call``, which runs the
scenario on it. In-dialog requests for unknown Call-IDs get 481 from the
stack; new requests when not accepting get 404.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from callscript.scenario.call import ScenarioCall
from callscript.sip.dialog import DialogId
from callscript.sip.message import Request, Response
from callscript.sip.uri import URI
from callscript.sip.useragent import UserAgentCore
from callscript.stack import Stack
from callscript.transaction import ServerTransaction


class Endpoint:
    """Routes a stack's traffic to the calls of one scenario run.

    Args:
        stack: the stack to attach to (done here; :meth:`close` detaches).
        core: our identity: address-of-record, credentials, ids.
        proxy: an outbound proxy for requests outside a dialog.
        timeout: the default timeout of ``expect`` steps.
        on_new_call: called with each call a new incoming request starts.
    """

    def __init__(
        self,
        stack: Stack,
        core: UserAgentCore,
        *,
        proxy: URI | None = None,
        timeout: float = 32.0,
        on_new_call: Callable[[ScenarioCall], None] | None = None,
    ) -> None:
        self.stack = stack
        self.core = core
        self.proxy = proxy.with_params(lr=None) if proxy is not None else None
        self.timeout = timeout
        self.on_new_call = on_new_call
        self.accepting = on_new_call is not None
        self.calls: dict[str, ScenarioCall] = {}
        self.started = 0
        self._tasks: set[asyncio.Task[None]] = set()
        stack.attach(self)

    def new_call(self, target: URI | None) -> ScenarioCall:
        """A call we start (UAC), with a fresh Call-ID."""
        self.started += 1
        call_id = f"{self.core.ids.call_id()}-{self.started}"
        call = ScenarioCall(
            self, number=self.started, call_id=call_id, target=target, timeout=self.timeout
        )
        self.calls[call_id] = call
        return call

    def finish(self, call: ScenarioCall) -> None:
        """The scenario is done with ``call``: later messages for it are not routed to it."""
        self.calls.pop(call.call_id, None)

    def keep(self, task: asyncio.Task[None]) -> None:
        """Hold a background task of a call until it ends (cancelled by :meth:`close`)."""
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def close(self) -> None:
        """Detach from the stack and cancel background tasks."""
        self.stack.detach(self)
        for task in list(self._tasks):
            task.cancel()

    # -- the stack's Handler protocol -----------------------------------------------------------

    def owns(self, dialog: DialogId) -> bool:
        """A dialog is ours when its Call-ID is one of our calls'."""
        return dialog.call_id in self.calls

    def accepts(self, request: Request) -> bool:
        """Requests of our calls, and new ones while a UAS run accepts calls."""
        if request.call_id in self.calls:
            return True
        return self.accepting and request.method not in ("ACK", "BYE", "CANCEL")

    def on_request(self, txn: ServerTransaction) -> None:
        """Give the request to its call, starting a call for a new Call-ID."""
        call_id = txn.request.call_id
        call = self.calls.get(call_id)
        if call is not None:
            call.deliver(txn)
            return
        self.started += 1
        call = ScenarioCall(self, number=self.started, call_id=call_id, timeout=self.timeout)
        self.calls[call_id] = call
        call.deliver(txn)
        if self.on_new_call is not None:
            self.on_new_call(call)

    def on_ack(self, ack: Request) -> None:
        """An ACK for a call's 2xx."""
        call = self.calls.get(ack.call_id)
        if call is not None:
            call.deliver_ack(ack)

    def on_cancel(self, invite: ServerTransaction, cancel: Request) -> None:
        """A call's INVITE was cancelled."""
        call = self.calls.get(invite.request.call_id)
        if call is not None:
            call.cancelled(invite, cancel)

    def on_stray_response(self, response: Response) -> None:
        """A 2xx resent after its transaction ended: the call ACKs it again."""
        call = self.calls.get(response.call_id)
        if call is not None and 200 <= response.status < 300 and response.method == "INVITE":
            call.resent_2xx(response)

    def on_answer_lost(self, dialog: DialogId) -> None:
        """A call's 2xx got no ACK within 64*T1."""
        call = self.calls.get(dialog.call_id)
        if call is not None:
            call.answer_lost(dialog)
