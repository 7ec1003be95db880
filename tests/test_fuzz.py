"""Fuzzing a running server: 100,000 hostile datagrams and 10,000 malformed TCP streams.

Each hostile input is built from real sessions (made by the real handshake), and an oracle
built on the sans-IO codec says which drop reason the server must count for it. Afterwards the
drops must match the oracle reason by reason, every server thread must be alive, no connection
thread may be left, memory must not have grown unbounded, and a normal client joins and chats.

Bounded in count and in time; the sender paces itself on the server's own ``datagrams_in``
counter, so no datagram is lost in a socket buffer (a loss would break the exact counts).
"""

from __future__ import annotations

import os
import random
import socket
import struct
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import psutil
from tcrp_lab import ChatClient, ChatServer
from tcrp_lab.client import ControlConnection
from tcrp_lab.crypto import (
    RecordLayer, ReplayWindow, ServerHello, ServerKey, SessionKeys, UdpChannel, client_key_exchange,
)
from tcrp_lab.net import FramedSocket
from tcrp_lab.protocol import MAX_DATAGRAM, MAX_FRAME, Datagram, Hello, Message, Ping, ProtocolError
from tests.conftest import wait_for

KEY = ServerKey.demo()
DATAGRAMS = 100_000
STREAMS = 10_000
BATCH = 128                 # datagrams in flight at most: far below any socket buffer
DRIP_STREAMS = 16           # slow-drip connections, in parallel, cut by the handshake deadline
HANDSHAKE_TIMEOUT = 1.5
RSS_GROWTH_LIMIT = 32 << 20


@dataclass(eq=False)
class Session:
    """A real session seen from the outside: its channel, and a mirror of the server's replay window."""

    room: str
    channel: UdpChannel
    window: ReplayWindow = field(default_factory=ReplayWindow)

    def valid(self, plaintext: bytes) -> tuple[bytes, int]:
        data = self.channel.seal(plaintext)
        return data, Datagram.decode(data).seq


def open_session(server: ChatServer, room: str, username: str, *, create: bool) -> Session:
    message = Message.create_room(room, username) if create else Message.join_room(room, username)
    with ControlConnection(server.address, fingerprint=server.fingerprint, timeout=5) as control:
        complete = control.enter(message)
    return Session(room, UdpChannel.client(room, bytes.fromhex(complete["token"]), control.keys))


def oracle(data: bytes, sessions: dict[bytes, Session]) -> str:
    """The drop reason TCRP.md's checks give, in the server's order, for a datagram that is not valid."""
    if len(data) > MAX_DATAGRAM:
        return "oversize"
    try:
        datagram = Datagram.decode(data)
    except ProtocolError:
        return "malformed"
    session = sessions.get(datagram.token)
    if session is None:
        return "unknown_token"
    if datagram.room != session.room:
        return "wrong_room"
    if not session.window.check(datagram.seq):
        return "replayed"
    return "bad_tag"


# Chats that decode but break a text limit are refused with a ``refused`` answer (TCRP.md §4.3).
REFUSED_TEXTS = [
    b'{"type": "chat", "id": 1, "text": ""}', b'{"type": "chat", "id": 1, "text": "' + b"x" * 1001 + b'"}',
    b'{"type": "chat", "id": 1, "text": "\\u001b[2J"}', b'{"type": "chat", "id": 1, "text": "\\ud800"}',
]
BAD_PAYLOADS = [
    b"\xff\xfe not utf-8", b"not json", b"[1, 2, 3]", b'"a string"', b"{}", b'{"type": "nope"}',
    b'{"type": "welcome", "seq": 1}', b'{"type": "chat", "id": -1, "text": "x"}', b'{"type": "chat", "id": 1}',
    b'{"type": "chat", "id": "1", "text": "x"}', b'{"type": "resend", "from": 9, "to": 1}',
    b'{"type": "resend", "from": 1.5, "to": 2}', b'{"type": "chat", "id": 18446744073709551616, "text": "x"}',
    b"[" * 2000 + b"]" * 2000, b'{"type": "ping"' + b" " * 3000, b'{"type": ["hello"]}',
]


class DatagramFuzzer:
    """Makes hostile datagrams of many kinds; ``expected`` counts the reason the server must give."""

    def __init__(self, sessions: list[Session], seed: int):
        self.rng = random.Random(seed)
        self.sessions = {s.channel.token: s for s in sessions}
        self.own = sessions
        self.expected: Counter[str] = Counter()
        self.valid = 0
        self.captured: list[bytes] = []

    def next(self) -> bytes:
        rng, session = self.rng, self.rng.choice(self.own)
        kind = rng.choices(["valid", "replay", "flip", "truncate", "length_lie", "other_token", "random",
                            "structured", "bad_payload"], [3, 10, 25, 12, 10, 8, 15, 12, 5])[0]
        if kind == "valid" or not self.captured:
            data, seq = session.valid(Ping().encode())
            session.window.update(seq)  # the server accepts it and moves its window the same way
            self.captured.append(data)
            self.valid += 1
            return data
        if kind == "bad_payload":  # authenticates, then fails to decode (or is refused): counted, the window moves
            plaintext = rng.choice(BAD_PAYLOADS + REFUSED_TEXTS)
            data, seq = session.valid(plaintext)
            session.window.update(seq)
            self.expected["refused_text" if plaintext in REFUSED_TEXTS else "bad_payload"] += 1
            return data
        if kind == "replay":
            data = rng.choice(self.captured[-200:])
        elif kind == "flip":
            fresh = bytearray(session.valid(Ping().encode())[0])
            for bit in rng.sample(range(len(fresh) * 8), rng.choice((1, 1, 1, 2, 8))):  # distinct: never undone
                fresh[bit // 8] ^= 1 << (bit % 8)
            data = bytes(fresh)
        elif kind == "truncate":
            fresh = session.valid(Ping().encode())[0]
            data = fresh[: rng.randrange(len(fresh))]
        elif kind == "length_lie":  # the room or token size byte says something else
            fresh = bytearray(session.valid(Ping().encode())[0])
            at = rng.choice((0, 1))
            fresh[at] = rng.choice([n for n in range(256) if n != fresh[at]])  # a lie, never the truth
            data = bytes(fresh)
        elif kind == "other_token":  # another session's token, with this room or that one
            other = rng.choice([s for s in self.own if s is not session])
            datagram = Datagram.decode(session.valid(Ping().encode())[0])
            room = rng.choice((session.room, other.room))
            data = Datagram(room, other.channel.token, datagram.seq, datagram.ciphertext, datagram.tag).encode()
        elif kind == "random":
            size = rng.choice((0, 1, 2, rng.randrange(3, 200), rng.randrange(200, MAX_DATAGRAM + 600)))
            data = rng.randbytes(size)
        else:  # structured: a plausible layout with random room, token, seq and body
            room = rng.choice((session.room, "x" * rng.randrange(0, 70), "ünï", ""))
            token = rng.choice((rng.randbytes(16), session.channel.token))
            data = Datagram(room, token, rng.randrange(2**64), rng.randbytes(rng.randrange(0, 100)),
                            rng.randbytes(16)).encode()
        self.expected[oracle(data, self.sessions)] += 1
        return data


def test_100000_hostile_datagrams_are_each_counted_and_change_nothing():
    # No rate budgets here: what is counted must follow from the bytes alone (the budgets have tests of their own).
    with ChatServer("127.0.0.1", 0, 0, key=KEY, address_rate=0, ping_rate=0, chat_rate=0) as server:
        sessions = [open_session(server, "alpha", "alice", create=True), open_session(server, "alpha", "bob", create=False),
                    open_session(server, "beta", "carol", create=True)]
        fuzzer = DatagramFuzzer(sessions, seed=20240611)
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        target = (server.address.host, server.address.udp_port)
        for session in sessions:   # each says hello first, as a client does: no longer provisional
            data, seq = session.valid(Hello().encode())
            session.window.update(seq)
            udp.sendto(data, target)
        wait_for(lambda: server.stats["members"] == 3 and server.registry.room("beta").seq == 1,
                 what="every session's hello")
        wait_for(lambda: all(not m.provisional for r in ("alpha", "beta")
                             for m in server.registry.room(r).members.values()), what="every hello")
        process = psutil.Process()
        base = server.stats
        rss = [process.memory_info().rss]
        sent = 0
        while sent < DATAGRAMS:
            for _ in range(min(BATCH, DATAGRAMS - sent)):
                udp.sendto(fuzzer.next(), target)
                sent += 1
            wait_for(lambda: server.stats["datagrams_in"] - base["datagrams_in"] >= sent, timeout=10,
                     what=f"the server reading datagram {sent}")
            if len(rss) == 1 and sent >= DATAGRAMS // 2:
                rss.append(process.memory_info().rss)
        rss.append(process.memory_info().rss)
        stats = server.stats
        drops = Counter({reason: n - base["drops"].get(reason, 0) for reason, n in stats["drops"].items()})
        drops = +drops  # only reasons that moved
        assert stats["datagrams_in"] - base["datagrams_in"] == DATAGRAMS
        assert sum(fuzzer.expected.values()) + fuzzer.valid == DATAGRAMS
        assert drops == fuzzer.expected, f"counted {dict(drops)}, expected {dict(fuzzer.expected)}"
        assert set(drops) >= {"malformed", "oversize", "unknown_token", "wrong_room", "bad_tag", "replayed",
                              "bad_payload", "refused_text"}
        assert stats["members"] == 3 and stats["rooms"] == 2   # hostile input created no state
        assert all(t.is_alive() for t in server._threads)
        assert rss[2] - rss[1] < RSS_GROWTH_LIMIT, f"RSS grew {(rss[2] - rss[1]) >> 20} MiB in the second half"
        udp.close()
        _a_normal_client_joins_and_chats(server)


# --- TCP ---------------------------------------------------------------------------------------

def _frame(body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + body


def _hello(sock: socket.socket) -> ServerHello:
    io = FramedSocket(sock)
    return ServerHello.decode(io.recv())


def _finish(sock: socket.socket) -> None:
    """Half-close, then read until the server closes: its verdict is counted before we return."""
    try:
        sock.shutdown(socket.SHUT_WR)
        while sock.recv(65536):
            pass
    except OSError:
        pass
    finally:
        sock.close()


def _handshaken(sock: socket.socket) -> RecordLayer:
    hello = _hello(sock)
    ckx, keys = client_key_exchange(hello)
    sock.sendall(_frame(ckx))
    return RecordLayer.client(keys)


def _stream(address: tuple[str, int], kind: str, rng: random.Random) -> None:
    """One malformed TCP stream of ``kind`` (see STREAM_KINDS for the drop each must cause)."""
    sock = socket.create_connection(address, timeout=10)
    try:
        if kind == "closed_at_once":
            pass
        elif kind == "half_handshake":
            _hello(sock)
        elif kind == "zero_length":
            _hello(sock)
            sock.sendall(b"\x00\x00\x00\x00" + rng.randbytes(rng.randrange(0, 20)))
        elif kind == "huge_length":
            _hello(sock)
            sock.sendall(struct.pack(">I", rng.randrange(MAX_FRAME + 1, 2**32)) + rng.randbytes(rng.randrange(0, 20)))
        elif kind == "truncated_frame":
            _hello(sock)
            length = rng.randrange(2, 3000)
            sock.sendall(struct.pack(">I", length) + rng.randbytes(rng.randrange(0, length)))
        elif kind == "garbage_key_exchange":  # a wrong-sized one: refused before any RSA work
            _hello(sock)
            sock.sendall(_frame(rng.randbytes(rng.choice((1, 16, 255, 257, 1000)))))
        elif kind == "garbage_after_handshake":
            _handshaken(sock)
            sock.sendall(_frame(rng.randbytes(rng.randrange(1, 300))))
        elif kind == "bad_requests":  # sealed properly, but not requests: three strikes
            records = _handshaken(sock)
            for body in (b"not a message", Message.list_rooms().encode()[:-1], b"\x00" * 40):
                sock.sendall(_frame(records.seal(body)))
        _finish(sock)
    except BaseException:
        sock.close()
        raise


STREAM_KINDS = {  # kind: (weight, {drop reason: count per stream})
    "closed_at_once": (20, {"tcp_closed_early": 1}),
    "half_handshake": (20, {"tcp_closed_early": 1}),
    "zero_length": (15, {"tcp_protocol_error": 1}),
    "huge_length": (15, {"tcp_protocol_error": 1}),
    "truncated_frame": (15, {"tcp_closed_early": 1}),
    "garbage_key_exchange": (10, {"tcp_protocol_error": 1}),
    "garbage_after_handshake": (3, {"tcp_bad_tag": 1}),
    "bad_requests": (2, {"request_error:invalid_request": 3, "too_many_failed_requests": 1}),
}


def _drip(address: tuple[str, int], rng: random.Random, done: threading.Event) -> None:
    """Send a valid-looking ClientKeyExchange one byte at a time until the server hangs up."""
    sock = socket.create_connection(address, timeout=10)
    try:
        _hello(sock)
        payload = _frame(rng.randbytes(256))
        for byte in payload:
            sock.sendall(bytes([byte]))
            sock.settimeout(0.05)   # the drip's pace: one byte, or the server's close, every 50 ms
            try:
                if sock.recv(1) == b"":
                    break
            except TimeoutError:
                continue
            except OSError:
                break
        else:
            raise AssertionError("the whole slow-drip frame went through: no deadline cut it")
    finally:
        sock.close()
        done.set()


def test_10000_malformed_tcp_streams_are_each_counted_and_leave_no_thread():
    baseline_threads = threading.active_count()
    # No connection rate here: what is counted must follow from each stream alone (the rate has tests of its own).
    with ChatServer("127.0.0.1", 0, 0, key=KEY, handshake_timeout=HANDSHAKE_TIMEOUT, connection_rate=0) as server:
        address = (server.address.host, server.address.tcp_port)
        rng = random.Random(7)
        kinds = rng.choices(list(STREAM_KINDS), [w for w, _ in STREAM_KINDS.values()], k=STREAMS - DRIP_STREAMS)
        expected: Counter[str] = Counter({"tcp_deadline": DRIP_STREAMS})
        for kind in kinds:
            expected.update(STREAM_KINDS[kind][1])
        process = psutil.Process()
        rss0 = process.memory_info().rss
        drips = [threading.Event() for _ in range(DRIP_STREAMS)]
        drippers = [threading.Thread(target=_drip, args=(address, random.Random(i), done), daemon=True)
                    for i, done in enumerate(drips)]
        for thread in drippers:
            thread.start()
        seeds = [rng.randrange(2**32) for _ in kinds]
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda ks: _stream(address, ks[0], random.Random(ks[1])), zip(kinds, seeds)))
        for done in drips:
            assert done.wait(HANDSHAKE_TIMEOUT + 10), "a slow-drip connection was never cut"
        wait_for(lambda: server.stats["open_connections"] == 0, timeout=10, what="every connection closed")
        stats = server.stats
        assert stats["connections"] == STREAMS
        assert Counter(stats["drops"]) == expected, f"counted {stats['drops']}, expected {dict(expected)}"
        assert stats["rooms"] == 0 and stats["members"] == 0
        assert all(t.is_alive() for t in server._threads)
        assert not server._connections
        wait_for(lambda: threading.active_count() <= baseline_threads + len(server._threads), timeout=10,
                 what="the connection threads to end")
        assert process.memory_info().rss - rss0 < RSS_GROWTH_LIMIT
        _a_normal_client_joins_and_chats(server)


def _a_normal_client_joins_and_chats(server: ChatServer) -> None:
    host = ChatClient.create_room(server.address, "after-the-storm", "host", fingerprint=server.fingerprint)
    guest = ChatClient.join_room(server.address, "after-the-storm", "guest", fingerprint=server.fingerprint)
    try:
        guest.send("still here")
        assert [m.text for m in host.wait_for_messages(1, timeout=5)] == ["still here"]
        assert guest.flush(timeout=5)
    finally:
        host.close()
        guest.close()


def test_the_oracle_can_tell_each_reason_apart():
    """The oracle itself: a known session's datagram is 'bad_tag' while its seq is fresh and
    'replayed' once the window saw it; the other reasons come from the layout."""
    channel = UdpChannel.client("r", os.urandom(16), SessionKeys(*(os.urandom(32) for _ in range(4))))
    session = Session("r", channel)
    data, seq = session.valid(Ping().encode())
    sessions = {channel.token: session}
    assert oracle(data, sessions) == "bad_tag"
    session.window.update(seq)
    assert oracle(data, sessions) == "replayed"
    assert oracle(data[:10], sessions) == "malformed"
    assert oracle(b"\x00" * (MAX_DATAGRAM + 1), sessions) == "oversize"
    assert oracle(Datagram("q", channel.token, 99, b"", bytes(16)).encode(), sessions) == "wrong_room"
    assert oracle(Datagram("r", os.urandom(16), 99, b"", bytes(16)).encode(), sessions) == "unknown_token"
