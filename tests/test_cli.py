"""The command lines as a user runs them: python -m tcrp_lab.server / tcrp_lab.client."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading

import pytest

from tcrp_lab import ChatClient, ChatServer
from rich.console import Console

from tcrp_lab.cli import render_item
from tcrp_lab.client import ServerBusy
from tcrp_lab.crypto import ServerKey
from tcrp_lab.limits import Limits

ENV = {**os.environ, "COLUMNS": "200", "PYTHONUNBUFFERED": "1"}


class Running:
    """A subprocess whose output lines can be awaited with a timeout."""

    def __init__(self, *args: str, stdin: str | None = None):
        self.proc = subprocess.Popen([sys.executable, "-m", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     stdin=subprocess.PIPE, text=True, env=ENV)
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()
        if stdin is not None:
            self.proc.stdin.write(stdin)
            self.proc.stdin.flush()

    def _pump(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line)

    def expect(self, pattern: str, timeout: float = 20) -> re.Match:
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"no line matching {pattern!r} within {timeout} s; saw:\n" + "".join(self.seen))
            self.seen.append(line)
            if m := re.search(pattern, line):
                return m

    def finish(self, timeout: float = 20) -> int:
        code = self.proc.wait(timeout)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


@pytest.fixture
def cli_server(tmp_path):
    run = Running("tcrp_lab.server", "--tcp-port", "0", "--udp-port", "0", "--key", str(tmp_path / "key.pem"))
    try:
        ready = run.expect(r"TCRP server ready .* tcp (\d+), udp (\d+)")
        fingerprint = run.expect(r"key fingerprint ([0-9a-f]{64})").group(1)
        yield run, ("127.0.0.1", int(ready.group(1))), fingerprint
    finally:
        run.kill()


def test_server_cli_serves_logs_and_stops_cleanly_on_sigterm(cli_server, tmp_path):
    run, address, fingerprint = cli_server
    assert ServerKey.load(tmp_path / "key.pem").fingerprint == fingerprint  # the key file was created
    alice = ChatClient.create_room(address, "lab", "alice", fingerprint=fingerprint)
    run.expect(r"\[lab\] alice created the room")
    bob = ChatClient.join_room(address, "lab", "bob")
    run.expect(r"\[lab\] bob joined")
    bob.leave()
    run.expect(r"\[lab\] bob left")
    run.proc.send_signal(signal.SIGTERM)
    run.expect("stopping")
    assert run.finish() == 0
    assert alice.wait_for_event("room_closed", timeout=5).reason == "server_shutdown"
    alice.close()


def test_legacy_server_cli_logs_joins_and_says_truly_that_it_tells_nobody_when_it_stops(tmp_path):
    from tcrp_lab.legacy import LegacyClient

    run = Running("tcrp_lab.server", "--legacy", "--tcp-port", "0", "--udp-port", "0", "--key", str(tmp_path / "k.pem"))
    try:
        ready = run.expect(r"TCRP server ready \(TCRP/1\) .* tcp (\d+), udp (\d+)")
        address = ("127.0.0.1", int(ready.group(1)), int(ready.group(2)))
        alice = LegacyClient.create_room(address, "lab", "alice", timeout=30)
        run.expect(r"\[lab\] alice created the room")
        bob = LegacyClient.join_room(address, "lab", "bob", timeout=30)
        run.expect(r"\[lab\] bob joined")
        alice.wait_for_messages(2)
        run.proc.send_signal(signal.SIGTERM)
        stopping = run.expect("stopping")
        assert "members are not told" in stopping.string and "telling every member" not in stopping.string
        assert run.finish() == 0
        assert alice.state == bob.state == "joined"   # nothing came: TCRP/1 has no shutdown notice
        alice.close()
        bob.close()
    finally:
        run.kill()


@pytest.mark.parametrize("args, message", [
    (["--tcp-port", "70000"], "not a port number"),
    (["--timeout", "-5"], "positive number of seconds"),
    (["--udp-port", "x"], "'x' is not a port number"),
])
def test_server_cli_rejects_bad_flags_with_a_clear_message(args, message):
    result = subprocess.run([sys.executable, "-m", "tcrp_lab.server", *args], capture_output=True, text=True,
                            env=ENV, timeout=30)
    assert result.returncode == 2 and message in result.stderr


def test_server_cli_refuses_a_broken_key_file(tmp_path):
    (tmp_path / "bad.pem").write_text("not a key")
    result = subprocess.run([sys.executable, "-m", "tcrp_lab.server", "--tcp-port", "0", "--udp-port", "0",
                             "--key", str(tmp_path / "bad.pem")], capture_output=True, text=True, env=ENV, timeout=30)
    assert result.returncode == 2 and "delete the broken file" in result.stdout + result.stderr


def test_server_cli_says_when_the_port_is_taken(tmp_path):
    with ChatServer("127.0.0.1", 0, 0, key=ServerKey.demo()) as busy:
        result = subprocess.run([sys.executable, "-m", "tcrp_lab.server", "--tcp-port", str(busy.address.tcp_port),
                                 "--udp-port", "0", "--key", str(tmp_path / "k.pem")],
                                capture_output=True, text=True, env=ENV, timeout=30)
    assert result.returncode == 1 and "Is another server running" in result.stdout + result.stderr


def test_client_cli_lists_creates_chats_and_leaves():
    with ChatServer("127.0.0.1", 0, 0, key=ServerKey.demo()) as server:
        port = str(server.address.tcp_port)
        listed = subprocess.run([sys.executable, "-m", "tcrp_lab.client", "list", "--tcp-port", port],
                                capture_output=True, text=True, env=ENV, timeout=30)
        assert "no rooms yet" in listed.stdout
        bob_seen: queue.Queue = queue.Queue()
        run = Running("tcrp_lab.client", "create", "lab", "--user", "alice", "--password", "pw", "--tcp-port", port,
                      "--fingerprint", server.fingerprint)
        try:
            run.expect(r"In room lab as alice \(host\)")
            bob = ChatClient.join_room(server.address, "lab", "bob", "pw", on_message=bob_seen.put)
            run.expect(r"bob joined")
            run.proc.stdin.write("hello from the terminal\n")
            run.proc.stdin.flush()
            assert bob_seen.get(timeout=10).text == "hello from the terminal"
            bob.send("hi alice")
            run.expect(r"bob: hi alice")
            listed = subprocess.run([sys.executable, "-m", "tcrp_lab.client", "list", "--tcp-port", port],
                                    capture_output=True, text=True, env=ENV, timeout=30)
            assert re.search(r"lab .*\(2 members\)", listed.stdout)
            run.proc.stdin.write("/leave\n")
            run.proc.stdin.flush()
            run.expect("you left the room")
            assert run.finish() == 0
            assert bob.wait_for_event("room_closed", timeout=5).reason == "host_left"
        finally:
            run.kill()


def test_client_cli_explains_usage_and_server_errors():
    with ChatServer("127.0.0.1", 0, 0, key=ServerKey.demo()) as server:
        port = str(server.address.tcp_port)
        usage = subprocess.run([sys.executable, "-m", "tcrp_lab.client", "join", "lab", "--tcp-port", port],
                               capture_output=True, text=True, env=ENV, timeout=30)
        assert usage.returncode == 2 and "needs a ROOM and --user NAME" in usage.stderr
        missing = subprocess.run([sys.executable, "-m", "tcrp_lab.client", "join", "nowhere", "-u", "bob",
                                  "--tcp-port", port], capture_output=True, text=True, env=ENV, timeout=30)
        assert missing.returncode == 1 and "There is no room called “nowhere”" in missing.stdout   # errors.ERRORS' hint
        assert "create it" in missing.stdout   # and what to do


def test_every_limit_is_a_server_flag_and_takes_effect(tmp_path):
    helped = subprocess.run([sys.executable, "-m", "tcrp_lab.server", "--help"], capture_output=True, text=True,
                            env=ENV, timeout=30)
    for name in Limits.names():
        assert f"--{name.replace('_', '-')}" in helped.stdout, name
    run = Running("tcrp_lab.server", "--tcp-port", "0", "--udp-port", "0", "--key", str(tmp_path / "key.pem"),
                  "--max-rooms-per-address", "1", "--chat-rate", "0")
    try:
        ready = run.expect(r"TCRP server ready .* tcp (\d+), udp (\d+)")
        address = ("127.0.0.1", int(ready.group(1)))
        alice = ChatClient.create_room(address, "one", "alice")
        with pytest.raises(ServerBusy, match="already has 1 rooms open"):
            ChatClient.create_room(address, "two", "alice")
        alice.close()
    finally:
        run.kill()
    bad = subprocess.run([sys.executable, "-m", "tcrp_lab.server", "--chat-rate", "-1"], capture_output=True,
                         text=True, env=ENV, timeout=30)
    assert bad.returncode == 2 and "below 0" in bad.stderr


HOSTILE = {   # what a classmate puts in a name or a chat to drive someone else's terminal
    "markup": "[bold red]alice[/] left",
    "closing tag": "x[/]y",
    "clipboard write (OSC 52)": "\x1b]52;c;ZXZpbA==\x07",
    "clear screen": "\x1b[2J\x1b[H",
    "bidi override": "\u202egnp.exe",
    "a forged line": "hi\n* bob left the room",
}


def test_the_terminal_client_shows_others_text_as_text_never_as_markup_or_escapes():
    with ChatServer("127.0.0.1", 0, 0, key=ServerKey.demo()) as server:
        port = str(server.address.tcp_port)
        host = ChatClient.create_room(server.address, "[/]", "host")   # a room named like markup
        run = Running("tcrp_lab.client", "join", "[/]", "--user", "x[/]y", "--tcp-port", port)
        try:
            run.expect(r"In room \[/\] as x\[/\]y")
            for what, text in HOSTILE.items():
                if "\x1b" in text or "\x07" in text:   # the server refuses C0 controls in a chat (§4.3)
                    with pytest.raises(ValueError, match="control character"):
                        host.send(text)
                else:
                    host.send(text)
            host.send("the end")
            run.expect(r"host: the end")
            out = "".join(run.seen)
            assert "\u202e" not in out
            assert "host: [bold red]alice[/] left" in out and "host: x[/]y" in out
            assert "\\u202egnp.exe" in out
            assert "host: hi\n  │ * bob left the room" in out       # the second line cannot pass for an event
            listed = subprocess.run([sys.executable, "-m", "tcrp_lab.client", "list", "--tcp-port", port],
                                    capture_output=True, text=True, env=ENV, timeout=30)
            assert listed.returncode == 0 and "[/]" in listed.stdout
            run.proc.stdin.write("é" * 1001 + "\n/leave\n")
            run.proc.stdin.flush()
            run.expect(r"not sent: A message must be 1-1000 characters")
            run.expect("you left the room")
            assert run.finish() == 0
        finally:
            run.kill()
            host.close()


@pytest.mark.parametrize("what", list(HOSTILE))
def test_a_line_from_a_hostile_server_reaches_the_terminal_as_visible_text(what):
    """Whatever a server relays (a hostile or legacy one need not refuse anything), the line printed
    holds no escape code, no bidi override, and the sender's name and text are not markup."""
    from tcrp_lab.client import ChatMessage, RoomEvent

    text = HOSTILE[what]
    for item in (ChatMessage(1, text, text, 0.0), RoomEvent("joined", text, text, 2), RoomEvent("refused", text)):
        console = Console(record=True, width=200, force_terminal=True, color_system="truecolor")
        console.print(render_item(item))
        shown = console.export_text()
        raw = console.export_text(styles=True)
        assert "\x1b" not in shown and "\x07" not in shown and "\u202e" not in shown
        assert not re.search(r"\x1b\][0-9]|\x1b\[[0-9;]*[HJK]", raw)   # only colour codes of our own
        if "[" in text and text.isprintable():
            assert text in shown   # markup shown literally, not interpreted


def test_the_server_cli_serves_version_2_with_handshake_rsa_and_the_client_cli_refuses_it_with_require_fs(tmp_path):
    run = Running("tcrp_lab.server", "--tcp-port", "0", "--udp-port", "0", "--key", str(tmp_path / "key.pem"),
                  "--handshake", "rsa")
    try:
        ready = run.expect(r"TCRP server ready \(TCRP/2, handshake version 2: RSA key transport, NOT forward secret\)"
                           r" .* tcp (\d+), udp (\d+)")
        port = ready.group(1)
        refused = subprocess.run([sys.executable, "-m", "tcrp_lab.client", "list", "--tcp-port", port, "--require-fs"],
                                 capture_output=True, text=True, env=ENV, timeout=30)
        assert refused.returncode == 1 and "offers only the version 2 handshake" in " ".join(refused.stdout.split())
        listed = subprocess.run([sys.executable, "-m", "tcrp_lab.client", "list", "--tcp-port", port,
                                 "--known-servers", str(tmp_path / "known")], capture_output=True, text=True, env=ENV,
                                timeout=30)
        assert "no rooms yet" in listed.stdout
        assert (tmp_path / "known").read_text().startswith(f"127.0.0.1:{port} ")
    finally:
        run.kill()


def test_the_client_cli_refuses_a_changed_key_and_says_what_to_do(tmp_path):
    known = tmp_path / "known"
    with ChatServer("127.0.0.1", 0, 0) as server:
        port = server.address.tcp_port
        known.write_text(f"127.0.0.1:{port} {'ab' * 32}\n")
        refused = subprocess.run([sys.executable, "-m", "tcrp_lab.client", "list", "--tcp-port", str(port),
                                  "--known-servers", str(known)], capture_output=True, text=True, env=ENV, timeout=30)
    text = " ".join(refused.stdout.split())
    assert refused.returncode == 1
    assert server.fingerprint in text and "ab" * 32 in text and "delete line 1" in text and "Nothing was sent" in text
