"""The SIP core (callscript/sip/) does no I/O and depends on nothing outside itself.

Every ``import`` and ``from ... import`` in callscript/sip/**.py is read with
``ast`` (including imports inside functions and ``TYPE_CHECKING`` blocks), so a
stray socket, clock, thread, database or random source fails here rather than
in a flaky test. Time comes in as ``now: float``; randomness from an injected
``IdSource``.

One exception: callscript/sip/ids.py may import ``secrets``, because its
``RandomIds`` is the production ``IdSource``; every other core module receives
an ``IdSource`` and never draws randomness itself.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SIP = ROOT / "callscript" / "sip"

# Modules that reach sockets, clocks, threads, processes, files or randomness. ``os``
# is forbidden whole: even os.path reads the file system and the environment.
FORBIDDEN_STDLIB = frozenset(
    {
        "asyncio", "socket", "ssl", "selectors", "threading", "time", "sqlite3",
        "subprocess", "os", "random", "secrets", "multiprocessing", "concurrent",
    }
)  # fmt: skip
# The outer layers: imports point inward only, so the core imports none of them.
FORBIDDEN_CALLSCRIPT = ("transport", "store", "sandbox", "engine", "commands", "cli")
# callscript/sip/ids.py holds RandomIds, the production IdSource, so it alone may use secrets.
ALLOWED = {Path("callscript/sip/ids.py"): frozenset({"secrets"})}


def module_name(path: Path, root: Path) -> str:
    """``callscript/sip/transaction/layer.py`` -> ``callscript.sip.transaction.layer``."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path: Path, root: Path) -> list[tuple[int, list[str]]]:
    """``(line, absolute module names)`` for every import statement in the file at ``path``.

    ``from a import b`` names both ``a`` and ``a.b``: ``b`` may be a subpackage
    (``from callscript import transport``).
    """
    package = module_name(path, root)
    if path.name != "__init__.py":
        package = package.rpartition(".")[0]
    out: list[tuple[int, list[str]]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, [alias.name]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                anchor = parts[: len(parts) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            out.append((node.lineno, [base, *(f"{base}.{alias.name}" for alias in node.names)]))
    return out


def forbidden(name: str, allowed: frozenset[str]) -> bool:
    """True when importing ``name`` does I/O or reaches an outer layer."""
    parts = name.split(".")
    if parts[0] in FORBIDDEN_STDLIB:
        return parts[0] not in allowed
    return len(parts) > 1 and parts[0] == "callscript" and parts[1] in FORBIDDEN_CALLSCRIPT


def violations(root: Path) -> list[str]:
    """``file:line: module`` for each forbidden import under ``root/callscript/sip``."""
    found: list[str] = []
    for path in sorted((root / "callscript" / "sip").rglob("*.py")):
        relative = path.relative_to(root)
        allowed = ALLOWED.get(relative, frozenset())
        for line, names in sorted(imported_modules(path, root)):
            bad = [name for name in names if forbidden(name, allowed)]
            if bad:
                found.append(f"{relative}:{line}: {bad[-1]}")
    return found


def test_sip_core_imports_no_io_module_and_no_outer_layer() -> None:
    """callscript/sip/ imports no socket/clock/thread/db/random module and no outer package."""
    assert SIP.is_dir()
    bad = violations(ROOT)
    assert not bad, "the sans-I/O core imports I/O or outer layers:\n" + "\n".join(bad)


def test_checker_catches_every_import_form(tmp_path: Path) -> None:
    """Plain, dotted, from-, relative, nested and TYPE_CHECKING imports are all seen."""
    core = tmp_path / "callscript" / "sip"
    (core / "transaction").mkdir(parents=True)
    (tmp_path / "callscript" / "__init__.py").write_text("")
    (core / "__init__.py").write_text("")
    (core / "ids.py").write_text("import secrets\nimport random\n")
    (core / "bad.py").write_text(
        "import os.path\n"
        "from time import monotonic\n"
        "from callscript import transport\n"
        "from callscript.store.sqlite import SqliteStore\n"
        "import re\n"
        "def f():\n"
        "    import socket\n"
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from callscript.engine import app\n"
    )
    (core / "transaction" / "layer.py").write_text(
        "from ...commands import parse\nfrom .. import message\nfrom ..abnf import WSP\n"
    )
    bad = Path("callscript/sip/bad.py")
    layer = Path("callscript/sip/transaction/layer.py")
    assert violations(tmp_path) == [
        f"{bad}:1: os.path",
        f"{bad}:2: time.monotonic",
        f"{bad}:3: callscript.transport",
        f"{bad}:4: callscript.store.sqlite.SqliteStore",
        f"{bad}:7: socket",
        f"{bad}:10: callscript.engine.app",
        f"{Path('callscript/sip/ids.py')}:2: random",
        f"{layer}:1: callscript.commands.parse",
    ]
