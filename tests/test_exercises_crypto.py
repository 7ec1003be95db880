"""check_replay_window (lesson 03): a window and a receive() that record a seq only after the
datagram authenticates pass; the stub is "not yet"; each usual mistake fails first on the scenario
whose hint names it."""

from __future__ import annotations

from tcrp_lab.crypto import AuthenticationError, ReplayWindow, open_sealed
from tcrp_lab.exercises import check_replay_window
from tcrp_lab.exercises.crypto import RULE, scenarios
from tcrp_lab.protocol import Datagram, ProtocolError


class SetWindow:
    """A right window written from the lesson alone: the highest seq and the recent ones recorded."""

    def __init__(self) -> None:
        self.highest, self.recorded = -1, set()

    def check(self, seq: int) -> bool:
        return seq > self.highest or (self.highest - seq < 64 and seq not in self.recorded)

    def update(self, seq: int) -> None:
        self.recorded.add(seq)
        self.highest = max(self.highest, seq)


def receive(key, window, data):
    """Right: check, authenticate, and only then record."""
    try:
        datagram = Datagram.decode(data)
        if not window.check(datagram.seq):
            return None
        plaintext = open_sealed(key, datagram.seq, datagram.ciphertext + datagram.tag, datagram.header)
    except ProtocolError:
        return None
    window.update(datagram.seq)
    return plaintext


def decrypt_first_then_accept(key, window, data):
    """Also right (only slower on replays): authenticate, then check and record in one step."""
    try:
        datagram = Datagram.decode(data)
        plaintext = open_sealed(key, datagram.seq, datagram.ciphertext + datagram.tag, datagram.header)
    except ProtocolError:
        return None
    if not window.check(datagram.seq):
        return None
    window.update(datagram.seq)
    return plaintext


def records_first(key, window, data):
    """The bug the lesson is about: the seq is recorded before the datagram authenticates."""
    try:
        datagram = Datagram.decode(data)
    except ProtocolError:
        return None
    if not window.check(datagram.seq):
        return None
    window.update(datagram.seq)
    try:
        return open_sealed(key, datagram.seq, datagram.ciphertext + datagram.tag, datagram.header)
    except AuthenticationError:
        return None


def no_window(key, window, data):
    try:
        datagram = Datagram.decode(data)
        return open_sealed(key, datagram.seq, datagram.ciphertext + datagram.tag, datagram.header)
    except ProtocolError:
        return None


def raises_on_forgeries(key, window, data):
    datagram = Datagram.decode(data)
    if not window.check(datagram.seq):
        return None
    plaintext = open_sealed(key, datagram.seq, datagram.ciphertext + datagram.tag, datagram.header)
    window.update(datagram.seq)
    return plaintext


class Counter(SetWindow):
    """Only the highest seq: refuses a datagram that was merely late."""

    def check(self, seq: int) -> bool:
        return seq > self.highest


class RemembersForever(SetWindow):
    """Never slides: accepts a never-seen seq however old."""

    def check(self, seq: int) -> bool:
        return seq not in self.recorded


class OneTooWide(SetWindow):
    def check(self, seq: int) -> bool:
        return seq > self.highest or (self.highest - seq <= 64 and seq not in self.recorded)


class StartsAtZero(SetWindow):
    """Starts as if seq 0 had been recorded."""

    def __init__(self) -> None:
        self.highest, self.recorded = 0, {0}


def first_failure(window_class, receive_fn) -> tuple[str, str]:
    result = check_replay_window(window_class, receive_fn)
    assert result.status == "failed", str(result)
    return result.failures[0], result.hint


def test_right_answers_pass_every_scenario():
    answers = ((SetWindow, receive), (ReplayWindow, receive), (SetWindow, decrypt_first_then_accept))
    for window_class, receive_fn in answers:
        result = check_replay_window(window_class, receive_fn)
        assert result.status == "passed", str(result)
        assert result.passed == len(scenarios()) == 8


def test_the_scenarios_use_real_datagrams_and_real_forgeries():
    for _, sent, _ in scenarios():
        for s in sent:
            if s.label.startswith("forged"):
                datagram = Datagram.decode(s.data)     # a well-formed datagram that does not authenticate
                assert datagram.seq >= 60 and s.plaintext is None
            elif s.plaintext is not None:
                assert s.plaintext.startswith(b'{"type":"chat"')


def test_the_stub_is_not_yet_with_what_to_write():
    class Stub:
        def __init__(self) -> None:
            raise NotImplementedError()

    def stub_receive(key, window, data):
        raise NotImplementedError()

    for window_class, receive_fn in ((Stub, stub_receive), (SetWindow, stub_receive), (Stub, receive)):
        result = check_replay_window(window_class, receive_fn)
        assert result.status == "not_yet" and not result
        assert "only then window.update" in str(result) and "Traceback" not in str(result)


def test_recording_before_authenticating_fails_on_the_forgery_with_the_rule():
    problem, hint = first_failure(SetWindow, records_first)
    assert problem.startswith("a forged datagram with seq 1,000")
    assert "'seq 0-2: dropped'" in problem and "'seq 0-2: accepted'" in problem
    assert RULE in hint
    result = check_replay_window(SetWindow, records_first)
    assert any(f.startswith("seq 0 to 4, forged datagrams with seq 2**64 - 1") for f in result.failures)
    assert any(f.startswith("seq 0, then seq 1 tampered with") for f in result.failures)


def test_each_window_mistake_fails_first_where_its_hint_says_why():
    mistakes = [
        (SetWindow, no_window, "seq 0 and 1, then seq 1 again", "check the window before you accept"),
        (Counter, receive, "seq 0, 2 and 3, then seq 1, late", "not only the highest one"),
        (RemembersForever, receive, "seq 0 to 70 except 6 and 7", "seq 6 is 64 behind 70"),
        (OneTooWide, receive, "seq 0 to 70 except 6 and 7", "the 63 before it"),
        (StartsAtZero, receive, "seq 0 to 4, in order", "a new window has recorded nothing"),
    ]
    for window_class, receive_fn, first_case, hint_part in mistakes:
        problem, hint = first_failure(window_class, receive_fn)
        assert problem.startswith(first_case), (window_class, problem)
        assert hint_part in hint, (window_class, hint)


def test_an_exception_is_reported_not_raised():
    problem, hint = first_failure(SetWindow, raises_on_forgeries)
    assert problem.startswith("a forged datagram with seq 1,000")
    assert "your code raised tcrp_lab.crypto.AuthenticationError" in problem
    assert "drop it (return None)" in hint
    assert check_replay_window(SetWindow, "not a function").status == "failed"
