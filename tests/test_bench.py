"""python -m tcrp_lab.bench on tiny parameters: the shape of --json and the CLI's messages.

Not a timing test: the figures are checked for being figures (finite, in range), never for
being fast. Speed is what the benchmark itself reports.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

TINY = ["--joins", "3", "--members", "4", "--messages", "30", "--rate", "100", "--steady-seconds", "0.3",
        "--burst-members", "4", "--idle-members", "20", "--rounds", "1"]
REQUIRED = ["joins", "join_wall_s", "members", "deliveries_per_s", "relay_deliveries_per_s", "ratio_to_relay",
            "latency_p50_ms", "latency_p99_ms", "loss", "bytes_per_idle_member"]


def bench(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tcrp_lab.bench", *args], capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def tiny() -> dict:
    done = bench(*TINY, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)   # stdout is the JSON object and nothing else


def test_json_holds_every_figure_the_issue_asks_for(tiny):
    assert set(REQUIRED) <= set(tiny)
    assert tiny["joins"] == 3 and tiny["members"] == 4 and tiny["burst_members"] == 4
    for key in REQUIRED + ["join_p50_ms", "join_p95_ms", "burst_s", "cpu_us_per_delivery"]:
        assert isinstance(tiny[key], (int, float)) and math.isfinite(tiny[key]), key
    assert tiny["deliveries_per_s"] > 0 and tiny["relay_deliveries_per_s"] > 0
    assert tiny["ratio_to_relay"] == pytest.approx(tiny["deliveries_per_s"] / tiny["relay_deliveries_per_s"])
    assert 0 <= tiny["loss"] <= 1 and 0 <= tiny["burst_loss"] <= 1
    assert 0 < tiny["latency_p50_ms"] <= tiny["latency_p99_ms"]
    assert tiny["idle_members"] == 20 and tiny["bytes_per_idle_member"] == pytest.approx(
        (tiny["rss_after"] - tiny["rss_before"]) / 20)


def test_json_describes_the_machine_and_the_targets(tiny):
    assert tiny["machine"]["cpus"] >= 1 and tiny["machine"]["python"].count(".") == 2
    assert set(tiny["targets"]) == {"join_wall_s", "ratio_to_relay", "burst_s", "burst_loss", "latency_p99_ms",
                                    "bytes_per_idle_member"}
    assert all(isinstance(met, bool) for met in tiny["targets"].values())
    assert tiny["targets"]["burst_loss"] == (tiny["burst_loss"] == 0)


def test_the_table_shows_ours_next_to_the_relay():
    done = bench(*TINY)
    assert done.returncode == 0, done.stderr
    for words in ("ours", "bare relay", "joins at once", "full speed", "burst", "idle member"):
        assert words in done.stdout


@pytest.mark.parametrize("args, message", [
    (["--senders", "4", "--members", "4"], "--senders must be below --members"),
    (["--members", "1"], "a room needs at least 2 members"),
    (["--rate", "-5"], "-5 is not a positive number"),
    (["--joins", "many"], "is not a whole number"),
])
def test_bad_flags_say_what_to_do(args, message):
    done = bench(*args, timeout=30)
    assert done.returncode == 2 and message in done.stderr
