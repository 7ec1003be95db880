"""The room registry as a pure state machine: rules, sequence numbers, history, timeouts, budgets."""

from __future__ import annotations

import threading
import unicodedata

import pytest

from tcrp_lab.crypto import SeededRandom, SessionKeys
from tcrp_lab.limits import Limits
from tcrp_lab.protocol import (
    Ack, Challenge, ErrorCode, Kicked, Pong, ProtocolError, Refused, RoomChat, RoomClosed, SystemEvent, Welcome,
)
from tcrp_lab.rooms import AMPLIFICATION, HISTORY_SIZE, MAX_RESEND, RoomRegistry

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


def create(registry, room, user, password="", source="10.0.0.1"):
    """Create a room and say hello, as a client does: the member is announced at its first hello."""
    member, _ = registry.create_room(room, user, password, KEYS, source=source)
    registry.hello(member)
    return member


def join(registry, room, user, password="", source="10.0.0.1"):
    member, _ = registry.join_room(room, user, password, KEYS, source=source)
    registry.hello(member)
    return member


def test_create_join_and_list(registry):
    alice, created = registry.create_room("lab", "alice", "pw", KEYS)
    assert created == [] and alice.provisional   # announced at its first hello (§8.2)
    welcome, announced = registry.hello(alice)
    assert welcome.payload == Welcome(seq=0) and welcome.to == (alice,)
    assert announced.payload == SystemEvent(seq=1, event="joined", user="alice", text="alice created the room")
    bob, _ = registry.join_room("lab", "bob", "pw", KEYS)
    joined = registry.hello(bob)
    assert payloads(joined, Welcome) == [Welcome(seq=1)]
    assert payloads(joined, SystemEvent)[0].seq == 2
    assert joined[1].to == (alice, bob)
    assert payloads(registry.hello(bob), SystemEvent) == []   # announced once
    assert alice.is_host and not bob.is_host and not bob.provisional
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


def test_a_chat_held_behind_a_missing_id_is_acknowledged_as_held_with_the_ranges_that_arrived(registry):
    alice = create(registry, "lab", "alice")
    assert payloads(registry.chat(alice, 1, "one"), Ack) == [Ack(id=1, seq=2, upto=1)]
    assert [d.payload for d in registry.chat(alice, 3, "three")] == [Ack(id=3, seq=0, upto=1, sack=((3, 3),))]
    assert [d.payload for d in registry.chat(alice, 5, "five")] == [Ack(id=5, seq=0, upto=1, sack=((3, 3), (5, 5)))]
    out = registry.chat(alice, 2, "two")          # the missing one: 2 and 3 are posted, 5 still held
    assert payloads(out, RoomChat) == [RoomChat(seq=s, sender="alice", text=t, ts=1.5) for s, t in ((3, "two"),
                                                                                               (4, "three"))]
    assert payloads(out, Ack) == [Ack(id=2, seq=3, upto=2, sack=((3, 3), (5, 5))), Ack(id=3, seq=4, upto=3, sack=((5, 5),))]


def test_a_resend_with_ranges_answers_each_range_and_only_those(registry):
    alice = create(registry, "lab", "alice")
    for n in range(1, 10):
        registry.chat(alice, n, f"m{n}")          # room seqs 2..10
    out = registry.resend(alice, 2, 3, ((2, 3), (6, 6), (9, 12)))
    assert [d.payload.seq for d in out] == [2, 3, 6, 9, 10]


def test_chat_is_numbered_acknowledged_and_deduplicated(registry):
    alice = create(registry, "lab", "alice")
    bob = join(registry, "lab", "bob")
    first = registry.chat(alice, 1, "hello")
    assert payloads(first, RoomChat) == [RoomChat(seq=3, sender="alice", text="hello", ts=1.5)]
    assert first[0].to == (alice, bob)
    assert payloads(first, Ack) == [Ack(id=1, seq=3, upto=1)]
    again = registry.chat(alice, 1, "hello")  # a retransmission: the ack again, no second post
    assert [d.payload for d in again] == [Ack(id=1, seq=3, upto=1)]
    assert payloads(registry.chat(bob, 1, "hi"), RoomChat)[0].seq == 4  # ids are per session
    assert registry.room("lab").seq == 4


def test_resend_returns_history_clamped(registry):
    alice = create(registry, "lab", "alice")
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
    alice = create(registry, "lab", "alice")
    bob = join(registry, "lab", "bob")
    carol = join(registry, "lab", "carol")
    alice.address, bob.address = ("10.0.0.1", 1), ("10.0.0.1", 2)
    left = registry.leave(carol)
    assert payloads(left, SystemEvent)[0].event == "left" and left[0].to == (alice, bob)
    assert registry.session(carol.token) is None
    assert registry.leave(carol) == []  # a second leave is a no-op
    closed = registry.leave(alice)
    assert [(d.payload, d.to) for d in closed] == [(RoomClosed(reason="host_left"), (bob,))]
    assert registry.room("lab") is None and registry.session(bob.token) is None
    assert registry.chat(bob, 1, "anyone?") == []


def test_guest_timeout_with_the_injected_clock(registry, clock):
    alice = create(registry, "lab", "alice")
    bob = join(registry, "lab", "bob")
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
    alice = create(registry, "lab", "alice")
    bob = join(registry, "lab", "bob")
    carol = join(registry, "lab", "carol")
    for n, member in enumerate((alice, bob, carol)):
        member.address = ("10.0.0.1", n + 1)
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
    alice = create(registry, "lab", "alice")
    registry.chat(alice, 1, "x")
    assert registry.hello(alice)[0].payload == Welcome(seq=2)
    assert registry.ping(alice)[0].payload == Pong(seq=2)


def test_close_all_tells_every_member(registry):
    a = create(registry, "a", "alice")
    b = create(registry, "b", "bob")
    a.address, b.address = ("10.0.0.1", 1), ("10.0.0.2", 1)
    closed = registry.close_all()
    assert {m.username for d in closed for m in d.to} == {"alice", "bob"}
    assert all(d.payload == RoomClosed(reason="server_shutdown") for d in closed)
    assert registry.counts() == (0, 0)


def test_concurrent_joins_and_chats_keep_names_unique_and_seqs_gapless(clock):
    registry = RoomRegistry(clock=clock, max_members=1000)
    create(registry, "lab", "host")
    errors, seqs, lock = [], [], threading.Lock()

    def worker(i: int) -> None:
        try:
            member, _ = registry.join_room("lab", f"user{i}", "", KEYS)
            joined = registry.hello(member)
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


# --- provisional sessions and per-address limits (TCRP.md §8.2) --------------------------------

def test_a_session_that_never_says_hello_is_removed_silently_after_the_hello_timeout(registry, clock):
    alice = create(registry, "lab", "alice")
    ghost, _ = registry.join_room("lab", "ghost", "", KEYS, source="10.0.0.9")
    assert ghost.provisional and registry.room("lab").seq == 1   # never announced
    clock.now += registry.limits.hello_timeout
    assert registry.reap() == []                                  # exactly at the deadline: not yet
    clock.now += 0.5
    assert registry.reap() == []                                  # removed without a word
    assert registry.session(ghost.token) is None and registry.session(alice.token) is alice
    assert list(registry.room("lab").members) == ["alice"] and registry.room("lab").seq == 1


def test_a_provisional_host_takes_its_room_with_it(registry, clock):
    host, _ = registry.create_room("lab", "host", "", KEYS, source="10.0.0.9")
    bob = join(registry, "lab", "bob")
    bob.address = ("10.0.0.1", 5)
    clock.now += registry.limits.hello_timeout + 1
    reaped = registry.reap()
    assert [(d.payload, d.to) for d in reaped] == [(RoomClosed(reason="host_timeout"), (bob,))]
    assert registry.room("lab") is None and registry.counts() == (0, 0)


def test_joins_that_never_say_hello_cannot_fill_a_room_from_one_address(clock):
    registry = RoomRegistry(clock=clock, limits=Limits(max_provisional_per_address=8))
    create(registry, "lab", "host")
    for i in range(8):
        registry.join_room("lab", f"ghost{i}", "", KEYS, source="10.6.6.6")
    with pytest.raises(ProtocolError) as err:
        registry.join_room("lab", "ghost8", "", KEYS, source="10.6.6.6")
    assert err.value.code is ErrorCode.SERVER_BUSY and "10.6.6.6" in err.value.reason
    assert err.value.retry_after == registry.limits.hello_timeout
    join(registry, "lab", "alice", source="10.0.0.7")              # another address is not affected
    clock.now += registry.limits.hello_timeout + 1
    registry.reap()
    assert sorted(registry.room("lab").members) == ["alice", "host"]
    registry.join_room("lab", "ghost8", "", KEYS, source="10.6.6.6")   # the address's slots are free again


def test_one_address_holds_a_bounded_number_of_rooms(clock):
    registry = RoomRegistry(clock=clock, limits=Limits(max_rooms_per_address=3))
    hosts = [create(registry, f"room{i}", "mallory", source="10.6.6.6") for i in range(3)]
    with pytest.raises(ProtocolError) as err:
        registry.create_room("room3", "mallory", "", KEYS, source="10.6.6.6")
    assert err.value.code is ErrorCode.SERVER_BUSY and "3 rooms open" in err.value.reason
    create(registry, "lab", "alice", source="10.0.0.7")              # everyone else still can
    registry.leave(hosts[0])                                         # closing one frees a place
    create(registry, "room3", "mallory", source="10.6.6.6")


# --- passwords (§8.3) --------------------------------------------------------------------------

def test_wrong_passwords_back_off_exponentially_per_address_and_room(clock):
    registry = RoomRegistry(clock=clock, limits=Limits(password_free_tries=0, password_backoff=1.0,
                                                       password_backoff_max=8.0))
    create(registry, "lab", "alice", "1234")
    waits = []
    for guess in range(5):
        with pytest.raises(ProtocolError) as err:
            registry.join_room("lab", "mallory", f"{guess:04d}", KEYS, source="10.6.6.6")
        assert err.value.code is ErrorCode.WRONG_PASSWORD
        with pytest.raises(ProtocolError) as err:   # at once again: refused before any scrypt
            registry.join_room("lab", "mallory", "9999", KEYS, source="10.6.6.6")
        assert err.value.code is ErrorCode.RATE_LIMITED
        waits.append(err.value.retry_after)
        clock.now += err.value.retry_after
    assert waits == [1.0, 2.0, 4.0, 8.0, 8.0]
    join(registry, "lab", "bob", "1234", source="10.0.0.7")           # another address: no back-off
    join(registry, "lab", "carol", "1234", source="10.6.6.6")         # the right password, once it may try
    assert registry._guesses.failures(("10.6.6.6", "lab")) == 0       # a success clears the back-off


def test_a_few_typos_cost_nothing_then_the_back_off_starts(clock):
    registry = RoomRegistry(clock=clock, limits=Limits(password_free_tries=2, password_backoff=0.5))
    create(registry, "lab", "alice", "pw")
    for typo in ("pq", "wp"):
        with pytest.raises(ProtocolError) as err:
            registry.join_room("lab", "bob", typo, KEYS, source="10.0.0.2")
        assert err.value.code is ErrorCode.WRONG_PASSWORD
    with pytest.raises(ProtocolError) as err:
        registry.join_room("lab", "bob", "p w", KEYS, source="10.0.0.2")
    assert err.value.code is ErrorCode.WRONG_PASSWORD      # the third is checked, and now it costs
    with pytest.raises(ProtocolError) as err:
        registry.join_room("lab", "bob", "pw", KEYS, source="10.0.0.2")
    assert err.value.code is ErrorCode.RATE_LIMITED and err.value.retry_after == 0.5


def test_parallel_guesses_from_one_address_go_one_at_a_time(clock, monkeypatch):
    registry = RoomRegistry(clock=clock)
    create(registry, "lab", "alice", "pw")
    entered, release = threading.Event(), threading.Event()
    real = registry._scrypt_call

    def slow(fn, *args):
        entered.set()
        assert release.wait(5)
        return real(fn, *args)

    monkeypatch.setattr(registry, "_scrypt_call", slow)
    first = threading.Thread(target=lambda: pytest.raises(ProtocolError, registry.join_room, "lab", "m", "no",
                                                          KEYS, source="10.6.6.6"))
    first.start()
    assert entered.wait(5)
    with pytest.raises(ProtocolError) as err:   # a second guess while the first is being checked
        registry.join_room("lab", "m2", "no", KEYS, source="10.6.6.6")
    assert err.value.code is ErrorCode.RATE_LIMITED
    release.set()
    first.join(5)


def test_only_a_few_scrypt_checks_run_at_once(clock, monkeypatch):
    monkeypatch.setattr("tcrp_lab.rooms.PASSWORD_WAIT", 0.05)
    registry = RoomRegistry(clock=clock, limits=Limits(max_password_checks=1))
    create(registry, "lab", "alice", "pw")
    assert registry._scrypt.acquire(timeout=1)   # the one slot is taken
    try:
        with pytest.raises(ProtocolError) as err:
            registry.join_room("lab", "bob", "pw", KEYS, source="10.0.0.2")
        assert err.value.code is ErrorCode.SERVER_BUSY and err.value.retry_after
    finally:
        registry._scrypt.release()
    join(registry, "lab", "bob", "pw", source="10.0.0.2")


# --- chats the server will not post (§4.3) ----------------------------------------------------

@pytest.mark.parametrize("text, why", [
    ("é" * 1001, "1-1000 characters"),
    ("😀" * 751, "3000 bytes"),
    ("pay\x1b]52;c;ZXZpbA==\x07", "U+001B"),
    ("a\x00b", "U+0000"),
    ("\x85", "U+0085"),
    ("", "1-1000 characters"),
])
def test_a_chat_that_breaks_a_limit_is_refused_and_its_id_passes(registry, text, why):
    alice = create(registry, "lab", "alice")
    out = registry.chat(alice, 1, text)
    assert [type(d.payload) for d in out] == [Refused] and out[0].to == (alice,)
    refused = out[0].payload
    assert refused.id == 1 and refused.code == "invalid_text" and why in refused.message
    assert registry.chat(alice, 1, text)[0].payload == refused        # a retransmission: the same answer
    assert payloads(registry.chat(alice, 2, "next one"), RoomChat)[0].seq == 2   # not held behind it


def test_a_refused_chat_ahead_of_a_gap_does_not_block_the_ones_after_it(registry):
    alice = create(registry, "lab", "alice")
    assert registry.chat(alice, 2, "x" * 1001)[0].payload.id == 2   # refused at once, though id 1 is missing
    assert payloads(registry.chat(alice, 3, "three"), RoomChat) == []  # held: id 1 still missing
    posted = payloads(registry.chat(alice, 1, "one"), RoomChat)
    assert [p.text for p in posted] == ["one", "three"]


@pytest.mark.parametrize("text", ["こんにちは" * 200, "😀" * 750, "é" * 1000, "मनीषा" * 200, "a\tb\nc"])
def test_honest_texts_at_the_limits_are_posted(registry, text):
    alice = create(registry, "lab", "alice")
    assert payloads(registry.chat(alice, 1, text), RoomChat)[0].text == text


# --- history bounded in bytes (§8.2) -------------------------------------------------------------

def test_history_is_bounded_in_bytes_per_room_and_for_the_server(clock):
    registry = RoomRegistry(clock=clock, limits=Limits(history_bytes=50_000, server_history_bytes=80_000))
    alice = create(registry, "a", "alice")
    bob = create(registry, "b", "bob")
    for i in range(1, 40):
        registry.chat(alice, i, "あ" * 1000)       # ~3 KB each
    room_a = registry.room("a")
    assert room_a.history_bytes <= 50_000 and room_a.seq == 40
    for i in range(1, 40):
        registry.chat(bob, i, "い" * 1000)
    assert registry.history_bytes <= 80_000
    assert registry.room("b").history_bytes > 0 and room_a.history_bytes > 0   # neither room lost everything
    assert sum(size for _, size in room_a.history) == room_a.history_bytes
    oldest = room_a.seq - len(room_a.history) + 1
    assert [d.payload.seq for d in registry.resend(alice, 1, oldest)] == [oldest]  # what is gone is gone


def test_resend_is_bounded_per_session_over_time(clock):
    registry = RoomRegistry(clock=clock, limits=Limits(resend_rate=100))
    alice = create(registry, "lab", "alice")
    for i in range(1, 301):
        registry.chat(alice, i, f"m{i}")
    assert len(registry.resend(alice, 1, 300)) == 200          # the burst: twice the rate
    assert registry.resend(alice, 1, 300) == []                # nothing left this instant
    clock.now += 0.5
    assert len(registry.resend(alice, 1, 300)) == 50           # half a second: half the rate


# --- where a member is (§4.2) ------------------------------------------------------------------

def test_the_first_address_on_the_tcp_host_is_proven_by_the_handshake(registry):
    alice = create(registry, "lab", "alice", source="10.0.0.1")
    assert registry.arrived(alice, ("10.0.0.1", 4000), 60) == [] and alice.address == ("10.0.0.1", 4000)


def test_a_new_address_is_challenged_within_three_times_what_it_sent(registry, clock):
    alice = create(registry, "lab", "alice", source="10.0.0.1")
    registry.arrived(alice, ("10.0.0.1", 4000), 60)
    victim = ("10.9.9.9", 53)
    out = registry.arrived(alice, victim, 60)
    assert [type(d.payload) for d in out] == [Challenge] and out[0].address == victim
    assert alice.address == ("10.0.0.1", 4000)                   # the session did not move
    clock.now += 1
    sent = alice.path.sent
    assert sent <= AMPLIFICATION * 60
    assert registry.arrived(alice, victim, 1) == []               # 3 x 61 bytes cannot pay for a second one
    assert alice.path.sent == sent
    assert registry.respond(alice, victim, "00" * 16) is None     # a wrong echo proves nothing
    assert registry.respond(alice, ("10.0.0.1", 4000), out[0].payload.data) is None   # from elsewhere: nothing
    moved = registry.respond(alice, victim, out[0].payload.data)
    assert [d.payload for d in moved] == [Welcome(seq=1)] and alice.address == victim


def test_a_first_address_on_another_host_must_answer_a_challenge_too(registry):
    alice = create(registry, "lab", "alice", source="10.0.0.1")
    out = registry.arrived(alice, ("192.0.2.7", 4000), 60)
    assert alice.address is None and isinstance(out[0].payload, Challenge)
    assert registry.respond(alice, ("192.0.2.7", 4000), out[0].payload.data)
    assert alice.address == ("192.0.2.7", 4000)


# --- names people can trust (§3.1) --------------------------------------------------------------

@pytest.mark.parametrize("twin", ["\u0430lice", "aIice", "ALICE", "ａｌｉｃｅ", "Alice"])
def test_a_name_that_looks_like_a_member_is_refused_and_free_again_once_they_left(registry, twin):
    create(registry, "lab", "host")
    alice = join(registry, "lab", "alice")
    with pytest.raises(ProtocolError) as err:
        registry.join_room("lab", twin, "", KEYS)
    assert err.value.code is ErrorCode.USERNAME_TAKEN and "alice" in err.value.reason
    registry.leave(alice)
    assert join(registry, "lab", twin).username == unicodedata.normalize("NFKC", twin)


@pytest.mark.parametrize("bad", ["alice\u200b", "\u202eecila", "al\u00adice", "ali\u0000ce", "\u3164"])
def test_invisible_and_bidi_characters_are_refused_in_names(registry, bad):
    with pytest.raises(ProtocolError) as err:
        registry.create_room("lab", bad, "", KEYS)
    assert err.value.code is ErrorCode.INVALID_NAME and "U+" in err.value.reason


def test_two_rooms_whose_names_look_alike_cannot_both_exist(registry):
    create(registry, "lab", "alice")
    for twin in ("1ab", "LAB", "\u04cfab"):
        with pytest.raises(ProtocolError) as err:
            registry.create_room(twin, "bob", "", KEYS)
        assert err.value.code is ErrorCode.ROOM_EXISTS and "looks like 'lab'" in err.value.reason
    with pytest.raises(ProtocolError, match="a room named 'lab' already exists"):
        registry.create_room("ｌａｂ", "bob", "", KEYS)          # NFKC: the fullwidth spelling is the same name
    assert join(registry, "ｌａｂ", "bob").room.name == "lab"


def test_honest_names_in_any_script_are_welcome(registry):
    for room, user in (("日本語の部屋", "さくら"), ("غرفة", "محمد"), ("कक्षा", "अनीता"), ("🐱 room", "👩‍💻")):
        assert create(registry, room, user).username == user
