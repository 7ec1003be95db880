"""Lesson 04 exercise: ``enter()``, IRC's JOIN on the real room registry, checked by ``check_enter``.

IRC's JOIN creates a channel that does not exist and makes its creator the operator.
``enter(registry, room, username, keys)`` does the same with :class:`tcrp_lab.rooms.RoomRegistry`:
join ``room``, or create it if there is none, and return what ``join_room`` or ``create_room``
returned. Written as "look, then act" it is right when it runs alone and wrong under threads:
another connection can create or close the room between the look and the act.

The checker does not wait for an unlucky moment: it makes one, for every moment. It hands the
learner's function a registry that notes each call (:class:`Watched`) and, right after the
learner's k-th call, lets another connection take its step on the same registry from a thread of
its own. Every outcome must be one the two could give had they run one after the other: the
expected outcomes come from the real registry too, running the naive answer (right when alone)
before, between or after the other connection's steps. Everything is bounded: at most MAX_CALLS
calls per ``enter()``, every thread joined with a timeout, so a deadlock or an endless loop is
reported, never waited for.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..crypto import SeededRandom, SessionKeys
from ..protocol import ProtocolError
from ..rooms import Member, RoomRegistry
from .common import CheckResult, raised, show

__all__ = ["SCENARIOS", "Scenario", "Step", "Watched", "check_enter", "enter_alone"]

ROOM = "lab"
KEYS = SessionKeys(*(bytes([i]) * 32 for i in range(4)))   # never used to encrypt: nothing is sent
MAX_CALLS = 20          #: registry calls one enter() may make before the checker calls it a loop
LAST_SLOT = 6           #: the other connection's steps are slipped in after the learner's call 1..LAST_SLOT
STEP_TIMEOUT = 2.0      #: seconds for one step of the other connection
ENTER_TIMEOUT = 5.0     #: seconds for one enter()

TODO = ("Write enter(registry, room, username, keys): join the room, or create it if there is none, "
        "and return what join_room or create_room returned. It must stay right when another connection "
        "creates or closes the room at the same moment.")

ALONE_HINT = ("with nobody else around, enter() joins a room that exists and creates one that does not; it "
              "returns what join_room or create_room returned: the pair (member, deliveries)")
TAKEN_HINT = ("only room_exists and no_such_room mean 'the room changed under you: try the other operation'; "
              "any other refusal (here username_taken) is the answer for the client: let the ProtocolError out")
EXISTS_HINT = ("another connection created the room after you looked, and create_room refused with room_exists. "
               "That refusal is the registry's own check, made under its lock: take it as the answer and join "
               "instead. (A lock of your own would not help: the other connection does not take it.)")
CLOSED_HINT = ("the room closed after you looked (or after create_room said room_exists), and join_room refused "
               "with no_such_room: take that as the answer and create the room instead")
LOOP_HINT = ("the room changed again after your second try: one retry is not enough. Loop: join; on "
             "no_such_room create; on room_exists join again; and give up after a few turns")
ENDLESS_HINT = ("retry only on room_exists and no_such_room (any other refusal is the client's answer), and give "
                "up after a few turns")
DEADLOCK_HINT = ("do not take the registry's lock yourself: each of its methods takes it, and a threading.Lock "
                 "waits forever for a thread that already holds it. The registry's own checks, made under that "
                 "lock, are what you can rely on")


@dataclass(frozen=True)
class Step:
    """One thing another connection does to the room: ``who`` creates it, joins it or leaves it."""

    who: str
    action: str     # "create" | "join" | "leave"

    def __str__(self) -> str:
        return {"create": f"{self.who} creates {ROOM!r}", "join": f"{self.who} joins {ROOM!r}",
                "leave": f"{self.who} leaves"}[self.action]

    def take(self, registry: RoomRegistry, members: dict[str, Member]) -> str:
        """Do it on ``registry`` as the server would; what happened, in words."""
        if self.action == "leave":
            member = members.pop(self.who, None)
            if member is None:
                return f"{self.who} is not a member: nothing to leave"
            registry.leave(member)
            return f"{self.who} left" + (f" and {ROOM!r} closed" if member.is_host else "")
        operation = registry.create_room if self.action == "create" else registry.join_room
        try:
            member, _ = operation(ROOM, self.who, "", KEYS)
        except ProtocolError as exc:
            return f"{self.who}'s {operation.__name__}({ROOM!r}) was refused ({exc.code.value})"
        registry.hello(member)   # its first datagram: a full member, not a provisional one
        members[self.who] = member
        return f"{self.who}'s {operation.__name__}({ROOM!r}) succeeded"


@dataclass(frozen=True)
class Scenario:
    """A room's state before bob's ``enter()``, and the steps another connection takes meanwhile."""

    about: str
    setup: tuple[Step, ...] = ()
    others: tuple[Step, ...] = ()
    hint: str = ""


CAROL = (Step("carol", "create"),)
SCENARIOS = [
    Scenario(f"{ROOM!r} does not exist", hint=ALONE_HINT),
    Scenario(f"{ROOM!r} exists, hosted by carol", CAROL, hint=ALONE_HINT),
    Scenario(f"{ROOM!r} is carol's and already has a member called bob", CAROL + (Step("bob", "join"),),
             hint=TAKEN_HINT),
    Scenario(f"{ROOM!r} does not exist, and alice creates it", others=(Step("alice", "create"),), hint=EXISTS_HINT),
    Scenario(f"{ROOM!r} is carol's, and carol leaves (the room closes)", CAROL, (Step("carol", "leave"),),
             hint=CLOSED_HINT),
    Scenario(f"{ROOM!r} is carol's; carol leaves, then dave creates {ROOM!r} again", CAROL,
             (Step("carol", "leave"), Step("dave", "create")), hint=LOOP_HINT),
    Scenario(f"{ROOM!r} does not exist; alice creates it, then leaves", (),
             (Step("alice", "create"), Step("alice", "leave")), hint=LOOP_HINT),
]


def enter_alone(registry: Any, room: str, username: str, keys: SessionKeys) -> Any:
    """Look, then act: right when nothing else touches the registry (the checker's reference)."""
    if registry.room(room) is None:
        return registry.create_room(room, username, "", keys)
    return registry.join_room(room, username, "", keys)


# --- running one interleaving ------------------------------------------------------------------

class _Abort(BaseException):
    """Ends the learner's enter() from inside the registry (a BaseException: ``except Exception`` lets it by)."""


class Watched:
    """A registry that tells ``on_call`` about each call bob's enter() makes, right after it returns."""

    def __init__(self, registry: RoomRegistry, on_call: Callable[[str], None]):
        self._registry = registry
        self._on_call = on_call

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._registry, name)
        if name.startswith("_") or not callable(attr):
            return attr   # the learner reached inside: their business

        def call(*args: Any, **kwargs: Any) -> Any:
            shown = ", ".join(repr(a) for a in args[:2]) + (", …" if len(args) > 2 else "")
            try:
                result = attr(*args, **kwargs)
            except ProtocolError as exc:
                self._on_call(f"bob's {name}({shown}) was refused ({exc.code.value})")
                raise
            self._on_call(f"bob's {name}({shown}) {_brief(result)}")
            return result

        return call


def _brief(result: Any) -> str:
    """What a registry call gave, in words ("succeeded", "returned None", ...)."""
    if isinstance(result, tuple) and result and isinstance(result[0], Member):
        return "succeeded"
    if hasattr(result, "members") and hasattr(result, "name"):
        return f"returned the room (host {_host(result)})"
    return f"returned {show(result, 60)}"


def _host(room: Any) -> str:
    return next((name for name, m in room.members.items() if m.is_host), "nobody")


@dataclass(frozen=True)
class Outcome:
    """What bob got and what the room looks like afterwards (compared), and how it came about (shown)."""

    bob: str
    room: str
    others: tuple[str, ...]
    story: tuple[str, ...] = ()

    @property
    def key(self) -> tuple[str, str, tuple[str, ...]]:
        return self.bob, self.room, self.others

    def __str__(self) -> str:
        return f"{self.bob}; {self.room}"


class _Late(Exception):
    """A thread that did not finish within its time."""


class _Stuck(Exception):
    """A thread did not finish in time, or looped: reported, and the check stops (the next case would too)."""

    def __init__(self, problem: str, hint: str):
        super().__init__(problem)
        self.hint = hint


def _registry(label: str) -> RoomRegistry:
    return RoomRegistry(clock=lambda: 1000.0, rng=SeededRandom(f"check_enter {label}"), wall_clock=lambda: 0.0)


def _room_now(registry: RoomRegistry) -> str:
    room = registry.room(ROOM)
    if room is None:
        return f"no room {ROOM!r}"
    return f"{ROOM!r} hosted by {_host(room)}, members {', '.join(sorted(room.members))}"


def _bob(result: Any) -> str:
    if isinstance(result, tuple) and len(result) == 2 and isinstance(result[0], Member):
        member = result[0]
        if member.username == "bob" and member.room.name == ROOM:
            return f"bob entered as {'host' if member.is_host else 'guest'}"
        return f"enter() returned the member {member.username!r} of {member.room.name!r}"
    return f"enter() returned {show(result, 80)}"


def _in_thread(work: Callable[[], Any], timeout: float, name: str) -> Any:
    """``work()`` in a daemon thread, waited for at most ``timeout`` seconds (then _Late)."""
    box: list[Any] = []

    def run() -> None:
        try:
            box.append(("ok", work()))
        except BaseException as exc:  # handed to the caller
            box.append(("error", exc))

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    thread.join(timeout)
    if not box:
        raise _Late(name)
    kind, value = box[0]
    if kind == "error":
        raise value
    return value


def run_interleaving(enter: Callable[..., Any], scenario: Scenario, slots: tuple[int, ...], *,
                     timeout: float = ENTER_TIMEOUT, step_timeout: float = STEP_TIMEOUT) -> Outcome | None:
    """Bob's ``enter()`` with ``scenario.others[i]`` taken right after bob's call ``slots[i]``.

    None if bob made fewer calls than a slot (that interleaving is another one's twin). Raises
    NotImplementedError for the stub, _Stuck for a thread that hung, and returns the Outcome otherwise.
    """
    registry = _registry(f"{scenario.about} {slots}")
    members: dict[str, Member] = {}
    for step in scenario.setup:
        step.take(registry, members)
    story: list[str] = []
    others: list[str] = []
    pending = list(zip(slots, scenario.others))
    calls = [0]
    trouble: list[_Stuck] = []

    def on_call(what: str) -> None:
        calls[0] += 1
        story.append(what)
        if calls[0] > MAX_CALLS:
            trouble.append(_Stuck(f"enter() was still calling the registry after {MAX_CALLS} calls: a loop that "
                                  "never ends", ENDLESS_HINT))
            raise _Abort()
        while pending and pending[0][0] == calls[0]:
            _, step = pending.pop(0)
            try:
                text = _in_thread(lambda step=step: step.take(registry, members), step_timeout, f"conn-{step.who}")
            except _Late:
                trouble.append(_Stuck(f"{step} (another connection) waited more than {step_timeout:g} s for the "
                                      "registry: something your enter() holds blocks it", DEADLOCK_HINT))
                raise _Abort() from None
            story.append(text)
            others.append(text)

    try:
        result = _in_thread(lambda: enter(Watched(registry, on_call), ROOM, "bob", KEYS), timeout, "check-enter-bob")
    except _Late:
        raise _Stuck(f"enter() did not return within {timeout:g} s, after {calls[0]} registry call(s): a deadlock?",
                     DEADLOCK_HINT) from None
    except NotImplementedError:
        raise
    except _Abort:
        raise trouble[0] from None
    except ProtocolError as exc:
        bob = f"bob refused ({exc.code.value})"
    except Exception as exc:  # the learner's bug: shown as the outcome
        bob = f"enter() raised {raised(exc)}"
    else:
        bob = _bob(result)
    if trouble:   # an _Abort the learner's code swallowed
        raise trouble[0]
    if pending:
        return None
    return Outcome(bob, _room_now(registry), tuple(others), tuple(story))


def expected_outcomes(scenario: Scenario) -> list[tuple[str, Outcome]]:
    """(when, outcome) for bob's enter alone, before, between and after the other connection's steps."""
    outcomes = []
    for i in range(len(scenario.others) + 1):
        registry, members, others = _registry(f"{scenario.about} alone {i}"), {}, []
        for step in scenario.setup:
            step.take(registry, members)
        others += [step.take(registry, members) for step in scenario.others[:i]]
        try:
            bob = _bob(enter_alone(registry, ROOM, "bob", KEYS))
        except ProtocolError as exc:
            bob = f"bob refused ({exc.code.value})"
        others += [step.take(registry, members) for step in scenario.others[i:]]
        if not scenario.others:
            when = "alone"
        elif i == len(scenario.others):
            when = "had bob's enter() come last"
        else:
            when = f"had bob's enter() come before {scenario.others[i]}"
        outcomes.append((when, Outcome(bob, _room_now(registry), tuple(others))))
    return outcomes


def schedules(scenario: Scenario) -> list[tuple[int, ...]]:
    """Every way to slip the other steps, in order, after bob's calls 1..LAST_SLOT (() if none)."""
    slots = range(1, LAST_SLOT + 1)
    return list(itertools.combinations_with_replacement(slots, len(scenario.others)))


def check_enter(enter: Callable[..., Any], *, timeout: float = ENTER_TIMEOUT,
                step_timeout: float = STEP_TIMEOUT) -> CheckResult:
    """Run ``enter(registry, room, username, keys)`` on the real registry, alone and interleaved.

    Each case is one scenario and one interleaving; its outcome (what bob got, who is in the room)
    must be one of those the two connections give one after the other. The first case that differs
    is shown with the calls that led to it.
    """
    title = "enter(): join, or create"
    passed, failed, failures, hint = 0, 0, [], ""
    for scenario in SCENARIOS:
        expected = expected_outcomes(scenario)
        first = True   # one failure per scenario is shown: its other interleavings fail alike
        for slots in schedules(scenario):
            try:
                got = run_interleaving(enter, scenario, slots, timeout=timeout, step_timeout=step_timeout)
            except NotImplementedError:
                return CheckResult.not_yet(title, TODO)
            except _Stuck as exc:
                return CheckResult(title, passed=passed, failures=[*failures, f"{scenario.about}: {exc}"],
                                   hint=hint or exc.hint, total=passed + failed + 1)
            if got is None:
                continue
            if any(got.key == want.key for _, want in expected):
                passed += 1
                continue
            failed += 1
            hint = hint or scenario.hint
            if first:   # the first in full; the others as stories
                failures.append(_story(scenario, got, None if failures else expected))
                first = False
    if not failures:
        return CheckResult.success(title, passed)
    return CheckResult(title, passed=passed, failures=failures, hint=hint, total=passed + failed)


def _story(scenario: Scenario, got: Outcome, expected: list[tuple[str, Outcome]] | None = None) -> str:
    """The scenario, the calls in the order they happened, what was expected (if given) and what came."""
    story = "; then ".join(got.story) if got.story else "enter() made no registry call"
    wanted = "" if expected is None else " Expected: " + " or ".join(f"{w} ({when})" for when, w in expected) + "."
    return f"{scenario.about}: {story}.{wanted} Got: {got}"
