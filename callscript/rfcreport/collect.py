"""Collecting RFC tags: the comments in ``callscript/`` and the test docstrings in ``tests/``.

A tag is ``RFC <number> §<section>`` with an optional `` step <n>``. In the code
it opens a comment (``# RFC 3261 §17.1.1.2: ...`` or ``# DEVIATION RFC 3261
§16.3: ...``); in the tests it opens the first line of a test's docstring. Tags
anywhere else (inside strings, in the middle of a docstring) do not count.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

TAG = r"RFC \d+ §[\d.]+(?: step \d+)?"
# The tag that opens a comment: ``# RFC ...`` or ``# DEVIATION RFC ...``.
COMMENT_TAG_RE = re.compile(rf"#\s*(DEVIATION\s+)?({TAG})")
DOCSTRING_TAG_RE = re.compile(rf"\s*({TAG})")
_PARTS_RE = re.compile(r"RFC (\d+) §([\d.]+?)\.?(?: step (\d+))?$")


def normal(tag: str) -> str:
    """``RFC 3261 §7.3.1.`` and ``RFC 3261 §7.3.1`` are the same tag."""
    head, step, rest = tag.partition(" step ")
    return head.rstrip(".") + step + rest


@dataclass(frozen=True, slots=True, order=True)
class Tag:
    """A normalised tag: RFC number, section and optional step."""

    rfc: int
    section: str
    step: int | None = None

    @classmethod
    def parse(cls, text: str) -> Tag:
        """Parse ``RFC 3261 §16.6 step 8`` (as :data:`TAG` matches it).

        Raises:
            ValueError: ``text`` is not a tag.
        """
        match = _PARTS_RE.match(normal(text))
        if match is None:
            raise ValueError(f"not an RFC tag: {text!r}")
        step = match.group(3)
        return cls(int(match.group(1)), match.group(2), int(step) if step else None)

    @property
    def key(self) -> tuple[int, tuple[int, ...], int]:
        """Sort key: RFC, then section numbers numerically, then step."""
        numbers = tuple(int(part) for part in self.section.split(".") if part)
        return self.rfc, numbers, self.step or 0

    def __str__(self) -> str:
        text = f"RFC {self.rfc} §{self.section}"
        return f"{text} step {self.step}" if self.step is not None else text


@dataclass(frozen=True, slots=True)
class CodePlace:
    """Where the code claims a tag: file (POSIX path from the root), line, enclosing def."""

    path: str
    line: int
    scope: str
    deviation: bool = False


@dataclass(frozen=True, slots=True)
class TestPlace:
    """A test whose docstring opens with a tag: file (POSIX path) and qualified name."""

    path: str
    name: str

    @property
    def node_id(self) -> str:
        """The pytest node id, ``tests/x/test_y.py::test_z``."""
        return f"{self.path}::{self.name.replace('.', '::')}"


# -- sources ------------------------------------------------------------------------


def comment_tags(source: str) -> list[tuple[int, str, bool]]:
    """``(line, tag, deviation)`` for every comment of ``source`` that opens with a tag."""
    out: list[tuple[int, str, bool]] = []
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            match = COMMENT_TAG_RE.match(token.string)
            if match is not None:
                out.append((token.start[0], normal(match.group(2)), match.group(1) is not None))
    return out


def code_tags(source: str) -> list[tuple[int, str]]:
    """``(line, tag)`` for every comment of ``source`` that opens with a tag."""
    return [(line, tag) for line, tag, _ in comment_tags(source)]


_Scope = ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef


def _scopes(tree: ast.AST) -> Iterator[tuple[str, _Scope]]:
    """Every function and class of ``tree`` with its qualified name."""
    stack: list[tuple[str, ast.AST]] = [("", tree)]
    while stack:
        prefix, node = stack.pop()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, _Scope):
                name = f"{prefix}{child.name}"
                yield name, child
                stack.append((f"{name}.", child))
            else:
                stack.append((prefix, child))


def docstring_tags_by_name(source: str) -> list[tuple[str, str]]:
    """``(qualified name, tag)`` for each function or class whose docstring opens with a tag."""
    out: list[tuple[str, str]] = []
    for name, node in _scopes(ast.parse(source)):
        doc = ast.get_docstring(node)
        if doc:
            match = DOCSTRING_TAG_RE.match(doc.splitlines()[0])
            if match is not None:
                out.append((name, normal(match.group(1))))
    return sorted(out)


def docstring_tags(source: str) -> set[str]:
    """Tags that open the docstring of a function or class in a test module."""
    return {tag for _, tag in docstring_tags_by_name(source)}


def scope_at(tree: ast.AST, line: int) -> str:
    """The qualified name of the innermost function or class holding ``line`` ('' for none)."""
    best = ""
    best_start = 0
    for name, node in _scopes(tree):
        start = node.lineno
        end = node.end_lineno or start
        if start <= line <= end and start >= best_start:
            best, best_start = name, start
    return best


# -- trees --------------------------------------------------------------------------


def _files(root: Path, folder: str) -> list[Path]:
    return sorted((root / folder).rglob("*.py"))


def claims(root: Path) -> dict[str, list[CodePlace]]:
    """Tag -> the places in ``root/callscript`` that claim it, in file and line order."""
    places: dict[str, list[CodePlace]] = {}
    for path in _files(root, "callscript"):
        source = path.read_text(encoding="utf-8")
        found = comment_tags(source)
        if not found:
            continue
        tree = ast.parse(source)
        relative = path.relative_to(root).as_posix()
        for line, tag, deviation in found:
            place = CodePlace(relative, line, scope_at(tree, line), deviation)
            places.setdefault(tag, []).append(place)
    return places


def proofs(root: Path) -> dict[str, list[TestPlace]]:
    """Tag -> the tests in ``root/tests`` whose docstring opens with it."""
    places: dict[str, list[TestPlace]] = {}
    for path in _files(root, "tests"):
        relative = path.relative_to(root).as_posix()
        for name, tag in docstring_tags_by_name(path.read_text(encoding="utf-8")):
            places.setdefault(tag, []).append(TestPlace(relative, name))
    return places


def collect_code_tags(root: Path) -> dict[str, list[str]]:
    """Tag -> ``file:line`` places in ``root/callscript`` (paths as the OS writes them)."""
    return {
        tag: [f"{Path(place.path)}:{place.line}" for place in places]
        for tag, places in claims(root).items()
    }


def collect_test_tags(root: Path) -> set[str]:
    """Every tag that opens a test docstring in ``root/tests``."""
    return set(proofs(root))
