"""ServerControl: what a teacher sees of a running ChatServer, and the two things they may do to it.

``status()`` is one plain, JSON-ready dict, bounded whatever the classroom does: rooms and members
(at most MAX_ROOMS rooms of MAX_MEMBERS shown, with the totals), the server's counters, drops by
reason, the addresses the server throttled the most, and the last PACKETS packets (a summary each:
the bytes are not kept). ``close_room()`` and ``remove_member()`` act through the registry and
deliver what it says (TCRP.md §7, "The server's operator"). The dashboard
(:mod:`tcrp_lab.dashboard`) uses it beside a server in the same kernel, and the status endpoint
(:mod:`tcrp_lab.status`) serves it over HTTP for a server elsewhere.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any

from .events import PacketEvent

__all__ = ["PacketTap", "ServerControl"]

MAX_ROOMS = 50       #: rooms in one status (the fullest first)
MAX_MEMBERS = 50     #: members shown per room
MAX_SOURCES = 20     #: throttled source addresses in one status (the worst first)
PACKETS = 50         #: packets kept by the tap, and shown
THROTTLED = ("throttled", "rate_limited", "too_many")   #: drop reasons that mean "this address was held back"


class PacketTap:
    """A server ``trace`` that keeps a short summary of the last ``limit`` packets (and passes every
    packet on to the trace that was there before, if any). Cheap: one small dict per packet."""

    def __init__(self, limit: int = PACKETS, then: Any = None):
        self.packets: deque[dict[str, Any]] = deque(maxlen=limit)
        self.then = then

    def __call__(self, event: PacketEvent) -> None:
        peer = event.peer
        self.packets.append({
            "time": round(event.time, 3), "direction": event.direction, "transport": event.transport,
            "kind": str(event.kind or "?")[:40], "peer": f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else "",
            "user": str(event.user or "")[:64], "size": event.size, "error": str(event.error or "")[:120]})
        if self.then is not None:
            self.then(event)

    def last(self, n: int) -> list[dict[str, Any]]:
        for _ in range(3):
            try:
                return list(self.packets)[-n:]
            except RuntimeError:   # appended to while copied
                continue
        return []


class ServerControl:
    """Status and operator actions for a running :class:`~tcrp_lab.server.ChatServer` (TCRP/2)."""

    can_act = True   # a server in this process: its owner may act on it

    def __init__(self, server: Any, packets: int = PACKETS):
        if getattr(getattr(server, "profile", None), "name", "") != "TCRP/2":
            raise TypeError("ServerControl needs a running TCRP/2 ChatServer (the legacy design has no operator)")
        self.server = server
        self.started = time.time()
        self._lock = threading.Lock()
        existing = server.trace
        if isinstance(existing, PacketTap):
            self.tap = existing
        else:
            self.tap = PacketTap(packets, then=existing)
            server.trace = self.tap   # the server reads its trace at each packet: no restart

    def status(self) -> dict[str, Any]:
        server = self.server
        stats = server.stats
        overview = server.registry.overview(MAX_ROOMS, MAX_MEMBERS)
        by_source = stats.get("drops_by_source", {})
        throttled = sorted(
            ({"source": source, "count": sum(n for reason, n in reasons.items() if reason.startswith(THROTTLED)),
              "reasons": {r: n for r, n in reasons.items() if r.startswith(THROTTLED)}}
             for source, reasons in by_source.items()), key=lambda row: -row["count"])
        address = server.address
        return {
            "server": {"profile": server.profile.name, "host": address.host, "tcp_port": address.tcp_port,
                       "udp_port": address.udp_port, "fingerprint": server.fingerprint, "running": server.running},
            "time": round(time.time(), 3),
            "counters": {k: stats.get(k, 0) for k in ("connections", "open_connections", "joins", "datagrams_in",
                                                       "datagrams_out", "rooms", "members")}
                        | {"chats": server.registry.chats_posted},
            "drops": dict(sorted(stats.get("drops", {}).items(), key=lambda kv: -kv[1])),
            "throttled": [row for row in throttled if row["count"]][:MAX_SOURCES],
            "rooms": overview["rooms"], "room_count": overview["room_count"],
            "member_count": overview["member_count"],
            "packets": self.tap.last(PACKETS),
        }

    def close_room(self, room: str) -> None:
        """Close ``room``: every member is told ``room_closed``/``closed_by_operator``. KeyError if none."""
        with self._lock:
            self.server.deliver(self.server.registry.close_room(room))

    def remove_member(self, room: str, username: str) -> None:
        """Remove ``username`` from ``room`` (``kicked``/``removed_by_operator``). KeyError if not there."""
        with self._lock:
            self.server.deliver(self.server.registry.remove_member(room, username))
