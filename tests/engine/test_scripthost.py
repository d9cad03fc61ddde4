"""The script host keeps the registry in step with the scripts directory (real watchdog)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from callscript.engine.scripthost import ScriptHost
from callscript.sandbox.policy import Policy
from callscript.sandbox.pool import SandboxPool
from callscript.sip.uri import URI
from callscript.store.audit import MemoryAuditLog

V1 = "def h(event):\n    event.action.reject(code=603)\nbasic.addEventListener('incoming', h)\n"
V2 = "def h(event):\n    event.action.reject(code=486)\nbasic.addEventListener('incoming', h)\n"
BOB = URI.parse("sip:bob@example.com")


async def _until(condition, timeout: float = 10.0) -> bool:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


def test_create_modify_atomic_save_rename_and_delete_are_seen(tmp_path: Path) -> None:
    """Every way an editor or an upload changes a file reaches the registry."""

    async def scenario() -> list[str]:
        audit = MemoryAuditLog()
        host = ScriptHost(tmp_path, Policy(), SandboxPool(Policy()), audit)
        await host.start()
        folder = tmp_path / "example.com"
        try:
            folder.mkdir()
            (folder / "bob.py").write_text(V1)  # create
            assert await _until(
                lambda: host.lookup(BOB) is not None and host.lookup(BOB).source == V1
            )
            (folder / "bob.py").write_text(V2)  # modify in place
            assert await _until(lambda: host.lookup(BOB).source == V2)  # type: ignore[union-attr]
            (folder / ".bob.swp").write_text(V1)  # atomic save: write aside, rename over
            (folder / ".bob.swp").replace(folder / "bob.py")
            assert await _until(lambda: host.lookup(BOB).source == V1)  # type: ignore[union-attr]
            (folder / "bob.py").replace(folder / "carol.py")  # rename: bob gone, carol there
            carol = URI.parse("sip:carol@example.com")
            assert await _until(lambda: host.lookup(BOB) is None and host.lookup(carol) is not None)
            (folder / "carol.py").unlink()  # delete
            assert await _until(lambda: host.lookup(carol) is None)
            (folder / "bob.py").write_text("def broken(:\n")  # a broken version never goes live
            assert await _until(lambda: any(e.kind == "reject" for e in audit.entries()))
            assert host.lookup(BOB) is None
        finally:
            await host.stop()
        return [e.kind for e in audit.entries()]

    kinds = asyncio.run(scenario())
    assert {"load", "delete", "reject"} <= set(kinds)
