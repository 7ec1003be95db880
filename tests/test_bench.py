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


def test_handshakes_measures_version_2_and_version_3_joins_and_the_server_cpu_of_each():
    done = bench("--handshakes", "--joins", "3", "--rounds", "1", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["joins"] == 3 and result["v2"]["handshake"] == "rsa" and result["v3"]["handshake"] == "x25519"
    for version in ("v2", "v3"):
        figures = result[version]
        assert 0 < figures["p50_ms"] <= figures["p95_ms"] and figures["wall_s"] > 0
        assert figures["server_cpu_ms_per_join"] > 0
    table = bench("--handshakes", "--joins", "2", "--rounds", "1")
    assert "version 2: RSA key transport" in table.stdout and "version 3: X25519 + RSA-PSS" in table.stdout


@pytest.mark.parametrize("args, message", [
    (["--handshakes", "--adversary"], "--handshakes and --adversary are separate runs"),
    (["--senders", "4", "--members", "4"], "--senders must be below --members"),
    (["--members", "1"], "a room needs at least 2 members"),
    (["--rate", "-5"], "-5 is not a positive number"),
    (["--joins", "many"], "is not a whole number"),
])
def test_bad_flags_say_what_to_do(args, message):
    done = bench(*args, timeout=30)
    assert done.returncode == 2 and message in done.stderr


# --- --adversary ---------------------------------------------------------------------------------

ADVERSARY_TINY = ["--adversary", "--quick", "--members", "3", "--rate", "20", "--steady-seconds", "0.5",
                  "--joins", "2"]


def strict_json(text: str) -> dict:
    """The JSON object, refusing NaN and Infinity (which json.loads would otherwise accept)."""
    def refuse(constant: str) -> None:
        raise ValueError(f"{constant} in the JSON")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture(scope="module")
def adversary() -> dict:
    done = bench(*ADVERSARY_TINY, "--json", timeout=280)
    assert done.returncode == 0, done.stderr
    return strict_json(done.stdout)


def test_the_adversary_json_has_every_attacker_and_every_figure(adversary):
    from tcrp_lab.adversary import ATTACKS

    assert adversary["mode"] == "adversary" and list(adversary["attacks"]) == list(ATTACKS)
    alone = [adversary["alone"], adversary["alone_again"]]
    for name, scenario in [("alone", alone[0]), ("alone again", alone[1]), *adversary["attacks"].items()]:
        for key in ("deliveries_per_s", "latency_p50_ms", "latency_p99_ms", "first_copy_loss", "server_cpu_share"):
            assert isinstance(scenario[key], (int, float)) and math.isfinite(scenario[key]), (name, key)
        assert scenario["lost"] >= 0 and scenario["late"] >= 0 and scenario["receivers"] == 2, name
        assert 0 <= scenario["joins_failed"] <= scenario["joins"] == 2, name
        assert scenario["legit_dropped"] == {}, (name, "the server dropped legitimate traffic")
    for name, scenario in adversary["attacks"].items():
        assert scenario["goodput_ratio"] == pytest.approx(   # to the mean of the runs alone, first and last
            scenario["deliveries_per_s"] / ((alone[0]["deliveries_per_s"] + alone[1]["deliveries_per_s"]) / 2)), name
        assert scenario["p99_ratio"] == pytest.approx(
            scenario["latency_p99_ms"] / ((alone[0]["latency_p99_ms"] + alone[1]["latency_p99_ms"]) / 2)), name
        assert set(scenario["targets"]) == {"goodput_ratio", "p99_ratio", "lost", "amplification"}, name
        assert all(met in (True, False, None) for met in scenario["targets"].values()), name
        assert scenario["targets"]["lost"] == (scenario["lost"] == 0), name
    assert adversary["all_met"] == all(met is not False for s in adversary["attacks"].values()
                                       for met in s["targets"].values())


def test_the_adversary_server_runs_every_limit_at_its_default(adversary):
    from dataclasses import asdict

    from tcrp_lab.limits import Limits

    assert adversary["limits"] == asdict(Limits())
    assert adversary["options"]["handshake"] == "x25519"   # what a classroom runs: version 3


def test_the_tcp_attackers_finish_their_key_exchanges_on_either_handshake_version(adversary):
    on_rsa = strict_json(bench(*ADVERSARY_TINY, "--handshake", "rsa", "--attack", "wrong_password",
                               "--attack", "room_flood", "--json", timeout=280).stdout)
    assert on_rsa["options"]["handshake"] == "rsa"
    for run in (adversary, on_rsa):
        guesses, rooms = (run["attacks"][name]["attacker"]["answers"] for name in ("wrong_password", "room_flood"))
        assert guesses.get("wrong_password", 0) >= 1 and rooms.get("ok", 0) >= 1, run["options"]["handshake"]


def test_every_attacker_sent_from_its_own_address_and_the_server_counted_what_it_refused(adversary):
    attacks = adversary["attacks"]
    addresses = [s["ip"] for s in attacks.values()]
    assert len(set(addresses)) == len(addresses) and "127.0.0.1" not in addresses
    for name in ("resend_flood", "spoofed_resend", "hello_flood", "garbage"):
        assert attacks[name]["attacker"]["datagrams"] > 0, name
    for name in ("handshake_hold", "key_exchange_churn", "wrong_password", "idle_connections", "room_flood"):
        assert attacks[name]["attacker"]["connections"] > 0, name
    dropped = {name: s["dropped"] for name, s in attacks.items()}
    assert dropped["hello_flood"].get("throttled_hello", 0) + dropped["hello_flood"].get("throttled_address", 0) > 0
    assert {"malformed", "unknown_token"} <= set(dropped["garbage"])
    for name, reason, limit in (
            ("handshake_hold", "too_many_handshakes_from_address", "max_handshakes_per_address"),
            ("idle_connections", "too_many_connections_from_address", "max_connections_per_address")):
        attacker = attacks[name]["attacker"]
        refusals = dropped[name].get(reason, 0) + dropped[name].get("throttled_connections", 0)
        assert refusals >= attacker["refused"] > 0, name   # every refusal it got was counted
        assert 0 < attacker["held_max"] <= adversary["limits"][limit], name
    assert dropped["wrong_password"]["request_error:wrong_password"] >= 1
    answers = attacks["wrong_password"]["attacker"]["answers"]
    assert answers.get("wrong_password", 0) >= 1 and "ok" not in answers
    rooms = attacks["room_flood"]["attacker"]["answers"]
    assert 1 <= rooms.get("ok", 0) <= adversary["limits"]["max_rooms_per_address"]
    assert dropped["room_flood"].get("request_error:server_busy", 0) >= rooms.get("server_busy", 0) > 0
    assert attacks["cpu_hog"]["attacker"]["datagrams"] == attacks["cpu_hog"]["attacker"]["connections"] == 0
    assert attacks["cpu_hog"]["dropped"] == {}


def test_a_spoofed_address_gets_at_most_a_challenge_and_the_worst_amplification_is_reported(adversary):
    spoofed = adversary["attacks"]["spoofed_resend"]
    victim = next(a for a in spoofed["attacker"]["addresses"].values() if not a["proven"])
    assert victim["sent"] > 0 and 0 < victim["received"] <= 3 * victim["sent"]   # a challenge, no history
    assert spoofed["amplification"] == pytest.approx(victim["received"] / victim["sent"])
    own = adversary["attacks"]["resend_flood"]["attacker"]["addresses"]
    assert [a["proven"] for a in own.values()] == [True] and next(iter(own.values()))["received"] > 0
    unproven = {name: s["amplification"] for name, s in adversary["attacks"].items() if s["amplification"] is not None}
    assert adversary["worst_amplification"] == max(unproven.values())
    assert adversary["worst_amplification_attack"] in unproven


def test_the_adversary_table_names_every_attacker_and_the_run_alone():
    from tcrp_lab.adversary import ATTACKS

    done = bench(*ADVERSARY_TINY, "--attack", "garbage", "--attack", "cpu_hog", timeout=120)
    assert done.returncode == 0, done.stderr
    words_only = " ".join(done.stdout.split())   # the title wraps at the console's width
    for words in ("none (alone)", "none (again, last)", "garbage", "cpu_hog", "goodput", "p99", "lost",
                  "Handshake version 3, every limit at its default"):
        assert words in words_only, words
    assert not (set(ATTACKS) - {"garbage", "cpu_hog"}) & set(done.stdout.split())   # only those asked for


def test_the_throughput_scenarios_say_which_budgets_they_lift(tiny):
    from tcrp_lab.bench import LIFTED
    from tcrp_lab.limits import Limits

    assert tiny["lifted"] == LIFTED and set(LIFTED) <= set(Limits.names()) and set(LIFTED.values()) == {0}


@pytest.mark.parametrize("args, message", [
    (["--adversary", "--attack", "nope"], "invalid choice: 'nope'"),
    (["--attack", "garbage"], "--attack and --handshake are for --adversary"),
    (["--handshake", "rsa"], "--attack and --handshake are for --adversary"),
    (["--adversary", "--messages", "5"], "--messages do not apply to --adversary"),
])
def test_bad_adversary_flags_say_what_to_do(args, message):
    done = bench(*args, timeout=30)
    assert done.returncode == 2 and message in done.stderr


def test_resend_ranges_are_runs_of_at_most_one_resend_each():
    from tcrp_lab.adversary import _ranges

    assert list(_ranges([])) == []
    assert list(_ranges([3, 4, 5, 9, 11, 12])) == [(3, 5), (9, 9), (11, 12)]
    assert list(_ranges(list(range(1, 601)), most=256)) == [(1, 256), (257, 512), (513, 600)]


def test_amplification_is_bytes_back_over_bytes_in_for_unproven_and_own_addresses_apart():
    from tcrp_lab.adversary import _amplification

    report = {"addresses": {"127.0.0.2": {"proven": True, "sent": 100, "received": 5000},
                            "127.0.0.102": {"proven": False, "sent": 1000, "received": 150}}}
    assert _amplification(report) == {"amplification": 0.15, "proven_amplification": 50.0}
    assert _amplification({"addresses": {}}) == {"amplification": None, "proven_amplification": None}


def test_legacy_joins_counts_every_guest_served_and_none_closed_at_the_deadline():
    done = bench("--legacy-joins", "--joins", "3", "--rounds", "1", "--json", timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    figures = result["sizes"]["3"]
    assert figures["served_min"] == 3 and figures["lost_total"] == 0 and figures["tcp_deadline"] == 0
    assert figures["wall_s"] > 0 and figures["p50_ms"] <= figures["p95_ms"] and figures["server_cpu_ms_per_join"] >= 0
    assert result["rounds"] == 1 and result["machine"]["cpus"] >= 1


def test_an_attacker_whose_loop_crashes_is_reported_and_its_run_refused(monkeypatch, capsys):
    import io

    from tcrp_lab import adversary

    class Broken(adversary.Attack):
        name, what = "broken", "raises at once"

        def loop(self, stop, tally):
            raise TypeError("a bug in the attacker")

    monkeypatch.setitem(adversary.ATTACKS, "broken", Broken)
    config = adversary.Config("broken", "127.0.0.2", ("127.0.0.1", 9), ("127.0.0.1", 9))
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps(adversary.asdict(config)) + "\ngo\nstop\n"))
    adversary.attacker_main()
    ready, report = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert ready == {"ready": True} and report["crashed"] == ["TypeError: a bug in the attacker"]

    # The bench's side: a process that prints that report when told to stop.
    process = adversary.AttackerProcess.__new__(adversary.AttackerProcess)
    process.config = config
    process.proc = subprocess.Popen([sys.executable, "-c", f"input(); print({json.dumps(json.dumps(report))})"],
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
    with pytest.raises(RuntimeError, match="attacker broken crashed: TypeError: a bug in the attacker"):
        process.stop(timeout=30)
    assert process.proc.returncode == 0


def test_a_spoofed_victim_in_the_class_queue_counts_as_a_shared_queue():
    from tcrp_lab.adversary import shares_queue

    queues = {"127.0.0.1": 7, "127.0.0.3": 12, "127.0.0.103": 7}
    assert shares_queue(queues, ("127.0.0.3", "127.0.0.103"))          # the victim's datagrams fill the class's queue
    assert not shares_queue(queues, ("127.0.0.3", ""))                 # an attacker with no victim
    assert shares_queue({"127.0.0.1": 7, "127.0.0.3": 7}, ("127.0.0.3", ""))
    assert not shares_queue({"127.0.0.3": 7}, ("127.0.0.3",))         # the class's queue unknown: not claimed
