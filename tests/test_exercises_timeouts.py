"""Lesson 05's checker: the server's rule passes; the typical wrong ones fail on the right case."""

from __future__ import annotations

from tcrp_lab.crypto import SessionKeys
from tcrp_lab.exercises import check_is_expired
from tcrp_lab.exercises.timeouts import CASES, server_removes
from tcrp_lab.rooms import RoomRegistry


def test_the_strictly_greater_rule_passes():
    result = check_is_expired(lambda last, now, timeout: now - last > timeout)
    assert result and result.passed == len(CASES)


def test_greater_or_equal_fails_exactly_at_the_timeout():
    result = check_is_expired(lambda last, now, timeout: now - last >= timeout)
    assert not result
    assert len(result.failures) == 2
    assert all("exactly at" in f and "expected False, got True" in f for f in result.failures)


def test_an_inverted_comparison_fails_with_the_inputs_named():
    result = check_is_expired(lambda last, now, timeout: now - last < timeout)
    assert not result
    assert "is_expired(1000.0, 1299.0, 300), one second before the timeout: expected False, got True" in result.failures


def test_forgetting_the_last_activity_fails():
    result = check_is_expired(lambda last, now, timeout: now > timeout)
    assert not result and any("no time has passed: expected False, got True" in f for f in result.failures)


def test_no_return_value_and_exceptions_are_reported_not_raised():
    assert "expected False, got None" in str(check_is_expired(lambda last, now, timeout: None))
    assert "your code raised ZeroDivisionError" in str(check_is_expired(lambda last, now, timeout: 1 / 0))


def test_the_expected_answers_come_from_the_registry():
    """The reference is RoomRegistry.reap itself: it removes at timeout + a little, not at the timeout."""
    assert [server_removes(1000.0, 1000.0 + d, 300) for d in (299, 300, 300.5)] == [False, False, True]
    clock = [0.0]
    registry = RoomRegistry(inactivity_timeout=300, clock=lambda: clock[0])
    registry.create_room("r", "u", "", SessionKeys(*(bytes([i]) * 32 for i in range(4))))
    assert registry.reap(300.0) == [] and registry.reap(300.5) != []

