"""explain(): one TCRP packet laid out byte by byte, every field coloured, named and decoded.

The layouts are tables built from :mod:`tcrp_lab.protocol`'s and :mod:`tcrp_lab.crypto`'s own
constants and decoders, one per packet kind (TCRP.md §2-§4, and §6 for the legacy profile);
nothing here parses the wire a second time with offsets of its own. :mod:`tcrp_lab.trace` records
the packets; this module explains one. ``explain`` takes a trace event or raw bytes.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rich import box
from rich.console import Console, ConsoleOptions, Group, RenderResult
from rich.jupyter import JupyterMixin
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from .crypto import (
    FS_VERSION, HKDF_INFO, HKDF_INFO_V3, NONCE_SIZE, PREMASTER_SIZE, RSA_BITS, SHARE_LABEL, SHARE_SIZE,
    AuthenticationError, ServerHello, SessionKeys, open_sealed,
)
from .protocol import (
    FRAME_LENGTH_BYTES, HEADER_SIZE, MAGIC, SEQ_BYTES, SIZE_FIELD_BYTES, TAG_SIZE, TOKEN_SIZE, Datagram,
    FrameReader, ProtocolError, decode_message, decode_payload,
)

if TYPE_CHECKING:
    from .trace import PacketEvent

__all__ = ["Explanation", "Field", "explain", "visible"]

MAX_DUMP = 512               #: bytes of a packet the hex dump shows before "… N more bytes"
MAX_VALUE = 240              #: characters of a decoded value shown in a field table
TRY_SEQS = 64                #: explain(raw frame, keys=...) without seq tries seq 0..TRY_SEQS-1
RSA_BLOB = RSA_BITS // 8     #: the ClientKeyExchange body: one RSA-OAEP block of the 2048-bit key
HANDSHAKE = ("ServerHello", "ClientKeyExchange")

# Characters that steer a terminal or reorder a line: C0 and C1 controls (ESC, so no escape
# sequence survives), DEL, bidi marks, overrides and isolates, line/paragraph separators, lone surrogates.
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def visible(text: str, keep: str = "") -> str:
    """``text`` with every character that could drive a terminal or reorder a line written as an
    escape (``\\x1b``, ``\\u202e``), so that text from others is always shown as text; letters of
    every script and emoji stay as they are. ``keep`` names characters to leave alone (``"\\n"``
    where a chat line may wrap)."""
    if _UNSAFE.search(text) is None:
        return text
    return _UNSAFE.sub(lambda m: m[0] if m[0] in keep else
                       (f"\\x{ord(m[0]):02x}" if ord(m[0]) < 0x100 else f"\\u{ord(m[0]):04x}"), text)


# --- explain: one packet, byte by byte ---------------------------------------------------------

@dataclass(frozen=True)
class Field:
    """One named span of a packet: bytes ``start``..``end`` (inclusive), the decoded value, a colour.

    ``start`` None marks something a reader needs that is not on the wire (an implicit sequence
    number, a fingerprint, derived keys); ``where`` then says what it is. ``overlay`` fields (the
    AAD) are drawn over the others instead of colouring bytes of their own.
    """

    name: str
    start: int | None
    end: int | None
    value: str
    style: str = ""
    where: str = ""
    overlay: bool = False

    @property
    def span(self) -> str:
        if self.start is None or self.end is None:
            return self.where
        if self.end < self.start:
            return f"{self.start} (0 B)"
        return f"{self.start}–{self.end}"


def _layout(start: int, parts: Sequence[tuple[str, int, str, str]]) -> list[Field]:
    """Consecutive fields from (name, size, value, style), as the spec lists them."""
    fields, at = [], start
    for name, size, value, style in parts:
        fields.append(Field(name, at, at + size - 1, value, style))
        at += size
    return fields


def _short(data: bytes, keep: int = 16) -> str:
    shown = data[:keep].hex(" ")
    return f"{shown} … ({len(data)} bytes)" if len(data) > keep else shown


def _clip(text: str) -> str:
    return text if len(text) <= MAX_VALUE else text[:MAX_VALUE] + f"… ({len(text)} characters)"


class Explanation(JupyterMixin):
    """A packet laid out: a title, a hex dump coloured by field, the field table, a verdict, and
    sections for what is inside (a decrypted message, a datagram's plaintext).

    ``rejected`` / ``partial`` / ``truncated`` (the trace kept only the first bytes) tell a program
    what the reader is told; ``fields`` and ``sections`` hold the layout. Every string is shown as
    text: rich Text, never markup, with control characters as escapes (:func:`visible`).
    """

    def __init__(self, title: str, data: bytes, fields: Sequence[Field] = (), *, verdict: str = "",
                 verdict_style: str = "green", rejected: bool = False, partial: bool = False,
                 truncated: bool = False, notes: Sequence[str] = (), sections: Sequence[Explanation] = (),
                 max_bytes: int = MAX_DUMP):
        self.title, self.data, self.fields = title, data, list(fields)
        self.verdict, self.verdict_style = verdict, verdict_style
        self.rejected, self.partial, self.truncated = rejected, partial, truncated
        self.notes, self.sections, self.max_bytes = list(notes), list(sections), max_bytes

    def field(self, name: str) -> Field:
        """The field called ``name`` here or in a section (KeyError if there is none)."""
        for f in self.fields:
            if f.name == name:
                return f
        for section in self.sections:
            with contextlib.suppress(KeyError):
                return section.field(name)
        raise KeyError(name)

    def _byte_styles(self) -> list[str]:
        styles = [""] * min(len(self.data), self.max_bytes)
        for f in sorted(self.fields, key=lambda f: f.overlay):
            if f.start is None or f.end is None:
                continue
            for i in range(f.start, min(f.end + 1, len(styles))):
                styles[i] = f"{styles[i]} {f.style}".strip() if f.overlay else f.style
        return styles

    def hexdump(self) -> Text:
        """16 bytes a line: decimal offset, hex, ASCII; each byte in its field's colour."""
        styles = self._byte_styles()
        out = Text(no_wrap=True)
        for row in range(0, len(styles), 16):
            out.append(f"{row:>5}  ", style="dim")
            chars = Text()
            for i in range(row, min(row + 16, len(styles))):
                byte = self.data[i]
                out.append(f"{byte:02x}", style=styles[i])
                out.append("  " if i % 16 == 7 else " ")
                chars.append(chr(byte) if 32 <= byte < 127 else ".", style=styles[i])
            n = min(16, len(styles) - row)
            out.append(" " * (16 * 3 + 1 - n * 3 - (n > 8) + 1))
            out.append_text(chars)
            out.append("\n")
        if len(self.data) > len(styles):
            out.append(f"       … {len(self.data) - len(styles)} more bytes not shown\n", style="dim")
        out.rstrip()
        return out

    def table(self) -> Table:
        table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
        table.add_column("bytes", no_wrap=True, justify="right")
        table.add_column("field", no_wrap=True)
        table.add_column("value", overflow="fold")
        for f in self.fields:   # names and values can come from the network: Text, escaped
            table.add_row(Text(visible(f.span)), Text(visible(f.name), style=f.style), Text(visible(f.value)))
        return table

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield Text(visible(self.title), style="bold")
        if self.data:
            yield self.hexdump()
        if self.fields:
            yield self.table()
        for note in self.notes:
            yield Text(visible(note), style="dim")
        if self.verdict:
            yield Text(visible(self.verdict), style=self.verdict_style)
        for section in self.sections:
            yield Padding(Group(Text(""), section), (0, 0, 0, 4))


def _rejected(title: str, data: bytes, reason: str, fields: Sequence[Field] = (), **kw: Any) -> Explanation:
    return Explanation(title, data, fields, verdict=f"REJECTED: {reason}", verdict_style="bold red",
                       rejected=True, **kw)


# --- the layouts, one per packet kind (TCRP.md §2-§4) -------------------------------------------

def _frame_length(body_size: int) -> list[Field]:
    return _layout(0, [("length", FRAME_LENGTH_BYTES, f"{body_size} (u32 big-endian: the body bytes that follow)",
                        "bright_black")])


def _server_hello_fields(hello: ServerHello, at: int) -> list[Field]:
    from Crypto.PublicKey import RSA

    try:
        bits = f"RSA-{RSA.import_key(hello.public_der).size_in_bits()} public key"
    except (ValueError, IndexError, TypeError):
        bits = "not a valid RSA key"
    signed = [  # §2.2: version 3's signed ephemeral share
        ("server_share", SHARE_SIZE, f"{hello.share.hex()} (X25519 public key, fresh for this connection)", "bold cyan"),
        ("sig_len", 2, f"{len(hello.signature)} (u16)", "bright_black"),
        ("signature", len(hello.signature), f"RSA-PSS (SHA-256, salt 32) by the key below over "
                                            f"{SHARE_LABEL.decode()!r} | server_nonce | server_share: "
                                            f"{hello.signature[:8].hex()}…", "red"),
    ] if hello.version == FS_VERSION else []
    return _layout(at, [
        ("magic", len(MAGIC), repr(MAGIC.decode("ascii")), "bold magenta"),
        ("version", 1, f"{hello.version} ({'ephemeral X25519, forward secret' if hello.version == FS_VERSION else 'RSA key transport'})",
         "cyan"),
        ("server_nonce", NONCE_SIZE, hello.nonce.hex(), "yellow"),
        *signed,
        ("public key DER", len(hello.public_der), f"{bits} (SubjectPublicKeyInfo, {len(hello.public_der)} bytes)",
         "green"),
    ]) + [Field("fingerprint", None, None, hello.fingerprint, "green", where="SHA-256(DER)")]


def _key_fields(keys: SessionKeys | None, hello: ServerHello | None) -> list[Field]:
    fields = []
    if hello is not None:
        v3 = hello.version == FS_VERSION
        if v3:
            fields.append(Field("HKDF IKM", None, None, "X25519(own ephemeral private key, the other's share): "
                                "32 bytes neither share reveals, erased with the private keys", "yellow",
                                where="derived"))
        fields.append(Field("HKDF salt", None, None, f"server_nonce {hello.nonce.hex()}", "yellow", where="derived"))
        fields.append(Field("HKDF info", None, None, f"{(HKDF_INFO_V3 if v3 else HKDF_INFO).decode()!r} | "
                            "SHA-256(ServerHello | this blob)", "yellow", where="derived"))
    if keys is not None:
        fields += [Field(name, None, None, value, "bold cyan", where="derived") for name, value in keys.hex().items()]
    return fields


def _sealed_fields(at: int, sealed: bytes) -> list[Field]:
    """``ciphertext | tag``: OCB's ciphertext is as long as the plaintext."""
    return _layout(at, [("ciphertext", len(sealed) - TAG_SIZE, _short(sealed[:-TAG_SIZE]), "blue"),
                        ("tag", TAG_SIZE, sealed[-TAG_SIZE:].hex(), "red")])


def _message_section(plaintext: bytes, title: str, max_bytes: int) -> Explanation:
    """A message (TCRP.md §3): the 32-byte header, the room name, the JSON payload."""
    try:
        message = decode_message(plaintext)
    except ProtocolError as exc:
        return _rejected(title, plaintext, exc.reason, max_bytes=max_bytes)
    room = message.room.encode("utf-8")
    payload = plaintext[HEADER_SIZE + len(room):]
    fields = _layout(0, [
        ("RoomNameSize", 1, str(len(room)), "cyan"),
        ("Operation", 1, f"{int(message.operation)} ({message.operation.name})", "magenta"),
        ("State", 1, f"{int(message.state)} ({message.state.name})", "yellow"),
        ("OperationPayloadSize", SIZE_FIELD_BYTES, str(len(payload)), "green"),
        ("room", len(room), repr(message.room), "bold cyan"),
        ("payload", len(payload), _clip(payload.decode("utf-8")), "bold green"),
    ]) + [Field(key, None, None, _clip(repr(value)), "green", where="json") for key, value in message.payload.items()]
    return Explanation(title, plaintext, fields, max_bytes=max_bytes,
                       notes=[f"header: bytes 0–{HEADER_SIZE - 1} (3 one-byte fields and a {SIZE_FIELD_BYTES}-byte "
                              "big-endian size)"])


def _payload_section(plaintext: bytes, from_server: bool, title: str, max_bytes: int) -> Explanation:
    """A datagram's sealed JSON (TCRP.md §4): the text, then each decoded field."""
    text = plaintext.decode("utf-8", "replace")
    fields = [Field("JSON", 0, len(plaintext) - 1, _clip(text), "bold green")]
    try:
        payload = decode_payload(plaintext, from_server=from_server)
    except ProtocolError as exc:
        return _rejected(title, plaintext, exc.reason, fields, max_bytes=max_bytes)
    for name, value in payload.to_json().items():
        fields.append(Field(name, None, None, _clip(repr(value)), "green", where="json"))
    return Explanation(title, plaintext, fields, max_bytes=max_bytes,
                       notes=[f"{'server → client' if from_server else 'client → server'} "
                              f"{type(payload).__name__}"])


# --- explain ---------------------------------------------------------------------------------------

_FLOWS = {"c2s": "client → server", "s2c": "server → client"}
_RAW_KINDS = ("frame", "message", "datagram", "payload", "ServerHello", "ClientKeyExchange")


def explain(packet: PacketEvent | bytes | bytearray | memoryview, *, kind: str | None = None,
            keys: SessionKeys | bytes | None = None, direction: str | None = None, seq: int | None = None,
            max_bytes: int = MAX_DUMP) -> Explanation:
    """Lay out one packet byte by byte: a hex dump coloured by field, each field named with its
    byte range and decoded value, and the plaintext explained too where it is known.

    ``packet`` is a :class:`PacketEvent` (the side's own keys and plaintext are used), or raw bytes;
    then ``kind`` says what they are — ``"frame"`` (an encrypted TCP frame with its length),
    ``"ServerHello"``, ``"ClientKeyExchange"``, ``"message"`` (a message plaintext),
    ``"datagram"`` or ``"payload"`` (a datagram's plaintext JSON) — or is guessed from the bytes.
    With ``keys`` (SessionKeys, or one 32-byte key) a frame or datagram is opened: ``direction``
    (``"c2s"``/``"s2c"``) picks the key, ``seq`` a frame's implicit sequence number; left out,
    each is found by trying (seq 0–63). A packet that does not authenticate shows as REJECTED
    with the reason; a frame with fewer bytes than its length says shows how many are missing.
    """
    if direction is not None and direction not in _FLOWS:
        raise ValueError(f"direction must be 'c2s' (client to server) or 's2c' (server to client), not {direction!r}")
    if not isinstance(packet, (bytes, bytearray, memoryview)) and hasattr(packet, "raw"):  # a trace event
        return _explain_event(packet, keys=keys, max_bytes=max_bytes)
    if not isinstance(packet, (bytes, bytearray, memoryview)):
        raise TypeError(f"explain() takes a PacketEvent or bytes, not {type(packet).__name__}")
    data = bytes(packet)
    guessed = kind is None
    if kind is None:
        kind = _guess_kind(data)
    elif kind not in _RAW_KINDS:
        raise ValueError(f"kind must be one of {', '.join(_RAW_KINDS)}, not {kind!r}")
    note = [f"kind guessed from the bytes: {kind} (pass kind=... to say)"] if guessed else []
    flows = (direction,) if direction else ("c2s", "s2c")
    if kind == "message":
        result = _message_section(data, f"message · {len(data)} bytes", max_bytes)
    elif kind == "payload":
        title = f"datagram payload · {len(data)} bytes"
        result = _payload_section(data, direction == "s2c", title, max_bytes)
        if result.rejected and direction is None:   # not a client payload: perhaps a server's
            from_server = _payload_section(data, True, title, max_bytes)
            result = result if from_server.rejected else from_server
    elif kind == "datagram":
        result = _explain_datagram(data, None, _datagram_keys(keys, flows), max_bytes)
    else:
        frame_keys = _frame_keys(keys, flows, seq) if kind == "frame" else []
        result = _explain_frame(data, kind, None, frame_keys, max_bytes)
    result.notes[:0] = note
    return result


def _guess_kind(data: bytes) -> str:
    with contextlib.suppress(ProtocolError):
        decode_message(data)
        return "message"
    with contextlib.suppress(ProtocolError):
        Datagram.decode(data)
        return "datagram"
    if data[:1] in (b"{", b"["):
        return "payload"
    if data[:1] != b"\0" and data[1:2] == bytes([TOKEN_SIZE]):
        return "datagram"   # a frame's length is at most MAX_FRAME, so a frame starts with a zero byte
    if data[FRAME_LENGTH_BYTES : FRAME_LENGTH_BYTES + len(MAGIC)] == MAGIC:
        return "ServerHello"
    if len(data) == FRAME_LENGTH_BYTES + RSA_BLOB and int.from_bytes(data[:FRAME_LENGTH_BYTES], "big") == RSA_BLOB:
        return "ClientKeyExchange"
    return "frame"


def _as_key(keys: SessionKeys | bytes | None, name: str) -> bytes | None:
    if keys is None:
        return None
    if isinstance(keys, SessionKeys):
        return getattr(keys, name)
    if isinstance(keys, (bytes, bytearray)) and len(keys) == 32:
        return bytes(keys)
    raise TypeError("keys must be SessionKeys or one 32-byte key")


def _datagram_keys(keys: SessionKeys | bytes | None, flows: Sequence[str]) -> list[tuple[str, bytes, str]]:
    """(description, key, flow) to try; one key in bytes is tried for the first flow given."""
    out = []
    for flow in flows if isinstance(keys, SessionKeys) else flows[:1]:
        key = _as_key(keys, f"udp_{flow}")
        if key is not None:
            out.append((f"udp_{flow}" if isinstance(keys, SessionKeys) else "the given key", key, flow))
    return out


def _frame_keys(keys: SessionKeys | bytes | None, flows: Sequence[str],
                seq: int | None) -> list[tuple[str, bytes, int]]:
    seqs = [seq] if seq is not None else list(range(TRY_SEQS))
    out = []
    for flow in flows if isinstance(keys, SessionKeys) else flows[:1]:
        key = _as_key(keys, f"tcp_{flow}")
        if key is not None:
            name = f"tcp_{flow}" if isinstance(keys, SessionKeys) else "the given key"
            out += [(name, key, s) for s in seqs]
    return out


def _explain_event(e: PacketEvent, keys: SessionKeys | bytes | None, max_bytes: int) -> Explanation:
    if e.truncated:
        return _explain_truncated(e, max_bytes)
    if _is_legacy(e):
        return _explain_legacy(e, max_bytes)
    if e.transport == "udp":
        extra = _datagram_keys(keys, (e.flow,)) if keys is not None else []
        return _explain_datagram(e.raw, e, extra, max_bytes)
    kind = e.kind if e.kind in HANDSHAKE else "frame"
    extra_keys = _frame_keys(keys, (e.flow,), e.seq) if keys is not None and kind == "frame" else []
    return _explain_frame(e.raw, kind, e, extra_keys, max_bytes)


def _title(kind: str, flow: str | None, transport: str, size: int, e: PacketEvent | None) -> str:
    parts = [kind]
    if flow:
        parts.append(_FLOWS[flow])
    parts += [transport, f"{size} bytes"]
    if e is not None:
        parts.append(f"seen by the {e.side}" + (f" ({e.user})" if e.user else ""))
    return " · ".join(parts)


def _explain_truncated(e: PacketEvent, max_bytes: int) -> Explanation:
    """An event the trace kept only the start of (``Trace(event_bytes=...)``): what was kept, and
    plainly that the rest was not, rather than a layout that would call it partial or forged."""
    kept = len(e.raw)
    fields = [Field(f"first {kept} bytes", 0, kept - 1, _short(e.raw), "blue")] if kept else []
    cut = []
    if e.raw_size is not None:
        cut.append(f"the first {kept} of its {e.size} bytes")
        fields.append(Field("not kept", None, None, f"bytes {kept}–{e.size - 1} ({e.size - kept} bytes)", "dim",
                            where="not kept"))
    sections = []
    if e.plaintext is not None and e.plaintext_size is None and e.message is not None:   # whole: explain it
        if e.transport == "tcp":
            sections.append(_message_section(e.plaintext, f"decrypted message · {len(e.plaintext)} bytes", MAX_DUMP))
        else:
            sections.append(_payload_section(e.plaintext, e.flow == "s2c", f"plaintext · {len(e.plaintext)} bytes",
                                             MAX_DUMP))
    elif e.plaintext is not None:
        total = e.plaintext_size if e.plaintext_size is not None else len(e.plaintext)
        cut.append(f"the first {len(e.plaintext)} of the {total} bytes of its plaintext")
        sections.append(Explanation(f"plaintext · first {len(e.plaintext)} of {total} bytes kept", e.plaintext,
                                    [Field("text", 0, len(e.plaintext) - 1, _printable(e.plaintext, cut=True),
                                           "green")], max_bytes=MAX_DUMP))
    return Explanation(_title(e.kind, e.flow, e.transport, e.size, e) + " · truncated", e.raw, fields,
                       sections=sections, truncated=True, verdict_style="bold yellow", max_bytes=max_bytes,
                       verdict=f"TRUNCATED: the trace kept {' and '.join(cut)}; the rest was not kept, so this "
                               "packet cannot be laid out or checked (Trace(event_bytes=...) sets how much is kept)")


def _explain_frame(raw: bytes, kind: str, e: PacketEvent | None, keys: list[tuple[str, bytes, int]],
                   max_bytes: int) -> Explanation:
    """A TCP frame (TCRP.md §2): ``length u32 | body``, the body by kind."""
    flow = e.flow if e else {"ServerHello": "s2c", "ClientKeyExchange": "c2s"}.get(kind)
    shown_kind = e.kind if e else kind
    title = _title(shown_kind, flow, "tcp", len(raw), e)
    reader = FrameReader()
    try:
        bodies = reader.feed(raw)
    except ProtocolError as exc:
        return _rejected(title, raw, exc.reason, max_bytes=max_bytes)
    if not bodies:
        return _partial_frame(title, raw, max_bytes)
    body = bodies[0]
    fields = _frame_length(len(body))
    notes = []
    end = FRAME_LENGTH_BYTES + len(body)
    if len(raw) > end:
        notes.append(f"{len(raw) - end} bytes after this frame belong to the next one")
    if kind == "ServerHello":
        try:
            hello = ServerHello.decode(body)
        except ProtocolError as exc:
            return _rejected(title, raw, exc.reason, fields, max_bytes=max_bytes)
        fields += _server_hello_fields(hello, FRAME_LENGTH_BYTES)
        verdict = ("the client checks this fingerprint against the one it pinned or remembers (TCRP.md §2.3)"
                   + (", then the signature on the share with this key, before it sends anything"
                      if hello.version == FS_VERSION else ""))
        return Explanation(title, raw, fields, notes=notes, max_bytes=max_bytes, verdict=verdict,
                           verdict_style="dim green")
    hello_known = e.hello if e else None
    if kind == "ClientKeyExchange" and (hello_known.version == FS_VERSION if hello_known else len(body) == SHARE_SIZE):
        fields += _layout(FRAME_LENGTH_BYTES, [("client_share", len(body), f"{body.hex()} (X25519 public key, fresh "
                                                                           "for this connection)", "bold cyan")])
        known = e.keys if e else None
        fields += _key_fields(known, hello_known)
        if e is not None and e.kind == "ClientKeyExchange" and known is None and e.side == "server":
            return _rejected(title, raw, "not a usable X25519 share (wrong size, or an all-zero secret)", fields,
                             notes=notes, max_bytes=max_bytes)
        verdict = ("HKDF-SHA-256 turned the X25519 secret into the four session keys above; both ends erased "
                   "their ephemeral private keys, so no key file opens a recording of this session" if known else
                   "the session keys are not known here: each end's ephemeral private key was needed, and both "
                   "were erased after the handshake")
        return Explanation(title, raw, fields, verdict=verdict, verdict_style="green" if known else "dim",
                           notes=notes, max_bytes=max_bytes)
    if kind == "ClientKeyExchange":
        fields += _layout(FRAME_LENGTH_BYTES, [("RSA-OAEP(premaster)", len(body),
                                               f"{len(body)}-byte block: {PREMASTER_SIZE} random bytes encrypted to "
                                               "the server key (OAEP, SHA-256)", "magenta")])
        known = e.keys if e else None
        fields += _key_fields(known, e.hello if e else None)
        if e is not None and e.kind == "ClientKeyExchange" and known is None and e.side == "server":
            return _rejected(title, raw, "does not decrypt with the server key", fields, notes=notes,
                             max_bytes=max_bytes)
        verdict = ("HKDF-SHA-256 turned the premaster into the four session keys above" if known else
                   "the session keys are not known here: only the two ends can recover the premaster")
        return Explanation(title, raw, fields, verdict=verdict, verdict_style="green" if known else "dim",
                           notes=notes, max_bytes=max_bytes)
    return _encrypted_frame(raw, body, fields, title, e, keys, notes, max_bytes)


def _partial_frame(title: str, raw: bytes, max_bytes: int) -> Explanation:
    if len(raw) < FRAME_LENGTH_BYTES:
        return Explanation(title, raw, _layout(0, [("length (partial)", len(raw), "incomplete", "bright_black")]),
                           verdict=f"PARTIAL: {FRAME_LENGTH_BYTES - len(raw)} of the {FRAME_LENGTH_BYTES} length "
                                   "bytes are missing", verdict_style="bold yellow", partial=True, max_bytes=max_bytes)
    length = int.from_bytes(raw[:FRAME_LENGTH_BYTES], "big")
    have = len(raw) - FRAME_LENGTH_BYTES
    fields = _frame_length(length) + _layout(FRAME_LENGTH_BYTES, [("body (partial)", have,
                                                                    f"{have} of {length} bytes", "blue")])
    return Explanation(title, raw, fields, partial=True, verdict_style="bold yellow", max_bytes=max_bytes,
                       verdict=f"PARTIAL: the length says {length} body bytes, {have} arrived, "
                               f"{length - have} missing — a reader must wait for more")


def _encrypted_frame(raw: bytes, body: bytes, fields: list[Field], title: str, e: PacketEvent | None,
                     keys: list[tuple[str, bytes, int]], notes: list[str], max_bytes: int) -> Explanation:
    """``AES-256-OCB(key of the direction, nonce = 0000 | seq) | tag``; seq is counted, not sent."""
    if len(body) < TAG_SIZE:
        return _rejected(title, raw, f"a {len(body)}-byte body cannot hold the {TAG_SIZE}-byte tag", fields,
                         max_bytes=max_bytes)
    fields = fields + _sealed_fields(FRAME_LENGTH_BYTES, body)
    plaintext, seq, how = (e.plaintext, e.seq, f"by the {e.side}") if e else (None, None, "")
    if plaintext is None:
        for name, key, candidate in keys:
            try:
                plaintext, seq, how = open_sealed(key, candidate, body), candidate, f"with {name}, seq {candidate}"
                if e is None and name.startswith("tcp_"):
                    title = _title("frame", name[4:], "tcp", len(raw), None)
                break
            except AuthenticationError:
                continue
    if seq is not None:
        fields.append(Field("seq (implicit)", None, None, f"{seq}: not sent; each side counts its frames "
                            f"(nonce = 00000000 | {seq:016x})", "yellow", where="implicit"))
    sections = []
    if plaintext is not None:
        first = FRAME_LENGTH_BYTES
        sections.append(_message_section(plaintext, f"decrypted message · {len(plaintext)} bytes · plaintext byte i "
                                                    f"is ciphertext byte {first}+i of the frame", MAX_DUMP))
    if e is not None and e.kind == "rejected":
        return _rejected(title, raw, e.error or "dropped", fields, notes=notes, sections=sections, max_bytes=max_bytes)
    if plaintext is None and keys:
        return _rejected(title, raw, "the tag does not verify with the given key(s) and seq(s): tampered, forged, "
                         "or not this key", fields, notes=notes, max_bytes=max_bytes)
    if plaintext is None:
        verdict, style = "encrypted: pass keys=... (and seq) to open it", "dim"
    elif e is not None and e.direction == "out":
        verdict, style = f"sealed by the {e.side} with tcp_{e.flow}", "green"
    else:
        verdict, style = f"tag verified, decrypted {how}" + (f" with tcp_{e.flow}" if e else ""), "green"
    return Explanation(title, raw, fields, verdict=verdict, verdict_style=style, notes=notes, sections=sections,
                       max_bytes=max_bytes)


def _explain_datagram(raw: bytes, e: PacketEvent | None, keys: list[tuple[str, bytes, str]],
                      max_bytes: int) -> Explanation:
    """A datagram (TCRP.md §4): the clear header (the AAD), then ``ciphertext | tag``."""
    flow = e.flow if e else (keys[0][2] if len(keys) == 1 else None)
    title = _title(e.kind if e else "datagram", flow, "udp", len(raw), e)
    try:
        d = Datagram.decode(raw)
    except ProtocolError as exc:
        if e is not None and e.kind != "rejected":   # a profile of another shape: show what we can
            sections = [_text_section(e.plaintext)] if e.plaintext is not None else []
            return Explanation(title, raw, verdict=f"not a TCRP/2 datagram ({exc.reason})", verdict_style="yellow",
                               sections=sections, max_bytes=max_bytes)
        return _rejected(title, raw, e.error if e and e.error else exc.reason, max_bytes=max_bytes)
    room = d.room.encode("utf-8")
    fields = _layout(0, [
        ("RoomNameSize", 1, str(len(room)), "cyan"),
        ("TokenSize", 1, str(len(d.token)), "magenta"),
        ("room", len(room), repr(d.room), "bold cyan"),
        ("token", len(d.token), d.token.hex(), "bold magenta"),
        ("seq", SEQ_BYTES, f"{d.seq} (the nonce is 00000000 | these 8 bytes)", "yellow"),
    ]) + _sealed_fields(len(d.header), d.ciphertext + d.tag)
    fields.append(Field("AAD", 0, len(d.header) - 1, "authenticated, not encrypted: change one bit and the tag "
                        "fails", "underline", overlay=True))
    plaintext, how = (e.plaintext, f"by the {e.side}") if e else (None, "")
    from_server = flow == "s2c"
    if plaintext is None:
        for name, key, key_flow in keys:
            try:
                plaintext = open_sealed(key, d.seq, d.ciphertext + d.tag, d.header)
                how, from_server = f"with {name}", key_flow == "s2c"
                title = _title(e.kind if e else "datagram", key_flow, "udp", len(raw), e)
                break
            except AuthenticationError:
                continue
    sections = []
    if plaintext is not None:
        sections.append(_payload_section(plaintext, from_server, f"plaintext · {len(plaintext)} bytes", MAX_DUMP))
    if e is not None and e.kind == "rejected":
        return _rejected(title, raw, e.error or "dropped", fields, sections=sections, max_bytes=max_bytes)
    if plaintext is None and keys:
        return _rejected(title, raw, "the tag does not verify: the datagram was tampered with or forged, or the "
                         "key is not this session's", fields, max_bytes=max_bytes)
    if plaintext is None:
        verdict, style = "sealed: pass keys=... to open it", "dim"
    else:
        verdict, style = f"tag verified over the AAD and ciphertext, decrypted {how}", "green"
    if e is not None and e.direction == "out" and plaintext is not None:
        verdict = f"sealed by the {e.side} with udp_{flow}"
    return Explanation(title, raw, fields, verdict=verdict, verdict_style=style, sections=sections,
                       max_bytes=max_bytes)


def _text_section(plaintext: bytes, title: str = "") -> Explanation:
    return Explanation(title or f"plaintext · {len(plaintext)} bytes", plaintext,
                       [Field("text", 0, len(plaintext) - 1, _printable(plaintext), "green")])


def _printable(data: bytes, cut: bool = False) -> str:
    """Text as text, control characters as escapes; anything else (a TCRP/1 token, say) as the
    start of its hex. ``cut``: the bytes stop where a trace stopped keeping them, perhaps inside a
    character, and say so."""
    text = None
    for end in range(len(data), max(len(data) - 4, 0) if cut else len(data) - 1, -1):
        with contextlib.suppress(UnicodeDecodeError):
            text = data[:end].decode("utf-8")
            break
    if not text or sum(c.isprintable() or c in "\n\t" for c in text) < 0.75 * len(text):
        return _short(data)
    return _clip(visible(text)) + (" … (not kept)" if cut else "")


# --- TCRP/1 (the legacy profile, TCRP.md §6): the same events, another wire format ------------------

def _is_legacy(e: PacketEvent) -> bool:
    """Recognise TCRP/1 traffic by its shape: a PEM instead of the magic, a key exchange whose
    plaintext (key | iv) the server knows, frames without a tag, datagrams with a long token."""
    if e.transport == "tcp":
        body = e.raw[FRAME_LENGTH_BYTES:]
        if e.kind == "ServerHello":
            return body.startswith(b"-----BEGIN")
        if e.kind == "ClientKeyExchange":
            return e.plaintext is not None
        return e.plaintext is not None and len(body) == len(e.plaintext)
    if e.transport == "udp" and e.plaintext is not None:
        try:
            Datagram.decode(e.raw)
        except ProtocolError:
            return True
    return False


def _explain_legacy(e: PacketEvent, max_bytes: int) -> Explanation:
    """TCRP/1 laid out the same way, each verdict naming the flaw the bytes show."""
    from .legacy import KEY_BYTES, parse_datagram  # only for legacy traffic

    title = _title(e.kind, e.flow, e.transport, e.size, e) + " · TCRP/1 (insecure)"
    warn = "bold yellow"
    plain = e.plaintext or b""
    if e.transport == "udp":
        room, token, body = parse_datagram(e.raw)
        room_size = len(room.encode("utf-8"))
        fields = _layout(0, [("RoomNameSize", 1, str(room_size), "cyan"), ("TokenSize", 1, str(len(token)), "magenta"),
                             ("room", room_size, repr(room), "bold cyan"),
                             ("token", len(token), _short(token), "bold magenta"),
                             ("ciphertext (AES-CFB)", len(body), _short(body), "blue")])
        return Explanation(title, e.raw, fields, sections=[_text_section(plain)], verdict_style=warn,
                           max_bytes=max_bytes, verdict="no tag and the token in clear: anyone who sees this datagram "
                                                        "can speak as this member, and a flipped bit goes unnoticed")
    body = e.raw[FRAME_LENGTH_BYTES:]
    fields = _frame_length(len(body))
    if e.kind == "ServerHello":
        first_line = body.split(b"\n", 1)[0].decode("ascii", "replace")
        fields += _layout(FRAME_LENGTH_BYTES, [("RSA public key (PEM)", len(body),
                                               f"{first_line} … ({len(body)} bytes of text)", "green")])
        return Explanation(title, e.raw, fields, verdict_style=warn, max_bytes=max_bytes,
                           verdict="no magic, version or nonce, and no fingerprint to pin: a man in the middle "
                                   "can send his own key")
    if e.kind == "ClientKeyExchange":
        fields += _layout(FRAME_LENGTH_BYTES, [("RSA-OAEP(key | iv)", len(body), "SHA-1 OAEP", "magenta")])
        fields += [Field("aes_key", None, None, plain[:KEY_BYTES].hex(), "bold cyan", where="decrypted"),
                   Field("iv", None, None, plain[KEY_BYTES:].hex(), "bold cyan", where="decrypted")]
        return Explanation(title, e.raw, fields, verdict_style=warn, max_bytes=max_bytes,
                           verdict="this one key and IV encrypt every frame and datagram of the session: the same "
                                   "keystream again and again")
    fields += _layout(FRAME_LENGTH_BYTES, [("ciphertext (AES-CFB)", len(body), _short(body), "blue")])
    try:
        decode_message(plain)
        section = _message_section(plain, f"decrypted message · {len(plain)} bytes", MAX_DUMP)
    except ProtocolError:
        section = _text_section(plain, f"decrypted reply · {len(plain)} bytes")
    return Explanation(title, e.raw, fields, sections=[section], verdict_style=warn, max_bytes=max_bytes,
                       verdict="no tag: a changed ciphertext bit changes the plaintext and nobody notices")
