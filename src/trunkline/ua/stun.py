"""STUN Binding (RFC 5389), sans-IO: the message and the client transaction.

A phone behind a NAT learns the public address of one of its UDP sockets
(its SIP socket for the Contact, its RTP socket for the SDP) by sending a
Binding request from that socket to a STUN server and reading the
XOR-MAPPED-ADDRESS of the success response (RFC 5389 §2, §15.2).

:class:`StunMessage` encodes and decodes the wire format of §6 (a 20-byte
header with the magic cookie and a 96-bit transaction id, then 4-byte
aligned type-length-value attributes, §15), including MESSAGE-INTEGRITY
(HMAC-SHA1, §15.4) and FINGERPRINT (CRC-32 xor ``0x5354554e``, §15.5).
:class:`BindingTransaction` is the client transaction of §7.2.1 over UDP:
RTO 500 ms doubling per retransmission, Rc = 7 requests, failure Rm = 16
RTOs after the last one (0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5 s; gives up at
39.5 s). It never touches a socket or a clock: the caller sends
:meth:`~BindingTransaction.datagrams_to_send`, feeds datagrams to
:meth:`~BindingTransaction.handle_datagram` and drives the one timer with
``now``. The asyncio glue is :mod:`trunkline.ua.nat`.
"""

from __future__ import annotations

import binascii
import enum
import hashlib
import hmac
import ipaddress
import os
import struct
from dataclasses import dataclass, field

__all__ = [
    "MAGIC_COOKIE",
    "Attribute",
    "BindingTransaction",
    "StunClass",
    "StunMessage",
    "StunParseError",
    "TransactionState",
    "decode_xor_address",
    "encode_xor_address",
    "is_stun",
    "long_term_key",
]

MAGIC_COOKIE = 0x2112A442
"""§6: the fixed value in bytes 4-7 of every RFC 5389 message."""
HEADER = struct.Struct("!HHI12s")
FINGERPRINT_XOR = 0x5354554E
"""§15.5: the CRC-32 is xored with this ("STUN" in ASCII)."""
BINDING = 0x001
"""§18.1: the Binding method."""
_FAMILY_V4 = 0x01
_FAMILY_V6 = 0x02


class StunParseError(ValueError):
    """The bytes are not a valid STUN message (RFC 5389 §6, §15)."""


class StunClass(enum.IntEnum):
    """§6: the two class bits of the message type."""

    REQUEST = 0b00
    INDICATION = 0b01
    SUCCESS = 0b10
    ERROR = 0b11


class Attribute(enum.IntEnum):
    """§18.2: the attribute types this module knows (others are kept as raw bytes)."""

    MAPPED_ADDRESS = 0x0001
    USERNAME = 0x0006
    MESSAGE_INTEGRITY = 0x0008
    ERROR_CODE = 0x0009
    UNKNOWN_ATTRIBUTES = 0x000A
    REALM = 0x0014
    NONCE = 0x0015
    XOR_MAPPED_ADDRESS = 0x0020
    SOFTWARE = 0x8022
    ALTERNATE_SERVER = 0x8023
    FINGERPRINT = 0x8028


def message_type(method: int, cls: StunClass) -> int:
    """§6: the 14-bit type, class bits C1 C0 at bits 8 and 4 between the method bits."""
    c = int(cls)
    return (
        (method & 0x000F)
        | ((method & 0x0070) << 1)
        | ((method & 0x0F80) << 2)
        | ((c & 0b01) << 4)
        | ((c & 0b10) << 7)
    )


def split_type(value: int) -> tuple[int, StunClass]:
    """The (method, class) of a message type (inverse of :func:`message_type`)."""
    method = (value & 0x000F) | ((value & 0x00E0) >> 1) | ((value & 0x3E00) >> 2)
    cls = StunClass(((value >> 4) & 0b01) | ((value >> 7) & 0b10))
    return method, cls


def is_stun(data: bytes) -> bool:
    """True when ``data`` looks like an RFC 5389 message (demultiplexing, §6/RFC 7983).

    The two top bits are zero (SIP starts with a letter, RTP with version 2),
    bytes 4-7 are the magic cookie and the length is a multiple of 4.
    """
    return (
        len(data) >= HEADER.size
        and data[0] < 0x40
        and int.from_bytes(data[4:8], "big") == MAGIC_COOKIE
        and int.from_bytes(data[2:4], "big") % 4 == 0
    )


def encode_xor_address(host: str, port: int, transaction_id: bytes) -> bytes:
    """§15.2: XOR-MAPPED-ADDRESS value: port xor the cookie's top 16 bits, address xor
    the cookie (IPv4) or the cookie and the transaction id (IPv6)."""
    address = ipaddress.ip_address(host.strip("[]"))
    xport = port ^ (MAGIC_COOKIE >> 16)
    if address.version == 4:
        xaddr = int(address) ^ MAGIC_COOKIE
        return struct.pack("!BBHI", 0, _FAMILY_V4, xport, xaddr)
    mask = int.from_bytes(MAGIC_COOKIE.to_bytes(4, "big") + transaction_id, "big")
    return struct.pack("!BBH", 0, _FAMILY_V6, xport) + (int(address) ^ mask).to_bytes(16, "big")


def decode_xor_address(value: bytes, transaction_id: bytes) -> tuple[str, int]:
    """The (host, port) of an XOR-MAPPED-ADDRESS value (§15.2)."""
    if len(value) < 4:
        raise StunParseError("XOR-MAPPED-ADDRESS too short")
    family = value[1]
    port = int.from_bytes(value[2:4], "big") ^ (MAGIC_COOKIE >> 16)
    if family == _FAMILY_V4 and len(value) == 8:
        raw = int.from_bytes(value[4:8], "big") ^ MAGIC_COOKIE
        return str(ipaddress.IPv4Address(raw)), port
    if family == _FAMILY_V6 and len(value) == 20:
        mask = int.from_bytes(MAGIC_COOKIE.to_bytes(4, "big") + transaction_id, "big")
        raw = int.from_bytes(value[4:20], "big") ^ mask
        return str(ipaddress.IPv6Address(raw)), port
    raise StunParseError(f"XOR-MAPPED-ADDRESS: bad family {family} or length {len(value)}")


def decode_address(value: bytes) -> tuple[str, int]:
    """The (host, port) of a MAPPED-ADDRESS value (§15.1, not xored)."""
    if len(value) == 8 and value[1] == _FAMILY_V4:
        return str(ipaddress.IPv4Address(value[4:8])), int.from_bytes(value[2:4], "big")
    if len(value) == 20 and value[1] == _FAMILY_V6:
        return str(ipaddress.IPv6Address(value[4:20])), int.from_bytes(value[2:4], "big")
    raise StunParseError("MAPPED-ADDRESS: bad family or length")


def long_term_key(username: str, realm: str, password: str) -> bytes:
    """§15.4: the long-term credential key MD5(username ":" realm ":" password).

    SASLprep is the identity for the ASCII credentials this phone uses.
    """
    return hashlib.md5(f"{username}:{realm}:{password}".encode(), usedforsecurity=False).digest()


def _pad(length: int) -> int:
    return (4 - length % 4) % 4


@dataclass(frozen=True, slots=True)
class StunMessage:
    """One STUN message: method, class, transaction id and attributes in order."""

    method: int
    cls: StunClass
    transaction_id: bytes
    attributes: tuple[tuple[int, bytes], ...] = ()
    raw: bytes = field(default=b"", compare=False, repr=False)
    """The bytes it was parsed from (to check MESSAGE-INTEGRITY); empty when built."""

    def __post_init__(self) -> None:
        if len(self.transaction_id) != 12:
            raise ValueError("a STUN transaction id is 96 bits (§6)")

    @classmethod
    def binding_request(
        cls, transaction_id: bytes | None = None, *, software: str | None = None
    ) -> StunMessage:
        """A Binding request with a fresh random transaction id (§7.1)."""
        attributes: tuple[tuple[int, bytes], ...] = ()
        if software:
            attributes = ((Attribute.SOFTWARE, software.encode()),)
        return cls(BINDING, StunClass.REQUEST, transaction_id or os.urandom(12), attributes)

    # -- decoding ---------------------------------------------------------------------
    @classmethod
    def parse(cls, data: bytes) -> StunMessage:
        """Decode and check ``data`` (§6, §7.3): header, length, attributes, FINGERPRINT.

        Attributes after MESSAGE-INTEGRITY other than FINGERPRINT are ignored
        (§15.4); a FINGERPRINT that does not match raises (§7.3).
        """
        if len(data) < HEADER.size:
            raise StunParseError("shorter than the 20-byte STUN header")
        mtype, length, cookie, txid = HEADER.unpack_from(data)
        if mtype & 0xC000:
            raise StunParseError("the two top bits of a STUN message are zero")
        if cookie != MAGIC_COOKIE:
            raise StunParseError("no magic cookie: not an RFC 5389 message")
        if length % 4 or HEADER.size + length != len(data):
            raise StunParseError(f"length {length} does not match {len(data) - HEADER.size} bytes")
        method, klass = split_type(mtype)
        attributes: list[tuple[int, bytes]] = []
        offset = HEADER.size
        integrity_seen = False
        while offset < len(data):
            if offset + 4 > len(data):
                raise StunParseError("truncated attribute header")
            atype, alen = struct.unpack_from("!HH", data, offset)
            start = offset + 4
            end = start + alen
            if end > len(data):
                raise StunParseError(f"attribute 0x{atype:04x} runs past the message")
            value = data[start:end]
            if atype == Attribute.FINGERPRINT:
                if end + _pad(alen) != len(data) or alen != 4:
                    raise StunParseError("FINGERPRINT must be the last attribute, 4 bytes")
                expected = _crc(data[:offset], len(data) - HEADER.size)
                if int.from_bytes(value, "big") != expected:
                    raise StunParseError("FINGERPRINT does not match")
                attributes.append((atype, value))
            elif not integrity_seen:
                attributes.append((atype, value))
            integrity_seen = integrity_seen or atype == Attribute.MESSAGE_INTEGRITY
            offset = end + _pad(alen)
        return cls(method, klass, txid, tuple(attributes), raw=bytes(data))

    def get(self, attribute: int) -> bytes | None:
        """The value of the first ``attribute``, or None."""
        for atype, value in self.attributes:
            if atype == attribute:
                return value
        return None

    @property
    def xor_mapped_address(self) -> tuple[str, int] | None:
        """The reflexive transport address (§15.2), falling back to MAPPED-ADDRESS (§15.1)."""
        value = self.get(Attribute.XOR_MAPPED_ADDRESS)
        if value is not None:
            return decode_xor_address(value, self.transaction_id)
        value = self.get(Attribute.MAPPED_ADDRESS)
        return decode_address(value) if value is not None else None

    @property
    def error_code(self) -> tuple[int, str] | None:
        """(code, reason) of an ERROR-CODE attribute (§15.6)."""
        value = self.get(Attribute.ERROR_CODE)
        if value is None or len(value) < 4:
            return None
        code = (value[2] & 0x07) * 100 + value[3]
        return code, value[4:].decode("utf-8", "replace")

    @property
    def software(self) -> str | None:
        value = self.get(Attribute.SOFTWARE)
        return value.decode("utf-8", "replace") if value is not None else None

    def check_integrity(self, key: bytes) -> bool:
        """§15.4: HMAC-SHA1 over the message up to MESSAGE-INTEGRITY, whose length
        field counts up to and including that attribute; False when absent."""
        data = self.raw
        offset = HEADER.size
        while offset + 4 <= len(data):
            atype, alen = struct.unpack_from("!HH", data, offset)
            if atype == Attribute.MESSAGE_INTEGRITY:
                if alen != 20:
                    return False
                header = bytearray(data[: HEADER.size])
                struct.pack_into("!H", header, 2, offset + 24 - HEADER.size)
                signed = bytes(header) + data[HEADER.size : offset]
                mac = hmac.new(key, signed, hashlib.sha1).digest()
                return hmac.compare_digest(mac, data[offset + 4 : offset + 24])
            offset += 4 + alen + _pad(alen)
        return False

    # -- encoding ---------------------------------------------------------------------
    def encode(
        self,
        *,
        integrity_key: bytes | None = None,
        fingerprint: bool = False,
        padding: bytes = b"\x00",
    ) -> bytes:
        """The wire bytes; with MESSAGE-INTEGRITY and/or FINGERPRINT appended (§15.4, §15.5).

        ``padding`` is the byte that fills attributes to 4 bytes (any value is
        allowed, §15; RFC 5769's vectors use spaces).
        """
        body = bytearray()
        for atype, value in self.attributes:
            body += struct.pack("!HH", atype, len(value)) + value + padding * _pad(len(value))
        mtype = message_type(self.method, self.cls)
        if integrity_key is not None:
            header = HEADER.pack(mtype, len(body) + 24, MAGIC_COOKIE, self.transaction_id)
            mac = hmac.new(integrity_key, header + body, hashlib.sha1).digest()
            body += struct.pack("!HH", Attribute.MESSAGE_INTEGRITY, 20) + mac
        if fingerprint:
            header = HEADER.pack(mtype, len(body) + 8, MAGIC_COOKIE, self.transaction_id)
            crc = _crc(header + body, len(body) + 8)
            body += struct.pack("!HHI", Attribute.FINGERPRINT, 4, crc)
        return HEADER.pack(mtype, len(body), MAGIC_COOKIE, self.transaction_id) + bytes(body)

    def __bytes__(self) -> bytes:
        return self.encode()


def _crc(prefix: bytes, total_length: int) -> int:
    """§15.5: CRC-32 of the message before FINGERPRINT, the header's length field
    already counting the FINGERPRINT attribute, xored with 0x5354554e."""
    header = bytearray(prefix[: HEADER.size])
    struct.pack_into("!H", header, 2, total_length)
    return (binascii.crc32(bytes(header) + prefix[HEADER.size :]) ^ FINGERPRINT_XOR) & 0xFFFFFFFF


class TransactionState(enum.Enum):
    """Where a :class:`BindingTransaction` stands."""

    TRYING = "Trying"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


class BindingTransaction:
    """A Binding request over UDP until its response or the §7.2.1 timeout.

    ``rto`` 0.5 s, ``rc`` 7 and ``rm`` 16 are the defaults of §7.2.1. On
    success :attr:`mapped` is the reflexive (host, port); on failure
    :attr:`error` says why (timeout, an error response, no address).
    """

    def __init__(
        self,
        now: float,
        *,
        request: StunMessage | None = None,
        rto: float = 0.5,
        rc: int = 7,
        rm: int = 16,
        fingerprint: bool = True,
    ) -> None:
        if rto <= 0 or rc < 1 or rm < 1:
            raise ValueError("rto, rc and rm must be positive")
        self.request = request or StunMessage.binding_request(software="Trunkline")
        self.state = TransactionState.TRYING
        self.mapped: tuple[str, int] | None = None
        self.error: str | None = None
        self.response: StunMessage | None = None
        self._wire = self.request.encode(fingerprint=fingerprint)
        self._rto = rto
        self._initial_rto = rto
        self._rc = rc
        self._rm = rm
        self._sent = 0
        self._outbox: list[bytes] = []
        self._timer: float | None = None
        self._transmit(now)

    @property
    def transaction_id(self) -> bytes:
        return self.request.transaction_id

    @property
    def sent(self) -> int:
        """How many times the request was sent so far."""
        return self._sent

    def _transmit(self, now: float) -> None:
        self._outbox.append(self._wire)
        self._sent += 1
        if self._sent < self._rc:
            self._timer = now + self._rto
            self._rto *= 2
        else:  # the last request: wait Rm * RTO for its response (§7.2.1)
            self._timer = now + self._rm * self._initial_rto

    def datagrams_to_send(self) -> list[bytes]:
        """The request bytes queued since the last call (first send, retransmissions)."""
        out, self._outbox = self._outbox, []
        return out

    def get_timer(self) -> float | None:
        """When :meth:`handle_timer` is due, or None once the transaction is over."""
        return self._timer if self.state is TransactionState.TRYING else None

    def handle_timer(self, now: float) -> None:
        """Retransmit, or give up after the last wait (§7.2.1)."""
        if self.state is not TransactionState.TRYING or self._timer is None:
            return
        if now < self._timer:
            return
        if self._sent >= self._rc:
            self._fail("timeout: no STUN response")
            return
        self._transmit(now)

    def handle_datagram(self, data: bytes, now: float) -> bool:
        """Take a datagram; False when it is not a response to this transaction (§7.3)."""
        if self.state is not TransactionState.TRYING or not is_stun(data):
            return False
        try:
            message = StunMessage.parse(data)
        except StunParseError:
            return False  # §7.3: discard silently
        if message.transaction_id != self.transaction_id or message.method != BINDING:
            return False
        if message.cls is StunClass.SUCCESS:
            self.response = message
            try:
                mapped = message.xor_mapped_address
            except StunParseError as exc:
                self._fail(f"bad mapped address: {exc}")
                return True
            if mapped is None:
                self._fail("success response without XOR-MAPPED-ADDRESS")
                return True
            self.mapped = mapped
            self.state = TransactionState.SUCCEEDED
            self._timer = None
            return True
        if message.cls is StunClass.ERROR:
            self.response = message
            code = message.error_code
            self._fail(f"error response {code[0]} {code[1]}" if code else "error response")
            return True
        return False

    def _fail(self, reason: str) -> None:
        self.state = TransactionState.FAILED
        self.error = reason
        self._timer = None
