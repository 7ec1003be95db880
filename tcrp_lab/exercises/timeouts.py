"""Lesson 05 exercise: the reaper's decision, checked by ``check_reap_decision`` against the real registry.

A :class:`Scenario` is what the reaper sees when it runs: the clock (``now``), the inactivity
timeout, and every member with its room, whether it hosts the room, and its last activity. The
learner's ``reap_decision(scenario)`` returns a :class:`Decision`: who gets ``kicked``, who gets
``room_closed`` (``host_timeout``), and which ``timeout`` events are posted to which rooms.

Nothing is written down twice: each scenario is built by driving a real
:class:`tcrp_lab.rooms.RoomRegistry` (create and join the rooms, then a ``hello`` from each member
at the time of its last activity), read back from that registry, and the expected decision is what
``registry.reap(now)`` returns for it. Each member's first datagram comes as it joins, as a real
client's does: the server knows its address and none is left provisional. The scenario lists
whoever the registry holds.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ..crypto import SeededRandom, SessionKeys
from ..protocol import Kicked, ProtocolError, RoomClosed, SystemEvent
from ..rooms import Member, RoomRegistry
from .common import CheckResult, raised, show

__all__ = ["Decision", "Scenario", "Seen", "check_reap_decision", "generated", "handmade", "server_decision"]

_KEYS = SessionKeys(*(bytes([i]) * 32 for i in range(4)))   # never used to encrypt: the reaper only decides
NOW = 10_000.0
RANDOM_SCENARIOS = 40
NAMES = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "ゆき", "mallory"]
ROOMS = ["lab", "den", "attic"]

TODO = ("Write reap_decision(scenario): a member is expired when more than scenario.timeout seconds have passed "
        "since its last_activity. Return Decision(kicked=..., room_closed=..., events=...): the names kicked, the "
        "names told room_closed, and a (room, name) pair for each timeout event posted.")

SHAPE_HINT = ("return a Decision(kicked={names}, room_closed={names}, events={(room, name), ...}) "
              "(from tcrp_lab.exercises.timeouts import Decision)")


@dataclass(frozen=True)
class Seen:
    """One member as the reaper sees it."""

    room: str
    name: str
    is_host: bool
    last_activity: float


@dataclass(frozen=True)
class Scenario:
    """What the reaper sees: the clock, the timeout, and every member (room, name, host?, last activity)."""

    now: float
    timeout: float
    members: tuple[Seen, ...]

    def idle(self, member: Seen) -> float:
        """Seconds since ``member``'s last activity (negative if it came after ``now``)."""
        return self.now - member.last_activity

    def __str__(self) -> str:
        rooms: dict[str, list[str]] = {}
        for m in self.members:
            role = "host, " if m.is_host else ""
            rooms.setdefault(m.room, []).append(f"{m.name} ({role}idle {_num(self.idle(m))} s)")
        inside = "; ".join(f"{room!r}: " + ", ".join(who) for room, who in rooms.items())
        return f"timeout {_num(self.timeout)} s; {inside}"


@dataclass(frozen=True)
class Decision:
    """What the reaper sends: ``kicked`` and ``room_closed`` are names; ``events`` are (room, name) pairs."""

    kicked: frozenset[str] = frozenset()
    room_closed: frozenset[str] = frozenset()
    events: frozenset[tuple[str, str]] = frozenset()

    def __post_init__(self) -> None:   # sets, lists or tuples from the learner: compared as sets
        for name in ("kicked", "room_closed", "events"):
            value = getattr(self, name)
            if isinstance(value, Iterable) and not isinstance(value, (str, frozenset)):
                object.__setattr__(self, name, frozenset(tuple(v) if isinstance(v, list) else v for v in value))

    def __str__(self) -> str:
        def names(values: Iterable[Any]) -> str:
            return "{" + ", ".join(sorted(map(str, values))) + "}"

        events = "{" + ", ".join(map(repr, sorted(self.events, key=str))) + "}"
        return f"kicked {names(self.kicked)}, room_closed {names(self.room_closed)}, events {events}"


def _num(x: float) -> str:
    return f"{x:g}"


# --- scenarios, built on the real registry -----------------------------------------------------

@dataclass(frozen=True)
class _Plan:
    """Rooms to build: room -> [(name, seconds idle at NOW)], the host first."""

    timeout: float
    rooms: tuple[tuple[str, tuple[tuple[str, float], ...]], ...]


def _first_datagram(registry: RoomRegistry, member: Member, port: int) -> None:
    """What the server does with a member's first datagram, at once after the join: it learns where
    to send (the reaper tells only members it can reach) and takes the ``hello``, which makes the
    member a full one rather than a provisional one."""
    member.address = ("192.0.2.1", port)
    registry.hello(member)


def _build(plan: _Plan) -> tuple[RoomRegistry, Scenario]:
    """Drive a real registry into the plan; the Scenario is read back from it."""
    start = NOW - max(idle for _, who in plan.rooms for _, idle in who) - 1
    clock = [start]
    registry = RoomRegistry(inactivity_timeout=plan.timeout, clock=lambda: clock[0],
                            rng=SeededRandom(f"reap {plan}"), wall_clock=lambda: 1764323400.0)
    members = []
    for room, who in plan.rooms:
        for i, (name, idle) in enumerate(who):
            join = registry.create_room if i == 0 else registry.join_room
            try:
                member, _ = join(room, name, "", _KEYS)
            except ProtocolError:
                continue   # a name this server refuses: the scenario is what the registry holds
            _first_datagram(registry, member, port=50_000 + len(members))
            members.append((NOW - idle, member))
    for last, member in sorted(members, key=lambda pair: pair[0]):   # the clock only moves forward
        clock[0] = last
        registry.hello(member)
    seen = tuple(Seen(room.name, m.username, m.is_host, m.last_activity)
                 for room in (registry.room(name) for name, _ in plan.rooms) if room is not None
                 for m in room.members.values())
    return registry, Scenario(NOW, plan.timeout, seen)


def server_decision(registry: RoomRegistry, scenario: Scenario) -> Decision:
    """What ``registry.reap(scenario.now)`` sends, as a Decision."""
    room_of = {m.name: m.room for m in scenario.members}
    kicked, closed, events = set(), set(), set()
    for delivery in registry.reap(scenario.now):
        payload, names = delivery.payload, {m.username for m in delivery.to}
        if isinstance(payload, Kicked):
            kicked |= names
        elif isinstance(payload, RoomClosed):
            closed |= names
        elif isinstance(payload, SystemEvent) and payload.event == "timeout":
            events.add((room_of.get(payload.user, "?"), payload.user))
    return Decision(frozenset(kicked), frozenset(closed), frozenset(events))


HANDMADE = [
    _Plan(300, (("lab", (("alice", 100), ("bob", 0), ("carol", 301))),)),                 # a guest times out
    _Plan(300, (("lab", (("alice", 100), ("bob", 300), ("carol", 299.5))),)),              # exactly at the timeout
    _Plan(300, (("lab", (("alice", 301), ("bob", 10))),)),                                 # the host times out
    _Plan(300, (("lab", (("alice", 400), ("bob", 5), ("carol", 350))),)),                  # host and a guest
    _Plan(300, (("lab", (("alice", 0), ("bob", 301))), ("den", (("dave", 302), ("erin", 1))))),   # two rooms
    _Plan(300, (("lab", (("alice", -0.5), ("bob", -0.5))),)),                              # activity after now
    _Plan(3, (("lab", (("alice", 3.5),)),)),                                               # a host alone
]


def handmade() -> list[tuple[RoomRegistry, Scenario]]:
    """The scenarios that each isolate one rule, built on fresh registries."""
    return [_build(plan) for plan in HANDMADE]


def generated(count: int = RANDOM_SCENARIOS, seed: str = "reap") -> list[tuple[RoomRegistry, Scenario]]:
    """``count`` seeded random scenarios: 1-3 rooms of 1-4 members, idle times on and around the timeout."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        timeout = rng.choice([300, 60, 3])
        idles = [0, timeout / 2, timeout - 0.5, timeout, timeout + 0.5, timeout * 2, -0.5]
        names = rng.sample(NAMES, len(NAMES))
        rooms = []
        for room in ROOMS[: rng.randint(1, 3)]:
            who = tuple((names.pop(), rng.choice(idles)) for _ in range(rng.randint(1, 4)))
            rooms.append((room, who))
        out.append(_build(_Plan(timeout, tuple(rooms))))
    return out


# --- the checker -------------------------------------------------------------------------------

def _as_decision(value: Any) -> Decision | None:
    """The learner's answer as a Decision (Seen objects accepted for names), or None if it is not one."""
    if not all(hasattr(value, f) for f in ("kicked", "room_closed", "events")):
        return None
    try:
        def names(values: Any) -> frozenset[str]:
            return frozenset(v.name if isinstance(v, Seen) else v for v in values)

        events = frozenset((v.room, v.name) if isinstance(v, Seen) else tuple(v) for v in value.events)
        decision = Decision(names(value.kicked), names(value.room_closed), events)
    except TypeError:   # not iterable, or unhashable items
        return None
    strings = all(isinstance(n, str) for n in decision.kicked | decision.room_closed)
    pairs = all(len(e) == 2 and all(isinstance(x, str) for x in e) for e in decision.events)
    return decision if strings and pairs else None


def _diagnose(scenario: Scenario, got: Decision, want: Decision) -> str:
    """The likely mistake behind the first difference between ``got`` and ``want``."""
    by_name = {m.name: m for m in scenario.members}
    timeout = _num(scenario.timeout)

    def idle(name: str) -> str:
        return _num(scenario.idle(by_name[name]))

    strangers = sorted((got.kicked | got.room_closed | {name for _, name in got.events}) - set(by_name))
    if strangers:
        return f"{strangers[0]!r} is not a member in this scenario: use the names in scenario.members"

    for name in sorted(got.kicked - want.kicked):
        if name in want.room_closed:
            return (f"{name} timed out too, but so did the host of {by_name[name].room!r}: the room closed first, so "
                    f"{name} gets room_closed, not kicked")
        if scenario.idle(by_name[name]) == scenario.timeout:
            return (f"{name} was idle exactly {timeout} s: a member is removed only when MORE than the timeout has "
                    "passed (> rather than >=)")
        if scenario.idle(by_name[name]) < 0:
            return (f"{name}'s last activity came after now (idle {idle(name)} s): not expired. Idle time is "
                    "now - last_activity")
        return f"{name} was idle {idle(name)} s, not more than the {timeout} s timeout: not expired"
    for name in sorted(want.kicked - got.kicked):
        role = f"the host of {by_name[name].room!r}" if by_name[name].is_host else "a guest"
        return f"{name} ({role}) was idle {idle(name)} s, more than the {timeout} s timeout: it gets kicked"
    for name in sorted(got.room_closed - want.room_closed):
        if by_name[name].is_host:
            return f"{name} is the host who timed out: the host gets kicked; room_closed goes to everyone else"
        return f"the host of {by_name[name].room!r} did not time out: {name}'s room stays open"
    for name in sorted(want.room_closed - got.room_closed):
        return (f"the host of {by_name[name].room!r} timed out, which closes the room: every other member, "
                f"{name} included, gets room_closed (whether or not they timed out too)")
    for room, name in sorted(got.events - want.events, key=str):
        if by_name[name].is_host:
            return f"{name} hosts {room!r}: a host's timeout closes the room, and a closed room gets no event"
        if any(m.room == room and m.is_host and m.name in want.kicked for m in scenario.members):
            return f"{room!r} closed (its host timed out): a closed room gets no timeout event"
        return f"{name} did not time out in {room!r}: no event for {name}"
    for room, name in sorted(want.events - got.events, key=str):
        return (f"{name} timed out in {room!r}, which stays open: the room gets a timeout event about {name}, "
                f"as the pair ({room!r}, {name!r})")
    return ""


def check_reap_decision(reap_decision: Callable[[Scenario], Any], *, count: int = RANDOM_SCENARIOS) -> CheckResult:
    """Compare ``reap_decision(scenario)`` with ``RoomRegistry.reap(now)`` on handmade and generated scenarios."""
    title = "reap_decision"
    passed, failures, hint = 0, [], ""
    for registry, scenario in handmade() + generated(count):
        want = server_decision(registry, scenario)
        try:
            answer = reap_decision(scenario)
        except NotImplementedError:
            return CheckResult.not_yet(title, TODO)
        except Exception as exc:  # the learner's bug, reported
            failures.append(f"{scenario}: your code raised {raised(exc)}")
            hint = hint or "read the scenario's fields: scenario.now, scenario.timeout, scenario.members"
            continue
        got = _as_decision(answer)
        if got == want:
            passed += 1
            continue
        failures.append(f"{scenario}: expected {want}, got {got if got is not None else show(answer)}")
        hint = hint or (SHAPE_HINT if got is None else _diagnose(scenario, got, want))
    if not failures:
        return CheckResult.success(title, passed)
    return CheckResult(title, passed=passed, failures=failures, hint=hint, total=passed + len(failures))
