"""Lesson 05's checker: the reaper's decision, compared with RoomRegistry.reap on built scenarios.

The right rule passes; the stub is "not yet"; each wrong rule the lesson expects fails on the
scenario that shows it, with the hint that names the mistake. The expected decisions come from
the real registry, and the generated scenarios really contain the edges they are meant to test.
"""

from __future__ import annotations

from tcrp_lab.exercises import check_reap_decision
from tcrp_lab.exercises.timeouts import (
    HANDMADE,
    NOW,
    RANDOM_SCENARIOS,
    SHAPE_HINT,
    TODO,
    Decision,
    generated,
    handmade,
    server_decision,
)


def expired(s):
    return [m for m in s.members if s.now - m.last_activity > s.timeout]


def decide(s, is_expired=None, *, kick_closed=False, tell_closed_expired=True, tell_host=False,
           event_for_all=False):
    """The right rule, or the right rule with one mistake switched on."""
    gone = [m for m in s.members if is_expired(s, m)] if is_expired else expired(s)
    closed = {m.room for m in gone if m.is_host}
    return Decision(
        kicked={m.name for m in gone if m.is_host or kick_closed or m.room not in closed},
        room_closed={m.name for m in s.members if m.room in closed and (tell_host or not m.is_host)
                     and (tell_closed_expired or m not in gone)},
        events={(m.room, m.name) for m in gone if event_for_all or m.room not in closed})


def test_the_right_rule_passes_every_scenario():
    result = check_reap_decision(decide)
    assert result and result.passed == len(HANDMADE) + RANDOM_SCENARIOS, str(result)


def test_the_stub_is_not_yet_with_what_to_write():
    def stub(scenario):
        raise NotImplementedError()

    result = check_reap_decision(stub)
    assert result.status == "not_yet" and result.todo == TODO and "Traceback" not in str(result)


def test_greater_or_equal_fails_on_the_member_exactly_at_the_timeout():
    result = check_reap_decision(lambda s: decide(s, lambda s, m: s.now - m.last_activity >= s.timeout))
    assert result.status == "failed"
    assert result.failures[0] == ("timeout 300 s; 'lab': alice (host, idle 100 s), bob (idle 300 s), carol "
                                  "(idle 299.5 s): expected kicked {}, room_closed {}, events {}, got kicked {bob}, "
                                  "room_closed {}, events {('lab', 'bob')}")
    assert result.hint == ("bob was idle exactly 300 s: a member is removed only when MORE than the timeout has "
                           "passed (> rather than >=)")


def test_kicking_a_guest_whose_host_timed_out_too_is_named():
    result = check_reap_decision(lambda s: decide(s, kick_closed=True, tell_closed_expired=False))
    assert result.status == "failed"
    assert "expected kicked {alice}, room_closed {bob, carol}" in result.failures[0]
    assert result.hint.startswith("carol timed out too, but so did the host of 'lab': the room closed first")


def test_forgetting_the_expired_guests_of_a_closed_room_is_named():
    result = check_reap_decision(lambda s: decide(s, tell_closed_expired=False))
    assert result.status == "failed"
    assert result.hint == ("the host of 'lab' timed out, which closes the room: every other member, carol included, "
                           "gets room_closed (whether or not they timed out too)")


def test_telling_the_host_room_closed_is_named():
    result = check_reap_decision(lambda s: decide(s, tell_host=True))
    assert result.status == "failed"
    assert result.hint == "alice is the host who timed out: the host gets kicked; room_closed goes to everyone else"


def test_posting_events_in_a_closed_room_is_named():
    result = check_reap_decision(lambda s: decide(s, event_for_all=True))
    assert result.status == "failed"
    assert result.hint == "alice hosts 'lab': a host's timeout closes the room, and a closed room gets no event"


def test_ignoring_the_host_rule_fails_on_the_host_timeout():
    result = check_reap_decision(lambda s: Decision({m.name for m in expired(s)}, set(),
                                                    {(m.room, m.name) for m in expired(s)}))
    assert result.status == "failed"
    assert "alice (host, idle 301 s), bob (idle 10 s): expected kicked {alice}, room_closed {bob}" in result.failures[0]
    assert "every other member, bob included, gets room_closed" in result.hint


def test_treating_activity_after_now_as_expired_is_named():
    outside = lambda s, m: not 0 <= s.now - m.last_activity <= s.timeout   # noqa: E731
    result = check_reap_decision(lambda s: decide(s, outside))
    assert result.status == "failed"
    assert result.hint.startswith("alice's last activity came after now (idle -0.5 s): not expired")


def test_missing_a_timeout_names_the_member_and_its_idle_time():
    result = check_reap_decision(lambda s: decide(s, lambda s, m: s.now - m.last_activity > 2 * s.timeout))
    assert result.status == "failed"
    assert result.hint == "carol (a guest) was idle 301 s, more than the 300 s timeout: it gets kicked"


def test_a_wrong_shape_is_shown_with_how_to_return_a_decision():
    for answer in [(set(), set(), set()), None, Decision(events={"carol"})]:
        result = check_reap_decision(lambda s, answer=answer: answer)
        assert result.status == "failed" and result.hint == SHAPE_HINT, answer
    result = check_reap_decision(lambda s: (set(), set(), set()))
    assert result.failures[0].endswith("got (set(), set(), set())")


def test_names_that_are_not_members_are_named():
    result = check_reap_decision(lambda s: Decision(kicked={"nobody"}))
    assert result.hint == "'nobody' is not a member in this scenario: use the names in scenario.members"


def test_an_exception_is_reported_not_raised():
    result = check_reap_decision(lambda s: s.clock)
    assert result.status == "failed"
    assert "your code raised AttributeError: 'Scenario' object has no attribute 'clock'" in result.failures[0]


def test_seen_objects_and_lists_are_accepted_for_names():
    def with_members(s):
        d = decide(s)
        by_name = {m.name: m for m in s.members}
        return Decision([by_name[n] for n in d.kicked], list(d.room_closed), [list(e) for e in d.events])

    assert check_reap_decision(with_members)


def test_the_expected_decisions_are_what_the_registry_sends():
    """RoomRegistry.reap itself is the reference; pin what it does on the handmade scenarios."""
    want = [Decision({"carol"}, set(), {("lab", "carol")}),
            Decision(),
            Decision({"alice"}, {"bob"}),
            Decision({"alice"}, {"bob", "carol"}),
            Decision({"bob", "dave"}, {"erin"}, {("lab", "bob")}),
            Decision(),
            Decision({"alice"})]
    assert [server_decision(registry, scenario) for registry, scenario in handmade()] == want


def test_scenarios_are_read_back_from_the_registry_as_planned():
    for (registry, scenario), plan in zip(handmade(), HANDMADE):
        planned = {name: NOW - idle for _, who in plan.rooms for name, idle in who}
        assert {m.name: m.last_activity for m in scenario.members} == planned
        assert {m.name for m in scenario.members if m.is_host} == {who[0][0] for _, who in plan.rooms}


def test_generated_scenarios_are_seeded_and_cover_every_edge():
    first, again = generated(), generated()
    assert [s for _, s in first] == [s for _, s in again]
    scenarios = [s for _, s in first]
    members = [(s, m) for s in scenarios for m in s.members]
    assert any(s.idle(m) == s.timeout for s, m in members)          # exactly at the timeout
    assert any(s.idle(m) < 0 for s, m in members)                   # activity after now
    decisions = [server_decision(r, s) for r, s in first]
    assert any(d.room_closed and d.events for d in decisions)       # a host's and a guest's timeout at once
    assert any(d.room_closed & d.kicked == set() and d.room_closed for d in decisions)
    assert any(len({m.room for m in s.members}) == 3 for s in scenarios)
    assert any(not d.kicked for d in decisions)
