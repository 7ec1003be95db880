"""The budgets as pure state (tcrp_lab.limits), and TCRP.md §8 saying the same as the code."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tcrp_lab.limits import Backoff, BucketTable, Limits, TokenBucket

SPEC = Path(__file__).parents[1] / "docs" / "TCRP.md"


def test_a_bucket_spends_its_burst_then_refills_at_its_rate():
    bucket = TokenBucket(rate=10, now=0.0)
    assert sum(bucket.take(0.0) for _ in range(50)) == 20      # the burst: twice the rate
    assert not bucket.take(0.05)                               # half a token
    assert bucket.take(0.1) and not bucket.take(0.1)           # one token after 0.1 s
    assert bucket.take_up_to(10.0, 100) == 20                  # never more than the burst, however long
    assert bucket.take_up_to(9.0, 5) == 0                      # a clock that steps back gives nothing


def test_a_rate_of_zero_lifts_the_budget():
    assert all(TokenBucket(0).take(0.0) for _ in range(10_000))
    assert TokenBucket(0).take_up_to(0.0, 10**6) == 10**6
    assert all(BucketTable(0).take("x", 0.0) for _ in range(10_000))


def test_a_bucket_table_is_per_key_and_bounded():
    table: BucketTable[str] = BucketTable(rate=1, max_keys=3)
    assert table.take("a", 0.0) and table.take("a", 0.0) and not table.take("a", 0.0)
    assert table.take("b", 0.0)                                # another key has its own budget
    for key in "cdef":
        table.take(key, 0.0)
    assert len(table) == 3                                     # the least recently used were forgotten


def test_backoff_frees_a_few_tries_then_doubles_up_to_a_ceiling():
    backoff: Backoff[str] = Backoff(base=1.0, maximum=5.0, free=2)
    now, waits = 0.0, []
    for _ in range(7):
        wait = backoff.begin("k", now)
        if wait:
            waits.append(wait)
            now += wait
            assert backoff.begin("k", now) == 0.0
        backoff.end("k", now, ok=False)
    assert waits == [1.0, 2.0, 4.0, 5.0]                      # tries 1-3 wait nothing (2 free, then the 3rd fails)
    assert backoff.begin("other", now) == 0.0                  # per key
    backoff.end("k", now, ok=None)                             # no try was made: nothing changes
    assert backoff.failures("k") == 7


def test_backoff_is_one_try_at_a_time_and_forgets_after_a_quiet_while():
    backoff: Backoff[str] = Backoff(base=1.0, maximum=60.0, forget_after=600.0)
    assert backoff.begin("k", 0.0) == 0.0
    assert backoff.begin("k", 0.0) > 0                         # a second try while the first runs
    backoff.end("k", 0.0, ok=False)
    assert backoff.begin("k", 0.5) == pytest.approx(0.5)
    assert backoff.begin("k", 700.0) == 0.0 and backoff.failures("k") == 0
    backoff.end("k", 700.0, ok=True)
    assert backoff.failures("k") == 0


def test_limits_refuse_unknown_names_and_negative_values():
    with pytest.raises(TypeError, match="unknown limit.*max_romos.*the limits are"):
        Limits().replace(max_romos=3)
    with pytest.raises(ValueError, match="chat_rate must be a number >= 0"):
        Limits().replace(chat_rate=-1)
    assert Limits().replace(chat_rate=0).chat_rate == 0


def _spec_defaults() -> dict[str, str]:
    rows = re.findall(r"^\| `(\w+)` \| ([^|]+) \|", SPEC.read_text(encoding="utf-8"), flags=re.M)
    return {name: default.strip() for name, default in rows}


def test_tcrp_md_lists_every_limit_with_the_default_the_code_has():
    documented = _spec_defaults()
    units = {"B": {1 << 20: "1 MiB", 64 << 20: "64 MiB"}}
    for name, default, _, unit in Limits.describe():
        assert name in documented, f"TCRP.md §8 does not list {name}"
        if unit == "B":
            expected = units["B"][default]
        elif unit == "s":
            expected = f"{default:g} s"
        elif unit == "/s":
            expected = f"{default:g}"
        else:
            expected = f"{default:g}"
        assert documented[name].startswith(expected), f"{name}: TCRP.md says {documented[name]!r}, code {default!r}"
