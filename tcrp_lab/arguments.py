"""Command-line argument types shared by the server, client and bench commands (argparse ``type=``).

Each turns the text a person typed into a value, or raises ``ArgumentTypeError`` with a message
saying what was expected, which argparse prints beside the flag's name.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

__all__ = ["at_least_zero", "port", "positive"]


def port(text: str) -> int:
    """A port number, 0-65535 (0 lets the system pick a free one)."""
    value = _parse(int, text, "port number")
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a port number (0-65535; 0 picks a free port)")
    return value


def positive(kind: type = float, what: str = "number") -> Callable[[str], Any]:
    """A number above 0 (``kind`` int or float)."""
    def parse(text: str) -> Any:
        value = _parse(kind, text, what)
        if not value > 0:
            raise argparse.ArgumentTypeError(f"{text} is not a positive {what}")
        return value

    return parse


def at_least_zero(kind: type = float) -> Callable[[str], Any]:
    """A number of 0 or more: a limit, where 0 turns the limit off."""
    def parse(text: str) -> Any:
        value = _parse(kind, text, "whole number" if kind is int else "number")
        if value < 0:
            raise argparse.ArgumentTypeError(f"{text} is below 0")
        return value

    return parse


def _parse(kind: type, text: str, what: str) -> Any:
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a {what}") from None
