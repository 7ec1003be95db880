"""Lesson 07 exercise: recover a plaintext block from two captured ciphertexts and one known message.

TCRP/1 encrypts every message of a session with AES-128-CFB from the same key and the same IV
(TCRP.md §6), so the first 16-byte block of every message is XORed with the same keystream
``AES(key, IV)``. The learner writes::

    recover(known_ciphertext: bytes, known_plaintext: bytes, other_ciphertext: bytes) -> bytes

returning the start of the other message's plaintext: as many bytes as all three inputs have, and
at most one block (16 bytes) — past the first block each message has a keystream of its own.
:func:`check_keystream_recovery` encrypts message pairs with real AES-CFB under keys the learner
never sees and says, for each pair that went wrong, what came back and what the mistake looks like.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..crypto import SeededRandom
from ..legacy import BLOCK, IV_BYTES, KEY_BYTES, cfb_encrypt
from .common import CheckResult, raised

__all__ = ["check_keystream_recovery", "sample_pairs"]

#: (what the case shows, the known message, the other message); each case gets its own key and IV.
PAIRS = [
    ("alice's join notice and her next chat", "System: alice joined", "alice: meet me at noon by the old gate"),
    ("a chat shorter than one block", "System: bob joined", "bob: ok"),
    ("a known message shorter than one block", "carol: hi", "carol: the code is 4711"),
    ("two long messages (only the first block shares the keystream)",
     "System: dave joined the room at noon", "dave: please pay 100 to mallory today"),
    ("a message with non-ASCII text", "System: érin joined", "érin: café at 5 ☕"),
]


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b))


def sample_pairs() -> list[tuple[str, bytes, bytes, bytes, bytes]]:
    """The checker's cases: (description, known ciphertext, known plaintext, other ciphertext, other plaintext).

    Both messages of a case are encrypted like one TCRP/1 session: one key, one IV, each message
    from the start of the keystream. The keys are seeded, so the cases are the same on every run.
    """
    cases = []
    for number, (description, known, other) in enumerate(PAIRS):
        rng = SeededRandom(f"tcrp_lab exercise legacy {number}")
        key, iv = rng(KEY_BYTES), rng(IV_BYTES)
        p1, p2 = known.encode("utf-8"), other.encode("utf-8")
        cases.append((description, cfb_encrypt(key, iv, p1), p1, cfb_encrypt(key, iv, p2), p2))
    return cases


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 70 else text[:67] + "..."


def _hint(got: bytes, c1: bytes, p1: bytes, c2: bytes, want: bytes) -> str:
    """The likely mistake, when the wrong bytes give it away."""
    n = len(want)
    if got[:n] == _xor(c1, c2)[:n] and n:
        return (" — that is known_ciphertext ⊕ other_ciphertext, which equals known_plaintext ⊕ other_plaintext: "
                "XOR it with the known message as well to cancel that one out")
    if got[:n] == _xor(p1, c2)[:n] and n:
        return (" — that XORs the known message straight onto the other ciphertext; first recover the keystream "
                "(known_ciphertext ⊕ known_plaintext), then XOR the keystream onto the other ciphertext")
    if len(got) > n and got[:n] == want:
        return (f" — the first {n} bytes are right, the rest is garbage: only the first block ({BLOCK} bytes) of "
                f"each message is encrypted with the shared keystream, so return at most {BLOCK} bytes")
    if len(got) < n and want.startswith(got):
        return f" — right as far as it goes, but {n} bytes can be recovered here"
    return ""


def check_keystream_recovery(recover: Callable[[bytes, bytes, bytes], Any]) -> CheckResult:
    """Check ``recover(known_ciphertext, known_plaintext, other_ciphertext) -> bytes`` on the sample pairs.

    The expected answer is the other message's plaintext, as many bytes as all three inputs have and
    at most 16. A failure names the pair, shows what came back, and says what the mistake looks like.
    """
    result = CheckResult("Recovering a plaintext block")
    if not callable(recover):
        result.failures.append(f"check_keystream_recovery needs your function, got {_show(recover)}")
        return result
    for description, c1, p1, c2, p2 in sample_pairs():
        want = p2[: min(len(c1), len(p1), len(c2), BLOCK)]
        where = f"{description} (known message {p1.decode()!r})"
        try:
            got = recover(c1, p1, c2)
        except Exception as exc:  # the learner's bug, reported
            last = raised(exc)
            result.failures.append(f"{where}: your function raised {last}")
            continue
        if isinstance(got, str):
            result.failures.append(f"{where}: your function returned the text {_show(got)}; return bytes "
                                   "(the plaintext is bytes: leave out .decode())")
            continue
        if not isinstance(got, (bytes, bytearray)):
            result.failures.append(f"{where}: your function returned {_show(got)}, not bytes")
            continue
        got = bytes(got)
        if got == want:
            result.passed += 1
        else:
            result.failures.append(f"{where}: expected {_show(want)}, got {_show(got)}"
                                   + _hint(got, c1, p1, c2, want))
    return result
