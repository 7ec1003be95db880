"""The legacy lessons' checkers: "not yet" on a stub, each typical mistake named, a right answer passes.

Lesson 07: check_read_with_known (reading). Lesson 08: check_forgery (attacking a live TCRP/1 server).
"""

from __future__ import annotations

from tcrp_lab.attacks import keystream_reuse
from tcrp_lab.exercises import check_read_with_known
from tcrp_lab.exercises.attacks import CASES as FORGERY_CASES
from tcrp_lab.exercises.attacks import check_forgery
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


# --- lesson 08: forging "pay 900" against a live legacy server ----------------------------------------

def flip_at(captured, start, sent, wanted):
    out = bytearray(captured)
    for i, mask in enumerate(xor(sent, wanted)):
        out[start + i] ^= mask
    return bytes(out)


def forge_right(captured, sent, wanted):
    """Written from the task alone: sent ⊕ wanted, XORed into the ciphertext where it starts."""
    return flip_at(captured, 2 + captured[0] + captured[1], sent.encode(), wanted.encode())


def forge_for_lab_only(captured, sent, wanted):
    """Hard-codes the ciphertext's start for a 3-byte room name."""
    return flip_at(captured, 2 + 3 + 255, sent.encode(), wanted.encode())


def forge_by_characters(captured, sent, wanted):
    """Counts offsets in characters."""
    start, out = 2 + captured[0] + captured[1], bytearray(captured)
    for i, (a, b) in enumerate(zip(sent, wanted)):
        out[start + i] ^= (ord(a) ^ ord(b)) & 0xFF
    return bytes(out)


def forge_without_the_size_bytes(captured, sent, wanted):
    return flip_at(captured, captured[0] + captured[1], sent.encode(), wanted.encode())


def test_a_forgery_stub_is_not_yet_and_says_what_to_write():
    result = check_forgery(stub3)
    assert result.status == "not_yet" and "forge(captured, sent, wanted)" in result.todo


def stub3(captured, sent, wanted):
    # YOUR CODE HERE
    raise NotImplementedError()


def test_a_right_forgery_passes_because_bob_received_pay_900():
    result = check_forgery(forge_right)
    assert result.status == "passed" and result.passed == len(FORGERY_CASES)


def test_a_hard_coded_offset_hits_the_token_and_stops_the_relay():
    result = check_forgery(forge_for_lab_only)
    assert result.status == "failed" and result.passed == 3
    assert result.failures[0].startswith("alice types 'pay 100' in room 'accounts-payable'")
    assert "got nothing (the server's relay stopped at it: unknown token)" in result.failures[0]
    assert "hit the header (token)" in result.hint and "= 273 here" in result.hint
    assert "stopped the relay for every room" in result.hint


def test_counting_characters_is_named_from_where_the_flip_landed():
    result = check_forgery(forge_by_characters)
    assert result.status == "failed" and result.passed == 3
    assert result.failures[0].startswith("ケンジ types")
    assert "too early" in result.hint and "bytes of the UTF-8 message" in result.hint


def test_an_offset_two_bytes_short_is_named_and_bob_got_the_changed_text():
    result = check_forgery(forge_without_the_size_bytes)
    assert result.status == "failed" and result.passed == 0
    assert result.failures[0].endswith("expected 'alice: pay 900', got 'alice: paq 100'")
    assert "landed 2 bytes too early" in result.hint


def test_returning_the_original_the_text_or_a_longer_datagram_is_named():
    for forge, words in [
        (lambda captured, sent, wanted: captured, "bob received the original text"),
        (lambda captured, sent, wanted: wanted, "return the forged datagram itself, as bytes"),
        (lambda captured, sent, wanted: captured + b"!", "exactly as long as the captured one"),
    ]:
        result = check_forgery(forge)
        assert result.status == "failed" and words in result.hint, (words, str(result))


def test_a_forgery_that_raises_is_reported_not_raised():
    result = check_forgery(lambda captured, sent, wanted: bytes(c ^ s for c, s in zip(captured, sent)))
    assert result.status == "failed" and "your code raised TypeError" in result.failures[0]
    assert ".encode()" in result.hint
