"""Lesson 07's checker, check_read_with_known: "not yet" on a stub, each typical mistake named, a right answer passes."""

from __future__ import annotations

from tcrp_lab.attacks import keystream_reuse
from tcrp_lab.exercises import check_read_with_known
from tcrp_lab.exercises.legacy import CASES, reference_read, sample_cases
from tcrp_lab.legacy import BLOCK, cfb_decrypt, cfb_encrypt, datagram


def xor(a, b):
    return bytes(x ^ y for x, y in zip(a, b))


def stub(known, ciphertext):
    # YOUR CODE HERE
    raise NotImplementedError()


def right(known, ciphertext):
    """Written from the task alone: a keystream per ciphertext block before it, the longest seen."""
    after = {}
    for c, p in known:
        for at in range(0, min(len(c), len(p)), 16):
            stream = xor(c[at:at + 16], p[at:at + 16])
            before = c[at - 16:at] if at else b"IV"
            if len(stream) > len(after.get(before, b"")):
                after[before] = stream
    out, before = bytearray(), b"IV"
    for at in range(0, len(ciphertext), 16):
        block, stream = ciphertext[at:at + 16], after.get(before, b"")
        out += xor(block, stream)
        if len(stream) < len(block):
            break
        before = block
    return out


def first_block_only(known, ciphertext):
    """Lesson 07's old exercise: the first block from the first known message, nothing more."""
    if not known:
        return b""
    c, p = known[0]
    return xor(xor(c, p)[:16], ciphertext)


def whole_length(known, ciphertext):
    """Uses a known message's keystream position by position, whatever the blocks before."""
    if not known:
        return b""
    c, p = max(known, key=lambda pair: len(pair[0]))
    return xor(xor(c, p), ciphertext)


def first_known_only(known, ciphertext):
    """Follows the chain, but only through the first known message."""
    return right(known[:1], ciphertext)


def first_found(known, ciphertext):
    """Keeps the first keystream found for a block, not the longest."""
    after = {}
    for c, p in known:
        for at in range(0, min(len(c), len(p)), 16):
            after.setdefault(c[at - 16:at] if at else b"IV", xor(c[at:at + 16], p[at:at + 16]))
    out, before = b"", b"IV"
    for at in range(0, len(ciphertext), 16):
        block, stream = ciphertext[at:at + 16], after.get(before, b"")
        out += xor(block, stream)
        if len(stream) < len(block):
            break
        before = block
    return out


def decodes(known, ciphertext):
    return right(known, ciphertext).decode("utf-8", "replace")


def test_the_reference_reads_what_real_cfb_decryption_gives():
    for _, known, target, plaintext, _ in sample_cases():
        got = reference_read(known, target)
        assert plaintext.startswith(got) and (got if known else got == b"")
    key, iv = bytes(16), bytes(range(16))
    same = [b"alice: today's door code is 4711", b"alice: today's door code is 0815"]
    c1, c2 = (cfb_encrypt(key, iv, p) for p in same)
    assert reference_read([(c1, same[0])], c2) == same[1] == cfb_decrypt(key, iv, c2)


def test_the_package_attack_agrees_on_the_first_block():
    key, iv, token = bytes(16), bytes(range(16)), bytes(255)
    for _, known, target, plaintext, _ in sample_cases():
        if not known:
            continue
        p1 = known[0][1]
        d1, d2 = (datagram("lab", token, key, iv, p.decode()) for p in (p1, plaintext))
        first = keystream_reuse(d1, p1, d2).evidence["recovered"]
        assert first == plaintext[: min(len(p1), len(plaintext), BLOCK)]


def test_a_stub_is_not_yet_and_says_what_to_write():
    result = check_read_with_known(stub)
    assert result.status == "not_yet"
    assert "read_with_known(known, ciphertext)" in result.todo and "block by block" in result.todo


def test_a_right_answer_passes():
    result = check_read_with_known(right)
    assert result.status == "passed" and result.passed == len(CASES)


def test_stopping_at_the_first_block_is_told_about_the_chain():
    result = check_read_with_known(first_block_only)
    assert result.status == "failed"
    assert result.failures[0].startswith("yesterday's door code is known")
    assert "right as far as it goes, but 32 bytes" in result.hint and "AES(key, C1)" in result.hint


def test_using_keystream_past_a_differing_block_is_named():
    result = check_read_with_known(whole_length)
    assert result.status == "failed"
    assert result.failures[0].startswith("alice's join notice, and her chat that starts differently")
    assert "then garbage" in result.hint and "stop there" in result.hint


def test_looking_only_at_the_first_known_message_is_named():
    result = check_read_with_known(first_known_only)
    assert result.status == "failed"
    assert result.failures[0].startswith("the target is one of the known messages")   # not the first known
    assert "right as far as it goes" in result.hint and "every known message" in result.hint


def test_keeping_a_shorter_keystream_is_named():
    result = check_read_with_known(first_found)
    assert result.status == "failed" and result.passed == len(CASES) - 1
    assert result.failures[0].startswith("two known messages share block 1")
    assert "use the longer" in result.hint


def test_returning_text_says_to_return_bytes():
    result = check_read_with_known(decodes)
    assert result.status == "failed" and "return bytes, not text" in result.hint


def test_exceptions_and_a_non_function_are_reported_not_raised():
    result = check_read_with_known(lambda known, ciphertext: known[0][0][99])
    assert result.status == "failed" and "your code raised IndexError" in result.failures[0]
    not_a_function = check_read_with_known(b"alice: meet me a")
    assert not_a_function.status == "failed" and "needs your function" in not_a_function.failures[0]
