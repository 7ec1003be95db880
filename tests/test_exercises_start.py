"""check_flights (lesson 00): run on a live chat's traces, it passes a right answer, says "not yet"
to the stub, and names the first session and the likely mistake for each usual slip."""

from __future__ import annotations

import pytest

from tcrp_lab import ChatClient, ChatServer
from tcrp_lab.crypto import SeededRandom, ServerKey
from tcrp_lab.exercises import check_flights
from tcrp_lab.exercises.start import expected_flights
from tcrp_lab.trace import Trace

JOIN = [("S→C", ["ServerHello"]), ("C→S", ["ClientKeyExchange", "request"]), ("S→C", ["response", "complete"])]


@pytest.fixture(scope="module")
def traces():
    """A server trace and a client trace of a real chat: alice creates a room, bob joins and chats."""
    server_trace, bob_trace = Trace(), Trace()
    with ChatServer("127.0.0.1", 0, 0, key=ServerKey.demo(), rng=SeededRandom("test flights"),
                    trace=server_trace) as server:
        alice = ChatClient.create_room(server.address, "lab", "alice", fingerprint=server.fingerprint)
        bob = ChatClient.join_room(server.address, "lab", "bob", fingerprint=server.fingerprint, trace=bob_trace)
        bob.send("hi alice")
        alice.wait_for_messages(1, timeout=5)
        bob.flush(timeout=5)
        bob.close()
        alice.close()
    return server_trace, bob_trace


def right(events):
    out = []
    for event in events:
        arrow = "C→S" if event.flow == "c2s" else "S→C"
        if out and out[-1][0] == arrow:
            out[-1][1].append(event.kind)
        else:
            out.append((arrow, [event.kind]))
    return out


def arrow_from_direction(events):
    """Right on the server's trace only: 'in' is C→S there, but S→C on a client's."""
    return right([_Flipped(e) if e.side == "client" else e for e in events])


class _Flipped:
    """An event whose flow is read the wrong way round (as ``direction == 'in'`` would on a client)."""

    def __init__(self, event):
        self.kind = event.kind
        self.flow = "c2s" if event.direction == "in" else "s2c"


def one_flight_per_packet(events):
    return [("C→S" if e.flow == "c2s" else "S→C", [e.kind]) for e in events]


def grouped_by_direction(events):
    groups: dict[str, list[str]] = {}
    for e in events:
        groups.setdefault("C→S" if e.flow == "c2s" else "S→C", []).append(e.kind)
    return list(groups.items())


def reversed_arrows(events):
    return [({"C→S": "S→C", "S→C": "C→S"}[arrow], kinds) for arrow, kinds in right(events)]


def test_the_expected_flights_of_a_join_are_the_three_tcp_flights(traces):
    server_trace, bob_trace = traces
    joins = [server_trace.filter(session=e.session) for e in server_trace.filter(kind="complete")]
    assert len(joins) == 2
    for join in [*joins, bob_trace.filter(transport="tcp")]:
        assert expected_flights(join) == JOIN


def test_a_right_answer_passes_on_every_session_of_both_traces(traces):
    sessions = sum(len({e.session for e in trace}) for trace in traces)
    for answer in (right, lambda events: [(a.replace("→", "->"), tuple(k)) for a, k in right(events)]):
        result = check_flights(answer, *traces)
        assert result.status == "passed", str(result)
        assert result.passed == sessions + 2   # each session of each trace, no packets, one packet


def test_the_stub_is_not_yet_with_what_to_write(traces):
    def stub(events):
        raise NotImplementedError()

    result = check_flights(stub, *traces)
    assert result.status == "not_yet" and not result
    assert "e.flow" in str(result) and "Traceback" not in str(result)


def test_each_usual_mistake_fails_first_where_its_hint_says_why(traces):
    mistakes = [
        (arrow_from_direction, "bob's JOIN_ROOM 'lab' connection, as the client recorded it",
         "take the arrow from e.flow"),
        (one_flight_per_packet, "alice's CREATE_ROOM 'lab' connection, as the server recorded it",
         "consecutive packets going the same way form one flight"),
        (grouped_by_direction, "alice's CREATE_ROOM 'lab' connection, as the server recorded it",
         "a flight ends where the direction changes"),
        (reversed_arrows, "one packet: the ServerHello", 'a packet the server sends is "S→C"'),
        (lambda events: None, "flights([]): no packets at all", "return an empty list"),
    ]
    for answer, first_case, hint in mistakes:
        result = check_flights(answer, *traces)
        assert result.status == "failed", answer
        assert result.failures[0].startswith(first_case), (answer, result.failures[0])
        assert hint in result.hint, (answer, result.hint)


def test_a_crash_is_reported_not_raised(traces):
    result = check_flights(lambda events: events[0].nothing, *traces)
    assert result.status == "failed"
    assert "your code raised IndexError" in result.failures[0]
