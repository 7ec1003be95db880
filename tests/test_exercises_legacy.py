"""check_keystream_recovery (lesson 07): passes correct answers, explains what is wrong with typical bugs."""

from __future__ import annotations

from tcrp_lab.attacks import keystream_reuse
from tcrp_lab.exercises import check_keystream_recovery
from tcrp_lab.exercises.legacy import sample_pairs
from tcrp_lab.legacy import datagram


def good(known_ciphertext, known_plaintext, other_ciphertext):
    """A correct answer written from the task alone: keystream first, then the other message."""
    keystream = bytes(c ^ p for c, p in zip(known_ciphertext, known_plaintext))[:16]
    return bytes(k ^ c for k, c in zip(keystream, other_ciphertext))


def good_two_ciphertexts_first(known_ciphertext, known_plaintext, other_ciphertext):
    """Also correct: XOR the ciphertexts (= XOR of the plaintexts), then take the known message out."""
    mixed = bytes(a ^ b for a, b in zip(known_ciphertext, other_ciphertext))
    return bytearray(m ^ p for m, p in zip(mixed, known_plaintext))[:16]


def whole_length(known_ciphertext, known_plaintext, other_ciphertext):
    """Forgets that only the first block shares the keystream."""
    keystream = bytes(c ^ p for c, p in zip(known_ciphertext, known_plaintext))
    return bytes(k ^ c for k, c in zip(keystream, other_ciphertext))


def ciphertexts_only(known_ciphertext, known_plaintext, other_ciphertext):
    """Stops at the XOR of the two ciphertexts."""
    return bytes(a ^ b for a, b in zip(known_ciphertext, other_ciphertext))[:16]


def plaintext_onto_ciphertext(known_ciphertext, known_plaintext, other_ciphertext):
    """Skips the keystream."""
    return bytes(p ^ c for p, c in zip(known_plaintext, other_ciphertext))[:16]


def always_sixteen(known_ciphertext, known_plaintext, other_ciphertext):
    """Assumes every input is at least a block long: fails with an IndexError on short ones."""
    return bytes(known_ciphertext[i] ^ known_plaintext[i] ^ other_ciphertext[i] for i in range(16))


def decodes(known_ciphertext, known_plaintext, other_ciphertext):
    return good(known_ciphertext, known_plaintext, other_ciphertext).decode("utf-8", "replace")


def test_correct_answers_pass():
    for answer in (good, good_two_ciphertexts_first):
        result = check_keystream_recovery(answer)
        assert result, str(result)
        assert result.passed == len(sample_pairs())
        assert "all 5 checks passed" in str(result)


def test_the_package_attack_agrees_with_the_checker():
    """keystream_reuse on real TCRP/1 datagrams recovers what the checker expects of the same ciphertexts."""
    key, iv, token = bytes(16), bytes(range(16)), bytes(255)
    for _, c1, p1, c2, p2 in sample_pairs():
        # the checker's ciphertexts are not under this key, so re-encrypt the plaintexts as one session
        known, other = (datagram("lab", token, key, iv, p.decode()) for p in (p1, p2))
        recovered = keystream_reuse(known, p1, other).evidence["recovered"]
        assert recovered == p2[: min(len(p1), len(p2), 16)]
        assert good(c1, p1, c2) == p2[: min(len(p1), len(p2), 16)]


def test_going_past_the_first_block_is_explained():
    result = check_keystream_recovery(whole_length)
    assert not result
    text = str(result)
    assert "alice's join notice and her next chat" in text
    assert "got b'alice: meet me a" in text
    assert "the first 16 bytes are right" in text and "return at most 16 bytes" in text
    assert "bob: ok" not in text        # a short message is right even without the limit
    assert result.passed == 2


def test_stopping_at_the_xor_of_the_ciphertexts_is_explained():
    result = check_keystream_recovery(ciphertexts_only)
    assert not result and result.passed == 0
    assert len(result.failures) == len(sample_pairs())
    assert "equals known_plaintext ⊕ other_plaintext" in result.failures[0]
    assert "XOR it with the known message" in result.failures[0]


def test_skipping_the_keystream_is_explained():
    result = check_keystream_recovery(plaintext_onto_ciphertext)
    assert not result and result.passed == 0
    assert "first recover the keystream" in result.failures[0]


def test_a_crash_on_short_inputs_is_reported_not_raised():
    result = check_keystream_recovery(always_sixteen)
    assert not result
    crashed = [f for f in result.failures if "raised IndexError" in f]
    assert any(f.startswith("a chat shorter than one block") for f in crashed)
    assert any(f.startswith("a known message shorter than one block") for f in crashed)
    assert result.passed == 3


def test_returning_text_or_nothing_says_what_to_return():
    text = check_keystream_recovery(decodes)
    assert not text and "return bytes" in text.failures[0] and "leave out .decode()" in text.failures[0]
    nothing = check_keystream_recovery(lambda c1, p1, c2: None)
    assert not nothing and "returned None, not bytes" in nothing.failures[0]
    not_a_function = check_keystream_recovery(b"alice: meet me a")
    assert not not_a_function and "needs your function" in not_a_function.failures[0]
