"""Attacks on TCRP/1 for lesson 08, and the same attacks failing on TCRP/2, each for its own reason.

Everything runs on loopback against a server you started. The tools:

* :class:`UdpRelay` and :class:`TcpRelay`: a man in the middle. Point a client at the relay instead of
  the server; the relay records every datagram (TCP: every frame) with its direction in ``packets``,
  can ``drop`` or ``rewrite`` them on the way, and can ``inject`` more. ``wait_for(n, ...)`` waits
  (bounded) for captured packets. :class:`UdpRelay` also misbehaves like a real network when asked
  (``loss``, ``delay``, ``jitter``, ``reorder``, ``duplicate``: the impairments of Linux netem, seeded,
  see :class:`Netem`).
* :func:`xor`, :func:`ciphertext`, :func:`keystream`: the arithmetic of keystream reuse.
* The attacks, each returning an :class:`AttackResult` that says whether it worked and why:

  ========================= ============================================ =====================================
  attack                    TCRP/1: works because                        TCRP/2: fails because
  ========================= ============================================ =====================================
  :func:`keystream_reuse`   one key and one IV per session               a unique nonce (seq) per datagram
  :func:`bit_flip`          AES-CFB has no integrity check               the AEAD tag does not verify
  :func:`replay`            nothing numbers the datagrams                the replay window (seq seen)
  :func:`steal_token`       the clear token is the whole identity        the tag; the address moves only
                                                                         with an authenticated datagram
  :func:`hijack_room`       create replaces an existing room             ``room_exists``
  :class:`KeySwap`          a new, unauthenticated key per connection    the client pins the fingerprint
                                                                         (or remembers it: trust on first use)
  :class:`ShareSwap`        (no version 3 in TCRP/1)                     version 3: the share is signed
  ========================= ============================================ =====================================

The result of an attack comes from what the server did: on TCRP/1 the relay record of what it passed
on (:meth:`LegacyProfile.relayed_after <tcrp_lab.legacy.LegacyProfile.relayed_after>`), on TCRP/2 the drop counter
that moved (``server.stats["drops"]``).
"""

from __future__ import annotations

import heapq
import logging
import random
import selectors
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from Crypto.PublicKey import RSA

from . import legacy
from .crypto import FS_VERSION, NONCE_SIZE, SHARE_SIZE, ServerKey, ephemeral_server_hello
from .net import ServerAddress
from .protocol import MAGIC, SEQ_BYTES, TAG_SIZE, TOKEN_SIZE, Datagram, FrameReader, ProtocolError, encode_frame

__all__ = [
    "AttackResult", "KeySwap", "Netem", "Packet", "ShareSwap", "TcpRelay", "UdpRelay", "bit_flip", "ciphertext",
    "flip", "hijack_room", "keystream", "keystream_reuse", "replay", "steal_token", "xor",
]

log = logging.getLogger("tcrp_lab.attacks")

C2S, S2C = "c2s", "s2c"
Address = tuple[str, int]


# --- the man in the middle ---------------------------------------------------------------------

@dataclass(frozen=True)
class Packet:
    """One captured datagram or TCP frame body. ``forwarded`` is what went on (None: dropped)."""

    index: int
    direction: str          # "c2s" (client to server) or "s2c"
    client: Address         # the client's address as the relay sees it
    data: bytes
    forwarded: bytes | None = None
    connection: int = 0     # TcpRelay: which connection (1, 2, ...)
    time: float = 0.0
    delays: tuple[float, ...] = ()   # UdpRelay with impairments: seconds each copy was held (two: duplicated)

    def __repr__(self) -> str:
        fate = "dropped" if self.forwarded is None else "rewritten" if self.forwarded != self.data else "forwarded"
        return f"Packet(#{self.index} {self.direction} {self.client[0]}:{self.client[1]}, {len(self.data)} B, {fate})"


Hook = Callable[[Packet], Any]


class _Recorder:
    """What both relays share: the capture list, the hooks, and waiting for packets."""

    def __init__(self, rewrite: Hook | None, drop: Hook | None):
        self.rewrite = rewrite      #: ``rewrite(packet) -> bytes`` to send on instead of ``packet.data``
        self.drop = drop            #: ``drop(packet) -> bool``: True stops the packet here
        self.packets: list[Packet] = []
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def _pass(self, direction: str, client: Address, data: bytes, connection: int = 0,
              impair: Callable[[str], tuple[float, ...]] | None = None) -> Packet:
        """Record a packet and decide what to send on (a hook that raises changes nothing); ``impair``
        (after the hooks) gives the delay of each copy to send, none if the network loses it."""
        with self._cond:
            packet = Packet(len(self.packets), direction, client, data, None, connection, time.monotonic())
            self.packets.append(packet)   # placeholder, completed below
        out: bytes | None = data
        try:
            if self.drop and self.drop(packet):
                out = None
            elif self.rewrite:
                out = self.rewrite(packet)
        except Exception:
            log.exception("a relay hook raised; the packet goes on unchanged")
            out = data
        delays: tuple[float, ...] = ()
        if out is not None and impair is not None:
            delays = impair(direction)
            if not delays:
                out = None
        with self._cond:
            packet = self.packets[packet.index] = replace(packet, forwarded=out, delays=delays)
            self._cond.notify_all()
        return packet

    def captured(self, direction: str | None = None, where: Hook | None = None) -> list[Packet]:
        """The packets so far, optionally only one direction or those ``where(packet)`` accepts."""
        with self._cond:
            return [p for p in self.packets if (direction is None or p.direction == direction)
                    and (where is None or where(p))]

    def wait_for(self, n: int = 1, *, direction: str | None = None, where: Hook | None = None,
                 timeout: float = 5.0) -> list[Packet]:
        """Wait until at least ``n`` matching packets were captured; return them (TimeoutError if not)."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.captured(direction, where)) >= n, timeout):
                raise TimeoutError(f"{len(self.captured(direction, where))} matching packets, not {n}, "
                                   f"after {timeout} s")
            return self.captured(direction, where)

    def _start(self, target: Callable[..., None], *args: Any, name: str) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _join(self) -> None:
        for thread in list(self._threads):
            if thread is not threading.current_thread():
                thread.join(5)

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()  # type: ignore[attr-defined]


def _upstream(address: ServerAddress | Address, udp: bool) -> Address:
    if isinstance(address, ServerAddress):
        port = address.udp_port if udp else address.tcp_port
        if port is None:
            raise ValueError(f"{address} has no {'UDP' if udp else 'TCP'} port")
        return address.host, port
    return address[0], int(address[1])


@dataclass(frozen=True)
class Netem:
    """Seeded network impairments, those of Linux netem (tc-netem(8)), for one direction of a path.

    What happens to the ``n``-th datagram of a direction is a function of ``seed``, the direction and
    ``n`` alone (:meth:`fate`), so a run can be repeated whatever the threads do in between:

    * ``loss``: the probability that it is lost;
    * ``delay`` ± ``jitter`` (seconds, uniform): how long it is held; a jitter larger than the time
      between two datagrams lets the later one overtake, as in netem;
    * ``reorder``: the probability that it is held ``reorder_gap`` seconds longer than the others, so
      the datagrams sent just after it overtake it (netem's ``reorder`` picks the mirror image: the
      chosen ones skip the delay the others wait; this one also reorders with no delay at all);
    * ``duplicate``: the probability that it arrives twice (the copy draws its own jitter).
    """

    loss: float = 0.0
    delay: float = 0.0
    jitter: float = 0.0
    reorder: float = 0.0
    duplicate: float = 0.0
    seed: int = 0
    reorder_gap: float = 0.01

    def __post_init__(self) -> None:
        for name in ("loss", "reorder", "duplicate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} is a probability between 0 and 1, not {getattr(self, name)!r}")
        for name in ("delay", "jitter", "reorder_gap"):
            if not 0.0 <= getattr(self, name) <= 60.0:
                raise ValueError(f"{name} is in seconds, 0 to 60, not {getattr(self, name)!r}")

    @property
    def active(self) -> bool:
        """Does it change anything? (A relay without impairments forwards at once, as before.)"""
        return any((self.loss, self.delay, self.jitter, self.reorder, self.duplicate))

    def fate(self, direction: str, n: int) -> tuple[float, ...]:
        """The delay of each copy of the ``n``-th datagram of ``direction``: () lost, two values duplicated."""
        draw = random.Random(f"{self.seed}/{direction}/{n}").random   # str seeds hash with SHA-512: stable
        lost, twice, held, jitter1, jitter2 = draw(), draw(), draw(), draw(), draw()   # always five draws
        if lost < self.loss:
            return ()
        base = self.delay + (self.reorder_gap if held < self.reorder else 0.0)
        first, copy = (max(0.0, base + (2 * j - 1) * self.jitter) for j in (jitter1, jitter2))
        return (first, copy) if twice < self.duplicate else (first,)


class UdpRelay(_Recorder):
    """A UDP man in the middle: clients send to :attr:`address`, the relay forwards to ``upstream``.

    Each client gets its own upstream socket, so the server sees one address per client (as without
    the relay) and the answers find their way back. ``upstream`` is ``(host, port)`` or a
    ServerAddress (its UDP port). Starts at once; ``stop()`` (or ``with``) ends it.

    ``loss``, ``delay``, ``jitter``, ``reorder``, ``duplicate`` and ``seed`` make it misbehave like a
    real network, both ways, after the ``drop``/``rewrite`` hooks (see :class:`Netem`, kept in
    :attr:`netem`); :attr:`impaired` counts what they did: ``lost``, ``duplicated`` and ``overtaken`` (datagrams
    that left after one that arrived later).
    """

    def __init__(self, upstream: ServerAddress | Address, *, host: str = "127.0.0.1", port: int = 0,
                 rewrite: Hook | None = None, drop: Hook | None = None, loss: float = 0.0, delay: float = 0.0,
                 jitter: float = 0.0, reorder: float = 0.0, duplicate: float = 0.0, seed: int = 0):
        super().__init__(rewrite, drop)
        self.netem = Netem(loss, delay, jitter, reorder, duplicate, seed)
        self.impaired: Counter[str] = Counter()
        self.upstream = _upstream(upstream, udp=True)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, port))
        self.address: Address = self.sock.getsockname()
        self._to_server: dict[Address, socket.socket] = {}
        self._lock = threading.Lock()
        self._selector = selectors.DefaultSelector()
        self._selector.register(self.sock, selectors.EVENT_READ, None)
        self._arrived = {C2S: 0, S2C: 0}       # datagrams per direction so far: n of Netem.fate
        self._left = {C2S: -1, S2C: -1}        # the highest packet index sent on, per direction
        self._held: list[tuple[float, int, int, str, Address, bytes]] = []   # (due, order, index, ...): a heap
        self._order = 0
        self._start(self._run, name="udp-relay")

    def inject(self, data: bytes, client: Address, direction: str = C2S) -> None:
        """Send ``data`` on as if ``client`` had sent it (c2s: to the server from that client's relay
        socket; s2c: to the client from the relay). Not recorded, not hooked, not impaired."""
        if direction == C2S:
            self._socket_for(client).send(data)
        else:
            self.sock.sendto(data, client)

    def stop(self) -> None:
        self._stop.set()
        self._join()
        for sock in [self.sock, *self._to_server.values()]:
            sock.close()
        self._selector.close()

    def _socket_for(self, client: Address) -> socket.socket:
        with self._lock:   # the relay thread and inject() may both ask
            sock = self._to_server.get(client)
            if sock is None:
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                sock.connect(self.upstream)
                self._to_server[client] = sock
                self._selector.register(sock, selectors.EVENT_READ, client)
            return sock

    def _fate(self, direction: str) -> tuple[float, ...]:
        n = self._arrived[direction]
        self._arrived[direction] = n + 1
        delays = self.netem.fate(direction, n)
        if not delays:
            self.impaired["lost"] += 1
        self.impaired["duplicated"] += max(0, len(delays) - 1)
        return delays

    def _run(self) -> None:
        impair = self._fate if self.netem.active else None
        while not self._stop.is_set():
            wait = 0.2 if not self._held else min(0.2, max(0.0, self._held[0][0] - time.monotonic()))
            for key, _ in self._selector.select(wait):
                try:
                    if key.data is None:
                        data, client = self.sock.recvfrom(65536)
                        self._forward(self._pass(C2S, client, data, impair=impair))
                    else:
                        data = key.fileobj.recv(65536)  # type: ignore[union-attr]
                        self._forward(self._pass(S2C, key.data, data, impair=impair))
                except OSError as exc:   # ICMP unreachable from a vanished peer: not the relay's problem
                    log.debug("udp relay: %s", exc)
            now = time.monotonic()
            while self._held and self._held[0][0] <= now:
                _, _, index, direction, client, data = heapq.heappop(self._held)
                self._send(index, direction, client, data)

    def _forward(self, packet: Packet) -> None:
        if packet.forwarded is None:
            return
        if not packet.delays:   # no impairments: straight on, as a relay without them always did
            self._send(packet.index, packet.direction, packet.client, packet.forwarded)
            return
        now = packet.time
        for delay in packet.delays:
            self._order += 1
            heapq.heappush(self._held, (now + delay, self._order, packet.index, packet.direction, packet.client,
                                        packet.forwarded))

    def _send(self, index: int, direction: str, client: Address, data: bytes) -> None:
        if index < self._left[direction]:
            self.impaired["overtaken"] += 1
        self._left[direction] = max(self._left[direction], index)
        try:
            if direction == C2S:
                self._socket_for(client).send(data)
            else:
                self.sock.sendto(data, client)
        except OSError as exc:   # ICMP unreachable from a vanished peer: not the relay's problem
            log.debug("udp relay: %s", exc)


class TcpRelay(_Recorder):
    """A TCP man in the middle that works frame by frame (``u32 length | body``, both profiles' framing).

    Each captured :class:`Packet` is one frame body; ``rewrite`` may return another body (the relay
    writes its length). ``upstream`` is ``(host, port)`` or a ServerAddress (its TCP port).
    """

    def __init__(self, upstream: ServerAddress | Address, *, host: str = "127.0.0.1", port: int = 0,
                 rewrite: Hook | None = None, drop: Hook | None = None):
        super().__init__(rewrite, drop)
        self.upstream = _upstream(upstream, udp=False)
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((host, port))
        self.listener.listen(16)
        self.listener.settimeout(0.2)
        self.address: Address = self.listener.getsockname()
        self._sockets: list[socket.socket] = []
        self._connections = 0
        self._start(self._accept, name="tcp-relay")

    def stop(self) -> None:
        self._stop.set()
        for sock in list(self._sockets):
            _close(sock)
        self._join()
        self.listener.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client_sock, client = self.listener.accept()
            except (TimeoutError, OSError):
                continue
            try:
                server_sock = socket.create_connection(self.upstream, timeout=5)
            except OSError as exc:
                log.debug("tcp relay: cannot reach %s: %s", self.upstream, exc)
                client_sock.close()
                continue
            for sock in (client_sock, server_sock):
                sock.settimeout(None)
            self._sockets += [client_sock, server_sock]
            self._connections += 1
            number = self._connections
            self._start(self._pump, client_sock, server_sock, C2S, client, number, name=f"tcp-relay-{number}-c2s")
            self._start(self._pump, server_sock, client_sock, S2C, client, number, name=f"tcp-relay-{number}-s2c")

    def _pump(self, source: socket.socket, sink: socket.socket, direction: str, client: Address, number: int) -> None:
        reader = FrameReader()
        try:
            while data := source.recv(65536):
                for body in reader.feed(data):
                    out = self._pass(direction, client, body, number).forwarded
                    if out:
                        sink.sendall(encode_frame(out))
            sink.shutdown(socket.SHUT_WR)   # pass the end of the stream on
        except (OSError, ProtocolError):
            _close(source)
            _close(sink)


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


# --- keystream arithmetic ----------------------------------------------------------------------

def xor(a: bytes, b: bytes) -> bytes:
    """Byte-wise XOR, as long as the shorter of the two."""
    return bytes(x ^ y for x, y in zip(a, b))


def _is_legacy_datagram(data: bytes) -> bool:
    return len(data) >= 2 and data[1] == legacy.TOKEN_BYTES


def _body_at(data: bytes) -> int:
    """Where the encrypted part of a datagram starts (TCRP/1: after the token; TCRP/2: after seq)."""
    if len(data) < 2 or data[1] not in (legacy.TOKEN_BYTES, TOKEN_SIZE):
        raise ValueError("not a TCRP datagram: TokenSize is neither 255 (TCRP/1) nor 16 (TCRP/2)")
    return 2 + data[0] + data[1] + (0 if data[1] == legacy.TOKEN_BYTES else SEQ_BYTES)


def ciphertext(data: bytes) -> bytes:
    """The encrypted message of a captured datagram (TCRP/2: without its tag)."""
    body = data[_body_at(data):]
    return body if _is_legacy_datagram(data) else body[:-TAG_SIZE]


def keystream(data: bytes, known_plaintext: bytes) -> bytes:
    """The first block's keystream of a datagram whose plaintext you know.

    On TCRP/1 this block of keystream (AES(key, IV)) encrypts the first 16 bytes of *every* message
    to and from that member, so with it you can read the start of each and forge short ones.
    """
    return xor(ciphertext(data), known_plaintext)[: legacy.BLOCK]


def _readable(data: bytes) -> bool:
    return bool(data) and all(32 <= b < 127 for b in data)


# --- results -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class AttackResult:
    """What an attack did: ``succeeded``, and ``explanation`` says why in the protocol's terms."""

    attack: str
    profile: str
    succeeded: bool
    explanation: str
    evidence: dict[str, Any] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return self.succeeded

    def __str__(self) -> str:
        verdict = "WORKED" if self.succeeded else "FAILED"
        return f"{self.attack} on {self.profile}: {verdict}. {self.explanation}"


def _profile(server: Any) -> str:
    return server.profile.name


def _wait(condition: Callable[[], Any], timeout: float) -> Any:
    """Poll ``condition`` (the server's counters offer no event) until truthy or ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.005)


class _Watch:
    """Notes the server's state before an attack, then reads what the attack made it do."""

    def __init__(self, server: Any):
        self.server = server
        self.legacy = _profile(server) == legacy.NAME
        self.drops = dict(server.stats["drops"])
        done = server.profile.relayed_after() if self.legacy else []
        self.mark = done[-1].index if done else 0

    def relayed(self, token: bytes, peer: Address | None = None) -> legacy.Relayed | None:
        """The first datagram of session ``token`` (from ``peer``) the legacy relay passed on since."""
        return next((r for r in self.server.profile.relayed_after(self.mark)
                     if r.token == token and (peer is None or r.peer == peer)), None)

    def dropped(self, reasons: tuple[str, ...]) -> str | None:
        """The first of ``reasons`` whose drop counter moved since."""
        drops = self.server.stats["drops"]
        return next((r for r in reasons if drops.get(r, 0) > self.drops.get(r, 0)), None)

    def outcome(self, attack: str, *, token: bytes, blocked_by: tuple[str, ...] = (), why_blocked: str = "",
                why_worked: str = "", peer: Address | None = None, timeout: float = 5.0) -> AttackResult:
        """TCRP/1: what the relay passed on for session ``token``; TCRP/2: which of ``blocked_by`` moved."""
        profile = _profile(self.server)
        if self.legacy:
            record = _wait(lambda: self.relayed(token, peer), timeout)
            if record is None:
                stopped = self.server.profile.stopped_by
                why = f" Its relay had stopped at a bad datagram ({stopped}): it relays nothing any more." \
                    if stopped else ""
                return AttackResult(attack, profile, False,
                                    f"The server relayed nothing of it within {timeout} s.{why}")
            return AttackResult(attack, profile, True, f"{why_worked} The server relayed {record.text!r} as "
                                f"{record.user} to {', '.join(record.to) or 'nobody'}.", {"relayed": record})
        reason = _wait(lambda: self.dropped(blocked_by), timeout)
        if reason is None:
            return AttackResult(attack, profile, True, f"The server did not drop it within {timeout} s "
                                f"(none of the drop counters {blocked_by} moved).")
        before = self.drops.get(reason, 0)
        return AttackResult(attack, profile, False, f"{why_blocked}; drops[{reason!r}] went "
                            f"{before} -> {self.server.stats['drops'][reason]}.", {"drop": reason})


def _token(data: bytes) -> bytes:
    at = 2 + data[0]
    return data[at : at + data[1]]


# --- the attacks -------------------------------------------------------------------------------

def keystream_reuse(known: bytes, known_plaintext: bytes, target: bytes) -> AttackResult:
    """Read the start of ``target`` from two captured datagrams of one session and one known plaintext.

    XOR of the two ciphertexts is XOR of the two plaintexts wherever the keystream repeats; XOR with
    the known plaintext (on TCRP/1 the join notice) leaves the other. Only the first 16-byte block is
    sure to share the keystream in CFB (later blocks do while the plaintexts agree so far).
    """
    mixed = xor(ciphertext(known), ciphertext(target))[: legacy.BLOCK]
    recovered = xor(mixed, known_plaintext)
    evidence = {"xor": mixed, "recovered": recovered}
    if _is_legacy_datagram(known):
        return AttackResult("keystream reuse", legacy.NAME, _readable(recovered),
                            "One AES key and one fixed IV per session: the first block of every message is XORed "
                            f"with the same keystream, so the known message gives away {recovered!r}.", evidence)
    seqs = [Datagram.decode(d).seq for d in (known, target)]
    return AttackResult("keystream reuse", "TCRP/2", _readable(recovered),
                        f"Each datagram's nonce is 0000|seq (seq {seqs[0]} and {seqs[1]}, TCRP.md §4), so no "
                        f"keystream repeats and the XOR gives noise: {recovered!r}.", evidence)


def flip(data: bytes, offset: int, old: bytes, new: bytes) -> bytes:
    """A copy of datagram ``data`` whose ciphertext bits are flipped so that the plaintext ``old`` at
    ``offset`` (in the message) would decrypt to ``new``. The attacker needs to know only where.

    In AES-CFB a flipped ciphertext bit flips the same plaintext bit and garbles the *next* block
    (its keystream is AES of this block's ciphertext): in the last block nothing else changes.
    """
    if len(old) != len(new):
        raise ValueError("old and new must have the same length: a flip changes bits, not lengths")
    at = _body_at(data) + offset
    if offset < 0 or at + len(old) > len(data) - (0 if _is_legacy_datagram(data) else TAG_SIZE):
        raise ValueError(f"offset {offset} is outside the message of this datagram")
    out = bytearray(data)
    for i, mask in enumerate(xor(old, new)):
        out[at + i] ^= mask
    return bytes(out)


def bit_flip(server: Any, relay: UdpRelay, packet: Packet, offset: int, old: bytes, new: bytes, *,
             timeout: float = 5.0) -> AttackResult:
    """Send on a captured client datagram with ``old`` turned into ``new`` (e.g. b"1" -> b"9")."""
    watch = _Watch(server)
    relay.inject(flip(packet.data, offset, old, new), packet.client)
    return watch.outcome(
        "bit flip", token=_token(packet.data), blocked_by=("bad_tag",),
        why_blocked="The AEAD tag did not verify, so the server dropped the datagram unread (TCRP.md §4)",
        why_worked="AES-CFB has no integrity check: the flipped ciphertext bits came out as flipped plaintext bits.",
        timeout=timeout)


def replay(server: Any, relay: UdpRelay, packet: Packet, *, timeout: float = 5.0) -> AttackResult:
    """Send a captured client datagram to the server again, from the same address."""
    watch = _Watch(server)
    relay.inject(packet.data, packet.client)
    return watch.outcome(
        "replay", token=_token(packet.data), blocked_by=("replayed",),
        why_blocked="Its seq was already in the session's 64-wide replay window (TCRP.md §4)",
        why_worked="Nothing in a TCRP/1 datagram tells a copy from the original.",
        timeout=timeout)


def steal_token(server: Any, packet: Packet, attacker: socket.socket, *, text: bytes = b"",
                keystream: bytes = b"", timeout: float = 5.0) -> AttackResult:
    """Speak as the member whose datagram was captured, from the ``attacker`` socket, and take its traffic.

    TCRP/1: the forged datagram is the captured header (room, token) and ``text`` encrypted with the
    member's first-block ``keystream`` (see :func:`keystream`); no keystream sends an empty message,
    which is enough to move the member's address to the attacker. TCRP/2: the captured header with a
    fresh seq and the captured ciphertext, the best an attacker without the key can do.
    """
    target = (server.address.host, server.address.udp_port)
    token, peer = _token(packet.data), attacker.getsockname()
    watch = _Watch(server)
    if watch.legacy:
        if len(text) > len(keystream):
            raise ValueError(f"{len(keystream)} bytes of keystream can encrypt at most {len(keystream)} bytes of text")
        attacker.sendto(packet.data[: _body_at(packet.data)] + xor(text, keystream), target)
        result = watch.outcome("token theft", token=token, peer=peer, timeout=timeout,
                               why_worked="The token travels in clear and is all the server checks.")
        session = server.profile.sessions.get(token)
        if result.succeeded and session is not None:
            result = replace(result, explanation=result.explanation + f" {session.username}'s traffic now goes to "
                             f"{session.address[0]}:{session.address[1]}, the attacker.",
                             evidence={**result.evidence, "address": session.address})
        return result
    member = server.registry.session(token)
    before = member.address if member else None
    d = Datagram.decode(packet.data)
    attacker.sendto(Datagram(d.room, d.token, d.seq + 1000, d.ciphertext, d.tag).encode(), target)
    result = watch.outcome("token theft", token=token, blocked_by=("bad_tag", "replayed", "unknown_token"),
                           why_blocked="The token names a session but is no key: the datagram did not authenticate, "
                           "and only an authenticated datagram moves a member's address (TCRP.md §4)",
                           timeout=timeout)
    after = member.address if member else None
    evidence = {**result.evidence, "address_before": before, "address_after": after}
    if after != before:
        return replace(result, succeeded=True, explanation=f"The member's address moved from {before} to {after}",
                       evidence=evidence)
    return replace(result, explanation=result.explanation + f" The member's address stayed {before}.",
                   evidence=evidence)


def hijack_room(server: Any, room: str, username: str = "mallory", password: str = "", *,
                timeout: float = 10.0) -> AttackResult:
    """Create a room with the name of an existing one. On success ``evidence["client"]`` is the
    attacker's member of the room (close it when done)."""
    if _profile(server) == legacy.NAME:
        old = server.profile.rooms.get(room)
        sessions = server.profile.sessions
        cut_off = [sessions[t].username for t in old.tokens if t in sessions] if old else []
        client = legacy.LegacyClient.create_room(server.address, room, username, password, timeout=timeout)
        return AttackResult("room hijack", legacy.NAME, True,
                            f"CREATE_ROOM over an existing room replaces it: {username} now holds {room!r} with a "
                            f"password of their choice, and {', '.join(cut_off) or 'nobody'} no longer get its "
                            "messages (theirs now go to the attacker).", {"client": client, "cut_off": cut_off})
    from .client import ChatClient, RoomExists

    try:
        client = ChatClient.create_room(server.address, room, username, password, timeout=timeout)
    except RoomExists as exc:
        return AttackResult("room hijack", _profile(server), False,
                            f"The server answered room_exists ({exc}), as TCRP.md §3 requires.", {"error": exc})
    return AttackResult("room hijack", _profile(server), True, f"Created {room!r}: it did not exist.",
                        {"client": client})


class KeySwap:
    """A :class:`TcpRelay` ``rewrite`` hook that hands the client the attacker's RSA key.

    TCRP/1: the client cannot tell a fresh per-connection key from the attacker's. The hook decrypts
    the client's AES key and IV, re-encrypts them to the server's key and passes them on; then it
    reads every frame (``plaintexts``: the password in the request) and, with ``stolen``, every
    datagram of the session. TCRP/2: the hook puts its key into the ServerHello (version 3: with its
    own X25519 share, signed by its own key, so the signature verifies); a client that pins the
    server's fingerprint, or remembers it from a first contact (TCRP.md §2.3), stops before it sends
    anything. ``after`` connections pass untouched first (the first contact of trust on first use).
    """

    def __init__(self, key: RSA.RsaKey | None = None, *, after: int = 0):
        self.key = key or RSA.generate(2048)
        self.after = after
        self.stolen: dict[int, tuple[bytes, bytes]] = {}       # connection -> (AES key, IV)
        self.plaintexts: list[tuple[int, str, bytes]] = []     # (connection, direction, plaintext)
        self._swapped: set[int] = set()                        # connections that got the attacker's key
        self._server_pem: dict[int, bytes] = {}                # TCRP/1 connections: the server's real key

    def __call__(self, packet: Packet) -> bytes:
        data, number = packet.data, packet.connection
        if number <= self.after:
            return data
        if packet.direction == S2C and number not in self._swapped:
            self._swapped.add(number)
            if data.startswith(b"-----BEGIN PUBLIC KEY-----"):
                self._server_pem[number] = data
                return self.key.publickey().export_key("PEM")
            if data.startswith(MAGIC) and data[len(MAGIC)] == FS_VERSION:   # sign a share of our own
                return ephemeral_server_hello(ServerKey(self.key))[0].body
            if data.startswith(MAGIC):   # TCRP/2 ServerHello: "TCRP" | version | nonce (16) | DER
                return data[: len(MAGIC) + 17] + self.key.publickey().export_key("DER")
        if packet.direction == C2S and number in self._server_pem and number not in self.stolen:
            key, iv = legacy.open_key_exchange(self.key, data)
            self.stolen[number] = (key, iv)
            return legacy.key_exchange(self._server_pem[number], key, iv)
        if number in self.stolen:
            self.plaintexts.append((number, packet.direction, legacy.cfb_decrypt(*self.stolen[number], data)))
        return data


class ShareSwap:
    """A :class:`TcpRelay` ``rewrite`` hook that replaces the X25519 share of a version 3 ServerHello
    with the attacker's, leaving the server's key and signature: had the client accepted it, the
    attacker would share the session's secret with it. The signature (TCRP.md §2.2) no longer
    matches, and the client stops before it sends anything. ``private`` is the attacker's share's
    X25519 private key (32 bytes)."""

    def __init__(self, private: bytes | None = None):
        from .crypto import Ephemeral

        self.ephemeral = Ephemeral(lambda n: private) if private else Ephemeral()
        self.swapped = 0

    def __call__(self, packet: Packet) -> bytes:
        data = packet.data
        start = len(MAGIC) + 1 + NONCE_SIZE
        if packet.direction == S2C and data.startswith(MAGIC) and len(data) > start + SHARE_SIZE \
                and data[len(MAGIC)] == FS_VERSION:
            self.swapped += 1
            return data[:start] + self.ephemeral.share + data[start + SHARE_SIZE :]
        return data
