"""Framing SIP messages out of a byte stream (RFC 3261 §18.3, RFC 5626 §3.5.1).

On TCP and TLS a SIP message ends where its header section ends (the first
empty line) plus ``Content-Length`` body bytes; the header is mandatory on
streams (RFC 3261 §18.3, §20.14). :class:`StreamFramer` is the sans-IO piece
that turns arbitrarily chunked bytes into complete message byte strings::

    framer = StreamFramer()
    for item in framer.feed(data):
        if isinstance(item, KeepAlive):
            if item is KeepAlive.PING:
                transport.write(KeepAlive.PONG)   # RFC 5626 §4.4.1
        else:
            handle(parse_message(item))

Between messages, RFC 5626 §3.5.1 CRLF keep-alives are reported as events,
not messages: a double CRLF is a ``PING`` (the client asks "are you there"),
a single CRLF a ``PONG`` (the server's answer). The two share their first
two bytes, so a lone CRLF at the end of the fed data is reported as a PONG at
once (a client waiting for its pong must not wait for more bytes), and if the
next chunk starts with the CRLF that completes a double CRLF, that is
reported as a PING. So a ping split in the middle reads ``PONG, PING``: the
server still answers it, and a spurious PONG is harmless to a server. A run
of ``k`` CRLFs between two messages always yields ``k // 2`` PINGs, however
it is chunked.
RFC 3261 §7.5 asks to ignore CRLFs before a start line; this covers it.

:class:`KeepAlive` members are ``bytes`` (``KeepAlive.PING == b"\\r\\n\\r\\n"``)
so they can be written back as they are; check ``isinstance(item, KeepAlive)``
before treating an item as a message.

Errors are final: after :class:`~trunkline.sip.errors.SipFramingError` the
stream cannot be resynchronised (RFC 4475 §3.1.2.3, §3.3.9) and every later
``feed`` raises again; the transport closes the connection. Messages framed
in the same ``feed`` before the fault are still returned (the error is then
kept in :attr:`StreamFramer.error` and raised by the next call). Causes:
missing, negative, non-numeric or conflicting ``Content-Length`` (400), a
bare CR before a start line (400), a header section or message larger than
the limits (513). When the peer closes the connection, ``eof()`` raises if a
message was left unfinished (RFC 4475 §3.1.2.2: a Content-Length larger than
what was sent can only be detected this way, or by an idle timeout).

Work is linear in the bytes fed however they are chunked: the search for the
end of the header section resumes where the previous one stopped, and body
bytes are only counted.
"""

from __future__ import annotations

from enum import Enum

from trunkline.sip.errors import SipFramingError

__all__ = [
    "KEEPALIVE_PING",
    "KEEPALIVE_PONG",
    "KeepAlive",
    "StreamFramer",
    "content_length_of",
]

_END_OF_HEADERS = b"\r\n\r\n"
# 10 digits hold any sane length; more is an attack or garbage.
_MAX_LENGTH_DIGITS = 10


class KeepAlive(bytes, Enum):
    """A CRLF keep-alive seen between messages (RFC 5626 §3.5.1)."""

    PING = b"\r\n\r\n"
    """Double CRLF: answer with :attr:`PONG`."""
    PONG = b"\r\n"
    """Single CRLF: the answer to our ping."""


KEEPALIVE_PING = KeepAlive.PING
KEEPALIVE_PONG = KeepAlive.PONG


def content_length_of(header_section: bytes | bytearray) -> int | None:
    """The ``Content-Length`` (or compact ``l``) of a header section, or None.

    ``header_section`` runs from the start line to the CRLF ending the last
    header line. Header names are case-insensitive and may be followed by
    whitespace before the colon; folded continuation lines (starting with
    SP/HT) are never taken for headers, and a Content-Length value is a
    single token on its own line. The start line is skipped. Several headers with the same
    value are tolerated; conflicting, negative or non-numeric ones raise
    :class:`SipFramingError` (400), RFC 4475 §3.1.2.3 and §3.3.9.
    """
    found: int | None = None
    lowered = header_section.lower()  # one C-speed pass; names are ASCII
    for needle in (b"\ncontent-length", b"\nl"):
        position = lowered.find(needle)
        while position >= 0:
            cursor = position + len(needle)
            while cursor < len(lowered) and lowered[cursor] in b" \t":
                cursor += 1
            if cursor < len(lowered) and lowered[cursor] == 0x3A:  # ":"
                line_end = lowered.find(b"\r", cursor)
                if line_end < 0:
                    line_end = len(lowered)
                value = bytes(lowered[cursor + 1 : line_end]).strip(b" \t")
                if not value or not value.isdigit():
                    raise SipFramingError(f"Invalid Content-Length {value[:20]!r}")
                if len(value) > _MAX_LENGTH_DIGITS:
                    raise SipFramingError("Content-Length too large", 513)
                length = int(value)
                if found is not None and found != length:
                    raise SipFramingError("Conflicting Content-Length values")
                found = length
            position = lowered.find(needle, position + 1)
    return found


class StreamFramer:
    """Split a SIP byte stream into messages and keep-alives (see module docs).

    ``max_message`` bounds a whole message (header section and body) and
    ``max_header`` the header section alone; exceeding either raises
    :class:`SipFramingError` with status 513, as soon as it is known (a huge
    declared Content-Length fails before its body arrives).
    """

    __slots__ = (
        "_buffer",
        "_error",
        "_lone_crlf",
        "_message_end",
        "_scan",
        "max_header",
        "max_message",
    )

    def __init__(self, max_message: int = 65536, max_header: int | None = None) -> None:
        if max_message <= 0:
            raise ValueError("max_message must be positive")
        self.max_message = max_message
        self.max_header = max_message if max_header is None else min(max_header, max_message)
        self._buffer = bytearray()
        self._scan = 0  # where to resume looking for the end of the header section
        self._message_end: int | None = None  # total length once the headers are known
        self._lone_crlf = False  # the last thing consumed was a lone CRLF at end of data
        self._error: SipFramingError | None = None

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned (part of an unfinished message)."""
        return len(self._buffer)

    @property
    def error(self) -> SipFramingError | None:
        """The framing error that ended this stream, if any.

        ``feed`` raises it at once when it frames nothing before the fault;
        when it returns messages framed before the fault, it keeps the error
        here and raises it on the next ``feed``/``eof``. A transport checks
        this after handling the returned items and closes the connection.
        """
        return self._error

    @property
    def at_boundary(self) -> bool:
        """True if no partial message is pending (a clean place to close)."""
        return not self._buffer

    def feed(self, data: bytes) -> list[bytes | KeepAlive]:
        """Add stream bytes; return the messages and keep-alives they complete."""
        if self._error is not None:
            raise self._error
        buffer = self._buffer
        buffer += data
        out: list[bytes | KeepAlive] = []
        start = 0  # consumed bytes are dropped once, at the end of the call
        try:
            while start < len(buffer):
                taken = self._next(start, out)
                if not taken:
                    break
                start += taken
        except SipFramingError as exc:
            self._error = exc
            buffer.clear()
            if not out:
                raise
            # Deliver what was framed before the fault; the error is kept for
            # :attr:`error` and raised by the next call.
            return out
        if start:
            del buffer[:start]
        return out

    def eof(self) -> None:
        """The peer closed the stream: raise if it left a message unfinished."""
        if self._error is not None:
            raise self._error
        if self._buffer:
            size = len(self._buffer)
            self._buffer.clear()
            self._error = SipFramingError(f"Stream closed inside a message ({size} bytes pending)")
            raise self._error

    def _next(self, start: int, out: list[bytes | KeepAlive]) -> int:
        """Frame one item beginning at ``start`` into ``out``; return the bytes it
        took, or 0 if more data is needed."""
        buffer = self._buffer
        if self._message_end is None and self._scan == 0 and buffer[start] == 0x0D:
            return self._keepalive(start, out)
        self._lone_crlf = False
        available = len(buffer) - start
        if self._message_end is None:
            end = buffer.find(_END_OF_HEADERS, start + self._scan)
            if end < 0:
                if available > self.max_header:
                    raise SipFramingError("Message header section too large", 513)
                self._scan = max(0, available - 3)
                return 0
            header_size = end + 4 - start
            if header_size > self.max_header:
                raise SipFramingError("Message header section too large", 513)
            length = content_length_of(bytes(memoryview(buffer)[start : end + 2]))
            if length is None:
                raise SipFramingError("Missing Content-Length on a stream transport")
            if header_size + length > self.max_message:
                raise SipFramingError("Message too large", 513)
            self._message_end = header_size + length
            self._scan = 0
        total = self._message_end
        if available < total:
            return 0
        out.append(bytes(memoryview(buffer)[start : start + total]))
        self._message_end = None
        return total

    def _keepalive(self, start: int, out: list[bytes | KeepAlive]) -> int:
        """Handle CRLFs at a message boundary (RFC 5626 §3.5.1)."""
        buffer = self._buffer
        available = len(buffer) - start
        if available < 2:
            return 0  # a lone CR: wait for its LF
        if buffer[start + 1] != 0x0A:
            raise SipFramingError("Bare CR before a start line")
        if self._lone_crlf:
            # The CRLF that completes a double CRLF split across two chunks.
            self._lone_crlf = False
            out.append(KeepAlive.PING)
            return 2
        if buffer.startswith(_END_OF_HEADERS, start):
            out.append(KeepAlive.PING)
            return 4
        if available == 3:
            return 0  # CRLF CR: wait to see whether it is a double CRLF
        # A single CRLF: a pong, or the first half of a ping cut by the chunking.
        self._lone_crlf = available == 2
        out.append(KeepAlive.PONG)
        return 2
