"""Trace.save_pcapng: a recorded chat as a pcapng capture that Wireshark's tools read as a real one."""

from __future__ import annotations

import signal
import subprocess

import pytest

from tcrp_lab import ChatClient
from tcrp_lab.crypto import ServerHello
from tcrp_lab.pcap import MSS, PLAINTEXT_TAG, write_pcapng
from tcrp_lab.protocol import Datagram
from tcrp_lab.trace import PacketEvent, Trace
from tests.test_cli import Running
from tests.tshark import count, fields, need_tshark, secure_chat, tshark


@pytest.fixture(scope="module")
def chat(tmp_path_factory):
    trace, texts = secure_chat()
    path = trace.save_pcapng(tmp_path_factory.mktemp("pcap") / "chat.pcapng")
    return trace, texts, path


def test_capinfos_reads_a_saved_chat_as_raw_ip_packets_in_time_order(chat):
    trace, _, path = chat
    need_tshark()
    out = subprocess.run(["capinfos", "-c", "-t", "-E", "-o", "-M", str(path)], capture_output=True, text=True,
                         check=True).stdout
    assert "pcapng" in out and "rawip" in out and "Strict time order:   True" in out
    packets = int(out.split("Number of packets:")[1].split()[0])
    assert packets == count(path, "") > sum(e.transport == "udp" for e in trace)


def test_every_ip_tcp_and_udp_checksum_is_correct(chat):
    rows = fields(chat[2], ["ip.checksum.status", "tcp.checksum.status", "udp.checksum.status"])
    statuses = {value for row in rows for value in row.values() if value}
    assert statuses == {"1"}   # 1: good (0 bad, 2 unverified)


def test_tcp_analysis_finds_nothing_wrong_and_frames_follow_their_sequence_numbers(chat):
    path = chat[2]
    assert count(path, "tcp.analysis.flags") == 0
    rows = fields(path, ["tcp.stream", "tcp.seq", "tcp.len", "tcp.nxtseq"], "tcp.len > 0")
    for row in rows:
        assert int(row["tcp.nxtseq"]) == int(row["tcp.seq"]) + int(row["tcp.len"])
    assert {r["tcp.seq"] for r in rows if r["tcp.stream"] == "0"} >= {"1"}   # relative to the synthesized SYN
    assert count(path, "tcp.flags.syn == 1 && tcp.flags.ack == 0") == 2   # alice's and bob's connections


def test_each_packet_carries_what_the_recording_side_knew_with_the_password_masked(chat):
    trace, texts, path = chat
    comments = [row["frame.comment"] for row in fields(path, ["frame.comment"], "udp || tcp.len > 0")]
    assert all(comments), "every packet with data has a comment"
    text = "\n".join(comments)
    for sent in texts:
        assert f"text={sent!r}" in text
    assert any(c.startswith("chat seq=") and f"from='alice' text='{texts[0]}'" in c and "seen by the client" in c
               for c in comments)
    assert "password='*****'" in text and "pw-secret" not in text
    assert b"pw-secret" not in path.read_bytes()   # not in the plaintext comments either
    assert any(c.startswith(PLAINTEXT_TAG) for c in text.split(","))


def test_show_passwords_writes_them(tmp_path):
    trace, _ = secure_chat(loss=0.0, messages=2, password="open sesame")
    masked, shown = tmp_path / "masked.pcapng", tmp_path / "shown.pcapng"
    trace.save_pcapng(masked)
    trace.save_pcapng(shown, show_passwords=True)
    assert b"open sesame" not in masked.read_bytes()
    assert b"password='open sesame'" in shown.read_bytes()


def test_a_packet_recorded_by_both_ends_is_written_once_and_each_relay_hop_once(chat):
    trace, _, path = chat
    tcp_frames = {(e.session, e.flow, e.raw) for e in trace if e.transport == "tcp"}
    assert count(path, "tcp.len > 0") == len(tcp_frames)   # every frame is small: one segment each
    client_udp = [e for e in trace if e.transport == "udp" and e.side == "client"]
    server_udp = [e for e in trace if e.transport == "udp" and e.side == "server"]
    assert count(path, "udp") == len(client_udp) + len(server_udp)   # client↔relay and relay↔server are two hops


def test_a_frame_longer_than_a_segment_is_split_and_wireshark_reassembles_it(tmp_path):
    from tcrp_lab import ChatServer

    trace = Trace()
    with ChatServer(tcp_port=0, udp_port=0) as server:
        hosts = [ChatClient.create_room(server.address, f"room number {i:02} with a name long enough to fill a list {i:02}",
                                        "host") for i in range(30)]
        try:
            rooms = ChatClient.list_rooms(server.address, trace=trace)
        finally:
            for host in hosts:
                host.close()
    assert len(rooms) == 30
    reply = [e for e in trace if e.kind == "response"][0]
    assert reply.size > 2 * MSS
    path = trace.save_pcapng(tmp_path / "list.pcapng")
    rows = fields(path, ["tcp.reassembled.length", "tcrp.op", "tcrp.state"], "tcp.reassembled.length")
    assert [(r["tcp.reassembled.length"], r["tcrp.op"], r["tcrp.state"]) for r in rows] == [(str(reply.size), "3", "1")]
    assert count(path, "tcp.analysis.flags") == 0
    assert count(path, "tcp.len > 0") == 2 + 1 + -(-reply.size // MSS)   # hello, key exchange, request, reply's segments


def _event(**fields) -> PacketEvent:
    base = dict(time=1_800_000_000.0, side="server", direction="in", transport="udp", peer=("::1", 40000),
                kind="chat", raw=b"", local=("::1", 9002))
    return PacketEvent(**{**base, **fields})


def test_ipv6_addresses_make_ipv6_packets_with_correct_checksums(tmp_path):
    datagram = Datagram("lab", bytes(16), 7, bytes(24), bytes(16)).encode()
    hello = ServerHello(bytes(16), b"\x30" * 40)
    events = [_event(raw=datagram),
              _event(transport="tcp", direction="out", kind="ServerHello", local=("::1", 9001),
                     raw=len(hello.body).to_bytes(4, "big") + hello.body, time=1_800_000_000.5)]
    path = tmp_path / "v6.pcapng"
    assert write_pcapng(events, path) == 1 + 3 + 1
    rows = fields(path, ["ipv6.src", "ipv6.dst", "udp.checksum.status", "tcp.checksum.status", "tcrp.seq",
                         "tcrp.version"])
    assert {r["ipv6.src"] for r in rows} == {"::1"}
    assert [r["udp.checksum.status"] or r["tcp.checksum.status"] for r in rows] == ["1"] * 5
    assert rows[0]["tcrp.seq"] == "7" and rows[-1]["tcrp.version"] == "2"


def test_an_event_the_trace_kept_only_the_start_of_keeps_its_real_length(tmp_path):
    datagram = Datagram("lab", bytes(16), 1, bytes(2000), bytes(16)).encode()
    trace = Trace([_event(peer=("127.0.0.1", 40000), local=("127.0.0.1", 9002), raw=datagram)], event_bytes=100)
    path = trace.save_pcapng(tmp_path / "cut.pcapng")
    [row] = fields(path, ["frame.len", "frame.cap_len", "udp.length", "frame.comment"], dissector=False)
    assert (row["frame.len"], row["frame.cap_len"]) == (str(20 + 8 + len(datagram)), str(20 + 8 + 100))
    assert row["udp.length"] == str(8 + len(datagram))
    assert f"kept 100 of {len(datagram)} bytes" in row["frame.comment"]


def test_a_saved_and_loaded_trace_keeps_each_packets_own_address(chat, tmp_path):
    trace = chat[0]
    loaded = Trace.load(trace.save(tmp_path / "chat.jsonl"))
    assert [e.local for e in loaded] == [e.local for e in trace]
    assert all(e.local for e in trace)
    again = loaded.save_pcapng(tmp_path / "again.pcapng")
    assert fields(again, ["frame.number", "ip.src", "tcp.srcport", "udp.srcport"]) == \
        fields(chat[2], ["frame.number", "ip.src", "tcp.srcport", "udp.srcport"])


def test_the_server_command_writes_its_traffic_as_pcapng_when_it_stops(tmp_path):
    capture = tmp_path / "server.pcapng"
    run = Running("tcrp_lab.server", "--tcp-port", "0", "--udp-port", "0", "--key", str(tmp_path / "key.pem"),
                  "--pcap", str(capture))
    try:
        ready = run.expect(r"TCRP server ready .* tcp (\d+), udp (\d+)")
        alice = ChatClient.create_room(("127.0.0.1", int(ready.group(1))), "lab", "alice", "pw")
        alice.send("hello wireshark")
        alice.wait_for_messages(1)
        alice.close()
        run.proc.send_signal(signal.SIGTERM)
        run.expect(r"wrote \d+ packets to")
        assert run.finish() == 0
    finally:
        run.kill()
    rows = fields(capture, ["tcrp.type", "frame.comment"], "tcrp.type == \"chat\"")
    assert any("text='hello wireshark'" in r["frame.comment"] and "seen by the server" in r["frame.comment"]
               for r in rows)
    assert "pw" not in "".join(r["frame.comment"] for r in rows).replace("pw-", "")
