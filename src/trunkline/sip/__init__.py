"""The sans-IO SIP core (RFC 3261 and friends): messages, URIs, headers, builders.

Nothing in this package touches a socket or a clock; see DESIGN.md. The most
used names are re-exported here::

    from trunkline.sip import parse_message, SipParseError, Request, Response

    msg = parse_message(data)      # Request | Response, or raises SipParseError
    msg.call_id, msg.cseq.number, msg.via[0].branch, msg.from_tag
    bytes(msg)                     # the same bytes until something is edited
"""

from __future__ import annotations

from trunkline.sip.errors import LocalSipError, SipError, SipFramingError, SipParseError
from trunkline.sip.headerfields import Headers
from trunkline.sip.headers import Contact, CSeq, NameAddr, Via
from trunkline.sip.message import Limits, Message, Request, Response, parse_message
from trunkline.sip.uri import AbsoluteUri, SipUri, TelUri, Uri, parse_uri

__all__ = [
    "AbsoluteUri",
    "CSeq",
    "Contact",
    "Headers",
    "Limits",
    "LocalSipError",
    "Message",
    "NameAddr",
    "Request",
    "Response",
    "SipError",
    "SipFramingError",
    "SipParseError",
    "SipUri",
    "TelUri",
    "Uri",
    "Via",
    "parse_message",
    "parse_uri",
]
