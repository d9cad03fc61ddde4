"""``callscript rfc-report``: tags, their places and tests, RFC 3261 §8–§22 coverage, Markdown and HTML."""

from __future__ import annotations

import argparse
import io
from contextlib import redirect_stdout
from pathlib import Path

import pytest

from callscript.commands import rfc_report
from callscript.rfcreport.collect import Tag, claims, proofs, scope_at
from callscript.rfcreport.report import Coverage, build_report, toc_section
from callscript.rfcreport.sections import SECTIONS

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = (("md", ROOT / "docs" / "rfc-report.md"), ("html", ROOT / "docs" / "rfc-report.html"))


def _tree(tmp: Path) -> Path:
    (tmp / "callscript" / "sip").mkdir(parents=True)
    (tmp / "tests").mkdir()
    (tmp / "callscript" / "sip" / "proxy.py").write_text(
        "class Proxy:\n"
        "    def forward(self):\n"
        "        # RFC 3261 §16.6 step 3: decrement Max-Forwards.\n"
        "        return 1\n"
        "\n"
        "# DEVIATION RFC 3261 §16.10: answer 481 at once.\n"
        "def cancel():\n"
        "    # RFC 3263 §4.1: transport from NAPTR.\n"
        "    # RFC 3261 §17.1.1.2.9: deeper than the table of contents.\n"
        "    x = '# RFC 3261 §8.1: in a string, not a tag'\n",
        encoding="utf-8",
    )
    (tmp / "tests" / "test_proxy.py").write_text(
        "def test_hops():\n"
        '    """RFC 3261 §16.6 step 3: Max-Forwards goes down by one."""\n'
        "class TestCancel:\n"
        "    def test_481(self):\n"
        '        """RFC 3261 §16.10: a CANCEL without context gets 481 <at once>."""\n',
        encoding="utf-8",
    )
    return tmp


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    rfc_report.add_arguments(parser)
    return parser


def _run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    with redirect_stdout(out):
        code = rfc_report.run(_parser().parse_args(list(argv)))
    return code, out.getvalue()


def test_tags_parse_into_rfc_section_and_step_and_sort_numerically() -> None:
    """``RFC 3261 §16.10`` sorts after ``§16.9``; a trailing dot is the same tag."""
    tags = [Tag.parse(t) for t in ("RFC 3261 §16.10", "RFC 3261 §16.9 step 2", "RFC 3261 §7.3.1.")]
    assert [str(t) for t in sorted(tags, key=lambda t: t.key)] == [
        "RFC 3261 §7.3.1",
        "RFC 3261 §16.9 step 2",
        "RFC 3261 §16.10",
    ]
    assert Tag.parse("RFC 3263 §4.1") == Tag(3263, "4.1")
    with pytest.raises(ValueError):
        Tag.parse("RFC x")


def test_places_name_the_file_and_the_enclosing_function_and_tests_by_node_id(
    tmp_path: Path,
) -> None:
    """Code places carry file, line, enclosing def and deviation; tests their pytest node id."""
    root = _tree(tmp_path)
    code = claims(root)
    assert sorted(code) == [
        "RFC 3261 §16.10",
        "RFC 3261 §16.6 step 3",
        "RFC 3261 §17.1.1.2.9",
        "RFC 3263 §4.1",
    ]
    (place,) = code["RFC 3261 §16.6 step 3"]
    assert (place.path, place.line, place.scope, place.deviation) == (
        "callscript/sip/proxy.py",
        3,
        "Proxy.forward",
        False,
    )
    (deviation,) = code["RFC 3261 §16.10"]
    assert deviation.deviation and deviation.scope == ""
    tests = proofs(root)
    assert [t.node_id for t in tests["RFC 3261 §16.10"]] == [
        "tests/test_proxy.py::TestCancel::test_481"
    ]


def test_scope_is_the_innermost_def_holding_the_line() -> None:
    """A line in a nested function belongs to it; a line outside every def to the module."""
    import ast

    tree = ast.parse("def a():\n    def b():\n        x = 1\n    y = 2\nz = 3\n")
    assert [scope_at(tree, line) for line in (3, 4, 5)] == ["a.b", "a", ""]


def test_sections_table_is_rfc3261_chapters_8_to_22_in_order_with_parents() -> None:
    """Every section number is unique, in order, within §8–§22, and its parent is listed."""
    numbers = [number for number, _ in SECTIONS]
    assert len(numbers) == len(set(numbers))
    keys = [tuple(int(p) for p in n.split(".")) for n in numbers]
    assert keys == sorted(keys)
    assert {k[0] for k in keys} == set(range(8, 23))
    for number in numbers:
        parent = number.rpartition(".")[0]
        assert not parent or parent in numbers, number
    assert dict(SECTIONS)["16.12.1.2"] == "Traversing a Strict-Routing Proxy"


def test_coverage_says_claimed_through_subsections_or_unclaimed(tmp_path: Path) -> None:
    """A tag claims its section; parents are claimed through it; a deeper tag claims its nearest listed section."""
    report = build_report(_tree(tmp_path))
    coverage = {s.number: s.coverage for s in report.sections}
    assert coverage["16.6"] is Coverage.CLAIMED
    assert coverage["16.10"] is Coverage.CLAIMED
    assert coverage["17.1.1.2"] is Coverage.CLAIMED  # from §17.1.1.2.9
    assert coverage["16"] is Coverage.SUBSECTIONS
    assert coverage["17.1"] is Coverage.SUBSECTIONS
    assert coverage["8.1"] is Coverage.UNCLAIMED  # only in a string
    assert coverage["16.3"] is Coverage.UNCLAIMED
    assert toc_section("7.3.1") is None
    unclaimed = {s.number for s in report.unclaimed}
    assert "16.6" not in unclaimed and "22.4" in unclaimed
    assert [str(e.tag) for e in report.unproven] == ["RFC 3261 §17.1.1.2.9", "RFC 3263 §4.1"]
    assert report.rfcs == (3261, 3263)


def test_markdown_lists_places_tests_deviations_and_unclaimed_sections(tmp_path: Path) -> None:
    """Markdown to stdout: one row per tag with file, function and tests; the unclaimed list."""
    root = _tree(tmp_path)
    code, text = _run("--root", str(root))
    assert code == 0
    assert (
        "| §16.6 step 3 | [callscript/sip/proxy.py](callscript/sip/proxy.py) `Proxy.forward` "
        "| `tests/test_proxy.py::test_hops` |"
    ) in text
    assert "| §16.10 (deviation) |" in text
    assert (
        "| §4.1 | [callscript/sip/proxy.py](callscript/sip/proxy.py) `cancel` | **none** |" in text
    )
    assert "\n- §9 Canceling a Request\n  - §9.1 Client Behavior\n" in text
    assert "| §16.6 | &nbsp;&nbsp;&nbsp;&nbsp;Request Forwarding | claimed |" in text
    assert "- 4 tags in the code (1 marking deviations); 2 proven" in text


def test_html_page_is_escaped_and_links_from_where_it_is_written(tmp_path: Path) -> None:
    """--output FILE.html writes a static page whose links lead back to the source tree."""
    root = _tree(tmp_path)
    (root / "docs").mkdir()
    output = root / "docs" / "report.html"
    code, text = _run("--root", str(root), "--output", str(output))
    assert (code, text) == (0, "")
    page = output.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and page.endswith("</html>\n")
    assert '<a href="../callscript/sip/proxy.py">callscript/sip/proxy.py</a>' in page
    assert "<code>tests/test_proxy.py::TestCancel::test_481</code>" in page
    assert '<td class="unclaimed">unclaimed</td>' in page
    assert "<at once>" not in page


def test_a_tree_without_callscript_and_tests_is_refused(tmp_path: Path) -> None:
    """--root must hold callscript/ and tests/; exit 2 otherwise."""
    assert _run("--root", str(tmp_path))[0] == 2


@pytest.mark.parametrize(("fmt", "path"), COMMITTED, ids=["md", "html"])
def test_committed_report_is_up_to_date(fmt: str, path: Path) -> None:
    """docs/rfc-report.{md,html} match a fresh report (regenerate: callscript rfc-report -o FILE)."""
    assert path.exists(), f"{path.relative_to(ROOT)} is missing"
    fresh = rfc_report.render(ROOT, fmt, path)
    committed = path.read_text(encoding="utf-8")
    assert committed.replace("\r\n", "\n") == fresh, (
        f"{path.relative_to(ROOT)} is stale: run "
        f"`callscript rfc-report --format {fmt} --output {path.relative_to(ROOT).as_posix()}`"
    )
