"""Every repository path the docs and contrib files mention exists.

A comment saying "use contrib/kubernetes/podmonitor.yaml" when the file is
contrib/kubernetes/monitoring/podmonitor.yaml passes every validator and still sends the
reader nowhere. This test reads every text file under contrib/ (third-party node_modules and
caches left out), README.md and docs/, and checks each path-like mention that starts with a
name the repository has (a top-level entry such as `contrib/` or `checks.d/`, a contrib
folder such as `kubernetes/`, or an entry beside the mentioning file), plus every relative
Markdown link. A mention resolves if it exists relative to the repository root, to contrib/,
or to the mentioning file's folder (globs must match something). Absolute paths (container
and host paths such as /etc/probed) and URLs are not repository paths and are left out.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Final

from tests.contrib._tools import CONTRIB, ROOT

SKIP_DIRS: Final = {"node_modules", ".ruff_cache", "__pycache__", ".git", ".pytest_cache"}
TEXT_SUFFIXES: Final = {
    ".md", ".yaml", ".yml", ".sh", ".service", ".env", ".cron", ".tmpl", ".mjs", ".py", ".toml",
    ".json", ".txt", ".cfg", ".ini", "",
}  # fmt: skip
MAX_BYTES: Final = 200_000  # generated schemas are data, not prose
# A path-like token: segments of name characters joined by '/', not glued to a preceding
# name character, '/', '$', '~', '@' or ':' (which would make it part of a URL, an absolute
# path, a variable or an npm scope), optionally starting with ./ or ../.
_TOKEN: Final = re.compile(
    r"(?<![\w/$~@:.%{-])(?P<path>(?:\.\.?/)*[A-Za-z0-9_][\w.*-]*(?:/[\w.*-]+)*/?)(?=[^\w/]|$)"
)
_MD_LINK: Final = re.compile(r"\]\((?P<target>[^)\s#]+)(?:#[^)]*)?\)")


def _text_files(root: Path, repo: Path) -> Iterator[Path]:
    """The files whose mentions are checked: contrib/**, README.md, docs/**."""
    yield repo / "README.md"
    for base in (root, repo / "docs"):
        if not base.is_dir():
            continue
        for path in sorted(base.rglob("*")):
            if SKIP_DIRS & set(path.relative_to(repo).parts) or not path.is_file():
                continue
            if path.suffix in TEXT_SUFFIXES and path.stat().st_size <= MAX_BYTES:
                yield path


def _resolves(mention: str, bases: list[Path]) -> bool:
    mention = mention.rstrip("/.,:;")
    for base in bases:
        if any(c in mention for c in "*?["):
            if next(iter(base.glob(mention)), None) is not None:
                return True
        elif (base / mention).exists():
            return True
    return False


def _known_heads(repo: Path, root: Path, folder: Path) -> set[str]:
    """First path segments that mean "a path in this repository"."""
    heads = set()
    for base in (repo, root, folder):
        if base.is_dir():
            heads |= {p.name for p in base.iterdir() if p.name not in SKIP_DIRS}
    return heads


# Files the docs show in sample output only (probed validate's error listing): never real.
ILLUSTRATIVE: Final = {"checks.d/api.yaml", "checks.d/db.yaml", "checks.d/bad.yaml"}
# Files a doc tells the reader to create: `> FILE`, `-o FILE`, or a fenced block whose first
# line is `# FILE` / `// FILE`.
_CREATED: Final = re.compile(r"(?:>|\s-o|--output)\s+(?P<path>[\w./-]+)")
_FILE_HEADER: Final = re.compile(r"^\s*(?:#|//)\s*(?P<path>[\w./-]+/[\w.-]+)(?:\s|$)")
_CD: Final = re.compile(r"\bcd\s+(?P<path>[\w./-]+)")
# What may follow a mention: an image tag (prom/prometheus:v2.53.1) or a placeholder
# (src/probed_<thing>) makes it something else than a path.
_NOT_A_PATH_AFTER: Final = re.compile(r":[\w.-]*\d|[<{$]")


def _created_by(lines: list[str]) -> set[str]:
    created = set()
    after_fence = False
    for line in lines:
        if after_fence and (match := _FILE_HEADER.match(line)):
            created.add(match["path"])
        after_fence = line.lstrip().startswith("```") and not after_fence
        created |= {m["path"] for m in _CREATED.finditer(line)}
    return created


def _mentions(line: str, heads: set[str], markdown: bool) -> list[str]:
    found = []
    for match in _TOKEN.finditer(line):
        mention = match["path"]
        if not mention.endswith("/") and "/" not in mention:
            continue  # one word: a name, not a path (`folder/` is a path)
        if _NOT_A_PATH_AFTER.match(line, match.end()):
            continue  # an image reference or a placeholder
        relative = mention.startswith(("./", "../"))
        head = mention.lstrip("./").split("/", 1)[0]
        if relative or head in heads:
            found.append(mention)
    if markdown:
        for match in _MD_LINK.finditer(line):
            target = match["target"]
            if "://" not in target and not target.startswith(("mailto:", "/")):
                found.append(target)
    return found


def path_problems(repo: Path, root: Path | None = None) -> list[str]:
    """FILE:LINE: mention, for every repository path mentioned that does not exist.

    :param repo: the repository root (README.md and docs/ are read from it).
    :param root: the contrib folder (default ``repo/contrib``).
    """
    root = root if root is not None else repo / "contrib"
    problems = []
    for path in _text_files(root, repo):
        if not path.is_file():
            continue
        heads = _known_heads(repo, root, path.parent)
        lines = path.read_text(errors="replace").splitlines()
        created = _created_by(lines) | ILLUSTRATIVE
        for number, line in enumerate(lines, 1):
            # ./ and ../ count from the file's folder, the repository root (where the docs'
            # commands run) or a folder the line `cd`s into. A folder named earlier on the
            # line (a table row's first cell) is a base for the mentions after it.
            relative_bases = [path.parent, repo]
            for cd in _CD.finditer(line):
                relative_bases += [repo / cd["path"], path.parent / cd["path"]]
            bases = [repo, root, path.parent]
            for mention in dict.fromkeys(_mentions(line, heads, path.suffix == ".md")):
                if mention.removeprefix("./").rstrip("/") in created:
                    continue
                if mention.startswith(("./", "../")):
                    ok = _resolves(mention, relative_bases)
                else:
                    ok = _resolves(mention, bases)
                if ok:
                    bases += [b / mention for b in list(bases) if (b / mention).is_dir()]
                else:
                    problems.append(f"{path.relative_to(repo)}:{number}: {mention}")
    return problems


def test_every_repository_path_mentioned_in_contrib_readme_and_docs_exists() -> None:
    problems = path_problems(ROOT)
    assert problems == [], "\n".join(problems)


def _small_repo(tmp_path: Path, notes: str) -> Path:
    """A repository with a few files and contrib/x/notes.md holding ``notes``."""
    repo = tmp_path / "repo"
    for name in (
        "contrib/kubernetes/monitoring/podmonitor.yaml",
        "contrib/kubernetes/sidecar/deployment.yaml",
        "checks.d/host.yaml",
        "probed/hookspecs.py",
    ):
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text("x\n")
    (repo / "README.md").write_text("# repo\n")
    (repo / "contrib" / "x").mkdir()
    (repo / "contrib" / "x" / "notes.md").write_text(notes)
    return repo


def test_the_checker_reads_mentions_of_every_form(tmp_path: Path) -> None:
    """It must see paths in comments, tables, commands and links, or it checks nothing."""
    notes = "\n".join(
        [
            "# see contrib/kubernetes/monitoring/podmonitor.yaml and `kubernetes/sidecar/`",
            "cp checks.d/*.yaml /etc/probed/checks.d/   # absolute: not a repository path",
            "[hooks](../../probed/hookspecs.py) https://example.com/contrib/nothing.yaml",
            "image: prom/prometheus:v2.53.1  label app.kubernetes.io/name  apps/v1",
        ]
    )
    assert path_problems(_small_repo(tmp_path / "good", notes)) == []
    broken = notes.replace("monitoring/podmonitor", "podmonitor").replace("hookspecs", "nope")
    broken = broken.replace("checks.d/*.yaml", "checks.d/*.yml").replace("sidecar/", "sidecars/")
    problems = path_problems(_small_repo(tmp_path / "broken", broken))
    assert problems == [
        "contrib/x/notes.md:1: contrib/kubernetes/podmonitor.yaml",
        "contrib/x/notes.md:1: kubernetes/sidecars/",
        "contrib/x/notes.md:2: checks.d/*.yml",
        "contrib/x/notes.md:3: ../../probed/nope.py",
    ]


def test_a_path_that_moved_is_reported_with_file_and_line(tmp_path: Path) -> None:
    """Finding 4 as it was: prometheus-kubernetes.yml naming contrib/kubernetes/podmonitor.yaml."""
    repo = tmp_path / "repo"
    (repo / "contrib" / "kubernetes" / "monitoring").mkdir(parents=True)
    (repo / "contrib" / "kubernetes" / "monitoring" / "podmonitor.yaml").write_text("kind: x\n")
    (repo / "contrib" / "prometheus").mkdir()
    shutil.copy(
        CONTRIB / "prometheus" / "prometheus-kubernetes.yml", repo / "contrib" / "prometheus"
    )
    (repo / "README.md").write_text("See `contrib/prometheus/prometheus-kubernetes.yml`.\n")
    assert path_problems(repo) == []
    moved = repo / "contrib" / "prometheus" / "prometheus-kubernetes.yml"
    moved.write_text(
        moved.read_text().replace(
            "contrib/kubernetes/monitoring/podmonitor.yaml", "contrib/kubernetes/podmonitor.yaml"
        )
    )
    problems = path_problems(repo)
    assert len(problems) == 1, problems
    assert problems[0].startswith("contrib/prometheus/prometheus-kubernetes.yml:")
    assert problems[0].endswith(": contrib/kubernetes/podmonitor.yaml")
