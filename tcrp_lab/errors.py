"""The client's one error family, and one table per wire error code: its exception and its hint.

Every error a client raises is a :class:`TcrpError`. A request the server refuses raises the
:class:`ServerError` subclass of the wire code it sent (TCRP.md §3); a request this side's codec
refuses before sending raises the same class (``InvalidName`` for a name too long, whoever said
so). :data:`ERRORS` maps each :class:`~tcrp_lab.protocol.ErrorCode` to its class and the words a
person sees, and :func:`hint` turns any error into those words: the terminal client, the
ChatPanel and the lessons all say the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass

from .protocol import MAX_ROOM_NAME, MAX_ROOM_NAME_BYTES, MAX_USERNAME, MAX_USERNAME_BYTES, ErrorCode, ProtocolError

__all__ = [
    "ERRORS", "FingerprintMismatch", "ForgedServerHello", "InvalidName", "InvalidRequest", "InvalidText", "NoSuchRoom",
    "NotForwardSecret", "RateLimited", "RoomExists", "RoomFull", "ServerBusy", "ServerError", "ServerKeyChanged",
    "TcrpError", "UsernameTaken", "WrongPassword", "hint", "server_error",
]


class TcrpError(Exception):
    """Base of every error the client raises."""


class FingerprintMismatch(TcrpError):
    """The server's key is not the pinned one: a man in the middle, or the wrong server."""


class ServerKeyChanged(FingerprintMismatch):
    """The server presents another key than the one remembered on first contact (TCRP.md §2.3)."""


class ForgedServerHello(TcrpError):
    """A version 3 ServerHello whose share is not signed by its key (TCRP.md §2.2): someone replaced it."""


class NotForwardSecret(TcrpError):
    """``require_forward_secrecy`` and the server offers only the version 2 handshake (TCRP.md §2)."""


class ServerError(TcrpError):
    """A request refused, by the server or before it was sent. ``code`` is the wire error code;
    ``retry_after`` the seconds after which trying again can succeed, when the server said (§8.3)."""

    code: ErrorCode | None = None

    def __init__(self, message: str, code: ErrorCode | None = None, retry_after: float | None = None):
        super().__init__(message)
        self.code = code or self.code
        self.retry_after = retry_after


class InvalidRequest(ServerError):
    code = ErrorCode.INVALID_REQUEST


class InvalidName(ServerError):
    code = ErrorCode.INVALID_NAME


class InvalidText(ServerError):
    code = ErrorCode.INVALID_TEXT


class RoomExists(ServerError):
    code = ErrorCode.ROOM_EXISTS


class NoSuchRoom(ServerError):
    code = ErrorCode.NO_SUCH_ROOM


class WrongPassword(ServerError):
    code = ErrorCode.WRONG_PASSWORD


class UsernameTaken(ServerError):
    code = ErrorCode.USERNAME_TAKEN


class RoomFull(ServerError):
    code = ErrorCode.ROOM_FULL


class ServerBusy(ServerError):
    code = ErrorCode.SERVER_BUSY


class RateLimited(ServerError):
    """Too many tries (wrong passwords from your address): wait ``retry_after`` seconds."""

    code = ErrorCode.RATE_LIMITED


@dataclass(frozen=True)
class ErrorKind:
    """What a wire error code becomes on this side. ``hint`` is formatted with ``room``,
    ``username``, ``reason`` (the server's words) and ``wait``; ``lookalike`` replaces it when the
    server refused a name for looking like another (§3.1)."""

    exception: type[ServerError]
    hint: str
    lookalike: str | None = None


ERRORS: dict[ErrorCode, ErrorKind] = {
    ErrorCode.INVALID_REQUEST: ErrorKind(InvalidRequest, "That request cannot be sent: {reason}."),
    ErrorCode.INVALID_NAME: ErrorKind(
        InvalidName, f"That name is not allowed: {{reason}}. Use 1-{MAX_USERNAME} characters "
        f"(at most {MAX_USERNAME_BYTES} bytes of UTF-8) for a username, 1-{MAX_ROOM_NAME} "
        f"(at most {MAX_ROOM_NAME_BYTES} bytes) for a room."),
    ErrorCode.INVALID_TEXT: ErrorKind(InvalidText, "That message cannot be sent: {reason}."),
    ErrorCode.RATE_LIMITED: ErrorKind(
        RateLimited, "Too many wrong passwords for “{room}” from your address: check the password and try again{wait}."),
    ErrorCode.ROOM_EXISTS: ErrorKind(
        RoomExists, "A room called “{room}” already exists. Join it instead, or pick another room name.",
        lookalike="That room name cannot be used: {reason}."),
    ErrorCode.NO_SUCH_ROOM: ErrorKind(NoSuchRoom, "There is no room called “{room}”. Refresh the list, or create it."),
    ErrorCode.WRONG_PASSWORD: ErrorKind(
        WrongPassword, "Wrong password for room “{room}”. Ask its host for the password and try again."),
    ErrorCode.USERNAME_TAKEN: ErrorKind(
        UsernameTaken, "Someone in “{room}” is already called “{username}”. Pick another username.",
        lookalike="That name cannot be used in “{room}”: {reason}."),
    ErrorCode.ROOM_FULL: ErrorKind(RoomFull, "Room “{room}” is full. Try another room."),
    ErrorCode.SERVER_BUSY: ErrorKind(ServerBusy, "The server is busy: {reason}. Try again in a moment."),
}


def server_error(code: object, message: str, retry_after: object = None) -> ServerError:
    """The exception for a wire error code (a code this client does not know gives a ServerError)."""
    wait = float(retry_after) if isinstance(retry_after, (int, float)) and 0 <= retry_after < 86400 else None
    try:
        known = ErrorCode(code)
    except ValueError:
        return ServerError(f"{message} (unknown error code {str(code)[:40]!r})", retry_after=wait)
    return ERRORS[known].exception(message, retry_after=wait)


def refused_here(exc: ProtocolError) -> ServerError:
    """A request this side's codec refused, as the error the server would have sent for it."""
    return server_error(exc.code or ErrorCode.INVALID_REQUEST, exc.reason)


def hint(exc: BaseException, room: str = "", username: str = "") -> str:
    """Plain words for why something failed, and what to do about it."""
    if isinstance(exc, (ServerKeyChanged, ForgedServerHello, NotForwardSecret)):
        return f"Refused: {exc}"   # both fingerprints and what to do (TCRP.md §2.3), or what was wrong
    if isinstance(exc, FingerprintMismatch):
        return ("The server's key does not match the fingerprint you gave: this may be a man in the middle, "
                "or the wrong server. Nothing was sent.")
    if isinstance(exc, ServerError) and exc.code in ERRORS:
        kind = ERRORS[exc.code]
        wait = f" in {exc.retry_after:.0f} s" if exc.retry_after and exc.retry_after >= 1 else " in a moment"
        template = kind.lookalike if kind.lookalike and "looks like" in str(exc) else kind.hint
        return template.format(room=room, username=username, reason=exc, wait=wait)
    if isinstance(exc, ServerError):
        return f"The server refused: {exc}."
    if isinstance(exc, ProtocolError):
        return f"That request cannot be sent: {exc.reason}."
    if isinstance(exc, (TcrpError, ValueError)):
        return str(exc)
    return f"Something went wrong: {exc!r}"
