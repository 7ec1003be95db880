"""Packet traces: what a reader sees for every packet kind, live and from the conformance vectors.

Everything is rendered to ``Console(file=StringIO(), width=120, force_terminal=False)`` and the
assertions are on the text a reader would see: field names, byte ranges, decoded values.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from rich.console import Console

from tcrp_lab import ChatClient, ChatServer
from tcrp_lab.crypto import ServerHello, ServerKey, SessionKeys
from tcrp_lab.protocol import HEADER_SIZE, Chat, Message, Operation, RoomChat, State, encode_frame
from tcrp_lab.trace import LiveLog, PacketEvent, Trace, explain, record, render_line, visible
from tests.conftest import wait_for

ROOT = Path(__file__).resolve().parents[1]


def render(renderable: object, width: int = 120) -> str:
    console = Console(file=io.StringIO(), width=width, force_terminal=False)
    console.print(renderable)
    return console.file.getvalue()  # type: ignore[attr-defined]


def assert_row(text: str, span: str, name: str, value: str = "") -> None:
    """A field-table row: byte range, field name, then (the start of) the decoded value."""
    pattern = rf"^\s*{re.escape(span)}\s+{re.escape(name)}\s+{re.escape(value)}"
    assert re.search(pattern, text, re.M), f"no row {span!r} {name!r} {value!r} in:\n{text}"


@pytest.fixture(scope="module")
def hs(vectors):
    return vectors["handshake"]


@pytest.fixture(scope="module")
def keys(hs):
    return SessionKeys(**{name: bytes.fromhex(value) for name, value in hs["keys"].items()})


# --- explain: the vectors of tests/tcrp2.json ---------------------------------------------------


def test_every_message_vector_is_explained_field_by_field(vectors):
    for v in vectors["messages"]:
        raw = bytes.fromhex(v["hex"])
        room = len(v["room"].encode("utf-8"))
        payload = len(raw) - HEADER_SIZE - room
        text = render(explain(raw, kind="message"))
        assert_row(text, "0–0", "RoomNameSize", str(room))
        assert_row(text, "1–1", "Operation", f"{v['operation']} (")
        assert_row(text, "2–2", "State", f"{v['state']} (")
        assert_row(text, "3–31", "OperationPayloadSize", str(payload))
        if room:
            assert_row(text, f"32–{31 + room}", "room", repr(v["room"]))
        else:
            assert_row(text, "32 (0 B)", "room", "''")
        assert_row(text, f"{32 + room}–{len(raw) - 1}", "payload", "{")
        assert "REJECTED" not in text


def test_the_operation_and_state_are_named(vectors):
    complete = next(v for v in vectors["messages"] if v["note"] == "complete")
    text = render(explain(bytes.fromhex(complete["hex"]), kind="message"))
    assert_row(text, "1–1", "Operation", "1 (CREATE_ROOM)")
    assert_row(text, "2–2", "State", "2 (COMPLETE)")
    assert complete["payload"]["token"] in text


def test_every_invalid_message_vector_is_shown_rejected_with_its_reason(vectors):
    for v in vectors["invalid_messages"]:
        result = explain(bytes.fromhex(v["hex"]), kind="message")
        text = render(result)
        assert result.rejected, v["note"]
        assert re.search(r"REJECTED: \S", text), v["note"]


def test_server_hello_vector(hs):
    body = bytes.fromhex(hs["server_hello_body"])
    text = render(explain(encode_frame(body), kind="ServerHello"))
    assert text.startswith("ServerHello · server → client · tcp · ")
    assert_row(text, "0–3", "length", str(len(body)))
    assert_row(text, "4–7", "magic", "'TCRP'")
    assert_row(text, "8–8", "version", "2")
    assert_row(text, "9–24", "server_nonce", hs["server_nonce_hex"])
    assert_row(text, f"25–{len(body) + 3}", "public key DER", "RSA-2048 public key")
    assert_row(text, "SHA-256(DER)", "fingerprint", hs["fingerprint"])


def test_client_key_exchange_vector_with_and_without_the_keys(hs, keys):
    frame = encode_frame(bytes.fromhex(hs["client_key_exchange_body"]))
    text = render(explain(frame, kind="ClientKeyExchange"))
    assert_row(text, "0–3", "length", "256")
    assert_row(text, "4–259", "RSA-OAEP(premaster)", "256-byte block")
    assert "not known here" in text and "tcp_c2s" not in text

    hello = ServerHello.decode(bytes.fromhex(hs["server_hello_body"]))
    event = PacketEvent(time=0.0, side="client", direction="out", transport="tcp", peer=("127.0.0.1", 9001),
                        kind="ClientKeyExchange", raw=frame, keys=keys, hello=hello)
    text = render(explain(event))
    assert_row(text, "4–259", "RSA-OAEP(premaster)")
    assert_row(text, "derived", "HKDF salt", f"server_nonce {hs['server_nonce_hex']}")
    for name, value in hs["keys"].items():
        assert_row(text, "derived", name, value)


def test_the_version_3_server_hello_vector_is_laid_out_byte_by_byte(vectors3):
    hs3 = vectors3["handshake"]
    body = bytes.fromhex(hs3["server_hello_body"])
    text = render(explain(encode_frame(body), kind="ServerHello"))
    assert_row(text, "8–8", "version", "3 (ephemeral X25519, forward secret)")
    assert_row(text, "9–24", "server_nonce", hs3["server_nonce_hex"])
    assert_row(text, "25–56", "server_share", hs3["server_share_hex"])
    assert_row(text, "57–58", "sig_len", "256 (u16)")
    assert_row(text, "59–314", "signature", "RSA-PSS")
    assert_row(text, f"315–{len(body) + 3}", "public key DER", "RSA-2048 public key")
    assert "then the signature on the share" in " ".join(text.split())


def test_the_version_3_client_key_exchange_vector_with_and_without_the_keys(vectors3):
    hs3 = vectors3["handshake"]
    frame = encode_frame(bytes.fromhex(hs3["client_key_exchange_body"]))
    text = render(explain(frame, kind="ClientKeyExchange"))
    assert_row(text, "4–35", "client_share", hs3["client_key_exchange_body"])
    assert "not known here" in text and "tcp_c2s" not in text
    hello = ServerHello.decode(bytes.fromhex(hs3["server_hello_body"]))
    keys = SessionKeys(*(bytes.fromhex(v) for v in hs3["keys"].values()))
    event = PacketEvent(time=0.0, side="server", direction="in", transport="tcp", peer=("127.0.0.1", 9001),
                        kind="ClientKeyExchange", raw=frame, keys=keys, hello=hello)
    text = render(explain(event))
    assert_row(text, "derived", "HKDF info", "'tcrp/3 session' | SHA-256(ServerHello | this blob)")
    assert_row(text, "derived", "HKDF IKM", "X25519(own ephemeral private key")
    for name, value in hs3["keys"].items():
        assert_row(text, "derived", name, value)


def test_tcp_frame_vectors_are_opened_and_their_message_explained(vectors, keys):
    for v in vectors["tcp_frames"]:
        frame = bytes.fromhex(v["frame_hex"])
        plaintext = bytes.fromhex(v["plaintext_hex"])
        direction = v["key"].removeprefix("tcp_")
        result = explain(frame, kind="frame", keys=keys, direction=direction, seq=v["seq"])
        text = render(result)
        assert not result.rejected
        assert_row(text, "0–3", "length", str(len(frame) - 4))
        assert_row(text, f"4–{len(frame) - 17}", "ciphertext")
        assert_row(text, f"{len(frame) - 16}–{len(frame) - 1}", "tag", frame[-16:].hex())
        assert_row(text, "implicit", "seq (implicit)", f"{v['seq']}: not sent")
        assert f"decrypted with {v['key']}, seq {v['seq']}" in text
        # the decrypted message, laid out in its own offsets
        assert_row(text, "3–31", "OperationPayloadSize", str(len(plaintext) - HEADER_SIZE - 3))
        assert_row(text, "32–34", "room", "'lab'")
        assert result.sections[0].data == plaintext

        # left out, the direction and the seq are found by trying
        assert f"with {v['key']}, seq {v['seq']}" in render(explain(frame, keys=keys))


def test_a_frame_opened_with_the_wrong_seq_is_rejected(vectors, keys):
    v = vectors["tcp_frames"][0]
    result = explain(bytes.fromhex(v["frame_hex"]), kind="frame", keys=keys, direction="c2s", seq=v["seq"] + 1)
    assert result.rejected
    assert "REJECTED: the tag does not verify" in render(result)


def test_datagram_vectors_show_the_aad_and_the_plaintext(vectors, keys):
    for v in vectors["datagrams"]:
        raw = bytes.fromhex(v["datagram_hex"])
        result = explain(raw, kind="datagram", keys=keys)
        text = render(result, width=250)   # a long plaintext on one line
        assert not result.rejected
        assert_row(text, "0–0", "RoomNameSize", "3")
        assert_row(text, "1–1", "TokenSize", "16")
        assert_row(text, "2–4", "room", "'lab'")
        assert_row(text, "5–20", "token", v["token_hex"])
        assert_row(text, "21–28", "seq", str(v["seq"]))
        assert_row(text, f"29–{len(raw) - 17}", "ciphertext")
        assert_row(text, f"{len(raw) - 16}–{len(raw) - 1}", "tag", raw[-16:].hex())
        assert_row(text, "0–28", "AAD", "authenticated, not encrypted")
        assert f"decrypted with {v['key']}" in text
        assert_row(text, f"0–{len(v['plaintext'].encode()) - 1}", "JSON", v["plaintext"])   # bytes, not characters
        for key, value in json.loads(v["plaintext"]).items():
            assert_row(text, "json", key, repr(value))


def test_bad_datagram_vectors_are_shown_rejected(vectors, keys):
    for v in vectors["bad_datagrams"]:
        result = explain(bytes.fromhex(v["datagram_hex"]), kind="datagram", keys=keys, direction="c2s")
        text = render(result)
        assert result.rejected, v["note"]
        assert "REJECTED: " in text, v["note"]
        assert "plaintext ·" not in text, v["note"]   # nothing of a forgery is shown as if it were real
    truncated = next(v for v in vectors["bad_datagrams"] if v["note"] == "truncated")
    assert "truncated" in render(explain(bytes.fromhex(truncated["datagram_hex"]), kind="datagram"))


def test_kinds_are_guessed_from_the_bytes(vectors, hs):
    assert "kind guessed from the bytes: message" in render(explain(bytes.fromhex(vectors["messages"][0]["hex"])))
    assert "guessed from the bytes: datagram" in render(explain(bytes.fromhex(vectors["datagrams"][0]["datagram_hex"])))
    hello = encode_frame(bytes.fromhex(hs["server_hello_body"]))
    assert render(explain(hello)).startswith("ServerHello")


def test_a_partial_frame_says_how_many_bytes_are_missing(vectors):
    frame = bytes.fromhex(vectors["tcp_frames"][0]["frame_hex"])
    result = explain(frame[:30], kind="frame")
    text = render(result)
    assert result.partial and not result.rejected
    assert_row(text, "0–3", "length", str(len(frame) - 4))
    assert_row(text, "4–29", "body (partial)", f"26 of {len(frame) - 4} bytes")
    assert f"PARTIAL: the length says {len(frame) - 4} body bytes, 26 arrived, {len(frame) - 30} missing" in text
    assert "PARTIAL: 2 of the 4 length bytes are missing" in render(explain(frame[:2], kind="frame"))


def test_a_frame_with_an_impossible_length_is_rejected():
    text = render(explain(b"\x00\x00\x00\x00abc", kind="frame"))
    assert "REJECTED: frame length 0 is outside 1-65536" in text


def test_sealed_packets_without_keys_say_how_to_open_them(vectors):
    text = render(explain(bytes.fromhex(vectors["datagrams"][0]["datagram_hex"]), kind="datagram"))
    assert "sealed: pass keys=... to open it" in text
    text = render(explain(bytes.fromhex(vectors["tcp_frames"][0]["frame_hex"]), kind="frame"))
    assert "encrypted: pass keys=... (and seq) to open it" in text


def test_bad_arguments_get_a_clear_message():
    with pytest.raises(ValueError, match="direction must be 'c2s'"):
        explain(b"x", direction="up")
    with pytest.raises(ValueError, match="kind must be one of"):
        explain(b"x", kind="packet")
    with pytest.raises(TypeError, match="PacketEvent or bytes"):
        explain("00ff")


def test_the_hex_dump_shows_offsets_bytes_and_ascii(vectors):
    text = render(explain(bytes.fromhex(vectors["messages"][0]["hex"]), kind="message"))
    assert re.search(r"^\s+32  6c 61 62 7b .* lab\{\"username\":\"$", text, re.M), text


def test_a_long_packet_dump_is_cut_with_a_count(vectors):
    raw = bytes.fromhex(vectors["messages"][5]["hex"])
    text = render(explain(raw, kind="message", max_bytes=64))
    assert f"… {len(raw) - 64} more bytes not shown" in text


# --- a live session ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def live():
    """A server and two clients, each side traced separately; alice said hello and bob received it."""
    server_trace, client_trace = Trace(), Trace()
    server = ChatServer(tcp_port=0, udp_port=0, key=ServerKey.demo(), trace=server_trace).start()
    try:
        alice = ChatClient.create_room(server.address, "lab", "alice", "pw", trace=client_trace, timeout=5)
        bob = ChatClient.join_room(server.address, "lab", "bob", "pw", fingerprint=server.fingerprint,
                                   trace=client_trace, timeout=5)
        alice.send("hello bob")
        bob.wait_for_messages(1, timeout=5)
        wait_for(lambda: any(e.kind == "chat" and e.direction == "out" and e.user == "bob" for e in server_trace),
                 what="the server's trace of the chat to bob")
        yield server, alice, bob, server_trace, client_trace
        bob.leave()
        alice.leave()
    finally:
        server.stop()


def first(trace: Trace, **match: object) -> PacketEvent:
    return next(e for e in trace.events if all(getattr(e, k) == v for k, v in match.items()))


def test_the_live_log_shows_the_whole_conversation_in_order(live):
    server, alice, bob, server_trace, client_trace = live
    text = render(server_trace)
    expected = [
        r"server S→C tcp \S+ +ServerHello +609 B v3 nonce \S+ share \S+ key",
        r"server C→S tcp \S+ +ClientKeyExchange +36 B X25519 share 32 B, session keys derived",
        r"server C→S tcp \S+ +request .* #0 CREATE_ROOM 'lab' username='alice' password='pw'",
        r"server S→C tcp \S+ +response .* #0 CREATE_ROOM 'lab' status='ok'",
        rf"server S→C tcp \S+ +complete .* #1 token {alice.token.hex()} for alice",
        r"server C→S udp \S+ +hello .* #0 alice",
        r"server S→C udp \S+ +welcome .* #0 alice +seq=\d+",
        r"server C→S udp \S+ +chat .* alice +id=1 text='hello bob'",
        r"server S→C udp \S+ +chat .* bob +seq=\d+ from='alice' text='hello bob'",
    ]
    at = 0
    for pattern in expected:
        found = re.compile(pattern, re.M).search(text, at)
        assert found, f"{pattern!r} not found after offset {at} in:\n{text}"
        at = found.end()
    client_text = render(client_trace)
    assert re.search(r"client S→C tcp \S+ +ServerHello", client_text)
    assert re.search(r"client C→S tcp \S+ +ClientKeyExchange", client_text)
    assert re.search(rf"client S→C tcp \S+ +complete .* token {bob.token.hex()} for bob", client_text)
    assert re.search(r"client S→C udp \S+ +chat .* bob +seq=\d+ from='alice' text='hello bob'", client_text)


def test_render_line_is_one_line_at_a_wide_console(live):
    event = first(live[3], kind="complete")
    text = render(render_line(event))
    assert text.count("\n") == 1 and event.message.payload["token"] in text


def test_a_live_request_is_explained_with_its_header_fields(live):
    request = first(live[3], kind="request")
    text = render(explain(request))
    assert text.startswith("request · client → server · tcp · 91 bytes · seen by the server")
    assert_row(text, "4–74", "ciphertext")
    assert_row(text, "implicit", "seq (implicit)", "0: not sent")
    assert "tag verified, decrypted by the server" in text
    assert_row(text, "0–0", "RoomNameSize", "3")
    assert_row(text, "1–1", "Operation", "1 (CREATE_ROOM)")
    assert_row(text, "2–2", "State", "0 (REQUEST)")
    assert_row(text, "3–31", "OperationPayloadSize", "36")
    assert_row(text, "32–34", "room", "'lab'")
    assert_row(text, "35–70", "payload", '{"username":"alice","password":"pw"}')


def test_a_live_complete_shows_the_token(live):
    server, alice = live[0], live[1]
    text = render(explain(first(live[3], kind="complete")))
    assert_row(text, "2–2", "State", "2 (COMPLETE)")
    assert f'"token":"{alice.token.hex()}"' in text
    assert f'"udp_port":{server.address.udp_port}' in text.replace("\n", "").replace(" ", "")


def test_both_sides_trace_the_same_session_keys(live):
    server_ckx = first(live[3], kind="ClientKeyExchange")
    client_ckx = first(live[4], kind="ClientKeyExchange")
    assert server_ckx.raw == client_ckx.raw and server_ckx.keys == client_ckx.keys is not None
    text = render(explain(server_ckx))
    assert_row(text, "derived", "udp_s2c", server_ckx.keys.udp_s2c.hex())
    assert "seen by the server" in text


def test_live_datagrams_are_explained_with_their_plaintext(live):
    alice = live[1]
    hello = first(live[3], kind="hello", user="alice")
    text = render(explain(hello))
    assert_row(text, "5–20", "token", alice.token.hex())
    assert_row(text, "21–28", "seq", "0")
    assert_row(text, "0–15", "JSON", '{"type":"hello"}')
    welcome = render(explain(first(live[4], kind="welcome", user="alice")))
    assert "welcome · server → client · udp" in welcome and "seen by the client (alice)" in welcome
    assert_row(welcome, "json", "type", "'welcome'")
    chat = render(explain(first(live[3], kind="chat", direction="out", user="bob")))
    assert "sealed by the server with udp_s2c" in chat
    assert_row(chat, "json", "text", "'hello bob'")


def test_a_tampered_live_datagram_is_shown_rejected(live):
    server, alice, _, server_trace, _ = live
    datagram = bytearray(alice.channel.seal(Chat(id=99, text="forged").encode()))
    datagram[-20] ^= 0x01   # one ciphertext bit
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(bytes(datagram), (server.address.host, server.address.udp_port))
    rejected = wait_for(lambda: next((e for e in server_trace.events if e.kind == "rejected"), None),
                        what="the rejected datagram in the trace")
    assert rejected.raw == bytes(datagram)
    assert re.search(r"server C→S udp \S+ +rejected .* REJECTED bad_tag", render(server_trace))
    text = render(explain(rejected))
    assert "REJECTED: bad_tag: authentication tag does not verify" in text
    assert_row(text, "5–20", "token", alice.token.hex())
    assert "forged" not in text
    summary = render(server_trace.summary())
    assert re.search(rf"{alice.token.hex()}\s+server\s+alice\s+\d+\s+\d+\s+\d+\s+hello, .*\s1\s*$", summary,
                     re.M), summary
    assert "rejected" in summary.split(alice.token.hex())[1]


def test_the_summary_has_a_row_per_session(live):
    server, alice, bob, server_trace, _ = live
    snapshot = Trace(server_trace.events)
    text = render(snapshot.summary())
    tcp = snapshot.filter(transport="tcp", kind="ServerHello")
    assert len(tcp) == 2
    for event, user in zip(tcp, ("alice", "bob")):
        session = snapshot.filter(session=event.session)
        bytes_in = sum(e.size for e in session if e.direction == "in")
        bytes_out = sum(e.size for e in session if e.direction == "out")
        assert re.search(rf"{re.escape(event.session)}\s+server\s+{user}\s+5\s+{bytes_in}\s+{bytes_out}\s+"
                         r"ServerHello, ", text), text
    assert re.search(rf"{bob.token.hex()}\s+server\s+bob\s+\d+", text)


def test_filter_selects_by_side_transport_and_kind(live):
    server_trace = live[3]
    udp = server_trace.filter(transport="udp", direction="in")
    assert len(udp) > 0 and all(e.transport == "udp" and e.direction == "in" for e in udp)
    handshake = server_trace.filter(kind=["ServerHello", "ClientKeyExchange"])
    assert [e.kind for e in handshake] == ["ServerHello", "ClientKeyExchange"] * 2
    assert len(server_trace.filter(side="client")) == 0


def test_a_saved_trace_loads_back_and_renders_the_same(live, tmp_path):
    snapshot = Trace(live[3].events + live[4].events)
    path = snapshot.save(tmp_path / "session.jsonl")
    assert len(path.read_text().splitlines()) == len(snapshot)
    loaded = Trace.load(path)
    assert render(loaded) == render(snapshot)
    assert render(loaded.summary()) == render(snapshot.summary())
    for before, after in zip(snapshot, loaded):
        assert (after.raw, after.keys, after.plaintext) == (before.raw, before.keys, before.plaintext)
        assert render(explain(after)) == render(explain(before))


def test_loading_a_broken_trace_file_says_where(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"time": 1}\n')
    with pytest.raises(ValueError, match="bad.jsonl:1 is not a saved trace event"):
        Trace.load(path)


def test_record_traces_a_block_and_restores_the_previous_trace(live):
    server, alice, _, server_trace, _ = live
    before = len(server_trace.events)
    with record(server, alice) as recorded:
        assert server.trace is not server_trace
        alice.send("recorded")
        wait_for(lambda: len(recorded.filter(side="server", kind="ack")), what="the recorded ack")
    assert server.trace is server_trace and alice.trace is live[4]
    assert len(recorded.filter(side="client", kind="chat", direction="out")) == 1
    # the previous traces kept receiving while the block ran
    assert any(e.kind == "ack" for e in server_trace.events[before:])
    assert any(e.message == Chat(id=2, text="recorded") for e in live[4].events if e.kind == "chat")


def test_record_restores_even_an_absent_trace_and_refuses_other_objects():
    class Endpoint:
        trace = None

    endpoint = Endpoint()
    with pytest.raises(RuntimeError):
        with record(endpoint) as recorded:
            endpoint.trace(ev(raw=b"x"))
            raise RuntimeError("the block fails")
    assert endpoint.trace is None and len(recorded) == 1
    with pytest.raises(TypeError, match="anything with a .trace attribute"):
        with record(object()):
            pass


def test_the_jupyter_display_is_rich_html(live):
    bundle = live[3]._repr_mimebundle_(include=[], exclude=[])
    assert "ServerHello" in bundle["text/html"] and bundle["text/html"].startswith("<pre")
    assert "ClientKeyExchange" in bundle["text/plain"]
    bundle = explain(first(live[3], kind="request"))._repr_mimebundle_(include=[], exclude=[])
    assert "OperationPayloadSize" in bundle["text/html"]
    assert "OperationPayloadSize" in first(live[3], kind="request")._repr_mimebundle_([], [])["text/plain"]


# --- the Trace object ----------------------------------------------------------------------------

FIELDS = dict(time=0.0, side="client", direction="out", transport="udp", peer=("127.0.0.1", 9002), kind="ping",
              raw=b"\x00" * 40)


def ev(**fields) -> PacketEvent:
    """A PacketEvent of FIELDS with some fields changed, as a shell builds one."""
    return PacketEvent(**{**FIELDS, **fields})


def test_subscribers_get_each_event_until_they_unsubscribe():
    trace, got = Trace(), queue.Queue()
    unsubscribe = trace.subscribe(got.put)
    trace.subscribe(lambda event: 1 / 0)   # a broken subscriber must not break tracing
    trace(ev())
    event = got.get(timeout=1)
    assert (event.kind, event.size, event.side) == ("ping", 40, "client")
    unsubscribe()
    trace(ev())
    assert got.empty() and len(trace) == 2


def test_a_trace_keeps_the_last_events():
    trace = Trace(limit=3)
    assert "no packets traced yet" in render(trace)
    for seq in range(5):
        trace(ev(seq=seq))
    assert [e.seq for e in trace] == [2, 3, 4] and trace.total == 5
    with pytest.raises(ValueError, match="positive number"):
        Trace(limit=0)


def test_a_trace_records_the_event_the_shell_built_and_nothing_else():
    trace = Trace()
    trace(ev(side="server", kind="rejected", raw=b"ab"))
    with pytest.raises(TypeError):
        trace(side="server", kind="rejected", raw=b"ab")   # keyword bags are gone: one event type
    assert [e.kind for e in trace] == ["rejected"] and trace[0].raw == b"ab"
    assert "rejected" in render(trace)


class Recorder(io.StringIO):
    """A console file that notes which threads write to it; ``held``, each write waits for a permit."""

    def __init__(self, held: bool = False):
        super().__init__()
        self.threads: set[str] = set()
        self.entered = 0          # writes begun (the printer is in the last one while held)
        self.held = held
        self.permits = threading.Semaphore(0)

    def write(self, text: str) -> int:
        self.threads.add(threading.current_thread().name)
        self.entered += 1
        if self.held:
            assert self.permits.acquire(timeout=10), "the test never let the console write"
        return super().write(text)

    def let(self, writes: int) -> None:
        for _ in range(writes):
            self.permits.release()

    def let_all(self) -> None:
        self.held = False
        self.permits.release()


def live_log(file: io.StringIO, width: int = 120, **options) -> LiveLog:
    return LiveLog(Console(file=file, width=width, force_terminal=False), **options)


def test_live_log_prints_a_legend_then_a_line_per_packet_on_a_thread_of_its_own():
    file = Recorder()
    log = live_log(file)
    log(ev(plaintext=b'{"type":"ping"}', user="alice"))
    log(ev(side="server", direction="in", transport="udp", peer=("127.0.0.1", 5000), kind="rejected",
        raw=b"\x03\x10", error="malformed: too short"))
    assert log.flush() and len(log) == 2
    lines = file.getvalue().splitlines()
    assert len(lines) == 3, lines
    assert lines[0].startswith("time · seen by · C→S client to server, S→C server to client · transport · peer")
    assert re.search(r"client C→S udp 127\.0\.0\.1:9002 +ping +40 B", lines[1])
    assert "server C→S udp 127.0.0.1:5000" in lines[2] and "REJECTED malformed: too short" in lines[2]
    assert file.threads == {"tcrp-live-log"}   # never the thread that recorded the packets
    log.close()


def printed_seqs(text: str) -> list[int]:
    return [int(seq) for seq in re.findall(r"ping +40 B #(\d+)", text)]


def test_a_live_log_that_falls_behind_counts_what_it_skipped_and_says_so_in_order():
    file = Recorder(held=True)
    log = live_log(file, queue=5)
    log(ev(seq=0))
    wait_for(lambda: file.entered == 1, what="the printer stuck writing the legend")
    for seq in range(1, 26):                   # 1-5 fit in the queue, 6-25 do not
        log(ev(seq=seq))
    assert log.skipped == 20 and len(log) == 26   # all recorded; the recording thread never waited
    file.let(3)                                # the legend, #0, #1: the printer is stuck on #2
    wait_for(lambda: file.entered == 4, what="the printer writing #2")
    log(ev(seq=26))                      # room again: the count goes first, where the gap was
    file.let_all()
    assert log.flush()
    text = file.getvalue()
    assert printed_seqs(text) == [0, 1, 2, 3, 4, 5, 26]
    assert text.count("not shown") == 1 and "… 20 packets not shown: the log fell behind" in text
    assert text.index("#5") < text.index("not shown") < text.index("#26")
    log(ev(seq=27))
    assert log.flush() and file.getvalue().count("not shown") == 1 and printed_seqs(file.getvalue())[-1] == 27
    log.close()


def test_a_live_log_that_catches_up_says_how_many_it_skipped():
    file = Recorder(held=True)
    log = live_log(file, queue=2)
    log(ev(seq=0))
    wait_for(lambda: file.entered == 1, what="the printer stuck writing the legend")
    for seq in range(1, 11):
        log(ev(seq=seq))
    file.let_all()
    assert log.flush()
    text = file.getvalue()
    assert printed_seqs(text) == [0, 1, 2] and "… 8 packets not shown" in text and log.skipped == 8
    log.close()


def test_closing_a_live_log_prints_what_is_queued_and_ends_its_printer():
    file = Recorder()
    log = live_log(file)
    printers = [t for t in threading.enumerate() if t.name == "tcrp-live-log"]
    for seq in range(50):
        log(ev(seq=seq))
    log.close()
    assert len(re.findall(r"ping +40 B", file.getvalue())) == 50
    wait_for(lambda: [t for t in threading.enumerate() if t.name == "tcrp-live-log"] != printers or
             not any(t.is_alive() for t in printers), what="the printer thread to end")
    assert not log._printer.is_alive()
    printed = file.getvalue()
    log(ev(seq=50))                       # still recorded, no longer printed
    assert len(log) == 51 and file.getvalue() == printed
    with pytest.raises(ValueError, match="queue must be a positive number"):
        LiveLog(queue=0)


def test_a_narrow_console_drops_the_peer_column_and_wraps_rather_than_cuts():
    file = Recorder()
    log = live_log(file, width=60)
    log(ev(side="server", direction="in", transport="udp", peer=("127.0.0.1", 5000), kind="rejected",
        raw=b"\x03\x10", error="malformed: datagram shorter than its two size bytes"))
    log.close()
    text = file.getvalue()
    assert "127.0.0.1" not in text and "peer" not in text
    assert re.search(r"server C→S udp rejected +2 B REJECTED", text)
    assert "two size bytes" in text.replace("\n", " ")


def test_arrows_go_from_sender_to_receiver_and_the_side_that_saw_it_is_said_apart():
    cases = [("client", "out", "C→S", "client → server"), ("server", "in", "C→S", "client → server"),
             ("server", "out", "S→C", "server → client"), ("client", "in", "S→C", "server → client")]
    for side, direction, arrow, words in cases:
        event = PacketEvent(time=0.0, side=side, direction=direction, transport="udp", peer=("10.0.0.9", 9002),
                            kind="ping", raw=b"\x00" * 40)
        assert event.arrow == arrow
        for width in (60, 80, 99, 100, 160):
            line = render(render_line(event, width), width).splitlines()
            assert len(line) == 1 and len(line[0]) <= width, (width, line)
            assert re.search(rf"\d {side} +{arrow} udp ", line[0]) and ("10.0.0.9" in line[0]) == (width >= 100)
        text = render(explain(event))
        assert f" · {words} · udp · 40 bytes · seen by the {side}" in text.splitlines()[0]


# --- python -m tcrp_lab.server --trace ---------------------------------------------------------------


def _lines(stream, into: queue.Queue) -> None:
    for line in iter(stream.readline, ""):
        into.put(line)


@contextlib.contextmanager
def traced_server_cli(tmp_path, *flags: str):
    """``python -m tcrp_lab.server --trace ...`` on free ports: its address and a queue of its stdout lines."""
    key = tmp_path / "key.pem"
    ServerKey.demo().save(key)
    env = {**os.environ, "COLUMNS": "160", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "tcrp_lab.server", *flags, "--tcp-port", "0", "--udp-port", "0",
                             "--key", str(key)], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    out, err = queue.Queue(), queue.Queue()
    for stream, into in ((proc.stdout, out), (proc.stderr, err)):
        threading.Thread(target=_lines, args=(stream, into), daemon=True).start()
    try:
        ports = None
        while ports is None:
            ports = re.search(r"tcp (\d+), udp (\d+)", err.get(timeout=15))
        yield ("127.0.0.1", int(ports[1])), out
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    assert proc.returncode == 0


def read_until(out: queue.Queue, patterns: dict[str, str]) -> str:
    """Lines from ``out`` until every pattern matched (10 s at most between lines); all that was read."""
    seen = ""
    while patterns:
        seen += out.get(timeout=10)
        patterns = {k: p for k, p in patterns.items() if not re.search(p, seen)}
    return seen


def test_the_server_cli_prints_the_live_trace(tmp_path):
    with traced_server_cli(tmp_path, "--trace") as (address, out):
        alice = ChatClient.create_room(address, "lab", "alice", "s3cret-pw", timeout=5)
        bob = ChatClient.join_room(address, "lab", "bob", "s3cret-pw", timeout=5)
        alice.send("hi from the cli test")
        bob.wait_for_messages(1, timeout=5)
        seen = read_until(out, {
            "ServerHello": r"ServerHello +609 B", "request": r"request .* CREATE_ROOM 'lab'",
            "complete": rf"complete .* token {alice.token.hex()}", "hello": r"C→S udp \S+ +hello",
            "welcome": r"S→C udp \S+ +welcome", "chat": r"chat .* text='hi from the cli test'",
            "masked": r"JOIN_ROOM 'lab' .*password='\*{9}'"})
        bob.leave()
        alice.leave()
    assert "s3cret-pw" not in seen


def test_the_full_live_trace_lays_out_each_packet_by_field_and_masks_passwords_unless_asked(tmp_path):
    for flags, shown in ((("--trace", "full"), False), (("--trace", "full", "--show-passwords"), True)):
        with traced_server_cli(tmp_path, *flags) as (address, out):
            alice = ChatClient.create_room(address, "lab", "alice", "s3cret-pw", timeout=5)
            seen = read_until(out, {name: name for name in (
                "RoomNameSize", "Operation", "State", "OperationPayloadSize", "CREATE_ROOM", "ClientKeyExchange")})
            seen += read_until(out, {"password": "password"})
            alice.leave()
        assert ("s3cret-pw" in seen) is shown, flags
        assert ("*********" in seen) is not shown, flags


def test_names_and_texts_are_shown_as_typed_never_as_markup():
    trace = Trace()
    plaintext = b'{"type":"chat","id":1,"text":"[bold]not bold[/bold]"}'
    trace(ev(kind="chat", plaintext=plaintext, user="[red]eve", session="[x]"))
    assert "[red]eve" in render(trace.summary()) and "[x]" in render(trace.summary())
    assert "[bold]not bold[/bold]" in render(explain(plaintext, kind="payload"))


def test_a_message_payload_is_decoded_key_by_key(vectors):
    create = vectors["messages"][0]
    text = render(explain(bytes.fromhex(create["hex"]), kind="message"))
    assert_row(text, "json", "username", "'alice'")
    assert_row(text, "json", "password", "'s3cret'")


def test_a_raw_payload_is_read_as_a_client_or_a_server_payload():
    assert "client → server Chat" in render(explain(b'{"type":"chat","id":1,"text":"hi"}', kind="payload"))
    text = render(explain(b'{"type":"welcome","seq":4}', kind="payload"))
    assert "server → client Welcome" in text
    assert_row(text, "json", "seq", "4")
    assert "REJECTED: unknown datagram type 'nope'" in render(explain(b'{"type":"nope"}', kind="payload"))


def test_outgoing_frames_say_who_sealed_them(live):
    text = render(explain(first(live[3], kind="response")))
    assert "sealed by the server with tcp_s2c" in text
    text = render(explain(first(live[4], kind="response")))
    assert "tag verified, decrypted by the client with tcp_s2c" in text


def test_legacy_traffic_is_laid_out_as_tcrp1_with_its_flaws():
    from tcrp_lab.legacy import LegacyClient, LegacyProfile

    trace = Trace()
    server = ChatServer(tcp_port=0, udp_port=0, key=ServerKey.demo(), trace=trace, profile=LegacyProfile)
    server.profile.per_connection_key = False   # one RSA key: no key generation per connection
    with server:
        alice = LegacyClient.create_room(server.address, "lab", "alice", "pw", timeout=5)
        try:
            alice.send("pay 100")
            wait_for(lambda: any(e.kind == "chat" and e.direction == "out" for e in trace), what="the relayed chat")
        finally:
            alice.close()
    hello = render(explain(first(trace, kind="ServerHello")))
    assert "TCRP/1 (insecure)" in hello and "-----BEGIN PUBLIC KEY-----" in hello
    ckx = first(trace, kind="ClientKeyExchange")
    text = render(explain(ckx))
    assert_row(text, "decrypted", "aes_key", ckx.plaintext[:16].hex())
    assert_row(text, "decrypted", "iv", ckx.plaintext[16:].hex())
    request = render(explain(first(trace, kind="request")))
    assert "no tag: a changed ciphertext bit" in request and "tag verified" not in request
    assert_row(request, "1–1", "Operation", "1 (CREATE_ROOM)")
    chat = render(explain(first(trace, kind="chat", direction="in")))
    assert_row(chat, "1–1", "TokenSize", "255")
    assert_row(chat, "5–259", "token")
    assert_row(chat, "0–13", "text", "alice: pay 100")
    assert "the token in clear" in chat
    assert re.search(r"ClientKeyExchange +260 B TCRP/1: RSA-OAEP 256 B of key \| iv", render(trace))


# --- bounded memory ----------------------------------------------------------------------------------


def test_a_trace_keeps_the_first_event_bytes_of_each_event_and_says_the_rest_was_not_kept(live, tmp_path):
    chat = first(live[3], kind="chat", direction="out")            # 122 bytes, 67 of plaintext
    small = Trace(event_bytes=40)
    small.add(chat)
    cut = small[0]
    assert (len(cut.raw), cut.raw_size, cut.size) == (40, len(chat.raw), len(chat.raw)) and cut.raw == chat.raw[:40]
    assert (cut.plaintext, cut.plaintext_size) == (chat.plaintext[:40], len(chat.plaintext))
    assert cut.truncated and cut.message is None and not chat.truncated
    assert small.kept_bytes == 80
    line = render(render_line(cut))
    assert f"{len(chat.raw)} B" in line and f"[40 of {len(chat.raw)} B kept]" in line and "(not kept)" in line

    for event in (cut, Trace.load(small.save(tmp_path / "cut.jsonl"))[0]):   # saved and loaded, still cut
        assert event.truncated and event.size == len(chat.raw) and event.plaintext_size == len(chat.plaintext)
        result = explain(event)
        text = render(result, width=300)
        assert result.truncated and not result.rejected and not result.partial
        assert text.splitlines()[0].endswith(" · truncated")
        assert f"TRUNCATED: the trace kept the first 40 of its {len(chat.raw)} bytes and the first 40 of the " \
               f"{len(chat.plaintext)} bytes of its plaintext; the rest was not kept" in text.replace("\n", " ")
        assert_row(text, "0–39", "first 40 bytes")
        assert_row(text, "not kept", "not kept", f"bytes 40–{len(chat.raw) - 1}")
        assert "PARTIAL" not in text and "REJECTED" not in text

    whole = Trace(event_bytes=len(chat.raw))                        # a cap the event fits is no cut
    whole.add(chat)
    assert whole[0] is chat


def test_a_trace_keeps_a_whole_64_kib_frame_by_default():
    trace = Trace()
    trace(ev(transport="tcp", raw=bytes(4 + 65536), plaintext=bytes(65536 - 16)))
    assert not trace[0].truncated and trace[0].size == 65540


def test_a_trace_keeps_at_most_total_bytes_evicting_the_oldest_events():
    trace = Trace(total_bytes=1000, event_bytes=400)
    for seq in range(10):
        trace(ev(raw=bytes(300), seq=seq))
    assert [e.seq for e in trace] == [7, 8, 9] and trace.kept_bytes == 900 and trace.total == 10
    trace(ev(raw=bytes(500), plaintext=bytes(500), seq=10))   # cut to 400 + 400: alone it fits
    assert [e.seq for e in trace] == [10] and trace.kept_bytes == 800
    huge = Trace(total_bytes=100)
    huge(ev(raw=bytes(500)))                           # larger than the total: the newest stays
    assert len(huge) == 1 and huge.kept_bytes == 500
    huge.clear()
    assert len(huge) == 0 and huge.kept_bytes == 0
    for name in ("limit", "event_bytes", "total_bytes"):
        with pytest.raises(ValueError, match=f"{name} must be a positive number"):
            Trace(**{name: 0})


# --- text from others is shown as text ----------------------------------------------------------------

HOSTILE = ["[bold]x[/]", "[/]", "\x1b]52;c;aGVsbG8=\x07", "\x1b[2J", "\u202eecila", "a\x9b31mb\u2066c"]
UNSAFE = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069"
                    r"\ud800-\udfff]")   # all but the newline between the lines of a rendering


def sealed_frame(plaintext: bytes) -> bytes:
    """A frame the size of ``plaintext`` sealed (its bytes do not matter: the event carries the plaintext)."""
    return encode_frame(bytes(len(plaintext) + 16))


def assert_shown_as_text(text: str, hostile: str) -> None:
    assert not UNSAFE.search(text), f"a control character reached the output: {text!r}"
    assert visible(hostile) in text, f"{visible(hostile)!r} not shown in {text!r}"


def test_visible_escapes_controls_and_bidi_but_keeps_every_script():
    unsafe = [*range(0x20), *range(0x7F, 0xA0), 0x061C, 0x200E, 0x200F, 0x2028, 0x2029,
              *range(0x202A, 0x202F), *range(0x2066, 0x206A), 0xD800, 0xDFFF]
    for code in unsafe:
        shown = visible(f"a{chr(code)}b")
        assert shown == (f"a\\x{code:02x}b" if code < 0x100 else f"a\\u{code:04x}b"), hex(code)
    for honest in ("さくら", "Zoë", "مرحبا", "👩\u200d💻 🇯🇵", "x[/]y", "tab-free text"):
        assert visible(honest) == honest
    assert visible("line\none\ttab", keep="\n") == "line\none\\x09tab"


def test_names_rooms_and_texts_from_the_network_are_shown_as_text_never_as_markup_or_controls():
    for hostile in HOSTILE:
        trace = Trace()
        room_chat = RoomChat(seq=1, sender=hostile, text=hostile, ts=0.0)
        trace(ev(side="client", direction="in", transport="udp", peer=("127.0.0.1", 9002), kind="chat",
              raw=b"\x00" * 60, message=room_chat, plaintext=room_chat.encode(), user=hostile, session=hostile))
        request = Message.create_room(hostile, hostile, "pw")
        trace(ev(side="server", direction="in", transport="tcp", peer=("127.0.0.1", 5000), kind="request",
              raw=sealed_frame(request.encode()), message=request, plaintext=request.encode(), user=hostile, seq=0))
        complete = Message(Operation.JOIN_ROOM, State.COMPLETE, hostile, {"token": "00" * 16, "username": hostile})
        trace(ev(side="server", direction="out", transport="tcp", peer=("127.0.0.1", 5000), kind="complete",
              raw=sealed_frame(complete.encode()), message=complete, plaintext=complete.encode()))
        trace(ev(side="server", direction="in", transport="udp", peer=("127.0.0.1", 5000), kind="rejected",
              raw=b"\x00" * 60, error=f"bad name {hostile}", user=hostile))
        trace(ev(side="client", direction="in", transport="udp", peer=("127.0.0.1", 9002), kind="chat",
              raw=b"\x00" * 60, plaintext=hostile.encode("utf-8", "surrogatepass")))
        log = render(trace, width=400)
        for line in log.splitlines()[1:]:
            assert_shown_as_text(line, hostile)
        assert_shown_as_text(render(trace.summary(), width=400), hostile)
        for event in trace:
            assert_shown_as_text(render(explain(event), width=400), hostile)
        assert_shown_as_text(render(explain(room_chat.encode(), kind="payload"), width=400), hostile)
        assert_shown_as_text(render(explain(request.encode(), kind="message"), width=400), hostile)
    # JSON can carry a lone surrogate (no UTF-8 can): shown as an escape, not a crash of the console
    surrogate = b'{"type":"chat","seq":1,"from":"\\ud800","text":"x","ts":0}'
    assert_shown_as_text(render(explain(surrogate, kind="payload", direction="s2c"), width=400), "\ud800")
    trace = Trace()
    trace(ev(message=RoomChat(seq=1, sender="\ud800", text="x", ts=0.0), user="\ud800"))
    assert_shown_as_text(render(trace, width=400).splitlines()[1], "\ud800")
