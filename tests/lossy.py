"""A lossy UDP link for tests: sits between clients and the server and drops a share of datagrams."""

from __future__ import annotations

import random
import selectors
import socket
import threading


class LossyLink:
    """Forward datagrams client <-> server, dropping each with probability ``loss`` in each direction.

    One upstream socket per client address, so the server sees each client at its own address.
    ``drop_to_client(data) -> bool`` can replace the random choice for server->client datagrams.
    """

    def __init__(self, server: tuple[str, int], loss: float = 0.0, seed: int = 0, drop_to_client=None):
        self.server = server
        self.loss = loss
        self.rng = random.Random(seed)
        self.drop_to_client = drop_to_client
        self.front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.front.bind(("127.0.0.1", 0))
        self.address = self.front.getsockname()
        self.dropped = {"up": 0, "down": 0}
        self._upstream: dict[tuple, socket.socket] = {}
        self._selector = selectors.DefaultSelector()
        self._selector.register(self.front, selectors.EVENT_READ, None)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lossy-link", daemon=True)
        self._thread.start()

    def _lose(self, direction: str, data: bytes) -> bool:
        if direction == "down" and self.drop_to_client is not None:
            lost = self.drop_to_client(data)
        else:
            lost = self.rng.random() < self.loss
        self.dropped[direction] += lost
        return lost

    def _run(self) -> None:
        while not self._stop.is_set():
            for key, _ in self._selector.select(0.1):
                sock, client = key.fileobj, key.data
                try:
                    data, peer = sock.recvfrom(65536)
                except OSError:
                    continue
                if client is None:  # from a client, to the server
                    up = self._upstream.get(peer)
                    if up is None:
                        up = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                        up.bind(("127.0.0.1", 0))
                        self._upstream[peer] = up
                        self._selector.register(up, selectors.EVENT_READ, peer)
                    if not self._lose("up", data):
                        up.sendto(data, self.server)
                elif not self._lose("down", data):
                    self.front.sendto(data, client)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for sock in [self.front, *self._upstream.values()]:
            sock.close()
        self._selector.close()
