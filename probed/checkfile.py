"""Check files into :class:`~probed.spec.CheckSpec`: ``checks.d/*.yaml``, the ``checks:`` of
``probed.yaml`` and checks discovered by plugins.

Every problem is a :class:`~probed.errors.ConfigError` printed ``FILE:LINE: field: message``;
all problems of a file are reported, not only the first. On first load every valid check runs
even if its siblings are invalid; on reload a file with any error keeps its last good checks
(see :func:`load_checks`). Values interpolated from ``${...}`` never appear in messages.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from pydantic import ValidationError

from probed._checkdirs import check_files
from probed._document import (
    Document,
    Problem,
    conceal,
    pydantic_problems,
    read_bytes,
    read_document,
)
from probed._interpolate import Interpolator
from probed._plugin_hint import explain_unknown_options, plugin_hint
from probed._yaml import DocPath, YList, did_you_mean, format_path, line_at
from probed.common import (
    COMMON_KEYS,
    CheckDefaults,
    merge_defaults,
    missing_keys,
    read_keys,
    resolve,
)
from probed.errors import ConfigError, ConfigErrors
from probed.plugins import CheckTypeInfo
from probed.redact import MIN_SECRET_LENGTH, option_secrets
from probed.settings import Settings
from probed.spec import CheckSpec

__all__ = ["FileResult", "LoadResult", "load_checks", "validate_check"]

_FILE_KEYS: Final = ("defaults", "checks")


@dataclass(frozen=True, slots=True)
class FileResult:
    """One checks file after validation.

    :param path: the file as given (or ``<plugin:NAME>`` for discovered checks).
    :param specs: the checks of this file that run: its valid checks, or on a reload where the
        file has errors, the checks of its last good version (then ``stale`` is true).
    :param errors: every problem found in the file's current content.
    :param digest: keyed hash of the content and of the values it interpolates; an equal
        digest on reload means the file need not be parsed again.
    :param secrets: interpolated secret values used by this file.
    :param spec_paths: ``checks[N]`` of each spec, parallel to ``specs``.
    :param stale: ``specs`` come from an earlier version because this one has errors.
    """

    path: str
    specs: tuple[CheckSpec, ...]
    errors: tuple[ConfigError, ...]
    digest: str
    secrets: frozenset[str] = frozenset()
    spec_paths: tuple[str, ...] = ()
    stale: bool = False


@dataclass(frozen=True, slots=True)
class LoadResult:
    """Every check file loaded.

    :param specs: every running check by name, in file order (first definition wins).
    :param errors: every problem found, each ``FILE:LINE: field: message``.
    :param files: the result of each file, by path.
    :param secrets: values to redact everywhere (see :class:`probed.redact.Redactor`).
    :param context: fingerprint of the defaults and check types the files were validated
        against; files are re-validated when it changes.
    """

    specs: dict[str, CheckSpec]
    errors: tuple[ConfigError, ...]
    files: dict[str, FileResult]
    secrets: frozenset[str]
    context: str = ""

    @property
    def ok(self) -> bool:
        """No errors at all."""
        return not self.errors


# -- one check ---------------------------------------------------------------------------------


def _type_problem(
    type_name: Any, types: Mapping[str, CheckTypeInfo], source: str
) -> Problem | None:
    """Why ``type_name`` cannot be used (unknown, or its module is missing), or None."""
    if not isinstance(type_name, str):
        return None
    info = types.get(type_name)
    if info is None:
        registered = ", ".join(sorted(types)) or "(none)"
        return (
            ("type",),
            f"unknown type {type_name!r}{did_you_mean(type_name, types)}"
            f"{plugin_hint(type_name, source)}; registered types: {registered}",
        )
    missing = info.missing_module
    if missing is None:
        return None
    extra = info.cls.extra
    fix = f"pip install 'probed[{extra}]'" if extra else f"install the {missing} module"
    return (("type",), f"type {type_name!r} needs the {missing} module: {fix}")


def validate_check(
    raw: Mapping[str, Any],
    types: Mapping[str, CheckTypeInfo],
    defaults: CheckDefaults,
    source: str,
    *,
    path: DocPath = (),
    line: int = 0,
    failed: Collection[DocPath] = (),
    hidden: Mapping[DocPath, Sequence[str]] | None = None,
) -> CheckSpec:
    """Validate one entry of ``checks:`` into a :class:`CheckSpec`.

    :param raw: the entry; a :class:`~probed._yaml.YDict` gives each error its own line.
    :param types: registered check types by name.
    :param defaults: settings defaults merged with the file's ``defaults:``.
    :param source: file name for errors and :attr:`CheckSpec.source`.
    :param path: where the entry sits in its file, e.g. ``("checks", 0)``, for error fields.
    :param line: the entry's line (used when a key has no line of its own).
    :param failed: paths inside ``raw`` whose interpolation failed: their errors are already
        reported, so validation errors there are dropped, and the check is invalid (the
        ``ConfigErrors`` raised may then be empty).
    :param hidden: interpolated values by path inside ``raw``, kept out of error messages.
    :raises ConfigErrors: every problem found.
    """
    line = line or getattr(raw, "line", 0)
    if not isinstance(raw, Mapping):
        kind = "a list" if isinstance(raw, list) else type(raw).__name__
        raise ConfigErrors(
            [ConfigError(source, line, format_path(path), f"a check must be a mapping, got {kind}")]
        )
    problems: list[Problem] = [
        ((str(k),), f"keys must be strings, got {k!r}") for k in raw if not isinstance(k, str)
    ]
    given, common_problems = read_keys(raw)
    problems += common_problems + missing_keys(raw)
    type_problem = _type_problem(raw.get("type"), types, source)
    info = (
        types.get(raw["type"])
        if type_problem is None and isinstance(raw.get("type"), str)
        else None
    )
    if type_problem is not None:
        problems.append(type_problem)

    options = None
    if info is not None:
        model = info.cls.options_model
        try:
            options = model.model_validate(
                {k: v for k, v in raw.items() if k not in COMMON_KEYS and isinstance(k, str)}
            )
        except ValidationError as exc:
            raw_problems = pydantic_problems(exc, model, COMMON_KEYS)
            problems += explain_unknown_options(
                raw_problems, model, info.cls.type_name, info.plugin, COMMON_KEYS
            )

    values, timing = resolve(given, defaults)
    problems += timing
    if info is not None and options is not None:
        found = info.cls.timing_problem(options, values["interval"], values["timeout"])
        if found is not None:
            problems.append((("timeout",), found))

    kept = [(loc, m) for loc, m in problems if not any(loc[: len(f)] == tuple(f) for f in failed)]
    if kept or failed or options is None or "name" not in given or "type" not in given:
        raise ConfigErrors(
            [
                ConfigError(
                    source,
                    line_at(raw, loc, line),
                    format_path((*path, *loc)),
                    conceal(message, loc, hidden or {}),
                )
                for loc, message in kept
            ]
        )
    return CheckSpec(**values, options=options, source=source, line=line)


# -- one file ----------------------------------------------------------------------------------


def _claim(
    seen: dict[str, CheckSpec], spec: CheckSpec, line: int, field: str
) -> ConfigError | None:
    """Record ``spec`` under its name, or the error if a check of that name came first.

    The rule that check names are unique across all files, written once.
    """
    first = seen.get(spec.name)
    if first is None:
        seen[spec.name] = spec
        return None
    return ConfigError(
        spec.source,
        line,
        field,
        f"duplicate check name {spec.name!r}: already defined at {first.where}; "
        "names must be unique across all files (this one is ignored)",
    )


def _validate_entries(
    entries: Sequence[Any],
    source: str,
    defaults: CheckDefaults,
    types: Mapping[str, CheckTypeInfo],
    doc: Document | None = None,
) -> tuple[list[CheckSpec], list[str], list[ConfigError]]:
    """Validate the items of a ``checks:`` list: (valid specs, their paths, errors)."""
    specs: list[CheckSpec] = []
    paths: list[str] = []
    errors: list[ConfigError] = []
    seen: dict[str, CheckSpec] = {}
    item_lines = entries.item_lines if isinstance(entries, YList) else []
    failed = doc.failed if doc is not None else set()
    hidden = doc.hidden if doc is not None else {}
    repeated = doc.repeated if doc is not None else set()
    for index, item in enumerate(entries):
        base: DocPath = ("checks", index)
        n = len(base)
        try:
            spec = validate_check(
                item,
                types,
                defaults,
                source,
                path=base,
                line=item_lines[index] if index < len(item_lines) else 0,
                failed={p[n:] for p in failed if p[:n] == base},
                hidden={p[n:]: v for p, v in hidden.items() if p[:n] == base},
            )
        except ConfigErrors as exc:
            errors += exc.errors
            continue
        if any(p[:n] == base for p in repeated):
            continue  # a repeated key inside it, already reported
        leaked = _secret_fields(spec, doc.secrets if doc is not None else ())
        if leaked:
            errors += [
                ConfigError(
                    source,
                    line_at(item, where, spec.line),
                    format_path((*base, *where)),
                    f"{what} must not hold a secret: {what.split()[-1]}s are published in "
                    f"{_SHOWN_IN.get(str(where[0]), _SHOWN_IN['name'])}; pass the secret in an "
                    "option of the check instead",
                )
                for where, what in leaked
            ]
            continue
        duplicate = _claim(
            seen, spec, line_at(item, ("name",), spec.line), format_path((*base, "name"))
        )
        if duplicate is not None:
            errors.append(duplicate)
            continue
        specs.append(spec)
        paths.append(format_path(base))
    return specs, paths, errors


_SHOWN_IN: Final = {"description": "the API", "name": "/metrics, the API and the logs"}


def _secret_fields(spec: CheckSpec, secrets: Collection[str]) -> list[tuple[DocPath, str]]:
    """``(path, what)`` of each free-text key of the check (its name, description and label
    values, all shown everywhere) that contains an interpolated secret."""
    found = [s for s in secrets if len(s) >= MIN_SECRET_LENGTH]
    if not found:
        return []
    texts: list[tuple[DocPath, str, str]] = [
        (("name",), "a check name", spec.name),
        (("description",), "a description", spec.description),
    ]
    texts += [(("labels", label), "a label", value) for label, value in spec.labels]
    lowered = [s.lower() for s in found]
    return [
        (where, what)
        for where, what, text in texts
        if text and any(secret in text.lower() for secret in lowered)
    ]


def _validate_document(
    source: str,
    content: bytes,
    digest: str,
    settings: Settings,
    types: Mapping[str, CheckTypeInfo],
    interpolator: Interpolator,
    *,
    inline: bool,
) -> FileResult:
    """Validate one checks file (or, with ``inline``, the ``checks:`` of ``probed.yaml``)."""
    doc = read_document(
        source,
        content,
        interpolator,
        shape="a mapping with a 'checks:' list",
        # probed.yaml's other sections are load_settings' business.
        in_scope=(lambda path: path[:1] == ("checks",)) if inline else None,
    )
    errors = list(doc.errors)
    specs: list[CheckSpec] = []
    paths: list[str] = []
    tree = doc.tree
    if tree is not None:
        defaults = settings.defaults
        defaults_ok = True
        if not inline:
            for key in tree:
                if key not in _FILE_KEYS:
                    errors.append(
                        doc.error(
                            (key,),
                            f"unknown key {key!r}{did_you_mean(str(key), _FILE_KEYS)}; a checks "
                            "file has 'checks:' and optionally 'defaults:'",
                        )
                    )
            defaults, problems = merge_defaults(defaults, tree.get("defaults"))
            errors += doc.locate(problems, ("defaults",))
            defaults_ok = not problems and not any(p[:1] == ("defaults",) for p in doc.failed)
        checks = tree.get("checks")
        if checks is not None and not isinstance(checks, list):
            errors.append(
                doc.error(
                    ("checks",), "must be a list of checks, each item starting with '- name: ...'"
                )
            )
        elif checks:
            specs, paths, check_errors = _validate_entries(checks, source, defaults, types, doc)
            errors += check_errors
            if not defaults_ok:
                specs, paths = [], []  # they would run with the wrong defaults
    return FileResult(
        source,
        tuple(specs),
        tuple(sorted(errors, key=lambda e: e.line)),
        digest,
        frozenset(doc.secrets).union(*(option_secrets(s.options) for s in specs)),
        tuple(paths),
    )


def _fingerprint(settings: Settings, types: Mapping[str, CheckTypeInfo]) -> str:
    """What, besides a file's own digest, decides how it validates."""
    parts = [repr(settings.defaults)]
    for name in sorted(types):
        info = types[name]
        parts.append(f"{name}:{info.plugin}:{info.identity}:{info.missing_module}")
    return "\n".join(parts)


def load_checks(
    settings: Settings,
    types: Mapping[str, CheckTypeInfo],
    previous: LoadResult | None = None,
    discovered: Iterable[tuple[str, Mapping[str, Any]]] = (),
    extra_files: Iterable[Path] = (),
) -> LoadResult:
    """Load every check: inline ``checks:`` of the config file, ``*.yaml``/``*.yml`` of each
    checks directory (sorted by name), ``extra_files``, then ``discovered`` checks.

    :param settings: daemon settings (defaults, directories, config file).
    :param types: registered check types.
    :param previous: the result of the previous load, for a reload: a file whose content now
        has errors keeps the checks of its previous version (its errors are still reported),
        and a file whose digest is unchanged is not validated again. Removed files vanish.
    :param discovered: ``(plugin_name, raw_check)`` pairs from ``probed_discover_checks``;
        invalid ones are reported from ``<plugin:NAME>`` and skipped.
    :param extra_files: more checks files (such as the embedded default file).
    :return: never raises for configuration problems; see :attr:`LoadResult.errors`.
    """
    config_dir = settings.config_file.parent if settings.config_file is not None else None
    interpolator = Interpolator(allowed=settings.secrets_dirs, config_dir=config_dir)
    context = _fingerprint(settings, types)
    old_files = previous.files if previous is not None else {}
    reuse = previous is not None and previous.context == context
    errors: list[ConfigError] = []
    sources: list[tuple[Path, bool]] = []
    if settings.config_file is not None:
        sources.append((settings.config_file, True))
    sources += [(p, False) for p in check_files(settings.checks_dirs, errors)]
    sources += [(p, False) for p in extra_files]

    files: dict[str, FileResult] = {}
    for path, inline in sources:
        key = str(path)
        if key in files:
            continue
        old = old_files.get(key)
        content = read_bytes(path)
        if isinstance(content, ConfigError):
            result = FileResult(key, (), (content,), "")
        else:
            here = interpolator.at(path.parent)
            digest = here.digest(content)
            if reuse and old is not None and old.digest == digest:
                files[key] = old
                continue
            result = _validate_document(key, content, digest, settings, types, here, inline=inline)
        if old is not None and result.errors:
            result = FileResult(
                key,
                old.specs,
                result.errors,
                result.digest,
                result.secrets | old.secrets,
                old.spec_paths,
                stale=True,
            )
        files[key] = result

    by_plugin: dict[str, list[Any]] = {}
    for plugin, raw in discovered:
        by_plugin.setdefault(plugin, []).append(raw)
    for plugin, entries in by_plugin.items():
        key = f"<plugin:{plugin}>"
        specs, paths, plugin_errors = _validate_entries(entries, key, settings.defaults, types)
        found = frozenset[str]().union(*(option_secrets(s.options) for s in specs))
        files[key] = FileResult(
            key, tuple(specs), tuple(plugin_errors), "", found, spec_paths=tuple(paths)
        )

    merged: dict[str, CheckSpec] = {}
    secrets: set[str] = set()
    for result in files.values():
        errors += result.errors
        secrets |= result.secrets
        spec_paths = result.spec_paths or ("",) * len(result.specs)
        over: list[CheckSpec] = []
        for spec, spec_path in zip(result.specs, spec_paths, strict=True):
            if len(merged) >= settings.max_checks and spec.name not in merged:
                over.append(spec)
                continue
            field = f"{spec_path}.name" if spec_path else "name"
            duplicate = _claim(merged, spec, spec.line, field)
            if duplicate is not None:
                errors.append(duplicate)
        if over:
            errors.append(_too_many(over, settings.max_checks))
    return LoadResult(merged, tuple(errors), files, frozenset(secrets), context)


def _too_many(over: Sequence[CheckSpec], limit: int) -> ConfigError:
    """The error for the checks of one file past ``max_checks`` (one line, not one per check)."""
    first = over[0]
    return ConfigError(
        first.source,
        first.line,
        "",
        f"more than {limit:,} checks: {len(over):,} check(s) from here on "
        f"({first.name!r} and after) are not run; raise max_checks in probed.yaml "
        "if this many are intended",
    )
