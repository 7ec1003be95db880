"""Shared fixtures: the conformance vectors, a running server, bounded waiting."""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tcrp_lab import ChatServer
from tcrp_lab.crypto import ServerKey
from tcrp_lab.known_servers import ENV as KNOWN_SERVERS_ENV

KEY = ServerKey.demo()   # made once: RSA key generation is not what most tests are about
VECTORS_PATH = Path(__file__).with_name("tcrp2.json")
VECTORS3_PATH = Path(__file__).with_name("tcrp3.json")


# Clients remember servers (trust on first use) in a file of the test run's, never in the real home:
# set now, before test modules copy os.environ for their subprocesses.
os.environ[KNOWN_SERVERS_ENV] = str(Path(tempfile.mkdtemp(prefix="tcrp_known_")) / "known_servers")


@pytest.fixture(autouse=True)
def _known_servers(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test its own: servers on port 0 come back on a port another test's server had, with another key."""
    path = tmp_path_factory.mktemp("known") / "known_servers"
    monkeypatch.setenv(KNOWN_SERVERS_ENV, str(path))
    return path


@pytest.fixture(scope="session")
def vectors() -> dict:
    return json.loads(VECTORS_PATH.read_text())


@pytest.fixture
def server() -> Iterator[ChatServer]:
    """A TCRP/2 server on loopback, free ports, the demo key; stopped after the test."""
    with ChatServer("127.0.0.1", 0, 0, key=KEY) as running:
        yield running


@pytest.fixture(scope="session")
def vectors3() -> dict:
    return json.loads(VECTORS3_PATH.read_text())


def wait_for(condition: Callable[[], object], timeout: float = 5.0, what: str = "condition") -> object:
    """Poll ``condition`` until it is truthy; fail the test after ``timeout`` seconds.

    For state that offers no event to wait on (a thread ending, a counter in another thread).
    """
    deadline = time.monotonic() + timeout
    delay = 0.001
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


# --- browser fixtures (tests/test_browser.py) -------------------------------------------------

# tests/notebooks/ holds notebooks the browser test opens in JupyterLab; they are not lessons for nbval.
collect_ignore = ["notebooks"]

CHROMIUM = "/usr/bin/chromium"   # Debian's (make system-deps installs it); a browser is never downloaded
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """Debian's Chromium, or a failure saying how to install it (never a silent skip)."""
    if not (Path(CHROMIUM).is_file() and Path(CHROMIUM).stat().st_mode & 0o111):
        pytest.fail(f"{CHROMIUM} is missing: the browser tests drive Debian's Chromium. Install it with "
                    "`make system-deps` (or `sudo apt-get install -y chromium`), "
                    "or deselect them with -m 'not browser'.")
    return CHROMIUM


@pytest.fixture(scope="session")
def chromium_args() -> list[str]:
    return list(CHROMIUM_ARGS)


@pytest.fixture(scope="session")
def browser_type_launch_args(chromium_path: str) -> dict:
    """For pytest-playwright's ``page``/``browser`` fixtures, if installed: launch Debian's Chromium."""
    return {"executable_path": chromium_path, "args": list(CHROMIUM_ARGS)}
