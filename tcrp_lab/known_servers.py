"""Trust on first use: each server's key fingerprint, remembered on first contact (TCRP.md §2.3).

What SSH does with ``~/.ssh/known_hosts``: the first time a client meets a server (a host and a TCP
port) it writes down the fingerprint of the key the server presented; every later time, a
different key is refused before anything is sent. The file, ``~/.tcrp_lab/known_servers`` unless
``TCRP_LAB_KNOWN_SERVERS`` names another, has one line per server::

    127.0.0.1:9001 f0bfff0d7aa8085582f8ea3c65921265dbb7bf34ff82c33c9546565681576ab2

The lessons' demo key is published with the package, so remembering it would protect nothing, and
the lessons start servers with it on new ports all the time: a server presenting it is let in
without being written down (:attr:`Verdict.DEMO`), unless that host and port are remembered with
another key, which is refused like any change.

The default memory also leaves out this machine's own servers (127.0.0.1, ::1, localhost,
:attr:`Verdict.LOCAL`): the lessons and the README start them on ports the system picks, so a port
comes back with another key sooner or later, and whoever could swap a key on this machine could
read its key file too. ``KnownServers(path)`` given a file remembers them as well.
"""

from __future__ import annotations

import enum
import functools
import os
import threading
from pathlib import Path

__all__ = ["ENV", "LOCAL_HOSTS", "KnownServers", "Verdict", "default_path", "demo_fingerprint"]

ENV = "TCRP_LAB_KNOWN_SERVERS"
MAX_LINE = 300          # a line longer than any host:port and fingerprint is not ours: ignored
LOCAL_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})   # this machine (127.0.0.2 and up stand for others)


class Verdict(enum.Enum):
    NEW = "new"           # never met: remembered now
    KNOWN = "known"       # the key remembered for this server
    CHANGED = "changed"   # another key than the one remembered: refuse
    DEMO = "demo"         # the published demo key on a server not remembered: let in, not written down
    LOCAL = "local"       # a server on this machine, and a memory that leaves them out: let in, not written down


def default_path() -> Path:
    return Path(os.environ.get(ENV) or Path.home() / ".tcrp_lab" / "known_servers")


@functools.cache
def demo_fingerprint() -> str:
    from .crypto import ServerKey

    return ServerKey.demo().fingerprint


def _name(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class KnownServers:
    """The fingerprints remembered in one file. Safe to share between threads; read on every check,
    so two clients (or two processes) see each other's first contacts."""

    _lock = threading.Lock()

    def __init__(self, path: str | os.PathLike[str] | None = None, *, remember_local: bool | None = None):
        self.path = Path(path) if path is not None else default_path()
        self.remember_local = path is not None if remember_local is None else remember_local

    def entries(self) -> dict[str, tuple[str, int]]:
        """``host:port`` -> (fingerprint, line number), from the file as it is now."""
        try:
            lines = self.path.read_text(encoding="utf-8", errors="replace").splitlines()
        except FileNotFoundError:
            return {}
        found: dict[str, tuple[str, int]] = {}
        for number, line in enumerate(lines, 1):
            parts = line.split()
            if len(line) <= MAX_LINE and len(parts) == 2 and not line.startswith("#"):
                found.setdefault(parts[0], (parts[1].lower(), number))   # the first line for a server wins
        return found

    def remembered(self, host: str, port: int) -> str | None:
        entry = self.entries().get(_name(host, port))
        return entry[0] if entry else None

    def check(self, host: str, port: int, fingerprint: str, remember: bool = True) -> Verdict:
        """What the fingerprint a server presents means; a NEW one is written down if ``remember``
        (a client first checks, then remembers once the handshake proved the server holds the key)."""
        with self._lock:
            known = self.remembered(host, port)
            if known is not None:
                return Verdict.KNOWN if known == fingerprint else Verdict.CHANGED
            if fingerprint == demo_fingerprint():
                return Verdict.DEMO
            if not self.remember_local and host in LOCAL_HOSTS:
                return Verdict.LOCAL
            if not remember:
                return Verdict.NEW
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(f"{_name(host, port)} {fingerprint}\n")
            return Verdict.NEW

    def forget(self, host: str, port: int) -> bool:
        """Drop what is remembered for a server (after its key really changed); True if there was something."""
        name = _name(host, port)
        with self._lock:
            try:
                lines = self.path.read_text(encoding="utf-8").splitlines(keepends=True)
            except FileNotFoundError:
                return False
            kept = [line for line in lines if line.split()[:1] != [name]]
            self.path.write_text("".join(kept), encoding="utf-8")
            return len(kept) != len(lines)

    def changed_message(self, host: str, port: int, presented: str) -> str:
        """What to tell the person when :meth:`check` said CHANGED: both fingerprints and what to do."""
        name = _name(host, port)
        known, line = self.entries().get(name, ("?", 0))
        return (f"the server at {name} presented a key with fingerprint {presented}, but the key remembered "
                f"for it (line {line} of {self.path}) has fingerprint {known}. Someone may be between you and "
                "the server (a man in the middle), or the server got a new key. Nothing was sent. Ask whoever "
                "runs the server for the fingerprint it printed at start: if it is the new one, delete line "
                f"{line} of {self.path} (or call KnownServers().forget({host!r}, {port})) and connect again; "
                "if it is not, do not connect.")

    def __repr__(self) -> str:
        return f"KnownServers({str(self.path)!r}, remember_local={self.remember_local})"
