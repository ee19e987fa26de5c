"""Mutation score of probed's core modules, measured with mutmut on a throw-away copy of the tree.

Not part of the test suite. For each core module it copies the tree (``git archive`` of a ref,
or a plain copy of a directory with ``--tree``) into a scratch directory, writes a ``setup.cfg``
telling mutmut to mutate that one file and to run only the module's fast in-process test files
(``TEST_MAP`` below), runs ``mutmut run`` there under ``nice -n 10``, then reads mutmut's
results and prints, per module, killed / total and every mutant that was not killed with its
``file:line`` and the change. The working tree is never touched: mutmut writes its ``mutants/``
directory inside the copy.

    pip install mutmut==3.8.1
    python benchmarks/mutation.py                     # all core modules, at HEAD
    python benchmarks/mutation.py state scheduler     # some of them
    python benchmarks/mutation.py --tree .            # the working tree, uncommitted files too

Score = (killed + timeout) / total. A mutant whose tests run past mutmut's time limit
((estimated test time + 1 s) x 15, then SIGXCPU) counts as killed by timeout, shown apart.
"No tests" (no selected test calls the mutated function) counts as not killed.

mutmut only mutates code inside functions and methods: module-level constants, class bodies
(pydantic field declarations, dataclass defaults) and decorated functions that it cannot wrap
are not mutated, so they are not in these figures.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import fnmatch
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

REPO: Final = Path(__file__).resolve().parent.parent
MUTMUT_VERSION: Final = "3.8.1"
INSTALL_HINT: Final = f"pip install mutmut=={MUTMUT_VERSION}"

# module -> the fast test files that exercise it in-process (tests that start ``python -m
# probed`` in a subprocess cannot kill a mutant: mutmut only runs the tests it saw call the
# mutated function, in its own process). Missing files are skipped, so files that other work
# adds later can be listed here already.
TEST_MAP: Final[dict[str, tuple[str, ...]]] = {
    "state": (
        "tests/test_state.py",
        "tests/test_state_transitions.py",
        "tests/test_exposition.py",
        "tests/test_daemon.py",
    ),
    "runner": (
        "tests/test_runner.py",
        "tests/test_scheduler.py",
        "tests/test_daemon.py",
        "tests/checks/test_tcp.py",
    ),
    "scheduler": (
        "tests/test_scheduler.py",
        "tests/test_scheduler_contract.py",
        "tests/test_daemon.py",
    ),
    "health": (
        "tests/test_health_contract.py",
        "tests/test_daemon.py",
    ),
    "once": ("tests/test_once.py", "tests/test_cli.py", "tests/test_secrets_everywhere.py"),
    "redact": (
        "tests/test_redact.py",
        "tests/test_redact_forms.py",
        "tests/test_secrets_everywhere.py",
        "tests/test_sentry.py",
        "tests/test_config_validation.py",  # hide() in configuration errors
    ),
    "_interpolate": (
        "tests/test_interpolate.py",
        "tests/test_config.py",
    ),
    "checkfile": (
        "tests/test_config.py",
        "tests/test_config_validation.py",
        "tests/test_timing_validation.py",
        "tests/test_reload.py",
    ),
    "common": (
        "tests/test_config.py",
        "tests/test_config_validation.py",
        "tests/test_timing_validation.py",
        "tests/test_schema.py",
    ),
    "_document": (
        "tests/test_config.py",
        "tests/test_config_validation.py",
        "tests/test_messages.py",
    ),
    "settings": (
        "tests/test_config.py",
        "tests/test_config_validation.py",
        "tests/test_cli_precedence.py",
    ),
    "schema": (
        "tests/test_schema.py",
        "tests/test_config.py",
        "tests/test_config_validation.py",
    ),
    "exposition": (
        "tests/test_exposition.py",
        "tests/test_exposition_contract.py",
    ),
}

# Extra pytest arguments for the module's selection (applied to all of its files).
SELECT: Final[dict[str, tuple[str, ...]]] = {"once": ("-k", "once")}

# Modules whose tests run ``python -m probed`` in a subprocess. mutmut only runs a mutant
# against the tests it saw call the mutated function in its own process, so for these the
# script runs mutmut twice: after the first run it associates every test of the module's files
# with every function of the module, forgets the "no tests" and "survived" verdicts and runs
# again. The subprocesses import the mutated copy (``PYTHONPATH`` starts with ``mutants/``) and
# inherit ``MUTANT_UNDER_TEST``, so they run the mutant.
SUBPROCESS_TESTED: Final = frozenset({"once"})

SITECUSTOMIZE: Final = """\
import os
import sys

# Only processes that tests start see MUTANT_UNDER_TEST at start-up: mutmut sets it later.
_mode = os.environ.get("MUTANT_UNDER_TEST")
if _mode is not None:
    sys.path.insert(0, {mutants!r})
    if _mode in ("stats", "list_all_tests", "mutant_generation"):
        os.environ["MUTANT_UNDER_TEST"] = ""
"""

PYTEST_ARGS: Final = ("-p", "no:randomly", "-p", "no:cacheprovider")

# mutmut 3.8's exit code -> status (mutmut/stats.py); anything else is "suspicious".
STATUS_BY_EXIT_CODE: Final[dict[int | None, str]] = {
    1: "killed",
    3: "killed",
    0: "survived",
    5: "no tests",
    33: "no tests",
    2: "interrupted",
    None: "not checked",
    34: "skipped",
    35: "suspicious",
    36: "timeout",
    37: "caught by type check",
    -24: "timeout",
    24: "timeout",
    152: "timeout",
    255: "timeout",
    -11: "segfault",
    -9: "segfault",
}

IGNORE: Final = shutil.ignore_patterns(
    ".git", "mutants", "__pycache__", "*.egg-info", ".mypy_cache", ".ruff_cache",
    ".pytest_cache", ".hypothesis", "node_modules", "build", "dist", "setup.cfg",
)  # fmt: skip


@dataclass
class Mutant:
    name: str
    status: str
    where: str = ""
    change: str = ""


@dataclass
class ModuleResult:
    module: str
    path: str
    tests: list[str]
    seconds: float
    mutants: list[Mutant] = field(default_factory=list)
    error: str = ""

    def count(self, *statuses: str) -> int:
        return sum(m.status in statuses for m in self.mutants)

    @property
    def killed(self) -> int:
        return self.count("killed", "timeout")

    @property
    def score(self) -> float:
        return 100.0 * self.killed / len(self.mutants) if self.mutants else 0.0


def make_base(work: Path, ref: str, tree: Path | None) -> str:
    """Put a copy of the project in ``work/base``; return a description of what was copied."""
    base = work / "base"
    if tree is not None:
        shutil.copytree(tree, base, ignore=IGNORE)
        return f"tree {tree.resolve()}"
    base.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", ref], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(base)], input=archive, check=True)
    sha = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", ref],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    return f"{ref} ({sha})"


def write_config(copy: Path, target: str, tests: list[str]) -> None:
    def lines(values: list[str] | tuple[str, ...]) -> str:
        return "\n" + "\n".join(f"    {v}" for v in values)

    # mutmut copies probed/ and tests/ into mutants/; tests also read checks.d/, plugins/...
    others = sorted(
        p.name for p in copy.iterdir() if p.name not in ("probed", "tests", "setup.cfg")
    )
    (copy / "setup.cfg").write_text(
        "[mutmut]\n"
        "source_paths=probed\n"
        f"also_copy={lines(others)}\n"
        f"only_mutate={target}\n"
        f"pytest_add_cli_args_test_selection={lines(tests)}\n"
        f"pytest_add_cli_args={lines(PYTEST_ARGS)}\n"
    )


def run_module(
    work: Path, module: str, max_children: int, verbose: bool, names: tuple[str, ...] = ()
) -> ModuleResult:
    target = f"probed/{module}.py"
    copy = work / module
    shutil.copytree(work / "base", copy, ignore=IGNORE)
    tests = [t for t in TEST_MAP[module] if (copy / t).exists()]
    result = ModuleResult(module, target, tests, 0.0)
    if not tests:
        result.error = "no test files found"
        return result
    write_config(copy, target, [*tests, *SELECT.get(module, ())])
    # The copy first, so nothing imports the working tree (probed is installed editable from
    # it). Subprocesses that tests start get mutants/ first from the sitecustomize, so they
    # run the mutant too; while mutmut records which tests call what they run the original
    # code (mutmut cannot record in another process).
    site = copy / "_mutation_site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE.format(mutants=str(copy / "mutants")))
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(map(str, (site, copy))),
        PYTHONDONTWRITEBYTECODE="1",
    )
    env.pop("MUTANT_UNDER_TEST", None)
    cmd = ["nice", "-n", "10", sys.executable, "-m", "mutmut", "run"]
    cmd += ["--max-children", str(max_children), *names]
    meta = copy / "mutants" / (target + ".meta")
    started = time.monotonic()
    with open(copy / "mutmut-run.log", "wb") as log:
        out = None if verbose else log
        done = subprocess.run(cmd, cwd=copy, env=env, stdout=out, stderr=subprocess.STDOUT)
        if done.returncode != 0 and module not in SUBPROCESS_TESTED:
            # Usually a timing-sensitive test that failed on a busy machine while mutmut
            # recorded coverage or ran the clean tests: once more (results so far are kept).
            log.write(b"\n--- mutmut failed; second attempt ---\n")
            log.flush()
            done = subprocess.run(cmd, cwd=copy, env=env, stdout=out, stderr=subprocess.STDOUT)
        if module in SUBPROCESS_TESTED and meta.exists():
            # mutmut stopped ("could not find any test case for any mutant") or said "no tests"
            _associate_all_tests(copy, target, [*tests, *SELECT.get(module, ())], env)
            done = subprocess.run(cmd, cwd=copy, env=env, stdout=out, stderr=subprocess.STDOUT)
    result.seconds = time.monotonic() - started
    if done.returncode != 0 or not meta.exists():
        tail = (copy / "mutmut-run.log").read_text(errors="replace")[-2000:]
        result.error = f"mutmut exited {done.returncode}; log {copy / 'mutmut-run.log'}\n{tail}"
        return result
    codes: dict[str, int | None] = json.loads(meta.read_text())["exit_code_by_key"]
    spans = _spans(copy / "mutants" / (target + ".spans"))
    mutated = (copy / "mutants" / target).read_text().splitlines()
    defs = _def_lines(copy / target)
    if names:  # the others were not run: leave them out of the counts
        codes = {n: c for n, c in codes.items() if any(fnmatch.fnmatch(n, p) for p in names)}
    for name, code in sorted(codes.items(), key=lambda kv: _natural(kv[0])):
        mutant = Mutant(name, STATUS_BY_EXIT_CODE.get(code, "suspicious"))
        if mutant.status != "killed":
            mutant.where, mutant.change = _locate(name, target, spans, mutated, defs)
        result.mutants.append(mutant)
    return result


SEED_STATS: Final = """\
import json
import sys
from pathlib import Path

from mutmut.__main__ import compute_watched_file_hashes, git_head
from mutmut.state import state
from mutmut.stats import load_stats, save_stats

target, durations = sys.argv[1], json.loads(Path(sys.argv[2]).read_text())
module = target.removesuffix(".py").replace("/", ".")
load_stats()
meta = json.loads(Path("mutants", target + ".meta").read_text())
for function, digest in meta["hash_by_function_name"].items():
    state().current_function_hashes[f"{module}.{function}"] = digest
    state().tests_by_mangled_function_name[f"{module}.{function}"] |= set(durations)
state().duration_by_test.update(durations)
state().stats_time = sum(durations.values())
state().watched_file_hashes = compute_watched_file_hashes()
state().git_commit = git_head()
save_stats()
"""


def _associate_all_tests(copy: Path, target: str, tests: list[str], env: dict[str, str]) -> None:
    """Tell mutmut that every test of ``tests`` covers every function of ``target``.

    Times each test with a plain pytest run (``--durations``), for mutmut's time limits.
    """
    timing = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "--durations=0", "--durations-min=0", "-rN",
         *PYTEST_ARGS, *tests],
        cwd=copy, env=env, capture_output=True, text=True,
    )  # fmt: skip
    durations: dict[str, float] = {}
    for line in timing.stdout.splitlines():
        found = re.fullmatch(r"\s*([0-9.]+)s (?:setup|call|teardown)\s+(\S+)", line)
        if found:
            durations[found[2]] = durations.get(found[2], 0.0) + float(found[1])
    if not durations:
        raise RuntimeError(f"could not time {tests}:\n{timing.stdout[-2000:]}{timing.stderr}")
    (copy / "durations.json").write_text(json.dumps(durations))
    subprocess.run(
        [sys.executable, "-c", SEED_STATS, target, str(copy / "durations.json")],
        cwd=copy, env=env, check=True,
    )  # fmt: skip
    meta_path = copy / "mutants" / (target + ".meta")
    meta = json.loads(meta_path.read_text())
    codes = meta["exit_code_by_key"]
    # "no tests", and also "survived": in-process tests of the module (if any) were all the
    # first run used; the subprocess tests may still kill those mutants.
    # (None = not run yet; a deleted key would not come back: the file is not re-mutated)
    for name in [n for n, code in codes.items() if code in (0, 5, 33)]:
        codes[name] = None
    meta_path.write_text(json.dumps(meta))


def _natural(name: str) -> tuple[str, int]:
    head, _, num = name.rpartition("__mutmut_")
    return head, int(num) if num.isdigit() else 0


def _spans(path: Path) -> dict[str, tuple[int, int]]:
    if not path.exists():
        return {}
    data = json.loads(path.read_text())
    return {k: (v[0], v[1]) for k, v in data["spans"].items()}


def _def_lines(path: Path) -> dict[str, int]:
    """``Class.method`` / ``function`` -> line of its ``def`` in the original file."""
    out: dict[str, int] = {}
    tree = ast.parse(path.read_text())
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            out[node.name] = node.lineno
        elif isinstance(node, ast.ClassDef):
            for sub in node.body:
                if isinstance(sub, ast.FunctionDef | ast.AsyncFunctionDef):
                    out[f"{node.name}.{sub.name}"] = sub.lineno
    return out


DEF: Final = re.compile(r"^\s*(async\s+)?def\s")


def _locate(
    name: str,
    target: str,
    spans: dict[str, tuple[int, int]],
    mutated: list[str],
    defs: dict[str, int],
) -> tuple[str, str]:
    """``file:line`` of a mutant in the original file, and ``old -> new`` for the changed line."""
    mangled = name.rpartition(".")[2]
    function = mangled.rpartition("__mutmut_")[0]
    if function.startswith("x\u01c1"):
        _, cls, meth = function.split("\u01c1", 2)
        qual = f"{cls}.{meth}"
    else:
        qual = function.removeprefix("x_")
    orig_span = spans.get(function + "__mutmut_orig")
    mut_span = spans.get(mangled)
    if orig_span is None or mut_span is None or qual not in defs:
        return f"{target} ({qual})", "?"
    orig = mutated[orig_span[0] - 1 : orig_span[1]]
    mut = mutated[mut_span[0] - 1 : mut_span[1]]
    def_at = next((i for i, line in enumerate(orig) if DEF.match(line)), 0)
    mut_def = next((i for i, line in enumerate(mut) if DEF.match(line)), 0)
    # the def lines differ by the mangled names (and by a mutated default value, if any)
    mut[mut_def] = re.sub(r"__mutmut_\d+\b", "__mutmut_orig", mut[mut_def])
    matcher = difflib.SequenceMatcher(a=orig, b=mut, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        line = defs[qual] + i1 - def_at
        name = qual.rpartition(".")[2]
        old = " / ".join(s.strip() for s in orig[i1:i2]) or "(nothing)"
        new = " / ".join(s.strip() for s in mut[j1:j2]) or "(line removed)"
        old, new = (t.replace(function + "__mutmut_orig", name) for t in (old, new))
        return f"{target}:{line} ({qual})", f"{old}  ->  {new}"
    return f"{target} ({qual})", "(no textual difference found)"


def print_report(results: list[ModuleResult], header: str, markdown: bool) -> None:
    print(header)
    if markdown:
        print("| module | killed | timeout | survived | no tests | total | score |")
        print("|---|---:|---:|---:|---:|---:|---:|")
    else:
        print(
            f"{'module':28} {'killed':>6} {'timeout':>7} {'survived':>8} {'no tests':>8}"
            f" {'other':>5} {'total':>5} {'score':>7} {'time':>6}"
        )
    for r in results:
        if r.error:
            print(f"{r.path:28} error: {r.error.splitlines()[0]}")
            continue
        other = len(r.mutants) - r.count("killed", "timeout", "survived", "no tests")
        if markdown:
            print(
                f"| `{r.path}` | {r.count('killed')} | {r.count('timeout')} | "
                f"{r.count('survived')} | {r.count('no tests')} | {len(r.mutants)} | "
                f"{r.score:.1f} % |"
            )
        else:
            print(
                f"{r.path:28} {r.count('killed'):6} {r.count('timeout'):7} "
                f"{r.count('survived'):8} {r.count('no tests'):8} {other:5} {len(r.mutants):5} "
                f"{r.score:6.1f}% {r.seconds:5.0f}s"
            )
    for r in results:
        if r.error:
            print(f"\n{r.path}: {r.error}")
            continue
        alive = [m for m in r.mutants if m.status not in ("killed",)]
        if not alive:
            continue
        print(f"\n{r.path}: not killed ({', '.join(r.tests)})")
        for m in alive:
            print(f"  [{m.status}] {m.where}: {m.change}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", help=f"some of: {' '.join(TEST_MAP)} (default all)")
    parser.add_argument("--ref", default="HEAD", help="git ref to copy (default HEAD)")
    parser.add_argument("--tree", type=Path, help="copy this directory instead of a git ref")
    parser.add_argument("--workdir", type=Path, help="scratch directory (default: a new temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    parser.add_argument("--max-children", type=int, default=2, help="parallel mutants (default 2)")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    parser.add_argument(
        "--mutants",
        nargs="+",
        default=(),
        metavar="NAME",
        help="run and count only these mutants (mutmut names such as"
        " probed.once.x_select__mutmut_3, or fnmatch patterns; e.g. a previous run's survivors"
        " from its --json); one module only",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="show mutmut's output")
    args = parser.parse_args()
    try:
        version = importlib.metadata.version("mutmut")
    except importlib.metadata.PackageNotFoundError:
        print(f"mutmut is not installed for {sys.executable}: {INSTALL_HINT}", file=sys.stderr)
        return 2
    if version != MUTMUT_VERSION:
        print(f"warning: mutmut {version}, figures were taken with {INSTALL_HINT}", file=sys.stderr)
    modules = args.modules or list(TEST_MAP)
    unknown = sorted(set(modules) - set(TEST_MAP))
    if unknown:
        parser.error(f"unknown module(s) {' '.join(unknown)}; choose from {' '.join(TEST_MAP)}")
    if args.mutants and len(modules) != 1:
        parser.error("--mutants needs exactly one module")
    work = args.workdir or Path(tempfile.mkdtemp(prefix="probed-mutation-"))
    work.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    try:
        what = make_base(work, args.ref, args.tree)
        results = []
        for module in modules:
            print(f"mutating probed/{module}.py ...", file=sys.stderr, flush=True)
            results.append(
                run_module(work, module, args.max_children, args.verbose, tuple(args.mutants))
            )
            r = results[-1]
            note = f" {r.error}" if r.error else ""
            print(
                f"  {r.killed}/{len(r.mutants)} killed in {r.seconds:.0f}s{note}",
                file=sys.stderr,
                flush=True,
            )
        header = (
            f"mutmut {version} on {what}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
            f"{args.max_children} children, {time.monotonic() - started:.0f}s in all"
        )
        if args.mutants:
            header += f"; only {len(args.mutants)} named mutant(s)"
        print_report(results, header, args.markdown)
        if args.json:
            args.json.write_text(
                json.dumps(
                    {
                        "header": header,
                        "modules": [
                            {
                                "path": r.path,
                                "tests": r.tests,
                                "seconds": round(r.seconds, 1),
                                "error": r.error,
                                "mutants": [m.__dict__ for m in r.mutants],
                            }
                            for r in results
                        ],
                    },
                    indent=1,
                )
            )
        return 1 if any(r.error for r in results) else 0
    finally:
        if args.keep or args.workdir:
            print(f"scratch directory kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
