"""The production DNS backend for the RFC 3263 locator, on dnspython's asyncio resolver.

The selection rules (NAPTR -> SRV -> A/AAAA, RFC 3263 §4) are sans-IO and
live in :mod:`trunkline.sip.dns`; this module only performs the queries, so
it sits at the asyncio edge with the transports. Use it as
``Locator(DnspythonResolver())``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import dns.asyncresolver
import dns.exception
import dns.rdtypes.IN.A
import dns.rdtypes.IN.AAAA
import dns.rdtypes.IN.NAPTR
import dns.rdtypes.IN.SRV
import dns.resolver

from trunkline.sip.dns import Naptr, Srv

__all__ = ["DnspythonResolver"]

logger = logging.getLogger(__name__)


class DnspythonResolver:
    """:class:`Resolver` on dnspython's asyncio resolver (the production backend).

    ``nameservers``/``port`` override the system configuration (tests point
    it at a local server). NXDOMAIN, empty answers, timeouts and server
    failures all read as "no records" so the locator falls through to the next
    RFC 3263 step; they are logged at debug level.
    """

    def __init__(
        self,
        nameservers: Sequence[str] | None = None,
        *,
        port: int = 53,
        timeout: float = 3.0,
        cache: bool = True,
    ) -> None:
        resolver = dns.asyncresolver.Resolver(configure=nameservers is None)
        if nameservers is not None:
            resolver.nameservers = list(nameservers)
            resolver.port = port
        resolver.lifetime = timeout
        if cache:
            resolver.cache = dns.resolver.Cache()
        self._resolver = resolver

    async def _query(self, name: str, rdtype: str) -> list[object]:
        try:
            answer = await self._resolver.resolve(name, rdtype, raise_on_no_answer=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoNameservers, dns.exception.Timeout) as exc:
            logger.debug("DNS %s %s: %s", rdtype, name, exc)
            return []
        except dns.exception.DNSException as exc:
            logger.debug("DNS %s %s failed: %s", rdtype, name, exc)
            return []
        return list(answer.rrset or ())

    async def naptr(self, name: str) -> list[Naptr]:
        records: list[Naptr] = []
        for rdata in await self._query(name, "NAPTR"):
            if isinstance(rdata, dns.rdtypes.IN.NAPTR.NAPTR):
                records.append(
                    Naptr(
                        order=rdata.order,
                        preference=rdata.preference,
                        flags=rdata.flags.decode("ascii", "replace"),
                        service=rdata.service.decode("ascii", "replace"),
                        regexp=rdata.regexp.decode("ascii", "replace"),
                        replacement=rdata.replacement.to_text(omit_final_dot=True),
                    )
                )
        return records

    async def srv(self, name: str) -> list[Srv]:
        records: list[Srv] = []
        for rdata in await self._query(name, "SRV"):
            if isinstance(rdata, dns.rdtypes.IN.SRV.SRV):
                target = rdata.target.to_text(omit_final_dot=True)
                records.append(Srv(rdata.priority, rdata.weight, rdata.port, target))
        return records

    async def addresses(self, name: str) -> list[str]:
        found: list[str] = []
        for rdtype in ("A", "AAAA"):
            for rdata in await self._query(name, rdtype):
                if isinstance(rdata, dns.rdtypes.IN.A.A | dns.rdtypes.IN.AAAA.AAAA):
                    found.append(str(rdata.address))
        return found
