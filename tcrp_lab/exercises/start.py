"""Lesson 00 exercise: read a recorded trace as flights, checked by ``check_flights``.

A *flight* is a run of consecutive packets going the same way, as in a TLS handshake diagram.
``flights(events)`` takes a list of :class:`~tcrp_lab.trace.PacketEvent` in recorded order and
returns ``[(arrow, [kind, ...]), ...]`` with ``arrow`` ``"C→S"`` (client to server) or ``"S→C"``.

:func:`check_flights` runs the learner's function on every session of the lesson's own traces
(the server's and a client's) and computes the expected flights from the same events with the
package's own fields (``PacketEvent.flow``, ``PacketEvent.kind``), so the answer cannot drift
from what the lesson recorded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from ..protocol import Message
from ..trace import PacketEvent, Trace
from .common import Case, CheckResult, check

__all__ = ["ARROWS", "check_flights", "expected_flights"]

#: The arrow of each ``PacketEvent.flow``: it goes from the sender to the receiver.
ARROWS = {"c2s": "C→S", "s2c": "S→C"}

TODO = ("Write flights(events): walk the events in order, take each one's arrow from e.flow "
        "('c2s' is \"C→S\", 's2c' is \"S→C\") and its e.kind, and start a new flight whenever the arrow changes.")

_ORDER_HINT = ("consecutive packets going the same way form one flight, and a flight ends where the "
               "direction changes: a join has three TCP flights (ServerHello; ClientKeyExchange and request; "
               "response and complete)")
_FLOW_HINT = ("this trace was recorded by the client, where 'out' means client → server: take the arrow "
              "from e.flow, which names the sender whoever recorded the packet (e.direction is the recorder's view)")


def expected_flights(events: Iterable[PacketEvent]) -> list[tuple[str, list[str]]]:
    """The flights of ``events``, from the package's own fields (what the checker compares with)."""
    out: list[tuple[str, list[str]]] = []
    for event in events:
        arrow = ARROWS[event.flow]
        if out and out[-1][0] == arrow:
            out[-1][1].append(event.kind)
        else:
            out.append((arrow, [event.kind]))
    return out


def _normalized(value: Any) -> Any:
    """The learner's flights as ``[(arrow, [kinds])]`` (``->`` accepted for ``→``), or the value as it came."""
    if not isinstance(value, (list, tuple)):
        return value
    out = []
    for item in value:
        if not (isinstance(item, (list, tuple)) and len(item) == 2 and isinstance(item[0], str)
                and isinstance(item[1], (list, tuple))):
            return value
        out.append((item[0].replace("->", "→").replace(" ", ""), list(item[1])))
    return out


def _same(got: Any, expected: Any) -> bool:
    return _normalized(got) == expected


def _sessions(trace: Iterable[PacketEvent]) -> list[list[PacketEvent]]:
    """The trace's events grouped by session, sessions in the order they first appear."""
    groups: dict[Any, list[PacketEvent]] = {}
    for event in trace:
        groups.setdefault(event.session, []).append(event)
    return list(groups.values())


def _label(events: Sequence[PacketEvent]) -> str:
    """A port-free name for one session: whose join, or whose UDP session, and who recorded it."""
    first = events[0]
    recorder = f"as the {first.side} recorded it"
    if first.transport == "udp":
        return f"{first.user or 'a member'}'s UDP session, {recorder} ({len(events)} datagrams)"
    request = next((e.message for e in events if e.kind == "request" and isinstance(e.message, Message)), None)
    if request is None:
        what = "a TCP connection"
    elif request.operation.name == "LIST_ROOMS":
        what = "a LIST_ROOMS connection"
    else:
        what = f"{request.payload.get('username', '?')}'s {request.operation.name} {request.room!r} connection"
    return f"{what}, {recorder} ({len(events)} frames)"


def _case(flights: Callable[[list[PacketEvent]], Any], description: str, events: Sequence[PacketEvent],
          hint: str) -> Case:
    return Case(description, lambda: flights(list(events)), expected_flights(events), hint, _same)


def check_flights(flights: Callable[[list[PacketEvent]], Any], *traces: Trace | Iterable[PacketEvent]) -> CheckResult:
    """Run ``flights(events)`` on each session of ``traces`` (the lesson's server and client traces).

    The expected flights are computed from the same events; a client-recorded trace catches an
    arrow taken from ``direction`` (the recorder's point of view) instead of ``flow``.
    """
    server = [s for t in traces for s in _sessions(t) if s[0].side != "client"]
    client = [s for t in traces for s in _sessions(t) if s[0].side == "client"]
    tcp_first = sorted(server, key=lambda s: (s[0].transport != "tcp", -len(s)))   # a full join first
    cases = [Case("flights([]): no packets at all", lambda: flights([]), [],
                  "no packets, no flights: return an empty list", _same)]
    if tcp_first:
        first = tcp_first[0][:1]
        cases.append(_case(flights, f"one packet: the {first[0].kind} of {_label(tcp_first[0])}", first,
                           'return a list of (arrow, [kinds]) pairs; a packet the server sends is "S→C"'))
    cases += [_case(flights, _label(s), s, _ORDER_HINT) for s in tcp_first]
    cases += [_case(flights, _label(s), s, _FLOW_HINT) for s in client]
    return check("Flights", cases, todo=TODO)
