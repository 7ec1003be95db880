"""tcrp_lab's Wireshark dissector for TCRP (``tcrp.lua``, shipped with the package) and its installer.

``python -m tcrp_lab.wireshark --install`` copies the dissector into Wireshark's personal plugin
folder, where Wireshark and tshark load it at start; ``tshark -X lua_script:PATH`` loads it for one
run without installing (``python -m tcrp_lab.wireshark`` prints PATH).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

__all__ = ["DISSECTOR", "install", "plugin_folder"]

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
