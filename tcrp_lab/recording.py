"""Decrypting a recording later, with a stolen server key: what forward secrecy stops (TCRP.md §2.2).

A passive eavesdropper records every byte of a session (``TcpRelay.packets`` and
``UdpRelay.packets`` of :mod:`tcrp_lab.attacks` are such recordings) and reads nothing. Months
later the server's key file leaks. With the version 2 handshake the ClientKeyExchange is the
premaster encrypted to that key: the key opens it, and HKDF gives every session key, so the
recording yields the room password, the token and every chat. With version 3 the ClientKeyExchange
is the client's X25519 share; the session's secret is X25519(server's ephemeral private key,
client share), and the server erased that private key when the handshake ended. The stolen key
only ever signed: it opens nothing.

Sans-IO: :func:`open_recording` takes the captured packets and the stolen key, and returns what
they give up.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .crypto import (
    FS_VERSION, AuthenticationError, RecordLayer, ServerHello, ServerKey, SessionKeys, UdpChannel, accept_key_exchange,
)
from .protocol import Datagram, Message, ProtocolError, decode_message, decode_payload

__all__ = ["OpenedSession", "open_recording"]

C2S, S2C = "c2s", "s2c"


@dataclass(frozen=True)
class OpenedSession:
    """One recorded TCP connection, and whatever its UDP session gave up. ``keys`` is None when
    the recording stayed sealed, and ``missing`` says which secret it would have taken."""

    connection: int
    version: int
    keys: SessionKeys | None
    missing: str = ""
    messages: list[tuple[str, Message]] = field(default_factory=list)    # the TCP requests and replies
    datagrams: list[tuple[str, Any]] = field(default_factory=list)       # the UDP payloads, both ways

    @property
    def opened(self) -> bool:
        return self.keys is not None

    @property
    def credentials(self) -> tuple[str, str] | None:
        """(username, password) of the create or join request, if it was read."""
        for direction, message in self.messages:
            if direction == C2S and "password" in message.payload:
                return message.credentials()
        return None

    @property
    def token(self) -> bytes | None:
        for direction, message in self.messages:
            if direction == S2C and "token" in message.payload:
                return bytes.fromhex(message.payload["token"])
        return None

    @property
    def chats(self) -> list[str]:
        """The chat texts the client sent, in the order they were recorded (a retransmission once)."""
        sent = {p.id: p.text for d, p in self.datagrams if d == C2S and getattr(p, "TYPE", "") == "chat"}
        return list(sent.values())


def open_recording(tcp: Iterable[Any], udp: Iterable[Any], stolen: ServerKey) -> list[OpenedSession]:
    """Every recorded connection (packets with ``direction``, ``data`` and ``connection``), opened
    with the stolen key where that is possible."""
    connections: dict[int, list[Any]] = {}
    for packet in tcp:
        connections.setdefault(packet.connection, []).append(packet)
    udp = list(udp)
    return [_open_connection(number, packets, udp, stolen) for number, packets in sorted(connections.items())]


def _open_connection(number: int, packets: list[Any], udp: list[Any], stolen: ServerKey) -> OpenedSession:
    hello_packet = next(p for p in packets if p.direction == S2C)
    ckx_packet = next(p for p in packets if p.direction == C2S)
    hello = ServerHello.decode(hello_packet.data)
    if hello.version == FS_VERSION:
        return OpenedSession(number, hello.version, None, missing=(
            "the server's ephemeral X25519 private key: the session's secret is X25519(that key, the client's "
            f"share {ckx_packet.data.hex()[:16]}…), and the server erased it when the handshake ended; the stolen "
            "RSA key only signed the server's share, it encrypts nothing"))
    keys = accept_key_exchange(stolen, hello, ckx_packet.data)   # the premaster, opened years later
    records = {C2S: RecordLayer.server(keys), S2C: RecordLayer.client(keys)}   # each reads the other side
    messages: list[tuple[str, Message]] = []
    for packet in packets:
        if packet in (hello_packet, ckx_packet):
            continue
        try:
            messages.append((packet.direction, decode_message(records[packet.direction].open(packet.data))))
        except ProtocolError:
            break
    opened = OpenedSession(number, hello.version, keys, messages=messages)
    token = opened.token
    if token is None:
        return opened
    room = next(m.payload["room"] for d, m in messages if d == S2C and "token" in m.payload)
    channels = {C2S: UdpChannel.server(room, token, keys), S2C: UdpChannel.client(room, token, keys)}
    for packet in udp:
        try:
            datagram = Datagram.decode(packet.data)
            if datagram.token != token:
                continue
            plaintext = channels[packet.direction].open(datagram)
            opened.datagrams.append((packet.direction, decode_payload(plaintext, from_server=packet.direction == S2C)))
        except (ProtocolError, AuthenticationError):
            continue
    return opened
