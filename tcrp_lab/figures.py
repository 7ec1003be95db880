"""The lessons' figures, drawn with matplotlib from the package's own constants and traces.

Each function returns a :class:`Picture`: a matplotlib Figure that shows as a small PNG in a
notebook (``_repr_png_``, 90 dpi, fits the notebook's width), prints as a one-line description
that does not change from run to run (what nbval compares: it leaves PNG bytes alone), and saves
as PNG or SVG with the same bytes for the same data (no dates, a fixed ``svg.hashsalt``).
Every figure has a title and labelled axes, and tells its series apart by markers, hatches and
line styles as well as by colour, so that it reads printed in black and white.

* :func:`header_figure`: the 32-byte message header and the datagram layout as byte fields (§3, §4);
* :func:`keystream_figure`: two ciphertexts under one keystream, their XOR, the known plaintext (lesson 07);
* :func:`accept_timeline`: serial vs threaded accept, one bar per client (lesson 04);
* :func:`loss_timeline`: a lossy run, chat by chat, and the retransmission timer (lesson 06);
* :func:`bench_figure`: ``python -m tcrp_lab.bench --plot``'s latency CDFs and adversary ratios.

matplotlib is an optional dependency (the ``lab`` extra); importing this module needs it.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.patches
import matplotlib.ticker
from matplotlib.figure import Figure

from .explain import visible
from .protocol import (
    HEADER_SIZE, SEQ_BYTES, SIZE_FIELD_BYTES, TAG_SIZE, TOKEN_SIZE, Ack, Chat, Datagram, Resend,
)

__all__ = ["Picture", "accept_timeline", "bench_figure", "header_figure", "keystream_figure", "loss_timeline"]

DPI = 90                         #: notebook PNGs: about 800 px wide for a 9-inch figure
WIDTH = 9.0                      #: inches
STABLE = {"svg.hashsalt": "tcrp_lab", "svg.fonttype": "path", "font.family": "DejaVu Sans", "font.size": 9}
HATCHES = ("", "//", "..", "xx", "\\\\", "++", "oo", "--")
GREYS = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c")


class Picture:
    """A figure: PNG in a notebook, a stable one-line ``repr``, :meth:`png` / :meth:`svg` / :meth:`save`."""

    def __init__(self, figure: Figure, description: str):
        self.figure = figure
        self.description = description
        self._render("png", dpi=DPI)         # lay it out once, then freeze the layout: every later
        figure.set_layout_engine("none")     # rendering (PNG or SVG, any order) has the same geometry

    def __repr__(self) -> str:
        return f"<{self.description}>"

    def _repr_png_(self) -> bytes:
        return self.png()

    def png(self, dpi: int = DPI) -> bytes:
        return self._render("png", dpi=dpi, metadata={"Software": None})

    def svg(self) -> str:
        return self._render("svg", metadata={"Date": None, "Creator": None}).decode("utf-8")

    def _render(self, fmt: str, **options: Any) -> bytes:
        out = io.BytesIO()
        with matplotlib.rc_context(STABLE):
            self.figure.savefig(out, format=fmt, bbox_inches="tight", **options)
        return out.getvalue()

    def save(self, path: str | Path, dpi: int = DPI) -> Path:
        """Write PNG or SVG, by the name's suffix."""
        path = Path(path)
        path.write_bytes(self.svg().encode("utf-8") if path.suffix.lower() == ".svg" else self.png(dpi))
        return path


def _figure(height: float, rows: int = 1, **grid: Any) -> tuple[Figure, Any]:
    with matplotlib.rc_context(STABLE):
        figure = Figure(figsize=(WIDTH, height), layout="constrained")
        axes = figure.subplots(rows, 1, squeeze=False, **grid)[:, 0]
    return figure, axes


def _text(value: object, limit: int = 40) -> str:
    """Network text for a figure: escapes for control characters, ``$`` not read as mathtext."""
    text = visible(str(value)).replace("$", r"\$")
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- byte fields -----------------------------------------------------------------------------

def _fields(ax: Any, y: float, fields: Sequence[tuple[str, int, str]], hatch_from: int | None = None) -> list[int]:
    """Draw (name, width in bytes, caption) boxes from offset 0 along row ``y``; returns the offsets."""
    offsets, at = [], 0
    for index, (name, width, caption) in enumerate(fields):
        hatch = HATCHES[1] if hatch_from is not None and index >= hatch_from else HATCHES[index % 2 * 2]
        ax.add_patch(matplotlib.patches.Rectangle((at, y), width, 0.8, facecolor=GREYS[index % len(GREYS)],
                                                  alpha=0.45, hatch=hatch, edgecolor="black", linewidth=1))
        if width <= 3:   # too narrow for words: the short name, upright
            ax.text(at + width / 2, y + 0.4, name, ha="center", va="center", fontsize=6.5, rotation=90)
        else:
            ax.text(at + width / 2, y + 0.5, name, ha="center", va="center", fontsize=8, fontweight="bold")
            ax.text(at + width / 2, y + 0.2, caption, ha="center", va="center", fontsize=7)
        offsets.append(at)
        at += width
    offsets.append(at)
    return offsets


def header_figure(room: str = "lab", payload_bytes: int = 38, text_bytes: int = 30) -> Picture:
    """The 32-byte TCRP message header with its room and payload (§3), and a chat datagram (§4),
    as byte fields at their offsets, for a room name of ``room``; sizes from :mod:`tcrp_lab.protocol`."""
    room_bytes = len(room.encode("utf-8"))
    figure, (ax,) = _figure(3.6)
    message = [("RNS", 1, "1 B"), ("Op", 1, "1 B"), ("St", 1, "1 B"),
               ("OperationPayloadSize", SIZE_FIELD_BYTES, f"{SIZE_FIELD_BYTES} B, big-endian"),
               (f"room {_text(room)!r}", room_bytes, f"{room_bytes} B"), ("payload (JSON)", payload_bytes,
                                                                          f"{payload_bytes} B")]
    header = len(Datagram.make_header(room.encode("utf-8"), bytes(TOKEN_SIZE), 0))
    datagram = [("RNS", 1, "1 B"), ("TS", 1, "1 B"), ("room", room_bytes, f"{room_bytes} B"),
                ("token", TOKEN_SIZE, f"{TOKEN_SIZE} B"), ("seq", SEQ_BYTES, f"u64, {SEQ_BYTES} B"),
                ("ciphertext (JSON, sealed)", text_bytes, f"{text_bytes} B"), ("tag", TAG_SIZE, f"{TAG_SIZE} B")]
    top = _fields(ax, 1.6, message)
    bottom = _fields(ax, 0.2, datagram, hatch_from=5)
    ax.annotate("", xy=(0, 2.55), xytext=(HEADER_SIZE, 2.55), arrowprops={"arrowstyle": "<->"})
    ax.text(HEADER_SIZE / 2, 2.62, f"the header: {HEADER_SIZE} bytes, always", ha="center", va="bottom", fontsize=8)
    ax.annotate("", xy=(0, 1.15), xytext=(header, 1.15), arrowprops={"arrowstyle": "<->", "linestyle": "--"})
    ax.text(header / 2, 1.2, f"in clear, authenticated (the AEAD's associated data): {header} B",
            ha="center", va="bottom", fontsize=8)
    ax.set_xticks(sorted(set(top) | set(bottom)))
    ax.set_xlim(0, max(top[-1], bottom[-1]))
    ax.set_ylim(0, 3.0)
    ax.set_yticks([0.6, 2.0], ["UDP datagram (§4)", "TCRP message (§3)"])
    ax.set_xlabel("byte offset   (RNS: RoomNameSize, Op: Operation, St: State, TS: TokenSize)")
    ax.set_title(f"TCRP's byte layouts, for the room {_text(room)!r}")
    ax.tick_params(axis="x", labelsize=7)
    return Picture(figure, f"byte-field figure: a {HEADER_SIZE}-byte header + room + payload; "
                           f"a datagram with a {header}-byte clear header")


# --- keystream reuse (lesson 07) ---------------------------------------------------------------

def keystream_figure(first: bytes, second: bytes, known: bytes, columns: int = 24,
                     names: Sequence[str] = ("C₁ (captured)", "C₂ (captured)")) -> Picture:
    """Two ciphertexts made with the same keystream, their XOR, the known plaintext of the first,
    and what that gives of the second (C₁ ⊕ C₂ ⊕ P₁), byte by byte for the first ``columns``."""
    n = min(columns, len(first), len(second))
    xor = bytes(a ^ b for a, b in zip(first[:n], second[:n]))
    recovered = bytes(x ^ p for x, p in zip(xor, known[:n]))
    rows = [(names[0], first[:n], "hex"), (names[1], second[:n], "hex"), ("C₁ ⊕ C₂ (= P₁ ⊕ P₂)", xor, "hex"),
            ("P₁ (known)", known[:n], "text"), ("C₁ ⊕ C₂ ⊕ P₁ = P₂", recovered, "text")]
    figure, (ax,) = _figure(3.2)
    for r, (_, data, show) in enumerate(rows):
        y = len(rows) - 1 - r
        for i, byte in enumerate(data):
            ax.add_patch(matplotlib.patches.Rectangle((i, y), 1, 1, facecolor="0.93" if show == "text" else str(0.35 + 0.6 * byte / 255),
                                                      edgecolor="white"))
            label = (("␣" if byte == 32 else chr(byte)) if 32 <= byte < 127 else "·") if show == "text" else f"{byte:02x}"
            ax.text(i + 0.5, y + 0.5, label, ha="center", va="center", fontsize=7, family="DejaVu Sans Mono",
                    bbox={"boxstyle": "square,pad=0.1", "facecolor": "white", "edgecolor": "none", "alpha": 0.8})
    ax.set_xlim(0, n)
    ax.set_ylim(0, len(rows))
    ax.set_yticks([len(rows) - 0.5 - r for r in range(len(rows))], [name for name, _, _ in rows])
    ax.set_xticks(range(0, n + 1, 4))
    ax.set_xlabel("byte position in the ciphertext")
    ax.set_title("One keystream used twice: the XOR of the ciphertexts is the XOR of the plaintexts")
    return Picture(figure, f"keystream reuse figure: {len(rows)} rows of {n} bytes; "
                           f"recovered {recovered.decode('ascii', 'replace')!r}")


# --- accept timeline (lesson 04) ---------------------------------------------------------------

def accept_timeline(runs: Mapping[str, Sequence[tuple[str, float, float, float]]]) -> Picture:
    """One panel per accept loop, one bar per client: waiting (connected, not yet served) and
    served. ``runs`` maps a loop's name to ``(client, connected, served_from, done)`` in seconds."""
    figure, axes = _figure(1.2 + 1.1 * len(runs), rows=len(runs), sharex=True)
    origin = min(row[1] for rows in runs.values() for row in rows)
    for ax, (loop, rows) in zip(axes, runs.items()):
        for y, (client, connected, served, done) in enumerate(rows):
            ax.barh(y, (served - connected) * 1000, left=(connected - origin) * 1000, height=0.5, color="white",
                    edgecolor="black", hatch="//", label="waiting: connected, not served" if y == 0 else None)
            ax.barh(y, max(done - served, 0.002) * 1000, left=(served - origin) * 1000, height=0.5, color="#4c72b0",
                    edgecolor="black", label="served by a thread" if y == 0 else None)
        ax.set_yticks(range(len(rows)), [_text(client, 20) for client, *_ in rows])
        ax.invert_yaxis()
        ax.set_ylabel("client")
        ax.set_title(_text(loop), loc="left", fontsize=9)
    axes[0].legend(loc="upper right", fontsize=8)
    axes[-1].set_xlabel("time since the first client connected (ms)")
    figure.suptitle("Accepting clients: serial vs threaded")
    return Picture(figure, f"accept timeline: {len(runs)} loops, "
                           f"{sum(len(rows) for rows in runs.values())} clients")


# --- a lossy run (lesson 06) -------------------------------------------------------------------

def _chat_id(event: Any) -> int | None:
    return event.message.id if isinstance(event.message, (Chat, Ack)) else None


def loss_timeline(events: Iterable[Any], user: str, *, dropped: Any = (), title: str = "") -> Picture:
    """``user``'s chats in a trace recorded at both ends (``record(server, client, ...)``): time
    across, chat id up; each first send, drop, retransmission, ack and the others' resend
    requests marked, and how long the server held a chat back behind a lost one (head of line).
    Below: the retransmission timeout (RTO) replayed from the acks (RFC 6298, Karn's rule)."""
    from .diagrams import _dropped_raw
    from .session import RetransmitTimer

    events = sorted(events, key=lambda e: e.time)
    lost = _dropped_raw(dropped)
    received_raw = {bytes(e.raw) for e in events if e.side == "server" and e.direction == "in"}
    sends: dict[int, list[tuple[float, bool]]] = {}     # chat id -> (time, got through) per copy
    acked: dict[int, float] = {}                        # chat id -> when the client got its ack
    arrived: dict[int, float] = {}                      # chat id -> when the server first had it
    posted: dict[int, float] = {}                       # chat id -> when the server acknowledged it
    seq_to_id: dict[int, int] = {}
    resends: list[tuple[float, int, int]] = []
    for e in events:
        chat = _chat_id(e)
        if e.side == "client" and e.user == user and e.kind == "chat" and e.direction == "out" and chat is not None:
            through = bytes(e.raw) not in lost and (bytes(e.raw) in received_raw or not received_raw)
            sends.setdefault(chat, []).append((e.time, through))
        elif e.side == "client" and e.user == user and e.kind == "ack" and chat is not None:
            acked.setdefault(chat, e.time)
            for other in sends:   # TCRP.md §4.5: this ack also covers every id up to upto, and the sack ranges
                if other <= e.message.upto or any(a <= other <= b for a, b in e.message.sack):
                    acked.setdefault(other, e.time)
        elif e.side == "server" and e.user == user and e.kind == "chat" and e.direction == "in" and chat is not None:
            arrived.setdefault(chat, e.time)
        elif e.side == "server" and e.user == user and e.kind == "ack" and chat is not None and e.message.seq:
            posted.setdefault(chat, e.time)           # seq 0 is a held ack (TCRP.md §4.5): not posted yet
            seq_to_id[e.message.seq] = chat
        elif e.side == "client" and e.kind == "resend" and e.direction == "out" and isinstance(e.message, Resend):
            for first, last in e.message.ranges or ((e.message.first, e.message.last),):
                resends.append((e.time, first, last))
    if not sends:
        raise ValueError(f"no chat sent by {user!r} in these events (record the client's side too)")
    origin = min(t for copies in sends.values() for t, _ in copies)
    figure, (top, bottom) = _figure(5.6, rows=2, sharex=True, gridspec_kw={"height_ratios": [3, 1.3]})

    def ms(t: float) -> float:
        return (t - origin) * 1000

    held = 0
    for chat, copies in sends.items():
        end = acked.get(chat, copies[-1][0])
        top.plot([ms(copies[0][0]), ms(end)], [chat, chat], color="#999", linewidth=0.8, zorder=1)
        if chat in arrived and chat in posted and posted[chat] - arrived[chat] > 0.005:
            held += 1
            top.plot([ms(arrived[chat]), ms(posted[chat])], [chat, chat], color="#dd8452", linewidth=5, alpha=0.6,
                     solid_capstyle="butt", zorder=2, label="held at the server (head of line)" if held == 1 else None)
    marks = {"first send": ([], "o", "white"), "retransmission": ([], "^", "#4c72b0"),
             "dropped on the way": ([], "x", "#c44e52"), "ack received": ([], "s", "#55a868"),
             "a resend asked for it": ([], "D", "#8172b3")}
    for chat, copies in sends.items():
        for n, (t, through) in enumerate(copies):
            marks["first send" if n == 0 else "retransmission"][0].append((ms(t), chat))
            if not through:
                marks["dropped on the way"][0].append((ms(t), chat))
        if chat in acked:
            marks["ack received"][0].append((ms(acked[chat]), chat))
    finish = max([*acked.values(), *(t for copies in sends.values() for t, _ in copies)])
    for t, first, last in resends:
        if t > finish:    # asked after the last of these chats was acknowledged: another story
            continue
        for seq in range(first, last + 1):
            if seq in seq_to_id:
                marks["a resend asked for it"][0].append((ms(t), seq_to_id[seq]))
    for label, (points, marker, colour) in marks.items():
        if points:
            xs, ys = zip(*points)
            top.scatter(xs, ys, marker=marker, s=46 if marker == "x" else 14 if marker == "D" else 26, facecolors=colour,
                        edgecolors="black" if marker != "x" else None, color=colour if marker == "x" else None,
                        linewidths=1.6 if marker == "x" else 0.7, label=label, zorder=3)
    top.set_ylabel(f"{_text(user, 20)}'s chat id")
    top.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    top.set_xlim(-0.03 * ms(finish), 1.05 * ms(finish))
    top.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7)
    top.set_title(title or f"{_text(user, 20)}'s chats on a lossy link: each copy, each drop, each ack")

    timer, in_flight, retransmitted = RetransmitTimer(), [], set()
    steps = [(0.0, timer.rto)]
    samples = []
    for e in events:   # the client's rule: only the oldest chat in flight, acked without a retransmission
        chat = _chat_id(e)
        if not (e.side == "client" and e.user == user and chat is not None):
            continue
        if e.kind == "chat" and e.direction == "out":
            if chat in in_flight:
                retransmitted.add(chat)
            else:
                in_flight.append(chat)
        elif e.kind == "ack" and chat in in_flight:
            if chat == in_flight[0] and chat not in retransmitted and e.message.seq:   # not a held ack
                rtt = e.time - sends[chat][0][0]
                timer.sample(rtt)
                samples.append((ms(e.time), rtt * 1000))
                steps.append((ms(e.time), timer.rto))
            in_flight.remove(chat)
    steps.append((ms(finish), timer.rto))
    xs, ys = zip(*steps)
    bottom.step(xs, [y * 1000 for y in ys], where="post", color="black", linestyle="-", label="RTO")
    if samples:
        sx, sy = zip(*samples)
        bottom.scatter(sx, sy, marker="o", s=12, facecolors="white", edgecolors="black", label="RTT sample")
    bottom.set_yscale("log")
    bottom.set_ylabel("ms (log)")
    bottom.set_xlabel(f"time since {_text(user, 20)}'s first chat (ms)")
    bottom.set_title("the retransmission timeout, replayed from the acks", loc="left", fontsize=9)
    bottom.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7)
    copies = sum(len(c) for c in sends.values())
    return Picture(figure, f"loss timeline of {user}: {len(sends)} chats, {copies} copies sent, "
                           f"{len(acked)} acked")


def retransmissions(events: Iterable[Any], user: str) -> dict[int, int]:
    """Copies sent of each of ``user``'s chat ids (its client's record): 1 means no retransmission."""
    out: dict[int, int] = {}
    for e in events:
        if e.side == "client" and e.user == user and e.kind == "chat" and e.direction == "out" and _chat_id(e):
            out[_chat_id(e)] = out.get(_chat_id(e), 0) + 1
    return out


# --- the bench (python -m tcrp_lab.bench --plot) -----------------------------------------------

def bench_figure(results: Sequence[Mapping[str, Any]]) -> Picture:
    """Latency CDFs of ours vs the bare relay (a plain run's ``details``) and, when an adversary
    run is among ``results``, its goodput and p99 ratios per attacker."""
    plain = [r for r in results if "details" in r]
    adversary = [r for r in results if r.get("mode") == "adversary" and "attacks" in r]
    rows = (1 if plain else 0) + (1 if adversary else 0)
    if not rows:
        raise ValueError("no bench result with latencies (details) or an adversary run (attacks)")
    figure, axes = _figure(3.2 * rows, rows=rows)
    ax_iter = iter(axes)
    if plain:
        ax = next(ax_iter)
        styles = {"ours": ("-", "o"), "relay": ("--", "s")}
        for result in plain:
            for target, (line, marker) in styles.items():
                steady = result["details"][target].get("steady", {})
                cdf = steady.get("latency_cdf_ms")
                if not cdf:
                    continue
                ax.plot(cdf, [q / (len(cdf) - 1) for q in range(len(cdf))], linestyle=line, marker=marker,
                        markevery=10, markersize=4, color="black",
                        label=f"{'tcrp_lab server' if target == 'ours' else 'bare UDP relay'}, "
                              f"{result.get('rate', '?'):g} msg/s to {result.get('members', '?')}")
        ax.set_xscale("log")
        ax.set_xlabel("latency, send to delivery (ms, log)")
        ax.set_ylabel("share of deliveries")
        ax.set_title("Latency distribution (CDF) at a steady rate")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
    if adversary:
        ax = next(ax_iter)
        scenarios = adversary[-1]["attacks"]
        names = [s for s in scenarios if isinstance(scenarios[s], Mapping) and "goodput_ratio" in scenarios[s]]
        xs = range(len(names))
        ax.bar([x - 0.2 for x in xs], [scenarios[n]["goodput_ratio"] for n in names], width=0.4, color="white",
               edgecolor="black", hatch="//", label="goodput ratio (target ≥ 0.5)")
        ax.bar([x + 0.2 for x in xs], [scenarios[n]["p99_ratio"] for n in names], width=0.4, color="#999",
               edgecolor="black", label="p99 latency ratio (target ≤ 3)")
        ax.axhline(1, color="black", linewidth=0.8, linestyle=":")
        ax.set_yscale("log")
        ax.set_xticks(list(xs), [_text(n, 18) for n in names], rotation=20, fontsize=7)
        ax.set_xlabel("attacker")
        ax.set_ylabel("ratio to the run alone (log)")
        ax.set_title("The classroom's traffic next to each attacker")
        ax.legend(fontsize=8)
    return Picture(figure, f"bench figure: {len(plain)} latency run(s), {len(adversary)} adversary run(s)")

