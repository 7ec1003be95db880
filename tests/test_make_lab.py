"""The README's first command, `make lab`, really serves JupyterLab on the lessons: the student edition."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

from tests.conftest import wait_for

ROOT = Path(__file__).resolve().parents[1]
STUDENT = ROOT / "notebooks"


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


def _get(port: int, token: str, path: str) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}?token={token}", timeout=10) as reply:
        return json.load(reply)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # let the test read the 302 itself
        return None


def _redirect(port: int, token: str) -> str:
    """Where JupyterLab's / sends a browser (its default_url)."""
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        opener.open(f"http://127.0.0.1:{port}/?token={token}", timeout=10)
    except urllib.error.HTTPError as exc:
        assert exc.code == 302, exc.code
        return exc.headers["Location"]
    raise AssertionError("/ did not redirect")


def test_make_lab_serves_the_student_edition_with_the_solutions_beside_it(tmp_path):
    port, token = _free_port(), "make-lab-test"
    env = {**os.environ, "VIRTUAL_ENV": str(Path(sys.executable).parent.parent),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"), "JUPYTER_CONFIG_DIR": str(tmp_path / "config")}
    args = f"--no-browser --ServerApp.ip=127.0.0.1 --ServerApp.port={port} --ServerApp.port_retries=0 " \
           f"--IdentityProvider.token={token}"
    lab = subprocess.Popen(["make", "--no-print-directory", "lab", f"LAB_ARGS={args}"], cwd=ROOT, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(lambda: _status(port, token), timeout=90, what="JupyterLab to answer /api/status")
        listing = _get(port, token, "/api/contents")
        names = {item["name"]: item["type"] for item in listing["content"]}
        student = {p.name for p in STUDENT.glob("[0-9][0-9]_*.ipynb")}
        assert student and all(names.get(name) == "notebook" for name in student)
        assert names.get("solutions") == "directory"   # the worked answers, one deliberate step away
        solutions = {item["name"] for item in _get(port, token, "/api/contents/solutions")["content"]}
        assert student <= solutions
        # / opens lesson 00 of the student edition, exactly the committed file (no worked answers, no outputs)
        assert _redirect(port, token).split("?")[0] == "/lab/tree/00_start_here.ipynb"
        served = _get(port, token, "/api/contents/00_start_here.ipynb")["content"]
        committed = json.loads((STUDENT / "00_start_here.ipynb").read_text(encoding="utf-8"))
        assert [c["source"] for c in served["cells"]] == ["".join(c["source"]) for c in committed["cells"]]
    finally:
        os.killpg(lab.pid, signal.SIGTERM)  # make and the JupyterLab it started
        lab.wait(20)
