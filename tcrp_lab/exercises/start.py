"""Lesson 00 exercise: read a client's messages, checked by ``check_messages_from``.

A ChatClient's ``messages`` is a list of :class:`~tcrp_lab.client.ChatMessage` (``seq``,
``sender``, ``text``, ``ts``, ``mine``) in room order. ``messages_from(messages, sender)`` returns
the texts one person sent, in the order the room saw them.
"""

from __future__ import annotations

from collections.abc import Callable

from ..client import ChatMessage
from .common import CheckResult, check

__all__ = ["check_messages_from"]


def _room(*lines: tuple[int, str, str]) -> list[ChatMessage]:
    return [ChatMessage(seq, sender, text, ts=1764323400.0 + seq) for seq, sender, text in lines]


CASES = [
    ("alice and bob talking", _room((3, "alice", "hi bob"), (4, "bob", "hi alice"), (5, "alice", "how are you?")),
     "alice", ["hi bob", "how are you?"]),
    ("the same room, bob's side", _room((3, "alice", "hi bob"), (4, "bob", "hi alice"), (5, "alice", "how are you?")),
     "bob", ["hi alice"]),
    ("someone who said nothing", _room((3, "alice", "anyone here?")), "carol", []),
    ("an empty room", [], "alice", []),
    ("names are exact: 'al' is not 'alice'", _room((2, "alice", "one"), (3, "al", "two")), "al", ["two"]),
    ("a list given out of room order", _room((7, "bob", "second"), (6, "bob", "first")), "bob", ["first", "second"]),
]


def check_messages_from(messages_from: Callable[[list[ChatMessage], str], list[str]]) -> CheckResult:
    """Run ``messages_from(messages, sender)`` on small rooms and compare with the texts expected."""
    return check("messages_from", [
        (f"{about}: messages_from(…, {sender!r})", (lambda m=messages, s=sender: messages_from(list(m), s)), expected)
        for about, messages, sender, expected in CASES
    ])
