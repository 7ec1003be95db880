"""Running tshark on a capture with tcrp_lab's dissector, for tests/test_pcap.py and tests/test_wireshark.py."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tcrp_lab.wireshark import DISSECTOR

TSHARK = "/usr/bin/tshark"   # Debian's (make system-deps installs it)
CHECKSUMS = ["-o", "ip.check_checksum:TRUE", "-o", "tcp.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE"]


def need_tshark() -> str:
    """tshark's path, or a failure saying how to install it (never a silent skip)."""
    path = shutil.which("tshark") or (TSHARK if Path(TSHARK).exists() else None)
    if path is None:
        pytest.fail("tshark is missing: these tests read captures with Wireshark's tshark. Install it with "
                    "`make system-deps` (or `sudo apt-get install -y tshark`).")
    return path


def tshark(capture: Path, *args: str, dissector: bool = True, home: Path | None = None) -> str:
    """tshark's standard output on ``capture``; fails the test on a Lua error or a tshark failure."""
    command = [need_tshark(), "-r", str(capture), "-n", *CHECKSUMS]
    if dissector:
        command += ["-X", f"lua_script:{DISSECTOR}"]
    env = {**os.environ, "LC_ALL": "C.UTF-8"}
    if home is not None:
        env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"))
    done = subprocess.run([*command, *args], capture_output=True, text=True, timeout=120, env=env)
    errors = "\n".join(line for line in done.stderr.splitlines() if "Running as user" not in line)
    assert done.returncode == 0, f"tshark failed ({done.returncode}): {errors}"
    assert "Lua" not in errors and "Lua Error" not in done.stdout, errors + done.stdout[:3000]
    return done.stdout


def fields(capture: Path, names: list[str], display_filter: str = "", **options) -> list[dict[str, str]]:
    """One dict per packet (matching ``display_filter``) of the named fields (several values joined by ',')."""
    args = ["-T", "fields", "-E", "separator=\t", "-E", "occurrence=a", "-E", "aggregator=,"]
    for name in names:
        args += ["-e", name]
    if display_filter:
        args += ["-Y", display_filter]
    out = tshark(capture, *args, **options)
    return [dict(zip(names, line.split("\t"))) for line in out.splitlines()]


def count(capture: Path, display_filter: str, **options) -> int:
    return len(fields(capture, ["frame.number"], display_filter, **options))


# --- real chats, recorded ------------------------------------------------------------------------

def secure_chat(loss: float = 0.2, seed: int = 16, messages: int = 6, password: str = "pw-secret"):
    """A TCRP/2 chat of alice and bob through a relay that loses ``loss`` of the datagrams each way
    (seeded), the server and both clients recording into one Trace. Returns (trace, chats posted)."""
    import random

    from tcrp_lab import ChatClient, ChatServer
    from tcrp_lab.attacks import UdpRelay
    from tcrp_lab.trace import Trace

    trace, rng = Trace(), random.Random(seed)
    with ChatServer(tcp_port=0, udp_port=0, trace=trace) as server, \
            UdpRelay(server.address, drop=lambda packet: rng.random() < loss) as relay:
        alice = ChatClient.create_room(server.address, "lab", "alice", password, trace=trace, udp_via=relay.address)
        bob = ChatClient.join_room(server.address, "lab", "bob", password, trace=trace, udp_via=relay.address)
        try:
            assert alice.wait_joined() and bob.wait_joined()
            texts = [f"message {i} from {'alice' if i % 2 == 0 else 'bob'}" for i in range(messages)]
            for i, text in enumerate(texts):
                (alice if i % 2 == 0 else bob).send(text)
            for client in (alice, bob):
                client.wait_for_messages(messages, timeout=30)
        finally:
            alice.close()
            bob.close()
    return trace, texts


def legacy_chat(seed: int = 16, messages: int = 4):
    """A TCRP/1 chat of alice and bob through a relay that drops each one's third datagram to the
    server (their second message) and every fourth to each of them; the server records. Returns
    (trace, texts sent)."""
    from collections import Counter

    from tests.conftest import wait_for

    from tcrp_lab import ChatServer
    from tcrp_lab.attacks import C2S, S2C, UdpRelay
    from tcrp_lab.legacy import LegacyClient, LegacyProfile
    from tcrp_lab.trace import Trace

    trace, seen = Trace(), Counter()

    def drop(packet) -> bool:   # by each client's own count: the same loss whatever the interleaving
        seen[packet.direction, packet.client] += 1
        n = seen[packet.direction, packet.client]
        return n == 3 if packet.direction == C2S else n % 4 == 0

    with ChatServer(tcp_port=0, udp_port=0, trace=trace, profile=LegacyProfile) as server, \
            UdpRelay(server.address, drop=drop) as relay:
        alice = LegacyClient.create_room(server.address, "lab", "alice", "pw-secret", udp_via=relay.address)
        bob = LegacyClient.join_room(server.address, "lab", "bob", "pw-secret", udp_via=relay.address)
        try:
            texts = [f"message {i}" for i in range(messages)]
            for i, text in enumerate(texts):
                (alice if i % 2 == 0 else bob).send(text)

            def settled() -> bool:   # every datagram the relay passed on has reached its end
                udp = [e for e in trace if e.transport == "udp"]
                c2s = [p for p in relay.captured(C2S) if p.forwarded is not None]
                s2c = relay.captured(S2C)
                return (len(relay.captured(C2S)) >= messages + 2 and len(c2s) == sum(e.direction == "in" for e in udp)
                        and len(s2c) == sum(e.direction == "out" for e in udp))

            wait_for(settled, timeout=10, what="the relay and the server to agree")
        finally:
            alice.close()
            bob.close()
    return trace, texts
