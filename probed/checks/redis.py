"""The ``redis`` check type: connect to Redis with redis-py (asyncio), PING, read INFO.

Every run opens one fresh connection (AUTH with the password or an ACL user happens during
``connect``), sends PING, and, when a role or INFO limits are configured, reads ``INFO``; the
connection is closed at the end of every run, also when the daemon cancels it at its timeout.
redis-py's own retries are off: a failed run is reported, not retried, so what is measured is
what a client would see. RESP2 is used so any Redis-compatible server (old Redis, Valkey,
KeyDB) answers.

Watched INFO fields are exported as ``probed_redis_info{field="used_memory"}`` and may carry
warn/fail limits above or below. The password never reaches a message: driver errors are
passed through a :class:`~probed.redact.Redactor`.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import re
from typing import Annotated, Any, ClassVar, Final, Literal

from pydantic import (
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from probed import hookimpl
from probed._yaml import did_you_mean
from probed.check import Check, CheckOptions, MetricDef, Reason, Result, Sample
from probed.checks._db_common import SecretUrl, format_ms, short, timed
from probed.checks._failures import network_failure
from probed.checks._reasons import (
    DATABASE_MISSING,
    LOADING,
    ROLE,
    TOO_MANY_CONNECTIONS,
    UNAVAILABLE,
)
from probed.checks._redis_info import NUMERIC_FIELDS, TEXT_FIELDS, format_info_value
from probed.checks._redis_reply import bounded_parser, reply_too_large
from probed.options import SIZE_PATTERN, SIZE_UNITS_HELP, parse_size
from probed.phase import format_elapsed, set_phase
from probed.redact import Redactor
from probed.threads import run_blocking
from probed.thresholds import Limit, WarnFail, check_order, evaluate

__all__ = ["InfoLimits", "RedisCheck", "RedisOptions"]

_SCHEMES: Final = ("redis", "rediss", "unix")
_FIELD_RE: Final = re.compile(r"[a-z][a-z0-9_]{0,63}")
_MAX_FIELDS: Final = 32  # each watched field is one series per check: keep it bounded
# Margin so redis-py's socket timeouts fire just before the daemon's: its error names the phase.
_MARGIN: Final = 0.05
_DOING: Final = {
    "connect": "connecting and logging in",
    "ping": "waiting for PONG",
    "info": "reading INFO",
}


def _number_or_size(value: Any) -> float:
    """A limit on any INFO field: a number (``100``, ``0.8``) or a size (``512MB``, ``1.5GiB``)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
        try:
            return float(parse_size(value))
        except ValueError:
            pass
    raise ValueError(
        f"invalid number {value!r}: use a number (100, 0.8) or a size, {SIZE_UNITS_HELP}"
    )


Quantity = Annotated[
    float,
    BeforeValidator(_number_or_size),
    WithJsonSchema(
        {
            "anyOf": [{"type": "number"}, {"type": "string", "pattern": SIZE_PATTERN}],
            "description": f"a number (100, 0.8) or a size: {SIZE_UNITS_HELP}",
        }
    ),
]
"""A limit: a number, or a size in the grammar of :data:`probed.options.Size`."""


def _normalise_role(value: Any) -> Any:
    aliases = {"primary": "master", "slave": "replica"}
    return aliases.get(value, value) if isinstance(value, str) else value


class InfoLimits(CheckOptions):
    """Warn/fail limits for one numeric INFO field; every limit is optional."""

    warn_above: Quantity | None = None
    fail_above: Quantity | None = None
    warn_below: Quantity | None = None
    fail_below: Quantity | None = None

    @model_validator(mode="after")
    def _check_order(self) -> InfoLimits:
        check_order(self, "above", names=("warn_above", "fail_above"))
        check_order(self, "below", above=False, names=("warn_below", "fail_below"))
        return self

    def limits(self, name: str, value: float) -> tuple[Limit, Limit]:
        """The two pairs of INFO field ``name`` (values must not rise above / fall below)."""
        label = f"{name} is {format_info_value(name, value)}"

        def fmt(limit: float) -> str:
            return format_info_value(name, limit)

        return (
            Limit(label, value, WarnFail(self.warn_above, self.fail_above), fmt),
            Limit(label, value, WarnFail(self.warn_below, self.fail_below, above=False), fmt),
        )


class RedisOptions(CheckOptions):
    """Options of the ``redis`` check type."""

    # Validation errors must not echo the URL they reject: it may hold the password.
    model_config = ConfigDict(hide_input_in_errors=True)  # merged with the base's

    url: SecretUrl = Field(
        description="redis://[user[:password]@]host:port/db, rediss:// for TLS, or "
        "unix:///path/redis.sock; the password is redacted everywhere"
    )
    username: str | None = Field(None, min_length=1, description="ACL user, if not in the URL")
    password: SecretStr | None = Field(None, description="password, if not in the URL")
    expect_role: Annotated[
        Literal["master", "replica"] | None, BeforeValidator(_normalise_role)
    ] = Field(None, description="fail unless INFO reports this role (primary/slave accepted)")
    # Declared before info_fields: its validator reads this value.
    allow_unknown_info_fields: bool = Field(
        False,
        description="accept info_fields names probed does not know (fields of a newer Redis, "
        "Valkey, KeyDB or a module); otherwise an unknown name is a validation error",
    )
    info_fields: dict[str, InfoLimits | None] = Field(
        default_factory=dict,
        description="numeric INFO fields to export as probed_redis_info{field}, each with "
        "optional warn_above/fail_above/warn_below/fail_below limits",
    )
    tls_ca_file: str | None = Field(
        None, description="CA bundle (PEM) to verify a rediss:// server with"
    )

    @field_validator("url")
    @classmethod
    def _check_url(cls, url: SecretUrl) -> SecretUrl:
        if url.scheme not in _SCHEMES:
            raise ValueError(
                f"url must start with redis://, rediss:// or unix:// (got {url.scheme}://); "
                "example: redis://127.0.0.1:6379/0"
            )
        return url

    @field_validator("info_fields")
    @classmethod
    def _check_fields(
        cls, fields: dict[str, InfoLimits | None], info: ValidationInfo
    ) -> dict[str, InfoLimits | None]:
        bad = [name for name in fields if not _FIELD_RE.fullmatch(name)]
        if bad:
            raise ValueError(
                f"INFO field names are lower-case words like used_memory; got {', '.join(bad)}"
            )
        if len(fields) > _MAX_FIELDS:
            raise ValueError(f"watch at most {_MAX_FIELDS} INFO fields per check")
        problems = [_field_problem(name) for name in fields]
        text = [p for p in problems if p is not None and not p.startswith("unknown")]
        unknown = [p for p in problems if p is not None and p.startswith("unknown")]
        if not info.data.get("allow_unknown_info_fields"):
            text += unknown
            if unknown:
                text[-1] += (
                    "; if your server reports it (a newer Redis, Valkey, KeyDB, a module), "
                    "set allow_unknown_info_fields: true"
                )
        if text:
            raise ValueError("; ".join(text))
        return fields

    @model_validator(mode="after")
    def _check_combinations(self) -> RedisOptions:
        if self.password is not None and self.url.password is not None:
            raise ValueError("the password is given twice, in url and in password; keep one")
        if self.username is not None and self.url.username:
            raise ValueError("the user is given twice, in url and in username; keep one")
        if self.tls_ca_file is not None and self.url.scheme != "rediss":
            raise ValueError("tls_ca_file needs a rediss:// url")
        return self

    @property
    def wants_info(self) -> bool:
        """Whether a run reads INFO."""
        return self.expect_role is not None or bool(self.info_fields)


def _field_problem(name: str) -> str | None:
    """Why ``name`` cannot be watched (text, or not a known numeric field), or ``None``."""
    if name in NUMERIC_FIELDS:
        return None
    if name.endswith("_human") and name.removesuffix("_human") in NUMERIC_FIELDS:
        return f"{name} is text; watch {name.removesuffix('_human')} (the number of bytes)"
    if name in TEXT_FIELDS:
        extra = " (use expect_role for the role)" if name == "role" else ""
        return f"{name} is a text field; info_fields watch numeric fields{extra}"
    return f"unknown INFO field {name!r}{did_you_mean(name, NUMERIC_FIELDS)}"


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


class RedisCheck(Check[RedisOptions]):
    """PING a Redis server on a fresh connection; check its role and INFO fields."""

    type_name: ClassVar[str] = "redis"
    options_model: ClassVar[type[CheckOptions]] = RedisOptions
    requires: ClassVar[tuple[str, ...]] = ("redis",)
    extra: ClassVar[str | None] = "redis"
    description: ClassVar[str] = "Redis: AUTH, PING, role and INFO field limits"
    metrics: ClassVar[tuple[MetricDef, ...]] = (
        MetricDef("probed_redis_info", "Numeric INFO fields the check watches", labels=("field",)),
    )

    async def setup(self) -> None:
        """Import the driver once, in a thread: it takes long enough to stall the loop and
        would otherwise count against the first run's timeout."""
        for module in ("redis.asyncio", "redis.asyncio.retry", "redis.backoff"):
            await run_blocking(importlib.import_module, module)

    def _secrets(self) -> tuple[str, ...]:
        extra = (self.options.password.get_secret_value(),) if self.options.password else ()
        return self.options.url.secrets() + extra

    async def run(self) -> Result:
        """Connect, PING, read INFO if needed, close; expected failures become results."""
        import redis.asyncio as aioredis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        opts = self.options
        loop = asyncio.get_running_loop()
        socket_timeout = max(self.spec.timeout - _MARGIN, 0.001)
        extra: dict[str, Any] = {}
        if opts.tls_ca_file is not None:
            extra["ssl_ca_certs"] = opts.tls_ca_file
        client = aioredis.Redis.from_url(
            opts.url.get_secret_value(),
            username=opts.username,
            password=opts.password.get_secret_value() if opts.password else None,
            protocol=2,
            retry=Retry(NoBackoff(), 0),
            socket_connect_timeout=socket_timeout,
            socket_timeout=socket_timeout,
            single_connection_client=True,
            # Every announced length checked before it is read (a hostile server's
            # `$999999999999` would otherwise be buffered): see _redis_reply.
            parser_class=bounded_parser(),
            **extra,
        )
        phases: dict[str, float] = {}
        phase = "connect"
        start = loop.time()
        try:
            set_phase(_DOING["connect"])
            with timed(phases, "connect"):
                await client.initialize()
            phase = "ping"
            set_phase(_DOING["ping"])
            with timed(phases, "ping"):
                pong = await client.ping()
            if pong is not True:
                return self._fail(
                    Reason.PROTOCOL,
                    f"{opts.url.endpoint} answered PING with {short(repr(pong), 60)}, not PONG",
                    phases,
                )
            info: dict[str, Any] | None = None
            if opts.wants_info:
                phase = "info"
                set_phase(_DOING["info"])
                with timed(phases, "info"):
                    info = await client.info()
            return self._evaluate(info, phases)
        except Exception as exc:
            reason, text = self._classify(exc, phase, loop.time() - start)
            return self._fail(reason, text, phases)
        finally:
            # Also on timeout or cancellation: never leave the connection behind.
            with contextlib.suppress(Exception):
                await client.aclose()

    def _fail(self, reason: str, text: str, phases: dict[str, float]) -> Result:
        return Result.fail(reason, Redactor(self._secrets())(text), phases=phases)

    def _evaluate(self, info: dict[str, Any] | None, phases: dict[str, float]) -> Result:
        opts = self.options
        where = opts.url.endpoint
        connect, ping = format_ms(phases["connect"]), format_ms(phases["ping"])
        summary = f"{where}: connected in {connect}, PONG in {ping}"
        if info is None:
            return Result.ok(summary, phases=phases)
        role = "replica" if info.get("role") == "slave" else str(info.get("role", "unknown"))
        if role == "replica":
            upstream = f"{info.get('master_host', '?')}:{info.get('master_port', '?')}"
            role_text = f"replica of {upstream}, link {info.get('master_link_status', '?')}"
        else:
            role_text = f"{role}, {info.get('connected_slaves', 0)} connected replicas"
        samples: list[Sample] = []
        missing: list[str] = []
        limits: list[Limit] = []
        for name, pairs in opts.info_fields.items():
            value = _number(info.get(name))
            if value is None:
                missing.append(name)
                continue
            samples.append(Sample("probed_redis_info", value, (name,)))
            if pairs is not None:
                limits.extend(pairs.limits(name, value))
        kw: dict[str, Any] = {"phases": phases, "samples": tuple(samples)}
        if opts.expect_role is not None and role != opts.expect_role:
            return Result.fail(
                ROLE,
                f"{where} is a {role_text}; expected a {opts.expect_role} "
                "(failover happened, or the url points at the wrong node)",
                **kw,
            )
        if missing:
            return Result.fail(
                Reason.ASSERTION,
                f"{where}: INFO has no numeric field {', '.join(missing)} "
                f"(misspelt, or not reported by this server/role); role {role_text}",
                **kw,
            )
        text = f"{summary}; {role_text}"
        verdict = evaluate(limits)
        if verdict.message:
            return Result(verdict.status, verdict.reason, f"{where}: {verdict.message}", **kw)
        watched = ", ".join(
            f"{s.labels[0]}={format_info_value(s.labels[0], s.value)}" for s in samples
        )
        return Result.ok(f"{text}; {watched}" if watched else text, **kw)

    def _classify(self, exc: Exception, phase: str, elapsed: float) -> tuple[str, str]:
        from redis import exceptions as rexc

        where = self.options.url.endpoint
        detail = short(str(exc)) or type(exc).__name__
        during = _DOING.get(phase, phase)
        upper = str(exc).upper()
        if isinstance(exc, rexc.BusyLoadingError) or upper.startswith("LOADING"):
            return LOADING, (
                f"{where} is loading its dataset into memory (just restarted?) and refuses "
                f"commands until it is done: {detail}"
            )
        if isinstance(exc, rexc.NoPermissionError):
            return Reason.AUTH, f"{where}: the user may not run a command the check needs: {detail}"
        if isinstance(exc, rexc.AuthenticationError) or upper.startswith(("NOAUTH", "WRONGPASS")):
            return Reason.AUTH, (
                f"{where} rejected the login while {during}: {detail} "
                "(check username and password / ACL user)"
            )
        if isinstance(exc, rexc.TimeoutError | TimeoutError):
            return Reason.TIMEOUT, (
                f"no answer from {where} while {during} after {format_elapsed(elapsed)} "
                "(server hung or overloaded, or not Redis)"
            )
        if "max number of clients" in str(exc):
            return TOO_MANY_CONNECTIONS, (
                f"{where} refused a new client: {detail} (maxclients reached; "
                "look for a connection leak)"
            )
        if "DB index is out of range" in str(exc):
            return DATABASE_MISSING, f"{where}: {detail} (check the /db number in the url)"
        if upper.startswith("MASTERDOWN"):
            return UNAVAILABLE, f"{where}: {detail}"
        if reply_too_large(exc):
            return Reason.PROTOCOL, (
                f"{where} sent {detail} while {during}; probed stopped reading there "
                "(is it Redis on that port?)"
            )
        if isinstance(exc, rexc.InvalidResponse):
            return Reason.PROTOCOL, (
                f"{where} did not answer like Redis while {during} ({detail}): "
                "is it Redis on that port?"
            )
        network = network_failure(exc, where)
        if network is not None and network[0] == Reason.CONNECTION_RESET and phase != "info":
            # Redis refuses a client over maxclients by writing an error and closing at once;
            # when our first command crosses that close, the kernel's reset loses the error.
            return Reason.CONNECTION_RESET, (
                f"{where} closed the connection right after it was opened, while {during} "
                "(maxclients reached, a TLS port spoken to in plain text, or a restart?)"
            )
        if network is not None:
            return network
        if isinstance(exc, rexc.ConnectionError):
            return Reason.CONNECTION_RESET, f"{where}: connection lost while {during}: {detail}"
        if isinstance(exc, rexc.ResponseError):
            return Reason.OTHER, f"{where} replied with an error while {during}: {detail}"
        return (
            Reason.EXCEPTION,
            f"{where}: unexpected {type(exc).__name__} while {during}: {detail}",
        )


@hookimpl
def probed_register_check_types() -> list[type[Check[Any]]]:
    """Register the ``redis`` check type."""
    return [RedisCheck]
