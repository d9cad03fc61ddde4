"""Uploads through the API reach a running server's hot reload.

The file is written atomically into the scripts directory, so a script host
that only watches the directory (as another ``callscript serve`` on the same
directory does) picks the new version up, and never half a file.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import re
import urllib.request
from pathlib import Path

import pytest

from callscript.engine.config import ServerConfig
from callscript.engine.scripthost import ScriptHost
from callscript.sandbox.policy import Policy, WorkerRules
from callscript.sandbox.pool import SandboxPool
from callscript.store.audit import MemoryAuditLog
from tests.web.harness import BROKEN, DOMAIN, VOICEMAIL_ON_BUSY, Site, run

ALICE = f"/api/users/alice@{DOMAIN}"
NAME = f"{DOMAIN}/alice.py"


async def wait_until_live(host: ScriptHost, source: str) -> None:
    """Poll the watching host's registry (pytest-timeout guards against a hang)."""
    for _ in range(2000):
        live = host.registry.get(NAME)
        if live is not None and live.source == source:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the watching host never loaded the upload")


def test_upload_reaches_a_script_host_that_only_watches_the_directory(tmp_path: Path) -> None:
    async def scenario(site: Site) -> None:
        policy = dataclasses.replace(Policy(), workers=WorkerRules(count=1))
        watcher = ScriptHost(
            site.root, policy, SandboxPool(policy, served_domains=(DOMAIN,)), MemoryAuditLog()
        )
        await watcher.start()
        try:
            first = await site.call("PUT", f"{ALICE}/script", user="alice", data=VOICEMAIL_ON_BUSY)
            assert first.status == 201
            await wait_until_live(watcher, VOICEMAIL_ON_BUSY)
            changed = VOICEMAIL_ON_BUSY.replace("15", "25")
            await site.call("PUT", f"{ALICE}/script", user="alice", data=changed)
            await wait_until_live(watcher, changed)
            # A refused upload never reaches the directory: the watcher keeps the live one.
            await site.call("PUT", f"{ALICE}/script", user="alice", data=BROKEN)
            back = await site.call(
                "POST", f"{ALICE}/script/versions/{first.body['id']}/rollback", user="alice"
            )
            assert back.status == 200
            await wait_until_live(watcher, VOICEMAIL_ON_BUSY)
            assert watcher.registry.rejected.get(NAME) is None
            # No temporary file is left behind.
            assert sorted(p.name for p in (site.root / DOMAIN).iterdir()) == ["alice.py"]
        finally:
            await watcher.stop()

    run(tmp_path, scenario)


def _serve_has_web() -> bool:
    return "web" in {f.name for f in dataclasses.fields(ServerConfig)}


def test_upload_through_a_running_callscript_serve_goes_live(tmp_path: Path) -> None:
    if not _serve_has_web():
        pytest.skip("callscript serve does not start the management API yet (engine wiring)")
    from tests.interop.harness import add_user, start_server

    server = start_server(tmp_path, tail='[web]\nlisten = "127.0.0.1:0"\n')
    try:
        add_user(server.db, "alice@example.com", "alice-pw")
        match = re.search(r"management API and console on (http://\S+)", server.log_text())
        assert match, server.log_text()
        secret = base64.b64encode(b"alice@example.com:alice-pw").decode()
        request = urllib.request.Request(
            f"{match[1]}{ALICE}/script",
            data=VOICEMAIL_ON_BUSY.encode(),
            method="PUT",
            headers={"Authorization": f"Basic {secret}", "Content-Type": "text/x-python"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            version = json.loads(response.read())
        assert response.status == 201
        assert server.wait_for(f"script {NAME} version {version['short']} is live")
        assert (tmp_path / "user_scripts" / NAME).read_text() == VOICEMAIL_ON_BUSY
    finally:
        server.stop()
