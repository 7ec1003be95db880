"""Two ChatPanels in a real JupyterLab, driven by a real Chromium (Debian's; never a downloaded one).

JupyterLab runs headless on 127.0.0.1 with a free port and a token, on a temporary copy of
``tests/notebooks/two_panels.ipynb`` (a cell starts a ChatServer on free ports, the next shows
two panels in an HBox — nothing else). Its settings, config, data and runtime directories are
temporary too, so nothing on the machine changes what the browser sees and the test changes
nothing on the machine. Playwright runs all cells from the Run menu, creates a room in panel one,
joins it from the room list in panel two, sends a message each way and checks both show in both
panels (and that markup and a bidi override in a message are shown as text); the screenshot goes
to ``test-output/`` (uploaded by CI) and to pytest's tmp path.

This is the end-to-end check that widget updates made from a ChatClient's receive thread reach
the browser with ipykernel 7.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

pytestmark = [pytest.mark.browser, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = Path(__file__).with_name("notebooks") / "two_panels.ipynb"
OUTPUT = ROOT / "test-output" / "browser"
STARTUP = 120.0        # seconds for JupyterLab to answer /api/status (a loaded 2-core machine)
UI = 60_000            # ms for the page, the kernel and the cells to be ready
STEP = 30_000          # ms for one chat step to show in both panels

# Settings the test's JupyterLab starts with: no news/update toast over the panels; every cell
# attached to the page (no virtual scrolling) so locators find the widgets; and the notebook's
# kernel started without asking (on a loaded machine the kernel specs can arrive after the
# notebook opens, and Lab then shows a "Select Kernel" dialog).
OVERRIDES = {
    "@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/notebook-extension:tracker": {"windowingMode": "none", "autoStartDefaultKernel": True},
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class JupyterLab:
    """``jupyter lab`` on ``root``, isolated in ``home``; stop() ends it and its kernels by PID."""

    def __init__(self, root: Path, home: Path):
        self.port, self.token = free_port(), secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{self.port}"
        settings = home / "app-settings"
        settings.mkdir(parents=True)
        (settings / "overrides.json").write_text(json.dumps(OVERRIDES))
        env = {**os.environ, "JUPYTER_CONFIG_DIR": str(home / "config"), "JUPYTER_DATA_DIR": str(home / "data"),
               "JUPYTER_RUNTIME_DIR": str(home / "runtime"), "IPYTHONDIR": str(home / "ipython"),
               "JUPYTER_PLATFORM_DIRS": "1", "PYTHONUNBUFFERED": "1"}
        self.log_path = home / "jupyterlab.log"
        self._log = self.log_path.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root",
             "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={self.port}", "--ServerApp.port_retries=0",
             f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={root}",
             "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
             f"--LabApp.app_settings_dir={settings}", f"--LabApp.user_settings_dir={home / 'user-settings'}",
             f"--LabApp.workspaces_dir={home / 'workspaces'}"],
            cwd=root, env=env, stdout=self._log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float) -> None:
        """Bounded wait for /api/status; fail with the server's log if it exits or never answers."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"JupyterLab exited with {self.process.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(f"{self.url}/api/status?token={self.token}", timeout=5) as reply:
                    if reply.status == 200:
                        return
            except OSError:
                pass
            try:
                self.process.wait(0.25)   # the poll interval; returns at once if JupyterLab exits
            except subprocess.TimeoutExpired:
                pass
        pytest.fail(f"JupyterLab did not answer within {timeout} s:\n{self.log()}")

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text()[-4000:]

    def stop(self) -> None:
        """SIGTERM JupyterLab (it shuts its kernels down), then kill whatever of it is left, by PID."""
        stop_process_tree(self.process)
        self._log.close()


def stop_process_tree(process: subprocess.Popen) -> None:
    """SIGTERM a process we started, then kill it and any of its children still alive, by PID (bounded)."""
    try:
        family = [psutil.Process(process.pid), *psutil.Process(process.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        family = []
    process.terminate()
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)
    _, alive = psutil.wait_procs(family, timeout=10)
    for child in alive:
        child.kill()


@pytest.fixture
def lab(tmp_path):
    root = tmp_path / "notebooks"
    root.mkdir()
    shutil.copy(NOTEBOOK, root / NOTEBOOK.name)   # Lab autosaves: never open the committed copy
    server = JupyterLab(root, tmp_path / "jupyter")
    try:
        server.wait_ready(STARTUP)
        yield server
    finally:
        server.stop()


def test_two_panels_chat_in_jupyterlab(lab, chromium_path, chromium_args, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path, args=chromium_args, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1250})
            page.set_default_timeout(UI)
            try:
                chat(page, expect, lab)
            finally:
                shoot(page, tmp_path)
        finally:
            browser.close()


def chat(page, expect, lab: JupyterLab) -> None:
    page.goto(f"{lab.url}/lab/tree/{NOTEBOOK.name}?token={lab.token}", timeout=UI)
    run_all(page, expect)

    panels = page.locator(".tcrp-panel")
    expect(panels).to_have_count(2, timeout=UI)
    one, two = panels.nth(0), panels.nth(1)
    assert one.get_attribute("class") != two.get_attribute("class")   # each panel has its own class

    # Panel one creates a password room.
    one.locator(".tcrp-username input").fill("alice")
    one.locator(".tcrp-room input").fill("lab")
    one.locator(".tcrp-password input").fill("secret")
    one.locator(".tcrp-go").click()
    expect(one.locator(".tcrp-status")).to_contain_text("connected", timeout=STEP)
    expect(one.locator(".tcrp-status")).to_contain_text("(host)")
    expect(one.locator(".tcrp-messages")).to_contain_text("alice created the room", timeout=STEP)

    # Panel two finds it in the room list (with its lock), joins it.
    two.locator(".tcrp-username input").fill("bob")
    two.locator(".tcrp-refresh").click()
    room = two.locator(".tcrp-room-choice", has_text="lab")
    expect(room).to_have_text("lab · 1 member", timeout=STEP)
    expect(room.locator("i.fa-lock")).to_have_count(1)
    room.click()
    expect(two.locator(".tcrp-room input")).to_have_value("lab", timeout=STEP)
    expect(two.locator(".tcrp-go")).to_have_text("Join room", timeout=STEP)
    two.locator(".tcrp-password input").fill("secret")
    two.locator(".tcrp-go").click()
    expect(two.locator(".tcrp-status")).to_contain_text("(guest)", timeout=STEP)
    expect(one.locator(".tcrp-messages")).to_contain_text("bob joined", timeout=STEP)
    expect(one.locator(".tcrp-members")).to_contain_text("bob", timeout=STEP)

    # A message each way, sent with Enter; both show in both panels, each panel's own distinguished.
    one.locator(".tcrp-input input").fill("Hello from alice")
    one.locator(".tcrp-input input").press("Enter")
    for panel in (one, two):
        expect(panel.locator(".tcrp-messages")).to_contain_text("Hello from alice", timeout=STEP)
    expect(one.locator(".tcrp-input input")).to_have_value("", timeout=STEP)
    two.locator(".tcrp-input input").fill("Hi alice, bob here")
    two.locator(".tcrp-input input").press("Enter")
    for panel in (one, two):
        expect(panel.locator(".tcrp-messages")).to_contain_text("Hi alice, bob here", timeout=STEP)
    expect(one.locator(".tcrp-mine")).to_contain_text("Hello from alice")
    expect(one.locator(".tcrp-theirs")).to_contain_text("Hi alice, bob here")
    expect(two.locator(".tcrp-mine")).to_contain_text("Hi alice, bob here")
    expect(two.locator(".tcrp-theirs")).to_contain_text("Hello from alice")

    # Text from others is shown as text: markup stays as typed, a bidi override is shown as an escape.
    two.locator(".tcrp-input input").fill("<b>not bold</b> [bold]x[/] \u202eevil")
    two.locator(".tcrp-input input").press("Enter")
    expect(one.locator(".tcrp-messages")).to_contain_text("<b>not bold</b> [bold]x[/] \\u202eevil", timeout=STEP)
    expect(one.locator(".tcrp-messages b", has_text="not bold")).to_have_count(0)

    # Panel one's packet pane, fed by its client's trace from the receive thread.
    one.locator(".tcrp-trace-toggle").click()
    trace = one.locator(".tcrp-trace")
    for kind in ("ServerHello", "ClientKeyExchange", "welcome", "chat"):
        expect(trace).to_contain_text(kind, timeout=STEP)
    expect(trace).to_contain_text("Hi alice, bob here", timeout=STEP)


def run_all(page, expect) -> None:
    """Run every cell from the Run menu, once the kernel is connected.

    The execution indicator says "idle" while the notebook still has "No Kernel"; cells run then
    are dropped, or Lab asks which kernel to use, or the widgets they display arrive before the
    widget manager ("model not found"). So wait for the status bar to name the kernel and say
    Idle. Then run all, and if no cell shows as queued or run ("[*]" or "[1]") soon, accept a
    kernel dialog if any and try again, within UI ms.
    """
    page.locator(".jp-StatusBar-TextItem").filter(has_text=re.compile(r"^(?!No Kernel).+ \| Idle$")).wait_for(
        timeout=UI)
    started = page.locator(".jp-Cell .jp-InputPrompt").filter(has_text="[*]").or_(
        page.locator(".jp-Cell .jp-InputPrompt").filter(has_text="[1]"))
    deadline = time.monotonic() + UI / 1000
    while True:
        accept = page.locator(".jp-Dialog .jp-mod-accept")
        if accept.count():
            accept.first.click()
        page.locator("div.lm-MenuBar-itemLabel:text-is('Run')").click()
        page.locator("li.lm-Menu-item[data-command='runmenu:run-all']").click()
        try:
            expect(started.first).to_be_visible(timeout=10_000)
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise


def shoot(page, tmp_path: Path) -> None:
    """Screenshots (the page; the two panels if shown) in pytest's tmp path and in test-output/ (kept
    by CI), pass or fail."""
    OUTPUT.mkdir(parents=True, exist_ok=True)
    shots = [tmp_path / "jupyterlab.png"]
    page.screenshot(path=str(shots[0]))
    panels = page.locator(".widget-hbox:has(> .tcrp-panel)")
    if panels.count() == 1:
        panels.scroll_into_view_if_needed()
        shots.append(tmp_path / "two_panels.png")
        panels.screenshot(path=str(shots[-1]))
        page.screenshot(path=str(shots[0]))
    for shot in shots:
        shutil.copy(shot, OUTPUT / shot.name)
