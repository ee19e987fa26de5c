"""A host of our own in a throwaway network namespace, for ICMP faults.

``netns_peer`` creates a namespace and a veth pair: this side gets ``169.254.X.Y+1/30``, the
namespace side ``169.254.X.Y+2/30`` (link-local addresses that exist only on this veth pair,
so the only host ever pinged is the one the fixture made). The peer answers pings until told
otherwise: :meth:`NetnsPeer.ignore_echo` makes it silent, :meth:`NetnsPeer.limit_echo_replies`
lets only the kernel's rate-limit budget of replies through. The finalizer deletes the
namespace and the veth pair. ``silent_host`` is a peer that never answers.

Needs root and iproute2; skips otherwise (fails instead under ``PROBED_REQUIRE_SERVICES=1``,
see tests/_require.py).
"""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests._require import is_root, require, unavailable
from tests.servers._util import require_binary


@dataclass
class NetnsPeer:
    """A namespace reachable over a veth pair at ``address``."""

    ip: str
    name: str
    host_if: str
    host_address: str
    address: str

    def netns(self, *args: str) -> None:
        """Run a command inside the namespace."""
        _run(self.ip, "netns", "exec", self.name, *args)

    def sysctl(self, key: str, value: str) -> None:
        """Set a per-namespace sysctl inside the namespace (writes its /proc/sys file)."""
        path = "/proc/sys/" + key.replace(".", "/")
        self.netns("sh", "-c", f'echo "{value}" > {path}')

    def ignore_echo(self, ignore: bool = True) -> None:
        """Stop (or resume) answering echo requests."""
        self.sysctl("net.ipv4.icmp_echo_ignore_all", "1" if ignore else "0")

    def limit_echo_replies(self, every_ms: int) -> None:
        """Rate-limit echo replies to one per ``every_ms`` per peer, after the kernel's initial
        allowance (a new peer starts with 60 s worth of tokens: 60000 // every_ms replies)."""
        # Bit 0 of icmp_ratemask is type 0, echo reply; the rest is the kernel default 0x1818.
        self.sysctl("net.ipv4.icmp_ratemask", str(0x1819))
        self.sysctl("net.ipv4.icmp_ratelimit", str(every_ms))


def _run(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, timeout=30)


def _cleanup(ip: str, name: str, host_if: str) -> None:
    for args in (("netns", "del", name), ("link", "del", host_if)):
        subprocess.run((ip, *args), capture_output=True, timeout=30, check=False)


@pytest.fixture
def netns_peer() -> Iterator[NetnsPeer]:
    """A fresh namespace answering pings at a link-local address on a veth pair."""
    ip = require_binary("ip", "apt-get install -y iproute2")
    require(is_root(), "network namespaces need root")
    token = secrets.token_hex(4)
    name, host_if, peer_if = f"probed-{token}", f"pb{token}h", f"pb{token}n"
    third, fourth = int(token[:2], 16) % 254 + 1, int(token[2:4], 16) % 64 * 4
    host_address = f"169.254.{third}.{fourth + 1}"
    address = f"169.254.{third}.{fourth + 2}"
    try:
        _run(ip, "netns", "add", name)
        _run(ip, "link", "add", host_if, "type", "veth", "peer", "name", peer_if)
        _run(ip, "link", "set", peer_if, "netns", name)
        _run(ip, "addr", "add", f"{host_address}/30", "dev", host_if)
        _run(ip, "link", "set", host_if, "up")
        _run(ip, "-n", name, "addr", "add", f"{address}/30", "dev", peer_if)
        _run(ip, "-n", name, "link", "set", peer_if, "up")
        _run(ip, "-n", name, "link", "set", "lo", "up")
    except subprocess.CalledProcessError as exc:
        _cleanup(ip, name, host_if)
        unavailable(f"cannot build a network namespace: {exc.stderr.decode(errors='replace')}")
    try:
        yield NetnsPeer(ip, name, host_if, host_address, address)
    finally:
        _cleanup(ip, name, host_if)


@pytest.fixture
def silent_host(netns_peer: NetnsPeer) -> NetnsPeer:
    """A host of our own that receives echo requests and never answers them."""
    netns_peer.ignore_echo()
    return netns_peer
