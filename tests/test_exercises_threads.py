"""Lesson 04's checker: a thread-safe registry passes; the typical unsafe ones fail, saying why."""

from __future__ import annotations

import threading

from tcrp_lab.exercises import check_registry
from tcrp_lab.exercises.threads import ToyRegistry


class LockedRegistry(ToyRegistry):
    """The worked answer: one lock around each whole read-check-write."""

    def __init__(self, pause=lambda: None):
        super().__init__(pause)
        self.lock = threading.Lock()

    def join(self, name):
        with self.lock:
            return super().join(name)

    def leave(self, name):
        with self.lock:
            return super().leave(name)


class JoinOnlyLocked(LockedRegistry):
    def leave(self, name):
        return ToyRegistry.leave(self, name)


class LockPerCall(ToyRegistry):
    """A new lock on every call protects nothing: each thread holds its own."""

    def join(self, name):
        with threading.Lock():
            return super().join(name)

    def leave(self, name):
        with threading.Lock():
            return super().leave(name)


class Reentrant(LockedRegistry):
    def join(self, name):
        with self.lock:
            with self.lock:   # the same thread again: waits for itself forever
                return super().join(name)


class NoPauseArgument:
    def __init__(self):
        self.members = {}


class CountsFromZero(LockedRegistry):
    def join(self, name):
        number = super().join(name)
        return None if number is None else number - 1


def test_a_locked_registry_passes():
    result = check_registry(LockedRegistry)
    assert result, str(result)
    assert result.passed == 4 and "all 4 checks passed" in str(result)


def test_the_toy_loses_updates_and_lets_names_in_twice():
    result = check_registry(ToyRegistry)
    assert not result
    text = str(result)
    assert "lost updates" in text and "given to more than one member" in text
    assert "let in more than once" in text and "check-then-act" in text
    assert "removed more than once" in text
    assert result.passed == 1   # its rules in one thread are right


def test_an_unlocked_leave_is_caught_on_its_own():
    result = check_registry(JoinOnlyLocked)
    assert not result
    assert len(result.failures) == 1 and "removed more than once" in result.failures[0]


def test_a_lock_per_call_protects_nothing():
    result = check_registry(LockPerCall)
    assert not result and "lost updates" in str(result)


def test_a_deadlock_is_reported_within_the_timeout():
    result = check_registry(Reentrant, timeout=0.5)
    assert not result
    assert len(result.failures) == 1 and "deadlock" in result.failures[0] and "RLock" in result.failures[0]


def test_a_class_without_pause_is_told_what_to_accept():
    result = check_registry(NoPauseArgument)
    assert not result and result.failures == [
        "your class must accept pause= (ToyRegistry.__init__ shows how): the checker passes a function that "
        "lets other threads run"]


def test_wrong_rules_in_one_thread_are_named():
    result = check_registry(CountsFromZero)
    assert not result
    assert result.failures[0] == "in one thread, join('alice') should return 1, but returned 0"


def test_an_exception_in_the_learners_code_is_reported_not_raised():
    class Raises(LockedRegistry):
        def leave(self, name):
            raise KeyError(name)

    result = check_registry(Raises)
    assert not result
    assert "then leave('alice') raised KeyError: 'alice'" in result.failures[0]
    assert any("raised KeyError" in f and "16 threads" in f for f in result.failures[1:])
