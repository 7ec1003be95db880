"""The README's first command, `make lab`, really serves JupyterLab on the lessons."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

from tests.conftest import wait_for

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _status(port: int, token: str) -> dict | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status?token={token}", timeout=2) as reply:
            return json.load(reply)
    except OSError:
        return None


def test_make_lab_serves_jupyterlab_on_the_lessons(tmp_path):
    port, token = _free_port(), "make-lab-test"
    env = {**os.environ, "VIRTUAL_ENV": str(Path(sys.executable).parent.parent),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"), "JUPYTER_CONFIG_DIR": str(tmp_path / "config")}
    args = f"--no-browser --ServerApp.ip=127.0.0.1 --ServerApp.port={port} --ServerApp.port_retries=0 " \
           f"--IdentityProvider.token={token}"
    lab = subprocess.Popen(["make", "--no-print-directory", "lab", f"LAB_ARGS={args}"], cwd=ROOT, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(lambda: _status(port, token), timeout=90, what="JupyterLab to answer /api/status")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/contents?token={token}", timeout=5) as reply:
            names = {item["name"] for item in json.load(reply)["content"]}
        assert "00_start_here.ipynb" in names and "07_breaking_the_legacy_design.ipynb" in names
    finally:
        os.killpg(lab.pid, signal.SIGTERM)  # make and the JupyterLab it started
        lab.wait(20)
