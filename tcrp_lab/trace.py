"""Packet traces: every TCP frame and UDP datagram of a live chat, explained byte by byte.

What goes over the wire, the way "The Illustrated TLS 1.3 Connection" shows a handshake, but from
the learner's own chat and with no root and no packet capture: the server and client shells call
``trace(event)`` with a :class:`~tcrp_lab.events.PacketEvent` for each frame and datagram they send
or receive, and this module records and renders those events.

* :class:`Trace` records events (pass one as ``trace=`` to ChatServer / ChatClient / ControlConnection,
  or use :func:`record`); it prints as a one-line-per-packet log, :meth:`Trace.summary` gives a
  table per session, and :meth:`Trace.save` / :meth:`Trace.load` keep it as JSON lines;
  :meth:`Trace.save_pcapng` writes it as a capture for Wireshark (:mod:`tcrp_lab.pcap`).
* :func:`explain` (from :mod:`tcrp_lab.explain`, re-exported here) lays out one packet (an event,
  or raw bytes) as a hex dump with every field coloured, named and decoded, with its byte range —
  and, where the keys are known, the plaintext explained the same way.
* :meth:`Trace.sequence_diagram` draws the events as a sequence diagram (:mod:`tcrp_lab.diagrams`).
* :class:`LiveLog` prints each packet as it passes (``python -m tcrp_lab.server --trace``), on a
  printer thread of its own.

Arrows go from the sender to the receiver, the ends named by role: ``C→S`` (client to server),
``S→C`` (server to client), as in docs/TCRP.md; which side recorded a packet is said separately
("seen by the server").

Memory is bounded: a Trace keeps at most ``limit`` events, at most ``event_bytes`` of each event's
raw bytes and of its plaintext (the first bytes, with the original length: explain() says the rest
was not kept), and at most ``total_bytes`` in all (the oldest events go first).

Everything from the network (names, room names, chat text, errors) is shown as text: rich Text,
never markup, with control characters and escape sequences written as escapes (:func:`visible`).

Every renderable is a rich ``__rich_console__`` object that also carries rich's JupyterMixin, so a
bare ``trace`` or ``explain(...)`` as the last line of a notebook cell displays as HTML.

The layouts are tables built from :mod:`tcrp_lab.protocol`'s and :mod:`tcrp_lab.crypto`'s own
constants and decoders; nothing here parses the wire a second time with offsets of its own.

Secrets: an event holds the session keys when the side that traced it knew them (on
ClientKeyExchange), and the plaintext of every request (passwords included). A saved trace of a
real session therefore contains its keys and passwords: treat the file like the keys themselves.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import json
import logging
import threading
import time as _time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console, ConsoleOptions, RenderResult
from rich.jupyter import JupyterMixin
from rich.table import Table
from rich.text import Text

from .crypto import ServerHello, SessionKeys
from .events import ARROWS, PacketEvent, Tracer, mask_passwords
from .explain import Explanation, Field, _clip, _printable, explain, visible  # explain is part of this API
from .protocol import (
    FRAME_LENGTH_BYTES, MAX_FRAME, Datagram, Message, Payload, ProtocolError, State, decode_message, decode_payload,
)

__all__ = ["Explanation", "Field", "LiveLog", "PacketEvent", "Trace", "Tracer", "explain", "legend", "mask_passwords",
           "record", "render_line", "visible"]

log = logging.getLogger("tcrp_lab.trace")

DEFAULT_LIMIT = 10_000       #: events a Trace keeps (the oldest go first)
DEFAULT_EVENT_BYTES = FRAME_LENGTH_BYTES + MAX_FRAME   #: bytes kept of an event's raw, and of its plaintext
DEFAULT_TOTAL_BYTES = 32 * 2**20   #: raw + plaintext bytes a Trace keeps in all (the oldest events go first)
LIVE_QUEUE = 1_000           #: packets a LiveLog holds for its printer; more are counted, not printed
NARROW = 100                 #: consoles narrower than this get log lines without the peer column

KIND_STYLES = {
    "ServerHello": "magenta", "ClientKeyExchange": "magenta", "request": "yellow", "response": "green",
    "complete": "bold green", "rejected": "bold red", "hello": "cyan", "welcome": "cyan", "chat": "bold blue",
    "ack": "blue", "system": "bright_cyan", "resend": "yellow", "ping": "dim", "pong": "dim", "leave": "cyan",
    "room_closed": "red", "kicked": "red", "refused": "bold yellow", "challenge": "magenta",
}


class Trace(JupyterMixin):
    """A recording of packet events. Pass it as ``trace=`` to a server or client; it is thread-safe.

    Recording is cheap (one small object per packet, no rendering) and bounded: the last ``limit``
    events are kept, of each at most ``event_bytes`` of its raw bytes and as many of its plaintext
    (the default keeps a whole 64 KiB frame), and at most ``total_bytes`` of raw and plaintext in
    all, the oldest events going first (``kept_bytes`` counts raw and plaintext; an event's decoded
    message takes about as much again as its plaintext). Printing a Trace gives the compact log;
    :meth:`summary` a table per session.

    ``subscribe(fn)`` calls ``fn(event)`` for each new event *on the thread that recorded it* (the
    server's UDP thread, a connection thread, a client's receive thread), so a subscriber must be
    cheap: queue the event and return (as :class:`LiveLog` does), never render or write there.

    A Trace is a :data:`~tcrp_lab.events.Tracer`: the shells call it with each event.
    """

    def __init__(self, events: Iterable[PacketEvent] = (), *, limit: int = DEFAULT_LIMIT,
                 event_bytes: int = DEFAULT_EVENT_BYTES, total_bytes: int = DEFAULT_TOTAL_BYTES):
        for name, value in (("limit", limit), ("event_bytes", event_bytes), ("total_bytes", total_bytes)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive number, not {value!r}")
        self.limit, self.event_bytes, self.total_bytes = limit, event_bytes, total_bytes
        self._events: collections.deque[PacketEvent] = collections.deque()
        self._bytes = 0                  # raw + plaintext bytes of the events kept
        self._subscribers: tuple[Callable[[PacketEvent], None], ...] = ()
        self._lock = threading.Lock()
        self.total = 0                   #: events ever recorded, including those no longer kept
        for event in events:
            self._keep(event)

    def __call__(self, event: PacketEvent) -> None:
        """What the shells call (a trace observes: a subscriber that raises is logged, not raised)."""
        self.add(event)

    def add(self, event: PacketEvent) -> None:
        """Record ``event`` (cut to ``event_bytes``) and pass it to the subscribers."""
        event = self._keep(event)
        for fn in self._subscribers:
            try:
                fn(event)
            except Exception:
                log.exception("a trace subscriber raised on %r", event)

    def _keep(self, event: PacketEvent) -> PacketEvent:
        event = _cut(event, self.event_bytes)
        with self._lock:
            events = self._events
            events.append(event)
            self._bytes += _kept_bytes(event)
            self.total += 1
            while len(events) > self.limit or (self._bytes > self.total_bytes and len(events) > 1):
                self._bytes -= _kept_bytes(events.popleft())
        return event

    def subscribe(self, fn: Callable[[PacketEvent], None]) -> Callable[[], None]:
        """Call ``fn(event)`` for every new event, on the recording thread (keep it cheap);
        returns a function that unsubscribes it."""
        if not callable(fn):
            raise TypeError(f"subscribe() needs a callable taking a PacketEvent, not {fn!r}")
        with self._lock:
            self._subscribers += (fn,)

        def unsubscribe() -> None:
            with self._lock:
                self._subscribers = tuple(s for s in self._subscribers if s is not fn)

        return unsubscribe

    @property
    def events(self) -> list[PacketEvent]:
        with self._lock:
            return list(self._events)

    @property
    def kept_bytes(self) -> int:
        """Raw and plaintext bytes held by the events kept (at most ``total_bytes``, or one event)."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._events)

    def __iter__(self) -> Iterator[PacketEvent]:
        return iter(self.events)

    def __getitem__(self, index: int) -> PacketEvent:
        return self.events[index]

    def clear(self) -> None:
        with self._lock:
            self._events.clear()
            self._bytes = 0

    def filter(self, *, side: str | Sequence[str] | None = None, direction: str | Sequence[str] | None = None,
               transport: str | Sequence[str] | None = None, kind: str | Sequence[str] | None = None,
               session: str | Sequence[str] | None = None, user: str | Sequence[str] | None = None,
               where: Callable[[PacketEvent], bool] | None = None) -> Trace:
        """A new Trace of the events matching every given criterion (a value or a list of values)."""
        wanted = {name: {value} if isinstance(value, str) else set(value)
                  for name, value in (("side", side), ("direction", direction), ("transport", transport),
                                      ("kind", kind), ("session", session), ("user", user)) if value is not None}
        return Trace((e for e in self.events
                      if all(getattr(e, name) in values for name, values in wanted.items())
                      and (where is None or where(e))), limit=self.limit, event_bytes=self.event_bytes,
                     total_bytes=self.total_bytes)

    def sequence_diagram(self, **options: Any) -> Any:
        """The events as a sequence diagram (SVG in a notebook, or ``.to_mermaid()``); the options
        (session, user, transport, start, end, side, exclude, dropped, times, title) are those of
        :func:`tcrp_lab.diagrams.sequence_diagram`."""
        from .diagrams import sequence_diagram

        return sequence_diagram(self.events, **options)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        events = self.events
        if not events:
            yield Text("(no packets traced yet)", style="dim")
            return
        yield legend()
        for event in events:
            yield render_line(event, options.max_width)

    def summary(self) -> Table:
        """A table with a row per session and side that saw it: packets, bytes each way, kinds, rejected."""
        rows: dict[tuple[str, str], dict[str, Any]] = {}
        for e in self.events:
            row = rows.setdefault((e.session or "—", e.side), {
                "users": set(), "packets": 0, "c2s": 0, "s2c": 0, "kinds": collections.Counter(), "rejected": 0})
            row["packets"] += 1
            row[e.flow] += e.size
            row["kinds"][e.kind] += 1
            row["rejected"] += e.kind == "rejected"
            user = e.user or (e.message.payload.get("username") if isinstance(e.message, Message) else None)
            if isinstance(user, str):
                row["users"].add(user)
        table = Table(title=f"{len(self)} packets in {len({s for s, _ in rows})} sessions", box=box.SIMPLE_HEAD,
                      collapse_padding=True, pad_edge=False)   # narrow: fits 100 columns with the kinds
        for name in ("session", "seen by", "user", "packets", "bytes\nC→S", "bytes\nS→C"):
            table.add_column(name, no_wrap=True, justify="left" if name in ("session", "seen by", "user") else "right")
        table.add_column("kinds", overflow="fold", ratio=1, min_width=12)
        table.add_column("rejected", no_wrap=True, justify="right")
        for (session, side), row in rows.items():
            kinds = ", ".join(kind if n == 1 else f"{kind}×{n}" for kind, n in row["kinds"].items())
            rejected = Text(str(row["rejected"]), style="bold red" if row["rejected"] else "")
            cells = (session, side, ", ".join(sorted(row["users"])), str(row["packets"]), str(row["c2s"]),
                     str(row["s2c"]), kinds)
            table.add_row(*(Text(visible(cell)) for cell in cells), rejected)  # names are text, never markup
        return table

    # --- JSON lines ----------------------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        """Write the events as JSON lines (bytes as hex). The file holds keys and plaintexts."""
        path = Path(path)
        with path.open("w", encoding="utf-8") as f:
            for event in self.events:
                f.write(json.dumps(_to_json(event), separators=(",", ":")) + "\n")
        return path

    def save_pcapng(self, path: str | Path, *, show_passwords: bool = False) -> Path:
        """Write the trace as a pcapng capture for Wireshark or tshark (see :mod:`tcrp_lab.pcap`):
        each packet with its time, addresses and ports, and a comment with its decoded message
        (passwords masked unless ``show_passwords``). Returns the path."""
        from .pcap import write_pcapng

        path = Path(path)
        write_pcapng(self.events, path, show_passwords=show_passwords)
        return path

    @classmethod
    def load(cls, path: str | Path, *, limit: int = DEFAULT_LIMIT, event_bytes: int = DEFAULT_EVENT_BYTES,
             total_bytes: int = DEFAULT_TOTAL_BYTES) -> Trace:
        """Read a file written by :meth:`save`; decoded messages are rebuilt from the saved bytes.
        Each bound is raised as needed to hold the whole file; events saved cut stay cut."""
        events = []
        with Path(path).open(encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    events.append(_from_json(json.loads(line)))
                except (ValueError, KeyError, TypeError) as exc:
                    raise ValueError(f"{path}:{number} is not a saved trace event ({exc})") from None
        largest = max((max(len(e.raw), len(e.plaintext or b"")) for e in events), default=1)
        return cls(events, limit=max(limit, len(events)), event_bytes=max(event_bytes, largest),
                   total_bytes=max(total_bytes, sum(map(_kept_bytes, events))))

    def __repr__(self) -> str:
        return f"Trace({len(self)} packets)"


def _kept_bytes(e: PacketEvent) -> int:
    return len(e.raw) + (len(e.plaintext) if e.plaintext is not None else 0)


def _cut(e: PacketEvent, keep: int) -> PacketEvent:
    """``e`` with at most ``keep`` bytes of raw and of plaintext, and their original lengths."""
    if len(e.raw) <= keep and (e.plaintext is None or len(e.plaintext) <= keep):
        return e
    changes: dict[str, Any] = {}
    if len(e.raw) > keep:
        changes.update(raw=e.raw[:keep], raw_size=e.size)
    if e.plaintext is not None and len(e.plaintext) > keep:
        changes.update(plaintext=e.plaintext[:keep], message=None,
                       plaintext_size=e.plaintext_size if e.plaintext_size is not None else len(e.plaintext))
    return dataclasses.replace(e, **changes)


def _to_json(e: PacketEvent) -> dict[str, Any]:
    return {
        "time": e.time, "side": e.side, "direction": e.direction, "transport": e.transport,
        "peer": list(e.peer) if e.peer is not None else None, "kind": e.kind, "raw": e.raw.hex(),
        "session": e.session, "plaintext": e.plaintext.hex() if e.plaintext is not None else None,
        "seq": e.seq, "error": e.error, "user": e.user, "keys": e.keys.hex() if e.keys else None,
        "hello": e.hello.body.hex() if e.hello else None, "raw_size": e.raw_size, "plaintext_size": e.plaintext_size,
        "local": list(e.local) if e.local is not None else None,
    }


def _from_json(obj: dict[str, Any]) -> PacketEvent:
    raw = bytes.fromhex(obj["raw"])
    plaintext = bytes.fromhex(obj["plaintext"]) if obj.get("plaintext") is not None else None
    keys = SessionKeys(**{k: bytes.fromhex(v) for k, v in obj["keys"].items()}) if obj.get("keys") else None
    hello = ServerHello.decode(bytes.fromhex(obj["hello"])) if obj.get("hello") else None
    event = PacketEvent(time=float(obj["time"]), side=obj["side"], direction=obj["direction"],
                        transport=obj["transport"], peer=tuple(obj["peer"]) if obj.get("peer") else None,
                        kind=obj["kind"], raw=raw, session=obj.get("session"), plaintext=plaintext,
                        seq=obj.get("seq"), error=obj.get("error"), keys=keys, user=obj.get("user"), hello=hello,
                        raw_size=obj.get("raw_size"), plaintext_size=obj.get("plaintext_size"),
                        local=tuple(obj["local"]) if obj.get("local") else None)
    return _with_message(event)


def _with_message(event: PacketEvent) -> PacketEvent:
    """Rebuild ``message`` from the saved bytes, as the shell decoded it (None if it does not decode)."""
    message: Any = None
    try:
        if event.truncated and (event.plaintext_size is not None or event.kind == "ServerHello"):
            pass   # a cut plaintext or hello does not decode to what was sent
        elif event.kind == "ServerHello":
            message = ServerHello.decode(event.raw[FRAME_LENGTH_BYTES:])
        elif event.plaintext is not None and event.transport == "tcp":
            message = decode_message(event.plaintext)
        elif event.plaintext is not None and event.transport == "udp":
            message = decode_payload(event.plaintext, from_server=event.flow == "s2c")
    except ProtocolError:
        pass
    return dataclasses.replace(event, message=message)


# --- the compact log -------------------------------------------------------------------------

def _peer(peer: object) -> str:
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return str(peer) if peer is not None else "?"


def _detail(e: PacketEvent) -> tuple[str, str]:
    """The few facts a reader wants first, per kind (the rest is for explain), and their style."""
    if e.kind == "rejected":
        return f"REJECTED {e.error or ''}", "bold red"
    cut = f" [{len(e.raw)} of {e.size} B kept]" if e.raw_size is not None else ""
    if e.kind == "ServerHello":
        hello = e.message if isinstance(e.message, ServerHello) else None
        if hello is None:
            legacy = e.raw[FRAME_LENGTH_BYTES:].startswith(b"-----BEGIN")
            return ("TCRP/1: an RSA public key in PEM" if legacy else "not a TCRP/2 ServerHello") + cut, "red"
        share = f" share {hello.share.hex()[:8]}…" if hello.share else ""
        return f"v{hello.version} nonce {hello.nonce.hex()[:12]}…{share} key {hello.fingerprint[:16]}…", ""
    if e.kind == "ClientKeyExchange":
        blob = e.size - FRAME_LENGTH_BYTES
        if e.plaintext is not None:
            return f"TCRP/1: RSA-OAEP {blob} B of key | iv = {e.plaintext.hex()}", "red"
        if e.hello is not None and e.hello.share:   # TCRP.md §2.2
            return f"X25519 share {blob} B, " + ("session keys derived" if e.keys else "keys not known here"), ""
        return f"RSA-OAEP {blob} B, " + ("session keys derived" if e.keys else "keys not known here"), ""
    head = f"#{e.seq} " if e.seq is not None else ""
    message = e.message
    if isinstance(message, Message):
        p = message.payload
        if message.state is State.COMPLETE and "token" in p:
            return f"{head}token {p['token']} for {p.get('username')}{cut}", ""
        values = " ".join(f"{k}={_clip(repr(v))}" for k, v in p.items())
        return f"{head}{message.operation.name} {message.room!r} {values}".rstrip() + cut, ""
    if isinstance(message, Payload):
        seq = _datagram_seq(e.raw)
        values = " ".join(f"{k}={_clip(repr(v))}" for k, v in message.to_json().items() if k not in ("type", "ts"))
        return f"#{seq if seq is not None else '?'} {e.user or ''}  {values}".rstrip() + cut, ""
    if e.plaintext is not None:
        return head + _printable(e.plaintext, cut=e.plaintext_size is not None) + cut, ""
    return head.strip() + cut, ""


def _datagram_seq(raw: bytes) -> int | None:
    try:
        return Datagram.decode(raw).seq
    except ProtocolError:
        return None


def legend(width: int | None = None) -> Text:
    """The line above a log: what its columns are, and how to read the arrows."""
    peer = "" if width is not None and width < NARROW else " · peer"
    return Text(f"time · seen by · C→S client to server, S→C server to client · transport{peer} · kind · size",
                style="dim", overflow="fold")


def render_line(event: PacketEvent, width: int | None = None) -> Text:
    """One packet as one line: time, the side that saw it, the arrow, transport, peer, kind, size,
    the key facts.

    The arrow goes from the sender to the receiver, the ends named by role: ``server C→S`` is a
    packet from a client that the server received, ``client C→S`` one the client sent (see
    :func:`legend`). Text from the network is shown as text (:func:`visible`). Given a ``width``
    under 100 columns the peer column is left out to leave room for the facts; a line longer than
    the console wraps rather than losing them.
    """
    clock = _time.strftime("%H:%M:%S", _time.localtime(event.time)) + f".{int(event.time * 1000) % 1000:03d}"
    narrow = width is not None and width < NARROW
    side, kind = visible(str(event.side)), visible(str(event.kind))
    where = visible(str(event.transport)) + ("" if narrow else f" {visible(_peer(event.peer)):<15}")
    detail, style = _detail(event)
    line = Text(overflow="fold")
    line.append(f"{clock} ", style="dim")
    line.append(f"{side:<6} ", style="bold" if event.side == "server" else "")
    line.append(f"{ARROWS.get(event.flow, '?')} ", style="bold")
    line.append(f"{where} ", style="dim")
    line.append(f"{kind:<11} " if narrow else f"{kind:<12} ", style=KIND_STYLES.get(event.kind, "white"))
    line.append(f"{event.size:>5} B ")
    line.append(visible(detail), style=style)
    return line


class LiveLog(Trace):
    """A Trace that also prints each packet's line to a rich Console, on a printer thread of its own.

    ``ChatServer(trace=LiveLog(console))`` is what ``python -m tcrp_lab.server --trace`` runs. The
    thread that records a packet (the server's UDP thread) only queues it, a few microseconds:
    rendering a line takes far longer than receiving a datagram. At most ``queue`` packets wait
    for the printer; beyond that a packet is recorded but not printed, and when the printer
    catches up it prints one line saying how many it skipped. :meth:`flush` waits until what is
    queued is printed; :meth:`close` flushes and stops the printer (call it when the server
    stops). ``limit``, ``event_bytes`` and ``total_bytes`` bound the recording, as for a Trace.

    ``full=True`` prints each packet laid out field by field (:func:`explain`: the 32-byte header's
    RoomNameSize, Operation, State and OperationPayloadSize by name …) instead of one line. Passwords
    are printed as ``*`` unless ``show_passwords=True`` (the recording keeps them either way).
    """

    def __init__(self, console: Console | None = None, *, queue: int = LIVE_QUEUE, full: bool = False,
                 show_passwords: bool = False, **bounds: int):
        super().__init__(**bounds)
        self.full, self.show_passwords = full, show_passwords
        if not isinstance(queue, int) or queue < 1:
            raise ValueError(f"queue must be a positive number of packets, not {queue!r}")
        self.console = console or Console()
        self.queue = queue
        self.skipped = 0                 #: packets recorded but never printed (the printer fell behind)
        self._pending: collections.deque[PacketEvent | int | threading.Event] = collections.deque()
        self._unshown = 0                # skipped since the printer last said so
        self._count = threading.Lock()
        self._wake = threading.Event()
        self._closed = False
        self._legend = False
        self._printer = threading.Thread(target=self._print_loop, name="tcrp-live-log", daemon=True)
        self._printer.start()
        self._unsubscribe = self.subscribe(self._enqueue)

    def _enqueue(self, event: PacketEvent) -> None:
        """On the recording thread: queue the event, or count it when the queue is full."""
        pending = self._pending
        if len(pending) >= self.queue:
            with self._count:
                self._unshown += 1
                self.skipped += 1
            return
        if self._unshown:   # say how many were skipped where they were, in order
            with self._count:
                unshown, self._unshown = self._unshown, 0
            if unshown:
                pending.append(unshown)
        pending.append(event)
        if not self._wake.is_set():
            self._wake.set()

    def _print_loop(self) -> None:
        pending = self._pending
        while True:
            self._wake.wait()
            self._wake.clear()
            while pending:
                self._show(pending.popleft())
            self._show(None)   # caught up: report what was skipped meanwhile
            if self._closed and not pending:
                return

    def _show(self, item: PacketEvent | int | threading.Event | None) -> None:
        """Print a packet's line, or how many were skipped (a count queued in order; or, caught up
        or at a flush() marker, those skipped since)."""
        try:
            if isinstance(item, PacketEvent):
                shown = item if self.show_passwords else mask_passwords(item)
                if self.full:
                    self.console.print(explain(shown))
                    return
                if not self._legend:
                    self._legend = True
                    self.console.print(legend(self.console.width))
                self.console.print(render_line(shown, self.console.width))
                return
            if isinstance(item, int):
                count = item
            else:
                with self._count:
                    count, self._unshown = self._unshown, 0
            if count:
                self.console.print(Text(f"… {count} packet{'s' * (count != 1)} not shown: the log fell behind "
                                        "(they are in the trace)", style="yellow"))
        except Exception:   # a console that fails must not end the printer
            log.exception("the live log could not print")
        finally:
            if isinstance(item, threading.Event):
                item.set()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every packet queued so far is printed; False if that takes over ``timeout`` s."""
        if not self._printer.is_alive():
            return not self._pending
        done = threading.Event()
        self._pending.append(done)   # past the bound on purpose: one marker
        self._wake.set()
        return done.wait(timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Print what is queued, then stop the printer; later packets are recorded, not printed."""
        self._unsubscribe()
        self.flush(timeout)
        self._closed = True
        self._wake.set()
        self._printer.join(timeout)


# --- recording around a block ----------------------------------------------------------------

class _Tee:
    """Call the trace that was there before, then the recording one (so when the recording has an
    event, the previous trace has it too)."""

    def __init__(self, previous: Tracer, trace: Trace):
        self.previous, self.trace = previous, trace

    def __call__(self, event: PacketEvent) -> None:
        try:
            self.previous(event)
        except Exception:
            log.exception("the previous trace callable raised")
        self.trace(event)


@contextlib.contextmanager
def record(*endpoints: Any, limit: int = DEFAULT_LIMIT, **bounds: int) -> Iterator[Trace]:
    """Trace the given ChatServer / ChatClient objects for the duration of a ``with`` block.

    Any trace they already had keeps receiving events too, and is put back on exit. A server
    connection already in progress keeps the trace it started with. Clients being made inside the
    block can take the trace directly: ``ChatClient.join_room(..., trace=t)``. ``limit`` and
    ``event_bytes`` / ``total_bytes`` bound the recording, as for :class:`Trace`.
    """
    for endpoint in endpoints:
        if not hasattr(endpoint, "trace"):
            raise TypeError(f"record() takes ChatServer or ChatClient objects (anything with a .trace "
                            f"attribute), not {type(endpoint).__name__}")
    trace = Trace(limit=limit, **bounds)
    previous = [endpoint.trace for endpoint in endpoints]
    try:
        for endpoint, old in zip(endpoints, previous):
            endpoint.trace = _Tee(old, trace) if old is not None else trace
        yield trace
    finally:
        for endpoint, old in zip(endpoints, previous):
            endpoint.trace = old
