"""tcrp_lab: learn networking and applied cryptography by building a real group chat.

The layers, bottom up (see DESIGN in the README): :mod:`tcrp_lab.protocol` (the TCRP codec),
:mod:`tcrp_lab.crypto` (handshake, AEAD, replay window), :mod:`tcrp_lab.rooms` (the service
state), :mod:`tcrp_lab.server` and :mod:`tcrp_lab.client` (the threaded I/O shells),
:mod:`tcrp_lab.trace` (packet traces) and :mod:`tcrp_lab.widgets` (the Jupyter chat panel).

``ChatServer`` and ``ChatClient`` are imported lazily, so ``import tcrp_lab.protocol`` stays free
of sockets and threads.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "ChatServer": "tcrp_lab.server",
    "ChatClient": "tcrp_lab.client",
    "ChatMessage": "tcrp_lab.client",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'tcrp_lab' has no attribute {name!r}")


__all__ = ["ChatClient", "ChatMessage", "ChatServer", "__version__"]
