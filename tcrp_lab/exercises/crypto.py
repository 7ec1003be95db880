"""Lesson 03 exercise: derive a session's four keys from the handshake bytes (TCRP.md §2).

The learner writes ``session_keys(server_key, server_hello, client_key_exchange)``: decrypt the
premaster with the server's RSA key (OAEP, SHA-256), then HKDF-SHA-256 with the server nonce as
salt and ``"tcrp/2 session" | SHA-256(ServerHello | ClientKeyExchange)`` as info, 128 bytes split
into ``tcp_c2s, tcp_s2c, udp_c2s, udp_s2c``. It may return a dict of those names, a
:class:`~tcrp_lab.crypto.SessionKeys`, or the four keys in order.

:func:`check_session_keys` runs it on handshakes made with the demo key and seeded randomness and,
when the keys are wrong, recomputes them with the usual mistakes to say which one was made.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

from Crypto.Hash import SHA256
from Crypto.Protocol.KDF import HKDF

from ..crypto import (
    HKDF_INFO, KEY_SIZE, NONCE_SIZE, SeededRandom, ServerKey, SessionKeys, client_key_exchange, server_hello,
)
from ..protocol import MAGIC
from .common import CheckResult, raised

__all__ = ["KEY_NAMES", "check_session_keys", "sample_handshakes"]

KEY_NAMES = ("tcp_c2s", "tcp_s2c", "udp_c2s", "udp_s2c")
NONCE_AT = len(MAGIC) + 1      #: the server nonce follows "TCRP" and the version byte


@lru_cache(maxsize=1)
def _demo_key() -> ServerKey:
    return ServerKey.demo()


def sample_handshakes(n: int = 3) -> list[tuple[bytes, bytes, bytes, SessionKeys]]:
    """``n`` handshakes with the demo key: (ServerHello body, ClientKeyExchange body, premaster, keys)."""
    out = []
    for i in range(n):
        hello = server_hello(_demo_key(), SeededRandom(f"check_session_keys server {i}"))
        premaster = SeededRandom(f"check_session_keys premaster {i}")(32)
        ckx, keys = client_key_exchange(hello, SeededRandom(f"check_session_keys client {i}"), premaster=premaster)
        out.append((hello.body, ckx, premaster, keys))
    return out


def _hkdf(premaster: bytes, salt: bytes, info: bytes) -> tuple[bytes, ...]:
    return tuple(HKDF(premaster, KEY_SIZE, salt, SHA256, num_keys=4, context=info))


def _mistakes(hello: bytes, ckx: bytes, premaster: bytes) -> list[tuple[str, tuple[bytes, ...]]]:
    """The keys each classic mistake gives, with what to say about it."""
    nonce = hello[NONCE_AT : NONCE_AT + NONCE_SIZE]
    transcript = hashlib.sha256(hello + ckx).digest()
    info = HKDF_INFO + transcript
    return [
        ("they are what HKDF gives with the info b'tcrp/2 session' alone: append the transcript, "
         "SHA-256(ServerHello body | ClientKeyExchange body), as 32 raw bytes",
         _hkdf(premaster, nonce, HKDF_INFO)),
        ("they are what HKDF gives with the transcript as hex text: use .digest() (32 bytes), not .hexdigest()",
         _hkdf(premaster, nonce, HKDF_INFO + transcript.hex().encode())),
        ("they are what HKDF gives with a transcript of the ServerHello alone: hash the ServerHello body "
         "followed by the ClientKeyExchange body", _hkdf(premaster, nonce, HKDF_INFO + hashlib.sha256(hello).digest())),
        ("they are what HKDF gives without a salt: the salt is the server nonce, ServerHello bytes 5-20",
         _hkdf(premaster, b"", info)),
        ("they are what HKDF gives with the salt taken from bytes 4-19 of the ServerHello: the version byte "
         "(byte 4) comes before the 16-byte nonce", _hkdf(premaster, hello[4:20], info)),
        ("they are what HKDF gives with the whole ServerHello as salt: the salt is only its 16-byte nonce "
         "(bytes 5-20)", _hkdf(premaster, hello, info)),
        ("they are what HKDF gives from the ClientKeyExchange bytes themselves: decrypt them first with the "
         "server key (RSA-OAEP, SHA-256) to get the 32-byte premaster", _hkdf(ckx, nonce, info)),
    ]


def _as_keys(value: Any) -> tuple[Any, ...] | str:
    """The learner's four keys in order, or a sentence saying why they are not usable."""
    if isinstance(value, SessionKeys):
        return tuple(getattr(value, name) for name in KEY_NAMES)
    if isinstance(value, dict):
        missing = [name for name in KEY_NAMES if name not in value]
        if missing:
            return f"the dict you return has no {', '.join(repr(m) for m in missing)} (it needs {', '.join(KEY_NAMES)})"
        return tuple(value[name] for name in KEY_NAMES)
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes, bytearray)):
        if len(value) != 4:
            return f"you returned {len(value)} values; return the four keys {', '.join(KEY_NAMES)}"
        return tuple(value)
    if isinstance(value, (bytes, bytearray)) and len(value) == 4 * KEY_SIZE:
        return f"you returned the {len(value)} bytes of HKDF in one piece: split them into four {KEY_SIZE}-byte keys"
    return (f"you returned {_short(value)}; return a dict {{'tcp_c2s': ..., 'tcp_s2c': ..., 'udp_c2s': ..., "
            "'udp_s2c': ...} (or the four keys in that order)")


def _short(value: Any) -> str:
    if isinstance(value, (bytes, bytearray)):
        return f"{bytes(value[:8]).hex()}… ({len(value)} bytes)" if len(value) > 8 else repr(bytes(value))
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_session_keys(session_keys: Callable[[ServerKey, bytes, bytes], Any]) -> CheckResult:
    """Check ``session_keys(server_key, server_hello_body, client_key_exchange_body)`` on three handshakes.

    Says which keys are wrong and, when the wrong keys match a classic mistake (no transcript in the
    info, no salt, the keys out of order, the premaster not decrypted...), which one.
    """
    result = CheckResult("Session keys from a handshake")
    if not callable(session_keys):
        result.failures.append(f"check_session_keys needs your function, got {_short(session_keys)}")
        return result
    problems: dict[str, list[int]] = {}      # what went wrong -> the handshakes it went wrong in
    for number, (hello, ckx, premaster, expected) in enumerate(sample_handshakes(), 1):
        problem = _problem(session_keys, hello, ckx, premaster, expected)
        if problem is None:
            result.passed += 1
        else:
            problems.setdefault(problem, []).append(number)
    for problem, numbers in problems.items():
        which = "handshake" + ("s " if len(numbers) > 1 else " ") + ", ".join(map(str, numbers))
        result.failures.append(f"{which}: {problem}")
    return result


def _problem(session_keys: Callable[..., Any], hello: bytes, ckx: bytes, premaster: bytes,
             expected: SessionKeys) -> str | None:
    """None if the learner's keys are right, else what is wrong (the same words for the same mistake)."""
    try:
        got = session_keys(_demo_key(), hello, ckx)
    except Exception as exc:  # the learner's bug, reported
        last = raised(exc)
        hint = (" (TCRP's RSA-OAEP uses SHA-256: PKCS1_OAEP.new(key, hashAlgo=SHA256); pycryptodome's default "
                "is SHA-1, or use server_key.decrypt)") if "Incorrect decryption" in last else ""
        return f"your function raised {last}{hint}"
    keys = _as_keys(got)
    if isinstance(keys, str):
        return keys
    bad = [k for k in keys if not isinstance(k, (bytes, bytearray)) or len(k) != KEY_SIZE]
    if bad:
        return f"each key must be {KEY_SIZE} bytes; one is {_short(bad[0])}"
    want = tuple(getattr(expected, name) for name in KEY_NAMES)
    keys = tuple(bytes(k) for k in keys)
    wrong = [name for name, k, w in zip(KEY_NAMES, keys, want) if k != w]
    if not wrong:
        return None
    if sorted(keys) == sorted(want):
        return "the right keys in the wrong order: HKDF's 128 bytes are, in order, " + ", ".join(KEY_NAMES)
    why = next((text for text, mistake in _mistakes(hello, ckx, premaster) if keys == mistake),
               "compare each step with the lesson: premaster, salt, info, then HKDF-SHA-256 for 4 x 32 bytes")
    return f"{', '.join(wrong)} {'is' if len(wrong) == 1 else 'are'} wrong; {why}"
