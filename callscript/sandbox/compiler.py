"""Compile a user's script: static checks, then RestrictedPython, then bytecode.

Every problem is reported as ``FILE:LINE:COL: message`` (1-based line and
column, the column counted in characters). A source that cannot be parsed at
all (a syntax error, a NUL byte, an expression nested too deeply for the parser,
which raises RecursionError or MemoryError) is one problem at the best position
known. The checks run before RestrictedPython so that each refusal has a precise
position; RestrictedPython's own transformer runs after them as a second line of
defence and rewrites attribute, item and iteration access into guarded calls.

The checks (see sandbox/README.md for the reasons):
    size and nesting limits from the policy;
    names and attributes starting with ``_``, frame/code/generator internals;
    names that are neither bound by the script nor given to it (``open``,
    ``type``, ``vars``, ``__import__``, ``print``...);
    imports of modules the policy does not allow;
    bare ``except:``, ``except BaseException``, ``try/except*``;
    class keywords (``metaclass=``), async code, ``nonlocal``, ``match``;
    ``'...'.format`` / ``format_map``; event names and literal codes and timeouts
    of the API calls.
"""

from __future__ import annotations

import ast
import hashlib
import io
import re
import tokenize
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from types import CodeType

from RestrictedPython.transformer import (
    ALLOWED_FUNC_NAMES,
    INSPECT_ATTRIBUTES,
    RestrictingNodeTransformer,
)

from callscript.errors import ScriptError
from callscript.sandbox.policy import DomainPolicy

EVENTS = ("incoming", "outgoing")
# Attributes refused on any object: frame walks, code objects, and str.format's
# attribute lookups ('{0.__class__}'.format(x)); the run-time guard refuses them too.
FORBIDDEN_ATTRIBUTES = INSPECT_ATTRIBUTES | {"format", "format_map", "mro"}
_NOT_AVAILABLE = {
    "print": "print() is not available in scripts; use log()",
    "printed": "'printed' is not available in scripts; use log()",
    "exec": "exec() is not available in scripts",
    "eval": "eval() is not available in scripts",
}
_LINE_SPLIT_RE = re.compile(r"\r\n|\r|\n")
_RP_LINE_RE = re.compile(r"Line (\d+):\s*(.*)", re.S)


@dataclass(frozen=True, slots=True)
class Problem:
    """One problem found in a script, at a 1-based line and column."""

    file: str
    line: int
    col: int
    message: str
    severity: str = "error"

    def __str__(self) -> str:
        prefix = "warning: " if self.severity == "warning" else ""
        return f"{self.file}:{self.line}:{self.col}: {prefix}{self.message}"


class ScriptCompileError(ScriptError):
    """The script did not compile; ``problems`` lists each ``file:line:col: message``."""

    def __init__(self, problems: tuple[Problem, ...]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems
        first = problems[0]
        self.file, self.line, self.col = first.file, first.line, first.col


@dataclass(frozen=True, slots=True)
class CompiledScript:
    """A script that passed every check, with its restricted bytecode."""

    name: str
    source: str
    digest: str
    code: CodeType
    warnings: tuple[Problem, ...] = ()


def source_digest(source: str) -> str:
    """The content hash a compiled script is cached under."""
    return hashlib.sha256(source.encode("utf-8", "surrogatepass")).hexdigest()


def compile_script(source: str, name: str, policy: DomainPolicy) -> CompiledScript:
    """Check and compile ``source``, reported under ``name`` (``example.com/alice.py``).

    Raises:
        ScriptCompileError: one or more problems; nothing of the script ran.
    """
    problems, code = _compile(source, name, policy)
    errors = tuple(p for p in problems if p.severity == "error")
    if errors or code is None:
        raise ScriptCompileError(errors or (Problem(name, 1, 1, "the script did not compile"),))
    found = tuple(p for p in problems if p.severity != "error")
    return CompiledScript(name, source, source_digest(source), code, found)


def check_script(source: str, name: str, policy: DomainPolicy) -> tuple[Problem, ...]:
    """Every problem (errors and warnings) in ``source``, without raising."""
    return tuple(_compile(source, name, policy)[0])


def _compile(source: str, name: str, policy: DomainPolicy) -> tuple[list[Problem], CodeType | None]:
    lines = _LINE_SPLIT_RE.split(source)
    size = len(source.encode("utf-8", "surrogatepass"))
    if size > policy.script.max_size:
        message = f"the script is {size} bytes; the policy allows {policy.script.max_size}"
        return [Problem(name, 1, 1, message)], None
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            tree = ast.parse(source, name)
    except SyntaxError as exc:
        if "\x00" in source and "null" in exc.msg:
            line, col = _position_of(source, source.find("\x00"))
            return [Problem(name, line, col, "the script contains a NUL character")], None
        line, col = exc.lineno or 1, exc.offset or 1
        return [Problem(name, line, max(col, 1), f"syntax error: {exc.msg}")], None
    except ValueError:
        line, col = _position_of(source, source.find("\x00"))
        return [Problem(name, line, col, "the script contains a NUL character")], None
    except (RecursionError, MemoryError):
        line, col = _deepest(source, policy.script.max_nesting)
        return [Problem(name, line, col, "expression nested too deeply to compile")], None
    problems = [Problem(name, w.lineno or 1, 1, f"{w.message}", "warning") for w in caught]
    deep = _too_deep(tree, policy.script.max_nesting)
    if deep is not None:
        line, col = _node_position(deep, lines)
        message = f"nested more than {policy.script.max_nesting} levels deep"
        return [Problem(name, line, col, message)], None
    problems += _Checker(name, lines, policy).run(tree)
    if any(p.severity == "error" for p in problems):
        return problems, None
    errors: list[str] = []
    try:
        RestrictingNodeTransformer(errors, [], {}).visit(tree)
        if errors:
            return problems + [_rp_problem(name, e) for e in errors], None
        code = compile(tree, name, "exec", dont_inherit=True)
    except (RecursionError, MemoryError):
        line, col = _deepest(source, policy.script.max_nesting)
        return [
            *problems,
            Problem(name, line, col, "expression nested too deeply to compile"),
        ], None
    except (SyntaxError, ValueError) as exc:
        line = getattr(exc, "lineno", None) or 1
        return [*problems, Problem(name, line, 1, f"cannot compile: {exc}")], None
    return problems, code


def _rp_problem(name: str, error: str) -> Problem:
    match = _RP_LINE_RE.match(error)
    if match is None:
        return Problem(name, 1, 1, error)
    return Problem(name, int(match.group(1)), 1, match.group(2))


def _position_of(source: str, index: int) -> tuple[int, int]:
    head = source[: max(index, 0)]
    lines = _LINE_SPLIT_RE.split(head)
    return len(lines), len(lines[-1]) + 1


def _node_position(node: ast.AST, lines: list[str]) -> tuple[int, int]:
    line = getattr(node, "lineno", 1) or 1
    offset = getattr(node, "col_offset", 0) or 0
    text = lines[line - 1] if 0 < line <= len(lines) else ""
    # ast columns count UTF-8 bytes; report characters.
    col = len(text.encode("utf-8", "surrogatepass")[:offset].decode("utf-8", "replace"))
    return line, col + 1


def _too_deep(tree: ast.AST, limit: int) -> ast.AST | None:
    """The first node deeper than ``limit`` (an ``elif`` does not add a level)."""
    stack: list[tuple[ast.AST, int]] = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return node
        for child in ast.iter_child_nodes(node):
            elif_ = (
                isinstance(node, ast.If) and isinstance(child, ast.If) and node.orelse == [child]
            )
            stack.append((child, depth if elif_ else depth + 1))
    return None


def _deepest(source: str, limit: int) -> tuple[int, int]:
    """Where the parser gave up: the first bracket nested beyond ``limit``, else the
    start of the logical line with the most tokens."""
    depth, best, best_count, count, start = 0, (1, 1), -1, 0, (1, 1)
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type == tokenize.OP and tok.string in "([{":
                depth += 1
                if depth > limit:
                    return tok.start[0], tok.start[1] + 1
            elif tok.type == tokenize.OP and tok.string in ")]}":
                depth -= 1
            if tok.type in (tokenize.NEWLINE, tokenize.ENDMARKER):
                if count > best_count:
                    best, best_count = start, count
                count = 0
                continue
            if count == 0:
                start = (tok.start[0], tok.start[1] + 1)
            count += 1
    except (tokenize.TokenError, SyntaxError, RecursionError, MemoryError):
        pass
    return best if best_count >= 0 else start


class _Checker:
    """The static checks, over the whole tree without recursion."""

    def __init__(self, name: str, lines: list[str], policy: DomainPolicy) -> None:
        self.name = name
        self.lines = lines
        self.policy = policy
        self.problems: list[Problem] = []
        self.available = set(policy.script.builtins) | set(policy.api.names)
        # Names another check already reported (``except BaseException``).
        self.reported: set[ast.AST] = set()

    def error(self, node: ast.AST, message: str, severity: str = "error") -> None:
        line, col = _node_position(node, self.lines)
        self.problems.append(Problem(self.name, line, col, message, severity))

    def run(self, tree: ast.Module) -> list[Problem]:
        parents: dict[ast.AST, ast.AST] = {}
        nodes: list[ast.AST] = []
        stack: list[ast.AST] = [tree]
        while stack:
            node = stack.pop()
            nodes.append(node)
            for child in ast.iter_child_nodes(node):
                parents[child] = node
                stack.append(child)
        nodes.sort(key=lambda n: (getattr(n, "lineno", 0), getattr(n, "col_offset", 0)))
        bound = set(self._bound_names(nodes))
        for node in nodes:
            self.check(node, parents.get(node), bound)
        if "basic" not in bound and not any(
            isinstance(n, ast.Name) and n.id == "basic" for n in nodes
        ):
            self.problems.append(
                Problem(self.name, 1, 1, "the script registers no handler (basic.on)", "warning")
            )
        return self.problems

    def _bound_names(self, nodes: list[ast.AST]) -> Iterator[str]:
        for node in nodes:
            if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
                yield node.id
            elif isinstance(node, ast.FunctionDef | ast.ClassDef | ast.AsyncFunctionDef):
                yield node.name
            elif isinstance(node, ast.arg):
                yield node.arg
            elif isinstance(node, ast.alias):
                yield (node.asname or node.name).partition(".")[0]
            elif isinstance(node, ast.ExceptHandler) and node.name:
                yield node.name

    def check(self, node: ast.AST, parent: ast.AST | None, bound: set[str]) -> None:
        match node:
            case ast.Name(id=name):
                self.check_name(node, name)
                known = name in bound or name.startswith("_") or node in self.reported
                if isinstance(node.ctx, ast.Load) and not known:
                    if name in _NOT_AVAILABLE:
                        self.error(node, _NOT_AVAILABLE[name])
                    elif name not in self.available:
                        self.error(node, f"{name!r} is not available in scripts")
            case ast.Attribute(attr=attr, value=value):
                if attr.startswith("_") and attr != "_":
                    self.error(
                        node,
                        f"attribute {attr!r} is not allowed (names starting with '_' are private)",
                    )
                elif attr in INSPECT_ATTRIBUTES or attr == "mro":
                    self.error(node, f"attribute {attr!r} is not allowed in scripts")
                elif attr in ("format", "format_map") and isinstance(
                    value, ast.Constant | ast.JoinedStr
                ):
                    self.error(
                        node, f"str.{attr}() is not available in scripts; use an f-string or %"
                    )
            case ast.FunctionDef(name=name):
                in_class = isinstance(parent, ast.ClassDef)
                if not (in_class and name in ALLOWED_FUNC_NAMES):
                    self.check_name(node, name)
            case ast.arg(arg=name):
                self.check_name(node, name)
            case ast.ClassDef(name=name, keywords=keywords):
                self.check_name(node, name)
                if keywords:
                    self.error(node, "class keywords (metaclass=...) are not allowed")
            case ast.Import(names=names) | ast.ImportFrom(names=names):
                self.check_import(node, names)
            case ast.ExceptHandler(type=None):
                self.error(
                    node, "a bare 'except:' is not allowed; catch Exception or a narrower class"
                )
            case ast.ExceptHandler(type=kind, name=name):
                caught = kind.elts if isinstance(kind, ast.Tuple) else [kind]
                base = [c for c in caught if isinstance(c, ast.Name) and c.id == "BaseException"]
                if base:
                    self.error(node, "'except BaseException' is not allowed; catch Exception")
                    self.reported.update(base)
                if name:
                    self.check_name(node, name)
            case ast.TryStar():
                self.error(node, "try/except* is not allowed")
            case ast.AsyncFunctionDef() | ast.Await() | ast.AsyncFor() | ast.AsyncWith():
                self.error(node, "async code is not allowed in scripts")
            case ast.Nonlocal():
                self.error(node, "'nonlocal' is not allowed in scripts; use a list or a dict")
            case ast.Match():
                self.error(node, "'match' statements are not allowed in scripts")
            case ast.AugAssign(target=ast.Attribute() | ast.Subscript()):
                self.error(
                    node,
                    "augmented assignment to an attribute or item is not allowed; write x[k] = x[k] + 1",
                )
            case ast.Call():
                self.check_call(node)

    def check_name(self, node: ast.AST, name: str) -> None:
        if name.startswith("_") and name != "_":
            self.error(node, f"name {name!r} is not allowed (names starting with '_' are private)")

    def check_import(self, node: ast.Import | ast.ImportFrom, names: list[ast.alias]) -> None:
        modules = [a.name for a in names] if isinstance(node, ast.Import) else [node.module or "."]
        if isinstance(node, ast.ImportFrom) and node.level:
            modules = ["." * node.level + (node.module or "")]
        for module in modules:
            if module not in self.policy.script.modules:
                self.error(node, f"import of {module!r} is not allowed by the sandbox policy")
        for alias in names:
            if alias.name == "*":
                self.error(node, "'import *' is not allowed")
            for part in (alias.name, alias.asname or ""):
                if part.startswith("_"):
                    self.check_name(node, part)

    def check_call(self, node: ast.Call) -> None:
        func = node.func
        if not isinstance(func, ast.Attribute):
            return
        method = func.attr
        args = {k.arg: k.value for k in node.keywords if k.arg}
        first = node.args[0] if node.args else None
        if method in ("addEventListener", "on") and isinstance(first, ast.Constant):
            if first.value not in EVENTS:
                self.error(
                    first, f"unknown event {first.value!r}; expected 'incoming' or 'outgoing'"
                )
        elif method == "reject":
            code = args.get("code", first)
            if isinstance(code, ast.Constant) and (
                type(code.value) is not int or not 400 <= code.value <= 699
            ):
                self.error(code, f"reject code {code.value!r} must be an integer 400-699")
        elif method == "proxy":
            timeout = args.get("timeout", first)
            limit = self.policy.targets.max_timeout
            value = timeout.value if isinstance(timeout, ast.Constant) else None
            number = isinstance(value, int | float) and type(value) is not bool
            if number and not 1 <= value <= limit:  # type: ignore[operator]
                self.error(node, f"proxy timeout {value!r} must be 1-{limit:g} seconds")
