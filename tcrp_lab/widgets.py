"""ChatPanel: the chat inside JupyterLab, as an ipywidgets view over a :class:`ChatClient`.

A learner opens one from a cell, twice side by side to chat with themself::

    from ipywidgets import HBox
    HBox([ChatPanel(server.address), ChatPanel(server.address)])   # or ChatPanel.pair(server.address)

The panel is a view and holds no protocol logic: it owns a ChatClient and shows what it sees.
Two things shape the code:

* The client calls ``on_message`` / ``on_event`` (and its trace) from its receive thread. Since
  ipykernel 7, output printed from a thread is not routed to a cell, so the panel only ever
  *sets widget traits* (an HTML widget's ``value``, a layout's ``display``) — never
  ``with output:`` — and does so under one lock, because ipywidgets' state syncing is not
  thread-safe.
* A callback is only a signal that something changed: it schedules one update a moment later
  (a burst of messages is one update), which renders from the client's ``log`` and ``members``,
  so a message delivered without a callback (history at the welcome) is still shown, and a late
  callback from a client the panel has already left is ignored. Each message's HTML is made
  once, and only the last ``SHOWN`` are on screen.
* Everything from the network (names, room names, chat text, the server's errors) is escaped
  for HTML, with control characters and bidi overrides shown as escapes (``\\u202e``).

Nothing blocks a cell: creating or joining is one TCP exchange inside the button's handler.
This is the only module of the package that imports ipywidgets.
"""

from __future__ import annotations

import html
import io
import itertools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import ipywidgets as widgets
from rich.console import Console
from rich.terminal_theme import SVG_EXPORT_THEME

from .client import DEFAULT_KNOWN, ChatClient, ChatMessage, NoSuchRoom, RoomEvent, RoomExists, TcrpError
from .errors import hint
from .session import MemberState
from .net import ServerAddress, parse_address
from .trace import PacketEvent, Trace, render_line, visible

__all__ = ["ChatPanel", "explain_error"]

log = logging.getLogger("tcrp_lab.widgets")

HISTORY = 50          #: room messages a newcomer is shown from before they joined
SHOWN = 200           #: chat lines kept on screen
CHAT_REFRESH = 0.1    #: seconds from a message to the chat's update: a burst of messages is one update
TRACE_LINES = 120     #: packet lines shown in the trace pane (the panel's Trace keeps more)
TRACE_REFRESH = 0.2   #: seconds between trace pane updates: a burst of packets is one update
WARNINGS = ("refused", "undelivered", "missed")   #: RoomEvents about our own messages going wrong
_panel_ids = itertools.count(1)

_CLOSED_BECAUSE = {
    "host_left": "its host left",
    "host_timeout": "its host was inactive for too long",
    "server_shutdown": "the server shut down",
    "closed_by_operator": "the server's operator (your teacher) closed it",
}
_STATE = {   # client.state -> what the status line says, in which colour
    MemberState.JOINING: ("connecting…", "#b26b00"),
    MemberState.JOINED: ("connected", "#1a7f37"),
    MemberState.LEFT: ("left", "#666"),
    MemberState.KICKED: ("disconnected", "#b42318"),
    MemberState.ROOM_CLOSED: ("room closed", "#b42318"),
    MemberState.CLOSED: ("closed", "#666"),
}


def explain_error(exc: BaseException, room: str = "", username: str = "") -> str:
    """Plain words for why creating or joining a room failed, and what to do (:func:`tcrp_lab.errors.hint`)."""
    return hint(exc, room, username)


def _classed(widget: Any, *classes: str) -> Any:
    for name in classes:
        widget.add_class(name)
    return widget


class _Coalesce:
    """Call ``fn`` once, ``delay()`` seconds after the first ``poke()`` of a burst, on a thread of
    its own (started at the first poke): a poke from the client's receive thread is an Event.set()."""

    def __init__(self, delay: Callable[[], float], fn: Callable[[], None], name: str):
        self.delay, self.fn, self.name = delay, fn, name
        self._poked = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False

    def poke(self) -> None:
        if self._thread is None:
            with self._lock:
                if self._thread is None and not self._closed:
                    self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                    self._thread.start()
        if not self._poked.is_set():
            self._poked.set()

    def _run(self) -> None:
        while True:
            self._poked.wait()
            if not self._closed:
                time.sleep(self.delay())
            if self._closed:
                return
            self._poked.clear()   # before fn: a poke while fn runs means one more update
            try:
                self.fn()
            except Exception:   # a failed update must not end the updates
                log.exception("%s: an update failed", self.name)

    def close(self) -> None:
        with self._lock:
            self._closed = True
        self._poked.set()


class ChatPanel(widgets.VBox):
    """A chat panel for one person: a join view, then a chat view, on a TCRP server at ``address``.

    ``address`` is anything ChatClient accepts (``server.address``, ``(host, port)``,
    ``"host:port"``); ``fingerprint`` pins the server key (without one, the key is checked against the
    one remembered on first contact, ``known_servers``: see :class:`~tcrp_lab.client.ControlConnection`);
    ``require_forward_secrecy`` refuses a handshake version 2 server; ``username`` and ``room`` pre-fill
    the form; ``trace=True`` opens the packet pane of this panel's own client from the start.
    Every interactive element has a CSS class (``tcrp-username``, ``tcrp-go``, ``tcrp-input`` …)
    and each panel a unique one (``tcrp-panel-N``), so a browser test can find them.
    """

    def __init__(self, address: ServerAddress | tuple | str, fingerprint: str | None = None,
                 username: str | None = None, *, room: str = "", trace: bool = False,
                 require_forward_secrecy: bool = False, known_servers: Any = DEFAULT_KNOWN):
        self.address = parse_address(address)
        self.fingerprint = fingerprint
        self._handshake = {"require_forward_secrecy": require_forward_secrecy, "known_servers": known_servers}
        self.panel_id = next(_panel_ids)
        self._lock = threading.RLock()           # widget traits: ipywidgets' syncing is not thread-safe
        self._client: ChatClient | None = None
        self._session: object | None = None      # identifies the current client's callbacks
        self._choices: dict[str, widgets.Button] = {}
        self._trace: Trace | None = None
        self._unsubscribe: Callable[[], None] | None = None
        # Rendering runs on a timer thread, outside the widget lock; one renderer per view at a time.
        self._chat_render, self._trace_render = threading.Lock(), threading.Lock()
        self._chat_refresh = _Coalesce(lambda: CHAT_REFRESH, self._render, f"tcrp-panel-{self.panel_id}-chat")
        self._trace_refresh = _Coalesce(lambda: TRACE_REFRESH, self._render_trace, f"tcrp-panel-{self.panel_id}-trace")
        self._item_html: dict[int, tuple[Any, str]] = {}    # id(item) -> (item, its HTML), for the items on screen
        self._trace_html: dict[int, tuple[Any, str]] = {}   # id(event) -> (event, its line), likewise
        self._console = Console(record=True, file=io.StringIO(), width=160, color_system="truecolor",
                                force_terminal=True)

        # --- the join view ---
        label = {"description_width": "72px"}

        def wide() -> widgets.Layout:   # the container's width (100% would overflow by the widget's margin)
            return widgets.Layout(width="auto")

        self.username = _classed(widgets.Text(value=username or "", description="Username", placeholder="your name",
                                              layout=wide(), style=label), "tcrp-username")
        self.mode = _classed(widgets.ToggleButtons(options=[("Create a room", "create"), ("Join a room", "join")],
                                                   value="create", style={"button_width": "130px"}), "tcrp-mode")
        self.refresh_button = _classed(widgets.Button(description="Refresh", icon="refresh",
                                                      tooltip="ask the server for its rooms",
                                                      layout=widgets.Layout(width="96px")), "tcrp-refresh")
        self.rooms = _classed(widgets.VBox(layout=widgets.Layout(max_height="128px", overflow="auto", width="auto")),
                              "tcrp-rooms")
        self.room = _classed(widgets.Text(value=room, description="Room", placeholder="room name", layout=wide(),
                                          style=label), "tcrp-room")
        self.password = _classed(widgets.Password(description="Password", layout=wide(), style=label),
                                 "tcrp-password")
        self.go = _classed(widgets.Button(button_style="primary", layout=widgets.Layout(width="140px")), "tcrp-go")
        self.notice = _classed(widgets.HTML(), "tcrp-notice")
        rooms_header = widgets.HBox([
            widgets.HTML("<span style='font-size:13px'>Rooms on the server (click one to join it):</span>",
                         layout=widgets.Layout(flex="1")),
            self.refresh_button], layout=widgets.Layout(width="auto", align_items="center"))
        self.join_view = _classed(widgets.VBox([
            self.username, self.mode, rooms_header, self.rooms, self.room, self.password, self.go, self.notice,
        ]), "tcrp-join-view")

        # --- the chat view ---
        self.status = _classed(widgets.HTML(), "tcrp-status")
        self.messages = _classed(widgets.HTML(layout=wide()), "tcrp-messages")
        self.members = _classed(widgets.HTML(), "tcrp-members")
        self.input = _classed(widgets.Text(placeholder="Type a message — Enter sends", layout=widgets.Layout(flex="1")),
                              "tcrp-input")
        self.send_button = _classed(widgets.Button(description="Send", layout=widgets.Layout(width="64px")),
                                    "tcrp-send")
        self.leave_button = _classed(widgets.Button(description="Leave", button_style="warning", icon="sign-out",
                                                    layout=widgets.Layout(width="96px")), "tcrp-leave")
        self.chat_notice = _classed(widgets.HTML(), "tcrp-chat-notice")
        self.trace_toggle = _classed(widgets.ToggleButton(
            value=trace, description="Packets", icon="list", layout=widgets.Layout(width="96px"),
            tooltip="show the packets this panel's client sends and receives"), "tcrp-trace-toggle")
        self.trace_view = _classed(widgets.HTML(layout=widgets.Layout(  # hidden: long lines scroll, not widen
            display="flex" if trace else "none", width="auto", overflow="hidden")), "tcrp-trace")
        self.chat_view = _classed(widgets.VBox([
            self.status, self.messages, self.members,
            widgets.HBox([self.input, self.send_button], layout=wide()),
            self.chat_notice,
            widgets.HBox([self.leave_button, self.trace_toggle]),
            self.trace_view,
        ], layout=widgets.Layout(display="none")), "tcrp-chat-view")

        self.title = widgets.HTML(
            "<div style='font-weight:600;font-size:14px'><i class='fa fa-comments'></i> TCRP chat "
            "<span style='font-weight:400;color:var(--jp-ui-font-color2,#666);font-size:12px'>"
            f"· server {html.escape(self.address.host)}:{self.address.tcp_port}</span></div>")
        super().__init__([self.title, self.join_view, self.chat_view], layout=widgets.Layout(
            width="450px", padding="8px 10px", margin="4px", border="1px solid var(--jp-border-color1, #ccc)"))
        _classed(self, "tcrp-panel", f"tcrp-panel-{self.panel_id}")

        self.mode.observe(lambda change: self._mode_changed(), "value")
        self.refresh_button.on_click(lambda _: self.refresh_rooms())
        self.go.on_click(lambda _: self.enter())
        self.input.on_msg(self._input_msg)
        self.send_button.on_click(lambda _: self.submit())
        self.leave_button.on_click(lambda _: self.leave())
        self.trace_toggle.observe(lambda change: self._show_trace(), "value")
        self._mode_changed()
        self.refresh_rooms()

    # --- convenience --------------------------------------------------------------------------

    @classmethod
    def pair(cls, address: ServerAddress | tuple | str, fingerprint: str | None = None,
             usernames: tuple[str, str] = ("alice", "bob"), room: str = "lab", **handshake: Any) -> widgets.HBox:
        """Two panels side by side (``.children`` are the panels), pre-filled to chat with yourself."""
        return widgets.HBox([cls(address, fingerprint, name, room=room, **handshake) for name in usernames],
                            layout=widgets.Layout(flex_flow="row wrap"))

    @property
    def client(self) -> ChatClient | None:
        """The ChatClient of the room this panel is in (None on the join view)."""
        return self._client

    @property
    def trace(self) -> Trace | None:
        """The packets of this panel's client (the current room, or the last one): ``explain(panel.trace[-1])``."""
        return self._trace

    def __repr__(self) -> str:
        # Stable on purpose: nbval compares a widget's text/plain output.
        return f"ChatPanel({self.address.host}:{self.address.tcp_port})"

    def close(self) -> None:
        """Leave the room (if in one) and close the widget."""
        self.leave(refresh=False)
        self._chat_refresh.close()
        self._trace_refresh.close()
        super().close()

    # --- the join view --------------------------------------------------------------------------

    def refresh_rooms(self) -> None:
        """Ask the server for its rooms and list them, with member counts and a lock if they need a password."""
        try:
            rooms = ChatClient.list_rooms(self.address, fingerprint=self.fingerprint, **self._handshake)
        except (TcrpError, OSError) as exc:
            self._say(f"Could not list the rooms: {explain_error(exc)}", "error")
            return
        with self._lock:
            old, choices = dict(self._choices), {}
            for info in sorted(rooms, key=lambda r: r.name):
                # A room still listed keeps its button: a click that lands during a refresh is never lost.
                choice = old.pop(info.name, None) or self._room_choice(info.name)
                choice.description = f"{visible(info.name)} · {info.members} member{'s' * (info.members != 1)}"
                choice.icon = "lock" if info.has_password else "comments"
                choice.tooltip = "needs a password" if info.has_password else "open to anyone"
                choice.remove_class("tcrp-open" if info.has_password else "tcrp-locked")
                choices[info.name] = _classed(choice, "tcrp-locked" if info.has_password else "tcrp-open")
            gone = [widget for widget in self.rooms.children if widget not in choices.values()]
            self._choices = choices
            self.rooms.children = tuple(choices.values()) or (
                widgets.HTML("<i style='font-size:12px;color:#888'>No rooms yet: create one.</i>"),)
        for widget in gone:
            widget.close()

    def _room_choice(self, name: str) -> widgets.Button:
        choice = widgets.Button(layout=widgets.Layout(width="auto", flex="none"))
        choice.on_click(lambda _: self.pick_room(name))
        return _classed(choice, "tcrp-room-choice")

    def pick_room(self, name: str) -> None:
        """Fill the form to join room ``name`` (what clicking a room in the list does)."""
        self.room.value = name
        self.mode.value = "join"
        for room, choice in self._choices.items():
            choice.button_style = "info" if room == name else ""

    def _mode_changed(self) -> None:
        create = self.mode.value == "create"
        self.go.description = "Create room" if create else "Join room"
        self.password.placeholder = "empty for an open room" if create else "needed if the room has a lock"

    def enter(self) -> None:
        """Create or join the room the form describes (what the button does)."""
        username, room, password = self.username.value.strip(), self.room.value.strip(), self.password.value
        if not username:
            return self._say("Type a username first.", "error")
        if not room:
            return self._say("Type a room name, or pick a room from the list.", "error")
        create = self.mode.value == "create"
        session = object()
        with self._lock:
            if self._client is not None:
                return
            self._session = session
            self.go.disabled = True
        self._say(f"{'Creating' if create else 'Joining'} “{room}”…", "info")
        trace = self._start_trace()
        open_room = ChatClient.create_room if create else ChatClient.join_room
        try:
            client = open_room(self.address, room, username, password, fingerprint=self.fingerprint, history=HISTORY,
                               trace=trace, **self._handshake, on_message=lambda _: self._changed(session),
                               on_event=lambda event: self._event(session, event))
        except Exception as exc:  # shown in the panel, never raised into a button callback
            with self._lock:
                self._session = None
                self.go.disabled = False
            self._stop_trace()
            self._say(explain_error(exc, room, username), "error")
            if isinstance(exc, (NoSuchRoom, RoomExists)):
                self.refresh_rooms()
            return
        with self._lock:
            self.go.disabled = False
            if session is not self._session:   # the room ended before we got here; _end said so
                client.close()
                return
            self._client = client
            self.password.value = ""
            self.notice.value = self.chat_notice.value = ""
            self.join_view.layout.display = "none"
            self.chat_view.layout.display = "flex"
        self._render()   # at once, not after CHAT_REFRESH: the room is on screen when the button returns

    # --- the chat view --------------------------------------------------------------------------

    def _input_msg(self, widget: Any, content: dict, buffers: Any) -> None:
        # The Text widget's frontend sends {"event": "submit"} on Enter (on_submit, minus its deprecation).
        if content.get("event") == "submit":
            self.submit()

    def submit(self) -> None:
        """Send what is in the text box (Enter or the Send button)."""
        text = self.input.value
        client = self._client
        if client is None or not text.strip():
            return
        try:
            client.send(text)
        except (ValueError, TcrpError) as exc:
            self.chat_notice.value = _notice(str(exc), "error")
            return
        self.input.value = ""
        self.chat_notice.value = ""

    def leave(self, refresh: bool = True) -> None:
        """Leave the room (a host leaving closes it) and go back to the join view."""
        with self._lock:
            client, session = self._client, self._session
        if client is None:
            return
        note = " You were its host, so the room is now closed." if client.is_host else ""
        self._end(session, f"You left “{client.room}”.{note}", "info")
        client.leave()
        if refresh:
            self.refresh_rooms()

    def _changed(self, session: object) -> None:
        """A callback (the client's receive thread): one update soon, for the whole burst."""
        if session is self._session:
            self._chat_refresh.poke()

    def _event(self, session: object, event: RoomEvent) -> None:
        if event.kind == "room_closed":
            because = _CLOSED_BECAUSE.get(event.reason or "", event.reason)
            self._end(session, f"The room was closed because {because}.", "error")
        elif event.kind == "kicked":
            why = {"timeout": "you were inactive for too long",
                   "removed_by_operator": "the server's operator (your teacher) removed you"}.get(event.reason or "",
                                                                                             event.reason)
            self._end(session, f"You were disconnected from the room because {why}.", "error")
        else:
            self._changed(session)

    def _end(self, session: object | None, notice: str, kind: str) -> None:
        """The membership of ``session`` is over: back to the join view, saying why."""
        with self._lock:
            if session is None or session is not self._session:
                return
            client, self._client, self._session = self._client, None, None
            self.chat_view.layout.display = "none"
            self.join_view.layout.display = "flex"
            self.notice.value = _notice(notice, kind)
        self._stop_trace()
        if client is not None and not client.state.active:
            client.close()   # closed or kicked: the receive thread is ending; free the socket

    # --- rendering (any thread) -----------------------------------------------------------------

    def _render(self) -> None:
        """The chat view from the client's state: status, the last SHOWN items, members."""
        with self._chat_render:
            client = self._client
            if client is None:
                return
            items, members = _recent(client.log, SHOWN), list(client.members)
            self._item_html = _cached(self._item_html, items, _render_item)
            lines = "".join(self._item_html[id(item)][1] for item in reversed(items))  # column-reverse: newest last
            state, colour = _STATE.get(client.state, (client.state, "#666"))
            status = (f"<div style='font-size:12px'>Room <b>{_text(client.room)}</b> · you are "
                      f"<b>{_text(client.username)}</b> ({'host' if client.is_host else 'guest'}) · "
                      f"<span style='color:{colour}'>● {state}</span></div>")
            empty = "<div style='color:#888;text-align:center;margin:auto'>No messages yet: say hello!</div>"
            messages = (
                "<div style='box-sizing:border-box;width:100%;height:240px;overflow-y:auto;display:flex;"
                "flex-direction:column-reverse;gap:4px;padding:6px;border:1px solid var(--jp-border-color2,#ddd);"
                "line-height:1.35;"
                f"border-radius:4px;background:var(--jp-layout-color1,#fff)'>{lines or empty}</div>")
            names = ", ".join(_text(m) + (" (you)" if m == client.username else "") for m in members)
            with self._lock:
                if client is not self._client:
                    return
                self.status.value = status
                self.messages.value = messages
                self.members.value = (f"<div style='font-size:12px;color:var(--jp-ui-font-color1,#333)'>"
                                      f"<b>Members ({len(members)}):</b> {names}</div>")

    def _say(self, text: str, kind: str) -> None:
        with self._lock:
            self.notice.value = _notice(text, kind)

    # --- the packet trace pane ------------------------------------------------------------------

    def _start_trace(self) -> Trace:
        """A fresh Trace for the next client; the pane follows it."""
        trace = Trace(limit=10 * TRACE_LINES)
        with self._lock:
            self._stop_trace()
            self._trace = trace
            self._unsubscribe = trace.subscribe(lambda event: self._packet(trace))
            self.trace_view.value = ""
        return trace

    def _stop_trace(self) -> None:
        with self._lock:
            if self._unsubscribe is not None:
                self._unsubscribe()
                self._unsubscribe = None

    def _packet(self, trace: Trace) -> None:
        """A packet passed (a trace subscriber, on the client's threads: cheap): one pane update soon."""
        if trace is self._trace and self.trace_toggle.value:
            self._trace_refresh.poke()

    def _show_trace(self) -> None:
        with self._lock:
            self.trace_view.layout.display = "flex" if self.trace_toggle.value else "none"
        self._render_trace()

    def _render_trace(self) -> None:
        with self._trace_render:
            trace = self._trace
            if trace is None or not self.trace_toggle.value:
                return
            events = trace.events[-TRACE_LINES:]
            self._trace_html = _cached(self._trace_html, events, self._line_html)
            lines = "".join(self._trace_html[id(e)][1] for e in reversed(events))   # column-reverse again
            bg, fg = SVG_EXPORT_THEME.background_color.hex, SVG_EXPORT_THEME.foreground_color.hex
            with self._lock:
                if trace is self._trace:
                    self.trace_view.value = (
                        "<div style='box-sizing:border-box;width:100%;height:200px;overflow:auto;display:flex;"
                        f"flex-direction:column-reverse;background:{bg};color:{fg};border-radius:4px;padding:4px 6px;"
                        f"font:10.5px/1.35 var(--jp-code-font-family,monospace);white-space:pre-line;"
                        f"overflow-wrap:anywhere'>{lines}</div>")

    def _line_html(self, event: PacketEvent) -> str:
        """One packet's line (tcrp_lab.trace.render_line: text shown as text) as HTML; rich escapes it."""
        self._console.print(render_line(event), soft_wrap=True)
        code = self._console.export_html(inline_styles=True, code_format="{code}", clear=True, theme=SVG_EXPORT_THEME)
        return f"<div style='padding-left:2em;text-indent:-2em'>{code.rstrip()}</div>"   # wrapped lines indented


def _recent(log: Sequence[Any], n: int) -> list[Any]:
    """The last ``n`` items of a client's log (a list, or a bounded deque), copied while the receive
    thread may be appending."""
    if isinstance(log, list):
        return log[-n:]   # one slice: atomic
    for _ in range(3):
        try:
            return list(itertools.islice(reversed(log), n))[::-1]
        except RuntimeError:   # the deque changed while we read it
            continue
    return []


def _cached(cache: dict[int, tuple[Any, str]], items: Sequence[Any],
            render: Callable[[Any], str]) -> dict[int, tuple[Any, str]]:
    """``id(item) -> (item, HTML)`` for ``items``, rendering only those not in ``cache``. Keyed by
    identity, not equality (two identical system lines are two lines); holding the item keeps its
    id from being reused."""
    fresh = {}
    for item in items:
        hit = cache.get(id(item))
        fresh[id(item)] = hit if hit is not None and hit[0] is item else (item, render(item))
    return fresh


def _text(text: str, keep: str = "") -> str:
    """Text from the network for HTML: escaped, control characters and bidi overrides as escapes."""
    return html.escape(visible(text, keep))


def _notice(text: str, kind: str) -> str:
    if not text:
        return ""
    colour = "#b42318" if kind == "error" else "var(--jp-ui-font-color1,#333)"
    icon = "⚠ " if kind == "error" else ""
    return f"<div style='color:{colour};font-size:13px;line-height:1.4;padding:4px 0'>{icon}{_text(text)}</div>"


def _render_item(item: ChatMessage | RoomEvent) -> str:
    """One chat line as HTML; everything from the network is escaped."""
    if isinstance(item, ChatMessage):
        when = time.strftime("%H:%M:%S", time.localtime(item.ts))
        cls, align, bg = (("tcrp-msg tcrp-mine", "flex-end", "#d3f0dc") if item.mine
                          else ("tcrp-msg tcrp-theirs", "flex-start", "#e8eefb"))
        text = _text(item.text, keep="\n\t")   # a chat may hold lines and tabs (the pre-wrap shows them)
        return (f"<div class='{cls}' style='align-self:{align};max-width:85%;background:{bg};color:#1f2328;"
                f"border-radius:8px;padding:3px 8px'><div style='font-size:11px;color:#57606a'>"
                f"<b>{_text(item.sender)}</b> · {when}</div>"
                f"<div style='white-space:pre-wrap;word-break:break-word'>{text}</div></div>")
    kind = _text(item.kind)
    if item.kind in WARNINGS:   # one of our own messages went wrong: say what, plainly
        reason = f" ({_text(item.reason)})" if item.reason and item.reason not in item.text else ""
        return (f"<div class='tcrp-event tcrp-event-{kind} tcrp-warning' style='align-self:stretch;font-size:12px;"
                "color:#7a4d00;background:#fff4d6;border-left:3px solid #d4a72c;border-radius:4px;padding:2px 8px'>"
                f"⚠ {_text(item.text)}{reason}</div>")
    colour = "#b42318" if item.kind in ("timeout", "room_closed", "kicked") else "#6e7781"
    return (f"<div class='tcrp-event tcrp-event-{kind}' style='align-self:center;font-size:12px;"
            f"font-style:italic;color:{colour}'>— {_text(item.text)} —</div>")
