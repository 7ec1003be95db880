"""Budgets a classroom server keeps, as pure state: token buckets, back-off, and every default.

Sans-IO like :mod:`tcrp_lab.rooms`: each object takes the time as an argument and answers yes or
no; the server shell asks before doing work and counts what it refuses. :class:`Limits` holds
every limit of TCRP.md §8 with its default; each field is also a ``ChatServer`` keyword argument
and a ``python -m tcrp_lab.server`` flag (its metadata carries the flag's help).

The defaults are sized for a classroom of 30 behind one NAT address (one public address for
everyone), for the lessons and for ``python -m tcrp_lab.bench`` on loopback.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Hashable, Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar

__all__ = ["Backoff", "BucketTable", "Limits", "SessionBudget", "TokenBucket"]

K = TypeVar("K", bound=Hashable)


def _limit(default: float | int, help: str, unit: str = "") -> object:
    return field(default=default, metadata={"help": help, "unit": unit})


@dataclass(frozen=True)
class Limits:
    """Every bound the server enforces (TCRP.md §8). A rate of 0 means "no limit" (for benchmarks)."""

    # TCP (§8.1)
    max_connections: int = _limit(512, "TCP connections open at once")
    max_connections_per_address: int = _limit(128, "TCP connections open at once from one IP address")
    max_handshakes_per_address: int = _limit(64, "connections from one IP address still in the key exchange")
    connection_rate: float = _limit(20.0, "new TCP connections per second from one IP address (bursts of 64)", "/s")
    max_key_exchanges: int = _limit(2, "RSA private-key operations (a ServerHello signature, or a ClientKeyExchange decryption) running at once")
    key_exchange_timeout: float = _limit(5.0, "seconds for a client to send its ClientKeyExchange", "s")
    handshake_timeout: float = _limit(10.0, "seconds for the key exchange and the requests of one connection", "s")
    # Rooms and sessions (§8.2)
    max_rooms: int = _limit(1000, "rooms on the server")
    max_rooms_per_address: int = _limit(32, "rooms open at once that were created from one IP address")
    max_members: int = _limit(256, "members in one room")
    max_provisional_per_address: int = _limit(64, "sessions from one IP address that have not said hello yet")
    hello_timeout: float = _limit(10.0, "seconds a new session has to send its first UDP hello", "s")
    history_bytes: int = _limit(1 << 20, "bytes of room messages kept per room for resend", "B")
    server_history_bytes: int = _limit(64 << 20, "bytes of room messages kept on the whole server", "B")
    # Passwords (§8.3)
    max_password_checks: int = _limit(4, "scrypt password checks running at once")
    password_free_tries: int = _limit(3, "wrong passwords from one address for one room before any back-off")
    password_backoff: float = _limit(0.25, "seconds of back-off after the first wrong password past those, doubling", "s")
    password_backoff_max: float = _limit(60.0, "longest back-off after wrong passwords", "s")
    # UDP budgets per session, per second (§8.4); bursts may reach twice the rate
    chat_rate: float = _limit(250.0, "chat datagrams per second from one session", "/s")
    hello_rate: float = _limit(10.0, "hello datagrams per second from one session", "/s")
    ping_rate: float = _limit(10.0, "ping datagrams per second from one session", "/s")
    resend_rate: float = _limit(512.0, "room messages per second sent again to one session", "/s")
    address_rate: float = _limit(5000.0, "authenticated datagrams per second from one IP address", "/s")

    def replace(self, **changes: float | int) -> Limits:
        """A copy with some limits changed; an unknown name is a TypeError that lists the known ones."""
        unknown = set(changes) - set(self.names())
        if unknown:
            raise TypeError(f"unknown limit(s) {', '.join(sorted(unknown))}; the limits are {', '.join(self.names())}")
        for name, value in changes.items():
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name} must be a number >= 0, not {value!r}")
        return dataclasses.replace(self, **changes)

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def describe(cls) -> Iterator[tuple[str, object, str, str]]:
        """``(name, default, help, unit)`` for each limit (the CLI makes its flags from these)."""
        for f in dataclasses.fields(cls):
            yield f.name, f.default, f.metadata["help"], f.metadata["unit"]


class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` saved up; ``take(now)`` spends one if there is one.

    A rate of 0 never refuses. Time comes in as an argument, so a test moves a number.
    """

    __slots__ = ("rate", "burst", "tokens", "stamp")

    def __init__(self, rate: float, burst: float | None = None, now: float = 0.0):
        self.rate = rate
        self.burst = burst if burst is not None else max(2 * rate, 1.0)
        self.tokens = self.burst
        self.stamp = now

    def take(self, now: float, n: float = 1.0) -> bool:
        if not self.rate:
            return True
        self._refill(now)
        if self.tokens < n:
            return False
        self.tokens -= n
        return True

    def take_up_to(self, now: float, n: int) -> int:
        """Spend as many whole tokens as there are, up to ``n``; return how many."""
        if not self.rate:
            return n
        self._refill(now)
        got = min(n, int(self.tokens))
        self.tokens -= got
        return got

    def _refill(self, now: float) -> None:
        if now > self.stamp:  # a clock that steps back (tests) never takes tokens away
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now


class BucketTable(Generic[K]):
    """A token bucket per key (a source address), the least recently used forgotten past ``max_keys``.

    Forgetting a key gives it a full bucket again; the table stays bounded whatever the traffic.
    """

    def __init__(self, rate: float, burst: float | None = None, max_keys: int = 4096):
        self.rate, self.burst, self.max_keys = rate, burst, max_keys
        self._buckets: OrderedDict[K, TokenBucket] = OrderedDict()

    def take(self, key: K, now: float, n: float = 1.0) -> bool:
        if not self.rate:
            return True
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(self.rate, self.burst, now)
            if len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        return bucket.take(now, n)

    def __len__(self) -> int:
        return len(self._buckets)


@dataclass
class _Attempts:
    failures: int = 0
    not_before: float = 0.0
    last: float = 0.0
    busy: bool = False


class Backoff(Generic[K]):
    """Exponential back-off after failures, per key: ``(source address, room)`` for passwords.

    The first ``free`` failures cost nothing (a typo, or two); after the k-th failure past those
    the next try waits ``base * 2**(k-1)`` seconds (at most ``maximum``). One try at a time per key,
    so parallel guesses cannot slip through together. A success, or ``forget_after`` seconds
    without a try, clears the key. Bounded in keys.
    """

    def __init__(self, base: float, maximum: float, *, free: int = 0, forget_after: float = 600.0,
                 max_keys: int = 4096):
        self.base, self.maximum, self.free = base, maximum, free
        self.forget_after, self.max_keys = forget_after, max_keys
        self._keys: OrderedDict[K, _Attempts] = OrderedDict()

    def begin(self, key: K, now: float) -> float:
        """Start a try: 0.0 if it may go ahead (and it is now in progress), else the seconds to wait."""
        entry = self._keys.get(key)
        if entry is not None and now - entry.last > self.forget_after and not entry.busy:
            entry = None
            del self._keys[key]
        if entry is None:
            entry = self._keys[key] = _Attempts()
            if len(self._keys) > self.max_keys:
                self._evict()
        self._keys.move_to_end(key)
        if entry.busy:
            return max(self.base, 0.1)
        if now < entry.not_before:
            return entry.not_before - now
        entry.busy, entry.last = True, now
        return 0.0

    def end(self, key: K, now: float, *, ok: bool | None) -> None:
        """Finish the try started by :meth:`begin`: a success clears the key, a failure backs off,
        None (the try could not be made: the server was busy) changes nothing."""
        entry = self._keys.get(key)
        if entry is None:
            return
        entry.busy, entry.last = False, now
        if ok:
            del self._keys[key]
            return
        if ok is None:
            return
        entry.failures += 1
        past = entry.failures - self.free
        entry.not_before = now + min(self.base * 2 ** (past - 1), self.maximum) if past > 0 and self.base else now

    def failures(self, key: K) -> int:
        entry = self._keys.get(key)
        return entry.failures if entry else 0

    def _evict(self) -> None:
        for key, entry in self._keys.items():  # oldest first; a try in progress stays
            if not entry.busy:
                del self._keys[key]
                return


class SessionBudget:
    """The per-session datagram budgets of TCRP.md §8.4: chat, hello, ping, and resent messages."""

    __slots__ = ("chat", "hello", "ping", "resend")

    def __init__(self, limits: Limits, now: float):
        self.chat = TokenBucket(limits.chat_rate, None, now)
        self.hello = TokenBucket(limits.hello_rate, None, now)
        self.ping = TokenBucket(limits.ping_rate, None, now)
        self.resend = TokenBucket(limits.resend_rate, None, now)

