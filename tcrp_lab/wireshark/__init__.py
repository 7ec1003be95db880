"""tcrp_lab's Wireshark dissector for TCRP (``tcrp.lua``, shipped with the package) and its installer.

``python -m tcrp_lab.wireshark --install`` copies the dissector into Wireshark's personal plugin
folder, where Wireshark and tshark load it at start; ``tshark -X lua_script:PATH`` loads it for one
run without installing (``python -m tcrp_lab.wireshark`` prints PATH). :func:`tshark` and
:func:`fields` run Debian's (or any) tshark with it from Python, as the lessons do.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["DISSECTOR", "fields", "install", "plugin_folder", "tshark"]

DISSECTOR = Path(__file__).with_name("tcrp.lua")   #: the dissector inside the installed package


def plugin_folder() -> Path:
    """Wireshark's personal plugin folder: %APPDATA%\\Wireshark\\plugins on Windows,
    ~/.local/lib/wireshark/plugins elsewhere (Wireshark's "About › Folders" shows it)."""
    if sys.platform == "win32":
        return Path(os.environ.get("APPDATA", Path.home() / "AppData" / "Roaming")) / "Wireshark" / "plugins"
    return Path.home() / ".local" / "lib" / "wireshark" / "plugins"


def install(folder: str | Path | None = None) -> Path:
    """Copy the dissector into ``folder`` (default :func:`plugin_folder`), made if missing, replacing
    an older copy; return the installed file's path."""
    target = Path(folder) if folder is not None else plugin_folder()
    target.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copyfile(DISSECTOR, target / DISSECTOR.name))


def tshark(capture: str | Path, *args: str, timeout: float = 120.0) -> str:
    """What ``tshark -r capture -X lua_script:tcrp.lua ARGS`` prints. RuntimeError, saying how to
    install it, when tshark is missing; with tshark's own message when it fails."""
    exe = shutil.which("tshark")
    if exe is None:
        raise RuntimeError("tshark is not installed: `sudo apt-get install tshark` (Debian, Ubuntu), "
                           "`brew install wireshark` (macOS), or Wireshark's installer (Windows)")
    done = subprocess.run([exe, "-r", str(capture), "-X", f"lua_script:{DISSECTOR}", *args], capture_output=True,
                          text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"tshark failed: {done.stderr.strip()}")
    return done.stdout


def fields(capture: str | Path, names: Sequence[str], display_filter: str = "") -> list[tuple[str, ...]]:
    """The named fields of each packet matching ``display_filter`` (tshark ``-T fields``), one tuple
    a packet; a field that occurs several times gives its values joined by commas."""
    args = ["-T", "fields", "-E", "separator=\t", "-E", "occurrence=a", "-E", "aggregator=,"]
    for name in names:
        args += ["-e", name]
    out = tshark(capture, *args, *(["-Y", display_filter] if display_filter else []))
    return [tuple(line.split("\t")) for line in out.splitlines()]
