"""Address selection of the ``http`` and ``json_api`` check types.

``ip_version`` (``any``, ``ip4``, ``ip6``) restricts resolution to one family, or takes every
address in the resolver's order. blackbox_exporter's ``preferred_ip_protocol`` +
``ip_protocol_fallback`` are accepted too: the preferred family's addresses are tried first and,
with the fallback on (the default), the other family's after them — when the name has no
address of the preferred family, and also when connecting to those addresses fails (blackbox
falls back only in the first case). With the fallback off only the preferred family is used,
like ``ip_version: ip4``/``ip6``. The ordering is done by :func:`probed.checks._net.family_for`
and :func:`probed.checks._net.connect_socket`; this module holds the options.
"""

from __future__ import annotations

import ipaddress
from typing import Literal

from pydantic import Field, model_validator

from probed.check import CheckOptions
from probed.checks._net import IpVersion, family_for

__all__ = ["AddressSelection"]


class AddressSelection(CheckOptions):
    """``ip_version``, ``preferred_ip_protocol`` and ``ip_protocol_fallback``."""

    ip_version: IpVersion = Field(
        default="any",
        description="any, ip4 or ip6: the address family used (any: every address, in the "
        "resolver's order).",
    )
    preferred_ip_protocol: Literal["ip4", "ip6"] | None = Field(
        default=None,
        description="Try this family's addresses first (blackbox's option; with ip_version "
        "any). Unset: the resolver's order.",
    )
    ip_protocol_fallback: bool = Field(
        default=True,
        description="With preferred_ip_protocol: fall back to the other family when the name "
        "has no address of the preferred one or connecting to them fails.",
    )

    @model_validator(mode="after")
    def _address_selection(self) -> AddressSelection:
        if self.preferred_ip_protocol is not None and self.ip_version != "any":
            raise ValueError(
                "set ip_version or preferred_ip_protocol, not both (ip_version: "
                f"{self.ip_version} already allows only one family)"
            )
        if self.preferred_ip_protocol is None and "ip_protocol_fallback" in self.model_fields_set:
            raise ValueError("ip_protocol_fallback needs preferred_ip_protocol (ip4 or ip6)")
        return self

    def only_family(self) -> Literal["ip4", "ip6"] | None:
        """The one family allowed, if any (``ip_version``, or the preferred one without
        fallback)."""
        if self.ip_version != "any":
            return self.ip_version
        if self.preferred_ip_protocol is not None and not self.ip_protocol_fallback:
            return self.preferred_ip_protocol
        return None

    def host_problem(self, host: str) -> str | None:
        """Why an IP literal ``host`` cannot be reached with these options, or None."""
        only = self.only_family()
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            return None
        if only is None or f"ip{ip.version}" == only:
            return None
        option = "ip_version" if self.ip_version != "any" else "preferred_ip_protocol"
        how = "" if option == "ip_version" else " without ip_protocol_fallback"
        return f"url host {host} is an IPv{ip.version} address but {option} is {only}{how}"

    def socket_family(self) -> int:
        """The ``family=`` value for :func:`probed.checks._net.connect_socket`."""
        return family_for(self.ip_version, self.preferred_ip_protocol, self.ip_protocol_fallback)
