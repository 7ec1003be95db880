"""The room registry as a pure state machine: rules, sequence numbers, history, timeouts."""

from __future__ import annotations

import threading

import pytest

from tcrp_lab.crypto import SeededRandom, SessionKeys
from tcrp_lab.protocol import Ack, ErrorCode, Kicked, Pong, ProtocolError, RoomChat, RoomClosed, SystemEvent, Welcome
from tcrp_lab.rooms import HISTORY_SIZE, MAX_RESEND, RoomRegistry

KEYS = SessionKeys(*(bytes([i]) * 32 for i in range(4)))


class FakeClock:
    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def registry(clock):
    return RoomRegistry(inactivity_timeout=300, clock=clock, rng=SeededRandom("rooms"), wall_clock=lambda: 1.5)


def payloads(deliveries, kind):
    return [d.payload for d in deliveries if isinstance(d.payload, kind)]


def test_create_join_and_list(registry):
    alice, created = registry.create_room("lab", "alice", "pw", KEYS)
    bob, joined = registry.join_room("lab", "bob", "pw", KEYS)
    assert alice.is_host and not bob.is_host
    assert payloads(created, SystemEvent)[0] == SystemEvent(seq=1, event="joined", user="alice",
                                                            text="alice created the room")
    assert payloads(joined, SystemEvent)[0].seq == 2
    assert joined[0].to == (alice, bob)
    registry.create_room("open", "carol", "", KEYS)
    assert registry.list_rooms() == [{"name": "lab", "members": 2, "has_password": True},
                                      {"name": "open", "members": 1, "has_password": False}]
    assert registry.session(bob.token) is bob
    assert len({alice.token, bob.token}) == 2 and len(alice.token) == 16


def test_the_password_is_kept_only_as_a_salted_hash(registry):
    registry.create_room("lab", "alice", "s3cret", KEYS)
    stored = registry.room("lab").password_hash
    assert "s3cret" not in stored and stored.startswith("scrypt$")


@pytest.mark.parametrize("room, user, password, code", [
    ("lab", "bob", "nope", ErrorCode.WRONG_PASSWORD),
    ("lab", "alice", "pw", ErrorCode.USERNAME_TAKEN),
    ("nowhere", "bob", "", ErrorCode.NO_SUCH_ROOM),
    ("lab", " bob", "pw", ErrorCode.INVALID_NAME),
    ("lab", "b" * 33, "pw", ErrorCode.INVALID_NAME),
])
def test_join_errors(registry, room, user, password, code):
    registry.create_room("lab", "alice", "pw", KEYS)
    with pytest.raises(ProtocolError) as err:
        registry.join_room(room, user, password, KEYS)
    assert err.value.code is code


def test_room_exists_full_and_busy(clock):
    registry = RoomRegistry(clock=clock, max_rooms=1, max_members=2)
    registry.create_room("lab", "alice", "", KEYS)
    with pytest.raises(ProtocolError) as err:
        registry.create_room("lab", "mallory", "", KEYS)
    assert err.value.code is ErrorCode.ROOM_EXISTS
    assert registry.room("lab").host == "alice"  # not taken over
    registry.join_room("lab", "bob", "", KEYS)
    with pytest.raises(ProtocolError) as err:
        registry.join_room("lab", "carol", "", KEYS)
    assert err.value.code is ErrorCode.ROOM_FULL
    with pytest.raises(ProtocolError) as err:
        registry.create_room("other", "dave", "", KEYS)
    assert err.value.code is ErrorCode.SERVER_BUSY


def test_chat_is_numbered_acknowledged_and_deduplicated(registry):
    alice, _ = registry.create_room("lab", "alice", "", KEYS)
    bob, _ = registry.join_room("lab", "bob", "", KEYS)
    first = registry.chat(alice, 1, "hello")
    assert payloads(first, RoomChat) == [RoomChat(seq=3, sender="alice", text="hello", ts=1.5)]
    assert first[0].to == (alice, bob)
    assert payloads(first, Ack) == [Ack(id=1, seq=3)]
    again = registry.chat(alice, 1, "hello")  # a retransmission: the ack again, no second post
    assert [d.payload for d in again] == [Ack(id=1, seq=3)]
    assert payloads(registry.chat(bob, 1, "hi"), RoomChat)[0].seq == 4  # ids are per session
    assert registry.room("lab").seq == 4


def test_resend_returns_history_clamped(registry):
    alice, _ = registry.create_room("lab", "alice", "", KEYS)
    for i in range(HISTORY_SIZE + 10):
        registry.chat(alice, i, f"m{i}")
    room = registry.room("lab")
    assert room.seq == HISTORY_SIZE + 11 and len(room.history) == HISTORY_SIZE
    got = [d.payload.seq for d in registry.resend(alice, 1, 20)]
    assert got == list(range(12, 21))  # 1..11 fell out of the kept history
    assert [d.payload.seq for d in registry.resend(alice, room.seq - 1, room.seq + 50)] == [room.seq - 1, room.seq]
    assert len(registry.resend(alice, 1, 10**9)) == MAX_RESEND
    assert all(d.to == (alice,) for d in registry.resend(alice, 500, 510))


def test_guest_leave_and_host_leave(registry):
    alice, _ = registry.create_room("lab", "alice", "", KEYS)
    bob, _ = registry.join_room("lab", "bob", "", KEYS)
    carol, _ = registry.join_room("lab", "carol", "", KEYS)
    left = registry.leave(carol)
    assert payloads(left, SystemEvent)[0].event == "left" and left[0].to == (alice, bob)
    assert registry.session(carol.token) is None
    assert registry.leave(carol) == []  # a second leave is a no-op
    closed = registry.leave(alice)
    assert [(d.payload, d.to) for d in closed] == [(RoomClosed(reason="host_left"), (bob,))]
    assert registry.room("lab") is None and registry.session(bob.token) is None
    assert registry.chat(bob, 1, "anyone?") == []


def test_guest_timeout_with_the_injected_clock(registry, clock):
    alice, _ = registry.create_room("lab", "alice", "", KEYS)
    bob, _ = registry.join_room("lab", "bob", "", KEYS)
    clock.now += 200
    registry.hello(alice)     # activity
    registry.ping(bob)        # not activity
    clock.now += 100
    assert registry.reap() == []  # exactly 300 s: not yet
    clock.now += 1
    reaped = registry.reap()
    assert payloads(reaped, Kicked) == [Kicked(reason="timeout")]
    assert reaped[0].to == (bob,)
    assert payloads(reaped, SystemEvent)[0].event == "timeout"
    assert registry.session(bob.token) is None and registry.session(alice.token) is alice


def test_host_timeout_closes_the_room_for_everyone(registry, clock):
    alice, _ = registry.create_room("lab", "alice", "", KEYS)
    bob, _ = registry.join_room("lab", "bob", "", KEYS)
    carol, _ = registry.join_room("lab", "carol", "", KEYS)
    clock.now += 250
    registry.chat(bob, 1, "still here")
    registry.chat(carol, 1, "me too")
    clock.now += 60
    reaped = registry.reap()
    told = {(type(d.payload).__name__, m.username, getattr(d.payload, "reason", None)) for d in reaped for m in d.to}
    assert told == {("Kicked", "alice", "timeout"), ("RoomClosed", "bob", "host_timeout"),
                    ("RoomClosed", "carol", "host_timeout")}
    assert registry.room("lab") is None and registry.counts() == (0, 0)


def test_welcome_and_pong_carry_the_room_seq(registry):
    alice, _ = registry.create_room("lab", "alice", "", KEYS)
    registry.chat(alice, 1, "x")
    assert registry.hello(alice)[0].payload == Welcome(seq=2)
    assert registry.ping(alice)[0].payload == Pong(seq=2)


def test_close_all_tells_every_member(registry):
    a, _ = registry.create_room("a", "alice", "", KEYS)
    b, _ = registry.create_room("b", "bob", "", KEYS)
    closed = registry.close_all()
    assert {m.username for d in closed for m in d.to} == {"alice", "bob"}
    assert all(d.payload == RoomClosed(reason="server_shutdown") for d in closed)
    assert registry.counts() == (0, 0)


def test_concurrent_joins_and_chats_keep_names_unique_and_seqs_gapless(clock):
    registry = RoomRegistry(clock=clock, max_members=1000)
    host, _ = registry.create_room("lab", "host", "", KEYS)
    errors, seqs, lock = [], [], threading.Lock()

    def worker(i: int) -> None:
        try:
            member, joined = registry.join_room("lab", f"user{i}", "", KEYS)
            with lock:
                seqs.extend(p.seq for p in payloads(joined, SystemEvent))
            for n in range(20):
                posted = payloads(registry.chat(member, n, "x"), RoomChat)
                with lock:
                    seqs.extend(p.seq for p in posted)
        except Exception as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    room = registry.room("lab")
    assert len(room.members) == 41
    assert room.seq == 1 + 40 + 800
    assert sorted(seqs) == list(range(2, room.seq + 1))  # every join and chat: unique and gapless
