"""TCRP/2 cryptography as pure steps: keys, handshake, AEAD records, replay window, passwords.

Sans-IO like :mod:`tcrp_lab.protocol`: bytes in, bytes or keys out, nothing touches a socket.
The version 2 handshake (TCRP.md §2, RSA key transport) in four calls::

    hello = server_hello(server_key)                      # server: ServerHello
    ckx, client_keys = client_key_exchange(hello)         # client: RSA-OAEP(premaster)
    server_keys = accept_key_exchange(server_key, hello, ckx)   # server
    assert client_keys == server_keys

and version 3 (TCRP.md §2.2, ephemeral X25519 signed with the RSA key: forward secrecy)::

    hello, ephemeral = ephemeral_server_hello(server_key)  # server: signed X25519 share
    ckx, client_keys = client_key_exchange(hello)          # client: checks the signature, its own share
    server_keys = accept_client_share(ephemeral, hello, ckx)   # server; ``ephemeral`` is spent

pycryptodome does the teaching-friendly parts (RSA key generation and OAEP encryption with an
injectable randomness, HKDF, scrypt); OpenSSL, through ``cryptography``, does the two hot spots
(AES-OCB sealing and the server's RSA-OAEP decryption), producing the same bytes.

Randomness comes from an injectable ``rng(n) -> bytes`` (default: the OS). Lessons pass a
:class:`SeededRandom` so their keys, tokens and traces are the same on every run; a real server
never does.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import os
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESOCB3
from Crypto.Cipher import PKCS1_OAEP
from Crypto.Hash import SHA256, SHAKE256
from Crypto.Protocol.KDF import HKDF, scrypt
from Crypto.PublicKey import RSA
from Crypto.Signature import pss

from .protocol import MAGIC, SEQ_BYTES, TAG_SIZE, VERSION, Datagram, ProtocolError

__all__ = [
    "AuthenticationError", "BadSignature", "Ephemeral", "RecordLayer", "ReplayError", "ReplayWindow",
    "SeededRandom", "ServerHello", "ServerKey", "SessionKeys", "UdpChannel", "accept_client_share",
    "accept_key_exchange", "client_key_exchange", "derive_session_keys", "derive_session_keys_v3",
    "ephemeral_server_hello", "hash_password", "open_sealed", "seal", "server_hello", "verify_password",
    "verify_server_hello",
]

RandomSource = Callable[[int], bytes]
system_random: RandomSource = secrets.token_bytes

RSA_BITS = 2048
NONCE_SIZE = 16          # server_nonce in ServerHello
PREMASTER_SIZE = 32
KEY_SIZE = 32            # AES-256
HKDF_INFO = b"tcrp/2 session"
RSA_VERSION, FS_VERSION = 2, 3         # §2: RSA key transport; §2.2: ephemeral X25519 (forward secrecy)
SHARE_SIZE = 32                        # an X25519 public key
SHARE_LABEL = b"tcrp/3 server share"   # §2.2: what the server signs, before nonce | share
HKDF_INFO_V3 = b"tcrp/3 session"
PSS_SALT = 32
REPLAY_WINDOW = 64

# The server's two hot spots run in OpenSSL (the `cryptography` package): an AES-OCB seal per
# member per room message (~1 µs with a key made once, against ~17-40 µs for pycryptodome's
# AES.new + encrypt_and_digest, mostly Python), and the RSA-OAEP decrypt of each join (~0.3 ms
# against ~1.4 ms). Same algorithms, same bytes: the conformance vectors still pass.
_OAEP = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
_PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=PSS_SALT)   # §2.2


class AuthenticationError(ProtocolError):
    """A frame or datagram whose AEAD tag does not verify: tampered, forged or wrong key."""

    def __init__(self, reason: str = "authentication tag does not verify"):
        super().__init__(reason, code=None)


class ReplayError(ProtocolError):
    """A datagram whose sequence number was already seen or is older than the window."""

    def __init__(self, reason: str):
        super().__init__(reason, code=None)


class BadSignature(ProtocolError):
    """A version 3 ServerHello whose share is not signed by the key it carries (§2.2): someone
    between client and server replaced the share, or the key."""

    def __init__(self, reason: str = "the ServerHello's signature does not verify with its key"):
        super().__init__(reason, code=None)


class SeededRandom:
    """Deterministic "random" bytes: a SHAKE-256 stream of the seed. For lessons and tests only.

    Any two instances with the same seed produce the same bytes in the same order, so a notebook
    can show the same keys and tokens on every run. Thread-safe.
    """

    def __init__(self, seed: int | str | bytes):
        self.seed = seed
        seed_bytes = seed if isinstance(seed, bytes) else str(seed).encode("utf-8")
        self._xof = SHAKE256.new(b"tcrp_lab seeded rng|" + seed_bytes)
        self._lock = threading.Lock()

    def __call__(self, n: int) -> bytes:
        with self._lock:
            return self._xof.read(n)

    def __repr__(self) -> str:
        return f"SeededRandom({self.seed!r})"


def fingerprint(public_der: bytes) -> str:
    """Lowercase hex SHA-256 of the public key's DER, as a client pins it."""
    return hashlib.sha256(public_der).hexdigest()


class ServerKey:
    """The server's long-term RSA key: made once per server (or loaded), never per connection."""

    def __init__(self, rsa_key: RSA.RsaKey):
        if not rsa_key.has_private():
            raise ValueError("a server key needs the private half")
        self.rsa = rsa_key
        self.public_der: bytes = rsa_key.publickey().export_key("DER")
        self.fingerprint: str = fingerprint(self.public_der)
        self._private = serialization.load_der_private_key(rsa_key.export_key("DER"), password=None)

    @classmethod
    def generate(cls, bits: int = RSA_BITS, rng: RandomSource | None = None) -> ServerKey:
        return cls(RSA.generate(bits, randfunc=rng))

    @classmethod
    def from_pem(cls, pem: str | bytes) -> ServerKey:
        return cls(RSA.import_key(pem))

    @classmethod
    def load(cls, path: str | Path) -> ServerKey:
        try:
            return cls.from_pem(Path(path).read_bytes())
        except (ValueError, IndexError, TypeError) as exc:
            raise ValueError(f"{path} is not an RSA private key in PEM format ({exc})") from None

    @classmethod
    def load_or_create(cls, path: str | Path, bits: int = RSA_BITS) -> ServerKey:
        """Load the key at ``path``, or make one and save it there (readable by its owner only)."""
        path = Path(path)
        if path.exists():
            return cls.load(path)
        key = cls.generate(bits)
        key.save(path)
        return key

    @classmethod
    def demo(cls) -> ServerKey:
        """A fixed, published key (the one of the conformance vectors). For lessons only."""
        return cls.from_pem(resources.files(__package__).joinpath("demo_key.pem").read_bytes())

    def save(self, path: str | Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(self.rsa.export_key("PEM"))

    def decrypt(self, ciphertext: bytes) -> bytes:
        """RSA-OAEP (SHA-256, MGF1-SHA-256, empty label) decryption; ProtocolError on failure."""
        try:
            return self._private.decrypt(ciphertext, _OAEP)  # type: ignore[union-attr]
        except (ValueError, TypeError):
            raise ProtocolError("ClientKeyExchange does not decrypt with the server key", code=None) from None

    def sign(self, data: bytes, rng: RandomSource = system_random) -> bytes:
        """RSA-PSS (SHA-256, MGF1-SHA-256, 32-byte salt) signature of ``data`` (§2.2).

        OpenSSL signs (~4x faster) unless a lesson injected its own randomness: then pycryptodome
        draws the salt from it, so the lesson's ServerHello is the same bytes on every run."""
        if rng is system_random:
            return self._private.sign(data, _PSS, hashes.SHA256())  # type: ignore[union-attr,call-arg]
        return pss.new(self.rsa, salt_bytes=PSS_SALT, rand_func=rng).sign(SHA256.new(data))

    def __repr__(self) -> str:
        return f"ServerKey({self.rsa.size_in_bits()} bits, fingerprint {self.fingerprint[:16]}...)"


# --- Handshake (§2) --------------------------------------------------------------------------

@dataclass(frozen=True)
class ServerHello:
    """Version 2 (§2): ``"TCRP" | version u8 | server_nonce (16) | public key DER``.

    Version 3 (§2.2): ``"TCRP" | 3 | server_nonce (16) | share (32) | sig_len u16 | signature |
    public key DER``, the signature (RSA-PSS) over ``"tcrp/3 server share" | nonce | share``."""

    nonce: bytes
    public_der: bytes
    version: int = VERSION
    share: bytes = b""
    signature: bytes = b""

    @property
    def body(self) -> bytes:
        head = MAGIC + bytes([self.version]) + self.nonce
        if self.version == FS_VERSION:
            head += self.share + len(self.signature).to_bytes(2, "big") + self.signature
        return head + self.public_der

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.public_der)

    @property
    def forward_secret(self) -> bool:
        return self.version == FS_VERSION

    @property
    def signed(self) -> bytes:
        """What the signature covers (§2.2)."""
        return SHARE_LABEL + self.nonce + self.share

    @classmethod
    def decode(cls, body: bytes) -> ServerHello:
        head = len(MAGIC) + 1 + NONCE_SIZE
        if len(body) <= head or body[: len(MAGIC)] != MAGIC:
            raise ProtocolError("not a TCRP ServerHello", code=None)
        version, nonce = body[len(MAGIC)], body[len(MAGIC) + 1 : head]
        if version == RSA_VERSION:
            return cls(nonce=nonce, public_der=body[head:], version=version)
        if version != FS_VERSION:
            raise ProtocolError(f"server speaks TCRP version {version}, not {RSA_VERSION} or {FS_VERSION}", code=None)
        at = head + SHARE_SIZE + 2
        if len(body) <= at:
            raise ProtocolError("a version 3 ServerHello cut short before its signature", code=None)
        sig_len = int.from_bytes(body[at - 2 : at], "big")
        if len(body) <= at + sig_len:
            raise ProtocolError(f"a version 3 ServerHello whose signature ({sig_len} bytes) leaves no key", code=None)
        return cls(nonce=nonce, public_der=body[at + sig_len :], version=version, share=body[head : head + SHARE_SIZE],
                   signature=body[at : at + sig_len])


@dataclass(frozen=True)
class SessionKeys:
    """The four 32-byte keys of one session, in the order HKDF produces them."""

    tcp_c2s: bytes = field(repr=False)
    tcp_s2c: bytes = field(repr=False)
    udp_c2s: bytes = field(repr=False)
    udp_s2c: bytes = field(repr=False)

    def hex(self) -> dict[str, str]:
        return {name: getattr(self, name).hex() for name in ("tcp_c2s", "tcp_s2c", "udp_c2s", "udp_s2c")}

    def __repr__(self) -> str:
        return "SessionKeys(" + ", ".join(f"{k}={v[:8]}…" for k, v in self.hex().items()) + ")"


def server_hello(key: ServerKey, rng: RandomSource = system_random) -> ServerHello:
    return ServerHello(nonce=rng(NONCE_SIZE), public_der=key.public_der)


def derive_session_keys(premaster: bytes, hello: ServerHello, client_key_exchange: bytes) -> SessionKeys:
    """HKDF-SHA-256(premaster, salt=server_nonce, info="tcrp/2 session" | transcript), 4 x 32 bytes."""
    transcript = hashlib.sha256(hello.body + client_key_exchange).digest()
    keys = HKDF(premaster, KEY_SIZE, hello.nonce, SHA256, num_keys=4, context=HKDF_INFO + transcript)
    return SessionKeys(*keys)


def client_key_exchange(hello: ServerHello, rng: RandomSource = system_random,
                        premaster: bytes | None = None) -> tuple[bytes, SessionKeys]:
    """Client step: the ClientKeyExchange body and the session keys, for either version.

    Version 2: encrypt a fresh premaster to the server key. Version 3: verify the signature on
    the server's share (BadSignature if it fails: send nothing), answer with our own share."""
    if hello.version == FS_VERSION:
        return _client_share(hello, rng)
    premaster = rng(PREMASTER_SIZE) if premaster is None else premaster
    try:
        public = RSA.import_key(hello.public_der)
    except (ValueError, IndexError, TypeError):
        raise ProtocolError("ServerHello carries no valid RSA public key", code=None) from None
    body = PKCS1_OAEP.new(public, hashAlgo=SHA256, randfunc=rng).encrypt(premaster)
    return body, derive_session_keys(premaster, hello, body)


def accept_key_exchange(key: ServerKey, hello: ServerHello, body: bytes) -> SessionKeys:
    """Server step: recover the premaster and derive the same keys as the client."""
    premaster = key.decrypt(body)
    if len(premaster) != PREMASTER_SIZE:
        raise ProtocolError(f"premaster is {len(premaster)} bytes, not {PREMASTER_SIZE}", code=None)
    return derive_session_keys(premaster, hello, body)


# --- Version 3: ephemeral X25519, signed (§2.2) -----------------------------------------------

class Ephemeral:
    """One side's X25519 key for one connection. :meth:`agree` spends it: the private half is
    dropped (and its seed overwritten) once the shared secret is computed (§2.2)."""

    def __init__(self, rng: RandomSource = system_random):
        self._seed = bytearray(rng(SHARE_SIZE))
        self._key: X25519PrivateKey | None = X25519PrivateKey.from_private_bytes(bytes(self._seed))
        self.share: bytes = self._key.public_key().public_bytes_raw()

    @property
    def spent(self) -> bool:
        return self._key is None

    def erase(self) -> None:
        """Forget the private half (Python cannot promise no copy is left in memory; OpenSSL
        clears its own when the object goes)."""
        self._key = None
        self._seed[:] = bytes(len(self._seed))

    def agree(self, peer_share: bytes) -> bytes:
        """X25519(own private, peer share); ProtocolError for a share that gives all zeros."""
        if self._key is None:
            raise RuntimeError("this ephemeral key was already used and erased")
        key = self._key
        self.erase()
        if len(peer_share) != SHARE_SIZE:
            raise ProtocolError(f"an X25519 share is {SHARE_SIZE} bytes, not {len(peer_share)}", code=None)
        try:   # OpenSSL refuses a low-order point, whose result would be all zeros
            shared = key.exchange(X25519PublicKey.from_public_bytes(peer_share))
        except ValueError:
            shared = bytes(SHARE_SIZE)
        if not any(shared):
            raise ProtocolError("the X25519 shared secret is all zeros (a low-order share): abort", code=None)
        return shared


def derive_session_keys_v3(shared: bytes, hello: ServerHello, client_share: bytes) -> SessionKeys:
    """HKDF-SHA-256(shared, salt=server_nonce, info="tcrp/3 session" | transcript), 4 x 32 bytes."""
    transcript = hashlib.sha256(hello.body + client_share).digest()
    keys = HKDF(shared, KEY_SIZE, hello.nonce, SHA256, num_keys=4, context=HKDF_INFO_V3 + transcript)
    return SessionKeys(*keys)


def ephemeral_server_hello(key: ServerKey, rng: RandomSource = system_random) -> tuple[ServerHello, Ephemeral]:
    """Server step 1: a nonce, a fresh share signed with the long-term key; keep the Ephemeral."""
    nonce = rng(NONCE_SIZE)
    ephemeral = Ephemeral(rng)
    unsigned = ServerHello(nonce, key.public_der, FS_VERSION, ephemeral.share)
    return ServerHello(nonce, key.public_der, FS_VERSION, ephemeral.share, key.sign(unsigned.signed, rng)), ephemeral


def verify_server_hello(hello: ServerHello) -> None:
    """BadSignature unless the share is signed by the key in the same ServerHello (§2.2).

    Pinning (or trust on first use) is what ties that key to the server; this ties the share to it."""
    try:
        public = serialization.load_der_public_key(hello.public_der)
    except (ValueError, TypeError):
        raise ProtocolError("ServerHello carries no valid RSA public key", code=None) from None
    if not isinstance(public, rsa.RSAPublicKey):
        raise ProtocolError("ServerHello carries a public key that is not RSA", code=None)
    try:
        public.verify(hello.signature, hello.signed, _PSS, hashes.SHA256())
    except InvalidSignature:
        raise BadSignature() from None


def _client_share(hello: ServerHello, rng: RandomSource) -> tuple[bytes, SessionKeys]:
    verify_server_hello(hello)
    ephemeral = Ephemeral(rng)
    shared = ephemeral.agree(hello.share)
    return ephemeral.share, derive_session_keys_v3(shared, hello, ephemeral.share)


def accept_client_share(ephemeral: Ephemeral, hello: ServerHello, body: bytes) -> SessionKeys:
    """Server step 2: the keys from our ephemeral and the client's share; the ephemeral is spent."""
    if len(body) != SHARE_SIZE:
        ephemeral.erase()
        raise ProtocolError(f"a version 3 ClientKeyExchange is a {SHARE_SIZE}-byte share, not {len(body)} bytes",
                            code=None)
    return derive_session_keys_v3(ephemeral.agree(body), hello, body)


# --- AEAD records ----------------------------------------------------------------------------

def _nonce(seq: int) -> bytes:
    return b"\x00\x00\x00\x00" + seq.to_bytes(SEQ_BYTES, "big")


def seal(key: bytes, seq: int, plaintext: bytes, aad: bytes = b"") -> bytes:
    """AES-256-OCB with nonce ``0000 | seq``: returns ``ciphertext | tag``."""
    return AESOCB3(key).encrypt(_nonce(seq), plaintext, aad)


def open_sealed(key: bytes, seq: int, sealed: bytes, aad: bytes = b"") -> bytes:
    """Inverse of :func:`seal`; raises AuthenticationError if anything was changed."""
    if len(sealed) < TAG_SIZE:
        raise AuthenticationError("sealed data shorter than its tag")
    return _open(AESOCB3(key), _nonce(seq), sealed, aad)


def _open(aead: AESOCB3, nonce: bytes, sealed: bytes, aad: bytes) -> bytes:
    try:
        return aead.decrypt(nonce, sealed, aad)
    except InvalidTag:
        raise AuthenticationError() from None


class RecordLayer:
    """Encrypted TCP frame bodies with implicit sequence numbers, one counter per direction."""

    def __init__(self, send_key: bytes, recv_key: bytes):
        self.send_key, self.recv_key = send_key, recv_key
        self.send_seq = 0
        self.recv_seq = 0

    @classmethod
    def client(cls, keys: SessionKeys) -> RecordLayer:
        return cls(keys.tcp_c2s, keys.tcp_s2c)

    @classmethod
    def server(cls, keys: SessionKeys) -> RecordLayer:
        return cls(keys.tcp_s2c, keys.tcp_c2s)

    def seal(self, plaintext: bytes) -> bytes:
        body = seal(self.send_key, self.send_seq, plaintext)
        self.send_seq += 1
        return body

    def open(self, body: bytes) -> bytes:
        plaintext = open_sealed(self.recv_key, self.recv_seq, body)
        self.recv_seq += 1  # only after it verified: a forged frame does not advance the count
        return plaintext


class ReplayWindow:
    """The 64-wide sliding anti-replay window of IPsec ESP (RFC 4303 §3.4.3).

    ``check(seq)`` says whether a datagram may be accepted (call it before the costly decrypt);
    ``update(seq)`` records one that authenticated. Bit i of the mask is ``top - i``.
    """

    def __init__(self, size: int = REPLAY_WINDOW):
        self.size = size
        self.top = -1      # highest seq accepted so far
        self.mask = 0

    def check(self, seq: int) -> bool:
        if seq > self.top:
            return True
        offset = self.top - seq
        return offset < self.size and not (self.mask >> offset) & 1

    def update(self, seq: int) -> None:
        if seq > self.top:
            self.mask = ((self.mask << (seq - self.top)) | 1) & ((1 << self.size) - 1)
            self.top = seq
        else:
            self.mask |= 1 << (self.top - seq)

    def accept(self, seq: int) -> bool:
        """check and update in one: True if ``seq`` is new (and now recorded)."""
        if not self.check(seq):
            return False
        self.update(seq)
        return True


class UdpChannel:
    """One side of a session's UDP traffic: seals with the next seq, opens through a replay window.

    ``client`` and ``server`` pick the key of each direction. Sealing is safe from several threads
    (the sequence counter is an ``itertools.count``, whose ``next`` is atomic); opening belongs to
    the one receiving thread.
    """

    def __init__(self, room: str, token: bytes, send_key: bytes, recv_key: bytes):
        self.room = room
        self.token = token
        self.send_key, self.recv_key = send_key, recv_key
        self._room_bytes = room.encode("utf-8")
        self._header_prefix = Datagram.make_header(self._room_bytes, token, 0)[:-SEQ_BYTES]  # all but the seq
        self._send_aead, self._recv_aead = AESOCB3(send_key), AESOCB3(recv_key)  # keyed once per session
        self._send_seq = itertools.count()
        self.window = ReplayWindow()

    @classmethod
    def client(cls, room: str, token: bytes, keys: SessionKeys) -> UdpChannel:
        return cls(room, token, keys.udp_c2s, keys.udp_s2c)

    @classmethod
    def server(cls, room: str, token: bytes, keys: SessionKeys) -> UdpChannel:
        return cls(room, token, keys.udp_s2c, keys.udp_c2s)

    def seal(self, plaintext: bytes) -> bytes:
        seq = next(self._send_seq).to_bytes(SEQ_BYTES, "big")
        header = self._header_prefix + seq
        return header + self._send_aead.encrypt(b"\x00\x00\x00\x00" + seq, plaintext, header)  # seal(), keyed once

    def open(self, datagram: Datagram) -> bytes:
        """Authenticate and decrypt; ReplayError or AuthenticationError if it must be dropped."""
        if not self.window.check(datagram.seq):
            raise ReplayError(f"seq {datagram.seq} replayed or older than the window")
        plaintext = _open(self._recv_aead, _nonce(datagram.seq), datagram.ciphertext + datagram.tag, datagram.header)
        self.window.update(datagram.seq)
        return plaintext


# --- Passwords -------------------------------------------------------------------------------

# scrypt N=2**13, r=8, p=1: one hash or verify took ~14 ms on the 2-core machine this was
# written on (N=2**12 ~7 ms, 2**14 ~28 ms), under the ~20 ms budget a join may spend on it.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**13, 8, 1
SALT_SIZE = 16


def hash_password(password: str, rng: RandomSource = system_random) -> str:
    """A salted scrypt hash as ``scrypt$N$r$p$salt$hash`` (hex); the password is never kept."""
    salt = rng(SALT_SIZE)
    digest = scrypt(password.encode("utf-8"), salt, 32, N=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    """Recompute and compare in constant time."""
    _, n, r, p, salt, digest = stored.split("$")
    candidate = scrypt(password.encode("utf-8"), bytes.fromhex(salt), 32, N=int(n), r=int(r), p=int(p))
    return hmac.compare_digest(candidate, bytes.fromhex(digest))
