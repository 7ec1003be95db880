"""Every attack of lesson 08 works on TCRP/1 and fails on TCRP/2, for the reason the spec gives."""

from __future__ import annotations

import socket

import pytest
from Crypto.PublicKey import RSA

from tcrp_lab import ChatClient, ChatServer
from tcrp_lab.attacks import (
    C2S, S2C, KeySwap, TcpRelay, UdpRelay, bit_flip, ciphertext, hijack_room, keystream, keystream_reuse, replay,
    steal_token, xor,
)
from tcrp_lab.client import FingerprintMismatch
from tcrp_lab.crypto import ServerKey
from tcrp_lab.legacy import INVALID_PASSWORD, LegacyClient, LegacyProfile, LegacyRefused, join_notice
from tcrp_lab.net import ServerAddress
from tcrp_lab.protocol import Chat, Hello

from .conftest import wait_for


@pytest.fixture
def legacy_server():
    server = ChatServer(tcp_port=0, udp_port=0, key=ServerKey.demo(), profile=LegacyProfile)
    server.profile.per_connection_key = False   # the demo key on every connection: no RSA keygen per test
    with server:
        yield server


@pytest.fixture
def secure_server():
    with ChatServer(tcp_port=0, udp_port=0, key=ServerKey.demo()) as server:
        yield server


@pytest.fixture
def closing():
    """Register clients, relays and sockets to close at the end of the test."""
    things = []

    def keep(thing):
        things.append(thing)
        return thing

    yield keep
    for thing in reversed(things):
        thing.stop() if isinstance(thing, (UdpRelay, TcpRelay)) else thing.close()


def legacy_pair(server, relay, keep):
    """alice (host) and bob in "lab", both through ``relay``, each one's join notice relayed."""
    alice = keep(LegacyClient.create_room(server.address, "lab", "alice", "pw", udp_via=relay.address))
    bob = keep(LegacyClient.join_room(server.address, "lab", "bob", "pw", udp_via=relay.address))
    alice.wait_for_messages(2)
    bob.wait_for_messages(1)
    return alice, bob


def secure_pair(server, relay, keep):
    alice = keep(ChatClient.create_room(server.address, "lab", "alice", "pw", udp_via=relay.address))
    bob = keep(ChatClient.join_room(server.address, "lab", "bob", "pw", udp_via=relay.address))
    return alice, bob


def from_client(client, direction=C2S, where=lambda p: True):
    address = client.sock.getsockname()
    return lambda p: p.direction == direction and p.client == address and where(p)


def is_chat(text, chat_id=1):
    """A TCRP/2 datagram whose ciphertext has the length of this chat's plaintext (OCB keeps lengths)."""
    size = len(Chat(id=chat_id, text=text).encode())
    return lambda p: len(ciphertext(p.data)) == size


def relay_side(relay, client):
    """The address the server sees for ``client`` behind ``relay``."""
    return relay._socket_for(client.sock.getsockname()).getsockname()


def attacker_socket(keep) -> socket.socket:
    sock = keep(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5)
    return sock


# --- the relays themselves -----------------------------------------------------------------------

def test_udp_relay_records_each_datagram_with_its_direction(legacy_server, closing):
    relay = closing(UdpRelay(legacy_server.address))
    alice = closing(LegacyClient.create_room(legacy_server.address, "lab", "alice", udp_via=relay.address))
    sent = alice.send("hello")
    alice.wait_for_messages(2)
    c2s = relay.wait_for(2, direction=C2S)
    s2c = relay.wait_for(2, direction=S2C)
    assert c2s[1].data == c2s[1].forwarded == sent
    assert all(p.client == alice.sock.getsockname() for p in c2s + s2c)
    assert [p.index for p in relay.packets] == list(range(len(relay.packets)))
    with pytest.raises(TimeoutError):
        relay.wait_for(5, direction=C2S, timeout=0.05)


def test_tcp_relay_records_frames_and_can_rewrite_them(legacy_server, closing):
    def flip_token(packet):   # the encrypted token's last byte (the last CFB block: nothing else changes)
        if packet.direction == S2C and len(packet.data) == 255:
            return packet.data[:-1] + bytes([packet.data[-1] ^ 1])
        return packet.data

    relay = closing(TcpRelay(legacy_server.address, rewrite=flip_token))
    via = ServerAddress(*relay.address, legacy_server.address.udp_port)
    alice = closing(LegacyClient.create_room(via, "lab", "alice", "pw"))
    frames = relay.wait_for(4)
    assert [(p.direction, p.connection) for p in frames] == [(S2C, 1), (C2S, 1), (C2S, 1), (S2C, 1)]
    assert frames[0].data.startswith(b"-----BEGIN PUBLIC KEY-----")
    assert frames[3].forwarded != frames[3].data and frames[0].forwarded == frames[0].data
    assert alice.token not in legacy_server.profile.sessions
    assert alice.token[:-1] + bytes([alice.token[-1] ^ 1]) in legacy_server.profile.sessions


# --- keystream reuse: one key and one IV vs a nonce per datagram -----------------------------------

def test_keystream_reuse_reads_other_members_messages_on_tcrp1(legacy_server, closing):
    relay = closing(UdpRelay(legacy_server.address))
    alice, bob = legacy_pair(legacy_server, relay, closing)
    alice_join = relay.wait_for(1, where=from_client(alice))[0]
    bob_join = relay.wait_for(1, where=from_client(bob))[0]
    alice.send("meet me at noon by the old gate")
    bob.wait_for_messages(2)
    alice_chat = relay.wait_for(2, where=from_client(alice))[1]
    copy_to_bob = relay.wait_for(2, where=from_client(bob, S2C))[1]

    # XOR of two captured ciphertexts = XOR of the plaintexts (first block): the known one reveals the other.
    mixed = xor(ciphertext(alice_join.data), ciphertext(alice_chat.data))[:16]
    assert mixed == xor(join_notice("alice").encode(), b"alice: meet me at noon")[:16]
    result = keystream_reuse(alice_join.data, join_notice("alice").encode(), alice_chat.data)
    assert result.succeeded and result.evidence["recovered"] == b"alice: meet me a"
    # Bob's own join notice gives bob's keystream: the server's copy to bob reads the same.
    result = keystream_reuse(bob_join.data, join_notice("bob").encode(), copy_to_bob.data)
    assert result.succeeded and result.evidence["recovered"] == b"alice: meet me a"
    assert "fixed IV" in result.explanation


def test_keystream_reuse_gives_noise_on_tcrp2(secure_server, closing):
    relay = closing(UdpRelay(secure_server.address))
    alice, bob = secure_pair(secure_server, relay, closing)
    text = "meet me at noon by the old gate"
    alice.send(text)
    bob.wait_for_messages(1)
    hello = relay.wait_for(1, where=from_client(alice, where=lambda p: len(ciphertext(p.data)) == 16))[0]
    chat = relay.wait_for(1, where=from_client(alice, where=is_chat(text)))[0]
    result = keystream_reuse(hello.data, Hello().encode(), chat.data)
    assert not result.succeeded
    assert result.evidence["recovered"] != Chat(id=1, text=text).encode()[:16]
    assert "nonce" in result.explanation and "seq 0" in result.explanation


# --- bit flipping: no integrity vs an AEAD tag --------------------------------------------------

def test_bit_flip_turns_pay_100_into_pay_900_on_tcrp1(legacy_server, closing):
    relay = closing(UdpRelay(legacy_server.address))
    alice, bob = legacy_pair(legacy_server, relay, closing)
    relay.drop = from_client(alice)                           # hold alice's next datagram
    alice.send("please pay 100")
    held = relay.wait_for(1, where=lambda p: from_client(alice)(p) and p.forwarded is None)[0]
    offset = len("alice: please pay ")
    assert offset // 16 == (len("alice: please pay 100") - 1) // 16   # in the last block: nothing else garbles
    result = bit_flip(legacy_server, relay, held, offset, b"1", b"9")
    assert result.succeeded, result
    assert bob.wait_for_messages(2)[-1] == "alice: please pay 900"
    assert "alice: please pay 100" not in bob.messages
    assert not legacy_server.stats["drops"]


def test_bit_flip_is_dropped_for_its_tag_on_tcrp2(secure_server, closing):
    relay = closing(UdpRelay(secure_server.address))
    alice, bob = secure_pair(secure_server, relay, closing)
    text = "please pay 100"
    relay.drop = from_client(alice, where=is_chat(text))
    alice.send(text)
    held = relay.wait_for(1, where=from_client(alice, where=is_chat(text)))[0]
    offset = Chat(id=1, text=text).encode().index(b"100")
    result = bit_flip(secure_server, relay, held, offset, b"1", b"9")
    assert not result.succeeded and result.evidence["drop"] == "bad_tag", result
    relay.drop = None                                          # alice's retransmission now gets through
    assert [m.text for m in bob.wait_for_messages(1)] == [text]


# --- replay: nothing numbers TCRP/1 datagrams vs the replay window --------------------------------

def test_replay_delivers_a_message_again_on_tcrp1(legacy_server, closing):
    relay = closing(UdpRelay(legacy_server.address))
    alice, bob = legacy_pair(legacy_server, relay, closing)
    alice.send("pay 100")
    bob.wait_for_messages(2)
    captured = relay.wait_for(2, where=from_client(alice))[1]
    result = replay(legacy_server, relay, captured)
    assert result.succeeded and result.evidence["relayed"].text == "alice: pay 100"
    assert bob.wait_for_messages(3)[1:] == ["alice: pay 100", "alice: pay 100"]


def test_replay_is_refused_by_the_window_on_tcrp2(secure_server, closing):
    relay = closing(UdpRelay(secure_server.address))
    alice, bob = secure_pair(secure_server, relay, closing)
    alice.send("pay 100")
    bob.wait_for_messages(1)
    captured = relay.wait_for(1, where=from_client(alice, where=is_chat("pay 100")))[0]
    result = replay(secure_server, relay, captured)
    assert not result.succeeded and result.evidence["drop"] == "replayed", result
    assert "replay window" in result.explanation
    assert secure_server.stats["drops"]["replayed"] == 1


# --- token theft: the clear token is the identity vs authenticated addresses ----------------------

def test_a_captured_token_speaks_as_its_member_and_takes_its_traffic_on_tcrp1(legacy_server, closing):
    relay = closing(UdpRelay(legacy_server.address))
    alice, bob = legacy_pair(legacy_server, relay, closing)
    notice = relay.wait_for(1, where=from_client(alice))[0]
    stream = keystream(notice.data, join_notice("alice").encode())
    attacker = attacker_socket(closing)
    result = steal_token(legacy_server, notice, attacker, text=b"alice: I resign", keystream=stream)
    assert result.succeeded, result
    assert result.evidence["address"] == attacker.getsockname()
    assert bob.wait_for_messages(2)[-1] == "alice: I resign"
    bob.send("are you sure?")
    stolen = []
    while not stolen or not stolen[-1].startswith(b"bob: are you sur"):   # bounded by the socket timeout
        stolen.append(xor(ciphertext(attacker.recv(4096)), stream))
    assert stolen[-1] == b"bob: are you sur"                    # alice's copy, read by the attacker
    assert "bob: are you sure?" not in alice.messages           # the server sent alice's copy elsewhere
    with pytest.raises(ValueError, match="at most 16"):
        steal_token(legacy_server, notice, attacker, text=b"alice: a longer forged line", keystream=stream)


def test_a_captured_token_is_no_key_on_tcrp2(secure_server, closing):
    relay = closing(UdpRelay(secure_server.address))
    alice, bob = secure_pair(secure_server, relay, closing)
    alice.send("hello")
    bob.wait_for_messages(1)
    captured = relay.wait_for(1, where=from_client(alice, where=is_chat("hello")))[0]
    result = steal_token(secure_server, captured, attacker_socket(closing))
    assert not result.succeeded and result.evidence["drop"] == "bad_tag", result
    assert result.evidence["address_after"] == result.evidence["address_before"] == relay_side(relay, alice)
    bob.send("still there?")
    assert [m.text for m in alice.wait_for_messages(2)] == ["hello", "still there?"]


# --- room hijack: create replaces vs room_exists ------------------------------------------------

def test_creating_an_existing_room_takes_it_over_on_tcrp1(legacy_server, closing):
    alice = closing(LegacyClient.create_room(legacy_server.address, "lab", "alice", "pw"))
    bob = closing(LegacyClient.join_room(legacy_server.address, "lab", "bob", "pw"))
    alice.wait_for_messages(2)
    result = hijack_room(legacy_server, "lab", "mallory", "mine")
    mallory = closing(result.evidence["client"])
    assert result.succeeded and result.evidence["cut_off"] == ["alice", "bob"]
    mallory.wait_for_messages(1)
    alice.send("the secret plan")
    assert mallory.wait_for_messages(2)[-1] == "alice: the secret plan"
    assert "alice: the secret plan" not in bob.messages         # the room bob was in is gone
    assert legacy_server.profile.rooms["lab"].password == "mine"
    with pytest.raises(LegacyRefused) as refused:
        LegacyClient.join_room(legacy_server.address, "lab", "bob", "pw")
    assert refused.value.answer == INVALID_PASSWORD


def test_creating_an_existing_room_is_refused_on_tcrp2(secure_server, closing):
    closing(ChatClient.create_room(secure_server.address, "lab", "alice", "pw"))
    result = hijack_room(secure_server, "lab", "mallory", "mine")
    assert not result.succeeded and "room_exists" in result.explanation
    assert str(result).startswith("room hijack on TCRP/2: FAILED")
    assert secure_server.registry.room("lab").host == "alice"


# --- a man in the middle of the key exchange: no authentication vs a pinned fingerprint -------------

@pytest.fixture(scope="module")
def attacker_key():
    return RSA.generate(1024)   # small for speed; the attack does not depend on the size


def test_key_swap_reads_the_password_and_every_frame_on_tcrp1(legacy_server, closing, attacker_key):
    swap = KeySwap(attacker_key)
    relay = closing(TcpRelay(legacy_server.address, rewrite=swap))
    via = ServerAddress(*relay.address, legacy_server.address.udp_port)
    alice = closing(LegacyClient.create_room(via, "lab", "alice", "hunter2"))
    assert swap.stolen[1] == (alice.key, alice.iv)
    assert any(b'"password": "hunter2"' in plaintext for _, direction, plaintext in swap.plaintexts
               if direction == C2S)
    assert legacy_server.profile.sessions[alice.token].username == "alice"   # the server noticed nothing


def test_key_swap_is_caught_by_the_pinned_fingerprint_on_tcrp2(secure_server, closing, attacker_key):
    relay = closing(TcpRelay(secure_server.address, rewrite=KeySwap(attacker_key)))
    with pytest.raises(FingerprintMismatch, match="man in the middle"):
        ChatClient.create_room(ServerAddress(*relay.address), "lab", "alice", "pw",
                               fingerprint=secure_server.fingerprint)
    assert len(relay.wait_for(1)) == 1 and not relay.captured(C2S)   # nothing was sent
    wait_for(lambda: secure_server.stats["drops"].get("tcp_closed_early"), what="the server to see the abort")


def test_an_attack_on_a_legacy_relay_that_stopped_says_so(legacy_server, closing):
    relay = closing(UdpRelay(legacy_server.address))
    alice, _ = legacy_pair(legacy_server, relay, closing)
    captured = relay.wait_for(1, where=from_client(alice))[0]
    attacker_socket(closing).sendto(b"\x07", (legacy_server.address.host, legacy_server.address.udp_port))
    wait_for(lambda: legacy_server.profile.stopped_by, what="the relay stopped")
    result = replay(legacy_server, relay, captured, timeout=0.3)
    assert not result
    assert "relay had stopped at a bad datagram (a datagram needs its two size bytes" in result.explanation
