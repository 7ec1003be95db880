"""What every exercise checker shares: run the learner's code on cases, report in plain words."""

from __future__ import annotations

import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class CheckResult:
    """The outcome of a check: shown as a green pass or the first failures, in plain words.

    Displays itself in Jupyter (``_repr_html_``) and in a terminal (``__str__``); ``bool(result)``
    says whether every case passed, so a test can ``assert check_...(fn)``.
    """

    title: str
    passed: int = 0
    failures: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return not self.failures

    def __str__(self) -> str:
        if not self.failures:
            return f"✅ {self.title}: all {self.passed} checks passed."
        lines = [f"❌ {self.title}: {len(self.failures)} problem(s), {self.passed} check(s) passed."]
        lines += [f"  • {f}" for f in self.failures[:5]]
        if len(self.failures) > 5:
            lines.append(f"  … and {len(self.failures) - 5} more")
        return "\n".join(lines)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        from html import escape

        color = "#1a7f37" if self else "#cf222e"
        head, *rest = str(self).split("\n")
        items = "".join(f"<li>{escape(r.strip(' •'))}</li>" for r in rest)
        return f'<div style="color:{color}"><b>{escape(head)}</b>{f"<ul>{items}</ul>" if items else ""}</div>'


def raised(exc: BaseException) -> str:
    """The last line of an exception, as a learner would read it: ``ZeroDivisionError: division by zero``."""
    return traceback.format_exception_only(type(exc), exc)[-1].strip()


def check(title: str, cases: Iterable[tuple[str, Callable[[], Any], Any]]) -> CheckResult:
    """Run each ``(description, thunk, expected)``; compare with ``==``; describe any difference.

    An exception in the learner's code is reported as a failure with its last line, never raised.
    """
    result = CheckResult(title)
    for description, thunk, expected in cases:
        try:
            got = thunk()
        except Exception as exc:  # the learner's bug, reported rather than raised
            result.failures.append(f"{description}: your code raised {raised(exc)}")
            continue
        if got == expected:
            result.passed += 1
        else:
            result.failures.append(f"{description}: expected {expected!r}, got {got!r}")
    return result
