"""Lesson 04 exercise: make a toy room registry thread-safe; ``check_registry`` hammers it.

:class:`ToyRegistry` is the shape of :class:`tcrp_lab.rooms.RoomRegistry` in miniature: a dict of
members and a counter, changed by read-check-write steps. Called from one thread it is right;
called from many at once it gives two people the same number (a lost update), lets a name in
twice, or removes a member twice. The learner writes a class with the same methods that stays
right under threads; the checker runs it from many threads at once and says what went wrong.

To make a race show up on every run rather than once in a million, the checker passes
``pause=`` a function that lets other threads run (``time.sleep(0)``); a registry calls it where
real work would happen between reading and writing (hashing a password, logging).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from .common import CheckResult, raised

__all__ = ["ToyRegistry", "check_registry"]

THREADS = 16          #: threads started at once by each hammer
PER_THREAD = 25       #: operations per thread
DEADLINE = 10.0       #: seconds for one hammer before the checker calls it a deadlock


_DEADLOCK_HINT = ("A threading.Lock taken again by the thread that holds it waits forever: take it once per "
                  "method (or use threading.RLock)")


def _yield() -> None:
    time.sleep(0)   # releases the GIL: another thread runs between a read and its write


class ToyRegistry:
    """The members of one room, numbered in the order they joined. Right in one thread only.

    ``pause`` stands for work done between reading and writing shared state; the checker passes a
    function that lets other threads run there.
    """

    def __init__(self, pause: Callable[[], None] = _yield):
        self.pause = pause
        self.members: dict[str, int] = {}   # name -> the number given at join
        self.count = 0                      # numbers given so far

    def join(self, name: str) -> int | None:
        """Add ``name`` and return its number (1, 2, 3, ...), or None if the name is taken."""
        if name in self.members:            # check ...
            return None
        number = self.count + 1             # read ...
        self.pause()
        self.count = number                 # ... write: another thread may have written meanwhile
        self.members[name] = number         # ... act on a check that may be stale
        return number

    def leave(self, name: str) -> bool:
        """Remove ``name``; True if it was a member, False if not."""
        if name not in self.members:
            return False
        self.pause()
        self.members.pop(name, None)
        return True


# --- the checker -------------------------------------------------------------------------------

class _Broken(Exception):
    """The learner's code failed in a way that ends this part of the check."""



def _make(factory: Callable[..., Any]) -> Any:
    try:
        registry = factory(pause=_yield)
    except TypeError:
        raise _Broken("your class must accept pause= (ToyRegistry.__init__ shows how): "
                      "the checker passes a function that lets other threads run") from None
    except Exception as exc:
        raise _Broken(f"making a registry raised {raised(exc)}") from None
    for method in ("join", "leave"):
        if not callable(getattr(registry, method, None)):
            raise _Broken(f"your registry has no {method}() method")
    return registry


def _hammer(work: Callable[[int], list[Any]], timeout: float) -> list[Any]:
    """Run ``work(thread_index)`` in THREADS threads started together; all their results, in order.

    Bounded: after ``timeout`` seconds the checker reports a deadlock and leaves the (daemon)
    threads behind.
    """
    barrier = threading.Barrier(THREADS)
    results: list[list[Any] | None] = [None] * THREADS
    errors: list[str] = []

    def run(i: int) -> None:
        try:
            barrier.wait(timeout)
            results[i] = work(i)
        except threading.BrokenBarrierError:
            pass
        except Exception as exc:  # the learner's bug, reported
            errors.append(raised(exc))

    threads = [threading.Thread(target=run, args=(i,), name=f"check-registry-{i}", daemon=True)
               for i in range(THREADS)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    if any(thread.is_alive() for thread in threads):
        barrier.abort()
        raise _Broken(f"the threads did not finish within {timeout:g} s: a deadlock? " + _DEADLOCK_HINT)
    if errors:
        raise _Broken(f"your code raised {errors[0]} when called from {THREADS} threads at once")
    return [r for per_thread in results for r in (per_thread or [])]


def _sequential(factory: Callable[..., Any], timeout: float) -> str | None:
    """One thread: the rules themselves (a lock must not change them). Bounded, as a lock may hang."""
    registry = _make(factory)
    steps = [("join('alice')", lambda: registry.join("alice"), 1),
             ("then join('bob')", lambda: registry.join("bob"), 2),
             ("then join('alice') again", lambda: registry.join("alice"), None),
             ("then leave('alice')", lambda: registry.leave("alice"), True),
             ("then leave('alice') again", lambda: registry.leave("alice"), False),
             ("then join('carol')", lambda: registry.join("carol"), 3)]
    outcome: list[str | None] = []

    def run() -> None:
        for what, step, expected in steps:
            try:
                got = step()
            except Exception as exc:
                outcome.append(f"{what} raised {raised(exc)}")
                return
            if got != expected:
                outcome.append(f"{what} should return {expected!r}, but returned {got!r}")
                return
        outcome.append(None)

    thread = threading.Thread(target=run, name="check-registry", daemon=True)
    thread.start()
    thread.join(timeout)
    if not outcome:
        raise _Broken(f"a call did not return within {timeout:g} s: a deadlock? " + _DEADLOCK_HINT)
    return outcome[0] and f"in one thread, {outcome[0]}"


def _distinct_names(factory: Callable[..., Any], timeout: float) -> str | None:
    registry = _make(factory)
    total = THREADS * PER_THREAD
    numbers = _hammer(lambda i: [registry.join(f"user-{i}-{k}") for k in range(PER_THREAD)], timeout)
    if any(n is None for n in numbers):
        refused = sum(n is None for n in numbers)
        return (f"{THREADS} threads joined {total} different names: {refused} joins were refused although "
                "every name was free")
    repeated = sorted(n for n, c in Counter(numbers).items() if c > 1)
    if repeated:
        n = repeated[0]
        return (f"{THREADS} threads joined {total} different names: lost updates. {len(repeated)} number(s) "
                f"were given to more than one member (number {n} to {Counter(numbers)[n]}), because two threads "
                "read the count before either wrote it back")
    count = getattr(registry, "count", None)
    if count != total:
        return (f"{THREADS} threads joined {total} different names: the count is {count!r}, not {total}: "
                "updates were lost")
    members = getattr(registry, "members", None)
    if isinstance(members, dict) and len(members) != total:
        return f"{THREADS} threads joined {total} different names, but {len(members)} are members: some were lost"
    if sorted(numbers) != list(range(1, total + 1)):
        return f"{THREADS} threads joined {total} different names: the numbers given are not 1 to {total}"
    return None


def _same_names(factory: Callable[..., Any], timeout: float) -> str | None:
    registry = _make(factory)
    names = [f"user-{k}" for k in range(PER_THREAD)]
    numbers = _hammer(lambda i: [(name, registry.join(name)) for name in names], timeout)
    accepted = Counter(name for name, number in numbers if number is not None)
    twice = [name for name in names if accepted[name] > 1]
    if twice:
        return (f"{THREADS} threads all joined the same {len(names)} names: {len(twice)} name(s) were let in more "
                f"than once ({twice[0]!r} {accepted[twice[0]]} times), because several threads saw the name free "
                "before any of them added it (check-then-act)")
    never = [name for name in names if accepted[name] == 0]
    if never:
        return f"{THREADS} threads all joined the same {len(names)} names: {never[0]!r} was never let in"
    return None


def _same_leaves(factory: Callable[..., Any], timeout: float) -> str | None:
    registry = _make(factory)
    names = [f"user-{k}" for k in range(PER_THREAD)]
    for name in names:
        registry.join(name)
    results = _hammer(lambda i: [(name, registry.leave(name)) for name in names], timeout)
    removed = Counter(name for name, gone in results if gone)
    twice = [name for name in names if removed[name] > 1]
    if twice:
        return (f"{THREADS} threads all removed the same {len(names)} members: {len(twice)} were removed more than "
                f"once ({twice[0]!r} {removed[twice[0]]} times): two threads saw the member before either removed it")
    kept = [name for name in names if removed[name] == 0]
    if kept:
        return f"{THREADS} threads all removed the same {len(names)} members: {kept[0]!r} was never removed"
    return None


def check_registry(factory: Callable[..., Any], *, timeout: float = DEADLINE) -> CheckResult:
    """Check a registry class (or factory) like :class:`ToyRegistry` for thread safety.

    ``factory(pause=...)`` must make a registry with ``join(name) -> int | None`` and
    ``leave(name) -> bool``. First its rules in one thread, then three hammers of
    THREADS x PER_THREAD calls started together: different names (no number given twice, none
    lost), the same names (each let in once), the same leaves (each removed once). A part that
    takes longer than ``timeout`` seconds is reported as a deadlock.
    """
    result = CheckResult("thread-safe registry")
    try:
        _make(factory)
    except _Broken as exc:
        result.failures.append(str(exc))
        return result
    parts = [("rules in one thread", _sequential), ("joins of different names", _distinct_names),
             ("joins of the same names", _same_names), ("leaves of the same members", _same_leaves)]
    for title, part in parts:
        try:
            problem = part(factory, timeout)
        except _Broken as exc:
            problem = f"{title}: {exc}"
        if problem:
            result.failures.append(problem)
            if "deadlock" in problem:
                break   # every later part would wait as long again
        else:
            result.passed += 1
    return result
