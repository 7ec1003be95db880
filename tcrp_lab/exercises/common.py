"""What every exercise checker shares: run the learner's code on cases, report in plain words.

A checker answers one of three things (``CheckResult.status``):

* ``"not_yet"``: the learner's code raised ``NotImplementedError`` (the student edition's stub);
  the result says what to write, with no traceback;
* ``"failed"``: the first failing case (its input, what was expected, what came back), the likely
  mistake behind it, and how many checks passed;
* ``"passed"``: every check passed.

It never raises what the learner's code raised: an exception is reported by its last line.
"""

from __future__ import annotations

import ctypes
import threading
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from html import escape
from typing import Any

__all__ = ["Case", "CheckResult", "check", "raised", "run_bounded", "show"]

PASSED, NOT_YET, FAILED = "passed", "not_yet", "failed"

#: What to do when a checker was given no ``todo``: true of every stub in the student edition.
DEFAULT_TODO = "Replace the line `raise NotImplementedError()` with your code, then run the cell again."

_COLORS = {PASSED: "#1a7f37", NOT_YET: "#6e7781", FAILED: "#cf222e"}
_ICONS = {PASSED: "✅", NOT_YET: "✏️", FAILED: "❌"}


@dataclass(frozen=True)
class Case:
    """One check: call the learner's code (``run``) and compare what it returns with ``expected``.

    ``description`` names the input, e.g. ``"is_expired(1000, 1300, 300), exactly at the timeout"``;
    ``hint`` is the likely mistake when this case fails; ``compare(got, expected)`` replaces ``==``.
    """

    description: str
    run: Callable[[], Any]
    expected: Any
    hint: str = ""
    compare: Callable[[Any, Any], bool] | None = None


@dataclass
class CheckResult:
    """The outcome of a check, shown in a terminal (``str``) and in Jupyter (``_repr_html_``).

    ``bool(result)`` is True only when every check passed, so a test can ``assert check_...(fn)``.
    ``failures`` lists every problem found (the first is the one shown in full, with ``hint``);
    ``todo`` is set only when the result is "not yet".
    """

    title: str
    passed: int = 0
    failures: list[str] = field(default_factory=list)
    hint: str = ""
    total: int = 0
    todo: str = ""

    @classmethod
    def success(cls, title: str, checks: int) -> CheckResult:
        """Every one of ``checks`` checks passed."""
        return cls(title, passed=checks, total=checks)

    @classmethod
    def not_yet(cls, title: str, todo: str) -> CheckResult:
        """The learner has not written this yet; ``todo`` says what to write, in a sentence or two."""
        return cls(title, todo=todo or DEFAULT_TODO)

    @classmethod
    def failure(cls, title: str, problem: str, hint: str = "", passed: int = 0, total: int = 0) -> CheckResult:
        """A wrong answer: ``problem`` names the failing case (input, expected, got); ``hint`` the likely mistake."""
        return cls(title, passed=passed, failures=[problem], hint=hint, total=total)

    @property
    def status(self) -> str:
        """``"passed"``, ``"not_yet"`` or ``"failed"``."""
        if self.failures:
            return FAILED
        return NOT_YET if self.todo else PASSED

    def __bool__(self) -> bool:
        return self.status == PASSED

    def _lines(self) -> tuple[str, list[tuple[str, str]]]:
        """The headline and (label, text) detail lines shared by the text and HTML forms."""
        icon = _ICONS[self.status]
        if self.status == NOT_YET:
            return f"{icon} {self.title}: not yet.", [("To do", self.todo)]
        if self.status == PASSED:
            return f"{icon} {self.title}: all {self.passed} checks passed.", []
        total = max(self.total, self.passed + len(self.failures))
        head = f"{icon} {self.title}: not right yet, {self.passed} of {total} checks passed."
        details = [("First problem", self.failures[0])]
        if self.hint:
            details.append(("Hint", self.hint))
        details += [("Also", more) for more in self.failures[1:5]]
        if len(self.failures) > 5:
            details.append(("Also", f"… and {len(self.failures) - 5} more"))
        return head, details

    def __str__(self) -> str:
        head, details = self._lines()
        return "\n".join([head] + [f"  {label}: {text}" for label, text in details])

    __repr__ = __str__

    def _repr_html_(self) -> str:
        head, details = self._lines()
        items = "".join(f"<li><b>{escape(label)}:</b> {escape(text)}</li>" for label, text in details)
        body = f'<ul style="margin:0.2em 0">{items}</ul>' if items else ""
        return f'<div class="tcrp-check tcrp-check-{self.status}" style="color:{_COLORS[self.status]}">' \
               f"<b>{escape(head)}</b>{body}</div>"


def raised(exc: BaseException) -> str:
    """The last line of an exception, as a learner would read it: ``ZeroDivisionError: division by zero``."""
    return traceback.format_exception_only(type(exc), exc)[-1].strip()


def show(value: Any, limit: int = 200) -> str:
    """``repr(value)``, cut to ``limit`` characters so one huge value cannot flood the result."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def check(title: str, cases: Iterable[Case | tuple[str, Callable[[], Any], Any]], *,
          todo: str = "") -> CheckResult:
    """Run every case on the learner's code and say whether it is right, wrong or not written yet.

    ``cases`` are :class:`Case` objects (old ``(description, thunk, expected)`` tuples still work).
    ``todo`` says what to write, shown when the learner's code raises ``NotImplementedError``:
    always give one (the default is a generic sentence). Other exceptions count as failures.
    """
    passed, failures, hints = 0, [], []
    cases = [case if isinstance(case, Case) else Case(*case) for case in cases]
    for case in cases:
        try:
            got = case.run()
        except NotImplementedError:   # the stub: not a mistake, just not written yet
            return CheckResult.not_yet(title, todo)
        except Exception as exc:  # the learner's bug, reported rather than raised
            failures.append(f"{case.description}: your code raised {raised(exc)}")
            hints.append(case.hint)
            continue
        try:
            right = (case.compare or _equal)(got, case.expected)
        except Exception as exc:  # e.g. comparing a wrong type
            right, why = False, f" (comparing them raised {raised(exc)})"
        else:
            why = ""
        if right:
            passed += 1
        else:
            failures.append(f"{case.description}: expected {show(case.expected)}, got {show(got)}{why}")
            hints.append(case.hint)
    if not failures:
        return CheckResult.success(title, passed)
    return CheckResult(title, passed=passed, failures=failures, hint=hints[0], total=len(cases))


def _equal(got: Any, expected: Any) -> bool:
    return bool(got == expected)


class _Stop(BaseException):
    """Raised inside a runaway case to stop it (a BaseException, so ``except Exception`` lets it go)."""


def run_bounded(fn: Callable[[], Any], limit: float) -> tuple[str, Any]:
    """Run ``fn`` here: ("ok", value), ("raised", exception) or ("timeout", None) past ``limit`` seconds.

    The learner's code runs in the calling thread, so its prints show in the notebook cell and
    the kernel's interrupt button works; a watchdog thread raises :class:`_Stop` inside it if it
    runs too long, so an endless loop neither hangs the notebook nor keeps eating the CPU.
    """
    me = threading.get_ident()
    lock, done = threading.Lock(), threading.Event()
    fired = []

    def set_async(exc: Any) -> None:
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(me), exc)

    def watchdog() -> None:
        if done.wait(limit):
            return
        while True:   # again every half second, in case the code caught one (a bare except)
            with lock:
                if done.is_set():
                    return
                fired.append(True)
                set_async(ctypes.py_object(_Stop))
            if done.wait(0.5):
                return

    def disarm() -> None:
        while True:
            try:
                with lock:   # once done is set under the lock, the watchdog never fires again
                    done.set()
                    if fired:
                        set_async(None)   # clear a _Stop that fired but was not delivered yet
                return
            except _Stop:    # delivered just now: try again
                continue

    threading.Thread(target=watchdog, name="check-watchdog", daemon=True).start()
    outcome: tuple[str, Any] = ("timeout", None)
    try:
        try:
            outcome = ("ok", fn())
        except Exception as exc:  # the learner's bug, reported by the caller
            outcome = ("raised", exc)
    except _Stop:
        pass
    finally:
        disarm()
    return outcome
