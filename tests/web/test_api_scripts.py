"""The management API over real HTTP: sign-in, own-script access, uploads, versions, limits."""

from __future__ import annotations

import hashlib
from pathlib import Path

from callscript.sip import digest
from callscript.sip.headers import parse_auth
from tests.web.harness import BROKEN, DOMAIN, VOICEMAIL_ON_BUSY, Site, run

ALICE = f"/api/users/alice@{DOMAIN}"
BOB = f"/api/users/bob@{DOMAIN}"


def kinds(site: Site, kind: str) -> list[str]:
    return [e.message for e in site.store.audit.entries(kind=kind)]


def test_subscriber_uploads_own_script_and_gets_403_for_anothers_audited(tmp_path: Path) -> None:
    async def scenario(site: Site) -> None:
        put = await site.call("PUT", f"{ALICE}/script", user="alice", data=VOICEMAIL_ON_BUSY)
        assert put.status == 201, put.text
        assert put.body["author"] == "alice@example.com" and put.body["live"] is True
        mine = await site.call("GET", f"{ALICE}/script", user="alice")
        assert mine.status == 200 and mine.body["source"] == VOICEMAIL_ON_BUSY
        for method, path in [
            ("GET", f"{BOB}/script"),
            ("PUT", f"{BOB}/script"),
            ("DELETE", f"{BOB}/script"),
            ("GET", f"{BOB}/script/versions"),
            ("GET", f"{BOB}/calls"),
        ]:
            reply = await site.call(method, path, user="alice", data="x = 1\n")
            assert reply.status == 403, (method, path)
            assert reply.body["error"] == "forbidden"
        theirs = await site.call("GET", f"{ALICE}/script", user="bob")
        assert theirs.status == 403
        denied = site.store.audit.entries(kind="access")
        assert len(denied) == 6
        assert denied[-1].owner == "sip:bob@example.com"
        assert "alice@example.com GET /api/users/bob@example.com/script" in denied[-1].message
        # An admin reads anyone's; 404 for a user without a script, or no such user.
        assert (await site.call("GET", f"{ALICE}/script", user="root")).status == 200
        assert (await site.call("GET", f"{BOB}/script", user="root")).body["error"] == "no_script"
        nobody = await site.call("GET", "/api/users/nobody@example.com/script", user="root")
        assert nobody.status == 404

    run(tmp_path, scenario)


def test_rejected_upload_is_422_with_every_problem_as_line_col_and_live_version_stays(
    tmp_path: Path,
) -> None:
    async def scenario(site: Site) -> None:
        good = await site.call("PUT", f"{ALICE}/script", user="alice", data=VOICEMAIL_ON_BUSY)
        assert good.status == 201
        bad = await site.call("PUT", f"{ALICE}/script", user="alice", data=BROKEN)
        assert bad.status == 422
        assert bad.body["error"] == "invalid_script"
        problems = bad.body["problems"]
        assert len(problems) >= 2
        assert problems[0].startswith("3:5: ") and "open" in problems[0]
        assert any(p.startswith("4:5: ") and "os" in p for p in problems)
        assert {(d["line"], d["col"]) for d in bad.body["details"]} >= {(3, 5), (4, 5)}
        # Nothing changed: file, running version, store.
        assert site.script_file("alice").read_text() == VOICEMAIL_ON_BUSY
        live = site.host.registry.get("example.com/alice.py")
        assert live is not None and live.source == VOICEMAIL_ON_BUSY
        versions = await site.call("GET", f"{ALICE}/script/versions", user="alice")
        assert [v["id"] for v in versions.body] == [good.body["id"]]
        assert kinds(site, "reject")[0].startswith("upload by alice@example.com refused: 3:5:")

    run(tmp_path, scenario)


def test_uploads_become_versions_with_rollback_in_one_call_and_delete(tmp_path: Path) -> None:
    async def scenario(site: Site) -> None:
        first = await site.call("PUT", f"{ALICE}/script", user="alice", data=VOICEMAIL_ON_BUSY)
        second_source = VOICEMAIL_ON_BUSY.replace("15", "20")
        second = await site.call(
            "PUT", f"{ALICE}/script", user="alice", json={"source": second_source}
        )
        assert second.status == 201 and second.body["id"] > first.body["id"]
        assert second.body["digest"] == hashlib.sha256(second_source.encode()).hexdigest()
        # The same source again is not a new version.
        again = await site.call("PUT", f"{ALICE}/script", user="alice", data=second_source)
        assert again.status == 200 and again.body["id"] == second.body["id"]
        listed = await site.call("GET", f"{ALICE}/script/versions", user="alice")
        assert [(v["id"], v["live"]) for v in listed.body] == [
            (second.body["id"], True),
            (first.body["id"], False),
        ]
        one = await site.call("GET", f"{ALICE}/script/versions/{first.body['id']}", user="alice")
        assert one.body["source"] == VOICEMAIL_ON_BUSY
        back = await site.call(
            "POST", f"{ALICE}/script/versions/{first.body['id']}/rollback", user="alice"
        )
        assert back.status == 200 and back.body["live"] is True
        assert site.script_file("alice").read_text() == VOICEMAIL_ON_BUSY
        running = site.host.registry.get("example.com/alice.py")
        assert running is not None and running.source == VOICEMAIL_ON_BUSY
        missing = await site.call("POST", f"{ALICE}/script/versions/99999/rollback", user="alice")
        assert missing.status == 404
        gone = await site.call("DELETE", f"{ALICE}/script", user="alice")
        assert gone.status == 200
        assert not site.script_file("alice").exists()
        assert site.host.registry.get("example.com/alice.py") is None
        assert (await site.call("GET", f"{ALICE}/script", user="alice")).status == 404
        history = await site.call("GET", f"{ALICE}/script/versions", user="alice")
        assert len(history.body) == 2 and not any(v["live"] for v in history.body)
        assert kinds(site, "rollback") and kinds(site, "delete")

    run(tmp_path, scenario)


def test_uploads_larger_than_the_limit_get_413_and_too_many_get_429(tmp_path: Path) -> None:
    async def scenario(site: Site) -> None:
        big = await site.call("PUT", f"{BOB}/script", user="bob", data="#" * 5000)
        assert big.status == 413 and big.body["error"] == "too_large"
        assert "4096" in big.body["message"]
        statuses = []
        for n in range(4):
            reply = await site.call("PUT", f"{ALICE}/script", user="alice", data=f"x = {n}\n")
            statuses.append(reply.status)
        assert statuses == [201, 201, 201, 429]
        assert int(reply.headers["Retry-After"]) >= 1
        assert reply.body["error"] == "rate_limited"
        # Another user has their own budget.
        assert (await site.call("PUT", f"{BOB}/script", user="bob", data="x = 1\n")).status == 201

    run(tmp_path, scenario, max_upload=4096, uploads_per_minute=3)


def test_unknown_routes_and_bad_json_answer_json_errors(tmp_path: Path) -> None:
    async def scenario(site: Site) -> None:
        missing = await site.call("GET", "/api/nothing-here", user="alice")
        assert missing.status == 404 and missing.body["error"] == "not_found"
        wrong = await site.call("PATCH", f"{ALICE}/script", user="alice")
        assert wrong.status == 405 and wrong.body["error"] == "method_not_allowed"
        bad = await site.call(
            "POST",
            f"{ALICE}/simulate",
            user="alice",
            data="{not json",
            headers={"Content-Type": "application/json"},
        )
        assert bad.status == 400 and bad.body["error"] == "bad_json"

    run(tmp_path, scenario)


def test_rfc_7616_challenge_lists_each_algorithm_strongest_first(tmp_path: Path) -> None:
    """RFC 7616 §3.3: one challenge per realm and algorithm, the preferred first."""

    async def scenario(site: Site) -> None:
        reply = await site.call("GET", "/api/me")
        assert reply.status == 401 and reply.body["error"] == "unauthenticated"
        challenges = [parse_auth(v) for v in reply.headers.getall("WWW-Authenticate")]
        assert [c.get("algorithm") for c in challenges] == ["SHA-256", "MD5"]
        assert {c.get("realm") for c in challenges} == {DOMAIN}
        console = await site.call("GET", "/api/me", headers={"X-Callscript-Console": "1"})
        assert console.status == 401 and "WWW-Authenticate" not in console.headers

    run(tmp_path, scenario)


def digest_header(challenge: str, method: str, uri: str, user: str, password: str) -> str:
    offer = parse_auth(challenge)
    realm, nonce = offer.get("realm") or "", offer.get("nonce") or ""
    algorithm = offer.get("algorithm") or "MD5"
    response = digest.request_digest(
        ha1=digest.ha1(user, realm, password, algorithm),
        algorithm=algorithm,
        method=method,
        uri=uri,
        nonce=nonce,
        qop="auth",
        nc="00000001",
        cnonce="0a4f113b",
    )
    return (
        f'Digest username="{user}", realm="{realm}", nonce="{nonce}", uri="{uri}",'
        f' algorithm={algorithm}, qop=auth, nc=00000001, cnonce="0a4f113b",'
        f' response="{response}"'
    )


def test_rfc_7616_digest_with_the_sip_accounts_ha1_signs_in(tmp_path: Path) -> None:
    """RFC 7616 §3.4: the uri parameter is the request target; the digest covers it."""

    async def scenario(site: Site) -> None:
        first = await site.call("GET", "/api/me")
        challenge = first.headers.getall("WWW-Authenticate")[0]
        header = digest_header(challenge, "GET", "/api/me", "alice", "alice-pw")
        me = await site.call("GET", "/api/me", headers={"Authorization": header})
        assert me.status == 200 and me.body["user"] == "alice@example.com"
        assert me.body["auth"] == "digest" and me.body["role"] == "user"
        # The same nonce count again is a replay: stale, challenged again.
        replay = await site.call("GET", "/api/me", headers={"Authorization": header})
        assert replay.status == 401
        other_uri = digest_header(challenge, "GET", "/api/admin/users", "alice", "alice-pw")
        moved = await site.call("GET", "/api/me", headers={"Authorization": other_uri})
        assert moved.status == 400
        wrong = digest_header(challenge, "GET", "/api/me", "alice", "guess")
        refused = await site.call("GET", "/api/me", headers={"Authorization": wrong})
        assert refused.status == 401
        assert any("wrong user or password" in m for m in kinds(site, "access"))

    run(tmp_path, scenario)


def test_basic_and_sign_in_need_tls_unless_loopback_is_allowed(tmp_path: Path) -> None:
    async def scenario(site: Site) -> None:
        basic = await site.call("GET", "/api/me", user="alice")
        assert basic.status == 403 and basic.body["error"] == "tls_required"
        session = await site.call(
            "POST", "/api/session", json={"user": "alice@example.com", "password": "alice-pw"}
        )
        assert session.status == 403

    run(tmp_path, scenario, basic_on_loopback=False)


def test_console_session_and_admin_tokens_are_bearer_tokens_stored_hashed(tmp_path: Path) -> None:
    async def scenario(site: Site) -> None:
        wrong = await site.call(
            "POST", "/api/session", json={"user": "alice@example.com", "password": "nope"}
        )
        assert wrong.status == 401
        session = await site.call(
            "POST", "/api/session", json={"user": "alice@example.com", "password": "alice-pw"}
        )
        assert session.status == 201
        token = session.body["token"]
        me = await site.call("GET", "/api/me", token=token)
        assert me.body["user"] == "alice@example.com" and me.body["auth"] == "session"
        assert (await site.call("DELETE", "/api/session", token=token)).status == 200
        assert (await site.call("GET", "/api/me", token=token)).status == 401
        # Tokens an admin issues; only their hash is in the database.
        issued = await site.call(
            "POST",
            "/api/admin/tokens",
            user="root",
            json={"user": "bob@example.com", "label": "ci"},
        )
        assert issued.status == 201
        secret = issued.body["token"]
        assert (await site.call("GET", "/api/me", token=secret)).body["user"] == "bob@example.com"
        raw = (site.root.parent / "callscript.db").read_bytes()
        assert secret.encode() not in raw
        listed = await site.call("GET", "/api/admin/tokens", user="root")
        assert [t["label"] for t in listed.body] == ["ci"] and "token" not in listed.body[0]
        revoked = await site.call("DELETE", f"/api/admin/tokens/{issued.body['id']}", user="root")
        assert revoked.status == 200
        assert (await site.call("GET", "/api/me", token=secret)).status == 401

    run(tmp_path, scenario)


def test_repeated_failed_sign_ins_from_one_address_get_429(tmp_path: Path) -> None:
    async def scenario(site: Site) -> None:
        body = {"user": "alice@example.com", "password": "wrong"}
        statuses = [(await site.call("POST", "/api/session", json=body)).status for _ in range(4)]
        assert statuses == [401, 401, 401, 429]
        right = {"user": "alice@example.com", "password": "alice-pw"}
        assert (await site.call("POST", "/api/session", json=right)).status == 429

    run(tmp_path, scenario, logins_per_minute=3)
