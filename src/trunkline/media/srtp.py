"""SRTP and SRTCP (RFC 3711) through libsrtp (``pylibsrtp``), keyed by SDES (RFC 4568).

Crypto suites (registered by their SDES names, as they appear in ``a=crypto``):

==========================  ===========  =====  ===========  =================================
suite                       key || salt  bytes  auth tag     defined in
==========================  ===========  =====  ===========  =================================
AES_CM_128_HMAC_SHA1_80     16 + 14      30     10 (80 bit)  RFC 4568 §6.2.1, RFC 3711 §4, §5.2
AES_CM_128_HMAC_SHA1_32     16 + 14      30     4 (RTP),     RFC 4568 §6.2.2 (SRTCP keeps the
                                                10 (RTCP)    80-bit tag)
AEAD_AES_128_GCM            16 + 12      28     16           RFC 7714 §14.2
AEAD_AES_256_GCM            32 + 12      44     16           RFC 7714 §14.2
==========================  ===========  =====  ===========  =================================

``pylibsrtp.Policy`` exposes exactly these four profiles (``SRTP_PROFILE_AES128_CM_SHA1_80``,
``..._SHA1_32``, ``SRTP_PROFILE_AEAD_AES_128_GCM``, ``..._256_GCM``), a replay window size
(RFC 3711 §3.3.2, default 128), ``allow_repeat_tx`` and SSRC wildcards; it does not expose
MKIs or key lifetimes, so ``a=crypto`` lines with an MKI are refused (:class:`SrtpError`) and
the SDP layer should pick another line. Key derivation rate is 0 (RFC 4568 §6.3 default).

Errors: everything libsrtp reports (authentication failure, replay, malformed packet) and
every bad ``a=crypto`` value raises :class:`SrtpError`.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from dataclasses import dataclass, field

import pylibsrtp


class SrtpError(Exception):
    """An SRTP packet was rejected, or SRTP keying material is unusable."""


@dataclass(frozen=True)
class SrtpSuite:
    name: str
    profile: int
    key_length: int
    salt_length: int
    rtp_tag_length: int
    rtcp_tag_length: int

    @property
    def master_length(self) -> int:
        """Bytes of the ``inline:`` key: master key followed by master salt."""
        return self.key_length + self.salt_length


SUITES: dict[str, SrtpSuite] = {
    suite.name: suite
    for suite in (
        SrtpSuite(
            "AES_CM_128_HMAC_SHA1_80", pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80,
            16, 14, 10, 10,
        ),
        SrtpSuite(
            "AES_CM_128_HMAC_SHA1_32", pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_32,
            16, 14, 4, 10,
        ),
        SrtpSuite(
            "AEAD_AES_128_GCM", pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_128_GCM, 16, 12, 16, 16
        ),
        SrtpSuite(
            "AEAD_AES_256_GCM", pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_256_GCM, 32, 12, 16, 16
        ),
    )
}  # fmt: skip


def get_suite(name: str) -> SrtpSuite:
    try:
        return SUITES[name.upper()]
    except KeyError:
        raise SrtpError(f"unsupported SRTP crypto suite {name!r}") from None


_CRYPTO_RE = re.compile(r"^(?:a=)?(?:crypto:)?(\d{1,9})\s+(\S+)\s+(\S+)(?:\s+(.*))?$")
_LIFETIME_RE = re.compile(r"^(?:2\^(\d{1,2})|(\d{1,20}))$")
_MKI_RE = re.compile(r"^\d{1,10}:\d{1,3}$")


@dataclass(frozen=True)
class CryptoAttribute:
    """One SDES ``a=crypto`` attribute value (RFC 4568 §9.1), SRTP key method only.

    ``key`` is the decoded ``inline:`` value: master key || master salt.
    """

    tag: int
    suite: str
    key: bytes = field(repr=False)
    lifetime: int | None = None
    session_params: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> CryptoAttribute:
        """Parse ``1 AES_CM_128_HMAC_SHA1_80 inline:<base64>[|lifetime][|mki:len] [params]``.

        Accepts the value with or without the ``a=crypto:`` prefix.
        """
        m = _CRYPTO_RE.match(text.strip())
        if m is None:
            raise SrtpError(f"malformed crypto attribute: {text!r}")
        tag_text, suite_name, key_params, params = m.groups()
        suite = get_suite(suite_name)
        if ";" in key_params:
            raise SrtpError("several SRTP master keys need MKIs, which are not supported")
        method, _, info = key_params.partition(":")
        if method.lower() != "inline" or not info:
            raise SrtpError(f"unsupported key method in {key_params!r}")
        key_b64, *extras = info.split("|")
        lifetime: int | None = None
        for extra in extras:
            if _MKI_RE.match(extra):
                raise SrtpError("a=crypto with an MKI is not supported")
            lm = _LIFETIME_RE.match(extra)
            if lm is None:
                raise SrtpError(f"bad key lifetime {extra!r}")
            lifetime = 2 ** int(lm.group(1)) if lm.group(1) else int(lm.group(2))
            if lifetime == 0:  # a count of packets (RFC 4568 §6.1): zero is meaningless
                raise SrtpError(f"bad key lifetime {extra!r}")
        try:
            key = base64.b64decode(key_b64 + "=" * (-len(key_b64) % 4), validate=True)
        except (binascii.Error, ValueError):
            raise SrtpError("inline key is not base64") from None
        if len(key) != suite.master_length:
            raise SrtpError(
                f"{suite.name} needs a {suite.master_length}-byte key||salt, got {len(key)}"
            )
        return cls(int(tag_text), suite.name, key, lifetime, tuple((params or "").split()))

    @classmethod
    def generate(cls, suite: str = "AES_CM_128_HMAC_SHA1_80", tag: int = 1) -> CryptoAttribute:
        """A fresh attribute with a random master key and salt from the OS CSPRNG."""
        info = get_suite(suite)
        return cls(tag, info.name, secrets.token_bytes(info.master_length))

    def __str__(self) -> str:
        inline = "inline:" + base64.b64encode(self.key).decode("ascii")
        if self.lifetime is not None:
            exp = self.lifetime.bit_length() - 1
            power = self.lifetime > 0 and self.lifetime == 1 << exp
            lifetime = f"2^{exp}" if power else str(self.lifetime)
            inline += "|" + lifetime
        return " ".join([str(self.tag), self.suite, inline, *self.session_params])


class SrtpContext:
    """Protects outgoing and unprotects incoming RTP/RTCP of one media stream.

    ``local_key`` keys what we send (our ``a=crypto`` line), ``remote_key`` what we receive
    (the peer's line, RFC 4568 §6.1). Both are master key || master salt for ``suite``.
    Replay protection (RFC 3711 §3.3.2) uses a window of ``replay_window`` packets.
    """

    def __init__(
        self, suite: str, local_key: bytes, remote_key: bytes, *, replay_window: int = 128
    ) -> None:
        self.suite = get_suite(suite)
        for key in (local_key, remote_key):
            if len(key) != self.suite.master_length:
                raise SrtpError(
                    f"{self.suite.name} needs a {self.suite.master_length}-byte key||salt"
                )
        try:
            tx = pylibsrtp.Policy(
                key=bytes(local_key),
                ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND,
                srtp_profile=self.suite.profile,
            )
            tx.allow_repeat_tx = True  # retransmitting an identical packet is allowed
            rx = pylibsrtp.Policy(
                key=bytes(remote_key),
                ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND,
                srtp_profile=self.suite.profile,
            )
            rx.window_size = replay_window
            self._tx = pylibsrtp.Session(tx)
            self._rx = pylibsrtp.Session(rx)
        except (pylibsrtp.Error, ValueError, TypeError) as exc:
            raise SrtpError(f"cannot create SRTP session: {exc}") from exc

    @classmethod
    def from_sdes(cls, local: CryptoAttribute, remote: CryptoAttribute) -> SrtpContext:
        """Context from our offered/answered ``a=crypto`` and the peer's (same suite)."""
        if local.suite != remote.suite:
            raise SrtpError(f"crypto suites differ: {local.suite} / {remote.suite}")
        return cls(local.suite, local.key, remote.key)

    @property
    def rtp_overhead(self) -> int:
        """Bytes SRTP adds to each RTP packet (the authentication tag)."""
        return self.suite.rtp_tag_length

    @property
    def rtcp_overhead(self) -> int:
        """Bytes SRTCP adds to each RTCP packet (E flag + index, and the tag)."""
        return 4 + self.suite.rtcp_tag_length

    def protect(self, rtp: bytes) -> bytes:
        """RTP -> SRTP (RFC 3711 §3.3)."""
        try:
            return bytes(self._tx.protect(bytes(rtp)))
        except (pylibsrtp.Error, ValueError, TypeError) as exc:
            raise SrtpError(f"SRTP protect failed: {exc}") from exc

    def unprotect(self, srtp: bytes) -> bytes:
        """SRTP -> RTP; raises :class:`SrtpError` on a bad tag or a replayed packet."""
        try:
            return bytes(self._rx.unprotect(bytes(srtp)))
        except (pylibsrtp.Error, ValueError, TypeError) as exc:
            raise SrtpError(f"SRTP unprotect failed: {exc}") from exc

    def protect_rtcp(self, rtcp: bytes) -> bytes:
        """RTCP -> SRTCP (RFC 3711 §3.4)."""
        try:
            return bytes(self._tx.protect_rtcp(bytes(rtcp)))
        except (pylibsrtp.Error, ValueError, TypeError) as exc:
            raise SrtpError(f"SRTCP protect failed: {exc}") from exc

    def unprotect_rtcp(self, srtcp: bytes) -> bytes:
        """SRTCP -> RTCP; raises :class:`SrtpError` on a bad tag or a replayed packet."""
        try:
            return bytes(self._rx.unprotect_rtcp(bytes(srtcp)))
        except (pylibsrtp.Error, ValueError, TypeError) as exc:
            raise SrtpError(f"SRTCP unprotect failed: {exc}") from exc
