"""The chat service's state machine: rooms, members, history, timeouts. No sockets, no threads.

:class:`RoomRegistry` holds every room and session behind one lock. Each operation changes the
state and returns the :class:`Delivery` list it causes (who must be told what); the server shell
only seals and sends them. Time comes from an injected clock, so a five-minute timeout is tested
by moving a number, not by waiting.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .crypto import RandomSource, SessionKeys, UdpChannel, hash_password, system_random, verify_password
from .protocol import (
    TOKEN_SIZE, Ack, ErrorCode, Kicked, Payload, Pong, ProtocolError, RoomChat, RoomClosed, SystemEvent,
    Welcome, check_name,
)

__all__ = ["Delivery", "Member", "Room", "RoomRegistry"]

log = logging.getLogger("tcrp_lab.rooms")

Clock = Callable[[], float]

DEFAULT_TIMEOUT = 300.0
HISTORY_SIZE = 1000          #: room messages kept for ``resend`` (the spec's minimum)
MAX_RESEND = 256             #: room messages answered to one ``resend``
DEDUP_IDS = 1024             #: chat ids remembered per session to de-duplicate retransmissions
HOLD_MAX = 64                #: chats held back per session while an earlier id is missing
HOLD_SECONDS = 5.0           #: ... and for at most this long before the gap is skipped


@dataclass(eq=False)
class Member:
    """One session: a user in a room, with its UDP keys and what the server knows of it."""

    username: str
    room: Room
    token: bytes
    channel: UdpChannel
    is_host: bool
    last_activity: float
    address: tuple[str, int] | None = None   # learned only from datagrams that authenticate
    acked: dict[int, int] = field(default_factory=dict)  # chat id -> room seq, for de-duplication
    next_id: int = 1                                      # the chat id to post next, in order
    held: dict[int, tuple[str, float]] = field(default_factory=dict)  # id -> (text, arrival) ahead of a gap

    def __repr__(self) -> str:
        role = "host" if self.is_host else "guest"
        return f"Member({self.username!r} in {self.room.name!r}, {role}, token {self.token.hex()[:8]}…)"


@dataclass(eq=False)
class Room:
    name: str
    host: str
    password_hash: str | None
    history_size: int = HISTORY_SIZE
    members: dict[str, Member] = field(default_factory=dict)
    seq: int = 0                              # room seq of the last room message (0: none yet)
    history: deque[Payload] = field(init=False)

    def __post_init__(self) -> None:
        self.history = deque(maxlen=self.history_size)

    @property
    def has_password(self) -> bool:
        return self.password_hash is not None


@dataclass(frozen=True)
class Delivery:
    """``payload`` must be sent to each of ``to`` (that has a known address)."""

    payload: Payload
    to: tuple[Member, ...]


class RoomRegistry:
    """Every room and member, guarded by one lock. Thread-safe; performs no I/O.

    Passwords are hashed and verified outside the lock (scrypt takes ~14 ms), so one slow join
    never holds up the chat of others.
    """

    def __init__(self, *, inactivity_timeout: float = DEFAULT_TIMEOUT, clock: Clock = time.monotonic,
                 rng: RandomSource = system_random, max_rooms: int = 1000, max_members: int = 256,
                 history_size: int = HISTORY_SIZE, wall_clock: Clock = time.time):
        if inactivity_timeout <= 0:
            raise ValueError("inactivity_timeout must be a positive number of seconds")
        self.inactivity_timeout = inactivity_timeout
        self.clock = clock
        self.wall_clock = wall_clock    # for the ``ts`` of chat messages only
        self.rng = rng
        self.max_rooms = max_rooms
        self.max_members = max_members
        self.history_size = history_size
        self._lock = threading.Lock()
        self._rooms: dict[str, Room] = {}
        self._sessions: dict[bytes, Member] = {}

    # --- queries ---------------------------------------------------------------------------

    def session(self, token: bytes) -> Member | None:
        return self._sessions.get(token)  # one dict read: atomic, no lock needed

    def list_rooms(self) -> list[dict[str, Any]]:
        with self._lock:
            return [{"name": r.name, "members": len(r.members), "has_password": r.has_password}
                    for r in self._rooms.values()]

    def counts(self) -> tuple[int, int]:
        """(rooms, members) right now."""
        with self._lock:
            return len(self._rooms), len(self._sessions)

    def room(self, name: str) -> Room | None:
        return self._rooms.get(name)

    # --- joining ---------------------------------------------------------------------------

    def create_room(self, name: str, username: str, password: str, keys: SessionKeys) -> tuple[Member, list[Delivery]]:
        check_name(name, "room")
        check_name(username, "username")
        if name in self._rooms:  # fail fast before hashing; checked again under the lock
            raise ProtocolError(f"a room named {name!r} already exists", ErrorCode.ROOM_EXISTS)
        password_hash = hash_password(password, self.rng) if password else None
        with self._lock:
            if name in self._rooms:
                raise ProtocolError(f"a room named {name!r} already exists", ErrorCode.ROOM_EXISTS)
            if len(self._rooms) >= self.max_rooms:
                raise ProtocolError("the server has as many rooms as it can hold", ErrorCode.SERVER_BUSY)
            room = Room(name, host=username, password_hash=password_hash, history_size=self.history_size)
            self._rooms[name] = room
            return self._add_member(room, username, keys, is_host=True, text=f"{username} created the room")

    def join_room(self, name: str, username: str, password: str, keys: SessionKeys) -> tuple[Member, list[Delivery]]:
        check_name(name, "room")
        check_name(username, "username")
        room = self._rooms.get(name)
        if room is None:
            raise ProtocolError(f"there is no room named {name!r}", ErrorCode.NO_SUCH_ROOM)
        if room.password_hash is not None and not verify_password(password, room.password_hash):
            raise ProtocolError("wrong password", ErrorCode.WRONG_PASSWORD)
        with self._lock:
            if self._rooms.get(name) is not room:  # closed (or replaced) while we checked
                raise ProtocolError(f"there is no room named {name!r}", ErrorCode.NO_SUCH_ROOM)
            if username in room.members:
                raise ProtocolError(f"the name {username!r} is taken in this room", ErrorCode.USERNAME_TAKEN)
            if len(room.members) >= self.max_members:
                raise ProtocolError(f"the room is full ({self.max_members} members)", ErrorCode.ROOM_FULL)
            return self._add_member(room, username, keys, is_host=False, text=f"{username} joined")

    def _add_member(self, room: Room, username: str, keys: SessionKeys, *, is_host: bool,
                    text: str) -> tuple[Member, list[Delivery]]:
        token = self.rng(TOKEN_SIZE)
        while token in self._sessions:  # 2**-128; but a seeded rng in a lesson could repeat
            token = self.rng(TOKEN_SIZE)
        member = Member(username, room, token, UdpChannel.server(room.name, token, keys), is_host, self.clock())
        room.members[username] = member
        self._sessions[token] = member
        return member, [self._post(room, SystemEvent, event="joined", user=username, text=text)]

    # --- datagrams from a member -------------------------------------------------------------

    def hello(self, member: Member) -> list[Delivery]:
        with self._lock:
            member.last_activity = self.clock()
            return [Delivery(Welcome(seq=member.room.seq), (member,))]

    def ping(self, member: Member) -> list[Delivery]:
        # Not activity (TCRP.md §5). The seq lets a client notice it missed the room's last messages.
        return [Delivery(Pong(seq=member.room.seq), (member,))]

    def chat(self, member: Member, chat_id: int, text: str) -> list[Delivery]:
        """Post a session's chats once each and in id order; a retransmission gets its ack again.

        Ids count from 1. A chat that arrives ahead of a missing id is held back (acknowledged only
        when posted) until the missing one is retransmitted, so loss never reorders a sender's
        messages; after HOLD_SECONDS or HOLD_MAX held chats the gap is skipped. An id below the
        expected one that was never posted (a counter that starts at 0) is posted at once.
        """
        with self._lock:
            if not self._is_current(member):
                return []
            now = member.last_activity = self.clock()
            seq = member.acked.get(chat_id)
            if seq is not None:
                return [Delivery(Ack(id=chat_id, seq=seq), (member,))]
            if chat_id < member.next_id:
                return self._post_chat(member, chat_id, text)
            member.held.setdefault(chat_id, (text, now))
            return self._release(member, now)

    def _release(self, member: Member, now: float) -> list[Delivery]:
        """Post the held chats that are next in order (skipping a gap that waited too long)."""
        held, deliveries = member.held, []
        while held:
            if member.next_id not in held:
                oldest = min(arrival for _, arrival in held.values())
                if len(held) <= HOLD_MAX and now - oldest < HOLD_SECONDS:
                    break
                member.next_id = min(held)  # give up on the missing id(s)
            text, _ = held.pop(member.next_id)
            deliveries += self._post_chat(member, member.next_id, text)
            member.next_id += 1
        return deliveries

    def _post_chat(self, member: Member, chat_id: int, text: str) -> list[Delivery]:
        room = member.room
        delivery = self._post(room, RoomChat, sender=member.username, text=text, ts=round(self.wall_clock(), 3))
        member.acked[chat_id] = room.seq
        if len(member.acked) > DEDUP_IDS:  # forget the oldest half; ids only grow
            for old in list(member.acked)[: DEDUP_IDS // 2]:
                del member.acked[old]
        # The room copy first: the sender then rarely sees an ack for a seq it has not got yet.
        return [delivery, Delivery(Ack(id=chat_id, seq=room.seq), (member,))]

    def resend(self, member: Member, first: int, last: int) -> list[Delivery]:
        """History ``first``..``last`` (clamped to what is kept, at most MAX_RESEND) to ``member``."""
        with self._lock:
            room = member.room
            oldest = room.seq - len(room.history) + 1
            lo = max(first, oldest)
            hi = min(last, room.seq, lo + MAX_RESEND - 1)
            return [Delivery(room.history[s - oldest], (member,)) for s in range(lo, hi + 1)]

    def leave(self, member: Member) -> list[Delivery]:
        with self._lock:
            if not self._is_current(member):
                return []
            if member.is_host:
                return self._close(member.room, "host_left", exclude=member)
            self._remove(member)
            return [self._post(member.room, SystemEvent, event="left", user=member.username,
                               text=f"{member.username} left")]

    # --- time and shutdown -------------------------------------------------------------------

    def reap(self, now: float | None = None) -> list[Delivery]:
        """Remove every member inactive for longer than the timeout; a host's timeout closes its room.

        The timed-out member gets ``kicked``, its room a ``timeout`` event; if it hosted the room,
        every other member gets ``room_closed``/``host_timeout`` instead.
        """
        now = self.clock() if now is None else now
        deliveries: list[Delivery] = []
        with self._lock:
            for member in [m for m in self._sessions.values() if m.held]:
                deliveries += self._release(member, now)
            expired = [m for m in self._sessions.values() if now - m.last_activity > self.inactivity_timeout]
            for member in sorted(expired, key=lambda m: not m.is_host):  # hosts first
                if not self._is_current(member):
                    continue  # its room was closed by its host's timeout a moment ago
                deliveries.append(Delivery(Kicked(reason="timeout"), (member,)))
                if member.is_host:
                    deliveries += self._close(member.room, "host_timeout", exclude=member)
                else:
                    self._remove(member)
                    deliveries.append(self._post(member.room, SystemEvent, event="timeout", user=member.username,
                                                 text=f"{member.username} timed out"))
        return deliveries

    def close_all(self, reason: str = "server_shutdown") -> list[Delivery]:
        with self._lock:
            return [d for room in list(self._rooms.values()) for d in self._close(room, reason)]

    # --- internals (lock held) ---------------------------------------------------------------

    def _is_current(self, member: Member) -> bool:
        return self._sessions.get(member.token) is member

    def _post(self, room: Room, kind: type[Payload], **fields: Any) -> Delivery:
        """Number a room message, keep it in the history, address it to every member."""
        room.seq += 1
        payload = kind(seq=room.seq, **fields)
        if kind is SystemEvent:
            log.info("[%s] %s", room.name, fields["text"])
        room.history.append(payload)
        return Delivery(payload, tuple(room.members.values()))

    def _remove(self, member: Member) -> None:
        member.room.members.pop(member.username, None)
        self._sessions.pop(member.token, None)

    def _close(self, room: Room, reason: str, exclude: Member | None = None) -> list[Delivery]:
        members = tuple(room.members.values())
        for member in members:
            self._sessions.pop(member.token, None)
        room.members.clear()
        log.info("[%s] room closed (%s)", room.name, reason)
        if self._rooms.get(room.name) is room:
            del self._rooms[room.name]
        told = tuple(m for m in members if m is not exclude)
        return [Delivery(RoomClosed(reason=reason), told)] if told else []
