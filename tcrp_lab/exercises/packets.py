"""Lesson 02 exercise: decode a TCRP request (TCRP.md §3) into its header fields, room and payload.

The learner writes ``decode_request(data: bytes) -> dict`` with the keys of :data:`FIELDS`.
:func:`check_decode` gives it requests built by :class:`tcrp_lab.protocol.Message` — chosen so that
each classic mistake shows (a room name with a non-ASCII letter, a payload over 255 bytes, an empty
room) — and compares field by field: for each request, one check that the dict has every key,
then one per field, in an order where the first one to fail names the likely mistake.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..protocol import HEADER_SIZE, Message
from .common import Case, CheckResult, check, show

__all__ = ["FIELDS", "check_decode", "sample_requests"]

TITLE = "Decoding a TCRP request"
TODO = ("Write decode_request(data): read the header's three one-byte fields and its 29-byte size (the table of "
        "section 1), slice the room name and the payload by the sizes they give, and return a dict with the "
        "six keys, the room decoded to a str and the payload parsed to a dict.")

#: The keys ``decode_request`` returns, where each one is in a message, and the usual slip.
FIELDS = {
    "room_size": ("byte 0", "byte 0 is RoomNameSize: data[0] is already an int"),
    "operation": ("byte 1", "byte 1 is the operation: data[1] (an int; data[1:2] would be bytes)"),
    "state": ("byte 2", "byte 2 is the state: data[2] (an int; data[2:3] would be bytes)"),
    "payload_size": ("bytes 3-31", "bytes 3-31 are ONE 29-byte integer in network order: "
                                   "int.from_bytes(data[3:32], 'big'), not little-endian"),
    "room": ("the room_size bytes after the 32-byte header",
             "the room name is data[32:32 + room_size], decoded with .decode('utf-8') into a str"),
    "payload": ("the payload_size bytes after the room name",
                "the payload follows the room name; json.loads of its bytes gives a dict"),
}


def sample_requests() -> list[tuple[str, Message, str]]:
    """The requests the checker decodes: (a short description, the message, the likely mistake if it fails)."""
    return [
        ("JOIN_ROOM 'lab' by bob, the request given in the lesson", Message.join_room("lab", "bob", "s3cret"), ""),
        ("CREATE_ROOM 'lab' by alice", Message.create_room("lab", "alice", "s3cret"), ""),
        ("JOIN_ROOM 'café' by bob (é is 2 bytes in UTF-8)", Message.join_room("café", "bob", "pw"),
         "'café' is 4 characters but 5 bytes: room_size counts bytes, and the payload starts room_size bytes "
         "after the header (not len(room) characters)"),
        ("LIST_ROOMS (no room name, payload {})", Message.list_rooms(),
         "a room_size of 0 means no room name: room is '' and the payload starts right at byte 32"),
        ("CREATE_ROOM 'long' with a 300-character password (payload over 255 bytes)",
         Message.create_room("long", "carol", "p" * 300),
         "this payload is over 255 bytes, so its size takes the last TWO bytes of the field: read all 29 bytes"),
    ]


def _expected(message: Message) -> dict[str, Any]:
    room = message.room.encode("utf-8")
    payload = message.encode()[HEADER_SIZE + len(room):]
    return {"room_size": len(room), "operation": int(message.operation), "state": int(message.state),
            "payload_size": len(payload), "room": message.room, "payload": dict(message.payload)}


class _Note:
    """Stands for a value the learner did not give (a missing key, not a dict): shown as its text, equal to nothing."""

    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:
        return self.text


def _missing_keys(decode_request: Callable[[bytes], Any], data: bytes) -> Any:
    got = decode_request(data)
    if not isinstance(got, dict):
        return _Note(f"{show(got, 60)}, not a dict")
    return [name for name in FIELDS if name not in got]


def _field(decode_request: Callable[[bytes], Any], data: bytes, name: str) -> Any:
    got = decode_request(data)
    if not isinstance(got, dict):
        return _Note("(not a dict)")
    return got.get(name, _Note(f"(no {name!r} key)"))


def _same_int(got: Any, want: Any) -> bool:
    return isinstance(got, int) and not isinstance(got, bool) and got == want   # an IntEnum is fine


def _same_value(got: Any, want: Any) -> bool:
    return type(got) is type(want) and got == want


def check_decode(decode_request: Callable[[bytes], Any]) -> CheckResult:
    """Check ``decode_request(data) -> dict`` on the sample requests, one check per field of each.

    A failure names the request and the field, where that field lives in the bytes, what was
    expected and what came back, and the likely mistake.
    """
    if not callable(decode_request):
        return CheckResult.failure(TITLE, f"check_decode needs your function, got {show(decode_request, 60)}",
                                   "pass the function itself: check_decode(decode_request)")
    cases = []
    for description, message, hint in sample_requests():
        data = message.encode()
        cases.append(Case(f"request {description}: the keys missing from the dict returned",
                          lambda data=data: _missing_keys(decode_request, data), [],
                          hint or f"return a dict with the keys {', '.join(FIELDS)}"))
        for name, want in _expected(message).items():
            where, slip = FIELDS[name]
            cases.append(Case(f"request {description}: {name} ({where})",
                              lambda data=data, name=name: _field(decode_request, data, name), want,
                              hint or slip, _same_int if isinstance(want, int) else _same_value))
    return check(TITLE, cases, todo=TODO)
