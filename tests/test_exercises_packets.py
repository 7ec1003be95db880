"""check_decode (lesson 02): passes a correct decoder, says "not yet" to the stub, and names the first
wrong field and the likely mistake for typical bugs."""

from __future__ import annotations

import json

from tcrp_lab.exercises import check_decode
from tcrp_lab.exercises.packets import FIELDS, sample_requests
from tcrp_lab.protocol import decode_message

GIVEN = ("03020000000000000000000000000000000000000000000000000000000000266c61627b22757365726e616d65223a"
         "22626f62222c2270617373776f7264223a22733363726574227d")   # the request lesson 02 shows in hex
CHECKS = (len(FIELDS) + 1) * len(sample_requests())              # per request: the keys, then each field


def good(data: bytes) -> dict:
    """A correct answer written from TCRP.md §3 alone."""
    room_size, payload_size = data[0], int.from_bytes(data[3:32], "big")
    return {"room_size": room_size, "operation": data[1], "state": data[2], "payload_size": payload_size,
            "room": data[32 : 32 + room_size].decode("utf-8"),
            "payload": json.loads(data[32 + room_size : 32 + room_size + payload_size])}


def with_library(data: bytes) -> dict:
    """Also correct: tcrp_lab's own decoder, with the sizes recomputed."""
    message = decode_message(data)
    room = message.room.encode("utf-8")
    return {"room_size": len(room), "operation": message.operation, "state": message.state,
            "payload_size": len(data) - 32 - len(room), "room": message.room, "payload": dict(message.payload)}


def first_problem(answer) -> tuple[str, str]:
    result = check_decode(answer)
    assert result.status == "failed", str(result)
    return result.failures[0], result.hint


def test_correct_decoders_pass():
    for answer in (good, with_library):
        result = check_decode(answer)
        assert result.status == "passed", str(result)
        assert result.passed == CHECKS == 35


def test_the_samples_are_the_requests_described_and_the_first_is_the_lessons():
    samples = sample_requests()
    assert samples[0][1].encode().hex() == GIVEN
    for description, message, _ in samples:
        assert message.operation.name in description
        assert decode_message(message.encode()) == message


def test_the_stub_is_not_yet_with_what_to_write():
    def stub(data: bytes) -> dict:
        raise NotImplementedError()

    result = check_decode(stub)
    assert result.status == "not_yet" and not result
    assert "the six keys" in str(result) and "Traceback" not in str(result)


def test_little_endian_size_is_named_and_explained():
    def little(data: bytes) -> dict:
        return {**good(data), "payload_size": int.from_bytes(data[3:32], "little")}

    result = check_decode(little)
    assert result.passed == CHECKS - len(sample_requests())
    problem, hint = first_problem(little)
    assert problem.startswith("request JOIN_ROOM 'lab' by bob, the request given in the lesson: payload_size")
    assert "expected 38, got" in problem and "not little-endian" in hint


def test_one_byte_size_fails_only_on_the_long_payload():
    def last_byte(data: bytes) -> dict:
        return {**good(data), "payload_size": data[31]}

    result = check_decode(last_byte)
    assert result.passed == CHECKS - 1
    problem, hint = first_problem(last_byte)
    assert "300-character password" in problem and "expected 334, got 78" in problem
    assert "read all 29 bytes" in hint


def test_characters_instead_of_bytes():
    def counts_characters(data: bytes) -> dict:
        room = data[32 : 32 + data[0]].decode("utf-8")
        return {**good(data), "room_size": len(room)}

    problem, hint = first_problem(counts_characters)
    assert problem == "request JOIN_ROOM 'café' by bob (é is 2 bytes in UTF-8): room_size (byte 0): expected 5, got 4"
    assert "4 characters but 5 bytes" in hint

    def slices_by_characters(data: bytes) -> dict:
        room = data[32 : 32 + data[0]].decode("utf-8")
        return {**good(data), "payload": json.loads(data[32 + len(room) :])}

    problem, hint = first_problem(slices_by_characters)
    assert problem.startswith("request JOIN_ROOM 'café' by bob (é is 2 bytes in UTF-8): the keys missing")
    assert "your code raised UnicodeDecodeError" in problem
    assert "the payload starts room_size bytes after the header" in hint


def test_undecoded_bytes_missing_keys_and_bad_returns():
    def raw(data: bytes) -> dict:
        answer = {**good(data), "room": data[32 : 32 + data[0]], "operation": data[1:2]}
        del answer["state"]
        return answer

    result = check_decode(raw)
    problem, hint = first_problem(raw)
    assert problem.endswith("the keys missing from the dict returned: expected [], got ['state']")
    text = "\n".join(result.failures)
    assert "operation (byte 1): expected 2, got b'\\x02'" in text
    assert "room (the room_size bytes after the 32-byte header): expected 'lab', got b'lab'" in text
    assert "state (byte 2): expected 0, got (no 'state' key)" in text

    problem, hint = first_problem(lambda data: None)
    assert "got None, not a dict" in problem and "return a dict with the keys room_size" in hint
    problem, hint = first_problem("not a function")
    assert "check_decode needs your function" in problem


def test_each_field_slip_gets_its_own_hint():
    slips = {
        "operation": (lambda data: {**good(data), "operation": data[1:2]}, "data[1:2] would be bytes"),
        "room": (lambda data: {**good(data), "room": data[32 : 32 + data[0]]}, ".decode('utf-8') into a str"),
        "payload": (lambda data: {**good(data), "payload": data[32 + data[0]:]}, "json.loads of its bytes"),
    }
    for field, (answer, hint_part) in slips.items():
        problem, hint = first_problem(answer)
        assert f": {field} (" in problem and hint_part in hint, (field, problem, hint)
