"""ChatClient: pinning, errors, ordering, gap recovery, callbacks, history, leaving."""

from __future__ import annotations

import json
import re
import queue
import socket

import pytest

from tcrp_lab import ChatClient
from tcrp_lab.client import ControlConnection, FingerprintMismatch, RetransmitTimer, TcrpError
from tcrp_lab.crypto import ServerKey, open_sealed
from tcrp_lab.protocol import Datagram, Message
from tests.conftest import wait_for
from tcrp_lab.attacks import UdpRelay

KEY = ServerKey.demo()


def test_a_wrong_pinned_fingerprint_aborts_before_sending_anything(server):
    with pytest.raises(FingerprintMismatch, match="man in the middle"):
        ChatClient.create_room(server.address, "lab", "alice", fingerprint="00" * 32)
    wait_for(lambda: server.stats["drops"].get("tcp_closed_early") == 1, what="the server seeing us go")
    assert server.stats["joins"] == 0 and server.stats["rooms"] == 0


def test_the_fingerprint_may_be_written_with_colons_and_capitals(server):
    pretty = ":".join(server.fingerprint[i : i + 2] for i in range(0, 64, 2)).upper()
    assert ChatClient.list_rooms(server.address, fingerprint=pretty) == []


def test_clear_errors_for_a_missing_server_and_blocked_udp(server):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    with pytest.raises(TcrpError, match="Is the server running"):
        ChatClient.list_rooms(("127.0.0.1", free))
    with pytest.raises(TcrpError, match="never answered on UDP"):
        ChatClient.create_room(server.address, "lab", "alice", timeout=0.5, udp_via=("127.0.0.1", free))
    with pytest.raises(ValueError, match="host:tcp_port"):
        ChatClient.list_rooms("localhost")


def test_send_checks_its_argument_and_the_state(server):
    alice = ChatClient.create_room(server.address, "lab", "alice")
    for bad, why in (("", "1-1000 characters"), ("x" * 1001, "1-1000 characters"), (None, "must be a string"),
                     ("😀" * 751, "3000 bytes"), ("pay \x1b[2J", "U+001B")):
        with pytest.raises(ValueError, match=re.escape(why)):
            alice.send(bad)
    assert alice.stats["sent"] == 1 and alice.session.unacknowledged == 0   # the hello; no chat went out
    alice.leave()
    assert alice.state == "left"
    with pytest.raises(TcrpError, match="this client is left"):
        alice.send("anyone?")


def test_wait_for_messages_is_bounded_and_says_what_it_has(server):
    alice = ChatClient.create_room(server.address, "lab", "alice")
    with pytest.raises(TimeoutError, match="alice has 0 messages, not 1"):
        alice.wait_for_messages(1, timeout=0.2)
    alice.close()


def test_callbacks_run_for_messages_and_events_and_a_failing_one_is_survived(server):
    seen: queue.Queue = queue.Queue()

    def on_message(message):
        seen.put(("message", message.text))
        if message.text == "boom":
            raise RuntimeError("a bug in the learner's callback")

    alice = ChatClient.create_room(server.address, "lab", "alice", on_message=on_message,
                                   on_event=lambda e: seen.put(("event", e.kind)))
    bob = ChatClient.join_room(server.address, "lab", "bob")
    bob.send("boom")
    bob.send("still alive?")
    got = [seen.get(timeout=5) for _ in range(4)]   # alice created the room, bob joined, then bob's two chats
    assert got == [("event", "joined"), ("event", "joined"), ("message", "boom"), ("message", "still alive?")]
    bob.leave()
    assert seen.get(timeout=5) == ("event", "left")
    alice.close()


def test_a_lost_room_message_is_recovered_with_resend(server):
    """Drop the first copy of every chat to bob: he must notice the gaps and ask for them."""
    alice = ChatClient.create_room(server.address, "lab", "alice")
    with ControlConnection(server.address) as control:  # join by hand to learn bob's keys
        complete = control.enter(Message.join_room("lab", "bob"))
    token, key = bytes.fromhex(complete["token"]), control.keys.udp_s2c
    dropped: set[int] = set()

    def drop_first_copy(packet) -> bool:
        if packet.direction != "s2c":
            return False
        d = Datagram.decode(packet.data)
        if d.token != token:
            return False
        message = json.loads(open_sealed(key, d.seq, d.ciphertext + d.tag, d.header))
        if message["type"] == "chat" and message["seq"] not in dropped:
            dropped.add(message["seq"])
            return True
        return False

    link = UdpRelay(server.address, drop=drop_first_copy)
    bob = ChatClient(server.address, complete, control.keys, udp_via=link.address)
    assert bob.wait_joined(5)
    for n in range(5):
        alice.send(f"m{n}")
    got = bob.wait_for_messages(5, timeout=10)
    assert [m.text for m in got] == [f"m{n}" for n in range(5)]
    assert len(dropped) == 5 and bob.stats["resend_requests"] >= 1
    for c in (alice, bob):
        c.close()
    link.stop()


def test_history_shows_a_newcomer_what_was_said(server):
    alice = ChatClient.create_room(server.address, "lab", "alice")
    for n in range(3):
        alice.send(f"early {n}")
    assert alice.flush(5)
    late = ChatClient.join_room(server.address, "lab", "late", history=10)
    texts = [m.text for m in late.wait_for_messages(3, timeout=5)]
    assert texts == ["early 0", "early 1", "early 2"]
    assert [e.kind for e in late.events][:1] == ["joined"]  # alice's creation, from the history
    fresh = ChatClient.join_room(server.address, "lab", "fresh")
    alice.send("now")
    assert [m.text for m in fresh.wait_for_messages(1, timeout=5)] == ["now"]
    for c in (alice, late, fresh):
        c.close()


def test_members_follow_joins_and_leaves(server):
    alice = ChatClient.create_room(server.address, "lab", "alice")
    bob = ChatClient.join_room(server.address, "lab", "bob")
    assert bob.members == ["alice", "bob"]
    carol = ChatClient.join_room(server.address, "lab", "carol")
    wait_for(lambda: alice.members == ["alice", "bob", "carol"], what="alice seeing carol")
    carol.leave()
    bob.wait_for_event("left", timeout=5)
    assert bob.members == ["alice", "bob"]
    for c in (alice, bob):
        c.close()


def test_retransmit_timer_follows_rfc6298():
    timer = RetransmitTimer(initial=0.15, minimum=0.05, maximum=1.0)
    assert timer.rto == 0.15
    timer.sample(0.1)
    assert timer.srtt == 0.1 and timer.rttvar == 0.05 and timer.rto == pytest.approx(0.3)
    timer.sample(0.1)
    assert timer.rto == pytest.approx(0.1 + 4 * 0.0375)
    for _ in range(50):
        timer.sample(0.001)
    assert timer.rto == 0.05  # clamped to the floor
    timer.sample(30)
    assert timer.rto == 1.0  # and the ceiling
