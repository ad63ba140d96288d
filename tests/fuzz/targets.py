"""Fuzz targets for every parser of network or file input except SIP messages.

Each :class:`Target` pairs an ``exercise(data)`` function with seeds and a token
dictionary. ``exercise`` checks the project's fuzz invariant (STYLE.md habit 4,
h11's "parse or raise our error, never anything else"): for any bytes it either
returns or raises the parser's own error type; anything else -- another
exception or a failed ``assert`` on a round trip -- is a bug. The atheris
harnesses (``fuzz_<name>.py``) and the short in-suite runs
(``test_fuzz_<name>.py``) share these functions; the SIP message target
(``MESSAGE``) lives in ``harness.py``.

This module is the registry (:data:`TARGETS`) and the one import path for every
target and for the runner; the targets live in :mod:`tests.fuzz.sip_targets`
and :mod:`tests.fuzz.media_targets`, the runner in :mod:`tests.fuzz.runner`,
the config target below.

Seeds are real inputs: the SDP files and torture messages in ``tests/data/``,
the TOML files in ``tests/data/fuzz/config/``, and packets, payloads and WAV
files built by the project's own serializers.
"""

from __future__ import annotations

from tests.fuzz.harness import MESSAGE
from tests.fuzz.media_targets import RTCP, RTP, TELEPHONE_EVENT, WAV
from tests.fuzz.runner import Target, atheris_main, mutate, run_short, write_dictionary
from tests.fuzz.sip_targets import AUTH, CRYPTO, DATA, FRAMER, SDP, URI
from trunkline.config import ConfigError, parse_config

__all__ = [
    "AUTH",
    "CONFIG",
    "CRYPTO",
    "FRAMER",
    "MESSAGE",
    "RTCP",
    "RTP",
    "SDP",
    "TARGETS",
    "TELEPHONE_EVENT",
    "URI",
    "WAV",
    "Target",
    "atheris_main",
    "mutate",
    "run_short",
    "write_dictionary",
]


# -- config TOML (trunkline.config) -------------------------------------------------


def config_seeds() -> list[bytes]:
    return [p.read_bytes() for p in sorted((DATA / "fuzz" / "config").glob("*.toml"))]


def exercise_config(data: bytes) -> None:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    try:
        parse_config(text)
    except ConfigError as exc:
        assert str(exc).startswith("trunkline.toml"), f"error does not name the file: {exc}"


CONFIG = Target(
    "config",
    exercise_config,
    config_seeds,
    tokens=[
        b"\n",
        b"[listen.udp]\n",
        b"[[users]]\n",
        b"[location]\n",
        b"[limits]\n",
        b"[logging]\n",
        b" = ",
        b'"',
        b"'''",
        b'"""',
        b"{ ",
        b" }",
        b"[",
        b"]",
        b"port = 65536\n",
        b'ha1 = { md5 = "" }\n',
        b"true",
        b"1e309",
        b"-0",
        b"nan",
        b"1979-05-27T07:32:00Z",
        b'"\\u0000"',
        b"#",
        b".",
    ],
    modules=["trunkline.config"],
)

TARGETS: dict[str, Target] = {
    t.name: t
    for t in (MESSAGE, SDP, URI, AUTH, FRAMER, RTP, RTCP, CRYPTO, TELEPHONE_EVENT, WAV, CONFIG)
}
