"""One member's side of TCRP/2 over UDP (TCRP.md §4), as a pure state machine. No sockets, no threads.

:class:`MemberSession` is to the client what :class:`~tcrp_lab.rooms.RoomRegistry` is to the
server: payloads and the time go in, the payloads to send and what happened come out. It keeps
room messages in order without duplicates (asking ``resend`` for gaps), retransmits ``hello``
until welcomed and each ``chat`` until acknowledged, answers path challenges, and pings. Every
retry is bounded: a chat is sent at most ``max_tries`` times, a gap is asked for at most
``MAX_GAP_TRIES`` times, then the session gives up and says so with a :class:`RoomEvent`
(``undelivered``, ``missed``). The shell (:class:`tcrp_lab.client.ChatClient`) seals, sends,
receives and calls back; loss, reordering and timers are tested here without a socket::

    session = MemberSession("lab", "alice", now=0.0)
    out = session.start(0.0)                  # [Hello()]
    out, items = session.receive(Welcome(seq=0), 0.01)
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass
from typing import Any

from .protocol import (
    MAX_RANGES, Ack, Challenge, Chat, Hello, Kicked, Leave, Payload, Ping, Pong, Refused, Resend, Response,
    RoomChat, RoomClosed, SystemEvent, Welcome,
)

__all__ = ["ChatMessage", "MemberSession", "MemberState", "RetransmitTimer", "RoomEvent", "Strategy"]

RETRANSMIT_INITIAL = 0.15     #: seconds before the first retransmission, before any RTT is measured
RETRANSMIT_MIN = 0.05         #: floor of the adaptive retransmission timeout
RETRANSMIT_MAX = 1.0          #: retransmission back-off ceiling
MAX_TRIES = 16                #: transmissions of one chat (or hello) before giving up (§4.4), ~14 s
MAX_GAP_TRIES = 16            #: resend requests for the same gap before skipping it (§4.4)
PING_INTERVAL = 2.0           #: keep-alive when nothing happens
TAIL_CHECK = 0.3              #: ping this soon after room traffic, to notice a lost last message
RESEND_BATCH = 64             #: room messages asked for in one resend
SEND_WINDOW = 32              #: chats in flight before send() queues (the server holds back at most 64)
GAP_GRACE = 0.05              #: a gap may be reordering: wait this long before asking resend
LOG_LIMIT = 10_000            #: messages, events and log entries a session keeps (the oldest go first)
REORDER_MIN = 0.002           #: RACK's reordering window floor (RFC 8985 §6.2), seconds


class Strategy(str, enum.Enum):
    """How a member recovers loss (TCRP.md §4.5; measured side by side in README "Loss recovery").

    ``go-back-n``: ask ``resend`` for everything from the first gap, and count a chat delivered only
    when its own ack comes (a lost ack means a retransmission). ``selective``: ask only for the
    missing ranges, take ``upto``/``sack`` and held acks as delivery (RFC 6675's scoreboard), and
    retransmit a chat at once when one sent after it is acknowledged (RFC 8985's RACK) instead of
    waiting for its timer.
    """

    GO_BACK_N = "go-back-n"
    SELECTIVE = "selective"

    def __str__(self) -> str:
        return self.value


class MemberState(str, enum.Enum):
    """Where a membership is (TCRP.md §4): ``joining`` until the first welcome (§4.1), then
    ``joined``, then one end: ``left`` (we sent leave), ``kicked`` or ``room_closed`` (the server
    said so, §4.4), ``closed`` (our socket closed). A str, so ``state == "joined"`` reads naturally."""

    JOINING = "joining"
    JOINED = "joined"
    LEFT = "left"
    KICKED = "kicked"
    ROOM_CLOSED = "room_closed"
    CLOSED = "closed"

    def __str__(self) -> str:
        return self.value

    @property
    def active(self) -> bool:
        return self in (MemberState.JOINING, MemberState.JOINED)


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

    ``kind`` is ``joined``, ``left`` or ``timeout`` (room events, numbered by ``seq``);
    ``room_closed`` / ``kicked`` (the end of our membership, with ``reason``); or, for our own
    messages, ``refused`` (the server will not post chat ``chat_id``: ``reason`` is its code, ``text``
    says why), ``undelivered`` (no answer after every try) and ``missed`` (room messages we could
    not get back, ``text`` says which).
    """

    kind: str
    text: str
    user: str | None = None
    seq: int | None = None
    reason: str | None = None
    chat_id: int | None = None


class RetransmitTimer:
    """The retransmission timeout of RFC 6298: smoothed RTT plus four deviations, clamped.

    Only the oldest chat in flight, acknowledged without a retransmission, gives a sample: the ack
    of a retransmitted chat could answer either copy (Karn's algorithm), and a later chat may have
    waited at the server behind a lost one. RFC 6298 starts at 1 s with a 1 s floor and a ceiling of
    at least 60 s, for the Internet; a classroom chat on a LAN has RTTs of milliseconds, hence
    0.15 s, 50 ms and 1 s here (TCRP.md §7).
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


class BoundedLog(list):
    """A list that keeps its last ``limit`` items: appending past the limit forgets the oldest tenth.

    It stays a list (index, slice, iterate) so code written for an unbounded log keeps working; it
    never holds more than ``limit + limit // 10`` items.
    """

    def __init__(self, limit: int = LOG_LIMIT):
        super().__init__()
        if limit < 1:
            raise ValueError(f"a log limit must be at least 1, not {limit!r}")
        self.limit = limit

    def append(self, item: Any) -> None:
        super().append(item)
        if len(self) > self.limit + self.limit // 10:
            del self[: len(self) - self.limit]


@dataclass
class _InFlight:
    """A chat sent and not yet acknowledged."""

    chat: Chat
    sent_at: float       # first transmission: RTT samples
    retry_at: float
    delay: float
    tries: int = 1
    last_sent: float = 0.0   # latest transmission: RACK compares it with what was delivered
    held: bool = False       # the server has it, held behind an earlier id (§4.5): still in the window

    @property
    def retransmitted(self) -> bool:
        return self.tries > 1


Items = list[Any]   # ChatMessage | RoomEvent, in the order they happened


class MemberSession:
    """A member's protocol state. Not thread-safe: the shell calls it under one lock.

    Every method that may cause traffic returns the payloads to send, in order; ``receive`` and
    ``poll`` also return the new :class:`ChatMessage` / :class:`RoomEvent` items (for callbacks).
    ``history`` earlier room messages are asked for at the welcome.
    """

    def __init__(self, room: str, username: str, *, is_host: bool = False, members: list[str] | None = None,
                 history: int = 0, now: float = 0.0, ping_interval: float = PING_INTERVAL,
                 max_tries: int = MAX_TRIES, log_limit: int = LOG_LIMIT,
                 strategy: Strategy | str = Strategy.SELECTIVE):
        if max_tries < 1:
            raise ValueError(f"max_tries must be at least 1, not {max_tries!r}")
        try:
            self.strategy = Strategy(strategy)
        except ValueError:
            raise ValueError(f"strategy must be 'selective' or 'go-back-n', not {strategy!r}") from None
        self.room, self.username, self.is_host = room, username, is_host
        self.members: list[str] = list(members or [])
        self.history = history
        self.ping_interval = ping_interval
        self.max_tries = max_tries
        self.state = MemberState.JOINING
        self.messages: BoundedLog = BoundedLog(log_limit)
        self.events: BoundedLog = BoundedLog(log_limit)
        self.log: BoundedLog = BoundedLog(log_limit)
        self.message_count = 0                       # chat messages ever delivered (the log forgets)
        self.stats = {"sent": 0, "received": 0, "retransmits": 0, "resend_requests": 0, "dropped": 0,
                      "refused": 0, "undelivered": 0, "missed": 0}
        self.rto = RetransmitTimer()
        self._next_id = 1
        self._pending: dict[int, _InFlight] = {}     # chat id -> a chat awaiting its ack
        self._outbox: deque[Chat] = deque()          # chats waiting for room in the send window
        self._next_seq: int | None = None            # the room seq we deliver next (None before welcome)
        self._buffer: dict[int, Payload] = {}        # room messages that arrived ahead of a gap
        self._highest = 0                            # highest room seq we know exists
        self._resend_at = 0.0                        # when to ask resend for the current gap (0: no gap)
        self._gap: tuple[int, int] = (0, 0)          # (first missing seq, resend requests for it)
        self._hello_at, self._hello_delay, self._hello_tries = now, RETRANSMIT_INITIAL, 0
        self._delivered_sent = float("-inf")         # RACK: latest send time of a chat known delivered
        self._ping_at = now + ping_interval

    # --- what the shell calls ---------------------------------------------------------------------

    def start(self, now: float) -> list[Payload]:
        """The first ``hello``."""
        return self._hello(now)

    def send(self, text: str, now: float) -> tuple[int, list[Payload]]:
        """A chat of ours: its id, and what to send now (nothing if the send window is full)."""
        if not self.state.active:
            raise RuntimeError(f"cannot send: this session is {self.state}")
        chat = Chat(id=self._next_id, text=text)
        self._next_id += 1
        if len(self._pending) >= SEND_WINDOW:  # sent from poll() as acks free the window
            self._outbox.append(chat)
            return chat.id, []
        self._pending[chat.id] = self._in_flight(chat, now)
        return chat.id, [chat]

    def leave(self) -> list[Payload]:
        """Leave the room (a host leaving closes it): the ``leave`` to send, if we were in it."""
        active = self.state.active
        self._finish(MemberState.LEFT, None)
        return [Leave()] if active else []

    def close(self) -> None:
        if self.state.active:
            self.state = MemberState.CLOSED

    @property
    def unacknowledged(self) -> int:
        """Chats sent or queued that the server has not acknowledged (nor refused) yet."""
        return len(self._pending) + len(self._outbox)

    def receive(self, payload: Payload, now: float) -> tuple[list[Payload], Items]:
        """A payload from the server: what to send in answer, and what happened."""
        self.stats["received"] += 1
        out: list[Payload] = []
        items: Items = []
        if isinstance(payload, (RoomChat, SystemEvent)):
            items = self._room_message(payload, now)
        elif isinstance(payload, Ack):
            self._acked(payload, now)
        elif isinstance(payload, Refused):
            items = self._refused(payload)
        elif isinstance(payload, Welcome):
            self._highest = max(self._highest, payload.seq)
            if self.state is MemberState.JOINING:
                items = self._welcomed(payload.seq)
        elif isinstance(payload, Challenge):
            out.append(Response(payload.data))   # §4.2: prove we receive here; one answer per challenge
        elif isinstance(payload, Pong):
            self._highest = max(self._highest, payload.seq)
        elif isinstance(payload, (RoomClosed, Kicked)):
            state = MemberState.ROOM_CLOSED if isinstance(payload, RoomClosed) else MemberState.KICKED
            items = self._finish(state, payload.reason)
        if self._has_gap() and not self._resend_at:  # a gap may be reordering: give it GAP_GRACE
            self._resend_at = now + GAP_GRACE
        return out, items

    def poll(self, now: float) -> tuple[list[Payload], Items]:
        """Timers: retransmissions, resend, ping, and what we gave up on."""
        out: list[Payload] = []
        items: Items = []
        if not self.state.active:
            return out, items
        if self.state is MemberState.JOINING and now >= self._hello_at and self._hello_tries < self.max_tries:
            out += self._hello(now)
        while self._outbox and len(self._pending) < SEND_WINDOW:
            chat = self._outbox.popleft()
            self._pending[chat.id] = self._in_flight(chat, now)
            out.append(chat)
        for chat_id, entry in list(self._pending.items()):
            if self._lost_by_rack(entry):   # a chat sent after it arrived: do not wait for the timer
                entry.retry_at = now
            if now < entry.retry_at:
                continue
            if entry.tries >= self.max_tries:
                del self._pending[chat_id]
                self.stats["undelivered"] += 1
                items.append(self._event("undelivered", f"your message {chat_id} was not delivered: no answer from "
                                         f"the server after {entry.tries} tries", chat_id=chat_id))
                continue
            if not self._lost_by_rack(entry):
                entry.delay = min(entry.delay * 2, RETRANSMIT_MAX)  # a timeout: exponential back-off
            entry.retry_at = now + (RETRANSMIT_MAX if entry.held else entry.delay)   # held: only lost acks
            entry.last_sent = now
            entry.tries += 1
            self.stats["retransmits"] += 1
            out.append(entry.chat)
        items += self._gaps(now, out)
        if now >= self._ping_at:
            self._ping_at = now + self.ping_interval
            out.append(Ping())
        return out, items

    def next_deadline(self, now: float) -> float:
        """When :meth:`poll` has something to do next."""
        times = [self._ping_at] + [p.retry_at for p in self._pending.values()]
        if self._outbox and len(self._pending) < SEND_WINDOW:
            times.append(now)
        if self.state is MemberState.JOINING and self._hello_tries < self.max_tries:
            times.append(self._hello_at)
        if self._has_gap():
            times.append(self._resend_at or now)
        return min(times)

    # --- inside -----------------------------------------------------------------------------------

    def _hello(self, now: float) -> list[Payload]:
        if self._hello_tries:
            self._hello_delay = min(self._hello_delay * 2, RETRANSMIT_MAX)
        self._hello_tries += 1
        self._hello_at = now + self._hello_delay
        return [Hello()]

    def _in_flight(self, chat: Chat, now: float) -> _InFlight:
        return _InFlight(chat, now, now + self.rto.rto, self.rto.rto, last_sent=now)

    def _lost_by_rack(self, entry: _InFlight) -> bool:
        """RFC 8985 §6.2: lost if a chat sent after it, by more than the reordering window, arrived."""
        if self.strategy is not Strategy.SELECTIVE or entry.held:
            return False
        window = max((self.rto.srtt or 0.0) / 4, REORDER_MIN)
        return entry.last_sent + window < self._delivered_sent

    def _acked(self, ack: Ack, now: float) -> None:
        selective = self.strategy is Strategy.SELECTIVE
        if ack.seq == 0 and not selective:
            return   # a held ack (§4.5): go-back-N waits for the ack of the post
        oldest = min(self._pending, default=None)
        delivered = []
        if selective:   # §4.5: everything up to upto is posted; the sack ranges (and a held ack) are held
            for chat_id in [i for i in self._pending if i <= ack.upto]:
                delivered.append(self._pending.pop(chat_id))
            held = [e for i, e in self._pending.items()
                    if not e.held and (i == ack.id and not ack.seq or any(a <= i <= b for a, b in ack.sack))]
            for entry in held:   # no retransmission on the RTO: it is there; a long timer, in case acks die
                entry.held, entry.retry_at = True, now + RETRANSMIT_MAX
            delivered += held
        sent = self._pending.pop(ack.id, None) if ack.seq else None
        delivered += [sent] if sent is not None else []
        if sent is not None and not sent.retransmitted and ack.id == oldest and ack.seq:
            self.rto.sample(now - sent.sent_at)   # Karn: a first transmission's own ack, not held
        if delivered:
            self._delivered_sent = max(self._delivered_sent, *(d.last_sent for d in delivered))
            for other in self._pending.values():  # progress: restart the timers (as TCP does),
                other.retry_at = max(other.retry_at, now + self.rto.rto)  # others may be held back
        self._highest = max(self._highest, ack.seq)
        self._soon(now)

    def _refused(self, refused: Refused) -> Items:
        if self._pending.pop(refused.id, None) is None:
            return []   # a second copy, or not ours
        self.stats["refused"] += 1
        return [self._event("refused", f"the server refused your message {refused.id}: {refused.message}",
                            reason=refused.code, chat_id=refused.id)]

    def _welcomed(self, seq: int) -> Items:
        """First welcome: we are in. Deliver from our first buffered message, or after ``seq``."""
        self.state = MemberState.JOINED
        first = min([seq + 1 - self.history, *self._buffer])
        self._next_seq = max(first, 1)
        self._buffer = {s: p for s, p in self._buffer.items() if s >= self._next_seq}
        return self._deliver_ready()

    def _room_message(self, payload: RoomChat | SystemEvent, now: float) -> Items:
        self._highest = max(self._highest, payload.seq)
        self._soon(now)
        if self._next_seq is None or payload.seq >= self._next_seq:
            self._buffer.setdefault(payload.seq, payload)
        return self._deliver_ready() if self._next_seq is not None else []

    def _deliver_ready(self) -> Items:
        """Move consecutive buffered room messages to the log; return them."""
        items: Items = []
        assert self._next_seq is not None
        while self._next_seq in self._buffer:
            payload = self._buffer.pop(self._next_seq)
            self._next_seq += 1
            item: ChatMessage | RoomEvent
            if isinstance(payload, RoomChat):
                item = ChatMessage(payload.seq, payload.sender, payload.text, payload.ts,
                                   mine=payload.sender == self.username)
                self.messages.append(item)
                self.message_count += 1
            else:
                assert isinstance(payload, SystemEvent)
                item = RoomEvent(payload.event, payload.text, payload.user, payload.seq)
                self._track_members(item)
                self.events.append(item)
            self.log.append(item)
            items.append(item)
        return items

    def _track_members(self, event: RoomEvent) -> None:
        if event.kind == "joined" and event.user not in self.members:
            self.members.append(event.user)  # type: ignore[arg-type]
        elif event.kind in ("left", "timeout", "removed") and event.user in self.members:   # §4, §7
            self.members.remove(event.user)  # type: ignore[arg-type]

    def _finish(self, state: MemberState, reason: str | None) -> Items:
        """Our membership ended."""
        if not self.state.active:
            return []
        self.state = state
        self._pending.clear()
        self._outbox.clear()
        if state is MemberState.LEFT:
            return []
        text = {MemberState.ROOM_CLOSED: f"the room was closed ({reason})",
                MemberState.KICKED: f"you were removed ({reason})"}[state]
        return [self._event(str(state), text, reason=reason)]

    def _event(self, kind: str, text: str, **fields: Any) -> RoomEvent:
        event = RoomEvent(kind, text, **fields)
        self.events.append(event)
        self.log.append(event)
        return event

    def _resend(self, first: int) -> Resend:
        """Go-back-N: everything from the first gap. Selective: only the missing ranges (§4.5)."""
        if self.strategy is Strategy.GO_BACK_N:
            return Resend(first, min(self._highest, first + RESEND_BATCH - 1))
        ranges: list[tuple[int, int]] = []
        asked, seq = 0, first
        while seq <= self._highest and asked < RESEND_BATCH and len(ranges) < MAX_RANGES:
            if seq in self._buffer:
                seq += 1
                continue
            if ranges and ranges[-1][1] == seq - 1:
                ranges[-1] = (ranges[-1][0], seq)
            else:
                ranges.append((seq, seq))
            asked += 1
            seq += 1
        return Resend(ranges[0][0], ranges[0][1], tuple(ranges) if len(ranges) > 1 else ())

    def _has_gap(self) -> bool:
        return self._next_seq is not None and self._highest >= self._next_seq

    def _soon(self, now: float) -> None:
        """Room traffic: check for a lost tail with a ping soon."""
        self._ping_at = min(self._ping_at, now + TAIL_CHECK)

    def _gaps(self, now: float, out: list[Payload]) -> Items:
        """Ask ``resend`` from the first gap (go-back-N, at most RESEND_BATCH), MAX_GAP_TRIES times;
        then skip what never came and say so."""
        if not self._has_gap():
            self._resend_at = 0.0
            return []
        if not self._resend_at:
            self._resend_at = now + GAP_GRACE
            return []
        if now < self._resend_at:
            return []
        first = self._next_seq
        assert first is not None
        tries = self._gap[1] + 1 if self._gap[0] == first else 1
        if tries > MAX_GAP_TRIES:
            last = min(self._buffer, default=self._highest + 1) - 1
            self._next_seq = last + 1
            self._gap = (0, 0)
            self._resend_at = 0.0
            self.stats["missed"] += 1
            count = last - first + 1
            missed = self._event("missed", f"{count} room message{'s' * (count != 1)} ({first}-{last}) never came back "
                                 f"after {MAX_GAP_TRIES} resend requests", seq=first)
            return [missed, *self._deliver_ready()]
        self._gap = (first, tries)
        out.append(self._resend(first))
        self._resend_at = now + 2 * self.rto.rto
        self.stats["resend_requests"] += 1
        return []
