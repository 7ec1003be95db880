"""TCRP/2 (TCRP.md §2-§5, §8) as the server speaks it: the handshake, requests, and datagrams checked
against every budget before the registry decides.

:class:`SecureProfile` is what :class:`~tcrp_lab.server.ChatServer` runs by default (the legacy
design is :mod:`tcrp_lab.legacy`). The server shell hands it each connection and each datagram; it
answers through the shell (``deliver``, ``drop``, ``trace``) and never touches a socket of its own
but the connection it was given.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from .crypto import (
    FS_VERSION, RSA_VERSION, AuthenticationError, RecordLayer, ReplayError, SessionKeys, accept_client_share,
    accept_key_exchange, ephemeral_server_hello, server_hello,
)
from .events import PacketEvent
from .net import ConnectionClosed, FramedSocket, wire_frame
from .protocol import (
    MAX_DATAGRAM, MAX_FRAME, TAG_SIZE, Chat, Datagram, ErrorCode, Hello, Leave, Message, Operation, Ping,
    ProtocolError, Refused, Resend, Response, State, decode_message, decode_payload,
)
from .rooms import Delivery, Member

if TYPE_CHECKING:
    from .server import ChatServer

__all__ = ["SecureProfile"]

MAX_FAILED_REQUESTS = 3       #: failed requests before the server closes the connection
HANDSHAKES = {"x25519": FS_VERSION, "rsa": RSA_VERSION}   #: ChatServer(handshake=...) -> TCRP.md §2.2 / §2


class SecureProfile:
    """TCRP/2 (TCRP.md §2-§5): the handshake, encrypted requests and AEAD datagrams."""

    name = "TCRP/2"
    pinned_key = True        # one long-term key: clients pin its fingerprint (§2)
    one_udp_queue = False    # datagrams are independent (§4): the port's queues may be many

    def __init__(self, server: ChatServer, handshake: str | None = None):
        handshake = handshake or getattr(server, "handshake", "x25519")   # ChatServer(handshake=...)
        if handshake not in HANDSHAKES:
            raise ValueError(f"handshake must be 'x25519' (version 3, forward secrecy) or 'rsa' (version 2), "
                             f"not {handshake!r}")
        self.server = server
        self.registry = server.registry
        self.handshake = handshake
        self.version = HANDSHAKES[handshake]

    # TCP: handshake, then requests until a successful create/join (or 3 failures).
    def handle_connection(self, io: FramedSocket, peer: tuple[str, int]) -> None:
        server, trace = self.server, self.server.trace
        session, local = f"tcp {peer[0]}:{peer[1]}", io.sock.getsockname()[:2]
        deadline, io.deadline = io.deadline, min(io.deadline or float("inf"),
                                                 time.monotonic() + server.limits.key_exchange_timeout)
        ephemeral = None
        if self.version == FS_VERSION:   # §2.2: the RSA signature is this version's costly step
            with self._rsa_slot(io):
                hello, ephemeral = ephemeral_server_hello(server.key, server.rng)
        else:
            hello = server_hello(server.key, server.rng)
        if trace is not None:
            trace(PacketEvent(time.time(), "server", "out", "tcp", peer, "ServerHello", wire_frame(hello.body),
                message=hello, session=session, local=local))
        try:
            io.send(hello.body)
            ckx = io.recv()   # §8.1: within key_exchange_timeout, or the connection is closed
        except BaseException:
            if ephemeral is not None:
                ephemeral.erase()
            raise
        keys = None
        try:
            if ephemeral is not None:
                keys = accept_client_share(ephemeral, hello, ckx)   # cheap: no RSA slot needed
            else:
                with self._rsa_slot(io):
                    keys = accept_key_exchange(server.key, hello, ckx)
        finally:  # traced even when it fails
            io.deadline = deadline
            if trace is not None:
                trace(PacketEvent(time.time(), "server", "in", "tcp", peer, "ClientKeyExchange", wire_frame(ckx),
                    session=session, keys=keys, hello=hello, local=local))
        server.key_exchanged(io.sock)
        records = RecordLayer.server(keys)
        failures = 0
        while failures < MAX_FAILED_REQUESTS:
            try:
                body = io.recv()
            except ConnectionClosed:
                if io.partial:
                    raise
                return  # a client that listed rooms and went: a normal end
            seq = records.recv_seq
            try:
                plaintext = records.open(body)
            except AuthenticationError:
                if trace is not None:
                    trace(PacketEvent(time.time(), "server", "in", "tcp", peer, "rejected", wire_frame(body),
                        seq=seq, error="frame does not authenticate", session=session, local=local))
                server.drop("tcp_bad_tag", peer)
                return  # TCRP.md §2: close, answer nothing
            request: Message | None = None
            complete, deliveries = None, []
            try:
                request = decode_message(plaintext)
                if request.state is not State.REQUEST:
                    raise ProtocolError(f"a client sends requests (state 0), not state {int(request.state)}")
                reply, complete, deliveries = self._answer(request, keys, peer[0])
            except ProtocolError as exc:
                reply = _error_reply(request, plaintext, exc)
            if trace is not None:
                trace(PacketEvent(time.time(), "server", "in", "tcp", peer, "request", wire_frame(body), seq=seq,
                    message=request, plaintext=plaintext, session=session, local=local))
            for message in (reply, complete) if complete else (reply,):
                out = message.encode()
                seq = records.send_seq
                body = records.seal(out)
                if trace is not None:
                    trace(PacketEvent(time.time(), "server", "out", "tcp", peer,
                        "complete" if message.state is State.COMPLETE else "response", wire_frame(body), seq=seq,
                        message=message, plaintext=out, session=session, local=local))
                io.send(body)
            if complete:
                server.deliver(deliveries)  # the "joined" event, now that the COMPLETE is out
                return
            if reply.payload.get("status") == "error":
                failures += 1
                server.drop("request_error:" + str(reply.payload.get("code")), peer)
        server.drop("too_many_failed_requests", peer)

    @contextmanager
    def _rsa_slot(self, io: FramedSocket) -> Iterator[None]:
        """One of the few RSA private-key operations at once (§8.1), waited for within the key exchange deadline."""
        slots = self.server.key_exchanges
        if not slots.acquire(timeout=max(0.0, io.deadline - time.monotonic())):
            raise TimeoutError("no RSA slot before the key exchange deadline")
        try:
            yield
        finally:
            slots.release()

    def _answer(self, request: Message, keys: SessionKeys,
                source: str) -> tuple[Message, Message | None, list[Delivery]]:
        """The RESPONSE, the COMPLETE (after a create or join) and what the room must be told."""
        if request.operation is Operation.LIST_ROOMS:
            return _room_list_reply(request, self.registry.list_rooms()), None, []
        username, password = request.credentials()
        join = self.registry.create_room if request.operation is Operation.CREATE_ROOM else self.registry.join_room
        member, deliveries = join(request.room, username, password, keys, source=source)
        self.server.count("joins")
        room = member.room
        complete = request.reply({
            "token": member.token.hex(), "udp_port": self.server.address.udp_port, "room": room.name,
            "username": member.username, "is_host": member.is_host, "members": list(room.members),
        }, State.COMPLETE)
        return request.reply({"status": "ok"}), complete, deliveries

    # UDP: authenticate, check the budgets, then let the registry decide.
    def handle_datagram(self, data: bytes, peer: tuple[str, int]) -> None:
        server, registry = self.server, self.registry
        try:
            datagram = Datagram.decode(data)
        except ProtocolError as exc:
            return self._reject(data, peer, "oversize" if len(data) > MAX_DATAGRAM else "malformed", exc.reason)
        member = registry.session(datagram.token)
        if member is None:
            return self._reject(data, peer, "unknown_token", "no session has this token")
        if datagram.room != member.room.name:
            return self._reject(data, peer, "wrong_room", f"the session's room is {member.room.name!r}")
        now = server.clock()
        try:
            plaintext = member.channel.open(datagram)
        except ReplayError as exc:
            return self._reject(data, peer, "replayed", exc.reason, member)
        except AuthenticationError as exc:
            return self._reject(data, peer, "bad_tag", exc.reason, member)
        challenge = registry.arrived(member, peer, len(data))   # §4.2: a new address is proven first
        try:
            payload = decode_payload(plaintext, from_server=False)
        except ProtocolError as exc:
            server.deliver(challenge)
            return self._reject(data, peer, "bad_payload", exc.reason, member, plaintext)
        if server.trace is not None:
            server.trace(PacketEvent(time.time(), "server", "in", "udp", peer, payload.TYPE, data, message=payload,
                plaintext=plaintext, session=member.token.hex(), user=member.username,
                local=server.local_address("udp")))
        server.deliver(challenge + self._dispatch(member, payload, peer, now))

    def _dispatch(self, member: Member, payload: object, peer: tuple[str, int], now: float) -> list[Delivery]:
        registry, budget = self.registry, member.budget
        assert budget is not None
        if isinstance(payload, Hello):
            return registry.hello(member) if budget.hello.take(now) else self._throttled("hello", member, peer)
        if isinstance(payload, Response):
            answer = registry.respond(member, peer, payload.data)
            return answer if answer is not None else self._throttled("bad_response", member, peer)
        if isinstance(payload, Leave):
            return registry.leave(member)
        if member.provisional:  # §8.2: nothing but hello counts before the first hello
            return self._throttled("before_hello", member, peer)
        if isinstance(payload, Chat):
            if not budget.chat.take(now):
                return self._throttled("chat", member, peer)
            out = registry.chat(member, payload.id, payload.text)
            if out and isinstance(out[0].payload, Refused):  # §4.3: refused, and counted
                self._throttled("refused_text", member, peer)
            return out
        if isinstance(payload, Ping):
            return registry.ping(member) if budget.ping.take(now) else self._throttled("ping", member, peer)
        if isinstance(payload, Resend):
            cut = member.resend_cut
            out = registry.resend(member, payload.first, payload.last, payload.ranges)
            self.server.count("resent", len(out))
            if member.resend_cut > cut:  # §8.4: the session's resend budget answered only part of it
                self._throttled("resend", member, peer)
            return out
        return []

    def _throttled(self, what: str, member: Member, peer: tuple[str, int]) -> list[Delivery]:
        self.server.drop(f"throttled_{what}" if what in ("hello", "chat", "ping", "resend") else what, peer,
                         who=f"{member.username} in {member.room.name}")   # who: for the teacher's log
        return []

    def _reject(self, data: bytes, peer: tuple[str, int], reason: str, detail: str,
                member: Member | None = None, plaintext: bytes | None = None) -> None:
        server = self.server
        server.drop(reason, peer, detail)
        if server.trace is not None and server.trace_rejected():  # bounded: a flood is counted, not traced
            server.trace(PacketEvent(time.time(), "server", "in", "udp", peer, "rejected", data,
                error=f"{reason}: {detail}", plaintext=plaintext, session=member.token.hex() if member else None,
                local=server.local_address("udp")))

    def reap(self, now: float) -> None:
        self.server.deliver(self.registry.reap(now))

    def shutdown(self) -> None:
        self.server.deliver(self.registry.close_all("server_shutdown"))

    def counts(self) -> tuple[int, int]:
        return self.registry.counts()


def _room_list_reply(request: Message, rooms: list[dict[str, Any]]) -> Message:
    """The LIST_ROOMS response, cut to as many rooms as fit in one frame (with ``"truncated": N``
    saying how many were left out): a thousand long non-ASCII names would not fit in 64 KiB."""
    reply = request.reply({"status": "ok", "rooms": rooms})
    if len(reply.encode()) + TAG_SIZE <= MAX_FRAME:
        return reply
    low, high = 0, len(rooms)  # the largest count that fits, by bisection
    while low < high:
        mid = (low + high + 1) // 2
        fits = len(request.reply({"status": "ok", "rooms": rooms[:mid], "truncated": len(rooms) - mid}).encode())
        low, high = (mid, high) if fits + TAG_SIZE <= MAX_FRAME else (low, mid - 1)
    return request.reply({"status": "ok", "rooms": rooms[:low], "truncated": len(rooms) - low})


def _error_reply(request: Message | None, plaintext: bytes, exc: ProtocolError) -> Message:
    """Answer a failed request; echo its operation and room when they could be read."""
    if request is None:  # undecodable: echo the operation byte if it is one, with no room
        op = plaintext[1] if len(plaintext) > 1 and plaintext[1] in {int(o) for o in Operation} else 3
        request = Message(Operation(op), State.REQUEST)
    return request.error(exc.code or ErrorCode.INVALID_REQUEST, exc.reason, exc.retry_after)
