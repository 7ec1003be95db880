"""Packet traces: every TCP frame and UDP datagram of a live chat, explained byte by byte.

What goes over the wire, the way "The Illustrated TLS 1.3 Connection" shows a handshake, but from
the learner's own chat and with no root and no packet capture: the server and client shells call
``trace(**fields)`` for each frame and datagram they send or receive (see the fields of
:class:`PacketEvent`), and this module records and renders those calls.

* :class:`Trace` records events (pass one as ``trace=`` to ChatServer / ChatClient / ControlConnection,
  or use :func:`record`); it prints as a one-line-per-packet log, :meth:`Trace.summary` gives a
  table per session, and :meth:`Trace.save` / :meth:`Trace.load` keep it as JSON lines.
* :func:`explain` (from :mod:`tcrp_lab.explain`, re-exported here) lays out one packet (an event, or raw bytes) as a hex dump with every field
  coloured, named and decoded, with its byte range — and, where the keys are known, the plaintext
  explained the same way.
* :class:`LiveLog` prints each packet as it passes (``python -m tcrp_lab.server --trace``).

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
import json
import logging
import threading
import time as _time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from dataclasses import fields as _dataclass_fields
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console, ConsoleOptions, RenderResult
from rich.jupyter import JupyterMixin
from rich.table import Table
from rich.text import Text

from .crypto import ServerHello, SessionKeys
from .explain import Explanation, Field, _printable, explain  # explain is part of this module's API
from .protocol import (
    FRAME_LENGTH_BYTES, Datagram, Message, Payload, ProtocolError, State, decode_message, decode_payload,
)

__all__ = ["Explanation", "Field", "LiveLog", "PacketEvent", "Trace", "explain", "record", "render_line"]

log = logging.getLogger("tcrp_lab.trace")

DEFAULT_LIMIT = 10_000       #: events a Trace keeps (the oldest go first)
NARROW = 100                 #: consoles narrower than this get log lines without the peer column

KIND_STYLES = {
    "ServerHello": "magenta", "ClientKeyExchange": "magenta", "request": "yellow", "response": "green",
    "complete": "bold green", "rejected": "bold red", "hello": "cyan", "welcome": "cyan", "chat": "bold blue",
    "ack": "blue", "system": "bright_cyan", "resend": "yellow", "ping": "dim", "pong": "dim", "leave": "cyan",
    "room_closed": "red", "kicked": "red",
}


# --- events ----------------------------------------------------------------------------------

@dataclass(frozen=True, repr=False)
class PacketEvent(JupyterMixin):
    """One frame or datagram as one side saw it. ``raw`` is the bytes on the wire (a TCP frame with
    its 4-byte length). ``message`` is the decoded protocol object, ``plaintext`` the bytes inside
    the encryption, ``keys`` the session keys (ClientKeyExchange only, when known), ``error`` why
    a ``rejected`` packet was dropped. Displays as :func:`explain` of itself."""

    time: float
    side: str                      # "server" | "client"
    direction: str                 # "in" | "out", from that side's point of view
    transport: str                 # "tcp" | "udp"
    peer: tuple | None
    kind: str
    raw: bytes
    session: str | None = None     # "tcp HOST:PORT" of the client end, or the token in hex
    message: Any = None
    plaintext: bytes | None = None
    seq: int | None = None
    error: str | None = None
    keys: SessionKeys | None = None
    user: str | None = None
    hello: ServerHello | None = None

    @property
    def size(self) -> int:
        return len(self.raw)

    @property
    def flow(self) -> str:
        """``c2s`` (client to server) or ``s2c``, whichever side traced it."""
        return "c2s" if (self.side == "client") == (self.direction == "out") else "s2c"

    def __rich__(self) -> Explanation:
        return explain(self)

    def __repr__(self) -> str:
        return (f"PacketEvent({self.side} {self.direction} {self.transport} {self.kind}, {self.size} bytes, "
                f"session={self.session!r})")


_EVENT_FIELDS = {f.name for f in _dataclass_fields(PacketEvent)}


def _tolerant_event(fields: dict[str, Any]) -> PacketEvent:
    """An event from incomplete or unknown fields (a newer shell, a profile of its own): never raise."""
    known = {k: v for k, v in fields.items() if k in _EVENT_FIELDS}
    known.setdefault("time", _time.time())
    for name, default in (("side", "?"), ("direction", "?"), ("transport", "?"), ("peer", None), ("kind", "?")):
        known.setdefault(name, default)
    raw = known.get("raw")
    known["raw"] = bytes(raw) if isinstance(raw, (bytes, bytearray, memoryview)) else b""
    return PacketEvent(**known)


class Trace(JupyterMixin):
    """A recording of packet events. Pass it as ``trace=`` to a server or client; it is thread-safe.

    Recording is cheap (one small object per packet, no rendering); the last ``limit`` events are
    kept. ``subscribe(fn)`` calls ``fn(event)`` in the sending or receiving thread for each new one.
    Printing a Trace gives the compact log; :meth:`summary` a table per session.

    A Trace is always true, even when empty, because the shells test ``if trace:``; count its
    events with ``len(trace)``.
    """

    def __init__(self, events: Iterable[PacketEvent] = (), *, limit: int = DEFAULT_LIMIT):
        if not isinstance(limit, int) or limit < 1:
            raise ValueError(f"limit must be a positive number of events, not {limit!r}")
        self.limit = limit
        self._events: collections.deque[PacketEvent] = collections.deque(events, maxlen=limit)
        self._subscribers: tuple[Callable[[PacketEvent], None], ...] = ()
        self._lock = threading.Lock()
        self.total = len(self._events)   #: events ever recorded, including those no longer kept

    def __call__(self, **fields: Any) -> None:
        """What the shells call. Never raises: a trace observes, it must not break the chat."""
        try:
            event = PacketEvent(time=_time.time(), **fields)
        except TypeError:
            event = _tolerant_event(fields)
        self.add(event)

    def add(self, event: PacketEvent) -> None:
        with self._lock:
            self._events.append(event)
            self.total += 1
        for fn in self._subscribers:
            try:
                fn(event)
            except Exception:
                log.exception("a trace subscriber raised on %r", event)

    def subscribe(self, fn: Callable[[PacketEvent], None]) -> Callable[[], None]:
        """Call ``fn(event)`` for every new event; returns a function that unsubscribes it."""
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

    def __len__(self) -> int:
        return len(self._events)

    def __bool__(self) -> bool:
        return True   # the shells test ``if trace:``; an empty Trace must still record

    def __iter__(self) -> Iterator[PacketEvent]:
        return iter(self.events)

    def __getitem__(self, index: int) -> PacketEvent:
        return self.events[index]

    def clear(self) -> None:
        with self._lock:
            self._events.clear()

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
                      and (where is None or where(e))), limit=self.limit)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        events = self.events
        if not events:
            yield Text("(no packets traced yet)", style="dim")
        for event in events:
            yield render_line(event, options.max_width)

    def summary(self) -> Table:
        """A table with a row per session and side: packets, bytes in/out, kinds, rejected."""
        rows: dict[tuple[str, str], dict[str, Any]] = {}
        for e in self.events:
            row = rows.setdefault((e.session or "—", e.side), {
                "users": set(), "packets": 0, "in": 0, "out": 0, "kinds": collections.Counter(), "rejected": 0})
            row["packets"] += 1
            row["in" if e.direction == "in" else "out"] += e.size
            row["kinds"][e.kind] += 1
            row["rejected"] += e.kind == "rejected"
            user = e.user or (e.message.payload.get("username") if isinstance(e.message, Message) else None)
            if isinstance(user, str):
                row["users"].add(user)
        table = Table(title=f"{len(self)} packets in {len({s for s, _ in rows})} sessions", box=box.SIMPLE_HEAD)
        for name in ("session", "side", "user", "packets", "bytes in", "bytes out"):
            table.add_column(name, no_wrap=True, justify="left" if name in ("session", "side", "user") else "right")
        table.add_column("kinds", overflow="fold", ratio=1)
        table.add_column("rejected", no_wrap=True, justify="right")
        for (session, side), row in rows.items():
            kinds = ", ".join(kind if n == 1 else f"{kind}×{n}" for kind, n in row["kinds"].items())
            rejected = Text(str(row["rejected"]), style="bold red" if row["rejected"] else "")
            cells = (session, side, ", ".join(sorted(row["users"])), str(row["packets"]), str(row["in"]),
                     str(row["out"]), kinds)
            table.add_row(*(Text(cell) for cell in cells), rejected)  # Text: names are never read as markup
        return table

    # --- JSON lines ----------------------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        """Write the events as JSON lines (bytes as hex). The file holds keys and plaintexts."""
        path = Path(path)
        with path.open("w", encoding="utf-8") as f:
            for event in self.events:
                f.write(json.dumps(_to_json(event), separators=(",", ":")) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path, *, limit: int = DEFAULT_LIMIT) -> Trace:
        """Read a file written by :meth:`save`; decoded messages are rebuilt from the saved bytes."""
        events = []
        with Path(path).open(encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    events.append(_from_json(json.loads(line)))
                except (ValueError, KeyError, TypeError) as exc:
                    raise ValueError(f"{path}:{number} is not a saved trace event ({exc})") from None
        return cls(events, limit=max(limit, len(events)))

    def __repr__(self) -> str:
        return f"Trace({len(self)} packets)"


def _to_json(e: PacketEvent) -> dict[str, Any]:
    return {
        "time": e.time, "side": e.side, "direction": e.direction, "transport": e.transport,
        "peer": list(e.peer) if e.peer is not None else None, "kind": e.kind, "raw": e.raw.hex(),
        "session": e.session, "plaintext": e.plaintext.hex() if e.plaintext is not None else None,
        "seq": e.seq, "error": e.error, "user": e.user, "keys": e.keys.hex() if e.keys else None,
        "hello": e.hello.body.hex() if e.hello else None,
    }


def _from_json(obj: dict[str, Any]) -> PacketEvent:
    raw = bytes.fromhex(obj["raw"])
    plaintext = bytes.fromhex(obj["plaintext"]) if obj.get("plaintext") is not None else None
    keys = SessionKeys(**{k: bytes.fromhex(v) for k, v in obj["keys"].items()}) if obj.get("keys") else None
    hello = ServerHello.decode(bytes.fromhex(obj["hello"])) if obj.get("hello") else None
    event = PacketEvent(time=float(obj["time"]), side=obj["side"], direction=obj["direction"],
                        transport=obj["transport"], peer=tuple(obj["peer"]) if obj.get("peer") else None,
                        kind=obj["kind"], raw=raw, session=obj.get("session"), plaintext=plaintext,
                        seq=obj.get("seq"), error=obj.get("error"), keys=keys, user=obj.get("user"), hello=hello)
    return _with_message(event)


def _with_message(event: PacketEvent) -> PacketEvent:
    """Rebuild ``message`` from the saved bytes, as the shell decoded it (None if it does not decode)."""
    message: Any = None
    try:
        if event.kind == "ServerHello":
            message = ServerHello.decode(event.raw[FRAME_LENGTH_BYTES:])
        elif event.plaintext is not None and event.transport == "tcp":
            message = decode_message(event.plaintext)
        elif event.plaintext is not None and event.transport == "udp":
            message = decode_payload(event.plaintext, from_server=event.flow == "s2c")
    except ProtocolError:
        pass
    return PacketEvent(**{**{f: getattr(event, f) for f in _EVENT_FIELDS}, "message": message})


# --- the compact log -------------------------------------------------------------------------

def _peer(peer: object) -> str:
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return str(peer) if peer is not None else "?"


def _detail(e: PacketEvent) -> Text:
    """The few facts a reader wants first, per kind (the rest is for explain)."""
    if e.kind == "rejected":
        return Text(f"REJECTED {e.error or ''}", style="bold red")
    if e.kind == "ServerHello":
        hello = e.message if isinstance(e.message, ServerHello) else None
        if hello is None:
            legacy = e.raw[FRAME_LENGTH_BYTES:].startswith(b"-----BEGIN")
            return Text("TCRP/1: an RSA public key in PEM" if legacy else "not a TCRP/2 ServerHello", style="red")
        return Text(f"v{hello.version} nonce {hello.nonce.hex()[:12]}… key {hello.fingerprint[:16]}…")
    if e.kind == "ClientKeyExchange":
        blob = len(e.raw) - FRAME_LENGTH_BYTES
        if e.plaintext is not None:
            return Text(f"TCRP/1: RSA-OAEP {blob} B of key | iv = {e.plaintext.hex()}", style="red")
        return Text(f"RSA-OAEP {blob} B, " + ("session keys derived" if e.keys else "keys not known here"))
    head = f"#{e.seq} " if e.seq is not None else ""
    message = e.message
    if isinstance(message, Message):
        p = message.payload
        if message.state is State.COMPLETE and "token" in p:
            return Text(f"{head}token {p['token']} for {p.get('username')}")
        values = " ".join(f"{k}={v!r}" for k, v in p.items())
        return Text(f"{head}{message.operation.name} {message.room!r} {values}".rstrip())
    if isinstance(message, Payload):
        seq = _datagram_seq(e.raw)
        values = " ".join(f"{k}={v!r}" for k, v in message.to_json().items() if k not in ("type", "ts"))
        return Text(f"#{seq if seq is not None else '?'} {e.user or ''}  {values}".rstrip())
    if e.plaintext is not None:
        return Text(head + _printable(e.plaintext))
    return Text(head.strip())


def _datagram_seq(raw: bytes) -> int | None:
    try:
        return Datagram.decode(raw).seq
    except ProtocolError:
        return None


def render_line(event: PacketEvent, width: int | None = None) -> Text:
    """One packet as one line: time, side, arrow, transport, peer, kind, size, the key facts.

    The arrow is seen from the tracing side: ``server ← peer`` received, ``client → peer`` sent.
    Given a ``width`` under 100 columns the peer column is left out to leave room for the facts;
    a line longer than the console wraps rather than losing them.
    """
    clock = _time.strftime("%H:%M:%S", _time.localtime(event.time)) + f".{int(event.time * 1000) % 1000:03d}"
    arrow = "→" if event.direction == "out" else "←"
    narrow = width is not None and width < NARROW
    line = Text(overflow="fold")
    line.append(f"{clock} ", style="dim")
    line.append(f"{event.side:<6} {arrow} ", style="bold" if event.side == "server" else "")
    line.append(f"{event.transport} " if narrow else f"{event.transport} {_peer(event.peer):<15} ", style="dim")
    line.append(f"{event.kind:<11} " if narrow else f"{event.kind:<17} ", style=KIND_STYLES.get(event.kind, "white"))
    line.append(f"{event.size:>5} B ")
    line.append_text(_detail(event))
    return line


class LiveLog(Trace):
    """A Trace that also prints each packet's line to a rich Console as it passes.

    ``ChatServer(trace=LiveLog(console))`` is what ``python -m tcrp_lab.server --trace`` runs.
    """

    def __init__(self, console: Console | None = None, *, limit: int = DEFAULT_LIMIT):
        super().__init__(limit=limit)
        self.console = console or Console()
        self.subscribe(lambda event: self.console.print(render_line(event, self.console.width)))


# --- recording around a block ----------------------------------------------------------------

class _Tee:
    """Call the trace that was there before, then the recording one (so when the recording has an
    event, the previous trace has it too)."""

    def __init__(self, previous: Callable[..., None], trace: Trace):
        self.previous, self.trace = previous, trace

    def __call__(self, **fields: Any) -> None:
        try:
            self.previous(**fields)
        except Exception:
            log.exception("the previous trace callable raised")
        self.trace(**fields)


@contextlib.contextmanager
def record(*endpoints: Any, limit: int = DEFAULT_LIMIT) -> Iterator[Trace]:
    """Trace the given ChatServer / ChatClient objects for the duration of a ``with`` block.

    Any trace they already had keeps receiving events too, and is put back on exit. A server
    connection already in progress keeps the trace it started with. Clients being made inside the
    block can take the trace directly: ``ChatClient.join_room(..., trace=t)``.
    """
    for endpoint in endpoints:
        if not hasattr(endpoint, "trace"):
            raise TypeError(f"record() takes ChatServer or ChatClient objects (anything with a .trace "
                            f"attribute), not {type(endpoint).__name__}")
    trace = Trace(limit=limit)
    previous = [endpoint.trace for endpoint in endpoints]
    try:
        for endpoint, old in zip(endpoints, previous):
            endpoint.trace = _Tee(old, trace) if old else trace
        yield trace
    finally:
        for endpoint, old in zip(endpoints, previous):
            endpoint.trace = old
