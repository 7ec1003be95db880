"""The TCRP dissector (tcrp_lab/wireshark/tcrp.lua) on real recorded chats, checked with tshark."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from tcrp_lab import ChatClient, ChatServer
from tcrp_lab.attacks import UdpRelay
from tcrp_lab.protocol import FRAME_LENGTH_BYTES, Datagram, decode_message
from tcrp_lab.trace import PacketEvent, Trace
from tcrp_lab.wireshark import DISSECTOR, plugin_folder
from tests.conftest import wait_for
from tests.tshark import count, fields, legacy_chat, need_tshark, secure_chat, tshark

NAMES = ["frame.number", "frame.protocols", "tcrp.kind", "tcrp.profile", "tcrp.version", "tcrp.op", "tcrp.state",
         "tcrp.room", "tcrp.token", "tcrp.seq", "tcrp.type", "tcrp.text", "udp.payload", "tcp.len"]


@pytest.fixture(scope="module")
def secure(tmp_path_factory):
    trace, texts = secure_chat(loss=0.2, seed=7, messages=8)
    path = trace.save_pcapng(tmp_path_factory.mktemp("ws") / "secure.pcapng")
    return trace, texts, path, fields(path, NAMES, "udp || tcp.len > 0")


@pytest.fixture(scope="module")
def legacy(tmp_path_factory):
    trace, texts = legacy_chat()
    path = trace.save_pcapng(tmp_path_factory.mktemp("ws") / "legacy.pcapng")
    return trace, texts, path, fields(path, NAMES, "udp || tcp.len > 0")


@pytest.mark.parametrize("profile", ["secure", "legacy"])
def test_every_packet_of_a_lossy_chat_decodes_as_tcrp_with_no_error_or_malformed_packet(profile, request):
    trace, _, path, rows = request.getfixturevalue(profile)
    assert rows and all(row["frame.protocols"].endswith(":tcrp") for row in rows), \
        [r for r in rows if not r["frame.protocols"].endswith(":tcrp")][:3]
    assert count(path, "_ws.malformed || _ws.expert.severity == \"Error\"") == 0
    assert count(path, "tcp.analysis.flags") == 0
    # secure: the TCP side is labelled by its handshake version (3, the default), the datagrams TCRP/2
    assert {row["tcrp.profile"] for row in rows} == ({"TCRP/3", "TCRP/2"} if profile == "secure" else {"TCRP/1"})


def test_a_secure_datagrams_room_token_and_seq_are_the_bytes_on_the_wire(secure):
    _, _, _, rows = secure
    datagrams = [row for row in rows if row["udp.payload"]]
    assert len(datagrams) > 20
    for row in datagrams:
        datagram = Datagram.decode(bytes.fromhex(row["udp.payload"].replace(":", "")))
        assert (row["tcrp.room"], row["tcrp.token"].replace(":", ""), row["tcrp.seq"]) == \
            (datagram.room, datagram.token.hex(), str(datagram.seq))


def test_the_handshake_and_the_decrypted_requests_are_laid_out_by_name(secure):
    trace, _, _, rows = secure
    tcp = [row for row in rows if row["tcp.len"]]
    hellos = [row for row in tcp if row["tcrp.kind"] == "ServerHello"]
    assert [row["tcrp.version"] for row in hellos] == ["3", "3"]   # alice's and bob's connections (version 3)
    assert sum(row["tcrp.kind"] == "ClientKeyExchange" for row in tcp) == 2
    records = [(row["tcrp.op"], row["tcrp.state"], row["tcrp.room"]) for row in tcp if row["tcrp.kind"] == "Record"]
    sent = [decode_message(e.plaintext) for e in trace if e.transport == "tcp" and e.kind in
            ("request", "response", "complete") and e.side == ("client" if e.flow == "c2s" else "server")]
    assert records == [(str(int(m.operation)), str(int(m.state)), m.room) for m in sent]
    assert records[:3] == [("1", "0", "lab"), ("1", "1", "lab"), ("1", "2", "lab")]   # create: request, ok, complete


def test_display_filters_on_the_named_fields_select_the_right_packets(secure):
    trace, texts, path, rows = secure
    assert count(path, "tcrp.op == 1") == 3 and count(path, "tcrp.op == 2") == 3   # request, response, complete
    assert count(path, "tcrp.state == 2") == 2
    assert count(path, 'tcrp.room == "lab"') == count(path, "udp") + 6
    chats = [e for e in trace if e.transport == "udp" and e.kind == "chat"]
    hops = {(e.side, e.direction, e.raw) for e in chats}
    assert count(path, 'tcrp.type == "chat"') == len(hops)
    first = [row for row in rows if row["tcrp.type"] == "hello"]
    assert count(path, "tcrp.seq == 0 && tcrp.type == \"hello\"") == sum(row["tcrp.seq"] == "0" for row in first) >= 2
    token = [e for e in trace if e.kind == "hello" and e.user == "bob"][0].session
    assert count(path, f"tcrp.token == {token}") == sum(row["tcrp.token"].replace(":", "") == token for row in rows)
    assert count(path, f'tcrp.payload contains "{texts[0]}"') >= 2   # alice's chat, and its copies to the room


def test_a_legacy_chat_shows_its_text_its_token_in_clear_and_the_reused_key_and_iv(legacy):
    trace, texts, path, rows = legacy
    datagrams = [row for row in rows if row["udp.payload"]]
    relayed = {e.plaintext.decode() for e in trace if e.transport == "udp"}
    assert {row["tcrp.text"] for row in datagrams} == relayed
    assert {f"alice: {texts[0]}", f"bob: {texts[1]}"} <= relayed and not {f"alice: {texts[2]}"} <= relayed
    assert count(path, "tcrp.token_in_clear") == len(datagrams)
    tokens = {row["tcrp.token"] for row in datagrams}
    assert len(tokens) == 2 and all(len(t.replace(":", "")) == 2 * 255 for t in tokens)
    # every datagram of a session after its first, and every frame of a connection after its first encrypted one
    tcp_records = sum(row["tcrp.kind"] == "Record" for row in rows)
    assert count(path, "tcrp.iv_reuse") == (len(datagrams) - 2) + (tcp_records - 2)
    hello = [row for row in rows if row["tcrp.kind"] == "ServerHello"]
    assert len(hello) == 2 and count(path, 'tcrp.pem contains "BEGIN PUBLIC KEY"') == 2
    assert count(path, "tcrp.op == 1 && tcrp.state == 0") == 1   # alice's CREATE_ROOM, decrypted from the comment


def test_a_replayed_datagram_is_flagged_and_a_relay_hop_is_not(tmp_path):
    trace = Trace()
    with ChatServer(tcp_port=0, udp_port=0, trace=trace) as server, UdpRelay(server.address) as relay:
        alice = ChatClient.create_room(server.address, "lab", "alice", trace=trace, udp_via=relay.address)
        try:
            alice.send("pay 100")
            alice.wait_for_messages(1)
            chat = [e for e in trace if e.side == "server" and e.direction == "in" and e.kind == "chat"][0]
            attacker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            with attacker:
                attacker.sendto(chat.raw, (server.address.host, server.address.udp_port))
                wait_for(lambda: any(e.kind == "rejected" for e in trace), what="the server to drop the replay")
        finally:
            alice.close()
    path = trace.save_pcapng(tmp_path / "replay.pcapng")
    flagged = fields(path, ["tcrp.seq", "frame.comment"], "tcrp.replayed_seq")
    assert [row["tcrp.seq"] for row in flagged] == [str(Datagram.decode(chat.raw).seq)]
    assert "rejected (replayed" in flagged[0]["frame.comment"]
    assert count(path, "_ws.expert.severity == \"Warning\"") == 1   # the relay's second hop is not a replay


def _frame(body: bytes) -> bytes:
    return len(body).to_bytes(FRAME_LENGTH_BYTES, "big") + body


def test_a_version_3_server_hello_and_its_key_share_are_dissected(tmp_path):
    nonce, share, signature, der = bytes(range(16)), b"\x11" * 32, b"\x22" * 256, b"\x30\x82" + b"\x33" * 40
    body = b"TCRP" + bytes([3]) + nonce + share + len(signature).to_bytes(2, "big") + signature + der
    base = dict(side="server", transport="tcp", peer=("127.0.0.1", 50000), local=("127.0.0.1", 9001),
                session="tcp 127.0.0.1:50000")
    events = [PacketEvent(time=1.0, direction="out", kind="ServerHello", raw=_frame(body), **base),
              PacketEvent(time=1.1, direction="in", kind="ClientKeyExchange", raw=_frame(b"\x44" * 32), **base)]
    path = Trace(events).save_pcapng(tmp_path / "v3.pcapng")
    rows = fields(path, ["tcrp.version", "tcrp.nonce", "tcrp.server_share", "tcrp.sig_len", "tcrp.signature",
                         "tcrp.pubkey", "tcrp.client_share"], "tcp.len > 0")
    hello, ckx = rows
    assert (hello["tcrp.version"], hello["tcrp.nonce"].replace(":", ""), hello["tcrp.sig_len"]) == \
        ("3", nonce.hex(), "256")
    assert hello["tcrp.server_share"].replace(":", "") == share.hex()
    assert hello["tcrp.signature"].replace(":", "") == signature.hex()
    assert hello["tcrp.pubkey"].replace(":", "") == der.hex()
    assert ckx["tcrp.client_share"].replace(":", "") == (b"\x44" * 32).hex()
    assert count(path, '_ws.malformed || _ws.expert.severity == "Error" || _ws.expert.severity == "Warning"') == 0


def test_a_connection_without_its_hello_is_found_on_the_ports_of_the_preferences(tmp_path):
    base = dict(side="server", transport="tcp", direction="in", kind="request", session="tcp 127.0.0.1:50000",
                peer=("127.0.0.1", 50000))
    for port, options in ((9001, ()), (9101, ("-o", "tcrp.tcp_port:9101"))):
        events = [PacketEvent(time=1.0, raw=_frame(bytes(64)), local=("127.0.0.1", port), **base)]
        path = Trace(events).save_pcapng(tmp_path / f"{port}.pcapng")
        found = tshark(path, *options, "-T", "fields", "-e", "tcrp.length", "-e", "tcrp.kind", "-Y", "tcp.len > 0")
        assert found.split() == ["64", "ClientKeyExchange"], (port, found)   # the first C→S frame seen
    elsewhere = Trace([PacketEvent(time=1.0, raw=_frame(bytes(64)), local=("127.0.0.1", 9201), **base)])
    assert count(elsewhere.save_pcapng(tmp_path / "9201.pcapng"), "tcrp") == 0   # not TCRP-looking, not our port
    unnamed = bytes([0, 16]) + bytes(16) + (5).to_bytes(8, "big") + bytes(20)   # no room name: the heuristic passes
    for port, options in ((9002, ()), (9102, ("-o", "tcrp.udp_port:9102")), (9202, ())):
        event = PacketEvent(time=1.0, side="server", direction="in", transport="udp", peer=("127.0.0.1", 40000),
                            local=("127.0.0.1", port), kind="rejected", raw=unnamed)
        path = Trace([event]).save_pcapng(tmp_path / f"udp{port}.pcapng")
        found = tshark(path, *options, "-T", "fields", "-e", "tcrp.seq").split()
        assert found == ([] if port == 9202 else ["5"]), (port, found)


def test_install_copies_the_dissector_where_wireshark_loads_it(tmp_path):
    env = {**os.environ, "HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "tcrp_lab.wireshark", "--install"], capture_output=True, text=True,
                          env=env, timeout=60, check=True)
    installed = tmp_path / ".local" / "lib" / "wireshark" / "plugins" / "tcrp.lua"
    assert f"installed {installed}" in done.stdout
    assert installed.read_bytes() == DISSECTOR.read_bytes()
    assert str(plugin_folder()).endswith(os.path.join(".local", "lib", "wireshark", "plugins"))
    need_tshark()
    protocols = subprocess.run(["tshark", "-G", "protocols"], capture_output=True, text=True, env=env, timeout=60,
                               check=True).stdout
    assert "Talk Chat Room Protocol\tTCRP\ttcrp" in protocols   # tshark found it in the personal plugin folder, with no -X
    assert subprocess.run([sys.executable, "-m", "tcrp_lab.wireshark"], capture_output=True, text=True,
                          timeout=60, check=True).stdout.strip() == str(DISSECTOR)
