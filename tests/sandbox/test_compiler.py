"""The compiler: every refusal is a clean problem at FILE:LINE:COL."""

from __future__ import annotations

import dataclasses

import pytest

from callscript.errors import ScriptError
from callscript.sandbox.compiler import (
    CompiledScript,
    Problem,
    ScriptCompileError,
    check_script,
    compile_script,
)
from callscript.sandbox.policy import DomainPolicy, ScriptRules

RULES = DomainPolicy()
NAME = "example.com/alice.py"


def problems(source: str, rules: DomainPolicy = RULES) -> list[str]:
    return [str(p) for p in check_script(source, NAME, rules) if p.severity == "error"]


def only(source: str, rules: DomainPolicy = RULES) -> str:
    (found,) = problems(source, rules)
    return found


def test_a_benign_script_compiles() -> None:
    """A script using the API compiles to bytecode, with its digest."""
    compiled = compile_script("@basic.on('incoming')\ndef h(event):\n    log('hi')\n", NAME, RULES)
    assert isinstance(compiled, CompiledScript)
    assert compiled.name == NAME and len(compiled.digest) == 64
    assert compiled.warnings == ()


def test_compile_error_is_a_script_error_with_its_position() -> None:
    """ScriptCompileError is a ScriptError carrying file, line and column."""
    with pytest.raises(ScriptError) as info:
        compile_script("x = 1\nimport os\n", NAME, RULES)
    error = info.value
    assert isinstance(error, ScriptCompileError)
    assert (error.file, error.line, error.col) == (NAME, 2, 1)
    assert str(error) == f"{NAME}:2:1: import of 'os' is not allowed by the sandbox policy"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (
            "x = (1,\n  ]",
            "2:3: syntax error: closing parenthesis ']' does not match opening parenthesis '(' on line 1",
        ),
        ("x = 'é' + $", "1:11: syntax error: invalid syntax"),
        ("import os", "1:1: import of 'os' is not allowed by the sandbox policy"),
        ("from os import path", "1:1: import of 'os' is not allowed by the sandbox policy"),
        ("from . import x", "1:1: import of '.' is not allowed by the sandbox policy"),
        (
            "y = 1\nx = __import__('os')",
            "2:5: name '__import__' is not allowed (names starting with '_' are private)",
        ),
        (
            "x = 1\nx.__class__",
            "2:1: attribute '__class__' is not allowed (names starting with '_' are private)",
        ),
        (
            "def f(g):\n    return g.gi_frame",
            "2:12: attribute 'gi_frame' is not allowed in scripts",
        ),
        ("x = 1\nx.f_back", "2:1: attribute 'f_back' is not allowed in scripts"),
        ("x = int.mro()", "1:5: attribute 'mro' is not allowed in scripts"),
        (
            "x = '{0.__class__}'.format(1)",
            "1:5: str.format() is not available in scripts; use an f-string or %",
        ),
        (
            "x = 'é{a}'.format_map({})",
            "1:5: str.format_map() is not available in scripts; use an f-string or %",
        ),
        ("print('x')", "1:1: print() is not available in scripts; use log()"),
        ("x = open('f')", "1:5: 'open' is not available in scripts"),
        ("x = type(1)", "1:5: 'type' is not available in scripts"),
        ("x = vars()", "1:5: 'vars' is not available in scripts"),
        ("x = eval('1')", "1:5: eval() is not available in scripts"),
        (
            "try:\n    pass\nexcept:\n    pass",
            "3:1: a bare 'except:' is not allowed; catch Exception or a narrower class",
        ),
        (
            "try:\n    pass\nexcept (ValueError, BaseException):\n    pass",
            "3:1: 'except BaseException' is not allowed; catch Exception",
        ),
        ("try:\n    pass\nexcept* ValueError:\n    pass", "1:1: try/except* is not allowed"),
        (
            "class A(metaclass=int):\n    pass",
            "1:1: class keywords (metaclass=...) are not allowed",
        ),
        (
            "class _A:\n    pass",
            "1:1: name '_A' is not allowed (names starting with '_' are private)",
        ),
        (
            "class A:\n    def __str__(self):\n        return ''",
            "2:5: name '__str__' is not allowed (names starting with '_' are private)",
        ),
        (
            "def __init__(self):\n    pass",
            "1:1: name '__init__' is not allowed (names starting with '_' are private)",
        ),
        (
            "def f(_x):\n    pass",
            "1:7: name '_x' is not allowed (names starting with '_' are private)",
        ),
        ("async def f():\n    pass", "1:1: async code is not allowed in scripts"),
        (
            "def f():\n    x = 1\n    def g():\n        nonlocal x",
            "4:9: 'nonlocal' is not allowed in scripts; use a list or a dict",
        ),
        (
            "match 1:\n    case 1:\n        pass",
            "1:1: 'match' statements are not allowed in scripts",
        ),
        (
            "d = {}\nd['a'] += 1",
            "2:1: augmented assignment to an attribute or item is not allowed; write x[k] = x[k] + 1",
        ),
        (
            "basic.addEventListener('incomming', None)",
            "1:24: unknown event 'incomming'; expected 'incoming' or 'outgoing'",
        ),
        (
            "@basic.on('ringing')\ndef h(e):\n    pass",
            "1:11: unknown event 'ringing'; expected 'incoming' or 'outgoing'",
        ),
        (
            "def h(event):\n    event.action.reject(code=800)",
            "2:30: reject code 800 must be an integer 400-699",
        ),
        (
            "def h(event):\n    event.action.reject(200)",
            "2:25: reject code 200 must be an integer 400-699",
        ),
        (
            "def h(event):\n    event.action.proxy(timeout=1000)",
            "2:5: proxy timeout 1000 must be 1-120 seconds",
        ),
        ("x = 'a\x00b'", "1:7: the script contains a NUL character"),
    ],
)
def test_problems_have_file_line_and_column(source: str, expected: str) -> None:
    """Each check reports FILE:LINE:COL (1-based, columns in characters) and why."""
    assert only(source) == f"{NAME}:{expected}"


def test_all_problems_are_reported_in_order() -> None:
    """check_script lists every problem, in source order."""
    found = problems("import os\nx = __import__\ny = open\n")
    assert [p.split(": ", 1)[0] for p in found] == [f"{NAME}:1:1", f"{NAME}:2:5", f"{NAME}:3:5"]


def test_size_limit() -> None:
    """A source over script.max_size is refused before parsing."""
    rules = dataclasses.replace(RULES, script=ScriptRules(max_size=64))
    assert (
        only("x = 1\n" * 20, rules) == f"{NAME}:1:1: the script is 120 bytes; the policy allows 64"
    )


@pytest.mark.parametrize(
    "source",
    [
        "x = " + "-" * 50000 + "1",
        "x = " + "+".join(["1"] * 30000),
        "x = " + "not " * 15000 + "y",
        "x = " + "(" * 300 + "1" + ")" * 300,
        "x = " + "[" * 150 + "]" * 150,
        "x = " + "f(" * 150 + ")" * 150,
        "x = " + "[1, " * 150 + "]" * 150,
        "x = " + "{'a': " * 150 + "1" + "}" * 150,
        "x = " + "lambda: " * 200 + "1",
        "x = 1\n" + "".join("    " * i + "if x:\n" for i in range(120)) + "    " * 120 + "pass\n",
    ],
)
def test_deep_nesting_is_a_clean_compile_error(source: str) -> None:
    """Sources too deep for the parser (RecursionError, MemoryError) or for the policy's
    max_nesting are one problem with a position, never an exception."""
    found = problems(source)
    assert len(found) == 1
    position, message = found[0][len(NAME) + 1 :].split(": ", 1)
    line, col = (int(n) for n in position.split(":"))
    assert line >= 1 and col >= 1
    assert "nested" in message or "too many" in message or "syntax error" in message


def test_a_long_elif_chain_is_not_too_deep() -> None:
    """An elif chain does not count as nesting."""
    source = "x = 1\nif x == 0:\n    y = 0\n" + "".join(
        f"elif x == {i}:\n    y = {i}\n" for i in range(1, 150)
    )
    assert problems(source) == []


def test_allowed_modules_can_be_imported() -> None:
    """A module the policy allows compiles; others do not."""
    rules = dataclasses.replace(RULES, script=dataclasses.replace(RULES.script, modules=("math",)))
    assert problems("import math\nx = math.sqrt(4)\n", rules) == []
    assert problems("import re\n", rules) == [
        f"{NAME}:1:1: import of 're' is not allowed by the sandbox policy"
    ]


def test_builtins_follow_the_policy() -> None:
    """A builtin the policy leaves out is 'not available'."""
    rules = dataclasses.replace(RULES, script=dataclasses.replace(RULES.script, builtins=("len",)))
    assert problems("x = len('a')\n", rules) == []
    assert problems("x = sorted([])\n", rules) == [
        f"{NAME}:1:5: 'sorted' is not available in scripts"
    ]


def test_warnings_do_not_fail() -> None:
    """A script that registers no handler, or that Python warns about, compiles with warnings."""
    compiled = compile_script("x = '\\d'\n", NAME, RULES)
    messages = [p.message for p in compiled.warnings]
    assert any("no handler" in m for m in messages)
    assert any("escape sequence" in m for m in messages)
    assert all(isinstance(p, Problem) and p.severity == "warning" for p in compiled.warnings)
    assert str(compiled.warnings[0]).startswith(f"{NAME}:1:1: warning: ")


def test_names_bound_by_the_script_are_fine() -> None:
    """Names the script defines anywhere (functions, classes, loops, args, except) are known."""
    source = (
        "def f(a, *rest, k=1, **kw):\n    return [b for b in rest]\n"
        "class C:\n    pass\n"
        "for i, j in []:\n    pass\n"
        "try:\n    pass\nexcept ValueError as err:\n    pass\n"
        "if (n := 3):\n    pass\n"
        "x = f(1) or C or i or j or err or n or k_undefined_never\n"
    )
    assert problems(source) == [f"{NAME}:13:40: 'k_undefined_never' is not available in scripts"]
