"""A trace as a pcapng capture, for Wireshark and tshark.

:func:`write_pcapng` writes every recorded TCP frame and UDP datagram as a packet with its real
timestamp, addresses and ports, inside IPv4 or IPv6 and TCP or UDP headers with correct lengths and
checksums (LINKTYPE_RAW: no link layer was captured). Wireshark reads it as if it had been captured
on the loopback interface, with these differences, all deliberate:

* TCP: the three-way handshake is written in front of a connection's first frame (SYN, SYN-ACK,
  ACK, at that frame's time; MSS 1460, window scale 7), and sequence and acknowledgement numbers
  follow the frames, so Wireshark's TCP analysis and reassembly work. A frame longer than 1460
  bytes is split into segments, as an Ethernet path would. No FIN is written: the trace does not
  say when a connection closed.
* A packet recorded by both ends (a server and a client sharing one Trace) is written once; a
  datagram that went through a relay is written for each hop, as a capture on ``lo`` shows it.
* An event that lost its own address (a trace saved before events carried ``local``) gets the
  server's default ports 9001/9002 and the loopback address, or a port derived from its session.
* A trace that kept only the first bytes of a frame writes those, with the frame's real length as
  the packet's original length (Wireshark shows "packet size limited during capture").

Each packet carries pcapng comments: what the recording side knew — the decrypted, decoded message
(``chat seq=4 from='bob' text='hi'``), with passwords masked unless ``show_passwords`` — and the
plaintext bytes as hex (``tcrp-plaintext: …``), which tcrp_lab's Wireshark dissector lays out as a
"Decrypted TCRP" tab. Session keys are never written. A capture with ``show_passwords=True`` holds the
passwords of the chat: treat it as the passwords themselves.

The format (draft-ietf-opsawg-pcapng): one Section Header Block, one Interface Description Block,
then one Enhanced Packet Block per packet, little-endian.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import struct
import zlib
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any, BinaryIO

from . import __version__
from .crypto import ServerHello
from .events import mask_passwords
from .explain import visible
from .protocol import Datagram, Message, Payload, ProtocolError

__all__ = ["PLAINTEXT_TAG", "comment", "write_pcapng"]

LINKTYPE_RAW = 101            #: raw IPv4 or IPv6, the version read from the first nibble
MSS = 1460                    #: TCP payload per segment (an Ethernet path)
WINDOW_SCALE = 7              #: shift announced in the SYNs: 65535 << 7 is an 8 MiB window, more than any trace sends
SERVER_PORTS = {"tcp": 9001, "udp": 9002}   #: TCRP.md §1 defaults, for events that lost their own address
COMMENT_CHARS = 2000          #: longest description comment
PLAINTEXT_BYTES = 16 * 1024   #: longest plaintext attached as hex (a pcapng option holds at most 65535 bytes)
PLAINTEXT_TAG = "tcrp-plaintext: "   #: how the plaintext comment starts (the dissector looks for it)
MASK = "*****"

_IPV4, _IPV6 = 4, 6
_PROTO = {"tcp": 6, "udp": 17}
_SYN, _ACK, _PSH = 0x02, 0x10, 0x08

Endpoint = tuple[Any, int]   # (ipaddress.IPv4Address | IPv6Address, port)


# --- what the recording side knew -------------------------------------------------------------

def comment(event: Any, *, show_passwords: bool = False) -> str:
    """One line saying what the side that recorded ``event`` knew of it: kind, decoded fields
    (passwords masked unless ``show_passwords``), the datagram's seq, and who recorded it."""
    event = event if show_passwords else mask_passwords(event, MASK)
    parts = [str(event.kind)]
    message = event.message
    if event.kind == "rejected":
        parts.append(f"({event.error or 'dropped'})")
    elif isinstance(message, ServerHello):
        parts.append(f"v{message.version} nonce={message.nonce.hex()} key fingerprint={message.fingerprint}")
    elif event.kind == "ServerHello" and event.raw[4:14] == b"-----BEGIN":
        parts.append("TCRP/1: the server's RSA public key in PEM, in clear")
    elif event.kind == "ClientKeyExchange":
        if event.plaintext is not None and len(event.plaintext) == 32:   # TCRP/1: AES key | IV (§6)
            parts.append(f"TCRP/1: RSA-OAEP of an AES-128 key (not written here) and iv={event.plaintext[16:].hex()}")
        else:
            parts.append("RSA-OAEP of the premaster secret" + ("; the session keys were derived" if event.keys else ""))
    elif isinstance(message, Message):
        parts.append(f"{message.operation.name} {message.state.name} room={message.room!r}")
        parts += [f"{k}={_value(v)}" for k, v in message.payload.items()]
    elif isinstance(message, Payload):
        parts += [f"{k}={_value(v)}" for k, v in message.to_json().items() if k != "type"]
    elif event.plaintext is not None:
        parts.append(_plaintext_text(event.plaintext))
    if event.transport == "udp":
        try:
            parts.append(f"· datagram seq {Datagram.decode(event.raw).seq}")
        except ProtocolError:
            pass
    elif event.seq is not None:
        parts.append(f"· record seq {event.seq}")
    if event.truncated:
        parts.append(f"· the trace kept {len(event.raw)} of {event.size} bytes")
    parts.append(f"· seen by the {event.side}")
    text = visible(" ".join(parts))
    return text if len(text) <= COMMENT_CHARS else text[: COMMENT_CHARS - 1] + "…"


def _value(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 300 else text[:299] + "…"


def _plaintext_text(plaintext: bytes) -> str:
    try:
        text = plaintext.decode("utf-8")
    except UnicodeDecodeError:   # a TCRP/1 token: 255 random bytes
        return f"{len(plaintext)} bytes: {plaintext[:32].hex()}{'…' if len(plaintext) > 32 else ''}"
    return f"text={text!r}"


def _plaintext(event: Any, show_passwords: bool) -> bytes | None:
    """The plaintext to attach, a request's password masked (the length changes with it)."""
    if not show_passwords:
        event = mask_passwords(event, MASK)
    plaintext = event.plaintext
    if plaintext is None or event.plaintext_size is not None or len(plaintext) > PLAINTEXT_BYTES:
        return None
    if event.kind in ("ClientKeyExchange", "ServerHello"):
        return None   # TCRP/1's AES key and IV are key material; its PEM key is on the wire in clear already
    return plaintext


# --- addresses --------------------------------------------------------------------------------

def _ip(host: Any) -> Any:
    try:
        ip = ipaddress.ip_address(str(host).split("%")[0])
    except ValueError:
        return None
    return ip.ipv4_mapped if getattr(ip, "ipv4_mapped", None) else ip


def _ends(event: Any) -> tuple[Endpoint, Endpoint] | None:
    """(source, destination) of the packet, or None when the event names no peer."""
    peer = event.peer
    if not (isinstance(peer, (tuple, list)) and len(peer) >= 2) or _ip(peer[0]) is None:
        return None
    remote = (_ip(peer[0]), int(peer[1]))
    local = event.local
    if not local and event.side == "client" and event.transport == "tcp" and str(event.session).startswith("tcp "):
        host, _, port = str(event.session)[4:].rpartition(":")   # the client's session names its own end
        local = (host, port) if port.isdigit() else None
    host = _ip(local[0]) if local else None
    if host is None or host.is_unspecified or host.version != remote[0].version:
        # A wildcard bind: the packet went to a loopback peer from loopback, else from "anywhere".
        loop = ipaddress.ip_address("127.0.0.1" if remote[0].version == _IPV4 else "::1")
        host = loop if remote[0].is_loopback else ipaddress.ip_address("0.0.0.0" if remote[0].version == 4 else "::")
    if local and str(local[1]).isdigit() and int(local[1]):
        port = int(local[1])
    elif event.side == "server":
        port = SERVER_PORTS.get(event.transport, 0)
    else:
        port = 49152 + zlib.crc32(str(event.session).encode()) % 16384
    mine = (host, port)
    return (mine, remote) if event.direction == "out" else (remote, mine)


# --- packets ----------------------------------------------------------------------------------

def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _ip_packet(src: Any, dst: Any, proto: int, segment: bytes, length: int, ident: int) -> bytes:
    """IP header + ``segment``; ``length`` is the transport length on the wire (more if cut)."""
    if src.version == _IPV4:
        header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + length, ident & 0xFFFF, 0x4000, 64, proto, 0,
                             src.packed, dst.packed)
        return header[:10] + struct.pack("!H", _checksum(header)) + header[12:] + segment
    return struct.pack("!IHBB16s16s", 0x60000000, length, proto, 64, src.packed, dst.packed) + segment


def _pseudo(src: Any, dst: Any, proto: int, length: int) -> bytes:
    if src.version == _IPV4:
        return src.packed + dst.packed + struct.pack("!BBH", 0, proto, length)
    return src.packed + dst.packed + struct.pack("!IxxxB", length, proto)


def _udp(src: Endpoint, dst: Endpoint, payload: bytes, length: int) -> bytes:
    header = struct.pack("!HHHH", src[1], dst[1], 8 + length, 0)
    total = _checksum(_pseudo(src[0], dst[0], 17, 8 + length) + header + payload) or 0xFFFF   # RFC 768: 0 is "none"
    return header[:6] + struct.pack("!H", total) + payload


def _tcp(src: Endpoint, dst: Endpoint, seq: int, ack: int, flags: int, payload: bytes, length: int) -> bytes:
    options = struct.pack("!BBHBBBB", 2, 4, MSS, 1, 3, 3, WINDOW_SCALE) if flags & _SYN else b""
    offset = (20 + len(options)) // 4
    header = struct.pack("!HHIIBBHHH", src[1], dst[1], seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, offset << 4, flags,
                         0xFFFF, 0, 0) + options
    total = _checksum(_pseudo(src[0], dst[0], 6, len(header) + length) + header + payload)
    return header[:16] + struct.pack("!H", total) + header[18:] + payload


# --- pcapng blocks ----------------------------------------------------------------------------

def _option(code: int, value: bytes) -> bytes:
    return struct.pack("<HH", code, len(value)) + value + b"\0" * (-len(value) % 4)


def _block(kind: int, body: bytes) -> bytes:
    length = 12 + len(body)
    return struct.pack("<II", kind, length) + body + struct.pack("<I", length)


def _options(*options: bytes) -> bytes:
    return b"".join(options) + (_option(0, b"") if options else b"")


class _Writer:
    """One section, one raw-IP interface, packets with microsecond timestamps and comments."""

    def __init__(self, out: BinaryIO):
        self.out = out
        self.packets = 0
        self._ident = 0
        shb = struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1) + _options(
            _option(4, f"tcrp_lab {__version__} (tcrp_lab.pcap)".encode()))
        idb = struct.pack("<HHI", LINKTYPE_RAW, 0, 0) + _options(
            _option(2, b"tcrp_lab trace"), _option(3, "what the chat's sockets sent and received".encode()))
        out.write(_block(0x0A0D0D0A, shb) + _block(1, idb))

    def packet(self, time: float, src: Endpoint, dst: Endpoint, transport: str, segment: bytes, missing: int = 0,
               comments: Iterable[str] = ()) -> None:
        """``missing``: bytes of the segment the trace did not keep (they count in the lengths)."""
        self._ident += 1
        data = _ip_packet(src[0], dst[0], _PROTO[transport], segment, len(segment) + missing, self._ident)
        original = len(data) + missing
        stamp = max(0, round(time * 1_000_000))
        body = struct.pack("<IIIII", 0, stamp >> 32, stamp & 0xFFFFFFFF, len(data), original) + data
        body += b"\0" * (-len(data) % 4)
        body += _options(*(_option(1, c.encode("utf-8")) for c in comments))
        self.out.write(_block(6, body))
        self.packets += 1


@dataclasses.dataclass
class _Connection:
    client: Endpoint
    server: Endpoint
    next_seq: dict[str, int]   # by sender: "client" / "server"


def _isn(end: Endpoint) -> int:
    return zlib.crc32(f"{end[0]}:{end[1]}".encode())   # deterministic: the same chat gives the same file


def write_pcapng(events: Iterable[Any], path: str | Path | BinaryIO, *, show_passwords: bool = False) -> int:
    """Write ``events`` (PacketEvents, in any order: they are sorted by time) as a pcapng capture to
    ``path`` (a file name or a binary file); return the number of packets written."""
    if hasattr(path, "write"):
        return _write(events, path, show_passwords)   # type: ignore[arg-type]
    with Path(path).open("wb") as out:
        return _write(events, out, show_passwords)


def _write(events: Iterable[Any], out: BinaryIO, show_passwords: bool) -> int:
    writer = _Writer(out)
    connections: dict[frozenset, _Connection] = {}
    unmatched: Counter[tuple] = Counter()   # packets one side recorded, waiting for the other side's record
    for event in sorted(events, key=lambda e: e.time):
        if event.transport not in _PROTO or (ends := _ends(event)) is None:
            continue
        src, dst = ends
        key = (event.transport, src, dst, event.raw)
        other = {"server": "client", "client": "server"}.get(event.side)
        if unmatched[(key, other)]:   # the other end recorded this very packet already
            unmatched[(key, other)] -= 1
            continue
        unmatched[(key, event.side)] += 1
        comments = [comment(event, show_passwords=show_passwords)]
        plaintext = _plaintext(event, show_passwords)
        if plaintext is not None:
            comments.append(PLAINTEXT_TAG + plaintext.hex())
        if event.transport == "udp":
            writer.packet(event.time, src, dst, "udp", _udp(src, dst, event.raw, event.size),
                          event.size - len(event.raw), comments)
            continue
        client, server = (src, dst) if event.flow == "c2s" else (dst, src)
        conn = connections.get(frozenset((client, server)))
        if conn is None:   # §2: the connection's first frame; the handshake comes first
            conn = connections[frozenset((client, server))] = _Connection(
                client, server, {"client": _isn(client) + 1, "server": _isn(server) + 1})
            writer.packet(event.time, client, server, "tcp", _tcp(client, server, _isn(client), 0, _SYN, b"", 0), 0,
                          ["TCP handshake written by tcrp_lab: the trace records frames, not the SYNs"])
            writer.packet(event.time, server, client, "tcp",
                          _tcp(server, client, _isn(server), _isn(client) + 1, _SYN | _ACK, b"", 0))
            writer.packet(event.time, client, server, "tcp",
                          _tcp(client, server, _isn(client) + 1, _isn(server) + 1, _ACK, b"", 0))
        sender = "client" if event.flow == "c2s" else "server"
        receiver = "server" if sender == "client" else "client"
        size, start = event.size, 0
        while start < size or start == 0:
            end = min(start + MSS, size)
            piece = event.raw[start:end]
            last = end >= size
            seg = _tcp(src, dst, conn.next_seq[sender] + start, conn.next_seq[receiver], _ACK | (_PSH if last else 0),
                       piece, end - start)
            writer.packet(event.time, src, dst, "tcp", seg, end - start - len(piece),
                          comments if last else [f"part of a {size}-byte frame: TCP carries it in several segments"])
            start = end
            if last:
                break
        conn.next_seq[sender] += size
    return writer.packets
