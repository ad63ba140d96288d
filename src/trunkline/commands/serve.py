"""``trunkline serve`` (the registrar/proxy server) and ``trunkline status``."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
from pathlib import Path
from typing import Annotated

import typer

from trunkline.config import Config, ConfigError, apply_overrides, load_config
from trunkline.logsetup import configure_logging
from trunkline.proxy.server import ProxyServer
from trunkline.proxy.status import fetch_status, render_status
from trunkline.proxy.workers import WorkerSpec, check_workers, run_workers, worker_count
from trunkline.sip.aio import enable_sip_trace, new_event_loop
from trunkline.store.datadir import DEFAULT_DATA_DIR, DataDir

__all__ = ["register", "serve", "status"]


def register(app: typer.Typer) -> None:
    """Add ``serve`` and ``status`` to the ``trunkline`` command."""
    app.command()(serve)
    app.command()(status)


def _banner(server: ProxyServer, data_dir: Path) -> str:
    domain = server.domains[0]
    udp = server.addresses.get("UDP")
    tcp = server.addresses.get("TCP")
    tls = server.addresses.get("TLS")
    ws = server.addresses.get("WS")
    proxy_host, proxy_port = udp or tcp or ("?", 0)
    lines = [f"Trunkline is serving domain {domain!r} (data in {data_dir}/)."]
    for name, address in (("UDP", udp), ("TCP", tcp), ("TLS", tls)):
        if address is not None:
            lines.append(f"  SIP {name:<4} {address[0]}:{address[1]}")
    if ws is not None:
        lines.append(
            f"  HTTP     http://{ws[0]}:{ws[1]}/status  /metrics  (SIP over WebSocket too)"
        )
    if server.demo_passwords:
        lines.append("")
        lines.append("Demo users (passwords are shown this once; stored hashed):")
        for name, password in server.demo_passwords.items():
            lines.append(f"  {name}@{domain}  password {password}")
        password_hint = ["  password as above,"]
    else:  # a restart: only hashes are stored, nothing to show
        password_hint = [
            "  password as printed at the first start (stored hashed, never shown again;",
            f"  to set one: trunkline users passwd alice --data-dir {data_dir}),",
        ]
    lines += [
        "",
        "To call: in two softphones (baresip, Linphone, Zoiper, `trunkline phone`) add accounts",
        f"  user alice / bob, domain {domain},",
        *password_hint,
        f"  proxy/registrar sip:{proxy_host}:{proxy_port} (UDP or TCP),",
        f"then dial bob (sip:bob@{domain}) from alice. More users:",
        f"  trunkline users add NAME --password P --data-dir {data_dir}",
        "Status: trunkline status"
        + (f" --http-port {ws[1]}" if ws is not None and ws[1] != 8080 else "")
        + "   Stop: Ctrl-C or SIGTERM (graceful).",
    ]
    return "\n".join(lines)


async def _run(server: ProxyServer, data_dir: Path, quiet: bool) -> None:
    await server.start()
    server.worker.announce_ready()
    if not quiet:
        typer.echo(_banner(server, data_dir))
        sys.stdout.flush()
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    try:
        await stopping.wait()
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        logging.getLogger("trunkline.proxy.server").info("shutting down")
        await server.stop()
    if not quiet:
        typer.echo("Trunkline stopped; registrations saved.")


def serve(
    *,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="trunkline.toml", dir_okay=False)
    ] = None,
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", help="data directory (default ./trunkline-data)")
    ] = None,
    host: Annotated[str | None, typer.Option("--host", help="address to listen on")] = None,
    sip_port: Annotated[
        int | None, typer.Option("--sip-port", help="UDP and TCP port (default 5060; TLS on N+1)")
    ] = None,
    http_port: Annotated[
        int | None, typer.Option("--http-port", help="HTTP: status, metrics, WebSocket")
    ] = None,
    trusted: Annotated[
        list[str] | None,
        typer.Option("--trusted", help="CIDR trusted without digest (repeatable)"),
    ] = None,
    sip_trace: Annotated[
        bool, typer.Option("--sip-trace", help="print every SIP message sent and received")
    ] = False,
    legacy_digest: Annotated[
        bool, typer.Option("--legacy-digest", help="offer MD5 only (old phones, SIPp)")
    ] = False,
    log_level: Annotated[str, typer.Option("--log-level", help="debug, info, warning")] = "",
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no banner")] = False,
    workers: Annotated[
        int | None,
        typer.Option("--workers", help="SIP worker processes (default 0: one per CPU, at most 4)"),
    ] = None,
) -> None:
    """Run the registrar/proxy server (zero config: creates ./trunkline-data/ and demo users)."""
    try:
        settings = apply_overrides(
            load_config(config),
            data_dir=data_dir,
            host=host,
            sip_port=sip_port,
            http_port=http_port,
            trusted=trusted or (),
        )
    except ConfigError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    if sip_port is not None and settings.listen.tls.port == 5061:
        # TLS follows --sip-port (N+1) so several servers can run side by side.
        listen = settings.listen.model_copy(
            update={"tls": settings.listen.tls.model_copy(update={"port": sip_port + 1})}
        )
        settings = settings.model_copy(update={"listen": listen})
    try:
        configure_logging(
            log_level or settings.logging.level, settings.logging.format, settings.logging.file
        )
    except OSError as error:
        typer.echo(f"error: cannot open the log file: {error}", err=True)
        raise typer.Exit(2) from None
    if sip_trace or settings.logging.sip_trace:
        enable_sip_trace(sys.stdout)
    directory = settings.data_dir or DEFAULT_DATA_DIR
    if workers is not None:
        settings = settings.model_copy(update={"workers": workers})
    count = worker_count(settings)
    problem = check_workers(settings, count)
    if problem is not None:
        typer.echo(f"error: {problem}", err=True)
        raise typer.Exit(2)
    if count > 1:
        raise typer.Exit(_serve_workers(settings, directory, count, legacy_digest, quiet))
    server = ProxyServer(settings, data_dir=DataDir(directory), legacy_digest=legacy_digest)
    try:
        with asyncio.Runner(loop_factory=new_event_loop) as runner:
            runner.run(_run(server, directory, quiet))
    except OSError as error:
        typer.echo(f"error: cannot start: {error}", err=True)
        raise typer.Exit(1) from None


def _serve_workers(
    settings: Config, directory: Path, count: int, legacy_digest: bool, quiet: bool
) -> int:
    """Prepare the data directory once, then fork ``count`` workers (``proxy.workers``).

    The banner is printed once every worker listens.
    """
    preparer = ProxyServer(settings, data_dir=DataDir(directory))
    preparer.prepare()  # demo users created once, their passwords shown once
    preparer.close_database()
    preparer.status_board.clear()

    def ready() -> None:
        if not quiet:
            typer.echo(_banner(preparer, directory))
            typer.echo(f"{count} SIP workers share the port (SO_REUSEPORT); see docs/server.md.")
            sys.stdout.flush()

    def work(spec: WorkerSpec) -> int:
        server = ProxyServer(
            settings, data_dir=DataDir(directory), legacy_digest=legacy_digest, worker=spec
        )
        try:
            with asyncio.Runner(loop_factory=new_event_loop) as runner:
                runner.run(_run(server, directory, quiet=True))
        except OSError as error:
            typer.echo(f"error: worker {spec.index} cannot start: {error}", err=True)
            return 1
        return 0

    code = run_workers(count, work, on_ready=ready)
    if not quiet:
        typer.echo("Trunkline stopped; registrations saved." if code == 0 else "Trunkline stopped.")
    return code


def status(
    host: Annotated[str, typer.Option("--host", help="server address")] = "127.0.0.1",
    http_port: Annotated[int, typer.Option("--http-port", help="the server's HTTP port")] = 8080,
    as_json: Annotated[bool, typer.Option("--json", help="raw JSON")] = False,
) -> None:
    """Show a running server: uptime, registrations, calls, counters, bans."""
    try:
        data = fetch_status(host, http_port)
    except (OSError, ValueError) as error:
        typer.echo(f"error: no Trunkline server answers on {host}:{http_port}: {error}", err=True)
        raise typer.Exit(1) from None
    typer.echo(json.dumps(data, indent=2) if as_json else render_status(data))


if __name__ == "__main__":  # ``python -m trunkline.commands.serve``: the server alone (bench)
    typer.run(serve)
