"""The status endpoint: a classroom server's :class:`~tcrp_lab.control.ServerControl` over HTTP (TCRP.md §9).

``tcrp-lab server`` starts one on 127.0.0.1:9003 and prints two tokens: the **status token**
(read-only: ``GET /status``) and the **admin token** (also ``POST /close-room`` and
``POST /remove-member``). A request without the right ``Authorization: Bearer TOKEN`` gets 401,
a status token on an action 403. Plain HTTP: on loopback by default, so reach it from elsewhere
through an SSH tunnel, or bind it to a private network (compose) knowing the tokens cross it in clear.

:class:`RemoteControl` is the other end, with the same methods as ServerControl, for the dashboard.
"""

from __future__ import annotations

import hmac
import json
import logging
import secrets
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .control import ServerControl

__all__ = ["DEFAULT_PORT", "RemoteControl", "RemoteError", "StatusEndpoint"]

log = logging.getLogger("tcrp_lab.status")

DEFAULT_PORT = 9003
MAX_BODY = 4096       #: bytes of an action's JSON body
TIMEOUT = 5.0         #: seconds a client has to send its request
MAX_REPLY = 4 << 20   #: bytes of a status reply RemoteControl reads at most


class StatusEndpoint:
    """HTTP on ``host``:``port`` (0: a free port) serving ``control``; tokens made if not given."""

    def __init__(self, control: ServerControl, host: str = "127.0.0.1", port: int = DEFAULT_PORT,
                 token: str | None = None, admin_token: str | None = None):
        self.control = control
        self.token = token or secrets.token_urlsafe(18)
        self.admin_token = admin_token or secrets.token_urlsafe(18)
        if hmac.compare_digest(self.token, self.admin_token):
            raise ValueError("the status token and the admin token must differ")
        self._http = ThreadingHTTPServer((host, port), _handler(self))
        self._http.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._http.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> StatusEndpoint:
        self._thread = threading.Thread(target=self._http.serve_forever, kwargs={"poll_interval": 0.5},
                                        name="tcrp-status", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._http.shutdown()
        self._http.server_close()

    def role(self, header: str | None) -> str | None:
        """``"admin"``, ``"status"`` or None for an Authorization header (compared in constant time)."""
        scheme, _, given = (header or "").partition(" ")
        if scheme.lower() != "bearer" or not given:
            return None
        given_bytes = given.strip().encode()
        if hmac.compare_digest(given_bytes, self.admin_token.encode()):
            return "admin"
        if hmac.compare_digest(given_bytes, self.token.encode()):
            return "status"
        return None

    def __enter__(self) -> StatusEndpoint:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _handler(endpoint: StatusEndpoint) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        timeout = TIMEOUT
        server_version = "tcrp-status"
        sys_version = ""

        def log_message(self, format: str, *args: Any) -> None:   # quiet: debug only, never per request
            log.debug("%s " + format, self.address_string(), *args)

        def _reply(self, code: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path != "/status":
                return self._reply(404, {"error": "not found: GET /status, POST /close-room, POST /remove-member"})
            if endpoint.role(self.headers.get("Authorization")) is None:
                return self._reply(401, {"error": "needs Authorization: Bearer <status or admin token>"})
            self._reply(200, endpoint.control.status())

        def do_POST(self) -> None:
            if self.path not in ("/close-room", "/remove-member"):
                return self._reply(404, {"error": "not found"})
            role = endpoint.role(self.headers.get("Authorization"))
            if role is None:
                return self._reply(401, {"error": "needs Authorization: Bearer <admin token>"})
            if role != "admin":
                return self._reply(403, {"error": "the status token is read-only: actions need the admin token"})
            try:
                length = int(self.headers.get("Content-Length", "0"))
            except ValueError:
                length = -1
            if not 0 < length <= MAX_BODY:
                return self._reply(413 if length > MAX_BODY else 400, {"error": f"a JSON body of 1-{MAX_BODY} bytes"})
            try:
                body = json.loads(self.rfile.read(length))
                room = body["room"]
                user = body.get("user") if self.path == "/remove-member" else None
                if not isinstance(room, str) or (self.path == "/remove-member" and not isinstance(user, str)):
                    raise TypeError
            except (ValueError, KeyError, TypeError, AttributeError):
                return self._reply(400, {"error": "expected {\"room\": NAME} (and \"user\": NAME to remove one)"})
            try:
                if user is None:
                    endpoint.control.close_room(room)
                else:
                    endpoint.control.remove_member(room, user)
            except KeyError:
                return self._reply(404, {"error": "no such room or member"})
            log.info("operator: %s %r%s", self.path[1:], room, f" {user!r}" if user else "")
            self._reply(200, {"ok": True})

    return Handler


class RemoteError(Exception):
    """The status endpoint refused, or could not be reached; the message says which."""


class RemoteControl:
    """ServerControl's methods against a status endpoint at ``url`` (``http://host:port``)."""

    def __init__(self, url: str, token: str, admin_token: str | None = None, timeout: float = 5.0):
        if not url.startswith(("http://", "https://")):
            url = "http://" + url
        self.url, self.token, self.admin_token, self.timeout = url.rstrip("/"), token, admin_token, timeout

    def _call(self, path: str, token: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        request = urllib.request.Request(self.url + path, data=None if body is None else json.dumps(body).encode(),
                                         headers={"Authorization": f"Bearer {token}",
                                                  "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as reply:
                data = reply.read(MAX_REPLY + 1)
        except urllib.error.HTTPError as exc:
            try:
                reason = json.loads(exc.read(MAX_BODY)).get("error", "")
            except (ValueError, AttributeError):
                reason = ""
            if exc.code == 404 and path != "/status":
                raise KeyError(reason) from None
            raise RemoteError(f"{self.url}{path}: HTTP {exc.code} {reason}".strip()) from None
        except (OSError, ValueError) as exc:
            raise RemoteError(f"cannot reach {self.url}: {exc}") from None
        if len(data) > MAX_REPLY:
            raise RemoteError(f"{self.url}{path}: reply over {MAX_REPLY} bytes")
        return json.loads(data)

    def status(self) -> dict[str, Any]:
        return self._call("/status", self.token)

    def _admin(self) -> str:
        if not self.admin_token:
            raise RemoteError("closing a room or removing a member needs the admin token the server printed")
        return self.admin_token

    def close_room(self, room: str) -> None:
        self._call("/close-room", self._admin(), {"room": room})

    def remove_member(self, room: str, username: str) -> None:
        self._call("/remove-member", self._admin(), {"room": room, "user": username})

    @property
    def can_act(self) -> bool:
        return bool(self.admin_token)
