"""Lesson 05 exercise: ``is_expired(last_activity, now, timeout)``, checked by ``check_is_expired``.

The expected answers are not written down here: each comes from the real rule, by asking a
:class:`tcrp_lab.rooms.RoomRegistry` whether it removes a member whose last activity was
``last_activity`` when it reaps at ``now``. So the exercise and the server cannot disagree.
"""

from __future__ import annotations

from collections.abc import Callable

from ..crypto import SeededRandom, SessionKeys
from ..protocol import Kicked
from ..rooms import RoomRegistry
from .common import CheckResult, check

__all__ = ["check_is_expired", "server_removes"]

_KEYS = SessionKeys(*(bytes([i]) * 32 for i in range(4)))   # never used to encrypt: the reaper sends nothing

#: (last_activity, now, timeout, what the case is about)
CASES = [
    (1000.0, 1299.0, 300, "one second before the timeout"),
    (1000.0, 1300.0, 300, "exactly at the timeout: the server removes a member only when MORE than the timeout "
                          "has passed"),
    (1000.0, 1300.5, 300, "half a second after the timeout"),
    (1000.0, 1301.0, 300, "301 seconds later, as in the lesson"),
    (1000.0, 1000.0, 300, "no time has passed"),
    (1000.0, 995.0, 300, "now is earlier than the last activity (a datagram was counted just after the reaper "
                         "read the clock): not expired"),
    (1000.0, 1650.0, 300, "long after the timeout"),
    (0.0, 3.0, 3, "exactly at a 3-second timeout, from time 0"),
    (12.5, 15.75, 3, "3.25 seconds after, with a 3-second timeout"),
    (12.5, 15.25, 3, "2.75 seconds after, with a 3-second timeout"),
]


def server_removes(last_activity: float, now: float, timeout: float) -> bool:
    """What the real server decides: does ``RoomRegistry.reap(now)`` remove this member?"""
    clock = [last_activity]
    registry = RoomRegistry(inactivity_timeout=timeout, clock=lambda: clock[0], rng=SeededRandom("is_expired"))
    member, _ = registry.create_room("room", "member", "", _KEYS)   # its last activity: the clock now
    return any(isinstance(d.payload, Kicked) and member in d.to for d in registry.reap(now))


def check_is_expired(is_expired: Callable[[float, float, float], bool]) -> CheckResult:
    """Compare ``is_expired(last_activity, now, timeout)`` with the server's own rule on edge cases."""
    cases = [(f"is_expired({last}, {now}, {timeout}), {about}",
              lambda last=last, now=now, timeout=timeout: _truth(is_expired(last, now, timeout)),
              server_removes(last, now, timeout))
             for last, now, timeout, about in CASES]
    return check("is_expired", cases)


def _truth(value: object) -> object:
    """True/False as they are; 0 and 1 count as False/True; anything else is shown as it came."""
    return bool(value) if isinstance(value, int) else value
