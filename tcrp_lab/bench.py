"""``python -m tcrp_lab.bench``: how a classroom server holds up, next to a bare UDP relay, in one run.

What it measures on loopback (``--json`` prints one JSON object; rich progress goes to stderr):

* **joins**: N guests (default 50) join one open room at once — TCP handshake, JOIN_ROOM,
  COMPLETE, then UDP ``hello`` until ``welcome``; wall time and p50/p95 per join;
* **fan-out**: a room of M members (default 50): deliveries/s and loss at full speed (a window of
  messages in flight, so the server is never idle and its queue never overflows), latency
  p50/p99 at a steady rate (default 200 messages/s), and a classroom burst (100 members each
  send one message at once);
* **the baseline**: a bare Python UDP relay (``recvfrom``, then ``sendto`` the same M addresses,
  no crypto) driven by the same senders and read by the same receivers; ours / relay is the ratio;
* **memory**: the server's RSS per idle member with 1000 members (20 rooms of 50).

``--legacy-joins`` measures something else: 20, then 50 guests joining one TCRP/1 room at once on the
legacy profile, each connection making its own RSA-2048 key as the original did (TCRP.md §6), each guest
waiting as long as it takes, as the original client did: how many were served, how long it took, and
what the server dropped (``tcp_deadline``: a guest that waited out the handshake deadline).

``--handshakes`` measures only the cost of forward secrecy (TCRP.md §2.2): the same 50 joins at once
on a server speaking handshake version 2 (RSA-OAEP decryption per join) and on one speaking
version 3 (an RSA-PSS signature and an X25519 computation per join), with the server's CPU per join.

The server and the relay each run in a child process, so their CPU time and RSS are their own.
The server of these scenarios lifts three classroom budgets (:data:`LIFTED`: ``chat_rate``,
``address_rate`` and ``connection_rate``, TCRP.md §8), because one member sends 1000+ chats/s at full
speed and 250 joins come in seconds, all from 127.0.0.1; every other limit is the default.
``--adversary`` (:mod:`tcrp_lab.adversary`) lifts nothing: it measures a classroom's load on the defaults,
alone and next to each attacker.
The members are cheap raw UDP sockets whose sessions were made by the real handshake
(:class:`~tcrp_lab.client.ControlConnection`): the receiving side only timestamps datagrams, and
decrypts them after the clock stopped, so it measures the server, not the clients.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import logging
import math
import os
import platform
import selectors
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .arguments import positive
from .client import ControlConnection
from .crypto import (
    RecordLayer, ServerHello, UdpChannel, client_key_exchange, derive_session_keys, open_sealed, system_random,
)
from .net import FramedSocket
from .protocol import (
    Chat, Datagram, Hello, Leave, Message, ProtocolError, RoomChat, State, Welcome, decode_message,
    decode_payload,
)

__all__ = ["main", "run"]

TEXT_SIZE = 48            #: characters of each benchmark chat message (a typical classroom line)
WINDOW = 16               #: room messages in flight at "full speed"
RCVBUF = 1 << 21          #: receive buffer of every member socket: nothing is lost at our end
SETTLE = 0.1              #: seconds of silence that mean a member socket has drained
RELAY_JOIN, RELAY_OK, RELAY_RESET = b"\x00join", b"\x00ok", b"\x00reset"

#: Budgets lifted on the throughput scenarios' server (never in --adversary): one member sends
#: 1000+ chats/s at full speed and 100 members send at once from one address, past the classroom
#: defaults of 250 chats/s per session and 5000 datagrams/s per address (TCRP.md §8.4).
LIFTED = {"chat_rate": 0, "address_rate": 0, "connection_rate": 0}

TARGETS = {  # the targets: (key, comparison, bound, what)
    "join_wall_s": ("<", 0.2, "50 joins at once under 0.2 s"),
    "ratio_to_relay": (">=", 0.2, "fan-out at least 0.2x the bare relay"),
    "burst_s": ("<", 1.0, "burst of 100 senders delivered in under 1 s"),
    "burst_loss": ("==", 0.0, "burst: nothing lost"),
    "latency_p99_ms": ("<", 5.0, "p99 under 5 ms at 200 msg/s, room of 50"),
    "bytes_per_idle_member": ("<", 20_000, "under 20 KB per idle member"),
}


# --- the measured processes ------------------------------------------------------------------

def _serve_chat(max_members: int, lifted: bool, legacy: bool = False, handshake: str = "x25519") -> None:
    """Child: a ChatServer; answers ``stats`` and ``stop`` lines on stdin with JSON lines.

    ``lifted``: the throughput scenarios' server (LIFTED budgets, members kept for an hour);
    otherwise every limit and timeout is the default (the adversary scenarios). ``legacy``: TCRP/1.
    """
    from .server import ChatServer

    options: dict[str, Any] = {"inactivity_timeout": 3600, "max_members": max_members, **LIFTED} if lifted else {}
    if legacy:
        logging.getLogger("tcrp_lab.legacy").setLevel(logging.ERROR)   # its INSECURE banner: not on our stderr
        from .legacy import LegacyProfile

        options["profile"] = LegacyProfile
    server = ChatServer("127.0.0.1", 0, 0, handshake=handshake, **options)
    log, logger = _LogTail(), logging.getLogger("tcrp_lab.server")
    logger.addHandler(log)   # what a teacher reads (its reports of drops): kept for the result, not on our stderr
    logger.setLevel(logging.INFO)
    server.start()
    _say({"tcp": server.address.tcp_port, "udp": server.address.udp_port, "fingerprint": server.fingerprint,
          "limits": dataclasses.asdict(server.limits), "version": getattr(server.profile, "version", 1)})
    for line in sys.stdin:
        if line.strip() == "stats":
            stats = server.stats
            sources = {"127.0.0.1", *stats["drops_by_source"]} - {"?", "others"}
            _say({**stats, "kernel_drops": _kernel_drops(server.address.udp_port), "log": log.take(),
                  "udp_queues_of": {ip: server.udp_queue_of(ip) for ip in sources}})
        elif line.strip() == "stop":
            break
    start = time.perf_counter()
    server.stop()
    _say({"stop_s": time.perf_counter() - start})


class _LogTail(logging.Handler):
    """The server's log lines (among them its reports of what it dropped) since the last :meth:`take`; at most 100."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: deque[str] = deque(maxlen=100)

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    def take(self) -> list[str]:
        return [self.lines.popleft() for _ in range(len(self.lines))]


def _kernel_drops(udp_port: int) -> int | None:
    """Datagrams the kernel dropped because a UDP receive buffer of the server was full (Linux only;
    every socket on the port): lost before the server could see, count or refuse them."""
    try:
        with open("/proc/net/udp") as f:
            return sum(int(fields[-1]) for fields in map(str.split, f.readlines()[1:])
                       if int(fields[1].split(":")[1], 16) == udp_port)
    except (OSError, ValueError, IndexError):
        return None


def _serve_relay() -> None:
    """Child: the baseline. ``recvfrom``, then ``sendto`` every registered address; no crypto."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
    _say({"udp": sock.getsockname()[1]})
    threading.Thread(target=lambda: (sys.stdin.read(), os._exit(0)), daemon=True).start()  # EOF: done
    addresses: list[tuple[str, int]] = []
    while True:
        data, peer = sock.recvfrom(4097)
        if data[:1] == b"\x00":  # control: members register, the bench resets between scenarios
            if data == RELAY_JOIN:
                addresses.append(peer)
                sock.sendto(RELAY_OK, peer)
            elif data == RELAY_RESET:
                addresses.clear()
                sock.sendto(RELAY_OK, peer)
            continue
        for address in addresses:
            sock.sendto(data, address)


def _say(obj: dict[str, Any]) -> None:
    print(json.dumps(obj), flush=True)


class Child:
    """A measured process (``server`` or ``relay``): its ports, CPU time and RSS, via psutil.

    ``lifted``: the server runs with the LIFTED budgets; False runs it with every default.
    """

    def __init__(self, kind: str, max_members: int = 256, lifted: bool = True, legacy: bool = False,
                 handshake: str = "x25519"):
        import psutil

        self.kind = kind
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tcrp_lab.bench", "--child", kind, "--max-members", str(max_members),
             *(["--lifted"] if lifted else []), *(["--legacy"] if legacy else []), "--child-handshake", handshake],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        self.ps = psutil.Process(self.proc.pid)
        ready = self._read()
        self.udp = ("127.0.0.1", ready["udp"])
        self.tcp = ("127.0.0.1", ready.get("tcp", 0))
        self.fingerprint: str | None = ready.get("fingerprint")
        self.limits: dict[str, float] = ready.get("limits", {})
        self.version: int = ready.get("version", 0)   # the handshake version (TCRP.md §2, §2.2); 0: the relay

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the {self.kind} process ended (exit code {self.proc.wait()})")
        return json.loads(line)

    def command(self, line: str) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return self._read()

    def cpu(self) -> float:
        times = self.ps.cpu_times()
        return times.user + times.system

    def rss(self) -> int:
        return self.ps.memory_info().rss

    def close(self) -> dict[str, Any]:
        """Stop it; for the server, how long ``stop()`` took."""
        result: dict[str, Any] = {}
        try:
            if self.kind == "server" and self.proc.poll() is None:
                result = self.command("stop")
            else:
                self.proc.stdin.close()  # type: ignore[union-attr]
            self.proc.wait(10)
        except (OSError, ValueError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()
        return result


# --- members: raw sockets with real sessions -------------------------------------------------

@dataclass(eq=False)
class Member:
    """A room member as the bench sees it: a connected UDP socket and, on our server, its keys."""

    name: str
    sock: socket.socket
    channel: UdpChannel | None = None     # None on the relay
    records: list[tuple[int, bytes]] = field(default_factory=list)  # (perf_counter_ns, datagram)
    chat_ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))  # the server de-duplicates ids

    def chat(self, text: str) -> bytes:
        """The datagram of a chat message (on the relay: the text itself)."""
        if self.channel is None:
            return text.encode("ascii")
        return self.channel.seal(Chat(id=next(self.chat_ids), text=text).encode())

    def decode(self, data: bytes) -> Any:
        """The payload of a received datagram (a RoomChat, Ack, ...), or the relay's raw text."""
        if self.channel is None:
            return data.decode("ascii")
        datagram = Datagram.decode(data)
        plaintext = open_sealed(self.channel.recv_key, datagram.seq, datagram.ciphertext + datagram.tag,
                                datagram.header)
        return decode_payload(plaintext, from_server=True)

    def leave(self) -> None:
        """Tell the server we leave (a host closes its room), then close the socket."""
        if self.channel is not None:
            try:
                self.sock.send(self.channel.seal(Leave().encode()))
            except OSError:
                pass
        self.close()

    def close(self) -> None:
        self.sock.close()


@dataclass(frozen=True)
class Target:
    """Where a server listens, for a process that did not start it (an attacker); :class:`Child` has the same
    three attributes."""

    tcp: tuple[str, int]
    udp: tuple[str, int]
    fingerprint: str | None


def _udp_socket(address: tuple[str, int], source: str = "") -> socket.socket:
    """A UDP socket connected to ``address``; bound to the local address ``source`` if given."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
    if source:
        sock.bind((source, 0))
    sock.connect(address)
    return sock


def join_server(child: Child | Target, room: str, username: str, *, create: bool = False,
                sock: socket.socket | None = None, timeout: float = 10.0,
                prepared: tuple[bytes, bytes] | None = None, password: str = "", source: str = "") -> Member:
    """Handshake, CREATE_ROOM or JOIN_ROOM, then ``hello`` until ``welcome``: a real join.

    ``prepared`` is a ``(premaster, ClientKeyExchange)`` pair from :func:`prepare_key_exchanges`;
    ``source`` a local address to come from (TCP and UDP), for the attackers of ``--adversary``.
    """
    message = (Message.create_room if create else Message.join_room)(room, username, password)
    if prepared is None:
        with ControlConnection(child.tcp, fingerprint=child.fingerprint, timeout=timeout, bind=source or None) as control:
            complete = control.enter(message)
        keys = control.keys
    else:
        complete, keys = _enter_prepared(child, message, prepared, timeout, source)
    channel = UdpChannel.client(room, bytes.fromhex(complete["token"]), keys)
    member = Member(username, sock or _udp_socket(child.udp, source), channel)
    if sock is None:
        _until(member, lambda: member.sock.send(channel.seal(Hello().encode())),
               lambda data: isinstance(member.decode(data), Welcome), timeout)
    else:  # a shared socket (the memory scenario): send hello, do not wait
        sock.send(channel.seal(Hello().encode()))
    return member


def prepare_key_exchanges(child: Child | Target, n: int, source: str = "") -> list[tuple[bytes, bytes]]:
    """``n`` premasters RSA-encrypted to the server's key ahead of time.

    A client's RSA encryption runs on each student's machine; done here, inside the measured
    window, it would make the bench measure its own 50 clients on one core instead of the server.
    The encryption does not depend on the ServerHello's nonce, only the key derivation does.
    """
    with _connect(child, 10.0, source) as sock:
        hello = ServerHello.decode(FramedSocket(sock, time.monotonic() + 10.0).recv())
    out = []
    for _ in range(n):
        premaster = system_random(32)
        out.append((premaster, client_key_exchange(hello, premaster=premaster)[0]))
    return out


def prepared_joins(child: Child, n: int) -> list[Any]:
    """What to pass as ``prepared`` to ``n`` joins: premasters on version 2; None on version 3, which
    cannot be prepared (the client's share answers the server's) and whose client side is cheap."""
    return prepare_key_exchanges(child, n) if child.version == 2 else [None] * n


def _connect(child: Child | Target, timeout: float, source: str = "") -> socket.socket:
    """A TCP connection to the server (from the local address ``source`` if given)."""
    sock = socket.create_connection(child.tcp, timeout=timeout, source_address=(source, 0) if source else None)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _enter_prepared(child: Child | Target, message: Message, prepared: tuple[bytes, bytes],
                    timeout: float, source: str = "") -> tuple[dict[str, Any], Any]:
    """What ControlConnection.enter does, with the premaster encrypted beforehand."""
    premaster, ckx = prepared
    with _connect(child, timeout, source) as sock:
        io = FramedSocket(sock, time.monotonic() + timeout)
        hello = ServerHello.decode(io.recv())
        if hello.fingerprint != child.fingerprint:
            raise RuntimeError("the server's key is not the one it announced")
        io.send(ckx)
        keys = derive_session_keys(premaster, hello, ckx)
        records = RecordLayer.client(keys)
        io.send(records.seal(message.encode()))
        reply = decode_message(records.open(io.recv()))
        if reply.payload.get("status") != "ok":
            raise RuntimeError(f"{message.operation.name} refused: {reply.payload}")
        complete = decode_message(records.open(io.recv()))
        if complete.state is not State.COMPLETE:
            raise RuntimeError(f"expected a COMPLETE, got {complete}")
    return dict(complete.payload), keys


def join_relay(child: Child, username: str, timeout: float = 10.0) -> Member:
    member = Member(username, _udp_socket(child.udp))
    _until(member, lambda: member.sock.send(RELAY_JOIN), lambda data: data == RELAY_OK, timeout)
    return member


def _until(member: Member, send: Callable[[], object], done: Callable[[bytes], bool], timeout: float) -> None:
    """Send, and again every 0.2 s, until a datagram satisfies ``done`` (others are discarded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        send()
        member.sock.settimeout(0.2)
        try:
            while True:
                data = member.sock.recv(4097)
                try:
                    if done(data):
                        return
                except ProtocolError:
                    pass
        except TimeoutError:
            continue
    raise TimeoutError(f"{member.name}: no answer within {timeout} s")


def drain(members: Sequence[Member]) -> None:
    """Discard what is queued (join events), until every socket was silent for SETTLE seconds."""
    selector = selectors.DefaultSelector()
    for member in members:
        member.sock.setblocking(False)
        selector.register(member.sock, selectors.EVENT_READ, member)
    try:
        while events := selector.select(SETTLE):
            for key, _ in events:
                _drain_socket(key.fileobj)  # type: ignore[arg-type]
    finally:
        selector.close()


def _drain_socket(sock: socket.socket) -> None:
    try:
        while sock.recv(4097):
            pass
    except OSError:
        pass


class Receivers:
    """One thread that timestamps every datagram of every member (and decrypts nothing).

    ``count`` is the datagrams received by all members, ``tracked`` those of ``tracker`` (a
    member that sends nothing, last in the room's order: it sees each room message last).
    """

    def __init__(self, members: Sequence[Member], tracker: Member):
        self.members, self.tracker = members, tracker
        self.count = self.tracked = 0
        self.changed = threading.Condition()
        self._stop = threading.Event()
        self._selector = selectors.DefaultSelector()
        for member in members:
            member.records.clear()
            member.sock.setblocking(False)
            self._selector.register(member.sock, selectors.EVENT_READ, member)
        self._thread = threading.Thread(target=self._run, name="bench-receivers", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        # One recv per ready socket per select: a drain loop would end each socket's turn with a
        # BlockingIOError, and at 200,000 datagrams/s those exceptions made the bench the limit.
        clock, poll, stopped = time.perf_counter_ns, self._selector.select, self._stop.is_set
        ready = {key.fd: (key.data.sock.recv, key.data.records.append, key.data is self.tracker)
                 for key in self._selector.get_map().values()}
        while not stopped():
            got = tracked = 0
            for key, _ in poll(0.05):
                recv, append, is_tracker = ready[key.fd]
                try:
                    append((clock(), recv(4097)))
                except OSError:  # ConnectionRefused (ICMP) on a connected socket: not ours to judge
                    continue
                got += 1
                tracked += is_tracker
            if got:
                with self.changed:
                    self.count += got
                    self.tracked += tracked
                    self.changed.notify_all()

    def wait(self, condition: Callable[[], bool], timeout: float) -> bool:
        with self.changed:
            return self.changed.wait_for(condition, timeout)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self._selector.close()


# --- scenarios -------------------------------------------------------------------------------

@dataclass
class Room:
    """M members of one room (on our server or on the relay); the last one is the tracker."""

    target: str                    # "ours" or "relay"
    members: list[Member]
    child: Child

    @property
    def tracker(self) -> Member:
        return self.members[-1]

    def close(self) -> None:
        for member in self.members:
            member.close()


def make_room(child: Child, target: str, size: int, name: str, workers: int = 8, first: int = 0) -> Room:
    """``size`` members in one room; the first creates it (on ours) unless the room exists (``first``
    > 0: they are m<first> and on). Joined in parallel, in order."""
    if target == "relay":
        probe = Member("reset", _udp_socket(child.udp))
        _until(probe, lambda: probe.sock.send(RELAY_RESET), lambda data: data == RELAY_OK, 10)
        probe.close()
        members = [join_relay(child, f"m{i}") for i in range(size)]  # order = the relay's order
        return Room(target, members, child)
    names = [f"m{i}" for i in range(first, first + size)]
    host = join_server(child, name, names[0], create=not first)
    with ThreadPoolExecutor(workers) as pool:
        guests = list(pool.map(lambda username: join_server(child, name, username), names[1:-1]))
    last = join_server(child, name, names[-1])  # joins last: the server sends to it last
    room = Room(target, [host, *guests, last], child)
    drain(room.members)
    return room


def _text(sender: int, k: int) -> str:
    return f"{sender:04d}:{k:08d}:".ljust(TEXT_SIZE, "x")


def _parse(text: str) -> tuple[int, int]:
    sender, k, _ = text.split(":", 2)
    return int(sender), int(k)


def _deliveries(room: Room) -> tuple[list[tuple[int, int, int]], int]:
    """Decrypt what every member received: ``[(sender, k, t_recv_ns)]`` of room messages; and
    how many other datagrams (acks) came."""
    out, other = [], 0
    for member in room.members:
        for t, data in member.records:
            payload = member.decode(data)
            if room.target == "relay":
                out.append((*_parse(payload), t))
            elif isinstance(payload, RoomChat):
                out.append((*_parse(payload.text), t))
            else:
                other += 1
    return out, other


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, max(0, round(q / 100 * len(values) + 0.5) - 1))]


def _summary(room: Room, sent: dict[tuple[int, int], int], start_ns: int, cpu: float) -> dict[str, Any]:
    got, _ = _deliveries(room)
    latencies = [(t - sent[(s, k)]) / 1e6 for s, k, t in got if (s, k) in sent]
    expected = len(sent) * len(room.members)
    delivered = len(latencies)
    end_ns = max((t for _, _, t in got), default=start_ns)
    elapsed = max(end_ns - start_ns, 1) / 1e9
    return {
        "messages": len(sent), "deliveries": delivered, "loss": max(0.0, 1 - delivered / expected) if expected else 0.0,
        "seconds": elapsed, "deliveries_per_s": delivered / elapsed,
        "latency_p50_ms": _percentile(latencies, 50), "latency_p99_ms": _percentile(latencies, 99),
        "latency_cdf_ms": [_percentile(latencies, q) for q in range(101)] if latencies else [],   # for --plot
        "cpu_us_per_delivery": cpu / delivered * 1e6 if delivered else 0.0,
    }


def fan_out(room: Room, messages: int, senders: int, rate: float | None, settle: float = 1.0) -> dict[str, Any]:
    """``messages`` room messages from ``senders`` members (round robin). ``rate`` None is full
    speed: at most WINDOW messages in flight (sent but not yet at the tracker)."""
    chosen = room.members[:senders]
    receivers = Receivers(room.members, room.tracker)
    sent: dict[tuple[int, int], int] = {}
    interval = 1 / rate if rate else 0.0
    cpu0, own0 = room.child.cpu(), time.process_time()
    start = next_at = time.perf_counter_ns()
    try:
        for k in range(messages):
            s = k % len(chosen)
            if rate:
                delay = next_at - time.perf_counter_ns()
                if delay > 0:
                    time.sleep(delay / 1e9)
                next_at += int(interval * 1e9)
            else:
                receivers.wait(lambda: k - receivers.tracked < WINDOW, 1.0)
            data = chosen[s].chat(_text(s, k))
            sent[(s, k)] = time.perf_counter_ns()
            chosen[s].sock.send(data)
        receivers.wait(lambda: receivers.tracked >= messages, settle + messages * 1e-4)
        cpu, own = room.child.cpu() - cpu0, time.process_time() - own0
    finally:
        receivers.stop()
    drain(room.members)
    result = _summary(room, sent, start, cpu)
    result["bench_cpu_share"] = own / result["seconds"]   # near 1.0: the bench, not the server, was the limit
    return result


def burst(room: Room, timeout: float = 3.0) -> dict[str, Any]:
    """Every member sends one message at once (sealed beforehand); how long until all have all."""
    n = len(room.members)
    datagrams = [m.chat(_text(i, 0)) for i, m in enumerate(room.members)]
    expected = n * n + (n if room.target == "ours" else 0)  # room copies, and each sender's ack
    receivers = Receivers(room.members, room.tracker)
    sent: dict[tuple[int, int], int] = {}
    cpu0 = room.child.cpu()
    start = time.perf_counter_ns()
    try:
        for i, (member, data) in enumerate(zip(room.members, datagrams)):
            sent[(i, 0)] = time.perf_counter_ns()
            member.sock.send(data)
        receivers.wait(lambda: receivers.count >= expected, timeout)
        cpu = room.child.cpu() - cpu0
    finally:
        receivers.stop()
    drain(room.members)
    result = _summary(room, sent, start, cpu)
    result["members"] = n
    return result


def joins(child: Child, n: int, room: str) -> dict[str, Any]:
    """``n`` guests join an open room at once (each from its own thread, released together): from
    the TCP connect to the ``welcome``, with only the RSA encryption of each client done before."""
    host = join_server(child, room, "host", create=True)
    prepared = prepared_joins(child, n)
    barrier = threading.Barrier(n)
    times: list[tuple[float, float]] = [(0.0, 0.0)] * n
    members: list[Member | None] = [None] * n

    def one(i: int) -> None:
        barrier.wait()
        t0 = time.perf_counter()
        members[i] = join_server(child, room, f"guest{i}", prepared=prepared[i])
        times[i] = (t0, time.perf_counter())

    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for member in [host, *members]:
        if member is not None:
            member.close()
    if any(m is None for m in members):
        raise RuntimeError(f"only {sum(m is not None for m in members)} of {n} joins completed")
    per_join = [(t1 - t0) * 1000 for t0, t1 in times]
    return {"wall_s": max(t1 for _, t1 in times) - min(t0 for t0, _ in times),
            "p50_ms": _percentile(per_join, 50), "p95_ms": _percentile(per_join, 95)}


def legacy_joins(child: Child, n: int, room: str, timeout: float = 120.0) -> dict[str, Any]:
    """``n`` guests join an open TCRP/1 room at once (each from its own thread, released together): from
    the TCP connect to the token, every connection making its own RSA key on the server. A guest waits up
    to ``timeout`` (the original client waited for ever); one the server closed first is lost."""
    from .legacy import INVALID_PASSWORD, INVALID_ROOM, _Control
    from .net import ServerAddress
    from .protocol import Operation

    address = ServerAddress(*child.tcp, child.udp[1])
    with _Control(address, timeout, system_random) as control:
        control.ask(Operation.CREATE_ROOM, room, "host")
    drops0 = child.command("stats")["drops"]
    barrier = threading.Barrier(n)
    times: list[tuple[float, float] | None] = [None] * n
    errors: list[str] = []

    def one(i: int) -> None:
        barrier.wait()
        t0 = time.perf_counter()
        try:
            with _Control(address, timeout, system_random) as control:
                control.ask(Operation.JOIN_ROOM, "", f"guest{i}")
                answer = control.ask(Operation.JOIN_ROOM, room, f"guest{i}")
            if answer in (INVALID_ROOM, INVALID_PASSWORD):
                raise RuntimeError(answer.decode())
            times[i] = (t0, time.perf_counter())
        except Exception as exc:   # a lost join is what this scenario counts
            errors.append(f"{type(exc).__name__}: {exc}"[:120])

    cpu0 = child.cpu()
    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout + 10)
    cpu = child.cpu() - cpu0
    drops = child.command("stats")["drops"]
    done = [t for t in times if t is not None]
    per_join = [(t1 - t0) * 1000 for t0, t1 in done]
    return {"guests": n, "served": len(done), "lost": n - len(done), "errors": sorted(set(errors)),
            "wall_s": max(t1 for _, t1 in done) - min(t0 for t0, _ in done) if done else math.nan,
            "p50_ms": _percentile(per_join, 50) if done else math.nan,
            "p95_ms": _percentile(per_join, 95) if done else math.nan,
            "server_cpu_ms_per_join": cpu / n * 1000,
            "drops": {k: v - drops0.get(k, 0) for k, v in drops.items() if v != drops0.get(k, 0)}}


def run_legacy_joins(rounds: int, sizes: Sequence[int] = (20, 50),
                     step: Callable[[str], None] = lambda what: None) -> dict[str, Any]:
    """:func:`legacy_joins` for each size, ``rounds`` times, on one legacy server in a child process."""
    child = Child("server", lifted=True, legacy=True)
    result: dict[str, Any] = {"machine": machine(), "rounds": rounds, "sizes": {}}
    try:
        runs: dict[int, list[dict[str, Any]]] = {n: [] for n in sizes}
        for r in range(rounds):
            for n in sizes:
                step(f"legacy joins: {n} at once, round {r + 1}/{rounds}")
                runs[n].append(legacy_joins(child, n, f"legacy-{n}-{r}"))
        for n, each in runs.items():
            served = [x for x in each if x["served"]]
            result["sizes"][str(n)] = {
                "served_min": min(x["served"] for x in each), "lost_total": sum(x["lost"] for x in each),
                "wall_s": _median(served, "wall_s") if served else math.nan,
                "p50_ms": _median(served, "p50_ms") if served else math.nan,
                "p95_ms": _median(served, "p95_ms") if served else math.nan,
                "server_cpu_ms_per_join": _median(each, "server_cpu_ms_per_join"),
                "tcp_deadline": sum(x["drops"].get("tcp_deadline", 0) for x in each), "rounds": each}
    finally:
        child.close()
    return result


def legacy_table(result: dict[str, Any]) -> Any:
    from rich.table import Table

    m = result["machine"]
    t = Table(title=f"TCRP/1 guests joining at once, a new RSA-2048 key per connection: {m['cpus']} cores "
                    f"({m['cpu']}), Python {m['python']}, load {m['load_average'][0]:g}; "
                    f"medians of {result['rounds']} round(s)")
    for column in ("guests at once", "served (worst round)", "lost (all rounds)", "wall", "per join p50 / p95",
                   "server CPU per join", "closed at the deadline"):
        t.add_column(column, justify="right")
    for n, f in result["sizes"].items():
        t.add_row(n, f"{f['served_min']} of {n}", str(f["lost_total"]), f"{f['wall_s']:.1f} s",
                  f"{f['p50_ms'] / 1000:.1f} / {f['p95_ms'] / 1000:.1f} s", f"{f['server_cpu_ms_per_join']:.0f} ms",
                  str(f["tcp_deadline"]))
def handshake_costs(n: int, rounds: int, step: Callable[[str], None] = lambda what: None) -> dict[str, Any]:
    """``n`` joins at once on a version 2 server and on a version 3 one: the median of ``rounds``."""
    out: dict[str, Any] = {"machine": machine(), "joins": n, "rounds": rounds}
    for handshake in ("rsa", "x25519"):
        child = Child("server", handshake=handshake)
        try:
            results = []
            for r in range(rounds):
                step(f"handshake {handshake} (version {child.version}): {n} joins at once, round {r + 1}/{rounds}")
                cpu0 = child.cpu()
                results.append(joins(child, n, f"hs-{r}"))
                results[-1]["server_cpu_ms_per_join"] = (child.cpu() - cpu0) / n * 1000
            out[f"v{child.version}"] = {"handshake": handshake, "wall_s": _median(results, "wall_s"),
                                        "p50_ms": _median(results, "p50_ms"), "p95_ms": _median(results, "p95_ms"),
                                        "server_cpu_ms_per_join": _median(results, "server_cpu_ms_per_join"),
                                        "rounds": results}
        finally:
            child.close()
    return out


def handshake_table(result: dict[str, Any]) -> Any:
    from rich.table import Table

    m = result["machine"]
    t = Table(title=f"handshake cost: {m['cpus']} cores ({m['cpu']}), load {m['load_average'][0]:g}; "
                    f"medians of {result['rounds']} round(s)",
              caption="server CPU per join includes its JOIN_ROOM, COMPLETE and UDP hello/welcome, the same for both")
    for column in ("handshake", f"{result['joins']} joins at once: wall", "per join p50 / p95", "server CPU per join"):
        t.add_column(column, justify="left" if column == "handshake" else "right")
    for version, what in (("v2", "version 2: RSA key transport"), ("v3", "version 3: X25519 + RSA-PSS")):
        r = result[version]
        t.add_row(what, f"{r['wall_s'] * 1000:.0f} ms", f"{r['p50_ms']:.1f} / {r['p95_ms']:.1f} ms",
                  f"{r['server_cpu_ms_per_join']:.2f} ms")
    return t


def idle_memory(members: int, room_size: int = 50) -> dict[str, Any]:
    """A fresh server's RSS growth per idle member: ``members`` in rooms of ``room_size``, each
    joined and welcomed (so it has an address and keys), then left alone."""
    child = Child("server")
    try:
        warm = join_server(child, "warm-up", "w0", create=True)  # code paths and caches, not members
        warm.close()
        rss0 = child.rss()
        rooms = (members + room_size - 1) // room_size
        socks = [_udp_socket(child.udp) for _ in range(rooms)]   # members of a room share one socket

        def fill(r: int) -> None:
            join_server(child, f"idle-{r}", "m0", create=True, sock=socks[r])
            for i in range(1, min(room_size, members - r * room_size)):
                join_server(child, f"idle-{r}", f"m{i}", sock=socks[r])

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(fill, range(rooms)))
        expected = members + 1
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # every hello processed: every member has its address
            stats = child.command("stats")
            if stats["members"] >= expected and stats["datagrams_in"] >= members + 1:
                break
            time.sleep(0.05)
        rss1 = child.rss()
        for sock in socks:
            sock.close()
        return {"idle_members": members, "rooms": rooms, "rss_before": rss0, "rss_after": rss1,
                "bytes_per_idle_member": (rss1 - rss0) / members}
    finally:
        child.close()


# --- one run ---------------------------------------------------------------------------------

@dataclass
class Options:
    joins: int = 50
    members: int = 50
    senders: int = 1
    messages: int = 2000
    rate: float = 200.0
    steady_seconds: float = 10.0
    burst_members: int = 100
    idle_members: int = 1000
    rounds: int = 5

    @classmethod
    def quick(cls) -> Options:
        return cls(messages=600, steady_seconds=3.0, rounds=1)


def run(options: Options, step: Callable[[str], None] = lambda what: None) -> dict[str, Any]:
    """Every scenario on our server and on the relay, rounds alternating between the two so that
    both meet the same machine. ``step(what)`` is called before each phase (for progress)."""
    result: dict[str, Any] = {"machine": machine(), "options": dict(vars(options)), "window": WINDOW,
                              "lifted": LIFTED}
    children = {"ours": Child("server", max_members=max(options.burst_members, options.members, 256)),
                "relay": Child("relay")}
    figures: dict[str, dict[str, Any]] = {target: {"full": [], "burst": []} for target in children}
    try:
        server = children["ours"]
        rounds = []
        for r in range(options.rounds):
            step(f"joins: {options.joins} at once, round {r + 1}/{options.rounds}")
            cpu0 = server.cpu()
            rounds.append(joins(server, options.joins, f"joins-{r}"))
            rounds[-1]["server_cpu_ms_per_join"] = (server.cpu() - cpu0) / options.joins * 1000
        result.update(joins=options.joins, join_wall_s=_median(rounds, "wall_s"),
                      join_p50_ms=_median(rounds, "p50_ms"), join_p95_ms=_median(rounds, "p95_ms"),
                      join_server_cpu_ms=_median(rounds, "server_cpu_ms_per_join"), join_rounds=rounds)

        step(f"fan-out: a room of {options.members} on each")
        rooms = {target: make_room(child, target, options.members, "fan-out") for target, child in children.items()}
        try:
            for r in range(options.rounds):
                for target, room in rooms.items():
                    step(f"fan-out at full speed, round {r + 1}/{options.rounds}: {target}")
                    figures[target]["full"].append(fan_out(room, options.messages, options.senders, None))
            for target, room in rooms.items():
                step(f"steady {options.rate:g} messages/s for {options.steady_seconds:g} s: {target}")
                figures[target]["steady"] = fan_out(room, round(options.rate * options.steady_seconds),
                                                    options.senders, options.rate)
        finally:
            for room in rooms.values():
                room.close()

        step(f"burst: a room of {options.burst_members} on each")
        rooms = {target: make_room(child, target, options.burst_members, "burst") for target, child in children.items()}
        try:
            for r in range(options.rounds):
                for target, room in rooms.items():
                    step(f"burst: {options.burst_members} send at once, round {r + 1}/{options.rounds}: {target}")
                    figures[target]["burst"].append(burst(room))
        finally:
            for room in rooms.values():
                room.close()
    finally:
        result["server_stop_s"] = children["ours"].close().get("stop_s")
        children["relay"].close()
    result.update(_fan_out_figures(figures, options))
    step(f"memory: {options.idle_members} idle members")
    result.update(idle_memory(options.idle_members))
    result["targets"] = {key: _met(result[key], op, bound) for key, (op, bound, _) in TARGETS.items()}
    return result


def _median(rounds: list[dict[str, Any]], key: str) -> float:
    return statistics.median(r[key] for r in rounds)


def _fan_out_figures(figures: dict[str, dict[str, Any]], options: Options) -> dict[str, Any]:
    """The flat figures: medians over rounds, ratios of medians, the worst burst."""
    ours, relay = figures["ours"], figures["relay"]
    out: dict[str, Any] = {"members": options.members, "senders": options.senders, "rate": options.rate,
                           "burst_members": options.burst_members, "details": figures}
    for prefix, side in (("", ours), ("relay_", relay)):
        full, steady, bursts = side["full"], side["steady"], side["burst"]
        out.update({
            f"{prefix}deliveries_per_s": _median(full, "deliveries_per_s"),
            f"{prefix}cpu_us_per_delivery": _median(full, "cpu_us_per_delivery"),
            f"{prefix}loss": max(r["loss"] for r in full),
            f"{prefix}full_latency_p50_ms": _median(full, "latency_p50_ms"),
            f"{prefix}full_latency_p99_ms": _median(full, "latency_p99_ms"),
            f"{prefix}latency_p50_ms": steady["latency_p50_ms"],
            f"{prefix}latency_p99_ms": steady["latency_p99_ms"],
            f"{prefix}steady_loss": steady["loss"],
            f"{prefix}burst_s": max(r["seconds"] for r in bursts),
            f"{prefix}burst_loss": max(r["loss"] for r in bursts),
            f"{prefix}bench_cpu_share": _median(full, "bench_cpu_share"),
        })
    out["ratio_to_relay"] = out["deliveries_per_s"] / out["relay_deliveries_per_s"]
    out["ratio_by_round"] = [o["deliveries_per_s"] / r["deliveries_per_s"] for o, r in zip(ours["full"], relay["full"])]
    # CPU time comes in 10 ms ticks: a tiny run may show none at all, and then there is no ratio
    ours_cpu = out["cpu_us_per_delivery"]
    out["cpu_ratio_to_relay"] = out["relay_cpu_us_per_delivery"] / ours_cpu if ours_cpu else None
    return out


def _met(value: float, op: str, bound: float) -> bool:
    return {"<": value < bound, "<=": value <= bound, ">=": value >= bound, "==": value == bound}[op]


def machine() -> dict[str, Any]:
    import psutil

    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), model)
    except OSError:
        pass
    return {"cpus": os.cpu_count(), "cpu": model, "python": platform.python_version(),
            "implementation": platform.python_implementation(), "system": platform.platform(terse=True),
            "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
            "load_average": [round(x, 2) for x in os.getloadavg()]}


# --- the command line ------------------------------------------------------------------------

def table(result: dict[str, Any]) -> Any:
    """The figures as a rich Table: ours next to the relay, each target and whether it was met."""
    from rich.table import Table

    r, m = result, result["machine"]

    def ok(key: str) -> str:
        return "[green]yes[/]" if r["targets"][key] else "[red]no[/]"

    def pair(a: float, b: float, unit: str = "ms", digits: int = 1) -> str:
        return f"{a:.{digits}f} / {b:.{digits}f} {unit}"

    rounds = r["options"]["rounds"]
    t = Table(title=f"tcrp_lab bench: {m['cpus']} cores ({m['cpu']}), Python {m['python']}, "
                    f"load {m['load_average'][0]:g}; medians of {rounds} round(s)",
              caption=f"our server lifts {' and '.join(LIFTED)} (0 = no limit) for these scenarios; every other "
                      "limit is the default")
    for column in ("figure", "ours", "bare relay", "ours / relay", "target", "met"):
        t.add_column(column, justify="left" if column in ("figure", "target") else "right")
    t.add_row(f"{r['joins']} joins at once: wall", f"{r['join_wall_s'] * 1000:.0f} ms", "", "", "< 200 ms",
              ok("join_wall_s"))
    t.add_row("  per join p50 / p95", pair(r["join_p50_ms"], r["join_p95_ms"]), "", "", "", "")
    t.add_row("  server CPU per join", f"{r['join_server_cpu_ms']:.2f} ms", "", "", "", "")
    t.add_row(f"fan-out to {r['members']}, full speed", f"{r['deliveries_per_s']:,.0f}/s",
              f"{r['relay_deliveries_per_s']:,.0f}/s", f"{r['ratio_to_relay']:.2f}x", ">= 0.20x", ok("ratio_to_relay"))
    cpu_ratio = r["cpu_ratio_to_relay"]
    t.add_row("  server CPU per delivery", f"{r['cpu_us_per_delivery']:.1f} µs",
              f"{r['relay_cpu_us_per_delivery']:.1f} µs",
              "too short to tell" if cpu_ratio is None else f"{cpu_ratio:.2f}x", "", "")
    t.add_row("  bench process CPU (1.0 = it was the limit)", f"{r['bench_cpu_share']:.2f}",
              f"{r['relay_bench_cpu_share']:.2f}", "", "", "")
    t.add_row("  latency p50 / p99", pair(r["full_latency_p50_ms"], r["full_latency_p99_ms"]),
              pair(r["relay_full_latency_p50_ms"], r["relay_full_latency_p99_ms"]), "",
              f"{r['window']} messages in flight", "")
    t.add_row("  loss", f"{r['loss']:.2%}", f"{r['relay_loss']:.2%}", "", "", "")
    t.add_row(f"steady {r['rate']:g} msg/s: latency p50", f"{r['latency_p50_ms']:.2f} ms",
              f"{r['relay_latency_p50_ms']:.2f} ms", "", "", "")
    t.add_row("  latency p99", f"{r['latency_p99_ms']:.2f} ms", f"{r['relay_latency_p99_ms']:.2f} ms", "", "< 5 ms",
              ok("latency_p99_ms"))
    t.add_row("  loss", f"{r['steady_loss']:.2%}", f"{r['relay_steady_loss']:.2%}", "", "", "")
    t.add_row(f"burst: {r['burst_members']} send at once (worst)", f"{r['burst_s'] * 1000:.0f} ms",
              f"{r['relay_burst_s'] * 1000:.0f} ms", "", "< 1000 ms", ok("burst_s"))
    t.add_row("  loss", f"{r['burst_loss']:.2%}", f"{r['relay_burst_loss']:.2%}", "", "none", ok("burst_loss"))
    t.add_row(f"RSS per idle member ({r['idle_members']})", f"{r['bytes_per_idle_member'] / 1000:.1f} KB", "", "",
              "< 20 KB", ok("bytes_per_idle_member"))
    if r.get("server_stop_s") is not None:
        t.add_row("server stop() at the end", f"{r['server_stop_s'] * 1000:.0f} ms", "", "", "", "")
    return t


def main(argv: Sequence[str] | None = None) -> int:
    from .adversary import ATTACKS, AdversaryOptions, adversary_table, run_adversary

    parser = argparse.ArgumentParser(
        prog="python -m tcrp_lab.bench",
        description="Measure joins, fan-out, latency, a classroom burst and memory per member against a bare "
                    "UDP relay, in one run on loopback. With --adversary: the legitimate load of a classroom alone, "
                    "then next to each attacker in turn, on a server with every limit at its default.")
    parser.add_argument("--quick", action="store_true", help="fewer messages and one round (under a minute); "
                        "with --adversary, 3 s per attacker (under two minutes)")
    parser.add_argument("--json", action="store_true", help="print only one JSON object on stdout")
    parser.add_argument("--adversary", action="store_true",
                        help="measure the legitimate load under each attack: " + ", ".join(ATTACKS))
    parser.add_argument("--loss", action="store_true",
                        help="go-back-N against selective repeat through a lossy relay (5, 20, 40 %% each way)")
    parser.add_argument("--handshakes", action="store_true",
                        help="only the cost of forward secrecy: --joins joins at once on a handshake version 2 server "
                             "and on a version 3 one, with the server's CPU per join")
    parser.add_argument("--attack", action="append", choices=tuple(ATTACKS), metavar="NAME",
                        help="with --adversary: only this attacker (repeat for more)")
    parser.add_argument("--handshake", choices=("x25519", "rsa"),
                        help="with --adversary: the server's handshake, x25519 (version 3, the default) or rsa "
                             "(version 2, RSA key transport)")
    defaults, adversary = Options(), AdversaryOptions()
    whole, number = positive(int, "whole number"), positive(float, "number")
    parser.add_argument("--joins", type=whole, help=f"clients joining at once (default {defaults.joins}; "
                                                    f"--adversary: spread over the window, default {adversary.joins})")
    parser.add_argument("--members", type=whole, help=f"fan-out room size (default {defaults.members})")
    parser.add_argument("--senders", type=whole, help=f"fan-out senders (default {defaults.senders})")
    parser.add_argument("--messages", type=whole, help="messages at full speed")
    parser.add_argument("--rate", type=number, help=f"steady messages/s (default {defaults.rate:g})")
    parser.add_argument("--steady-seconds", type=number,
                        help=f"length of the steady phase (--adversary: of each window, default {adversary.seconds:g})")
    parser.add_argument("--burst-members", type=whole, help="members sending at once in the burst")
    parser.add_argument("--idle-members", type=whole, help="idle members for the memory figure")
    parser.add_argument("--rounds", type=whole, help="repetitions of joins, full speed and burst")
    parser.add_argument("--plot", metavar="PATH", help="also draw the latency CDFs (ours vs the relay) and, with "
                        "--adversary, the ratios per attacker, as one PNG (needs matplotlib: the lab extra)")
    parser.add_argument("--from-json", metavar="FILE", action="append",
                        help="with --plot: draw from results saved with --json instead of measuring (repeatable: "
                             "a plain run and an adversary run give both panels)")
    parser.add_argument("--child", choices=("server", "relay", "attacker"), help=argparse.SUPPRESS)
    parser.add_argument("--max-members", type=int, default=256, help=argparse.SUPPRESS)
    parser.add_argument("--lifted", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--legacy", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--legacy-joins", action="store_true",
                        help="instead: 20, then 50 guests joining a TCRP/1 room at once, a new RSA key per "
                             "connection (TCRP.md §6); with --rounds (default 5; --quick: 1), --joins (one size)")
    parser.add_argument("--child-handshake", choices=("x25519", "rsa"), default="x25519", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child == "server":
        _serve_chat(args.max_members, args.lifted, args.legacy, args.child_handshake)
        return 0
    if args.child == "relay":
        _serve_relay()
        return 0
    if args.child == "attacker":
        from .adversary import attacker_main

        attacker_main()
        return 0

    if args.from_json:
        if not args.plot:
            parser.error("--from-json is for --plot: add --plot PATH")
        return _plot([json.loads(Path(f).read_text(encoding="utf-8")) for f in args.from_json], args.plot)
    try:
        import psutil  # noqa: F401 - the server's CPU time and RSS
    except ImportError:
        parser.error("the bench needs psutil: pip install 'tcrp_lab[test]' (or: pip install psutil)")
    if (args.attack or args.handshake) and not args.adversary:
        parser.error("--attack and --handshake are for --adversary: add --adversary")
    if args.loss:
        return _loss_main(args)
    if args.legacy_joins:
        if args.adversary:
            parser.error("--legacy-joins and --adversary are two different runs: pick one")
        from rich.console import Console

        rounds = args.rounds or (1 if args.quick else 5)
        sizes = (args.joins,) if args.joins else (20, 50)
        with Console(stderr=True).status("legacy joins") as status:
            result = run_legacy_joins(rounds, sizes, step=lambda what: status.update(what))
        if args.json:
            print(json.dumps(_strict(result), indent=2, allow_nan=False))
        else:
            Console(width=None if sys.stdout.isatty() else 120).print(legacy_table(result))
        return 0
    if args.handshakes:
        if args.adversary:
            parser.error("--handshakes and --adversary are separate runs: give one")
        from rich.console import Console

        with Console(stderr=True).status("handshakes") as status:
            result = handshake_costs(args.joins or Options.joins, args.rounds or (1 if args.quick else 5),
                                     lambda what: status.update(what))
        if args.json:
            print(json.dumps(_strict(result), indent=2, allow_nan=False))
        else:
            Console(width=None if sys.stdout.isatty() else 120).print(handshake_table(result))
        return 0
    if args.adversary:
        options: Options | AdversaryOptions = AdversaryOptions.quick() if args.quick else AdversaryOptions()
        options.attacks = tuple(dict.fromkeys(args.attack or ATTACKS))
        options.handshake = args.handshake or options.handshake
        given = {"joins": "joins", "members": "members", "rate": "rate", "steady_seconds": "seconds"}
    else:
        options = Options.quick() if args.quick else Options()
        given = {name: name for name in ("joins", "members", "senders", "messages", "rate", "steady_seconds",
                                         "burst_members", "idle_members", "rounds")}
    for flag, name in given.items():
        if getattr(args, flag) is not None:
            setattr(options, name, getattr(args, flag))
    plain_only = ("senders", "messages", "burst_members", "idle_members", "rounds")
    unused = [f"--{flag.replace('_', '-')}" for flag in plain_only if getattr(args, flag) is not None]
    unused = unused if args.adversary else []
    if unused:
        parser.error(f"{', '.join(unused)} do not apply to --adversary")
    if options.members < 2 or getattr(options, "burst_members", 2) < 2:
        parser.error("a room needs at least 2 members: give --members and --burst-members 2 or more")
    if isinstance(options, Options) and options.senders > options.members - 1:
        parser.error(f"--senders must be below --members ({options.members}): the last member only listens")

    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    err = Console(stderr=True)
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=err) as progress:
        task = progress.add_task("starting", total=None)
        measure: Callable[..., dict[str, Any]] = run_adversary if args.adversary else run  # type: ignore[assignment]
        result = measure(options, lambda what: progress.update(task, description=what))
        progress.update(task, description="done")
    if args.json:
        print(json.dumps(_strict(result), indent=2, allow_nan=False))
    else:
        show = adversary_table if args.adversary else table
        Console(width=None if sys.stdout.isatty() else 120).print(show(result))
    if args.plot:
        return _plot([result], args.plot)
    return 0


def _plot(results: list[dict[str, Any]], path: str) -> int:
    """Write :func:`tcrp_lab.figures.bench_figure` of ``results`` to ``path`` (PNG)."""
    try:
        from .figures import bench_figure
    except ImportError:
        print("--plot needs matplotlib: pip install 'tcrp_lab[lab]' (or: pip install matplotlib)", file=sys.stderr)
        return 2
    bench_figure(results).save(path, dpi=100)
    print(f"wrote {path}", file=sys.stderr)
    return 0


def _loss_main(args: argparse.Namespace) -> int:
    from rich.console import Console

    from .lossbench import LossOptions, loss_table, run_loss

    options = LossOptions.quick() if args.quick else LossOptions()
    if args.messages is not None:
        options.messages = args.messages
    err = Console(stderr=True)
    result = run_loss(options, lambda what: err.print(what, style="dim"))
    result["machine"] = machine()
    if args.json:
        print(json.dumps(_strict(result), indent=2, allow_nan=False))
    else:
        Console(width=None if sys.stdout.isatty() else 120).print(loss_table(result))
    return 0


def _strict(value: Any) -> Any:
    """Plain JSON: a figure that could not be measured (NaN: nothing arrived) becomes null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict(v) for v in value]
    return value


if __name__ == "__main__":
    raise SystemExit(main())
