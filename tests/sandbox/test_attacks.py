"""Sandbox escapes, tried in real worker processes.

Each attack runs on ``any_pool``: once with the compiler's static checks and once
on workers that skip them, so the run-time guards are proven on their own.
"""

from __future__ import annotations

import re

import pytest

from callscript.sandbox.actions import Finished, Log, Pending, StepFailed, StepResult
from callscript.sandbox.pool import SandboxPool

from .conftest import Pools, make_event


def stopped(result: StepResult, *fragments: str) -> StepFailed:
    """The step failed with kind 'error' and a message holding one of ``fragments``."""
    assert isinstance(result, StepFailed), result
    assert result.kind == "error", result
    assert any(f in result.message for f in fragments), result.message
    return result


def logs(result: StepResult) -> list[str]:
    return [a.text for a in result.actions if isinstance(a, Log)]


def handler(body: str) -> str:
    """A script whose incoming handler runs ``body`` (indented by the caller)."""
    lines = "\n".join("    " + line for line in body.strip("\n").splitlines())
    return f"@basic.on('incoming')\ndef handler(event):\n{lines}\n"


# The static checks, RestrictedPython's transformer and the run-time guards each word it their way.
FORBIDDEN = (
    "not allowed",
    "not available",
    "is not defined",
    "available to scripts",
    "invalid",
    "reserved",
)


@pytest.mark.parametrize(
    "body",
    [
        "import os",
        "from os import path",
        "import math",
        "__import__('os')",
        "getattr(event, '__cl' + 'ass__')",
        "getattr(event, '__class__').__subclasses__()",
        "event.__class__",
        "getattr(log, '__call__')",
        "getattr(getattr(handler, '__globals__'), 'get')('log')",
        "getattr(handler, '__code__')",
        "getattr(event.action.proxy, '__self__')",
        "getattr(event.action.proxy, '__func__')",
        "g = (x for x in [1])\ngetattr(g, 'gi_frame')",
        "g = (x for x in [1])\ngetattr(g, 'gi_code')",
        "try:\n    1 / 0\nexcept ZeroDivisionError as e:\n    getattr(e, '__traceback__')",
        "try:\n    1 / 0\nexcept ZeroDivisionError as e:\n    getattr(e, 'with_traceback')(None)",
        "getattr(getattr(1, '__class__'), 'mro')()",
        "getattr(int, 'mro')()",
        "x = 'f_back'\ngetattr(event, x)",
        "getattr(event, 'tb_frame')",
        "getattr(event, 'cr_frame')",
        "type(event)",
        "vars(event)",
        "dir(event)",
        "globals()",
        "locals()",
        "open('/etc/passwd')",
        "eval('1')",
        "exec('x = 1')",
        "compile('1', 'f', 'eval')",
        "id(event)",
        "hash(event)",
        "object()",
        "super()",
        "BaseException",
        "breakpoint()",
        "getattr(basic, '_call')",
        "getattr(event, '_call')",
        "getattr(URI('sip:a@example.com'), '_uri')",
    ],
)
def test_introspection_and_imports_are_stopped(
    pools: Pools, any_pool: SandboxPool, body: str
) -> None:
    """Imports, dunder and frame walks, and introspection builtins end the step."""
    stopped(pools.step(handler(body), pool=any_pool), *FORBIDDEN)


@pytest.mark.parametrize(
    "body",
    [
        "'{0.__class__}'.format(1)",
        "s = '{0.__class__.__mro__}'\nlog(s.format(event))",
        "'{x.__class__}'.format_map({'x': 1})",
        "getattr('{0.__class__}', 'format')(1)",
        "getattr(str, 'format')('{0.__class__}', 1)",
        "f = getattr(str, 'format_map')",
        "class S(str):\n    pass\nS('{0.__class__}').format(1)",
    ],
)
def test_str_format_cannot_look_up_attributes(
    pools: Pools, any_pool: SandboxPool, body: str
) -> None:
    """str.format/format_map, which look attributes up by name, are refused on any str."""
    stopped(pools.step(handler(body), pool=any_pool), "not allowed", "not available")


def test_percent_formatting_only_reads_items(pools: Pools, any_pool: SandboxPool) -> None:
    """'%(name)s' % obj reads items, never attributes; the event hides hidden headers there too."""
    body = "log('%(From)s|%(Authorization)s' % event)\nlog('%s %r' % (event.uri, 1))"
    result = pools.step(handler(body), pool=any_pool)
    assert isinstance(result, Finished)
    assert logs(result)[0].startswith('"Bob" <sip:bob@example.org>;tag=1928301774|None')
    assert logs(result)[1] == "sip:alice@example.com 1"


def test_except_star_is_refused(pools: Pools, any_pool: SandboxPool) -> None:
    """try/except* (exception groups) does not compile."""
    body = "try:\n    pass\nexcept* ValueError:\n    pass"
    stopped(pools.step(handler(body), pool=any_pool), "not allowed")


def test_metaclass_is_refused(pools: Pools, any_pool: SandboxPool) -> None:
    """class X(metaclass=...) does not compile."""
    body = "class M:\n    pass\nclass X(metaclass=M):\n    pass"
    stopped(pools.step(handler(body), pool=any_pool), "metaclass")


@pytest.mark.parametrize(
    "source",
    [
        "class X:\n    def __getattribute__(self, name):\n        return 1\n",
        "class X:\n    def __init_subclass__(cls):\n        pass\n",
        "class X:\n    def __class_getitem__(cls, item):\n        pass\n",
        "class X:\n    __slots__ = ()\n",
    ],
)
def test_private_dunders_cannot_be_defined(
    pools: Pools, any_pool: SandboxPool, source: str
) -> None:
    """Only __init__ and the comparison dunders may be defined by a script."""
    stopped(pools.step(source, pool=any_pool), "invalid", "not allowed")


def test_decorators_go_through_the_guards(pools: Pools, any_pool: SandboxPool) -> None:
    """A decorator is a plain call: it cannot reach the function's internals."""
    body = "def peek(f):\n    return getattr(f, '__globals__')\n@peek\ndef g():\n    pass"
    stopped(pools.step(handler(body), pool=any_pool), "not allowed")


def test_script_classes_cannot_subclass_api_values(pools: Pools, any_pool: SandboxPool) -> None:
    """URI is final for scripts: no subclass can smuggle methods into API values."""
    stopped(pools.step("class Evil(URI):\n    pass\n", pool=any_pool), "cannot be subclassed")


def test_suspension_cannot_be_swallowed(pools: Pools, any_pool: SandboxPool) -> None:
    """A bare except, except BaseException, or a finally that returns cannot keep a
    handler running past a proxy() wait: the step is still Pending."""
    swallow_return = "try:\n    event.action.proxy()\nfinally:\n    return"
    result = pools.step(handler(swallow_return), pool=any_pool)
    assert isinstance(result, Pending)
    bare = "try:\n    event.action.proxy()\nexcept:\n    event.action.reject(code=486)"
    result = pools.step(handler(bare), pool=pools.runtime)
    assert isinstance(result, Pending)
    assert [a.kind for a in result.actions] == ["proxy"]
    stopped(pools.step(handler(bare)), "bare 'except:'")
    base = (
        "try:\n    event.action.proxy()\nexcept BaseException:\n    event.action.reject(code=486)"
    )
    assert isinstance(pools.step(handler(base), pool=pools.runtime), Pending)
    stopped(pools.step(handler(base)), "BaseException")


def test_violation_cannot_be_swallowed(pools: Pools, any_pool: SandboxPool) -> None:
    """A sandbox violation ends the step even inside try/except/finally."""
    body = (
        "try:\n    getattr(event, '__class__')\nexcept Exception:\n    pass\n"
        "finally:\n    event.action.reject(code=486)\n    return"
    )
    result = stopped(pools.step(handler(body), pool=any_pool), "not allowed")
    assert result.actions == ()


def test_exceptions_carry_no_host_objects(pools: Pools, any_pool: SandboxPool) -> None:
    """Errors from the API carry text only; built-in exceptions expose only args."""
    body = """
try:
    event.action.proxy(location='sip:x@127.0.0.1')
except ValueError as e:
    log(e.args, getattr(e, 'obj', 'no obj'), getattr(e, 'name', 'no name'))
try:
    event.nosuch
except AttributeError as e:
    log(getattr(e, 'obj', 'no obj'), getattr(e, 'name', 'no name'))
code = 'x'
try:
    event.action.reject(code=code)
except Exception as e:
    log(getattr(e, 'add_note', 'no add_note'), getattr(e, 'with_traceback', 'no tb'))
"""
    result = pools.step(handler(body), pool=any_pool)
    assert isinstance(result, Finished), result
    first, second, third = logs(result)
    assert first.startswith("('sip:x@127.0.0.1: 127.0.0.1 is a loopback or private address',)")
    assert first.endswith("no obj no name")
    assert second == "no obj no name"
    assert third == "no add_note no tb"


def test_api_objects_cannot_be_mutated(pools: Pools, any_pool: SandboxPool) -> None:
    """API values and classes are read-only, so no other call can see a change."""
    for body in [
        "URI.scheme = 'x'",
        "event.action.proxy = None",
        "event.method = 'BYE'",
        "basic.on = None",
        "u = URI('sip:a@example.com')\nu.host = 'evil.org'",
        "event['From'].value = 'x'",
        "ValueError.args = 1",
        "del event.location",
    ]:
        assert isinstance(pools.step(handler(body), pool=any_pool), StepFailed), body
    probe = handler(
        "log(URI('sip:a@example.com').host, event.method, hasattr(URI, 'x'))\n"
        "c = event.contacts\nc.append(URI('sip:x@example.com'))\nlog(len(event.contacts))"
    )
    result = pools.step(probe, pool=any_pool)
    assert logs(result) == ["example.com INVITE False", "1"]


def test_no_state_survives_between_calls(pools: Pools, any_pool: SandboxPool) -> None:
    """Module globals, the API objects and builtins are fresh in every step: what one
    call (or another user) leaves behind is not there for the next."""
    mallory = "SEEN = []\nSEEN.append(1)\nlog(len(SEEN))\nbasic.on('incoming')(lambda e: None)\n"
    for _ in range(4):
        result = pools.step(mallory, pool=any_pool, name="example.com/mallory.py")
        assert logs(result) == ["1"]
    alice = handler("log(str(basic), repr(log), str(event.action))")
    result = pools.step(alice, pool=any_pool)
    assert logs(result) == ["<basic> <log> <action>"]
    result = pools.step("log(SEEN)", pool=any_pool)
    stopped(result, "SEEN")


def test_crlf_injection_is_refused(pools: Pools, any_pool: SandboxPool) -> None:
    """Reasons and URIs with CR, LF, other controls or Unicode line breaks never leave."""
    for body in [
        "event.action.reject(code=486, reason='Busy\\r\\nX-Evil: 1')",
        "event.action.reject(code=486, reason='Busy\\nX')",
        "event.action.reject(code=486, reason='Busy\\u2028X')",
        "event.action.reject(code=486, reason='Busy\\x85X')",
        "event.action.reject(code=486, reason='Busy\\x00')",
        "event.action.reject(code=486, reason='x' * 1000)",
        "URI('sip:bob@example.com\\r\\nX-Evil: 1')",
        "event.location = 'sip:bob@example.com\\r\\nX-Evil: 1'",
        "event.action.redirect(location='sip:bob@example.com>\\r\\nContact: <sip:evil@evil.org')",
        "event.action.proxy(location='sip:bob@example.com?Route=%3Csip:evil%40evil.org%3E')",
        "event.action.redirect(location='sip:bob@example.com x')",
        "event.action.reject(code=1000)",
        "event.action.reject(code=200)",
        "event.action.reject(code=486.0)",
        "event.action.reject(code=True)",
    ]:
        result = pools.step(handler(body), pool=any_pool)
        assert isinstance(result, StepFailed) and result.kind == "error", (body, result)
        assert not result.actions, body


PRIVATE = [
    "sip:x@127.0.0.1",
    "sip:x@127.1",
    "sip:x@2130706433",
    "sip:x@0x7f.1",
    "sip:x@0177.0.0.1",
    "sip:x@[::1]",
    "sip:x@[::ffff:127.0.0.1]",
    "sip:x@[0:0:0:0:0:ffff:7f00:1]",
    "sip:x@10.1.2.3",
    "sip:x@192.168.0.10",
    "sip:x@172.16.0.1",
    "sip:x@169.254.1.1",
    "sip:x@0.0.0.0",
    "sip:x@localhost",
    "sip:x@LOCALHOST.",
    "sip:x@example.com;maddr=127.0.0.1",
]


@pytest.mark.parametrize("target", PRIVATE)
def test_private_targets_are_refused_in_any_spelling(
    pools: Pools, any_pool: SandboxPool, target: str
) -> None:
    """Loopback and private targets are refused for proxy(), event.location and redirect()."""
    for body in [
        f"event.action.proxy(location={target!r})",
        f"event.location = {target!r}",
        f"event.action.redirect(location={target!r})",
    ]:
        stopped(pools.step(handler(body), pool=any_pool), "private", "not a valid SIP URI")


def test_no_open_relay(pools: Pools, any_pool: SandboxPool) -> None:
    """Targets must be in a served domain or a registered contact; redirects may go anywhere public."""
    stopped(
        pools.step(handler("event.action.proxy(location='sip:x@evil.org')"), pool=any_pool),
        "not a domain this script may send calls to",
    )
    stopped(
        pools.step(
            handler("event.action.proxy(location='sip:x@example.com.evil.org')"), pool=any_pool
        ),
        "not a domain",
    )
    ok = pools.step(handler("event.action.proxy(location='sip:x@desk.example.com')"), pool=any_pool)
    assert isinstance(ok, Pending)
    contact = pools.step(
        handler("event.action.proxy(location='sip:alice@192.0.2.4:5060')"), pool=any_pool
    )
    assert isinstance(contact, Pending)
    moved = pools.step(handler("event.action.redirect(location='sip:x@evil.org')"), pool=any_pool)
    assert isinstance(moved, Finished)


def test_forwarding_loops_and_fan_out_are_limited(pools: Pools, any_pool: SandboxPool) -> None:
    """The owner's own AoR is refused (it would loop), and targets per action and
    proxy attempts per call are capped by the policy."""
    stopped(
        pools.step(handler("event.action.proxy(location='sip:alice@example.com')"), pool=any_pool),
        "loop back",
    )
    many = "[URI('sip:u%d@example.com' % i) for i in range(9)]"
    stopped(
        pools.step(handler(f"event.action.proxy(location={many})"), pool=any_pool),
        "at most 8 targets",
    )
    stopped(pools.step(handler(f"event.location = {many}"), pool=any_pool), "at most 8 targets")
    loop = "while True:\n    event.action.proxy(location='sip:bob@example.com')"
    busy = [{"result": "busy"}] * 5
    result = pools.step(handler(loop), pool=any_pool, outcomes=busy)
    stopped(result, "at most 5 proxy() calls")
    assert len(result.actions) == 5


def test_script_methods_never_run_in_api_code(pools: Pools, any_pool: SandboxPool) -> None:
    """Values are told apart by exact type: a script object's __eq__ is never called
    by the API (it would log)."""
    body = """
class Sneaky:
    def __eq__(self, other):
        log('eq called')
        return True
s = Sneaky()
for attempt in [
    lambda: basic.addEventListener(s, handler),
    lambda: event.action.reject(code=s),
    lambda: event.action.reject(code=486, reason=s),
    lambda: event.action.proxy(timeout=s),
    lambda: event.action.proxy(location=s),
    lambda: event.action.proxy(sequential=s),
    lambda: event.action.redirect(location=[s]),
    lambda: event.action.redirect(location='sip:x@example.org', permanent=s),
]:
    try:
        attempt()
    except (ValueError, TypeError):
        pass
log('done')
"""
    result = pools.step(handler(body), pool=any_pool)
    assert isinstance(result, Finished), result
    assert logs(result) == ["done"]


ADDRESS_RE = re.compile(r"0x[0-9a-fA-F]{4,}")


def test_no_address_path_or_environment_in_output(pools: Pools, any_pool: SandboxPool) -> None:
    """Nothing a script can print or make fail shows a memory address or a host path."""
    body = """
def f():
    pass
class A:
    pass
g = (x for x in [1])
log(f, A(), A, g, iter([]), event.action.proxy)
log(repr(f), repr(A()), repr(g), repr(iter([])), repr(event.action.proxy), repr(log))
log(f'{f} {f!r} {A()} {g}', '%s %r' % (f, g), str(f), str(A()))
raise ValueError(repr(f) + str(g))
"""
    result = pools.step(handler(body), pool=any_pool)
    assert isinstance(result, StepFailed)
    texts = [*logs(result), result.message]
    import callscript

    root = str(__import__("pathlib").Path(callscript.__file__).resolve().parents[1])
    for text in texts:
        assert not ADDRESS_RE.search(text), text
        assert root not in text and __import__("sys").prefix not in text, text
    assert "<A object>" in texts[0]


def test_hidden_headers_are_unreachable(pools: Pools, any_pool: SandboxPool) -> None:
    """A hidden header (Authorization) is not reachable by item access, `in`, iteration,
    unpacking, join, %-formatting or str(event)."""
    body = """
log(event['Authorization'], event['authorization'], 'Authorization' in event)
log(', '.join(event))
log([*event])
log('%(Authorization)s' % event)
log('secret' in str(event), 'Authorization' in str(event))
log([event[name] for name in event if 'uth' in name])
"""
    result = pools.step(handler(body), pool=any_pool)
    assert isinstance(result, Finished), result
    assert logs(result) == [
        "None None False",
        "Via, From, To, Call-ID, CSeq, Subject",
        "['Via', 'From', 'To', 'Call-ID', 'CSeq', 'Subject']",
        "None",
        "False False",
        "[]",
    ]


def test_other_users_scripts_are_unreachable(pools: Pools, any_pool: SandboxPool) -> None:
    """A script sees neither other scripts' source nor the worker's cache."""
    pools.step("SECRET_OF_BOB = 'hunter2'\n", pool=any_pool, name="example.com/bob.py")
    for body in [
        "getattr(basic, '__dict__')",
        "getattr(handler, '__globals__')",
        "getattr(getattr(event, '__class__'), '__subclasses__')()",
    ]:
        stopped(pools.step(handler(body), pool=any_pool), "not allowed")
    result = pools.step(handler("log(repr(basic), repr(event), str(event.user))"), pool=any_pool)
    assert logs(result) == ["<basic> <event INVITE sip:alice@example.com> sip:alice@example.com"]


def test_runtime_violation_names_the_line(pools: Pools) -> None:
    """A violation caught at run time reports the script's line."""
    result = pools.step(handler("x = 1\ny = getattr(event, '__class__')"), pool=pools.runtime)
    assert stopped(result, "not allowed").line == 4


def test_outgoing_event_sees_only_its_direction(pools: Pools) -> None:
    """An 'outgoing' handler is not run for an incoming call, and vice versa."""
    source = "@basic.on('outgoing')\ndef out(event):\n    event.action.reject(code=403)\n"
    incoming = pools.step(source)
    assert isinstance(incoming, Finished) and incoming.disposition.kind == "default"
    outgoing = pools.step(
        source, event=make_event(direction="outgoing", user="sip:bob@example.com")
    )
    assert isinstance(outgoing, Finished) and outgoing.disposition.kind == "reject"
