"""The event and its actions, on a real server on loopback, driven by plain UDP phones.

Each test runs a handler written in the test as the whole routing of a server
(in a thread of this process) and talks to it with :class:`Phone` sockets.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from callscript.serverscript.call import CallEnded
from callscript.serverscript.event import AsyncEvent, BlockingEvent
from callscript.sip.address import Address
from callscript.sip.digest import digest_response, pick_challenge
from callscript.sip.message import Request, Response
from callscript.sip.reply import make_response
from callscript.store.sqlite import SqliteStore
from tests.serverscript.harness import Phone, serving

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def phones() -> Iterator[tuple[Phone, Phone]]:
    caller, callee = Phone(), Phone()
    yield caller, callee
    caller.close()
    callee.close()


def _respond(phone: Phone, request: Request, status: int) -> None:
    response = make_response(request, status, to_tag="callee")
    via = request.top_via
    phone.sock.sendto(bytes(response), ("127.0.0.1", via.rport or via.port or 5060))


def _ack(phone: Phone, invite: Request, response: Response, port: int) -> None:
    """The ACK of a non-2xx final response: same branch as the INVITE (RFC 3261 §17.1.1.3)."""
    ack = Request(
        "ACK",
        invite.uri,
        [
            ("Via", invite.top_via),
            ("Max-Forwards", 70),
            ("From", invite.from_addr),
            ("To", response.to_addr),
            ("Call-ID", invite.call_id),
            ("CSeq", f"{invite.cseq.number} ACK"),
        ],
    )
    phone.send(ack, port)


def test_async_handler_answers_with_any_response_reason_and_headers(
    tmp_path: Path, phones: tuple[Phone, Phone]
) -> None:
    """reply() sends the code, reason and headers the script gives."""
    caller, _ = phones

    async def route(event: AsyncEvent) -> None:
        await event.action.reply(
            488, "Not Here Either", headers={"Warning": '399 example "codecs"'}
        )

    with serving(tmp_path, route) as served:
        response = caller.ask(caller.request("MESSAGE", "sip:bob@example.com"), served.port)
    assert (response.status, response.reason) == (488, "Not Here Either")
    assert [str(v) for v in response.get_all("Warning")] == ['399 example "codecs"']
    assert response.to_addr.tag


def test_blocking_handler_reads_the_request_and_where_it_came_from(
    tmp_path: Path, phones: tuple[Phone, Phone]
) -> None:
    """A plain def handler runs in a worker thread and sees method, URIs, source and headers."""
    caller, _ = phones
    seen: list[dict[str, object]] = []

    def route(event: BlockingEvent) -> None:
        seen.append(
            {
                "thread": threading.current_thread() is threading.main_thread(),
                "method": event.method,
                "uri": str(event.uri),
                "from_uri": str(event.from_uri),
                "to_uri": str(event.to_uri),
                "source": (event.source.transport, event.source.port),
                "is_self": event.is_self,
                "for_us": event.for_us,
                "from_us": event.from_us,
                "trusted": event.trusted,
                "in_dialog": event.in_dialog,
                "max_forwards": event.max_forwards,
                "subject": event["Subject"],
                "has_subject": "Subject" in event,
                "vias": event["Via"],
            }
        )
        event.action.reply(200 if event.is_self else 404)

    with serving(tmp_path, route) as served:
        options = caller.ask(caller.request("OPTIONS", f"sip:127.0.0.1:{served.port}"), served.port)
        message = caller.ask(caller.request("MESSAGE", "sip:bob@example.org"), served.port)
    assert (options.status, message.status) == (200, 404)
    first, second = seen
    assert first["thread"] is False
    assert (first["method"], first["is_self"], first["for_us"]) == ("OPTIONS", True, True)
    assert first["source"] == ("UDP", caller.port)
    assert (first["trusted"], first["in_dialog"], first["max_forwards"]) == (True, False, 70)
    assert (first["subject"], first["has_subject"]) == (None, False)
    assert isinstance(first["vias"], list) and len(first["vias"]) == 1
    assert (second["uri"], second["for_us"], second["from_us"]) == (
        "sip:bob@example.org",
        False,
        False,
    )
    assert (second["from_uri"], second["to_uri"]) == (
        "sip:tester@example.org",
        "sip:bob@example.org",
    )


def test_event_fields_of_a_request_for_a_user_of_ours(
    tmp_path: Path, phones: tuple[Phone, Phone]
) -> None:
    """for_us, from_us, user, headers and size describe the request as received."""
    caller, _ = phones
    seen: dict[str, object] = {}

    def route(event: BlockingEvent) -> None:
        seen.update(
            user=event.user,
            for_us=event.for_us,
            from_us=event.from_us,
            subject=str(event["Subject"]),
            size=event.size,
            call_id=event.call_id,
        )
        event.action.reject(486, "Busy Here")

    with serving(tmp_path, route) as served:
        request = caller.request(
            "MESSAGE",
            "sip:bob@example.com",
            from_uri="sip:alice@example.com",
            headers=[("Subject", "hi")],
        )
        response = caller.ask(request, served.port)
    assert response.status == 486
    assert seen["user"] == "sip:bob@example.com"
    assert seen["for_us"] is True and seen["from_us"] is True
    assert seen["subject"] == "hi" and seen["call_id"] == request.call_id
    assert isinstance(seen["size"], int) and seen["size"] > 200


def test_handler_that_decides_nothing_or_fails_gets_500_and_the_server_goes_on(
    tmp_path: Path, phones: tuple[Phone, Phone]
) -> None:
    """No decision: 500 saying so; an exception: 500, logged; the next request is served."""
    caller, _ = phones

    def route(event: BlockingEvent) -> None:
        if str(event["Subject"]) == "fail":
            raise RuntimeError("script bug")
        if str(event["Subject"]) == "nothing":
            return
        event.action.accept()

    with serving(tmp_path, route) as served:
        port = served.port
        nothing = caller.ask(
            caller.request("MESSAGE", "sip:b@example.com", headers=[("Subject", "nothing")]), port
        )
        failed = caller.ask(
            caller.request("MESSAGE", "sip:b@example.com", headers=[("Subject", "fail")]), port
        )
        fine = caller.ask(caller.request("MESSAGE", "sip:b@example.com"), port)
    assert (nothing.status, "decided nothing" in nothing.reason) == (500, True)
    assert (failed.status, "failed" in failed.reason) == (500, True)
    assert fine.status == 200


def test_forward_sends_the_request_to_the_location_and_relays_the_answer(
    tmp_path: Path, phones: tuple[Phone, Phone]
) -> None:
    """forward() to event.location: our Via on top, Max-Forwards down by one, no Record-Route unasked."""
    caller, callee = phones

    def route(event: BlockingEvent) -> None:
        event.location = callee.contact
        event.action.forward()

    with serving(tmp_path, route) as served:
        caller.send(caller.request("MESSAGE", "sip:bob@example.com"), served.port)
        forwarded = callee.answer(200)
        response = caller.final()
    assert response.status == 200
    assert str(forwarded.uri) == callee.contact
    assert forwarded.top_via.port == served.port and len(forwarded.via) == 2
    assert forwarded.max_forwards == 69
    assert "Record-Route" not in forwarded


def test_record_route_puts_our_record_route_on_the_forwarded_invite(
    tmp_path: Path, phones: tuple[Phone, Phone]
) -> None:
    """RFC 3261 §16.6 step 4: record_route() adds our Record-Route (with lr) to what forward() sends."""
    caller, callee = phones

    def route(event: BlockingEvent) -> None:
        event.action.record_route()
        event.action.forward(callee.contact)

    with serving(tmp_path, route) as served:
        invite = caller.request("INVITE", "sip:bob@example.com")
        caller.send(invite, served.port)
        forwarded = callee.answer(486)
        response = caller.final()
        _ack(caller, invite, response, served.port)
        assert isinstance(callee.receive(), Request)  # the proxy's ACK of the 486
    assert response.status == 486
    (record_route,) = forwarded.get_all("Record-Route")
    assert isinstance(record_route, Address)
    assert (record_route.uri.host, record_route.uri.port, record_route.uri.lr) == (
        "127.0.0.1",
        served.port,
        True,
    )


def test_proxy_returns_the_outcome_and_the_handler_decides_what_follows(
    tmp_path: Path, phones: tuple[Phone, Phone]
) -> None:
    """proxy() -> 'busy' on 486; the handler then redirects; without a decision the 486 goes back."""
    caller, callee = phones
    outcomes: list[str] = []

    def route(event: BlockingEvent) -> None:
        outcome = event.action.proxy(timeout=5, location=callee.contact)
        assert isinstance(outcome, str)
        outcomes.append(outcome)
        if str(event["Subject"]) == "redirect":
            event.action.redirect("sip:voicemail@example.com")

    with serving(tmp_path, route) as served:
        caller.send(
            caller.request("MESSAGE", "sip:bob@example.com", headers=[("Subject", "redirect")]),
            served.port,
        )
        callee.answer(486)
        redirected = caller.final()
        caller.send(caller.request("MESSAGE", "sip:bob@example.com"), served.port)
        callee.answer(486)
        relayed = caller.final()
    assert outcomes == ["busy", "busy"]
    assert redirected.status == 302
    assert [str(a.uri) for a in redirected.contacts] == ["sip:voicemail@example.com"]
    assert relayed.status == 486


def test_stateless_forward_keeps_nothing_so_a_retransmission_goes_out_again(
    tmp_path: Path, phones: tuple[Phone, Phone]
) -> None:
    """RFC 3261 §16.11: a stateless forward derives its branch from the request's: a retransmission gets the same."""
    caller, callee = phones
    routed: list[str] = []

    def route(event: BlockingEvent) -> None:
        routed.append(event.call_id)
        event.action.forward(callee.contact, stateless=True)

    with serving(tmp_path, route) as served:
        request = caller.request("MESSAGE", "sip:bob@example.com")
        caller.send(request, served.port)
        first = callee.answer(200)
        response = caller.final()
        caller.send(request, served.port)  # a retransmission: the proxy kept no transaction
        second = callee.answer(200)
        again = caller.final()
    assert response.status == 200 and again.status == 200
    assert len(routed) == 2
    assert first.top_via.branch == second.top_via.branch
    assert (first.top_via.branch or "").startswith("z9hG4bKsl.")


def _register(
    phone: Phone, port: int, user: str, password: str, *, challenge: Response | None = None
) -> Response:
    headers: list[tuple[str, object]] = [("Expires", 300)]
    request = phone.request(
        "REGISTER", "sip:example.com", from_uri=f"sip:{user}@example.com", headers=headers
    )
    request["To"] = Address.parse(f"<sip:{user}@example.com>")
    if challenge is not None:
        offer = pick_challenge(challenge)
        assert offer is not None
        credentials = digest_response(
            offer,
            method="REGISTER",
            uri="sip:example.com",
            username=user,
            password=password,
            cnonce="c0ffee",
            nc=1,
        )
        request["Authorization"] = credentials
    return phone.ask(request, port)


def test_registrar_actions_challenge_verify_save_then_lookup_finds_the_contact(
    tmp_path: Path, phones: tuple[Phone, Phone]
) -> None:
    """verify() and challenge() guard save(); lookup() then finds the contact forward() uses."""
    caller, callee = phones
    store = SqliteStore(str(tmp_path / "callscript.db"))
    store.accounts.add("bob", "example.com", "s3cret", now=time.time())
    store.close()

    def route(event: BlockingEvent) -> None:
        action = event.action
        if event.method == "REGISTER":
            credentials = action.verify()
            if not credentials:
                action.challenge()
            else:
                action.save()
        elif action.lookup():
            action.forward()
        else:
            action.reply(404)

    with serving(tmp_path, route, auth_algorithms=["MD5"]) as served:
        port = served.port
        challenge = _register(callee, port, "bob", "s3cret")
        assert challenge.status == 401
        wrong = _register(callee, port, "bob", "nope", challenge=challenge)
        assert wrong.status == 401
        challenge = wrong
        ok = _register(callee, port, "bob", "s3cret", challenge=challenge)
        assert ok.status == 200, ok
        caller.send(caller.request("MESSAGE", "sip:bob@example.com"), port)
        delivered = callee.answer(200)
        assert caller.final().status == 200
        unknown = caller.ask(caller.request("MESSAGE", "sip:carol@example.com"), port)
    assert str(delivered.uri) == callee.contact
    assert unknown.status == 404


def test_loose_route_follows_the_route_set_and_refuses_a_dialog_that_is_not_ours(
    tmp_path: Path, phones: tuple[Phone, Phone]
) -> None:
    """RFC 3261 §16.6 step 7: with our Route removed, a Route left is the next hop; none left and us as target: 404."""
    caller, callee = phones

    def route(event: BlockingEvent) -> None:
        if event.action.loose_route():
            event.action.forward()
        else:
            event.action.reply(404, "Not here")

    with serving(tmp_path, route) as served:
        port = served.port
        ours = Address.parse(f"<sip:127.0.0.1:{port};lr>")
        theirs = Address.parse(f"<sip:127.0.0.1:{callee.port};lr>")
        bye = caller.request("BYE", "sip:someone@192.0.2.1", to_tag="t1")
        bye["Route"] = [ours, theirs]
        caller.send(bye, port)
        routed = callee.answer(200)
        assert caller.final().status == 200
        stray = caller.request("BYE", f"sip:127.0.0.1:{port}", to_tag="t2")
        refused = caller.ask(stray, port)
    assert [str(r) for r in routed.get_all("Route")] == [str(theirs)]
    assert str(routed.uri) == "sip:someone@192.0.2.1"
    assert (refused.status, refused.reason) == (404, "Not here")


def test_caller_cancel_wakes_a_blocking_proxy_with_call_ended(
    tmp_path: Path, phones: tuple[Phone, Phone]
) -> None:
    """A CANCEL while the handler waits in proxy(): its thread gets CallEnded; the caller gets 487."""
    caller, callee = phones
    ended = threading.Event()

    def route(event: BlockingEvent) -> None:
        try:
            event.action.proxy(location=callee.contact)
        except CallEnded:
            ended.set()
            raise

    with serving(tmp_path, route) as served:
        port = served.port
        invite = caller.request("INVITE", "sip:bob@example.com")
        caller.send(invite, port)
        branch_invite = callee.receive()
        assert isinstance(branch_invite, Request) and branch_invite.method == "INVITE"
        _respond(callee, branch_invite, 180)
        time.sleep(0.2)  # let the 180 reach the caller; the CANCEL must find a ringing branch
        cancel = Request(
            "CANCEL",
            invite.uri,
            [
                ("Via", invite.top_via),
                ("Max-Forwards", 70),
                ("From", invite.from_addr),
                ("To", invite.to_addr),
                ("Call-ID", invite.call_id),
                ("CSeq", f"{invite.cseq.number} CANCEL"),
            ],
        )
        caller.send(cancel, port)
        branch_cancel = callee.receive()
        assert isinstance(branch_cancel, Request) and branch_cancel.method == "CANCEL"
        _respond(callee, branch_cancel, 200)
        _respond(callee, branch_invite, 487)
        statuses = set()
        while 487 not in statuses:
            message = caller.receive()
            if isinstance(message, Response):
                statuses.add(message.status)
        assert ended.wait(10)
    assert {200, 487} <= statuses


def test_default_routes_the_way_callscript_serve_does(
    tmp_path: Path, phones: tuple[Phone, Phone]
) -> None:
    """default(): a REGISTER without credentials gets serve's 401; an OPTIONS to the server its 200."""
    caller, _ = phones

    async def route(event: AsyncEvent) -> None:
        await event.action.default()

    with serving(tmp_path, route) as served:
        port = served.port
        register = caller.ask(caller.request("REGISTER", "sip:example.com"), port)
        options = caller.ask(caller.request("OPTIONS", f"sip:127.0.0.1:{port}"), port)
    assert register.status == 401
    assert options.status == 200 and "Allow" in options


def test_save_refuses_a_register_requiring_an_extension_it_does_not_support(
    tmp_path: Path, phones: tuple[Phone, Phone]
) -> None:
    """RFC 3261 §10.3 step 2: save() answers 420 listing the Require tags in Unsupported."""
    _, phone = phones

    def route(event: BlockingEvent) -> None:
        event.action.save()

    with serving(tmp_path, route) as served:
        request = phone.request(
            "REGISTER",
            "sip:example.com",
            headers=[("Require", "gruu"), ("Require", "frobnicate")],
        )
        response = phone.ask(request, served.port)
    assert response.status == 420
    assert [str(v) for v in response.get_all("Unsupported")] == ["gruu", "frobnicate"]


def test_misused_actions_fail_the_handler_and_the_caller_gets_500(
    tmp_path: Path, phones: tuple[Phone, Phone]
) -> None:
    """reply() outside 100-699, accept() of an INVITE, redirect() without a target: errors, then 500."""
    caller, _ = phones

    def route(event: BlockingEvent) -> None:
        subject = str(event["Subject"])
        if subject == "code":
            event.action.reply(700)
        elif subject == "redirect":
            event.action.redirect()
        else:
            event.action.accept()

    with serving(tmp_path, route) as served:
        port = served.port
        statuses = [
            caller.ask(
                caller.request(method, "sip:bob@example.com", headers=[("Subject", subject)]), port
            ).status
            for method, subject in (("MESSAGE", "code"), ("MESSAGE", "redirect"), ("INVITE", "x"))
        ]
    assert statuses == [500, 500, 500]


REJECTING = """
@basic.on('incoming')
def incoming(event):
    event.action.reject(code=603, reason='Not today')
"""


def test_user_script_runs_the_callees_script_and_the_admin_can_narrow_it(
    tmp_path: Path, phones: tuple[Phone, Phone]
) -> None:
    """user_script(): 'done' after the script's reject; with allow=('proxy',) the reject is refused: 'default'."""
    caller, _ = phones
    scripts = tmp_path / "user_scripts" / "example.com"
    scripts.mkdir(parents=True)
    (scripts / "bob.py").write_text(REJECTING, encoding="utf-8")
    results: list[str] = []

    def route(event: BlockingEvent) -> None:
        narrow = str(event["Subject"]) == "narrow"
        result = event.action.user_script(allow=("proxy",) if narrow else None)
        results.append(result)
        if result != "done":
            event.action.reply(480, f"Script said {result}")

    with serving(
        tmp_path, route, scripts_enabled=True, scripts_dir=str(tmp_path / "user_scripts")
    ) as served:
        port = served.port
        rejected = caller.ask(caller.request("MESSAGE", "sip:bob@example.com"), port)
        narrowed = caller.ask(
            caller.request("MESSAGE", "sip:bob@example.com", headers=[("Subject", "narrow")]),
            port,
        )
        nobody = caller.ask(caller.request("MESSAGE", "sip:carol@example.com"), port)
    assert (rejected.status, rejected.reason) == (603, "Not today")
    assert (narrowed.status, narrowed.reason) == (480, "Script said default")
    assert (nobody.status, nobody.reason) == (480, "Script said none")
    assert results == ["done", "default", "none"]
