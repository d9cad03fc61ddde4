"""RFC traceability: which RFC sections the code claims, where, and which tests prove them.

- ``collect.py``: reads the tags (comments in ``callscript/``, test docstrings in ``tests/``);
  ``tests/test_traceability.py`` uses it to fail on a tag no test proves.
- ``sections.py``: the RFC 3261 §8–§22 table of contents, as data.
- ``report.py``: the report as data (tags, places, tests, section coverage).
- ``render.py``: Markdown and static HTML; ``callscript rfc-report`` writes them.
"""

from __future__ import annotations

from callscript.rfcreport.render import render_html, render_markdown
from callscript.rfcreport.report import Report, build_report

__all__ = ["Report", "build_report", "render_html", "render_markdown"]
