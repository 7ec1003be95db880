"""Several UDP sockets on one port, the kernel steering each source address to one of them."""

from __future__ import annotations

import socket
import sys

import pytest

from tcrp_lab import ChatServer
from tcrp_lab.crypto import ServerKey
from tcrp_lab.legacy import LegacyProfile
from tcrp_lab.shards import bind_udp, queue_of, steering_program

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="SO_ATTACH_REUSEPORT_CBPF is Linux's")


def test_each_source_address_always_lands_on_the_same_socket_of_the_port():
    group = bind_udp("127.0.0.1", 0, 4, 1 << 20, key=0x2545F491)
    try:
        assert len(group) == 4 and len({s.getsockname() for s in group}) == 1
        for sock in group:
            sock.settimeout(0.3)
        for host in range(1, 17):
            for _ in range(3):   # a new source port each time: the address alone decides
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
                    sender.bind((f"127.0.0.{host}", 0))
                    sender.sendto(b"x", group[0].getsockname())
        seen: dict[str, set[int]] = {}
        for index, sock in enumerate(group):
            try:
                while True:
                    _, (source, _) = sock.recvfrom(16)
                    seen.setdefault(source, set()).add(index)
            except TimeoutError:
                pass
        assert len(seen) == 16 and all(len(indexes) == 1 for indexes in seen.values())
        assert {next(iter(i)) for i in seen.values()} == {0, 1, 2, 3}    # spread over every socket
    finally:
        for sock in group:
            sock.close()


def test_the_steering_program_is_five_classic_bpf_instructions_with_an_odd_key():
    program = steering_program(4, key=0x1000)
    assert len(program) == 5 * 8 and program.endswith(b"\x16\x00\x00\x00\x00\x00\x00\x00")   # ret A
    assert program[8:16] == bytes.fromhex("2400000001100000")   # A *= 0x1001: the key made odd


def test_a_udp_port_held_by_another_server_is_refused_not_shared():
    with ChatServer("127.0.0.1", 0, 0, key=ServerKey.demo()) as first:
        assert first.stats["udp_queues"] == 64
        second = ChatServer("127.0.0.1", 0, first.address.udp_port, key=ServerKey.demo())
        with pytest.raises(OSError, match="Is another server running"):
            second.start()


def test_the_legacy_relay_keeps_one_queue_and_one_thread():
    with ChatServer("127.0.0.1", 0, 0, key=ServerKey.demo(), profile=LegacyProfile) as legacy:
        assert legacy.stats["udp_queues"] == 1
        assert len([t for t in legacy._threads if t.name.startswith("tcrp-udp")]) == 1


def test_the_server_can_say_which_queue_an_address_lands_in_as_the_kernel_does():
    group = bind_udp("127.0.0.1", 0, 8, 1 << 20, key=0x5BD1E995)
    try:
        for sock in group:
            sock.settimeout(0.3)
        for host in range(1, 13):
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
                sender.bind((f"127.0.0.{host}", 0))
                sender.sendto(b"x", group[0].getsockname())
        for index, sock in enumerate(group):
            try:
                while True:
                    _, (source, _) = sock.recvfrom(16)
                    assert queue_of(source, 8, 0x5BD1E995) == index, source
            except TimeoutError:
                pass
    finally:
        for sock in group:
            sock.close()
