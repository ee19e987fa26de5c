"""``${VAR}``, ``${VAR:-default}`` and ``${file:/path}`` references in configuration values.

Interpolation runs on scalar strings *after* YAML parsing, so a value can never inject YAML
structure. ``$${`` writes a literal ``${``. Values read from files, and from environment
variables whose name looks secret (``PASS``, ``SECRET``, ``TOKEN``, ``KEY``, ``AUTH``,
``CREDENTIAL``, ``DSN``), are collected as secrets so the caller can redact them everywhere.
Errors name the variable or file, never a value; an unset variable's error suggests the
closest set name (``did you mean REDIS_PASSWORD?``), and for a secret-looking name advises
``${file:...}`` rather than a default.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets as _secrets
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from probed._yaml import DocPath, YDict, YList
from probed.redact import MIN_SECRET_LENGTH, is_secret_env

__all__ = [
    "DEFAULT_SECRETS_DIRS",
    "MIN_SECRET_LENGTH",  # re-exported from probed.redact, its owner
    "SYSTEM_DIRS",
    "InterpolationError",
    "Interpolator",
    "TreeResult",
    "escape",
]

_MAX_FILE_BYTES: Final = 1 << 20
SYSTEM_DIRS: Final = tuple(map(Path, ("/proc", "/sys", "/dev")))
"""Where ``${file:}`` never reads, even when ``secrets_dirs`` lists the directory: process and
kernel pseudo-files (``/proc/self/environ``) and devices."""
DEFAULT_SECRETS_DIRS: Final = tuple(map(Path, ("/run/secrets", "/var/run/secrets", "/etc/probed")))
"""Where ``${file:}`` may read when ``secrets_dirs`` is not set (besides the referring file's
directory, ``probed.yaml``'s directory and ``$CREDENTIALS_DIRECTORY``): Docker and Kubernetes
mounted secrets and service-account tokens, and probed's own configuration directory."""
# A file's own directory is not enough to trust when it is one of these (a checks file
# dropped in /etc must not read /etc/shadow).
_NEVER_IMPLIED: Final = frozenset(
    map(Path, ("/", "/etc", "/proc", "/sys", "/dev", "/root", "/home", "/usr", "/var", "/tmp"))
)
# A YAML alias "bomb" is a small file whose tree is exponentially large once walked.
_MAX_NODES: Final = 2_000_000

_TOKEN: Final = re.compile(r"\$\$\{|\$\{(?P<body>[^}]*)\}|(?P<open>\$\{)")
_VAR: Final = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>.*))?", re.DOTALL)
# How alike an unset variable's name and a set one must be to suggest the set one.
_CLOSE: Final = 0.8
_FORMS: Final = "use ${VAR}, ${VAR:-default} or ${file:/path}, and $${ for a literal ${"

# Digests of interpolated content are keyed per process, so a digest never lets anyone test
# guesses of a secret offline.
_DIGEST_KEY: Final = _secrets.token_bytes(32)


class InterpolationError(ValueError):
    """A reference that cannot be resolved; the message names it but never shows a value."""


def escape(text: str) -> str:
    """Escape ``text`` so that interpolating the result gives ``text`` back."""
    return text.replace("${", "$${")


@dataclass(slots=True)
class TreeResult:
    """The outcome of interpolating a document.

    :param value: the document with every string interpolated; a string that failed keeps its
        original text and its path is in ``failed``.
    :param errors: ``(path, message)`` for each failed reference.
    :param secrets: secret values produced (to redact everywhere).
    :param pieces: ``path -> values`` substituted at that path (to keep them out of messages).
    :param failed: paths whose string could not be interpolated.
    """

    value: Any = None
    errors: list[tuple[DocPath, str]] = field(default_factory=list)
    secrets: set[str] = field(default_factory=set)
    pieces: dict[DocPath, list[str]] = field(default_factory=dict)
    failed: set[DocPath] = field(default_factory=set)


class Interpolator:
    """Resolves references against an environment and the file system, caching file reads.

    Use one instance per (re)load so a secret file is read once however often it is used, and
    a rotated secret is seen on the next reload.
    """

    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        *,
        allowed: Iterable[Path] | None = None,
        base: Path | None = None,
        config_dir: Path | None = None,
    ) -> None:
        """
        :param env: the environment (default: ``os.environ``).
        :param allowed: directories ``${file:}`` may read regular files under (symbolic links
            resolved), besides ``base``: ``secrets_dirs``. ``None`` (the default): the
            :data:`DEFAULT_SECRETS_DIRS`, ``config_dir`` and ``$CREDENTIALS_DIRECTORY`` (from
            ``env``) when set. Never anything under :data:`SYSTEM_DIRS`.
        :param base: the directory of the file being read: relative ``${file:}`` paths are
            resolved against it, and files under it may be read.
        :param config_dir: the directory of ``probed.yaml``, allowed when ``allowed`` is None.
        """
        self.env: Mapping[str, str] = os.environ if env is None else env
        self._files: dict[str, str | InterpolationError] = {}
        self.allowed: tuple[Path, ...] = ()
        if allowed is not None:
            self.allow(allowed)
        else:
            dirs = list(DEFAULT_SECRETS_DIRS)
            credentials = self.env.get("CREDENTIALS_DIRECTORY")
            if credentials and os.path.isabs(credentials):
                dirs.append(Path(credentials))
            self.allow(dirs)
            if config_dir is not None:
                self._implied(config_dir)
        self.base = base

    def at(self, base: Path) -> Interpolator:
        """The same interpolator (environment, allowed directories, cache of files read) for
        the file whose directory is ``base``."""
        other = Interpolator(self.env, allowed=(), base=base)
        other._files, other.allowed = self._files, self.allowed
        return other

    def allow(self, directories: Iterable[Path]) -> None:
        """Replace the directories ``${file:}`` may read under (the referring file's own
        directory stays allowed)."""
        self.allowed = tuple(dict.fromkeys(Path(os.path.realpath(d)) for d in directories))

    def _implied(self, directory: Path) -> None:
        own = Path(os.path.realpath(directory))
        if own not in _NEVER_IMPLIED and own not in self.allowed:
            self.allowed += (own,)

    def _where(self, name: str) -> tuple[str, str | None]:
        """``(absolute path, reason it may not be read or None)``."""
        path = Path(name)
        if self.base is not None and not path.is_absolute():
            path = self.base / path
        real = Path(os.path.realpath(path))
        resolved = f"it resolves to {str(real)!r}, " if real != path else ""
        for system in SYSTEM_DIRS:
            if real.is_relative_to(system):
                never = f"{system} is never read by ${{file:}}, even if listed in secrets_dirs"
                return str(path), f"{resolved}{never}"
        roots = list(self.allowed)
        if self.base is not None:
            own = Path(os.path.realpath(self.base))
            if own not in _NEVER_IMPLIED:
                roots.append(own)
        if any(real.is_relative_to(root) for root in roots):
            return str(path), None
        shown = ", ".join(str(r) for r in roots) or "(none)"
        return str(path), (
            f"{resolved}not under a directory ${{file:}} may read ({shown}); add its directory to "
            "secrets_dirs in probed.yaml"
        )

    def read_file(self, name: str) -> str:
        """Content of ``name`` with one trailing newline stripped.

        :raises InterpolationError: naming the file and the reason, never its content.
        """
        if not name:
            raise InterpolationError("${file:} needs a path, e.g. ${file:/run/secrets/token}")
        if "\0" in name:  # open() would raise ValueError, not OSError
            raise InterpolationError(
                f"cannot read file {name!r} (from ${{file:...}}): a path cannot contain a NUL "
                "character"
            )
        path, refused = self._where(name)
        if refused is not None:
            raise InterpolationError(f"cannot read file {path!r} (from ${{file:...}}): {refused}")
        cached = self._files.get(path)
        if cached is None:
            cached = self._read(path)
            self._files[path] = cached
        if isinstance(cached, InterpolationError):
            raise cached
        return cached

    @staticmethod
    def _read(name: str) -> str | InterpolationError:
        where = f"cannot read file {name!r} (from ${{file:...}})"
        try:
            # O_NONBLOCK: opening a FIFO must not wait for a writer; only regular files are read.
            fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
        except OSError as exc:
            return InterpolationError(f"{where}: {exc.strerror or type(exc).__name__}")
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return InterpolationError(f"{where}: not a regular file")
            with os.fdopen(fd, "rb", closefd=False) as handle:
                data = handle.read(_MAX_FILE_BYTES + 1)
        except OSError as exc:
            return InterpolationError(f"{where}: {exc.strerror or type(exc).__name__}")
        finally:
            os.close(fd)
        if len(data) > _MAX_FILE_BYTES:
            return InterpolationError(f"{where}: larger than {_MAX_FILE_BYTES} bytes")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            return InterpolationError(f"{where}: not valid UTF-8")
        if text.endswith("\r\n"):
            return text[:-2]
        return text[:-1] if text.endswith("\n") else text

    def string(self, text: str) -> tuple[str, list[str], list[str]]:
        """Interpolate one string.

        :return: ``(result, pieces, secrets)``: the substituted values and those among them
            that are secret.
        :raises InterpolationError: on the first reference that cannot be resolved.
        """
        if "$" not in text:
            return text, [], []
        out: list[str] = []
        pieces: list[str] = []
        secret: list[str] = []
        pos = 0
        for match in _TOKEN.finditer(text):
            out.append(text[pos : match.start()])
            pos = match.end()
            if match.group("open") is not None:
                raise InterpolationError(f"unterminated '${{' ({_FORMS})")
            body = match.group("body")
            if body is None:
                out.append("${")
                continue
            value, is_secret = self._resolve(body)
            out.append(value)
            pieces.append(value)
            if is_secret and len(value) >= MIN_SECRET_LENGTH:
                secret.append(value)
        out.append(text[pos:])
        return "".join(out), pieces, secret

    def _resolve(self, body: str) -> tuple[str, bool]:
        if body.startswith("file:"):
            return self.read_file(body[5:]), True
        match = _VAR.fullmatch(body)
        if match is None:
            shown = body if len(body) <= 40 else body[:40] + "..."
            raise InterpolationError(f"invalid reference '${{{shown}}}' ({_FORMS})")
        name, default = match.group("name"), match.group("default")
        if default is not None and "${" in default:
            raise InterpolationError(f"nested reference in the default of ${{{name}:-...}}")
        value = self.env.get(name)
        if value is None or (default is not None and value == ""):
            if default is None:
                raise InterpolationError(self._unset(name))
            value = default
        return value, is_secret_env(name)

    def _unset(self, name: str) -> str:
        """The message for an unset variable: a close set name, and advice that suits it.

        Only names are shown, never a value. A secret has no sensible default, so a secret
        name is pointed at ``${file:...}`` instead of ``${NAME:-default}``.
        """
        by_lower: dict[str, str] = {}
        for candidate in self.env:
            by_lower.setdefault(candidate.lower(), candidate)
        import difflib  # only for a mistake's hint

        close = difflib.get_close_matches(name.lower(), list(by_lower), n=1, cutoff=_CLOSE)
        suggestion = by_lower[close[0]] if close else None
        hint = f"; did you mean {suggestion}?" if suggestion else ""
        # A misspelt secret may no longer look secret (REDIS_PASWORD): judge by both names.
        if is_secret_env(name) or (suggestion is not None and is_secret_env(suggestion)):
            advice = "set it, or read the secret from a file: ${file:/run/secrets/...}"
        else:
            advice = f"set it, or give a default: ${{{name}:-default}}"
        return f"environment variable {name!r} is not set{hint} ({advice})"

    def tree(self, tree: Any) -> TreeResult:
        """Interpolate every string value (never a key) of a parsed document."""
        result = TreeResult()
        budget = [_MAX_NODES]
        result.value = self._walk(tree, (), result, budget)
        return result

    def _walk(self, node: Any, path: DocPath, result: TreeResult, budget: list[int]) -> Any:
        budget[0] -= 1
        if budget[0] < 0:
            if budget[0] == -1:
                result.errors.append((path, "document too large (too many aliases?)"))
                result.failed.add(())
            return None
        if isinstance(node, str):
            try:
                value, pieces, secret = self.string(node)
            except InterpolationError as exc:
                result.errors.append((path, str(exc)))
                result.failed.add(path)
                return node
            if pieces:
                result.pieces[path] = [*pieces, value]
                result.secrets.update(secret)
            return value
        if isinstance(node, YDict):
            new_map = YDict()
            new_map.line, new_map.key_lines, new_map.duplicates = (
                node.line,
                node.key_lines,
                node.duplicates,
            )
            for key, value in node.items():
                new_map[key] = self._walk(value, (*path, key), result, budget)
            return new_map
        if isinstance(node, dict):
            return {k: self._walk(v, (*path, k), result, budget) for k, v in node.items()}
        if isinstance(node, YList):
            new_list = YList(self._walk(v, (*path, i), result, budget) for i, v in enumerate(node))
            new_list.line, new_list.item_lines = node.line, node.item_lines
            return new_list
        if isinstance(node, list):
            return [self._walk(v, (*path, i), result, budget) for i, v in enumerate(node)]
        return node

    def digest(self, content: bytes) -> str:
        """A keyed digest of ``content`` and of the current value of every reference in it.

        Two equal digests mean re-validating would give the same result: the file is unchanged
        *and* so are the environment variables and files it refers to (a rotated secret file
        changes the digest).
        """
        mac = hmac.new(_DIGEST_KEY, content, hashlib.sha256)
        text = content.decode("utf-8", "replace")
        for match in _TOKEN.finditer(text):
            body = match.group("body")
            if not body:
                continue
            try:
                value, _ = self._resolve(body)
            except InterpolationError as exc:
                value = f"\0error:{exc}"
            mac.update(b"\0" + body.encode() + b"\0" + value.encode("utf-8", "replace"))
        return mac.hexdigest()
