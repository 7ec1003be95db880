"""Lesson 04's checker: enter() on the real registry, with another connection's steps slipped in.

The right answer passes; the stub is "not yet"; each wrong answer the lesson expects fails on the
interleaving that breaks it, names the calls that led there and gives the matching hint; a
deadlock or an endless loop is reported within the checker's bounds.
"""

from __future__ import annotations

import threading
import time

import pytest

from tcrp_lab.exercises import check_enter
from tcrp_lab.exercises.threads import (
    CLOSED_HINT,
    DEADLOCK_HINT,
    ENDLESS_HINT,
    EXISTS_HINT,
    LOOP_HINT,
    SCENARIOS,
    TODO,
    enter_alone,
    expected_outcomes,
    run_interleaving,
    schedules,
)
from tcrp_lab.protocol import ErrorCode, ProtocolError


def worked_answer(registry, room, username, keys):
    """The lesson's answer: try the operation, take the registry's refusal as the answer, loop (bounded)."""
    for _ in range(10):
        try:
            return registry.join_room(room, username, "", keys)
        except ProtocolError as exc:
            if exc.code is not ErrorCode.NO_SUCH_ROOM:
                raise
        try:
            return registry.create_room(room, username, "", keys)
        except ProtocolError as exc:
            if exc.code is not ErrorCode.ROOM_EXISTS:
                raise
    raise ProtocolError(f"{room!r} keeps opening and closing", ErrorCode.SERVER_BUSY)


def create_then_join(registry, room, username, keys):
    try:
        return registry.create_room(room, username, "", keys)
    except ProtocolError as exc:
        if exc.code is not ErrorCode.ROOM_EXISTS:
            raise
    return registry.join_room(room, username, "", keys)


def two_tries(registry, room, username, keys):
    try:
        return registry.join_room(room, username, "", keys)
    except ProtocolError as exc:
        if exc.code is not ErrorCode.NO_SUCH_ROOM:
            raise
    return create_then_join(registry, room, username, keys)


_own_lock = threading.Lock()


def look_then_act_under_own_lock(registry, room, username, keys):
    with _own_lock:
        return enter_alone(registry, room, username, keys)


def retry_on_every_refusal(registry, room, username, keys):
    while True:
        try:
            return registry.join_room(room, username, "", keys)
        except ProtocolError:
            pass
        try:
            return registry.create_room(room, username, "", keys)
        except ProtocolError:
            pass


def test_the_worked_answer_passes_every_interleaving():
    result = check_enter(worked_answer)
    assert result and result.status == "passed", str(result)
    assert result.passed >= len(SCENARIOS)


def test_the_stub_is_not_yet_with_what_to_write():
    def stub(registry, room, username, keys):
        raise NotImplementedError()

    result = check_enter(stub)
    assert result.status == "not_yet" and result.todo == TODO
    assert "Traceback" not in str(result)


def test_look_then_act_fails_when_the_room_is_created_between_look_and_act():
    result = check_enter(enter_alone)
    assert result.status == "failed" and result.hint == EXISTS_HINT
    first = result.failures[0]
    assert first.startswith("'lab' does not exist, and alice creates it: bob's room('lab') returned None; "
                            "then alice's create_room('lab') succeeded; then bob's create_room('lab', 'bob', …) "
                            "was refused (room_exists).")
    assert first.endswith("Got: bob refused (room_exists); 'lab' hosted by alice, members alice")
    assert "bob entered as guest; 'lab' hosted by alice, members alice, bob (had bob's enter() come last)" in first
    assert any("carol left and 'lab' closed; then bob's join_room" in f for f in result.failures[1:])


def test_a_lock_of_ones_own_does_not_stop_the_other_connection():
    result = check_enter(look_then_act_under_own_lock)
    assert result.status == "failed" and result.hint == EXISTS_HINT
    assert "A lock of your own would not help" in result.hint


def test_create_then_join_fails_when_the_room_closes_in_between():
    result = check_enter(create_then_join)
    assert result.status == "failed" and result.hint == CLOSED_HINT
    assert result.failures[0].startswith("'lab' is carol's, and carol leaves (the room closes): bob's "
                                         "create_room('lab', 'bob', …) was refused (room_exists); then carol left")


def test_one_retry_fails_when_the_room_changes_twice():
    result = check_enter(two_tries)
    assert result.status == "failed" and result.hint == LOOP_HINT
    assert len(result.failures) == 1 and "alice creates it, then leaves" in result.failures[0]
    assert result.failures[0].endswith("Got: bob refused (no_such_room); no room 'lab'")


def test_retrying_on_every_refusal_is_stopped_as_an_endless_loop():
    started = time.monotonic()
    result = check_enter(retry_on_every_refusal)
    assert time.monotonic() - started < 5
    assert result.status == "failed" and result.hint == ENDLESS_HINT
    assert result.failures[-1] == ("'lab' is carol's and already has a member called bob: enter() was still "
                                   "calling the registry after 20 calls: a loop that never ends")


def test_swallowing_the_checkers_stop_still_reports_the_loop():
    def swallows_everything(registry, room, username, keys):
        for _ in range(100):
            try:
                return registry.join_room(room, username, "", keys)
            except BaseException:
                pass
        return None

    result = check_enter(swallows_everything)
    assert result.status == "failed" and "a loop that never ends" in result.failures[-1]


def test_taking_the_registrys_lock_is_a_deadlock_reported_within_the_timeout():
    def under_registry_lock(registry, room, username, keys):
        with registry._lock:
            return enter_alone(registry, room, username, keys)

    started = time.monotonic()
    result = check_enter(under_registry_lock, timeout=0.5)
    assert time.monotonic() - started < 3
    assert result.status == "failed" and result.hint == DEADLOCK_HINT
    assert result.failures == ["'lab' does not exist: enter() did not return within 0.5 s, after 1 registry "
                               "call(s): a deadlock?"]


def test_holding_the_registrys_lock_across_a_look_blocks_the_other_connection_and_is_named():
    def look_under_registry_lock(registry, room, username, keys):
        with registry._lock:
            exists = registry.room(room) is not None   # room() reads without the lock: this returns
        return (registry.join_room if exists else registry.create_room)(room, username, "", keys)

    result = check_enter(look_under_registry_lock, step_timeout=0.3)
    assert result.status == "failed" and result.hint == DEADLOCK_HINT
    assert result.failures[-1] == ("'lab' does not exist, and alice creates it: alice creates 'lab' (another "
                                   "connection) waited more than 0.3 s for the registry: something your enter() "
                                   "holds blocks it")


def test_returning_the_member_alone_is_named():
    def member_only(registry, room, username, keys):
        return worked_answer(registry, room, username, keys)[0]

    result = check_enter(member_only)
    assert result.status == "failed" and "the pair (member, deliveries)" in result.hint
    assert "Got: enter() returned Member('bob' in 'lab', host, token " in result.failures[0]


def test_another_exception_is_reported_as_the_outcome_not_raised():
    def raises(registry, room, username, keys):
        raise KeyError(room)

    result = check_enter(raises)
    assert result.status == "failed" and "Got: enter() raised KeyError: 'lab'; no room 'lab'" in result.failures[0]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.about)
def test_expected_outcomes_come_from_the_real_registry_in_every_order(scenario):
    outcomes = expected_outcomes(scenario)
    assert len(outcomes) == len(scenario.others) + 1
    for slots in schedules(scenario):
        got = run_interleaving(worked_answer, scenario, slots)
        assert got is None or any(got.key == want.key for _, want in outcomes), (slots, got, outcomes)


def test_the_other_connection_really_runs_in_another_thread_between_the_calls():
    seen = []

    def notes_threads(registry, room, username, keys):
        seen.append(registry.room(room) is None)      # call 1: alice creates the room right after it
        seen.append(registry.room(room) is None)
        return worked_answer(registry, room, username, keys)

    alice_creates = SCENARIOS[3]
    assert alice_creates.about == "'lab' does not exist, and alice creates it"
    outcome = run_interleaving(notes_threads, alice_creates, (1,))
    assert seen == [True, False]
    assert outcome.bob == "bob entered as guest" and outcome.others == ("alice's create_room('lab') succeeded",)
