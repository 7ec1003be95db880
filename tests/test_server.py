"""ChatServer over loopback: rooms, errors, timeouts, loss, hostile input, clean shutdown."""

from __future__ import annotations

import os
import random
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import psutil
import pytest

from tcrp_lab import ChatClient, ChatServer
from tcrp_lab.client import NoSuchRoom, RoomExists, UsernameTaken, WrongPassword, InvalidName
from tcrp_lab.crypto import ServerKey, seal
from tcrp_lab.protocol import Chat, Datagram
from tests.conftest import wait_for
from tcrp_lab.attacks import UdpRelay
from tests.spec_client import SpecClient

KEY = ServerKey.demo()  # made once: RSA key generation is not what these tests are about


def tcrp_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("tcrp-")]


def test_start_binds_free_ports_and_exposes_them():
    server = ChatServer("127.0.0.1", 0, 0, key=KEY).start()
    try:
        address = server.address
        assert address.tcp_port > 0 and address.udp_port > 0
        assert server.fingerprint == KEY.fingerprint
        with socket.create_connection((address.host, address.tcp_port), timeout=2):
            pass
    finally:
        server.stop()


def test_two_rooms_three_users_each_chat_at_once(server):
    clients = {}
    for room in ("red", "blue"):
        clients[room] = [ChatClient.create_room(server.address, room, f"{room}0", "pw")]
        clients[room] += [ChatClient.join_room(server.address, room, f"{room}{i}", "pw") for i in (1, 2)]
    everyone = clients["red"] + clients["blue"]

    def chatter(client: ChatClient) -> None:
        for n in range(10):
            client.send(f"{client.username} says {n}")

    with ThreadPoolExecutor(6) as pool:
        list(pool.map(chatter, everyone))
    for room, members in clients.items():
        for client in members:
            got = client.wait_for_messages(30, timeout=10)
            assert len(got) == 30
            assert {m.sender for m in got} == {f"{room}{i}" for i in range(3)}  # no cross-room leaks
            assert [m.seq for m in got] == sorted(m.seq for m in got)
            for sender in {m.sender for m in got}:  # each sender's messages in the order sent
                assert [m.text for m in got if m.sender == sender] == [f"{sender} says {n}" for n in range(10)]
    assert server.stats["rooms"] == 2 and server.stats["members"] == 6
    for client in everyone:
        client.close()


def test_errors_become_specific_exceptions(server):
    host = ChatClient.create_room(server.address, "lab", "alice", "pw")
    with pytest.raises(WrongPassword, match="wrong password"):
        ChatClient.join_room(server.address, "lab", "bob", "nope")
    with pytest.raises(NoSuchRoom, match="no room named 'nowhere'"):
        ChatClient.join_room(server.address, "nowhere", "bob")
    with pytest.raises(UsernameTaken, match="taken"):
        ChatClient.join_room(server.address, "lab", "alice", "pw")
    with pytest.raises(RoomExists):
        ChatClient.create_room(server.address, "lab", "mallory", "x")
    with pytest.raises(InvalidName, match="space"):
        ChatClient.create_room(server.address, " lab", "bob")
    assert server.stats["drops"]["request_error:wrong_password"] == 1
    assert ChatClient.list_rooms(server.address)[0].members == 1
    host.close()


def test_list_rooms_shows_members_and_locks(server):
    a = ChatClient.create_room(server.address, "locked", "alice", "pw")
    b = ChatClient.create_room(server.address, "open", "bob")
    c = ChatClient.join_room(server.address, "open", "carol")
    rooms = {r.name: r for r in ChatClient.list_rooms(server.address, fingerprint=server.fingerprint)}
    assert (rooms["locked"].members, rooms["locked"].has_password) == (1, True)
    assert (rooms["open"].members, rooms["open"].has_password) == (2, False)
    for client in (a, b, c):
        client.close()


def test_host_leaving_closes_the_room_and_every_member_is_told(server):
    host = ChatClient.create_room(server.address, "lab", "alice")
    guests = [ChatClient.join_room(server.address, "lab", name) for name in ("bob", "carol")]
    host.leave()
    for guest in guests:
        event = guest.wait_for_event("room_closed", timeout=5)
        assert event.reason == "host_left" and guest.state == "room_closed"
    assert ChatClient.list_rooms(server.address) == []


def test_guest_leaving_is_announced(server):
    host = ChatClient.create_room(server.address, "lab", "alice")
    guest = ChatClient.join_room(server.address, "lab", "bob")
    assert host.members == ["alice", "bob"] or wait_for(lambda: "bob" in host.members)
    guest.leave()
    assert host.wait_for_event("left", timeout=5).user == "bob"
    assert host.members == ["alice"]
    host.close()


def test_guest_timeout_with_a_short_configured_timeout():
    with ChatServer("127.0.0.1", 0, 0, key=KEY, inactivity_timeout=0.6, reap_interval=0.05) as server:
        host = ChatClient.create_room(server.address, "lab", "alice")
        guest = ChatClient.join_room(server.address, "lab", "bob")
        stop = threading.Event()

        def keep_host_active() -> None:  # chatting is activity; the client's pings are not
            while not stop.wait(0.2):
                host.send("still here")

        keeper = threading.Thread(target=keep_host_active)
        keeper.start()
        try:
            kicked = guest.wait_for_event("kicked", timeout=5)
            assert kicked.reason == "timeout" and guest.state == "kicked"
            assert host.wait_for_event("timeout", timeout=5).user == "bob"
            assert host.state == "joined"
        finally:
            stop.set()
            keeper.join(5)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_host_timeout_with_the_injected_clock_closes_the_room():
    clock = FakeClock()
    with ChatServer("127.0.0.1", 0, 0, key=KEY, clock=clock, reap_interval=0.02) as server:
        host = ChatClient.create_room(server.address, "lab", "alice")
        guest = ChatClient.join_room(server.address, "lab", "bob")
        clock.now += 299
        guest.send("hi")          # the guest is active; the host is not
        guest.wait_for_messages(1, timeout=5)
        clock.now += 2            # 301 s after the host's last activity
        assert host.wait_for_event("kicked", timeout=5).reason == "timeout"
        assert guest.wait_for_event("room_closed", timeout=5).reason == "host_timeout"
        assert server.stats["rooms"] == 0


def test_500_messages_over_a_lossy_path_arrive_once_and_in_order(server):
    loss = random.Random(7)
    link = UdpRelay(server.address, drop=lambda packet: loss.random() < 0.2)  # 20 % each way
    try:
        clients = [ChatClient.create_room(server.address, "lossy", "u0", udp_via=link.address)]
        clients += [ChatClient.join_room(server.address, "lossy", f"u{i}", udp_via=link.address) for i in (1, 2, 3)]
        senders = clients[:3]
        per_sender = 500 // len(senders) + 1  # 501 messages in all
        with ThreadPoolExecutor(3) as pool:
            list(pool.map(lambda c: [c.send(f"{c.username}:{n}") for n in range(per_sender)], senders))
        total = per_sender * len(senders)
        for client in clients:
            got = client.wait_for_messages(total, timeout=60)
            assert len(got) == total, "none lost"
            assert len({m.seq for m in got}) == total, "none doubled"
            assert [m.seq for m in got] == sorted(m.seq for m in got), "room order kept"
            for s in senders:
                assert [m.text for m in got if m.sender == s.username] == [f"{s.username}:{n}" for n in range(per_sender)]
        for direction in ("c2s", "s2c"):  # the path really was lossy, both ways
            assert len(link.captured(direction, where=lambda p: p.forwarded is None)) > 50
        assert sum(c.stats["retransmits"] for c in senders) > 0
        assert sum(c.stats["resend_requests"] for c in clients) > 0
    finally:
        for client in locals().get("clients", []):
            client.close()
        link.stop()


def test_hostile_datagrams_and_a_silent_connection_do_not_stop_a_normal_client(server):
    victim = ChatClient.create_room(server.address, "lab", "victim")
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    target = ("127.0.0.1", server.address.udp_port)
    silent = socket.create_connection((server.address.host, server.address.tcp_port))
    token, room = victim.token, victim.room
    wrong_key = os.urandom(32)

    def forged(seq: int) -> bytes:  # the right token, a fresh seq, but not the session's key
        header = Datagram.make_header(room.encode(), token, seq)
        return header + seal(wrong_key, seq, b'{"type":"chat","id":1,"text":"forged"}', header)

    captured = victim.channel.seal(Chat(id=1, text="captured").encode())  # as if the victim sent it
    udp.sendto(captured, target)  # delivered once (a real message from the victim's keys)
    bad = (
        [b""] + [os.urandom(n) for n in range(1, 40)]                         # malformed
        + [b"\x03\x10lab" + os.urandom(40) for _ in range(10)]                # unknown tokens
        + [forged(1000 + i) for i in range(20)]                                # bad tags
        + [captured] * 10                                                      # replays
        + [b"\x00" * 5000] * 5                                                # oversize
        + [Datagram("other", token, 1, b"", bytes(16)).encode()] * 5         # wrong room
    )
    for data in bad:
        udp.sendto(data, target)
    counted = ("replayed", "bad_tag", "oversize", "unknown_token", "wrong_room", "malformed")
    # Every hostile datagram is counted under some reason (the victim's own pings are not drops).
    wait_for(lambda: sum(server.stats["drops"].get(r, 0) for r in counted) >= len(bad), timeout=10,
             what="the server counting them all")
    drops = server.stats["drops"]
    assert (drops["replayed"], drops["bad_tag"], drops["oversize"], drops["unknown_token"], drops["wrong_room"]) \
        == (10, 20, 5, 10, 5), drops
    assert drops["malformed"] == 40  # under 40 bytes, no random datagram can parse
    guest = ChatClient.join_room(server.address, "lab", "guest")
    guest.send("hello after the storm")
    assert [m.text for m in victim.wait_for_messages(2, timeout=5)] == ["captured", "hello after the storm"]
    assert all(t.is_alive() for t in server._threads)
    silent.close()
    udp.close()
    victim.close()
    guest.close()


def test_a_silent_connection_is_closed_at_the_deadline():
    with ChatServer("127.0.0.1", 0, 0, key=KEY, handshake_timeout=0.3) as server:
        silent = socket.create_connection((server.address.host, server.address.tcp_port))
        silent.settimeout(5)
        assert silent.recv(65536)[4:8] == b"TCRP"   # the ServerHello, then nothing from us
        assert silent.recv(65536) == b""            # closed by the server at the deadline
        wait_for(lambda: server.stats["drops"].get("tcp_deadline") == 1, what="the deadline drop")
        silent.close()


def test_fifty_clients_join_at_once(server, capsys):
    host = ChatClient.create_room(server.address, "crowd", "host")
    start = time.perf_counter()
    with ThreadPoolExecutor(50) as pool:
        guests = list(pool.map(lambda i: ChatClient.join_room(server.address, "crowd", f"g{i}"), range(50)))
    wall = time.perf_counter() - start
    assert all(g.state == "joined" for g in guests)
    assert server.stats["members"] == 51
    with capsys.disabled():
        print(f"\n50 concurrent joins: {wall:.3f} s wall (not asserted; see python -m tcrp_lab.bench)")
    host.send("welcome all")
    for g in guests:
        assert g.wait_for_messages(1, timeout=10)[0].text == "welcome all"
    for c in [host, *guests]:
        c.close()


def test_a_client_written_from_the_spec_alone_can_join_and_chat(server):
    alice = ChatClient.create_room(server.address, "lab", "alice", "pw")
    spec = SpecClient("127.0.0.1", server.address.tcp_port, "lab", "specbob", "pw")
    assert spec.fingerprint == server.fingerprint
    assert spec.complete["members"] == ["alice", "specbob"] and spec.complete["is_host"] is False
    spec.send({"type": "hello"})
    assert spec.receive_until(lambda d: d["type"] == "welcome")["seq"] == 1   # specbob's joined event comes next
    spec.send({"type": "chat", "id": 1, "text": "hello from the spec"})
    ack = spec.receive_until(lambda d: d["type"] == "ack")
    assert {k: ack[k] for k in ("type", "id", "seq")} == {"type": "ack", "id": 1, "seq": 3}   # §4
    assert ack.get("upto") == 1                               # §4.5's extension, which §4's client may ignore
    assert alice.wait_for_messages(1, timeout=5)[0].text == "hello from the spec"
    alice.send("hi spec")
    chat = spec.receive_until(lambda d: d["type"] == "chat" and d["from"] == "alice")
    assert chat["text"] == "hi spec" and chat["seq"] == 4
    spec.send({"type": "resend", "from": 3, "to": 3})
    assert spec.receive_until(lambda d: d["type"] == "chat" and d["seq"] == 3)["text"] == "hello from the spec"
    spec.send({"type": "leave"})
    assert alice.wait_for_event("left", timeout=5).user == "specbob"
    alice.close()
    spec.udp.close()


def test_stop_tells_members_and_leaves_no_thread_or_socket():
    before = {t for t in threading.enumerate()}
    process = psutil.Process()
    server = ChatServer("127.0.0.1", 0, 0, key=KEY).start()
    ports = {server.address.tcp_port, server.address.udp_port}
    host = ChatClient.create_room(server.address, "lab", "alice")
    guest = ChatClient.join_room(server.address, "lab", "bob")
    lingering = socket.create_connection((server.address.host, server.address.tcp_port))
    wait_for(lambda: server.stats["open_connections"] == 1, what="the lingering connection's thread")
    server.stop()
    assert "stopped" in repr(server) and server.address.tcp_port in ports  # still readable after stop
    for client in (host, guest):
        assert client.wait_for_event("room_closed", timeout=5).reason == "server_shutdown"
        client.close()
    lingering.close()
    assert not [t for t in threading.enumerate() if t not in before and t.is_alive()]
    assert not [c for c in process.net_connections("all") if c.laddr and c.laddr.port in ports]


def test_bad_arguments_get_clear_messages():
    with pytest.raises(ValueError, match="port number"):
        ChatServer(tcp_port=70000)
    with pytest.raises(ValueError, match="positive number of seconds"):
        ChatServer(inactivity_timeout=0, key=KEY)
    with pytest.raises(TypeError, match="SecureProfile"):
        ChatServer(profile="fast", key=KEY)
    with ChatServer("127.0.0.1", 0, 0, key=KEY) as one:
        with pytest.raises(OSError, match="Port 0 picks a free port"):
            ChatServer("127.0.0.1", one.address.tcp_port, 0, key=KEY).start()
