"""TCRP/1: the original Online-Chat design, reproduced byte for byte so that lessons 07 and 08 can read and break it.

INSECURE ON PURPOSE. Nothing here is a model to copy; :mod:`tcrp_lab.attacks` shows why, flaw by
flaw, and TCRP/2 (the default, :mod:`tcrp_lab.server`) is the answer to each. A legacy server is
made only by asking for it by name: ``ChatServer(profile=LegacyProfile)`` or
``python -m tcrp_lab.server --legacy``, and it logs :data:`WARNING` when it is made.

The wire (TCRP.md §6), in three parts:

* :func:`cfb_encrypt` / :func:`cfb_decrypt`, :func:`key_exchange` / :func:`open_key_exchange`,
  :func:`request`, :func:`datagram` / :func:`parse_datagram`: the framing and crypto of §6, as small
  functions a client written from §6 alone is made of (the tests use them as that client);
* :class:`LegacyProfile`: the server half, plugged into the threaded ChatServer shell;
* :class:`LegacyClient`: a matching client built from those functions.

The choices below follow the original design, as §6 records it or where §6 is silent:

* the request payload is ``json.dumps`` with Python's default separators, ``{"username": "a", ...}``;
* a join is two requests on one connection: the first (empty room name) gets the ``repr`` of the list
  of room names, the second names the room; the username is taken from the second (else the first);
  a client that only wanted the list closes after the first answer;
* after a reply that ends the request (a token, ``InvalidRoom``, ``InvalidPassword``) the server closes
  the connection; an operation other than CREATE_ROOM/JOIN_ROOM closes it unanswered (TCRP/1 has no
  LIST_ROOMS);
* a new member's client announces itself with the datagram :func:`join_notice`, the original client's
  ``System: alice が参加しました。`` (§6): the server learns a member's UDP address only from a datagram,
  and this is the predictable plaintext the keystream attack starts from;
* the server relays each message to every member of the room *named in the datagram* (not the
  session's room), the sender included, encrypting each copy with the recipient's key and IV;
* timeouts, in the original's texts (§6): a timed-out member's room gets
  ``System: bobがタイムアウトにより退出しました。``; a timed-out host's room gets
  ``System: ホストのaliceがタイムアウトしたためルームを終了します`` then ``exit!``, and the room is gone; the
  timed-out member itself then gets the 8 bytes ``Timeout!`` as a bare datagram (no header, not
  encrypted). There is no leave message and no shutdown notice: members find out by silence;
* :func:`datagram` counts RoomNameSize in *characters*, as the original client and server did (§6),
  while :func:`parse_datagram` reads that many *bytes*, as the original server did: in a room whose
  name is not ASCII the two disagree, and the first datagram stops the relay (below);
* each connection's RSA key is made, as in the original, before anything else is said; here at most
  one key per core at a time (with OpenSSL unless the server's randomness is seeded), and the 10 s
  handshake deadline starts when the key is sent, so 50 guests joining at once are all served, one key
  after another, instead of each waiting out its deadline behind 49 others.

One flaw is reproduced on purpose although the threaded shell does not need it (§6: "one bad datagram
can stop the relay"). The original decoded each datagram with no checks, in its only UDP thread:
missing size bytes, a token it did not know, or a room name or message that was not UTF-8 raised an
exception that ended the thread, and no datagram of any room was relayed again until a restart (an
original client in a room with a non-ASCII name was enough: it counted RoomNameSize in characters).
:class:`LegacyProfile` does the same deliberately: at the first such datagram it records why in
``stopped_by``, logs one warning line (no traceback: it is the design, not a bug of ours), counts
``drops["relay_crash"]``, and from then on reads and drops every datagram unrelayed, silently
(``drops["relay_stopped"]``, summed up in the server's periodic report). Only this profile does it;
TCRP/2 drops a bad datagram and serves the next one (TCRP.md §4). TCP joins and the reaper go on, as
they did in the original.
"""

from __future__ import annotations

import ast
import itertools
import json
import logging
import os
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from Crypto.Cipher import AES, PKCS1_OAEP
from Crypto.PublicKey import RSA
from cryptography.hazmat.primitives.asymmetric import rsa

from .crypto import RandomSource, system_random
from .events import PacketEvent
from .net import ConnectionClosed, FramedSocket, ServerAddress, parse_address, wire_frame
from .protocol import SIZE_FIELD_BYTES, Message, Operation, ProtocolError, decode_message

__all__ = [
    "CLOSE_NOTICE", "INVALID_PASSWORD", "INVALID_ROOM", "LegacyClient", "LegacyProfile", "LegacyRefused",
    "NAME", "Relayed", "TIMEOUT_NOTICE", "WARNING", "cfb_decrypt", "cfb_encrypt", "connection_key", "datagram",
    "host_timeout_notice", "join_notice", "key_exchange", "open_key_exchange", "parse_datagram", "request",
    "timeout_notice",
]

log = logging.getLogger("tcrp_lab.legacy")

NAME = "TCRP/1"
WARNING = (
    "INSECURE: this server speaks TCRP/1, the original Online-Chat design (TCRP.md section 6), kept only to be "
    "studied and broken. Anyone who can see its traffic can read, change, replay and forge messages, take over "
    "members' sessions and rooms. Run it on loopback for the lessons, never for a real conversation; "
    "the default, TCRP/2, is the secure profile."
)
TOKEN_BYTES = 255             #: the original's session token: 255 random bytes, sent in clear in every datagram
KEY_BYTES = IV_BYTES = 16     #: AES-128 key and the one IV used for every frame and datagram of a session
RSA_BITS = 2048
BLOCK = 16                    #: AES block: the part of every message encrypted with the very same keystream
INVALID_ROOM = b"InvalidRoom"
INVALID_PASSWORD = b"InvalidPassword"
CLOSE_NOTICE = "exit!"        #: relayed (encrypted) to a room whose host timed out
TIMEOUT_NOTICE = b"Timeout!"  #: sent bare to a member that timed out
KEY_MAKERS = max(1, os.cpu_count() or 1)   #: RSA keys made at once: more only share the same cores
_REFUSALS = {INVALID_ROOM: "no_such_room", INVALID_PASSWORD: "wrong_password"}   # for the drop counters
MAX_RELAYED = 1000            #: relay records kept for lessons and for judging attacks


# --- the wire of §6: what a client written from §6 is made of ----------------------------------

def cfb_encrypt(key: bytes, iv: bytes, data: bytes) -> bytes:
    """AES-128-CFB (128-bit segments) from the session's one IV: every message starts afresh."""
    return AES.new(key, AES.MODE_CFB, iv=iv, segment_size=128).encrypt(data)


def cfb_decrypt(key: bytes, iv: bytes, data: bytes) -> bytes:
    return AES.new(key, AES.MODE_CFB, iv=iv, segment_size=128).decrypt(data)


def key_exchange(public_pem: bytes, key: bytes, iv: bytes) -> bytes:
    """C->S: RSA-OAEP with SHA-1 (pycryptodome's default) of ``aes_key | iv``."""
    try:
        public = RSA.import_key(public_pem)
    except (ValueError, IndexError, TypeError):
        raise ProtocolError("the server sent no RSA public key in PEM format", code=None) from None
    return PKCS1_OAEP.new(public).encrypt(key + iv)


def open_key_exchange(private: RSA.RsaKey, body: bytes) -> tuple[bytes, bytes]:
    """S: recover ``(aes_key, iv)``; ProtocolError if it does not decrypt to 32 bytes."""
    try:
        secret = PKCS1_OAEP.new(private).decrypt(body)
    except (ValueError, TypeError):
        raise ProtocolError("the key exchange does not decrypt with this connection's key", code=None) from None
    if len(secret) != KEY_BYTES + IV_BYTES:
        raise ProtocolError(f"the key exchange carries {len(secret)} bytes, not 32", code=None)
    return secret[:KEY_BYTES], secret[KEY_BYTES:]


def request(operation: int, room: str, username: str, password: str = "") -> bytes:
    """A request: the 32-byte header of §3, the room name, ``{"username": U, "password": P}``."""
    payload = json.dumps({"username": username, "password": password}).encode("utf-8")
    name = room.encode("utf-8")
    return bytes([len(name), operation, 0]) + len(payload).to_bytes(SIZE_FIELD_BYTES, "big") + name + payload


def datagram(room: str, token: bytes, key: bytes, iv: bytes, text: str) -> bytes:
    """``RoomNameSize u8 | TokenSize u8 | RoomName | Token | AES-CFB(text)`` with the fixed IV.

    RoomNameSize is ``len(room)``, in characters, as the original counted it (§6): for a non-ASCII
    name it is less than the name's UTF-8 bytes, and a reader cuts the datagram in the wrong places."""
    return bytes([len(room), len(token)]) + room.encode("utf-8") + token + cfb_encrypt(key, iv, text.encode("utf-8"))


def parse_datagram(data: bytes) -> tuple[str, bytes, bytes]:
    """``(room, token, encrypted body)``. As lax as the original: only the two size bytes are checked
    (a short datagram yields a short token); a room name that is not UTF-8 is a ProtocolError."""
    if len(data) < 2:
        raise ProtocolError("a datagram needs its two size bytes", code=None)
    token_at = 2 + data[0]
    try:
        room = data[2:token_at].decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError("the room name is not UTF-8", code=None) from None
    return room, data[token_at : token_at + data[1]], data[token_at + data[1] :]


def join_notice(username: str) -> str:
    """The first datagram of every member, as the original client sends it (§6): known to everyone."""
    return f"System: {username} が参加しました。"


def timeout_notice(username: str) -> str:
    """What the original server tells a room when a guest times out (§6)."""
    return f"System: {username}がタイムアウトにより退出しました。"


def host_timeout_notice(username: str) -> str:
    """What the original server tells a room when its host times out (§6); ``exit!`` follows."""
    return f"System: ホストの{username}がタイムアウトしたためルームを終了します"


def connection_key(bits: int = RSA_BITS, rng: RandomSource = system_random) -> RSA.RsaKey:
    """A new RSA key for one connection, as the original made (§6). With the system's randomness OpenSSL
    makes it (about 8x faster than pycryptodome, and beside other threads); with a seeded ``rng``
    (lessons, tests) pycryptodome draws it from ``rng``, so it is the same on every run."""
    if rng is not system_random:
        return RSA.generate(bits, randfunc=rng)
    made = rsa.generate_private_key(public_exponent=65537, key_size=bits).private_numbers()
    return RSA.construct((made.public_numbers.n, made.public_numbers.e, made.d, made.p, made.q),
                         consistency_check=False)   # OpenSSL checked it; construct() would test it again


def _shown(name: str) -> str:
    """A name from the network for a log line: at most 64 characters, control characters escaped."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in name[:64])


# --- the server half --------------------------------------------------------------------------

@dataclass(eq=False)
class LegacySession:
    """One member, as the original kept it: the session key and IV, the last address seen."""

    token: bytes = field(repr=False)
    username: str
    room: str
    is_host: bool
    key: bytes = field(repr=False)
    iv: bytes = field(repr=False)
    last_activity: float
    address: tuple[str, int] | None = None   # moved by ANY datagram carrying the token


@dataclass(eq=False)
class LegacyRoom:
    name: str
    password: str                 # in plain text, as the original kept it ("" = open room)
    tokens: list[bytes] = field(default_factory=list, repr=False)


@dataclass(frozen=True)
class Relayed:
    """One datagram the legacy relay passed on: who it came from and who got a copy."""

    index: int
    peer: tuple[str, int]
    room: str
    user: str
    text: str
    to: tuple[str, ...]
    token: bytes = field(repr=False)


class LegacyProfile:
    """TCRP/1 (TCRP.md §6) inside the threaded ChatServer shell: flaws in the protocol, not the shell.

    ``per_connection_key`` (default True, as the original) makes a new ``key_bits`` RSA key for every
    connection (:func:`connection_key`: 0.03-0.2 s with OpenSSL, up to a second with pycryptodome),
    at most :data:`KEY_MAKERS` at once, the handshake deadline starting when the key is sent; set it
    False to use the server's one key instead (fast tests).
    ``rooms`` and ``sessions`` are the original's state, passwords in clear; ``relayed`` records the
    last relayed datagrams; ``stopped_by`` says why the relay stopped, once a bad datagram stopped it.
    """

    name = NAME
    pinned_key = False       # a new key per connection, as the original (§6): nothing to pin
    one_udp_queue = True     # the original's one relay loop: one bad datagram stops it for all (§6)
    per_connection_key = True
    key_bits = RSA_BITS

    def __init__(self, server: Any):
        self.server = server
        self.rooms: dict[str, LegacyRoom] = {}
        self.sessions: dict[bytes, LegacySession] = {}
        self.relayed: deque[Relayed] = deque(maxlen=MAX_RELAYED)
        self.stopped_by: str | None = None   # why the relay stopped (see the module docstring); None: it runs
        self._relay_index = itertools.count(1)
        self._lock = threading.Lock()
        self._key_makers = threading.BoundedSemaphore(KEY_MAKERS)
        log.warning(WARNING)

    def counts(self) -> tuple[int, int]:
        """(rooms, members) right now, as RoomRegistry.counts() gives them for TCRP/2."""
        with self._lock:
            return len(self.rooms), len(self.sessions)

    def relayed_after(self, index: int = 0) -> list[Relayed]:
        """The relay records with an index above ``index`` (safe to call from any thread)."""
        with self._lock:
            return [r for r in self.relayed if r.index > index]

    # --- TCP: handshake, then create, or list-then-join ----------------------------------------

    def handle_connection(self, io: FramedSocket, peer: tuple[str, int]) -> None:
        server = self.server
        private = server.key.rsa
        if self.per_connection_key:
            with self._key_makers:   # 50 keys in 50 threads take as long as one after another, all finishing late
                private = connection_key(self.key_bits, server.rng)
            # the deadline starts now: time waiting for a key is ours, not the client's (§5's 10 s)
            io.deadline = time.monotonic() + server.limits.handshake_timeout
        pem = private.publickey().export_key("PEM")
        self._trace_tcp("out", peer, io.send(pem), "ServerHello", plaintext=pem)
        body = io.recv()
        key, iv = open_key_exchange(private, body)
        self._trace_tcp("in", peer, wire_frame(body), "ClientKeyExchange", plaintext=key + iv)
        first = self._receive(io, peer, key, iv)
        if first.operation is Operation.CREATE_ROOM:
            token = self._create(first, key, iv)
            self._reply(io, peer, key, iv, token, "complete")
        elif first.operation is Operation.JOIN_ROOM:
            with self._lock:
                names = list(self.rooms)
            self._reply(io, peer, key, iv, repr(names).encode("utf-8"), "response")
            try:
                second = self._receive(io, peer, key, iv)
            except ConnectionClosed:
                if io.partial:
                    raise
                return  # it only wanted the room list
            answer = self._join(second, first, key, iv)
            refused = _REFUSALS.get(answer)
            self._reply(io, peer, key, iv, answer, "response" if refused else "complete")
            if refused:
                server.drop("request_error:" + refused, peer)
        else:
            raise ProtocolError(f"TCRP/1 knows CREATE_ROOM (1) and JOIN_ROOM (2), not operation {int(first.operation)}")

    def _receive(self, io: FramedSocket, peer: tuple[str, int], key: bytes, iv: bytes) -> Message:
        body = io.recv()
        plaintext = cfb_decrypt(key, iv, body)
        message = None
        try:
            message = decode_message(plaintext)
            return message
        finally:
            self._trace_tcp("in", peer, wire_frame(body), "request", plaintext=plaintext, message=message)

    def _reply(self, io: FramedSocket, peer: tuple[str, int], key: bytes, iv: bytes, data: bytes, kind: str) -> None:
        self._trace_tcp("out", peer, io.send(cfb_encrypt(key, iv, data)), kind, plaintext=data)

    def _create(self, message: Message, key: bytes, iv: bytes) -> bytes:
        """A room of that name is replaced, members and all: the room hijack."""
        username, password = _credentials(message)
        token = self.server.rng(TOKEN_BYTES)
        with self._lock:
            self.rooms[message.room] = LegacyRoom(message.room, password, [token])
            self.sessions[token] = LegacySession(token, username, message.room, True, key, iv,
                                                 self.server.registry.clock())
        self.server.count("joins")
        log.info("[%s] %s created the room", _shown(message.room), _shown(username))
        return token

    def _join(self, message: Message, first: Message, key: bytes, iv: bytes) -> bytes:
        username, password = _credentials(message, fallback=first)
        with self._lock:
            room = self.rooms.get(message.room)
            if room is None:
                return INVALID_ROOM
            if room.password and room.password != password:   # plain text, compared as such
                return INVALID_PASSWORD
            token = self.server.rng(TOKEN_BYTES)
            room.tokens.append(token)
            self.sessions[token] = LegacySession(token, username, room.name, False, key, iv,
                                                 self.server.registry.clock())
        self.server.count("joins")
        log.info("[%s] %s joined", _shown(room.name), _shown(username))
        return token

    # --- UDP: decrypt with the token's key, relay to the room named in the datagram --------------

    def handle_datagram(self, data: bytes, peer: tuple[str, int]) -> None:
        """Relay one datagram in the original's order of steps; the first bad one stops the relay for good."""
        if self.stopped_by is not None:   # the original's UDP thread was dead: nothing relayed any more
            self._trace_udp("in", peer, data, "rejected", error=f"relay_stopped: {self.stopped_by}")
            self.server.drop("relay_stopped", peer)
            return
        try:
            room, token, body = parse_datagram(data)
            session = self.sessions[token]
            text = cfb_decrypt(session.key, session.iv, body).decode("utf-8")
        except (ProtocolError, KeyError, UnicodeDecodeError) as exc:
            why = ("unknown token" if isinstance(exc, KeyError) else f"the message is not UTF-8 ({exc.reason})"
                   if isinstance(exc, UnicodeDecodeError) else exc.reason)
            log.warning("TCRP/1 relay stopped by a bad datagram from %s:%s (%s): as in the original, no datagram "
                        "of any room is relayed from now on, until the server restarts", peer[0], peer[1], why)
            self._trace_udp("in", peer, data, "rejected", error=f"relay_crash: {why}")
            self.server.drop("relay_crash", peer, why)
            self.stopped_by = why   # last: whoever waits for it finds the warning logged and the drop counted
            return
        with self._lock:
            session.address = peer   # no authentication: whoever sends the token now gets its traffic
            session.last_activity = self.server.registry.clock()
            out = self._broadcast(room, text)
            record = Relayed(next(self._relay_index), peer, room, session.username, text,
                             tuple(s.username for _, _, s, _ in out), token)
            self.relayed.append(record)
        self._trace_udp("in", peer, data, _kind(text), plaintext=text.encode("utf-8"), session=token.hex(),
                        user=session.username)
        self._send(out)

    def _broadcast(self, room_name: str, text: str) -> list[tuple[bytes, tuple[str, int], LegacySession, str]]:
        """The copies for every member of the room with a known address (lock held)."""
        room = self.rooms.get(room_name)
        out = []
        for token in room.tokens if room else ():
            member = self.sessions.get(token)
            if member is not None and member.address is not None:
                out.append((datagram(room_name, token, member.key, member.iv, text), member.address, member, text))
        return out

    def _send(self, out: list[tuple[bytes, tuple[str, int], LegacySession, str]]) -> None:
        for data, address, member, text in out:
            if self.server.send_datagram(data, address):
                self._trace_udp("out", address, data, "kicked" if data == TIMEOUT_NOTICE else _kind(text),
                                plaintext=text.encode("utf-8"), session=member.token.hex(), user=member.username)

    # --- time --------------------------------------------------------------------------------

    def reap(self, now: float) -> None:
        """Remove members silent for longer than the server's inactivity timeout, as the original did."""
        registry = self.server.registry
        out: list[tuple[bytes, tuple[str, int], LegacySession, str]] = []
        with self._lock:
            expired = [s for s in self.sessions.values() if now - s.last_activity > registry.inactivity_timeout]
            for session in sorted(expired, key=lambda s: not s.is_host):   # hosts first
                if session.token not in self.sessions:
                    continue  # gone with its host's room a moment ago
                room = self.rooms.get(session.room)   # by name: after a hijack, the hijacker's room
                if session.is_host:
                    log.info("[%s] host %s timed out: the room is closed", _shown(session.room),
                             _shown(session.username))
                    out += self._broadcast(session.room, host_timeout_notice(session.username))
                    out += self._broadcast(session.room, CLOSE_NOTICE)
                    for token in room.tokens if room else ():
                        self.sessions.pop(token, None)
                    self.rooms.pop(session.room, None)
                else:
                    log.info("[%s] %s timed out", _shown(session.room), _shown(session.username))
                    out += self._broadcast(session.room, timeout_notice(session.username))
                    if room and session.token in room.tokens:
                        room.tokens.remove(session.token)
                self.sessions.pop(session.token, None)
                if session.address is not None:
                    out.append((TIMEOUT_NOTICE, session.address, session, TIMEOUT_NOTICE.decode()))
        self._send(out)

    def shutdown(self) -> None:
        """The original said nothing when it stopped."""

    # --- traces (the same fields as TCRP/2's, so trace renderers work on legacy traffic) --------

    def _trace_tcp(self, direction: str, peer: tuple[str, int], raw: bytes, kind: str, **fields: Any) -> None:
        if self.server.trace is not None:
            self.server.trace(PacketEvent(time.time(), "server", direction, "tcp", peer, kind, raw,
                session=f"tcp {peer[0]}:{peer[1]}", **fields, local=self.server.local_address("tcp")))

    def _trace_udp(self, direction: str, peer: tuple[str, int], raw: bytes, kind: str, **fields: Any) -> None:
        if self.server.trace is not None:
            self.server.trace(PacketEvent(time.time(), "server", direction, "udp", peer, kind, raw,
                local=self.server.local_address("udp"), **fields))


def _credentials(message: Message, fallback: Message | None = None) -> tuple[str, str]:
    username = message.payload.get("username", fallback.payload.get("username", "") if fallback else "")
    password = message.payload.get("password", "")
    if not isinstance(username, str) or not isinstance(password, str):
        raise ProtocolError('"username" and "password" must be strings')
    return username, password


def _kind(text: str) -> str:
    """A trace kind for a legacy message (TCRP/1 datagrams have no type field)."""
    if text == CLOSE_NOTICE:
        return "room_closed"
    return "system" if text.startswith("System: ") else "chat"


# --- the matching client ------------------------------------------------------------------------

class LegacyRefused(Exception):
    """The legacy server answered ``InvalidRoom`` or ``InvalidPassword`` (in ``answer``)."""

    def __init__(self, answer: bytes, room: str):
        self.answer = answer
        what = "there is no room named" if answer == INVALID_ROOM else "wrong password for room"
        super().__init__(f"the server answered {answer.decode()}: {what} {room!r}")


class _Control:
    """One TCP connection to a TCRP/1 server, after the key exchange."""

    def __init__(self, address: ServerAddress, timeout: float, rng: RandomSource):
        self.sock = socket.create_connection((address.host, address.tcp_port), timeout=timeout)
        self.io = FramedSocket(self.sock, time.monotonic() + timeout)
        try:
            self.key, self.iv = rng(KEY_BYTES), rng(IV_BYTES)
            self.io.send(key_exchange(self.io.recv(), self.key, self.iv))
        except BaseException:
            self.sock.close()
            raise

    def ask(self, operation: int, room: str, username: str, password: str = "") -> bytes:
        self.io.send(cfb_encrypt(self.key, self.iv, request(operation, room, username, password)))
        return cfb_decrypt(self.key, self.iv, self.io.recv())

    def __enter__(self) -> _Control:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()


def _room_list(answer: bytes) -> list[str]:
    try:
        rooms = ast.literal_eval(answer.decode("utf-8"))
    except (ValueError, SyntaxError, UnicodeDecodeError):
        raise ProtocolError(f"the room list {answer[:60]!r} is not a Python list literal", code=None) from None
    if not isinstance(rooms, list) or not all(isinstance(r, str) for r in rooms):
        raise ProtocolError("the room list is not a list of names", code=None)
    return rooms


class LegacyClient:
    """A TCRP/1 member, written from TCRP.md §6 alone. Make one with :meth:`create_room` / :meth:`join_room`.

    §6 tells the client no UDP port, so ``address`` must carry it (``server.address`` does), or pass
    ``udp_via`` (a relay). ``messages`` are the texts received, in arrival order (the room's messages
    and notices, our own echoed back); ``state`` is ``joined``, then ``timed_out`` (``Timeout!``),
    ``room_closed`` (``exit!``) or ``closed``.
    """

    def __init__(self, address: ServerAddress, room: str, username: str, token: bytes, key: bytes, iv: bytes, *,
                 udp_via: tuple[str, int] | None = None, on_message: Callable[[str], None] | None = None):
        if udp_via is None and address.udp_port is None:
            raise ValueError("TCRP/1 does not tell the UDP port: pass an address with udp_port "
                             "(server.address has it) or udp_via=(host, port)")
        self.room, self.username, self.token, self.key, self.iv = room, username, token, key, iv
        self.server_udp = udp_via or (address.host, address.udp_port)
        self.on_message = on_message
        self.messages: list[str] = []
        self.state = "joined"
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.connect(self.server_udp)
        self.sock.settimeout(0.2)
        self._thread = threading.Thread(target=self._run, name=f"tcrp1-client-{username}", daemon=True)
        self._thread.start()
        try:
            self.send_text(join_notice(username))
        except OSError:
            self.close()
            raise

    @classmethod
    def create_room(cls, address: ServerAddress | tuple | str, room: str, username: str, password: str = "", *,
                    timeout: float = 10.0, rng: RandomSource = system_random, **options: Any) -> LegacyClient:
        address = parse_address(address)
        with _Control(address, timeout, rng) as control:
            token = control.ask(Operation.CREATE_ROOM, room, username, password)
        return cls(address, room, username, token, control.key, control.iv, **options)

    @classmethod
    def join_room(cls, address: ServerAddress | tuple | str, room: str, username: str, password: str = "", *,
                  timeout: float = 10.0, rng: RandomSource = system_random, **options: Any) -> LegacyClient:
        address = parse_address(address)
        with _Control(address, timeout, rng) as control:
            _room_list(control.ask(Operation.JOIN_ROOM, "", username))
            answer = control.ask(Operation.JOIN_ROOM, room, username, password)
        if answer in (INVALID_ROOM, INVALID_PASSWORD):
            raise LegacyRefused(answer, room)
        return cls(address, room, username, answer, control.key, control.iv, **options)

    @staticmethod
    def list_rooms(address: ServerAddress | tuple | str, username: str = "", *, timeout: float = 10.0,
                   rng: RandomSource = system_random) -> list[str]:
        """The room names: the answer to a JOIN_ROOM with an empty room name."""
        with _Control(parse_address(address), timeout, rng) as control:
            return _room_list(control.ask(Operation.JOIN_ROOM, "", username))

    def send(self, text: str) -> bytes:
        """Send ``username: text`` to the room; returns the datagram as it went on the wire."""
        return self.send_text(f"{self.username}: {text}")

    def send_text(self, text: str) -> bytes:
        """Send ``text`` as it is (the original client prefixed the name itself; so can anyone)."""
        data = datagram(self.room, self.token, self.key, self.iv, text)
        self.sock.send(data)
        return data

    def wait_for_messages(self, n: int, timeout: float = 10.0) -> list[str]:
        """Wait until ``n`` texts arrived; return them all (TimeoutError if they do not)."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.messages) >= n, timeout):
                raise TimeoutError(f"{self.username} has {len(self.messages)} messages, not {n}, after {timeout} s")
            return list(self.messages)

    def wait_for_state(self, state: str, timeout: float = 10.0) -> None:
        with self._cond:
            if not self._cond.wait_for(lambda: self.state == state, timeout):
                raise TimeoutError(f"{self.username} is {self.state}, not {state}, after {timeout} s")

    def close(self) -> None:
        """Stop listening. TCRP/1 has no leave message: the server notices only by the timeout."""
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(5)
        self.sock.close()
        with self._cond:
            if self.state == "joined":
                self.state = "closed"
            self._cond.notify_all()

    def __enter__(self) -> LegacyClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"LegacyClient({self.username!r} in {self.room!r}, {self.state}, {len(self.messages)} messages)"

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:   # ICMP unreachable on the connected socket, or closed by close()
                if self._stop.is_set():
                    return
                continue
            self._receive(data)

    def _receive(self, data: bytes) -> None:
        if data == TIMEOUT_NOTICE:
            self._end("timed_out")
            return
        try:
            _, token, body = parse_datagram(data)
        except ProtocolError:
            return
        if token != self.token:
            return
        text = cfb_decrypt(self.key, self.iv, body).decode("utf-8", errors="replace")
        if text == CLOSE_NOTICE:
            self._end("room_closed")
            return
        with self._cond:
            self.messages.append(text)
            self._cond.notify_all()
        if self.on_message:
            try:
                self.on_message(text)
            except Exception:
                log.exception("%s: a callback raised", self.username)

    def _end(self, state: str) -> None:
        with self._cond:
            if self.state == "joined":
                self.state = state
            self._cond.notify_all()
        self._stop.set()
