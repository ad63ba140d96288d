"""SIP message parsing speed: Trunkline beside sipmessage and sippy, same run.

The work per message, for each library: parse a typical INVITE with SDP (or
its 200 OK), read the top Via branch, the From and To tags, Call-ID, CSeq
number and method, Max-Forwards and the Route set, and serialize it back to
bytes. Messages per CPU-second are measured on one core (best of several rounds)
and printed side by side; the last line is the ratio against the faster peer:

    parse: <value>x <peer> (goal 3x)

Run: ``.venv/bin/python bench/parse.py [--seconds 1.0]``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from trunkline.sip import parse_message

SDP = (
    b"v=0\r\n"
    b"o=alice 2890844526 2890844526 IN IP4 192.0.2.101\r\n"
    b"s=-\r\n"
    b"c=IN IP4 192.0.2.101\r\n"
    b"t=0 0\r\n"
    b"m=audio 49172 RTP/AVP 0 8 101\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
    b"a=rtpmap:8 PCMA/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\n"
    b"a=fmtp:101 0-16\r\n"
    b"a=sendrecv\r\n"
)

INVITE = (
    b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK776asdhds;rport\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.4:5060;branch=z9hG4bKnashds8;received=192.0.2.1\r\n"
    b"Max-Forwards: 69\r\n"
    b"Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\r\n"
    b'To: "Bob" <sip:bob@biloxi.example.com>\r\n'
    b'From: "Alice" <sip:alice@atlanta.example.com>;tag=1928301774\r\n'
    b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Contact: <sip:alice@pc33.atlanta.example.com>\r\n"
    b"Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, REFER, NOTIFY\r\n"
    b"Supported: replaces, timer\r\n"
    b"User-Agent: Bench/1.0\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: " + str(len(SDP)).encode() + b"\r\n"
    b"\r\n" + SDP
)

OK = (
    b"SIP/2.0 200 OK\r\n"
    b"Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK776asdhds;rport=5060"
    b";received=192.0.2.101\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.4:5060;branch=z9hG4bKnashds8;received=192.0.2.1\r\n"
    b"Record-Route: <sip:p1.example.com;lr>\r\n"
    b'To: "Bob" <sip:bob@biloxi.example.com>;tag=a6c85cf\r\n'
    b'From: "Alice" <sip:alice@atlanta.example.com>;tag=1928301774\r\n'
    b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Contact: <sip:bob@192.0.2.4>\r\n"
    b"Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, REFER, NOTIFY\r\n"
    b"Server: Bench/1.0\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: " + str(len(SDP)).encode() + b"\r\n"
    b"\r\n" + SDP
)

MESSAGES = (INVITE, OK)
POOL = 2000
"""Distinct message pairs cycled through: Call-ID, tags and branches differ per
pair, as in real traffic, so no cache keyed by header text helps across pairs."""


def make_pool(count: int = POOL) -> list[tuple[bytes, bytes]]:
    """``count`` INVITE/200 pairs with their own Call-ID, From tag, To tag and branch."""
    pairs = []
    for n in range(count):
        tag = b"%d" % n
        pairs.append(
            tuple(
                m.replace(b"a84b4c76e66710", b"a84b4c76e66710-" + tag)
                .replace(b"tag=1928301774", b"tag=1928301774-" + tag)
                .replace(b"tag=a6c85cf", b"tag=a6c85cf-" + tag)
                .replace(b"z9hG4bK776asdhds", b"z9hG4bK776asdhds-" + tag)
                .replace(b"z9hG4bKnashds8", b"z9hG4bKnashds8-" + tag)
                for m in MESSAGES
            )
        )
    return pairs  # type: ignore[return-value]


Work = Callable[[bytes], tuple[object, ...]]


def trunkline_work(data: bytes) -> tuple[object, ...]:
    msg = parse_message(data)
    route = msg.route if msg.is_request else msg.record_route
    return (
        msg.via[0].branch,
        msg.from_tag,
        msg.to_tag,
        msg.call_id,
        msg.cseq.number,
        msg.cseq.method,
        msg.max_forwards,
        len(route),
        len(bytes(msg)),
    )


def sipmessage_work(data: bytes) -> tuple[object, ...]:
    import sipmessage

    msg = sipmessage.Message.parse(data)
    route = msg.route if isinstance(msg, sipmessage.Request) else msg.record_route
    return (
        msg.via[0].parameters.get("branch"),
        msg.from_address.parameters.get("tag"),
        msg.to_address.parameters.get("tag"),
        msg.call_id,
        msg.cseq.sequence,
        msg.cseq.method,
        msg.max_forwards,
        len(route),
        len(bytes(msg)),
    )


def sippy_work(data: bytes) -> tuple[object, ...]:
    from sippy.SipRequest import SipRequest
    from sippy.SipResponse import SipResponse

    text = data.decode("utf-8")
    msg = SipResponse(text) if text.startswith("SIP/") else SipRequest(text)
    msg.init_body()
    route = msg.getHFBodys("route") if text[0] != "S" else msg.getHFBodys("record-route")
    cseq = msg.getHFBody("cseq")
    max_forwards = msg.getHFBodys("max-forwards")
    return (
        msg.getHFBody("via").getBranch(),
        msg.getHFBody("from").getTag(),
        msg.getHFBody("to").getTag(),
        str(msg.getHFBody("call-id")),
        cseq.getCSeqNum(),
        cseq.getCSeqMethod(),
        max_forwards[0].getNum() if max_forwards else None,
        len(route),
        len(str(msg).encode("utf-8")),
    )


def one_round(work: Work, pool: list[tuple[bytes, bytes]], seconds: float) -> float:
    """Messages per CPU-second over one round of about ``seconds`` of CPU time.

    CPU time of this process (``time.process_time``), not wall-clock time:
    on a shared machine the wall clock also counts time spent waiting for
    the CPU, which would make the numbers depend on other processes' load.
    """
    count = 0
    start = time.process_time()
    deadline = start + seconds
    while True:
        start_pair = (count // 2) % POOL
        for invite, ok in pool[start_pair : start_pair + 50]:
            work(invite)
            work(ok)
        count += 100
        now = time.process_time()
        if now >= deadline:
            return count / (now - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="length of one round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per library (best kept)")
    args = parser.parse_args()

    ours = trunkline_work(INVITE), trunkline_work(OK)
    theirs = sipmessage_work(INVITE), sipmessage_work(OK)
    if [o[:7] for o in ours] != [t[:7] for t in theirs]:
        raise SystemExit(f"libraries disagree: {ours} vs {theirs}")

    libraries: dict[str, Work] = {
        "trunkline": trunkline_work,
        "sipmessage": sipmessage_work,
        "sippy": sippy_work,
    }
    for work in libraries.values():
        for data in MESSAGES:
            work(data)  # warm up caches and imports
    # Rounds are interleaved and the best round of each library is kept, so
    # load from other processes on a shared machine hits every library alike.
    pool = make_pool()
    results = dict.fromkeys(libraries, 0.0)
    for _ in range(args.rounds):
        for name, work in libraries.items():
            results[name] = max(results[name], one_round(work, pool, args.seconds))
    for name, value in results.items():
        print(f"{name:>10}: {value:>9,.0f} messages/s")
    peer = max(("sipmessage", "sippy"), key=lambda n: results[n])
    print(f"parse: {results['trunkline'] / results[peer]:.2f}x {peer} (goal 3x)")


if __name__ == "__main__":
    main()
