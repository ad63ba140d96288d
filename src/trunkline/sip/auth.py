"""SIP authentication (RFC 3261 §22): the one import for the rest of Trunkline.

The header values live in :mod:`trunkline.sip.authheaders` (parse and render
WWW-Authenticate, Proxy-Authenticate, Authorization, Proxy-Authorization) and
the Digest machinery (RFC 2617, RFC 7616, RFC 8760) in
:mod:`trunkline.sip.digest`; this module re-exports both.
"""

from __future__ import annotations

from trunkline.sip.authheaders import Challenge, Credentials, parse_challenges, quote
from trunkline.sip.digest import (
    ALGORITHMS,
    DEFAULT_ALGORITHMS,
    LEGACY_ALGORITHMS,
    AuthResult,
    AuthStatus,
    DigestClient,
    DigestServer,
    Ha1Lookup,
    base_algorithm,
    digest_response,
    ha1,
    select_challenge,
    userhash,
)

__all__ = [
    "ALGORITHMS",
    "DEFAULT_ALGORITHMS",
    "LEGACY_ALGORITHMS",
    "AuthResult",
    "AuthStatus",
    "Challenge",
    "Credentials",
    "DigestClient",
    "DigestServer",
    "Ha1Lookup",
    "base_algorithm",
    "digest_response",
    "ha1",
    "parse_challenges",
    "quote",
    "select_challenge",
    "userhash",
]
