"""The lessons' matplotlib figures, drawn from fixed data (the trace fixture of test_diagrams) and
checked by what they hold: titles, labelled axes, the marks, and the same bytes twice."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tcrp_lab.figures import (
    accept_timeline, bench_figure, header_figure, keystream_figure, loss_timeline, retransmissions,
)
from tcrp_lab.protocol import HEADER_SIZE
from tcrp_lab.trace import Trace

FIXTURE = Path(__file__).with_name("trace_join_loss.jsonl")
ROWS = {"serial loop": [("silent", 0.0, 0.001, 1.0), ("bob", 0.002, 1.0, 1.001)],
        "threaded loop": [("silent", 0.0, 0.001, 1.0), ("bob", 0.002, 0.0025, 0.003)]}


def every_axis_is_labelled(picture) -> None:
    axes = picture.figure.axes
    assert axes and (picture.figure._suptitle is not None or all(ax.get_title() or ax.get_title("left") for ax in axes))
    for ax in axes:
        assert ax.get_ylabel() or ax.get_yticklabels()
    assert axes[-1].get_xlabel()


def legend_words(ax) -> list[str]:
    return [t.get_text() for t in ax.get_legend().get_texts()]


@pytest.mark.parametrize("draw", [
    lambda: header_figure(),
    lambda: keystream_figure(b"\x10" * 16, b"\x20" * 16, b"known plaintext!"),
    lambda: accept_timeline(ROWS),
    lambda: loss_timeline(Trace.load(FIXTURE), "alice"),
    lambda: bench_figure([{"rate": 100.0, "members": 4, "details": {
        "ours": {"steady": {"latency_cdf_ms": [0.1 * (1 + q) for q in range(101)]}},
        "relay": {"steady": {"latency_cdf_ms": [0.05 * (1 + q) for q in range(101)]}}}}]),
], ids=["header", "keystream", "accept", "loss", "bench"])
def test_each_figure_is_titled_labelled_and_the_same_bytes_twice(draw):
    first, second = draw(), draw()
    every_axis_is_labelled(first)
    assert first.svg() == second.svg() and first.png() == second.png()
    assert first.png().startswith(b"\x89PNG") and len(first.png()) < 150_000   # small enough to commit
    assert repr(first) == repr(second) and "0x" not in repr(first)            # what nbval compares: stable


def test_the_byte_fields_come_from_the_protocols_constants():
    picture = header_figure(room="lab")
    ax = picture.figure.axes[0]
    ticks = [int(t) for t in ax.get_xticks()]
    assert HEADER_SIZE in ticks and 2 + 3 + 16 + 8 == 29 and 29 in ticks   # the datagram's clear header ends at 29
    words = [t.get_text() for t in ax.texts]
    assert {"OperationPayloadSize", "token", "seq", "tag"} <= set(words)
    assert repr(picture) == "<byte-field figure: a 32-byte header + room + payload; a datagram with a 29-byte clear header>"


def test_the_keystream_picture_shows_the_xor_and_what_it_recovers():
    key = bytes(range(7, 23))
    c1 = bytes(a ^ k for a, k in zip(b"System: alice jo", key))
    c2 = bytes(a ^ k for a, k in zip(b"alice: meet me a", key))
    picture = keystream_figure(c1, c2, b"System: alice jo")
    assert "recovered 'alice: meet me a'" in repr(picture)
    ax = picture.figure.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()][-1] == "C₁ ⊕ C₂ ⊕ P₁ = P₂"
    assert "".join(t.get_text() for t in ax.texts[-16:]) == "alice:␣meet␣me␣a"


def test_the_accept_timeline_has_a_bar_per_client_and_a_hatched_wait():
    picture = accept_timeline(ROWS)
    for ax in picture.figure.axes:
        bars = ax.patches
        assert len(bars) == 4 and sum(1 for b in bars if b.get_hatch()) == 2   # waiting is hatched, served is not
    assert legend_words(picture.figure.axes[0]) == ["waiting: connected, not served", "served by a thread"]


def test_the_loss_timeline_marks_the_drop_the_retransmission_and_the_ack():
    trace = Trace.load(FIXTURE)
    picture = loss_timeline(trace, "alice")
    top, bottom = picture.figure.axes
    assert {"first send", "retransmission", "dropped on the way", "ack received"} <= set(legend_words(top))
    assert legend_words(bottom) == ["RTO"]   # its only chat was retransmitted: no RTT sample (Karn)
    marks = {c.get_label(): len(c.get_offsets()) for c in top.collections}
    assert marks["first send"] == 1 and marks["retransmission"] == 1 and marks["dropped on the way"] == 1
    assert retransmissions(trace, "alice") == {1: 2}
    assert repr(picture) == "<loss timeline of alice: 1 chats, 2 copies sent, 1 acked>"
    with pytest.raises(ValueError, match="no chat sent by 'carol'"):
        loss_timeline(trace, "carol")


def test_names_from_the_network_are_text_in_a_figure():
    picture = accept_timeline({"loop": [("$\\frac{1}{0}$\x1b[31m", 0.0, 0.1, 0.2)]})
    label = picture.figure.axes[0].get_yticklabels()[0].get_text()
    assert label.startswith("\\$") and "\\x1b" in label   # no mathtext, no escape sequence
    picture.png()   # and it renders


def test_bench_plot_draws_the_cdf_and_the_adversary_ratios_from_saved_results(tmp_path):
    plain = {"rate": 200.0, "members": 50, "details": {
        "ours": {"steady": {"latency_cdf_ms": [0.2 + q / 50 for q in range(101)]}},
        "relay": {"steady": {"latency_cdf_ms": [0.1 + q / 100 for q in range(101)]}}}}
    adversary = {"mode": "adversary", "attacks": {
        "udp-flood": {"goodput_ratio": 0.9, "p99_ratio": 1.8}, "slowloris": {"goodput_ratio": 1.0, "p99_ratio": 1.1}}}
    files = []
    for name, result in (("plain.json", plain), ("adversary.json", adversary)):
        (tmp_path / name).write_text(json.dumps(result))
        files += ["--from-json", str(tmp_path / name)]
    out = tmp_path / "bench.png"
    done = subprocess.run([sys.executable, "-m", "tcrp_lab.bench", "--plot", str(out), *files],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert out.read_bytes().startswith(b"\x89PNG")
    picture = bench_figure([plain, adversary])
    cdf, ratios = picture.figure.axes
    assert cdf.get_xlabel().startswith("latency") and len(cdf.lines) == 2
    assert [t.get_text() for t in ratios.get_xticklabels()] == ["udp-flood", "slowloris"]
