"""The script API as scripts use it, through real workers: values, actions, rules, replay."""

from __future__ import annotations

from typing import Any

from callscript.sandbox.actions import (
    Accept,
    Default,
    Finished,
    Log,
    Pending,
    Proxied,
    Proxy,
    Redirect,
    Reject,
    Relay,
    StepFailed,
    StepResult,
    Voicemail,
)
from callscript.sandbox.pool import Script
from callscript.sandbox.replay import CallRun

from .conftest import Pools, make_event


def handler(body: str) -> str:
    lines = "\n".join("    " + line for line in body.strip("\n").splitlines())
    return f"@basic.on('incoming')\ndef handler(event):\n{lines}\n"


def logs(result: StepResult) -> list[str]:
    return [a.text for a in result.actions if isinstance(a, Log)]


def finished(result: StepResult) -> Finished:
    assert isinstance(result, Finished), result
    return result


def call(pools: Pools, source: str, event: dict[str, Any] | None = None) -> CallRun:
    return pools.checked.call(
        Script("example.com/alice.py", "example.com", source), event or make_event()
    )


README_EXAMPLE = """
def screen(event):
    if event['From'].uri.host.endswith('example.org'):
        event.location = URI('sip:alice@desk.example.com')
        if event.action.proxy(timeout=15) in ('busy', 'noanswer', 'failure'):
            event.action.voicemail()
    else:
        event.action.reject(code=603, reason='Decline')

basic.addEventListener('incoming', screen)
"""


def test_readme_example_proxies_then_voicemail_on_busy(pools: Pools) -> None:
    """The README's script: proxy() waits (Pending), and 'busy' leads to voicemail."""
    run = call(pools, README_EXAMPLE)
    first = pools.run(run.start())
    assert isinstance(first, Pending)
    assert first.proxy == Proxy(("sip:alice@desk.example.com",), 15, False, seq=0, line=5)
    second = finished(pools.run(run.resume("busy")))
    assert second.actions == (Voicemail(seq=1, line=6),)
    assert second.disposition == Voicemail(seq=1, line=6)


def test_readme_example_answered_call_is_proxied(pools: Pools) -> None:
    """A proxy() that returns 'success' answers the call."""
    run = call(pools, README_EXAMPLE)
    pools.run(run.start())
    assert finished(pools.run(run.resume("success"))).disposition == Proxied()


def test_readme_example_rejects_other_domains(pools: Pools) -> None:
    """Callers from elsewhere get 603 Decline."""
    event = make_event(headers=[["From", "<sip:eve@elsewhere.net>;tag=x"]])
    result = finished(pools.step(README_EXAMPLE, event=event))
    assert result.disposition == Reject(603, "Decline", seq=0, line=8)


def test_event_values(pools: Pools) -> None:
    """event exposes the request's fields, headers, the owner, contacts and time."""
    body = """
log(event.method, event.uri, event.direction, event.user, event.user.aor)
f = event['From']
log(f.name, f.value, f.uri, f.display, f.params, f.uri.scheme, f.uri.user, f.uri.host, f.uri.port)
log(event['Via'][0].params, event['Via'][0].uri, event['Subject'], event['Subject'].uri, event['Nope'])
log(event['f'].display, event['to'].uri, event['CSeq'].value, 'Subject' in event, 'Nope' in event)
t = event.time
log(t.year, t.month, t.day, t.hour, t.minute, t.second, t.weekday, t.date, t)
log(event.contacts, event.location, event.redirect_targets)
log(len(str(event).splitlines()), str(event).splitlines()[0])
"""
    result = finished(pools.step(handler(body)))
    assert logs(result) == [
        "INVITE sip:alice@example.com incoming sip:alice@example.com sip:alice@example.com",
        'From "Bob" <sip:bob@example.org>;tag=1928301774 sip:bob@example.org Bob '
        "{'tag': '1928301774'} sip bob example.org None",
        "{'branch': 'z9hG4bKabc'} None lunch? None None",
        "Bob sip:alice@example.com 314159 INVITE True False",
        "2024 5 6 9 30 0 0 2024-05-06 2024-05-06T09:30:00+02:00",
        "[URI('sip:alice@192.0.2.4:5060')] [] []",
        "8 INVITE sip:alice@example.com SIP/2.0",
    ]


def test_uri_values(pools: Pools) -> None:
    """URI() parses, compares per RFC 3261 §19.1.4 and refuses bad text."""
    body = """
u = URI('sip:Bob@Example.COM:5070;transport=tcp')
log(u.scheme, u.user, u.host, u.port, u.params, u.aor, str(u))
log(u == 'sip:Bob@example.com:5070;transport=TCP', u == URI('sip:bob@example.com:5070'), u == 5)
log(len({URI('sip:a@example.com'), URI('sip:a@EXAMPLE.com')}), URI(u) == u)
p = u.params
p['transport'] = 'udp'
log(u.params)
for bad in ['not a uri', 'sip:', 'sip:a@b c', 5]:
    try:
        URI(bad)
    except (ValueError, TypeError) as e:
        log('refused', bad)
"""
    result = finished(pools.step(handler(body)))
    assert logs(result) == [
        "sip Bob Example.COM 5070 {'transport': 'tcp'} sip:Bob@example.com sip:Bob@Example.COM:5070;transport=tcp",
        "True False False",
        "1 True",
        "{'transport': 'tcp'}",
        "refused not a uri",
        "refused sip:",
        "refused sip:a@b c",
        "refused 5",
    ]


def test_location_assignment_and_implicit_proxy(pools: Pools) -> None:
    """Assigning event.location (URI, str or list) and returning proxies there."""
    body = """
event.location = ['sip:alice@desk.example.com', URI('sip:alice@mobile.example.com')]
log(event.location)
"""
    result = finished(pools.step(handler(body)))
    assert logs(result) == [
        "[URI('sip:alice@desk.example.com'), URI('sip:alice@mobile.example.com')]"
    ]
    assert result.disposition == Proxy(
        ("sip:alice@desk.example.com", "sip:alice@mobile.example.com"), 30, False
    )


def test_returning_after_failed_attempts_relays_the_last_response(pools: Pools) -> None:
    """After proxy attempts that failed, returning without an answer relays the last one;
    a location assigned after them is proxied instead."""
    run = call(pools, handler("event.action.proxy(location='sip:alice@desk.example.com')"))
    pools.run(run.start())
    assert finished(pools.run(run.resume("busy"))).disposition == Relay()
    body = "event.action.proxy(location='sip:alice@desk.example.com')\nevent.location = 'sip:alice@mobile.example.com'"
    run = call(pools, handler(body))
    pools.run(run.start())
    assert finished(pools.run(run.resume("noanswer"))).disposition == Proxy(
        ("sip:alice@mobile.example.com",), 30
    )


def test_no_handler_or_no_answer_means_default_routing(pools: Pools) -> None:
    """A script without a handler for the direction, or a handler that decides nothing,
    leaves the call to default routing."""
    assert finished(pools.step("x = 1\n")).disposition == Default()
    assert finished(pools.step(handler("pass"))).disposition == Default()


def test_proxy_default_targets(pools: Pools) -> None:
    """proxy() without a location rings the registered contacts (incoming) or the
    request-URI (outgoing); with no contact at all it fails at once."""
    source = "@basic.on('incoming')\n@basic.on('outgoing')\ndef h(event):\n    log(event.action.proxy())\n"
    pending = pools.step(source)
    assert isinstance(pending, Pending) and pending.proxy.targets == ("sip:alice@192.0.2.4:5060",)
    outgoing = make_event(
        direction="outgoing", user="sip:bob@example.com", uri="sip:carol@other.example.net"
    )
    pending = pools.step(source, event=outgoing)
    assert isinstance(pending, Pending) and pending.proxy.targets == (
        "sip:carol@other.example.net",
    )
    nobody = finished(pools.step(source, event=make_event(contacts=[])))
    assert logs(nobody) == ["failure"]
    assert nobody.disposition == Relay()


def test_a_second_final_answer_is_an_error_naming_the_first(pools: Pools) -> None:
    """After a final action, another one raises 'already answered by ... at line N'."""
    for name, first in [
        ("reject", "event.action.reject(code=486)"),
        ("voicemail", "event.action.voicemail()"),
        ("redirect", "event.action.redirect(location='sip:bob@example.org')"),
        ("default", "event.action.default()"),
    ]:
        result = pools.step(handler(f"log('x')\n{first}\nevent.action.voicemail()"))
        assert isinstance(result, StepFailed) and result.kind == "error"
        assert result.message == f"the call was already answered by {name}() at line 4"
        assert result.line == 5
    run = call(
        pools,
        handler("event.action.proxy(location='sip:a@example.com')\nevent.action.reject(code=486)"),
    )
    pools.run(run.start())
    after = pools.run(run.resume("success"))
    assert isinstance(after, StepFailed)
    assert after.message == "the call was already answered by proxy() at line 3"


def test_final_actions(pools: Pools) -> None:
    """reject, redirect (302/301), accept (not for INVITE), voicemail and default."""
    assert finished(pools.step(handler("event.action.reject()"))).disposition == Reject(
        603, None, seq=0, line=3
    )
    moved = finished(
        pools.step(
            handler(
                "event.action.redirect(location=['sip:a@example.org', 'sip:b@example.org'], permanent=True)"
            )
        )
    )
    assert isinstance(moved.disposition, Redirect) and moved.disposition.status == 301
    assert moved.disposition.targets == ("sip:a@example.org", "sip:b@example.org")
    event = make_event(method="OPTIONS")
    assert finished(
        pools.step(handler("event.action.accept()"), event=event)
    ).disposition == Accept(seq=0, line=3)
    refused = pools.step(handler("event.action.accept()"))
    assert isinstance(refused, StepFailed) and "other than INVITE" in refused.message
    assert finished(pools.step(handler("event.action.default()"))).disposition == Default(
        seq=0, line=3
    )


def test_proxy_arguments_are_checked(pools: Pools) -> None:
    """Timeouts in range, sequential a bool, at least one target for redirect."""
    for body, fragment in [
        ("t = 0\nevent.action.proxy(timeout=t)", "timeout"),
        ("t = 10 ** 6\nevent.action.proxy(timeout=t)", "timeout"),
        ("event.action.proxy(timeout='10')", "timeout"),
        ("event.action.proxy(sequential=1)", "sequential"),
        ("event.action.redirect()", "needs a location"),
        ("event.action.proxy(bogus=1)", "unexpected keyword"),
        ("event.location = 5", "a target must be"),
    ]:
        result = pools.step(handler(body))
        assert isinstance(result, StepFailed) and fragment in result.message, (body, result)


def test_redirection_outcome_exposes_the_contacts(pools: Pools) -> None:
    """After 'redirection', event.redirect_targets holds the 3xx Contacts."""
    body = """
r = event.action.proxy(location='sip:alice@desk.example.com')
log(r, event.redirect_targets)
event.action.redirect(location=event.redirect_targets)
"""
    run = call(pools, handler(body))
    pools.run(run.start())
    done = finished(pools.run(run.resume("redirection", ["sip:alice@elsewhere.example.org"])))
    assert logs(done) == ["redirection [URI('sip:alice@elsewhere.example.org')]"]
    assert isinstance(done.disposition, Redirect)


def test_sequential_find_me_replays_without_repeating_logs(pools: Pools) -> None:
    """Each step returns only new actions: replayed log lines are not repeated."""
    body = """
for target in ['sip:erin@desk.example.com', 'sip:erin@mobile.example.com']:
    log('trying', target)
    if event.action.proxy(location=target, timeout=10) == 'success':
        return
event.action.voicemail()
"""
    run = call(pools, handler(body))
    first = pools.run(run.start())
    second = pools.run(run.resume("noanswer"))
    third = pools.run(run.resume("busy"))
    assert [a.kind for a in first.actions] == ["log", "proxy"]
    assert [a.kind for a in second.actions] == ["log", "proxy"]
    assert [a.kind for a in third.actions] == ["voicemail"]
    assert logs(first) + logs(second) == [
        "trying sip:erin@desk.example.com",
        "trying sip:erin@mobile.example.com",
    ]
    assert run.outcomes == [{"result": "noanswer"}, {"result": "busy"}]


def test_log_is_capped(pools: Pools) -> None:
    """log() keeps max_log_lines lines (then says so once) of max_log_length characters."""
    result = finished(pools.step(handler("for i in range(100):\n    log(i, 'x' * 1000)")))
    lines = logs(result)
    assert len(lines) == 51
    assert lines[-1] == "log limit reached: later lines are dropped"
    assert all(len(line) <= 500 for line in lines)
    assert lines[0].startswith("0 xxx") and lines[0].endswith("…")


def test_log_shows_values_without_running_script_code(pools: Pools) -> None:
    """Containers, API values and script objects print plainly; control characters are escaped."""
    body = """
class Thing:
    pass
log({'a': [1, 2.5, None, True]}, (1,), {3}, Thing(), Thing, event['From'], 'tab\\there\\nnew')
"""
    result = finished(pools.step(handler(body)))
    assert logs(result) == [
        "{'a': [1, 2.5, None, True]} (1,) {3} <Thing object> <class Thing> "
        '"Bob" <sip:bob@example.org>;tag=1928301774 tab\\there\\nnew'
    ]


def test_benign_scripts_keep_working(pools: Pools) -> None:
    """Loops, dicts, classes of its own, formatting, helpers, comprehensions, generators,
    exceptions of its own, sorting and time-of-day rules all work in the sandbox."""
    source = """
RULES = {'bob': 'sip:bob@desk.example.com', 'carol': 'sip:carol@desk.example.com'}

class Schedule:
    def __init__(self, start, end):
        self.start = start
        self.end = end
    def open_at(self, hour):
        return self.start <= hour < self.end
    def __eq__(self, other):
        return isinstance(other, Schedule) and self.start == other.start

class NotListed(Exception):
    pass

def pick(name):
    if name not in RULES:
        raise NotListed(name)
    return RULES[name]

def evens(n):
    for i in range(n):
        if i % 2 == 0:
            yield i

@basic.on('incoming')
def incoming(event):
    hours = Schedule(9, 18)
    total = 0
    for i in evens(10):
        total += i
    squares = [i * i for i in range(5)]
    names = sorted(RULES, reverse=True)
    counts = {}
    for ch in 'hello':
        counts[ch] = counts.get(ch, 0) + 1
    a, (b, c) = 1, (2, 3)
    log(f'{total:>4}|{3.14159:.2f}|{names}|{squares}|%d-%s' % (a + b + c, 'x'), max(counts.values()))
    log(hours == Schedule(9, 0), hours.open_at(event.time.hour), event.time.weekday < 5)
    try:
        pick('dave')
    except NotListed as e:
        log('not listed:', e.args[0])
    if hours.open_at(event.time.hour):
        event.location = pick('bob')
"""
    result = finished(pools.step(source))
    assert logs(result) == [
        "  20|3.14|['carol', 'bob']|[0, 1, 4, 9, 16]|6-x 2",
        "True True True",
        "not listed: dave",
    ]
    assert result.disposition == Proxy(("sip:bob@desk.example.com",), 30)


def test_handler_registration_rules(pools: Pools) -> None:
    """One handler per direction; events must be 'incoming' or 'outgoing'."""
    twice = "basic.addEventListener('incoming', lambda e: None)\nbasic.addEventListener('incoming', lambda e: None)\n"
    result = pools.step(twice)
    assert (
        isinstance(result, StepFailed)
        and result.message == "a handler for 'incoming' was already registered at line 1"
    )
    bad = "kind = 'sideways'\nbasic.addEventListener(kind, lambda e: None)\n"
    result = pools.step(bad)
    assert isinstance(result, StepFailed) and "'incoming' or 'outgoing'" in result.message
    result = pools.step("basic.addEventListener('incoming', 5)\n")
    assert isinstance(result, StepFailed) and "function" in result.message


def test_script_errors_name_the_line(pools: Pools) -> None:
    """An exception in the script fails the step with its type, message and line."""
    result = pools.step(handler("x = {}\ny = x['missing']"))
    assert isinstance(result, StepFailed)
    assert (result.kind, result.line, result.message) == ("error", 4, "KeyError: 'missing'")


def test_the_policy_can_narrow_the_api(pools: Pools) -> None:
    """Actions the policy leaves out are refused."""
    import dataclasses

    from callscript.sandbox.policy import ApiRules, Policy
    from callscript.sandbox.pool import SandboxPool

    from .conftest import SERVED, TEST_POLICY

    base = dataclasses.replace(
        TEST_POLICY.base, api=ApiRules(actions=("proxy", "reject"), names=("basic",))
    )
    pool = SandboxPool(Policy(workers=TEST_POLICY.workers, base=base), served_domains=SERVED)
    try:
        result = pools.step(handler("event.action.voicemail()"), pool=pool)
        assert (
            isinstance(result, StepFailed)
            and result.message == "voicemail() is not allowed by the sandbox policy"
        )
        result = pools.step(handler("log('x')"), pool=pool)
        assert isinstance(result, StepFailed) and "'log' is not available" in result.message
    finally:
        pools.run(pool.close())


def test_modules_the_policy_allows(pools: Pools) -> None:
    """With math and re allowed, their own names work; what they imported does not."""
    import dataclasses

    from callscript.sandbox.policy import Policy
    from callscript.sandbox.pool import SandboxPool

    from .conftest import SERVED, TEST_POLICY

    script = dataclasses.replace(TEST_POLICY.base.script, modules=("math", "re"))
    base = dataclasses.replace(TEST_POLICY.base, script=script)
    pool = SandboxPool(Policy(workers=TEST_POLICY.workers, base=base), served_domains=SERVED)
    try:
        body = "import math\nimport re\nfrom math import sqrt\nm = re.match('(a+)b', 'aab')\n"
        body += (
            "log(math.sqrt(16), sqrt(9), re.compile('a+').findall('aa-a'), m.group(1), m.span())"
        )
        assert logs(pools.step(handler(body), pool=pool)) == ["4.0 3.0 ['aa', 'a'] aa (0, 3)"]
        for attack in ["import re\nre.functools", "import re\nre.copyreg", "import os"]:
            result = pools.step(handler(attack), pool=pool)
            assert isinstance(result, StepFailed), attack
    finally:
        pools.run(pool.close())
