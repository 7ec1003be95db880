"""``python -m tcrp_lab.wireshark [--install [--folder DIR]]``: where the TCRP dissector is, or install it."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import DISSECTOR, install, plugin_folder


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m tcrp_lab.wireshark",
        description="The Wireshark dissector for TCRP. Without options: print where it is, for "
                    "tshark -X lua_script:PATH.")
    p.add_argument("--install", action="store_true",
                   help=f"copy it into Wireshark's personal plugin folder ({plugin_folder()}); restart Wireshark, "
                        "or press Ctrl-Shift-L (Analyze › Reload Lua Plugins)")
    p.add_argument("--folder", help="install into this folder instead")
    args = p.parse_args(argv)
    if not args.install:
        if args.folder:
            p.error("--folder goes with --install")
        print(DISSECTOR)
        return 0
    try:
        path = install(args.folder)
    except OSError as exc:
        print(f"cannot install the dissector: {exc}", file=sys.stderr)
        return 1
    print(f"installed {path}")
    print("Wireshark and tshark load it when they start (in Wireshark: Analyze › Reload Lua Plugins).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
