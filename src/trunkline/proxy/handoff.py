"""Responses handed to the worker that sent the request (workers sharing one UDP port).

Several proxy workers (:mod:`trunkline.proxy.workers`) bind the same UDP
port with ``SO_REUSEPORT`` and send everything from it, so a phone behind a
port-restricted NAT only ever talks to one address and port: the one it
registered with, the one in our Via and Record-Route. The kernel gives each
datagram to one worker by a hash of its source and destination, so a
response can reach a worker other than the one holding the client
transaction (RFC 3261 §17.1.3 matches it by the top Via's branch).

Each worker therefore names itself at the end of every branch it makes
(:func:`worker_suffix`, set for the process with
:func:`trunkline.sip.builder.set_branch_suffix`: the proxy's loop-detecting
branches and the UA-side ones such as the NAT keep-alive pings). At the
transport edge, before any parsing, :meth:`ResponseHandoff.steer` looks at
each datagram: a response whose first ``branch=`` (the top Via, ours) names
another worker is sent, with its source and local address, over that
worker's datagram socket pair, and that worker delivers it as if it had
arrived there. Requests are not handed off: any worker routes an in-dialog
request by its Route, and a UA's retransmissions, ACK and CANCEL come from
the flow of the INVITE, so the hash sends them to the same worker. A CANCEL
that came from another port than its INVITE (§9.1 does not forbid it) and
whose INVITE this worker does not hold (:meth:`ResponseHandoff.start`'s
``holds_invite``, which parses it: CANCELs are rare) is offered to every
other worker; the one holding the INVITE takes it (§9.2: 200, then 487 or
the proxy's §16.10 handling, or 481 once answered), the others drop it.
When no worker holds the INVITE any more, nobody answers (no 481): a
CANCEL then changes nothing, and the UA's CANCEL transaction times out.

The cost for a response is a prefix test and a few ``bytes.find`` calls
(a microsecond or two; a request costs the prefix test); a handed-off one
costs a ``send`` here and a ``recv`` in the other worker (``bench/proxy.py``
prints the numbers). A response that cannot be handed off (the other
worker's queue is full, or it is being restarted) is dropped, as the
network could have done: the sender's retransmission comes back the same
way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Callable

from trunkline.sip.aio.trace import Address

__all__ = ["HANDOFF_BUFFER", "ResponseHandoff", "branch_owner", "worker_suffix"]

log = logging.getLogger("trunkline.proxy.handoff")

HANDOFF_BUFFER = 4 * 1024 * 1024
"""Send buffer of the hand-off sockets (the kernel may cap it at wmem_max)."""
_MAX_PACKET = 65536 + 512
"""A UDP payload and the address line in front of it."""
_BATCH = 64
"""Datagrams read per wake-up (bounded: the loop has other work)."""

_RESPONSE = b"SIP/2.0 "
_CANCEL = b"CANCEL "


def worker_suffix(index: int) -> str:
    """What worker ``index`` appends to its branches (``.w<index>``: token characters)."""
    return f".w{index}"


def branch_owner(data: bytes) -> int | None:
    """The worker named by the top-Via branch of a response datagram.

    None for a request, or a response whose first ``branch=`` carries no
    worker suffix (the first one is the top Via's: RFC 3261 §7.3.1 keeps
    Via values in order, and the response echoes the request's, §8.2.6.2).
    """
    return _owner(data) if data.startswith(_RESPONSE) else None


def _owner(data: bytes) -> int | None:
    start = data.find(b"branch=")
    if start < 0:
        return None
    line_end = data.find(b"\r", start)
    if line_end < 0:
        line_end = len(data)
    end = data.find(b";", start, line_end)  # our Vias put ;rport after the branch
    if end < 0:
        end = line_end
    mark = data.rfind(b".w", start, end)
    if mark < 0:
        return None
    digits = data[mark + 2 : end].partition(b",")[0].rstrip(b" \t")
    return int(digits) if 0 < len(digits) <= 2 and digits.isdigit() else None


class ResponseHandoff:
    """One worker's end of the response hand-off: see the module docstring.

    ``inbox`` is the file descriptor this worker reads (-1: none) and
    ``peers`` the ones to write to, by worker index (-1 for this worker's own
    place). :func:`~trunkline.proxy.workers.run_workers` makes one datagram
    socket pair per worker before forking, as for the bans.
    """

    def __init__(self, index: int, inbox: int, peers: tuple[int, ...]) -> None:
        self.index = index
        self.inbox = _dup(inbox) if inbox >= 0 else None
        self.peers = [_dup(fd) if fd >= 0 and i != index else None for i, fd in enumerate(peers)]
        for sock in self.peers:
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, HANDOFF_BUFFER)
        self.handed = 0
        """Responses sent to the worker that owns them."""
        self.received = 0
        """Responses other workers handed to this one."""
        self.dropped = 0
        """Responses that could not be handed off (queue full, worker restarting)."""
        self.cancels_offered = 0
        """CANCELs whose INVITE was not here, offered to the other workers."""
        self.cancels_taken = 0
        """CANCELs another worker offered whose INVITE is here."""
        self._deliver: Callable[[bytes, Address, Address], None] | None = None
        self._holds_invite: Callable[[bytes], bool | None] | None = None

    def counters(self) -> dict[str, int]:
        """The counts above, for ``trunkline status`` and ``/metrics``."""
        return {
            "handed": self.handed,
            "received": self.received,
            "dropped": self.dropped,
            "cancels_offered": self.cancels_offered,
            "cancels_taken": self.cancels_taken,
        }

    def steer(self, data: bytes, peer: Address, local: Address) -> bool:
        """True when ``data`` (received on ``local`` from ``peer``) belongs to another worker
        and was handed to it (or dropped on the way); False: handle it here."""
        if not data.startswith(_RESPONSE):
            if data.startswith(_CANCEL) and self._holds_invite is not None:
                return self._steer_cancel(data, peer, local)
            return False  # other requests: the cheapest test first
        owner = _owner(data)
        if owner is None or owner == self.index or owner >= len(self.peers):
            return False
        target = self.peers[owner]
        if target is None:
            return False
        if self._send(target, _head(b"R", peer, local) + data):
            self.handed += 1
        return True

    def _steer_cancel(self, data: bytes, peer: Address, local: Address) -> bool:
        """A CANCEL whose INVITE is not here (it came from another port than the INVITE):
        offered to every other worker, the one holding the INVITE takes it."""
        assert self._holds_invite is not None
        if self._holds_invite(data) is not False:
            return False  # ours, or unreadable: handled (or rejected) here
        packet = _head(b"C", peer, local) + data
        for target in self.peers:
            if target is not None:
                self._send(target, packet)
        self.cancels_offered += 1
        return True

    def _send(self, target: socket.socket, packet: bytes) -> bool:
        try:
            target.send(packet)
        except OSError as error:  # full, or nobody reads: lost, as on the network
            self.dropped += 1
            log.debug("hand-off to another worker dropped: %s", error)
            return False
        return True

    def start(
        self,
        deliver: Callable[[bytes, Address, Address], None],
        holds_invite: Callable[[bytes], bool | None] | None = None,
    ) -> None:
        """Call ``deliver(data, peer, local)`` for each message another worker hands over.

        ``holds_invite(data)`` says whether the INVITE a CANCEL datagram
        targets is in this worker's transactions (None: not a readable
        CANCEL); without it CANCELs are not handed off.
        """
        self._holds_invite = holds_invite
        if self.inbox is None:
            return
        self._deliver = deliver
        asyncio.get_running_loop().add_reader(self.inbox.fileno(), self._receive)

    def _receive(self) -> None:
        inbox, deliver = self.inbox, self._deliver
        if inbox is None or deliver is None:
            return
        for _ in range(_BATCH):
            try:
                packet = inbox.recv(_MAX_PACKET)
            except (BlockingIOError, InterruptedError):
                return
            head, _, data = packet.partition(b"\n")
            try:
                kind, peer_host, peer_port, local_host, local_port = head.decode().split(" ")
                peer = (peer_host, int(peer_port))
                local = (local_host, int(local_port))
            except ValueError:
                continue  # not from a worker: ignore
            if kind == "C":  # offered to every worker: only the INVITE's takes it
                holds = self._holds_invite
                if holds is None or holds(data) is not True:
                    continue
                self.cancels_taken += 1
            else:
                self.received += 1
            deliver(data, peer, local)

    def close(self) -> None:
        if self._deliver is not None and self.inbox is not None:
            with contextlib.suppress(RuntimeError):
                asyncio.get_running_loop().remove_reader(self.inbox.fileno())
            self._deliver = None
        for sock in (self.inbox, *self.peers):
            if sock is not None:
                sock.close()
        self.inbox = None
        self.peers = []


def _head(kind: bytes, peer: Address, local: Address) -> bytes:
    """The line in front of a handed-off datagram: kind (R response, C CANCEL) and addresses."""
    return kind + f" {peer[0]} {peer[1]} {local[0]} {local[1]}\n".encode("ascii", "replace")


def _dup(fd: int) -> socket.socket:
    sock = socket.socket(fileno=os.dup(fd))
    sock.setblocking(False)
    return sock
