"""The offer/answer model for audio calls (RFC 3264), sans-IO.

The caller describes what it can do -- a list of :class:`Codec` in local
preference order, an address and port, a wanted :class:`Direction`, and
optionally SDES keys (RFC 4568), ICE (RFC 8839) and DTLS (RFC 8842) details --
and gets SDP to send plus a :class:`NegotiatedAudio` telling the media engine
where to send, with which payload type, and how.

- :func:`create_offer` builds an offer (RFC 3264 §5).
- :func:`create_answer` answers a received offer (RFC 3264 §6): codecs are
  intersected in the answerer's preference order, dynamic payload types keep
  the offerer's numbers (§6.1), telephone-event (RFC 4733) is kept only if
  both ends support it, directions follow §6.1, streams we cannot use are
  rejected with port 0 (§6), and the legacy ``c=0.0.0.0`` hold is understood
  (§8.4).
- :func:`process_answer` turns the answer to our offer into the result.
- :class:`LocalSession` keeps ``o=`` and bumps its version only when the
  description changes (RFC 3264 §8).

When no audio stream can be used, :class:`NegotiationError` carries 488 Not
Acceptable Here (RFC 3261 §13.3.1.1) for the caller to answer with.
This module is the one import path for all of it; the parts live in
:mod:`trunkline.sip.negotiated` (results, parameters, reading the peer's
stream), :mod:`trunkline.sip.sdpoffer` (``o=`` and offers) and
:mod:`trunkline.sip.sdpanswer` (answers). :class:`Codec`, the common codecs
(``PCMU``, ``OPUS``, ``TELEPHONE_EVENT``...) are defined in
:mod:`trunkline.sip.sdpcodecs`, :func:`make_crypto` in :mod:`trunkline.sip.sdpcrypto`.
"""

from __future__ import annotations

from trunkline.sip.negotiated import (
    Answer,
    DtlsParameters,
    IceParameters,
    NegotiatedAudio,
    NegotiationError,
    RemoteDtls,
    RemoteIce,
    is_hold,
    media_codecs,
)
from trunkline.sip.sdpanswer import create_answer, process_answer
from trunkline.sip.sdpcodecs import (
    CN,
    G722,
    OPUS,
    PCMA,
    PCMU,
    STATIC_PAYLOAD_TYPES,
    TELEPHONE_EVENT,
    Codec,
)
from trunkline.sip.sdpcrypto import SUPPORTED_SRTP_SUITES, make_crypto
from trunkline.sip.sdpoffer import LocalSession, create_offer

__all__ = [
    "CN",
    "G722",
    "OPUS",
    "PCMA",
    "PCMU",
    "STATIC_PAYLOAD_TYPES",
    "SUPPORTED_SRTP_SUITES",
    "TELEPHONE_EVENT",
    "Answer",
    "Codec",
    "DtlsParameters",
    "IceParameters",
    "LocalSession",
    "NegotiatedAudio",
    "NegotiationError",
    "RemoteDtls",
    "RemoteIce",
    "create_answer",
    "create_offer",
    "is_hold",
    "make_crypto",
    "media_codecs",
    "process_answer",
]
