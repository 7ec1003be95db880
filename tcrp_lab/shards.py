"""One UDP port, several sockets: the kernel gives each source address a queue of its own.

A single UDP socket has one receive queue. A student flooding it from one machine fills that
queue, and the kernel then drops everyone's datagrams alike; no budget in Python can help, since
the datagrams never reach Python. With ``SO_REUSEPORT`` several sockets share the port, and a
classic BPF program attached to the group (``SO_ATTACH_REUSEPORT_CBPF``, Linux 4.5 and later)
chooses the socket by the datagram's source IPv4 address: one address always lands in the same
queue, so a flood from one address fills only its own (TCRP.md §8.4). The UDP thread of
:class:`~tcrp_lab.server.ChatServer` reads the sockets in turn, a few datagrams from each.

Where that is not available (another system, an old kernel, IPv6), :func:`bind_udp` falls back to
one socket, as before.
"""

from __future__ import annotations

import ctypes
import socket
import struct
import sys

__all__ = ["bind_udp", "queue_of", "steering_program"]

SO_ATTACH_REUSEPORT_CBPF = 51        #: from <asm-generic/socket.h>
_SKF_NET_OFF = -0x100000             #: classic BPF: offsets from the network (IP) header
_BPF_LD_W_ABS, _BPF_ALU_MUL_K, _BPF_ALU_RSH_K, _BPF_ALU_MOD_K, _BPF_RET_A = 0x20, 0x24, 0x74, 0x94, 0x16


def steering_program(shards: int, key: int) -> bytes:
    """Classic BPF: ``A = source IPv4 address; A *= key; A >>= 24; A %= shards; return A`` (at most 256 shards).

    ``key`` (odd, random per server) mixes every bit of the address into the choice, so a student
    cannot pick an address that shares the queue of a classmate's without knowing it."""
    insns = [(_BPF_LD_W_ABS, 0, 0, (_SKF_NET_OFF + 12) & 0xFFFFFFFF),   # IPv4 header bytes 12-15: source
             (_BPF_ALU_MUL_K, 0, 0, key | 1),
             (_BPF_ALU_RSH_K, 0, 0, 24),                                # the top byte: the best mixed
             (_BPF_ALU_MOD_K, 0, 0, shards),
             (_BPF_RET_A, 0, 0, 0)]
    return b"".join(struct.pack("HBBI", *insn) for insn in insns)


def queue_of(address: str, shards: int, key: int) -> int:
    """The socket :func:`steering_program` picks for IPv4 ``address`` (what the kernel computes)."""
    value = int.from_bytes(socket.inet_aton(address), "big")
    return (((value * (key | 1)) & 0xFFFFFFFF) >> 24) % shards


def _attach(sock: socket.socket, program: bytes) -> None:
    code = ctypes.create_string_buffer(program, len(program))
    fprog = struct.pack("HxxxxxxP", len(program) // 8, ctypes.addressof(code))   # struct sock_fprog
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, fprog)


def bind_udp(host: str, port: int, shards: int, rcvbuf: int, key: int = 0x9E3779B1) -> list[socket.socket]:
    """Bind ``shards`` UDP sockets to ``(host, port)``, steered by source address, or one socket.

    OSError if the port is taken. The port is first bound without ``SO_REUSEPORT``, so a port that
    another program (or another server of ours) holds is refused rather than shared with it.
    """
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.bind((host, port))
    except OSError:
        probe.close()
        raise
    if shards <= 1 or sys.platform != "linux" or not hasattr(socket, "SO_REUSEPORT"):
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        return [probe]
    port = probe.getsockname()[1]
    probe.close()   # the port is free; the group takes it at once
    group: list[socket.socket] = []
    try:
        for _ in range(shards):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            group.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            sock.bind((host, port))
        _attach(group[0], steering_program(shards, key))
        return group
    except OSError:
        for sock in group:
            sock.close()
    single = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)   # no steering here: one queue, as before
    single.bind((host, port))
    single.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    return [single]
