"""A minimal TCRP/2 client written from docs/TCRP.md alone, sharing no code with tcrp_lab.

It is the contract test: if this client can join a ChatServer and chat, the server speaks the
spec, not merely our own client's dialect. Blocking, single-threaded, no retransmission. It speaks
both handshakes (§2: version 2, RSA key transport; §2.2: version 3, signed ephemeral X25519), with
pycryptodome only, where tcrp_lab does X25519 and the signature check with ``cryptography``.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import struct

from Crypto.Cipher import AES, PKCS1_OAEP
from Crypto.Hash import SHA256
from Crypto.Protocol.DH import import_x25519_public_key, key_agreement
from Crypto.Protocol.KDF import HKDF
from Crypto.PublicKey import ECC, RSA
from Crypto.Signature import pss


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def _recv_frame(sock: socket.socket) -> bytes:
    (length,) = struct.unpack(">I", _recv_exact(sock, 4))
    return _recv_exact(sock, length)


def _ocb(key: bytes, seq: int):
    return AES.new(key, AES.MODE_OCB, nonce=b"\0" * 4 + struct.pack(">Q", seq))


def _message(room: str, op: int, state: int, payload: dict) -> bytes:
    r, p = room.encode(), json.dumps(payload).encode()
    return bytes([len(r), op, state]) + len(p).to_bytes(29, "big") + r + p


def _parse(msg: bytes) -> tuple[int, int, str, dict]:
    rs, op, st = msg[0], msg[1], msg[2]
    ps = int.from_bytes(msg[3:32], "big")
    assert len(msg) == 32 + rs + ps
    return op, st, msg[32 : 32 + rs].decode(), json.loads(msg[32 + rs :])


class SpecClient:
    def __init__(self, host: str, tcp_port: int, room: str, username: str, password: str = "", create: bool = False):
        tcp = socket.create_connection((host, tcp_port), timeout=5)
        hello = _recv_frame(tcp)
        assert hello[:4] == b"TCRP" and hello[4] in (2, 3)
        self.version = hello[4]
        nonce = hello[5:21]
        if self.version == 2:
            der = hello[21:]
            premaster = os.urandom(32)
            ckx = PKCS1_OAEP.new(RSA.import_key(der), hashAlgo=SHA256).encrypt(premaster)
            info = b"tcrp/2 session"
        else:
            share = hello[21:53]
            (sig_len,) = struct.unpack(">H", hello[53:55])
            signature, der = hello[55 : 55 + sig_len], hello[55 + sig_len :]
            # raises ValueError, before anything is sent, if the share is not signed by this key
            pss.new(RSA.import_key(der), salt_bytes=32).verify(SHA256.new(b"tcrp/3 server share" + nonce + share),
                                                                signature)
            mine = ECC.generate(curve="Curve25519")
            ckx = mine.public_key().export_key(format="raw")
            premaster = key_agreement(static_priv=mine, static_pub=import_x25519_public_key(share), kdf=lambda x: x)
            assert any(premaster), "all-zero X25519 result"
            del mine   # the ephemeral private key, gone once the secret is computed
            info = b"tcrp/3 session"
        self.fingerprint = hashlib.sha256(der).hexdigest()
        tcp.sendall(struct.pack(">I", len(ckx)) + ckx)
        transcript = hashlib.sha256(hello + ckx).digest()
        okm = HKDF(premaster, 128, nonce, SHA256, context=info + transcript)
        tcp_c2s, tcp_s2c, self.udp_c2s, self.udp_s2c = (okm[i : i + 32] for i in range(0, 128, 32))
        request = _message(room, 1 if create else 2, 0, {"username": username, "password": password})
        ct, tag = _ocb(tcp_c2s, 0).encrypt_and_digest(request)
        tcp.sendall(struct.pack(">I", len(ct) + 16) + ct + tag)
        replies = []
        for seq in range(2):
            body = _recv_frame(tcp)
            replies.append(_parse(_ocb(tcp_s2c, seq).decrypt_and_verify(body[:-16], body[-16:])))
            if replies[-1][3].get("status") == "error":
                tcp.close()
                raise RuntimeError(replies[-1][3]["code"])
        tcp.close()
        op, state, _, complete = replies[1]
        assert state == 2
        self.complete = complete
        self.room = room.encode()
        self.token = bytes.fromhex(complete["token"])
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.settimeout(5)
        self.server_udp = (host, complete["udp_port"])
        self.seq = 0

    def send(self, obj: dict) -> None:
        header = bytes([len(self.room), 16]) + self.room + self.token + struct.pack(">Q", self.seq)
        cipher = _ocb(self.udp_c2s, self.seq)
        cipher.update(header)
        ct, tag = cipher.encrypt_and_digest(json.dumps(obj).encode())
        self.udp.sendto(header + ct + tag, self.server_udp)
        self.seq += 1

    def receive(self) -> dict:
        data, _ = self.udp.recvfrom(4096)
        rs = data[0]
        head = 2 + rs + 16 + 8
        (seq,) = struct.unpack(">Q", data[head - 8 : head])
        cipher = _ocb(self.udp_s2c, seq)
        cipher.update(data[:head])
        return json.loads(cipher.decrypt_and_verify(data[head:-16], data[-16:]))

    def receive_until(self, predicate, limit: int = 50) -> dict:
        for _ in range(limit):
            obj = self.receive()
            if predicate(obj):
                return obj
        raise AssertionError("expected datagram never came")

    def move_to(self, host: str) -> None:
        """Send and receive from a new UDP socket on ``host`` from now on (a NAT rebinding, TCRP.md §4.2)."""
        self.udp.close()
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind((host, 0))
        self.udp.settimeout(5)

    def answer_challenges(self, obj: dict) -> dict:
        """TCRP.md §4.2: echo a challenge's data in a response; other datagrams pass through."""
        if obj.get("type") == "challenge":
            self.send({"type": "response", "data": obj["data"]})
        return obj
