"""docs/ARCHITECTURE.md stays one page (the guide's rule) and points only at sections DESIGN.md has."""

from __future__ import annotations

import re
from pathlib import Path

DOCS = Path(__file__).resolve().parents[2] / "docs"
PAGE_WORDS = 900  # about a printed page of prose beside the picture and the tables


def _prose(text: str) -> str:
    """The page without its fenced picture and its tables."""
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    return "\n".join(line for line in text.splitlines() if not line.startswith("|"))


def test_the_architecture_page_is_one_page() -> None:
    words = len(_prose((DOCS / "ARCHITECTURE.md").read_text()).split())
    assert words <= PAGE_WORDS, f"docs/ARCHITECTURE.md has {words} words of prose: move the detail to DESIGN.md"


def test_every_design_section_the_architecture_page_names_exists() -> None:
    page = (DOCS / "ARCHITECTURE.md").read_text()
    table = page.split("## In full:", 1)[1]
    rows = [row for row in table.splitlines()[3:] if row.startswith("|")]
    named = [part.strip() for row in rows for part in row.split("|")[2].split(";")]
    design = (DOCS / "DESIGN.md").read_text().splitlines()
    headings = [line.lstrip("#").strip() for line in design if line.startswith("#")]
    assert named, "the page's table of DESIGN.md sections is empty"
    for section in named:
        assert any(h.startswith(section) for h in headings), f"DESIGN.md has no section {section!r}"
