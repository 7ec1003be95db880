"""The TCRP codec: every vector byte for byte, and properties over any input."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tcrp_lab import protocol
from tcrp_lab.protocol import (
    MAX_DATAGRAM, MAX_FRAME, MAX_RANGES, MAX_ROOM_NAME, MAX_ROOM_NAME_BYTES, MAX_TEXT, MAX_TEXT_BYTES, MAX_USERNAME,
    MAX_USERNAME_BYTES, SEQ_BYTES, TAG_SIZE, TOKEN_SIZE, Ack, Challenge, Chat, Datagram, ErrorCode, FrameReader,
    Hello, Kicked, Message, Operation, Pong, ProtocolError, Refusal, Refused, Resend, RoomChat, RoomClosed, State,
    SystemEvent, Welcome, check_text, decode_message, decode_payload, encode_frame,
)

EXAMPLES = settings(max_examples=400, deadline=None)

# --- vectors ---------------------------------------------------------------------------------


def test_every_message_vector_encodes_byte_for_byte(vectors):
    for v in vectors["messages"]:
        msg = Message(Operation(v["operation"]), State(v["state"]), v["room"], v["payload"])
        assert msg.encode().hex() == v["hex"], v["note"]


def test_every_message_vector_decodes(vectors):
    for v in vectors["messages"]:
        msg = decode_message(bytes.fromhex(v["hex"]))
        assert (msg.operation, msg.state, msg.room, dict(msg.payload)) == (
            v["operation"], v["state"], v["room"], v["payload"]), v["note"]


def test_every_invalid_message_vector_is_rejected(vectors):
    assert vectors["invalid_messages"]
    for v in vectors["invalid_messages"]:
        with pytest.raises(ProtocolError) as err:
            decode_message(bytes.fromhex(v["hex"]))
        assert err.value.code is ErrorCode.INVALID_REQUEST, v["note"]
        assert err.value.reason, v["note"]


def test_request_builders_match_the_vectors(vectors):
    hexes = {v["note"]: v["hex"] for v in vectors["messages"]}
    assert Message.create_room("lab", "alice", "s3cret").encode().hex() == hexes["create request"]
    assert Message.join_room("lab", "bob", "s3cret").encode().hex() == hexes["join request"]
    assert Message.list_rooms().encode().hex() == hexes["list request"]
    request = Message.join_room("lab", "bob", "x")
    error = request.error(ErrorCode.WRONG_PASSWORD, "wrong password")
    assert error.encode().hex() == hexes["error response"]


def test_credentials_of_a_request():
    assert Message.create_room("lab", "alice", "pw").credentials() == ("alice", "pw")
    assert Message(Operation.JOIN_ROOM, State.REQUEST, "lab", {"username": "bob"}).credentials() == ("bob", "")
    for payload in ({}, {"username": 7}, {"username": "bob", "password": None}):
        with pytest.raises(ProtocolError, match='"username" and "password" strings'):
            Message(Operation.JOIN_ROOM, State.REQUEST, "lab", payload).credentials()


def test_datagram_vectors_have_the_documented_outer_layout(vectors):
    for v in vectors["datagrams"]:
        raw = bytes.fromhex(v["datagram_hex"])
        d = Datagram.decode(raw)
        assert (d.room, d.token.hex(), d.seq) == (v["room"], v["token_hex"], v["seq"])
        assert d.encode() == raw
        assert len(d.ciphertext) == len(v["plaintext"].encode())
        assert raw.startswith(d.header) and len(d.header) == 2 + 3 + 16 + 8


def test_payload_vectors_round_trip(vectors):
    for v in vectors["datagrams"]:
        from_server = v["key"] == "udp_s2c"
        payload = decode_payload(v["plaintext"].encode(), from_server=from_server)
        assert payload.encode().decode() == v["plaintext"]
    chat = decode_payload(b'{"type":"chat","seq":1,"from":"alice","text":"hello, room","ts":1764323400.0}',
                          from_server=True)
    assert chat == RoomChat(seq=1, sender="alice", text="hello, room", ts=1764323400.0)


# --- frames ----------------------------------------------------------------------------------


def test_frame_reader_reassembles_any_chunking():
    stream = encode_frame(b"abc") + encode_frame(b"x" * 1000) + encode_frame(b"z")
    for size in (1, 2, 3, 5, 7, 4096):
        reader = FrameReader()
        frames = []
        for i in range(0, len(stream), size):
            frames += reader.feed(stream[i : i + size])
        assert frames == [b"abc", b"x" * 1000, b"z"]
        assert reader.buffered == 0


def test_frame_reader_says_need_more_for_a_partial_frame():
    reader = FrameReader()
    assert reader.feed(encode_frame(b"hello")[:-1]) == []
    assert reader.buffered == 4
    assert reader.feed(b"o") == [b"hello"]


@pytest.mark.parametrize("length", [0, MAX_FRAME + 1, 2**32 - 1])
def test_frame_reader_rejects_a_bad_length_before_buffering_the_body(length):
    reader = FrameReader()
    with pytest.raises(ProtocolError, match="frame length"):
        reader.feed(length.to_bytes(4, "big") + b"\x00" * 10)
    assert reader.buffered == 0


def test_encode_frame_refuses_what_a_receiver_would_refuse():
    with pytest.raises(ProtocolError):
        encode_frame(b"")
    with pytest.raises(ProtocolError):
        encode_frame(b"x" * (MAX_FRAME + 1))


@given(st.lists(st.binary(min_size=1, max_size=300), max_size=8), st.data())
@EXAMPLES
def test_frames_fed_in_any_chunks_decode_the_same_as_whole(bodies, data):
    stream = b"".join(encode_frame(b) for b in bodies)
    whole = FrameReader().feed(stream)
    reader, got, i = FrameReader(), [], 0
    while i < len(stream):
        n = data.draw(st.integers(1, 64))
        got += reader.feed(stream[i : i + n])
        i += n
    assert got == whole == bodies


# --- payloads --------------------------------------------------------------------------------


@pytest.mark.parametrize("raw, match", [
    (b'{"type":"chat","id":1}', "lacks the field 'text'"),
    (b'{"type":"chat","id":"1","text":"x"}', "must be an integer"),
    (b'{"type":"chat","id":true,"text":"x"}', "must be an integer"),
    (b'{"type":"chat","id":-1,"text":"x"}', "must be an integer"),
    (b'{"type":"chat","id":1,"text":7}', "must be a string"),
    (b'{"type":"resend","from":5,"to":4}', "after"),
    (b'{"type":"welcome","seq":1}', "unknown datagram type"),  # a server type sent by a client
    (b'{"type":null}', "unknown datagram type"),
    (b'[1]', "not an object"),
    (b'\xff', "not UTF-8 JSON"),
    (b'[' * 100000, "not UTF-8 JSON"),  # deep nesting: RecursionError becomes a ProtocolError
])
def test_bad_client_payloads_are_rejected_with_a_reason(raw, match):
    with pytest.raises(ProtocolError, match=match):
        decode_payload(raw, from_server=False)


def test_chat_means_different_things_in_each_direction():
    assert decode_payload(b'{"type":"chat","id":7,"text":"hi"}', from_server=False) == Chat(id=7, text="hi")
    with pytest.raises(ProtocolError):
        decode_payload(b'{"type":"chat","id":7,"text":"hi"}', from_server=True)


def test_resend_uses_from_and_to_on_the_wire():
    assert json.loads(Resend(first=3, last=9).encode()) == {"type": "resend", "from": 3, "to": 9}


def test_the_selective_extensions_are_left_out_unless_used_so_a_plain_spec_peer_sees_the_old_payloads():
    assert Ack(id=1, seq=2).encode() == b'{"type":"ack","id":1,"seq":2}'
    assert json.loads(Ack(id=5, seq=0, upto=3, sack=((5, 6),)).encode()) == {
        "type": "ack", "id": 5, "seq": 0, "upto": 3, "sack": [[5, 6]]}


@pytest.mark.parametrize("ranges", [
    "[[5,9],[2,3]]", "[[2,3],[4,9]]", "[[3,2]]", "[[2,true]]", "[[2]]", "{}", "[[1,1]]",
    "[" + ",".join(f"[{2 * i + 2},{2 * i + 2}]" for i in range(17)) + "]",
])
def test_bad_resend_ranges_are_refused(ranges):
    with pytest.raises(ProtocolError):
        decode_payload(b'{"type":"resend","from":2,"to":2,"ranges":' + ranges.encode() + b"}", from_server=False)


def _ranges(bounds: list[int]) -> tuple[tuple[int, int], ...]:
    """Sorted distinct numbers as ascending pairs with a gap between each (§4.5)."""
    points = sorted(set(bounds))[: 2 * protocol.MAX_RANGES]
    pairs = tuple(zip(points[0::2], points[1::2]))
    return tuple(p for i, p in enumerate(pairs) if i == 0 or p[0] > pairs[i - 1][1] + 1)


payload_values = {
    "int": st.integers(0, 2**64 - 1), "float": st.floats(allow_nan=False, allow_infinity=False),
    "str": st.text(min_size=1, max_size=50),
    "Ranges": st.lists(st.integers(0, 2**64 - 1), max_size=40).map(_ranges),
}


@st.composite
def payloads(draw):
    cls = draw(st.sampled_from(list(protocol.iter_payload_types())))
    values = {f.name: draw(payload_values[f.type]) for f in dataclasses.fields(cls)}
    if cls is Resend:
        values["first"], values["last"] = values["ranges"][0] if values["ranges"] else sorted(
            (values["first"], values["last"]))
    return cls(**values)


@given(payloads())
@EXAMPLES
def test_every_payload_round_trips(payload):
    assert decode_payload(payload.encode(), from_server=payload.FROM_SERVER) == payload


names = st.text(st.characters(blacklist_categories=["Cs"]), max_size=40)
json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=10),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                           max_leaves=10)


@given(st.sampled_from(Operation), st.sampled_from(State), names,
       st.dictionaries(st.text(max_size=10), json_values, max_size=4))
@EXAMPLES
def test_every_message_round_trips(operation, state, room, payload):
    msg = Message(operation, state, room, payload)
    assert decode_message(msg.encode()) == msg


@given(names, st.binary(min_size=16, max_size=16), st.integers(0, 2**64 - 1), st.binary(max_size=200),
       st.binary(min_size=16, max_size=16))
@EXAMPLES
def test_every_datagram_round_trips(room, token, seq, ciphertext, tag):
    d = Datagram(room, token, seq, ciphertext, tag)
    assert Datagram.decode(d.encode()) == d


# --- any bytes: a value or ProtocolError, nothing else ----------------------------------------


@given(st.binary(max_size=600))
@EXAMPLES
def test_any_bytes_to_decode_message_give_a_message_or_protocol_error(data):
    try:
        assert isinstance(decode_message(data), Message)
    except ProtocolError:
        pass


@given(st.binary(max_size=200))
@EXAMPLES
def test_any_header_then_json_gives_a_message_or_protocol_error(tail):
    # Random bytes rarely pass the size check, so also try well-sized messages with junk inside.
    data = bytes([0, 1, 0]) + len(tail).to_bytes(29, "big") + tail
    try:
        decode_message(data)
    except ProtocolError:
        pass


@given(st.binary(max_size=MAX_DATAGRAM + 50))
@EXAMPLES
def test_any_bytes_to_datagram_decode_give_a_datagram_or_protocol_error(data):
    try:
        assert isinstance(Datagram.decode(data), Datagram)
    except ProtocolError:
        pass


@given(st.binary(max_size=300), st.booleans())
@EXAMPLES
def test_any_bytes_to_decode_payload_give_a_payload_or_protocol_error(data, from_server):
    try:
        decode_payload(data, from_server=from_server)
    except ProtocolError:
        pass


@given(st.dictionaries(st.sampled_from(["type", "id", "text", "seq", "from", "to", "reason", "ts"]),
                       json_values | st.sampled_from(["chat", "hello", "resend", "ack", "system"]), max_size=5),
       st.booleans())
@EXAMPLES
def test_any_json_object_gives_a_payload_or_protocol_error(obj, from_server):
    try:
        decode_payload(json.dumps(obj).encode(), from_server=from_server)
    except ProtocolError:
        pass


@given(st.lists(st.binary(max_size=40), max_size=10))
@EXAMPLES
def test_any_stream_to_frame_reader_gives_frames_or_protocol_error(chunks):
    reader = FrameReader()
    try:
        for chunk in chunks:
            for frame in reader.feed(chunk):
                assert 1 <= len(frame) <= MAX_FRAME
    except ProtocolError:
        pass


def test_payload_types_cover_the_spec_table():
    client = {c.TYPE for c in protocol.iter_payload_types() if not c.FROM_SERVER}
    server = {c.TYPE for c in protocol.iter_payload_types() if c.FROM_SERVER}
    assert client == {"hello", "chat", "ping", "resend", "leave", "response"}
    assert server == {"welcome", "ack", "chat", "system", "room_closed", "kicked", "pong", "challenge", "refused"}
    assert Hello().encode() == b'{"type":"hello"}'
    assert Ack(id=1, seq=2).encode() == b'{"type":"ack","id":1,"seq":2}'
    assert SystemEvent(seq=1, event="joined", user="bob", text="bob joined").to_json()["event"] == "joined"


# --- UTF-8 and byte limits (TCRP.md §3, §4.3) ----------------------------------------------------

def test_json_is_utf8_so_a_japanese_text_costs_its_utf8_bytes():
    text = "こんにちは" * 200
    encoded = Chat(id=1, text=text).encode()
    assert text.encode("utf-8") in encoded and b"\\u" not in encoded
    assert len(encoded) == len(text.encode("utf-8")) + len(b'{"type":"chat","id":1,"text":""}')


def test_a_lone_surrogate_is_sent_as_its_json_escape_never_a_crash():
    encoded = Message.list_rooms().reply({"message": "bad \ud800 name"}).encode()
    assert b"\\ud800" in encoded and decode_message(encoded).payload["message"] == "bad \ud800 name"


@pytest.mark.parametrize("text, why", [
    ("", "1-1000 characters"), ("x" * 1001, "has 1001"), ("😀" * 751, "3004"), ("a\x1b[2J", "U+001B"),
    ("\x07", "U+0007"), ("\x7f", "U+007F"), ("\x9b", "U+009B"), ("bad \ud800", "U+D800"), (7, "a string"),
])
def test_check_text_refuses_what_no_datagram_should_carry(text, why):
    with pytest.raises(ProtocolError, match=re.escape(why)) as err:
        check_text(text)
    assert err.value.code is ErrorCode.INVALID_TEXT


@pytest.mark.parametrize("text", ["x" * 1000, "あ" * 1000, "😀" * 750, "a\tb\nc", "👨\u200d👩\u200d👧", "\u202eabc"])
def test_check_text_passes_honest_text_at_the_limits(text):
    assert check_text(text) == text


# The characters that cost the most bytes on the wire: JSON escapes (2 bytes for 1), 4-byte UTF-8.
costly = st.sampled_from(['"', "\\", "\n", "\t", "😀", "𠀋", "あ", "é", "a", "\u2028"])


def within(text: str, chars: int, size: int) -> bool:
    return 1 <= len(text) <= chars and len(text.encode("utf-8")) <= size


@given(room=st.text(costly, min_size=1, max_size=MAX_ROOM_NAME), user=st.text(costly, min_size=1, max_size=MAX_USERNAME),
       text=st.text(costly, min_size=1, max_size=MAX_TEXT) | st.text(min_size=1, max_size=MAX_TEXT))
@settings(max_examples=300, deadline=None)
def test_no_datagram_either_side_sends_exceeds_4096_bytes_whatever_the_characters(room, user, text):
    if not (within(room, MAX_ROOM_NAME, MAX_ROOM_NAME_BYTES) and within(user, MAX_USERNAME, MAX_USERNAME_BYTES)):
        return
    try:
        check_text(text)
    except ProtocolError:
        return
    outer = 2 + len(room.encode("utf-8")) + TOKEN_SIZE + SEQ_BYTES + TAG_SIZE
    big = 2**64 - 1
    many = tuple((big - 2 * i, big - 2 * i) for i in range(MAX_RANGES))[::-1]   # the longest ranges (§4.5)
    for payload in (Chat(id=big, text=text), RoomChat(seq=big, sender=user, text=text, ts=1e15 + 0.123),
                    SystemEvent(seq=big, event="timeout", user=user, text=f"{user} created the room"),
                    Refused(id=big, code="invalid_text", message="x" * 400), Welcome(seq=big),
                    Ack(id=big, seq=big, upto=big, sack=many), Resend(*many[0], ranges=many),
                    Pong(seq=big), Challenge(data="ab" * 16), RoomClosed(reason="server_shutdown"),
                    Kicked(reason="timeout")):
        assert outer + len(payload.encode()) <= MAX_DATAGRAM, type(payload).__name__


def test_the_worst_text_the_limits_allow_still_fits_one_datagram():
    text = '"' * 334 + "😀" * 666      # 998 bytes of UTF-8 ... 3,332 bytes of JSON
    assert check_text(text) and len(text.encode()) == 334 + 4 * 666 <= MAX_TEXT_BYTES
    room, user = "😀" * 32, '"' * MAX_USERNAME
    outer = 2 + len(room.encode()) + TOKEN_SIZE + SEQ_BYTES + TAG_SIZE
    assert outer + len(RoomChat(seq=2**64 - 1, sender=user, text=text, ts=1e15).encode()) <= MAX_DATAGRAM


# --- refusals before the handshake (§2.1) --------------------------------------------------------

def test_every_refusal_vector_round_trips(vectors):
    for v in vectors["refusals"]:
        refusal = Refusal(ErrorCode(v["code"]), v["message"])
        assert refusal.encode().hex() == v["hex"], v["note"]
        assert Refusal.parse(bytes.fromhex(v["hex"])) == refusal


def test_a_server_hello_is_not_a_refusal_and_a_broken_refusal_is_a_protocol_error(vectors):
    assert Refusal.parse(b"TCRP\x02" + bytes(16) + b"key") is None
    with pytest.raises(ProtocolError):
        Refusal.parse(b"TCRP\x00not json")
    assert Refusal.parse(b'TCRP\x00{"code":"nonsense","message":7}') == Refusal(ErrorCode.SERVER_BUSY, "7")
