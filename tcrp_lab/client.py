"""ChatClient: join a TCRP/2 room and chat reliably over UDP.

Two halves, as in the protocol:

* :class:`ControlConnection` is the TCP half: handshake (with optional fingerprint pinning), then
  requests. ``ChatClient.list_rooms`` / ``create_room`` / ``join_room`` use it and close it.
* :class:`ChatClient` is a joined member: one receive thread that decrypts datagrams, keeps room
  messages in order without duplicates (asking ``resend`` for gaps), retransmits ``hello`` until
  welcomed and each ``chat`` until acknowledged, and pings to stay in touch.

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
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .crypto import (
    RandomSource, RecordLayer, ServerHello, SessionKeys, UdpChannel, client_key_exchange, system_random,
)
from .net import ConnectionClosed, FramedSocket, ServerAddress, parse_address, wire_frame
from .protocol import (
    MAX_DATAGRAM, MAX_TEXT, Ack, Chat, Datagram, ErrorCode, Hello, Kicked, Leave, Message, Payload, Ping, Pong,
    ProtocolError, Resend, RoomChat, RoomClosed, State, SystemEvent, Welcome, decode_message, decode_payload,
)

__all__ = [
    "ChatClient", "ChatMessage", "ControlConnection", "FingerprintMismatch", "InvalidName", "InvalidRequest",
    "NoSuchRoom", "RoomEvent", "RoomExists", "RoomFull", "RoomInfo", "ServerBusy", "ServerError", "TcrpError",
    "UsernameTaken", "WrongPassword",
]

log = logging.getLogger("tcrp_lab.client")
Trace = Callable[..., None]

RETRANSMIT_INITIAL = 0.15     #: seconds before the first retransmission, before any RTT is measured
RETRANSMIT_MIN = 0.05         #: floor of the adaptive retransmission timeout
RETRANSMIT_MAX = 1.0          #: retransmission back-off ceiling
PING_INTERVAL = 2.0           #: keep-alive when nothing happens
TAIL_CHECK = 0.3              #: ping this soon after room traffic, to notice a lost last message
RESEND_BATCH = 64             #: room messages asked for in one resend
SEND_WINDOW = 32              #: chats in flight before send() queues (the server holds back at most 64)
GAP_GRACE = 0.05              #: a gap may be reordering: wait this long before asking resend


# --- errors ----------------------------------------------------------------------------------

class TcrpError(Exception):
    """Base of every error the client raises."""


class FingerprintMismatch(TcrpError):
    """The server's key is not the pinned one: a man in the middle, or the wrong server."""


class ServerError(TcrpError):
    """The server refused a request. ``code`` is the wire error code."""

    code: ErrorCode | None = None

    def __init__(self, message: str, code: ErrorCode | None = None):
        super().__init__(message)
        self.code = code or self.code


class InvalidRequest(ServerError):
    code = ErrorCode.INVALID_REQUEST


class InvalidName(ServerError):
    code = ErrorCode.INVALID_NAME


class RoomExists(ServerError):
    code = ErrorCode.ROOM_EXISTS


class NoSuchRoom(ServerError):
    code = ErrorCode.NO_SUCH_ROOM


class WrongPassword(ServerError):
    code = ErrorCode.WRONG_PASSWORD


class UsernameTaken(ServerError):
    code = ErrorCode.USERNAME_TAKEN


class RoomFull(ServerError):
    code = ErrorCode.ROOM_FULL


class ServerBusy(ServerError):
    code = ErrorCode.SERVER_BUSY


_ERRORS = {cls.code: cls for cls in ServerError.__subclasses__()}


def server_error(code: object, message: str) -> ServerError:
    try:
        code = ErrorCode(code)
    except ValueError:
        return ServerError(f"{message} (unknown error code {code!r})")
    return _ERRORS[code](message)


# --- what a client sees ----------------------------------------------------------------------

@dataclass(frozen=True)
class RoomInfo:
    name: str
    members: int
    has_password: bool


@dataclass(frozen=True)
class ChatMessage:
    """A chat message of the room, numbered by the server (``seq``)."""

    seq: int
    sender: str
    text: str
    ts: float
    mine: bool = False


@dataclass(frozen=True)
class RoomEvent:
    """Something that happened to the room or to us.

    ``kind`` is ``joined``, ``left`` or ``timeout`` (room events, numbered by ``seq``), or
    ``room_closed`` / ``kicked`` (the end of our membership, with ``reason``).
    """

    kind: str
    text: str
    user: str | None = None
    seq: int | None = None
    reason: str | None = None


class RetransmitTimer:
    """The retransmission timeout of RFC 6298: smoothed RTT plus four deviations, clamped.

    Only the oldest chat in flight, acknowledged without a retransmission, gives a sample: the ack
    of a retransmitted chat could answer either copy (Karn's algorithm), and a later chat may have
    waited at the server behind a lost one.
    """

    def __init__(self, initial: float = RETRANSMIT_INITIAL, minimum: float = RETRANSMIT_MIN,
                 maximum: float = RETRANSMIT_MAX):
        self.minimum, self.maximum = minimum, maximum
        self.srtt: float | None = None
        self.rttvar = 0.0
        self.rto = initial

    def sample(self, rtt: float) -> None:
        if self.srtt is None:
            self.srtt, self.rttvar = rtt, rtt / 2
        else:
            self.rttvar = 0.75 * self.rttvar + 0.25 * abs(self.srtt - rtt)
            self.srtt = 0.875 * self.srtt + 0.125 * rtt
        self.rto = min(max(self.srtt + 4 * self.rttvar, self.minimum), self.maximum)


@dataclass
class _InFlight:
    """A chat sent and not yet acknowledged."""

    chat: Chat
    plaintext: bytes
    sent_at: float
    retry_at: float
    delay: float
    retransmitted: bool = False


# --- the TCP half ----------------------------------------------------------------------------

class ControlConnection:
    """A TCP connection to a TCRP/2 server, after the handshake; send requests with :meth:`request`.

    ``fingerprint`` pins the server key: on a mismatch nothing is sent and FingerprintMismatch
    is raised. ``timeout`` bounds the connection and every reply.
    """

    def __init__(self, address: ServerAddress | tuple | str, *, fingerprint: str | None = None,
                 timeout: float = 10.0, trace: Trace | None = None, rng: RandomSource | None = None):
        self.address = parse_address(address)
        self.trace = trace
        rng = rng or system_random
        try:
            sock = socket.create_connection((self.address.host, self.address.tcp_port), timeout=timeout)
        except OSError as exc:
            raise TcrpError(f"cannot connect to {self.address.host}:{self.address.tcp_port}: {exc}. "
                            "Is the server running, and is this its TCP port?") from None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = sock
        self.local_address = sock.getsockname()
        self.peer = sock.getpeername()
        self._io = FramedSocket(sock, time.monotonic() + timeout)
        self._session = f"tcp {self.local_address[0]}:{self.local_address[1]}"
        try:
            self.keys, self._records, self.server_hello = self._handshake(fingerprint, rng)
        except BaseException:
            sock.close()
            raise

    def _handshake(self, fingerprint: str | None, rng: RandomSource) -> tuple[SessionKeys, RecordLayer, ServerHello]:
        try:
            body = self._io.recv()
            hello = ServerHello.decode(body)
        except (ProtocolError, ConnectionClosed, OSError) as exc:
            raise TcrpError(f"no TCRP/2 ServerHello from {self.address.host}:{self.address.tcp_port} ({exc})") from None
        self._emit("in", wire_frame(body), "ServerHello", message=hello)
        if fingerprint is not None and hello.fingerprint != fingerprint.lower().replace(":", ""):
            raise FingerprintMismatch(
                f"the server's key has fingerprint {hello.fingerprint}, not the pinned {fingerprint}: "
                "this may be a man in the middle. Nothing was sent.")
        ckx, keys = client_key_exchange(hello, rng)
        self._emit("out", wire_frame(ckx), "ClientKeyExchange", keys=keys, hello=hello)
        self._send_raw(ckx)
        return keys, RecordLayer.client(keys), hello

    def _send_raw(self, body: bytes) -> None:
        try:
            self._io.send(body)
        except OSError as exc:
            raise TcrpError(f"the connection to the server broke: {exc}") from None

    def _emit(self, direction: str, raw: bytes, kind: str, **fields: Any) -> None:
        if self.trace:
            self.trace(side="client", direction=direction, transport="tcp", peer=self.peer, raw=raw, kind=kind,
                       session=self._session, **fields)

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
            raise server_error(reply.payload.get("code"), str(reply.payload.get("message", "request failed")))
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


# --- the member ------------------------------------------------------------------------------

class ChatClient:
    """A member of a room. Make one with :meth:`create_room` or :meth:`join_room`.

    ``messages`` are the room's chat messages in room order without duplicates, ``events`` the
    joins, leaves, timeouts and the end of the room; ``log`` is both, interleaved in order.
    ``on_message`` / ``on_event`` are called from the receive thread for each new one.
    """

    def __init__(self, address: ServerAddress, complete: dict[str, Any], keys: SessionKeys, *,
                 udp_via: tuple[str, int] | None = None, trace: Trace | None = None,
                 on_message: Callable[[ChatMessage], None] | None = None,
                 on_event: Callable[[RoomEvent], None] | None = None, history: int = 0,
                 ping_interval: float = PING_INTERVAL):
        self.address = address
        self.room: str = complete["room"]
        self.username: str = complete["username"]
        self.is_host: bool = bool(complete["is_host"])
        self.token = bytes.fromhex(complete["token"])
        self.members: list[str] = list(complete.get("members", []))
        self.server_udp = udp_via or (address.host, int(complete["udp_port"]))
        self.trace = trace
        self.on_message = on_message
        self.on_event = on_event
        self.history = history
        self.ping_interval = ping_interval
        self.channel = UdpChannel.client(self.room, self.token, keys)
        self.messages: list[ChatMessage] = []
        self.events: list[RoomEvent] = []
        self.log: list[ChatMessage | RoomEvent] = []
        self.state = "joining"          # joining -> joined -> left | kicked | room_closed | closed
        self.stats = {"sent": 0, "received": 0, "retransmits": 0, "resend_requests": 0, "dropped": 0}
        self._cond = threading.Condition()
        self._next_id = 1
        self._pending: dict[int, _InFlight] = {}     # chat id -> a chat awaiting its ack
        self.rto = RetransmitTimer()
        self._outbox: deque[tuple[bytes, Chat]] = deque()  # chats waiting for room in the send window
        self._next_seq: int | None = None            # the room seq we deliver next (None before welcome)
        self._buffer: dict[int, Payload] = {}        # room messages that arrived ahead of a gap
        self._highest = 0                            # highest room seq we know exists
        self._resend_at = 0.0                        # when to ask resend for the current gap (0: no gap)
        self._hello_at, self._hello_delay = 0.0, RETRANSMIT_INITIAL
        self._ping_at = time.monotonic() + ping_interval
        self._stop = threading.Event()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.connect(self.server_udp)   # only the server (or relay) can reach this socket
        self.sock.setblocking(False)
        self._wake_r, self._wake_w = socket.socketpair()  # close() wakes the receive thread at once
        self._thread = threading.Thread(target=self._run, name=f"tcrp-client-{self.username}", daemon=True)
        self._thread.start()

    # --- making one ---------------------------------------------------------------------------

    @classmethod
    def create_room(cls, address: ServerAddress | tuple | str, room: str, username: str, password: str = "", *,
                    fingerprint: str | None = None, timeout: float = 10.0, trace: Trace | None = None,
                    rng: RandomSource | None = None, **options: Any) -> ChatClient:
        """Create ``room`` as its host (``password`` "" makes an open room) and return the member."""
        return cls._enter(address, Message.create_room(room, username, password), fingerprint, timeout, trace,
                          rng, options)

    @classmethod
    def join_room(cls, address: ServerAddress | tuple | str, room: str, username: str, password: str = "", *,
                  fingerprint: str | None = None, timeout: float = 10.0, trace: Trace | None = None,
                  rng: RandomSource | None = None, **options: Any) -> ChatClient:
        """Join an existing ``room`` as a guest and return the member."""
        return cls._enter(address, Message.join_room(room, username, password), fingerprint, timeout, trace,
                          rng, options)

    @staticmethod
    def list_rooms(address: ServerAddress | tuple | str, *, fingerprint: str | None = None, timeout: float = 10.0,
                   trace: Trace | None = None, rng: RandomSource | None = None) -> list[RoomInfo]:
        """The server's rooms, with member counts and whether they need a password."""
        with ControlConnection(address, fingerprint=fingerprint, timeout=timeout, trace=trace, rng=rng) as control:
            return control.list_rooms()

    @classmethod
    def _enter(cls, address: Any, message: Message, fingerprint: str | None, timeout: float,
               trace: Trace | None, rng: RandomSource | None, options: dict[str, Any]) -> ChatClient:
        address = parse_address(address)
        with ControlConnection(address, fingerprint=fingerprint, timeout=timeout, trace=trace, rng=rng) as control:
            complete = control.enter(message)
        client = cls(address, complete, control.keys, trace=trace, **options)
        if not client.wait_joined(timeout):
            client.close()
            raise TcrpError(f"joined {message.room!r} but the server never answered on UDP "
                            f"{client.server_udp[0]}:{client.server_udp[1]} (is UDP blocked?)")
        return client

    # --- using one ------------------------------------------------------------------------------

    def send(self, text: str) -> int:
        """Send a chat message; returns its id. Retransmitted until the server acknowledges it."""
        if not isinstance(text, str) or not 1 <= len(text) <= MAX_TEXT:
            raise ValueError(f"a message must be 1-{MAX_TEXT} characters of text")
        with self._cond:
            if self.state not in ("joining", "joined"):
                raise TcrpError(f"cannot send: this client is {self.state}")
            chat_id, self._next_id = self._next_id, self._next_id + 1
            payload = Chat(id=chat_id, text=text)
            plaintext = payload.encode()
            if len(self._pending) >= SEND_WINDOW:  # sent by the receive thread as acks free the window
                self._outbox.append((plaintext, payload))
                return chat_id
            self._pending[chat_id] = self._in_flight(payload, plaintext, time.monotonic())
        self._send(plaintext, "chat", payload)
        return chat_id

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every sent message is acknowledged; False if some are not after ``timeout``."""
        with self._cond:
            return self._cond.wait_for(lambda: not (self._pending or self._outbox)
                                       or self.state not in ("joining", "joined"), timeout) and not self._pending

    def wait_for_messages(self, n: int, timeout: float = 10.0) -> list[ChatMessage]:
        """Wait until at least ``n`` chat messages arrived (bounded by ``timeout``); return them all."""
        with self._cond:
            self._cond.wait_for(lambda: len(self.messages) >= n or self.state not in ("joining", "joined"), timeout)
            if len(self.messages) < n:
                raise TimeoutError(f"{self.username} has {len(self.messages)} messages, not {n}, "
                                   f"after {timeout} s (state: {self.state})")
            return list(self.messages)

    def wait_for_event(self, kind: str, timeout: float = 10.0) -> RoomEvent:
        """Wait for the next event of ``kind`` (or one already received); TimeoutError if none comes."""
        def found() -> RoomEvent | None:
            return next((e for e in self.events if e.kind == kind), None)

        with self._cond:
            if not self._cond.wait_for(found, timeout):
                raise TimeoutError(f"no {kind!r} event for {self.username} within {timeout} s")
            return found()  # type: ignore[return-value]

    def wait_joined(self, timeout: float = 10.0) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self.state != "joining", timeout) and self.state == "joined"

    def leave(self) -> None:
        """Leave the room (a host leaving closes it). The client is closed afterwards."""
        with self._cond:
            active = self.state in ("joining", "joined")
            self._finish("left", None)
        if active:
            self._send(Leave().encode(), "leave", Leave())
        self.close()

    def close(self) -> None:
        """Stop the receive thread and close the socket (without telling the server: see leave)."""
        self._stop.set()
        try:
            self._wake_w.send(b"!")
        except OSError:
            pass  # closed already
        if self._thread is not threading.current_thread():
            self._thread.join(5)
        for sock in (self.sock, self._wake_r, self._wake_w):
            sock.close()
        with self._cond:
            if self.state in ("joining", "joined"):
                self.state = "closed"
            self._cond.notify_all()

    def __enter__(self) -> ChatClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.leave()

    def __repr__(self) -> str:
        role = "host" if self.is_host else "guest"
        return f"ChatClient({self.username!r} in {self.room!r}, {role}, {self.state}, {len(self.messages)} messages)"

    # --- the receive thread ---------------------------------------------------------------------

    def _send(self, plaintext: bytes, kind: str, payload: Payload) -> None:
        datagram = self.channel.seal(plaintext)
        if self.trace:  # traced before it leaves, so a trace never shows the answer first
            self.trace(side="client", direction="out", transport="udp", peer=self.server_udp, raw=datagram,
                       kind=kind, message=payload, plaintext=plaintext, session=self.token.hex(), user=self.username)
        try:
            self.sock.send(datagram)
        except OSError as exc:   # no route, or the server's port closed (ICMP): retried by timers
            log.debug("%s: send failed: %s", self.username, exc)
            return
        self.stats["sent"] += 1

    def _run(self) -> None:
        self._send(Hello().encode(), "hello", Hello())
        self._hello_at = time.monotonic() + self._hello_delay
        while not self._stop.is_set():
            now = time.monotonic()
            wait = max(min(self._next_timer(now) - now, 1.0), 0.0)
            ready, _, _ = select.select([self.sock, self._wake_r], [], [], wait)
            data = None
            if self.sock in ready:
                try:
                    data = self.sock.recv(MAX_DATAGRAM + 1)
                except OSError:  # ICMP "port unreachable" on a connected socket: retried by the timers
                    pass
            if data is not None:
                try:
                    self._receive(data)
                except Exception:  # never let one datagram (or a callback) kill the thread
                    log.exception("%s: error handling a datagram", self.username)
            self._timers(time.monotonic())

    def _next_timer(self, now: float) -> float:
        with self._cond:
            times = [self._ping_at] + [p.retry_at for p in self._pending.values()]
            if self.state == "joining":
                times.append(self._hello_at)
            if self._gap():
                times.append(self._resend_at or now)
        return min(times)

    def _receive(self, data: bytes) -> None:
        try:
            datagram = Datagram.decode(data)
            if datagram.token != self.token or datagram.room != self.room:
                raise ProtocolError("a datagram for another session")
            plaintext = self.channel.open(datagram)
            payload = decode_payload(plaintext, from_server=True)
        except ProtocolError as exc:
            self.stats["dropped"] += 1
            log.debug("%s: dropped a datagram: %s", self.username, exc.reason)
            if self.trace:
                self.trace(side="client", direction="in", transport="udp", peer=self.server_udp, raw=data,
                           kind="rejected", error=exc.reason, session=self.token.hex(), user=self.username)
            return
        self.stats["received"] += 1
        if self.trace:
            self.trace(side="client", direction="in", transport="udp", peer=self.server_udp, raw=data,
                       kind=payload.TYPE, message=payload, plaintext=plaintext, session=self.token.hex(),
                       user=self.username)
        callbacks: list[tuple[Callable[[Any], None] | None, Any]] = []
        with self._cond:
            if isinstance(payload, (RoomChat, SystemEvent)):
                callbacks = self._room_message(payload)
            elif isinstance(payload, Ack):
                oldest = min(self._pending, default=None)
                sent = self._pending.pop(payload.id, None)
                if sent is not None:
                    now = time.monotonic()
                    if not sent.retransmitted and payload.id == oldest:  # a later chat may have been held
                        self.rto.sample(now - sent.sent_at)
                    for other in self._pending.values():  # progress: restart the timers (as TCP does),
                        other.retry_at = max(other.retry_at, now + self.rto.rto)  # others may be held back
                self._highest = max(self._highest, payload.seq)
                self._soon()
            elif isinstance(payload, Welcome):
                if self.state == "joining":
                    callbacks = self._welcomed(payload.seq)
            elif isinstance(payload, Pong):
                self._highest = max(self._highest, payload.seq)
            elif isinstance(payload, (RoomClosed, Kicked)):
                kind = "room_closed" if isinstance(payload, RoomClosed) else "kicked"
                callbacks = self._finish(kind, payload.reason)
            self._cond.notify_all()
        for callback, arg in callbacks:
            if callback:
                try:
                    callback(arg)
                except Exception:
                    log.exception("%s: a callback raised", self.username)

    def _welcomed(self, seq: int) -> list[tuple[Any, Any]]:
        """First welcome: we are in. Deliver from our first buffered message, or after ``seq``."""
        self.state = "joined"
        first = min([seq + 1 - self.history, *self._buffer])
        self._next_seq = max(first, 1)
        self._highest = max(self._highest, seq)
        self._buffer = {s: p for s, p in self._buffer.items() if s >= self._next_seq}
        return self._deliver_ready()

    def _room_message(self, payload: RoomChat | SystemEvent) -> list[tuple[Any, Any]]:
        self._highest = max(self._highest, payload.seq)
        self._soon()
        if self._next_seq is None or payload.seq >= self._next_seq:
            self._buffer.setdefault(payload.seq, payload)
        return self._deliver_ready() if self._next_seq is not None else []

    def _deliver_ready(self) -> list[tuple[Any, Any]]:
        """Move consecutive buffered room messages to the log; return the callbacks to run."""
        callbacks = []
        assert self._next_seq is not None
        while self._next_seq in self._buffer:
            payload = self._buffer.pop(self._next_seq)
            self._next_seq += 1
            item: ChatMessage | RoomEvent
            if isinstance(payload, RoomChat):
                item = ChatMessage(payload.seq, payload.sender, payload.text, payload.ts,
                                   mine=payload.sender == self.username)
                self.messages.append(item)
                callbacks.append((self.on_message, item))
            else:
                assert isinstance(payload, SystemEvent)
                item = RoomEvent(payload.event, payload.text, payload.user, payload.seq)
                self._track_members(item)
                self.events.append(item)
                callbacks.append((self.on_event, item))
            self.log.append(item)
        return callbacks

    def _track_members(self, event: RoomEvent) -> None:
        if event.kind == "joined" and event.user not in self.members:
            self.members.append(event.user)  # type: ignore[arg-type]
        elif event.kind in ("left", "timeout") and event.user in self.members:
            self.members.remove(event.user)  # type: ignore[arg-type]

    def _finish(self, kind: str, reason: str | None) -> list[tuple[Any, Any]]:
        """Our membership ended (lock held, or single-threaded leave)."""
        if self.state not in ("joining", "joined"):
            return []
        self.state = kind
        self._pending.clear()
        self._outbox.clear()
        if kind == "left":
            return []
        text = {"room_closed": f"the room was closed ({reason})", "kicked": f"you were removed ({reason})"}[kind]
        event = RoomEvent(kind, text, reason=reason)
        self.events.append(event)
        self.log.append(event)
        self._stop.set()
        return [(self.on_event, event)]

    def _in_flight(self, chat: Chat, plaintext: bytes, now: float) -> _InFlight:
        return _InFlight(chat, plaintext, now, now + self.rto.rto, self.rto.rto)

    def _gap(self) -> bool:
        return self._next_seq is not None and self._highest >= self._next_seq

    def _soon(self) -> None:
        """Room traffic: check for a lost tail with a ping soon."""
        self._ping_at = min(self._ping_at, time.monotonic() + TAIL_CHECK)

    def _timers(self, now: float) -> None:
        due: list[tuple[bytes, str, Payload]] = []
        with self._cond:
            if self.state not in ("joining", "joined"):
                return
            if self.state == "joining" and now >= self._hello_at:
                self._hello_delay = min(self._hello_delay * 2, RETRANSMIT_MAX)
                self._hello_at = now + self._hello_delay
                due.append((Hello().encode(), "hello", Hello()))
            while self._outbox and len(self._pending) < SEND_WINDOW:
                plaintext, chat = self._outbox.popleft()
                self._pending[chat.id] = self._in_flight(chat, plaintext, now)
                due.append((plaintext, "chat", chat))
            for entry in self._pending.values():
                if now >= entry.retry_at:
                    entry.delay = min(entry.delay * 2, RETRANSMIT_MAX)  # exponential back-off
                    entry.retry_at = now + entry.delay
                    entry.retransmitted = True
                    self.stats["retransmits"] += 1
                    due.append((entry.plaintext, "chat", entry.chat))
            if not self._gap():
                self._resend_at = 0.0
            elif not self._resend_at:
                self._resend_at = now + GAP_GRACE
            elif now >= self._resend_at:
                first = self._next_seq
                assert first is not None
                resend = Resend(first, min(self._highest, first + RESEND_BATCH - 1))
                self._resend_at = now + 2 * self.rto.rto
                self.stats["resend_requests"] += 1
                due.append((resend.encode(), "resend", resend))
            if now >= self._ping_at:
                self._ping_at = now + self.ping_interval
                due.append((Ping().encode(), "ping", Ping()))
        for plaintext, kind, payload in due:
            self._send(plaintext, kind, payload)


if __name__ == "__main__":
    from .cli import client_main

    raise SystemExit(client_main())
