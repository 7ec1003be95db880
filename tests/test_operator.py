"""The teacher's side: closing a room and removing a member (TCRP.md §7), the status endpoint (§9) and
its tokens, the dashboard's bounded, escaped rendering, the lessons' copy and the tcrp-lab command."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tcrp_lab import ChatClient, ChatServer
from tcrp_lab.control import PACKETS, ServerControl
from tcrp_lab.events import PacketEvent
from tcrp_lab.lessons import copy_lessons, lesson_files
from tcrp_lab.status import RemoteControl, RemoteError, StatusEndpoint
from tests.conftest import wait_for

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def room():
    with ChatServer(tcp_port=0, udp_port=0) as server:
        alice = ChatClient.create_room(server.address, "lab", username="alice", password="")
        bob = ChatClient.join_room(server.address, "lab", username="bob", password="")
        wait_for(lambda: "bob" in alice.members, what="bob in alice's member list")
        try:
            yield server, alice, bob
        finally:
            alice.close()
            bob.close()


def _request(url: str, token: str | None = None, body: dict | None = None) -> tuple[int, dict]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(url, data=None if body is None else json.dumps(body).encode(), headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as reply:
            return reply.status, json.load(reply)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def test_removing_a_guest_kicks_it_and_tells_the_room(room):
    server, alice, bob = room
    ServerControl(server).remove_member("lab", "bob")
    wait_for(lambda: bob.state == "kicked", what="bob kicked")
    assert bob.events[-1].reason == "removed_by_operator"
    wait_for(lambda: "bob" not in alice.members, what="bob gone from alice's members")
    assert any(e.kind == "removed" and e.user == "bob" for e in alice.events)
    assert alice.state == "joined"


def test_closing_a_room_tells_every_member_and_removing_the_host_closes_it_too(room):
    server, alice, bob = room
    control = ServerControl(server)
    control.close_room("lab")
    for member in (alice, bob):
        wait_for(lambda m=member: m.state == "room_closed", what="room_closed")
        assert member.events[-1].reason == "closed_by_operator"
    assert server.stats["rooms"] == 0
    with pytest.raises(KeyError):
        control.close_room("lab")
    carol = ChatClient.create_room(server.address, "two", username="carol", password="")
    dave = ChatClient.join_room(server.address, "two", username="dave", password="")
    try:
        control.remove_member("two", "carol")
        wait_for(lambda: carol.state == "kicked" and dave.state == "room_closed", what="host removed, room closed")
        assert dave.events[-1].reason == "closed_by_operator"
    finally:
        carol.close()
        dave.close()


def test_the_status_is_bounded_and_counts_chats(room):
    server, alice, bob = room
    control = ServerControl(server)
    alice.send("one")
    bob.wait_for_messages(1, timeout=5)
    status = control.status()
    assert status["counters"]["chats"] == 1 and status["counters"]["members"] == 2
    [lab] = status["rooms"]
    assert {m["name"] for m in lab["members"]} == {"alice", "bob"} and lab["host"] == "alice"
    assert any(p["kind"] == "chat" for p in status["packets"]) and len(status["packets"]) <= PACKETS
    json.dumps(status)   # JSON-ready as it is
    for i in range(PACKETS * 3):   # the tap keeps only the last PACKETS
        server.trace(PacketEvent(0.0, "server", "in", "udp", ("127.0.0.1", i), "ping", b"x"))
    assert len(control.status()["packets"]) == PACKETS


def test_the_status_endpoint_needs_its_token_and_only_the_admin_token_acts(room):
    server, alice, bob = room
    with StatusEndpoint(ServerControl(server), port=0) as endpoint:
        url = endpoint.url
        assert _request(f"{url}/status")[0] == 401
        assert _request(f"{url}/status", "wrong")[0] == 401
        code, status = _request(f"{url}/status", endpoint.token)
        assert code == 200 and status["counters"]["members"] == 2
        assert _request(f"{url}/remove-member", endpoint.token, {"room": "lab", "user": "bob"})[0] == 403
        assert bob.state == "joined"
        assert _request(f"{url}/remove-member", endpoint.admin_token, {"room": "lab"})[0] == 400
        assert _request(f"{url}/close-room", endpoint.admin_token, {"room": "nope"})[0] == 404
        assert _request(f"{url}/close-room", endpoint.admin_token, {"room": "x" * 5000})[0] == 413
        assert _request(f"{url}/remove-member", endpoint.admin_token, {"room": "lab", "user": "bob"})[0] == 200
        wait_for(lambda: bob.state == "kicked", what="bob kicked through the endpoint")

        reader = RemoteControl(url, endpoint.token)
        assert reader.status()["counters"]["members"] == 1
        with pytest.raises(RemoteError, match="admin token"):
            reader.close_room("lab")
        RemoteControl(url, endpoint.token, endpoint.admin_token).close_room("lab")
        wait_for(lambda: alice.state == "room_closed", what="alice's room closed through the endpoint")


def test_the_dashboard_shows_names_as_text_and_at_most_its_bounds():
    pytest.importorskip("ipywidgets")
    from tcrp_lab import dashboard
    from tcrp_lab.dashboard import ServerDashboard

    with ChatServer(tcp_port=0, udp_port=0, max_rooms_per_address=100) as server:
        clients = [ChatClient.create_room(server.address, f"r{i}", username=f"<b>u{i}</b>", password="")
                   for i in range(dashboard.SHOWN_ROOMS + 3)]
        try:
            board = ServerDashboard(server, interval=60)
            try:
                rooms = board.rooms.children
                assert len(rooms) == dashboard.SHOWN_ROOMS + 1   # and one "… and 3 more rooms" line
                assert "3 more rooms" in rooms[-1].value
                member_line = rooms[0].children[1].children[0].value
                assert "&lt;b&gt;u" in member_line and "<b>u" not in member_line
                assert f"<b>{len(clients)}</b> rooms" in board.summary.value
                board.close_room("r0")
                assert "Closed room" in board.notice.value
                wait_for(lambda: clients[0].state == "room_closed", what="r0 closed from the dashboard")
            finally:
                board.close()
        finally:
            for client in clients:
                client.close()


def test_copying_the_lessons_keeps_a_learners_edits_unless_forced(tmp_path):
    first = copy_lessons(tmp_path)
    assert first.written == lesson_files() and not first.kept
    lesson = tmp_path / "notebooks" / "00_start_here.ipynb"
    lesson.write_text("my work")
    again = copy_lessons(tmp_path)
    assert again.kept == [Path("notebooks/00_start_here.ipynb")] and not again.written
    assert lesson.read_text() == "my work"
    forced = copy_lessons(tmp_path, force=True)
    assert forced.written == [Path("notebooks/00_start_here.ipynb")]
    assert lesson.read_bytes() == (ROOT / "notebooks" / "00_start_here.ipynb").read_bytes()


def test_the_lessons_hold_both_editions_and_what_they_link_to():
    files = {str(p) for p in lesson_files()}
    for lesson in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"):
        assert f"notebooks/{lesson.name}" in files and f"notebooks/solutions/{lesson.name}" in files
    assert {"docs/TCRP.md", "docs/GLOSSARY.md", "README.md", "LICENSE"} <= files


def test_quiet_settings_keep_the_environments_own_overrides(tmp_path, monkeypatch):
    import jupyterlab.commands

    from tcrp_lab.launch import QUIET, quiet_settings

    app = tmp_path / "app"
    (app / "settings").mkdir(parents=True)
    (app / "settings" / "overrides.json").write_text(json.dumps({"@jupyterlab/apputils-extension:themes": {
        "theme": "JupyterLab Dark"}, "@jupyterlab/apputils-extension:notification": {"other": 1}}))
    monkeypatch.setattr(jupyterlab.commands, "get_app_dir", lambda: str(app))
    merged = json.loads((quiet_settings(tmp_path / "run") / "overrides.json").read_text())
    assert merged["@jupyterlab/apputils-extension:themes"] == {"theme": "JupyterLab Dark"}
    notification = merged["@jupyterlab/apputils-extension:notification"]
    assert notification == {"other": 1, **QUIET["@jupyterlab/apputils-extension:notification"]}
    assert json.loads((app / "settings" / "overrides.json").read_text())["@jupyterlab/apputils-extension:notification"] \
        == {"other": 1}   # the environment's own file is untouched


@pytest.mark.parametrize("argv, expect", [
    (["server", "--help"], "--status-port"),
    (["client", "--help"], "list,create,join"),
    (["lessons", "--help"], "--force"),
    (["lab", "--help"], "student edition"),
    (["chat", "--help"], "Voil"),
    (["bench", "--help"], "--adversary"),
])
def test_python_m_tcrp_lab_dispatches_each_command(argv, expect):
    out = subprocess.run([sys.executable, "-m", "tcrp_lab", *argv], capture_output=True, text=True, timeout=60,
                         env={"COLUMNS": "200", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr
    assert expect in out.stdout


def test_an_unknown_command_says_which_exist():
    out = subprocess.run([sys.executable, "-m", "tcrp_lab", "serve"], capture_output=True, text=True, timeout=60,
                         env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)})
    assert out.returncode == 2 and "lab" in out.stderr and "server" in out.stderr


def test_tcrp_lab_server_prints_its_status_endpoint_and_tokens_that_work(tmp_path):
    from tests.test_cli import Running

    run = Running("tcrp_lab", "server", "--tcp-port", "0", "--udp-port", "0", "--status-port", "0",
                  "--key", str(tmp_path / "key.pem"))
    try:
        url = run.expect(r"status endpoint (http://127\.0\.0\.1:\d+)").group(1)
        token = run.expect(r"status token (\S+) \(read-only\)").group(1)
        admin = run.expect(r"admin token (\S+) ").group(1)
        assert token != admin
        assert _request(f"{url}/status")[0] == 401
        code, status = _request(f"{url}/status", token)
        assert code == 200 and status["server"]["profile"] == "TCRP/2" and status["rooms"] == []
        assert _request(f"{url}/close-room", admin, {"room": "none"})[0] == 404   # the admin token acts
    finally:
        run.kill()
