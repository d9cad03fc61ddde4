"""The user agent core: what a UAC and a UAS decide, without I/O (RFC 3261 §8, §12, §13, §22).

:class:`UserAgentCore` holds one identity (the address-of-record, credentials,
an :class:`~callscript.sip.ids.IdSource`) and its dialogs, and

- builds requests outside a dialog (:meth:`~UserAgentCore.new_request`,
  §8.1.1): Request-URI, To, From with a fresh tag, Call-ID, CSeq,
  Max-Forwards, Via with a fresh branch (§8.1.1.7) and ``rport`` (RFC 3581
  §3), Contact on INVITE (§8.1.1.8), a preloaded route (§8.1.2);
- builds requests inside a dialog and the ACK for a 2xx, adding the Via
  (:meth:`~UserAgentCore.in_dialog`, :meth:`~UserAgentCore.ack`);
- answers 401 and 407 by resending the request with credentials
  (:meth:`~UserAgentCore.authorize`, §8.1.3.5, §22.2, §22.3);
- builds responses as a UAS (:meth:`~UserAgentCore.respond`, §8.2.6,
  §12.1.1) and checks requests before acting on them
  (:meth:`~UserAgentCore.check_request`, §8.2.1, §8.2.2, §12.2.2);
- keeps its dialogs, found by the id a message carries.

Which transport and source address a request leaves from is the caller's
choice, passed in as a :class:`Local`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from callscript.sip.address import Address
from callscript.sip.auth import digest_response, pick_challenges
from callscript.sip.dialog import Dialog, DialogId, without_tag
from callscript.sip.errors import LocalProtocolError, ParseError
from callscript.sip.headers import Auth, CSeq
from callscript.sip.ids import IdSource
from callscript.sip.message import Request, Response
from callscript.sip.reply import make_response
from callscript.sip.uri import URI
from callscript.sip.via import Via

# What our UA understands; anything else gets 405 with this Allow (RFC 3261 §8.2.1).
ALLOW = ("INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "MESSAGE", "INFO", "UPDATE")
# RFC 3261 §8.1.1.8: a request that can establish a dialog carries a Contact.
_DIALOG_CREATING = frozenset({"INVITE", "SUBSCRIBE", "REFER"})


@dataclass(frozen=True, slots=True)
class Local:
    """The transport and address a message leaves from: what its Via and Contact name."""

    transport: str
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class Credentials:
    """A digest username and password (RFC 3261 §22.4)."""

    username: str
    password: str = field(repr=False)


def next_hop(request: Request) -> URI:
    """The URI the request goes to: its top Route, else its Request-URI (RFC 3261 §8.1.2)."""
    routes = request.get_all("Route")
    if routes and isinstance(routes[0], Address):
        # RFC 3261 §8.1.2: with a route set, the request goes to the first Route's URI.
        return routes[0].uri
    return request.uri


class UserAgentCore:
    """One identity's request building, authentication and dialogs, sans-I/O.

    Args:
        aor: our address-of-record (``sip:alice@example.com``), with an optional
            display name; From of our requests.
        ids: where branches, tags, Call-IDs and cnonces come from.
        credentials: for 401/407 challenges; ``None`` never answers them.
        user_agent: the User-Agent header value (``None``: no header).
    """

    def __init__(
        self,
        aor: Address | URI | str,
        *,
        ids: IdSource,
        credentials: Credentials | None = None,
        user_agent: str | None = "callscript",
    ) -> None:
        if isinstance(aor, str):
            aor = Address.parse(aor) if "<" in aor else Address(URI.parse(aor))
        self.aor = without_tag(aor if isinstance(aor, Address) else Address(aor))
        self.ids = ids
        self.credentials = credentials
        self.user_agent = user_agent
        self.dialogs: dict[DialogId, Dialog] = {}
        # Nonce-counts of the nonces we answered: RFC 2617 §3.2.2 counts from 1 per nonce.
        self._counts: dict[str, int] = {}

    # -- headers we write ---------------------------------------------------------------

    def via(self, local: Local) -> Via:
        """A Via for a new transaction, with a fresh branch."""
        # RFC 3261 §8.1.1.7: a fresh branch starting with the magic cookie; RFC 3581 §3: an
        # empty rport asks the server to answer to the port the request came from.
        return Via(
            local.transport, local.host, local.port, {"branch": self.ids.branch(), "rport": None}
        )

    def contact(self, local: Local) -> Address:
        """Our Contact for a message leaving from ``local``."""
        params: dict[str, str | None] = {}
        if local.transport != "UDP":
            params["transport"] = local.transport.lower()
        scheme = "sips" if local.transport == "TLS" and self.aor.uri.secure else "sip"
        user = self.aor.uri.user if self.aor.uri.is_sip else None
        return Address(URI(scheme, user=user, host=local.host, port=local.port, params=params))

    # -- requests outside a dialog ----------------------------------------------------------

    def new_request(
        self,
        method: str,
        uri: URI | str,
        *,
        local: Local,
        to: Address | None = None,
        route: Sequence[Address] = (),
        call_id: str | None = None,
        cseq: int = 1,
        from_tag: str | None = None,
        contact: Address | None = None,
        headers: Iterable[tuple[str, object]] = (),
        body: bytes = b"",
        content_type: str | None = None,
    ) -> Request:
        """A request outside any dialog (RFC 3261 §8.1.1).

        Args:
            uri: the Request-URI.
            local: where it leaves from (Via, Contact).
            to: the To (default: the Request-URI).
            route: a preloaded route set (an outbound proxy, with ``lr``).
            call_id, cseq, from_tag: keep these across requests that must share
                them (REGISTER refreshes, §10.2); fresh ones by default.
            contact: the Contact (default: ours, on dialog-creating methods).
        """
        uri = URI.parse(uri) if isinstance(uri, str) else uri
        # RFC 3261 §8.1.1: To, From (with a fresh tag), Call-ID, CSeq, Max-Forwards and Via.
        request = Request(
            method,
            uri,
            [
                ("Via", self.via(local)),
                ("Max-Forwards", 70),
                ("To", to if to is not None else Address(uri)),
                ("From", self.aor.with_params(tag=from_tag or self.ids.tag())),
                ("Call-ID", call_id or f"{self.ids.call_id()}@{local.host}"),
                ("CSeq", CSeq(cseq, method)),
            ],
        )
        if route:
            # RFC 3261 §8.1.2: a preloaded route set goes in Route, the request to its first URI.
            request["Route"] = list(route)
        if contact is None and method in _DIALOG_CREATING:
            # RFC 3261 §8.1.1.8: a request that can establish a dialog carries a Contact.
            contact = self.contact(local)
        if contact is not None:
            request["Contact"] = contact
        self._finish(request, headers, body, content_type)
        return request

    def in_dialog(
        self,
        dialog: Dialog,
        method: str,
        *,
        local: Local,
        headers: Iterable[tuple[str, object]] = (),
        body: bytes = b"",
        content_type: str | None = None,
    ) -> Request:
        """A request inside ``dialog`` (RFC 3261 §12.2.1.1), with a Via for ``local``."""
        request = dialog.create_request(method)
        request.insert("Via", self.via(local))
        self._finish(request, headers, body, content_type)
        return request

    def ack(self, dialog: Dialog, invite: Request, *, local: Local) -> Request:
        """The ACK for a 2xx to ``invite`` (RFC 3261 §13.2.2.4), with a Via for ``local``."""
        ack = dialog.ack(invite)
        ack.insert("Via", self.via(local))
        return ack

    def _finish(
        self,
        request: Request,
        headers: Iterable[tuple[str, object]],
        body: bytes,
        content_type: str | None,
    ) -> None:
        if self.user_agent:
            request["User-Agent"] = self.user_agent
        for name, value in headers:
            request.add(name, value)
        if content_type is not None:
            request["Content-Type"] = content_type
        request.set_body(body)

    # -- authentication ---------------------------------------------------------------------

    def authorize(self, request: Request, response: Response, *, local: Local) -> Request | None:
        """The request again with credentials answering the 401/407 ``response``, or ``None``.

        ``None`` when we have no credentials, the response offers no challenge we
        can answer, or the server refused the credentials we already sent for a
        realm (a fresh challenge without ``stale=true``): retrying would loop.

        Raises:
            LocalProtocolError: ``request`` is an ACK or CANCEL (never challenged, §22.1).
        """
        if request.method in ("ACK", "CANCEL"):
            raise LocalProtocolError(f"{request.method} cannot be resent with credentials")
        if self.credentials is None or response.status not in (401, 407):
            return None
        challenges = pick_challenges(response)
        if not challenges:
            return None
        # RFC 3261 §22.2 (401, WWW-Authenticate) and §22.3 (407, Proxy-Authenticate).
        name = "Authorization" if response.status == 401 else "Proxy-Authorization"
        sent = {_realm(value) for value in request.get_all(name)}
        realms = {_realm(challenge) for challenge in challenges}
        retry = request.copy()
        kept = [value for value in request.get_all(name) if _realm(value) not in realms]
        for challenge in challenges:
            realm = challenge.get("realm") or ""
            stale = (challenge.get("stale") or "").lower() == "true"
            if realm in sent and not stale:
                # RFC 3261 §22.2: the server rejected these credentials; do not send them again.
                return None
            nonce = challenge.get("nonce") or ""
            count = self._counts.get(nonce, 0) + 1
            self._counts[nonce] = count
            try:
                kept.append(
                    digest_response(
                        challenge,
                        method=request.method,
                        uri=str(request.uri),
                        username=self.credentials.username,
                        password=self.credentials.password,
                        cnonce=self.ids.token(8),
                        nc=count,
                        body=request.body,
                    )
                )
            except ParseError:
                return None
        retry[name] = kept
        # RFC 3261 §8.1.3.5, §22.2: the retry is a new transaction (fresh branch) with the
        # same Call-ID, To and From and a CSeq one higher.
        retry["CSeq"] = CSeq(request.cseq.number + 1, request.method)
        retry.set_top("Via", self.via(local))
        return retry

    # -- UAS --------------------------------------------------------------------------------

    def check_request(self, request: Request, *, allow: Sequence[str] = ALLOW) -> Response | None:
        """The error response a UAS gives ``request`` before acting on it, or ``None``.

        Checks, in the RFC's order: the method (405 with Allow), the
        Request-URI scheme (416), Require (420 with Unsupported), and for a
        request with a To tag the dialog and its CSeq (481, 500). A valid
        request inside a dialog updates the dialog (remote CSeq, target).
        ACK is never answered: ``None``.
        """
        if request.method == "ACK":
            return None
        if request.method not in allow:
            # RFC 3261 §8.2.1: an unsupported method gets 405 listing what we allow.
            return make_response(request, 405, headers=[("Allow", list(allow))])
        if not request.uri.is_sip and request.uri.scheme != "tel":
            # RFC 3261 §8.2.2.1: a Request-URI scheme we do not know gets 416.
            return make_response(request, 416)
        required = [str(value) for value in request.get_all("Require")]
        if required and request.method != "CANCEL":
            # RFC 3261 §8.2.2.3: we support no extension, so any Require gets 420.
            return make_response(request, 420, headers=[("Unsupported", required)])
        dialog_id = DialogId.of_request(request)
        if dialog_id is None or request.method == "CANCEL":
            return None
        dialog = self.dialogs.get(dialog_id)
        if dialog is None:
            # RFC 3261 §12.2.2: a request for a dialog we do not know gets 481.
            return make_response(request, 481)
        status = dialog.receive_request(request)
        return None if status is None else make_response(request, status, "Out of order CSeq")

    def respond(
        self,
        request: Request,
        status: int,
        reason: str | None = None,
        *,
        to_tag: str | None = None,
        local: Local | None = None,
        headers: Iterable[tuple[str, object]] = (),
        body: bytes = b"",
        content_type: str | None = None,
    ) -> Response:
        """A response to ``request`` (RFC 3261 §8.2.6), dialog-ready for INVITE.

        A 101-299 to INVITE copies the request's Record-Route and carries our
        Contact for ``local`` (§12.1.1) unless ``headers`` gives one.
        """
        extra = list(headers)
        if self.user_agent and status >= 200:
            extra.append(("Server", self.user_agent))
        # RFC 3261 §8.2.6.2: a response other than 100 carries a To tag (one per request:
        # the caller passes the INVITE's, so its provisionals and final agree).
        response = make_response(
            request,
            status,
            reason,
            to_tag=to_tag if to_tag is not None else self.ids.tag(),
            headers=extra,
            body=body,
            content_type=content_type,
        )
        if request.method == "INVITE" and 101 <= status < 300:
            # RFC 3261 §12.1.1: a dialog-creating response copies Record-Route, in order,
            # and carries a Contact.
            routes = request.get_all("Record-Route")
            if routes:
                response["Record-Route"] = routes
            if local is not None and "Contact" not in response:
                response["Contact"] = self.contact(local)
        return response

    # -- dialogs ----------------------------------------------------------------------------

    def dialog_as_uac(self, request: Request, response: Response) -> Dialog:
        """The dialog ``response`` creates or confirms for our ``request`` (RFC 3261 §12.1.2).

        An early dialog with the same id is confirmed and gets its route set
        from the 2xx (§13.2.2.4); otherwise a new dialog is stored.

        Raises:
            RemoteProtocolError: the response has no To tag, or a 2xx has no Contact.
        """
        dialog_id = DialogId.of_response(response)
        dialog = self.dialogs.get(dialog_id) if dialog_id is not None else None
        if dialog is None:
            dialog = Dialog.from_uac(request, response)
            self.dialogs[dialog.id] = dialog
        else:
            dialog.receive_response(request, response)
        return dialog

    def dialog_as_uas(self, request: Request, response: Response) -> Dialog:
        """The dialog our ``response`` to ``request`` creates (RFC 3261 §12.1.1), stored."""
        dialog_id = DialogId(
            request.call_id, response.to_addr.tag or "", request.from_addr.tag or ""
        )
        dialog = self.dialogs.get(dialog_id)
        if dialog is None:
            dialog = Dialog.from_uas(request, response)
            self.dialogs[dialog.id] = dialog
        return dialog

    def find_dialog(self, message: Request | Response) -> Dialog | None:
        """The dialog a received message belongs to (a request as UAS, a response as UAC)."""
        dialog_id = (
            DialogId.of_request(message)
            if isinstance(message, Request)
            else DialogId.of_response(message)
        )
        return self.dialogs.get(dialog_id) if dialog_id is not None else None

    def forget(self, dialog: Dialog) -> None:
        """Drop a dialog (after it terminated)."""
        self.dialogs.pop(dialog.id, None)


def _realm(value: object) -> str:
    """The realm of an Auth value (challenge or credentials); ``""`` for anything else."""
    return (value.get("realm") or "") if isinstance(value, Auth) else ""
