"""Every RFC rule the code claims to implement is proven by at least one test.

A tag is ``RFC <number> §<section>`` with an optional `` step <n>``. In
``callscript/`` it opens a comment (``# RFC 3261 §17.1.1.2: ...`` or
``# DEVIATION RFC 3261 §16.3: ...``); in ``tests/`` it opens the first line of
a test's docstring. A tag that only the code has fails the build.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TAG = r"RFC \d+ §[\d.]+(?: step \d+)?"
# The tag that opens a comment: ``# RFC ...`` or ``# DEVIATION RFC ...``.
COMMENT_TAG_RE = re.compile(rf"#\s*(?:DEVIATION\s+)?({TAG})")
DOCSTRING_TAG_RE = re.compile(rf"\s*({TAG})")


def normal(tag: str) -> str:
    """``RFC 3261 §7.3.1.`` and ``RFC 3261 §7.3.1`` are the same tag."""
    head, step, rest = tag.partition(" step ")
    return head.rstrip(".") + step + rest


def code_tags(source: str) -> list[tuple[int, str]]:
    """``(line, tag)`` for every comment of ``source`` that opens with a tag."""
    out: list[tuple[int, str]] = []
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            match = COMMENT_TAG_RE.match(token.string)
            if match is not None:
                out.append((token.start[0], normal(match.group(1))))
    return out


def docstring_tags(source: str) -> set[str]:
    """Tags that open the docstring of a function or class in a test module."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            doc = ast.get_docstring(node)
            if doc:
                match = DOCSTRING_TAG_RE.match(doc.splitlines()[0])
                if match is not None:
                    out.add(normal(match.group(1)))
    return out


def collect_code_tags(root: Path) -> dict[str, list[str]]:
    """Tag -> ``file:line`` places in ``root/callscript``."""
    places: dict[str, list[str]] = {}
    for path in sorted((root / "callscript").rglob("*.py")):
        for line, tag in code_tags(path.read_text(encoding="utf-8")):
            places.setdefault(tag, []).append(f"{path.relative_to(root)}:{line}")
    return places


def collect_test_tags(root: Path) -> set[str]:
    """Every tag that opens a test docstring in ``root/tests``."""
    tags: set[str] = set()
    for path in sorted((root / "tests").rglob("*.py")):
        tags |= docstring_tags(path.read_text(encoding="utf-8"))
    return tags


def test_every_rfc_tag_in_the_code_opens_a_test_docstring() -> None:
    """Each ``# RFC n §x`` / ``# DEVIATION RFC n §x`` in callscript/ is pinned by a test."""
    code = collect_code_tags(ROOT)
    tested = collect_test_tags(ROOT)
    missing = sorted(tag for tag in code if tag not in tested)
    report = "\n".join(f"  {tag}  ({', '.join(code[tag])})" for tag in missing)
    assert not missing, (
        f"{len(missing)} RFC tags have no test whose docstring opens with them:\n{report}"
    )


def test_collector_reads_comments_and_docstrings_only(tmp_path: Path) -> None:
    """Tags in strings or mid-docstring do not count; steps and DEVIATION are kept apart."""
    (tmp_path / "callscript").mkdir()
    (tmp_path / "tests").mkdir()
    (tmp_path / "callscript" / "m.py").write_text(
        "# RFC 3261 §16.6 step 8: push our Via.\n"
        "x = '# RFC 3261 §99.9: inside a string'\n"
        "y = 1  # DEVIATION RFC 3261 §16.3: why.\n"
        "# see RFC 3261 §1.1 in passing: not a tag\n"
        "# RFC 3261 §7.3.1. trailing dot\n",
        encoding="utf-8",
    )
    (tmp_path / "tests" / "test_m.py").write_text(
        "def test_a():\n"
        '    """RFC 3261 §16.6 step 8: the proxy pushes its Via."""\n'
        "def test_b():\n"
        '    """Something else.\n\n    RFC 3261 §16.3: only in the body."""\n',
        encoding="utf-8",
    )
    code = collect_code_tags(tmp_path)
    assert sorted(code) == ["RFC 3261 §16.3", "RFC 3261 §16.6 step 8", "RFC 3261 §7.3.1"]
    assert code["RFC 3261 §16.3"] == [f"{Path('callscript', 'm.py')}:3"]
    assert collect_test_tags(tmp_path) == {"RFC 3261 §16.6 step 8"}
