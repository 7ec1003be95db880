"""check_session_keys (lesson 03): passes a correct derivation, recognises the classic mistakes."""

from __future__ import annotations

import hashlib

from Crypto.Cipher import PKCS1_OAEP
from Crypto.Hash import SHA256
from Crypto.Protocol.KDF import HKDF

from tcrp_lab.crypto import ServerHello, ServerKey, accept_key_exchange
from tcrp_lab.exercises import check_session_keys
from tcrp_lab.exercises.crypto import KEY_NAMES, sample_handshakes


def derive(premaster: bytes, salt: bytes, info: bytes) -> list[bytes]:
    return list(HKDF(premaster, 32, salt, SHA256, num_keys=4, context=info))


def good(key: ServerKey, hello: bytes, ckx: bytes) -> dict[str, bytes]:
    """A correct answer written from TCRP.md §2 alone (pycryptodome, no tcrp_lab.crypto)."""
    premaster = PKCS1_OAEP.new(key.rsa, hashAlgo=SHA256).decrypt(ckx)
    transcript = hashlib.sha256(hello + ckx).digest()
    return dict(zip(KEY_NAMES, derive(premaster, hello[5:21], b"tcrp/2 session" + transcript)))


def failures(result) -> str:
    return "\n".join(result.failures)


def test_the_correct_answer_reproduces_the_conformance_vectors(vectors):
    handshake = vectors["handshake"]
    key = ServerKey.from_pem(handshake["server_private_key_pem"])
    keys = good(key, bytes.fromhex(handshake["server_hello_body"]), bytes.fromhex(handshake["client_key_exchange_body"]))
    assert {name: value.hex() for name, value in keys.items()} == handshake["keys"]


def test_correct_answers_pass():
    for answer in (good, lambda key, hello, ckx: accept_key_exchange(key, ServerHello.decode(hello), ckx),
                   lambda key, hello, ckx: list(good(key, hello, ckx).values())):
        result = check_session_keys(answer)
        assert result, failures(result)
        assert result.passed == 3


def test_the_handshakes_differ_and_use_the_demo_key():
    handshakes = sample_handshakes()
    assert len({hello for hello, *_ in handshakes}) == len({ckx for _, ckx, *_ in handshakes}) == 3
    demo = ServerKey.demo()
    for hello, ckx, premaster, keys in handshakes:
        assert ServerHello.decode(hello).public_der == demo.public_der
        assert demo.decrypt(ckx) == premaster
        assert accept_key_exchange(demo, ServerHello.decode(hello), ckx) == keys


def only_problem(answer) -> str:
    result = check_session_keys(answer)
    assert not result and result.passed == 0
    assert len(result.failures) == 1, failures(result)   # the same mistake is reported once
    assert result.failures[0].startswith("handshakes 1, 2, 3: ")
    return result.failures[0]


def test_keys_out_of_order():
    def swapped(key, hello, ckx):
        keys = good(key, hello, ckx)
        return [keys["tcp_s2c"], keys["tcp_c2s"], keys["udp_c2s"], keys["udp_s2c"]]

    assert "the right keys in the wrong order" in only_problem(swapped)


def test_info_without_transcript_and_transcript_as_hex():
    def no_transcript(key, hello, ckx):
        return derive(key.decrypt(ckx), hello[5:21], b"tcrp/2 session")

    text = only_problem(no_transcript)
    assert "tcp_c2s, tcp_s2c, udp_c2s, udp_s2c are wrong" in text
    assert "with the info b'tcrp/2 session' alone: append the transcript" in text

    def hex_transcript(key, hello, ckx):
        return derive(key.decrypt(ckx), hello[5:21], b"tcrp/2 session" + hashlib.sha256(hello + ckx).hexdigest().encode())

    assert "not .hexdigest()" in only_problem(hex_transcript)


def test_wrong_salt_and_undecrypted_premaster():
    def off_by_one(key, hello, ckx):
        return derive(key.decrypt(ckx), hello[4:20], b"tcrp/2 session" + hashlib.sha256(hello + ckx).digest())

    assert "the version byte (byte 4) comes before the 16-byte nonce" in only_problem(off_by_one)

    def not_decrypted(key, hello, ckx):
        return derive(ckx, hello[5:21], b"tcrp/2 session" + hashlib.sha256(hello + ckx).digest())

    assert "decrypt them first with the server key" in only_problem(not_decrypted)


def test_an_unknown_mistake_still_names_the_wrong_keys():
    def half_right(key, hello, ckx):
        keys = good(key, hello, ckx)
        return {**keys, "udp_s2c": bytes(32)}

    text = only_problem(half_right)
    assert "udp_s2c is wrong; compare each step with the lesson" in text


def test_bad_returns_and_exceptions_are_reported_not_raised():
    assert "you returned None; return a dict" in only_problem(lambda *args: None)
    assert "split them into four 32-byte keys" in only_problem(lambda key, hello, ckx: b"".join(good(key, hello, ckx).values()))
    assert "has no 'udp_s2c'" in only_problem(lambda key, hello, ckx: {k: v for k, v in good(key, hello, ckx).items()
                                                                        if k != "udp_s2c"})
    assert "each key must be 32 bytes" in only_problem(lambda key, hello, ckx: [b"short"] * 4)
    assert "raised NotImplementedError" in only_problem(lambda key, hello, ckx: key.rsa.decrypt(ckx))
    text = only_problem(lambda key, hello, ckx: PKCS1_OAEP.new(key.rsa).decrypt(ckx))   # SHA-1 by default
    assert "your function raised ValueError: Incorrect decryption." in text and "hashAlgo=SHA256" in text
    assert "check_session_keys needs your function" in failures(check_session_keys(42))
