"""The UdpRelay's network impairments (netem's: loss, delay, jitter, reordering, duplication), and TCRP/2
delivering every message exactly once, in order, through each of them and all of them together."""

from __future__ import annotations

import socket
from concurrent.futures import ThreadPoolExecutor

import pytest

from tcrp_lab import ChatClient, ChatServer
from tcrp_lab.attacks import C2S, S2C, Netem, UdpRelay
from tcrp_lab.crypto import ServerKey

KEY = ServerKey.demo()
MESSAGES = 1000
SENDERS = 3

#: each impairment alone, then all together; the relay applies them both ways
IMPAIRMENTS = {
    "delay": {"delay": 0.02},
    "jitter": {"delay": 0.01, "jitter": 0.01},
    "reorder": {"reorder": 0.2},
    "duplicate": {"duplicate": 0.2},
    "all together": {"loss": 0.03, "delay": 0.01, "jitter": 0.005, "reorder": 0.1, "duplicate": 0.1},
}


def test_the_fate_of_a_datagram_depends_only_on_the_seed_the_direction_and_its_number():
    netem = Netem(loss=0.3, delay=0.01, jitter=0.01, reorder=0.2, duplicate=0.2, seed=5)
    fates = [netem.fate(C2S, n) for n in range(2000)]
    assert fates == [Netem(loss=0.3, delay=0.01, jitter=0.01, reorder=0.2, duplicate=0.2, seed=5).fate(C2S, n)
                     for n in range(2000)]
    assert fates != [netem.fate(S2C, n) for n in range(2000)]
    assert fates != [Netem(loss=0.3, delay=0.01, jitter=0.01, reorder=0.2, duplicate=0.2, seed=6).fate(C2S, n)
                     for n in range(2000)]


def test_each_impairment_happens_about_as_often_as_asked():
    n = 4000
    lost = sum(not Netem(loss=0.25).fate(C2S, i) for i in range(n))
    doubled = sum(len(Netem(duplicate=0.1).fate(C2S, i)) == 2 for i in range(n))
    held = sum(Netem(reorder=0.3, reorder_gap=0.01).fate(C2S, i) == (0.01,) for i in range(n))
    assert 0.22 * n < lost < 0.28 * n
    assert 0.08 * n < doubled < 0.12 * n
    assert 0.27 * n < held < 0.33 * n
    delays = [d for i in range(n) for d in Netem(delay=0.02, jitter=0.005).fate(C2S, i)]
    assert min(delays) >= 0.015 and max(delays) <= 0.025 and 0.0195 < sum(delays) / n < 0.0205
    assert Netem().fate(S2C, 7) == (0.0,) and not Netem().active


@pytest.mark.parametrize("field,value", [("loss", 1.5), ("duplicate", -0.1), ("delay", -1.0), ("jitter", 120.0)])
def test_an_impossible_impairment_is_refused(field, value):
    with pytest.raises(ValueError, match=field):
        Netem(**{field: value})


def test_the_relay_holds_reorders_and_doubles_datagrams_as_its_netem_says():
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    sink.settimeout(5)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with UdpRelay(sink.getsockname(), loss=0.2, reorder=0.3, duplicate=0.2, seed=3) as relay:
        for n in range(100):
            sender.sendto(n.to_bytes(2, "big"), relay.address)
        netem = relay.netem
        expected = sorted(n for n in range(100) for _ in netem.fate(C2S, n))   # every copy that should arrive
        got = [int.from_bytes(sink.recv(16), "big") for _ in expected]
        assert sorted(got) == expected, "exactly the copies the seed says, no more, no fewer"
        assert got != expected, "some overtaken"
        assert relay.impaired["lost"] == 100 - len(set(expected))
        assert relay.impaired["duplicated"] == len(expected) - len(set(expected)) > 0
        assert relay.impaired["overtaken"] > 0
        assert [p.delays for p in relay.captured(C2S)] == [netem.fate(C2S, n) for n in range(100)]
    sink.close()
    sender.close()


@pytest.mark.parametrize("impairment", IMPAIRMENTS)
def test_1000_messages_from_3_senders_arrive_once_and_in_order_through_an_impaired_path(impairment):
    with ChatServer("127.0.0.1", 0, 0, key=KEY) as server, \
            UdpRelay(server.address, seed=18, **IMPAIRMENTS[impairment]) as link:
        clients = [ChatClient.create_room(server.address, "netem", "u0", udp_via=link.address)]
        try:
            clients += [ChatClient.join_room(server.address, "netem", f"u{i}", udp_via=link.address)
                        for i in range(1, SENDERS + 1)]
            senders = clients[:SENDERS]
            counts = [MESSAGES // SENDERS + (i < MESSAGES % SENDERS) for i in range(SENDERS)]   # 334, 333, 333
            with ThreadPoolExecutor(SENDERS) as pool:
                list(pool.map(lambda c, k: [c.send(f"{c.username}:{n}") for n in range(k)], senders, counts))
            for client in clients:
                got = client.wait_for_messages(MESSAGES, timeout=60)
                assert len(got) == MESSAGES, "none lost, none doubled"
                assert [m.seq for m in got] == sorted({m.seq for m in got}), "room order kept, each seq once"
                for sender, k in zip(senders, counts):
                    assert [m.text for m in got if m.sender == sender.username] == [
                        f"{sender.username}:{n}" for n in range(k)], "each sender's order kept"
            impaired = link.impaired
            if "loss" in IMPAIRMENTS[impairment]:
                assert impaired["lost"] > 50
            if "duplicate" in IMPAIRMENTS[impairment]:
                assert impaired["duplicated"] > 100
            if {"jitter", "reorder"} & set(IMPAIRMENTS[impairment]):
                assert impaired["overtaken"] > 50, "the path really reordered"
            if impairment == "delay":
                assert {p.delays for p in link.captured()} == {(0.02,)}, "every datagram held 20 ms"
        finally:
            for client in clients:
                client.close()
