"""The host-side probes of scripts/container-check.sh pass on a working service and fail loudly otherwise.

The container check trusts them to tell a working image from a broken one, so each is shown both.
"""

from __future__ import annotations

import importlib.util
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tcrp_lab import ChatServer

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


chat_probe = load("chat_probe")
lab_probe = load("lab_probe")


def unused_port(kind: int) -> socket.socket:
    """A bound socket nobody serves on (TCP: not listening, so connects are refused)."""
    sock = socket.socket(socket.AF_INET, kind)
    sock.bind(("127.0.0.1", 0))
    return sock


def test_chat_probe_chats_both_ways_with_a_server(capsys):
    with ChatServer(tcp_port=0, udp_port=0) as server:
        assert chat_probe.main(["--tcp-port", str(server.address.tcp_port),
                                "--udp-port", str(server.address.udp_port), "--timeout", "10"]) == 0
    assert "alice and bob chatted both ways" in capsys.readouterr().out


def test_chat_probe_fails_when_chat_datagrams_get_no_answer(capsys):
    with ChatServer(tcp_port=0, udp_port=0) as server, unused_port(socket.SOCK_DGRAM) as silent:
        code = chat_probe.main(["--tcp-port", str(server.address.tcp_port),
                                "--udp-port", str(silent.getsockname()[1]), "--timeout", "2"])
    assert code == 1
    assert "chat probe failed" in capsys.readouterr().err


def test_chat_probe_gives_up_when_no_server_answers():
    with unused_port(socket.SOCK_STREAM) as closed:
        with pytest.raises(SystemExit, match="no TCRP server answered"):
            chat_probe.main(["--tcp-port", str(closed.getsockname()[1]), "--timeout", "1"])


class StatusOnly(BaseHTTPRequestHandler):
    """Answers /api/status like Jupyter and 404 to everything else."""

    def do_GET(self):  # noqa: N802 (http.server's naming)
        body = json.dumps({"started": "now"}).encode() if self.path == "/api/status" else b"{}"
        self.send_response(200 if self.path == "/api/status" else 404)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def status_only_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), StatusOnly)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def test_lab_probe_minimal_needs_only_api_status(status_only_server, capsys):
    assert lab_probe.main(["--url", status_only_server, "--token", "t", "--minimal"]) == 0
    assert "/api/status -> 200" in capsys.readouterr().out


def test_lab_probe_fails_when_the_lessons_do_not_open(status_only_server):
    with pytest.raises(SystemExit, match="/ should open /lab/tree/"):
        lab_probe.main(["--url", status_only_server, "--token", "t"])


def test_lab_probe_gives_up_when_nothing_answers():
    with unused_port(socket.SOCK_STREAM) as closed:
        with pytest.raises(SystemExit, match="did not answer 200 within 1"):
            lab_probe.main(["--url", f"http://127.0.0.1:{closed.getsockname()[1]}", "--token", "t",
                            "--timeout", "1"])


def fake_lab_handler(folders: dict[str, set[str]]):
    """A handler answering like the image's JupyterLab, serving only ``folders`` ({folder: notebook names})."""
    files = {f"{folder}/{name}" for folder, names in folders.items() for name in names} | lab_probe.linked_files()

    class FakeLab(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's naming)
            path = self.path.split("?")[0]
            settings = {"schema": {"properties": {"fetchNews": {"default": "false"},
                                                  "checkForUpdates": {"default": False}}}}
            answers = {"/api/status": {"started": "now"}, "/lab/api/news": {"news": []},
                       "/lab/api/update": {"notification": None},
                       "/lab/api/settings/@jupyterlab/apputils-extension:notification": settings}
            answers.update({f"/api/contents/{folder}": {"content": [{"name": n} for n in names]}
                            for folder, names in folders.items()})
            if path == "/":
                self.send_response(302)
                self.send_header("Location", f"/lab/tree/{lab_probe.FIRST_LESSON}")
                self.end_headers()
                return
            found = path in answers or path.removeprefix("/api/contents/") in files
            self.send_response(200 if found else 404)
            self.end_headers()
            self.wfile.write(json.dumps(answers.get(path, {})).encode())

        def log_message(self, *args):
            pass

    return FakeLab


@pytest.fixture
def fake_lab():
    servers = []

    def serve(folders):
        server = ThreadingHTTPServer(("127.0.0.1", 0), fake_lab_handler(folders))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


def test_lab_probe_passes_when_both_editions_and_their_links_are_served(fake_lab, capsys):
    assert lab_probe.main(["--url", fake_lab(lab_probe.notebooks()), "--token", "t"]) == 0
    out = capsys.readouterr().out
    assert f"/ opens /lab/tree/{lab_probe.FIRST_LESSON}" in out and "notebooks of both editions" in out


def test_lab_probe_fails_when_the_worked_answers_are_missing_from_the_image(fake_lab):
    only_students = {"notebooks": lab_probe.notebooks()["notebooks"], "notebooks/solutions": set()}
    with pytest.raises(SystemExit, match="notebooks missing from notebooks/solutions"):
        lab_probe.main(["--url", fake_lab(only_students), "--token", "t"])


def test_lab_probe_knows_both_editions_and_the_docs_they_link_to():
    editions = lab_probe.notebooks()
    assert lab_probe.FIRST_LESSON.split("/")[-1] in editions["notebooks"]
    assert editions["notebooks"] == editions["notebooks/solutions"]   # one student notebook per lesson
    assert "docs/TCRP.md" in lab_probe.linked_files()
