"""Configuration loading: ``probed.yaml`` into ``Settings``, check files into ``CheckSpec``.

Every problem is a :class:`~probed.errors.ConfigError` printed ``FILE:LINE: field: message``;
all problems of a file are reported, not only the first. On first load every valid check runs
even if its siblings are invalid; on reload a file with any error keeps its last good checks
(see :func:`load_checks`). ``${VAR}``, ``${VAR:-default}`` and ``${file:/path}`` are resolved
after YAML parsing, and values they produce never appear in error messages.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from pydantic import ValidationError

from probed._config_models import (
    COMMON_KEYS,
    RESERVED_LABELS,
    Common,
    SettingsFile,
    check_file_schema,
    label_problems,
    located,
    merge_defaults,
    pydantic_problems,
    related,
)
from probed._durations import format_duration
from probed._interpolate import Interpolator
from probed._plugin_hint import plugin_hint
from probed._yaml import (
    DocPath,
    YDict,
    YList,
    did_you_mean,
    duplicate_keys,
    format_path,
    line_at,
    load_yaml,
    to_plain,
)
from probed.errors import ConfigError, ConfigErrors
from probed.plugins import CheckTypeInfo
from probed.redact import MIN_SECRET_LENGTH, hide
from probed.settings import CheckDefaults, Settings
from probed.spec import CheckSpec

__all__ = [
    "COMMON_KEYS",
    "RESERVED_LABELS",
    "FileResult",
    "LoadResult",
    "check_file_schema",
    "load_checks",
    "load_settings",
    "validate_check",
]

_FILE_KEYS: Final = ("defaults", "checks")
_TIMEOUT_SHARE: Final = 0.8


# -- result types -------------------------------------------------------------------------------


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
    problems: list[tuple[DocPath, str]] = []
    if not isinstance(raw, Mapping):
        kind = "a list" if isinstance(raw, list) else type(raw).__name__
        raise ConfigErrors(
            [ConfigError(source, line, format_path(path), f"a check must be a mapping, got {kind}")]
        )
    bad_keys = [k for k in raw if not isinstance(k, str)]
    problems += [((str(k),), f"keys must be strings, got {k!r}") for k in bad_keys]
    common_raw = {k: raw[k] for k in COMMON_KEYS if k in raw}
    options_raw = {k: v for k, v in raw.items() if k not in COMMON_KEYS and isinstance(k, str)}

    try:
        common = Common.model_validate(common_raw)
    except ValidationError as exc:
        common_problems = pydantic_problems(exc, Common)
        for loc, message in common_problems:
            if loc[:1] == ("labels",) and len(loc) == 3 and loc[2] == "[key]":
                continue  # a non-string label name: label_problems below words it better
            if loc[:1] == ("labels",) and len(loc) == 2 and message.startswith("Input should be"):
                message = "label values must be strings (quote the value in YAML)"
            problems.append((loc, message))
        # Keep what is valid, so that e.g. timeout is still compared with interval.
        rejected = {loc[0] for loc, _ in common_problems if loc}
        common = Common.model_validate({k: v for k, v in common_raw.items() if k not in rejected})
    problems += [
        ((), f"missing required key {k!r}") for k in ("name", "type") if raw.get(k) is None
    ]
    type_name = raw.get("type")
    info = types.get(type_name) if isinstance(type_name, str) else None
    if isinstance(type_name, str) and info is None:
        registered = ", ".join(sorted(types)) or "(none)"
        problems.append(
            (
                ("type",),
                f"unknown type {type_name!r}{did_you_mean(type_name, types)}"
                f"{plugin_hint(type_name, source)}; registered types: {registered}",
            )
        )
    elif info is not None and (missing := info.missing_module) is not None:
        extra = info.cls.extra
        fix = f"pip install 'probed[{extra}]'" if extra else f"install the {missing} module"
        problems.append((("type",), f"type {type_name!r} needs the {missing} module: {fix}"))
        info = None

    options = None
    if info is not None:
        model = info.cls.options_model
        try:
            options = model.model_validate(options_raw)
        except ValidationError as exc:
            problems += pydantic_problems(exc, model, COMMON_KEYS)

    labels = dict(defaults.labels)
    if isinstance(raw.get("labels"), Mapping):
        problems += [(("labels", k), m) for k, m in label_problems(raw["labels"])]
    labels.update(common.labels or {})
    interval = common.interval or defaults.interval
    if common.timeout is not None:
        timeout = common.timeout
        if timeout >= interval:
            where = "interval" if common.interval is not None else "the default interval"
            problems.append(
                (
                    ("timeout",),
                    f"timeout {format_duration(timeout)} must be less than {where} "
                    f"{format_duration(interval)}",
                )
            )
    else:
        timeout = min(defaults.timeout, _TIMEOUT_SHARE * interval)

    if info is not None and options is not None:
        timing = info.cls.timing_problem(options, interval, timeout)
        if timing is not None:
            problems.append((("timeout",), timing))

    kept = [
        (loc, msg) for loc, msg in problems if not any(loc[: len(f)] == tuple(f) for f in failed)
    ]
    if kept or failed or options is None or common.name is None or common.type is None:
        errors = []
        for loc, message in kept:
            if hidden:
                message = hide(
                    message,
                    (p for hp, ps in hidden.items() if related(tuple(hp), loc) for p in ps),
                )
                message = hide(
                    message,
                    (p for ps in hidden.values() for p in ps if len(p) >= MIN_SECRET_LENGTH),
                )
            errors.append(
                ConfigError(source, line_at(raw, loc, line), format_path((*path, *loc)), message)
            )
        raise ConfigErrors(errors)
    return CheckSpec(
        name=common.name,
        type=common.type,
        interval=interval,
        timeout=timeout,
        options=options,
        readiness=defaults.readiness if common.readiness is None else common.readiness,
        failure_threshold=common.failure_threshold or defaults.failure_threshold,
        success_threshold=common.success_threshold or defaults.success_threshold,
        labels=tuple(sorted(labels.items())),
        description=common.description or "",
        source=source,
        line=line,
    )


# -- one file ----------------------------------------------------------------------------------


@dataclass(slots=True)
class _Context:
    settings: Settings
    types: Mapping[str, CheckTypeInfo]
    interpolator: Interpolator


def _validate_entries(
    entries: Sequence[Any],
    source: str,
    defaults: CheckDefaults,
    types: Mapping[str, CheckTypeInfo],
    *,
    broken: Collection[DocPath] = (),
    failed: Collection[DocPath] = (),
    hidden: Mapping[DocPath, Sequence[str]] | None = None,
) -> tuple[list[CheckSpec], list[str], list[ConfigError]]:
    """Validate the items of a ``checks:`` list: (valid specs, their paths, errors)."""
    specs: list[CheckSpec] = []
    paths: list[str] = []
    errors: list[ConfigError] = []
    seen: dict[str, CheckSpec] = {}
    item_lines = entries.item_lines if isinstance(entries, YList) else []
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
                hidden={p[n:]: v for p, v in (hidden or {}).items() if p[:n] == base},
            )
        except ConfigErrors as exc:
            errors += exc.errors
            continue
        if any(p[:n] == base for p in broken):
            continue  # a repeated key inside it, already reported
        first = seen.get(spec.name)
        if first is not None:
            errors.append(
                ConfigError(
                    source,
                    line_at(item, ("name",), spec.line),
                    format_path((*base, "name")),
                    f"duplicate check name {spec.name!r}: already defined at {first.where}; "
                    "names must be unique across all files (this one is ignored)",
                )
            )
            continue
        seen[spec.name] = spec
        specs.append(spec)
        paths.append(format_path(base))
    return specs, paths, errors


def _validate_document(
    source: str, content: bytes, digest: str, ctx: _Context, *, inline: bool
) -> FileResult:
    """Validate one checks file (or, with ``inline``, the ``checks:`` of ``probed.yaml``)."""

    def done(
        specs: Sequence[CheckSpec] = (),
        paths: Sequence[str] = (),
        errors: Sequence[ConfigError] = (),
        secrets: Iterable[str] = (),
    ) -> FileResult:
        ordered = tuple(sorted(errors, key=lambda e: e.line))
        return FileResult(source, tuple(specs), ordered, digest, frozenset(secrets), tuple(paths))

    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return done(errors=[ConfigError(source, 0, "", f"not valid UTF-8 (byte {exc.start})")])
    try:
        doc = load_yaml(text, source)
    except ConfigError as exc:
        return done(errors=[exc])
    if doc is None:
        return done()
    if not isinstance(doc, YDict):
        kind = "a list" if isinstance(doc, list) else f"a {type(doc).__name__}"
        return done(
            errors=[
                ConfigError(
                    source,
                    getattr(doc, "line", 1),
                    "",
                    f"the top level must be a mapping with a 'checks:' list, got {kind}",
                )
            ]
        )

    def mine(path: DocPath) -> bool:
        # probed.yaml's other sections are load_settings' business.
        return not inline or path[:1] == ("checks",)

    errors: list[ConfigError] = []
    broken: set[DocPath] = set()
    for where, line, key in duplicate_keys(doc):
        if mine(where):
            broken.add((*where, key))
            errors.append(
                ConfigError(
                    source,
                    line,
                    format_path((*where, key)),
                    f"key {key!r} is repeated in the same mapping; keep only one",
                )
            )
    interp = ctx.interpolator.tree(doc)
    doc = interp.value
    for where, message in interp.errors:
        if mine(where):
            errors.append(ConfigError(source, line_at(doc, where), format_path(where), message))
    if () in interp.failed:
        return done(errors=errors)
    defaults = ctx.settings.defaults
    defaults_ok = True
    if not inline:
        for key in doc:
            if key not in _FILE_KEYS:
                hint = did_you_mean(str(key), _FILE_KEYS)
                errors.append(
                    ConfigError(
                        source,
                        line_at(doc, (key,)),
                        str(key),
                        f"unknown key {key!r}{hint}; a checks file has 'checks:' and "
                        "optionally 'defaults:'",
                    )
                )
        defaults, problems = merge_defaults(defaults, doc.get("defaults"))
        errors += located(problems, doc, source, ("defaults",), interp.pieces)
        defaults_ok = not problems and not any(p[:1] == ("defaults",) for p in interp.failed)
    checks = doc.get("checks")
    specs: list[CheckSpec] = []
    paths: list[str] = []
    if checks is not None and not isinstance(checks, list):
        errors.append(
            ConfigError(
                source,
                line_at(doc, ("checks",)),
                "checks",
                "must be a list of checks, each item starting with '- name: ...'",
            )
        )
    elif checks:
        specs, paths, check_errors = _validate_entries(
            checks,
            source,
            defaults,
            ctx.types,
            broken=broken,
            failed=interp.failed,
            hidden=interp.pieces,
        )
        errors += check_errors
        if not defaults_ok:
            specs, paths = [], []  # they would run with the wrong defaults
    return done(specs, paths, errors, interp.secrets)


def _fingerprint(settings: Settings, types: Mapping[str, CheckTypeInfo]) -> str:
    """What, besides a file's own digest, decides how it validates."""
    parts = [repr(settings.defaults)]
    for name in sorted(types):
        info = types[name]
        parts.append(f"{name}:{info.plugin}:{id(info.cls)}:{info.missing_module}")
    return "\n".join(parts)


def _check_files(settings: Settings, errors: list[ConfigError]) -> list[Path]:
    found: list[Path] = []
    for directory in settings.checks_dirs:
        if not directory.is_dir():
            reason = "does not exist" if not directory.exists() else "is not a directory"
            errors.append(ConfigError(str(directory), 0, "", f"checks directory {reason}"))
            continue
        found += sorted(
            (
                p
                for p in directory.iterdir()
                # Skip hidden files: editor lock files such as ".#api.yaml" end in .yaml too.
                if p.suffix in (".yaml", ".yml") and not p.name.startswith(".") and p.is_file()
            ),
            key=lambda p: p.name,
        )
    return found


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
    interpolator = Interpolator()
    ctx = _Context(settings, types, interpolator)
    context = _fingerprint(settings, types)
    old_files = previous.files if previous is not None else {}
    reuse = previous is not None and previous.context == context
    errors: list[ConfigError] = []
    sources: list[tuple[Path, bool]] = []
    if settings.config_file is not None:
        sources.append((settings.config_file, True))
    sources += [(p, False) for p in _check_files(settings, errors)]
    sources += [(p, False) for p in extra_files]

    files: dict[str, FileResult] = {}
    for path, inline in sources:
        key = str(path)
        if key in files:
            continue
        old = old_files.get(key)
        try:
            content = path.read_bytes()
        except OSError as exc:
            message = f"cannot read: {exc.strerror or type(exc).__name__}"
            result = FileResult(key, (), (ConfigError(key, 0, "", message),), "")
        else:
            digest = interpolator.digest(content)
            if reuse and old is not None and old.digest == digest:
                files[key] = old
                continue
            result = _validate_document(key, content, digest, ctx, inline=inline)
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
        files[key] = FileResult(
            key, tuple(specs), tuple(plugin_errors), "", spec_paths=tuple(paths)
        )

    merged: dict[str, CheckSpec] = {}
    secrets: set[str] = set()
    for result in files.values():
        errors += result.errors
        secrets |= result.secrets
        spec_paths = result.spec_paths or ("",) * len(result.specs)
        for spec, spec_path in zip(result.specs, spec_paths, strict=True):
            first = merged.get(spec.name)
            if first is None:
                merged[spec.name] = spec
                continue
            errors.append(
                ConfigError(
                    spec.source,
                    spec.line,
                    f"{spec_path}.name" if spec_path else "name",
                    f"duplicate check name {spec.name!r}: already defined at {first.where}; "
                    "names must be unique across all files (this one is ignored)",
                )
            )
    return LoadResult(merged, tuple(errors), files, frozenset(secrets), context)


# -- probed.yaml -------------------------------------------------------------------------------


def _settings_values(path: Path) -> dict[str, Any]:
    """Settings field values from a ``probed.yaml``.

    :raises ConfigErrors: every problem in the file (its ``checks:`` are left to load_checks).
    """
    source = str(path)
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigErrors([ConfigError(source, 0, "", f"cannot read: {reason}")]) from None
    except UnicodeDecodeError as exc:
        raise ConfigErrors(
            [ConfigError(source, 0, "", f"not valid UTF-8 (byte {exc.start})")]
        ) from None
    try:
        doc = load_yaml(text, source)
    except ConfigError as exc:
        raise ConfigErrors([exc]) from None
    if doc is None:
        return {}
    if not isinstance(doc, YDict):
        raise ConfigErrors(
            [ConfigError(source, getattr(doc, "line", 1), "", "the top level must be a mapping")]
        )
    errors: list[ConfigError] = []
    for where, line, key in duplicate_keys(doc):
        if where[:1] != ("checks",):
            message = f"key {key!r} is repeated in the same mapping; keep only one"
            errors.append(ConfigError(source, line, format_path((*where, key)), message))
    interp = Interpolator().tree(doc)
    doc = interp.value
    failed = {p for p in interp.failed if p[:1] != ("checks",)}
    for where, message in interp.errors:
        if where in failed:
            errors.append(ConfigError(source, line_at(doc, where), format_path(where), message))
    problems: list[tuple[DocPath, str]] = []
    model = SettingsFile()
    try:
        model = SettingsFile.model_validate(doc)
    except ValidationError as exc:
        problems += pydantic_problems(exc, SettingsFile)
    defaults = CheckDefaults()
    if doc.get("defaults") is not None:
        defaults, default_problems = merge_defaults(defaults, doc["defaults"])
        problems += [(("defaults", *loc), m) for loc, m in default_problems]
    seen: set[tuple[DocPath, str]] = set()
    unique = []
    for loc, message in problems:
        if (loc, message) not in seen and not any(loc[: len(f)] == f for f in failed):
            seen.add((loc, message))
            unique.append((loc, message))
    errors += located(unique, doc, source, (), interp.pieces)
    if errors:
        raise ConfigErrors(sorted(errors, key=lambda e: e.line))

    values: dict[str, Any] = {}
    base = path.parent
    for name in model.model_fields_set:
        value = getattr(model, name)
        if value is None or name == "checks":
            continue
        if name in ("checks_dirs", "plugins_dirs"):
            value = tuple(base / Path(v).expanduser() for v in value)
        elif name == "disabled_plugins":
            value = tuple(value)
        elif name == "defaults":
            value = defaults
        elif name == "plugins":
            value = {k: to_plain(v) if v is not None else {} for k, v in value.items()}
        values[name] = value
    return values


def load_settings(config_file: Path | None, overrides: Mapping[str, Any]) -> Settings:
    """Read ``probed.yaml`` (optional) into :class:`Settings`; ``overrides`` win.

    Relative ``checks_dirs``/``plugins_dirs`` in the file are relative to the file's directory.

    :param config_file: the file, or ``None`` for built-in defaults.
    :param overrides: values from the command line and ``PROBED_*`` variables, keyed by
        Settings field name and already typed.
    :raises ConfigErrors: every problem in the file, each ``FILE:LINE: field: message``.
    """
    values: dict[str, Any] = {"config_file": config_file}
    if config_file is not None:
        values.update(_settings_values(config_file))
    values.update(overrides)
    return Settings(**values)
