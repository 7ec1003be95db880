"""ChatServer: the threaded TCP/UDP shell around the TCRP codec, crypto and room registry.

Threads, each with one job (the socketserver pattern):

* ``tcrp-accept`` accepts TCP connections and starts one ``tcrp-conn`` thread per connection,
  which does the handshake and the requests within a deadline, then closes;
* ``tcrp-udp`` reads the UDP port's sockets (:mod:`tcrp_lab.shards`: the kernel puts each source
  address in one of their queues) in turn, a few datagrams from each, spends the source's budget,
  and hands each datagram to the profile (a :class:`ServerProfile`: :mod:`tcrp_lab.secure` by
  default, or :mod:`tcrp_lab.legacy`), which authenticates it and asks the registry;
* ``tcrp-reaper`` removes inactive members about twice a second.

No exception from the network escapes a thread: bad input is dropped or answered as TCRP.md
says, and counted in :attr:`ChatServer.stats`. Every budget of TCRP.md §8 (:class:`~tcrp_lab.limits.Limits`)
is enforced here or in the registry; what was refused is counted per reason and source address and
reported in one log line every ``report_interval`` seconds, never per datagram on the UDP thread.
``stop()`` tells every member the server is going, then joins every thread and closes every socket.

Usage::

    with ChatServer(tcp_port=0, udp_port=0) as server:
        print(server.address, server.fingerprint)
"""

from __future__ import annotations

import logging
import secrets
import selectors
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from .crypto import RandomSource, ServerKey, system_random
from .events import PacketEvent, Tracer
from .limits import BucketTable, Limits, TokenBucket
from .net import ConnectionClosed, FramedSocket, ServerAddress, wire_frame
from .protocol import MAX_DATAGRAM, ErrorCode, ProtocolError, Refusal
from .rooms import DEFAULT_TIMEOUT, Delivery, RoomRegistry
from .secure import SecureProfile
from .shards import bind_udp, queue_of

__all__ = ["ChatServer", "ServerAddress", "ServerStats"]

log = logging.getLogger("tcrp_lab.server")

REAP_INTERVAL = 0.5           #: the reaper's period: timeouts are acted on within a second
REPORT_INTERVAL = 10.0        #: seconds between two log lines about what was dropped or throttled
TRACE_REJECTED_RATE = 20.0    #: rejected datagrams traced per second at most (the rest are counted)
EVICT_AFTER = 1.0             #: a full server closes the oldest key exchange older than this to admit one
UDP_SHARDS = 64               #: UDP sockets on the port, each with its own queue (§8.4)
UDP_RCVBUF = 1 << 20          #: receive buffer of each UDP socket (memory is taken only as it fills)
UDP_TURN = 16                 #: datagrams read from one socket before the next socket's turn
MAX_THROTTLED_SOURCES = 1024  #: source addresses counted apart in what was throttled; the rest add up as "others"
FLOOD_RUN = 64                #: throttled datagrams in a row on one socket that mute it ...
FLOOD_PAUSE = 0.005           #: ... this long: the kernel drops the flood meanwhile, at no cost to us


class ServerStats:
    """Thread-safe counters. ``snapshot()`` gives a plain dict (what ``server.stats`` returns)."""

    MAX_SOURCES = 256   #: distinct (reason, source, who) kept between two reports; the rest add up as "others"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counters: Counter[str] = Counter()
        self.drops: Counter[str] = Counter()
        self.by_source: dict[str, Counter[str]] = {}              # source address -> reasons, since the start
        self._recent: Counter[tuple[str, str, str]] = Counter()   # since the last report

    def add(self, name: str, n: int = 1) -> None:
        with self._lock:
            self.counters[name] += n

    def drop(self, reason: str, source: str = "?", who: str = "") -> None:
        with self._lock:
            self.drops[reason] += 1
            if source in self.by_source or len(self.by_source) < self.MAX_SOURCES:
                self.by_source.setdefault(source, Counter())[reason] += 1
            else:
                self.by_source.setdefault("others", Counter())[reason] += 1
            key = (reason, source, who)
            if key not in self._recent and len(self._recent) >= self.MAX_SOURCES:
                key = (reason, "others", "")
            self._recent[key] += 1

    def recent(self) -> Counter[tuple[str, str, str]]:
        """What was dropped since the last call, by (reason, source address, session); then forget it."""
        with self._lock:
            recent, self._recent = self._recent, Counter()
            return recent

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            out: dict[str, Any] = {k: self.counters[k] for k in (
                "connections", "open_connections", "joins", "datagrams_in", "datagrams_out")}
            out.update({k: v for k, v in self.counters.items() if k not in out})
            out["drops"] = dict(self.drops)
            out["drops_by_source"] = {source: dict(reasons) for source, reasons in self.by_source.items()}
            return out


class ServerProfile(Protocol):
    """What the shell asks of a protocol profile: the design it speaks, over the shell's sockets.

    A profile is made by ``ChatServer(profile=factory)`` as ``factory(server)`` and acts through the
    shell it was given (``server.deliver``, ``server.send_datagram``, ``server.drop``, ``server.trace``);
    it never opens a socket of its own. :class:`~tcrp_lab.secure.SecureProfile` (TCRP/2, the default)
    and :class:`~tcrp_lab.legacy.LegacyProfile` (TCRP/1, for the lessons) are the two there are.
    """

    name: str                 #: what the design is called in logs ("TCRP/2")
    pinned_key: bool          #: one long-term key for every connection (so its fingerprint can be pinned)
    one_udp_queue: bool       #: the design needs every datagram in one queue, in arrival order

    def handle_connection(self, io: FramedSocket, peer: tuple[str, int]) -> None:
        """Serve one TCP connection (on its own thread) until it is done; may raise to close it."""

    def handle_datagram(self, data: bytes, peer: tuple[str, int]) -> None:
        """One datagram from ``peer`` (on the UDP thread): answer through the shell, or drop and count it."""

    def reap(self, now: float) -> None:
        """Remove who has been silent too long at ``now`` (the shell's clock) and tell who must be told."""

    def shutdown(self) -> None:
        """The server is stopping: tell the members, as the design does."""

    def counts(self) -> tuple[int, int]:
        """(rooms, members) right now."""


ProfileFactory = Callable[["ChatServer"], ServerProfile]


class ChatServer:
    """A TCRP server: rooms over TCP, chat over UDP.

    ``tcp_port``/``udp_port`` 0 picks free ports (read them back from :attr:`address` after
    :meth:`start`). ``key`` is a :class:`~tcrp_lab.crypto.ServerKey`; by default one is generated
    once for this server. ``rng`` (randomness), ``clock`` (monotonic time for timeouts) and
    ``wall_clock`` (the ``ts`` of chat messages) are injectable for deterministic lessons and
    tests; ``trace`` is a :data:`~tcrp_lab.events.Tracer` (a :class:`~tcrp_lab.trace.Trace`, or any
    callable taking a :class:`~tcrp_lab.events.PacketEvent`), called for every frame and datagram
    (rejected datagrams: at most TRACE_REJECTED_RATE a second). ``profile`` makes the
    :class:`ServerProfile`: TCRP/2 by default; ``profile=LegacyProfile`` (from
    :mod:`tcrp_lab.legacy`) serves the original, insecure design for the lessons.

    Every limit of TCRP.md §8 is a keyword argument (``max_rooms_per_address=5``,
    ``chat_rate=20``, ``handshake_timeout=3`` …; see :class:`~tcrp_lab.limits.Limits` for the list and
    the defaults), or pass ``limits=Limits(...)``. :attr:`limits` holds what is in force.
    ``udp_shards`` sockets share the UDP port, so that one flooding address fills only its own
    queue (where the system allows; the legacy profile always has one), read in turn by one thread.
    ``handshake`` is ``"x25519"`` (TCRP.md §2.2, forward secret, the default) or ``"rsa"`` (§2, RSA
    key transport, for the lessons that teach it); the legacy profile has its own.
    """

    def __init__(self, host: str = "127.0.0.1", tcp_port: int = 9001, udp_port: int = 9002,
                 inactivity_timeout: float = DEFAULT_TIMEOUT, key: ServerKey | None = None, *,
                 profile: ProfileFactory = SecureProfile, trace: Tracer | None = None, rng: RandomSource | None = None,
                 clock: Callable[[], float] = time.monotonic, wall_clock: Callable[[], float] = time.time,
                 reap_interval: float = REAP_INTERVAL, report_interval: float = REPORT_INTERVAL,
                 udp_shards: int = UDP_SHARDS, limits: Limits | None = None, handshake: str = "x25519",
                 **limit_overrides: float):
        for name, port in (("tcp_port", tcp_port), ("udp_port", udp_port)):
            if not isinstance(port, int) or not 0 <= port <= 65535:
                raise ValueError(f"{name} must be a port number 0-65535 (0 picks a free port), not {port!r}")
        if inactivity_timeout <= 0:
            raise ValueError("inactivity_timeout must be a positive number of seconds")
        self.limits = (limits or Limits()).replace(**limit_overrides)
        self.host = host
        self._ports = (tcp_port, udp_port)
        self.rng = rng or system_random
        self.key = key or ServerKey.generate(rng=rng)
        self.trace = trace
        self.clock = clock
        self.reap_interval = reap_interval
        self.report_interval = report_interval
        self.registry = RoomRegistry(inactivity_timeout=inactivity_timeout, clock=clock, rng=self.rng,
                                     wall_clock=wall_clock, limits=self.limits)
        self._trace_rejected = TokenBucket(TRACE_REJECTED_RATE)   # shared by the UDP threads, under its lock
        self._new_connections: BucketTable[str] = BucketTable(self.limits.connection_rate, 64)   # accept thread only
        # The RSA private-key operation (the version 3 signature, the version 2 decryption) is a join's one costly step: a few at once, so a churn of key exchanges
        # cannot take every core from the UDP threads (§8.1).
        self.key_exchanges = threading.BoundedSemaphore(max(1, self.limits.max_key_exchanges))
        self._trace_lock = threading.Lock()
        self._stats = ServerStats()
        if isinstance(profile, str) or not callable(profile):
            raise TypeError(f"profile takes a profile class, not {profile!r}: SecureProfile (the default) or "
                            "LegacyProfile (from tcrp_lab.legacy import LegacyProfile; TCRP/1, insecure)")
        self.handshake = handshake   # SecureProfile reads it: "x25519" (version 3) or "rsa" (version 2)
        self.profile: ServerProfile = profile(self)
        self.udp_shards = 1 if self.profile.one_udp_queue else max(1, min(256, udp_shards))
        self._intake: _UdpIntake | None = None
        self._tcp: socket.socket | None = None
        self._udp: socket.socket | None = None     # the first UDP socket: the one the server sends from
        self._bound: ServerAddress | None = None   # the real ports, kept after stop()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._connections: dict[socket.socket, _Connection] = {}
        self._per_address: Counter[str] = Counter()      # open connections by IP
        self._handshaking: Counter[str] = Counter()      # ... of which still in the key exchange
        self._conn_lock = threading.Lock()
        self._conn_ids = iter(range(1, 2**63))

    # --- public face -----------------------------------------------------------------------

    @property
    def address(self) -> ServerAddress:
        """The bound address, with the real ports once started."""
        return self._bound or ServerAddress(self.host, *self._ports)

    def local_address(self, transport: str) -> tuple[str, int]:
        """The server's own end of its ``"tcp"`` or ``"udp"`` packets, as a trace event's ``local``."""
        address = self.address
        return address.host, address.tcp_port if transport == "tcp" else address.udp_port

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the server's public key: give it to clients to pin."""
        return self.key.fingerprint

    @property
    def running(self) -> bool:
        return self._udp is not None and not self._stopping.is_set()

    @property
    def stats(self) -> dict[str, Any]:
        """Counters right now: connections, rooms, members, datagrams in/out, drops by reason and
        (``drops_by_source``) by source address."""
        snap = self._stats.snapshot()
        snap["rooms"], snap["members"] = self.profile.counts()
        intake = self._intake
        if intake is not None:
            snap["datagrams_in"] += intake.received
            if intake.throttled_total:
                snap["drops"]["throttled_address"] = snap["drops"].get("throttled_address", 0) + intake.throttled_total
                for source, n in dict(intake.throttled).items():   # a copy: the UDP thread counts on
                    by_source = snap["drops_by_source"].setdefault(source, {})
                    by_source["throttled_address"] = by_source.get("throttled_address", 0) + n
        snap["udp_queues"] = len(intake.socks) if intake else 0
        return snap

    def udp_queue_of(self, address: str) -> int | None:
        """Which of the UDP port's queues datagrams from IPv4 ``address`` land in (None: one queue)."""
        intake = self._intake
        if intake is None or len(intake.socks) == 1:
            return None
        return queue_of(address, len(intake.socks), self._steering_key)

    def start(self) -> ChatServer:
        """Bind both ports and start the threads; returns once the server accepts traffic."""
        if self._udp is not None:
            raise RuntimeError("this server was already started; make a new ChatServer")
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            tcp.bind((self.host, self._ports[0]))
            tcp.listen(128)
            # The steering key is the system's randomness, not self.rng: a lesson's seeded tokens stay the same.
            self._steering_key = secrets.randbits(32)
            udps = bind_udp(self.host, self._ports[1], self.udp_shards, UDP_RCVBUF, key=self._steering_key)
        except OSError as exc:
            tcp.close()
            raise OSError(exc.errno, f"cannot listen on {self.host} tcp {self._ports[0]} / udp {self._ports[1]}: "
                          f"{exc.strerror}. Is another server running? Port 0 picks a free port.") from None
        tcp.settimeout(0.5)   # the accept and UDP loops look at the stop flag at least this often
        self._intake = _UdpIntake(udps, BucketTable(self.limits.address_rate))
        self._tcp, self._udp = tcp, udps[0]
        self._bound = ServerAddress(self.host, tcp.getsockname()[1], udps[0].getsockname()[1])
        for name, target in (("tcrp-accept", self._accept_loop), ("tcrp-udp", self._udp_loop),
                             ("tcrp-reaper", self._reap_loop)):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        log.info("%s server listening on %s", self.profile.name, self.address)
        if self.profile.pinned_key:  # TCRP/1 makes a key per connection: nothing to pin
            log.info("key fingerprint %s", self.fingerprint)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Tell every member ``room_closed``/``server_shutdown``, join every thread, close every socket."""
        if self._udp is None or self._stopping.is_set():
            return
        self.profile.shutdown()
        self._stopping.set()
        if self._intake is not None:  # wake the UDP thread now rather than at its next timeout
            self._intake.wake()
        deadline = time.monotonic() + timeout
        _shutdown(self._tcp)  # wakes the accept thread at once; it accepts nothing after the flag
        accept_thread = self._threads[0]
        accept_thread.join(max(0.0, deadline - time.monotonic()))
        with self._conn_lock:  # complete now: no connection can be added behind our back
            connections = list(self._connections.items())
        for conn, _ in connections:
            _shutdown(conn)  # wakes a handler blocked in recv() at once
        for thread in self._threads[1:] + [c.thread for _, c in connections]:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._report()
        self._tcp.close()
        if self._intake is not None:
            self._intake.close()
        log.info("server stopped")

    def __enter__(self) -> ChatServer:
        return self if self._udp is not None else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped" if self._stopping.is_set() else "not started"
        return f"ChatServer({self.address}, {self.profile.name}, {state})"

    # --- shared by the profiles --------------------------------------------------------------

    def drop(self, reason: str, peer: object = None, detail: str = "", who: str = "") -> None:
        """Count something refused or dropped, by reason and source address (``detail`` is for the
        trace). Never logs: the reaper reports the counts every ``report_interval``, so a flood of
        bad datagrams never becomes a flood of log lines on the UDP thread."""
        source = peer[0] if isinstance(peer, tuple) and peer else "?"
        self._stats.drop(reason, str(source), who)

    def count(self, name: str, n: int = 1) -> None:
        self._stats.add(name, n)

    def send_datagram(self, data: bytes, address: tuple[str, int]) -> bool:
        """Send one datagram from the server's UDP port; count it, or count the failure."""
        try:
            self._udp.sendto(data, address)  # type: ignore[union-attr]
        except OSError as exc:
            self.drop("send_error", address, str(exc))
            return False
        self.count("datagrams_out")
        return True

    def deliver(self, deliveries: list[Delivery]) -> None:
        """Seal each payload for each recipient with a known address and send it.

        The payload is encoded once; only the AEAD seal (the per-member keys) is per recipient.
        """
        udp, trace, sent = self._udp, self.trace, 0
        for delivery in deliveries:
            plaintext = delivery.payload.encode()
            for member in delivery.to:
                address = delivery.address or member.address   # delivery.address: a challenge (§4.2)
                if address is None:
                    continue
                datagram = member.channel.seal(plaintext)
                if trace is not None:  # traced before it leaves, so a trace never shows the answer first
                    trace(PacketEvent(time.time(), "server", "out", "udp", address, delivery.payload.TYPE, datagram,
                        message=delivery.payload, plaintext=plaintext, session=member.token.hex(),
                        user=member.username, local=self.local_address("udp")))
                try:
                    udp.sendto(datagram, address)  # type: ignore[union-attr]
                    sent += 1
                except OSError as exc:  # a vanished member (ICMP unreachable), a full buffer
                    self.drop("send_error", address, str(exc))
        if sent:
            self.count("datagrams_out", sent)

    # --- threads -----------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        assert self._tcp is not None
        while not self._stopping.is_set():
            try:
                conn, peer = self._tcp.accept()
            except TimeoutError:
                continue
            except OSError:
                if self._stopping.is_set():
                    return
                self.drop("accept_error")
                continue
            self.count("connections")
            if self._stopping.is_set():  # accepted while stop() runs: do not start a handler
                conn.close()
                return
            with self._conn_lock:
                refusal = self._admit(peer[0])
                if refusal is None:
                    thread = threading.Thread(target=self._serve_connection, args=(conn, peer),
                                              name=f"tcrp-conn-{next(self._conn_ids)}", daemon=True)
                    self._connections[conn] = _Connection(thread, peer[0], time.monotonic())
                    self._per_address[peer[0]] += 1
                    self._handshaking[peer[0]] += 1
            if refusal is not None:
                reason, message = refusal
                self.drop(reason, peer)
                _refuse(conn, message)
                continue
            thread.start()

    def _admit(self, ip: str) -> tuple[str, str] | None:
        """None if a connection from ``ip`` may be served (§8.1), else (drop reason, what to tell it).
        A full server makes room by closing its oldest key exchange, if one is older than EVICT_AFTER."""
        limits = self.limits
        if not self._new_connections.take(ip, time.monotonic()):
            return "throttled_connections", (f"your address {ip} opens connections faster than "
                                             f"{limits.connection_rate:g} a second: wait a moment and try again")
        if self._per_address[ip] >= limits.max_connections_per_address:
            return "too_many_connections_from_address", (
                f"your address {ip} already has {self._per_address[ip]} connections open, the most one address may "
                "have: close some and try again")
        if self._handshaking[ip] >= limits.max_handshakes_per_address:
            return "too_many_handshakes_from_address", (
                f"your address {ip} has {self._handshaking[ip]} connections that have not finished their key "
                "exchange: finish or close them and try again")
        if len(self._connections) - sum(c.evicted for c in self._connections.values()) >= limits.max_connections:
            now = time.monotonic()
            stale = [(c.started, s) for s, c in self._connections.items()
                     if c.handshaking and not c.evicted and now - c.started > EVICT_AFTER]
            if not stale:
                return "too_many_connections", "the server is full: try again in a few seconds"
            _, oldest = min(stale, key=lambda pair: pair[0])
            self._connections[oldest].evicted = True
            _shutdown(oldest)   # its handler ends and frees the place
            self.drop("handshake_evicted", (self._connections[oldest].ip,))
        return None

    def key_exchanged(self, conn: socket.socket) -> None:
        """A connection finished its key exchange (profiles call this): it no longer counts as a
        handshake, and it is never evicted."""
        with self._conn_lock:
            info = self._connections.get(conn)
            if info is not None and info.handshaking:
                info.handshaking = False
                self._forget(self._handshaking, info.ip)

    def _serve_connection(self, conn: socket.socket, peer: tuple[str, int]) -> None:
        self.count("open_connections")
        deadline = time.monotonic() + self.limits.handshake_timeout
        try:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.profile.handle_connection(FramedSocket(conn, deadline), peer)
        except TimeoutError:
            self.drop("tcp_deadline", peer)
        except ConnectionClosed:
            self.drop("tcp_closed_early", peer)
        except ProtocolError as exc:
            self.drop("tcp_protocol_error", peer, exc.reason)
        except OSError as exc:
            self.drop("tcp_socket_error", peer, str(exc))
        except Exception:  # a bug of ours: log it loudly, but keep serving everyone else
            log.exception("unexpected error serving %s", peer)
            self.drop("internal_error", peer)
        finally:
            conn.close()
            self.count("open_connections", -1)
            with self._conn_lock:
                info = self._connections.pop(conn, None)
                if info is not None:
                    self._forget(self._per_address, info.ip)
                    if info.handshaking:
                        self._forget(self._handshaking, info.ip)

    @staticmethod
    def _forget(counter: Counter[str], key: str) -> None:
        counter[key] -= 1
        if counter[key] <= 0:
            del counter[key]

    def _udp_loop(self) -> None:
        """Read every UDP socket in turn, UDP_TURN datagrams at most from one before the next, so an
        address flooding its queue never delays the others' more than a turn (§8.4)."""
        intake = self._intake
        assert intake is not None
        handle, stopping, clock, take = self.profile.handle_datagram, self._stopping, self.clock, intake.budget.take
        while not stopping.is_set():
            for sock in intake.ready(0.5):
                recv, run = sock.recvfrom, 0   # run: throttled datagrams in a row from this socket
                for _ in range(UDP_TURN):
                    try:
                        data, peer = recv(MAX_DATAGRAM + 1, socket.MSG_DONTWAIT)
                    except BlockingIOError:
                        break
                    except OSError as exc:  # ICMP errors surface here on some systems; never fatal
                        self.drop("udp_socket_error", None, str(exc))
                        break
                    intake.received += 1
                    if not take(peer[0], clock()):  # §8.4: before any parsing, so a flood costs next to nothing
                        intake.throttle(peer[0])
                        run += 1
                        continue
                    try:
                        handle(data, peer)
                    except Exception:
                        log.exception("unexpected error handling a datagram from %s", peer)
                        self.drop("internal_error", peer)
                if run >= min(UDP_TURN, FLOOD_RUN):   # a whole turn of flood: the kernel may drop it for a while
                    intake.mute(sock, FLOOD_PAUSE)

    def _reap_loop(self) -> None:
        next_report = time.monotonic() + self.report_interval
        while not self._stopping.wait(self.reap_interval):
            try:
                self.profile.reap(self.clock())
                if time.monotonic() >= next_report:
                    next_report = time.monotonic() + self.report_interval
                    self._report()
            except Exception:
                log.exception("unexpected error in the reaper")

    def trace_rejected(self) -> bool:
        """May one more rejected datagram be traced now (at most TRACE_REJECTED_RATE a second)?"""
        with self._trace_lock:
            return self._trace_rejected.take(time.monotonic())

    def _report(self) -> None:
        """One log line for everything dropped or refused since the last one: what a teacher reads to
        find the student who floods (the source address, and the session's name where known)."""
        recent = self._stats.recent()
        if self._intake is not None:
            for source, n in self._intake.throttled_since_report().items():
                recent[("throttled_address", source, "")] += n
        if not recent:
            return
        by_reason: Counter[str] = Counter()
        for (reason, _, _), n in recent.items():
            by_reason[reason] += n
        worst = ", ".join(f"{reason} ×{n:,} from {source}{f' ({who})' if who else ''}"
                          for (reason, source, who), n in recent.most_common(5))
        log.info("dropped or refused %s in the last %.0f s (%s); most: %s", f"{sum(recent.values()):,}",
                    self.report_interval, ", ".join(f"{r} {n:,}" for r, n in by_reason.most_common()), worst)


class _UdpIntake:
    """The UDP port's sockets, read by one thread, and what that thread alone counts (no lock)."""

    def __init__(self, socks: list[socket.socket], budget: BucketTable[str]):
        self.socks = socks
        self.budget = budget          # §8.4: per source address; only the UDP thread spends it
        self.received = 0
        self.throttled_total = 0
        self.throttled: Counter[str] = Counter()
        self._reported: Counter[str] = Counter()
        self._muted: dict[socket.socket, float] = {}
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_w.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ)
        for sock in socks:
            sock.setblocking(True)   # sending may wait for buffer space; receiving never does (MSG_DONTWAIT)
            self._selector.register(sock, selectors.EVENT_READ)

    def ready(self, timeout: float) -> list[socket.socket]:
        """The sockets with datagrams waiting (muted ones come back when their time is up)."""
        now = time.monotonic()
        for sock, until in list(self._muted.items()):
            if now >= until:
                del self._muted[sock]
                self._selector.register(sock, selectors.EVENT_READ)
        if self._muted:
            timeout = min(timeout, max(0.0, min(self._muted.values()) - now))
        return [key.fileobj for key, _ in self._selector.select(timeout)
                if key.fileobj is not self._wake_r]  # type: ignore[misc]

    def mute(self, sock: socket.socket, seconds: float) -> None:
        self._selector.unregister(sock)
        self._muted[sock] = time.monotonic() + seconds

    def throttle(self, source: str) -> None:
        self.throttled_total += 1
        if source in self.throttled or len(self.throttled) < MAX_THROTTLED_SOURCES:
            self.throttled[source] += 1
        else:
            self.throttled["others"] += 1

    def throttled_since_report(self) -> Counter[str]:
        """Throttled datagrams by source since the last call (read from another thread: a copy first)."""
        now = Counter(dict(self.throttled))
        delta, self._reported = now - self._reported, now
        return delta

    def wake(self) -> None:
        try:
            self._wake_w.send(b"!")
        except OSError:
            pass

    def close(self) -> None:
        self._selector.close()
        for sock in (*self.socks, self._wake_r, self._wake_w):
            sock.close()


@dataclass(eq=False)
class _Connection:
    """An open TCP connection, as the accept thread counts it (§8.1)."""

    thread: threading.Thread
    ip: str
    started: float
    handshaking: bool = True     # until its ClientKeyExchange arrived
    evicted: bool = False


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _refuse(conn: socket.socket, message: str) -> None:
    """Tell a connection we will not serve it why (§2.1), without waiting on it, and close it."""
    try:
        conn.setblocking(False)
        conn.send(wire_frame(Refusal(ErrorCode.SERVER_BUSY, message).encode()))
    except OSError:
        pass
    finally:
        conn.close()


if __name__ == "__main__":
    from .cli import server_main

    raise SystemExit(server_main())
