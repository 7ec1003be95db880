"""Chat with a TCRP server from outside its container: two members, one message each way.

The container check (scripts/container-check.sh) publishes a server's 9001/tcp and 9002/udp on
127.0.0.1 and runs this from the host, so it proves what a classroom needs: the TCP handshake,
room creation and joining, and chat datagrams in both directions through the published ports.

    python scripts/chat_probe.py --tcp-port 19001 --udp-port 19002
    python scripts/chat_probe.py --local        # against a server in this process (no container)

The server advertises the UDP port it sees (9002 inside the container); ``udp_via`` makes the
clients use the published host port instead. Exits non-zero with the reason on any failure.
"""

from __future__ import annotations

import argparse
import secrets
import sys
import time

from tcrp_lab import ChatClient, ChatServer
from tcrp_lab.client import ControlConnection, TcrpError


def wait_for_server(host: str, tcp_port: int, timeout: float) -> str:
    """Retry the handshake until the server answers (it may still be starting); its fingerprint."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with ControlConnection((host, tcp_port), timeout=min(5.0, timeout)) as control:
                control.list_rooms()
                return control.server_hello.fingerprint
        except (TcrpError, OSError) as exc:
            if time.monotonic() > deadline:
                raise SystemExit(f"chat probe: no TCRP server answered on {host}:{tcp_port} "
                                 f"within {timeout} s ({exc})") from None
            time.sleep(0.5)  # the server is still starting: poll again, bounded by the deadline


def wait_for_text(client: ChatClient, sender: str, text: str, timeout: float) -> None:
    """Block until ``client`` has received ``text`` from ``sender`` (TimeoutError after ``timeout``)."""
    deadline = time.monotonic() + timeout
    seen = 0
    while True:
        messages = client.wait_for_messages(seen + 1, timeout=max(0.0, deadline - time.monotonic()))
        if any(m.sender == sender and m.text == text for m in messages):
            return
        seen = len(messages)


def probe(host: str, tcp_port: int, udp_port: int | None, timeout: float) -> None:
    fingerprint = wait_for_server(host, tcp_port, timeout)
    options = {"udp_via": (host, udp_port)} if udp_port else {}
    room, password = f"probe-{secrets.token_hex(3)}", secrets.token_hex(8)
    alice = ChatClient.create_room((host, tcp_port), room, username="alice", password=password,
                                   fingerprint=fingerprint, timeout=timeout, **options)
    try:
        bob = ChatClient.join_room((host, tcp_port), room, username="bob", password=password,
                                   fingerprint=fingerprint, timeout=timeout, **options)
        try:
            alice.send("hello bob, from outside the container")
            wait_for_text(bob, "alice", "hello bob, from outside the container", timeout)
            bob.send("hello alice, loud and clear")
            wait_for_text(alice, "bob", "hello alice, loud and clear", timeout)
            rooms = {r.name: r for r in ChatClient.list_rooms((host, tcp_port), fingerprint=fingerprint)}
            if room not in rooms:
                raise SystemExit(f"chat probe: room {room!r} missing from the server's list {sorted(rooms)}")
        finally:
            bob.leave()
    finally:
        alice.leave()
    print(f"chat probe: alice and bob chatted both ways in {room!r} via tcp {host}:{tcp_port}"
          f"{f', udp {host}:{udp_port}' if udp_port else ''}; server key {fingerprint[:16]}...")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--tcp-port", type=int, default=9001, help="the server's TCP port as published")
    parser.add_argument("--udp-port", type=int, default=None,
                        help="the server's UDP port as published (default: the one the server advertises)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for each step")
    parser.add_argument("--local", action="store_true", help="probe a server started in this process")
    args = parser.parse_args(argv)
    try:
        if args.local:
            with ChatServer(host="127.0.0.1", tcp_port=0, udp_port=0) as server:
                probe("127.0.0.1", server.address.tcp_port, None, args.timeout)
        else:
            probe(args.host, args.tcp_port, args.udp_port, args.timeout)
    except (TcrpError, TimeoutError) as exc:
        print(f"chat probe failed: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
