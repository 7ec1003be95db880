"""Lesson 02 exercise: decode a TCRP request (TCRP.md §3) into its header fields, room and payload.

The learner writes ``decode_request(data: bytes) -> dict`` with the keys of :data:`FIELDS`.
:func:`check_decode` gives it requests built by :class:`tcrp_lab.protocol.Message` — chosen so that
each classic mistake shows (a room name with a non-ASCII letter, a payload over 255 bytes, an empty
room) — and compares field by field. For each wrong field it says in how many requests it was
wrong, where that field lives in the bytes, and one example of expected and received values.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..protocol import Message
from .common import CheckResult, raised

__all__ = ["FIELDS", "check_decode", "sample_requests"]

_MISSING = object()

#: The keys ``decode_request`` returns, and where each one is in a message.
FIELDS = {
    "room_size": "byte 0, RoomNameSize: the room name's length in UTF-8 bytes",
    "operation": "byte 1, Operation (1 CREATE_ROOM, 2 JOIN_ROOM, 3 LIST_ROOMS)",
    "state": "byte 2, State (0 REQUEST)",
    "payload_size": "bytes 3-31, OperationPayloadSize: one 29-byte big-endian integer",
    "room": "the room_size bytes right after the 32-byte header, decoded as UTF-8",
    "payload": "the payload_size bytes after the room name, a JSON object (a dict)",
}


def sample_requests() -> list[tuple[str, Message, str]]:
    """The requests the checker decodes: (a short description, the message, a hint if only it fails)."""
    return [
        ("CREATE_ROOM 'lab' by alice", Message.create_room("lab", "alice", "s3cret"), ""),
        ("JOIN_ROOM 'café' by bob (é is 2 bytes in UTF-8)", Message.join_room("café", "bob", "pw"),
         "the room name is room_size bytes, which is more than its number of characters here"),
        ("LIST_ROOMS (no room name, payload {})", Message.list_rooms(), "a room_size of 0 means no room name"),
        ("CREATE_ROOM 'long' with a 300-character password (payload over 255 bytes)",
         Message.create_room("long", "carol", "p" * 300), "this payload's size takes two bytes of the size field"),
    ]


def _expected(message: Message) -> dict[str, Any]:
    room = message.room.encode("utf-8")
    payload = message.encode()[32 + len(room):]
    return {"room_size": len(room), "operation": int(message.operation), "state": int(message.state),
            "payload_size": len(payload), "room": message.room, "payload": dict(message.payload)}


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 70 else text[:67] + "..."


def _same(field: str, got: Any, want: Any) -> bool:
    if field in ("room_size", "operation", "state", "payload_size"):
        return isinstance(got, int) and not isinstance(got, bool) and got == want   # an IntEnum is fine
    return type(got) is type(want) and got == want


def _hint(field: str, got: Any, want: Any, message: Message) -> str:
    """One sentence on the likely mistake, when the wrong value gives it away."""
    data = message.encode()
    if field == "payload_size" and isinstance(got, int):
        if got == int.from_bytes(data[3:32], "little"):
            return " — that is the size read little-endian; the network order is big-endian"
        if got == data[31] and got != want:
            return " — that is only the last byte of the size; read all 29 bytes"
    if field == "room_size" and got == len(message.room) != want:
        return " — that counts characters; the size is in bytes of UTF-8"
    if field in ("room", "payload") and isinstance(got, (bytes, bytearray)):
        return " — decode the bytes (room: .decode('utf-8'); payload: json.loads)"
    if field in ("operation", "state") and isinstance(got, (bytes, bytearray)):
        return " — data[i] of a bytes object is already an int; data[i:i+1] is bytes"
    return ""


def check_decode(decode_request: Callable[[bytes], Any]) -> CheckResult:
    """Check ``decode_request(data) -> dict`` on sample requests, field by field.

    Each failure names the field, says where it lives in the message, in how many of the requests
    it was wrong, and shows one expected/received pair.
    """
    result = CheckResult("Decoding a TCRP request")
    if not callable(decode_request):
        result.failures.append(f"check_decode needs your function, got {_show(decode_request)}")
        return result
    wrong: dict[str, list[tuple[str, Any, Any, Message]]] = {field: [] for field in FIELDS}
    samples = sample_requests()
    for description, message, hint in samples:
        data = message.encode()
        try:
            got = decode_request(data)
        except Exception as exc:  # the learner's bug, reported
            last = raised(exc)
            result.failures.append(f"request {description}: your function raised {last}"
                                   + (f" (hint: {hint})" if hint else ""))
            continue
        if not isinstance(got, dict):
            result.failures.append(f"request {description}: your function returned {_show(got)}, not a dict "
                                   f"with the keys {', '.join(FIELDS)}")
            continue
        for field, want in _expected(message).items():
            if field not in got:
                wrong[field].append((description, _MISSING, want, message))
            elif _same(field, got[field], want):
                result.passed += 1
            else:
                wrong[field].append((description, got[field], want, message))
    for field, cases in wrong.items():
        if not cases:
            continue
        description, got, want, message = cases[0]
        if got is _MISSING:
            result.failures.append(f"{field} is missing from the dict you return ({FIELDS[field]})")
            continue
        result.failures.append(
            f"{field} is wrong in {len(cases)} of {len(samples)} requests ({FIELDS[field]}); "
            f"e.g. {description}: expected {_show(want)}, got {_show(got)}{_hint(field, got, want, message)}")
    return result

