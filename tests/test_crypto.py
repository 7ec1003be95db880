"""TCRP/2 crypto: the handshake, frames, datagrams and replay window of the vectors, and tampering."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tcrp_lab.crypto import (
    AuthenticationError, RecordLayer, ReplayError, ReplayWindow, SeededRandom, ServerHello, ServerKey,
    SessionKeys, UdpChannel, accept_key_exchange, client_key_exchange, derive_session_keys, hash_password,
    open_sealed, seal, server_hello, verify_password,
)
from tcrp_lab.protocol import Datagram, FrameReader, ProtocolError, encode_frame

EXAMPLES = settings(max_examples=300, deadline=None)


@pytest.fixture(scope="module")
def hs(vectors):
    return vectors["handshake"]


@pytest.fixture(scope="module")
def keys(hs):
    return SessionKeys(*(bytes.fromhex(hs["keys"][k]) for k in ("tcp_c2s", "tcp_s2c", "udp_c2s", "udp_s2c")))


def test_vector_key_public_der_and_fingerprint(hs):
    key = ServerKey.from_pem(hs["server_private_key_pem"])
    assert key.public_der.hex() == hs["server_public_key_der_hex"]
    assert key.fingerprint == hs["fingerprint"]


def test_the_demo_key_is_the_vector_key(hs):
    assert ServerKey.demo().fingerprint == hs["fingerprint"]


def test_server_hello_vector(hs):
    key = ServerKey.from_pem(hs["server_private_key_pem"])
    hello = server_hello(key, rng=lambda n: bytes.fromhex(hs["server_nonce_hex"]))
    assert hello.body.hex() == hs["server_hello_body"]
    assert ServerHello.decode(hello.body) == hello


def test_key_schedule_vector(hs, keys):
    hello = ServerHello.decode(bytes.fromhex(hs["server_hello_body"]))
    ckx = bytes.fromhex(hs["client_key_exchange_body"])
    assert derive_session_keys(bytes.fromhex(hs["premaster_hex"]), hello, ckx) == keys


def test_server_recovers_the_vector_premaster(hs, keys):
    key = ServerKey.from_pem(hs["server_private_key_pem"])
    hello = ServerHello.decode(bytes.fromhex(hs["server_hello_body"]))
    assert accept_key_exchange(key, hello, bytes.fromhex(hs["client_key_exchange_body"])) == keys


def test_a_full_handshake_agrees_on_keys(hs):
    key = ServerKey.demo()
    hello = server_hello(key)
    ckx, client_keys = client_key_exchange(ServerHello.decode(hello.body))
    assert accept_key_exchange(key, hello, ckx) == client_keys
    assert len(ckx) == 256


def test_seeded_random_makes_the_handshake_repeatable():
    key = ServerKey.demo()
    runs = []
    for _ in range(2):
        rng = SeededRandom(42)
        hello = server_hello(key, rng)
        runs.append((hello.body, client_key_exchange(hello, rng)))
    assert runs[0] == runs[1]
    assert SeededRandom(1)(16) != SeededRandom(2)(16)


def test_bad_server_hellos_and_key_exchanges_are_protocol_errors():
    for body in (b"", b"TCRP", b"XXXX\x02" + bytes(40), b"TCRP\x01" + bytes(40)):
        with pytest.raises(ProtocolError):
            ServerHello.decode(body)
    with pytest.raises(ProtocolError):
        client_key_exchange(ServerHello(nonce=bytes(16), public_der=b"not a key"))
    key = ServerKey.demo()
    hello = server_hello(key)
    for ckx in (b"", bytes(256), b"\x01" * 300):
        with pytest.raises(ProtocolError):
            accept_key_exchange(key, hello, ckx)


def test_tcp_frame_vectors(vectors, keys):
    layers = {"tcp_c2s": RecordLayer(keys.tcp_c2s, keys.tcp_s2c), "tcp_s2c": RecordLayer(keys.tcp_s2c, keys.tcp_c2s)}
    for v in vectors["tcp_frames"]:
        layer = layers[v["key"]]
        assert layer.send_seq == v["seq"]
        assert encode_frame(layer.seal(bytes.fromhex(v["plaintext_hex"]))).hex() == v["frame_hex"]
    # and the other side opens them in order
    client, server = RecordLayer.client(keys), RecordLayer.server(keys)
    for v in vectors["tcp_frames"]:
        [body] = FrameReader().feed(bytes.fromhex(v["frame_hex"]))
        opener = server if v["key"] == "tcp_c2s" else client
        assert opener.open(body).hex() == v["plaintext_hex"]


def test_a_frame_out_of_order_fails_and_does_not_advance_the_count(keys):
    client, server = RecordLayer.client(keys), RecordLayer.server(keys)
    first, second = client.seal(b"one"), client.seal(b"two")
    with pytest.raises(AuthenticationError):
        server.open(second)
    assert server.recv_seq == 0
    assert server.open(first) == b"one" and server.open(second) == b"two"


def test_datagram_vectors_seal_and_open(vectors, keys):
    for v in vectors["datagrams"]:
        key = getattr(keys, v["key"])
        token = bytes.fromhex(v["token_hex"])
        channel = UdpChannel(v["room"], token, key, key)
        for _ in range(v["seq"]):
            next(channel._send_seq)
        assert channel.seal(v["plaintext"].encode()).hex() == v["datagram_hex"]
        assert channel.open(Datagram.decode(bytes.fromhex(v["datagram_hex"]))) == v["plaintext"].encode()


def test_every_bad_datagram_vector_is_rejected(vectors, keys):
    for v in vectors["bad_datagrams"]:
        key = getattr(keys, v["key"])
        with pytest.raises(ProtocolError):
            d = Datagram.decode(bytes.fromhex(v["datagram_hex"]))
            open_sealed(key, d.seq, d.ciphertext + d.tag, d.header)


def test_a_replayed_datagram_is_refused(keys):
    alice = UdpChannel.client("lab", bytes(16), keys)
    server = UdpChannel.server("lab", bytes(16), keys)
    raw = alice.seal(b'{"type":"hello"}')
    assert server.open(Datagram.decode(raw)) == b'{"type":"hello"}'
    with pytest.raises(ReplayError):
        server.open(Datagram.decode(raw))


def test_a_forged_datagram_does_not_move_the_window(keys):
    server = UdpChannel.server("lab", bytes(16), keys)
    forged = Datagram("lab", bytes(16), 1000, b"x" * 10, bytes(16))
    with pytest.raises(AuthenticationError):
        server.open(forged)
    assert server.window.top == -1


def test_replay_window_vector_sequence(vectors):
    spec = vectors["replay_window"]
    window = ReplayWindow(spec["size"])
    assert [[seq, window.accept(seq)] for seq, _ in spec["sequence"]] == spec["sequence"]


@given(st.lists(st.integers(0, 300), max_size=200))
@EXAMPLES
def test_replay_window_matches_a_set_model(seqs):
    window, seen, top = ReplayWindow(64), set(), -1
    for seq in seqs:
        expected = seq not in seen and seq > top - 64
        assert window.accept(seq) == expected
        if expected:
            seen.add(seq)
            top = max(top, seq)


@given(st.binary(max_size=200), st.binary(max_size=40), st.data())
@EXAMPLES
def test_any_single_bit_flip_in_a_sealed_frame_is_rejected(plaintext, aad, data):
    key = bytes(range(32))
    sealed = seal(key, 7, plaintext, aad)
    bit = data.draw(st.integers(0, len(sealed) * 8 - 1))
    tampered = bytearray(sealed)
    tampered[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(AuthenticationError):
        open_sealed(key, 7, bytes(tampered), aad)
    assert open_sealed(key, 7, sealed, aad) == plaintext


@given(st.binary(min_size=1, max_size=200), st.data())
@EXAMPLES
def test_any_single_bit_flip_in_a_datagram_is_rejected(plaintext, data):
    keys = SessionKeys(*(bytes([i]) * 32 for i in range(4)))
    raw = UdpChannel.client("room", bytes(range(16)), keys).seal(plaintext)
    bit = data.draw(st.integers(0, len(raw) * 8 - 1))
    tampered = bytearray(raw)
    tampered[bit // 8] ^= 1 << (bit % 8)
    server = UdpChannel.server("room", bytes(range(16)), keys)
    with pytest.raises(ProtocolError):  # a broken layout, or a tag that no longer verifies
        d = Datagram.decode(bytes(tampered))
        if d.room != "room" or d.token != bytes(range(16)):
            raise ProtocolError("another session's datagram")  # the server's lookup would drop it
        server.open(d)


def test_password_hash_is_salted_and_verifies():
    stored = hash_password("s3cret")
    assert "s3cret" not in stored
    assert stored != hash_password("s3cret")
    assert verify_password("s3cret", stored)
    assert not verify_password("s3cret ", stored)


def test_server_key_save_and_load(tmp_path):
    path = tmp_path / "not-yet" / "server.pem"  # the folder is made too (~/.tcrp_lab on a first start)
    made = ServerKey.load_or_create(path, bits=1024)
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert ServerKey.load_or_create(path).fingerprint == made.fingerprint
    (tmp_path / "junk.pem").write_text("hello")
    with pytest.raises(ValueError, match="not an RSA private key"):
        ServerKey.load(tmp_path / "junk.pem")


def test_the_pure_core_imports_no_sockets_threads_or_widgets():
    code = ("import sys, tcrp_lab.protocol, tcrp_lab.crypto; "
            "bad = [m for m in ('socket', 'socketserver', 'ipywidgets', 'tcrp_lab.server', 'tcrp_lab.client') "
            "if m in sys.modules]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
