"""Lesson 03 exercise: a replay window that records a seq only after its datagram authenticates.

The learner writes a window class (``check(seq) -> bool``: may a datagram with this seq still be
accepted? ``update(seq)``: record it) and ``receive(key, window, data)``: open one datagram
(TCRP.md §4) and return its plaintext, or None to drop it. :func:`check_replay_window` drives a
fresh window per scenario through the real crypto: genuine datagrams sealed by a client's
:class:`~tcrp_lab.crypto.UdpChannel`, replays, late arrivals, a tampered datagram, and forgeries
with high sequence numbers built as :class:`~tcrp_lab.protocol.Datagram` by someone who has no key.
What must be accepted is what the package's own receiving ``UdpChannel`` accepts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..crypto import SeededRandom, SessionKeys, UdpChannel
from ..protocol import Datagram, ProtocolError
from .common import Case, CheckResult, check, show

__all__ = ["RULE", "check_replay_window", "check_v3_keys", "live_v3_session", "scenarios"]

RULE = "a seq is recorded in the replay window only after its datagram authenticates"
TITLE = "Replay window"
TODO = ("Write MyReplayWindow (check(seq): is seq new and less than 64 behind the highest recorded? "
        "update(seq): record it) and receive(key, window, data): Datagram.decode, window.check, "
        "open_sealed with the header as associated data, and only then window.update; return None to drop.")

ROOM = "lab"


@dataclass(frozen=True)
class Sent:
    """One datagram handed to ``receive``: how to name it, its bytes, and what is sealed inside if genuine."""

    label: str
    data: bytes
    plaintext: bytes | None = None   # None for a forged or tampered datagram: nothing may come out of it
    seq: int | None = None           # set for merging consecutive genuine seqs ("seq 0-5") in the report


def _setup() -> tuple[SessionKeys, bytes, list[Sent], SeededRandom]:
    rng = SeededRandom("check_replay_window")
    keys = SessionKeys(*(rng(32) for _ in range(4)))
    token = rng(16)
    alice = UdpChannel.client(ROOM, token, keys)
    texts = [b'{"type":"chat","id":%d,"text":"message %d"}' % (i + 1, i) for i in range(72)]
    genuine = [Sent(f"seq {i}", alice.seal(text), text, i) for i, text in enumerate(texts)]
    return keys, token, genuine, rng


def _forged(token: bytes, seq: int, rng: SeededRandom) -> Sent:
    """What someone without the key can send: the clear header right, random bytes for ciphertext and tag."""
    return Sent(f"forged seq {seq:,}", Datagram(ROOM, token, seq, rng(40), rng(16)).encode())


def _flipped(sent: Sent) -> Sent:
    data = bytearray(sent.data)
    data[-20] ^= 0x01      # one bit of the ciphertext, just before the tag
    return Sent(f"{sent.label} with one bit flipped", bytes(data))


def scenarios() -> list[tuple[str, list[Sent], str]]:
    """(what happens, the datagrams in arrival order, the likely mistake if it goes wrong)."""
    _, token, g, rng = _setup()
    again = [Sent(s.label + " again", s.data, s.plaintext) for s in g]
    late = [Sent(s.label + " (late)", s.data, s.plaintext) for s in g]
    return [
        ("seq 0 to 4, in order", g[0:5],
         "a new window has recorded nothing, so seq 0 is new: start with no seq recorded"),
        ("seq 0 and 1, then seq 1 again (a replay)", [g[0], g[1], again[1]],
         "a seq already recorded must be dropped: check the window before you accept a datagram"),
        ("seq 0, 2 and 3, then seq 1, late but never seen", [g[0], g[2], g[3], late[1]],
         "a window remembers which of the last 64 seqs it has recorded, not only the highest one: "
         "seq 1 is new even though 2 and 3 came first"),
        ("a forged datagram with seq 1,000 (no key: random ciphertext and tag), then seq 0, 1 and 2",
         [_forged(token, 1000, rng), g[0], g[1], g[2]],
         f"a forgery does not authenticate: drop it (return None) without recording its seq, since {RULE}; "
         "recorded, it moves the window to 1,000 and the real datagrams look too old"),
        ("seq 0, then seq 1 tampered with, then the real seq 1", [g[0], _flipped(g[1]), g[1]],
         "open_sealed raises AuthenticationError for a changed datagram: drop it (return None) without recording "
         f"its seq ({RULE}), or the real seq 1 looks like a replay"),
        ("seq 0 to 4, forged datagrams with seq 2**64 - 1 and 60, then seq 5 to 9",
         [*g[0:5], _forged(token, 2**64 - 1, rng), _forged(token, 60, rng), *g[5:10]],
         f"a forger who knows no key must not be able to silence anyone: {RULE}"),
        ("seq 0 to 70 except 6 and 7, then seq 6 (64 behind 70) and seq 7 (63 behind), never seen",
         [*g[0:6], *g[8:71], late[6], late[7]],
         "the window holds the highest seq recorded and the 63 before it: seq 6 is 64 behind 70, too old to "
         "tell from a replay, so drop it; seq 7 is inside and new, so accept it"),
        ("3 bytes that are not a datagram, then seq 0", [Sent("3 stray bytes", b"\x03\x10l"), g[0]],
         "Datagram.decode raises ProtocolError for bytes that are not a datagram: drop them too "
         "(AuthenticationError is a ProtocolError as well)"),
    ]


def _reference(keys: SessionKeys, token: bytes) -> Callable[[bytes], bytes | None]:
    """What the package's own receiving side accepts: decode, then UdpChannel.open (window, then tag)."""
    server = UdpChannel.server(ROOM, token, keys)

    def receive(data: bytes) -> bytes | None:
        try:
            return server.open(Datagram.decode(data))
        except ProtocolError:
            return None

    return receive


def _outcome(got: Any, plaintext: bytes | None) -> str:
    """'dropped' (None), 'accepted' (the datagram's own plaintext), or what else came back."""
    if got is None:
        return "dropped"
    if plaintext is not None and got == plaintext:
        return "accepted"
    return f"returned {show(got, 50)}"


def _report(sent: list[Sent], outcomes: list[str]) -> list[str]:
    """One line per datagram, genuine consecutive seqs with the same outcome merged: 'seq 8-70: accepted'."""
    lines: list[tuple[int | None, int | None, str, str]] = []   # (first seq, last seq, label, outcome)
    for s, outcome in zip(sent, outcomes):
        if lines and s.seq is not None and lines[-1][1] is not None and s.seq == lines[-1][1] + 1 \
                and lines[-1][3] == outcome:
            first, _, label, _ = lines[-1]
            lines[-1] = (first, s.seq, label, outcome)
        else:
            lines.append((s.seq, s.seq, s.label, outcome))
    return [f"seq {a}-{b}: {o}" if a is not None and b != a else f"{label}: {o}" for a, b, label, o in lines]


def _run(window_class: Callable[[], Any], receive: Callable[[bytes, Any, bytes], Any], key: bytes,
         sent: list[Sent]) -> list[str]:
    window = window_class()
    return _report(sent, [_outcome(receive(key, window, s.data), s.plaintext) for s in sent])


def check_replay_window(window_class: Callable[[], Any], receive: Callable[[bytes, Any, bytes], Any]) -> CheckResult:
    """Drive ``receive(key, window_class(), data)`` through each scenario; compare what it accepts.

    ``key`` is the client-to-server UDP key of a session (``udp_c2s``); each scenario gets a fresh
    window. The expected outcome of every datagram comes from the package's receiving UdpChannel.
    """
    if not callable(window_class) or not callable(receive):
        return CheckResult.failure(TITLE, "check_replay_window needs your window class and your receive function",
                                   "call it as check_replay_window(MyReplayWindow, receive)")
    keys, token, _, _ = _setup()
    cases = []
    for description, sent, hint in scenarios():
        reference = _reference(keys, token)
        expected = _report(sent, [_outcome(reference(s.data), s.plaintext) for s in sent])
        cases.append(Case(description, lambda sent=sent: _run(window_class, receive, keys.udp_c2s, sent),
                          expected, hint))
    return check(TITLE, cases, todo=TODO)


# --- Lesson 03, part B: the version 3 session keys, from the trace and your ephemeral key ---------

V3_TITLE = "Version 3 session keys"
V3_TODO = ("Write derive_v3_keys(server_hello_body, client_share, my_private): the server's share is "
           "server_hello_body[21:53] and its nonce [5:21]; shared = X25519(my_private, server share); "
           "transcript = SHA-256(server_hello_body | client_share); then HKDF-SHA-256(shared, salt=nonce, "
           "info=b'tcrp/3 session' | transcript), four 32-byte keys: tcp_c2s, tcp_s2c, udp_c2s, udp_s2c.")
V3_SEEDS = ("check_v3_keys one", "check_v3_keys two")


def _as_hex(keys: Any) -> Any:
    """The learner's answer as {name: hex}, whether it holds bytes or hex (anything else is shown as is)."""
    if not isinstance(keys, dict):
        return keys
    return {name: value.hex() if isinstance(value, (bytes, bytearray)) else value for name, value in keys.items()}


def live_v3_session(seed: str) -> tuple[bytes, bytes, bytes, dict[str, str]]:
    """A real version 3 handshake with a real server: (ServerHello body, ClientKeyExchange body, the
    client's ephemeral private key, the session keys both ends derived, as hex)."""
    from ..client import ControlConnection
    from ..server import ChatServer
    from ..crypto import ServerKey
    from ..trace import Trace

    trace = Trace()
    with ChatServer("127.0.0.1", 0, 0, key=ServerKey.demo(), rng=SeededRandom(seed + " server")) as server, \
            ControlConnection(server.address, fingerprint=server.fingerprint, rng=SeededRandom(seed),
                              trace=trace) as control:
        hello = trace.filter(kind="ServerHello")[0].raw[4:]
        ckx = trace.filter(kind="ClientKeyExchange")[0].raw[4:]
        keys = control.keys.hex()
    return hello, ckx, SeededRandom(seed)(32), keys   # the client draws its ephemeral key first (TCRP.md §2.2)


def check_v3_keys(derive: Callable[[bytes, bytes, bytes], Any]) -> CheckResult:
    """``derive(server_hello_body, client_share, my_private)`` must return the four session keys
    ({name: bytes}, or hex) of live version 3 sessions, as the client and the server derived them."""
    if not callable(derive):
        return CheckResult.failure(V3_TITLE, "check_v3_keys needs your function",
                                   "call it as check_v3_keys(derive_v3_keys)")
    cases = []
    for seed in V3_SEEDS:
        hello, ckx, private, keys = live_v3_session(seed)
        cases.append(Case(f"a live version 3 session (client seed {seed!r})",
                          lambda h=hello, c=ckx, p=private: _as_hex(derive(h, c, p)), keys,
                          "the IKM is the X25519 secret (32 bytes), the salt the 16-byte server nonce, and the info "
                          "b'tcrp/3 session' followed by SHA-256 of the two bodies, ServerHello first"))
    return check(V3_TITLE, cases, todo=V3_TODO)
