"""A real management API on 127.0.0.1 (port 0) over a real SQLite file, sandbox pool and
script host, and a small HTTP client that signs in as a given user."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from callscript.engine.scripthost import ScriptHost
from callscript.metrics import Metrics
from callscript.sandbox.policy import Policy, WorkerRules
from callscript.sandbox.pool import SandboxPool
from callscript.store.calllog import SqliteCallLog
from callscript.store.sqlite import SqliteStore
from callscript.store.sqlite_db import Database
from callscript.store.versions import SqliteVersionStore
from callscript.web.app import WebRunner, start_web
from callscript.web.config import WebConfig
from callscript.web.overrides import OverrideStore
from callscript.web.services import WebServices
from callscript.web.tokens import TokenStore

DOMAIN = "example.com"
PASSWORDS = {"alice": "alice-pw", "bob": "bob-pw", "root": "root-pw"}

# Ring the desk phone; voicemail when it is busy.
VOICEMAIL_ON_BUSY = """\
@basic.on('incoming')
def incoming(event):
    event.location = URI('sip:alice@desk.example.com')
    if event.action.proxy(timeout=15) == 'busy':
        event.action.voicemail()
"""

# Line 3 calls a name scripts do not have; line 4 imports a module the policy refuses.
BROKEN = """\
@basic.on('incoming')
def incoming(event):
    open('/etc/passwd')
    import os
"""


@dataclass
class Reply:
    """An HTTP answer: status, JSON (or text) body, headers."""

    status: int
    body: Any
    headers: Any
    text: str


@dataclass
class Site:
    """The running API and what it serves from."""

    runner: WebRunner
    services: WebServices
    host: ScriptHost
    store: SqliteStore
    root: Path
    session: aiohttp.ClientSession
    ssl: ssl.SSLContext | bool = True

    @property
    def url(self) -> str:
        return self.runner.url

    async def call(
        self,
        method: str,
        path: str,
        *,
        user: str | None = None,
        token: str | None = None,
        json: Any = None,
        data: bytes | str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        """One request; ``user`` (alice, bob, root) signs in with Basic (allowed on loopback)."""
        sent = dict(headers or {})
        if user is not None:
            secret = f"{user}@{DOMAIN}:{PASSWORDS[user]}".encode()
            sent["Authorization"] = "Basic " + base64.b64encode(secret).decode()
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        async with self.session.request(
            method, self.url + path, json=json, data=data, headers=sent, ssl=self.ssl
        ) as response:
            text = await response.text()
            try:
                body = await response.json(content_type=None)
            except ValueError:
                body = None
            return Reply(response.status, body, response.headers, text)

    def script_file(self, user: str) -> Path:
        return self.root / DOMAIN / f"{user}.py"


def add_accounts(store: SqliteStore) -> None:
    """alice and bob (users), root (admin), all of example.com."""
    for name, password in PASSWORDS.items():
        store.accounts.add(
            name, DOMAIN, password, role="admin" if name == "root" else "user", now=0.0
        )


def run(tmp: Path, scenario: Callable[[Site], Awaitable[None]], **config: Any) -> None:
    """Run ``scenario`` against a fresh site in ``tmp``."""

    async def go() -> None:
        async with running_site(tmp, **config) as site:
            await scenario(site)

    asyncio.run(go())


@asynccontextmanager
async def running_site(tmp: Path, *, watch: bool = False, **config: Any) -> AsyncIterator[Site]:
    """Start everything in ``tmp``; ``config`` overrides :class:`WebConfig` fields."""
    db_path = tmp / "callscript.db"
    store = SqliteStore(db_path)
    add_accounts(store)
    db = Database(str(db_path))
    root = tmp / "user_scripts"
    root.mkdir(exist_ok=True)
    policy = dataclasses.replace(Policy(), workers=WorkerRules(count=1))
    pool = SandboxPool(policy, served_domains=(DOMAIN,))
    host = ScriptHost(root, policy, pool, store.audit, watch=watch)
    await host.start()
    services = WebServices(
        accounts=store.accounts,
        audit=store.audit,
        versions=SqliteVersionStore(db),
        calls=SqliteCallLog(db),
        tokens=TokenStore(db),
        overrides=OverrideStore(db),
        scripts_dir=root,
        policy=policy,
        metrics=Metrics(),
        domains=(DOMAIN,),
        host=host,
        config=WebConfig(listen="127.0.0.1:0", **config),
    )
    runner = await start_web(services)
    session = aiohttp.ClientSession()
    trust: ssl.SSLContext | bool = True
    if services.config.tls_cert:
        trust = ssl.create_default_context(cafile=services.config.tls_cert)
    try:
        yield Site(runner, services, host, store, root, session, trust)
    finally:
        await session.close()
        await runner.stop()
        await host.stop()
        db.close()
        store.close()
