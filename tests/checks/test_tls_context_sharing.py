"""Checks with the same TLS settings share one SSL context (~800 KiB each with the system CA
store); different settings, ALPN or a changed CA file get their own."""

from __future__ import annotations

import os
import shutil
import ssl
from pathlib import Path

from probed.checks._tls import TlsOptions, build_context


def test_equal_tls_settings_share_one_context_and_other_settings_do_not() -> None:
    first = build_context(TlsOptions())
    assert build_context(TlsOptions()) is first
    assert build_context(TlsOptions(server_name="other.example")) is first  # not used to build
    unverified = build_context(TlsOptions(verify=False))
    assert unverified is not first and unverified.verify_mode == ssl.CERT_NONE
    assert first.verify_mode == ssl.CERT_REQUIRED
    h2 = build_context(TlsOptions(), ("h2",))
    assert h2 is not first and build_context(TlsOptions(), ("h2",)) is h2


def test_a_changed_ca_file_gets_a_new_context(tmp_path: Path) -> None:
    paths = ssl.get_default_verify_paths()
    found = [Path(p) for p in (paths.cafile, paths.openssl_cafile) if p and Path(p).is_file()]
    if not found:
        import certifi

        found = [Path(certifi.where())]
    source = found[0]
    ca = tmp_path / "ca.pem"
    shutil.copyfile(source, ca)
    options = TlsOptions(ca_file=str(ca))
    before = build_context(options)
    assert build_context(options) is before
    ca.write_bytes(ca.read_bytes() + b"\n")
    os.utime(ca, ns=(0, 1))
    assert build_context(options) is not before
