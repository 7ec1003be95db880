"""What a shell saw: one frame or datagram, as a frozen record (the trace's only input).

The server and client shells build a :class:`PacketEvent` for each frame and datagram they send or
receive and pass it to their ``trace`` callable (a :data:`Tracer`, usually a
:class:`tcrp_lab.trace.Trace`). This module sits below the shells and the trace, so both import it
and neither knows the other.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rich.jupyter import JupyterMixin

from .crypto import ServerHello, SessionKeys
from .protocol import Message

if TYPE_CHECKING:
    from .explain import Explanation

__all__ = ["ARROWS", "PacketEvent", "Tracer", "mask_passwords"]

ARROWS = {"c2s": "C→S", "s2c": "S→C"}   #: sender→receiver, by role (docs/TCRP.md's tables)


@dataclass(frozen=True, repr=False)
class PacketEvent(JupyterMixin):
    """One frame or datagram as one side saw it. ``raw`` is the bytes on the wire (a TCP frame with
    its 4-byte length). ``message`` is the decoded protocol object, ``plaintext`` the bytes inside
    the encryption, ``keys`` the session keys (ClientKeyExchange only, when known), ``error`` why
    a ``rejected`` packet was dropped. Displays as :func:`explain` of itself.

    A Trace keeps only the first ``event_bytes`` of ``raw`` and of ``plaintext``; ``raw_size`` /
    ``plaintext_size`` then hold their original lengths (None when whole), and ``message`` is
    dropped with a cut plaintext (it would hold the whole text again)."""

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
    raw_size: int | None = None        # the length on the wire, when only the start of raw was kept
    plaintext_size: int | None = None  # the plaintext's length, when only its start was kept
    local: tuple | None = None         # the recording side's own (host, port): a packet's other end (pcapng)

    @property
    def size(self) -> int:
        """Bytes on the wire (kept or not)."""
        return len(self.raw) if self.raw_size is None else self.raw_size

    @property
    def truncated(self) -> bool:
        """True when the trace kept only the first bytes of ``raw`` or ``plaintext``."""
        return self.raw_size is not None or self.plaintext_size is not None

    @property
    def flow(self) -> str:
        """``c2s`` (client to server) or ``s2c``, whichever side traced it."""
        return "c2s" if (self.side == "client") == (self.direction == "out") else "s2c"

    @property
    def arrow(self) -> str:
        """``C→S`` or ``S→C``: from the sender to the receiver, whichever side traced it."""
        return ARROWS[self.flow]

    def __rich__(self) -> Explanation:
        from .explain import explain  # explain lays out events; it sits above this module
        return explain(self)

    def __repr__(self) -> str:
        return (f"PacketEvent({self.side} {self.direction} {self.transport} {self.kind}, {self.size} bytes, "
                f"session={self.session!r})")


def mask_passwords(event: PacketEvent, mask: str | None = None) -> PacketEvent:
    """``event`` with a request's password replaced by ``mask`` — by default ``*`` as many as its
    UTF-8 bytes, so every size field stays true — in its message and plaintext; the event itself,
    when it holds no password."""
    message = event.message
    password = message.payload.get("password") if isinstance(message, Message) else None
    if not password:
        return event
    stars = mask if mask is not None else "*" * len(str(password).encode("utf-8"))
    masked = dataclasses.replace(message, payload={**message.payload, "password": stars})
    plaintext = masked.encode() if event.plaintext is not None and event.plaintext_size is None else None
    return dataclasses.replace(event, message=masked, plaintext=plaintext)


Tracer = Callable[[PacketEvent], None]
"""What ``trace=`` takes everywhere: called with each event, on the thread that saw the packet."""
