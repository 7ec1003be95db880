"""The TCRP codec: every vector byte for byte, and properties over any input."""

from __future__ import annotations

import dataclasses
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tcrp_lab import protocol
from tcrp_lab.protocol import (
    MAX_DATAGRAM, MAX_FRAME, Ack, Chat, Datagram, ErrorCode, FrameReader, Hello, Message, Operation,
    ProtocolError, Resend, RoomChat, State, SystemEvent, check_name, decode_message, decode_payload,
    encode_frame,
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


@pytest.mark.parametrize("index", range(10))
def test_every_invalid_message_vector_is_rejected(vectors, index):
    v = vectors["invalid_messages"][index]
    with pytest.raises(ProtocolError) as err:
        decode_message(bytes.fromhex(v["hex"]))
    assert err.value.code is ErrorCode.INVALID_REQUEST, v["note"]
    assert err.value.reason


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


# --- names -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["", " lab", "lab ", "a\nb", "a\x00", "x" * 65, "\x85", 3])
def test_bad_room_names_are_invalid_name(name):
    with pytest.raises(ProtocolError) as err:
        check_name(name, "room")
    assert err.value.code is ErrorCode.INVALID_NAME


def test_name_limits_differ_for_rooms_and_users():
    assert check_name("x" * 64, "room") == "x" * 64
    assert check_name("日本語 の 部屋", "room")
    with pytest.raises(ProtocolError):
        check_name("x" * 33, "username")


# --- payloads --------------------------------------------------------------------------------


@pytest.mark.parametrize("raw, match", [
    (b'{"type":"chat","id":1}', "lacks the field 'text'"),
    (b'{"type":"chat","id":"1","text":"x"}', "must be an integer"),
    (b'{"type":"chat","id":true,"text":"x"}', "must be an integer"),
    (b'{"type":"chat","id":-1,"text":"x"}', "must be an integer"),
    (b'{"type":"chat","id":1,"text":""}', "1-1000 characters"),
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


payload_values = {
    "int": st.integers(0, 2**64 - 1), "float": st.floats(allow_nan=False, allow_infinity=False),
    "str": st.text(min_size=1, max_size=50),
}


@st.composite
def payloads(draw):
    cls = draw(st.sampled_from(list(protocol.iter_payload_types())))
    values = {f.name: draw(payload_values[f.type]) for f in dataclasses.fields(cls)}
    if cls is Resend:
        values["first"], values["last"] = sorted((values["first"], values["last"]))
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
    assert client == {"hello", "chat", "ping", "resend", "leave"}
    assert server == {"welcome", "ack", "chat", "system", "room_closed", "kicked", "pong"}
    assert Hello().encode() == b'{"type":"hello"}'
    assert Ack(id=1, seq=2).encode() == b'{"type":"ack","id":1,"seq":2}'
    assert SystemEvent(seq=1, event="joined", user="bob", text="bob joined").to_json()["event"] == "joined"
