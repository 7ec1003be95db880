"""``tcrp-lab`` (and ``python -m tcrp_lab``): one command for the course, the classroom and the chat.

    tcrp-lab lab [DIR]        JupyterLab on the lessons (copied into DIR first; your edits kept)
    tcrp-lab lessons DIR      copy the lessons out of the package (--force replaces your edits)
    tcrp-lab server ...       a classroom server (python -m tcrp_lab.server)
    tcrp-lab client ...       a chat in the terminal (python -m tcrp_lab.client)
    tcrp-lab chat             the standalone chat page on http://127.0.0.1:8866 (Voilà)
    tcrp-lab bench ...        the benchmark (python -m tcrp_lab.bench)

Each subcommand's own ``--help`` lists its options.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

from . import __version__


def _entry(name: str) -> Callable[[Sequence[str]], int]:
    if name == "server":
        from .cli import server_main as main
    elif name == "client":
        from .cli import client_main as main
    elif name == "bench":
        from .bench import main
    elif name == "lab":
        from .launch import lab_main as main
    elif name == "lessons":
        from .launch import lessons_main as main
    else:
        from .launch import chat_main as main
    return main


COMMANDS = {
    "lab": "JupyterLab on the lessons, at lesson 00 of the student edition",
    "lessons": "copy the lessons into a folder (never over your edits without --force)",
    "server": "run a classroom server",
    "client": "chat from the terminal",
    "chat": "serve the standalone chat page (port 8866)",
    "bench": "measure the server",
}


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print("usage: tcrp-lab COMMAND [options]   (tcrp-lab COMMAND --help for its options)\n")
        print("\n".join(f"  {name:<9} {what}" for name, what in COMMANDS.items()))
        return 0 if args else 2
    if args[0] == "--version":
        print(f"tcrp_lab {__version__}")
        return 0
    if args[0] not in COMMANDS:
        print(f"tcrp-lab: unknown command {args[0]!r}; one of: " +
              "; ".join(f"{name} ({what})" for name, what in COMMANDS.items()), file=sys.stderr)
        return 2
    return _entry(args[0])(args[1:])


if __name__ == "__main__":
    raise SystemExit(main())
