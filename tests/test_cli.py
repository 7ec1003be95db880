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
from tcrp_lab.crypto import ServerKey

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
        assert missing.returncode == 1 and "no room named 'nowhere'" in missing.stdout
