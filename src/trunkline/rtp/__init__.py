"""The sans-IO RTP core: packets, RTCP, reception statistics, call quality,
the jitter buffer and the sender's pacing (RFC 3550, 3551, 5761, 8285).

Nothing here opens a socket or reads a clock: every entry point that depends
on time takes ``now``. The asyncio side lives in :mod:`trunkline.media`.
"""

from .emodel import QualityScore, score_call
from .jitterbuffer import Concealment, ConcealReason, JitterBuffer, JitterStats
from .pacing import PacingSchedule, RtpSender
from .packet import RtpPacket, RtpParseError, is_rtcp, seq_diff, ts_diff
from .rtcp import (
    Bye,
    ReceiverReport,
    ReportBlock,
    SenderReport,
    SourceDescription,
    build_compound,
    parse_compound,
)
from .stats import ReceptionStats, SourceTable, round_trip_time

__all__ = [
    "Bye",
    "ConcealReason",
    "Concealment",
    "JitterBuffer",
    "JitterStats",
    "PacingSchedule",
    "QualityScore",
    "ReceiverReport",
    "ReceptionStats",
    "ReportBlock",
    "RtpPacket",
    "RtpParseError",
    "RtpSender",
    "SenderReport",
    "SourceDescription",
    "SourceTable",
    "build_compound",
    "is_rtcp",
    "parse_compound",
    "round_trip_time",
    "score_call",
    "seq_diff",
    "ts_diff",
]
