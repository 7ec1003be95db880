"""Command lines: ``python -m tcrp_lab.server`` (a classroom server) and ``python -m tcrp_lab.client``
(a terminal chat for students without Jupyter).

Every string that came from the network (names, texts, the server's error messages) reaches the
terminal as a rich ``Text`` with control characters, escape sequences and bidi overrides written
out visibly (:func:`tcrp_lab.explain.visible`): never as markup, never as raw escape codes.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.logging import RichHandler
from rich.text import Text

from . import __version__
from .arguments import at_least_zero, port, positive
from .explain import visible
from .limits import Limits

DEFAULT_KEY = Path.home() / ".tcrp_lab" / "server_key.pem"


_seconds = positive(float, "number of seconds")


def _limit_flags(p: argparse.ArgumentParser) -> None:
    """One flag per field of :class:`~tcrp_lab.limits.Limits` (TCRP.md §8), with its default."""
    group = p.add_argument_group("classroom limits (TCRP.md §8; a rate of 0 lifts that budget)")
    for name, default, help_text, unit in Limits.describe():
        shown = f"{default:g}{unit}" if isinstance(default, float) else f"{default:,}{unit}"
        group.add_argument(f"--{name.replace('_', '-')}", dest=f"limit_{name}", type=at_least_zero(type(default)),
                           metavar="N", help=f"{help_text} (default {shown})")


def _limits(args: argparse.Namespace) -> Limits:
    return Limits().replace(**{name: getattr(args, f"limit_{name}") for name in Limits.names()
                               if getattr(args, f"limit_{name}") is not None})


def _shown(text: object, style: str = "", keep: str = "") -> Text:
    """Text from the network, ready for the terminal: as text, its control characters made visible."""
    return Text(visible(str(text), keep), style=style)


def _logging(level: str, console: Console) -> None:
    logging.basicConfig(level=level.upper(), format="%(message)s", datefmt="[%X]",
                        handlers=[RichHandler(console=console, show_path=False, markup=False)])


# --- python -m tcrp_lab.server ---------------------------------------------------------------

def server_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m tcrp_lab.server",
        description="Run a TCRP chat server: rooms over TCP, chat over UDP. Ctrl-C stops it cleanly.")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1; use 0.0.0.0 to let a classroom in)")
    p.add_argument("--tcp-port", type=port, default=9001, help="TCP control port (default 9001; 0 = free port)")
    p.add_argument("--udp-port", type=port, default=9002, help="UDP chat port (default 9002; 0 = free port)")
    p.add_argument("--timeout", type=_seconds, default=300.0,
                   help="seconds of inactivity before a member is removed (default 300)")
    p.add_argument("--key", type=Path, default=DEFAULT_KEY,
                   help=f"the server's RSA key as PEM, created if missing (default {DEFAULT_KEY})")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"],
                   help="how much to log (what was dropped or throttled is summed up every 10 s at warning)")
    p.add_argument("--trace", nargs="?", const="compact", choices=("compact", "full"),
                   help="print every frame and datagram as it passes: one line each (compact, the default), "
                        "or laid out field by field (full)")
    p.add_argument("--show-passwords", action="store_true",
                   help="with --trace: print room passwords as sent (by default they are printed as *)")
    p.add_argument("--pcap", type=Path, metavar="FILE",
                   help="record the traffic and write it as a pcapng capture for Wireshark when the server stops "
                        "(the last 10,000 packets; passwords masked; open with the dissector of "
                        "python -m tcrp_lab.wireshark)")
    p.add_argument("--legacy", action="store_true",
                   help="speak the original, INSECURE TCRP/1 design (for lessons that attack it)")
    p.add_argument("--handshake", choices=["x25519", "rsa"], default="x25519",
                   help="x25519: handshake version 3, forward secret (the default); rsa: version 2, RSA key "
                        "transport, for the lessons that teach it (whoever gets the key file can decrypt a "
                        "recording of every session)")
    p.add_argument("--udp-queues", type=positive(int, "whole number"), default=64,
                   help="UDP sockets sharing the port, one queue per group of source addresses, so that one "
                        "flooding address fills only its own (default 64, at most 256; Linux; the legacy design "
                        "has one)")
    p.add_argument("--status-host", default="127.0.0.1",
                   help="address of the status endpoint a teacher's dashboard reads (default 127.0.0.1; TCRP.md §9)")
    p.add_argument("--status-port", type=port, default=9003, help="its port (default 9003; 0 = free port)")
    p.add_argument("--no-status", action="store_true", help="no status endpoint")
    p.add_argument("--version", action="version", version=f"tcrp_lab {__version__}")
    _limit_flags(p)
    return p


def _start_status(args: argparse.Namespace, server: object, console: Console) -> object | None:
    """The status endpoint (TCRP.md §9), its tokens from $TCRP_STATUS_TOKEN / $TCRP_ADMIN_TOKEN or made now."""
    import os

    from .control import ServerControl
    from .status import StatusEndpoint

    if args.no_status or args.legacy:   # TCRP/1 has no operator
        return None
    try:
        endpoint = StatusEndpoint(ServerControl(server), args.status_host, args.status_port,
                                  os.environ.get("TCRP_STATUS_TOKEN") or None,
                                  os.environ.get("TCRP_ADMIN_TOKEN") or None).start()
    except (OSError, ValueError) as exc:
        console.print(Text(f"no status endpoint: {exc}", style="yellow"))
        return None
    # One token a line, never wrapped: they are copied from the terminal or `docker compose logs`.
    console.print(f"status endpoint [bold]{endpoint.url}[/] (ServerDashboard in a notebook reads it)", soft_wrap=True)
    console.print(f"status token [bold]{endpoint.token}[/] (read-only)", soft_wrap=True)
    console.print(f"admin token [bold]{endpoint.admin_token}[/] (closes rooms, removes members: keep it to yourself)",
                  soft_wrap=True)
    return endpoint


def server_main(argv: Sequence[str] | None = None) -> int:
    args = server_parser().parse_args(argv)
    console = Console(stderr=True)
    _logging(args.log_level, console)
    from .crypto import ServerKey
    from .secure import SecureProfile
    from .server import ChatServer

    if args.legacy:
        from .legacy import LegacyProfile   # the insecure original, only when asked for

    try:
        key = ServerKey.load_or_create(args.key)
    except (OSError, ValueError) as exc:
        console.print(Text(f"Cannot use the key file {args.key}: {exc}\n", style="red"),
                      "Pass --key with a writable path, or delete the broken file to make a new key.")
        return 2
    trace = None
    if args.trace:
        from .trace import LiveLog

        trace = LiveLog(Console(), full=args.trace == "full", show_passwords=args.show_passwords)
    elif args.pcap:
        from .trace import Trace

        trace = Trace()   # bounded (tcrp_lab.trace): a long run keeps its last packets
    try:
        server = ChatServer(args.host, args.tcp_port, args.udp_port, inactivity_timeout=args.timeout, key=key,
                            trace=trace, profile=LegacyProfile if args.legacy else SecureProfile, limits=_limits(args),
                            udp_shards=args.udp_queues, handshake=args.handshake).start()
    except OSError as exc:
        console.print(Text(str(exc), style="red"))
        return 1
    done = threading.Event()   # before "ready" is printed: a SIGTERM from then on stops cleanly
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    address = server.address
    shake = "" if args.legacy else (", handshake version 3: forward secret" if args.handshake == "x25519" else
                                    ", handshake version 2: RSA key transport, NOT forward secret")
    console.print(f"[bold green]TCRP server ready[/] ({server.profile.name}{shake}) on [bold]{address.host}[/] "
                  f"tcp [bold]{address.tcp_port}[/], udp [bold]{address.udp_port}[/]")
    if not args.legacy:  # TCRP/1 makes a new key per connection and has nothing to pin
        console.print(f"key fingerprint [bold]{server.fingerprint}[/]  (students can pin it)")
    if args.host in ("0.0.0.0", ""):
        console.print("[yellow]Listening on every interface: anyone who can reach this machine can join.[/]")
    status = _start_status(args, server, console)
    try:
        while not done.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    if args.legacy:   # TCRP.md §6: the original said nothing when it stopped
        console.print("stopping: TCRP/1 has no shutdown notice, so members are not told; they find out by silence…")
    else:
        console.print("stopping: telling every member the server is shutting down…")
    if status is not None:
        status.stop()
    server.stop()
    if args.trace:
        trace.close()   # the printer thread prints what it still has
    if args.pcap:
        try:
            trace.save_pcapng(args.pcap)
        except OSError as exc:
            console.print(Text(f"cannot write {args.pcap}: {exc}", style="red"))
            return 1
        console.print(Text(f"wrote {len(trace)} packets to {args.pcap}"))
    return 0


# --- python -m tcrp_lab.client ---------------------------------------------------------------

def render_item(item: object) -> Text:
    """One chat line or room event for the terminal. Names and texts are shown as text, controls
    and escapes visibly; a chat's continuation lines are indented under a bar, so a text cannot
    forge a line of its own (a fake "* bob left")."""
    from .client import ChatMessage

    if isinstance(item, ChatMessage):
        body = visible(item.text, keep="\n\t").replace("\n", "\n  │ ")
        return Text.assemble(_shown(item.sender, "bold cyan" if item.mine else "bold"), ": ", body)
    kind, text = getattr(item, "kind", ""), getattr(item, "text", "")
    warn = kind in ("refused", "undelivered", "missed")
    return Text.assemble(("! " if warn else "* ", "bold yellow" if warn else "dim"),
                         _shown(text, "yellow" if warn else "dim italic"))


def client_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m tcrp_lab.client",
        description="Chat in a TCRP room from the terminal. Type a line to send it; /leave or Ctrl-C to go.")
    p.add_argument("action", choices=["list", "create", "join"], help="list rooms, create a room or join one")
    p.add_argument("room", nargs="?", help="the room to create or join")
    p.add_argument("--host", default="127.0.0.1", help="the server's address (default 127.0.0.1)")
    p.add_argument("--tcp-port", type=port, default=9001, help="the server's TCP port (default 9001)")
    p.add_argument("--user", "-u", help="your name in the room (1-32 characters)")
    p.add_argument("--password", "-p", default="", help="the room's password (create: empty = open room)")
    p.add_argument("--fingerprint", help="the server key fingerprint to pin (printed by the server at start); "
                                         "without it the key is checked against the one remembered on first contact")
    p.add_argument("--require-fs", action="store_true",
                   help="refuse a server that offers only handshake version 2 (no forward secrecy)")
    p.add_argument("--known-servers", type=Path, default=None,
                   help="the file of servers remembered on first contact (default ~/.tcrp_lab/known_servers, "
                        "or $TCRP_LAB_KNOWN_SERVERS)")
    p.add_argument("--history", type=int, default=20, help="earlier room messages to show on joining")
    p.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])
    return p


def client_main(argv: Sequence[str] | None = None) -> int:
    parser = client_parser()
    args = parser.parse_args(argv)
    console = Console(highlight=False)
    _logging(args.log_level, Console(stderr=True))
    from .client import ChatClient, ChatMessage, RoomEvent, TcrpError
    from .errors import hint

    address = (args.host, args.tcp_port)
    trust: dict = {"require_forward_secrecy": args.require_fs}
    if args.known_servers is not None:
        trust["known_servers"] = args.known_servers
    if args.action == "list":
        try:
            rooms = ChatClient.list_rooms(address, fingerprint=args.fingerprint, **trust)
        except TcrpError as exc:
            console.print(_shown(hint(exc), "red"))
            return 1
        if not rooms:
            console.print("no rooms yet: create one with  python -m tcrp_lab.client create ROOM -u NAME")
        for room in rooms:
            lock = " 🔒" if room.has_password else ""
            console.print(Text.assemble(_shown(room.name, "bold"), f"{lock}  ({room.members} "
                                        f"member{'s' if room.members != 1 else ''})"))
        return 0
    if not args.room or not args.user:
        parser.error(f"{args.action} needs a ROOM and --user NAME, e.g. {args.action} lab --user alice")

    def show(item: ChatMessage | RoomEvent) -> None:
        console.print(render_item(item))

    enter = ChatClient.create_room if args.action == "create" else ChatClient.join_room
    try:
        client = enter(address, args.room, args.user, args.password, fingerprint=args.fingerprint,
                       on_message=show, on_event=show, history=args.history, **trust)
    except TcrpError as exc:
        console.print(_shown(hint(exc, args.room, args.user), "red"))
        return 1
    role = "host" if client.is_host else "guest"
    console.print(Text.assemble("In room ", _shown(client.room, "bold"), " as ", _shown(client.username),
                                f" ({role}). Members: ", _shown(", ".join(client.members)),
                                ". Type to chat; /leave to go.", style="green"))
    for item in list(client.log):
        show(item)
    try:
        for line in sys.stdin:
            text = line.rstrip("\n")
            if text.strip() == "/leave":
                break
            if not client.state.active:
                break
            if text.strip():
                try:
                    client.send(text)
                except ValueError as exc:   # too long, or a control character: say what to do
                    console.print(_shown(f"not sent: {exc}", "yellow"))
                except TcrpError as exc:
                    console.print(_shown(exc, "red"))
                    break
    except KeyboardInterrupt:
        pass
    ended = not client.state.active
    client.leave()
    console.print("[dim]the room ended[/]" if ended else "[dim]you left the room[/]")
    return 0
