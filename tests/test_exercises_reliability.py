"""Lesson 06's checker: a right missing_ranges passes; the typical wrong ones fail, saying on which input."""

from __future__ import annotations

import threading

from tcrp_lab.exercises import check_gaps
from tcrp_lab.exercises.reliability import CASES, reference_missing_ranges


def right(received):
    ranges, expected = [], 1
    for seq in sorted(set(received)):
        if seq > expected:
            ranges.append((expected, seq - 1))
        expected = seq + 1
    return ranges


def in_arrival_order(received):
    """Forgets that datagrams arrive out of order."""
    ranges, expected = [], 1
    for seq in received:
        if seq > expected:
            ranges.append((expected, seq - 1))
        expected = seq + 1
    return ranges


def from_the_first_received(received):
    """Forgets that the room counts from 1."""
    seqs = sorted(set(received))
    return [(a + 1, b - 1) for a, b in zip(seqs, seqs[1:]) if b > a + 1]


def off_by_one(received):
    return [(first, last + 1) for first, last in right(received)]


def test_the_reference_gives_the_lessons_example():
    assert reference_missing_ranges([1, 2, 5, 6, 9]) == [(3, 4), (7, 8)]
    assert reference_missing_ranges([]) == [] and reference_missing_ranges([3]) == [(1, 2)]


def test_a_right_answer_passes_and_lists_of_lists_count():
    result = check_gaps(right)
    assert result and result.passed == len(CASES)
    assert check_gaps(lambda received: [list(r) for r in right(received)])


def test_arrival_order_is_caught():
    result = check_gaps(in_arrival_order)
    assert not result
    assert ("missing_ranges([5, 1, 2]), arrival order is not room order: expected [(3, 4)], got [(1, 4)]"
            in result.failures)


def test_counting_from_the_first_received_is_caught():
    result = check_gaps(from_the_first_received)
    assert not result
    assert result.failures[0] == ("missing_ranges([4]), only seq 4 arrived: the room counts from 1, so 1-3 are "
                                  "missing: expected [(1, 3)], got []")


def test_a_long_difference_is_summarised_at_its_first_item():
    result = check_gaps(off_by_one)
    assert not result
    long = [f for f in result.failures if "items)]" in f]
    assert len(long) == 1 and "they differ first at item 0" in long[0] and len(long[0]) < 300


def test_exceptions_and_endless_loops_are_reported_not_raised():
    assert "your code raised TypeError" in str(check_gaps(lambda received: sorted(received) + None))
    release = threading.Event()
    result = check_gaps(lambda received: release.wait(5), timeout=0.2)
    release.set()   # let the stuck call end
    assert not result and len(result.failures) == 1 and "did not return within 0.2 s" in result.failures[0]


def test_the_input_is_a_copy():
    def sorts_in_place(received):
        received.sort()
        return right(received)

    assert check_gaps(sorts_in_place)
    assert CASES[5][0] == [5, 1, 2]
