"""Capture RTP on the loopback interface with tshark and decode it.

``RtpCapture`` runs ``tshark -i lo -f "udp and (portrange ...)" -w file``
(a port filter keeps the file small on a shared machine), waits until tshark
reports it is capturing, and on ``stop()`` lets it flush. ``streams()`` then
reads the file back with the heuristic RTP dissector (no SDP needed) and groups
packets per (source, destination, SSRC) into ``RtpStream`` objects, whose
G.711 payloads (PCMU = 0, PCMA = 8, RFC 3551 section 6) can be decoded to
samples for the analysis helpers in ``tests.support.audio``.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import numpy as np

from tests.support.audio import Samples

PCMU, PCMA = 0, 8


def ulaw_decode(data: bytes) -> Samples:
    """G.711 mu-law to linear (ITU-T G.711 table 2a), scaled to [-1, 1)."""
    u = ~np.frombuffer(data, dtype=np.uint8)
    sign = u & 0x80
    exponent = ((u >> 4) & 0x07).astype(np.int32)
    mantissa = (u & 0x0F).astype(np.int32)
    magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84
    value = np.where(sign != 0, -magnitude, magnitude)
    return value.astype(np.float64) / 32768.0


def alaw_decode(data: bytes) -> Samples:
    """G.711 A-law to linear (ITU-T G.711 table 1a), scaled to [-1, 1)."""
    a = np.frombuffer(data, dtype=np.uint8) ^ 0x55
    sign = a & 0x80
    exponent = ((a >> 4) & 0x07).astype(np.int32)
    mantissa = (a & 0x0F).astype(np.int32)
    magnitude = np.where(
        exponent == 0,
        (mantissa << 4) + 8,
        ((mantissa << 4) + 0x108) << np.maximum(exponent - 1, 0),
    )
    value = np.where(sign != 0, magnitude, -magnitude)
    return value.astype(np.float64) / 32768.0


@dataclass
class RtpStream:
    """The packets of one SSRC from one address to another."""

    src: str
    dst: str
    ssrc: int
    payload_type: int
    sequence: list[int] = field(default_factory=list)
    payloads: list[bytes] = field(default_factory=list)
    #: Every payload type seen (e.g. a telephone-event type beside the codec's).
    payload_types: set[int] = field(default_factory=set)

    @property
    def src_port(self) -> int:
        return int(self.src.rsplit(":", 1)[1])

    @property
    def dst_port(self) -> int:
        return int(self.dst.rsplit(":", 1)[1])

    @property
    def packets(self) -> int:
        return len(self.sequence)

    def pcm(self) -> Samples:
        """The decoded audio of a PCMU/PCMA stream (payloads in capture order)."""
        data = b"".join(self.payloads)
        if self.payload_type == PCMU:
            return ulaw_decode(data)
        if self.payload_type == PCMA:
            return alaw_decode(data)
        raise ValueError(f"payload type {self.payload_type} is not G.711")


def port_filter(ranges: list[tuple[int, int]]) -> str:
    """A capture filter (pcap-filter(7)) for UDP on the given inclusive port ranges."""
    parts = [f"portrange {lo}-{hi}" if hi != lo else f"port {lo}" for lo, hi in ranges]
    return "udp and (" + " or ".join(parts) + ")"


class RtpCapture:
    """A tshark capture on ``lo``; use as a context manager or ``start()`` / ``stop()``."""

    def __init__(
        self,
        pcap: Path,
        ports: list[tuple[int, int]],
        *,
        interface: str = "lo",
        binary: str = "tshark",
    ) -> None:
        self.pcap = pcap
        self.ports = ports
        self.interface = interface
        self.binary = binary
        self.log_path = pcap.with_suffix(".tshark.log")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> None:
        """Start tshark and wait until it says it is capturing."""
        argv = [
            self.binary,
            "-q",
            "-n",
            "-i",
            self.interface,
            "-f",
            port_filter(self.ports),
            "-w",
            str(self.pcap),
        ]
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            if b"Capturing on" in self.log_path.read_bytes():
                time.sleep(0.2)  # the message comes just before the capture loop
                return
            time.sleep(0.05)
        log_text = self.log_path.read_text(errors="replace")
        self.stop()
        raise RuntimeError(f"tshark did not start capturing:\n{log_text}")

    def stop(self) -> None:
        """SIGINT (tshark then writes out what it has), SIGKILL after 15 s.

        The wait is long because a loaded machine (a full CI run) can keep tshark and
        its dumpcap child from flushing the file for seconds; a kill before then leaves
        an empty capture (seen once in a full run: no stream at all)."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait(timeout=5)

    def __enter__(self) -> RtpCapture:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def streams(self) -> list[RtpStream]:
        """RTP streams in the capture file (RTCP excluded), most packets first."""
        fields = [
            "ip.src",
            "udp.srcport",
            "ip.dst",
            "udp.dstport",
            "rtp.ssrc",
            "rtp.p_type",
            "rtp.seq",
            "rtp.payload",
        ]
        argv = [self.binary, "-r", str(self.pcap), "-n", "-o", "rtp.heuristic_rtp:TRUE"]
        argv += ["-Y", "rtp && !rtcp", "-T", "fields", "-E", "separator=|"]
        for name in fields:
            argv += ["-e", name]
        out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=60).stdout
        found: dict[tuple[str, str, int], RtpStream] = {}
        for line in out.splitlines():
            cols = line.split("|")
            if len(cols) != len(fields) or not cols[4]:
                continue
            src, sport, dst, dport, ssrc, ptype, seq, payload = cols
            key = (f"{src}:{sport}", f"{dst}:{dport}", int(ssrc, 16))
            stream = found.get(key)
            if stream is None:
                stream = RtpStream(key[0], key[1], key[2], int(ptype))
                found[key] = stream
            stream.sequence.append(int(seq))
            stream.payload_types.add(int(ptype))
            if int(ptype) == stream.payload_type and payload:
                stream.payloads.append(bytes.fromhex(payload.replace(":", "")))
        return sorted(found.values(), key=lambda s: -s.packets)
