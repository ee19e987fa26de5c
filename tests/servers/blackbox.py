"""Debian's ``prometheus-blackbox-exporter`` as a peer: the same targets probed by both tools.

Fixture:

- ``blackbox_exporter``: a factory. ``blackbox_exporter(modules)`` writes ``modules`` (the
  ``modules:`` mapping of a blackbox.yml, as Python data) to a config file, starts the exporter
  on a free loopback port and returns a :class:`BlackboxExporter`; every exporter started is
  stopped at the end of the test. Skips with a reason when the binary is missing (fails under
  ``PROBED_REQUIRE_SERVICES=1``).

Agreement tests use it like this::

    def test_agrees(blackbox_exporter, grpc_server) -> None:
        bb = blackbox_exporter({"grpc_plain": {"prober": "grpc", "grpc": {"tls": False}}})
        assert bb.success("grpc_plain", f"127.0.0.1:{grpc_server.port}") is True
        # ... and probed's result for the same target is ok

The exporter's own probe timeout is the module's ``timeout`` (blackbox's default: the scrape
timeout header, 10 s here when absent): give modules a short ``timeout`` for failing targets.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Final

import pytest
import yaml

from tests.servers._util import free_port, require_binary, wait_until

__all__ = ["BlackboxExporter", "parse_samples"]

_BINARY: Final = "prometheus-blackbox-exporter"
_DEBIAN_PATH: Final = "/usr/bin/prometheus-blackbox-exporter"
_HINT: Final = "apt-get install -y prometheus-blackbox-exporter"


def parse_samples(text: str) -> dict[str, float]:
    """``{series: value}`` from Prometheus text, keyed by the series as written (name{labels}).

    Comment lines are skipped; label sets keep blackbox's own order, so look series up the way
    the exporter prints them (``probe_success``, ``probe_grpc_status_code``,
    ``probe_http_duration_seconds{phase="connect"}``).
    """
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        series, _, value = line.rpartition(" ")
        samples[series] = float(value)
    return samples


class BlackboxExporter:
    """One exporter process with a fixed module file, answering ``/probe`` on loopback."""

    def __init__(self, binary: str, root: Path, modules: dict[str, Any]) -> None:
        self.config = root / "blackbox.yml"
        self.config.write_text(yaml.safe_dump({"modules": modules}, sort_keys=False))
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = root / "blackbox.log"
        argv = [
            binary,
            f"--config.file={self.config}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--log.level=debug",
        ]
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_until(self._up, timeout=15, what=f"blackbox_exporter on port {self.port}")
        except TimeoutError:
            self.stop()
            raise RuntimeError(
                f"blackbox_exporter did not start:\n{self.log.read_text(errors='replace')}"
            ) from None

    def _up(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(
                f"blackbox_exporter exited {self.process.returncode}:\n"
                f"{self.log.read_text(errors='replace')}"
            )
        try:
            with urllib.request.urlopen(f"{self.base}/-/healthy", timeout=1) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def probe_text(self, module: str, target: str, *, debug: bool = False) -> str:
        """The body of ``GET /probe?module=...&target=...`` (``debug=true`` gives the log)."""
        query = {"module": module, "target": target}
        if debug:
            query["debug"] = "true"
        url = f"{self.base}/probe?{urllib.parse.urlencode(query)}"
        try:
            with urllib.request.urlopen(url, timeout=30) as resp:
                return str(resp.read().decode())
        except urllib.error.HTTPError as exc:  # an unknown module answers 400 with the reason
            raise AssertionError(f"blackbox /probe answered {exc.code}: {exc.read()!r}") from None

    def probe(self, module: str, target: str) -> dict[str, float]:
        """The samples of one probe (see :func:`parse_samples`)."""
        return parse_samples(self.probe_text(module, target))

    def success(self, module: str, target: str) -> bool:
        """``probe_success`` of one probe as a bool."""
        samples = self.probe(module, target)
        if "probe_success" not in samples:
            raise AssertionError(f"no probe_success in blackbox's answer: {samples}")
        return samples["probe_success"] == 1.0

    def stop(self) -> None:
        """Stop the exporter (idempotent)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def blackbox_exporter() -> Iterator[Callable[[dict[str, Any]], BlackboxExporter]]:
    """Factory: start Debian's blackbox_exporter with the given ``modules`` mapping."""
    binary = shutil.which(_BINARY) or _DEBIAN_PATH
    binary = require_binary(binary, _HINT)
    started: list[BlackboxExporter] = []
    with tempfile.TemporaryDirectory(prefix="probed-blackbox-") as tmp:

        def start(modules: dict[str, Any]) -> BlackboxExporter:
            root = Path(tmp) / str(len(started))
            root.mkdir()
            exporter = BlackboxExporter(binary, root, modules)
            started.append(exporter)
            return exporter

        try:
            yield start
        finally:
            for exporter in started:
                exporter.stop()
