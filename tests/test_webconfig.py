"""``--web-config``: TLS, client certificates, basic auth and headers, with real TLS clients.

Certificates come from a trustme CA; password hashes from the ``bcrypt`` package. The daemon is
the real one (tests.harness) on loopback.
"""

from __future__ import annotations

import base64
import logging
import ssl
import sys
from pathlib import Path
from typing import Any

import aiohttp
import bcrypt
import pytest
import trustme
from aiohttp.test_utils import make_mocked_request
from yarl import URL

from probed.errors import ConfigErrors
from probed.guard import GUARD, Guard, guard_middleware
from probed.webconfig import BasicAuth, load_web_config
from tests.harness import running_daemon, write
from tests.servers._util import free_port

CHECKS = """
checks:
  - name: ok
    type: disk
    path: /
    warn_used_percent: null
    fail_used_percent: null
    warn_inodes_used_percent: null
    fail_inodes_used_percent: null
    interval: 60s
"""


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def checks(tmp_path: Path) -> Path:
    write(tmp_path / "checks.d" / "c.yaml", CHECKS)
    return tmp_path / "checks.d"


def _server_files(ca: trustme.CA, where: Path, name: str = "server") -> tuple[Path, Path]:
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_file, key_file = where / f"{name}.crt", where / f"{name}.key"
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    return cert_file, key_file


def _tls_web(tmp_path: Path, ca: trustme.CA, extra: str = "") -> Path:
    """A web config serving TLS with a certificate of ``ca`` (plus ``extra`` lines)."""
    cert, key = _server_files(ca, tmp_path)
    text = f"tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\n{extra}"
    return write(tmp_path / "web.yml", text)


def _tls12(ca: trustme.CA) -> ssl.SSLContext:
    ctx = _client_ctx(ca)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def _client_ctx(ca: trustme.CA, client: trustme.LeafCert | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    if client is not None:
        client.configure_cert(ctx)
    return ctx


def _basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


async def _get(
    url: str, ctx: ssl.SSLContext | None = None, **kwargs: Any
) -> tuple[int, dict[str, str], str]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(url, ssl=ctx if ctx is not None else False, **kwargs) as resp,
    ):
        return resp.status, dict(resp.headers), await resp.text()


async def _post(url: str, ctx: ssl.SSLContext | None = None, **kwargs: Any) -> tuple[int, str]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, ssl=ctx if ctx is not None else False, **kwargs) as resp,
    ):
        return resp.status, await resp.text()


def _https(running: Any) -> str:
    return running.url.replace("http://", "https://")


# -- the file ------------------------------------------------------------------------------------


def test_an_unknown_key_is_an_error_naming_file_line_and_key(tmp_path: Path) -> None:
    path = write(tmp_path / "web.yml", "tls_server_config:\n  cert_file: a\n  certfile: b\n")
    with pytest.raises(ConfigErrors) as info:
        load_web_config(path)
    text = str(info.value.errors[0])
    assert text.startswith(f"{path}:3:")
    assert "tls_server_config.certfile" in text and "unknown key 'certfile'" in text


def test_a_plain_password_instead_of_a_bcrypt_hash_is_refused_without_echoing_it(
    tmp_path: Path,
) -> None:
    path = write(tmp_path / "web.yml", "basic_auth_users:\n  alice: hunter2-plain\n")
    with pytest.raises(ConfigErrors) as info:
        load_web_config(path)
    text = str(info.value.errors[0])
    assert f"{path}:2: basic_auth_users.alice: expected a bcrypt hash" in text
    assert "hunter2-plain" not in text


def test_basic_auth_users_without_the_bcrypt_package_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "bcrypt", None)  # import bcrypt -> ImportError
    path = write(tmp_path / "web.yml", "basic_auth_users:\n  alice: $2b$04$" + "a" * 53 + "\n")
    with pytest.raises(ConfigErrors) as info:
        load_web_config(path)
    assert "needs the bcrypt package: pip install 'probed[web]'" in str(info.value.errors[0])


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("  client_auth_type: RequireAnyClientCert\n", "RequireAnyClientCert is not supported"),
        ("  client_auth_type: Sometimes\n", "client_auth_type"),
        ("  client_auth_type: RequireAndVerifyClientCert\n", "needs client_ca_file"),
        ("  min_version: TLS13\n  max_version: TLS12\n", "min_version is above max_version"),
        ("  cipher_suites: [TLS_RSA_WITH_RC4]\n", "unknown cipher suite 'TLS_RSA_WITH_RC4'"),
        ("  curve_preferences: [X25519]\n", "curve_preferences is not supported"),
    ],
)
def test_tls_settings_probed_cannot_honour_are_clear_errors(
    tmp_path: Path, ca: trustme.CA, body: str, expected: str
) -> None:
    with pytest.raises(ConfigErrors) as info:
        load_web_config(_tls_web(tmp_path, ca, body))
    assert expected in "\n".join(map(str, info.value.errors))


def test_headers_outside_the_exporter_toolkit_list_are_refused(tmp_path: Path) -> None:
    path = write(
        tmp_path / "web.yml",
        "http_server_config:\n  http2: false\n  headers:\n"
        "    X-Frame-Options: allow\n    X-Powered-By: me\n",
    )
    with pytest.raises(ConfigErrors) as info:
        load_web_config(path)
    text = "\n".join(map(str, info.value.errors))
    assert "expected one of deny, sameorigin, got 'allow'" in text
    assert "header 'X-Powered-By' cannot be set" in text


def test_tls_defaults_to_tls12_and_newer_with_relative_files_next_to_the_config(
    tmp_path: Path, ca: trustme.CA
) -> None:
    _server_files(ca, tmp_path)
    path = write(
        tmp_path / "web.yml",
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n",
    )
    config = load_web_config(path)
    assert config.tls is not None
    assert config.tls.minimum_version == ssl.TLSVersion.TLSv1_2
    assert not config.verifies_clients


def test_inline_cert_and_key_are_accepted(tmp_path: Path, ca: trustme.CA) -> None:
    cert = ca.issue_cert("localhost")
    pem = cert.cert_chain_pems[0].bytes().decode()
    key = cert.private_key_pem.bytes().decode()
    indent = lambda text: "\n".join("    " + line for line in text.strip().splitlines())  # noqa: E731
    path = write(tmp_path / "web.yml", "")
    path.write_text(f"tls_server_config:\n  cert: |\n{indent(pem)}\n  key: |\n{indent(key)}\n")
    assert load_web_config(path).tls is not None


# -- basic auth ----------------------------------------------------------------------------------


async def test_basic_auth_runs_bcrypt_once_per_user_and_password_then_answers_from_cache() -> None:
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(4))
    auth = BasicAuth({"alice": hashed})
    right, wrong = (
        _basic("alice", "s3cret")["Authorization"],
        _basic("alice", "nope")["Authorization"],
    )
    for _ in range(20):
        assert await auth.check(right) == "alice"
    assert auth.bcrypt_runs == 1
    assert await auth.check(wrong) is None
    assert await auth.check(_basic("mallory", "s3cret")["Authorization"]) is None
    assert await auth.check("Bearer abc") is None
    assert await auth.check("Basic !!!notbase64") is None
    assert auth.bcrypt_runs == 3  # the unknown user cost a bcrypt too (same time as a wrong one)


async def test_wrong_password_gets_401_with_www_authenticate_and_right_one_gets_200(
    tmp_path: Path, checks: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(4)).decode()
    web = write(tmp_path / "web.yml", f"basic_auth_users:\n  prom: {hashed}\n")
    async with running_daemon(checks, web_config=web) as r:
        status, headers, _ = await _get(r.url + "/metrics")
        assert status == 401 and headers["WWW-Authenticate"].startswith("Basic ")
        status, headers, _ = await _get(
            r.url + "/api/v1/checks", headers=_basic("prom", "bad-Xv55")
        )
        assert status == 401
        status, _, body = await _get(r.url + "/metrics", headers=_basic("prom", "s3cret"))
        assert status == 200 and "probed_" in body
        # without --health-listen the health endpoints follow the main listener's auth
        assert (await _get(r.url + "/health/live"))[0] == 401
    assert "s3cret" not in caplog.text and "bad-Xv55" not in caplog.text


async def test_health_listener_serves_only_health_without_auth_while_main_requires_it(
    tmp_path: Path, checks: Path
) -> None:
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(4)).decode()
    web = write(tmp_path / "web.yml", f"basic_auth_users:\n  prom: {hashed}\n")
    health_port = free_port()
    async with running_daemon(
        checks, web_config=web, health_listen=f"127.0.0.1:{health_port}"
    ) as r:
        health = f"http://127.0.0.1:{health_port}"
        assert (await _get(health + "/health/live"))[0] == 200
        await r.runs("ok", 1)
        assert (await _get(health + "/health/ready"))[0] == 200
        for path in ("/metrics", "/api/v1/checks", "/"):
            assert (await _get(health + path))[0] == 404
        assert (await _post(health + "/-/reload"))[0] == 404
        assert (await _get(r.url + "/metrics"))[0] == 401


# -- TLS -----------------------------------------------------------------------------------------


async def test_tls_serves_https_with_the_configured_headers_over_tls12_and_13(
    tmp_path: Path, checks: Path, ca: trustme.CA
) -> None:
    headers = (
        "http_server_config:\n  headers:\n    X-Content-Type-Options: nosniff\n"
        "    Strict-Transport-Security: max-age=31536000\n"
    )
    web = _tls_web(tmp_path, ca, headers)
    async with running_daemon(checks, web_config=web) as r:
        status, headers, _ = await _get(_https(r) + "/health/live", _client_ctx(ca))
        assert status == 200
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Strict-Transport-Security"] == "max-age=31536000"
        status, headers, _ = await _get(_https(r) + "/api/v1/checks/nope", _client_ctx(ca))
        assert status == 404 and headers["X-Content-Type-Options"] == "nosniff"
        status, headers, _ = await _get(_https(r) + "/metrics", _client_ctx(ca))  # streamed
        assert status == 200 and headers["X-Content-Type-Options"] == "nosniff"
        assert (await _get(_https(r) + "/health/live", _tls12(ca)))[0] == 200
        with pytest.raises(aiohttp.ClientError):  # plain HTTP to a TLS port
            await _get(r.url + "/health/live")


async def test_min_version_tls13_refuses_a_tls12_client(
    tmp_path: Path, checks: Path, ca: trustme.CA
) -> None:
    web = _tls_web(tmp_path, ca, "  min_version: TLS13\n")
    async with running_daemon(checks, web_config=web) as r:
        with pytest.raises(aiohttp.ClientError):
            await _get(_https(r) + "/health/live", _tls12(ca))
        assert (await _get(_https(r) + "/health/live", _client_ctx(ca)))[0] == 200


async def test_mtls_requires_a_client_certificate_signed_by_the_client_ca(
    tmp_path: Path, checks: Path, ca: trustme.CA
) -> None:
    client_ca = trustme.CA()
    client_ca.cert_pem.write_to_path(str(tmp_path / "client-ca.pem"))
    mtls = (
        "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: client-ca.pem\n"
        "  client_allowed_sans: [prometheus.example]\n"
    )
    web = _tls_web(tmp_path, ca, mtls)
    async with running_daemon(checks, web_config=web) as r:
        good = client_ca.issue_cert("prometheus.example")
        status, _, _ = await _get(_https(r) + "/metrics", _client_ctx(ca, good))
        assert status == 200
        with pytest.raises(aiohttp.ClientError):  # no client certificate
            await _get(_https(r) + "/metrics", _client_ctx(ca))
        with pytest.raises(aiohttp.ClientError):  # signed by another CA
            await _get(_https(r) + "/metrics", _client_ctx(ca, ca.issue_cert("prometheus.example")))
        with pytest.raises(aiohttp.ClientError):  # right CA, SAN not allowed
            await _get(
                _https(r) + "/metrics", _client_ctx(ca, client_ca.issue_cert("other.example"))
            )


async def test_reload_swaps_the_certificate_and_a_broken_file_keeps_the_old_one(
    tmp_path: Path, checks: Path, ca: trustme.CA
) -> None:
    web = _tls_web(tmp_path, ca)
    async with running_daemon(checks, web_config=web) as r:
        assert (await _get(_https(r) + "/health/live", _client_ctx(ca)))[0] == 200
        ca2 = trustme.CA()
        cert2, key2 = _server_files(ca2, tmp_path, "server2")
        web.write_text(f"tls_server_config:\n  cert_file: {cert2}\n  key_file: {key2}\n")
        status, body = await _post(_https(r) + "/-/reload", _client_ctx(ca))
        assert status == 200, body
        assert (await _get(_https(r) + "/health/live", _client_ctx(ca2)))[0] == 200
        with pytest.raises(aiohttp.ClientError):
            await _get(_https(r) + "/health/live", _client_ctx(ca))

        web.write_text(f"tls_server_config:\n  cert_file: {cert2}\n  key_fiel: {key2}\n")
        status, body = await _post(_https(r) + "/-/reload", _client_ctx(ca2))
        assert status == 400
        assert f"{web}:3: tls_server_config.key_fiel: unknown key" in body
        assert (await _get(_https(r) + "/health/live", _client_ctx(ca2)))[0] == 200


async def test_reload_can_turn_on_client_certificates_for_new_connections(
    tmp_path: Path, checks: Path, ca: trustme.CA
) -> None:
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    web = _tls_web(tmp_path, ca)
    cert, key = tmp_path / "server.crt", tmp_path / "server.key"
    async with running_daemon(checks, web_config=web) as r:
        assert (await _get(_https(r) + "/health/live", _client_ctx(ca)))[0] == 200
        web.write_text(
            f"tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\n"
            "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.pem\n"
        )
        assert (await _post(_https(r) + "/-/reload", _client_ctx(ca)))[0] == 200
        with pytest.raises(aiohttp.ClientError):
            await _get(_https(r) + "/health/live", _client_ctx(ca))
        client = ca.issue_cert("client.example")
        assert (await _get(_https(r) + "/health/live", _client_ctx(ca, client)))[0] == 200


# -- /-/reload -----------------------------------------------------------------------------------


def _reload_request(app: Any, remote: str, headers: dict[str, str] | None = None) -> Any:
    class Transport:
        def get_extra_info(self, name: str, default: Any = None) -> Any:
            return {"peername": (remote, 40000)}.get(name, default)

        def is_closing(self) -> bool:
            return False

    return make_mocked_request("POST", "/-/reload", app=app, headers=headers, transport=Transport())


async def _ok(_request: Any) -> aiohttp.web.Response:
    return aiohttp.web.Response(text="reloaded")


@pytest.mark.parametrize(
    ("policy", "remote", "status"),
    [
        ("protected", "127.0.0.1", 200),
        ("protected", "::1", 200),
        ("protected", "::ffff:127.0.0.1", 200),
        ("protected", "10.1.2.3", 403),
        ("open", "10.1.2.3", 200),
        ("off", "127.0.0.1", 403),
    ],
)
async def test_reload_endpoint_policy(policy: str, remote: str, status: int) -> None:
    app = aiohttp.web.Application()
    app[GUARD] = Guard(reload_endpoint=policy)
    response = await guard_middleware(_reload_request(app, remote), _ok)
    assert response.status == status


async def test_reload_from_the_pod_network_is_accepted_with_basic_auth(tmp_path: Path) -> None:
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(4)).decode()
    app = aiohttp.web.Application()
    app[GUARD] = Guard(
        web=load_web_config(write(tmp_path / "w.yml", f"basic_auth_users:\n  ops: {hashed}\n"))
    )
    request = _reload_request(app, "10.1.2.3", _basic("ops", "s3cret"))
    assert (await guard_middleware(request, _ok)).status == 200


async def test_reload_endpoint_off_in_probed_yaml_refuses_even_loopback(
    tmp_path: Path, checks: Path
) -> None:
    config = write(tmp_path / "probed.yaml", "reload_endpoint: 'off'\n")
    async with running_daemon(checks, config_file=config) as r:
        status, body = await r.post("/-/reload")
        assert status == 403 and "SIGHUP" in body
        for spelling in ("/%2D/reload", "/-/%72eload", "//-/reload"):
            async with r.session.post(URL(r.url + spelling, encoded=True)) as resp:
                assert resp.status in (403, 404), spelling


def test_validate_reports_a_broken_web_config(tmp_path: Path, checks: Path) -> None:
    import subprocess

    web = write(tmp_path / "web.yml", "basic_auth_users:\n  alice: plain\n")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "probed",
            "validate",
            "--checks-dir",
            str(checks),
            "--web-config",
            str(web),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert f"{web}:2: basic_auth_users.alice: expected a bcrypt hash" in proc.stderr
    assert "Traceback" not in proc.stderr


async def test_a_reload_with_the_same_users_keeps_the_cached_verdicts(tmp_path: Path) -> None:
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(4)).decode()
    path = write(tmp_path / "web.yml", f"basic_auth_users:\n  prom: {hashed}\n")
    guard = Guard(web=load_web_config(path), path=path)
    assert guard.web.auth is not None
    assert await guard.web.auth.check(_basic("prom", "s3cret")["Authorization"]) == "prom"
    path.write_text(
        f"basic_auth_users:\n  prom: {hashed}\n"
        "http_server_config:\n  headers:\n    X-Frame-Options: deny\n"
    )
    assert guard.reload() == ()
    assert guard.web.headers == {"X-Frame-Options": "deny"}
    assert await guard.web.auth.check(_basic("prom", "s3cret")["Authorization"]) == "prom"
    assert guard.web.auth.bcrypt_runs == 1
    assert "basic auth for 1 user(s)" in guard.web.describe()


async def test_failed_logins_do_not_evict_the_cached_valid_one() -> None:
    auth = BasicAuth({"prom": bcrypt.hashpw(b"s3cret", bcrypt.gensalt(4))})
    assert await auth.check(_basic("prom", "s3cret")["Authorization"]) == "prom"
    for i in range(300):  # more than the cache holds
        assert await auth.check(_basic("prom", f"guess-{i}")["Authorization"]) is None
    runs = auth.bcrypt_runs
    assert await auth.check(_basic("prom", "s3cret")["Authorization"]) == "prom"
    assert auth.bcrypt_runs == runs
