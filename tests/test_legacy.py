"""TCRP/1, the legacy profile: the server against a client written from TCRP.md §6 alone.

``Section6Client`` below does its own framing with ``struct`` and uses only the §6 wire functions of
tcrp_lab.legacy (AES-CFB with the fixed IV, OAEP-SHA-1 key exchange, the request header, the datagram
layout), so these tests check the server byte for byte against §6, not against its own client.
"""

from __future__ import annotations

import ast
import dataclasses
import logging
import secrets
import socket
import struct
import threading
import time

import pytest
from Crypto.PublicKey import RSA

from tcrp_lab import ChatServer, legacy
from tcrp_lab.crypto import ServerKey
from tcrp_lab.legacy import (
    INVALID_PASSWORD, INVALID_ROOM, TIMEOUT_NOTICE, TOKEN_BYTES, WARNING, LegacyClient, LegacyProfile, LegacyRefused,
    cfb_decrypt, cfb_encrypt, datagram, join_notice, key_exchange, parse_datagram, request,
)

from .conftest import wait_for

CREATE, JOIN, LIST = 1, 2, 3


class Section6Client:
    """One TCP connection speaking §6: ``u32 length | body`` frames, key exchange, then CFB frames."""

    def __init__(self, server: ChatServer, key: bytes | None = None, iv: bytes | None = None, timeout: float = 5):
        self.sock = socket.create_connection((server.address.host, server.address.tcp_port), timeout=timeout)
        self.pem = self.recv_frame()
        self.key, self.iv = key or secrets.token_bytes(16), iv or secrets.token_bytes(16)
        self.send_frame(key_exchange(self.pem, self.key, self.iv))

    def recv_exact(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("closed")
            data += chunk
        return data

    def recv_frame(self) -> bytes:
        (length,) = struct.unpack(">I", self.recv_exact(4))
        return self.recv_exact(length)

    def send_frame(self, body: bytes) -> None:
        self.sock.sendall(struct.pack(">I", len(body)) + body)

    def ask(self, operation: int, room: str, username: str, password: str = "") -> bytes:
        self.send_frame(cfb_encrypt(self.key, self.iv, request(operation, room, username, password)))
        reply = self.recv_frame()
        assert reply == cfb_encrypt(self.key, self.iv, cfb_decrypt(self.key, self.iv, reply))  # the same IV each time
        return cfb_decrypt(self.key, self.iv, reply)

    def closed_by_server(self) -> bool:
        return self.sock.recv(1) == b""

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def clock():
    now = [1000.0]
    return now


@pytest.fixture
def server(clock):
    """A legacy server on loopback with the demo key for every connection (fast) and a hand clock."""
    server = ChatServer(tcp_port=0, udp_port=0, key=ServerKey.demo(), profile=LegacyProfile, clock=lambda: clock[0],
                        inactivity_timeout=60)
    server.profile.per_connection_key = False
    with server:
        yield server


@pytest.fixture
def udp():
    socks = []

    def make() -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(5)
        socks.append(sock)
        return sock

    yield make
    for sock in socks:
        sock.close()


def udp_address(server) -> tuple[str, int]:
    return server.address.host, server.address.udp_port


def create(server, room="lab", user="alice", password="pw") -> Section6Client:
    client = Section6Client(server)
    client.token = client.ask(CREATE, room, user, password)
    return client


def join(server, room="lab", user="bob", password="pw", timeout: float = 5) -> Section6Client:
    client = Section6Client(server, timeout=timeout)
    client.rooms = client.ask(JOIN, "", user)
    client.token = client.ask(JOIN, room, user, password)
    return client


def test_create_room_handshake_and_reply_are_those_of_section_6(server):
    alice = create(server, password="hunter2")
    assert alice.pem.startswith(b"-----BEGIN PUBLIC KEY-----")
    assert RSA.import_key(alice.pem).size_in_bits() == 2048
    assert len(alice.token) == TOKEN_BYTES                       # the raw token, nothing around it
    assert alice.closed_by_server()
    room = server.profile.rooms["lab"]
    assert room.password == "hunter2"                            # kept in plain text: a §6 flaw
    assert server.profile.sessions[alice.token].username == "alice"
    assert server.stats["joins"] == 1 and server.profile.counts() == (1, 1)


def test_each_connection_gets_a_new_rsa_key_as_the_original_did(server):
    server.profile.per_connection_key = True
    first, second = Section6Client(server), Section6Client(server)
    assert first.pem != second.pem
    assert RSA.import_key(first.pem).size_in_bits() == RSA.import_key(second.pem).size_in_bits() == 2048
    first.close()
    second.close()


def test_join_answers_the_room_list_repr_then_the_token(server):
    create(server, "lab").close()
    create(server, "café", user="carol").close()
    bob = join(server)
    assert bob.rooms == repr(["lab", "café"]).encode("utf-8")
    assert ast.literal_eval(bob.rooms.decode()) == ["lab", "café"]
    assert len(bob.token) == TOKEN_BYTES and bob.token in server.profile.sessions
    assert bob.closed_by_server()


@pytest.mark.parametrize("room, password, answer, drop", [
    ("nowhere", "pw", INVALID_ROOM, "request_error:no_such_room"),
    ("lab", "guess", INVALID_PASSWORD, "request_error:wrong_password"),
])
def test_a_refused_join_gets_the_plain_word_and_is_counted(server, room, password, answer, drop):
    create(server).close()
    bob = join(server, room, password=password)
    assert bob.token == answer
    assert bob.closed_by_server()
    assert server.stats["drops"][drop] == 1


def test_an_open_room_takes_any_password(server):
    create(server, password="").close()
    assert len(join(server, password="anything").token) == TOKEN_BYTES


def test_datagrams_are_relayed_to_every_member_under_each_ones_key_and_fixed_iv(server, udp):
    alice, bob = create(server), join(server)
    a_sock, b_sock = udp(), udp()
    target = udp_address(server)
    a_sock.sendto(datagram("lab", alice.token, alice.key, alice.iv, join_notice("alice")), target)
    assert a_sock.recv(4096) == datagram("lab", alice.token, alice.key, alice.iv, join_notice("alice"))
    b_sock.sendto(datagram("lab", bob.token, bob.key, bob.iv, join_notice("bob")), target)
    a_sock.recv(4096)
    b_sock.recv(4096)
    sent = datagram("lab", alice.token, alice.key, alice.iv, "alice: hello")
    assert sent[:2] == bytes([3, 255]) and sent[2:5] == b"lab" and sent[5:260] == alice.token
    a_sock.sendto(sent, target)
    # Byte for byte what §6 says bob gets: bob's token, the text under bob's key and the same IV as always.
    assert b_sock.recv(4096) == datagram("lab", bob.token, bob.key, bob.iv, "alice: hello")
    assert a_sock.recv(4096) == sent                             # the sender gets its copy too
    assert server.profile.relayed_after()[-1].text == "alice: hello"


def test_legacy_client_creates_joins_lists_and_chats(server):
    with LegacyClient.create_room(server.address, "lab", "alice", "pw") as alice, \
         LegacyClient.join_room(server.address, "lab", "bob", "pw") as bob:
        assert LegacyClient.list_rooms(server.address) == ["lab"]
        alice.wait_for_messages(2)                             # both join notices: bob has an address now
        alice.send("hello bob")
        assert bob.wait_for_messages(2)[-1] == "alice: hello bob"
        # the join notices in the original client's words (§6)
        assert alice.wait_for_messages(3) == ["System: alice が参加しました。", "System: bob が参加しました。",
                                              "alice: hello bob"]
        with pytest.raises(LegacyRefused, match="InvalidPassword"):
            LegacyClient.join_room(server.address, "lab", "eve", "guess")
        with pytest.raises(LegacyRefused, match="InvalidRoom"):
            LegacyClient.join_room(server.address, "nowhere", "eve")


def test_legacy_client_needs_to_be_told_the_udp_port(server):
    with pytest.raises(ValueError, match="UDP port"):
        LegacyClient.create_room((server.address.host, server.address.tcp_port), "lab", "alice")


def test_timeouts_send_the_notices_timeout_and_exit_and_are_logged(server, clock, caplog):
    caplog.set_level(logging.INFO, logger="tcrp_lab.legacy")
    alice = LegacyClient.create_room(server.address, "lab", "alice")
    bob = LegacyClient.join_room(server.address, "lab", "bob")
    carol = LegacyClient.join_room(server.address, "lab", "carol")
    try:
        alice.wait_for_messages(3)
        clock[0] += 50
        alice.send("still here")
        carol.send("me too")
        alice.wait_for_messages(5)
        clock[0] += 20                                          # bob: 70 s silent; alice and carol: 20 s
        bob.wait_for_state("timed_out")                         # the bare "Timeout!"
        assert alice.wait_for_messages(6)[-1] == "System: bobがタイムアウトにより退出しました。"   # the original's text
        assert "bob" not in [server.profile.sessions[t].username for t in server.profile.rooms["lab"].tokens]
        clock[0] += 100                                         # the host times out: the room closes
        carol.wait_for_state("room_closed")                     # "exit!"
        assert carol.messages[-1] == "System: ホストのaliceがタイムアウトしたためルームを終了します"
        wait_for(lambda: not server.profile.rooms and not server.profile.sessions, what="the room to go")
        logged = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
        assert logged == ["[lab] alice created the room", "[lab] bob joined", "[lab] carol joined",
                          "[lab] bob timed out", "[lab] host alice timed out: the room is closed"]
    finally:
        for client in (alice, bob, carol):
            client.close()


def test_timeout_notice_is_bare(server, udp, clock):
    alice = create(server)
    sock = udp()
    sock.sendto(datagram("lab", alice.token, alice.key, alice.iv, join_notice("alice")), udp_address(server))
    sock.recv(4096)
    clock[0] += 61
    assert sock.recv(4096) == datagram("lab", alice.token, alice.key, alice.iv,
                                       "System: ホストのaliceがタイムアウトしたためルームを終了します")
    assert parse_datagram(sock.recv(4096))[2] == cfb_encrypt(alice.key, alice.iv, b"exit!")
    assert sock.recv(4096) == TIMEOUT_NOTICE


def test_room_name_size_counts_characters_so_a_non_ascii_room_breaks_the_layout():
    key, iv, token = bytes(16), bytes(16), bytes(range(1, 256))
    assert datagram("lab", token, key, iv, "hi")[0] == 3
    sent = datagram("研究室", token, key, iv, "kenji: hi")
    assert sent[0] == 3 and sent[2:11] == "研究室".encode()   # 3 characters, 9 bytes (§6)
    room, read_token, _ = parse_datagram(sent)                # a reader takes 3 bytes: one character
    assert room == "研" and read_token[:6] == "究室".encode() and read_token != token
    with pytest.raises(Exception, match="not UTF-8"):          # 4 characters, 5 bytes: cut inside "é"
        parse_datagram(datagram("café", token, key, iv, "hi"))


@pytest.mark.parametrize("bad", ["two size bytes missing", "an unknown token", "a message that is not UTF-8",
                                 "the original client in a room with a non-ASCII name"])
def test_one_bad_datagram_stops_the_relay_for_every_room_as_in_the_original(server, udp, caplog, bad):
    alice, carol = create(server, "lab", "alice"), create(server, "hall", "carol")
    a, c = udp(), udp()
    a.sendto(datagram("lab", alice.token, alice.key, alice.iv, join_notice("alice")), udp_address(server))
    c.sendto(datagram("hall", carol.token, carol.key, carol.iv, join_notice("carol")), udp_address(server))
    a.recv(4096), c.recv(4096)   # both rooms relay
    kenji = create(server, "研究室", "kenji")   # over TCP, where the header counts bytes, all goes well
    datagrams = {
        "two size bytes missing": b"\x07",
        "an unknown token": datagram("lab", secrets.token_bytes(TOKEN_BYTES), alice.key, alice.iv, "who am I?"),
        "a message that is not UTF-8": bytes([3, 255]) + b"lab" + alice.token + cfb_encrypt(alice.key, alice.iv,
                                                                                              b"\xff\xfe"),
        "the original client in a room with a non-ASCII name": datagram(   # its first datagram: the join notice
            "研究室", kenji.token, kenji.key, kenji.iv, join_notice("kenji")),
    }
    with caplog.at_level(logging.INFO, logger="tcrp_lab.legacy"):
        caplog.clear()
        c.sendto(datagrams[bad], udp_address(server))
        wait_for(lambda: server.stats["drops"].get("relay_crash") == 1, what="the relay stopped")
        assert server.profile.stopped_by
        a.settimeout(0.3), c.settimeout(0.3)
        for sock, room, client, name in ((a, "lab", alice, "alice"), (c, "hall", carol, "carol")):
            sock.sendto(datagram(room, client.token, client.key, client.iv, f"{name}: still there?"),
                        udp_address(server))
        c.sendto(datagrams[bad], udp_address(server))
        wait_for(lambda: server.stats["drops"].get("relay_stopped") == 3, what="the later datagrams dropped")
    # one warning line, no traceback, however many datagrams follow: the design, not a bug of ours
    assert [(r.levelname, r.exc_info) for r in caplog.records] == [("WARNING", None)]
    assert "relay stopped by a bad datagram" in caplog.records[0].getMessage()
    assert "\n" not in caplog.records[0].getMessage()
    for sock in (a, c):
        with pytest.raises(TimeoutError):
            sock.recv(4096)
    assert len(create(server, "after", "dave").token) == TOKEN_BYTES   # TCP joins go on, as in the original


def test_a_legacy_client_in_a_non_ascii_room_stops_the_relay_with_its_join_notice(server):
    with LegacyClient.create_room(server.address, "研究室", "kenji") as kenji:
        wait_for(lambda: server.profile.stopped_by, what="the relay to stop")
        assert server.profile.stopped_by == "unknown token"   # "研" and a token starting with "究室"'s bytes
        assert kenji.messages == [] and server.profile.relayed_after() == []


def test_the_handshake_deadline_starts_when_the_connection_key_is_sent(server, monkeypatch):
    slow = threading.Event()

    def slow_key(bits, rng):   # a key that takes longer than the whole handshake deadline
        slow.wait(1.5)
        return ServerKey.demo().rsa

    monkeypatch.setattr(legacy, "connection_key", slow_key)
    server.profile.per_connection_key = True
    server.limits = server.limits.replace(handshake_timeout=1.0)
    alice = LegacyClient.create_room(server.address, "lab", "alice", timeout=10)
    assert alice.state == "joined" and "tcp_deadline" not in server.stats["drops"]
    alice.close()


def test_connection_keys_are_made_a_few_at_a_time(server, monkeypatch):
    running, most, lock = [0], [0], threading.Lock()

    def counted_key(bits, rng):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.05)
        with lock:
            running[0] -= 1
        return ServerKey.demo().rsa

    monkeypatch.setattr(legacy, "connection_key", counted_key)
    server.profile.per_connection_key = True
    create(server).close()
    joins = [threading.Thread(target=lambda i=i: join(server, user=f"guest{i}").close()) for i in range(8)]
    for thread in joins:
        thread.start()
    for thread in joins:
        thread.join(30)
    assert server.stats["joins"] == 9
    assert 1 <= most[0] <= legacy.KEY_MAKERS


def test_50_guests_joining_at_once_are_all_served_each_with_its_own_key():
    """Each connection makes a real RSA-2048 key, as the original did; none waits out its deadline."""
    with ChatServer(tcp_port=0, udp_port=0, key=ServerKey.demo(), profile=LegacyProfile) as server:
        create(server, "lab", "host").close()
        start, tokens, errors = threading.Barrier(50), [], []

        def guest(i: int) -> None:
            start.wait()
            try:
                tokens.append(join(server, user=f"guest{i}", timeout=60).token)   # the original client waits
            except Exception as exc:   # a lost join: what this test is about
                errors.append(repr(exc))

        guests = [threading.Thread(target=guest, args=(i,)) for i in range(50)]
        for thread in guests:
            thread.start()
        for thread in guests:
            thread.join(120)
        assert errors == [] and len(tokens) == 50 and all(len(t) == TOKEN_BYTES for t in tokens)
        assert server.stats["joins"] == 51 and "tcp_deadline" not in server.stats["drops"]


def test_bad_tcp_input_is_counted_and_the_server_goes_on(server):
    client = Section6Client(server, key=b"k" * 16, iv=b"i" * 16)
    client.send_frame(cfb_encrypt(client.key, client.iv, request(LIST, "", "x")))   # TCRP/1 has no LIST_ROOMS
    assert client.closed_by_server()
    raw = socket.create_connection(server.address[:2], timeout=5)
    raw.sendall(struct.pack(">I", 256) + b"\x00" * 256)                            # not a key exchange
    wait_for(lambda: server.stats["drops"].get("tcp_protocol_error") == 2, what="two protocol errors counted")
    raw.close()
    assert len(create(server).token) == TOKEN_BYTES


def test_traces_carry_the_same_fields_as_tcrp2(server):
    events = []
    server.trace = lambda event: events.append({f.name: getattr(event, f.name) for f in dataclasses.fields(event)})
    with LegacyClient.create_room(server.address, "lab", "alice") as alice:
        alice.wait_for_messages(1)
        alice.send("hi")
        alice.wait_for_messages(2)
    kinds = [(e["transport"], e["direction"], e["kind"]) for e in events]
    assert [k for k in kinds if k[0] == "tcp"] == [("tcp", "out", "ServerHello"), ("tcp", "in", "ClientKeyExchange"),
                                                   ("tcp", "in", "request"), ("tcp", "out", "complete")]
    assert ("udp", "in", "system") in kinds and ("udp", "out", "chat") in kinds
    for event in events:
        assert {"side", "direction", "transport", "peer", "raw", "kind", "session"} <= event.keys()
        if event["transport"] == "tcp":
            assert int.from_bytes(event["raw"][:4], "big") == len(event["raw"]) - 4
    chat_in = next(e for e in events if e["kind"] == "chat" and e["direction"] == "in")
    assert chat_in["plaintext"] == b"alice: hi" and chat_in["user"] == "alice"
    request_event = next(e for e in events if e["kind"] == "request")
    assert request_event["message"].payload == {"username": "alice", "password": ""}


def test_legacy_is_never_the_default_and_says_it_is_insecure(caplog):
    assert ChatServer(tcp_port=0, udp_port=0, key=ServerKey.demo()).profile.name == "TCRP/2"
    with pytest.raises(TypeError, match="from tcrp_lab.legacy import LegacyProfile"):
        ChatServer(tcp_port=0, udp_port=0, key=ServerKey.demo(), profile="legacy")   # asked for by its class
    with caplog.at_level(logging.WARNING, logger="tcrp_lab.legacy"):
        legacy = ChatServer(tcp_port=0, udp_port=0, key=ServerKey.demo(), profile=LegacyProfile)
    assert legacy.profile.name == "TCRP/1"
    assert "INSECURE" in WARNING and WARNING in caplog.text
    assert "[" not in WARNING   # the CLI prints it with rich markup
