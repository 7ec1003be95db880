"""ChatPage: the standalone chat page (``tcrp-lab chat`` serves it with Voilà), a ChatPanel with a
form for the server's address and fingerprint above it. Nothing of Jupyter shows: a student who has
never seen a notebook types an address, a room, a name and a password, and chats.

``TCRP_SERVER`` and ``TCRP_FINGERPRINT`` in the environment pre-fill the form (``tcrp-lab chat
--server HOST:PORT`` sets them); with a server given, the chat panel opens at once.
"""

from __future__ import annotations

import os

import ipywidgets as widgets

from .net import parse_address
from .widgets import ChatPanel, _classed, _notice

__all__ = ["ChatPage"]

DEFAULT_TCP_PORT = 9001   #: the server's TCP port when the student types only a host


class ChatPage(widgets.VBox):
    """The server form, and the ChatPanel it opens (one at a time)."""

    def __init__(self, server: str | None = None, fingerprint: str | None = None):
        server = os.environ.get("TCRP_SERVER", "") if server is None else server
        fingerprint = os.environ.get("TCRP_FINGERPRINT", "") if fingerprint is None else fingerprint
        label = {"description_width": "80px"}
        self.server = _classed(widgets.Text(value=server, description="Server", placeholder="host:port, e.g. 10.0.0.5:9001",
                                            style=label, layout=widgets.Layout(width="auto")), "tcrp-server")
        self.fingerprint = _classed(widgets.Text(value=fingerprint, description="Fingerprint",
                                                 placeholder="optional: the key fingerprint your teacher gave",
                                                 style=label, layout=widgets.Layout(width="auto")), "tcrp-fingerprint")
        self.connect = _classed(widgets.Button(description="Connect", button_style="primary"), "tcrp-connect")
        self.notice = _classed(widgets.HTML(), "tcrp-page-notice")
        self.panel: ChatPanel | None = None
        self.slot = widgets.VBox()
        self.connect.on_click(lambda _: self.connect_to_server())
        title = widgets.HTML("<h2 style='margin:4px 0 8px;font-family:sans-serif'>TCRP chat</h2>")
        form = widgets.VBox([self.server, self.fingerprint, widgets.HBox([self.connect]), self.notice],
                            layout=widgets.Layout(width="450px"))
        super().__init__([title, form, self.slot], layout=widgets.Layout(align_items="center", padding="12px"))
        _classed(self, "tcrp-page")
        if server:
            self.connect_to_server()

    def __repr__(self) -> str:
        return "ChatPage()"

    def connect_to_server(self) -> None:
        """Open a chat panel on the server the form names (closing the previous one)."""
        text = self.server.value.strip()
        try:
            address = parse_address(text if ":" in text else f"{text}:{DEFAULT_TCP_PORT}")
        except (ValueError, TypeError) as exc:
            self.notice.value = _notice(f"“{text}” is not a server address (host:port): {exc}", "error")
            return
        self.notice.value = ""
        if self.panel is not None:
            self.panel.close()
        self.panel = ChatPanel(address, self.fingerprint.value.strip() or None)
        self.slot.children = (self.panel,)

    def close(self) -> None:
        if self.panel is not None:
            self.panel.close()
        super().close()
