"""Lesson 06 exercise: find the exact gaps in the room messages a client received, checked by ``check_gaps``.

Room messages are numbered from 1 with no gaps (TCRP.md §4), so a client that has seqs
``[1, 2, 5, 6, 9]`` knows it missed 3-4 and 7-8. ``missing_ranges(received)`` returns them as
inclusive ``(first, last)`` pairs, in order: what a selective-repeat client would ask for. (The
tcrp_lab client asks less precisely, go-back-N: from its first gap to the highest seq it knows of.)
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from typing import Any

from .common import Case, CheckResult, check, run_bounded

__all__ = ["check_gaps", "reference_missing_ranges"]

CALL_TIMEOUT = 2.0   #: seconds one call may take before the checker calls it an endless loop

TODO = ("Write `missing_ranges(received)`: the seqs from 1 to the highest one received that did not arrive, "
        "as inclusive `(first, last)` pairs in order, e.g. `[1, 2, 5, 6, 9]` → `[(3, 4), (7, 8)]`.")


def reference_missing_ranges(received: Iterable[int]) -> list[tuple[int, int]]:
    """The answer: every run of seqs from 1 to the highest received that did not arrive."""
    have = set(received)
    ranges: list[tuple[int, int]] = []
    for seq in range(1, max(have, default=0) + 1):
        if seq in have:
            continue
        if ranges and ranges[-1][1] == seq - 1:
            ranges[-1] = (ranges[-1][0], seq)
        else:
            ranges.append((seq, seq))
    return ranges


def _random_case(seed: int) -> list[int]:
    """Seqs 1..60, a fifth of them lost, some twice (retransmitted), in arrival (not room) order."""
    rng = random.Random(seed)
    kept = [s for s in range(1, 61) if rng.random() > 0.2]
    arrived = kept + rng.sample(kept, 6)
    rng.shuffle(arrived)
    return arrived


_SORT = "datagrams arrive in any order: walk the seqs sorted, not as they came"
_FROM_ONE = "the room counts from 1: whatever is below the first seq received is missing too"
_INCLUSIVE = ("ranges are inclusive: a gap between 2 and 5 is (3, 4) — first = the seq after the one you had, "
              "last = the seq before the next one you had")

#: (seqs received, what the case is about, the likely mistake when it fails)
CASES: list[tuple[list[int], str, str]] = [
    ([1, 2, 5, 6, 9], "two gaps", _INCLUSIVE),
    ([1, 2, 3], "nothing missing", "no seq is missing between 1 and 3: return an empty list"),
    ([], "nothing received yet", "with nothing received, nothing is known to be missing: return []"),
    ([4], "only seq 4 arrived: the room counts from 1, so 1-3 are missing", _FROM_ONE),
    ([1, 3], "a single missing message is the range (2, 2)",
     "one missing seq is still a pair, (2, 2), with first == last"),
    ([5, 1, 2], "arrival order is not room order", _SORT),
    ([1, 1, 2, 4, 4], "duplicates (a retransmission arrived twice)",
     "a seq that arrived twice is not a gap: drop duplicates first (set())"),
    ([2, 4, 6, 8, 10], "every other message lost", _FROM_ONE + "; and " + _INCLUSIVE),
    (_random_case(6), "60 seqs, a fifth lost, some twice, shuffled",
     "sort the distinct seqs, then note each jump; a run of several lost seqs is one range"),
]


def _shown(seqs: list[Any], keep: int = 6) -> str:
    return repr(seqs) if len(seqs) <= 2 * keep else f"[{', '.join(map(repr, seqs[:keep]))}, ... ({len(seqs)} items)]"


def _as_ranges(value: Any) -> Any:
    """Lists of [first, last] count as (first, last); anything else is compared as it is."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        return value
    items = list(value)
    if all(isinstance(item, (list, tuple)) and len(item) == 2 for item in items):
        return [tuple(item) for item in items]
    return items


class _Bounded:
    """Calls the learner's function with :func:`~tcrp_lab.exercises.common.run_bounded`: at most
    ``timeout`` seconds per call. After one call that did not return (an endless loop), the later
    ones are not started: each would only add seconds to say the same."""

    def __init__(self, fn: Callable[[list[int]], Any], timeout: float):
        self.fn, self.timeout, self.stuck = fn, timeout, False

    def __call__(self, arg: list[int]) -> Any:
        if self.stuck:
            raise TimeoutError("not run: an earlier call never returned")
        status, value = run_bounded(lambda: self.fn(arg), self.timeout)
        if status == "timeout":
            self.stuck = True
            raise TimeoutError(f"it did not return within {self.timeout:g} s (an endless loop?)")
        if status == "raised":
            raise value
        return value


def check_gaps(missing_ranges: Callable[[list[int]], Any], *, timeout: float = CALL_TIMEOUT) -> CheckResult:
    """Compare ``missing_ranges(received)`` with the right (first, last) ranges on typical arrivals.

    Each call gets a copy of the input and ``timeout`` seconds.
    """
    call = _Bounded(missing_ranges, timeout)
    cases = [Case(f"missing_ranges({_shown(seqs)}), {about}",
                  lambda seqs=seqs: _as_ranges(call(list(seqs))),
                  reference_missing_ranges(seqs), hint)
             for seqs, about, hint in CASES]
    return check("missing_ranges", cases, todo=TODO)
