"""SIP dialogs: the state two user agents share for a call (RFC 3261 §12, §13.2.2.4, §15).

Sans-I/O. A :class:`Dialog` is created from the request and the response
that establish it, on either side (:meth:`Dialog.from_uac`, §12.1.2;
:meth:`Dialog.from_uas`, §12.1.1), and then

- builds the requests sent inside it (:meth:`Dialog.create_request`,
  §12.2.1.1): To, From, Call-ID, the local CSeq, the Request-URI and Route
  from the route set (loose or strict routing), Contact on target refreshes;
- builds the ACK for a 2xx (:meth:`Dialog.ack`, §13.2.2.4), which carries
  the INVITE's CSeq number and credentials;
- checks requests received inside it (:meth:`Dialog.receive_request`,
  §12.2.2): an out-of-order CSeq gets 500, a target refresh moves the remote
  target;
- follows the responses to its own requests (:meth:`Dialog.receive_response`):
  an early dialog is confirmed by a 2xx, which also recomputes its route set
  (§13.2.2.4); a 2xx to a target refresh moves the remote target; a 481 or
  408 ends it (§12.2.1.2).

The dialog adds no Via: the user agent core does, with a fresh branch, once
it knows which transport the request leaves on.

States: ``EARLY`` (created by a provisional response with a To tag),
``CONFIRMED`` (by a 2xx), ``TERMINATED`` (by BYE, 481 or 408, or the user
agent).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

from callscript.sip.address import Address
from callscript.sip.errors import LocalProtocolError, RemoteProtocolError
from callscript.sip.headers import CSeq
from callscript.sip.message import Request, Response
from callscript.sip.uri import URI

# RFC 3261 §12.2: requests that can move the remote target (re-INVITE; UPDATE, RFC 3311).
TARGET_REFRESH = frozenset({"INVITE", "UPDATE"})
# Never sent with create_request: ACK has its own builder, CANCEL its transaction's (§9.1).
_NOT_IN_DIALOG = frozenset({"ACK", "CANCEL"})


class DialogState(enum.Enum):
    """Where a dialog is in its life."""

    EARLY = "early"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


@dataclass(frozen=True, slots=True)
class DialogId:
    """Call-ID, local tag and remote tag: what identifies a dialog (RFC 3261 §12)."""

    call_id: str
    local_tag: str
    remote_tag: str

    @classmethod
    def of_request(cls, request: Request) -> DialogId | None:
        """The id of the dialog a received request belongs to, from the UAS's side.

        ``None`` when the To has no tag (the request is outside any dialog).

        Raises:
            ParseError: Call-ID, From or To is missing or malformed.
        """
        local = request.to_addr.tag
        if local is None:
            return None
        # RFC 3261 §12.2.2: local tag = To tag, remote tag = From tag of the request.
        return cls(request.call_id, local, request.from_addr.tag or "")

    @classmethod
    def of_response(cls, response: Response) -> DialogId | None:
        """The id of the dialog a received response belongs to, from the UAC's side.

        ``None`` when the To has no tag.

        Raises:
            ParseError: Call-ID, From or To is missing or malformed.
        """
        remote = response.to_addr.tag
        if remote is None:
            return None
        return cls(response.call_id, response.from_addr.tag or "", remote)

    def __str__(self) -> str:
        return f"{self.call_id};local={self.local_tag};remote={self.remote_tag}"


def without_tag(address: Address) -> Address:
    """``address`` with its ``tag`` parameter removed (the dialog's local and remote URIs)."""
    return Address(address.uri, address.display, address.params.without("tag"))


class Dialog:
    """One dialog's state (RFC 3261 §12): ids, sequence numbers, remote target and route set.

    Build one with :meth:`from_uac` or :meth:`from_uas`.

    Attributes:
        id: Call-ID and the two tags.
        local_uri: our address (From of our requests), without tag.
        remote_uri: the peer's address (To of our requests), without tag.
        local_seq: the CSeq number of our last request in the dialog (``None``: none yet).
        remote_seq: the CSeq number of the peer's last request (``None``: none yet).
        remote_target: where requests in the dialog go (the peer's Contact).
        route_set: the Route values, in the order our requests carry them.
        local_target: our Contact, sent again on target refreshes.
        secure: a SIPS dialog (§12.1.1, §12.1.2).
        state: early, confirmed or terminated.
    """

    __slots__ = (
        "id",
        "local_seq",
        "local_target",
        "local_uri",
        "remote_seq",
        "remote_target",
        "remote_uri",
        "route_set",
        "secure",
        "state",
    )

    def __init__(
        self,
        id: DialogId,
        *,
        local_uri: Address,
        remote_uri: Address,
        remote_target: URI,
        route_set: Iterable[Address] = (),
        local_seq: int | None = None,
        remote_seq: int | None = None,
        local_target: URI | None = None,
        secure: bool = False,
        state: DialogState = DialogState.CONFIRMED,
    ) -> None:
        self.id = id
        self.local_uri = without_tag(local_uri)
        self.remote_uri = without_tag(remote_uri)
        self.remote_target = remote_target
        self.route_set: tuple[Address, ...] = tuple(route_set)
        self.local_seq = local_seq
        self.remote_seq = remote_seq
        self.local_target = local_target
        self.secure = secure
        self.state = state

    # -- creation -------------------------------------------------------------------------

    @classmethod
    def from_uac(cls, request: Request, response: Response) -> Dialog:
        """The dialog a UAC gets from ``response`` (101-299 with a To tag) to ``request``.

        Raises:
            RemoteProtocolError: the response has no To tag, or no Contact (status 400).
            LocalProtocolError: ``response`` cannot create a dialog (100, or 300-699).
            ParseError: a header the dialog needs is malformed.
        """
        if not 101 <= response.status <= 299:
            raise LocalProtocolError(f"a {response.status} response creates no dialog")
        remote_tag = response.to_addr.tag
        if remote_tag is None:
            raise RemoteProtocolError(f"{response.status} response creates a dialog without To tag")
        # RFC 3261 §12.1.2: local tag = From tag of the request, remote tag = To tag of the
        # response, local sequence number = the request's CSeq, remote sequence number empty.
        dialog = cls(
            DialogId(request.call_id, request.from_addr.tag or "", remote_tag),
            local_uri=request.from_addr,
            remote_uri=request.to_addr,
            remote_target=request.uri,
            local_seq=request.cseq.number,
            local_target=_contact_uri(request),
            # RFC 3261 §12.1.2: a SIPS Request-URI makes a secure dialog.
            secure=request.uri.secure,
            state=DialogState.EARLY if response.status < 200 else DialogState.CONFIRMED,
        )
        dialog._learn_route(response)
        return dialog

    @classmethod
    def from_uas(cls, request: Request, response: Response) -> Dialog:
        """The dialog a UAS creates by sending ``response`` (101-299, with To tag) to ``request``.

        Raises:
            RemoteProtocolError: the request has no Contact (status 400).
            LocalProtocolError: ``response`` cannot create a dialog, or has no To tag.
            ParseError: a header the dialog needs is malformed.
        """
        if not 101 <= response.status <= 299:
            raise LocalProtocolError(f"a {response.status} response creates no dialog")
        local_tag = response.to_addr.tag
        if local_tag is None:
            raise LocalProtocolError("a dialog-creating response needs a To tag")
        contact = _contact_uri(request)
        if contact is None:
            raise RemoteProtocolError(f"{request.method} creates a dialog without Contact")
        # RFC 3261 §12.1.1: route set = Record-Route of the request in order; remote target =
        # its Contact; remote sequence number = its CSeq; local sequence number empty; remote
        # tag = From tag (null for RFC 2543 peers), local tag = To tag of the response.
        return cls(
            DialogId(request.call_id, local_tag, request.from_addr.tag or ""),
            local_uri=request.to_addr,
            remote_uri=request.from_addr,
            remote_target=contact,
            route_set=_addresses(request, "Record-Route"),
            remote_seq=request.cseq.number,
            local_target=_contact_uri(response),
            secure=request.uri.secure,
            state=DialogState.EARLY if response.status < 200 else DialogState.CONFIRMED,
        )

    def _learn_route(self, response: Response) -> None:
        # RFC 3261 §12.1.2: the route set is the response's Record-Route in reverse order,
        # and the remote target is its Contact.
        self.route_set = tuple(reversed(_addresses(response, "Record-Route")))
        contact = _contact_uri(response)
        if contact is None:
            if response.status >= 200:
                raise RemoteProtocolError(
                    f"{response.status} response creates a dialog without Contact"
                )
            return
        self.remote_target = contact

    # -- requests we send -----------------------------------------------------------------

    def create_request(
        self,
        method: str,
        *,
        headers: Iterable[tuple[str, object]] = (),
        body: bytes = b"",
        content_type: str | None = None,
    ) -> Request:
        """A request inside the dialog, without Via (RFC 3261 §12.2.1.1); counts the CSeq.

        Raises:
            LocalProtocolError: ACK or CANCEL (see :meth:`ack`; CANCEL copies its
                INVITE), or the dialog is terminated.
        """
        if method in _NOT_IN_DIALOG:
            raise LocalProtocolError(f"{method} is not built with create_request")
        if self.state is DialogState.TERMINATED:
            raise LocalProtocolError(f"dialog {self.id} is terminated")
        # RFC 3261 §12.2.1.1: the local sequence number goes up by one for each request
        # (an empty one starts at 1, as a UAS that has sent nothing yet).
        self.local_seq = 1 if self.local_seq is None else self.local_seq + 1
        request = self._build(method, self.local_seq)
        if method in TARGET_REFRESH and self.local_target is not None:
            request["Contact"] = Address(self.local_target)
        for name, value in headers:
            request.add(name, value)
        if content_type is not None:
            request["Content-Type"] = content_type
        request.set_body(body)
        return request

    def ack(self, invite: Request) -> Request:
        """The ACK for a 2xx to ``invite`` (sent in this dialog), without Via (RFC 3261 §13.2.2.4).

        Raises:
            LocalProtocolError: ``invite`` is not an INVITE.
        """
        if invite.method != "INVITE":
            raise LocalProtocolError(f"ACK acknowledges an INVITE, not {invite.method}")
        # RFC 3261 §13.2.2.4: built as any request in the dialog, but with the CSeq number of
        # the INVITE (method ACK) and the INVITE's credentials.
        ack = self._build("ACK", invite.cseq.number)
        for name in ("Authorization", "Proxy-Authorization"):
            values = invite.get_all(name)
            if values:
                ack[name] = values
        ack.set_body(b"")
        return ack

    def _build(self, method: str, number: int) -> Request:
        uri, routes = self._request_uri_and_routes()
        # RFC 3261 §12.2.1.1: To = remote URI and tag, From = local URI and tag, the Call-ID.
        to, sender = self.remote_uri, self.local_uri
        if self.id.remote_tag:
            to = to.with_params(tag=self.id.remote_tag)
        if self.id.local_tag:
            sender = sender.with_params(tag=self.id.local_tag)
        request = Request(
            method,
            uri,
            [
                ("To", to),
                ("From", sender),
                ("Call-ID", self.id.call_id),
                ("CSeq", CSeq(number, method)),
                ("Max-Forwards", 70),
            ],
        )
        if routes:
            request["Route"] = routes
        return request

    def _request_uri_and_routes(self) -> tuple[URI, list[Address]]:
        routes = list(self.route_set)
        if not routes:
            # RFC 3261 §12.2.1.1: an empty route set: Request-URI = remote target, no Route.
            return self.remote_target, []
        if routes[0].uri.lr:
            # RFC 3261 §12.2.1.1: loose routing: Request-URI = remote target, Route = route set.
            return self.remote_target, routes
        # RFC 3261 §12.2.1.1: strict routing: Request-URI = first route (without parameters a
        # Request-URI may not carry), Route = the rest, then the remote target.
        first = routes[0].uri.replace(headers=()).without_params("method")
        return first, [*routes[1:], Address(self.remote_target)]

    @property
    def next_hop(self) -> URI:
        """The URI whose host receives our requests: the first route, else the remote target."""
        return self.route_set[0].uri if self.route_set else self.remote_target

    # -- what we receive --------------------------------------------------------------------

    def receive_request(self, request: Request) -> int | None:
        """Check a request received in this dialog and update the dialog (RFC 3261 §12.2.2).

        Returns:
            ``None`` when the request is acceptable, else the status to reject it with
            (500 for a CSeq lower than the last one).
        """
        if request.method in _NOT_IN_DIALOG:
            return None
        number = request.cseq.number
        # RFC 3261 §12.2.2: a CSeq lower than the remote sequence number is out of order: 500.
        if self.remote_seq is not None and number < self.remote_seq:
            return 500
        self.remote_seq = number
        if request.method in TARGET_REFRESH:
            contact = _contact_uri(request)
            if contact is not None:
                # RFC 3261 §12.2.2: a target refresh request replaces the remote target.
                self.remote_target = contact
        return None

    def receive_response(self, request: Request, response: Response) -> None:
        """Follow the response to a request we sent in this dialog (or that created it).

        Raises:
            RemoteProtocolError: a 2xx confirming the dialog has no Contact.
        """
        status = response.status
        if status in (408, 481):
            # RFC 3261 §12.2.1.2: a 481 or 408 to a request inside the dialog ends it.
            self.state = DialogState.TERMINATED
            return
        if status >= 300 and self.state is DialogState.EARLY and request.method == "INVITE":
            # RFC 3261 §13.2.2.3: a failure response to the INVITE ends its early dialogs.
            self.state = DialogState.TERMINATED
            return
        if not 200 <= status < 300:
            return
        if self.state is DialogState.EARLY and request.method == "INVITE":
            # RFC 3261 §13.2.2.4: the 2xx confirms an early dialog and its route set is
            # recomputed from it.
            self._learn_route(response)
            self.state = DialogState.CONFIRMED
            return
        if request.method in TARGET_REFRESH:
            contact = _contact_uri(response)
            if contact is not None:
                # RFC 3261 §12.2.1.2: a 2xx to a target refresh replaces the remote target.
                self.remote_target = contact

    def terminate(self) -> None:
        """End the dialog (BYE sent or received, or the session given up)."""
        self.state = DialogState.TERMINATED

    def __repr__(self) -> str:
        return f"<Dialog {self.id} {self.state.value} target={self.remote_target}>"


def _addresses(message: Request | Response, name: str) -> list[Address]:
    return [value for value in message.get_all(name) if isinstance(value, Address)]


def _contact_uri(message: Request | Response) -> URI | None:
    contacts = message.get_all("Contact")
    if not contacts:
        return None
    first = contacts[0]
    if not isinstance(first, Address) or first.star:
        return None
    return first.uri
