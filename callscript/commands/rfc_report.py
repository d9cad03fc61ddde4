"""List the RFC sections the code claims, where, and the tests that prove them.

Also lists the sections of RFC 3261 §8–§22 that nothing claims yet. Markdown to
stdout by default; the repository keeps a copy in docs/rfc-report.md and
docs/rfc-report.html (regenerate them with --output after adding tags).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from callscript.rfcreport import build_report, render_html, render_markdown

FORMATS = ("md", "html")


def default_root() -> Path:
    """The source tree this callscript package was loaded from (holding callscript/ and tests/)."""
    return Path(__file__).resolve().parents[2]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``callscript rfc-report``."""
    parser.add_argument("--format", "-f", choices=FORMATS, help="md (default) or html")
    parser.add_argument("--output", "-o", metavar="FILE", help="write here instead of stdout")
    parser.add_argument(
        "--root", metavar="DIR", help="the source tree (default: the one callscript runs from)"
    )


def link_prefix(output: Path | None, root: Path) -> str:
    """The relative path from the directory of ``output`` back to ``root`` ('' for stdout)."""
    if output is None:
        return ""
    relative = os.path.relpath(root.resolve(), output.resolve().parent)
    return "" if relative == "." else Path(relative).as_posix() + "/"


def render(root: Path, fmt: str, output: Path | None) -> str:
    """The report for ``root`` in format ``fmt``, with links that work from ``output``."""
    report = build_report(root)
    prefix = link_prefix(output, root)
    if fmt == "html":
        return render_html(report, link_prefix=prefix)
    return render_markdown(report, link_prefix=prefix)


def run(args: argparse.Namespace) -> int:
    """Write the report; returns the exit code."""
    root = Path(args.root) if args.root else default_root()
    if not (root / "callscript").is_dir() or not (root / "tests").is_dir():
        print(
            f"callscript rfc-report: {root} holds no callscript/ and tests/ (use --root)",
            file=sys.stderr,
        )
        return 2
    output = Path(args.output) if args.output else None
    fmt = args.format or ("html" if output is not None and output.suffix == ".html" else "md")
    text = render(root, fmt, output)
    if output is None:
        sys.stdout.write(text)
        return 0
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        print(f"callscript rfc-report: cannot write {output}: {exc.strerror}", file=sys.stderr)
        return 1
    return 0
