"""Lesson 00's checker: a right answer passes; the usual slips fail with the case named."""

from __future__ import annotations

from tcrp_lab.exercises import check_messages_from
from tcrp_lab.exercises.start import CASES


def test_a_right_answer_passes():
    result = check_messages_from(lambda messages, sender: [m.text for m in sorted(messages, key=lambda m: m.seq)
                                                           if m.sender == sender])
    assert result and result.passed == len(CASES)


def test_forgetting_room_order_fails_on_that_case_only():
    result = check_messages_from(lambda messages, sender: [m.text for m in messages if m.sender == sender])
    assert len(result.failures) == 1
    assert "out of room order" in result.failures[0] and "expected ['first', 'second']" in result.failures[0]


def test_a_prefix_match_fails_on_the_exact_names_case():
    result = check_messages_from(lambda messages, sender: [m.text for m in sorted(messages, key=lambda m: m.seq)
                                                           if m.sender.startswith(sender)])
    assert len(result.failures) == 1
    assert "'al' is not 'alice'" in result.failures[0] and "got ['one', 'two']" in result.failures[0]


def test_returning_messages_instead_of_texts_says_what_came_back():
    result = check_messages_from(lambda messages, sender: [m for m in messages if m.sender == sender])
    assert not result and "got [ChatMessage(" in result.failures[0]


def test_a_crash_is_reported_not_raised():
    result = check_messages_from(lambda messages, sender: messages[0].text)
    assert not result and "your code raised IndexError" in str(result)
