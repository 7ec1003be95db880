"""Sequence diagrams of a traced chat, drawn from a fixed trace and checked by what they contain.

``trace_join_loss.jsonl`` is a live run recorded once at both ends (server and clients, pings left
out) and saved with ``Trace.save``: alice creates "lab" and bob joins, both through a UdpRelay;
the relay drops alice's first chat, her client sends it again, and the relay then injects that
second copy once more, which the server rejects as replayed.
"""

from __future__ import annotations

import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tcrp_lab.diagrams import SERVER_TCP, SERVER_UDP, sequence_diagram
from tcrp_lab.protocol import Chat, Message, Operation, State
from tcrp_lab.trace import PacketEvent, Trace

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = Path(__file__).with_name("trace_join_loss.jsonl")
SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def trace() -> Trace:
    return Trace.load(FIXTURE)


def arrows_of(svg: str, style: str | None = None) -> list[ET.Element]:
    root = ET.fromstring(svg)   # also: the document is well-formed XML
    return [g for g in root.iter(f"{SVG}g") if g.get("class", "").startswith("arrow")
            and (style is None or g.get("class") == f"arrow {style}")]


def label(g: ET.Element) -> str:
    return g.find(f"{SVG}text").text


def test_one_lifeline_per_endpoint_the_first_client_left_of_the_server(trace):
    diagram = trace.sequence_diagram()
    assert diagram.lifelines == ["alice", SERVER_TCP, SERVER_UDP, "bob"]
    root = ET.fromstring(diagram.svg())
    assert [line.get("data-name") for line in root.iter(f"{SVG}line") if line.get("class") == "lifeline"] == \
        diagram.lifelines


def test_a_packet_traced_at_both_ends_is_one_arrow_labelled_with_what_matters(trace):
    diagram = trace.sequence_diagram()
    sent = {bytes(e.raw) for e in trace if e.direction == "out"} | {bytes(e.raw) for e in trace if e.kind == "rejected"}
    assert len(diagram.arrows) == len(sent) + 1 == 23   # + the replay: the same bytes as the retransmission
    labels = [label(g) for g in arrows_of(diagram.svg())]
    assert labels[:8] == ["ServerHello v2", "ClientKeyExchange (RSA-OAEP)", "REQUEST CREATE_ROOM 'lab'",
                          "RESPONSE CREATE_ROOM ok", labels[4], "hello", "welcome seq=0", "system seq=1 joined alice"]
    assert labels[4].startswith("COMPLETE CREATE_ROOM token ")
    assert "REQUEST JOIN_ROOM 'lab'" in labels and "ack id=1 seq=3" in labels
    assert [(a.source, a.target) for a in diagram.arrows[:2]] == [(SERVER_TCP, "alice"), ("alice", SERVER_TCP)]


def test_the_drop_the_retransmission_and_the_rejection_are_drawn_apart_and_explained(trace):
    svg = trace.sequence_diagram().svg()
    (lost,) = arrows_of(svg, "lost")
    (again,) = arrows_of(svg, "retransmission")
    (rejected,) = arrows_of(svg, "rejected")
    assert label(lost) == "chat id=1" and label(again) == "↻ chat id=1" and label(rejected) == "rejected: replayed"
    assert lost.find(f"{SVG}g").get("class") == "loss-mark"             # a cross half-way, no arrowhead
    assert rejected.find(f"{SVG}g").get("class") == "reject-mark"       # a boxed cross at the receiver
    assert "stroke-dasharray" in again.find(f"{SVG}line").attrib        # dashed, not only another colour
    legend = next(g for g in ET.fromstring(svg).iter(f"{SVG}g") if g.get("class") == "legend")
    words = " ".join(t.text for t in legend.iter(f"{SVG}text"))
    assert "sent again" in words and "lost" in words and "rejected" in words


def test_two_drawings_of_one_trace_are_the_same_bytes(trace):
    assert trace.sequence_diagram().svg() == Trace.load(FIXTURE).sequence_diagram().svg()
    assert trace.sequence_diagram(times=False).svg() == trace.sequence_diagram(times=False).svg()


def test_times_are_a_column_of_milliseconds_from_the_first_arrow(trace):
    with_times, without = trace.sequence_diagram().svg(), trace.sequence_diagram(times=False).svg()
    assert "time (ms)" in with_times and "time (ms)" not in without
    assert re.search(r">0\.0</text>", with_times)


def test_filters_pick_a_user_a_transport_a_side_and_a_time_window(trace):
    bob = trace.sequence_diagram(user="bob")
    assert bob.lifelines == ["bob", SERVER_TCP, SERVER_UDP] and all("bob" in (a.source, a.target) for a in bob.arrows)
    tcp = trace.sequence_diagram(transport="tcp")
    assert {a.transport for a in tcp.arrows} == {"tcp"} and len(tcp.arrows) == 10
    token = next(e.session for e in trace if e.user == "alice")
    assert {a.transport for a in trace.sequence_diagram(session=token).arrows} == {"udp"}
    first = min(e.time for e in trace)
    early = trace.sequence_diagram(end=first + 0.05)
    assert [a.kind for a in early.arrows] == ["ServerHello", "ClientKeyExchange", "request"]
    server_only = trace.sequence_diagram(side="server")   # the server never saw the dropped copy
    assert not any(a.style == "lost" for a in server_only.arrows) and len(server_only.arrows) == 22


def test_a_relays_drops_are_marked_when_only_the_sender_was_traced(trace):
    client_only = trace.sequence_diagram(side="client")
    assert not any(a.style == "lost" for a in client_only.arrows)   # nobody traced the receiving end
    lost = next(e for e in trace if e.side == "client" and e.kind == "chat" and e.direction == "out")
    marked = trace.sequence_diagram(side="client", dropped=[lost.raw])
    assert [a.label for a in marked.arrows if a.style == "lost"] == ["chat id=1"]


def test_mermaid_has_the_same_participants_and_arrows(trace):
    text = trace.sequence_diagram().to_mermaid()
    lines = text.splitlines()
    assert lines[0] == "sequenceDiagram"
    assert [line.split(" as ")[1] for line in lines if "participant" in line] == \
        ["alice", "server TCP", "server UDP", "bob"]
    assert "    P0-xP2: lost#58; chat id=1" in lines and "    P0-->>P2: ↻ chat id=1" in lines
    assert sum(1 for line in lines if re.match(r"    P\d-", line)) == 23


def hostile_events() -> list[PacketEvent]:
    name = '<script>&"\x1b\u202e;#'
    message = Message(Operation.JOIN_ROOM, State.REQUEST, "</text><svg onload=1>", {"username": name})
    return [
        PacketEvent(time=1.0, side="server", direction="in", transport="tcp", peer=("127.0.0.1", 9), kind="request",
                    raw=b"\x00\x01", session="tcp 127.0.0.1:9", message=message, seq=0),
        PacketEvent(time=2.0, side="server", direction="in", transport="udp", peer=("127.0.0.1", 10), kind="chat",
                    raw=b"\x02", session="ab" * 16, message=Chat(id=1, text="x"), user=name),
        PacketEvent(time=3.0, side="server", direction="in", transport="udp", peer=("127.0.0.1", 10),
                    kind="rejected", raw=b"\x03", error="<b>bad</b>\x00: & more"),
    ]


def test_names_and_reasons_from_the_network_are_shown_as_text():
    diagram = sequence_diagram(hostile_events())
    svg = diagram.svg()
    root = ET.fromstring(svg)   # well-formed: nothing broke out of its element
    assert not any(el.tag.endswith("script") for el in root.iter()) and "<script" not in svg and "onload" not in \
        " ".join(el.attrib.get("onload", "") for el in root.iter())
    texts = [t.text or "" for t in root.iter(f"{SVG}text")]
    assert '<script>&"\\x1b\\u202e;#' in texts   # the lifeline's name, escapes written out
    assert "REQUEST JOIN_ROOM '</text><svg onload=1>'" in texts
    assert "rejected: <b>bad</b>\\x00" in texts
    assert "\x1b" not in svg and "\x00" not in svg and "\u202e" not in svg
    mermaid = diagram.to_mermaid()
    texts = [re.split(r": | as ", line, maxsplit=1)[1] for line in mermaid.splitlines()[1:]]
    assert texts[0] == "#60;script#62;#38;#34;#92;x1b#92;u202e#59;#35;"   # entity codes: nothing Mermaid reads
    assert not any(re.search("[<>;\x1b]", re.sub(r"#\d+;", "", text)) for text in texts)


def test_the_readme_picture_is_what_the_demo_command_draws(tmp_path):
    out = tmp_path / "join.svg"
    done = subprocess.run([sys.executable, "-m", "tcrp_lab.diagrams", "--demo", str(out)], capture_output=True,
                          text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert out.read_text(encoding="utf-8") == (ROOT / "docs" / "join.svg").read_text(encoding="utf-8")
    assert "docs/join.svg" in (ROOT / "README.md").read_text(encoding="utf-8")
