"""check_frame_reader (lesson 01): passes correct readers, says "not yet" to the stub, and names the
first broken chunking and the likely mistake for typical bugs."""

from __future__ import annotations

import threading

from tcrp_lab.exercises import check_frame_reader
from tcrp_lab.protocol import FrameReader


class GoodReader:
    """A correct answer written from the task alone (not tcrp_lab's FrameReader)."""

    def __init__(self) -> None:
        self.buffer = b""

    def feed(self, data: bytes) -> list[bytes]:
        self.buffer += data
        frames = []
        while len(self.buffer) >= 4:
            length = int.from_bytes(self.buffer[:4], "big")
            if not 1 <= length <= 65536:
                raise ValueError(f"bad frame length {length}")
            if len(self.buffer) < 4 + length:
                break
            frames.append(self.buffer[4 : 4 + length])
            self.buffer = self.buffer[4 + length :]
        return frames


class OneFramePerChunk:
    """Believes every recv returns exactly one frame."""

    def feed(self, data: bytes) -> list[bytes]:
        return [data[4:]]


class NoLimits(GoodReader):
    """Right framing, but trusts any length."""

    def feed(self, data: bytes) -> list[bytes]:
        self.buffer += data
        frames = []
        while len(self.buffer) >= 4:
            length = int.from_bytes(self.buffer[:4], "big")
            if len(self.buffer) < 4 + length:
                break
            frames.append(self.buffer[4 : 4 + length])
            self.buffer = self.buffer[4 + length :]
        return frames


class LastByteLength(GoodReader):
    """Reads the length from its last byte only: fine until a body is over 255 bytes."""

    def feed(self, data: bytes) -> list[bytes]:
        self.buffer += data
        frames = []
        while len(self.buffer) >= 4:
            length = self.buffer[3]
            if length == 0 or int.from_bytes(self.buffer[:4], "big") > 65536:
                raise ValueError("bad length")
            if len(self.buffer) < 4 + length:
                break
            frames.append(self.buffer[4 : 4 + length])
            self.buffer = self.buffer[4 + length :]
        return frames


class KeepsTheLength(GoodReader):
    """Returns each frame with its 4 length bytes."""

    def feed(self, data: bytes) -> list[bytes]:
        return [len(f).to_bytes(4, "big") + f for f in super().feed(data)]


class ForgetsToReturn(GoodReader):
    def feed(self, data: bytes) -> None:  # type: ignore[override]
        super().feed(data)


class NeverConsumes(GoodReader):
    """Finds a frame and never removes it from the buffer: an endless loop."""

    def feed(self, data: bytes) -> list[bytes]:
        self.buffer += data
        frames: list[bytes] = []
        while len(self.buffer) >= 4:
            length = int.from_bytes(self.buffer[:4], "big")
            if len(self.buffer) < 4 + length:
                break
            frames = [self.buffer[4 : 4 + length]]   # (no append: the loop must not eat memory)
        return frames


class StubInit:
    """The student edition: both bodies are stubs."""

    def __init__(self) -> None:
        raise NotImplementedError()

    def feed(self, data: bytes) -> list[bytes]:
        raise NotImplementedError()


class StubFeed(GoodReader):
    """__init__ written, feed not yet: its NotImplementedError must not pass for a refusal."""

    def feed(self, data: bytes) -> list[bytes]:
        raise NotImplementedError()


def failures(result) -> str:
    return "\n".join(result.failures)


def test_correct_readers_pass():
    for reader in (GoodReader, FrameReader):
        result = check_frame_reader(reader)
        assert result.status == "passed", str(result)
        assert result.passed == 13
        assert "all 13 checks passed" in str(result)


def test_the_stub_is_not_yet_with_what_to_write_and_no_traceback():
    for stub in (StubInit, StubFeed):
        result = check_frame_reader(stub)
        assert result.status == "not_yet" and not result
        assert "feed(data) adds data to it" in str(result) and "Traceback" not in str(result)


def test_one_frame_per_chunk_is_told_which_chunking_broke_it():
    result = check_frame_reader(OneFramePerChunk)
    assert result.status == "failed"
    assert result.failures[0].startswith("two frames in one chunk: ")
    assert "keep cutting frames off the buffer while a whole one is there" in result.hint
    text = failures(result)
    assert "two frames in one chunk" in text
    assert "expected [b'first', b'second frame']" in text
    assert "one byte at a time: feed #1 of 14 (b'\\x00') returned [b''], expected []" in text


def test_a_reader_without_limits_is_told_to_refuse_bad_lengths():
    result = check_frame_reader(NoLimits)
    assert result.passed == 10
    assert len(result.failures) == 3
    text = failures(result)
    assert "a length of 0" in text and "should refuse a length of 0 by raising an exception" in text
    assert "should refuse a length over 65,536" in text and "4 GiB" in text
    assert "raise (ValueError, say) if it is not 1-65,536" in result.hint


def test_a_one_byte_length_fails_only_past_255_bytes():
    result = check_frame_reader(LastByteLength)
    text = failures(result)
    assert result.failures[0].startswith("a 300-byte body")
    assert "one frame in one chunk" not in text and "one byte at a time" not in text
    assert "the length is all 4 bytes, big-endian" in result.hint


def test_hints_for_a_kept_length_and_a_missing_return():
    assert "you returned the 4 length bytes too" in check_frame_reader(KeepsTheLength).hint
    result = check_frame_reader(ForgetsToReturn)
    assert "returned None, not a list of byte strings" in result.failures[0]
    assert "feed must return a list" in result.hint


def test_an_endless_loop_is_reported_not_hung():
    result = check_frame_reader(NeverConsumes)
    assert result.status == "failed" and len(result.failures) == 1
    assert "did not return within 1 s" in result.failures[0] and "an endless loop?" in result.hint
    assert "the other 12 case(s) were not run" in result.failures[0]


def test_the_learners_code_runs_in_the_calling_thread():
    """So that a print() in feed shows in the notebook cell (ipykernel drops other threads' output)."""
    seen = set()

    class Watched(GoodReader):
        def feed(self, data: bytes) -> list[bytes]:
            seen.add(threading.get_ident())
            return super().feed(data)

    assert check_frame_reader(Watched)
    assert seen == {threading.get_ident()}


def test_the_checker_works_again_after_an_endless_loop():
    assert not check_frame_reader(NeverConsumes)
    assert check_frame_reader(GoodReader)   # no stray stop left pending in this thread


def test_misuse_is_reported_not_raised():
    result = check_frame_reader(FrameReader())
    assert result.status == "failed" and "pass the class itself" in result.hint
    assert "have no feed(data) method" in failures(check_frame_reader(dict))

    class Broken:
        def __init__(self) -> None:
            raise RuntimeError("oops")

    assert "making a reader raised RuntimeError: oops" in failures(check_frame_reader(Broken))
