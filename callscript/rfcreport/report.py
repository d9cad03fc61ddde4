"""The traceability report as data: tags, their places, their tests, and RFC 3261 coverage.

A section of RFC 3261 §8–§22 is *claimed* when a tag in the code names it (or
one of its steps, or a part below what the table of contents lists), *claimed
through subsections* when only sections below it are, and *unclaimed* otherwise.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path

from callscript.rfcreport.collect import CodePlace, Tag, TestPlace, claims, proofs
from callscript.rfcreport.sections import RFC, SECTIONS


class Coverage(enum.Enum):
    """How much of a section the code claims."""

    CLAIMED = "claimed"
    SUBSECTIONS = "through subsections"
    UNCLAIMED = "unclaimed"


@dataclass(frozen=True, slots=True)
class Entry:
    """One tag of the code: where it is implemented and which tests prove it."""

    tag: Tag
    code: tuple[CodePlace, ...]
    tests: tuple[TestPlace, ...]

    @property
    def deviation(self) -> bool:
        """Whether some place marks it as a deviation from the RFC."""
        return any(place.deviation for place in self.code)


@dataclass(frozen=True, slots=True)
class Section:
    """One section of the RFC 3261 table of contents and how much the code claims of it."""

    number: str
    title: str
    coverage: Coverage
    tags: tuple[Tag, ...]

    @property
    def depth(self) -> int:
        """0 for a chapter (``16``), 1 for ``16.3``..."""
        return self.number.count(".")


@dataclass(frozen=True, slots=True)
class Report:
    """Everything the rendered report shows."""

    entries: tuple[Entry, ...]
    sections: tuple[Section, ...]

    @property
    def rfcs(self) -> tuple[int, ...]:
        """The RFC numbers that have tags, in order."""
        return tuple(sorted({entry.tag.rfc for entry in self.entries}))

    @property
    def unclaimed(self) -> tuple[Section, ...]:
        """RFC 3261 §8–§22 sections nothing claims."""
        return tuple(s for s in self.sections if s.coverage is Coverage.UNCLAIMED)

    @property
    def unproven(self) -> tuple[Entry, ...]:
        """Tags of the code that no test docstring opens with."""
        return tuple(entry for entry in self.entries if not entry.tests)


def toc_section(section: str) -> str | None:
    """The RFC 3261 §8–§22 table-of-contents section that ``section`` falls in, if any."""
    known = {number for number, _ in SECTIONS}
    parts = section.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in known:
            return candidate
        parts.pop()
    return None


def build_report(root: Path) -> Report:
    """Collect the tags under ``root`` (``callscript/`` and ``tests/``) into a :class:`Report`."""
    code = claims(root)
    tests = proofs(root)
    entries = tuple(
        sorted(
            (
                Entry(Tag.parse(text), tuple(places), tuple(tests.get(text, ())))
                for text, places in code.items()
            ),
            key=lambda entry: entry.tag.key,
        )
    )
    direct: dict[str, list[Tag]] = {}
    for entry in entries:
        if entry.tag.rfc == RFC:
            number = toc_section(entry.tag.section)
            if number is not None:
                direct.setdefault(number, []).append(entry.tag)
    sections = []
    for number, title in SECTIONS:
        if number in direct:
            coverage = Coverage.CLAIMED
        elif any(claimed.startswith(f"{number}.") for claimed in direct):
            coverage = Coverage.SUBSECTIONS
        else:
            coverage = Coverage.UNCLAIMED
        sections.append(Section(number, title, coverage, tuple(direct.get(number, ()))))
    return Report(entries, tuple(sections))
