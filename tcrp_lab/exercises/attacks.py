"""Lesson 08 exercise: forge "pay 900" out of a captured "pay 100", against a live TCRP/1 server.

The learner writes::

    forge(captured: bytes, sent: str, wanted: str) -> bytes

``captured`` is a datagram a member sent, held back by a man-in-the-middle relay; ``sent`` is its
text (an attacker often knows it, or guesses it: "pay 100"), ``wanted`` the text the attacker wants
delivered instead: as long in UTF-8 bytes, and different only within the message's last 16-byte
block, where AES-CFB garbles nothing else. :func:`check_forgery` starts a legacy server of its own
for each case, with the sender behind a :class:`~tcrp_lab.attacks.UdpRelay` and a victim, sends the
forged datagram on as if from the sender, and judges by what the victim's client received — never
by the bytes the learner returned.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from ..attacks import C2S, UdpRelay
from ..crypto import SeededRandom, ServerKey
from ..legacy import LegacyClient, LegacyProfile
from .common import Case, CheckResult, check, show

__all__ = ["check_forgery"]

WAIT = 1.0   #: seconds the victim is given to receive the forgery

TODO = ("Write `forge(captured, sent, wanted)`: return the captured datagram (bytes) with its ciphertext "
        "changed so that it decrypts to `wanted` instead of `sent`. The ciphertext starts after "
        "2 + RoomNameSize + TokenSize bytes; flipping a ciphertext bit flips the same plaintext bit.")

_BYTES = ("`sent` and `wanted` are text: work with their UTF-8 bytes (`.encode()`), and return the whole "
          "datagram as bytes")

#: (room, sender, what the sender types, what the attacker wants instead, what the case is about)
CASES = [
    ("lab", "alice", "pay 100", "pay 900", "the lesson's example"),
    ("accounts-payable", "alice", "pay 100", "pay 900",
     "a longer room name, so the ciphertext starts later"),
    ("lab", "carol", "please pay bob 250 today", "please pay eve 950 today",
     "two changes, both in the message's second (last) block"),
    ("lab", "ケンジ", "支払い 100 円", "支払い 900 円",   # an ASCII room: a non-ASCII one stops the relay (§6)
     "a non-ASCII name and text: offsets count bytes, not characters"),
]


@dataclass(frozen=True)
class Received:
    """What the victim's client received from the forgery (``text``), or why nothing (``why``)."""

    text: str | None
    why: str = ""

    def __repr__(self) -> str:
        return repr(self.text) if self.text is not None else f"nothing ({self.why})"


@dataclass(frozen=True)
class _Outcome:
    received: Received
    captured: bytes
    forged: Any
    sent: str
    wanted: str
    stopped_by: str | None


class _HoldNext:
    """A relay ``drop`` hook: holds back the first datagram ``match`` accepts, and only that one."""

    def __init__(self, match: Callable[[Any], bool]):
        self.match, self.held = match, None

    def __call__(self, packet: Any) -> bool:
        if self.held is None and self.match(packet):
            self.held = packet
            return True
        return False


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The checker's own legacy servers: no INSECURE banner, no relay-stopped error in the learner's cell."""
    logger = logging.getLogger("tcrp_lab.legacy")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def _wait(condition: Callable[[], Any], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := condition()) and time.monotonic() < deadline:
        time.sleep(0.005)
    return value


def _attempt(forge: Callable[[bytes, str, str], Any], number: int, wait: float) -> _Outcome:
    """One live run: a legacy server, the sender behind a relay, the victim; the forgery goes on; what arrives."""
    from .. import ChatServer   # the server shell imports the profiles; a late import keeps this module light

    room, user, text, instead, _ = CASES[number]
    sent, wanted = f"{user}: {text}", f"{user}: {instead}"
    rng = SeededRandom(f"tcrp_lab exercise 08 forgery {number}")
    server = ChatServer("127.0.0.1", 0, 0, key=_demo_key(), rng=rng, profile=LegacyProfile)
    server.profile.per_connection_key = False   # the demo key on every connection: no RSA key to make
    server.start()
    ends: list[Callable[[], None]] = []
    try:
        relay = UdpRelay(server.address)
        ends.append(relay.stop)
        sender = LegacyClient.create_room(server.address, room, user, "pw", rng=rng, udp_via=relay.address)
        ends.append(sender.close)
        sender.wait_for_messages(1, timeout=5)   # the server has the sender's address
        victim = LegacyClient.join_room(server.address, room, "bob", "pw", rng=rng)
        ends.append(victim.close)
        victim.wait_for_messages(1, timeout=5)
        before, profile = len(victim.messages), server.profile
        at = sender.sock.getsockname()
        relay.drop = hold = _HoldNext(lambda p: p.direction == C2S and p.client == at)
        sender.send(text)
        if not _wait(lambda: hold.held, 5):
            raise TimeoutError("the relay did not capture the sender's datagram")   # the checker's fault
        mark = (profile.relayed_after() or [None])[-1]

        def relayed() -> list[Any]:   # what the server relayed for the sender since the capture
            return [r for r in profile.relayed_after(mark.index if mark else 0) if r.user == user]

        forged = forge(hold.held.data, sent, wanted)   # the learner's code
        if not isinstance(forged, (bytes, bytearray)):
            got = Received(None, f"not sent: forge returned {type(forged).__name__}, not the datagram's bytes")
            return _Outcome(got, hold.held.data, forged, sent, wanted, None)
        relay.inject(bytes(forged), hold.held.client)
        _wait(lambda: len(victim.messages) > before or profile.stopped_by
              or any("bob" not in r.to for r in relayed()), wait)
        records = relayed()
        if len(victim.messages) > before:
            got = Received(victim.messages[before])
        elif profile.stopped_by:
            got = Received(None, f"the server's relay stopped at it: {profile.stopped_by}")
        elif records:
            got = Received(None, f"the server relayed it to the room {records[0].room!r}, which bob is not in")
        else:
            got = Received(None, f"the server relayed nothing within {wait:g} s")
        return _Outcome(got, hold.held.data, forged, sent, wanted, profile.stopped_by)
    finally:
        _all_at_once(ends)   # each waits up to 0.2 s for its thread: in parallel, not one after another
        server.stop()


def _all_at_once(calls: list[Callable[[], None]]) -> None:
    threads = [threading.Thread(target=call, name="check-forgery-close", daemon=True) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)


@functools.lru_cache(maxsize=1)
def _demo_key() -> ServerKey:
    return ServerKey.demo()


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b))


def _diagnosis(outcome: _Outcome) -> str:
    """The likely mistake, read from what the victim received and what the server did."""
    got, captured, forged = outcome.received, outcome.captured, outcome.forged
    body_at = 2 + captured[0] + captured[1]
    sent, wanted = outcome.sent.encode(), outcome.wanted.encode()
    if not isinstance(forged, (bytes, bytearray)):
        return "return the forged datagram itself, as bytes: the captured bytes with some ciphertext bits flipped"
    if len(forged) != len(captured):
        return (f"the forgery is {len(forged)} bytes, the captured datagram {len(captured)}: flipping bits changes "
                "no lengths, so return a datagram exactly as long as the captured one")
    if forged[:body_at] != captured[:body_at]:
        where = "token" if forged[2 + captured[0]:body_at] != captured[2 + captured[0]:body_at] else "room name"
        return (f"your changes hit the header ({where}): the message's ciphertext starts after the two size bytes, "
                f"the room name and the token, at byte 2 + RoomNameSize + TokenSize = {body_at} here"
                + (". And, as in the original, that one bad datagram stopped the relay for every room"
                   if outcome.stopped_by else ""))
    if got.text == outcome.sent:
        return "bob received the original text: nothing changed in the message's bits (did you XOR sent with itself?)"
    flips = _xor(forged[body_at:], captured[body_at:])
    wanted_flips = _xor(sent, wanted)
    first = next((i for i, b in enumerate(wanted_flips) if b), 0)
    placed = next((i for i, b in enumerate(flips) if b), None)
    if placed is not None and placed != first and flips[placed:placed + 1] == wanted_flips[first:first + 1]:
        shift = placed - first
        return (f"your flip landed {abs(shift)} byte{'s' if abs(shift) > 1 else ''} too "
                f"{'late' if shift > 0 else 'early'}: count offsets in bytes of the UTF-8 message, from the "
                "first byte of the ciphertext")
    if got.text is not None and "\ufffd" in got.text:
        return ("part of the message came out garbled: a flip outside the last block also changes the NEXT block "
                "(its keystream is AES of this block's ciphertext); flip exactly the bits of sent ⊕ wanted")
    return ("each flipped ciphertext bit flips the same plaintext bit: XOR the ciphertext with sent ⊕ wanted "
            "(as UTF-8 bytes), from the first byte of the ciphertext")


def check_forgery(forge: Callable[[bytes, str, str], Any], *, wait: float = WAIT) -> CheckResult:
    """Carry out ``forge`` against a fresh legacy server per case and judge by what the victim received.

    Each case: the sender types a payment, the relay holds that datagram back and hands it to
    ``forge(captured, sent, wanted)``; what forge returns goes on to the server as if from the
    sender. The case passes when the victim's client received exactly ``wanted``.
    """
    title = "forge"
    if not callable(forge):
        return CheckResult.failure(title, f"check_forgery needs your function, got {show(forge)}",
                                   "pass the function itself: check_forgery(forge)")
    outcomes: dict[str, _Outcome] = {}
    cases = []
    for number, (room, user, text, instead, about) in enumerate(CASES):
        where = f"{user} types {text!r} in room {room!r}, you want {instead!r} ({about})"

        def run(number: int = number, where: str = where) -> Received:
            outcomes[where] = _attempt(forge, number, wait)
            return outcomes[where].received

        cases.append(Case(where, run, Received(f"{user}: {instead}"), _BYTES,
                          compare=lambda got, expected: got == expected))
    with _quiet():
        result = check(title, cases, todo=TODO)
    if result.status == "failed":
        where = next((w for w in outcomes if result.failures[0].startswith(w + ":")), None)
        if where is not None:
            result.hint = _diagnosis(outcomes[where])
    return result
