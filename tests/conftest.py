"""Shared fixtures: the conformance vectors, a running server, bounded waiting."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest

VECTORS_PATH = Path(__file__).with_name("tcrp2.json")


@pytest.fixture(scope="session")
def vectors() -> dict:
    return json.loads(VECTORS_PATH.read_text())


def wait_for(condition: Callable[[], object], timeout: float = 5.0, what: str = "condition") -> object:
    """Poll ``condition`` until it is truthy; fail the test after ``timeout`` seconds.

    For state that offers no event to wait on (a thread ending, a counter in another thread).
    """
    deadline = time.monotonic() + timeout
    delay = 0.001
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 2, 0.05)
