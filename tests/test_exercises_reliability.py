"""Lesson 06's checker: a stub is "not yet", each typical wrong answer is named with its likely mistake, a right one passes."""

from __future__ import annotations


from tcrp_lab.exercises import check_gaps
from tcrp_lab.exercises.reliability import CASES, reference_missing_ranges


def stub(received):
    # YOUR CODE HERE
    raise NotImplementedError()


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
    """Makes the ranges one too long: (first, next received) instead of (first, next received - 1)."""
    return [(first, last + 1) for first, last in right(received)]


def keeps_duplicates(received):
    """Pairs neighbours in sorted order, but a seq that arrived twice is its own neighbour."""
    seqs = [0] + sorted(received)
    return [(a + 1, b - 1) for a, b in zip(seqs, seqs[1:]) if b != a + 1]


def lists_the_seqs(received):
    """Returns the missing seqs one by one, not as ranges."""
    have = set(received)
    return [s for s in range(1, max(have, default=0) + 1) if s not in have]


def test_the_reference_gives_the_lessons_example():
    assert reference_missing_ranges([1, 2, 5, 6, 9]) == [(3, 4), (7, 8)]
    assert reference_missing_ranges([]) == [] and reference_missing_ranges([3]) == [(1, 2)]


def test_a_stub_is_not_yet_and_says_what_to_write():
    result = check_gaps(stub)
    assert result.status == "not_yet" and not result
    assert "missing_ranges(received)" in result.todo and "(first, last)" in result.todo
    assert "Traceback" not in str(result) and "NotImplementedError" not in str(result)


def test_a_right_answer_passes_and_lists_of_lists_count():
    result = check_gaps(right)
    assert result.status == "passed" and result.passed == len(CASES)
    assert check_gaps(lambda received: [list(r) for r in right(received)])


def test_arrival_order_is_caught_with_its_hint():
    result = check_gaps(in_arrival_order)
    assert result.status == "failed"
    assert ("missing_ranges([5, 1, 2]), arrival order is not room order: expected [(3, 4)], got [(1, 4)]"
            == result.failures[0])
    assert "sorted" in result.hint


def test_counting_from_the_first_received_is_caught_with_its_hint():
    result = check_gaps(from_the_first_received)
    assert result.status == "failed"
    assert result.failures[0] == ("missing_ranges([4]), only seq 4 arrived: the room counts from 1, so 1-3 are "
                                  "missing: expected [(1, 3)], got []")
    assert "counts from 1" in result.hint


def test_each_typical_mistake_fails_first_where_its_hint_names_it():
    for answer, first_case, hint_words in [
        (off_by_one, "missing_ranges([1, 2, 5, 6, 9]), two gaps", "inclusive"),
        (keeps_duplicates, "missing_ranges([1, 1, 2, 4, 4]), duplicates", "set()"),
        (lists_the_seqs, "missing_ranges([1, 2, 5, 6, 9]), two gaps", "inclusive"),
    ]:
        result = check_gaps(answer)
        assert result.status == "failed", answer.__name__
        assert result.failures[0].startswith(first_case), (answer.__name__, result.failures[0])
        assert hint_words in result.hint, (answer.__name__, result.hint)
        assert 0 <= result.passed < len(CASES)


def test_the_long_case_shows_expected_and_got_in_full():
    result = check_gaps(off_by_one)
    long = [f for f in result.failures if "items)]" in f]
    assert len(long) == 1 and "expected [(" in long[0] and "…" not in long[0]


def test_exceptions_and_endless_loops_are_reported_not_raised():
    crashed = check_gaps(lambda received: sorted(received) + None)
    assert crashed.status == "failed" and "your code raised TypeError" in crashed.failures[0]
    def endless(received):
        while True:
            received = received[:]

    stuck = check_gaps(endless, timeout=0.2)   # stopped by the watchdog, not left running
    assert stuck.status == "failed" and "did not return within 0.2 s" in stuck.failures[0]
    assert all("not run" in f for f in stuck.failures[1:]) and len(stuck.failures) == len(CASES)


def test_the_input_is_a_copy():
    def sorts_in_place(received):
        received.sort()
        return right(received)

    assert check_gaps(sorts_in_place)
    assert CASES[5][0] == [5, 1, 2]
