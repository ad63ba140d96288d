"""SRTP keying in SDP: SDES ``a=crypto`` (RFC 4568) and DTLS ``a=fingerprint`` (RFC 8122).

:class:`Crypto` and :class:`CryptoKey` are the ``a=crypto`` value (RFC 4568
§9.1); :func:`make_crypto` writes a new one with a fresh (or given) master
key and salt for one of :data:`SUPPORTED_SRTP_SUITES`. :class:`Fingerprint`
is the hash of a DTLS certificate (RFC 8122 §5).
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from dataclasses import dataclass

from trunkline.sip.errors import LocalSipError
from trunkline.sip.sdpsyntax import fail, parse_int, parse_token, split_fields

__all__ = ["SUPPORTED_SRTP_SUITES", "Crypto", "CryptoKey", "Fingerprint", "make_crypto"]


def _b64decode(text: str) -> bytes:
    """Strict base64, but tolerant of missing ``=`` padding (seen in the wild)."""
    if not text:
        raise binascii.Error("empty")
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


@dataclass(slots=True, frozen=True)
class CryptoKey:
    """One SDES key parameter: ``inline:<key||salt base64>[|<lifetime>][|<MKI>:<length>]``.

    RFC 4568 §9.1 / §6.1. ``lifetime`` is kept as written (``2^31`` or decimal).
    """

    key_salt: str
    lifetime: str | None = None
    mki: int | None = None
    mki_length: int | None = None
    method: str = "inline"

    @classmethod
    def parse(cls, text: str) -> CryptoKey:
        method, sep, info = text.partition(":")
        if not sep or method != "inline" or not info:
            raise fail(f"unsupported crypto key method: {text[:60]!r}")
        key_salt, *rest = info.split("|")
        if len(rest) > 2:
            raise fail(f"malformed crypto key: {text[:60]!r}")
        try:
            _b64decode(key_salt)
        except (binascii.Error, ValueError):
            raise fail(f"crypto key is not base64: {key_salt[:60]!r}") from None
        lifetime: str | None = None
        mki: int | None = None
        mki_length: int | None = None
        for index, part in enumerate(rest):
            if ":" in part:
                mki_text, _, length_text = part.partition(":")
                mki = parse_int(mki_text, "crypto MKI")
                mki_length = parse_int(length_text, "crypto MKI length", 128)
            elif index == 0 and re.fullmatch(r"(?:2\^[0-9]{1,3}|[0-9]{1,20})", part):
                lifetime = part
            else:
                raise fail(f"malformed crypto key: {text[:60]!r}")
        return cls(key_salt, lifetime, mki, mki_length, method)

    @property
    def key_bytes(self) -> bytes:
        """The concatenated master key and salt (RFC 4568 §6.1)."""
        return _b64decode(self.key_salt)

    def __str__(self) -> str:
        text = f"{self.method}:{self.key_salt}"
        if self.lifetime is not None:
            text += f"|{self.lifetime}"
        if self.mki is not None:
            text += f"|{self.mki}:{self.mki_length}"
        return text


@dataclass(slots=True, frozen=True)
class Crypto:
    """``a=crypto:<tag> <crypto-suite> <key-params> [<session-params>]`` (RFC 4568 §9.1)."""

    tag: int
    suite: str
    keys: tuple[CryptoKey, ...]
    session_params: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> Crypto:
        tag, suite, key_params, *session_params = split_fields(text, "crypto attribute", 3)
        keys = tuple(CryptoKey.parse(key) for key in key_params.split(";"))
        return cls(
            parse_int(tag, "crypto tag", 999999999),
            parse_token(suite, "crypto suite"),
            keys,
            tuple(session_params),
        )

    def __str__(self) -> str:
        keys = ";".join(str(key) for key in self.keys)
        return " ".join([str(self.tag), self.suite, keys, *self.session_params])


@dataclass(slots=True, frozen=True)
class Fingerprint:
    """``a=fingerprint:<hash-func> <AB:CD:...>`` of a DTLS certificate (RFC 8122 §5)."""

    hash_function: str
    value: str

    @classmethod
    def parse(cls, text: str) -> Fingerprint:
        hash_function, value = split_fields(text, "fingerprint", 2, 2)
        if not re.fullmatch(r"[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2})*", value):
            raise fail(f"malformed fingerprint: {value[:60]!r}")
        return cls(parse_token(hash_function, "fingerprint hash function"), value)

    def __str__(self) -> str:
        return f"{self.hash_function} {self.value}"


# SDES suites we can key (RFC 4568 §6.2, RFC 6188, RFC 7714) -> master key+salt length.
SUPPORTED_SRTP_SUITES: dict[str, int] = {
    "AES_CM_128_HMAC_SHA1_80": 30,
    "AES_CM_128_HMAC_SHA1_32": 30,
    "AES_256_CM_HMAC_SHA1_80": 46,
    "AES_256_CM_HMAC_SHA1_32": 46,
    "AEAD_AES_128_GCM": 28,
    "AEAD_AES_256_GCM": 44,
}


def make_crypto(tag: int, suite: str, key: bytes | None = None) -> Crypto:
    """An ``a=crypto`` line with a fresh (or the given) master key and salt (RFC 4568)."""
    length = SUPPORTED_SRTP_SUITES.get(suite)
    if length is None:
        raise LocalSipError(f"unsupported SRTP suite {suite}")
    if key is None:
        key = secrets.token_bytes(length)
    elif len(key) != length:
        raise LocalSipError(f"{suite} needs a {length}-byte key and salt, got {len(key)}")
    return Crypto(tag, suite, (CryptoKey(base64.b64encode(key).decode("ascii")),))
