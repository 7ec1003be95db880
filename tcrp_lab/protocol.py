"""The TCRP wire format: bytes <-> frozen dataclasses. No sockets, no threads, no crypto.

This module is the sans-IO codec of TCRP.md §2-§4 (the h11 pattern): everything here is a pure
function of its arguments, so a notebook can build a packet by hand and compare, and property
tests can throw any bytes at every decoder. Every decoder returns a value or raises
:class:`ProtocolError`; nothing else escapes, whatever the input.

Three layers live here:

* **TCP frames** (§2): ``length u32 | body``. :func:`encode_frame` and :class:`FrameReader`, an
  incremental reader that accepts any chunking of the stream.
* **Messages** (§3): the 32-byte header, the room name and a JSON payload. :class:`Message`.
* **Datagrams** (§4): the clear outer layout of a UDP datagram (:class:`Datagram`), and the JSON
  payloads that travel sealed inside it (:class:`Hello`, :class:`Chat`, ... :class:`Pong`).
"""

from __future__ import annotations

import dataclasses
import enum
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

__all__ = [
    "Ack", "Challenge", "Chat", "Datagram", "ErrorCode", "FrameReader", "Hello", "Kicked", "Leave",
    "Message", "Operation", "Payload", "Ping", "Pong", "ProtocolError", "Refusal", "Refused", "Resend",
    "Response", "RoomChat", "RoomClosed", "State", "SystemEvent", "Welcome", "check_text",
    "decode_message", "decode_payload", "encode_frame",
]

# --- Limits (TCRP.md) ------------------------------------------------------------------------

HEADER_SIZE = 32            #: the fixed message header: 3 one-byte fields + a 29-byte size
SIZE_FIELD_BYTES = 29       #: OperationPayloadSize is 29 bytes wide (a seed-design oddity)
MAX_FRAME = 65536           #: largest TCP frame body; larger (or zero) closes the connection
FRAME_LENGTH_BYTES = 4
MAX_DATAGRAM = 4096         #: largest UDP datagram a receiver accepts
TOKEN_SIZE = 16             #: session token bytes (sent as 32 hex characters in COMPLETE)
TAG_SIZE = 16               #: AES-OCB authentication tag
SEQ_BYTES = 8
MAX_ROOM_NAME = 64          #: characters (§3)
MAX_ROOM_NAME_BYTES = 128   #: UTF-8 bytes (§3): with the limits below, no datagram exceeds MAX_DATAGRAM
MAX_USERNAME = 32           #: characters
MAX_USERNAME_BYTES = 64     #: UTF-8 bytes
MAX_TEXT = 1000             #: characters in one chat message (§4)
MAX_TEXT_BYTES = 3000       #: UTF-8 bytes in one chat message: 1000 Japanese characters fit, 750 emoji
CHALLENGE_SIZE = 16         #: random bytes of a path challenge (§4.2)
MAX_U64 = 2**64 - 1
MAX_RANGES = 16             #: ranges in one ack's ``sack`` or one resend's ``ranges`` (§4.5)
MAGIC = b"TCRP"
VERSION = 2


class Operation(enum.IntEnum):
    CREATE_ROOM = 1
    JOIN_ROOM = 2
    LIST_ROOMS = 3


class State(enum.IntEnum):
    REQUEST = 0   # client -> server
    RESPONSE = 1  # server -> client
    COMPLETE = 2  # server -> client, carries the session token


class ErrorCode(str, enum.Enum):
    """The wire error codes of TCRP.md §3, sent in ``{"status": "error", "code": ...}``."""

    INVALID_REQUEST = "invalid_request"
    INVALID_NAME = "invalid_name"
    INVALID_TEXT = "invalid_text"        # §4.3: a chat the server will not post (in a ``refused`` datagram)
    RATE_LIMITED = "rate_limited"        # §8.3: wait ``retry_after`` seconds (wrong passwords)
    ROOM_EXISTS = "room_exists"
    NO_SUCH_ROOM = "no_such_room"
    WRONG_PASSWORD = "wrong_password"
    USERNAME_TAKEN = "username_taken"
    ROOM_FULL = "room_full"
    SERVER_BUSY = "server_busy"

    def __str__(self) -> str:
        return self.value


class ProtocolError(Exception):
    """Input that breaks the protocol. ``code`` is the wire error code where one applies;
    ``retry_after`` (seconds) says when trying again can succeed (§8.3)."""

    def __init__(self, reason: str, code: ErrorCode | None = ErrorCode.INVALID_REQUEST,
                 retry_after: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.code = code
        self.retry_after = retry_after


def _json_bytes(obj: Mapping[str, Any]) -> bytes:
    # §3: UTF-8 JSON, compact. \uXXXX escapes would triple a Japanese text (and a datagram past
    # 4096 bytes freezes the room); backslashreplace turns a lone surrogate into its valid JSON escape.
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "backslashreplace")


def _json_object(data: bytes, what: str) -> dict[str, Any]:
    try:
        obj = json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise ProtocolError(f"{what} is not UTF-8 JSON ({exc.__class__.__name__})") from None
    if not isinstance(obj, dict):
        raise ProtocolError(f"{what} is a JSON {type(obj).__name__}, not an object")
    return obj


def check_text(text: object) -> str:
    """Return ``text`` if a server may post it as a chat (§4.3), else ProtocolError(INVALID_TEXT).

    1-1000 characters and at most 3000 UTF-8 bytes; no control characters but newline and tab;
    no lone surrogates (a JSON ``\\ud800`` escape makes one, and it cannot be encoded again).
    """
    if not isinstance(text, str):
        raise ProtocolError("a chat text must be a string", ErrorCode.INVALID_TEXT)
    if not 1 <= len(text) <= MAX_TEXT:
        raise ProtocolError(f"a message must be 1-{MAX_TEXT} characters; this one has {len(text)}",
                            ErrorCode.INVALID_TEXT)
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_TEXT_BYTES:
        raise ProtocolError(f"a message must fit in {MAX_TEXT_BYTES} bytes of UTF-8; this one has {size} "
                            f"(about {MAX_TEXT_BYTES // 4} emoji or {MAX_TEXT_BYTES // 3} Japanese characters fit): "
                            "split it in two", ErrorCode.INVALID_TEXT)
    bad = _BAD_TEXT.search(text)
    if bad:
        what = "half of a UTF-16 surrogate pair" if "\ud800" <= bad.group() <= "\udfff" else "the control character"
        raise ProtocolError(f"a message must not contain {what} U+{ord(bad.group()):04X} (at position "
                            f"{bad.start() + 1}); of the control characters only newline and tab are allowed",
                            ErrorCode.INVALID_TEXT)
    return text


_BAD_TEXT = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")  # C0 but \t \n, DEL, C1, surrogates


# --- TCP frames (§2) -------------------------------------------------------------------------

def encode_frame(body: bytes) -> bytes:
    """``length u32 | body``; refuses a body the receiver would refuse."""
    if not 1 <= len(body) <= MAX_FRAME:
        raise ProtocolError(f"a frame body must be 1-{MAX_FRAME} bytes, not {len(body)}")
    return len(body).to_bytes(FRAME_LENGTH_BYTES, "big") + body


class FrameReader:
    """Reassemble frames from a TCP byte stream, whatever its chunking.

    ``feed(data)`` returns the whole frame bodies completed so far (maybe none: "need more").
    A zero or oversize length raises ProtocolError as soon as its 4 bytes arrive, before any of
    the body is buffered, so a peer cannot make us hold more than one maximal frame.
    """

    def __init__(self, max_frame: int = MAX_FRAME):
        self.max_frame = max_frame
        self._buffer = bytearray()
        self._need: int | None = None  # body length of the frame in progress, once known

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as a frame (a partial frame)."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        frames = []
        while True:
            if self._need is None:
                if len(self._buffer) < FRAME_LENGTH_BYTES:
                    return frames
                length = int.from_bytes(self._buffer[:FRAME_LENGTH_BYTES], "big")
                if not 1 <= length <= self.max_frame:
                    self._buffer.clear()
                    raise ProtocolError(f"frame length {length} is outside 1-{self.max_frame}")
                del self._buffer[:FRAME_LENGTH_BYTES]
                self._need = length
            if len(self._buffer) < self._need:
                return frames
            frames.append(bytes(self._buffer[: self._need]))
            del self._buffer[: self._need]
            self._need = None


@dataclass(frozen=True)
class Refusal:
    """A server that will not serve a connection says why in its first frame, instead of a
    ServerHello (§2.1): ``"TCRP" | version u8 = 0 | UTF-8 JSON {"code", "message"}``, then closes.

    It is not encrypted (there are no keys yet), so a client shows it and gives up; it never acts on it.
    """

    code: ErrorCode
    message: str

    def encode(self) -> bytes:
        return MAGIC + b"\x00" + _json_bytes({"code": self.code.value, "message": self.message})

    @classmethod
    def parse(cls, body: bytes) -> Refusal | None:
        """The refusal in a first frame, or None if the frame is something else (a ServerHello)."""
        if body[: len(MAGIC) + 1] != MAGIC + b"\x00":
            return None
        obj = _json_object(body[len(MAGIC) + 1 :], "the refusal")
        try:
            code = ErrorCode(obj.get("code"))
        except ValueError:
            code = ErrorCode.SERVER_BUSY
        return cls(code, str(obj.get("message", "the server refused the connection"))[:500])


# --- Messages (§3) ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Message:
    """One TCRP message: the plaintext of an encrypted TCP frame.

    ``payload`` is the decoded JSON object. Build requests with :meth:`create_room`,
    :meth:`join_room`, :meth:`list_rooms`; replies with :meth:`reply`.
    """

    operation: Operation
    state: State
    room: str = ""
    payload: Mapping[str, Any] = field(default_factory=dict)

    def encode(self) -> bytes:
        room = self.room.encode("utf-8")
        payload = _json_bytes(self.payload)
        if len(room) > 255:
            raise ProtocolError("the room name is longer than 255 UTF-8 bytes", ErrorCode.INVALID_NAME)
        header = bytes([len(room), self.operation, self.state]) + len(payload).to_bytes(SIZE_FIELD_BYTES, "big")
        return header + room + payload

    @classmethod
    def create_room(cls, room: str, username: str, password: str = "") -> Message:
        return cls(Operation.CREATE_ROOM, State.REQUEST, room, {"username": username, "password": password})

    @classmethod
    def join_room(cls, room: str, username: str, password: str = "") -> Message:
        return cls(Operation.JOIN_ROOM, State.REQUEST, room, {"username": username, "password": password})

    @classmethod
    def list_rooms(cls) -> Message:
        return cls(Operation.LIST_ROOMS, State.REQUEST, "", {})

    def credentials(self) -> tuple[str, str]:
        """``(username, password)`` of a CREATE_ROOM or JOIN_ROOM request (a missing password is
        ""); ProtocolError if either is not a string."""
        username, password = self.payload.get("username"), self.payload.get("password", "")
        if not isinstance(username, str) or not isinstance(password, str):
            raise ProtocolError('the payload needs "username" and "password" strings')
        return username, password

    def reply(self, payload: Mapping[str, Any], state: State = State.RESPONSE) -> Message:
        """A reply echoes the request's operation and room name."""
        return Message(self.operation, state, self.room, payload)

    def error(self, code: ErrorCode, message: str, retry_after: float | None = None) -> Message:
        payload: dict[str, Any] = {"status": "error", "code": code.value, "message": message}
        if retry_after is not None:  # §8.3: when a retry can succeed
            payload["retry_after"] = round(retry_after, 3)
        return self.reply(payload)


def decode_message(data: bytes) -> Message:
    """Parse one message; any layout, enum, UTF-8 or JSON fault raises ProtocolError."""
    if len(data) < HEADER_SIZE:
        raise ProtocolError(f"a message needs the {HEADER_SIZE}-byte header; got {len(data)} bytes")
    room_size, op, state = data[0], data[1], data[2]
    payload_size = int.from_bytes(data[3:HEADER_SIZE], "big")
    expected = HEADER_SIZE + room_size + payload_size
    if len(data) != expected:  # also stops a 2**232 size before anything is allocated
        raise ProtocolError(f"the header announces {expected} bytes but the message has {len(data)}")
    try:
        operation, state_ = Operation(op), State(state)
    except ValueError:
        raise ProtocolError(f"unknown operation {op} or state {state}") from None
    try:
        room = data[HEADER_SIZE : HEADER_SIZE + room_size].decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError("the room name is not UTF-8") from None
    payload = _json_object(data[HEADER_SIZE + room_size :], "the payload")
    return Message(operation, state_, room, payload)


# --- Datagrams (§4): the clear outer layout --------------------------------------------------

@dataclass(frozen=True)
class Datagram:
    """``RoomNameSize u8 | TokenSize u8 | RoomName | Token | seq u64 | ciphertext | tag``.

    ``header`` (everything before the ciphertext) is the AEAD's associated data.
    """

    room: str
    token: bytes
    seq: int
    ciphertext: bytes
    tag: bytes

    @staticmethod
    def make_header(room: bytes, token: bytes, seq: int) -> bytes:
        return bytes((len(room), len(token))) + room + token + seq.to_bytes(SEQ_BYTES, "big")

    @property
    def header(self) -> bytes:
        return self.make_header(self.room.encode("utf-8"), self.token, self.seq)

    def encode(self) -> bytes:
        return self.header + self.ciphertext + self.tag

    @classmethod
    def decode(cls, data: bytes) -> Datagram:
        if len(data) > MAX_DATAGRAM:
            raise ProtocolError(f"datagram of {len(data)} bytes is over {MAX_DATAGRAM}")
        if len(data) < 2:
            raise ProtocolError("datagram shorter than its two size bytes")
        room_size, token_size = data[0], data[1]
        if token_size != TOKEN_SIZE:
            raise ProtocolError(f"TokenSize is {token_size}, not {TOKEN_SIZE}")
        seq_at = 2 + room_size + TOKEN_SIZE
        if len(data) < seq_at + SEQ_BYTES + TAG_SIZE:
            raise ProtocolError(f"datagram of {len(data)} bytes is truncated")
        try:
            room = data[2 : 2 + room_size].decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolError("the room name is not UTF-8") from None
        body = data[seq_at + SEQ_BYTES :]
        return cls(room, data[2 + room_size : seq_at], int.from_bytes(data[seq_at : seq_at + SEQ_BYTES], "big"),
                   body[:-TAG_SIZE], body[-TAG_SIZE:])


# --- Datagram payloads (§4): the sealed JSON objects -----------------------------------------

def _wire(name: str) -> dict[str, str]:
    """Field metadata: the JSON key when it differs from the Python name (``from`` is a keyword)."""
    return {"wire": name}


_OPTIONAL = {"optional": True}   # field metadata: left out of the JSON when it has its default (§4.5)

Ranges = tuple[tuple[int, int], ...]   #: inclusive (first, last) pairs, ascending, apart (§4.5)


@dataclass(frozen=True)
class Payload:
    """Base of the datagram payloads. ``TYPE`` is the JSON ``type``; fields follow in order."""

    TYPE: ClassVar[str] = ""
    FROM_SERVER: ClassVar[bool] = False

    def to_json(self) -> dict[str, Any]:
        obj: dict[str, Any] = {"type": self.TYPE}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.metadata.get("optional") and value == f.default:
                continue   # an extension a plain-spec peer never sees unless it is used (§4.5)
            obj[f.metadata.get("wire", f.name)] = [list(r) for r in value] if isinstance(value, tuple) else value
        return obj

    def encode(self) -> bytes:
        return _json_bytes(self.to_json())


@dataclass(frozen=True)
class Hello(Payload):
    TYPE = "hello"


@dataclass(frozen=True)
class Chat(Payload):
    """C->S: a message for the room; ``id`` is the client's counter for de-duplication."""
    TYPE = "chat"
    id: int
    text: str


@dataclass(frozen=True)
class Ping(Payload):
    TYPE = "ping"


@dataclass(frozen=True)
class Resend(Payload):
    """C->S: send me room messages ``first``..``last`` again (inclusive). ``ranges`` (§4.5), when
    given, lists every missing range, the first being ``first``..``last``; a server that knows it
    answers them all, one that does not answers the first."""
    TYPE = "resend"
    first: int = field(metadata=_wire("from"))
    last: int = field(metadata=_wire("to"))
    ranges: Ranges = field(default=(), metadata=_OPTIONAL)


@dataclass(frozen=True)
class Leave(Payload):
    TYPE = "leave"


@dataclass(frozen=True)
class Response(Payload):
    """C->S: the ``data`` of a ``challenge``, echoed from the address it reached (§4.2)."""
    TYPE = "response"
    data: str


@dataclass(frozen=True)
class Welcome(Payload):
    TYPE, FROM_SERVER = "welcome", True
    seq: int


@dataclass(frozen=True)
class Ack(Payload):
    """S->C: chat ``id`` became room message ``seq`` (or, ``seq`` 0, is held until an earlier id
    comes, §7). ``upto`` and ``sack`` (§4.5): every id up to ``upto`` is posted or refused, and the
    ``sack`` ranges above it are held, so one ack repairs the loss of earlier ones."""
    TYPE, FROM_SERVER = "ack", True
    id: int
    seq: int
    upto: int = field(default=0, metadata=_OPTIONAL)
    sack: Ranges = field(default=(), metadata=_OPTIONAL)


@dataclass(frozen=True)
class RoomChat(Payload):
    """S->C: room message ``seq`` from ``sender``."""
    TYPE, FROM_SERVER = "chat", True
    seq: int
    sender: str = field(metadata=_wire("from"))
    text: str
    ts: float


@dataclass(frozen=True)
class SystemEvent(Payload):
    """S->C: a room event (``joined``, ``left``, ``timeout``), numbered like chat messages."""
    TYPE, FROM_SERVER = "system", True
    seq: int
    event: str
    user: str
    text: str


@dataclass(frozen=True)
class RoomClosed(Payload):
    TYPE, FROM_SERVER = "room_closed", True
    reason: str


@dataclass(frozen=True)
class Kicked(Payload):
    TYPE, FROM_SERVER = "kicked", True
    reason: str


@dataclass(frozen=True)
class Challenge(Payload):
    """S->C: prove you receive at this address by echoing ``data`` (hex) in a ``response`` (§4.2)."""
    TYPE, FROM_SERVER = "challenge", True
    data: str


@dataclass(frozen=True)
class Refused(Payload):
    """S->C: chat ``id`` will never be posted (``code``, a reason for the person): stop sending it (§4.3)."""
    TYPE, FROM_SERVER = "refused", True
    id: int
    code: str
    message: str


@dataclass(frozen=True)
class Pong(Payload):
    """S->C: answer to ping. ``seq`` (the room's last seq) is an optional tcrp_lab extension that
    lets a client notice it lost the room's latest messages; a plain-spec server omits it."""
    TYPE, FROM_SERVER = "pong", True
    seq: int = 0


def _payload_types(from_server: bool) -> dict[str, type[Payload]]:
    return {cls.TYPE: cls for cls in Payload.__subclasses__() if cls.FROM_SERVER == from_server}


_CLIENT_TYPES = _payload_types(from_server=False)
_SERVER_TYPES = _payload_types(from_server=True)
SYSTEM_EVENTS = ("joined", "left", "timeout")
CLOSE_REASONS = ("host_left", "host_timeout", "server_shutdown")


def _check_field(cls: type[Payload], name: str, kind: str, value: Any) -> Any:
    if kind == "int":
        if type(value) is not int or not 0 <= value <= MAX_U64:
            raise ProtocolError(f"{cls.TYPE}.{name} must be an integer in 0..2**64-1")
    elif kind == "float":
        if type(value) not in (int, float) or value != value:
            raise ProtocolError(f"{cls.TYPE}.{name} must be a number")
        value = float(value)
    elif kind == "Ranges":
        value = _check_ranges(f"{cls.TYPE}.{name}", value)
    elif not isinstance(value, str):
        raise ProtocolError(f"{cls.TYPE}.{name} must be a string")
    return value


def _check_ranges(where: str, value: Any) -> Ranges:
    """At most MAX_RANGES ``[first, last]`` pairs of seq/id numbers, ascending and apart (§4.5)."""
    if not isinstance(value, list) or len(value) > MAX_RANGES:
        raise ProtocolError(f"{where} must be a list of at most {MAX_RANGES} [first, last] pairs")
    ranges, after = [], -1
    for pair in value:
        if not (isinstance(pair, list) and len(pair) == 2
                and all(type(n) is int and 0 <= n <= MAX_U64 for n in pair)):
            raise ProtocolError(f"{where} holds something other than a [first, last] pair of numbers")
        first, last = pair
        if not after < first <= last:
            raise ProtocolError(f"{where} must be ascending, each first <= last, with gaps between pairs")
        ranges.append((first, last))
        after = last + 1
    return tuple(ranges)


def decode_payload(plaintext: bytes, *, from_server: bool) -> Payload:
    """Parse a datagram's plaintext. The direction decides the meaning of ``chat``.

    Unknown extra fields are ignored (room to grow); missing or mistyped ones are errors. A chat's
    text is not judged here: the server answers a text it will not post with ``refused`` (§4.3).
    """
    obj = _json_object(plaintext, "the datagram payload")
    kind = obj.get("type")
    cls = (_SERVER_TYPES if from_server else _CLIENT_TYPES).get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ProtocolError(f"unknown datagram type {str(obj.get('type'))[:40]!r}")
    values = {}
    for f in dataclasses.fields(cls):
        key = f.metadata.get("wire", f.name)
        if key in obj:
            values[f.name] = _check_field(cls, key, str(f.type), obj[key])
        elif f.default is dataclasses.MISSING:
            raise ProtocolError(f"{cls.TYPE} lacks the field {key!r}")
    if cls is Resend and values["first"] > values["last"]:
        raise ProtocolError("resend.from is after resend.to")
    if cls is Resend and values.get("ranges") and values["ranges"][0] != (values["first"], values["last"]):
        raise ProtocolError("resend.ranges must start with from..to")
    return cls(**values)


def iter_payload_types() -> Iterator[type[Payload]]:
    """Every payload class, client types first (for docs and property tests)."""
    yield from _CLIENT_TYPES.values()
    yield from _SERVER_TYPES.values()
