"""SIP over TLS, WS and WSS against a real peer: Kamailio.

The test writes a kamailio.cfg that listens on ``tls:127.0.0.1:<port>``
(which also serves WSS through xhttp + websocket) and ``tcp:127.0.0.1:<port>``
for WS, with a certificate from a CA the test makes. Kamailio answers
OPTIONS with ``sl_send_reply`` and acts as registrar for REGISTER
(``save("location")``). Our endpoint verifies Kamailio's certificate
against that CA (checks on, as by default).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.support.kamailio import TLS_CFG
from tests.support.peers import free_port, require_peer

from trunkline.sip.aio.endpoint import SipEndpoint
from trunkline.sip.aio.routing import Destination
from trunkline.sip.aio.tls import DevCertificates, client_ssl_context, create_dev_certificates
from trunkline.sip.builder import make_request

pytestmark = pytest.mark.interop

CONFIG = """#!KAMAILIO
debug=2
log_stderror=yes
children=1
tcp_children=1
auto_aliases=no
listen=tls:127.0.0.1:{tls_port}
listen=tcp:127.0.0.1:{ws_port}
enable_tls=yes
tcp_accept_no_cl=yes
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "pv.so"
loadmodule "xlog.so"
loadmodule "tls.so"
loadmodule "xhttp.so"
loadmodule "websocket.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
modparam("tls", "config", "{tls_cfg}")
modparam("websocket", "sub_protocols", 1)
request_route {{
    if (is_method("OPTIONS")) {{ sl_send_reply("200", "OK kamailio $pr"); exit; }}
    if (is_method("REGISTER")) {{ if (!save("location")) {{ sl_reply_error(); }} exit; }}
    sl_send_reply("404", "Not here");
}}
event_route[xhttp:request] {{
    if ($hdr(Upgrade) =~ "websocket" && $hdr(Connection) =~ "Upgrade" && $rm =~ "GET") {{
        if (ws_handle_handshake()) {{ exit; }}
    }}
    xhttp_reply("404", "Not Found", "", "");
}}
"""


@dataclass(frozen=True)
class Kamailio:
    tls_port: int
    ws_port: int
    pki: DevCertificates
    log: Path


def wait_for_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"kamailio did not listen on {port}")


@pytest.fixture(scope="module")
def kamailio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kamailio]:
    binary = require_peer("kamailio", "kamailio")
    run = tmp_path_factory.mktemp("kamailio")
    pki = create_dev_certificates(run / "pki")
    tls_port, ws_port = free_port(socket.SOCK_STREAM), free_port(socket.SOCK_STREAM)
    tls_cfg = run / "tls.cfg"
    tls_cfg.write_text(TLS_CFG.format(key=pki.key, cert=pki.cert))
    cfg = run / "kamailio.cfg"
    cfg.write_text(CONFIG.format(tls_port=tls_port, ws_port=ws_port, tls_cfg=tls_cfg))
    log = run / "kamailio.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                binary,
                "-f",
                str(cfg),
                "-DD",
                "-E",
                "-n",
                "1",
                "-m",
                "32",
                "-M",
                "4",
                "-Y",
                str(run),
                "-w",
                str(run),
                "-P",
                str(run / "kamailio.pid"),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for_port(tls_port)
        wait_for_port(ws_port)
        yield Kamailio(tls_port, ws_port, pki, log)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


@pytest.fixture
async def endpoint(kamailio: Kamailio) -> AsyncIterator[SipEndpoint]:
    ep = SipEndpoint(client_ssl=client_ssl_context(kamailio.pki.ca))
    try:
        await ep.listen("UDP")  # we only dial out; Via and Contact name this listener
        yield ep
    finally:
        await ep.close()


TRANSPORTS = ["TLS", "WS", "WSS"]


def port_for(kamailio: Kamailio, name: str) -> int:
    return kamailio.ws_port if name == "WS" else kamailio.tls_port


@pytest.mark.parametrize("name", TRANSPORTS)
async def test_options_answered_by_kamailio(
    kamailio: Kamailio, endpoint: SipEndpoint, name: str
) -> None:
    port = port_for(kamailio, name)
    scheme = "sips" if name in ("TLS", "WSS") else "sip"
    request = make_request(
        "OPTIONS",
        f"{scheme}:localhost:{port};transport={name.lower()}",
        from_="<sip:alice@localhost>",
        to=f"<{scheme}:localhost>",
    )
    response = await asyncio.wait_for(
        endpoint.send_request(request, Destination(name, "127.0.0.1", port, "localhost")), 10
    )
    assert response.status == 200, kamailio.log.read_text()[-2000:]
    # Kamailio names the protocol it received on ($pr): tls, ws or wss.
    assert response.reason == f"OK kamailio {name.lower()}"
    top = response.via[0]
    assert top.transport == name
    assert top.received == "127.0.0.1" and top.rport is not None  # RFC 3581 at Kamailio


@pytest.mark.parametrize("name", TRANSPORTS)
async def test_register_with_kamailio(kamailio: Kamailio, endpoint: SipEndpoint, name: str) -> None:
    port = port_for(kamailio, name)
    scheme = "sips" if name in ("TLS", "WSS") else "sip"
    user = f"browser-{name.lower()}"
    contact = f"<{scheme}:{user}@df7jal23ls0d.invalid;transport={name.lower()}>;expires=60"
    request = make_request(
        "REGISTER",
        f"{scheme}:localhost",
        from_=f"<{scheme}:{user}@localhost>",
        to=f"<{scheme}:{user}@localhost>",
        contact=contact,
    )
    response = await asyncio.wait_for(
        endpoint.send_request(request, Destination(name, "127.0.0.1", port, "localhost")), 10
    )
    assert response.status == 200, kamailio.log.read_text()[-2000:]
    (bound,) = response.contact
    assert str(bound.uri).startswith(f"{scheme}:{user}@df7jal23ls0d.invalid")
    assert bound.expires is not None and 0 < bound.expires <= 60
    # The registration and the OPTIONS after it share one connection (reuse).
    options = make_request(
        "OPTIONS",
        f"{scheme}:localhost",
        from_=f"<{scheme}:{user}@localhost>",
        to=f"<{scheme}:localhost>",
    )
    again = await asyncio.wait_for(
        endpoint.send_request(options, Destination(name, "127.0.0.1", port, "localhost")), 10
    )
    assert again.status == 200
    assert len([c for c in endpoint.transport.connections if c.name == name]) == 1
