"""The chat service's state machine: rooms, members, history, timeouts, budgets. No sockets, no threads.

:class:`RoomRegistry` holds every room and session behind one lock. Each operation changes the
state and returns the :class:`Delivery` list it causes (who must be told what); the server shell
only seals and sends them. Time comes from an injected clock, so a five-minute timeout is tested
by moving a number, not by waiting.

What a classroom of attackers cannot do to it (TCRP.md §8): names are normalised and look-alikes
refused (:mod:`tcrp_lab.names`); one address holds a bounded number of rooms and of sessions that
never said hello, and those expire in seconds; wrong passwords back off exponentially per address
and room, and only a few scrypt checks run at once; history is bounded in messages and in bytes,
per room and for the server; a session's address moves only after it proved it receives there
(§4.2), and until then the server sends it at most three times what it received from it.
"""

from __future__ import annotations

import hmac
import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .crypto import RandomSource, SessionKeys, UdpChannel, hash_password, system_random, verify_password
from .limits import Backoff, Limits, SessionBudget
from .names import clash_keys, normalize_name
from .protocol import (
    CHALLENGE_SIZE, MAX_RANGES, SEQ_BYTES, TAG_SIZE, TOKEN_SIZE, Ack, Challenge, ErrorCode, Kicked, Payload, Pong,
    ProtocolError, Ranges, Refused, RoomChat, RoomClosed, SystemEvent, Welcome, check_text,
)

__all__ = ["Delivery", "Member", "Room", "RoomRegistry"]

log = logging.getLogger("tcrp_lab.rooms")

Clock = Callable[[], float]
Address = tuple[str, int]

DEFAULT_TIMEOUT = 300.0
HISTORY_SIZE = 1000          #: room messages kept for ``resend`` (and at most Limits.history_bytes)
MAX_RESEND = 256             #: room messages answered to one ``resend``
DEDUP_IDS = 1024             #: chat ids remembered per session to de-duplicate retransmissions
HOLD_MAX = 64                #: chats held back per session while an earlier id is missing
HOLD_SECONDS = 5.0           #: ... and for at most this long before the gap is skipped
AMPLIFICATION = 3            #: §4.2: bytes sent to an unproven address <= 3x the bytes received from it
CHALLENGE_INTERVAL = 0.2     #: seconds between two challenges to the same new address
PASSWORD_WAIT = 2.0          #: seconds a join waits for a free scrypt slot before server_busy


@dataclass
class PendingPath:
    """A new address a session's datagrams came from, not yet proven (§4.2)."""

    address: Address
    data: bytes            # the challenge it must echo
    received: int = 0      # bytes received from it
    sent: int = 0          # bytes sent to it
    sent_at: float = float("-inf")


@dataclass(eq=False)
class Member:
    """One session: a user in a room, with its UDP keys and what the server knows of it."""

    username: str
    room: Room
    token: bytes
    channel: UdpChannel
    is_host: bool
    last_activity: float
    source: str = ""                          # the IP its TCP handshake came from (§4.2)
    budget: SessionBudget | None = None       # §8.4
    provisional: bool = True                  # until its first authenticated hello (§8.2)
    address: Address | None = None            # where the server sends: proven (§4.2)
    path: PendingPath | None = None           # a new address being proven
    acked: dict[int, int | Refused] = field(default_factory=dict)  # chat id -> room seq (or refusal)
    next_id: int = 1                                      # the chat id to post next, in order
    upto: int = 0                                         # every chat id up to this is posted or refused (§4.5)
    held: dict[int, tuple[str | None, float]] = field(default_factory=dict)  # id -> (text, arrival); None: refused
    resend_cut: int = 0                       # room messages a resend asked for but the budget withheld

    def __repr__(self) -> str:
        role = "host" if self.is_host else "guest"
        return f"Member({self.username!r} in {self.room.name!r}, {role}, token {self.token.hex()[:8]}…)"


@dataclass(eq=False)
class Room:
    name: str
    host: str
    password_hash: str | None
    history_size: int = HISTORY_SIZE
    creator: str = ""                         # the address that created it (§8.2)
    members: dict[str, Member] = field(default_factory=dict)
    look_alikes: dict[tuple[str, str], str] = field(default_factory=dict)   # clash key -> username (§3.1)
    seq: int = 0                              # room seq of the last room message (0: none yet)
    history: deque[tuple[Payload, int]] = field(init=False)     # (room message, its size in bytes)
    history_bytes: int = 0

    def __post_init__(self) -> None:
        self.history = deque()

    @property
    def has_password(self) -> bool:
        return self.password_hash is not None


@dataclass(frozen=True)
class Delivery:
    """``payload`` must be sent to each of ``to`` (that has a known address), or to ``address``."""

    payload: Payload
    to: tuple[Member, ...]
    address: Address | None = None   # an unproven address (a challenge only)


class RoomRegistry:
    """Every room and member, guarded by one lock. Thread-safe; performs no I/O.

    Passwords are hashed and verified outside the lock (scrypt takes ~14 ms), at most
    ``limits.max_password_checks`` at once, so one slow join never holds up the chat of others.
    """

    def __init__(self, *, inactivity_timeout: float = DEFAULT_TIMEOUT, clock: Clock = time.monotonic,
                 rng: RandomSource = system_random, max_rooms: int | None = None, max_members: int | None = None,
                 history_size: int = HISTORY_SIZE, wall_clock: Clock = time.time, limits: Limits | None = None):
        if inactivity_timeout <= 0:
            raise ValueError("inactivity_timeout must be a positive number of seconds")
        limits = limits or Limits()
        overrides = {k: v for k, v in (("max_rooms", max_rooms), ("max_members", max_members)) if v is not None}
        self.limits = limits.replace(**overrides) if overrides else limits
        self.inactivity_timeout = inactivity_timeout
        self.clock = clock
        self.wall_clock = wall_clock    # for the ``ts`` of chat messages only
        self.rng = rng
        self.history_size = history_size
        self._lock = threading.Lock()
        self._rooms: dict[str, Room] = {}
        self._room_look_alikes: dict[tuple[str, str], Room] = {}   # clash key of a room name -> the room
        self._sessions: dict[bytes, Member] = {}
        self._rooms_by: Counter[str] = Counter()          # source address -> rooms it created, open
        self._provisional_by: Counter[str] = Counter()    # source address -> sessions without a hello
        self._history_bytes = 0
        self.chats_posted = 0     # room chats posted since the start (a dashboard's messages per second)
        self._guesses: Backoff[tuple[str, str]] = Backoff(self.limits.password_backoff, self.limits.password_backoff_max,
                                                          free=self.limits.password_free_tries)
        self._scrypt = threading.BoundedSemaphore(max(1, self.limits.max_password_checks))

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

    @property
    def history_bytes(self) -> int:
        """Bytes of room messages kept on the whole server (bounded by limits.server_history_bytes)."""
        return self._history_bytes

    def room(self, name: str) -> Room | None:
        return self._rooms.get(name)

    def overview(self, max_rooms: int, max_members: int) -> dict[str, Any]:
        """Rooms and members right now, for a teacher: at most ``max_rooms`` rooms (the fullest first)
        and ``max_members`` members each, with how many were left out."""
        now = self.clock()
        with self._lock:
            rooms = sorted(self._rooms.values(), key=lambda r: (-len(r.members), r.name))
            shown = [{
                "name": room.name, "host": room.host, "has_password": room.has_password, "seq": room.seq,
                "member_count": len(room.members),
                "members": [{"name": m.username, "is_host": m.is_host, "joined": not m.provisional,
                             "address": f"{m.address[0]}:{m.address[1]}" if m.address else None,
                             "source": m.source, "idle": round(max(0.0, now - m.last_activity), 1)}
                            for m in list(room.members.values())[:max_members]],
            } for room in rooms[:max_rooms]]
            return {"rooms": shown, "room_count": len(rooms), "member_count": len(self._sessions)}

    # --- joining ---------------------------------------------------------------------------

    def create_room(self, name: str, username: str, password: str, keys: SessionKeys, *,
                    source: str = "") -> tuple[Member, list[Delivery]]:
        """Create a room hosted by ``username``; ``source`` is the client's IP address (§8.2).

        The host is provisional until its first hello; its room's first message, "… created the
        room", is posted then.
        """
        name, username = normalize_name(name, "room"), normalize_name(username, "username")
        with self._lock:  # fail fast before hashing; checked again under the lock
            self._check_room_free(name, source)
        password_hash = self._scrypt_call(hash_password, password, self.rng) if password else None
        with self._lock:
            self._check_room_free(name, source)
            room = Room(name, host=username, password_hash=password_hash, history_size=self.history_size,
                        creator=source)
            self._rooms[name] = room
            self._room_look_alikes.update(dict.fromkeys(clash_keys(name), room))
            self._rooms_by[source] += 1
            return self._add_member(room, username, keys, is_host=True, source=source), []

    def join_room(self, name: str, username: str, password: str, keys: SessionKeys, *,
                  source: str = "") -> tuple[Member, list[Delivery]]:
        """Join an existing room; wrong passwords from one ``source`` back off exponentially (§8.3)."""
        name, username = normalize_name(name, "room"), normalize_name(username, "username")
        room = self._rooms.get(name)
        if room is None:
            raise ProtocolError(f"there is no room named {name!r}", ErrorCode.NO_SUCH_ROOM)
        if room.password_hash is not None:
            self._check_password(room, password, source)
        with self._lock:
            if self._rooms.get(name) is not room:  # closed (or replaced) while we checked
                raise ProtocolError(f"there is no room named {name!r}", ErrorCode.NO_SUCH_ROOM)
            self._check_username_free(room, username)
            if len(room.members) >= self.limits.max_members:
                raise ProtocolError(f"the room is full ({self.limits.max_members} members)", ErrorCode.ROOM_FULL)
            self._check_provisional(source)
            return self._add_member(room, username, keys, is_host=False, source=source), []

    def _check_room_free(self, name: str, source: str) -> None:
        if name in self._rooms:
            raise ProtocolError(f"a room named {name!r} already exists", ErrorCode.ROOM_EXISTS)
        twin = next((self._room_look_alikes[k] for k in clash_keys(name) if k in self._room_look_alikes), None)
        if twin is not None:
            raise ProtocolError(f"the room name {name!r} looks like {twin.name!r}, which already exists: "
                                "join that one or pick a name that looks different", ErrorCode.ROOM_EXISTS)
        if len(self._rooms) >= self.limits.max_rooms:
            raise ProtocolError("the server has as many rooms as it can hold", ErrorCode.SERVER_BUSY)
        if self._rooms_by[source] >= self.limits.max_rooms_per_address:
            raise ProtocolError(f"your address {source} already has {self._rooms_by[source]} rooms open, the most one "
                                "address may have: close one first (a host leaving closes its room)",
                                ErrorCode.SERVER_BUSY)
        self._check_provisional(source)

    def _check_username_free(self, room: Room, username: str) -> None:
        if username in room.members:
            raise ProtocolError(f"the name {username!r} is taken in this room", ErrorCode.USERNAME_TAKEN)
        twin = next((room.look_alikes[k] for k in clash_keys(username) if k in room.look_alikes), None)
        if twin is not None:
            raise ProtocolError(f"the name {username!r} looks like {twin!r}, who is already in this room: "
                                "pick a name that looks different", ErrorCode.USERNAME_TAKEN)

    def _check_provisional(self, source: str) -> None:
        if self._provisional_by[source] >= self.limits.max_provisional_per_address:
            raise ProtocolError(f"{self._provisional_by[source]} sessions from your address {source} have not said "
                                "hello over UDP yet: try again in a few seconds", ErrorCode.SERVER_BUSY,
                                retry_after=self.limits.hello_timeout)

    def _check_password(self, room: Room, password: str, source: str) -> None:
        """scrypt against the room's hash, one try at a time per (address, room), backing off after failures."""
        key = (source, room.name)
        with self._lock:
            wait = self._guesses.begin(key, self.clock())
        if wait:
            raise ProtocolError(f"too many wrong passwords for this room from your address: wait {wait:.1f} s "
                                "and try again", ErrorCode.RATE_LIMITED, retry_after=wait)
        ok: bool | None = None
        try:
            ok = self._scrypt_call(verify_password, password, room.password_hash)
        finally:
            with self._lock:
                self._guesses.end(key, self.clock(), ok=ok)
        if not ok:
            raise ProtocolError("wrong password", ErrorCode.WRONG_PASSWORD)

    def _scrypt_call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run a scrypt hash or check in one of the few slots (8 MiB of memory each)."""
        if not self._scrypt.acquire(timeout=PASSWORD_WAIT):
            raise ProtocolError("the server is busy checking passwords: try again in a moment",
                                ErrorCode.SERVER_BUSY, retry_after=1.0)
        try:
            return fn(*args)
        finally:
            self._scrypt.release()

    def _add_member(self, room: Room, username: str, keys: SessionKeys, *, is_host: bool, source: str) -> Member:
        token = self.rng(TOKEN_SIZE)
        while token in self._sessions:  # 2**-128; but a seeded rng in a lesson could repeat
            token = self.rng(TOKEN_SIZE)
        now = self.clock()
        member = Member(username, room, token, UdpChannel.server(room.name, token, keys), is_host, now,
                        source=source, budget=SessionBudget(self.limits, now))
        room.members[username] = member
        room.look_alikes.update(dict.fromkeys(clash_keys(username), username))
        self._sessions[token] = member
        self._provisional_by[source] += 1
        return member

    # --- where a member is (§4.2) ---------------------------------------------------------------

    def arrived(self, member: Member, address: Address, size: int) -> list[Delivery]:
        """An authenticated datagram of ``size`` bytes came from ``address``: the challenge to send, if any.

        The first address on the host the TCP handshake came from is proven by that handshake; any
        other new address is challenged, within 3x what it sent, and the session stays where it is.
        """
        if address == member.address:
            return []
        with self._lock:
            if member.address is None and address[0] == member.source:
                member.address, member.path = address, None
                return []
            path = member.path
            if path is None or path.address != address:  # one pending address per session: the latest
                path = member.path = PendingPath(address, self.rng(CHALLENGE_SIZE))
            path.received += size
            now = self.clock()
            challenge = Challenge(data=path.data.hex())
            cost = len(challenge.encode()) + 2 + len(member.room.name.encode()) + TOKEN_SIZE + SEQ_BYTES + TAG_SIZE
            if now - path.sent_at < CHALLENGE_INTERVAL or path.sent + cost > AMPLIFICATION * path.received:
                return []
            path.sent += cost
            path.sent_at = now
            return [Delivery(challenge, (member,), address=address)]

    def respond(self, member: Member, address: Address, data: str) -> list[Delivery] | None:
        """A ``response`` from ``address``: if it echoes that address's challenge, the session moves
        there and is welcomed; None if it proves nothing."""
        with self._lock:
            path = member.path
            if path is None or path.address != address or not hmac.compare_digest(data.encode(), path.data.hex().encode()):
                return None
            member.address, member.path = address, None
            return [Delivery(Welcome(seq=member.room.seq), (member,))]

    # --- datagrams from a member -------------------------------------------------------------

    def hello(self, member: Member) -> list[Delivery]:
        """Welcome; the first hello ends the provisional state and posts the ``joined`` event (§8.2)."""
        with self._lock:
            if not self._is_current(member):
                return []
            member.last_activity = self.clock()
            out = [Delivery(Welcome(seq=member.room.seq), (member,))]
            if member.provisional:
                self._heard(member)
                name = member.username
                text = f"{name} created the room" if member.is_host else f"{name} joined"
                out.append(self._post(member.room, SystemEvent, event="joined", user=name, text=text))
            return out

    def ping(self, member: Member) -> list[Delivery]:
        # Not activity (TCRP.md §5). The seq lets a client notice it missed the room's last messages.
        return [Delivery(Pong(seq=member.room.seq), (member,))]

    def chat(self, member: Member, chat_id: int, text: str) -> list[Delivery]:
        """Post a session's chats once each and in id order; a retransmission gets its ack again.

        Ids count from 1. A chat that arrives ahead of a missing id is held back (acknowledged only
        when posted) until the missing one is retransmitted, so loss never reorders a sender's
        messages; after HOLD_SECONDS or HOLD_MAX held chats the gap is skipped. An id below the
        expected one that was never posted (a counter that starts at 0) is posted at once. A text
        the server will not post is answered ``refused`` at once, so the client stops sending it (§4.3).
        """
        with self._lock:
            if not self._is_current(member):
                return []
            now = member.last_activity = self.clock()
            prior = member.acked.get(chat_id)
            if prior is not None:
                return [Delivery(prior if isinstance(prior, Refused) else self._ack(member, chat_id, prior), (member,))]
            try:
                check_text(text)
            except ProtocolError as exc:
                refused = Refused(id=chat_id, code=str(exc.code), message=exc.reason)
                self._remember(member, chat_id, refused)
                if chat_id >= member.next_id:
                    member.held[chat_id] = (None, now)  # its turn in the order passes without a post
                return [Delivery(refused, (member,))] + self._release(member, now)
            if chat_id < member.next_id:
                return self._post_chat(member, chat_id, text)
            member.held.setdefault(chat_id, (text, now))
            posted = self._release(member, now)
            if chat_id in member.held:  # §4.5: "I have it, held behind an earlier id": stop sending it
                posted.append(Delivery(self._ack(member, chat_id, 0), (member,)))
            return posted

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
            if text is not None:
                deliveries += self._post_chat(member, member.next_id, text)
            member.next_id += 1
        return deliveries

    def _post_chat(self, member: Member, chat_id: int, text: str) -> list[Delivery]:
        room = member.room
        self.chats_posted += 1
        delivery = self._post(room, RoomChat, sender=member.username, text=text, ts=round(self.wall_clock(), 3))
        self._remember(member, chat_id, room.seq)
        # The room copy first: the sender then rarely sees an ack for a seq it has not got yet.
        return [delivery, Delivery(self._ack(member, chat_id, room.seq), (member,))]

    @staticmethod
    def _ack(member: Member, chat_id: int, seq: int) -> Ack:
        """An ack that also says what else arrived (§4.5): every id up to ``upto``, and the held ones."""
        sack: list[tuple[int, int]] = []
        for held in sorted(member.held)[: 4 * MAX_RANGES]:   # usually none; at most HOLD_MAX
            if sack and held == sack[-1][1] + 1:
                sack[-1] = (sack[-1][0], held)
            elif len(sack) < MAX_RANGES:
                sack.append((held, held))
        return Ack(id=chat_id, seq=seq, upto=member.upto, sack=tuple(sack))

    @staticmethod
    def _remember(member: Member, chat_id: int, outcome: int | Refused) -> None:
        member.acked[chat_id] = outcome
        while member.upto + 1 in member.acked:   # a skipped id (never posted) stops it: §4.5's promise
            member.upto += 1
        if len(member.acked) > DEDUP_IDS:  # forget the oldest half; ids only grow
            for old in list(member.acked)[: DEDUP_IDS // 2]:
                del member.acked[old]

    def resend(self, member: Member, first: int, last: int, ranges: Ranges = ()) -> list[Delivery]:
        """History ``first``..``last`` (or each of ``ranges``, §4.5) to ``member``: clamped to what is
        kept, to MAX_RESEND per request and to the session's resend budget (§8.4)."""
        with self._lock:
            room = member.room
            oldest = room.seq - len(room.history) + 1
            left = MAX_RESEND
            out: list[Delivery] = []
            for first, last in ranges or ((first, last),):
                lo = max(first, oldest)
                hi = min(last, room.seq, lo + left - 1)
                if hi < lo:
                    continue
                budget = member.budget
                if budget is not None:
                    allowed = budget.resend.take_up_to(self.clock(), hi - lo + 1)
                    member.resend_cut += hi - lo + 1 - allowed
                    hi = lo + allowed - 1
                out += [Delivery(room.history[s - oldest][0], (member,)) for s in range(lo, hi + 1)]
                left -= max(0, hi - lo + 1)
                if left <= 0:
                    break
            return out

    def leave(self, member: Member) -> list[Delivery]:
        with self._lock:
            if not self._is_current(member):
                return []
            if member.is_host:
                return self._close(member.room, "host_left", exclude=member)
            announced = not member.provisional
            self._remove(member)
            if not announced:
                return []  # never announced: nothing to tell
            return [self._post(member.room, SystemEvent, event="left", user=member.username,
                               text=f"{member.username} left")]

    # --- time and shutdown -------------------------------------------------------------------

    def reap(self, now: float | None = None) -> list[Delivery]:
        """Remove every member inactive for longer than the timeout; a host's timeout closes its room.

        The timed-out member gets ``kicked``, its room a ``timeout`` event; if it hosted the room,
        every other member gets ``room_closed``/``host_timeout`` instead. A provisional session
        older than ``hello_timeout`` is removed without a word (it was never announced, and it never
        proved an address); a provisional host takes its room with it.
        """
        now = self.clock() if now is None else now
        deliveries: list[Delivery] = []
        with self._lock:
            for member in [m for m in self._sessions.values() if m.held]:
                deliveries += self._release(member, now)
            hello_timeout = self.limits.hello_timeout
            unheard = [m for m in self._sessions.values() if m.provisional and now - m.last_activity > hello_timeout]
            for member in sorted(unheard, key=lambda m: not m.is_host):
                if not self._is_current(member):
                    continue
                if member.is_host:
                    deliveries += self._close(member.room, "host_timeout", exclude=member)
                else:
                    self._remove(member)
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

    def close_room(self, name: str, reason: str = "closed_by_operator") -> list[Delivery]:
        """The server's operator closes room ``name`` (§7): every member gets ``room_closed``.
        Raises KeyError if there is no such room."""
        with self._lock:
            room = self._rooms.get(name)
            if room is None:
                raise KeyError(name)
            return self._close(room, reason)

    def remove_member(self, room_name: str, username: str) -> list[Delivery]:
        """The server's operator removes a member (§7): it gets ``kicked``/``removed_by_operator``, the
        room a ``removed`` event; removing the host closes the room (``closed_by_operator``), as its
        leaving would. Raises KeyError if there is no such room or member."""
        with self._lock:
            room = self._rooms.get(room_name)
            member = room.members.get(username) if room is not None else None
            if member is None or room is None:
                raise KeyError(f"{username} in {room_name}")
            deliveries = [Delivery(Kicked(reason="removed_by_operator"), (member,))]
            if member.is_host:
                return deliveries + self._close(room, "closed_by_operator", exclude=member)
            announced = not member.provisional
            self._remove(member)
            if announced:
                deliveries.append(self._post(room, SystemEvent, event="removed", user=username,
                                             text=f"{username} was removed by the server's operator"))
            return deliveries

    def close_all(self, reason: str = "server_shutdown") -> list[Delivery]:
        with self._lock:
            return [d for room in list(self._rooms.values()) for d in self._close(room, reason)]

    # --- internals (lock held) ---------------------------------------------------------------

    def _is_current(self, member: Member) -> bool:
        return self._sessions.get(member.token) is member

    def _post(self, room: Room, kind: type[Payload], **fields: Any) -> Delivery:
        """Number a room message, keep it in the history (bounded), address it to every member."""
        room.seq += 1
        payload = kind(seq=room.seq, **fields)
        if kind is SystemEvent:
            log.info("[%s] %s", room.name, fields["text"])
        size = len(payload.encode())
        room.history.append((payload, size))
        room.history_bytes += size
        self._history_bytes += size
        while room.history and (len(room.history) > room.history_size or room.history_bytes > self.limits.history_bytes):
            self._forget_oldest(room)
        if self._history_bytes > self.limits.server_history_bytes:
            self._trim_server_history(room)
        return Delivery(payload, tuple(room.members.values()))

    def _forget_oldest(self, room: Room) -> None:
        _, size = room.history.popleft()
        room.history_bytes -= size
        self._history_bytes -= size

    def _trim_server_history(self, posting: Room) -> None:
        """Over the server's history budget: the posting room gives up its oldest messages while it
        holds more than an equal share, then the room with the most history does."""
        share = self.limits.server_history_bytes // max(1, len(self._rooms))
        while self._history_bytes > self.limits.server_history_bytes:
            room = posting if posting.history_bytes > share else max(self._rooms.values(), key=lambda r: r.history_bytes)
            if not room.history:
                return
            self._forget_oldest(room)

    def _remove(self, member: Member) -> None:
        room = member.room
        room.members.pop(member.username, None)
        for key in clash_keys(member.username):
            room.look_alikes.pop(key, None)
        if self._sessions.pop(member.token, None) is not None and member.provisional:
            self._heard(member)

    def _heard(self, member: Member) -> None:
        """``member`` is no longer provisional (it said hello, or it is gone)."""
        member.provisional = False
        self._provisional_by[member.source] -= 1
        if not self._provisional_by[member.source]:
            del self._provisional_by[member.source]

    def _close(self, room: Room, reason: str, exclude: Member | None = None) -> list[Delivery]:
        members = tuple(room.members.values())
        for member in members:
            self._remove(member)
        log.info("[%s] room closed (%s)", room.name, reason)
        if self._rooms.get(room.name) is room:
            del self._rooms[room.name]
            for key in clash_keys(room.name):
                self._room_look_alikes.pop(key, None)
            self._rooms_by[room.creator] -= 1
            if not self._rooms_by[room.creator]:
                del self._rooms_by[room.creator]
            while room.history:
                self._forget_oldest(room)
        told = tuple(m for m in members if m is not exclude)   # the shell skips those without an address
        return [Delivery(RoomClosed(reason=reason), told)] if told else []
