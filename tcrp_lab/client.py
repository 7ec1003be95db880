"""ChatClient: join a TCRP/2 room and chat reliably over UDP.

Two halves, as in the protocol:

* :class:`ControlConnection` is the TCP half: handshake (with optional fingerprint pinning), then
  requests. ``ChatClient.list_rooms`` / ``create_room`` / ``join_room`` use it and close it.
* :class:`ChatClient` is a joined member: a thin shell (one receive thread, one UDP socket)
  around :class:`~tcrp_lab.session.MemberSession`, which keeps room messages in order without
  duplicates, retransmits ``hello`` and each ``chat`` a bounded number of times, answers path
  challenges and pings to stay in touch. The shell seals, sends, receives, opens and calls back.

Server errors become specific exceptions (:class:`WrongPassword`, :class:`RoomExists`, ...)
whose message is the server's own explanation.

Usage::

    alice = ChatClient.create_room(server.address, "lab", username="alice")
    alice.send("hello")
    alice.wait_for_messages(1, timeout=5)
"""

from __future__ import annotations

import logging
import select
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .crypto import (
    FS_VERSION, BadSignature, RandomSource, RecordLayer, ServerHello, SessionKeys, UdpChannel, client_key_exchange,
    system_random,
)
from .errors import (
    FingerprintMismatch, ForgedServerHello, InvalidName, InvalidRequest, InvalidText, NoSuchRoom, NotForwardSecret,
    RateLimited, RoomExists, RoomFull, ServerBusy, ServerError, ServerKeyChanged, TcrpError, UsernameTaken,
    WrongPassword, refused_here, server_error,
)
from .events import PacketEvent, Tracer
from .known_servers import KnownServers, Verdict
from .net import ConnectionClosed, FramedSocket, ServerAddress, parse_address, wire_frame
from .protocol import (
    MAX_DATAGRAM, Datagram, Message, Payload, ProtocolError, Refusal, State, check_text, decode_message,
    decode_payload,
)
from .session import (
    LOG_LIMIT, MAX_TRIES, PING_INTERVAL, ChatMessage, MemberSession, MemberState, RetransmitTimer, RoomEvent, Strategy,
)

__all__ = [
    "ChatClient", "ChatMessage", "ControlConnection", "FingerprintMismatch", "ForgedServerHello", "InvalidName",
    "InvalidRequest", "InvalidText", "MemberState", "NoSuchRoom", "NotForwardSecret", "RateLimited", "RetransmitTimer",
    "RoomEvent", "RoomExists", "RoomFull", "RoomInfo", "ServerBusy", "ServerError", "ServerKeyChanged", "TcrpError",
    "UsernameTaken", "WrongPassword",
]

log = logging.getLogger("tcrp_lab.client")
DEFAULT_KNOWN: Any = object()   # known_servers= not given: ~/.tcrp_lab/known_servers (or $TCRP_LAB_KNOWN_SERVERS)


# --- what a client sees ----------------------------------------------------------------------

@dataclass(frozen=True)
class RoomInfo:
    name: str
    members: int
    has_password: bool


# --- the TCP half ----------------------------------------------------------------------------

class ControlConnection:
    """A TCP connection to a TCRP/2 server, after the handshake; send requests with :meth:`request`.

    The server may answer with either handshake: version 3 (forward secret, TCRP.md §2.2) or
    version 2 (RSA key transport, §2); ``require_forward_secrecy`` refuses version 2
    (NotForwardSecret). ``fingerprint`` pins the server key: on a mismatch nothing is sent and
    FingerprintMismatch is raised. Without one, the key is checked against ``known_servers``
    (trust on first use, §2.3: a :class:`~tcrp_lab.known_servers.KnownServers`, a path, or None
    for no memory; by default ``~/.tcrp_lab/known_servers``), and a changed key raises
    ServerKeyChanged. ``timeout`` bounds the connection and every reply. ``bind`` is the local address to
    connect from (a machine with several; tests use 127.0.0.2 to play another host).
    """

    def __init__(self, address: ServerAddress | tuple | str, *, fingerprint: str | None = None,
                 timeout: float = 10.0, trace: Tracer | None = None, rng: RandomSource | None = None,
                 bind: str | None = None, require_forward_secrecy: bool = False,
                 known_servers: KnownServers | str | Path | None = DEFAULT_KNOWN):
        self.address = parse_address(address)
        self.require_forward_secrecy = require_forward_secrecy
        self.known_servers = (KnownServers() if known_servers is DEFAULT_KNOWN else
                              KnownServers(known_servers) if isinstance(known_servers, (str, Path)) else known_servers)
        self.trust: Verdict | str | None = None   # "pinned", or what known_servers said
        self.trace = trace
        rng = rng or system_random
        try:
            sock = socket.create_connection((self.address.host, self.address.tcp_port), timeout=timeout,
                                            source_address=(bind, 0) if bind else None)
        except OSError as exc:
            raise TcrpError(f"cannot connect to {self.address.host}:{self.address.tcp_port}: {exc}. "
                            "Is the server running, and is this its TCP port?") from None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = sock
        self.local_address = sock.getsockname()
        self.peer = sock.getpeername()
        self._io = FramedSocket(sock, time.monotonic() + timeout)
        self._session = f"tcp {self.local_address[0]}:{self.local_address[1]}"
        self.pinned = fingerprint.lower().replace(":", "") if fingerprint is not None else None
        try:
            self.keys, self._records, self.server_hello = self._handshake(rng)
        except BaseException:
            sock.close()
            raise

    def _handshake(self, rng: RandomSource) -> tuple[SessionKeys, RecordLayer, ServerHello]:
        where = f"{self.address.host}:{self.address.tcp_port}"
        try:
            body = self._io.recv()
        except (ProtocolError, ConnectionClosed, OSError) as exc:
            raise TcrpError(f"no TCRP/2 ServerHello from {where} ({exc}): the server closed the connection before "
                            "greeting us (it may be full, or limiting connections from your address)") from None
        try:
            refusal = Refusal.parse(body)   # §2.1: a server that will not serve us says why instead
            hello = None if refusal else ServerHello.decode(body)
        except ProtocolError as exc:
            raise TcrpError(f"no TCRP/2 ServerHello from {where} ({exc})") from None
        if refusal is not None:
            raise server_error(refusal.code, f"the server at {where} refused the connection: {refusal.message}")
        self._emit("in", wire_frame(body), "ServerHello", message=hello)
        if self.require_forward_secrecy and hello.version != FS_VERSION:
            raise NotForwardSecret(
                f"the server at {where} offers only the version {hello.version} handshake (RSA key transport): whoever "
                "gets its key file later can decrypt a recording of this session. Nothing was sent. Ask for a "
                "server started without --handshake rsa, or connect without --require-fs.")
        self._check_key(hello)
        try:
            ckx, keys = client_key_exchange(hello, rng)   # version 3: checks the signature first (§2.2)
        except BadSignature:
            raise ForgedServerHello(
                f"the ServerHello from {where} carries an X25519 share that its key did not sign: someone between "
                "you and the server replaced it. Nothing was sent.") from None
        except ProtocolError as exc:
            raise TcrpError(f"cannot do the key exchange with {where} ({exc.reason})") from None
        if self.trust is Verdict.NEW:   # remembered once its signature (version 3) showed the server holds the key
            self.known_servers.check(self.address.host, self.address.tcp_port, hello.fingerprint)  # type: ignore[union-attr]
        self._emit("out", wire_frame(ckx), "ClientKeyExchange", keys=keys, hello=hello)
        self._send_raw(ckx)
        return keys, RecordLayer.client(keys), hello

    def _check_key(self, hello: ServerHello) -> None:
        """The pinned fingerprint, or else what known_servers remembers (TCRP.md §2.3)."""
        if self.pinned is not None:
            if hello.fingerprint != self.pinned:
                raise FingerprintMismatch(
                    f"the server's key has fingerprint {hello.fingerprint}, not the pinned {self.pinned}: "
                    "this may be a man in the middle. Nothing was sent.")
            self.trust = "pinned"
        elif self.known_servers is not None:
            host, port = self.address.host, self.address.tcp_port
            self.trust = self.known_servers.check(host, port, hello.fingerprint, remember=False)
            if self.trust is Verdict.CHANGED:
                raise ServerKeyChanged(self.known_servers.changed_message(host, port, hello.fingerprint))

    def _send_raw(self, body: bytes) -> None:
        try:
            self._io.send(body)
        except OSError as exc:
            raise TcrpError(f"the connection to the server broke: {exc}") from None

    def _emit(self, direction: str, raw: bytes, kind: str, **fields: Any) -> None:
        if self.trace is not None:
            self.trace(PacketEvent(time.time(), "client", direction, "tcp", self.peer, kind, raw,
                session=self._session, **fields, local=self.local_address))

    def send(self, message: Message) -> None:
        plaintext = message.encode()
        seq = self._records.send_seq
        body = self._records.seal(plaintext)
        self._emit("out", wire_frame(body), "request", seq=seq, message=message, plaintext=plaintext)
        self._send_raw(body)

    def receive(self) -> Message:
        try:
            body = self._io.recv()
        except (ConnectionClosed, OSError) as exc:
            raise TcrpError(f"the server closed the connection before answering ({exc})") from None
        seq = self._records.recv_seq
        try:
            plaintext = self._records.open(body)
            message = decode_message(plaintext)
        except ProtocolError as exc:
            self._emit("in", wire_frame(body), "rejected", seq=seq, error=exc.reason)
            raise TcrpError(f"a reply from the server is not valid TCRP/2 ({exc.reason})") from None
        kind = "complete" if message.state is State.COMPLETE else "response"
        self._emit("in", wire_frame(body), kind, seq=seq, message=message, plaintext=plaintext)
        return message

    def request(self, message: Message) -> Message:
        """Send a request and return its RESPONSE; an error response raises its ServerError."""
        self.send(message)
        reply = self.receive()
        if reply.payload.get("status") != "ok":
            payload = reply.payload
            raise server_error(payload.get("code"), str(payload.get("message", "request failed"))[:1000],
                               payload.get("retry_after"))
        return reply

    def list_rooms(self) -> list[RoomInfo]:
        rooms = self.request(Message.list_rooms()).payload.get("rooms", [])
        return [RoomInfo(r["name"], r["members"], r["has_password"]) for r in rooms]

    def enter(self, message: Message) -> dict[str, Any]:
        """Send CREATE_ROOM or JOIN_ROOM; return the COMPLETE payload (token, udp_port, ...)."""
        self.request(message)
        complete = self.receive()
        if complete.state is not State.COMPLETE or "token" not in complete.payload:
            raise TcrpError(f"expected a COMPLETE with a token, got {complete}")
        return dict(complete.payload)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> ControlConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


HANDSHAKE_OPTIONS = ("require_forward_secrecy", "known_servers")   # ChatClient.create_room/join_room pass them on


# --- the member ------------------------------------------------------------------------------

class ChatClient:
    """A member of a room. Make one with :meth:`create_room` or :meth:`join_room`.

    ``messages`` are the room's chat messages in room order without duplicates, ``events`` the
    joins, leaves, timeouts, the end of the room and what happened to our own messages (``refused``,
    ``undelivered``, ``missed``); ``log`` is both, interleaved in order. Each keeps the last
    ``log_limit`` items. ``on_message`` / ``on_event`` are called from the receive thread for each
    new one. ``max_tries`` bounds the transmissions of each chat (TCRP.md §4.4). ``bind`` is the
    local address of the UDP socket (by default the system picks). ``strategy`` is how loss is
    recovered (:class:`~tcrp_lab.session.Strategy`, TCRP.md §4.5): ``"selective"`` (the default) or
    ``"go-back-n"``.
    """

    def __init__(self, address: ServerAddress, complete: dict[str, Any], keys: SessionKeys, *,
                 udp_via: tuple[str, int] | None = None, trace: Tracer | None = None,
                 on_message: Callable[[ChatMessage], None] | None = None,
                 on_event: Callable[[RoomEvent], None] | None = None, history: int = 0,
                 ping_interval: float = PING_INTERVAL, max_tries: int = MAX_TRIES, log_limit: int = LOG_LIMIT,
                 bind: str | None = None, strategy: Strategy | str = Strategy.SELECTIVE):
        self.address = address
        self.token = bytes.fromhex(complete["token"])
        self.server_udp = udp_via or (address.host, int(complete["udp_port"]))
        self.trace = trace
        self.on_message = on_message
        self.on_event = on_event
        self.session = MemberSession(complete["room"], complete["username"], is_host=bool(complete["is_host"]),
                                     members=list(complete.get("members", [])), history=history,
                                     now=time.monotonic(), ping_interval=ping_interval, max_tries=max_tries,
                                     log_limit=log_limit, strategy=strategy)
        self.channel = UdpChannel.client(self.room, self.token, keys)
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        if bind:
            self.sock.bind((bind, 0))
        self.sock.connect(self.server_udp)   # only the server (or relay) can reach this socket
        self.local_udp = self.sock.getsockname()   # our end of the datagrams, for traces
        self.sock.setblocking(False)
        self._wake_r, self._wake_w = socket.socketpair()  # send() and close() wake the receive thread at once
        self._wake_w.setblocking(False)                   # a full pipe means it is awake already
        self._thread = threading.Thread(target=self._run, name=f"tcrp-client-{self.username}", daemon=True)
        self._thread.start()

    # --- what the session knows ----------------------------------------------------------------

    room = property(lambda self: self.session.room, doc="The room's name, as the server spells it.")
    username = property(lambda self: self.session.username, doc="Our name, as the server spells it.")
    is_host = property(lambda self: self.session.is_host)
    history = property(lambda self: self.session.history)
    members = property(lambda self: self.session.members, doc="Who is in the room, as far as we know.")
    messages = property(lambda self: self.session.messages)
    events = property(lambda self: self.session.events)
    log = property(lambda self: self.session.log)
    stats = property(lambda self: self.session.stats)
    rto = property(lambda self: self.session.rto, doc="The retransmission timer (RFC 6298).")

    @property
    def state(self) -> MemberState:
        """A :class:`MemberState`: ``joining``, ``joined``, then ``left``, ``kicked``, ``room_closed`` or ``closed``."""
        return self.session.state

    # --- making one ---------------------------------------------------------------------------

    @classmethod
    def create_room(cls, address: ServerAddress | tuple | str, room: str, username: str, password: str = "", *,
                    fingerprint: str | None = None, timeout: float = 10.0, trace: Tracer | None = None,
                    rng: RandomSource | None = None, **options: Any) -> ChatClient:
        """Create ``room`` as its host (``password`` "" makes an open room) and return the member."""
        return cls._enter(address, _request(Message.create_room, room, username, password), fingerprint, timeout,
                          trace, rng, options)

    @classmethod
    def join_room(cls, address: ServerAddress | tuple | str, room: str, username: str, password: str = "", *,
                  fingerprint: str | None = None, timeout: float = 10.0, trace: Tracer | None = None,
                  rng: RandomSource | None = None, **options: Any) -> ChatClient:
        """Join an existing ``room`` as a guest and return the member."""
        return cls._enter(address, _request(Message.join_room, room, username, password), fingerprint, timeout,
                          trace, rng, options)

    @staticmethod
    def list_rooms(address: ServerAddress | tuple | str, *, fingerprint: str | None = None, timeout: float = 10.0,
                   trace: Tracer | None = None, rng: RandomSource | None = None, bind: str | None = None,
                   **handshake: Any) -> list[RoomInfo]:
        """The server's rooms, with member counts and whether they need a password. ``handshake``:
        ``require_forward_secrecy``, ``known_servers`` (see :class:`ControlConnection`)."""
        with ControlConnection(address, fingerprint=fingerprint, timeout=timeout, trace=trace, rng=rng,
                               bind=bind, **handshake) as control:
            return control.list_rooms()

    @classmethod
    def _enter(cls, address: Any, message: Message, fingerprint: str | None, timeout: float,
               trace: Tracer | None, rng: RandomSource | None, options: dict[str, Any]) -> ChatClient:
        address = parse_address(address)
        handshake = {name: options.pop(name) for name in HANDSHAKE_OPTIONS if name in options}
        with ControlConnection(address, fingerprint=fingerprint, timeout=timeout, trace=trace, rng=rng,
                               bind=options.get("bind"), **handshake) as control:
            complete = control.enter(message)
        client = cls(address, complete, control.keys, trace=trace, **options)
        if not client.wait_joined(timeout):
            client.close()
            raise TcrpError(f"joined {message.room!r} but the server never answered on UDP "
                            f"{client.server_udp[0]}:{client.server_udp[1]} (is UDP blocked?)")
        return client

    # --- using one ------------------------------------------------------------------------------

    def send(self, text: str) -> int:
        """Send a chat message; returns its id. Retransmitted until the server acknowledges it,
        at most ``max_tries`` times. A text the server would refuse raises ValueError saying why."""
        try:
            check_text(text)
        except ProtocolError as exc:
            raise ValueError(exc.reason[:1].upper() + exc.reason[1:]) from None
        with self._cond:
            if not self.session.state.active:
                raise TcrpError(f"cannot send: this client is {self.state}")
            chat_id, out = self.session.send(text, time.monotonic())
        self._send_all(out)
        self._wake()   # the receive thread may sleep up to 1 s: the new retransmission timer is sooner
        return chat_id

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every sent message is acknowledged (or refused, or given up); False if some are
        still waiting after ``timeout``."""
        with self._cond:
            return self._cond.wait_for(lambda: not self.session.unacknowledged or not self.session.state.active,
                                       timeout) and not self.session.unacknowledged

    def wait_for_messages(self, n: int, timeout: float = 10.0) -> list[ChatMessage]:
        """Wait until at least ``n`` chat messages arrived (bounded by ``timeout``); return those kept."""
        session = self.session
        with self._cond:
            self._cond.wait_for(lambda: session.message_count >= n or not session.state.active, timeout)
            if session.message_count < n:
                raise TimeoutError(f"{self.username} has {session.message_count} messages, not {n}, "
                                   f"after {timeout} s (state: {self.state})")
            return list(session.messages)

    def wait_for_event(self, kind: str, timeout: float = 10.0) -> RoomEvent:
        """Wait for the next event of ``kind`` (or one already received); TimeoutError if none comes."""
        def found() -> RoomEvent | None:
            return next((e for e in self.session.events if e.kind == kind), None)

        with self._cond:
            if not self._cond.wait_for(found, timeout):
                raise TimeoutError(f"no {kind!r} event for {self.username} within {timeout} s")
            return found()  # type: ignore[return-value]

    def wait_joined(self, timeout: float = 10.0) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self.session.state is not MemberState.JOINING, timeout) \
                and self.session.state is MemberState.JOINED

    def leave(self) -> None:
        """Leave the room (a host leaving closes it). The client is closed afterwards."""
        with self._cond:
            out = self.session.leave()
            self._cond.notify_all()
        self._send_all(out)
        self.close()

    def close(self) -> None:
        """Stop the receive thread and close the socket (without telling the server: see leave)."""
        self._stop.set()
        self._wake()
        if self._thread is not threading.current_thread():
            self._thread.join(5)
        for sock in (self.sock, self._wake_r, self._wake_w):
            sock.close()
        with self._cond:
            self.session.close()
            self._cond.notify_all()

    def __enter__(self) -> ChatClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.leave()

    def __repr__(self) -> str:
        role = "host" if self.is_host else "guest"
        return f"ChatClient({self.username!r} in {self.room!r}, {role}, {self.state}, {len(self.messages)} messages)"

    # --- the receive thread ---------------------------------------------------------------------

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"!")
        except OSError:
            pass  # closed already, or the pipe is full: the thread is awake anyway

    def _send_all(self, payloads: list[Payload]) -> None:
        for payload in payloads:
            plaintext = payload.encode()
            datagram = self.channel.seal(plaintext)
            if self.trace is not None:  # traced before it leaves, so a trace never shows the answer first
                self.trace(PacketEvent(time.time(), "client", "out", "udp", self.server_udp, payload.TYPE, datagram,
                    message=payload, plaintext=plaintext, session=self.token.hex(), user=self.username,
                    local=self.local_udp))
            try:
                self.sock.send(datagram)
            except OSError as exc:   # no route, or the server's port closed (ICMP): retried by timers
                log.debug("%s: send failed: %s", self.username, exc)
                continue
            self.session.stats["sent"] += 1

    def _run(self) -> None:
        with self._cond:
            out = self.session.start(time.monotonic())
        self._send_all(out)
        while not self._stop.is_set():
            now = time.monotonic()
            with self._cond:
                wait = max(min(self.session.next_deadline(now) - now, 1.0), 0.0)
            try:
                ready, _, _ = select.select([self.sock, self._wake_r], [], [], wait)
            except (OSError, ValueError):  # our socket was closed under us: nothing more to receive
                return
            if self._wake_r in ready:
                try:
                    self._wake_r.recv(4096)   # a send() or close(): recompute the deadline
                except OSError:
                    return
            if self.sock in ready:
                try:
                    data = self.sock.recv(MAX_DATAGRAM + 1)
                except OSError:  # ICMP "port unreachable" on a connected socket: retried by the timers
                    data = None
                if data is not None:
                    try:
                        self._receive(data)
                    except Exception:  # never let one datagram (or a callback) kill the thread
                        log.exception("%s: error handling a datagram", self.username)
            with self._cond:
                out, items = self.session.poll(time.monotonic())
                self._cond.notify_all()
            self._send_all(out)
            self._callbacks(items)
            if not self.session.state.active:
                return

    def _receive(self, data: bytes) -> None:
        try:
            datagram = Datagram.decode(data)
            if datagram.token != self.token or datagram.room != self.room:
                raise ProtocolError("a datagram for another session")
            plaintext = self.channel.open(datagram)
            payload = decode_payload(plaintext, from_server=True)
        except ProtocolError as exc:
            self.session.stats["dropped"] += 1
            log.debug("%s: dropped a datagram: %s", self.username, exc.reason)
            if self.trace is not None:
                self.trace(PacketEvent(time.time(), "client", "in", "udp", self.server_udp, "rejected", data,
                    error=exc.reason, session=self.token.hex(), user=self.username, local=self.local_udp))
            return
        if self.trace is not None:
            self.trace(PacketEvent(time.time(), "client", "in", "udp", self.server_udp, payload.TYPE, data,
                message=payload, plaintext=plaintext, session=self.token.hex(), user=self.username,
                local=self.local_udp))
        with self._cond:
            out, items = self.session.receive(payload, time.monotonic())
            self._cond.notify_all()
        self._send_all(out)
        self._callbacks(items)

    def _callbacks(self, items: list[ChatMessage | RoomEvent]) -> None:
        for item in items:
            callback = self.on_message if isinstance(item, ChatMessage) else self.on_event
            if callback:
                try:
                    callback(item)
                except Exception:
                    log.exception("%s: a callback raised", self.username)


def _request(make: Any, *args: str) -> Message:
    """A request from the codec; one it refuses (a name too long…) raises the error the server would."""
    try:
        return make(*args)
    except ProtocolError as exc:
        raise refused_here(exc) from None


if __name__ == "__main__":
    from .cli import client_main

    raise SystemExit(client_main())

