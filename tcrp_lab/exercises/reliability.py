"""Lesson 06 exercise: find the gaps in the room messages a client received, checked by ``check_gaps``.

Room messages are numbered from 1 with no gaps (TCRP.md §4), so a client that has seqs
``[1, 2, 5, 6, 9]`` knows it missed 3-4 and 7-8 and can ask ``resend`` for exactly those.
``missing_ranges(received)`` returns them as inclusive ``(first, last)`` pairs, in order.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterable
from typing import Any

from .common import CheckResult, raised

__all__ = ["check_gaps", "reference_missing_ranges"]

CALL_TIMEOUT = 2.0   #: seconds one call may take before the checker calls it an endless loop


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
    """Seqs 1..300, a third of them lost, some twice (retransmitted), in arrival (not room) order."""
    rng = random.Random(seed)
    kept = [s for s in range(1, 301) if rng.random() > 0.33]
    arrived = kept + rng.sample(kept, 20)
    rng.shuffle(arrived)
    return arrived


CASES: list[tuple[list[int], str]] = [
    ([1, 2, 5, 6, 9], "two gaps"),
    ([1, 2, 3], "nothing missing"),
    ([], "nothing received yet"),
    ([4], "only seq 4 arrived: the room counts from 1, so 1-3 are missing"),
    ([1, 3], "a single missing message is the range (2, 2)"),
    ([5, 1, 2], "arrival order is not room order"),
    ([1, 1, 2, 4, 4], "duplicates (a retransmission arrived twice)"),
    ([2, 4, 6, 8, 10], "every other message lost"),
    (_random_case(6), "300 seqs, a third lost, some twice, shuffled"),
]


class _NoReturn(Exception):
    """The learner's function did not return in time."""


def _bounded(fn: Callable[[list[int]], Any], arg: list[int], timeout: float) -> Any:
    """Call ``fn(arg)`` in a daemon thread; raise _NoReturn if it does not return in time."""
    outcome: list[tuple[bool, Any]] = []

    def run() -> None:
        try:
            outcome.append((True, fn(arg)))
        except Exception as exc:   # handed back to the caller's thread
            outcome.append((False, exc))

    thread = threading.Thread(target=run, name="check-gaps", daemon=True)
    thread.start()
    thread.join(timeout)
    if not outcome:
        raise _NoReturn(f"it did not return within {timeout:g} s (an endless loop?)")
    ok, value = outcome[0]
    if not ok:
        raise value
    return value


def _as_ranges(value: Any) -> Any:
    """Lists of [first, last] count as (first, last); anything else is compared (and shown) as it is."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        return value
    items = list(value)
    if all(isinstance(item, (list, tuple)) and len(item) == 2 for item in items):
        return [tuple(item) for item in items]
    return items


def _shown(seqs: list[Any], keep: int = 6) -> str:
    return repr(seqs) if len(seqs) <= 2 * keep else f"[{', '.join(map(repr, seqs[:keep]))}, ... ({len(seqs)} items)]"


def _difference(expected: list[tuple[int, int]], got: Any) -> str:
    """Say how ``got`` differs from ``expected``; short lists in full, long ones at their first difference."""
    if not isinstance(got, list) or max(len(expected), len(got)) <= 6:
        return f"expected {expected!r}, got {got!r}"
    at = next((i for i, (e, g) in enumerate(zip(expected, got)) if e != g), min(len(expected), len(got)))
    first_expected = expected[at] if at < len(expected) else "nothing more"
    first_got = got[at] if at < len(got) else "nothing more"
    return (f"expected {len(expected)} ranges, got {len(got)}; they differ first at item {at}: "
            f"expected {first_expected!r}, got {first_got!r}")


def check_gaps(missing_ranges: Callable[[list[int]], Any], *, timeout: float = CALL_TIMEOUT) -> CheckResult:
    """Compare ``missing_ranges(received)`` with the right (first, last) ranges on typical arrivals.

    Each call gets ``timeout`` seconds; after one that does not return, the rest are not run (the
    endless loop keeps running in its thread until the kernel restarts).
    """
    result = CheckResult("missing_ranges")
    for seqs, about in CASES:
        expected = reference_missing_ranges(seqs)
        what = f"missing_ranges({_shown(seqs)}), {about}"
        try:
            got = _as_ranges(_bounded(missing_ranges, list(seqs), timeout))
        except _NoReturn as exc:
            result.failures.append(f"{what}: {exc}. The other cases were not run; restart the kernel to stop it.")
            break
        except Exception as exc:  # the learner's bug, reported rather than raised
            last = raised(exc)
            result.failures.append(f"{what}: your code raised {last}")
            continue
        if got == expected:
            result.passed += 1
        else:
            result.failures.append(f"{what}: {_difference(expected, got)}")
    return result
