"""``tcrp-lab lessons``, ``tcrp-lab lab`` and ``tcrp-lab chat``: the course and the chat page, from an installed package.

JupyterLab and Voilà run in this process (their own ``launch_instance``), with the arguments a
user adds passed on after ours, so a user's ``--port`` or ``--ServerApp.ip`` wins.

JupyterLab's "Would you like to get notified about official Jupyter news?" toast is a setting,
not a flag: ``--LabApp.news_url=None`` stops the feed but not the question. The Docker image writes
an ``overrides.json`` into the environment's app settings folder; this command must not write into
an environment it does not own, so it makes a temporary copy of that folder with the same
overrides merged in, points ``--LabApp.app_settings_dir`` at it, and removes it when Lab exits.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from .lessons import FIRST_LESSON, copy_lessons

__all__ = ["QUIET", "chat_main", "lab_main", "lessons_main", "quiet_settings"]

DEFAULT_DIR = "tcrp_lab_lessons"
CHAT_PAGE = Path(__file__).resolve().parent / "pages" / "chat.ipynb"
CHAT_PORT = 8866
#: What the Docker image's overrides.json says too: no news toast, no update check.
QUIET = {"@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": False}}


def quiet_settings(dest: Path) -> Path:
    """A copy of this environment's JupyterLab app settings in ``dest``, with QUIET merged into overrides.json."""
    from jupyterlab.commands import get_app_dir

    source = Path(get_app_dir()) / "settings"
    if source.is_dir():
        shutil.copytree(source, dest, dirs_exist_ok=True)
    dest.mkdir(parents=True, exist_ok=True)
    overrides_file = dest / "overrides.json"
    try:
        overrides = json.loads(overrides_file.read_text(encoding="utf-8")) if overrides_file.exists() else {}
    except ValueError:   # JupyterLab also accepts json5 there; ours then replaces it rather than failing
        overrides = {}
    for plugin, values in QUIET.items():
        overrides.setdefault(plugin, {}).update(values)
    overrides_file.write_text(json.dumps(overrides, indent=2), encoding="utf-8")
    return dest


def _report(dest: Path, force: bool) -> int:
    try:
        done = copy_lessons(dest, force=force)
    except OSError as exc:
        print(f"cannot copy the lessons into {dest}: {exc}", file=sys.stderr)
        return 2
    for rel in done.kept:
        print(f"kept your copy of {rel} (it differs from the package's; --force replaces it)")
    print(f"lessons in {dest}: {len(done.written)} written, {len(done.unchanged)} already there, "
          f"{len(done.kept)} of yours kept")
    return 0


def lessons_main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="tcrp-lab lessons", description=(
        "Copy the lessons (student edition, worked answers in notebooks/solutions/, the docs they link to) "
        "into DIR. A file you changed is never replaced unless --force."))
    p.add_argument("dir", type=Path, help="where to put them (made if missing)")
    p.add_argument("--force", action="store_true", help="replace files that differ from the package's (your edits)")
    args = p.parse_args(argv)
    return _report(args.dir, args.force)


def lab_main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="tcrp-lab lab", description=(
        "Open JupyterLab on the lessons, at lesson 00 of the student edition, with no news or update pop-ups. "
        "The lessons are copied into DIR first (your edits there are kept). Other options go to JupyterLab."))
    p.add_argument("dir", nargs="?", type=Path, default=Path(DEFAULT_DIR),
                   help=f"the folder of lessons (default ./{DEFAULT_DIR}); a folder that holds 00_start_here.ipynb "
                        "itself (a checkout's notebooks/) is opened as it is")
    p.add_argument("--force", action="store_true", help="replace lesson files that differ from the package's")
    args, extra = p.parse_known_args(argv)
    root = args.dir.expanduser().resolve()
    if (root / Path(FIRST_LESSON).name).is_file():   # a notebooks folder (make lab): open it as it is
        url = f"/lab/tree/{Path(FIRST_LESSON).name}"
    else:
        if (code := _report(root, args.force)) != 0:
            return code
        url = f"/lab/tree/{FIRST_LESSON}"
    from jupyterlab.labapp import LabApp

    with tempfile.TemporaryDirectory(prefix="tcrp-lab-settings-") as tmp:
        ours = [f"--ServerApp.root_dir={root}", f"--LabApp.default_url={url}", "--LabApp.news_url=None",
                "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
                f"--LabApp.app_settings_dir={quiet_settings(Path(tmp) / 'settings')}"]
        if hasattr(os, "getuid") and os.getuid() == 0:
            ours.append("--allow-root")   # in a container; Jupyter refuses root otherwise
        LabApp.launch_instance(argv=ours + list(extra))
    return 0


def chat_main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="tcrp-lab chat", description=(
        "Serve the standalone chat page (Voilà: a chat window, nothing of Jupyter) on http://IP:PORT. "
        "Other options go to Voilà."))
    p.add_argument("--ip", default=os.environ.get("TCRP_CHAT_IP", "127.0.0.1"),
                   help="address to listen on (default 127.0.0.1, or $TCRP_CHAT_IP; 0.0.0.0 in the Docker image)")
    p.add_argument("--port", type=int, default=CHAT_PORT, help=f"port (default {CHAT_PORT})")
    p.add_argument("--server", default=os.environ.get("TCRP_SERVER", ""),
                   help="pre-fill the classroom server's address, host:port (or $TCRP_SERVER)")
    p.add_argument("--fingerprint", default=os.environ.get("TCRP_FINGERPRINT", ""),
                   help="pre-fill the server key's fingerprint to pin (or $TCRP_FINGERPRINT)")
    args, extra = p.parse_known_args(argv)
    # The page's kernel inherits this process's environment: that is how it gets the pre-filled values.
    os.environ["TCRP_SERVER"], os.environ["TCRP_FINGERPRINT"] = args.server, args.fingerprint
    from voila.app import Voila

    Voila.launch_instance(argv=[str(CHAT_PAGE), "--no-browser", f"--port={args.port}", f"--Voila.ip={args.ip}",
                                "--Voila.port_retries=0", "--theme=light", *extra])
    return 0

