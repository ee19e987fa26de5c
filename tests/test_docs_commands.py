"""Every shell command in the docs runs as written, on a clean checkout, in a fresh venv.

The pages read are ``README.md``, ``docs/*.md``, ``plugins/README.md`` and every README under
``contrib/``. Each fenced block tagged ``sh``, ``bash``, ``shell`` or ``console`` is a script read
top to bottom, and the conventions a page follows are:

- every line of a ``sh``/``bash``/``shell`` block is a command (``\\`` continues a line, heredocs
  run whole); in a ``console`` block, only the lines starting with ``$ `` are;
- an unquoted file pattern (``?``, ``*``, ``[``) must match a file, because zsh refuses a
  command whose pattern matches nothing (``curl localhost:9333/health/ready?verbose``);
- ``pip install`` must come after a venv is activated on the page (a stock Debian Python
  refuses it otherwise, and the tests' own interpreter is never touched);
- a command is expected to exit 0, unless its trailing comment ends with ``exit N``
  (``probed validate --checks-dir checks.d   # unknown type 'file_age': exit 1``);
- a trailing comment with ``prints "TEXT"`` says the command's output contains TEXT;
- a block that must not run here (docker, kubectl, systemctl, the test suite itself) is preceded
  by ``<!-- docs-test: skip REASON -->``; such blocks are counted and listed, never run;
- ``probed`` without a command, or ``probed run``, is the daemon: it is started in the
  background, the page's next commands (``curl ...``) run while it listens on its documented
  port, and it is stopped with SIGTERM (expecting exit 0) before the next daemon command or at
  the end of the page. It must start with 0 configuration errors;
- ``git clone URL`` is stood in for by a copy of this checkout (``git ls-files``) named after
  the URL, ``cd DIR`` changes the directory of the following commands, and sourcing
  ``DIR/bin/activate`` activates that venv for them.

The README's install steps (up to its first ``pip install``) run once per session: they create
the venv every page then uses. Each page runs in its own fresh copy of the checkout, with no
``probed`` on ``PATH`` but the venv's, and no ``PROBED_*`` variables from the outside.
Each page's test prints the commands it ran, with exit codes and times, and the blocks it did
not run (``pytest -rP tests/test_docs_commands.py`` shows them).
"""

from __future__ import annotations

import glob
import importlib.util
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests._require import require

ROOT = Path(__file__).resolve().parent.parent
SHELL_LANGS = frozenset({"sh", "bash", "shell", "console"})
SKIP_MARK = re.compile(r"^<!--\s*docs-test:\s*skip\b\s*(?P<reason>.*?)\s*-->\s*$")
EXIT_RE = re.compile(r"\bexit (\d+)\s*$")
PRINTS_RE = re.compile(r'\bprints "([^"]+)"')
HEREDOC_RE = re.compile(r"<<-?\s*(['\"]?)([A-Za-z_][A-Za-z0-9_]*)\1")
ASSIGN_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
DEFAULT_PORT = 9333
COMMAND_TIMEOUT = 300.0
DAEMON_START_TIMEOUT = 30.0
DAEMON_STOP_TIMEOUT = 30.0


def doc_pages() -> list[Path]:
    """The pages whose commands must run, README first."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    pages.append(ROOT / "plugins" / "README.md")
    pages += sorted(
        p for p in (ROOT / "contrib").rglob("README.md") if "node_modules" not in p.parts
    )
    return [p for p in pages if p.exists()]


# --- extraction --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Command:
    """One command of a page, as written, with what the page says it does."""

    page: str
    line: int
    text: str
    comment: str
    expected_exit: int
    prints: tuple[str, ...]

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"

    @property
    def head(self) -> str:
        """The command line itself: continuation lines joined, without a heredoc's body."""
        match = HEREDOC_RE.search(self.text)
        text = self.text[: match.start()] if match else self.text
        return text.replace("\\\n", " ")

    def words(self) -> list[str]:
        """The command's words after leading ``VAR=value`` assignments."""
        try:
            words = shlex.split(self.head, comments=True)
        except ValueError:
            return self.head.split()
        while words and ASSIGN_RE.match(words[0]):
            words.pop(0)
        return words

    def assignments(self) -> dict[str, str]:
        try:
            words = shlex.split(self.head, comments=True)
        except ValueError:
            return {}
        found: dict[str, str] = {}
        for word in words:
            if not ASSIGN_RE.match(word):
                break
            key, _, value = word.partition("=")
            found[key] = value
        return found

    @property
    def is_daemon(self) -> bool:
        words = self.words()
        if not words or words[0] != "probed" or "|" in words or "&&" in self.text:
            return False
        if "--help" in words or "-h" in words:
            return False
        # `probed --checks-dir checks.d` runs the daemon, whatever the option values are.
        return len(words) == 1 or words[1] == "run" or words[1].startswith("-")

    @property
    def port(self) -> int:
        words = self.words()
        for i, word in enumerate(words):
            value = None
            if word == "--listen" and i + 1 < len(words):
                value = words[i + 1]
            elif word.startswith("--listen="):
                value = word.split("=", 1)[1]
            if value:
                return int(value.rsplit(":", 1)[1])
        listen = self.assignments().get("PROBED_LISTEN")
        return int(listen.rsplit(":", 1)[1]) if listen else DEFAULT_PORT


@dataclass(slots=True)
class Page:
    """The commands of one page, and the blocks it marks as not runnable here."""

    path: str
    commands: list[Command] = field(default_factory=list)
    skipped: list[tuple[int, str]] = field(default_factory=list)


def split_comment(line: str) -> tuple[str, str]:
    """Split a shell line into code and trailing comment (``#`` outside quotes, after a blank)."""
    quote = ""
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = ""
            elif ch == "\\" and quote == '"':
                continue
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1] in " \t"):
            return line[:i].rstrip(), line[i + 1 :].strip()
    return line.rstrip(), ""


def unquoted_globs(line: str) -> list[str]:
    """Words of a shell line with a ``?``, ``*`` or ``[`` outside quotes (file patterns)."""
    words, word, glob, quote = [], "", False, ""
    escaped = False
    for ch in line + " ":
        if escaped:
            word, escaped = word + ch, False
        elif quote:
            word += ch
            if ch == quote:
                quote = ""
        elif ch == "\\":
            word, escaped = word + ch, True
        elif ch in "'\"":
            word, quote = word + ch, ch
        elif ch in " \t\n;|&<>()":
            if glob:
                words.append(word)
            word, glob = "", False
        else:
            word += ch
            glob = glob or ch in "?*["
    return words


def _command(page: str, line: int, text: str, comment: str) -> Command:
    exit_match = EXIT_RE.search(comment)
    return Command(
        page=page,
        line=line,
        text=text,
        comment=comment,
        expected_exit=int(exit_match.group(1)) if exit_match else 0,
        prints=tuple(PRINTS_RE.findall(comment)),
    )


def parse_block(page: str, start: int, lang: str, lines: list[str]) -> list[Command]:
    """The commands of one fenced block whose first content line is line ``start``."""
    commands: list[Command] = []
    i = 0
    while i < len(lines):
        raw, lineno = lines[i], start + i
        i += 1
        if lang == "console":
            if not raw.startswith("$ "):
                continue
            raw = raw[2:]
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        parts = [raw]
        while parts[-1].rstrip().endswith("\\") and i < len(lines):
            parts.append(lines[i])
            i += 1
        code, comment = split_comment(parts[-1])
        parts[-1] = code
        text = "\n".join(parts)
        heredoc = HEREDOC_RE.search(text)
        if heredoc:
            end = heredoc.group(2)
            body = []
            while i < len(lines) and lines[i].strip() != end:
                body.append(lines[i])
                i += 1
            assert i < len(lines), f"{page}:{lineno}: heredoc not closed by {end}"
            i += 1
            text = "\n".join([text, *body, end])
        commands.append(_command(page, lineno, text, comment))
    return commands


def extract(text: str, page: str) -> Page:
    """Every runnable command of a Markdown page and every block marked not to run."""
    found = Page(page)
    lines = text.splitlines()
    i = 0
    previous = ""
    while i < len(lines):
        line = lines[i]
        fence = re.match(r"^(\s*)(```+)\s*([A-Za-z0-9_-]*)", line)
        if not fence:
            if line.strip():
                previous = line.strip()
            i += 1
            continue
        ticks, lang = fence.group(2), fence.group(3).lower()
        end = i + 1
        while end < len(lines) and not lines[end].strip().startswith(ticks):
            end += 1
        body = [b[len(fence.group(1)) :] for b in lines[i + 1 : end]]
        if lang in SHELL_LANGS:
            mark = SKIP_MARK.match(previous)
            if mark:
                assert mark.group("reason"), f"{page}:{i + 1}: a docs-test skip needs a reason"
                found.skipped.append((i + 1, mark.group("reason")))
            else:
                found.commands += parse_block(page, i + 2, lang, body)
        previous = ""
        i = end + 1
    return found


# --- running -----------------------------------------------------------------------------------


@dataclass(slots=True)
class Ran:
    command: Command
    exit_code: int
    seconds: float
    note: str = ""


def _copy_checkout(dest: Path) -> None:
    """A clean copy of this checkout: tracked files plus new ones not ignored (work in
    progress is what the docs describe)."""
    names = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for raw in names:
        if not raw:
            continue
        src = ROOT / os.fsdecode(raw)
        if not src.is_file():  # deleted in the working tree
            continue
        target = dest / os.fsdecode(raw)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target)


def _clean_env(bin_dir: Path) -> dict[str, str]:
    """The environment of a new terminal: no PROBED_* settings, no active venv, and no
    ``probed`` on PATH (so a command only works once the docs' install step did)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("PROBED_") and k not in {"VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME"}
    }
    path = [
        d
        for d in env.get("PATH", "").split(os.pathsep)
        if d and not os.access(os.path.join(d, "probed"), os.X_OK)
    ]
    env["PATH"] = os.pathsep.join([str(bin_dir), *path])
    env["LC_ALL"] = "C.UTF-8"
    return env


def _port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


class Runner:
    """Runs one page's commands in order, like a user at a terminal."""

    def __init__(self, workdir: Path, env: dict[str, str], logs: Path) -> None:
        self.cwd = workdir
        self.env = dict(env)
        self.logs = logs
        self.ran: list[Ran] = []
        self.daemon: subprocess.Popen[bytes] | None = None
        self.daemon_command: Command | None = None
        self.daemon_log: Path | None = None

    def activate(self, venv: Path) -> None:
        self.env["VIRTUAL_ENV"] = str(venv)
        self.env["PATH"] = os.pathsep.join([str(venv / "bin"), self.env["PATH"]])

    def run(self, command: Command, clone_source: Path | None = None) -> None:
        words = command.words()
        if words[:2] == ["git", "clone"]:
            self._clone(command, words, clone_source)
            return
        if words and words[0] == "cd" and "&&" not in command.text and len(words) == 2:
            self.cwd = (self.cwd / words[1]).resolve()
            assert self.cwd.is_dir(), f"{command.where}: `{command.text}`: no such directory"
            self.ran.append(Ran(command, 0, 0.0, "directory changed"))
            return
        for pattern in unquoted_globs(command.head):
            # bash passes a pattern that matches nothing on as it is; zsh refuses the command.
            assert glob.glob(pattern, root_dir=self.cwd), (
                f"{command.where}: `{command.text}`: {pattern} is a file pattern matching "
                f"nothing, which zsh refuses (no matches found): quote it"
            )
        if command.is_daemon:
            self._start_daemon(command)
            return
        if words[:2] == ["pip", "install"] and "VIRTUAL_ENV" not in self.env:
            # Never install into the interpreter running the tests (it would replace its
            # probed); a stock Debian Python refuses it anyway (externally-managed-environment).
            raise AssertionError(
                f"{command.where}: `{command.text}` runs before any venv is activated on the "
                "page: a stock Debian Python refuses it (externally-managed-environment)"
            )
        local = re.search(r"\bcurl\b.*?(?:localhost|127\.0\.0\.1):(\d+)", command.head)
        if local and self.daemon is None:
            raise AssertionError(
                f"{command.where}: `{command.text}` talks to a daemon on port {local.group(1)}, "
                "but the page starts none before it: show the `probed` command line first"
            )
        started = time.monotonic()
        proc = subprocess.run(
            ["bash", "-c", command.text],
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
        output = (proc.stdout + proc.stderr).decode(errors="replace")
        ran = Ran(command, proc.returncode, time.monotonic() - started)
        self.ran.append(ran)
        assert proc.returncode == command.expected_exit, (
            f"{command.where}: `{command.text}` exited {proc.returncode}, the docs say "
            f"{command.expected_exit} (cwd {self.cwd})\n{output[-3000:]}"
        )
        for text in command.prints:
            assert text in output, (
                f'{command.where}: `{command.text}` should print "{text}"; it printed:\n'
                f"{output[-3000:]}"
            )
        activate = re.search(r"(?:^|[;&|]\s*|\s)(?:\.|source)\s+(\S+)/bin/activate\b", command.text)
        if activate:
            self.activate((self.cwd / activate.group(1)).resolve())

    def _clone(self, command: Command, words: list[str], source: Path | None) -> None:
        args = [w for w in words[2:] if not w.startswith("-")]
        name = args[1] if len(args) > 1 else args[0].rstrip("/").rsplit("/", 1)[-1]
        name = name.removesuffix(".git")
        target = self.cwd / name
        if source is not None and source.resolve() != target.resolve():
            shutil.copytree(source, target, symlinks=True)
        elif not target.exists():
            _copy_checkout(target)
        self.ran.append(Ran(command, 0, 0.0, f"stood in for by a copy of the checkout: {name}/"))

    def _start_daemon(self, command: Command) -> None:
        self.stop_daemon()
        port = command.port
        assert not _port_in_use(port), (
            f"{command.where}: port {port} is busy, but the docs run the daemon there; stop "
            f"whatever listens on {port} and run this test again"
        )
        self.daemon_log = self.logs / f"daemon-{len(self.ran)}.log"
        assigns = command.assignments()
        prefix = " ".join(f"{k}={shlex.quote(v)}" for k, v in assigns.items())
        rest = command.text
        for _ in assigns:
            rest = rest.split(None, 1)[1]
        with self.daemon_log.open("wb") as log:
            self.daemon = subprocess.Popen(
                ["bash", "-c", f"{prefix} exec {rest}".strip()],
                cwd=self.cwd,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.daemon_command = command
        started = time.monotonic()
        deadline = started + DAEMON_START_TIMEOUT
        while True:
            if self.daemon.poll() is not None:
                raise AssertionError(
                    f"{command.where}: `{command.text}` exited {self.daemon.returncode} instead "
                    f"of serving on port {port}:\n{self.daemon_log.read_text()[-3000:]}"
                )
            try:
                if _get(f"http://127.0.0.1:{port}/health/live") == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, (
                f"{command.where}: `{command.text}` did not answer /health/live on port {port} "
                f"within {DAEMON_START_TIMEOUT:.0f}s:\n{self.daemon_log.read_text()[-3000:]}"
            )
            time.sleep(0.1)
        errors = self._config_errors()
        while errors is None:
            assert time.monotonic() < deadline, (
                f"{command.where}: no start line with config_errors in:\n"
                f"{self.daemon_log.read_text()[-3000:]}"
            )
            time.sleep(0.1)
            errors = self._config_errors()
        for text in command.prints:
            while text not in self.daemon_log.read_text(errors="replace"):
                assert time.monotonic() < deadline, (
                    f'{command.where}: `{command.text}` should print "{text}"; it printed:\n'
                    f"{self.daemon_log.read_text()[-3000:]}"
                )
                time.sleep(0.1)
        self.ran.append(
            Ran(command, 0, time.monotonic() - started, f"daemon on port {port}, {errors} errors")
        )
        assert errors == 0, (
            f"{command.where}: `{command.text}` started with {errors} configuration error(s); "
            f"a documented command line must load cleanly:\n{self.daemon_log.read_text()[-3000:]}"
        )

    def _config_errors(self) -> int | None:
        assert self.daemon_log is not None
        for line in self.daemon_log.read_text(errors="replace").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                match = re.search(r"\bconfig_errors=(\d+)", line)
                if match:
                    return int(match.group(1))
                continue
            if isinstance(record, dict) and "config_errors" in record:
                return int(record["config_errors"])
        return None

    def stop_daemon(self) -> None:
        """SIGTERM the running daemon; the docs promise it then exits 0."""
        daemon, command = self.daemon, self.daemon_command
        if daemon is None or command is None:
            return
        self.daemon = self.daemon_command = None
        if daemon.poll() is None:
            os.killpg(daemon.pid, signal.SIGTERM)
        try:
            code = daemon.wait(timeout=DAEMON_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(daemon.pid, signal.SIGKILL)
            daemon.wait()
            raise AssertionError(f"{command.where}: the daemon ignored SIGTERM") from None
        assert code == 0, (
            f"{command.where}: the daemon exited {code} on SIGTERM (the docs say 0):\n"
            f"{self.daemon_log.read_text()[-3000:] if self.daemon_log else ''}"
        )


# --- the session: one venv made by the README's own install steps -----------------------------


@dataclass(slots=True)
class DocsSession:
    checkout: Path
    env: dict[str, str]
    setup_done: int
    setup_ran: list[Ran]
    tmp: Path


def _readme_setup(page: Page) -> list[Command]:
    """The README's install steps: every command up to and including its first pip install."""
    for i, command in enumerate(page.commands):
        if command.words()[:2] == ["pip", "install"]:
            return page.commands[: i + 1]
    raise AssertionError("README.md has no `pip install` step")


@pytest.fixture(scope="session")
def docs_session(tmp_path_factory: pytest.TempPathFactory) -> DocsSession:
    require(shutil.which("curl") is not None, "the docs' commands need the curl binary")
    require(shutil.which("bash") is not None, "the docs' commands need bash")
    require(
        importlib.util.find_spec("ensurepip") is not None,
        "the Quick start's `python3 -m venv` needs ensurepip (Debian: apt install python3-venv)",
    )
    tmp = tmp_path_factory.mktemp("docs")
    bin_dir = tmp / "bin"
    bin_dir.mkdir()
    # `python3 -m venv` as written must use the interpreter under test, not whatever is first.
    for name in ("python3", "python"):
        (bin_dir / name).symlink_to(sys.executable)
    env = _clean_env(bin_dir)
    checkout = tmp / "clean-checkout"
    _copy_checkout(checkout)
    readme = extract((ROOT / "README.md").read_text(), "README.md")
    setup = _readme_setup(readme)
    runner = Runner(tmp, env, tmp)
    for command in setup:
        runner.run(command, clone_source=checkout)
    assert "VIRTUAL_ENV" in runner.env, (
        "README.md's install steps must create and activate a venv (a stock Debian Python "
        "refuses `pip install` outside one: externally-managed-environment)"
    )
    venv = Path(runner.env["VIRTUAL_ENV"])
    assert (venv / "bin" / "probed").exists(), f"README's install left no probed in {venv}"
    return DocsSession(checkout, runner.env, len(setup), runner.ran, tmp)


def _listing(ran: list[Ran], skipped: list[tuple[int, str]], page: str) -> str:
    lines = [f"{page}: {len(ran)} command(s) run, {len(skipped)} block(s) marked not to run"]
    for r in ran:
        note = f" ({r.note})" if r.note else ""
        first = r.command.text.split("\n", 1)[0]
        lines.append(f"  {r.command.where}: exit {r.exit_code} in {r.seconds:.1f}s{note}: {first}")
    lines += [f"  {page}:{line}: not run: {reason}" for line, reason in skipped]
    return "\n".join(lines)


PAGES = doc_pages()


@pytest.mark.timeout(900)
@pytest.mark.parametrize("page_path", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_every_documented_command_runs_as_written(
    page_path: Path, docs_session: DocsSession
) -> None:
    rel = str(page_path.relative_to(ROOT))
    page = extract(page_path.read_text(), rel)
    commands = page.commands
    ran: list[Ran] = []
    if rel == "README.md":
        commands = commands[docs_session.setup_done :]
        ran = list(docs_session.setup_ran)
    workdir = docs_session.tmp / ("page-" + rel.replace("/", "-"))
    _copy_checkout(workdir)
    runner = Runner(workdir, docs_session.env, docs_session.tmp)
    try:
        for command in commands:
            runner.run(command, clone_source=workdir)
        runner.stop_daemon()
    finally:
        if runner.daemon is not None:
            os.killpg(runner.daemon.pid, signal.SIGKILL)
            runner.daemon.wait()
        print(_listing(ran + runner.ran, page.skipped, rel))


def _run_page(text: str, session: DocsSession, name: str) -> Runner:
    workdir = session.tmp / name
    _copy_checkout(workdir)
    runner = Runner(workdir, session.env, session.tmp)
    try:
        for command in extract(text, f"{name}.md").commands:
            runner.run(command)
        runner.stop_daemon()
    finally:
        if runner.daemon is not None:
            os.killpg(runner.daemon.pid, signal.SIGKILL)
            runner.daemon.wait()
    return runner


@pytest.mark.timeout(300)
def test_a_command_exiting_otherwise_than_the_docs_say_fails_naming_its_line(
    docs_session: DocsSession,
) -> None:
    page = "Text.\n\n```sh\nprobed validate --checks-dir checks.d\n```\n"
    with pytest.raises(AssertionError, match=r"wrong-exit\.md:4: .* exited 1, the docs say 0"):
        _run_page(page, docs_session, "wrong-exit")
    page = "```sh\nprobed validate --checks-dir checks.d --plugins-dir plugins   # exit 1\n```\n"
    with pytest.raises(AssertionError, match="exited 0, the docs say 1"):
        _run_page(page, docs_session, "wrong-exit-code")


@pytest.mark.timeout(300)
def test_output_other_than_the_comment_says_fails(docs_session: DocsSession) -> None:
    page = (
        "```sh\nprobed validate --checks-dir checks.d --plugins-dir plugins"
        '   # prints "3 checks"\n```\n'
    )
    with pytest.raises(AssertionError, match='should print "3 checks"'):
        _run_page(page, docs_session, "wrong-output")


@pytest.mark.timeout(300)
def test_a_daemon_command_line_loading_with_configuration_errors_fails(
    docs_session: DocsSession,
) -> None:
    page = "```sh\nprobed run --checks-dir checks.d\n```\n"
    with pytest.raises(AssertionError, match=r"started with 2 configuration error\(s\)"):
        _run_page(page, docs_session, "daemon-errors")


@pytest.mark.timeout(300)
def test_curl_runs_against_the_documented_daemon_and_it_stops_cleanly(
    docs_session: DocsSession,
) -> None:
    page = (
        "```sh\nprobed --checks-dir checks.d --plugins-dir plugins\n```\n\n"
        "```sh\ncurl -s -o /dev/null -w '%{http_code}' localhost:9333/health/live   "
        '# prints "200"\n```\n'
    )
    runner = _run_page(page, docs_session, "daemon-curl")
    assert [r.command.line for r in runner.ran] == [2, 6]
    assert runner.daemon is None


def test_pip_install_before_a_venv_is_activated_fails_without_running(tmp_path: Path) -> None:
    runner = Runner(tmp_path, _clean_env(tmp_path), tmp_path)
    (command,) = extract("```sh\npip install '.[all]'\n```\n", "no-venv.md").commands
    with pytest.raises(AssertionError, match="externally-managed-environment"):
        runner.run(command)
    assert runner.ran == []


def test_the_docs_have_commands_to_run() -> None:
    """The extractor must find the documented commands, or the test above passes vacuously."""
    pages = [extract(p.read_text(), str(p.relative_to(ROOT))) for p in PAGES]
    total = sum(len(p.commands) for p in pages)
    readme = pages[0]
    assert total >= 20, f"only {total} documented commands found: is the extractor broken?"
    kinds = {c.words()[0] + (" (daemon)" if c.is_daemon else "") for c in readme.commands}
    assert {"pip", "probed", "probed (daemon)", "curl"} <= kinds, kinds
    print(f"{total} commands in {len(pages)} pages; not run: {sum(len(p.skipped) for p in pages)}")


# --- the extractor's own conventions -----------------------------------------------------------


SAMPLE = """\
Intro.

```sh
probed validate --checks-dir checks.d --plugins-dir plugins   # prints "configuration valid"
probed validate --checks-dir checks.d   # unknown type 'file_age': exit 1
curl -s 'localhost:9333/health/ready?verbose'   # the # inside quotes is not a comment
PROBED_LISTEN=127.0.0.1:9444 probed --checks-dir checks.d
probed run \\
    --listen 127.0.0.1:9555
cat > x.yaml <<'YAML'
checks: []   # exit 3
YAML
```

<!-- docs-test: skip needs docker -->
```sh
docker build -t probed .
```

```console
$ probed once --check nightly-db-backup   # exit 2
FAIL    nightly-db-backup
```

```yaml
not: a command
```
"""


def test_extractor_reads_exit_codes_outputs_daemons_and_skip_marks() -> None:
    page = extract(SAMPLE, "sample.md")
    assert [(c.line, c.expected_exit) for c in page.commands] == [
        (4, 0),
        (5, 1),
        (6, 0),
        (7, 0),
        (8, 0),
        (10, 0),
        (21, 2),
    ]
    validate, _, curl, env_daemon, run_daemon, heredoc, once = page.commands
    assert validate.prints == ("configuration valid",)
    assert curl.comment == "the # inside quotes is not a comment"
    assert [c.is_daemon for c in page.commands] == [False, False, False, True, True, False, False]
    assert (env_daemon.port, run_daemon.port, validate.port) == (9444, 9555, 9333)
    assert heredoc.text.endswith("checks: []   # exit 3\nYAML")
    assert once.text == "probed once --check nightly-db-backup"
    assert page.skipped == [(16, "needs docker")]


def test_unquoted_file_patterns_are_found_outside_quotes_only() -> None:
    line = "curl -s localhost:9333/health/ready?verbose 'a?b' \"c*\" checks.d/*.yaml .[all]"
    assert unquoted_globs(line) == [
        "localhost:9333/health/ready?verbose",
        "checks.d/*.yaml",
        ".[all]",
    ]


def test_an_unquoted_url_with_a_question_mark_fails_as_zsh_would(tmp_path: Path) -> None:
    runner = Runner(tmp_path, _clean_env(tmp_path), tmp_path)
    (command,) = extract("```sh\ncurl -s localhost:9/health/ready?verbose\n```\n", "z.md").commands
    with pytest.raises(AssertionError, match="zsh refuses"):
        runner.run(command)


def test_a_skip_mark_without_a_reason_is_refused() -> None:
    with pytest.raises(AssertionError, match="needs a reason"):
        extract("<!-- docs-test: skip -->\n```sh\ndocker ps\n```\n", "x.md")
