"""``trunkline phone``: a command-line softphone (register, call, listen).

Scripts rely on the exit codes (:data:`EXIT_CODES`) and on one line per
event on stdout::

    $ trunkline phone listen --local 127.0.0.1:5092 --auto-answer --play a.wav \\
          --record b.wav --duration 5
    listening on UDP 127.0.0.1:5092 as sip:trunkline@127.0.0.1:5092
    incoming call from <sip:trunkline@127.0.0.1:40112>
    connected (PCMU/8000, remote RTP 127.0.0.1:41000)
    call completed (hung up)
    stats: sent 250 received 249 lost 0 (0.0%) jitter 0.3 ms RTT 0.2 ms MOS 4.4

``call`` exits 0 when the call connected and ended normally; busy,
not found, no answer, declined, authentication and other failures have
their own codes, and the message names the SIP status
(``call failed: 486 Busy Here``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import inspect
import logging
import signal
import ssl
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Any, get_type_hints

import typer

from trunkline.commands.phone_interactive import Console, connected_text, end_text, stats_text
from trunkline.sip.aio import enable_sip_trace, new_event_loop
from trunkline.sip.errors import LocalSipError, SipError
from trunkline.sip.offeranswer import G722, OPUS, PCMA, PCMU, Codec
from trunkline.sip.uri import SipUri, parse_uri
from trunkline.ua.call import (
    Call,
    CallConfig,
    CallDirection,
    CallResult,
    CallState,
    CallStateChanged,
    DtmfReceived,
)
from trunkline.ua.phone import (
    IncomingCall,
    Phone,
    PhoneConfig,
    PhoneEvent,
    RegistrationUpdate,
    aor_for,
    describe,
    local_address_for,
)
from trunkline.ua.registration import Registered, RegistrationFailed

__all__ = ["EXIT_CODES", "app"]

app = typer.Typer(
    name="phone",
    help="A SIP softphone: register to a server, place and answer calls with real audio.",
    no_args_is_help=True,
)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BUSY = 3
EXIT_NOT_FOUND = 4
EXIT_NO_ANSWER = 5
EXIT_DECLINED = 6
EXIT_AUTH = 7
EXIT_CANCELLED = 8
EXIT_REGISTRATION = 9
EXIT_NO_CALL = 10

EXIT_CODES: dict[CallResult, int] = {
    CallResult.COMPLETED: EXIT_OK,
    CallResult.BUSY: EXIT_BUSY,
    CallResult.NOT_FOUND: EXIT_NOT_FOUND,
    CallResult.NO_ANSWER: EXIT_NO_ANSWER,
    CallResult.DECLINED: EXIT_DECLINED,
    CallResult.AUTH_FAILED: EXIT_AUTH,
    CallResult.CANCELLED: EXIT_CANCELLED,
    CallResult.REJECTED: EXIT_DECLINED,
    CallResult.FAILED: EXIT_FAILED,
}
"""Exit code of ``call`` and ``listen --duration`` for each way a call ends."""

CODECS: dict[str, Codec] = {"pcmu": PCMU, "pcma": PCMA, "g722": G722, "opus": OPUS}
TRANSPORTS = ("udp", "tcp", "tls", "ws")

log = logging.getLogger("trunkline.phone")


def _say(text: str) -> None:
    print(text, flush=True)


def _warn(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Options:
    """What ``call`` and ``listen`` share."""

    host: str
    port: int
    transport: str
    user: str
    password: str | None
    auth_user: str | None
    registrar: str | None
    aor: str | None
    outbound_proxy: str | None
    codecs: tuple[Codec, ...]
    play: Path | None
    tone: float | None
    record: Path | None
    duration: float | None
    dtmf: str | None
    dtmf_method: str
    expires: int
    cert: Path | None
    key: Path | None
    insecure: bool
    rtp_port: int
    stun: str | None = None
    ca: Path | None = None


# -- shared options -------------------------------------------------------------------
LocalOpt = Annotated[
    str | None,
    typer.Option("--local", help="Local SIP address HOST:PORT (default: an ephemeral port)."),
]
TransportOpt = Annotated[str, typer.Option("--transport", help="udp, tcp, tls or ws.")]
UserOpt = Annotated[str, typer.Option("--user", help="Our user name (From, Contact, auth).")]
PasswordOpt = Annotated[
    str | None, typer.Option("--password", help="Digest password (401/407 challenges).")
]
AuthUserOpt = Annotated[
    str | None, typer.Option("--auth-user", help="Digest user name if not --user.")
]
RegistrarOpt = Annotated[
    str | None,
    typer.Option("--registrar", help="Register there first (sip:host[:port]) and stay registered."),
]
AorOpt = Annotated[
    str | None, typer.Option("--aor", help="Address-of-record (default sip:USER@registrar).")
]
ProxyOpt = Annotated[
    str | None, typer.Option("--outbound-proxy", help="Send requests via this proxy (sip:...).")
]
CodecsOpt = Annotated[
    str, typer.Option("--codecs", help="Comma-separated preference list: pcmu,pcma,g722,opus.")
]
PlayOpt = Annotated[Path | None, typer.Option("--play", help="WAV file to send.")]
ToneOpt = Annotated[
    float | None, typer.Option("--tone", help="Send a sine tone of this many Hz instead.")
]
RecordOpt = Annotated[
    Path | None, typer.Option("--record", help="Record what the peer sends to this WAV file.")
]
DurationOpt = Annotated[
    float | None,
    typer.Option("--duration", help="Hang up this many seconds after the call connects."),
]
DtmfOpt = Annotated[str | None, typer.Option("--dtmf", help="DTMF digits to send once connected.")]
DtmfMethodOpt = Annotated[
    str, typer.Option("--dtmf-method", help="rfc4733 (RTP events) or info (SIP INFO).")
]
TraceOpt = Annotated[
    bool, typer.Option("--sip-trace", help="Print every SIP message sent and received.")
]
ExpiresOpt = Annotated[int, typer.Option("--expires", help="Registration expiry asked for.")]
CertOpt = Annotated[
    Path | None,
    typer.Option(
        "--cert", help="TLS certificate (PEM) to accept TLS connections; not needed to connect."
    ),
]
KeyOpt = Annotated[Path | None, typer.Option("--key", help="TLS private key (PEM) of --cert.")]
CaOpt = Annotated[
    Path | None,
    typer.Option("--ca", help="Verify the TLS server against this CA file (default: system CAs)."),
]
InsecureOpt = Annotated[
    bool,
    typer.Option("--insecure", help="Do not verify the server's TLS certificate (lab setups)."),
]
RtpPortOpt = Annotated[int, typer.Option("--rtp-port", help="Local RTP port (0: any).")]
StunOpt = Annotated[
    str | None,
    typer.Option(
        "--stun",
        help="STUN server HOST[:PORT] (default port 3478): announce the public address "
        "it reports in Contact and SDP (behind a NAT).",
    ),
]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="Log protocol events.")]
InteractiveOpt = Annotated[
    bool,
    typer.Option(
        "--interactive", "-i", help="Keys for answer, hang up, hold, transfer, DTMF; live stats."
    ),
]


@dataclass(frozen=True)
class _Account:
    """The options every command takes: where the phone listens, who it is, TLS, logging."""

    local: LocalOpt = None
    transport: TransportOpt = "udp"
    user: UserOpt = "trunkline"
    password: PasswordOpt = None
    auth_user: AuthUserOpt = None
    aor: AorOpt = None
    outbound_proxy: ProxyOpt = None
    expires: ExpiresOpt = 3600
    cert: CertOpt = None
    key: KeyOpt = None
    insecure: InsecureOpt = False
    ca: CaOpt = None
    stun: StunOpt = None
    sip_trace: TraceOpt = False
    verbose: VerboseOpt = False


@dataclass(frozen=True)
class _Media:
    """The options of the commands that place or take calls (``call``, ``listen``)."""

    codecs: CodecsOpt = "pcmu,pcma"
    play: PlayOpt = None
    tone: ToneOpt = None
    record: RecordOpt = None
    duration: DurationOpt = None
    dtmf: DtmfOpt = None
    dtmf_method: DtmfMethodOpt = "rfc4733"
    rtp_port: RtpPortOpt = 0
    interactive: InteractiveOpt = False


_GROUPS: dict[str, type[_Account | _Media]] = {"account": _Account, "media": _Media}


def _option_groups(command: Callable[..., None]) -> Callable[..., None]:
    """``command`` with its ``account`` and ``media`` parameters spread out into
    the options of :class:`_Account` and :class:`_Media` (Typer takes no
    dataclasses), gathered back into those dataclasses when it runs."""
    hints = get_type_hints(command, include_extras=True)
    params: list[inspect.Parameter] = []
    groups: dict[str, type[_Account | _Media]] = {}
    for param in inspect.signature(command).parameters.values():
        group = _GROUPS.get(param.name)
        if group is None:
            params.append(param.replace(annotation=hints[param.name]))
            continue
        groups[param.name] = group
        group_hints = get_type_hints(group, include_extras=True)
        params.extend(
            inspect.Parameter(
                field.name,
                inspect.Parameter.KEYWORD_ONLY,
                default=field.default,
                annotation=group_hints[field.name],
            )
            for field in dataclasses.fields(group)
        )

    @functools.wraps(command)
    def run(**values: Any) -> None:
        for name, group in groups.items():
            fields = dataclasses.fields(group)
            values[name] = group(**{field.name: values.pop(field.name) for field in fields})
        command(**values)

    run.__signature__ = inspect.Signature(params, return_annotation=None)  # type: ignore[attr-defined]
    run.__annotations__ = {param.name: param.annotation for param in params} | {"return": None}
    return run


def _setup(
    account: _Account, media: _Media, *, registrar: str | None, remote_host: str | None = None
) -> tuple[Options, PhoneConfig]:
    """Check the options, set up logging and build the phone's configuration."""
    opts = _options(
        local=account.local,
        remote_host=remote_host,
        transport=account.transport,
        user=account.user,
        password=account.password,
        auth_user=account.auth_user,
        registrar=registrar,
        aor=account.aor,
        outbound_proxy=account.outbound_proxy,
        codecs=media.codecs,
        play=media.play,
        tone=media.tone,
        record=media.record,
        duration=media.duration,
        dtmf=media.dtmf,
        dtmf_method=media.dtmf_method,
        expires=account.expires,
        cert=account.cert,
        key=account.key,
        insecure=account.insecure,
        rtp_port=media.rtp_port,
        stun=account.stun,
        ca=account.ca,
    )
    _setup_logging(account.sip_trace, account.verbose)
    return opts, _phone_config(opts)


def _split_hostport(text: str) -> tuple[str, int]:
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else 0
    if text.count(":") == 1:
        host, _, port = text.partition(":")
        return host, int(port)
    return text, 0


def _codecs(text: str) -> tuple[Codec, ...]:
    chosen: list[Codec] = []
    for raw in text.split(","):
        name = raw.strip().lower()
        if not name:
            continue
        if name not in CODECS:
            raise typer.BadParameter(f"unknown codec {name!r} (known: {', '.join(CODECS)})")
        chosen.append(CODECS[name])
    if not chosen:
        raise typer.BadParameter("no codec given")
    return tuple(chosen)


def _options(
    *,
    local: str | None,
    remote_host: str | None,
    transport: str,
    user: str,
    password: str | None,
    auth_user: str | None,
    registrar: str | None,
    aor: str | None,
    outbound_proxy: str | None,
    codecs: str,
    play: Path | None,
    tone: float | None,
    record: Path | None,
    duration: float | None,
    dtmf: str | None,
    dtmf_method: str,
    expires: int,
    cert: Path | None,
    key: Path | None,
    insecure: bool,
    rtp_port: int,
    stun: str | None = None,
    ca: Path | None = None,
) -> Options:
    transport = transport.lower()
    if transport not in TRANSPORTS:
        raise typer.BadParameter(f"transport must be one of {', '.join(TRANSPORTS)}")
    if (cert is None) != (key is None):
        raise typer.BadParameter("--cert and --key go together")
    registrar = _with_transport(registrar, transport)
    outbound_proxy = _with_transport(outbound_proxy, transport)
    if dtmf_method not in ("rfc4733", "info"):
        raise typer.BadParameter("--dtmf-method must be rfc4733 or info")
    if play is not None and not play.is_file():
        raise typer.BadParameter(f"--play: no such file {play}")
    if local is not None:
        host, port = _split_hostport(local)
    else:
        peer = remote_host or _registrar_host(registrar) or _registrar_host(outbound_proxy)
        host, port = (local_address_for(peer) if peer else "127.0.0.1"), 0
    return Options(
        host=host,
        port=port,
        transport=transport,
        user=user,
        password=password,
        auth_user=auth_user,
        registrar=registrar,
        aor=aor,
        outbound_proxy=outbound_proxy,
        codecs=_codecs(codecs),
        play=play,
        tone=tone,
        record=record,
        duration=duration,
        dtmf=dtmf,
        dtmf_method=dtmf_method,
        expires=expires,
        cert=cert,
        key=key,
        insecure=insecure,
        rtp_port=rtp_port,
        stun=stun,
        ca=ca,
    )


def _with_transport(uri: str | None, transport: str) -> str | None:
    """``uri`` with ``;transport=`` set from ``--transport`` unless it names one.

    The transport of a request follows the next hop's URI (RFC 3263 §4.1), so
    ``--transport tcp`` must reach the registrar and proxy URIs; a ``sips:``
    URI already means TLS (RFC 3261 §19.1.2) and is left alone, as is UDP.
    """
    if uri is None or transport == "udp":
        return uri
    if not uri.startswith(("sip:", "sips:")):
        uri = f"sip:{uri}"
    if uri.startswith("sips:") or ";transport=" in uri.lower():
        return uri
    base, question, headers = uri.partition("?")
    return f"{base};transport={transport}{question}{headers}"


def _registrar_host(uri: str | None) -> str | None:
    if not uri:
        return None
    try:
        parsed = parse_uri(
            uri if ":" in uri.split("@")[0] or uri.startswith("sip") else f"sip:{uri}"
        )
    except SipError:
        return None
    return parsed.host.strip("[]") if isinstance(parsed, SipUri) else None


def _call_target(uri: str, server: str | None) -> str:
    """The Request-URI for ``uri``: a bare user name (``bob``, ``1001``) is
    ``sip:bob@`` the registrar's (or outbound proxy's) domain, as softphones dial:
    the callee's address-of-record, without the server's port (the call is
    routed through the server all the same)."""
    if uri.startswith(("sip:", "sips:", "tel:")):
        return uri
    if "@" not in uri and server and _registrar_host(server):
        return "sip:" + aor_for(uri, server).partition(":")[2]
    return f"sip:{uri}"


def _phone_config(opts: Options) -> PhoneConfig:
    server_ssl: ssl.SSLContext | None = None
    if opts.transport == "tls" and opts.cert is not None and opts.key is not None:
        # Without a certificate the phone is a TLS client only (it connects out and
        # the server answers over that connection); with one it also accepts TLS.
        server_ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server_ssl.load_cert_chain(opts.cert, opts.key)
    client_ssl = ssl.create_default_context(cafile=str(opts.ca) if opts.ca else None)
    if opts.insecure:
        client_ssl.check_hostname = False
        client_ssl.verify_mode = ssl.CERT_NONE
    return PhoneConfig(
        host=opts.host,
        port=opts.port,
        transport=opts.transport,
        user=opts.user,
        password=opts.password,
        auth_user=opts.auth_user,
        identity=opts.aor,
        outbound_proxy=opts.outbound_proxy,
        call=CallConfig(media_host=opts.host, codecs=opts.codecs, rtp_port=opts.rtp_port),
        ssl_context=server_ssl,
        client_ssl=client_ssl,
        stun_server=opts.stun,
    )


def _setup_logging(sip_trace: bool, verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    if sip_trace:
        enable_sip_trace(sys.stdout)


def _run(main: object) -> int:
    """Run a coroutine on uvloop; Ctrl-C and SIGTERM end it cleanly."""
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        code: int = runner.run(main)  # type: ignore[arg-type]
    return code


class _Session:
    """One CLI run: the phone, a stop signal and the media options."""

    def __init__(self, phone: Phone, opts: Options) -> None:
        self.phone = phone
        self.opts = opts
        self.stop = asyncio.Event()
        self._dtmf_task: asyncio.Future[None] | None = None
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.stop.set)
        if phone.stun_error is not None:
            _warn(f"{phone.stun_error}; using the local address")
        elif phone.public_address is not None:
            host, port = phone.public_address
            _say(f"public address {host}:{port} (STUN {opts.stun})")

    def prepare(self, call: Call) -> None:
        if self.opts.play is not None:
            call.play(self.opts.play)
        elif self.opts.tone is not None:
            call.play(tone=self.opts.tone)
        if self.opts.record is not None:
            call.record(self.opts.record)

    async def register(self) -> bool:
        opts = self.opts
        if opts.registrar is None:
            return True
        account = self.phone.account(opts.aor, registrar=opts.registrar, expires=opts.expires)
        _say(f"registering {account.aor} at {opts.registrar}")
        event = await self.phone.register(account)
        if isinstance(event, Registered):
            _say(f"registered {account.aor} (expires {event.expires}s)")
            return True
        if isinstance(event, RegistrationFailed):
            _warn(f"registration failed: {event.status} {event.reason}")
        return False

    async def run_call(self, call: Call) -> int:
        """From connected to ended: DTMF, duration, printing events."""
        opts = self.opts
        ended = asyncio.ensure_future(call.ended.wait())
        stop = asyncio.ensure_future(self.stop.wait())
        try:
            if not call.ended.is_set():
                self._print_connected(call)
                if opts.dtmf:
                    self._dtmf_task = asyncio.ensure_future(self._send_dtmf(call, opts.dtmf))
                timeout = opts.duration
                await asyncio.wait(
                    {ended, stop}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                )
                if not call.ended.is_set():
                    await call.hangup()
                self._print_stats(call)
        finally:
            ended.cancel()
            stop.cancel()
        return self.finished(call)

    async def _send_dtmf(self, call: Call, digits: str) -> None:
        await asyncio.sleep(0.5)
        try:
            await call.send_dtmf(digits, method=self.opts.dtmf_method)
            _say(f"DTMF sent: {digits} ({self.opts.dtmf_method})")
        except (LocalSipError, OSError) as exc:
            _warn(f"DTMF not sent: {exc}")

    def _print_connected(self, call: Call) -> None:
        _say(connected_text(call))

    def _print_stats(self, call: Call) -> None:
        if call.media is not None or call.final_stats is not None:
            _say(stats_text(call))

    def finished(self, call: Call, *, cancelled: bool = False) -> int:
        """Print how ``call`` ended; its exit code. ``cancelled``: we gave up
        ringing (Ctrl-C, SIGTERM), whatever final response the server sent."""
        result = call_result(call, cancelled=cancelled)
        text = end_text(call, result)
        if result is CallResult.COMPLETED:
            _say(text)
        else:
            _warn(text)
        return EXIT_CODES[result]

    async def print_events(self) -> None:
        """Print what the phone reports (DTMF, holds, registrations) as it happens."""
        while True:
            self.show(await self.phone.events.get())

    def show(self, event: PhoneEvent) -> None:
        """Print one phone event worth a line."""
        if isinstance(event, DtmfReceived):
            _say(f"DTMF received: {event.digit} ({event.method})")
        elif isinstance(event, CallStateChanged):
            outgoing = event.call.direction is CallDirection.OUTGOING
            progress = event.new in (CallState.RINGING, CallState.EARLY) and outgoing
            if progress or event.new is CallState.ON_HOLD:  # "onhold (hold)"
                _say(f"{event.new.value.lower()} ({event.reason})")
            elif event.new is CallState.CONNECTED and event.old is CallState.ON_HOLD:
                _say(f"resumed ({event.reason})")
        elif (
            isinstance(event, RegistrationUpdate) and not isinstance(event.event, Registered)
        ) or isinstance(event, IncomingCall):
            _say(describe(event))


def call_result(call: Call, *, cancelled: bool = False) -> CallResult:
    """How ``call`` ended; CANCELLED when we gave up before it was answered."""
    result = call.result or CallResult.FAILED
    if cancelled and result in (CallResult.NO_ANSWER, CallResult.CANCELLED):
        return CallResult.CANCELLED
    return result


# -- commands -------------------------------------------------------------------------
@app.command()
@_option_groups
def call(
    uri: Annotated[str, typer.Argument(help="Who to call: sip:user@host[:port] or user@host.")],
    *,
    account: _Account,
    registrar: RegistrarOpt = None,
    media: _Media,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Give up (no answer) after this many seconds.")
    ] = 60.0,
) -> None:
    """Call URI; exit 0 when the call connected and ended normally.

    Exit codes: 3 busy, 4 not found, 5 no answer, 6 declined, 7 authentication
    failed, 8 cancelled, 9 registration failed, 1 any other failure.
    """
    server = registrar or account.outbound_proxy
    target = _call_target(uri, server)
    try:
        parsed = parse_uri(target)
    except SipError as exc:
        raise typer.BadParameter(f"bad URI {uri!r}: {exc}") from exc
    if not isinstance(parsed, SipUri):
        raise typer.BadParameter("only sip: and sips: URIs can be called directly")
    if account.transport.lower() != "udp" and parsed.transport is None:
        target = f"{target};transport={account.transport.lower()}"
    remote_host = None if server else parsed.host.strip("[]")
    opts, config = _setup(account, media, registrar=registrar, remote_host=remote_host)
    config = replace(config, call=replace(config.call, no_answer_timeout=timeout))
    raise typer.Exit(_run(_call_main(config, opts, target, interactive=media.interactive)))


async def _call_main(
    config: PhoneConfig, opts: Options, target: str, *, interactive: bool = False
) -> int:
    try:
        phone = await Phone.start(config)
    except OSError as exc:
        _warn(f"cannot listen on {opts.host}:{opts.port}: {exc}")
        return EXIT_FAILED
    session = _Session(phone, opts)
    printer = None if interactive else asyncio.ensure_future(session.print_events())
    try:
        if not await session.register():
            return EXIT_REGISTRATION
        _say(f"calling {target}")
        the_call = phone.call(target)
        session.prepare(the_call)
        if interactive:
            console = Console(phone, session.prepare, _say, session.show)
            await console.run(session.stop, the_call)
            cancelled = not the_call.ended.is_set() and not the_call.is_active
            if not the_call.ended.is_set():
                await the_call.hangup()
            return EXIT_CODES[call_result(the_call, cancelled=cancelled)]
        assert the_call.dial_task is not None
        stop = asyncio.ensure_future(session.stop.wait())
        await asyncio.wait({the_call.dial_task, stop}, return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        if not the_call.dial_task.done():
            await the_call.hangup()
            with contextlib.suppress(asyncio.CancelledError):
                await the_call.dial_task
            if not the_call.is_active:
                # Ctrl-C while ringing: the server's 487 may have crossed our CANCEL.
                return session.finished(the_call, cancelled=True)
        with contextlib.suppress(asyncio.CancelledError):
            await the_call.dial_task
        return await session.run_call(the_call)
    finally:
        if printer is not None:
            printer.cancel()
        await phone.close()


@app.command()
@_option_groups
def listen(
    *,
    account: _Account,
    registrar: RegistrarOpt = None,
    auto_answer: Annotated[
        bool, typer.Option("--auto-answer", help="Answer incoming calls at once.")
    ] = False,
    answer_after: Annotated[
        float, typer.Option("--answer-after", help="Ring this many seconds before answering.")
    ] = 0.0,
    reject: Annotated[
        int | None,
        typer.Option("--reject", help="Refuse every call with this status (486, 603...)."),
    ] = None,
    calls: Annotated[
        int | None,
        typer.Option("--calls", help="Exit after this many calls (default 1 with --duration)."),
    ] = None,
    media: _Media,
) -> None:
    """Wait for calls; with --auto-answer take them, play and record.

    With --duration the call is hung up after that many seconds and the
    command exits after one call with the call's exit code (as for call).
    """
    opts, config = _setup(account, media, registrar=registrar)
    if calls is None and media.duration is not None:
        calls = 1
    if not auto_answer and reject is None:
        auto_answer = True if answer_after > 0 else auto_answer
    raise typer.Exit(
        _run(
            _listen_main(
                config,
                opts=opts,
                auto_answer=auto_answer,
                answer_after=answer_after,
                reject=reject,
                max_calls=calls,
                interactive=media.interactive,
            )
        )
    )


async def _listen_main(
    config: PhoneConfig,
    *,
    opts: Options,
    auto_answer: bool,
    answer_after: float,
    reject: int | None,
    max_calls: int | None,
    interactive: bool = False,
) -> int:
    try:
        phone = await Phone.start(config)
    except OSError as exc:
        _warn(f"cannot listen on {opts.host}:{opts.port}: {exc}")
        return EXIT_FAILED
    session = _Session(phone, opts)
    host, port = phone.local_address
    if phone.client_only:  # no --cert: calls come over the connection to the server
        _say(f"listening on UDP {host}:{port} as {phone.contact()} (TLS client only)")
    else:
        _say(f"listening on {phone.transport} {host}:{port} as {phone.contact()}")
    results: list[int] = []
    enough = asyncio.Event()
    tasks: set[asyncio.Task[None]] = set()

    async def take(the_call: Call) -> None:
        if answer_after > 0:
            await asyncio.sleep(answer_after)
        session.prepare(the_call)
        if await the_call.answer():
            code = await session.run_call(the_call)
        else:
            code = session.finished(the_call)
        results.append(code)
        if max_calls is not None and len(results) >= max_calls:
            enough.set()

    try:
        if not await session.register():
            return EXIT_REGISTRATION
        if interactive:
            return await Console(phone, session.prepare, _say, session.show).run(session.stop)
        if not auto_answer and reject is None:
            _say("ringing calls are not answered (use --auto-answer or --reject)")
        stop = asyncio.ensure_future(session.stop.wait())
        done_waiting = asyncio.ensure_future(enough.wait())
        try:
            while not enough.is_set() and not session.stop.is_set():
                get = asyncio.ensure_future(phone.events.get())
                await asyncio.wait({get, stop, done_waiting}, return_when=asyncio.FIRST_COMPLETED)
                if not get.done():
                    get.cancel()
                    break
                event = get.result()
                session.show(event)
                if not isinstance(event, IncomingCall):
                    continue
                if reject is not None:
                    event.call.reject(reject)
                    _say(f"rejected with {reject}")
                    results.append(EXIT_OK)
                    if max_calls is not None and len(results) >= max_calls:
                        enough.set()
                elif auto_answer:
                    task = asyncio.ensure_future(take(event.call))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
        finally:
            stop.cancel()
            done_waiting.cancel()
        for task in list(tasks):  # stopped by a signal: hang up what is still up
            task.cancel()
        failures = [code for code in results if code != EXIT_OK]
        return failures[-1] if failures else EXIT_OK
    finally:
        await phone.close()


@app.command()
@_option_groups
def register(
    *,
    registrar: Annotated[str, typer.Option("--registrar", help="The registrar (sip:host[:port]).")],
    account: _Account,
    duration: Annotated[
        float | None,
        typer.Option("--duration", help="Stay registered this long, then unregister and exit."),
    ] = 0.0,
) -> None:
    """Register to REGISTRAR; exit 0 once registered (9 if it failed).

    With --duration N the binding is kept (refreshed) for N seconds, then
    removed; --duration 0 (the default) unregisters at once.
    """
    opts, config = _setup(account, _Media(codecs="pcmu", duration=duration), registrar=registrar)
    raise typer.Exit(_run(_register_main(config, opts)))


async def _register_main(config: PhoneConfig, opts: Options) -> int:
    try:
        phone = await Phone.start(config)
    except OSError as exc:
        _warn(f"cannot listen on {opts.host}:{opts.port}: {exc}")
        return EXIT_FAILED
    session = _Session(phone, opts)
    registered = False
    try:
        if not await session.register():
            return EXIT_REGISTRATION  # the failure was printed; there is nothing to remove
        registered = True
        if opts.duration:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(session.stop.wait(), opts.duration)
        return EXIT_OK
    finally:
        await phone.close()
        if registered:
            _say("unregistered")
