"""TLS contexts for SIP over TLS and WSS (RFC 3261 §26.3.1, RFC 5630).

Certificate and host name checks are on by default: a client context built
here verifies the server against the system trust store (or ``cafile``) and
the host name or IP address it dialled. :func:`create_dev_certificates` makes
a private CA and a server certificate with the ``openssl`` command line tool,
for tests and for a first ``trunkline serve`` on a developer's machine; real
deployments bring their own certificates.
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import ip_address
from pathlib import Path


def client_ssl_context(cafile: str | Path | None = None) -> ssl.SSLContext:
    """A TLS client context with certificate and host name checks on."""
    return ssl.create_default_context(
        ssl.Purpose.SERVER_AUTH, cafile=str(cafile) if cafile is not None else None
    )


def server_ssl_context(certfile: str | Path, keyfile: str | Path | None = None) -> ssl.SSLContext:
    """A TLS server context presenting ``certfile`` (and its key)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(certfile), str(keyfile) if keyfile is not None else None)
    return context


@dataclass(frozen=True, slots=True)
class DevCertificates:
    """Paths of a private CA and one server certificate signed by it."""

    ca: Path
    cert: Path
    key: Path


def _is_ip(host: str) -> bool:
    try:
        ip_address(host)
    except ValueError:
        return False
    return True


def create_dev_certificates(
    directory: str | Path,
    hosts: Sequence[str] = ("localhost", "127.0.0.1", "::1"),
    *,
    days: int = 30,
) -> DevCertificates:
    """Create ``ca.pem``, ``server.pem`` and ``server.key`` in ``directory``.

    The server certificate names every entry of ``hosts`` in its
    subjectAltName (DNS names and IP addresses), as RFC 5922 §7.1 asks a SIP
    client to check. Keys are ECDSA P-256. Needs the ``openssl`` executable.
    """
    openssl = shutil.which("openssl")
    if openssl is None:
        raise FileNotFoundError("the openssl command line tool is needed for dev certificates")
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    ca_key, ca, key, csr, cert = (
        out / "ca.key",
        out / "ca.pem",
        out / "server.key",
        out / "server.csr",
        out / "server.pem",
    )
    ext = out / "server.ext"
    names = ",".join(f"IP:{h}" if _is_ip(h) else f"DNS:{h}" for h in hosts)
    ext.write_text(
        f"subjectAltName={names}\nbasicConstraints=CA:FALSE\n"
        "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\n"
    )
    curve = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], check=True, capture_output=True, timeout=30)

    run(
        "req",
        "-x509",
        *curve,
        "-keyout",
        str(ca_key),
        "-out",
        str(ca),
        "-days",
        str(days),
        "-subj",
        "/CN=Trunkline development CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    )
    run("req", *curve, "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={hosts[0]}")
    run(
        "x509",
        "-req",
        "-in",
        str(csr),
        "-CA",
        str(ca),
        "-CAkey",
        str(ca_key),
        "-CAcreateserial",
        "-out",
        str(cert),
        "-days",
        str(days),
        "-extfile",
        str(ext),
    )
    return DevCertificates(ca=ca, cert=cert, key=key)
