"""The classroom server against its own students: one test per attack of issue 12's table.

Each test shows the attack failing for its stated reason and the honest member unaffected. The
attacker speaks from 127.0.0.2 (another host on loopback) where the address matters; every loop is
bounded in count and every wait in time.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from tcrp_lab import ChatClient, ChatServer
from tcrp_lab.client import ControlConnection, RateLimited, ServerBusy, TcrpError, UsernameTaken, WrongPassword
from tcrp_lab.crypto import ServerKey, UdpChannel, open_sealed
from tcrp_lab.protocol import MAX_TEXT_BYTES, Challenge, Datagram, Hello, Message, Resend, decode_payload
from tcrp_lab.trace import Trace
from tests.conftest import wait_for
from tests.spec_client import SpecClient

KEY = ServerKey.demo()
ATTACKER = "127.0.0.2"


@pytest.fixture
def server() -> Iterator[ChatServer]:
    with ChatServer("127.0.0.1", 0, 0, key=KEY, reap_interval=0.05) as running:
        yield running


def raw_member(server: ChatServer, room: str, name: str, *, create: bool = False, bind: str = "127.0.0.1",
               hello: bool = True) -> tuple[socket.socket, UdpChannel]:
    """A member made by the real handshake, driven by hand: its UDP socket and its channel."""
    message = Message.create_room(room, name) if create else Message.join_room(room, name)
    with ControlConnection(server.address, timeout=5, bind=bind) as control:
        complete = control.enter(message)
    channel = UdpChannel.client(complete["room"], bytes.fromhex(complete["token"]), control.keys)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)   # a burst of history: none lost here
    sock.bind((bind, 0))
    sock.connect((server.address.host, server.address.udp_port))
    if hello:
        sock.send(channel.seal(Hello().encode()))
        wait_for(lambda: not server.registry.session(channel.token).provisional, what=f"{name}'s hello")
    return sock, channel


def opened(channel: UdpChannel, data: bytes):
    """The payload of a datagram the server sent to ``channel``'s session."""
    d = Datagram.decode(data)
    return decode_payload(open_sealed(channel.recv_key, d.seq, d.ciphertext + d.tag, d.header), from_server=True)


def drain(sock: socket.socket, channel: UdpChannel | None = None, quiet: float = 0.3) -> list:
    """Every datagram until ``quiet`` seconds of silence: decoded payloads, or raw bytes without a channel."""
    got, sock_timeout = [], sock.gettimeout()
    sock.settimeout(quiet)
    try:
        while True:
            data = sock.recv(65536)
            got.append(data if channel is None else opened(channel, data))
    except TimeoutError:
        return got
    finally:
        sock.settimeout(sock_timeout)


def chat_works(server: ChatServer, room: str = "honest", n: int = 20) -> None:
    """Two honest members on 127.0.0.1 exchange ``n`` messages, every one delivered, in order."""
    alice = ChatClient.create_room(server.address, room, "alice")
    bob = ChatClient.join_room(server.address, room, "bob")
    try:
        for i in range(n):
            alice.send(f"m{i}")
        assert [m.text for m in bob.wait_for_messages(n, timeout=15)] == [f"m{i}" for i in range(n)]
        assert alice.flush(timeout=10)
    finally:
        alice.close()
        bob.close()


# --- "a chat of 700 x é or 334 emoji froze the room" --------------------------------------------

@pytest.mark.parametrize("text", ["é" * 700, "😀" * 334, "日本語のテキスト" * 125, "😀" * 750, '"\\' * 500,
                                  "ｱｲｳ abc 👩‍💻 مرحبا\n\tनमस्ते" * 20])
def test_honest_text_in_any_script_at_the_limits_is_delivered_intact(server, text):
    alice = ChatClient.create_room(server.address, "lab", "alice")
    bob = ChatClient.join_room(server.address, "lab", "bob")
    alice.send(text)
    alice.send("next")
    assert [m.text for m in bob.wait_for_messages(2, timeout=10)] == [text, "next"]
    assert len(text.encode()) <= MAX_TEXT_BYTES and server.stats["drops"] == {}
    alice.close()
    bob.close()


def test_a_text_over_the_byte_limit_is_refused_with_a_reason_and_the_room_goes_on(server):
    alice = ChatClient.create_room(server.address, "lab", "alice")
    bob = ChatClient.join_room(server.address, "lab", "bob")
    with alice._cond:   # what a modified client would send: past the local check
        chat_id, out = alice.session.send("😀" * 751, time.monotonic())
    alice._send_all(out)
    refused = alice.wait_for_event("refused", timeout=5)
    assert refused.chat_id == chat_id and refused.reason == "invalid_text" and "3000 bytes" in refused.text
    assert alice.flush(timeout=5) and alice.stats["retransmits"] == 0   # no retransmission of a refused chat
    alice.send("still here")
    assert [m.text for m in bob.wait_for_messages(1, timeout=5)] == ["still here"]
    assert server.stats["drops"]["refused_text"] == 1
    alice.close()
    bob.close()


# --- "a member's resend from another address: x34,711 amplification" ---------------------------

def test_a_resend_from_another_address_gets_one_small_challenge_and_moves_nothing(server):
    sock, channel = raw_member(server, "lab", "mallory", create=True)
    member = server.registry.session(channel.token)
    for i in range(1, 301):
        server.registry.chat(member, i, "x" * 900)   # a long history to amplify
    drain(sock)
    victim = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    victim.bind((ATTACKER, 0))
    spoofed = channel.seal(Resend(1, 300).encode())   # authenticated: mallory has her keys
    victim.sendto(spoofed, (server.address.host, server.address.udp_port))
    got = drain(victim)
    assert sum(len(d) for d in got) <= 3 * len(spoofed)
    assert [type(opened(channel, d)) for d in got] == [Challenge]
    assert member.address == sock.getsockname()   # the session did not move
    answered = drain(sock, channel)                # her resend was answered where she proved she is
    assert len(answered) == 256 and all(p.seq <= 300 for p in answered)
    victim.close()
    sock.close()


def test_a_client_written_from_the_spec_moves_address_by_answering_the_challenge(server):
    alice = ChatClient.create_room(server.address, "lab", "alice")
    spec = SpecClient("127.0.0.1", server.address.tcp_port, "lab", "spec")
    spec.send({"type": "hello"})
    spec.receive_until(lambda d: d["type"] == "welcome")
    spec.move_to(ATTACKER)                          # a NAT rebinding: same session, new address
    spec.send({"type": "ping"})
    spec.receive_until(lambda d: spec.answer_challenges(d)["type"] == "challenge")
    spec.receive_until(lambda d: d["type"] == "welcome")   # proven: the session moved
    alice.send("after the move")
    chat = spec.receive_until(lambda d: d["type"] == "chat")
    assert chat["text"] == "after the move"
    assert server.registry.session(spec.token).address[0] == ATTACKER
    alice.close()


# --- "~400 resend/s from one member stops the chat in every room" --------------------------------

def test_a_resend_flood_is_answered_within_its_budget_and_other_rooms_chat_on(server):
    sock, channel = raw_member(server, "flood", "mallory", create=True)
    member = server.registry.session(channel.token)
    for i in range(1, 301):
        server.registry.chat(member, i, "x" * 200)
    drain(sock)
    counted = threading.Event()
    received = [0]

    def count() -> None:
        sock.settimeout(0.5)
        try:
            while True:
                sock.recv(65536)
                received[0] += 1
        except (TimeoutError, OSError):
            counted.set()

    reader = threading.Thread(target=count, daemon=True)
    reader.start()
    start = time.monotonic()
    for _ in range(2000):
        sock.send(channel.seal(Resend(1, 300).encode()))
    chat_works(server)
    elapsed = time.monotonic() - start
    assert counted.wait(30)
    limits = server.limits
    assert received[0] <= 2 * limits.resend_rate + limits.resend_rate * elapsed + 10   # burst + rate, a few pongs
    assert received[0] < 2000 * 256 // 50
    sock.close()


# --- "512 idle TCP connections from one address refuse every later join" -------------------------

def test_idle_connections_from_one_address_are_capped_and_told_why_while_others_join():
    with ChatServer("127.0.0.1", 0, 0, key=KEY, connection_rate=0) as server:   # the cap alone, not the rate
        _idle_connections_are_capped(server)


def _idle_connections_are_capped(server: ChatServer) -> None:
    idle = []
    try:
        for _ in range(server.limits.max_handshakes_per_address):
            idle.append(socket.create_connection((server.address.host, server.address.tcp_port), timeout=5,
                                                 source_address=(ATTACKER, 0)))
        wait_for(lambda: server.stats["open_connections"] >= len(idle), what="the idle connections")
        with pytest.raises(ServerBusy, match=f"your address {ATTACKER} has 64 connections that have not finished"):
            ChatClient.list_rooms(server.address, bind=ATTACKER)
        chat_works(server)                          # 127.0.0.1 is not affected
        assert server.stats["drops"]["too_many_handshakes_from_address"] == 1
    finally:
        for sock in idle:
            sock.close()


def test_a_connection_that_never_sends_its_key_exchange_is_closed_at_the_short_deadline():
    with ChatServer("127.0.0.1", 0, 0, key=KEY, key_exchange_timeout=0.3) as server:
        silent = socket.create_connection((server.address.host, server.address.tcp_port), timeout=5)
        assert silent.recv(65536)[4:8] == b"TCRP"
        assert silent.recv(65536) == b""            # closed well before the 10 s of the whole conversation
        wait_for(lambda: server.stats["drops"].get("tcp_deadline") == 1, what="the deadline drop")
        silent.close()


def test_a_full_server_evicts_the_oldest_unfinished_handshake_to_let_a_member_in():
    with ChatServer("127.0.0.1", 0, 0, key=KEY, max_connections=8, key_exchange_timeout=60) as server:
        stale = [socket.create_connection((server.address.host, server.address.tcp_port), timeout=5,
                                          source_address=(f"127.0.0.{3 + i}", 0)) for i in range(8)]
        wait_for(lambda: server.stats["open_connections"] == 8, what="a full server")
        time.sleep(1.1)                             # older than EVICT_AFTER (1 s): now stale
        chat_works(server, n=3)
        assert server.stats["drops"]["handshake_evicted"] >= 1
        for sock in stale:
            sock.close()


def test_connections_opened_in_a_loop_are_throttled_per_address_and_others_still_join(server):
    refused = 0
    for _ in range(200):
        try:
            ChatClient.list_rooms(server.address, bind=ATTACKER, timeout=5)
        except ServerBusy as exc:
            assert "faster than 20 a second" in str(exc)
            refused += 1
    assert refused > 100 and server.stats["drops"]["throttled_connections"] == refused
    chat_works(server, n=3)


# --- "one client creates 1000 rooms, then server_busy for everyone" ------------------------------

def test_a_room_creation_flood_is_capped_per_address_and_the_rooms_vanish_without_a_hello():
    with ChatServer("127.0.0.1", 0, 0, key=KEY, reap_interval=0.05, hello_timeout=0.5) as server:
        for i in range(server.limits.max_rooms_per_address):
            with ControlConnection(server.address, bind=ATTACKER) as control:
                control.enter(Message.create_room(f"spam{i}", "mallory"))
        with pytest.raises(ServerBusy, match="already has 32 rooms open"), \
                ControlConnection(server.address, bind=ATTACKER) as control:
            control.enter(Message.create_room("spam-more", "mallory"))
        chat_works(server)                          # 127.0.0.1 creates its room as usual
        wait_for(lambda: [r["name"] for r in server.registry.list_rooms()] == ["honest"], timeout=5,
                 what="the hello-less rooms to go")


# --- "255 joins that never say hello fill the room for 5 minutes" -------------------------------

def test_joins_that_never_say_hello_are_capped_and_expire(server):
    host = ChatClient.create_room(server.address, "lab", "host")
    limit = server.limits.max_provisional_per_address
    for i in range(limit):
        with ControlConnection(server.address, bind=ATTACKER) as control:
            control.enter(Message.join_room("lab", f"ghost{i}"))
    with pytest.raises(ServerBusy, match="have not said hello"), ControlConnection(server.address, bind=ATTACKER) as c:
        c.enter(Message.join_room("lab", "ghost-more"))
    bob = ChatClient.join_room(server.address, "lab", "bob")   # the room is not full for an honest member
    host.send("hi bob")
    assert bob.wait_for_messages(1, timeout=5)[0].text == "hi bob"
    wait_for(lambda: [e.user for e in host.events if e.kind == "joined"] == ["host", "bob"], timeout=5,
             what="bob's joined event at the host, and no ghost's")   # ghosts never announced
    host.close()
    bob.close()


# --- "wrong passwords from 4 threads: 129 guesses/s, a PIN falls in a minute" -------------------

def test_parallel_password_guessing_backs_off_and_the_right_password_still_works(server, monkeypatch):
    import tcrp_lab.rooms as rooms

    checks, running, most = [0], [0], [0]
    lock = threading.Lock()
    real = rooms.verify_password

    def counted(password: str, stored: str) -> bool:
        with lock:
            checks[0] += 1
            running[0] += 1
            most[0] = max(most[0], running[0])
        try:
            return real(password, stored)
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(rooms, "verify_password", counted)
    host = ChatClient.create_room(server.address, "vault", "host", "4711")
    outcomes: list[str] = []
    stop = time.monotonic() + 2.0

    def guesser(start: int) -> None:
        pin = start
        while time.monotonic() < stop:
            try:
                with ControlConnection(server.address, bind=ATTACKER) as control:
                    while time.monotonic() < stop:
                        try:
                            control.enter(Message.join_room("vault", f"m{pin}", f"{pin:04d}"))
                        except (WrongPassword, RateLimited) as exc:
                            outcomes.append(type(exc).__name__)
                            pin += 4
            except TcrpError:   # closed after 3 failed requests, or refused (connection rate): again
                time.sleep(0.01)

    threads = [threading.Thread(target=guesser, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    bob = ChatClient.join_room(server.address, "vault", "bob", "4711")   # from 127.0.0.1, meanwhile
    for t in threads:
        t.join(30)
    assert checks[0] <= 12, f"{checks[0]} scrypt checks in 2 s"     # 3 free, then 0.25, 0.5, 1 s apart
    assert outcomes.count("RateLimited") > outcomes.count("WrongPassword")
    assert most[0] <= server.limits.max_password_checks
    host.send("safe")
    assert bob.wait_for_messages(1, timeout=5)[0].text == "safe"
    host.close()
    bob.close()


# --- "аlice next to alice: all 16 look-alikes accepted" -------------------------------------------

@pytest.mark.parametrize("twin", ["\u0430lice", "ａｌｉｃｅ", "ALICE", "aIice", "alice\u200b", "\u202eecila"])
def test_a_look_alike_of_a_member_cannot_join_the_room(server, twin):
    alice = ChatClient.create_room(server.address, "lab", "alice")
    with pytest.raises((UsernameTaken, Exception)) as err:
        ChatClient.join_room(server.address, "lab", twin)
    assert type(err.value).__name__ in ("UsernameTaken", "InvalidName")
    alice.close()


# --- "history capped at 1000 messages but not in bytes: 4 GB from one client" -------------------

def test_history_stays_within_its_byte_budget_under_a_stream_of_long_messages():
    with ChatServer("127.0.0.1", 0, 0, key=KEY, history_bytes=64_000, server_history_bytes=100_000,
                    chat_rate=0) as server:
        alice = ChatClient.create_room(server.address, "a", "alice")
        carol = ChatClient.create_room(server.address, "b", "carol")
        for i in range(60):
            alice.send("あ" * 1000)
            carol.send("い" * 1000)
        assert alice.flush(timeout=20) and carol.flush(timeout=20)
        assert server.registry.room("a").history_bytes <= 64_000
        assert server.registry.history_bytes <= 100_000
        alice.close()
        carol.close()


# --- "--trace and --log-level debug under a garbage flood stop the chat" -------------------------

def test_a_garbage_flood_is_counted_not_logged_and_traced_at_a_bounded_rate(caplog):
    trace = Trace()
    caplog.set_level(logging.DEBUG, logger="tcrp_lab")
    with ChatServer("127.0.0.1", 0, 0, key=KEY, trace=trace, report_interval=3600) as server:
        junk = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        junk.bind((ATTACKER, 0))
        target = (server.address.host, server.address.udp_port)
        base = server.stats["datagrams_in"]
        caplog.clear()
        start = time.monotonic()
        for i in range(5000):
            junk.sendto(b"\x03\x10" + bytes(40) + i.to_bytes(4, "big"), target)
            if i % 100 == 99:   # paced by the server's reads: 100 in flight never overflow the kernel's buffer
                wait_for(lambda: server.stats["datagrams_in"] - base > i, timeout=20, what="the burst read")
        elapsed = time.monotonic() - start
        assert sum(server.stats["drops"].values()) >= 5000
        assert not [r for r in caplog.records if r.name == "tcrp_lab.server"]   # not one log line per drop
        rejected = len([e for e in trace.events if e.kind == "rejected"])
        assert rejected <= 40 + 20 * elapsed + 1
        chat_works(server, n=5)
        junk.close()
    assert any("dropped or refused" in r.getMessage() and ATTACKER in r.getMessage() for r in caplog.records)
