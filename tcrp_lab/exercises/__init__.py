"""Exercise checkers for the lessons: ``check_...(your_function)`` says what is right or wrong.

Each lesson has its own module (``start``, ``sockets``, ``packets``, ``crypto``, ``threads``,
``timeouts``, ``reliability``, ``legacy``); every ``check_*`` function is also importable from here::

    from tcrp_lab.exercises import check_frame_reader
    check_frame_reader(my_reader)

Every checker says "not yet" on the student edition's stub, names the first failing case and the
likely mistake on a wrong answer, and says so on a right one (see :mod:`.common`).
"""

from __future__ import annotations

import importlib
from typing import Any

from .common import Case, CheckResult, check

LESSON_MODULES = ("start", "sockets", "packets", "crypto", "threads", "timeouts", "reliability", "legacy", "attacks")


def __getattr__(name: str) -> Any:
    if name.startswith("check_"):
        for module in LESSON_MODULES:
            try:
                mod = importlib.import_module(f"{__name__}.{module}")
            except ModuleNotFoundError as exc:
                if exc.name != f"{__name__}.{module}":
                    raise
                continue
            if hasattr(mod, name):
                return getattr(mod, name)
    raise AttributeError(f"tcrp_lab.exercises has no checker {name!r}")


__all__ = ["Case", "CheckResult", "check"]
