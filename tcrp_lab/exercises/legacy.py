"""Lesson 07 exercise: read as much of a TCRP/1 message as the messages you already know give away.

TCRP/1 encrypts every message of a session with AES-128-CFB from the same key and the same IV
(TCRP.md §6). In CFB each block's keystream is AES of the ciphertext block before it (of the IV
for the first block), so two messages of a session share a block's keystream exactly when the
ciphertext blocks before it are equal: every first block, and further blocks as long as the
plaintexts agree. The learner writes::

    read_with_known(known: list[tuple[bytes, bytes]], ciphertext: bytes) -> bytes

``known`` holds ``(ciphertext, plaintext)`` pairs of one session; the answer is the longest start
of ``ciphertext``'s plaintext they reveal. :func:`check_read_with_known` encrypts each case with real
AES-CFB under a key the learner never sees and judges the bytes that come back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..crypto import SeededRandom
from ..legacy import BLOCK, IV_BYTES, KEY_BYTES, cfb_encrypt, join_notice
from .common import Case, CheckResult, check, show

__all__ = ["check_read_with_known", "reference_read", "sample_cases"]

TODO = ("Write `read_with_known(known, ciphertext)`: `known` is a list of `(ciphertext, plaintext)` pairs of one "
        "TCRP/1 session. Return, as bytes, as much of `ciphertext`'s plaintext as they give away: block by block, "
        "a block's keystream is known when a known message has the same ciphertext block before it "
        "(the IV, for every first block).")

_FIRST = ("the first block of every message is XORed with the same keystream, AES(key, IV): any known pair gives "
          "it as known_ciphertext ⊕ known_plaintext")
_CHAIN = ("block 2's keystream is AES(key, C1), block 3's AES(key, C2)…: when the target's first ciphertext block "
          "equals a known message's, that known message gives the keystream of block 2 too, and so on")
_STOP = ("past a block where the target's ciphertext differs from every known message's, no keystream is known: "
         "stop there")
_EVERY = "look through every known message: another one may share more blocks with the target"
_LONGEST = ("two known messages can give keystream for the same block; a shorter one covers only part of it: "
            "use the longer")

#: (what the case shows, known plaintexts, the target plaintext, the likely mistake when it fails)
CASES: list[tuple[str, list[str], str, str]] = [
    ("alice's join notice, and her chat that starts differently",
     [join_notice("alice")], "alice: meet me at noon by the old gate", _FIRST + "; " + _STOP),
    ("a target shorter than one block", [join_notice("bob")], "bob: ok", _FIRST),
    ("a known message shorter than one block: only 9 bytes of keystream",
     ["carol: hi"], "carol: the code is 4711", "only as many keystream bytes are known as the known message is long"),
    ("yesterday's door code is known; today's message starts with the same 16 bytes",
     ["alice: today's door code is 4711, bob", join_notice("alice")], "alice: today's door code is 0815, bob",
     _CHAIN),
    ("no known message at all", [], "dave: nothing to see", "with no known message nothing can be read: return b''"),
    ("the target is one of the known messages", [join_notice("erin"), "erin: see you at the station at 6"],
     "erin: see you at the station at 6", _EVERY),
    ("the second known message shares two blocks of plaintext with the target, so three of keystream",
     ["bank: transfer 1", "bank: transfer 100 EUR from alice to bob, ref 7731",
      "bank: transfer 100 EUR from alice to carol"],
     "bank: transfer 100 EUR from alice to mallory, ref 7731", _EVERY),
    ("two known messages share block 1 with the target; the first ends early in block 2",
     ["frank: the password is hunter2", "frank: the password is hunter2 and the pin is 1234"],
     "frank: the password is hunter3 and the pin is 9999", _LONGEST),
    ("non-ASCII text: bytes, not characters", [join_notice("花子")], "花子: 駅で6時に会いましょう", _FIRST),
]


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b))


def reference_read(known: list[tuple[bytes, bytes]], ciphertext: bytes) -> bytes:
    """The answer: a table of the keystream after each ciphertext block, then the target block by block."""
    after: dict[bytes, bytes] = {}   # ciphertext block before (b"": the IV) -> keystream bytes known
    for c, p in known:
        n = min(len(c), len(p))
        for at in range(0, n, BLOCK):
            before = c[at - BLOCK : at] if at else b""
            stream = _xor(c[at : at + BLOCK], p[at : min(at + BLOCK, n)])
            if len(stream) > len(after.get(before, b"")):
                after[before] = stream
    out = b""
    for at in range(0, len(ciphertext), BLOCK):
        stream = after.get(ciphertext[at - BLOCK : at] if at else b"", b"")
        block = ciphertext[at : at + BLOCK]
        out += _xor(block, stream)
        if len(stream) < len(block):
            break
    return out


def sample_cases() -> list[tuple[str, list[tuple[bytes, bytes]], bytes, bytes, str]]:
    """The checker's cases: (description, known pairs, target ciphertext, target plaintext, hint).

    Each case is one TCRP/1 session: one key, one IV, every message encrypted from the start of the
    keystream. The keys are seeded, so the cases are the same on every run.
    """
    cases = []
    for number, (description, known, target, hint) in enumerate(CASES):
        rng = SeededRandom(f"tcrp_lab exercise 07 reading {number}")
        key, iv = rng(KEY_BYTES), rng(IV_BYTES)
        pairs = [(cfb_encrypt(key, iv, p.encode()), p.encode()) for p in known]
        cases.append((description, pairs, cfb_encrypt(key, iv, target.encode()), target.encode(), hint))
    return cases


def _diagnosis(got: Any, want: bytes, plaintext: bytes, hint: str) -> str:
    """The likely mistake, from what came back; the case's own hint when the bytes do not give it away."""
    if isinstance(got, str):
        return "return bytes, not text: leave out .decode() (the plaintext may not even be whole characters)"
    if not isinstance(got, (bytes, bytearray)):
        return f"return bytes (the plaintext read so far), not {type(got).__name__}"
    got = bytes(got)
    if len(got) > len(want) and got.startswith(want):
        return (f"the first {len(want)} bytes are right, then garbage: " + _STOP
                + " (a known message's keystream fits only after the same ciphertext block)")
    if len(got) < len(want) and want.startswith(got):
        return f"right as far as it goes, but {len(want)} bytes can be read here: " + hint
    return hint


def check_read_with_known(read_with_known: Callable[[list[tuple[bytes, bytes]], bytes], Any]) -> CheckResult:
    """Check ``read_with_known(known, ciphertext) -> bytes`` on nine sessions encrypted with real AES-CFB.

    The expected answer is the longest start of the target's plaintext the known pairs reveal. A
    failure names the first case that went wrong, what came back, and the likely mistake behind it.
    """
    title = "read_with_known"
    if not callable(read_with_known):
        return CheckResult.failure(title, f"check_read_with_known needs your function, got {show(read_with_known)}",
                                   "pass the function itself: check_read_with_known(read_with_known)")
    got: dict[str, Any] = {}
    cases, wanted = [], {}
    for description, known, target, plaintext, hint in sample_cases():
        want = reference_read(known, target)
        where = f"{description} (target {plaintext.decode()!r})"
        wanted[where] = (want, plaintext, hint)

        def run(known=known, target=target, where=where) -> Any:
            got[where] = read_with_known([tuple(pair) for pair in known], target)
            return bytes(got[where]) if isinstance(got[where], bytearray) else got[where]

        cases.append(Case(where, run, want, hint))
    result = check(title, cases, todo=TODO)
    if result.status == "failed":   # the hint for what actually came back, when that says more
        where = next((w for w in wanted if result.failures[0].startswith(w + ":")), None)
        if where in got:
            result.hint = _diagnosis(got[where], *wanted[where])
    return result
