"""Every ``docs/<name>.md §N`` citation in the code names an existing file and section heading.

A citation is ``docs/<name>.md`` followed by one or more sections, ``§4.4``, ``§4.5-4.6``,
``§2-§3`` or ``§1, §1a, §4.4``; a section exists when the file has a heading ``## §N ...``
(any level from 2 to 4). Citations of the specification files that live outside the repository
(``spec §``, ``shared/spec/amct.md``, ``ARCHITECTURE §``) are refused.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

THIS_FILE = Path(__file__).resolve()
ROOT = THIS_FILE.parent.parent
SCANNED = ("front", "graph", "passes", "runtime", "qdqforge", "tests")
SUFFIXES = {".py", ".md", ".proto"}
SECTION = r"\d+[a-z]?(?:\.\d+)?"
ONE_OR_RANGE = rf"§{SECTION}(?:-§?{SECTION})?"
CITATION = re.compile(rf"docs/([\w-]+\.md)\s+({ONE_OR_RANGE}(?:,\s*{ONE_OR_RANGE})*)")
HEADING = re.compile(rf"^#{{2,4}} §({SECTION}) ", re.MULTILINE)
OUTSIDE_SPEC = re.compile(r"\bspec\s+§|shared/spec/|ARCHITECTURE\s+§")


def _sources() -> list[Path]:
    return sorted(
        path
        for folder in SCANNED
        for path in (ROOT / folder).rglob("*")
        if path.suffix in SUFFIXES and "__pycache__" not in path.parts and path != THIS_FILE
    )


def _cited_sections(group: str) -> list[str]:
    """``"§4.5-4.6, §1a"`` -> ``["4.5", "4.6", "1a"]`` (both ends of a range)."""
    return re.findall(SECTION, group.replace("§", " "))


def citations(text: str) -> list[tuple[str, str]]:
    """Every (file name, section) a text cites, in order."""
    return [
        (match.group(1), section)
        for match in CITATION.finditer(text)
        for section in _cited_sections(match.group(2))
    ]


def headings(doc: Path) -> set[str]:
    return set(HEADING.findall(doc.read_text(encoding="utf-8")))


def broken_citations(text: str, docs_dir: Path) -> list[str]:
    """``"docs/x.md §9"`` for each citation whose file or heading is missing."""
    broken = []
    for name, section in citations(text):
        doc = docs_dir / name
        if not doc.is_file() or section not in headings(doc):
            broken.append(f"docs/{name} §{section}")
    return broken


def test_the_checker_finds_every_form_and_flags_a_missing_section():
    text = "(docs/amct.md §1, §1a, §4.4) docs/amct.md §4.5-4.6 docs/amct.md §2-§3; docs/x.md §1"
    assert citations(text) == [
        ("amct.md", "1"),
        ("amct.md", "1a"),
        ("amct.md", "4.4"),
        ("amct.md", "4.5"),
        ("amct.md", "4.6"),
        ("amct.md", "2"),
        ("amct.md", "3"),
        ("x.md", "1"),
    ]
    assert broken_citations("docs/amct.md §4.4, §9.9", ROOT / "docs") == ["docs/amct.md §9.9"]
    assert broken_citations("docs/x.md §1", ROOT / "docs") == ["docs/x.md §1"]


def test_the_code_cites_docs_sections():
    cited = [c for path in _sources() for c in citations(path.read_text(encoding="utf-8"))]
    assert len(cited) > 50, "the citations moved or the pattern stopped matching them"


def test_every_docs_citation_resolves():
    broken = [
        f"{path.relative_to(ROOT)}: {citation}"
        for path in _sources()
        for citation in broken_citations(path.read_text(encoding="utf-8"), ROOT / "docs")
    ]
    assert broken == []


def test_nothing_cites_the_specification_outside_the_repository():
    outside = [
        str(path.relative_to(ROOT))
        for path in _sources()
        if OUTSIDE_SPEC.search(path.read_text(encoding="utf-8"))
    ]
    assert outside == []


CODE_FOLDERS = ("front", "graph", "passes", "runtime", "qdqforge")


def _code_folders() -> list[Path]:
    return sorted(
        {path.parent for top in CODE_FOLDERS for path in (ROOT / top).rglob("*.py")},
    )


def test_every_code_folder_has_a_readme_naming_each_module():
    """A README per code folder says what lives there: each ``<module>.py`` is named in it."""
    missing = []
    for folder in _code_folders():
        readme = folder / "README.md"
        text = readme.read_text(encoding="utf-8") if readme.is_file() else ""
        missing += [
            str(module.relative_to(ROOT))
            for module in sorted(folder.glob("*.py"))
            if module.name != "__init__.py" and f"`{module.name}`" not in text
        ]
    assert missing == []


def test_shared_test_code_lives_in_tests_helpers():
    """As tests/README.md says: no module imports a ``test_*.py`` module (also in functions)."""
    offenders = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            offenders += [
                f"{path.relative_to(ROOT)}:{node.lineno} {name}"
                for name in names
                if name.startswith("tests.") and name.rsplit(".", 1)[-1].startswith("test_")
            ]
    assert offenders == []
