"""The ``smtp`` check type: banner, EHLO, optional STARTTLS and AUTH, an envelope, never DATA.

Every run opens a fresh connection and walks the phases ``connect`` (after ``resolve`` for
host names; with ``tls`` for implicit TLS on port 465), ``banner`` (220 expected), ``ehlo``,
``tls`` (STARTTLS, then EHLO again), ``auth`` (AUTH PLAIN or LOGIN), ``envelope`` (``MAIL FROM``
and each ``RCPT TO`` must be accepted, then ``RSET``), and says ``QUIT``. No message is ever
sent: the check never says ``DATA``.

The password never goes over a connection without TLS unless ``allow_plaintext_auth`` says so,
and never reaches a message: what the server says is passed through the check's redactor
(also in the base64 forms AUTH sends). The client is :mod:`probed.checks._smtp_client`:
bounded lines, replies and bytes per run.
"""

from __future__ import annotations

import asyncio
import base64
import re
import socket
import ssl
import time
from typing import Any, ClassVar, Final, Literal

from pydantic import ConfigDict, Field, SecretStr, field_validator, model_validator

from probed import hookimpl
from probed.check import Check, CheckOptions, MetricDef, Reason, Result, Status
from probed.checks._endpoint import EndpointOptions, parse_address
from probed.checks._net import ProbeError, family_for, format_addr, open_connection
from probed.checks._smtp_client import Reply, SmtpError, SmtpProtocol, SmtpSession
from probed.checks._tls import CERT_EXPIRY_METRIC, TlsOptions, expiry_verdict, load_context
from probed.options import Regex
from probed.phase import format_elapsed, set_phase
from probed.redact import Redactor

__all__ = ["SmtpCheck", "SmtpOptions"]

TlsMode = Literal["none", "auto", "starttls", "implicit"]

_MAX_RCPT: Final = 10
_ADDRESS: Final = re.compile(r"[\x21-\x3b\x3d\x3f-\x7e]{1,254}")  # printable ASCII but < >
_BANNER_HINTS: Final = {
    554: " (it refuses sessions from this client: a block list, or no service here)",
    421: " (it is shutting down or overloaded)",
}
_EHLO_NAME: Final = re.compile(r"[A-Za-z0-9.:\[\]_-]{1,255}")
# Share of the check's timeout the exchange may use: the rest is kept to say QUIT and to
# report a stall as "no reply to EHLO within ..." instead of the daemon's bare timeout.
_BUDGET: Final = 0.9


def _address(value: str, field: str, *, empty_ok: bool = False) -> str:
    value = value.strip().removeprefix("<").removesuffix(">")
    if value == "" and empty_ok:
        return value
    if not _ADDRESS.fullmatch(value):
        raise ValueError(
            f"{field} {value[:60]!r} is not a plain ASCII mail address like probe@example.org "
            "(no spaces, no <>, no non-ASCII: probed does not speak SMTPUTF8)"
        )
    return value


class SmtpOptions(EndpointOptions):
    """Options of the ``smtp`` check type (``address``, ``ip_version``, ``tls`` inherited)."""

    model_config = ConfigDict(hide_input_in_errors=True)  # merged with the base's

    ehlo_name: str | None = Field(
        default=None,
        description="Name to greet with in EHLO (default: this machine's host name).",
    )
    expect_banner: Regex | None = Field(
        default=None, description="Regex the 220 banner text must match."
    )
    starttls: bool | Literal["auto"] | None = Field(
        default=None,
        description="true: STARTTLS is required; auto: used when the server offers it; "
        "false: never. Default: auto, or implicit TLS (port 465) when tls is set.",
    )
    tls: TlsOptions | None = Field(
        default=None,
        description="TLS settings (verify, ca_file, server_name, expiry days...). Without "
        "starttls: true/auto, the connection starts with TLS (implicit TLS, port 465).",
    )
    username: str | None = Field(default=None, min_length=1, description="AUTH user name.")
    password: SecretStr | None = Field(
        default=None, description="AUTH password (use ${file:/run/secrets/...})."
    )
    auth_mechanism: Literal["auto", "plain", "login"] = Field(
        default="auto", description="auto (PLAIN if offered, else LOGIN), plain or login."
    )
    allow_plaintext_auth: bool = Field(
        default=False,
        description="Allow AUTH on a connection without TLS (the password travels in clear).",
    )
    mail_from: str | None = Field(
        default=None, description='Sender for MAIL FROM ("" for the null sender <>).'
    )
    rcpt_to: list[str] = Field(
        default_factory=list,
        description=f"Recipients (at most {_MAX_RCPT}) each RCPT TO must accept; needs mail_from.",
    )

    @field_validator("starttls", mode="before")
    @classmethod
    def _starttls(cls, value: Any) -> Any:
        if isinstance(value, str) and value.lower() in ("true", "false", "auto"):
            return {"true": True, "false": False}.get(value.lower(), "auto")
        return value

    @field_validator("rcpt_to", mode="before")
    @classmethod
    def _rcpt_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("ehlo_name")
    @classmethod
    def _ehlo_name(cls, value: str | None) -> str | None:
        if value is not None and not _EHLO_NAME.fullmatch(value):
            raise ValueError(
                f"ehlo_name {value[:60]!r} is not a host name or address literal "
                "(like probe.example.org or [192.0.2.1])"
            )
        return value

    @field_validator("mail_from")
    @classmethod
    def _mail_from(cls, value: str | None) -> str | None:
        return None if value is None else _address(value, "mail_from", empty_ok=True)

    @field_validator("rcpt_to")
    @classmethod
    def _rcpt_to(cls, value: list[str]) -> list[str]:
        if len(value) > _MAX_RCPT:
            raise ValueError(f"at most {_MAX_RCPT} recipients per check (got {len(value)})")
        return [_address(v, "rcpt_to") for v in value]

    @model_validator(mode="after")
    def _smtp_consistent(self) -> SmtpOptions:
        if (self.username is None) != (self.password is None):
            raise ValueError("AUTH needs both username and password (one of them is missing)")
        if self.username is not None and self.tls_mode == "none" and not self.allow_plaintext_auth:
            raise ValueError(
                "the password would be sent without TLS (starttls: false and no tls): set "
                "starttls: true, or tls: for implicit TLS (port 465), or allow_plaintext_auth: "
                "true if clear text is intended"
            )
        if self.rcpt_to and self.mail_from is None:
            raise ValueError('rcpt_to needs mail_from (use mail_from: "" for the null sender)')
        return self

    @property
    def tls_mode(self) -> TlsMode:
        """How TLS is used: none, auto (STARTTLS if offered), starttls (required), implicit."""
        if self.starttls is True:
            return "starttls"
        if self.starttls == "auto":
            return "auto"
        if self.tls is not None:
            return "implicit"
        return "auto" if self.starttls is None else "none"


def _extensions(reply: Reply) -> dict[str, str]:
    """EHLO keywords (upper case) to their parameters; ``AUTH=LOGIN`` (old form) counts too."""
    found: dict[str, str] = {}
    for line in reply.lines[1:]:
        word, _, params = line.partition(" ")
        key = word.upper()
        if key.startswith("AUTH="):
            key, params = "AUTH", word[5:] + " " + params
        found[key] = (found.get(key, "") + " " + params).strip()
    return found


class SmtpCheck(Check[SmtpOptions]):
    """Greet a mail server, optionally upgrade, log in and try an envelope; never send."""

    type_name: ClassVar[str] = "smtp"
    options_model: ClassVar[type[CheckOptions]] = SmtpOptions
    metrics: ClassVar[tuple[MetricDef, ...]] = (CERT_EXPIRY_METRIC,)
    description: ClassVar[str] = "SMTP: banner, EHLO, STARTTLS, AUTH, MAIL FROM/RCPT TO (no DATA)"

    def __init__(self, spec: Any) -> None:
        super().__init__(spec)
        opts = self.options
        self.host, self.port = parse_address(opts.address)
        self.where = format_addr(self.host, self.port)
        self.family = family_for(opts.ip_version)
        self.mode = opts.tls_mode
        self.tls = opts.tls or TlsOptions()
        self.ehlo_name = opts.ehlo_name or socket.gethostname() or "localhost"
        self.banner_re = re.compile(opts.expect_banner) if opts.expect_banner else None
        self.ssl_context: ssl.SSLContext | None = None
        self._tls_error: str | None = None
        self._ready = False
        secrets: list[str] = []
        if opts.username is not None and opts.password is not None:
            password = opts.password.get_secret_value()
            plain = f"\0{opts.username}\0{password}".encode()
            secrets += [password, base64.b64encode(plain).decode()]
        self.redact = Redactor(secrets)

    async def setup(self) -> None:
        """Build the SSL context once (reading CA/cert files in a thread)."""
        wanted = self.tls if self.mode != "none" else None
        self.ssl_context, self._tls_error = await load_context(wanted)
        self._ready = True

    def _result(self, status: Status, reason: str, text: str, **kw: Any) -> Result:
        return Result(status, reason, self.redact(f"{self.where}: {text}"), **kw)

    async def run(self) -> Result:
        """One conversation: connect, banner, EHLO, [STARTTLS], [AUTH], [envelope], QUIT."""
        if not self._ready:
            await self.setup()
        if self._tls_error:
            return self._result(Status.FAIL, Reason.TLS, self._tls_error)
        loop = asyncio.get_running_loop()
        phases: dict[str, float] = {}
        values: dict[str, float] = {}
        implicit = self.mode == "implicit"
        try:
            transport, proto, _ = await open_connection(
                lambda: SmtpProtocol(loop),
                self.host,
                self.port,
                family=self.family,
                ssl_context=self.ssl_context if implicit else None,
                server_hostname=self.tls.server_name,
                phases=phases,
            )
        except ProbeError as exc:
            if implicit and "did not answer with TLS" in exc.detail:
                exc.detail += " (a STARTTLS port, like 25 or 587? set starttls: true)"
            return exc.result(self.where)
        deadline = loop.time() + max(self.spec.timeout * _BUDGET - sum(phases.values()), 0.0)
        session = SmtpSession(transport, proto, deadline)
        if implicit and self.ssl_context is not None:
            session.read_chain(self.ssl_context)
        failure: SmtpError | None = None
        try:
            try:
                done = await self._converse(session, phases)
            except SmtpError as exc:
                failure = exc
            await session.quit()  # also after a refusal: servers log a lost connection
        finally:
            session.close()
        chain = session.chain
        earliest = chain.earliest if chain is not None else None
        if earliest is not None:
            values[CERT_EXPIRY_METRIC.name] = earliest.not_after
        if failure is not None:
            return self._result(
                Status.FAIL, failure.reason, failure.detail, phases=phases, values=values
            )
        if chain is not None and earliest is not None:
            verdict = expiry_verdict(earliest.not_after, self.tls, time.time())
            if verdict is not None:
                status, reason, detail = verdict
                who = f"{chain.role(earliest)} {earliest.describe()}"
                return self._result(
                    status, reason, f"{who}: {detail}; {done}", phases=phases, values=values
                )
        return self._result(Status.OK, "", done, phases=phases, values=values)

    async def _converse(self, session: SmtpSession, phases: dict[str, float]) -> str:
        """The exchange; returns the summary for an ok result.

        :raises SmtpError: for every failure, with its reason.
        """
        opts = self.options
        with _Timer(session, phases, "banner"):
            banner = await session.reply("the connection (the 220 banner)")
        if banner.code != 220:
            hint = _BANNER_HINTS.get(banner.code, "")
            raise SmtpError(
                Reason.STATUS, f"the server greeted with {banner.text} instead of 220{hint}"
            )
        if self.banner_re is not None and not self.banner_re.search("\n".join(banner.lines)):
            raise SmtpError(
                Reason.ASSERTION,
                f"banner {banner.text!r} does not match /{self.banner_re.pattern}/",
            )
        with _Timer(session, phases, "ehlo"):
            ext = await self._ehlo(session)
        done = [f"connected, banner and EHLO in {format_elapsed(sum(phases.values()))}"]
        tls = self.mode == "implicit"
        if self.mode in ("auto", "starttls"):
            if "STARTTLS" in ext:
                with _Timer(session, phases, "tls"):
                    reply = await session.command("STARTTLS")
                    if reply.code != 220:
                        raise SmtpError(Reason.TLS, f"STARTTLS was refused: {reply.text}")
                    assert self.ssl_context is not None
                    await session.starttls(self.ssl_context, self.tls.server_name or self.host)
                with _Timer(session, phases, "ehlo"):
                    ext = await self._ehlo(session)
                tls = True
                done.append(f"STARTTLS ({session.chain.version if session.chain else '?'})")
            elif self.mode == "starttls":
                raise SmtpError(
                    Reason.TLS,
                    "the server does not offer STARTTLS (starttls: true requires it); "
                    f"its EHLO lists {', '.join(sorted(ext)) or 'no extensions'}",
                )
            else:
                done.append("no STARTTLS offered")
        elif tls:
            done.append(f"implicit TLS ({session.chain.version if session.chain else '?'})")
        if opts.username is not None and opts.password is not None:
            if not tls and not opts.allow_plaintext_auth:
                raise SmtpError(
                    Reason.TLS,
                    "the server does not offer STARTTLS, so probed did not log in: the "
                    "password would travel in clear text (fix the server's TLS, or set "
                    "allow_plaintext_auth: true if clear text is intended)",
                )
            with _Timer(session, phases, "auth"):
                mechanism = await self._auth(
                    session, ext, opts.username, opts.password.get_secret_value()
                )
            done.append(f"AUTH {mechanism} as {opts.username} accepted")
        if opts.mail_from is not None:
            with _Timer(session, phases, "envelope"):
                await self._envelope(session, opts.mail_from, opts.rcpt_to)
            if opts.rcpt_to:
                done.append(f"RCPT TO {', '.join(opts.rcpt_to)} accepted")
            else:
                done.append("MAIL FROM accepted")
        return ", ".join(done)

    async def _ehlo(self, session: SmtpSession) -> dict[str, str]:
        reply = await session.command(f"EHLO {self.ehlo_name}", "EHLO")
        if reply.code == 250:
            return _extensions(reply)
        if reply.code in (500, 502) and self.mode != "starttls":
            # A server from before ESMTP: HELO, and no extensions (so no STARTTLS, no AUTH).
            helo = await session.command(f"HELO {self.ehlo_name}", "HELO")
            if helo.code == 250:
                return {}
            reply = helo
        raise SmtpError(Reason.STATUS, f"EHLO {self.ehlo_name} was refused: {reply.text}")

    async def _auth(
        self, session: SmtpSession, ext: dict[str, str], user: str, password: str
    ) -> str:
        offered = ext.get("AUTH", "").upper().split()
        wanted = self.options.auth_mechanism
        choices = ["PLAIN", "LOGIN"] if wanted == "auto" else [wanted.upper()]
        mechanism = next((m for m in choices if m in offered), None)
        if mechanism is None:
            listed = ", ".join(offered) if offered else "no AUTH at all"
            raise SmtpError(
                Reason.AUTH,
                f"the server offers {listed}; probed speaks AUTH "
                f"{' or '.join(choices)} (auth_mechanism: {wanted})",
            )

        def b64(text: str) -> str:
            return base64.b64encode(text.encode()).decode()

        if mechanism == "PLAIN":
            reply = await session.command("AUTH PLAIN " + b64(f"\0{user}\0{password}"), "AUTH")
        else:
            reply = await session.command("AUTH LOGIN")
            for step, value in (("user name", user), ("password", password)):
                if reply.code != 334:
                    break
                reply = await session.command(b64(value), f"the AUTH LOGIN {step}")
        if reply.code != 235:
            hint = " (wrong user name or password?)" if reply.code == 535 else ""
            raise SmtpError(
                Reason.AUTH,
                f"AUTH {mechanism} as {user} was rejected: {reply.text}{hint}",
            )
        return mechanism

    async def _envelope(self, session: SmtpSession, sender: str, rcpts: list[str]) -> None:
        reply = await session.command(f"MAIL FROM:<{sender}>")
        if reply.code != 250:
            raise SmtpError(Reason.STATUS, f"MAIL FROM:<{sender}> was rejected: {reply.text}")
        for rcpt in rcpts:
            reply = await session.command(f"RCPT TO:<{rcpt}>")
            if reply.code not in (250, 251):
                raise SmtpError(Reason.STATUS, f"RCPT TO:<{rcpt}> was rejected: {reply.text}")
        reply = await session.command("RSET")
        if reply.code != 250:
            raise SmtpError(Reason.STATUS, f"RSET was refused: {reply.text}")


class _Timer:
    """Adds the seconds spent in the ``with`` block to ``phases[name]`` (also on failure)."""

    def __init__(self, session: SmtpSession, phases: dict[str, float], name: str) -> None:
        self.loop = session.loop
        self.phases = phases
        self.name = name
        self.start = 0.0

    def __enter__(self) -> None:
        self.start = self.loop.time()
        set_phase(f"in the SMTP {self.name} phase")

    def __exit__(self, *exc: object) -> None:
        self.phases[self.name] = self.phases.get(self.name, 0.0) + self.loop.time() - self.start


@hookimpl
def probed_register_check_types() -> list[type[Check[Any]]]:
    """Register the ``smtp`` check type."""
    return [SmtpCheck]
