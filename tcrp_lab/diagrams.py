"""Sequence diagrams of a traced chat: one lifeline per endpoint, one arrow per frame or datagram.

:func:`sequence_diagram` (and :meth:`tcrp_lab.trace.Trace.sequence_diagram`) turns recorded
:class:`~tcrp_lab.trace.PacketEvent` objects into a :class:`SequenceDiagram`: lifelines for each
client (named by its user when the trace knows it), the server's TCP side and its UDP side; arrows
from the sender to the receiver, time running down, labelled with the kind and the one or two
fields that matter (operation, room, id, seq). A packet traced by both ends (``record(server,
client)``) is one arrow. Drawn apart, and named in a legend so that they read in black and white:

* a **retransmission** (a chat id, a room seq or a resend range sent again to the same peer):
  dashed, its label marked ``↻``;
* a datagram **lost**: sent, and never received although the receiver was traced, or dropped by a
  relay given as ``dropped=``: the arrow stops half-way at a cross;
* a packet **rejected** by the receiver's checks (kind ``rejected``, docs/TCRP.md §5.3): the arrow
  reaches the receiver and ends in a boxed cross, the reason in its label.

The drawing is hand-written SVG: no JavaScript, no fonts or files to fetch, so it shows in
JupyterLab, on GitHub and in nbviewer (``_repr_svg_``). Its bytes depend only on the events drawn
(no clock, no random ids): ``times=False`` leaves out the time column, so that a live run whose
packets come in the same order draws the same bytes. :meth:`SequenceDiagram.to_mermaid` writes
the same diagram as a Mermaid ``sequenceDiagram`` for documents.

Everything from the network (names, rooms, reasons) is shown as text: control characters are
written as escapes (:func:`~tcrp_lab.explain.visible`) and the rest XML-escaped.

``python -m tcrp_lab.diagrams --demo PATH`` records a short live join (alice creates a room, bob
joins, both chat; a fixed key, seeds and clock) and writes its diagram to PATH (README's picture).
"""

from __future__ import annotations

import argparse
import collections
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from .crypto import ServerHello
from .explain import visible
from .protocol import Ack, Chat, Datagram, Message, ProtocolError, Resend, RoomChat, SystemEvent, Welcome

__all__ = ["Arrow", "SequenceDiagram", "sequence_diagram"]

QUIET = ("ping", "pong")        #: kinds left out unless asked for: keep-alives say nothing about the join
LABEL_CHARS = 44                #: an arrow's label is cut to this many characters
NAME_CHARS = 24                 #: a lifeline's name is cut to this many characters
COLUMN = 190                    #: pixels between lifelines
ROW = 30                        #: pixels between arrows
GUTTER = 78                     #: the time column on the left
HEAD = 54                       #: the top, where the names are
STYLES = ("normal", "retransmission", "lost", "rejected")
SERVER_TCP, SERVER_UDP = "server TCP", "server UDP"
HALO = 'paint-order="stroke" stroke="#fff" stroke-width="3" stroke-linejoin="round"'   # labels stay legible over lines
_XML_BAD = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")   # not allowed in XML 1.0


def _text(value: object, limit: int) -> str:
    """Network text made safe to show: escapes for control characters, cut to ``limit`` characters."""
    text = _XML_BAD.sub("?", visible(str(value)))
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class Arrow:
    """One frame or datagram: from ``source`` to ``target`` (lifeline names), ``style`` one of
    :data:`STYLES`, ``time`` when it was sent (or received, if only the receiver traced it)."""

    time: float
    source: str
    target: str
    label: str
    style: str = "normal"
    transport: str = "udp"
    kind: str = ""


@dataclass(frozen=True)
class Note:
    """A remark spanning two lifelines, placed before the arrow of index ``before``."""

    before: int
    left: str
    right: str
    text: str


class SequenceDiagram:
    """Lifelines and arrows, drawn as SVG (``_repr_svg_``, :meth:`svg`, :meth:`save`) or Mermaid."""

    def __init__(self, lifelines: Sequence[str], arrows: Sequence[Arrow], notes: Sequence[Note] = (), *,
                 title: str = "", times: bool = True):
        self.lifelines = list(lifelines)
        self.arrows = list(arrows)
        self.notes = list(notes)
        self.title = title
        self.times = times

    def __repr__(self) -> str:
        styles = collections.Counter(a.style for a in self.arrows)
        marked = ", ".join(f"{styles[s]} {s}" for s in STYLES[1:] if styles[s])
        return (f"SequenceDiagram({len(self.lifelines)} lifelines: {', '.join(self.lifelines)}; "
                f"{len(self.arrows)} arrows" + (f", {marked}" if marked else "") + ")")

    def _repr_svg_(self) -> str:
        return self.svg()

    def save(self, path: str | Path) -> Path:
        """Write the SVG to ``path`` (UTF-8) and return it."""
        path = Path(path)
        path.write_text(self.svg(), encoding="utf-8")
        return path

    # --- SVG --------------------------------------------------------------------------------

    def svg(self) -> str:
        """The diagram as a standalone SVG document (deterministic: the same arrows, the same bytes)."""
        x = {name: GUTTER + COLUMN // 2 + i * COLUMN for i, name in enumerate(self.lifelines)}
        width = GUTTER + COLUMN * max(len(self.lifelines), 2)
        notes = collections.defaultdict(list)
        for note in self.notes:
            notes[note.before].append(note)
        rows = len(self.arrows) + len(self.notes)
        bottom = HEAD + 24 + rows * ROW
        legend_y = bottom + 36
        height = legend_y + 22
        start = self.arrows[0].time if self.arrows else 0.0
        out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
               f'viewBox="0 0 {width} {height}" font-family="DejaVu Sans, Verdana, Arial, sans-serif" font-size="11">',
               f"<title>{escape(_text(self.title or 'sequence diagram', 200))}</title>",
               '<defs><marker id="head" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" markerHeight="8" '
               'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#222"/></marker>'
               '<marker id="open" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" markerHeight="8" '
               'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10" fill="none" stroke="#222"/></marker></defs>',
               f'<rect width="{width}" height="{height}" fill="#fff"/>']
        if self.title:
            out.append(f'<text x="{width // 2}" y="18" text-anchor="middle" font-size="14" font-weight="bold">'
                       f"{escape(_text(self.title, 120))}</text>")
        if self.times:
            out.append(f'<text x="6" y="{HEAD - 8}" font-size="10" fill="#555">time (ms)</text>')
        for name in self.lifelines:
            cx = x[name]
            server = name in (SERVER_TCP, SERVER_UDP)
            for y in (HEAD - 26, bottom):
                out.append(f'<rect class="head" x="{cx - 80}" y="{y}" width="160" height="24" rx="{0 if server else 10}" '
                           f'fill="{"#e8e8e8" if server else "#fff"}" stroke="#222"/>')
                out.append(f'<text x="{cx}" y="{y + 16}" text-anchor="middle" font-weight="bold">'
                           f"{escape(_text(name, NAME_CHARS))}</text>")
            out.append(f'<line class="lifeline" data-name={quoteattr(_text(name, NAME_CHARS))} x1="{cx}" y1="{HEAD - 2}" '
                       f'x2="{cx}" y2="{bottom}" stroke="#777" stroke-dasharray="3 3"/>')
        y = HEAD + 14
        for index, arrow in enumerate(self.arrows):
            for note in notes.get(index, ()):
                y += ROW
                left, right = sorted((x[note.left], x[note.right]))
                out.append(f'<rect class="note" x="{left - 60}" y="{y - 17}" width="{right - left + 120}" height="22" '
                           f'fill="#f6f6f6" stroke="#999" stroke-dasharray="1 2"/>')
                out.append(f'<text x="{(left + right) // 2}" y="{y - 2}" text-anchor="middle" font-style="italic" '
                           f'fill="#333">{escape(_text(note.text, 90))}</text>')
            y += ROW
            out.extend(self._arrow(arrow, x[arrow.source], x[arrow.target], y))
            if self.times:
                out.append(f'<text x="{GUTTER - 8}" y="{y + 4}" text-anchor="end" font-size="10" fill="#555">'
                           f"{(arrow.time - start) * 1000:.1f}</text>")
        out.extend(self._legend(legend_y, width))
        out.append("</svg>")
        return "\n".join(out) + "\n"

    @staticmethod
    def _arrow(arrow: Arrow, x1: int, x2: int, y: int) -> list[str]:
        sign = 1 if x2 >= x1 else -1
        label = ("↻ " if arrow.style == "retransmission" else "") + arrow.label
        dash = ' stroke-dasharray="7 4"' if arrow.style == "retransmission" else ""
        parts = [f'<g class="arrow {arrow.style}" data-kind={quoteattr(_text(arrow.kind, 40))} '
                 f'data-transport="{"tcp" if arrow.transport == "tcp" else "udp"}">']
        if x1 == x2:   # to itself: a small loop
            parts.append(f'<path d="M{x1},{y - 6} h30 v12 h-28" fill="none" stroke="#222"{dash} marker-end="url(#head)"/>')
        elif arrow.style == "lost":
            end = x1 + (x2 - x1) * 3 // 5
            parts.append(f'<line x1="{x1}" y1="{y}" x2="{end}" y2="{y}" stroke="#222" stroke-width="1.4"{dash}/>')
            parts.append(_cross(end, y, boxed=False))
        elif arrow.style == "rejected":
            parts.append(f'<line x1="{x1}" y1="{y}" x2="{x2 - sign * 7}" y2="{y}" stroke="#222" stroke-width="1.4"/>')
            parts.append(_cross(x2 - sign * 7, y, boxed=True))
        else:
            parts.append(f'<line x1="{x1}" y1="{y}" x2="{x2}" y2="{y}" stroke="#222" stroke-width="1.4"{dash} '
                         f'marker-end="url({"#open" if arrow.style == "retransmission" else "#head"})"/>')
        middle = (x1 + x2) // 2 if x1 != x2 else x1 + 36
        anchor = "middle" if x1 != x2 else "start"
        parts.append(f'<text x="{middle}" y="{y - 5}" text-anchor="{anchor}" {HALO}>{escape(_text(label, LABEL_CHARS + 2))}</text>')
        parts.append("</g>")
        return parts

    @staticmethod
    def _legend(y: int, width: int) -> list[str]:
        items = (("normal", "sent and received"), ("retransmission", "↻ sent again"),
                 ("lost", "lost on the way"), ("rejected", "rejected by the receiver"))
        step = max(170, (width - 20) // len(items))
        out = [f'<g class="legend"><text x="10" y="{y - 14}" font-size="10" fill="#555">legend</text>']
        for i, (style, text) in enumerate(items):
            x = 10 + i * step
            out.extend(line.replace('class="arrow ', 'class="sample ')   # a sample, not an arrow of the chat
                       for line in SequenceDiagram._arrow(Arrow(0.0, "", "", "", style), x, x + 60, y + 4)
                       if not line.startswith("<text"))
            out.append(f'<text x="{x + 68}" y="{y + 8}">{escape(text)}</text>')
        out.append("</g>")
        return out

    # --- Mermaid ----------------------------------------------------------------------------

    def to_mermaid(self) -> str:
        """The diagram as a Mermaid ``sequenceDiagram`` (dotted: retransmission; ``x``: lost or rejected)."""
        ids = {name: f"P{i}" for i, name in enumerate(self.lifelines)}
        lines = ["sequenceDiagram"]
        if self.title:
            lines.append(f"    title {_mermaid(self.title)}")
        lines += [f"    participant {ids[name]} as {_mermaid(name)}" for name in self.lifelines]
        notes = collections.defaultdict(list)
        for note in self.notes:
            notes[note.before].append(note)
        for index, arrow in enumerate(self.arrows):
            for note in notes.get(index, ()):
                lines.append(f"    Note over {ids[note.left]},{ids[note.right]}: {_mermaid(note.text)}")
            dotted = "--" if arrow.style == "retransmission" else "-"
            head = "x" if arrow.style in ("lost", "rejected") else ">>"
            label = {"retransmission": "↻ ", "lost": "lost: "}.get(arrow.style, "") + arrow.label
            lines.append(f"    {ids[arrow.source]}{dotted}{head}{ids[arrow.target]}: {_mermaid(label)}")
        return "\n".join(lines) + "\n"


def _cross(x: int, y: int, *, boxed: bool) -> str:
    box = f'<rect x="{x - 7}" y="{y - 7}" width="14" height="14" fill="#fff" stroke="#222"/>' if boxed else ""
    return (f'<g class="{"reject-mark" if boxed else "loss-mark"}">{box}<path d="M{x - 5},{y - 5} L{x + 5},{y + 5} '
            f'M{x - 5},{y + 5} L{x + 5},{y - 5}" stroke="#b00" stroke-width="2.2"/></g>')


_MERMAID_SAFE = re.compile(r"[A-Za-z0-9 ._=()/'+\-…↻]")


def _mermaid(text: str) -> str:
    """Text for Mermaid: every character outside a small safe set as an entity code (``#59;``)."""
    return "".join(c if _MERMAID_SAFE.fullmatch(c) else f"#{ord(c)};" for c in _text(text, 120))


# --- from events to arrows -------------------------------------------------------------------

def _label(e: Any) -> str:
    """The kind and the one or two fields that matter."""
    m = e.message
    if e.kind == "ServerHello":
        return f"ServerHello v{m.version}" if isinstance(m, ServerHello) else "ServerHello"
    if e.kind == "ClientKeyExchange":
        return "ClientKeyExchange (RSA-OAEP)"
    if isinstance(m, Message):
        p = m.payload
        if e.kind == "complete" and "token" in p:
            return f"COMPLETE {m.operation.name} token {str(p['token'])[:6]}…"
        detail = f" {p['status']}" if "status" in p else f" {m.room!r}" if m.room else ""
        return f"{m.state.name} {m.operation.name}{detail}"
    if isinstance(m, Chat):
        return f"chat id={m.id}"
    if isinstance(m, RoomChat):
        return f"chat seq={m.seq} from {m.sender}"
    if isinstance(m, Ack):
        return f"ack id={m.id} held" if not m.seq else f"ack id={m.id} seq={m.seq}"
    if isinstance(m, Welcome):
        return f"welcome seq={m.seq}"
    if isinstance(m, SystemEvent):
        return f"system seq={m.seq} {m.event} {m.user}"
    if isinstance(m, Resend):
        return "resend " + ",".join(f"{a}..{b}" if a != b else str(a) for a, b in m.ranges or ((m.first, m.last),))
    return str(e.kind)


def _ident(e: Any) -> tuple | None:
    """What makes a second copy a retransmission: the chat id, the room seq, the resend range."""
    m = e.message
    if isinstance(m, Chat):
        return (e.kind, m.id)
    if isinstance(m, Ack):
        return (e.kind, m.id, bool(m.seq))   # a held ack, then the ack of the post: not a retransmission
    if isinstance(m, (RoomChat, SystemEvent)):
        return (e.kind, m.seq)
    if isinstance(m, Resend):
        return (e.kind, m.first, m.last, m.ranges)
    return None


def _receiver(e: Any) -> str:
    return "server" if e.flow == "c2s" else "client"


def _dropped_raw(dropped: Any) -> set[bytes]:
    """The bytes of what a relay dropped: a UdpRelay / TcpRelay, its packets, or bytes."""
    items = getattr(dropped, "packets", dropped) or ()
    out = set()
    for item in items:
        if isinstance(item, (bytes, bytearray)):
            out.add(bytes(item))
        elif getattr(item, "forwarded", b"") is None:   # a relay Packet it did not forward
            out.add(bytes(item.data))
    return out


def _names(events: Sequence[Any]) -> tuple[dict[str, str], dict[tuple, str]]:
    """Who each session and each client address (as the server saw it) is, from what the trace says."""
    by_session: dict[str, str] = {}
    for e in events:
        name = e.user
        if not name and isinstance(e.message, Message):
            name = e.message.payload.get("username")
        if isinstance(name, str) and name and e.session and e.session not in by_session:
            by_session[e.session] = name
    by_peer: dict[tuple, str] = {}
    for e in events:
        if e.side == "server" and isinstance(e.peer, tuple) and e.session in by_session:
            by_peer.setdefault(tuple(e.peer), by_session[e.session])
    return by_session, by_peer


def _client_name(e: Any, by_session: dict[str, str], by_peer: dict[tuple, str]) -> str:
    if isinstance(e.user, str) and e.user:
        return e.user
    if e.session in by_session:
        return by_session[e.session]
    if e.side == "server" and isinstance(e.peer, tuple):
        if tuple(e.peer) in by_peer:
            return by_peer[tuple(e.peer)]
        if len(e.peer) >= 2:
            return f"client {e.peer[0]}:{e.peer[1]}"
    if e.kind == "rejected" or e.session is None:
        return "client ?"
    session = str(e.session)
    return "client " + (session[4:] if session.startswith("tcp ") else session[:8])


def _datagram_token(raw: bytes) -> str | None:
    try:
        return Datagram.decode(raw).token.hex()
    except ProtocolError:
        return None


def sequence_diagram(events: Iterable[Any], *, session: str | Sequence[str] | None = None,
                     user: str | Sequence[str] | None = None, transport: str | None = None,
                     start: float | None = None, end: float | None = None, side: str | None = None,
                     exclude: Sequence[str] = QUIET, dropped: Any = (), times: bool = True,
                     notes: bool = True, title: str = "") -> SequenceDiagram:
    """Draw ``events`` (PacketEvents, in any order) as a :class:`SequenceDiagram`.

    Filters: ``session`` (the events' session: ``"tcp HOST:PORT"`` or a token in hex), ``user``
    (the client's name: that client's TCP and UDP sessions), ``transport`` (``"tcp"`` / ``"udp"``),
    ``start`` / ``end`` (the events' own clock, seconds), ``side`` (``"server"`` / ``"client"``:
    one side's record only), ``exclude`` (kinds left out; pings and pongs by default).
    ``dropped`` marks what a relay dropped as lost (a UdpRelay, its packets, or the bytes).
    ``times`` puts each arrow's time, in ms from the first, in a column on the left; ``notes`` adds
    a remark where a TCP connection starts (the kernel's handshake is not traced).
    """
    every = sorted(enumerate(events), key=lambda pair: (pair[1].time, pair[0]))
    by_session, by_peer = _names([e for _, e in every])
    sessions = {session} if isinstance(session, str) else set(session) if session is not None else None
    users = {user} if isinstance(user, str) else set(user) if user is not None else None

    def wanted(e: Any) -> bool:
        return ((sessions is None or e.session in sessions or _datagram_token(e.raw) in sessions)
                and (users is None or _client_name(e, by_session, by_peer) in users)
                and (transport is None or e.transport == transport)
                and (start is None or e.time >= start) and (end is None or e.time <= end)
                and (side is None or e.side == side) and e.kind not in exclude)

    chosen = [e for _, e in every if wanted(e)]
    traced = {(e.session, e.side) for e in chosen if e.session}   # which ends of each session recorded
    lost_raw = _dropped_raw(dropped)
    inbound: dict[tuple, collections.deque] = collections.defaultdict(collections.deque)
    for e in chosen:
        if e.direction == "in":
            inbound[(e.transport, e.flow, bytes(e.raw))].append(e)
    consumed: set[int] = set()
    arrows: list[Arrow] = []
    seen: set[tuple] = set()
    first_tcp: dict[str, int] = {}
    for e in chosen:
        if id(e) in consumed:
            continue
        received = None
        if e.direction == "out" and e.raw:
            queue = inbound.get((e.transport, e.flow, bytes(e.raw)))
            while queue and id(queue[0]) in consumed:
                queue.popleft()
            if queue:
                received = queue.popleft()
                consumed.add(id(received))
        consumed.add(id(e))
        client = _client_name(e if e.side == "server" or received is None else received, by_session, by_peer)
        if client.startswith("client ") and received is not None:
            client = _client_name(e, by_session, by_peer)
        server = SERVER_TCP if e.transport == "tcp" else SERVER_UDP
        source, target = (client, server) if e.flow == "c2s" else (server, client)
        what = e if e.kind != "rejected" or received is None else received
        sender_event = e if e.direction == "out" else None
        label = _label(sender_event if sender_event is not None else what)
        if e.kind == "rejected" or (received is not None and received.kind == "rejected"):
            reason = (received if received is not None else e).error or ""
            style = "rejected"
            label = (label + " " if sender_event is not None else "") + f"rejected: {reason.split(':')[0]}"
        elif e.direction == "out" and received is None and (
                bytes(e.raw) in lost_raw or (e.session, _receiver(e)) in traced):
            style = "lost"
        else:
            style = "normal"
        ident = _ident(sender_event if sender_event is not None else what)
        if ident is not None and style != "rejected":
            key = (source, target, ident)
            if key in seen:
                style = "retransmission" if style == "normal" else style
            seen.add(key)
        if e.transport == "tcp" and e.session and e.session not in first_tcp and e.kind == "ServerHello":
            first_tcp[e.session] = len(arrows)
        arrows.append(Arrow(e.time, source, target, label, style, e.transport, e.kind))
    clients = list(dict.fromkeys(n for a in arrows for n in (a.source, a.target) if n not in (SERVER_TCP, SERVER_UDP)))
    servers = [s for s in (SERVER_TCP, SERVER_UDP) if any(s in (a.source, a.target) for a in arrows)]
    lifelines = clients[:1] + servers + clients[1:]
    note_list = [Note(index, arrows[index].target, arrows[index].source,
                      "TCP connection opened: SYN, SYN-ACK, ACK (the kernels', not traced)")
                 for index in sorted(first_tcp.values())] if notes else []
    return SequenceDiagram(lifelines, arrows, note_list, title=title, times=times)


# --- python -m tcrp_lab.diagrams --demo PATH --------------------------------------------------

def demo() -> SequenceDiagram:
    """A short live join on loopback, recorded by the server: alice creates "lab", bob joins, both
    chat. A fixed key, seeds and clock, and each step waited for, so the drawing is the same every run."""
    from .client import ChatClient
    from .crypto import SeededRandom, ServerKey
    from .server import ChatServer
    from .trace import Trace

    trace = Trace()
    server = ChatServer("127.0.0.1", 0, 0, key=ServerKey.demo(), rng=SeededRandom("diagram demo"),
                        wall_clock=lambda: 1764323400.0, trace=trace).start()
    clients = []
    try:
        alice = ChatClient.create_room(server.address, "lab", "alice", fingerprint=server.fingerprint,
                                       rng=SeededRandom("alice"))
        clients.append(alice)
        alice.send("hi")
        alice.flush()
        alice.wait_for_messages(1)
        bob = ChatClient.join_room(server.address, "lab", "bob", fingerprint=server.fingerprint,
                                   rng=SeededRandom("bob"))
        clients.append(bob)
        _until(lambda: "bob" in alice.members)   # the server told alice that bob joined
        bob.send("hello alice")
        bob.flush()
        alice.wait_for_messages(2)
        bob.wait_for_messages(1)
        events = list(trace)
    finally:
        for client in reversed(clients):
            client.close()
        server.stop()
    return sequence_diagram(events, side="server", times=False,
                            title="alice creates lab, bob joins, both chat (recorded by the server)")


def _until(condition: Any, timeout: float = 10.0) -> None:
    """Poll ``condition()`` for at most ``timeout`` s (a member list has no event to wait on)."""
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"the demo chat did not get there in {timeout} s")
        time.sleep(0.01)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tcrp_lab.diagrams",
                                     description="Draw a traced chat as a sequence diagram (SVG or Mermaid).")
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--demo", metavar="PATH", help="record a short live join and write its diagram to PATH")
    group.add_argument("--trace", metavar="FILE", help="a trace saved with Trace.save (JSON lines)")
    parser.add_argument("--out", metavar="PATH", help="with --trace: where to write (default: stdout)")
    parser.add_argument("--mermaid", action="store_true", help="write Mermaid instead of SVG")
    parser.add_argument("--session", action="append", help="only this session (repeatable)")
    parser.add_argument("--user", action="append", help="only this user's sessions (repeatable)")
    parser.add_argument("--transport", choices=("tcp", "udp"))
    args = parser.parse_args(argv)
    if args.demo:
        diagram, path = demo(), args.demo
    else:
        from .trace import Trace

        diagram = sequence_diagram(Trace.load(args.trace), session=args.session, user=args.user,
                                   transport=args.transport, title=Path(args.trace).name)
        path = args.out
    text = diagram.to_mermaid() if args.mermaid else diagram.svg()
    if path:
        Path(path).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
