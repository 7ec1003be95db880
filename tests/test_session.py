"""A member's protocol state without a socket: order, gaps, bounded retries, refusals, challenges."""

from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tcrp_lab.crypto import SeededRandom, SessionKeys, UdpChannel
from tcrp_lab.protocol import (
    MAX_DATAGRAM, MAX_RANGES, Ack, Challenge, Chat, Datagram, Hello, Kicked, Leave, Ping, Pong, ProtocolError, Refused, Resend,
    Response, RoomChat, RoomClosed, SystemEvent, Welcome, check_text, decode_payload,
)
from tcrp_lab.rooms import RoomRegistry
from tcrp_lab.session import (
    GAP_GRACE, MAX_GAP_TRIES, MAX_TRIES, RESEND_BATCH, SEND_WINDOW, ChatMessage, MemberSession, MemberState,
    RoomEvent,
)

KEYS = SessionKeys(*(bytes([i]) * 32 for i in range(4)))


def joined(history: int = 0, **options) -> MemberSession:
    session = MemberSession("lab", "alice", now=0.0, history=history, **options)
    assert session.start(0.0) == [Hello()]
    session.receive(Welcome(seq=0), 0.01)
    assert session.state is MemberState.JOINED
    return session


def chat(seq: int, sender: str = "bob", text: str | None = None) -> RoomChat:
    return RoomChat(seq=seq, sender=sender, text=text or f"m{seq}", ts=1.0)


def run_timers(session: MemberSession, start: float, until: float) -> tuple[list, list]:
    """Call poll() at every deadline the session names, as the shell does; what it sent and said."""
    now, sent, items = start, [], []
    while now <= until:
        out, new = session.poll(now)
        sent += out
        items += new
        now = max(session.next_deadline(now), now + 1e-6)
    return sent, items


def test_hello_is_retransmitted_with_back_off_a_bounded_number_of_times():
    session = MemberSession("lab", "alice", now=0.0)
    sent = session.start(0.0)
    more, _ = run_timers(session, 0.0, 120.0)
    hellos = [p for p in sent + more if isinstance(p, Hello)]
    assert len(hellos) == MAX_TRIES
    assert session.state is MemberState.JOINING


def test_a_chat_that_is_never_acknowledged_is_given_up_with_an_event():
    session = joined()
    chat_id, out = session.send("hello?", 1.0)
    assert out == [Chat(id=chat_id, text="hello?")]
    sent, items = run_timers(session, 1.0, 120.0)
    assert [p for p in sent if isinstance(p, Chat)] == [Chat(id=1, text="hello?")] * (MAX_TRIES - 1)
    assert [(e.kind, e.chat_id) for e in items] == [("undelivered", 1)]
    assert "after 16 tries" in items[0].text and session.unacknowledged == 0
    assert session.stats["undelivered"] == 1 and session.events[-1] is items[0]


def test_retransmissions_back_off_exponentially_up_to_the_ceiling():
    session = joined()
    session.send("x", 0.0)
    times, now = [], 0.0
    while len(times) < 6:
        out, _ = session.poll(now)
        if out and isinstance(out[0], Chat):
            times.append(now)
        now = session.next_deadline(now)
    gaps = [round(b - a, 3) for a, b in zip(times, times[1:])]
    assert gaps == [0.3, 0.6, 1.0, 1.0, 1.0]   # 0.15 doubled each time, at most 1 s


def test_a_refused_chat_stops_at_once_and_says_why():
    session = joined()
    session.send("x" * 1001, 0.0)
    out, items = session.receive(Refused(id=1, code="invalid_text", message="a message must be 1-1000 characters"), 0.1)
    assert out == [] and [(e.kind, e.reason, e.chat_id) for e in items] == [("refused", "invalid_text", 1)]
    assert "1-1000 characters" in items[0].text and session.unacknowledged == 0
    assert session.receive(Refused(id=1, code="invalid_text", message="again"), 0.2)[1] == []   # told once
    sent, _ = run_timers(session, 0.2, 10.0)
    assert not any(isinstance(p, Chat) for p in sent)


def test_a_challenge_is_answered_once_with_its_data():
    session = joined()
    out, items = session.receive(Challenge(data="ab" * 16), 1.0)
    assert out == [Response(data="ab" * 16)] and items == []


@pytest.mark.parametrize(("strategy", "asked"), [
    ("go-back-n", Resend(2, 6)),                             # everything from the first gap
    ("selective", Resend(2, 3, ((2, 3), (5, 5)))),           # only what is missing (§4.5)
])
def test_a_gap_is_asked_for_from_its_first_seq_and_filled_in_order(strategy, asked):
    session = joined(strategy=strategy)
    session.receive(chat(1), 0.1)
    session.receive(chat(4), 0.2)
    _, items = session.receive(chat(6), 0.2)
    assert items == []                                       # 2, 3 and 5 missing: held back
    out, _ = session.poll(0.2 + GAP_GRACE + 0.01)
    assert [p for p in out if isinstance(p, Resend)] == [asked]
    for seq in (3, 5):
        session.receive(chat(seq), 0.3)
    _, items = session.receive(chat(2), 0.3)
    assert [m.seq for m in items] == [2, 3, 4, 5, 6] and [m.seq for m in session.messages] == [1, 2, 3, 4, 5, 6]


def test_selective_repeat_asks_at_most_the_batch_in_at_most_sixteen_ranges():
    session = joined(strategy="selective")
    for seq in range(2, 200, 2):                             # every odd seq missing
        session.receive(chat(seq), 0.1)
    out, _ = session.poll(0.1 + GAP_GRACE + 0.01)
    resend = next(p for p in out if isinstance(p, Resend))
    assert len(resend.ranges) == MAX_RANGES and all(a == b and a % 2 for a, b in resend.ranges)
    assert (resend.first, resend.last) == resend.ranges[0]
    assert len(resend.encode()) < MAX_DATAGRAM


def test_a_held_ack_stops_retransmission_only_for_selective_repeat():
    for strategy, retransmitted in (("selective", False), ("go-back-n", True)):
        session = joined(strategy=strategy)
        session.send("one", 0.0)
        session.send("two", 0.0)
        session.receive(Ack(id=2, seq=0, sack=((2, 2),)), 0.01)   # 2 is held: 1 was lost (§4.5)
        sent, _ = run_timers(session, 0.02, 0.5)
        ids = {p.id for p in sent if isinstance(p, Chat)}
        assert (2 in ids) is retransmitted, strategy
        assert 1 in ids, strategy


def test_a_later_ack_repairs_a_lost_one_with_upto():
    session = joined(strategy="selective")
    for text in ("a", "b", "c"):
        session.send(text, 0.0)
    session.receive(Ack(id=3, seq=3, upto=3), 0.01)           # the acks of 1 and 2 were lost
    assert session.unacknowledged == 0
    sent, _ = run_timers(session, 0.02, 2.0)
    assert not [p for p in sent if isinstance(p, Chat)]        # nothing retransmitted


def test_rack_retransmits_a_chat_at_once_when_one_sent_after_it_arrives():
    session = joined(strategy="selective")
    session.send("lost", 0.0)
    session.send("later", 0.05)
    session.receive(Ack(id=2, seq=0, sack=((2, 2),)), 0.06)   # "later" (sent 50 ms after) is held
    out, _ = session.poll(0.06)                                # long before the 0.15 s timer
    assert [p.id for p in out if isinstance(p, Chat)] == [1]
    out, _ = session.poll(0.07)
    assert not [p for p in out if isinstance(p, Chat)]         # once per delivery, not on every poll
    plain = joined(strategy="go-back-n")
    plain.send("lost", 0.0)
    plain.send("later", 0.05)
    plain.receive(Ack(id=2, seq=2), 0.06)
    out, _ = plain.poll(0.06)
    assert not [p for p in out if isinstance(p, Chat)]         # go-back-N waits for the timer


def test_an_unknown_strategy_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="'selective' or 'go-back-n'"):
        MemberSession("lab", "alice", strategy="fast")


def test_a_gap_that_never_fills_is_skipped_after_bounded_requests():
    session = joined()
    session.receive(chat(1), 0.1)
    session.receive(chat(5), 0.1)
    sent, items = run_timers(session, 0.1, 120.0)
    assert len([p for p in sent if isinstance(p, Resend)]) == MAX_GAP_TRIES
    missed = [e for e in items if isinstance(e, RoomEvent)]
    assert [(e.kind, e.seq) for e in missed] == [("missed", 2)] and "(2-4)" in missed[0].text
    assert [m.seq for m in session.messages] == [1, 5]       # delivery goes on after the hole


def test_pong_reveals_a_lost_tail_and_resend_asks_at_most_a_batch():
    session = joined()
    session.receive(Pong(seq=200), 0.1)
    out, _ = session.poll(0.1 + GAP_GRACE + 0.01)
    assert Resend(1, RESEND_BATCH) in out


def test_the_send_window_queues_chats_and_releases_them_as_acks_come():
    session = joined()
    outs = [session.send(f"m{i}", 0.0)[1] for i in range(SEND_WINDOW + 5)]
    assert sum(len(o) for o in outs) == SEND_WINDOW and session.unacknowledged == SEND_WINDOW + 5
    session.receive(Ack(id=1, seq=1), 0.01)
    out, _ = session.poll(0.01)
    assert [p.id for p in out if isinstance(p, Chat)] == [SEND_WINDOW + 1]


def test_history_at_the_welcome_and_our_own_join_event():
    session = MemberSession("lab", "carol", now=0.0, history=2)
    session.start(0.0)
    _, items = session.receive(Welcome(seq=5), 0.01)
    assert items == [] and session.next_deadline(0.01) <= 0.01 + GAP_GRACE + 1e-9
    out, _ = session.poll(0.1)
    assert Resend(4, 5) in out                                # the last two before we came
    session.receive(chat(4), 0.1)
    session.receive(chat(5), 0.1)
    _, items = session.receive(SystemEvent(seq=6, event="joined", user="carol", text="carol joined"), 0.1)
    assert [type(i) for i in session.log] == [ChatMessage, ChatMessage, RoomEvent] and "carol" in session.members


def test_the_end_of_the_room_stops_everything():
    session = joined()
    session.send("x", 0.0)
    _, items = session.receive(RoomClosed(reason="host_left"), 0.1)
    assert [(e.kind, e.reason) for e in items] == [("room_closed", "host_left")]
    assert session.state is MemberState.ROOM_CLOSED and session.poll(5.0) == ([], [])
    with pytest.raises(RuntimeError, match="room_closed"):
        session.send("late", 5.0)
    other = joined()
    assert other.receive(Kicked(reason="timeout"), 0.1)[1][0].kind == "kicked"
    assert joined().leave() == [Leave()]


def test_the_logs_are_bounded_and_the_count_goes_on():
    session = joined(log_limit=100)
    for seq in range(1, 1001):
        session.receive(chat(seq), 0.1)
    assert len(session.messages) <= 110 and len(session.log) <= 110
    assert session.messages[-1].seq == 1000 and session.message_count == 1000


def test_pings_keep_the_session_alive_when_nothing_happens():
    session = joined(ping_interval=2.0)
    sent, _ = run_timers(session, 0.0, 10.0)
    assert 4 <= sum(isinstance(p, Ping) for p in sent) <= 6


# Any honest text within the limits, in any script, goes through the whole stack intact: the
# server's registry posts it, the codec encodes it, the channel seals it, the member opens it.
scripts = st.sampled_from(["あ", "漢", "한", "é", "😀", "👩\u200d💻", "مر", "न", "a", " ", "\n", "\t", '"', "\\", "ｱ"])


@given(st.lists(scripts, min_size=1, max_size=1000).map("".join) | st.text(min_size=1, max_size=1000))
@settings(max_examples=150, deadline=None)
def test_any_text_within_the_limits_is_delivered_intact_through_registry_codec_and_crypto(text):
    try:
        check_text(text)
    except ProtocolError:
        assume(False)
    registry = RoomRegistry(clock=lambda: 0.0, rng=SeededRandom("intact"), wall_clock=lambda: 1.0)
    member, _ = registry.create_room("部屋 🐱", "さくら", "", KEYS)
    registry.hello(member)
    reader = UdpChannel.client(member.room.name, member.token, KEYS)
    session = MemberSession(member.room.name, "reader", now=0.0)
    session.start(0.0)
    session.receive(Welcome(seq=1), 0.0)
    for delivery in registry.chat(member, 1, text):
        datagram = member.channel.seal(delivery.payload.encode())
        assert len(datagram) <= MAX_DATAGRAM
        payload = decode_payload(reader.open(Datagram.decode(datagram)), from_server=True)
        session.receive(payload, 0.0)
    assert [m.text for m in session.messages] == [text]


def test_held_chats_keep_their_place_in_the_send_window_so_the_server_never_holds_more_than_it_can():
    session = joined(strategy="selective")
    for i in range(SEND_WINDOW + 10):
        session.send(f"m{i}", 0.0)
    for chat_id in range(2, SEND_WINDOW + 1):             # 1 lost: every other chat in the window is held
        session.receive(Ack(id=chat_id, seq=0, upto=0, sack=((2, chat_id),)), 0.01)
    out, _ = session.poll(0.011)
    assert not [p for p in out if isinstance(p, Chat) and p.id > SEND_WINDOW]   # the window is still full
    session.receive(Ack(id=1, seq=1, upto=SEND_WINDOW), 0.02)   # 1 arrives: all of them posted
    out, _ = session.poll(0.021)
    assert [p.id for p in out if isinstance(p, Chat)] == list(range(SEND_WINDOW + 1, SEND_WINDOW + 11))


def test_the_session_imports_no_socket_thread_or_clock():
    import ast
    import subprocess
    import sys
    from pathlib import Path

    import tcrp_lab.session

    tree = ast.parse(Path(tcrp_lab.session.__file__).read_text(encoding="utf-8"))
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    assert not imported & {"socket", "select", "selectors", "threading", "time", "asyncio", "datetime"}
    code = ("import sys, tcrp_lab.session; "
            "print([m for m in ('socket', 'select', 'selectors', 'tcrp_lab.client', 'tcrp_lab.server') "
            "if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize(("end", "state"), [
    (lambda s: s.receive(RoomClosed(reason="host_timeout"), 1.0), MemberState.ROOM_CLOSED),
    (lambda s: s.receive(Kicked(reason="timeout"), 1.0), MemberState.KICKED),
    (lambda s: s.leave(), MemberState.LEFT),
    (lambda s: s.close(), MemberState.CLOSED),
])
def test_every_end_state_is_reached_once_and_silences_every_timer(end, state):
    session = joined()
    session.send("pending", 0.5)
    session.receive(chat(3), 0.6)                          # a gap, so a resend timer runs too
    end(session)
    assert session.state is state and not session.state.active
    assert session.poll(100.0) == ([], [])                 # no retransmission, resend or ping after the end
    assert session.leave() == [] and session.state is state   # the first end stays the end


def test_room_traffic_brings_the_next_ping_forward_to_notice_a_lost_tail():
    from tcrp_lab.session import TAIL_CHECK
    session = joined(ping_interval=2.0)
    session.receive(chat(1), 0.5)
    assert session.next_deadline(0.5) == pytest.approx(0.5 + TAIL_CHECK)
    out, _ = session.poll(0.5 + TAIL_CHECK)
    assert out == [Ping()]
    session.receive(Pong(seq=2), 0.9)                       # the room has a message we never got
    out, _ = session.poll(0.9 + GAP_GRACE + 0.01)
    assert [p for p in out if isinstance(p, Resend)] == [Resend(2, 2)]
