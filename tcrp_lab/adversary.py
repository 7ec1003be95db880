"""``python -m tcrp_lab.bench --adversary``: a classroom's load alone, then next to each attacker.

The legitimate load, all from 127.0.0.1 (:class:`LegitLoad`): a room of 50 where one member, a real
:class:`~tcrp_lab.client.ChatClient` (it retransmits what is lost), sends 200 messages/s to 49 raw
members that only timestamp what arrives; and 20 joins into another room, spread over the window.
The server runs in its own process with every limit and timeout at its default. Per attacker
(:func:`run_adversary`, :func:`adversary_table`):

* **goodput**: room messages delivered per second to the raw members, and its ratio to the run
  alone (target >= 0.5); **p99**: latency from ``send()`` to a member, over every delivery, the late
  ones too (target <= 3x alone);
* **lost**: (message, member) pairs never delivered (target 0). When the attack stops, the sender
  has DRAIN seconds to get its last chats acknowledged (or to give up after its 16 tries), then the
  members ask ``resend`` for what they missed, as a client would; **late**: deliveries that came
  only after the attacker stopped;
* **joins** that failed, and the p95 of those that did not;
* what the attacker sent, what the server refused or dropped from its address (by reason; the
  bench wraps ``ChatServer.drop``), and what the kernel dropped at the server's full UDP socket;
* **bytes out/in**: bytes the server sent to an attacker's address over the bytes sent from it,
  both counted by the attacker: at most 3x to an address the server never proved (the target:
  spoofed_resend's victim), while "own" is the attacker's own member address, proven by its
  handshake, where ``resend`` answers are bounded by the resend budget instead. TCP attackers have
  no figure: a TCP peer's address is proven by its handshake, so it cannot be spoofed.

Each attacker runs in a process of its own (``python -m tcrp_lab.bench --child attacker``), so its
speed is its own and not a share of the bench's GIL, and binds every socket to its own loopback
address (127.0.0.2 and up), so the server sees one source. The bench drives it with JSON lines
(:class:`AttackerProcess`): the :class:`Config`, then ``go`` and ``stop``; the attacker answers
``ready`` once prepared (joined, history posted: not measured) and, at the end, what it sent and
what came back to each of its addresses (:meth:`Attack.report`).

======================  =========================================================================
attack                  what it does, as fast as it can
======================  =========================================================================
resend_flood            a real member asks ``resend`` for its room's whole history (300 messages)
spoofed_resend          the same member's resends, sent from another address (a spoofed victim)
hello_flood             a real member sends ``hello`` (fresh, authenticated) without pause
garbage                 datagrams that are junk, carry an unknown token, or a bad tag on a real one
handshake_hold          TCP connections that take the ServerHello and never send a key exchange
key_exchange_churn      connect, take the ServerHello, send a ClientKeyExchange, close; again
wrong_password          16 connections in parallel guessing the password of a room
idle_connections        as many finished handshakes as the server allows, held open and silent
room_flood              create rooms whose hosts never say ``hello``
cpu_hog                 a control, not an attack: one busy core, no traffic
======================  =========================================================================
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import random
import select
import selectors
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from .bench import (
    Child, Member, Receivers, Target, _met, _parse, _percentile, _summary, _text, _udp_socket, join_server, machine,
    make_room, prepared_joins,
)
from .crypto import (
    RecordLayer, ServerHello, SessionKeys, client_key_exchange, derive_session_keys, derive_session_keys_v3,
    system_random,
)
from .net import ConnectionClosed, FramedSocket
from .protocol import (
    MAX_DATAGRAM, Ack, Chat, Datagram, Hello, Message, ProtocolError, Refusal, Resend, RoomChat, decode_message,
)

__all__ = ["ATTACKS", "AdversaryOptions", "Attack", "AttackerProcess", "Config", "attacker_main", "run_adversary"]

HISTORY = 300            #: room messages a resend flooder posts first (a resend answers at most 256)
HISTORY_TEXT = 900       #: characters in each of them: the answers are as big as a chat gets
DRAIN_EVERY = 32         #: datagrams sent between two reads of what came back
RCVBUF = 1 << 22         #: receive buffer of every attacker UDP socket: what came back is all counted
MAX_SECONDS = 600.0      #: an attacker stops by itself after this long, whatever the bench does
DRAIN = 16.0             #: seconds for the legitimate sender's last chats after an attack (its 16 tries take ~14 s)


@dataclass(frozen=True)
class Config:
    """What an attacker process is told: which attack, from which address, against which server."""

    attack: str
    ip: str                          # every socket of the attacker is bound to this address
    tcp: tuple[str, int]
    udp: tuple[str, int]
    fingerprint: str | None = None
    victim_ip: str = ""              # spoofed_resend: the address the forged resends come from
    room: str = ""                   # wrong_password: the room whose password is guessed
    threads: int = 8                 # TCP attackers: connections in parallel

    @classmethod
    def from_json(cls, line: str) -> Config:
        obj = json.loads(line)
        return cls(**{**obj, "tcp": tuple(obj["tcp"]), "udp": tuple(obj["udp"])})


@dataclass
class Tally:
    """What one attacker thread did (each thread has its own: no lock on the hot path)."""

    datagrams: int = 0          # UDP datagrams sent
    connections: int = 0        # TCP connections that got a ServerHello
    refused: int = 0            # ... that got a Refusal frame instead
    failed: int = 0             # connects that failed, connections reset or timed out
    requests: int = 0           # TCP requests sent (guesses, CREATE_ROOM)
    tcp_sent: int = 0           # TCP bytes sent and received (frames)
    tcp_received: int = 0
    answers: Counter[str] = field(default_factory=Counter)   # request outcomes: ok, or the error code

    def add(self, other: Tally) -> None:
        for name in ("datagrams", "connections", "refused", "failed", "requests", "tcp_sent", "tcp_received"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.answers.update(other.answers)


@dataclass
class Address:
    """UDP traffic between one of the attacker's addresses and the server."""

    proven: bool                # a member's address, proven by its handshake (§4.2); False: never proven
    sent: int = 0               # bytes sent from it
    received: int = 0           # bytes the server sent to it
    datagrams: int = 0
    received_datagrams: int = 0


@dataclass(frozen=True)
class KeyExchange:
    """A ClientKeyExchange prepared once for the version the server speaks (§2, §2.2), and how to
    get a connection's keys from its ServerHello. An attacker reuses its X25519 key on purpose: it
    skips nothing the server checks, and the server still does its half on every connection."""

    body: bytes
    keys: Callable[[ServerHello], SessionKeys]

    @classmethod
    def prepare(cls, hello: ServerHello) -> KeyExchange:
        if hello.forward_secret:
            private = X25519PrivateKey.generate()
            share = private.public_key().public_bytes_raw()

            def keys(h: ServerHello) -> SessionKeys:
                return derive_session_keys_v3(private.exchange(X25519PublicKey.from_public_bytes(h.share)), h, share)

            return cls(share, keys)
        premaster = system_random(32)
        body = client_key_exchange(hello, premaster=premaster)[0]
        return cls(body, lambda h: derive_session_keys(premaster, h, body))


class Attack:
    """One attacker: :meth:`prepare` (not measured), then :meth:`loop` in :meth:`thread_count`
    threads from ``go`` until ``stop`` is set, then :meth:`finish` and :meth:`report`."""

    name: ClassVar[str] = ""
    what: ClassVar[str] = ""

    def __init__(self, config: Config):
        self.config = config
        self.addresses: dict[str, Address] = {}
        self.sockets: dict[str, socket.socket] = {}   # one UDP socket per address
        self.tallies: list[Tally] = []
        self.held_max = 0

    def prepare(self) -> None:
        pass

    def thread_count(self) -> int:
        return 1

    def forget_preparation(self) -> None:
        """Discard what came back while preparing (the history's own copies): only the attack counts."""
        for ip, address in self.addresses.items():
            self._drain(ip)
            self.addresses[ip] = Address(address.proven)

    def loop(self, stop: threading.Event, tally: Tally) -> None:
        raise NotImplementedError

    def finish(self) -> None:
        """After the threads ended: read what the server still sends for a moment."""
        deadline = time.monotonic() + 0.3
        while self.sockets and time.monotonic() < deadline:
            ready, _, _ = select.select(list(self.sockets.values()), [], [], max(0.0, deadline - time.monotonic()))
            for ip, sock in self.sockets.items():
                if sock in ready:
                    self._drain(ip)

    def report(self, seconds: float, cpu: float) -> dict[str, Any]:
        total = Tally()
        for tally in self.tallies:
            total.add(tally)
        out = asdict(total)
        out["answers"] = dict(total.answers)
        out.update(attack=self.name, what=self.what, ip=self.config.ip, seconds=seconds, cpu_s=cpu,
                   held_max=self.held_max, addresses={ip: asdict(a) for ip, a in self.addresses.items()})
        return out

    # --- UDP ---------------------------------------------------------------------------------

    def udp_socket(self, ip: str, proven: bool) -> socket.socket:
        sock = _udp_socket(self.config.udp, ip)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        sock.setblocking(False)
        self.sockets[ip], self.addresses[ip] = sock, Address(proven)
        return sock

    def _drain(self, ip: str) -> None:
        sock, address = self.sockets[ip], self.addresses[ip]
        try:
            while True:
                address.received += len(sock.recv(MAX_DATAGRAM + 1))
                address.received_datagrams += 1
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:   # an ICMP error on a connected socket: not data from the server
            pass

    def flood(self, stop: threading.Event, tally: Tally, ip: str, make: Callable[[], bytes]) -> None:
        """Send ``make()`` from ``ip`` as fast as this process can; count what comes back."""
        sock, address, drain = self.sockets[ip], self.addresses[ip], self._drain
        send, is_set, n = sock.send, stop.is_set, 0
        while not is_set():
            data = make()
            try:
                send(data)
            except (BlockingIOError, InterruptedError):   # the socket's send buffer is full: read, retry
                drain(ip)
                continue
            except OSError:
                tally.failed += 1
                continue
            n += 1
            address.sent += len(data)
            if not n % DRAIN_EVERY:
                drain(ip)
        address.datagrams += n
        tally.datagrams += n
        drain(ip)

    # --- TCP ---------------------------------------------------------------------------------

    def connect(self, tally: Tally, timeout: float = 5.0) -> tuple[socket.socket, FramedSocket, ServerHello] | None:
        """A TCP connection from our address and its ServerHello; None if refused or failed."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.IPPROTO_IP, getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24), 1)  # port at connect
        except OSError:
            pass
        try:
            sock.bind((self.config.ip, 0))
            sock.settimeout(timeout)
            sock.connect(self.config.tcp)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            io = FramedSocket(sock, time.monotonic() + timeout)
            body = io.recv()
        except (OSError, ConnectionClosed, ProtocolError):
            tally.failed += 1
            sock.close()
            return None
        tally.tcp_received += len(body) + 4
        if Refusal.parse(body) is not None:
            tally.refused += 1
            sock.close()
            return None
        tally.connections += 1
        return sock, io, ServerHello.decode(body)

    def send_frame(self, io: FramedSocket, body: bytes, tally: Tally) -> None:
        tally.tcp_sent += len(io.send(body))

    def key_exchange(self) -> KeyExchange:
        """One ClientKeyExchange, reused on every connection: the server pays its key agreement
        (version 3) or RSA decryption (version 2) each time, the attacker only what it must."""
        tally = Tally()
        connected = self.connect(tally)
        if connected is None:
            raise RuntimeError(f"{self.name}: cannot reach the server from {self.config.ip}")
        sock, _, hello = connected
        sock.close()
        return KeyExchange.prepare(hello)

    def member(self, room: str, username: str = "mallory", **join: Any) -> Any:
        """Join (or create) ``room`` from our address and say hello from there: a real member,
        whose UDP socket (its proven address) is counted from now on."""
        member = join_server(Target(self.config.tcp, self.config.udp, self.config.fingerprint), room, username,
                             source=self.config.ip, **join)
        member.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        member.sock.setblocking(False)
        self.sockets[self.config.ip], self.addresses[self.config.ip] = member.sock, Address(proven=True)
        return member


# --- UDP attackers -------------------------------------------------------------------------------

class ResendFlood(Attack):
    name, what = "resend_flood", "a member asks resend for its room's whole history, without pause"

    def prepare(self) -> None:
        self.member_ = self.member(f"resend-{self.config.ip}", create=True)
        post_history(self.member_, HISTORY)
        self.resend = Resend(1, HISTORY + 1).encode()

    def loop(self, stop: threading.Event, tally: Tally) -> None:
        seal, resend = self.member_.channel.seal, self.resend
        self.flood(stop, tally, self.config.ip, lambda: seal(resend))


class SpoofedResend(ResendFlood):
    name, what = "spoofed_resend", "the same, sent from another address (a victim's); challenges unanswered"

    def prepare(self) -> None:
        super().prepare()
        self.udp_socket(self.config.victim_ip, proven=False)

    def loop(self, stop: threading.Event, tally: Tally) -> None:
        seal, resend = self.member_.channel.seal, self.resend
        self.flood(stop, tally, self.config.victim_ip, lambda: seal(resend))


class HelloFlood(Attack):
    name, what = "hello_flood", "a member sends authenticated hellos, without pause"

    def prepare(self) -> None:
        self.member_ = self.member(f"hello-{self.config.ip}", create=True)

    def loop(self, stop: threading.Event, tally: Tally) -> None:
        seal, hello = self.member_.channel.seal, Hello().encode()
        self.flood(stop, tally, self.config.ip, lambda: seal(hello))


class Garbage(Attack):
    name, what = "garbage", "junk datagrams, unknown tokens, and bad tags on a real session's token"

    def prepare(self) -> None:
        member = self.member(f"garbage-{self.config.ip}", create=True)
        rng = random.Random(12)
        room, token = member.channel.room.encode(), member.channel.token
        self.pool = []
        for i in range(63):
            body = rng.randbytes(rng.randrange(16, 300))
            if i % 3 == 0:    # not a datagram at all (TokenSize is wrong)
                self.pool.append(bytes([rng.randrange(256), rng.randrange(17, 256)]) + body)
            elif i % 3 == 1:  # a datagram for a session that does not exist
                self.pool.append(Datagram.make_header(room, rng.randbytes(16), rng.getrandbits(63)) + body)
            else:             # a real session's token and a new seq, a forged tag: costs a decryption
                self.pool.append(Datagram.make_header(room, token, rng.getrandbits(63)) + body)
        self.pool.append(rng.randbytes(MAX_DATAGRAM + 500))   # oversize

    def loop(self, stop: threading.Event, tally: Tally) -> None:
        pool = self.pool
        counter = iter(range(1 << 62)).__next__
        self.flood(stop, tally, self.config.ip, lambda: pool[counter() & 63])


# --- TCP attackers -------------------------------------------------------------------------------

class HandshakeHold(Attack):
    name, what = "handshake_hold", "TCP connections that take the ServerHello and never send a key exchange"

    def loop(self, stop: threading.Event, tally: Tally) -> None:
        self.hold(stop, tally, finish=False)

    def hold(self, stop: threading.Event, tally: Tally, *, finish: bool) -> None:
        """Open connections as fast as possible and keep each until the server closes it."""
        held = selectors.DefaultSelector()

        def forget_closed() -> None:   # closed by the server (its deadline): forget them
            for key, _ in held.select(0):
                try:
                    data = key.fileobj.recv(65536)  # type: ignore[union-attr]
                except OSError:
                    data = b""
                tally.tcp_received += len(data)
                if not data:
                    held.unregister(key.fileobj)
                    key.fileobj.close()  # type: ignore[union-attr]

        try:
            while not stop.is_set():
                forget_closed()
                connected = self.connect(tally)
                if connected is None:
                    continue
                sock, io, _ = connected
                if finish:
                    self.send_frame(io, self.ckx, tally)
                sock.setblocking(False)
                held.register(sock, selectors.EVENT_READ)
                forget_closed()   # the place it got may be one the server freed a moment ago
                self.held_max = max(self.held_max, len(held.get_map()))
        finally:
            for key in list(held.get_map().values()):
                key.fileobj.close()  # type: ignore[union-attr]
            held.close()

    def prepare(self) -> None:
        self.ckx = self.key_exchange().body


class IdleConnections(HandshakeHold):
    name, what = "idle_connections", "as many finished handshakes as allowed, held open and silent"

    def loop(self, stop: threading.Event, tally: Tally) -> None:
        self.hold(stop, tally, finish=True)


class KeyExchangeChurn(Attack):
    name, what = "key_exchange_churn", "connect, take the ServerHello, send a ClientKeyExchange, close; again"

    def prepare(self) -> None:
        self.ckx = self.key_exchange().body

    def thread_count(self) -> int:
        return self.config.threads

    def loop(self, stop: threading.Event, tally: Tally) -> None:
        while not stop.is_set():
            connected = self.connect(tally)
            if connected is None:
                continue
            sock, io, _ = connected
            try:
                self.send_frame(io, self.ckx, tally)   # the server does its key agreement even though we go
            except OSError:
                tally.failed += 1
            sock.close()


class RequestFlood(Attack):
    """Connections with a finished key exchange that send requests until the server closes them."""

    def prepare(self) -> None:
        self.kx = self.key_exchange()
        self.ckx = self.kx.body
        self.count = iter(range(1 << 62)).__next__

    def thread_count(self) -> int:
        return self.config.threads

    def request(self) -> Message:
        raise NotImplementedError

    def loop(self, stop: threading.Event, tally: Tally) -> None:
        while not stop.is_set():
            connected = self.connect(tally)
            if connected is None:
                continue
            sock, io, hello = connected
            try:
                self.send_frame(io, self.ckx, tally)
                records = RecordLayer.client(self.kx.keys(hello))
                while not stop.is_set():
                    self.send_frame(io, records.seal(self.request().encode()), tally)
                    tally.requests += 1
                    body = io.recv()
                    tally.tcp_received += len(body) + 4
                    reply = decode_message(records.open(body))
                    tally.answers[str(reply.payload.get("code") or reply.payload.get("status"))] += 1
                    if reply.payload.get("status") == "ok":   # a room was created: its COMPLETE, then the end
                        body = io.recv()
                        tally.tcp_received += len(body) + 4
                        break
            except (OSError, ConnectionClosed, ProtocolError):
                pass   # the server closed it (three failed requests, or its deadline): connect again
            finally:
                sock.close()


class WrongPassword(RequestFlood):
    name, what = "wrong_password", "connections in parallel guessing a room's password"

    def thread_count(self) -> int:
        return 2 * self.config.threads

    def request(self) -> Message:
        n = self.count()
        return Message.join_room(self.config.room, f"guess{n}", f"{n % 10_000:04d}")


class RoomFlood(RequestFlood):
    name, what = "room_flood", "create rooms whose hosts never say hello"

    def request(self) -> Message:
        return Message.create_room(f"flood-{self.config.ip}-{self.count()}", "host")


class CpuHog(Attack):
    name, what = "cpu_hog", "control: one busy core and no traffic (what the 2-core machine alone costs)"

    def loop(self, stop: threading.Event, tally: Tally) -> None:
        n, is_set = 0, stop.is_set
        while not is_set():
            n += 1


ATTACKS: dict[str, type[Attack]] = {cls.name: cls for cls in (
    ResendFlood, SpoofedResend, HelloFlood, Garbage, HandshakeHold, KeyExchangeChurn, WrongPassword,
    IdleConnections, RoomFlood, CpuHog)}


def post_history(member: Any, n: int, timeout: float = 20.0) -> None:
    """Post ``n`` chats of HISTORY_TEXT characters (retransmitted until acknowledged) in ``member``'s room."""
    text = "h" * HISTORY_TEXT
    waiting = set(range(1, n + 1))
    deadline = time.monotonic() + timeout
    while waiting and time.monotonic() < deadline:
        for chat_id in sorted(waiting)[:400]:   # within the chat budget's burst (2 x 250/s)
            member.sock.send(member.channel.seal(Chat(id=chat_id, text=text).encode()))
        until = time.monotonic() + 0.5
        while waiting and time.monotonic() < until:
            ready, _, _ = select.select([member.sock], [], [], 0.05)
            if not ready:
                continue
            try:
                data = member.sock.recv(MAX_DATAGRAM + 1)
                payload = member.decode(data)
            except (OSError, ProtocolError):
                continue
            if isinstance(payload, Ack):
                waiting.discard(payload.id)
    if waiting:
        raise RuntimeError(f"{len(waiting)} history chats were never acknowledged")


# --- the bench side: the legitimate load alone, then next to each attacker ------------------

ADVERSARY_TARGETS = {  # the targets under attack: (key, comparison, bound, what)
    "goodput_ratio": (">=", 0.5, "goodput at least 0.5x the run without attacker"),
    "p99_ratio": ("<=", 3.0, "p99 latency at most 3x the run without attacker"),
    "lost": ("==", 0, "no legitimate message lost"),
    "amplification": ("<=", 3.0, "at most 3x the bytes back to an address the server never proved"),
}


@dataclass
class AdversaryOptions:
    members: int = 50
    rate: float = 200.0
    seconds: float = 10.0
    joins: int = 20
    warmup: float = 1.0        #: seconds of attack before the legitimate load starts
    settle: float = 5.0        #: seconds to wait for the last messages (and acks) after the window
    attacks: tuple[str, ...] = ()
    handshake: str = "x25519"  #: the server's: "x25519" (version 3, what a classroom runs) or "rsa" (version 2)

    @classmethod
    def quick(cls) -> AdversaryOptions:
        return cls(seconds=3.0, warmup=0.5, settle=3.0)


class LegitLoad:
    """The legitimate load of one scenario, all from 127.0.0.1: a room of ``members`` (a real
    :class:`~tcrp_lab.client.ChatClient` that sends, and retransmits what is lost, and raw receivers
    that timestamp), and ``joins`` joins into another room, spread over the window."""

    def __init__(self, child: Child, tag: str, options: AdversaryOptions, password_room: str = ""):
        from .client import ChatClient

        self.child, self.options = child, options
        self.prepared = prepared_joins(child, options.joins)   # first: the server counts its early close now
        self.sender = ChatClient.create_room(child.tcp, f"legit-{tag}", "m0", fingerprint=child.fingerprint)
        self.room = make_room(child, "ours", options.members - 1, f"legit-{tag}", first=1)
        self.joins_host = join_server(child, f"joins-{tag}", "host", create=True)
        self.joins_room = f"joins-{tag}"
        self.hosts = [self.joins_host]
        if password_room:   # the teacher's room that wrong_password guesses at
            self.hosts.append(join_server(child, password_room, "teacher", create=True, password="correct horse"))

    def run(self, stop_attack: Callable[[], Any] = lambda: None) -> dict[str, Any]:
        """The window: ``rate`` messages/s for ``seconds``, the joins spread over it, then up to
        ``settle`` seconds for the last ones, all under attack; then ``stop_attack()``, and what was
        still on its way (retransmitted by the sender, asked again by the receivers) is counted
        late, and what never came, lost."""
        options, sender, room = self.options, self.sender, self.room
        n = max(1, round(options.rate * options.seconds))
        joined: list[tuple[float | None, str]] = [(None, "not started")] * options.joins
        members: list[Member] = []

        def join(i: int, at: float) -> None:
            time.sleep(max(0.0, at - time.perf_counter()))
            t0 = time.perf_counter()
            try:
                members.append(join_server(self.child, self.joins_room, f"j{i}", prepared=self.prepared[i]))
                joined[i] = ((time.perf_counter() - t0) * 1000, "")
            except (OSError, RuntimeError, ProtocolError, ConnectionClosed) as exc:   # what a student would see
                joined[i] = (None, f"{type(exc).__name__}: {exc}"[:200])

        receivers = Receivers(room.members, room.tracker)
        sent: dict[tuple[int, int], int] = {}
        start = next_at = time.perf_counter_ns()
        threads = [threading.Thread(target=join, args=(i, start / 1e9 + i * options.seconds / options.joins),
                                    daemon=True) for i in range(options.joins)]
        for thread in threads:
            thread.start()
        try:
            for k in range(n):
                delay = next_at - time.perf_counter_ns()
                if delay > 0:
                    time.sleep(delay / 1e9)
                next_at += int(1e9 / options.rate)
                sent[(0, k)] = time.perf_counter_ns()
                sender.send(_text(0, k))
            settled = time.monotonic() + options.settle
            receivers.wait(lambda: receivers.tracked >= n, options.settle)
            sender.flush(max(0.0, settled - time.monotonic()))
            for thread in threads:
                thread.join(max(0.0, settled - time.monotonic()))
            report = stop_attack()
            stopped = time.perf_counter_ns()
            sender.flush(DRAIN)   # each chat is acknowledged, or its client gave up (16 tries)
            receivers.wait(lambda: receivers.tracked >= n, 1.0)
        finally:
            receivers.stop()
        for thread in threads:
            thread.join(15)
        for member in members:
            member.close()
        result = _summary(room, sent, start, 0.0)
        result.pop("cpu_us_per_delivery")
        result["first_copy_loss"] = result.pop("loss")
        result["late"] = sum(t > stopped for member in room.members for t, _ in member.records)
        result.update(self._recover(n))
        times = [ms for ms, _ in joined if ms is not None]
        result.update(joins=options.joins, joins_failed=len(joined) - len(times),
                      join_p50_ms=_percentile(times, 50), join_p95_ms=_percentile(times, 95),
                      join_errors=sorted({error for ms, error in joined if ms is None}))
        result["sender"] = {k: sender.stats[k] for k in ("sent", "retransmits", "undelivered", "refused",
                                                          "resend_requests")}
        result["attacker"] = report
        return result

    def _recover(self, n: int, tries: int = 3) -> dict[str, Any]:
        """Room messages a receiver missed, asked again with ``resend`` (as a real client would);
        ``lost`` is what is still missing after that: (message, receiver) pairs, where a message
        no receiver ever saw (and the sender has no seq for) is missing at every receiver."""
        got = {id(member): self._received(member) for member in self.room.members}
        seq_of = {_parse(m.text)[1]: m.seq for m in self.sender.messages if m.mine}
        for received in got.values():
            seq_of.update(received)
        for _ in range(tries):
            missing = {id(m): sorted(seq_of[k] for k in seq_of if k not in got[id(m)]) for m in self.room.members}
            if not any(missing.values()):
                break
            for member in self.room.members:
                for first, last in _ranges(missing[id(member)]):
                    member.sock.send(member.channel.seal(Resend(first, last).encode()))  # type: ignore[union-attr]
            time.sleep(0.5)
            for member in self.room.members:
                got[id(member)].update(self._received(member))
        receivers = len(self.room.members)
        missing_pairs = sum(len(set(seq_of) - set(got[id(m)])) for m in self.room.members)
        return {"posted": len(seq_of), "unposted": n - len(seq_of),
                "lost": missing_pairs + (n - len(seq_of)) * receivers, "receivers": receivers}

    @staticmethod
    def _received(member: Member) -> dict[int, int]:
        """``{k: seq}`` of the room messages in what ``member`` received (its records, then its socket)."""
        out = {}
        records = [data for _, data in member.records]
        member.records.clear()
        member.sock.setblocking(False)
        try:
            while True:
                records.append(member.sock.recv(4097))
        except OSError:
            pass
        for data in records:
            try:
                payload = member.decode(data)
            except ProtocolError:
                continue
            if isinstance(payload, RoomChat) and payload.text[:4] == "0000":
                out[_parse(payload.text)[1]] = payload.seq
        return out

    def close(self) -> None:
        self.sender.leave()   # the host leaves: the room is closed
        for host in self.hosts:
            host.leave()
        self.room.close()


def _ranges(seqs: list[int], most: int = 256) -> Iterator[tuple[int, int]]:
    """Consecutive runs of sorted ``seqs``, each at most ``most`` long (what one resend answers)."""
    for _, run in itertools.groupby(enumerate(seqs), lambda pair: pair[1] - pair[0]):
        values = [seq for _, seq in run]
        for i in range(0, len(values), most):
            yield values[i], values[min(i + most, len(values)) - 1]


def adversary_scenario(child: Child, index: int, attack: str | None, options: AdversaryOptions,
                       step: Callable[[str], None]) -> dict[str, Any]:
    """The legitimate load next to one attacker (None: alone), and what each side did."""
    name = attack or "alone"
    tag = f"{index}-{name}"
    ip, victim = f"127.0.0.{index + 1}", f"127.0.0.{index + 101}"
    config = Config(attack or "", ip, child.tcp, child.udp, child.fingerprint, victim_ip=victim,
                    room=f"locked-{tag}")
    step(f"{name}: the room of {options.members} (and the attacker prepares)")
    attacker = AttackerProcess(config) if attack else None
    try:
        load = LegitLoad(child, tag, options, password_room=config.room if attack == "wrong_password" else "")
        try:
            if attacker:
                attacker.ready()
            watch = ServerWatch(child)
            if attacker:
                attacker.go()
                step(f"{name}: attacking from {ip} for {options.warmup:g} s before the load")
                time.sleep(options.warmup)
            step(f"{name}: {options.rate:g} messages/s for {options.seconds:g} s, {options.joins} joins")

            def stop_attack() -> dict[str, Any] | None:
                report = attacker.stop() if attacker else None
                watch.stop()   # after the attacker: everything it was refused is counted
                step(f"{name}: attack stopped; the last messages")
                return report

            result = load.run(stop_attack)
        finally:
            load.close()
    finally:
        if attacker:
            attacker.close()
    drops = watch.drops(("127.0.0.1", ip, victim))
    result["server_log"] = watch.after.get("log", [])
    result.update(attack=attack, ip=ip if attack else "127.0.0.1", server_cpu_share=watch.cpu / watch.elapsed,
                  kernel_drops=watch.kernel_drops, legit_dropped=drops["127.0.0.1"],
                  server_connections=watch.after["connections"] - watch.before["connections"],
                  server_datagrams_in=watch.after["datagrams_in"] - watch.before["datagrams_in"])
    if attack:
        result["dropped"] = dict(Counter(drops[ip]) + Counter(drops[victim]))
        result.update(_amplification(result["attacker"]))
        result["shared_queue"] = shares_queue(watch.after.get("udp_queues_of", {}), (ip, victim))
    step(f"{name}: waiting for the server to close the attacker's connections")
    _wait_quiet(child, watch.before["open_connections"])
    return result


def shares_queue(queues: dict[str, int], attacker: tuple[str, ...], honest: str = "127.0.0.1") -> bool:
    """Whether any address the attacker sends from (its own, a spoofed victim's) is steered into the
    class's UDP queue: the server's random steering key decides, 1 in 64 for each (TCRP.md §8.4)."""
    ours = queues.get(honest)
    return ours is not None and any(queues.get(ip) == ours for ip in attacker if ip)


class ServerWatch:
    """The server's counters from now until :meth:`stop`: drops per source, kernel drops, CPU."""

    def __init__(self, child: Child):
        self.child = child
        self.before, self.cpu0, self.t0 = child.command("stats"), child.cpu(), time.perf_counter()
        self.after: dict[str, Any] = self.before
        self.cpu = self.elapsed = 0.0

    def stop(self) -> None:
        self.after = self.child.command("stats")
        self.cpu, self.elapsed = self.child.cpu() - self.cpu0, time.perf_counter() - self.t0

    @property
    def kernel_drops(self) -> int | None:
        after, before = self.after.get("kernel_drops"), self.before.get("kernel_drops")
        return None if after is None or before is None else after - before

    def drops(self, sources: tuple[str, ...]) -> dict[str, dict[str, int]]:
        """What the server dropped or refused from each source meanwhile, by reason."""
        out = {}
        for source in sources:
            after = self.after["drops_by_source"].get(source, {})
            before = self.before["drops_by_source"].get(source, {})
            out[source] = {reason: n - before.get(reason, 0) for reason, n in after.items()
                           if n != before.get(reason, 0)}
        return out


def _amplification(report: dict[str, Any]) -> dict[str, Any]:
    """Bytes the server sent to each attacker address / bytes sent from it (both measured by the
    attacker): for the addresses the server never proved (the target), and for its own member's."""
    out: dict[str, Any] = {"amplification": None, "proven_amplification": None}
    for address in report["addresses"].values():
        if address["sent"]:
            key = "proven_amplification" if address["proven"] else "amplification"
            out[key] = max(out[key] or 0.0, address["received"] / address["sent"])
    return out


def _wait_quiet(child: Child, connections: int, timeout: float = 15.0) -> None:
    """Until the server has closed what the attacker left open (its deadlines are 5 and 10 s)."""
    deadline = time.monotonic() + timeout
    while child.command("stats")["open_connections"] > connections and time.monotonic() < deadline:
        time.sleep(0.2)


def run_adversary(options: AdversaryOptions, step: Callable[[str], None] = lambda what: None) -> dict[str, Any]:
    """The legitimate load alone, then next to each attacker in turn, then alone again, on one server
    with every default limit. The ratios are to the mean of the two runs alone (the machine drifts)."""
    attacks = options.attacks or tuple(ATTACKS)
    started = time.perf_counter()
    result: dict[str, Any] = {"mode": "adversary", "machine": machine(), "options": dataclasses.asdict(options)}
    result["options"]["attacks"] = list(attacks)
    child = Child("server", lifted=False, handshake=options.handshake)
    try:
        result["limits"] = child.limits
        result["alone"] = adversary_scenario(child, 0, None, options, step)
        result["attacks"] = {attack: adversary_scenario(child, index, attack, options, step)
                             for index, attack in enumerate(attacks, start=1)}
        result["alone_again"] = adversary_scenario(child, len(attacks) + 1, None, options, step)
    finally:
        result["server_stop_s"] = child.close().get("stop_s")
    alone = [result["alone"], result["alone_again"]]
    result["baseline"] = {key: statistics.fmean(s[key] for s in alone)
                          for key in ("deliveries_per_s", "latency_p99_ms")}
    for attack, scenario in result["attacks"].items():
        scenario["what"] = ATTACKS[attack].what
        scenario["goodput_ratio"] = scenario["deliveries_per_s"] / result["baseline"]["deliveries_per_s"]
        scenario["p99_ratio"] = scenario["latency_p99_ms"] / result["baseline"]["latency_p99_ms"]
        scenario["targets"] = {key: None if scenario[key] is None else _met(scenario[key], op, bound)
                               for key, (op, bound, _) in ADVERSARY_TARGETS.items()}
    unproven = [(s["amplification"], a) for a, s in result["attacks"].items() if s["amplification"] is not None]
    result["worst_amplification"], result["worst_amplification_attack"] = max(unproven, default=(None, None))
    result["all_met"] = all(met is not False for s in result["attacks"].values() for met in s["targets"].values())
    result["seconds"] = time.perf_counter() - started
    return result


def adversary_table(result: dict[str, Any]) -> Any:
    """Per attacker: what it sent, what the server refused, what the legitimate load saw, met or not;
    then the server's own reports of what it dropped (what a teacher reads in its log)."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    m, o, alone = result["machine"], result["options"], result["alone"]
    t = Table(title=f"tcrp_lab bench --adversary: {m['cpus']} cores ({m['cpu']}), Python {m['python']}, load "
                    f"{m['load_average'][0]:g}. Handshake version {3 if o.get('handshake', 'x25519') == 'x25519' else 2}, "
                    f"every limit at its default. Legitimate load from 127.0.0.1: a room "
                    f"of {o['members']} at {o['rate']:g} msg/s for {o['seconds']:g} s and {o['joins']} joins",
              caption="goodput, p99: then as a ratio to the mean of the runs alone (targets >= 0.5x, <= 3x). "
                      "lost: (message, member) pairs never delivered (target 0); late: delivered after the attacker "
                      "stopped. joins: failed/tried, p95. "
                      "out/in: bytes the server sent to an address it never proved over the bytes from it (target "
                      "<= 3x); own: to the attacker's own member, whose resends have a budget instead")
    widths = {"attacker": (18, None), "it sent": (None, 12), "server refused": (None, 14), "lost": (None, 6),
              "joins": (None, 8), "out/in": (None, 9), "met": (None, 9)}
    for column, justify in (("attacker", "left"), ("it sent", "left"), ("server refused", "left"), ("goodput", "right"),
                            ("p99", "right"), ("lost", "right"), ("joins", "right"), ("out/in", "right"),
                            ("met", "left")):
        low, high = widths.get(column, (None, None))   # rich alone would crop the table at 120 columns
        t.add_column(column, justify=justify, min_width=low, max_width=high)  # type: ignore[arg-type]

    def legit(s: dict[str, Any], ratios: bool) -> list[str]:
        p99_ratio = f"\n{s['p99_ratio']:,.{1 if s['p99_ratio'] < 100 else 0}f}x" if ratios else ""
        return [f"{s['deliveries_per_s']:,.0f}/s" + (f"\n{s['goodput_ratio']:.2f}x" if ratios else ""),
                _ms(s["latency_p99_ms"]) + p99_ratio,
                f"{s['lost']:,}" + (f"\n{_k(s['late'])} late" if s["late"] else ""),
                f"{s['joins_failed']}/{s['joins']}\n{_ms(s['join_p95_ms'])}"]

    t.add_row("none (alone)", "", "", *legit(alone, False), "", "")
    t.add_row("none (again, last)", "", "", *legit(result["alone_again"], False), "", "")
    for attack, s in result["attacks"].items():
        report, dropped = s["attacker"], Counter(s["dropped"])
        if report["datagrams"]:
            sent = f"{_k(report['datagrams'])} dgrams\n{_k(report['datagrams'] / (report['seconds'] or 1))}/s"
        elif report["held_max"]:
            sent = f"{_k(report['connections'] + report['refused'])} conns\n{report['held_max']} held"
        elif report["connections"]:
            sent = f"{_k(report['connections'])} conns\n{_k(report['requests'])} requests"
        else:
            sent = "nothing"
        refused = f"{_k(sum(dropped.values()))}: {dropped.most_common(1)[0][0].replace('_', ' ')}" if dropped else "-"
        if s["kernel_drops"]:
            refused += f"\n+{_k(s['kernel_drops'])} kernel"
        amplification = "-" if s["amplification"] is None else f"{s['amplification']:.3f}x"
        if s["proven_amplification"] is not None:
            amplification += f"\nown {s['proven_amplification']:.2f}x"
        failed = [_SHORT[key] for key, met in s["targets"].items() if met is False]
        shared = "\nsame UDP queue\nas the class" if s.get("shared_queue") else ""
        t.add_row(f"{attack}\n{s['ip']}{shared}", sent, refused, *legit(s, True), amplification,
                  "[green]yes[/]" if not failed else "[red]no[/]: " + ", ".join(failed))
    scenarios = [alone, *result["attacks"].values(), result["alone_again"]]
    reports = [Text(line) for s in scenarios for line in s["server_log"] if line.startswith("dropped or refused")]
    if not reports:
        return t
    return Group(t, Text("What the server logged meanwhile (a report every 10 s of what it dropped, by source):"),
                 *reports, fit=False)


def _ms(value: float) -> str:
    return f"{value:,.0f} ms" if value >= 100 else f"{value:.1f} ms"


_SHORT = {"goodput_ratio": "goodput", "p99_ratio": "p99", "lost": "lost", "amplification": "bytes"}


def _k(n: float) -> str:
    return f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e3:.1f}k" if n >= 1e4 else f"{n:,.0f}"


# --- the attacker process, and the bench's handle on it --------------------------------------

def attacker_main() -> None:
    """Child: read a Config line, prepare, say ready; attack from ``go`` to ``stop``; report."""
    config = Config.from_json(sys.stdin.readline())
    attack = ATTACKS[config.attack](config)
    try:
        attack.prepare()
    except (OSError, RuntimeError, ProtocolError, ConnectionClosed) as exc:   # the bench shows why
        _say({"error": f"{type(exc).__name__}: {exc}"})
        return
    attack.forget_preparation()
    _say({"ready": True})
    if sys.stdin.readline().strip() != "go":
        return
    stop = threading.Event()
    threads, crashed = [], []

    def loop(tally: Tally) -> None:
        try:
            attack.loop(stop, tally)
        except Exception as exc:  # noqa: BLE001 - a bug in the attacker: reported, so the bench refuses the run
            crashed.append(f"{type(exc).__name__}: {exc}")

    start, cpu0 = time.perf_counter(), time.process_time()
    for i in range(attack.thread_count()):
        tally = Tally()
        attack.tallies.append(tally)
        threads.append(threading.Thread(target=loop, args=(tally,), name=f"attack-{i}", daemon=True))
        threads[-1].start()
    deadline = threading.Timer(MAX_SECONDS, stop.set)
    deadline.daemon = True
    deadline.start()
    sys.stdin.readline()   # "stop", or EOF: the bench went away
    stop.set()
    seconds = time.perf_counter() - start
    for thread in threads:
        thread.join(10)
    cpu = time.process_time() - cpu0
    attack.finish()
    _say({**attack.report(seconds, cpu), "crashed": sorted(set(crashed))})


def _say(obj: dict[str, Any]) -> None:
    print(json.dumps(obj), flush=True)


class AttackerProcess:
    """The bench's handle on one attacker process: start it (it prepares), ``go``, ``stop``."""

    def __init__(self, config: Config):
        self.config = config
        self.proc = subprocess.Popen([sys.executable, "-m", "tcrp_lab.bench", "--child", "attacker"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        self._send(json.dumps(asdict(config)))

    def ready(self, timeout: float = 60.0) -> None:
        """Wait until it is prepared; RuntimeError with its reason if it could not."""
        answer = self._read(timeout)
        if not answer.get("ready"):
            raise RuntimeError(f"attacker {self.config.attack}: {answer.get('error', answer)}")

    def go(self) -> None:
        self._send("go")

    def stop(self, timeout: float = 30.0) -> dict[str, Any]:
        """Stop it; what it sent and received."""
        self._send("stop")
        try:
            report = self._read(timeout)
        finally:
            self.close()
        if report.get("crashed"):   # its figures would describe a broken attacker, not the server
            raise RuntimeError(f"attacker {self.config.attack} crashed: {'; '.join(report['crashed'])}")
        return report

    def close(self) -> None:
        try:
            self.proc.stdin.close()  # type: ignore[union-attr]
            self.proc.wait(5)
        except (OSError, ValueError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()

    def _send(self, line: str) -> None:
        try:
            self.proc.stdin.write(line + "\n")  # type: ignore[union-attr]
            self.proc.stdin.flush()  # type: ignore[union-attr]
        except (OSError, ValueError):
            pass   # it ended already: _read says why

    def _read(self, timeout: float) -> dict[str, Any]:
        stdout = self.proc.stdout
        assert stdout is not None
        ready, _, _ = select.select([stdout], [], [], timeout)
        line = stdout.readline() if ready else ""
        if not line:
            raise RuntimeError(f"attacker {self.config.attack} said nothing within {timeout:g} s "
                               f"(exit code {self.proc.poll()})")
        return json.loads(line)
