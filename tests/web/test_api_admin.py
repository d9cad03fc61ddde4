"""Simulation, call log, admin endpoints, OpenAPI and metrics over real HTTP."""

from __future__ import annotations

import re
from pathlib import Path

from aiohttp import web

from callscript.store.calllog import CallRecord
from callscript.web.app import all_routes, build_app
from tests.web.harness import BROKEN, DOMAIN, VOICEMAIL_ON_BUSY, Site, run

ALICE = f"/api/users/alice@{DOMAIN}"
BOB = f"/api/users/bob@{DOMAIN}"


def test_simulating_a_busy_callee_runs_the_sandbox_and_traces_voicemail(tmp_path: Path) -> None:
    async def scenario(site: Site) -> None:
        await site.call("PUT", f"{ALICE}/script", user="alice", data=VOICEMAIL_ON_BUSY)
        reply = await site.call(
            "POST",
            f"{ALICE}/simulate",
            user="alice",
            json={
                "from": "sip:carol@example.net",
                "outcomes": ["busy"],
                "time": "2030-01-02T09:30:00",
            },
        )
        assert reply.status == 200, reply.text
        assert reply.body["status"] == "finished"
        kinds = [e.get("kind") for e in reply.body["entries"]]
        assert kinds[:2] == ["proxy", "voicemail"]
        assert reply.body["entries"][0]["outcome"] == "busy"
        assert reply.body["entries"][-1]["disposition"]["kind"] == "voicemail"
        assert reply.body["text"][-1] == "=> voicemail"
        # A chosen version, and a draft that does not compile.
        versions = await site.call("GET", f"{ALICE}/script/versions", user="alice")
        answered = await site.call(
            "POST",
            f"{ALICE}/simulate",
            user="alice",
            json={"from": "sip:carol@example.net", "version": versions.body[0]["id"]},
        )
        assert answered.body["entries"][0]["outcome"] == "success"
        draft = await site.call(
            "POST",
            f"{ALICE}/simulate",
            user="alice",
            json={"from": "sip:carol@example.net", "version": "draft", "source": BROKEN},
        )
        assert draft.body["status"] == "compile_error"
        assert draft.body["problems"][0].startswith("3:5:")
        # Simulating as someone else's script is refused.
        spoof = await site.call(
            "POST",
            f"{ALICE}/simulate",
            user="alice",
            json={"from": "sip:carol@example.net", "to": "sip:bob@example.com"},
        )
        assert spoof.status == 422
        other = await site.call("POST", f"{BOB}/simulate", user="alice", json={})
        assert other.status == 403

    run(tmp_path, scenario)


def test_call_log_shows_each_user_only_their_own_calls(tmp_path: Path) -> None:
    async def scenario(site: Site) -> None:
        for owner, n in (("sip:alice@example.com", 1), ("sip:bob@example.com", 2)):
            site.services.calls.record(
                CallRecord(
                    at=1000.0 + n,
                    owner=owner,
                    call_id=f"call-{n}",
                    method="INVITE",
                    direction="incoming",
                    caller="sip:carol@example.net",
                    callee=owner,
                    script="example.com/x.py",
                    version="0123456789ab",
                    actions=({"kind": "proxy", "outcome": "busy"}, {"kind": "voicemail"}),
                    status=200,
                    violation="timeout: too slow" if n == 2 else None,
                )
            )
        mine = await site.call("GET", f"{ALICE}/calls", user="alice")
        assert [c["call_id"] for c in mine.body] == ["call-1"]
        assert mine.body[0]["actions"][0] == {"kind": "proxy", "outcome": "busy"}
        assert (await site.call("GET", f"{BOB}/calls", user="alice")).status == 403
        theirs = await site.call("GET", f"{BOB}/calls", user="bob")
        assert theirs.body[0]["violation"] == "timeout: too slow"

    run(tmp_path, scenario)


def test_admin_endpoints_are_403_for_subscribers_and_audited(tmp_path: Path) -> None:
    async def scenario(site: Site) -> None:
        for method, path in [
            ("GET", "/api/admin/users"),
            ("GET", "/api/admin/policy"),
            ("PUT", "/api/admin/policy/domains/example.com"),
            ("GET", "/api/admin/scripts"),
            ("POST", f"/api/admin/scripts/alice@{DOMAIN}/quarantine"),
            ("GET", "/api/admin/audit"),
            ("POST", "/api/admin/tokens"),
        ]:
            reply = await site.call(method, path, user="alice", json={})
            assert reply.status == 403, (method, path)
        denied = site.store.audit.entries(kind="access")
        assert len(denied) == 7
        assert all("admin role required" in e.message for e in denied)

    run(tmp_path, scenario)


def test_admin_sees_users_scripts_policy_and_filters_the_audit_log(tmp_path: Path) -> None:
    async def scenario(site: Site) -> None:
        await site.call("PUT", f"{ALICE}/script", user="alice", data=VOICEMAIL_ON_BUSY)
        await site.call("PUT", f"{ALICE}/script", user="alice", data=BROKEN)
        users = await site.call("GET", "/api/admin/users", user="root")
        by_user = {u["user"]: u for u in users.body}
        assert by_user["root@example.com"]["role"] == "admin"
        assert by_user["alice@example.com"]["script"]["live"]["author"] == "alice@example.com"
        scripts = await site.call("GET", "/api/admin/scripts", user="root")
        assert [s["script"] for s in scripts.body] == ["example.com/alice.py"]
        assert scripts.body[0]["quarantined"] is False
        policy = await site.call("GET", "/api/admin/policy", user="root")
        assert policy.body["effective"]["limits"]["wall_per_event"] == 2.0
        audit = await site.call(
            "GET", "/api/admin/audit?owner=sip:alice@example.com&kind=reject", user="root"
        )
        assert [e["kind"] for e in audit.body] == ["reject:upload"]
        assert audit.body[0]["line"] == 3
        everything = await site.call("GET", "/api/admin/audit?limit=2", user="root")
        assert len(everything.body) == 2

    run(tmp_path, scenario)


def test_domain_policy_override_is_checked_applied_to_uploads_and_removable(tmp_path: Path) -> None:
    async def scenario(site: Site) -> None:
        path = f"/api/admin/policy/domains/{DOMAIN}"
        bad = await site.call("PUT", path, user="root", json={"script": {"max_size": "big"}})
        assert bad.status == 422 and "script.max_size" in bad.body["message"]
        unknown = await site.call("PUT", path, user="root", json={"nonsense": {}})
        assert unknown.status == 422
        small = await site.call("PUT", path, user="root", json={"script": {"max_size": 100}})
        assert small.status == 200
        assert small.body["effective"]["script"]["max_size"] == 100
        assert site.host.policy.for_domain(DOMAIN).script.max_size == 100
        refused = await site.call("PUT", f"{ALICE}/script", user="alice", data=VOICEMAIL_ON_BUSY)
        assert refused.status == 422
        assert refused.body["problems"][0].startswith("1:1:")
        removed = await site.call("DELETE", path, user="root")
        assert removed.status == 200
        assert site.host.policy.for_domain(DOMAIN).script.max_size == 65536
        accepted = await site.call("PUT", f"{ALICE}/script", user="alice", data=VOICEMAIL_ON_BUSY)
        assert accepted.status == 201
        assert (await site.call("DELETE", path, user="root")).status == 404

    run(tmp_path, scenario)


def test_admin_quarantines_and_releases_a_running_script(tmp_path: Path) -> None:
    async def scenario(site: Site) -> None:
        await site.call("PUT", f"{ALICE}/script", user="alice", data=VOICEMAIL_ON_BUSY)
        path = f"/api/admin/scripts/alice@{DOMAIN}/quarantine"
        assert (await site.call("POST", path, user="root", json={"duration": -1})).status == 422
        held = await site.call("POST", path, user="root", json={"duration": 600})
        assert held.status == 200
        scripts = await site.call("GET", "/api/admin/scripts", user="root")
        assert scripts.body[0]["quarantined"] is True
        # Its calls get the fallback without running: the simulation shows it too.
        sim = await site.call(
            "POST", f"{ALICE}/simulate", user="alice", json={"from": "sip:carol@example.net"}
        )
        assert sim.body["status"] == "stopped"
        assert sim.body["entries"][-1]["failure"]["kind"] == "quarantined"
        released = await site.call("DELETE", path, user="root")
        assert released.status == 200
        mine = await site.call("GET", f"{ALICE}/script", user="alice")
        assert mine.body["quarantined"] is False
        kinds = [e.kind for e in site.store.audit.entries(owner="sip:alice@example.com")]
        assert "quarantine:admin" in kinds and "release" in kinds
        no_script = await site.call(
            "POST", f"/api/admin/scripts/bob@{DOMAIN}/quarantine", user="root"
        )
        assert no_script.status == 404

    run(tmp_path, scenario)


def test_openapi_document_is_json_listing_every_route(tmp_path: Path) -> None:
    async def scenario(site: Site) -> None:
        reply = await site.call("GET", "/openapi.json")
        assert reply.status == 200 and reply.headers["Content-Type"].startswith("application/json")
        document = reply.body
        assert document["openapi"].startswith("3.")
        listed = {(m.upper(), p) for p, ops in document["paths"].items() for m in ops}
        app = build_app(site.services)
        served = {
            (r.method, r.resource.canonical)
            for r in app.router.routes()
            if r.method != "HEAD" and r.resource is not None and isinstance(r.resource, web.Resource)
            and not r.resource.canonical.startswith("/static")
        }  # fmt: skip
        assert served == listed
        assert len(listed) == len(all_routes())
        put = document["paths"]["/api/users/{user}/script"]["put"]
        assert {"201", "401", "403", "413", "422", "429"} <= set(put["responses"])
        assert document["paths"]["/api/admin/audit"]["get"]["x-access"] == "admin"

    run(tmp_path, scenario)


_SAMPLE = re.compile(r'^[a-z_:]+(\{([a-z_]+="[^"]*",?)*\})? -?[0-9.e+Inf]+$')


def test_metrics_are_prometheus_text_with_requests_uploads_and_engine_counters(
    tmp_path: Path,
) -> None:
    async def scenario(site: Site) -> None:
        await site.call("PUT", f"{ALICE}/script", user="alice", data=VOICEMAIL_ON_BUSY)
        await site.call("PUT", f"{ALICE}/script", user="alice", data=BROKEN)
        site.services.metrics.observe("callscript_proxy_decision_seconds", 0.003, kind="invite")
        reply = await site.call("GET", "/metrics")
        assert reply.status == 200
        assert reply.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        lines = reply.text.splitlines()
        for line in lines:
            assert (
                line.startswith("# HELP ") or line.startswith("# TYPE ") or _SAMPLE.match(line)
            ), line
        text = reply.text
        assert 'callscript_script_uploads_total{result="accepted"} 1' in text
        assert 'callscript_script_uploads_total{result="rejected"} 1' in text
        assert (
            'callscript_http_requests_total{method="PUT",route="/api/users/{user}/script",class="4xx"} 1'
            in text
        )
        assert "callscript_script_reloads_total 1" in text
        assert "callscript_scripts_live 1" in text
        assert "callscript_sandbox_worker_restarts_total 0" in text
        assert 'callscript_proxy_decision_seconds_bucket{kind="invite",le="0.005"} 1' in text
        assert 'callscript_proxy_decision_seconds_count{kind="invite"} 1' in text
        for name in (
            "callscript_sip_requests_total",
            "callscript_sip_responses_total",
            "callscript_calls_total",
            "callscript_script_invocations_total",
            "callscript_script_violations_total",
            "callscript_script_quarantines_total",
        ):
            assert f"# TYPE {name} counter" in text

    run(tmp_path, scenario)


def test_metrics_can_require_an_admin(tmp_path: Path) -> None:
    async def scenario(site: Site) -> None:
        assert (await site.call("GET", "/metrics")).status == 401
        assert (await site.call("GET", "/metrics", user="alice")).status == 403
        assert (await site.call("GET", "/metrics", user="root")).status == 200

    run(tmp_path, scenario, metrics_public=False)
