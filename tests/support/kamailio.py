"""Kamailio as a registrar/proxy peer for interop tests.

``Kamailio`` writes a kamailio.cfg into a private directory and runs
``kamailio -DD -E -f cfg`` (foreground, log to stderr kept in ``kamailio.log``)
on 127.0.0.1 with UDP and TCP on one free port, optionally TLS (a generated
self-signed certificate) and WS (xhttp + websocket on its own TCP port).

Modes:

* ``"registrar"``: digest auth (RFC 3261 section 22, ``auth`` module,
  ``pv_www_authenticate`` for REGISTER and ``pv_proxy_authenticate`` for new
  requests; the plain passwords of ``users`` are written into the cfg),
  usrloc in memory, ``registrar``, Record-Route (``rr``), stateful relay (``tm``).
* ``"relay"``: the same without authentication ("trusted relay"): REGISTER is
  accepted from anyone, requests to the domain are looked up in usrloc, other
  requests (or all, with ``forward_to``) are relayed.

Usage (sync, as a fixture)::

    with Kamailio(tmp_path, users={"alice": "pw"}) as kam:
        kam.port, kam.domain, kam.log_text()
"""

from __future__ import annotations

import secrets
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import pytest

from tests.support.peerprocess import spawn_logged, stop_group
from tests.support.peers import free_port, require_peer

Mode = Literal["registrar", "relay"]

MODULES = (
    "kex",
    "corex",
    "tm",
    "tmx",
    "sl",
    "rr",
    "pv",
    "maxfwd",
    "usrloc",
    "registrar",
    "textops",
    "siputils",
    "xlog",
    "sanity",
    "auth",
)


def _quote(value: str) -> str:
    """A Kamailio cfg string literal."""
    if any(c in value for c in '"\\\n\r'):
        raise ValueError(f"unsupported character in {value!r}")
    return f'"{value}"'


@dataclass
class KamailioConfig:
    """What the generated kamailio.cfg does."""

    port: int
    domain: str = "127.0.0.1"
    users: dict[str, str] = field(default_factory=dict)
    mode: Mode = "registrar"
    tls_port: int | None = None
    ws_port: int | None = None
    tls_cfg: Path | None = None
    forward_to: tuple[str, int] | None = None
    debug: int = 2

    def render(self) -> str:
        lines = [
            "#!KAMAILIO",
            f"debug={self.debug}",
            "log_stderror=yes",
            "fork=yes",
            "children=2",
            "tcp_children=2",
            "auto_aliases=no",
            f"listen=udp:127.0.0.1:{self.port}",
            f"listen=tcp:127.0.0.1:{self.port}",
            "tcp_accept_no_cl=yes",
        ]
        if self.domain != "127.0.0.1":
            # Not for 127.0.0.1: an alias without a port would make every UA's
            # loopback Contact "myself" and break loose routing.
            lines.append(f"alias={_quote(self.domain)}")
        modules = list(MODULES)
        if self.tls_port is not None:
            lines += [f"listen=tls:127.0.0.1:{self.tls_port}", "enable_tls=yes"]
            modules.append("tls")
        if self.ws_port is not None:
            lines.append(f"listen=tcp:127.0.0.1:{self.ws_port}")
            modules += ["xhttp", "websocket", "nathelper"]
        lines += [f'loadmodule "{m}.so"' for m in modules]
        lines += [
            'modparam("usrloc", "db_mode", 0)',
            'modparam("registrar", "max_expires", 3600)',
            'modparam("registrar", "default_expires", 600)',
            'modparam("rr", "enable_full_lr", 1)',
            'modparam("rr", "append_fromtag", 1)',
            f'modparam("auth", "secret", {_quote(secrets.token_hex(16))})',
        ]
        if self.tls_cfg is not None:
            lines.append(f'modparam("tls", "config", {_quote(str(self.tls_cfg))})')
        if self.ws_port is not None:
            lines += [
                'modparam("websocket", "sub_protocols", 1)',
                'modparam("nathelper", "received_avp", "$avp(RECEIVED)")',
                'modparam("registrar", "received_avp", "$avp(RECEIVED)")',
            ]
        lines.append(self._routes())
        return "\n".join(lines) + "\n"

    def _password_lookup(self) -> str:
        """Sets $var(pw) from the username given in the credentials ($au)."""
        out = [f"    $var(pw) = {_quote(secrets.token_hex(24))};"]
        for user, password in self.users.items():
            out.append(f"    if ($au == {_quote(user)}) {{ $var(pw) = {_quote(password)}; }}")
        return "\n".join(out)

    def _routes(self) -> str:
        domain = _quote(self.domain)
        auth = self.mode == "registrar"
        if self.forward_to is not None:
            host, port = self.forward_to
            outside = f'    $du = "sip:{host}:{port}";\n    route(RELAY);'
        else:
            outside = "    route(RELAY);"
        ws_fix = ""
        if self.ws_port is not None:
            ws_fix = (
                '    if (is_method("REGISTER") && ($pr == "ws" || $pr == "wss")) {\n'
                "        fix_nated_register();\n"
                "    }\n"
                '    if (!is_method("REGISTER") && ($pr == "ws" || $pr == "wss")) {\n'
                "        add_contact_alias();\n"
                "    }\n"
            )
        text = f"""
request_route {{
    if (!mf_process_maxfwd_header("10")) {{ sl_send_reply("483", "Too Many Hops"); exit; }}
    if (!sanity_check("17895", "7")) {{ xlog("L_WARN", "malformed $rm from $si\\n"); exit; }}
    xlog("L_INFO", "REQ $rm $ru from $si:$sp/$pr\\n");
    if (is_method("OPTIONS") && (uri == myself || $rd == {domain}) && $rU == $null) {{
        sl_send_reply("200", "OK kamailio $pr");
        exit;
    }}
{ws_fix}    if (has_totag()) {{ route(WITHINDLG); exit; }}
    if (is_method("CANCEL")) {{
        if (t_check_trans()) {{ route(RELAY); }}
        exit;
    }}
    t_check_trans();
    remove_hf("Route");
    if (is_method("ACK")) {{ exit; }}
    {"route(AUTH);" if auth else ""}
    if (is_method("INVITE|SUBSCRIBE|REFER")) {{ record_route(); }}
    if (is_method("REGISTER")) {{
        if (!save("location")) {{ sl_reply_error(); }}
        exit;
    }}
    if ($rU == $null) {{ sl_send_reply("484", "Address Incomplete"); exit; }}
    if (uri == myself || $rd == {domain}) {{
        if (!lookup("location")) {{
            t_newtran();
            t_reply("404", "Not Found");
            exit;
        }}
        route(RELAY);
        exit;
    }}
{outside}
}}

route[RELAY] {{
    if (!t_relay()) {{ sl_reply_error(); }}
    exit;
}}

route[WITHINDLG] {{
    if (loose_route()) {{
        # A GRUU as remote target (RFC 5627 section 4.1, liblinphone uses
        # them): resolve it through usrloc like an initial request.
        if ($rd == {domain} && $ru =~ ";gr(=|;|$)") {{
            if (!lookup("location")) {{ sl_send_reply("404", "GRUU not found"); exit; }}
        }}
        route(RELAY);
        exit;
    }}
    if (is_method("ACK")) {{
        if (t_check_trans()) {{ route(RELAY); }}
        exit;
    }}
    sl_send_reply("404", "Not here");
}}

route[AUTH] {{
{self._password_lookup()}
    if (is_method("REGISTER")) {{
        if (!pv_www_authenticate("$td", "$var(pw)", "0")) {{
            www_challenge("$td", "0");
            exit;
        }}
        if ($au != $tU) {{ sl_send_reply("403", "Forbidden auth ID"); exit; }}
    }} else {{
        if (!pv_proxy_authenticate("$fd", "$var(pw)", "0")) {{
            proxy_challenge("$fd", "0");
            exit;
        }}
    }}
    consume_credentials();
}}
"""
        if self.ws_port is not None:
            text += """
event_route[xhttp:request] {
    if ($hdr(Upgrade) =~ "websocket" && $hdr(Connection) =~ "Upgrade" && $rm =~ "GET") {
        if (ws_handle_handshake()) { exit; }
    }
    xhttp_reply("404", "Not Found", "", "");
}
"""
        return text


TLS_CFG = """[server:default]
method = TLSv1.2+
verify_certificate = no
require_certificate = no
private_key = {key}
certificate = {cert}

[client:default]
method = TLSv1.2+
verify_certificate = no
require_certificate = no
"""


def make_self_signed(directory: Path, host: str = "127.0.0.1") -> tuple[Path, Path]:
    """A self-signed certificate for ``host`` (IP SAN and DNS 'localhost'): (cert, key)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address(host)), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def sip_options_ping(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> str | None:
    """Send one OPTIONS over UDP; the status line of the answer, or None."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        s.settimeout(timeout)
        local = s.getsockname()[1]
        tag = secrets.token_hex(4)
        msg = (
            f"OPTIONS sip:{host}:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {host}:{local};branch=z9hG4bK{secrets.token_hex(8)};rport\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:probe@{host}>;tag={tag}\r\n"
            f"To: <sip:{host}:{port}>\r\n"
            f"Call-ID: {secrets.token_hex(8)}@{host}\r\n"
            "CSeq: 1 OPTIONS\r\n"
            "Content-Length: 0\r\n\r\n"
        )
        s.sendto(msg.encode(), (host, port))
        try:
            data = s.recv(65535)
        except OSError:
            return None
    return data.split(b"\r\n", 1)[0].decode(errors="replace")


class Kamailio:
    """A running Kamailio; use as a context manager or call ``start()`` / ``stop()``."""

    def __init__(
        self,
        workdir: Path,
        users: dict[str, str] | None = None,
        *,
        mode: Mode = "registrar",
        domain: str = "127.0.0.1",
        tls: bool = False,
        ws: bool = False,
        forward_to: tuple[str, int] | None = None,
        binary: str = "kamailio",
    ) -> None:
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.binary = binary
        self.cert: Path | None = None
        self.key: Path | None = None
        tls_cfg = None
        tls_port = free_port(socket.SOCK_STREAM) if tls else None
        if tls:
            self.cert, self.key = make_self_signed(self.dir)
            tls_cfg = self.dir / "tls.cfg"
            tls_cfg.write_text(TLS_CFG.format(key=self.key, cert=self.cert))
        self.config = KamailioConfig(
            port=free_port(),
            domain=domain,
            users=dict(users or {}),
            mode=mode,
            tls_port=tls_port,
            ws_port=free_port(socket.SOCK_STREAM) if ws else None,
            tls_cfg=tls_cfg,
            forward_to=forward_to,
        )
        self.cfg_path = self.dir / "kamailio.cfg"
        self.log_path = self.dir / "kamailio.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def port(self) -> int:
        """UDP and TCP port."""
        return self.config.port

    @property
    def tls_port(self) -> int | None:
        return self.config.tls_port

    @property
    def ws_port(self) -> int | None:
        return self.config.ws_port

    @property
    def domain(self) -> str:
        return self.config.domain

    @property
    def uri(self) -> str:
        """SIP URI of the server (for an outbound proxy setting)."""
        return f"sip:127.0.0.1:{self.port}"

    def aor(self, user: str) -> str:
        return f"sip:{user}@{self.domain}"

    def log_text(self, tail: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-tail:]
        except FileNotFoundError:
            return ""

    def start(self, timeout: float = 15.0, attempts: int = 3) -> None:
        """Write the cfg, start Kamailio and wait until it answers OPTIONS on UDP."""
        self.cfg_path.write_text(self.config.render())
        last = ""
        for _ in range(attempts):
            self._spawn()
            if self._wait_ready(timeout):
                return
            last = self.log_text()
            self.stop()
            if "in use" not in last:
                break
            # A port taken between free_port() and bind: try new ports.
            self.config.port = free_port()
            self.cfg_path.write_text(self.config.render())
        raise RuntimeError(f"kamailio did not start; log tail:\n{last}")

    def _spawn(self) -> None:
        argv = [
            self.binary,
            "-f",
            str(self.cfg_path),
            "-DD",
            "-E",
            "-m",
            "32",
            "-M",
            "4",
            "-Y",
            str(self.dir),
            "-w",
            str(self.dir),
            "-P",
            str(self.dir / "kamailio.pid"),
        ]
        self.proc = spawn_logged(argv, self.log_path, append=True)

    def _wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                return False
            status = sip_options_ping(self.port, timeout=0.3)
            if status is not None and " 200 " in status + " ":
                return True
            time.sleep(0.1)
        return False

    def stop(self) -> None:
        """SIGTERM the process group (Kamailio forks children), SIGKILL if it lingers."""
        proc, self.proc = self.proc, None
        if proc is not None:
            stop_group(proc, grace=5.0)

    def __enter__(self) -> Kamailio:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class KamailioFactory:
    """Starts Kamailio servers in private directories; ``close()`` stops them all."""

    def __init__(self, root: Path, binary: str = "kamailio") -> None:
        self.root = root
        self.binary = binary
        self.started: list[Kamailio] = []

    def __call__(self, users: dict[str, str] | None = None, **options: Any) -> Kamailio:
        kam = Kamailio(
            self.root / f"kamailio{len(self.started)}", users, binary=self.binary, **options
        )
        self.started.append(kam)
        kam.start()
        return kam

    def close(self) -> None:
        for kam in reversed(self.started):
            kam.stop()


@pytest.fixture
def kamailio_factory(tmp_path: Path) -> Iterator[KamailioFactory]:
    """``kamailio_factory({"alice": "pw"}, mode="registrar", tls=False, ws=False)``."""
    factory = KamailioFactory(tmp_path, require_peer("kamailio", "kamailio"))
    try:
        yield factory
    finally:
        factory.close()
