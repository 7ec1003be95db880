"""The version 3 handshake (TCRP.md §2.2): its vectors, the signature, the recording it keeps
sealed, trust on first use (§2.3), and the switches that choose a version."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from tcrp_lab import ChatClient, ChatServer
from tcrp_lab.attacks import KeySwap, ShareSwap, TcpRelay, UdpRelay
from tcrp_lab.client import (
    ControlConnection, FingerprintMismatch, ForgedServerHello, NotForwardSecret, ServerKeyChanged, TcrpError,
)
from tcrp_lab.crypto import (
    BadSignature, Ephemeral, SeededRandom, ServerHello, ServerKey, accept_client_share, client_key_exchange,
    ephemeral_server_hello, verify_server_hello,
)
from tcrp_lab.known_servers import KnownServers, Verdict, demo_fingerprint
from tcrp_lab.net import ServerAddress
from tcrp_lab.protocol import ProtocolError, RoomChat
from tcrp_lab.recording import open_recording
from tests.spec_client import SpecClient

KEY = ServerKey.demo()


class Script:
    """The "random" bytes of a vector, handed out in the order the spec draws them."""

    def __init__(self, *chunks: bytes):
        self.chunks = list(chunks)

    def __call__(self, n: int) -> bytes:
        chunk = self.chunks.pop(0)
        assert len(chunk) == n
        return chunk


@pytest.fixture(scope="module")
def hs(vectors3: dict) -> dict:
    return vectors3["handshake"]


def _b(hex_text: str) -> bytes:
    return bytes.fromhex(hex_text)


# --- the vectors ------------------------------------------------------------------------------

def test_the_server_hello_vector_is_reproduced_byte_for_byte(hs):
    rng = Script(_b(hs["server_nonce_hex"]), _b(hs["server_ephemeral_private_hex"]), _b(hs["pss_salt_hex"]))
    hello, _ = ephemeral_server_hello(KEY, rng)
    assert hello.body.hex() == hs["server_hello_body"]
    assert hello.share.hex() == hs["server_share_hex"] and hello.signed.hex() == hs["signed_hex"]
    assert hello.signature.hex() == hs["signature_hex"] and hello.fingerprint == hs["fingerprint"]
    assert ServerHello.decode(hello.body) == hello


def test_the_client_side_of_the_vector_gives_its_share_and_keys(hs):
    hello = ServerHello.decode(_b(hs["server_hello_body"]))
    ckx, keys = client_key_exchange(hello, Script(_b(hs["client_ephemeral_private_hex"])))
    assert ckx.hex() == hs["client_key_exchange_body"]
    assert keys.hex() == hs["keys"]
    assert hashlib.sha256(hello.body + ckx).hexdigest() == hs["transcript_hex"]


def test_the_server_side_of_the_vector_derives_the_same_keys_and_erases_its_ephemeral(hs):
    rng = Script(_b(hs["server_nonce_hex"]), _b(hs["server_ephemeral_private_hex"]), _b(hs["pss_salt_hex"]))
    hello, ephemeral = ephemeral_server_hello(KEY, rng)
    keys = accept_client_share(ephemeral, hello, _b(hs["client_key_exchange_body"]))
    assert keys.hex() == hs["keys"]
    assert ephemeral.spent
    with pytest.raises(RuntimeError, match="erased"):
        ephemeral.agree(_b(hs["client_key_exchange_body"]))


def test_the_shared_secret_of_the_vector_is_x25519_of_either_pair(hs):
    server = X25519PrivateKey.from_private_bytes(_b(hs["server_ephemeral_private_hex"]))
    client = X25519PrivateKey.from_private_bytes(_b(hs["client_ephemeral_private_hex"]))
    assert server.exchange(X25519PublicKey.from_public_bytes(_b(hs["client_key_exchange_body"]))).hex() \
        == client.exchange(X25519PublicKey.from_public_bytes(_b(hs["server_share_hex"]))).hex() \
        == hs["shared_secret_hex"]


def test_every_bad_server_hello_of_the_vectors_is_refused_before_a_share_is_made(vectors3):
    for case in vectors3["bad_server_hellos"]:
        with pytest.raises(BadSignature if case["error"] == "signature" else ProtocolError):
            hello = ServerHello.decode(_b(case["body_hex"]))
            client_key_exchange(hello, Script())   # Script() fails the test if a share were drawn
        if case["error"] == "signature":
            with pytest.raises(BadSignature):
                verify_server_hello(ServerHello.decode(_b(case["body_hex"])))


def test_a_low_order_share_from_either_side_aborts(vectors3):
    for case in vectors3["low_order_shares"]:
        share = _b(case["share_hex"])
        hello, ephemeral = ephemeral_server_hello(KEY)
        with pytest.raises(ProtocolError, match="all zeros"):
            accept_client_share(ephemeral, hello, share)
        assert ephemeral.spent
        signed = ServerHello(hello.nonce, KEY.public_der, 3, share)
        evil = ServerHello(hello.nonce, KEY.public_der, 3, share, KEY.sign(signed.signed))
        with pytest.raises(ProtocolError, match="all zeros"):
            client_key_exchange(evil)


def test_a_client_key_exchange_that_is_not_32_bytes_is_refused_and_the_ephemeral_erased():
    hello, ephemeral = ephemeral_server_hello(KEY)
    with pytest.raises(ProtocolError, match="32-byte share"):
        accept_client_share(ephemeral, hello, bytes(256))
    assert ephemeral.spent


def test_a_seeded_server_makes_the_same_signed_hello_every_time():
    assert ephemeral_server_hello(KEY, SeededRandom("x"))[0] == ephemeral_server_hello(KEY, SeededRandom("x"))[0]
    assert Ephemeral(SeededRandom("y")).share == Ephemeral(SeededRandom("y")).share


# --- the server and the clients ---------------------------------------------------------------

def test_a_new_server_speaks_version_3_and_handshake_rsa_speaks_version_2():
    with ChatServer("127.0.0.1", 0, 0, key=KEY) as v3, ChatServer("127.0.0.1", 0, 0, key=KEY, handshake="rsa") as v2:
        with ControlConnection(v3.address) as control:
            assert control.server_hello.version == 3 and len(control.server_hello.share) == 32
        with ControlConnection(v2.address) as control:
            assert control.server_hello.version == 2
    with pytest.raises(ValueError, match="handshake must be"):
        ChatServer("127.0.0.1", 0, 0, key=KEY, handshake="dh")


def test_the_spec_client_chats_over_version_3_and_version_2():
    for handshake, version in (("x25519", 3), ("rsa", 2)):
        with ChatServer("127.0.0.1", 0, 0, key=KEY, handshake=handshake) as server:
            spec = SpecClient("127.0.0.1", server.address.tcp_port, "lab", "spec", "pw", create=True)
            assert spec.version == version and spec.fingerprint == KEY.fingerprint
            spec.send({"type": "hello"})
            assert spec.receive_until(lambda o: o.get("type") == "welcome")
            spec.send({"type": "chat", "id": 1, "text": f"over version {version}"})
            got = spec.receive_until(lambda o: o.get("type") == "chat")
            assert got["text"] == f"over version {version}"


def test_require_forward_secrecy_refuses_a_version_2_server_before_sending_anything():
    with ChatServer("127.0.0.1", 0, 0, key=KEY, handshake="rsa") as server, TcpRelay(server.address) as relay:
        with pytest.raises(NotForwardSecret, match="version 2 handshake"):
            ChatClient.create_room(ServerAddress(*relay.address, server.address.udp_port), "lab", "alice",
                                   require_forward_secrecy=True)
        relay.wait_for(1, direction="s2c")
        assert relay.captured("c2s") == []
        assert "lab" not in [r.name for r in ChatClient.list_rooms(server.address)]


def test_a_swapped_share_is_stopped_by_the_signature_before_anything_is_sent():
    with ChatServer("127.0.0.1", 0, 0, key=KEY) as server, TcpRelay(server.address, rewrite=ShareSwap()) as relay:
        with pytest.raises(ForgedServerHello, match="did not sign"):
            ControlConnection(relay.address, known_servers=None)
        relay.wait_for(1, direction="s2c")
        assert relay.rewrite.swapped == 1 and relay.captured("c2s") == []


def test_a_key_swap_with_its_own_signed_share_is_stopped_by_the_pinned_fingerprint():
    attacker = ServerKey.generate(rng=SeededRandom("mallory"))
    with ChatServer("127.0.0.1", 0, 0, key=KEY) as server, \
            TcpRelay(server.address, rewrite=KeySwap(attacker.rsa)) as relay:
        with pytest.raises(FingerprintMismatch):
            ControlConnection(relay.address, fingerprint=server.fingerprint)
        assert relay.captured("c2s") == []


# --- the recording, decrypted later with the stolen key ---------------------------------------

def _record_a_chat(handshake: str) -> tuple[TcpRelay, UdpRelay]:
    with ChatServer("127.0.0.1", 0, 0, key=KEY, handshake=handshake) as server:
        tcp, udp = TcpRelay(server.address), UdpRelay(server.address)
        via = ServerAddress(*tcp.address, server.address.udp_port)
        alice = ChatClient.create_room(via, "lab", "alice", "s3cret", udp_via=udp.address)
        bob = ChatClient.join_room(via, "lab", "bob", "s3cret", udp_via=udp.address)
        alice.send("the exam is on friday")
        bob.send("room 204")
        bob.wait_for_messages(2)
        alice.wait_for_messages(2)
        for member in (alice, bob):
            member.flush()
            member.close()
        tcp.stop()
        udp.stop()
    return tcp, udp


def test_a_version_2_recording_opens_with_the_stolen_key_password_token_and_chats():
    tcp, udp = _record_a_chat("rsa")
    sessions = [s for s in open_recording(tcp.packets, udp.packets, KEY) if s.token]
    assert [s.credentials for s in sessions] == [("alice", "s3cret"), ("bob", "s3cret")]
    assert all(s.opened and len(s.token) == 16 for s in sessions)
    assert [s.chats for s in sessions] == [["the exam is on friday"], ["room 204"]]
    delivered = [p.text for _, p in sessions[1].datagrams if isinstance(p, RoomChat)]
    assert "the exam is on friday" in delivered   # what the server sent bob, read too


def test_a_version_3_recording_stays_sealed_with_the_same_stolen_key():
    tcp, udp = _record_a_chat("x25519")
    sessions = open_recording(tcp.packets, udp.packets, KEY)
    assert len(sessions) == 2
    for session in sessions:
        assert not session.opened and session.version == 3
        assert session.credentials is None and session.token is None and session.chats == []
        assert "ephemeral X25519 private key" in session.missing and "erased" in session.missing


# --- trust on first use (§2.3) ----------------------------------------------------------------

def test_a_relay_that_swaps_the_key_on_the_second_connection_is_refused_with_both_fingerprints(tmp_path):
    store = KnownServers(tmp_path / "known_servers")
    attacker = ServerKey.generate(rng=SeededRandom("mallory"))
    with ChatServer("127.0.0.1", 0, 0) as server, \
            TcpRelay(server.address, rewrite=KeySwap(attacker.rsa, after=1)) as relay:
        via = ServerAddress(*relay.address, server.address.udp_port)
        assert ChatClient.list_rooms(via, known_servers=store) == []    # first contact: remembered
        assert store.remembered(*relay.address) == server.fingerprint
        with pytest.raises(ServerKeyChanged) as refused:
            ChatClient.create_room(via, "lab", "alice", "s3cret", known_servers=store)
        message = str(refused.value)
        assert server.fingerprint in message and attacker.fingerprint in message
        assert str(store.path) in message and "Nothing was sent" in message and "delete line 1" in message
        assert [p.connection for p in relay.captured("c2s")] == [1, 1]   # the second connection sent nothing


def test_the_default_store_is_the_environments_and_a_known_key_passes(_known_servers):
    with ChatServer("127.0.0.2", 0, 0) as server:   # 127.0.0.2 stands for another machine
        with ControlConnection(server.address) as first:
            assert first.trust is Verdict.NEW
        with ControlConnection(server.address) as again:
            assert again.trust is Verdict.KNOWN
    assert _known_servers.read_text() == f"127.0.0.2:{server.address.tcp_port} {server.fingerprint}\n"


def test_the_default_store_leaves_this_machines_servers_out_so_a_reused_port_is_no_false_alarm(_known_servers, tmp_path):
    with ChatServer("127.0.0.1", 0, 0) as server:
        with ControlConnection(server.address) as first:
            assert first.trust is Verdict.LOCAL
    assert not _known_servers.exists()                      # nothing written: the next server on that port is new
    with ChatServer("127.0.0.1", server.address.tcp_port, 0) as again:   # the same port, another key
        with ControlConnection(again.address) as second:
            assert second.trust is Verdict.LOCAL
        store = KnownServers(tmp_path / "known_servers")     # a file given: this machine's servers remembered too
        with ControlConnection(again.address, known_servers=store) as chosen:
            assert chosen.trust is Verdict.NEW and store.remembered("127.0.0.1", again.address.tcp_port)


def test_the_demo_key_is_let_in_without_being_remembered_but_not_where_another_key_was(tmp_path):
    store = KnownServers(tmp_path / "known_servers")
    assert store.check("127.0.0.1", 9001, demo_fingerprint()) is Verdict.DEMO
    assert not store.path.exists()
    assert store.check("127.0.0.1", 9001, "ab" * 32) is Verdict.NEW
    assert store.check("127.0.0.1", 9001, demo_fingerprint()) is Verdict.CHANGED
    assert store.forget("127.0.0.1", 9001) and store.remembered("127.0.0.1", 9001) is None


def test_an_explicit_fingerprint_pins_without_consulting_the_store(tmp_path):
    store = KnownServers(tmp_path / "known_servers")
    with ChatServer("127.0.0.1", 0, 0) as server:
        store.check(server.host, server.address.tcp_port, "ab" * 32)    # a stale memory
        with ControlConnection(server.address, fingerprint=server.fingerprint, known_servers=store) as control:
            assert control.trust == "pinned"
        with pytest.raises(ServerKeyChanged):
            ControlConnection(server.address, known_servers=store)


def test_a_garbled_known_servers_file_is_read_around_not_trusted(tmp_path):
    path = tmp_path / "known_servers"
    path.write_bytes(b"# comment\n\xff\xfe garbage\n127.0.0.1:1 " + b"x" * 400 + b"\n127.0.0.1:2 cd\n")
    store = KnownServers(path)
    assert store.remembered("127.0.0.1", 1) is None and store.remembered("127.0.0.1", 2) == "cd"


def test_known_servers_none_remembers_nothing(tmp_path, _known_servers):
    with ChatServer("127.0.0.1", 0, 0) as server, ControlConnection(server.address, known_servers=None) as control:
        assert control.trust is None
    assert not _known_servers.exists()


def test_a_version_2_server_is_remembered_too_and_a_client_error_is_a_tcrp_error():
    with ChatServer("127.0.0.2", 0, 0, handshake="rsa") as server:   # another machine
        with ControlConnection(server.address) as control:
            assert control.trust is Verdict.NEW
    assert issubclass(ServerKeyChanged, FingerprintMismatch) and issubclass(ForgedServerHello, TcrpError)


def test_a_first_contact_whose_signature_fails_is_not_remembered(tmp_path):
    store = KnownServers(tmp_path / "known_servers")
    with ChatServer("127.0.0.1", 0, 0) as server, TcpRelay(server.address, rewrite=ShareSwap()) as relay:
        with pytest.raises(ForgedServerHello):
            ControlConnection(relay.address, known_servers=store)
        assert store.remembered(*relay.address) is None
