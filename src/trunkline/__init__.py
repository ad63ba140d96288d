"""Trunkline: a self-hosted telephone system in Python.

SIP registrar and proxy, IP-PBX, programmable voice, WebRTC gateway and a
softphone, built on a sans-IO SIP and RTP core (see docs/ and DESIGN.md).
"""

__version__ = "0.1.0"
