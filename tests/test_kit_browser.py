"""The classroom kit in a real Chromium (Debian's): the standalone chat page, the teacher's dashboard,
and `make lab` / `tcrp-lab lab` opening without JupyterLab's news toast.

The chat: `python -m tcrp_lab server` (with its status endpoint, tokens given through the
environment) and `python -m tcrp_lab chat` (Voilà) run as a teacher and a class would run them; two
pages are two students who type the server's address, a room, a name and a password and chat. The
dashboard is a third page (Voilà on a one-cell notebook holding ``ServerDashboard(url, token=…,
admin_token=…)``, as a teacher would have it in a notebook): it shows both students, its "Close
room" button closes their room, and both chat pages say the room was closed.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

from tests.test_browser import OUTPUT, free_port, stop_process_tree

pytestmark = [pytest.mark.browser, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[1]
STARTUP = 120.0     # seconds for a server to answer (a loaded 2-core machine)
UI = 60_000         # ms for a page and its kernel to be ready
STEP = 30_000       # ms for one chat step to show


class Process:
    """A command in the background with its output in a file; stop() ends it and its children by PID."""

    def __init__(self, args: list[str], log: Path, env: dict[str, str] | None = None, cwd: Path = ROOT):
        self.log_path = log
        self._log = log.open("w")
        self.proc = subprocess.Popen(args, cwd=cwd, env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
                                     stdout=self._log, stderr=subprocess.STDOUT)

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text()[-4000:]

    def wait_http(self, url: str, timeout: float = STARTUP, headers: dict[str, str] | None = None) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"{self.proc.args[:4]} exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=5):
                    return
            except OSError:
                time.sleep(0.25)
        pytest.fail(f"{url} did not answer within {timeout} s:\n{self.log()}")

    def stop(self) -> None:
        stop_process_tree(self.proc)
        self._log.close()


def _jupyter_env(home: Path) -> dict[str, str]:
    """Temporary Jupyter folders: nothing on the machine changes what the browser sees."""
    return {"JUPYTER_CONFIG_DIR": str(home / "config"), "JUPYTER_DATA_DIR": str(home / "data"),
            "JUPYTER_RUNTIME_DIR": str(home / "runtime"), "IPYTHONDIR": str(home / "ipython"),
            "JUPYTER_PLATFORM_DIRS": "1"}


@pytest.fixture
def classroom(tmp_path):
    tcp, udp, status, chat, dash = (free_port() for _ in range(5))
    token, admin = secrets.token_urlsafe(12), secrets.token_urlsafe(12)
    jupyter = _jupyter_env(tmp_path / "jupyter")
    started: list[Process] = []
    try:
        server = Process([sys.executable, "-m", "tcrp_lab", "server", "--tcp-port", str(tcp), "--udp-port", str(udp),
                          "--status-port", str(status), "--key", str(tmp_path / "key.pem")], tmp_path / "server.log",
                         env={"TCRP_STATUS_TOKEN": token, "TCRP_ADMIN_TOKEN": admin})
        started.append(server)
        page = Process([sys.executable, "-m", "tcrp_lab", "chat", "--port", str(chat)], tmp_path / "chat.log",
                       env=jupyter)
        started.append(page)
        notebook = tmp_path / "dashboard.ipynb"
        nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
            "from tcrp_lab.dashboard import ServerDashboard\n"
            f"ServerDashboard('http://127.0.0.1:{status}', token={token!r}, admin_token={admin!r}, interval=0.5)")]),
            notebook)
        dashboard = Process([sys.executable, "-m", "voila", str(notebook), "--no-browser", f"--port={dash}",
                             "--Voila.ip=127.0.0.1", "--Voila.port_retries=0", "--show_tracebacks=True"],
                            tmp_path / "dashboard.log", env=jupyter, cwd=tmp_path)
        started.append(dashboard)
        server.wait_http(f"http://127.0.0.1:{status}/status", headers={"Authorization": f"Bearer {token}"})
        page.wait_http(f"http://127.0.0.1:{chat}/")
        dashboard.wait_http(f"http://127.0.0.1:{dash}/")
        yield {"tcp": tcp, "chat": f"http://127.0.0.1:{chat}/", "dashboard": f"http://127.0.0.1:{dash}/",
               "processes": started}
    finally:
        for process in reversed(started):
            process.stop()


def _browser(playwright, chromium_path, chromium_args):
    return playwright.chromium.launch(executable_path=chromium_path, args=chromium_args, headless=True)


def _shoot(pages: dict, tmp_path: Path) -> None:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    for name, page in pages.items():
        shot = tmp_path / f"{name}.png"
        try:
            page.screenshot(path=str(shot), full_page=True)
        except Exception:   # a closed page: the other screenshots still matter
            continue
        (OUTPUT / shot.name).write_bytes(shot.read_bytes())


def _student(page, expect, url: str, tcp: int, name: str) -> None:
    """Open the chat page, type the server's address, connect: the chat panel's form shows."""
    page.goto(url, timeout=UI)
    page.locator(".tcrp-server input").fill(f"127.0.0.1:{tcp}", timeout=UI)
    page.locator(".tcrp-connect").click()
    expect(page.locator(".tcrp-panel")).to_have_count(1, timeout=STEP)
    page.locator(".tcrp-username input").fill(name)
    # Nothing of Jupyter: no code, no cells, no prompts.
    assert page.locator(".jp-InputArea, .jp-CodeCell .jp-InputPrompt, .CodeMirror, .cm-editor").count() == 0
    expect(page.locator("body")).not_to_contain_text("ChatPage()")


def test_two_students_chat_on_the_standalone_page_and_the_dashboard_closes_their_room(
        classroom, chromium_path, chromium_args, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = _browser(playwright, chromium_path, chromium_args)
        pages = {}
        try:
            for name in ("alice", "bob", "teacher"):
                pages[name] = browser.new_page(viewport={"width": 1100, "height": 900})
                pages[name].set_default_timeout(UI)
            alice, bob, teacher = pages["alice"], pages["bob"], pages["teacher"]
            try:
                _student(alice, expect, classroom["chat"], classroom["tcp"], "alice")
                alice.locator(".tcrp-room input").fill("lab")
                alice.locator(".tcrp-password input").fill("secret")
                alice.locator(".tcrp-go").click()
                expect(alice.locator(".tcrp-status")).to_contain_text("connected", timeout=STEP)

                _student(bob, expect, classroom["chat"], classroom["tcp"], "bob")
                bob.locator(".tcrp-refresh").click()
                room = bob.locator(".tcrp-room-choice", has_text="lab")
                expect(room).to_have_text("lab · 1 member", timeout=STEP)
                room.click()
                expect(bob.locator(".tcrp-room input")).to_have_value("lab", timeout=STEP)
                expect(bob.locator(".tcrp-go")).to_have_text("Join room", timeout=STEP)
                bob.locator(".tcrp-password input").fill("secret")
                bob.locator(".tcrp-go").click()
                expect(bob.locator(".tcrp-status")).to_contain_text("(guest)", timeout=STEP)

                alice.locator(".tcrp-input input").fill("Hello from alice")
                alice.locator(".tcrp-input input").press("Enter")
                bob.locator(".tcrp-input input").fill("<i>Hi</i> alice")
                bob.locator(".tcrp-input input").press("Enter")
                for page in (alice, bob):
                    expect(page.locator(".tcrp-messages")).to_contain_text("Hello from alice", timeout=STEP)
                    expect(page.locator(".tcrp-messages")).to_contain_text("<i>Hi</i> alice", timeout=STEP)

                # The teacher's dashboard: the room, both students, the messages counted.
                teacher.goto(classroom["dashboard"], timeout=UI)
                lab = teacher.locator(".tcrp-dash-room", has_text="lab")
                expect(lab).to_have_count(1, timeout=UI)
                expect(lab.locator(".tcrp-dash-member")).to_have_count(2, timeout=STEP)
                expect(lab).to_contain_text("alice (host)")
                expect(lab).to_contain_text("bob")
                expect(teacher.locator(".tcrp-dash-summary")).to_contain_text("2 members", timeout=STEP)
                expect(teacher.locator(".tcrp-dash-packets")).to_contain_text("chat", timeout=STEP)

                lab.locator(".tcrp-dash-close").click()
                expect(teacher.locator(".tcrp-dash-notice")).to_contain_text("Closed room", timeout=STEP)
                expect(teacher.locator(".tcrp-dash-room", has_text="lab")).to_have_count(0, timeout=STEP)
                for page in (alice, bob):
                    expect(page.locator(".tcrp-notice")).to_contain_text(
                        "The room was closed because the server's operator (your teacher) closed it", timeout=STEP)
            finally:
                _shoot(pages, tmp_path)
        finally:
            browser.close()


def test_make_lab_opens_without_the_jupyter_news_toast(tmp_path, chromium_path, chromium_args):
    """`make lab` (which runs `tcrp-lab lab notebooks`) as a learner opens it: the notebook loads, its
    kernel is idle, and no "official Jupyter news" question is shown. The stamp given on the command
    line is fresh, so make does not reinstall this environment."""
    from playwright.sync_api import expect, sync_playwright

    port, token = free_port(), secrets.token_hex(8)
    stamp = tmp_path / "installed"
    stamp.touch()
    env = {**_jupyter_env(tmp_path / "jupyter"), "VIRTUAL_ENV": str(Path(sys.executable).parent.parent)}
    args = (f"--no-browser --ServerApp.ip=127.0.0.1 --ServerApp.port={port} --ServerApp.port_retries=0 "
            f"--IdentityProvider.token={token} --LabApp.user_settings_dir={tmp_path / 'user-settings'} "
            f"--LabApp.workspaces_dir={tmp_path / 'workspaces'}")
    lab = Process(["make", "--no-print-directory", "lab", f"STAMP={stamp}", f"LAB_ARGS={args}"],
                  tmp_path / "lab.log", env=env)
    try:
        lab.wait_http(f"http://127.0.0.1:{port}/api/status?token={token}")
        with sync_playwright() as playwright:
            browser = _browser(playwright, chromium_path, chromium_args)
            try:
                page = browser.new_page(viewport={"width": 1300, "height": 900})
                try:
                    page.goto(f"http://127.0.0.1:{port}/?token={token}", timeout=UI)   # / opens lesson 00
                    expect(page.locator(".jp-NotebookPanel")).to_be_visible(timeout=UI)   # lesson 00, opened by /lab
                    expect(page.locator(".jp-NotebookPanel .jp-Cell").first).to_be_visible(timeout=UI)
                    # Without the overrides the question shows about 0.5 s after the shell (checked by hand
                    # with a bare `jupyter lab`): look for 3 s more. A bounded look, not synchronisation.
                    page.wait_for_timeout(3000)
                    toasts = page.locator(".Toastify__toast")
                    assert toasts.filter(has_text="news").count() == 0, toasts.all_inner_texts()
                finally:
                    _shoot({"make_lab": page}, tmp_path)
            finally:
                browser.close()
        settings = json.load(urllib.request.urlopen(
            f"http://127.0.0.1:{port}/lab/api/settings/@jupyterlab/apputils-extension:notification?token={token}",
            timeout=10))
        assert settings["schema"]["properties"]["fetchNews"]["default"] == "false"
    finally:
        lab.stop()
