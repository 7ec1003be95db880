"""The wheel as a new user meets it: built from this checkout, installed (not editable) with its `lab`
extra into a fresh virtual environment, then `tcrp-lab lessons` and `tcrp-lab lab` with no checkout."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import urllib.request
import zipfile
from pathlib import Path

import pytest

from tests.conftest import wait_for

pytestmark = [pytest.mark.wheel, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[1]
STUDENT = sorted(p.name for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
INSTALL_TIMEOUT = 600   # seconds for pip to install JupyterLab and Voilà (from pip's cache when warm)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict:
    """A fresh venv (no system site-packages) holding the built wheel with [lab]; nothing of the checkout."""
    tmp = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp / "dist"), str(ROOT)],
                   check=True, timeout=300)
    wheel = next((tmp / "dist").glob("tcrp_lab-*.whl"))
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    bin_ = venv / "bin"
    subprocess.run([str(bin_ / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                    f"{wheel}[lab]"], check=True, timeout=INSTALL_TIMEOUT)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(PATH=f"{bin_}:{env.get('PATH', '')}", HOME=str(tmp / "home"), JUPYTER_PLATFORM_DIRS="1",
               PYTHONUNBUFFERED="1")
    (tmp / "home").mkdir()
    return {"wheel": wheel, "bin": bin_, "env": env, "work": tmp / "home"}


def test_the_installed_command_copies_the_lessons_and_keeps_a_learners_edits(installed):
    bin_, env, work = installed["bin"], installed["env"], installed["work"]
    where = subprocess.run([str(bin_ / "python"), "-c", "import tcrp_lab; print(tcrp_lab.__file__)"], cwd=work,
                           env=env, capture_output=True, text=True, check=True).stdout.strip()
    assert where.startswith(str(bin_.parent)) and "site-packages" in where   # the wheel, not this checkout
    names = set(zipfile.ZipFile(installed["wheel"]).namelist())
    assert {"tcrp_lab/lessons/LICENSE", "tcrp_lab/lessons/docs/TCRP.md", "tcrp_lab/pages/chat.ipynb"} <= names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)

    lessons = work / "course"
    out = subprocess.run([str(bin_ / "tcrp-lab"), "lessons", str(lessons)], cwd=work, env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert sorted(p.name for p in (lessons / "notebooks").glob("[0-9][0-9]_*.ipynb")) == STUDENT
    assert sorted(p.name for p in (lessons / "notebooks" / "solutions").glob("*.ipynb")) == STUDENT
    assert (lessons / "docs" / "TCRP.md").is_file() and (lessons / "README.md").is_file()
    assert (lessons / "LICENSE").read_text() == (ROOT / "LICENSE").read_text()

    mine = lessons / "notebooks" / STUDENT[0]
    mine.write_text(mine.read_text() + " ")   # the learner's edit
    again = subprocess.run([str(bin_ / "tcrp-lab"), "lessons", str(lessons)], cwd=work, env=env,
                           capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and f"kept your copy of notebooks/{STUDENT[0]}" in again.stdout
    assert mine.read_text().endswith(" ")
    forced = subprocess.run([str(bin_ / "tcrp-lab"), "lessons", str(lessons), "--force"], cwd=work, env=env,
                            capture_output=True, text=True, timeout=60)
    assert forced.returncode == 0 and "1 written" in forced.stdout
    assert mine.read_bytes() == (ROOT / "notebooks" / STUDENT[0]).read_bytes()


def _get(url: str):
    with urllib.request.urlopen(url, timeout=10) as reply:
        return json.load(reply)


def test_the_installed_tcrp_lab_lab_serves_the_lessons_quietly(installed):
    bin_, env, work = installed["bin"], installed["env"], installed["work"]
    port, token = _free_port(), secrets.token_hex(8)
    base = f"http://127.0.0.1:{port}"
    lab = subprocess.Popen([str(bin_ / "tcrp-lab"), "lab", "my-lessons", "--no-browser", "--ServerApp.ip=127.0.0.1",
                            f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
                            f"--IdentityProvider.token={token}"],
                           cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        def status():
            try:
                return _get(f"{base}/api/status?token={token}")
            except OSError:
                assert lab.poll() is None, lab.stdout.read().decode()[-3000:]
                return None

        wait_for(status, timeout=120, what="the installed tcrp-lab lab to answer /api/status")
        listing = {item["name"] for item in _get(f"{base}/api/contents/notebooks?token={token}")["content"]}
        assert set(STUDENT) <= listing and "solutions" in listing
        assert (work / "my-lessons" / "docs" / "GLOSSARY.md").is_file()
        # The settings JupyterLab gives the browser: no news question, no update check (as the image).
        notification = _get(f"{base}/lab/api/settings/@jupyterlab/apputils-extension:notification?token={token}")
        defaults = notification["schema"]["properties"]   # overrides.json shows as the schema's defaults
        assert defaults["fetchNews"]["default"] == "false"
        assert defaults["checkForUpdates"]["default"] is False
    finally:
        os.killpg(lab.pid, signal.SIGTERM)
        lab.wait(30)
