"""check_decode (lesson 02): passes a correct decoder, names the wrong field for typical bugs."""

from __future__ import annotations

import json

from tcrp_lab.exercises import check_decode
from tcrp_lab.exercises.packets import FIELDS, sample_requests
from tcrp_lab.protocol import decode_message


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


def failures(result) -> str:
    return "\n".join(result.failures)


def test_correct_decoders_pass():
    for answer in (good, with_library):
        result = check_decode(answer)
        assert result, failures(result)
        assert result.passed == len(FIELDS) * len(sample_requests()) == 24


def test_the_samples_are_the_requests_described():
    for description, message, _ in sample_requests():
        assert message.operation.name in description
        assert decode_message(message.encode()) == message


def test_little_endian_size_is_named_and_explained():
    def little(data: bytes) -> dict:
        return {**good(data), "payload_size": int.from_bytes(data[3:32], "little")}

    result = check_decode(little)
    assert len(result.failures) == 1 and result.passed == 20
    text = result.failures[0]
    assert text.startswith("payload_size is wrong in 4 of 4 requests (bytes 3-31")
    assert "expected 40, got" in text and "read little-endian" in text


def test_one_byte_size_fails_only_on_the_long_payload():
    def last_byte(data: bytes) -> dict:
        return {**good(data), "payload_size": data[31]}

    text = failures(check_decode(last_byte))
    assert "payload_size is wrong in 1 of 4 requests" in text
    assert "expected 334, got 78" in text and "only the last byte" in text


def test_characters_instead_of_bytes():
    def counts_characters(data: bytes) -> dict:
        room = data[32 : 32 + data[0]].decode("utf-8")
        return {**good(data), "room_size": len(room)}

    text = failures(check_decode(counts_characters))
    assert "room_size is wrong in 1 of 4 requests" in text
    assert "JOIN_ROOM 'café'" in text and "expected 5, got 4" in text and "counts characters" in text

    def slices_by_characters(data: bytes) -> dict:
        room = data[32 : 32 + data[0]].decode("utf-8")
        return {**good(data), "payload": json.loads(data[32 + len(room) :])}

    text = failures(check_decode(slices_by_characters))
    assert "JOIN_ROOM 'café' by bob (é is 2 bytes in UTF-8): your function raised UnicodeDecodeError" in text
    assert "hint: the room name is room_size bytes" in text


def test_undecoded_bytes_missing_keys_and_bad_returns():
    def raw(data: bytes) -> dict:
        answer = {**good(data), "room": data[32 : 32 + data[0]], "operation": data[1:2]}
        del answer["state"]
        return answer

    text = failures(check_decode(raw))
    assert "state is missing from the dict you return (byte 2" in text
    assert "room is wrong in 4 of 4 requests" in text and "expected 'lab', got b'lab'" in text
    assert "data[i] of a bytes object is already an int" in text

    text = failures(check_decode(lambda data: None))
    assert "your function returned None, not a dict with the keys room_size, operation" in text
    assert "check_decode needs your function" in failures(check_decode("not a function"))
