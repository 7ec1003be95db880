"""``python -m tcrp_lab.bench --loss``: go-back-N against selective repeat through a lossy path.

For each recovery strategy (:class:`~tcrp_lab.session.Strategy`, TCRP.md §4.5) and each loss rate,
a room of four members chats through :class:`~tcrp_lab.attacks.UdpRelay`, which drops each datagram
in either direction with that probability (seeded: the same draws for both strategies, though
which datagram meets which draw depends on timing). Three members send their share of the
messages at once; the run ends when every member holds every message. Per run:

* **lost**: datagrams the relay dropped, both ways;
* **retransmitted**: datagrams sent again — chats the clients retransmitted, and room messages the
  server sent again in answer to ``resend``;
* **per lost**: retransmitted / lost (1.0 would be one repair per loss; a lost ack or a go-back-N
  resend of what already arrived costs more);
* **time**: from the first send until every member has every message (or the run gave up);
* **gave up**: ``undelivered`` and ``missed`` events (0 when nothing was lost for good).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from .attacks import UdpRelay
from .client import ChatClient
from .crypto import ServerKey
from .server import ChatServer
from .session import Strategy

__all__ = ["LossOptions", "loss_table", "run_loss"]

LIFTED = {"chat_rate": 0, "address_rate": 0}   # three senders at full speed from one address (TCRP.md §8.4)


@dataclass
class LossOptions:
    messages: int = 501
    losses: tuple[float, ...] = (0.05, 0.2, 0.4)
    strategies: tuple[str, ...] = (Strategy.GO_BACK_N.value, Strategy.SELECTIVE.value)
    seed: int = 7
    timeout: float = 180.0     #: seconds one run may take before it is reported as not finished

    @classmethod
    def quick(cls) -> LossOptions:
        return cls(messages=150, losses=(0.05, 0.2))


def run_loss(options: LossOptions, step: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """Every (strategy, loss) run, in one process, one after the other."""
    runs = []
    with ChatServer("127.0.0.1", 0, 0, key=ServerKey.demo(), **LIFTED) as server:
        for loss in options.losses:
            for strategy in options.strategies:
                step(f"{strategy} at {loss:.0%} loss each way: {options.messages} messages")
                runs.append(one_run(server, strategy, loss, options, room=f"loss-{strategy}-{loss}"))
    return {"messages": options.messages, "seed": options.seed, "runs": runs}


def one_run(server: ChatServer, strategy: str, loss: float, options: LossOptions, room: str) -> dict[str, Any]:
    draws, lock = random.Random(options.seed), threading.Lock()

    def drop(_packet: object) -> bool:
        with lock:
            return draws.random() < loss

    resent_before = server.stats.get("resent", 0)
    relay = UdpRelay(server.address)
    clients: list[ChatClient] = []
    try:
        clients.append(ChatClient.create_room(server.address, room, "u0", udp_via=relay.address, strategy=strategy))
        clients += [ChatClient.join_room(server.address, room, f"u{i}", udp_via=relay.address, strategy=strategy)
                    for i in (1, 2, 3)]
        base = [c.session.message_count for c in clients]
        relay.drop = drop                      # the joins went through whole: loss starts with the chat
        senders = clients[:3]
        share = -(-options.messages // len(senders))
        start = time.monotonic()
        with ThreadPoolExecutor(len(senders)) as pool:
            list(pool.map(lambda c: [c.send(f"{c.username}:{n}") for n in range(share)], senders))
        total = share * len(senders)
        deadline, done = start + options.timeout, True
        for client, before in zip(clients, base):
            try:
                client.wait_for_messages(before + total, timeout=max(0.01, deadline - time.monotonic()))
            except TimeoutError:
                done = False
                break
        elapsed = time.monotonic() - start
        relay.drop = None
        lost = len(relay.captured(where=lambda p: p.forwarded is None))
        retransmitted = sum(c.stats["retransmits"] for c in clients) + server.stats.get("resent", 0) - resent_before
        gave_up = sum(c.stats["undelivered"] + c.stats["missed"] for c in clients)
        return {"strategy": strategy, "loss": loss, "messages": total, "lost": lost,
                "retransmitted": retransmitted, "per_lost": retransmitted / lost if lost else 0.0,
                "seconds": elapsed, "finished": done, "gave_up": gave_up}
    finally:
        for client in clients:
            client.close()
        relay.stop()


def loss_table(result: dict[str, Any]) -> Any:
    from rich.table import Table

    t = Table(title=f"Loss recovery: {result['messages']} messages, 3 senders, 4 members, seed {result['seed']}")
    for name in ("loss each way", "strategy", "lost", "retransmitted", "per lost", "time", "gave up"):
        t.add_column(name, justify="left" if name == "strategy" else "right")
    for r in result["runs"]:
        time_cell = f"{r['seconds']:.2f} s" if r["finished"] else f">{r['seconds']:.0f} s (unfinished)"
        t.add_row(f"{r['loss']:.0%}", r["strategy"], str(r["lost"]), str(r["retransmitted"]),
                  f"{r['per_lost']:.2f}", time_cell, str(r["gave_up"]))
    return t
