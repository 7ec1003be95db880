"""Small socket helpers shared by the server and client shells."""

from __future__ import annotations

import socket
import time
from typing import NamedTuple

from .protocol import FRAME_LENGTH_BYTES, FrameReader, encode_frame

__all__ = ["ConnectionClosed", "FramedSocket", "ServerAddress", "parse_address"]


class ServerAddress(NamedTuple):
    """Where a TCRP server listens. A client needs only ``host`` and ``tcp_port``: the COMPLETE
    reply tells it the UDP port."""

    host: str
    tcp_port: int
    udp_port: int | None = None

    def __str__(self) -> str:
        udp = f", udp {self.udp_port}" if self.udp_port is not None else ""
        return f"{self.host} (tcp {self.tcp_port}{udp})"


def parse_address(address: ServerAddress | tuple | str) -> ServerAddress:
    """Accept a ServerAddress, a ``(host, tcp_port[, udp_port])`` tuple or ``"host:tcp_port"``."""
    if isinstance(address, ServerAddress):
        return address
    if isinstance(address, str):
        host, sep, port = address.rpartition(":")
        if not sep or not port.isdigit():
            raise ValueError(f"address {address!r} is not of the form 'host:tcp_port'")
        return ServerAddress(host, int(port))
    if isinstance(address, tuple) and len(address) in (2, 3):
        return ServerAddress(*address)
    raise ValueError(f"address {address!r} is not a (host, tcp_port) pair or 'host:port' string")


class ConnectionClosed(Exception):
    """The peer closed the TCP connection (or we hit the deadline) before a whole frame came."""


class FramedSocket:
    """Send and receive length-prefixed frames on a TCP socket, within an overall deadline."""

    def __init__(self, sock: socket.socket, deadline: float | None = None):
        self.sock = sock
        self.deadline = deadline   # time.monotonic() value, or None for no limit
        self._reader = FrameReader()
        self._ready: list[bytes] = []

    def send(self, body: bytes) -> bytes:
        """Send one frame; return the bytes that went on the wire."""
        frame = encode_frame(body)
        self._settimeout()
        self.sock.sendall(frame)
        return frame

    def recv(self) -> bytes:
        """Return the next frame body. ProtocolError on a bad length, ConnectionClosed on EOF,
        TimeoutError past the deadline."""
        while not self._ready:
            self._settimeout()
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionClosed("the peer closed the connection")
            self._ready += self._reader.feed(data)
        return self._ready.pop(0)

    @property
    def partial(self) -> int:
        """Bytes of an incomplete frame received so far."""
        return self._reader.buffered

    def _settimeout(self) -> None:
        if self.deadline is not None:
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("deadline passed")
            self.sock.settimeout(remaining)


def wire_frame(body: bytes) -> bytes:
    """The bytes of a frame as they were on the wire (for traces of received frames)."""
    return len(body).to_bytes(FRAME_LENGTH_BYTES, "big") + body
