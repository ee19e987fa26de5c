"""Throwaway OpenSSH servers for tests: real ``/usr/sbin/sshd`` processes on loopback ports.

No system configuration is read (``-f /dev/null``): each server has its own RSA and ed25519
host keys (RSA listed first) and an ``authorized_keys`` file (absolute, so it applies to every
user) holding the public halves of :attr:`SshdServer.client_key` and
:attr:`SshdServer.encrypted_key`. sshd must run as root (privilege separation) and be started
by its absolute path; without root or the binary the fixtures skip with the reason (a failure
under ``PROBED_REQUIRE_SERVICES=1``).

Fixtures:

- ``sshd_server``: session-wide; key logins as root work. Do not stop it.
- ``sshd_password_user``: a throwaway local account (``useradd``) with the password
  :data:`SSH_USER_PASSWORD`, deleted again after the session (only for password login tests).
- ``sshd_factory``: function-scoped servers a test may stop.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Final

import pytest

from tests._require import is_root, require
from tests.servers._util import (
    free_port,
    require_binary,
    stop_process,
    wait_for_port_or_exit,
)

SSHD: Final = "/usr/sbin/sshd"
KEY_PASSPHRASE: Final = "Pass-phr4se/of the key"
SSH_USER: Final = f"probed-ssh{os.getpid()}"
"""One account per test process: two suites running at once must not delete each other's."""
SSH_USER_PASSWORD: Final = "ssh-Pa55word/for-test"
_START_TIMEOUT: Final = 15.0


def _keygen(path: Path, passphrase: str = "", kind: str = "ed25519") -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", kind, "-N", passphrase, "-C", path.name, "-f", str(path)],
        check=True,
        capture_output=True,
    )


def fingerprint(public_key: Path) -> str:
    """``SHA256:...`` of a public key file, as ``ssh-keygen -lf`` prints it."""
    out = subprocess.run(
        ["ssh-keygen", "-lf", str(public_key)], check=True, capture_output=True, text=True
    ).stdout
    return out.split()[1]


class SshdServer:
    """One ``sshd -D`` process with its own host key and authorized keys."""

    def __init__(self, root: Path) -> None:
        require(is_root(), "sshd needs root to run (privilege separation)")
        require_binary(SSHD, "apt-get install -y openssh-server")
        require_binary("ssh-keygen", "apt-get install -y openssh-client")
        self.root = root
        self.host = "127.0.0.1"
        self.port = free_port()
        self.host_key = root / "host_ed25519"
        self.rsa_host_key = root / "host_rsa"  # a second host key, as most servers have
        self.client_key = root / "client"  # authorized, no passphrase
        self.encrypted_key = root / "client_encrypted"  # authorized, KEY_PASSPHRASE
        self.wrong_key = root / "wrong"  # not authorized
        _keygen(self.host_key)
        _keygen(self.rsa_host_key, kind="rsa")
        _keygen(self.client_key)
        _keygen(self.encrypted_key, KEY_PASSPHRASE)
        _keygen(self.wrong_key)
        self.host_key_fingerprint = fingerprint(self.host_key.with_suffix(".pub"))
        """The ed25519 host key's ``SHA256:...`` fingerprint (from ``ssh-keygen -lf``)."""
        self.rsa_host_key_fingerprint = fingerprint(self.rsa_host_key.with_suffix(".pub"))
        authorized = root / "authorized_keys"
        authorized.write_text(
            (root / "client.pub").read_text() + (root / "client_encrypted.pub").read_text()
        )
        authorized.chmod(0o644)
        # The throwaway user's shell runs commands with its home here; sshd reads the keys
        # files as that user too.
        root.chmod(0o755)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        """``127.0.0.1:PORT``."""
        return f"{self.host}:{self.port}"

    def start(self) -> None:
        """Start sshd and wait until its port accepts connections."""
        os.makedirs("/run/sshd", exist_ok=True)  # sshd's privilege separation directory
        cmd = [
            SSHD, "-D", "-e", "-f", "/dev/null", "-p", str(self.port),
            "-o", f"ListenAddress={self.host}", "-o", f"HostKey={self.rsa_host_key}",
            "-o", f"HostKey={self.host_key}",
            "-o", f"AuthorizedKeysFile={self.root / 'authorized_keys'}",
            "-o", f"PidFile={self.root / 'sshd.pid'}", "-o", "StrictModes=no",
            "-o", "UsePAM=no", "-o", "PasswordAuthentication=yes",
            "-o", "KbdInteractiveAuthentication=no", "-o", "MaxStartups=100",
        ]  # fmt: skip
        with open(self.root / "sshd.log", "ab") as log:
            process = subprocess.Popen(cmd, stdout=log, stderr=log)
        self.process = process
        try:
            listening = wait_for_port_or_exit(
                process, self.host, self.port, _START_TIMEOUT, f"sshd on port {self.port}"
            )
        except TimeoutError:
            self.stop()
            raise
        if not listening:
            self.process = None
            raise RuntimeError(f"sshd exited at start: {self.log()[-2000:]}")

    def log(self) -> str:
        """What sshd wrote so far (``-e``: its log goes to stderr)."""
        path = self.root / "sshd.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        """Stop sshd (SIGTERM, then SIGKILL) and wait for it to exit."""
        stop_process(self.process)
        self.process = None

    def destroy(self) -> None:
        """Stop and delete the working directory."""
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def _make() -> SshdServer:
    return SshdServer(Path(tempfile.mkdtemp(prefix="probed-sshd-")))


@pytest.fixture(scope="session")
def sshd_server() -> Iterator[SshdServer]:
    """A running sshd accepting the fixture's client keys; shared, do not stop it."""
    server = _make()
    server.start()
    yield server
    server.destroy()


@pytest.fixture(scope="session")
def sshd_password_user(sshd_server: SshdServer) -> Iterator[str]:
    """A throwaway account :data:`SSH_USER` whose password is :data:`SSH_USER_PASSWORD`.

    sshd without PAM checks passwords against ``/etc/shadow``, so the account is real; it is
    removed after the session (a killed run leaves it: ``userdel probed-sshPID``).
    """
    require_binary("useradd", "apt-get install -y passwd")
    subprocess.run(["userdel", SSH_USER], capture_output=True, check=False)
    subprocess.run(
        ["useradd", "--no-create-home", "--home-dir", str(sshd_server.root),
         "--shell", "/bin/sh", SSH_USER],
        check=True, capture_output=True,
    )  # fmt: skip
    try:
        subprocess.run(["chpasswd"], input=f"{SSH_USER}:{SSH_USER_PASSWORD}\n".encode(), check=True)
        yield SSH_USER
    finally:
        subprocess.run(["userdel", SSH_USER], capture_output=True, check=False)


@pytest.fixture
def sshd_factory() -> Iterator[Callable[[], SshdServer]]:
    """Make started, function-scoped servers: ``sshd_factory()``."""
    made: list[SshdServer] = []

    def make() -> SshdServer:
        server = _make()
        made.append(server)
        server.start()
        return server

    yield make
    for server in reversed(made):
        server.destroy()
