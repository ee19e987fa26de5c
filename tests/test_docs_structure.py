"""The README is a landing page and ``docs/`` the reference: every page has a table of contents
that matches its headings, every relative link and anchor resolves, and the reference covers
what the code registers (check types, hooks) and the failures users meet.

A page's table of contents sits between ``<!-- toc -->`` and ``<!-- /toc -->`` and lists its
``##`` and ``###`` headings with GitHub's anchors; on a mismatch the failure message prints the
block to paste.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from probed.plugins import check_types, get_plugin_manager

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
REQUIRED_PAGES = (
    "check-types.md",
    "configuration.md",
    "metrics.md",
    "endpoints.md",
    "plugins.md",
    "performance.md",
    "deployment.md",
    "security.md",
    "troubleshooting.md",
)
TOC_RE = re.compile(r"<!-- toc -->\n(.*?)<!-- /toc -->", re.S)
LINK_RE = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")


def strip_fences(text: str) -> str:
    """The page without its fenced code blocks (a ``# comment`` there is not a heading)."""
    kept, fence = [], ""
    for line in text.splitlines():
        marker = re.match(r"^\s*(```+)", line)
        if fence:
            if marker and marker.group(1) == fence and not line.strip()[len(fence) :]:
                fence = ""
            continue
        if marker:
            fence = marker.group(1)
            continue
        kept.append(line)
    return "\n".join(kept)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"<[^>]+>", "", heading).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def headings(text: str) -> list[tuple[int, str]]:
    return [
        (len(m.group(1)), m.group(2).strip())
        for m in re.finditer(r"^(#{1,6}) (.+)$", strip_fences(text), re.M)
    ]


def anchors(text: str) -> set[str]:
    seen: dict[str, int] = {}
    found = set()
    for _level, title in headings(text):
        base = slug(title)
        n = seen.get(base, 0)
        seen[base] = n + 1
        found.add(base if n == 0 else f"{base}-{n}")
    return found


def expected_toc(text: str) -> str:
    lines = []
    seen: dict[str, int] = {}
    for level, title in headings(text):
        base = slug(title)
        n = seen.get(base, 0)
        seen[base] = n + 1
        if level in (2, 3):
            anchor = base if n == 0 else f"{base}-{n}"
            lines.append(f"{'  ' * (level - 2)}- [{title}](#{anchor})")
    return "\n".join(lines) + "\n"


def pages() -> list[Path]:
    return [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted(DOCS.glob("*.md"))]


def test_the_reference_pages_exist_and_the_readme_links_each() -> None:
    readme = (ROOT / "README.md").read_text()
    for name in REQUIRED_PAGES:
        assert (DOCS / name).is_file(), f"docs/{name} is missing"
    for page in sorted(DOCS.glob("*.md")):
        assert f"(docs/{page.name})" in readme, f"README.md does not link docs/{page.name}"
    assert "(CHANGELOG.md)" in readme


@pytest.mark.parametrize("page", sorted(DOCS.glob("*.md")), ids=lambda p: p.name)
def test_every_docs_page_has_a_title_and_a_table_of_contents_matching_its_headings(
    page: Path,
) -> None:
    text = page.read_text()
    assert text.startswith("# "), f"docs/{page.name} must start with a '# ' title"
    assert [level for level, _ in headings(text)].count(1) == 1, "one '# ' title per page"
    toc = TOC_RE.search(text)
    assert toc, f"docs/{page.name} has no <!-- toc --> ... <!-- /toc --> block"
    want = expected_toc(text)
    assert toc.group(1) == want, (
        f"docs/{page.name}: the table of contents does not match the headings; it should be:\n"
        f"<!-- toc -->\n{want}<!-- /toc -->"
    )


@pytest.mark.parametrize("page", pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_and_anchor_resolves(page: Path) -> None:
    text = strip_fences(page.read_text())
    broken = []
    for target in LINK_RE.findall(text):
        if re.match(r"^[a-z]+:", target):
            continue
        path_part, _, anchor = target.partition("#")
        dest = (page.parent / path_part).resolve() if path_part else page
        if not dest.exists():
            broken.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest.read_text()):
            broken.append(f"{target}: no heading with anchor #{anchor} in {dest.name}")
    assert not broken, f"{page.relative_to(ROOT)}: broken links:\n" + "\n".join(broken)


def test_every_check_type_has_a_section_in_the_check_types_page() -> None:
    pm = get_plugin_manager(plugins_dirs=[ROOT / "plugins"])
    titles = " ".join(title for _level, title in headings((DOCS / "check-types.md").read_text()))
    missing = [name for name in check_types(pm) if f"`{name}`" not in titles]
    assert not missing, f"check types without a heading in docs/check-types.md: {missing}"


@pytest.mark.parametrize(
    "symptom",
    [
        "unknown type 'file_age'",
        "no check named",
        "externally-managed-environment",
        "no matches found",
        "is not set",
        "did you mean",
        "port: probed-metrics",
        "ProbedCheckNotRunning",
        "address already in use",
    ],
)
def test_troubleshooting_covers_the_failures_users_met(symptom: str) -> None:
    text = (DOCS / "troubleshooting.md").read_text()
    assert symptom in text, f"docs/troubleshooting.md says nothing about {symptom!r}"


def test_the_changelog_keeps_a_changelog_with_an_unreleased_section_and_upgrade_notes() -> None:
    text = (ROOT / "CHANGELOG.md").read_text()
    versions = re.findall(r"^## \[([^\]]+)\]", text, re.M)
    assert versions[:1] == ["Unreleased"], versions
    assert "0.1.0" in versions
    assert re.search(r"^### Upgrade notes", text, re.M), "no upgrade notes"
    pyproject = (ROOT / "pyproject.toml").read_text()
    version = re.search(r'^version = "([^"]+)"', pyproject, re.M)
    assert version and version.group(1) in versions, "pyproject's version has no changelog entry"
