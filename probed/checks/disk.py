"""The ``disk`` check type: space and inode use of the filesystem holding a path.

Uses ``os.statvfs`` (standard library, run in a thread), so it needs no extra on Linux and
other POSIX systems; psutil is used only where ``statvfs`` does not exist.
"""

from __future__ import annotations

import errno
from typing import Any, ClassVar

from pydantic import model_validator

from probed import hookimpl
from probed.check import Check, CheckOptions, MetricDef, Reason, Result
from probed.checks._host import HostUnsupportedError, read_disk_usage
from probed.checks._reasons import NOT_FOUND, PERMISSION, UNSUPPORTED
from probed.options import AbsolutePath, Percent, Size, format_size
from probed.phase import set_phase
from probed.threads import run_blocking
from probed.thresholds import Limit, check_order, evaluate

__all__ = ["DiskCheck", "DiskOptions"]


class DiskOptions(CheckOptions):
    """Options of ``type: disk``. Percent limits are exceeded when use goes *above* them,
    byte limits when free space falls *below* them; ``null`` switches a level off."""

    path: AbsolutePath = "/"
    warn_used_percent: Percent | None = 80.0
    fail_used_percent: Percent | None = 90.0
    warn_free_bytes: Size | None = None
    fail_free_bytes: Size | None = None
    warn_inodes_used_percent: Percent | None = 80.0
    fail_inodes_used_percent: Percent | None = 90.0

    @model_validator(mode="after")
    def _ordered(self) -> DiskOptions:
        check_order(self, "used_percent")
        check_order(self, "free_bytes", above=False)
        check_order(self, "inodes_used_percent")
        return self


class DiskCheck(Check[DiskOptions]):
    """Space and inode use of the filesystem holding ``path``, held to warn/fail limits."""

    type_name: ClassVar[str] = "disk"
    options_model: ClassVar[type[CheckOptions]] = DiskOptions
    description: ClassVar[str] = "filesystem space and inode use (statvfs)"
    metrics: ClassVar[tuple[MetricDef, ...]] = (
        MetricDef("probed_disk_used_ratio", "Used share of the space available to users, 0..1"),
        MetricDef("probed_disk_free_bytes", "Bytes still writable by unprivileged users"),
        MetricDef("probed_disk_size_bytes", "Size of the filesystem in bytes"),
        MetricDef(
            "probed_disk_inodes_used_ratio",
            "Used share of inodes, 0..1 (absent on filesystems without an inode table)",
        ),
    )

    async def run(self) -> Result:
        """Read ``statvfs`` in a thread and compare use with the limits."""
        opts = self.options
        set_phase(f"reading the usage of {opts.path} (statvfs)")
        try:
            usage = await run_blocking(read_disk_usage, opts.path)
        except HostUnsupportedError as exc:
            return Result.unknown(UNSUPPORTED, str(exc))
        except FileNotFoundError:
            return Result.fail(NOT_FOUND, f"{opts.path}: no such file or directory")
        except PermissionError:
            return Result.fail(PERMISSION, f"{opts.path}: permission denied")
        except OSError as exc:
            name = errno.errorcode.get(exc.errno or 0, type(exc).__name__)
            return Result.fail(Reason.OTHER, f"{opts.path}: statvfs failed: {name} {exc.strerror}")

        values = {
            "probed_disk_used_ratio": usage.used_ratio,
            "probed_disk_free_bytes": float(usage.free),
            "probed_disk_size_bytes": float(usage.size),
        }
        limits: list[Limit] = [
            Limit.percent(
                opts.path, "used", usage.used_ratio, opts.warn_used_percent, opts.fail_used_percent
            ),
            Limit.size(opts.path, "free", usage.free, opts.warn_free_bytes, opts.fail_free_bytes),
        ]
        summary = (
            f"{opts.path}: {usage.used_ratio * 100:.1f}% used, {format_size(usage.free)} free "
            f"of {format_size(usage.size)}"
        )
        inodes = usage.inodes_used_ratio
        if inodes is not None:
            values["probed_disk_inodes_used_ratio"] = inodes
            limits.append(
                Limit.percent(
                    opts.path,
                    "of inodes used",
                    inodes,
                    opts.warn_inodes_used_percent,
                    opts.fail_inodes_used_percent,
                )
            )
            summary += f", {inodes * 100:.1f}% of inodes used"

        verdict = evaluate(limits)
        if not verdict.message:
            return Result.ok(summary, values=values)
        return Result(verdict.status, verdict.reason, verdict.message, values=values)


@hookimpl
def probed_register_check_types() -> list[type[Check[Any]]]:
    """Register ``type: disk``."""
    return [DiskCheck]
