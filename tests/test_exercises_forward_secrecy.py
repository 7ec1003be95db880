"""Lesson 03 part B's checker: the version 3 session keys from the trace and the learner's ephemeral key."""

from __future__ import annotations

import hashlib

from Crypto.Hash import SHA256
from Crypto.Protocol.KDF import HKDF
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from tcrp_lab.exercises import check_v3_keys

NAMES = ("tcp_c2s", "tcp_s2c", "udp_c2s", "udp_s2c")


def right(hello: bytes, client_share: bytes, my_private: bytes) -> dict[str, bytes]:
    shared = X25519PrivateKey.from_private_bytes(my_private).exchange(X25519PublicKey.from_public_bytes(hello[21:53]))
    transcript = hashlib.sha256(hello + client_share).digest()
    return dict(zip(NAMES, HKDF(shared, 32, hello[5:21], SHA256, num_keys=4, context=b"tcrp/3 session" + transcript)))


def test_the_right_derivation_passes_in_bytes_or_hex():
    assert check_v3_keys(right).status == "passed"
    assert check_v3_keys(lambda *a: {k: v.hex() for k, v in right(*a).items()}).status == "passed"


def test_the_stub_is_not_yet_and_says_what_to_write():
    def stub(*_):
        raise NotImplementedError()

    result = check_v3_keys(stub)
    assert result.status == "not_yet" and "tcrp/3 session" in result.todo


def test_the_version_2_info_fails_with_a_hint_about_the_info():
    def old_info(hello, client_share, my_private):
        shared = X25519PrivateKey.from_private_bytes(my_private).exchange(
            X25519PublicKey.from_public_bytes(hello[21:53]))
        transcript = hashlib.sha256(hello + client_share).digest()
        return dict(zip(NAMES, HKDF(shared, 32, hello[5:21], SHA256, num_keys=4, context=b"tcrp/2 session" + transcript)))

    result = check_v3_keys(old_info)
    assert result.status == "failed" and "b'tcrp/3 session'" in result.hint


def test_the_shares_in_the_wrong_order_fail_and_an_exception_is_reported_not_raised():
    def swapped(hello, client_share, my_private):
        return right(hello, client_share, my_private) | {"tcp_c2s": b"\0" * 32}

    assert check_v3_keys(swapped).status == "failed"
    assert "raised ValueError" in str(check_v3_keys(lambda h, c, p: X25519PublicKey.from_public_bytes(b"")))
