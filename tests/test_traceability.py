"""Every RFC rule the code claims to implement is proven by at least one test.

A tag is ``RFC <number> §<section>`` with an optional `` step <n>``. In
``callscript/`` it opens a comment (``# RFC 3261 §17.1.1.2: ...`` or
``# DEVIATION RFC 3261 §16.3: ...``); in ``tests/`` it opens the first line of
a test's docstring. A tag that only the code has fails the build. The
collector lives in callscript.rfcreport (``callscript rfc-report`` uses it too).
"""

from __future__ import annotations

from pathlib import Path

from callscript.rfcreport.collect import collect_code_tags, collect_test_tags

ROOT = Path(__file__).resolve().parents[1]


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
