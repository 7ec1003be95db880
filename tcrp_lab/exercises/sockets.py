"""Lesson 01 exercise: a length-prefixed frame reader that survives any chunking of a TCP stream.

The learner writes a class whose objects have ``feed(data: bytes) -> list[bytes]``, the interface of
:class:`tcrp_lab.protocol.FrameReader`: each call hands over whatever ``recv`` returned and gets back
the frame bodies completed so far (``[]`` when none is). A frame is ``length u32 big-endian | body``
with 1 <= length <= 65536; a length of 0 or over 65536 must raise an exception as soon as its four
bytes arrive. :func:`check_frame_reader` feeds fresh readers the chunkings a real network produces
and says, for the first chunking that broke the reader, which feed went wrong, what it returned,
what was expected, and the likely mistake. A reader still raising NotImplementedError (the
student edition's stub) gets "not yet".
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

from ..protocol import FRAME_LENGTH_BYTES, MAX_FRAME
from .common import CheckResult, raised, run_bounded

__all__ = ["check_frame_reader", "frame"]

_GREEDY = " (a reader that waits for the body lets a peer make it hold up to 4 GiB)"
TIME_LIMIT = 1.0   #: seconds a case may take before the checker calls it an endless loop
TITLE = "Frame reader"
TODO = ("Write MyFrameReader: __init__ makes an empty buffer; feed(data) adds data to it, then, while the "
        "buffer holds a whole frame (4 length bytes and that many more), cuts it off and collects its body; "
        "it returns the bodies collected ([] if none) and raises an exception for a length of 0 or over 65,536.")


def frame(body: bytes) -> bytes:
    """``length u32 big-endian | body``: what the checker feeds (no limits checked, on purpose)."""
    return len(body).to_bytes(FRAME_LENGTH_BYTES, "big") + body


class _Refuse:
    """Expected outcome of a feed: the reader must raise (a length it must not trust)."""

    def __init__(self, why: str, note: str = ""):
        self.why, self.note = why, note


def _chunks(data: bytes, cuts: Sequence[int]) -> list[bytes]:
    edges = [0, *cuts, len(data)]
    return [data[a:b] for a, b in zip(edges, edges[1:])]


def _random_chunks(data: bytes, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    cuts = sorted(rng.sample(range(1, len(data)), 40))
    return _chunks(data, cuts)


def _cases() -> list[tuple[str, list[bytes], list[Any], str]]:
    """(description, chunks fed in order, what each feed must return or _Refuse, the likely mistake)."""
    hello, tcp = frame(b"hello"), frame(b"hello, TCP")
    a, b, c = frame(b"first"), frame(b"second frame"), frame(b"third")
    body300 = bytes(range(256)) + b"x" * 44
    biggest = bytes(i % 251 for i in range(MAX_FRAME))
    many = [f"message {i}".encode() * (i % 4 + 1) for i in range(20)]
    many_stream = b"".join(frame(m) for m in many)
    many_chunks = _random_chunks(many_stream, seed=1)
    refuse = "check the length as soon as its 4 bytes are in, and raise (ValueError, say) if it is not 1-65,536"
    cases: list[tuple[str, list[bytes], list[Any], str]] = [
        ("one frame in one chunk", [hello], [[b"hello"]],
         "feed returns a list of frame bodies, without their 4 length bytes"),
        ("two frames in one chunk", [a + b], [[b"first", b"second frame"]],
         "one recv can bring several frames: keep cutting frames off the buffer while a whole one is there"),
        ("one byte at a time", [tcp[i:i + 1] for i in range(len(tcp))], [[]] * (len(tcp) - 1) + [[b"hello, TCP"]],
         "keep what arrived in a buffer between calls, and return [] until a whole frame is there"),
        ("a frame split inside its 4 length bytes", _chunks(hello, [2]), [[], [b"hello"]],
         "wait for all 4 length bytes before reading the length"),
        ("a frame split right after its length", _chunks(hello, [4]), [[], [b"hello"]],
         "4 length bytes are not a frame yet: wait until the whole body is in the buffer"),
        ("the end of one frame and the start of the next in one chunk", _chunks(a + b + c, [7, 19, 30]),
         [[], [b"first"], [b"second frame"], [b"third"]],
         "after cutting a frame off, keep the rest of the buffer: it is the start of the next frame"),
        ("empty chunks (recv never returns them mid-stream, but feed(b'') must be harmless)",
         [b"", hello, b""], [[], [b"hello"], []], "feed(b'') adds nothing: return [] and keep the buffer as it was"),
        ("a 300-byte body (its length needs two bytes: 00 00 01 2c)", _chunks(frame(body300), [3, 150]),
         [[], [], [body300]], "the length is all 4 bytes, big-endian: int.from_bytes(buffer[:4], 'big')"),
        (f"the largest frame allowed ({MAX_FRAME:,} bytes) in 4096-byte chunks",
         _chunks(frame(biggest), list(range(4096, len(biggest) + 4, 4096))),
         [[]] * ((len(biggest) + 4) // 4096) + [[biggest]],
         f"{MAX_FRAME:,} itself is allowed: refuse only lengths over it"),
        ("20 frames in 41 random chunks", many_chunks, None,  # expected filled in below
         "every byte not returned yet must stay in the buffer, in order"),
        ("a length of 0 (TCRP forbids empty frames)", [bytes(4)],
         [_Refuse("a length of 0", " (TCRP.md §2 allows 1-65,536)")], refuse),
        (f"a length of {MAX_FRAME + 1:,}, one over the limit (only its 4 length bytes are sent)",
         [frame(bytes(MAX_FRAME + 1))[:4]], [_Refuse(f"a length over {MAX_FRAME:,}", _GREEDY)], refuse),
        ("a length of 4,294,967,295 (ff ff ff ff) followed by a little data", [b"\xff\xff\xff\xff", b"abc"],
         [_Refuse(f"a length over {MAX_FRAME:,}", _GREEDY)], refuse),
    ]
    # For the random chunking, each feed returns the frames whose last byte it brought.
    ends, at = [], 0
    for m in many:
        at += FRAME_LENGTH_BYTES + len(m)
        ends.append(at)
    expected, fed, k = [], 0, 0
    for chunk in many_chunks:
        fed += len(chunk)
        done = []
        while k < len(ends) and ends[k] <= fed:
            done.append(many[k])
            k += 1
        expected.append(done)
    cases[9] = (cases[9][0], many_chunks, expected, cases[9][3])
    return cases


def _show(value: Any) -> str:
    """A short repr: long byte strings are abbreviated with their size."""
    if isinstance(value, (bytes, bytearray)):
        return repr(bytes(value)) if len(value) <= 24 else f"{bytes(value[:12])!r}… ({len(value):,} bytes)"
    if isinstance(value, list):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _normalize(got: Any) -> list[bytes] | None:
    """The frames a feed returned as a list of bytes, or None if it is not a list of byte strings."""
    if isinstance(got, (bytes, bytearray, str)) or not isinstance(got, (list, tuple)):
        return None
    if not all(isinstance(x, (bytes, bytearray, memoryview)) for x in got):
        return None
    return [bytes(x) for x in got]


def _run_case(make: Callable[[], Any], chunks: list[bytes], expected: list[Any]) -> tuple[str, str] | None:
    """None if the reader did what was expected at every feed, else (what went wrong, a hint of its own or "").

    NotImplementedError (the stub) propagates, so that the checker says "not yet".
    """
    reader = make()
    if not callable(getattr(reader, "feed", None)):
        return f"{type(reader).__name__} objects have no feed(data) method", "a reader needs a feed(self, data) method"
    n = len(chunks)
    for i, (chunk, want) in enumerate(zip(chunks, expected), 1):
        where = f"feed #{i} of {n} ({_show(chunk)})" if n > 1 else f"feed({_show(chunk)})"
        try:
            got = reader.feed(chunk)
        except NotImplementedError:
            raise
        except Exception as exc:
            if isinstance(want, _Refuse):
                return None
            return f"{where} raised {raised(exc)}, but the stream was valid", ""
        if isinstance(want, _Refuse):
            return (f"{where} returned {_show(got)}: it should refuse {want.why} by raising an exception as soon "
                    f"as the 4 length bytes arrive{want.note}"), ""
        frames = _normalize(got)
        if frames is None:
            return (f"{where} returned {_show(got)}, not a list of byte strings",
                    "feed must return a list of the frame bodies completed so far ([] when none is complete yet)")
        if frames != want:
            hint = ""
            if frames and frames == [frame(w) for w in want]:
                hint = "you returned the 4 length bytes too: return the body only"
            elif not frames and want:
                hint = "the frame's last byte came with this chunk, so the frame is complete now"
            return f"{where} returned {_show(frames)}, expected {_show(want)}", hint
    return None


def check_frame_reader(reader_class: Callable[[], Any]) -> CheckResult:
    """Check a frame reader class against odd chunkings of a TCP stream.

    ``reader_class`` is the class itself (each case needs a fresh reader), whose objects have
    ``feed(data: bytes) -> list[bytes]``. Every chunking is tried (each within :data:`TIME_LIMIT`);
    the result names the first one that broke the reader, the feed that went wrong, and the likely
    mistake, and counts the chunkings that passed.
    """
    if not callable(reader_class):
        hint = "pass the class itself, not an object of it" if hasattr(reader_class, "feed") else ""
        return CheckResult.failure(TITLE, f"check_frame_reader needs your reader class, got {_show(reader_class)}",
                                   hint)
    cases = _cases()
    problems: list[tuple[str, str]] = []    # (what went wrong, the likely mistake), one per broken case
    passed = 0
    for number, (description, chunks, expected, hint) in enumerate(cases, 1):
        status, value = run_bounded(lambda chunks=chunks, expected=expected: _run_case(reader_class, chunks, expected),
                                     TIME_LIMIT)
        if status == "raised" and isinstance(value, NotImplementedError):
            return CheckResult.not_yet(TITLE, TODO)
        if status == "timeout":
            problems.append((f"{description}: your reader did not return within {TIME_LIMIT:g} s; the other "
                             f"{len(cases) - number} case(s) were not run",
                             "an endless loop? each pass of a loop must consume bytes or stop"))
            break
        if status == "raised":
            problems.append((f"{description}: making a reader raised {raised(value)}",
                             "__init__ should only set up an empty buffer"))
        elif value is not None:
            problems.append((f"{description}: {value[0]}", value[1] or hint))
        else:
            passed += 1
    if not problems:
        return CheckResult.success(TITLE, len(cases))
    return CheckResult(TITLE, passed=passed, failures=[p for p, _ in problems], hint=problems[0][1], total=len(cases))
