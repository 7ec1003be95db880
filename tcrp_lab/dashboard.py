"""ServerDashboard: a teacher's live view of a classroom server, as ipywidgets, beside it in a notebook.

Local (a ChatServer started in this kernel)::

    server = ChatServer(host="0.0.0.0").start()
    ServerDashboard(server)

Remote (``tcrp-lab server`` elsewhere, through its status endpoint, TCRP.md §9)::

    ServerDashboard("http://127.0.0.1:9003", token="…")                    # read-only
    ServerDashboard("http://127.0.0.1:9003", token="…", admin_token="…")   # with the buttons

It shows the rooms and their members, chat messages and datagrams per second, drops by reason, the
addresses the server throttled, and the last packets, refreshed every ``interval`` seconds on a
thread of its own that only sets widget traits (as the ChatPanel does). Each room has a "Close
room" button, each member a "Remove" button. Rendering is bounded: at most SHOWN_ROOMS rooms of
SHOWN_MEMBERS members, SHOWN_PACKETS packets and SHOWN_ROWS drop reasons or addresses, whatever the
classroom does; everything from the network is escaped and its control characters shown as escapes.
"""

from __future__ import annotations

import html
import logging
import threading
import time
from typing import Any

import ipywidgets as widgets

from .control import ServerControl
from .explain import visible
from .status import RemoteControl, RemoteError

__all__ = ["ServerDashboard"]

log = logging.getLogger("tcrp_lab.dashboard")

SHOWN_ROOMS = 20
SHOWN_MEMBERS = 30
SHOWN_PACKETS = 20
SHOWN_ROWS = 10
INTERVAL = 1.0


def _t(text: object) -> str:
    """Text from the network, for HTML: escaped, control characters and bidi overrides as escapes."""
    return html.escape(visible(str(text)))


def _classed(widget: Any, *names: str) -> Any:
    for name in names:
        widget.add_class(name)
    return widget


class ServerDashboard(widgets.VBox):
    """A live dashboard of ``server``: a :class:`~tcrp_lab.server.ChatServer`, or the URL of a status
    endpoint with its ``token`` (and ``admin_token`` for the buttons)."""

    def __init__(self, server: Any, token: str | None = None, admin_token: str | None = None, *,
                 interval: float = INTERVAL):
        if isinstance(server, str):
            if not token:
                raise ValueError("a remote dashboard needs the status token the server printed (token=...)")
            self.source: Any = RemoteControl(server, token, admin_token)
            where = server
        else:
            self.source = ServerControl(server)
            where = f"{server.address.host}:{server.address.tcp_port}"
        self.interval = interval
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._last: tuple[float, dict[str, int]] | None = None
        self._layout_key: tuple = ()
        self._member_html: dict[tuple[str, str], widgets.HTML] = {}
        self.status: dict[str, Any] = {}

        self.header = widgets.HTML(
            f"<div style='font-weight:600;font-size:14px'>TCRP classroom · <span style='font-weight:400'>"
            f"{html.escape(where)}</span></div>")
        self.summary = _classed(widgets.HTML(), "tcrp-dash-summary")
        self.notice = _classed(widgets.HTML(), "tcrp-dash-notice")
        self.rooms = _classed(widgets.VBox(), "tcrp-dash-rooms")
        self.drops = _classed(widgets.HTML(), "tcrp-dash-drops")
        self.throttled = _classed(widgets.HTML(), "tcrp-dash-throttled")
        self.packets = _classed(widgets.HTML(), "tcrp-dash-packets")
        self.refresh_button = _classed(widgets.Button(description="Refresh", icon="refresh",
                                                      layout=widgets.Layout(width="96px")), "tcrp-dash-refresh")
        self.refresh_button.on_click(lambda _: self.refresh())
        super().__init__([
            widgets.HBox([self.header, self.refresh_button], layout=widgets.Layout(justify_content="space-between")),
            self.summary, self.notice, self.rooms,
            widgets.HBox([self.drops, self.throttled], layout=widgets.Layout(flex_flow="row wrap")),
            self.packets,
        ], layout=widgets.Layout(padding="8px 10px", border="1px solid var(--jp-border-color1, #ccc)",
                                 max_width="900px"))
        _classed(self, "tcrp-dashboard")
        self.refresh()
        self._thread = threading.Thread(target=self._poll, name="tcrp-dashboard", daemon=True)
        self._thread.start()

    def __repr__(self) -> str:
        return "ServerDashboard()"   # stable: nbval compares a widget's text/plain

    def close(self) -> None:
        """Stop refreshing and close the widget (the server goes on)."""
        self._stop.set()
        super().close()

    # --- the teacher's actions -----------------------------------------------------------------

    def close_room(self, room: str) -> None:
        self._act(lambda: self.source.close_room(room), f"Closed room “{_t(room)}”.")

    def remove_member(self, room: str, username: str) -> None:
        self._act(lambda: self.source.remove_member(room, username),
                  f"Removed {_t(username)} from “{_t(room)}”.")

    def _act(self, action: Any, done: str) -> None:
        try:
            action()
        except KeyError:
            self._say("It is gone already.", error=True)
        except (RemoteError, OSError) as exc:
            self._say(_t(exc), error=True)
        else:
            self._say(done)
        self.refresh()

    def _say(self, text_html: str, error: bool = False) -> None:
        colour = "#b42318" if error else "#1a7f37"
        with self._lock:
            self.notice.value = f"<div style='color:{colour};font-size:13px'>{text_html}</div>"

    # --- refreshing ------------------------------------------------------------------------------

    def _poll(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.refresh()
            except Exception:   # a failed update must not end the updates
                log.exception("dashboard refresh failed")

    def refresh(self) -> None:
        """Fetch the status now and show it."""
        try:
            status = self.source.status()
        except (RemoteError, OSError, ValueError) as exc:
            with self._lock:
                self.summary.value = f"<div style='color:#b42318'>⚠ {_t(exc)}</div>"
            return
        with self._lock:
            self.status = status
            self.summary.value = self._summary_html(status)
            self.drops.value = self._drops_html(status)
            self.throttled.value = self._throttled_html(status)
            self.packets.value = self._packets_html(status)
            self._show_rooms(status)

    def _rates(self, status: dict[str, Any]) -> dict[str, float]:
        now, counters = status.get("time", time.time()), status.get("counters", {})
        last, self._last = self._last, (now, dict(counters))
        if last is None or now <= last[0]:
            return {}
        dt = now - last[0]
        return {k: max(0.0, (counters.get(k, 0) - last[1].get(k, 0)) / dt) for k in ("chats", "datagrams_in",
                                                                                    "datagrams_out")}

    def _summary_html(self, status: dict[str, Any]) -> str:
        c, rates = status.get("counters", {}), self._rates(status)
        server = status.get("server", {})
        rate = (f"{rates['chats']:.1f} messages/s · {rates['datagrams_in']:.0f} datagrams/s in, "
                f"{rates['datagrams_out']:.0f} out" if rates else "messages/s: measuring…")
        return (f"<div style='font-size:13px'><b>{c.get('rooms', 0)}</b> rooms · <b>{c.get('members', 0)}</b> members"
                f" · {rate} · {c.get('joins', 0)} joins, {c.get('open_connections', 0)} connections open"
                f"<br><span style='font-size:11px;color:#666'>{_t(server.get('profile', ''))} · fingerprint "
                f"<code>{_t(server.get('fingerprint', ''))}</code></span></div>")

    @staticmethod
    def _table(title: str, rows: list[tuple[str, str]], more: int, empty: str) -> str:
        body = "".join(f"<tr><td style='padding:0 8px 0 0'>{a}</td><td style='text-align:right'>{b}</td></tr>"
                       for a, b in rows) or f"<tr><td><i style='color:#888'>{empty}</i></td></tr>"
        tail = f"<tr><td colspan=2><i>… and {more} more</i></td></tr>" if more > 0 else ""
        return (f"<div style='font-size:12px;margin:4px 16px 4px 0'><b>{title}</b>"
                f"<table style='font-size:12px'>{body}{tail}</table></div>")

    def _drops_html(self, status: dict[str, Any]) -> str:
        drops = list(status.get("drops", {}).items())
        return self._table("Dropped, by reason", [(_t(r), f"{n:,}") for r, n in drops[:SHOWN_ROWS]],
                           len(drops) - SHOWN_ROWS, "nothing dropped")

    def _throttled_html(self, status: dict[str, Any]) -> str:
        rows = status.get("throttled", [])
        return self._table("Throttled addresses", [(_t(row.get("source", "")), f"{row.get('count', 0):,}")
                                                   for row in rows[:SHOWN_ROWS]],
                           len(rows) - SHOWN_ROWS, "no one throttled")

    def _packets_html(self, status: dict[str, Any]) -> str:
        lines = []
        for p in status.get("packets", [])[-SHOWN_PACKETS:]:
            when = time.strftime("%H:%M:%S", time.localtime(p.get("time", 0)))
            arrow = "→" if p.get("direction") == "in" else "←"
            who = f" {_t(p.get('user'))}" if p.get("user") else ""
            error = f" <span style='color:#b42318'>{_t(p.get('error'))}</span>" if p.get("error") else ""
            lines.append(f"<div>{when} {arrow} {_t(p.get('transport', ''))} {_t(p.get('kind', ''))} "
                         f"{_t(p.get('peer', ''))}{who} · {int(p.get('size', 0))} B{error}</div>")
        body = "".join(reversed(lines)) or "<i style='color:#888'>no packets yet</i>"
        return (f"<div style='font-size:12px'><b>Last packets</b><div style='font:11px/1.35 monospace;"
                f"max-height:180px;overflow:auto'>{body}</div></div>")

    def _member_line(self, m: dict[str, Any]) -> str:
        role = " (host)" if m.get("is_host") else ""
        where = _t(m.get("address") or m.get("source") or "")
        return (f"<span class='tcrp-dash-member-name'>{_t(m.get('name', ''))}</span>{role} "
                f"<span style='color:#666;font-size:11px'>{where} · idle {float(m.get('idle', 0)):.0f} s</span>")

    def _show_rooms(self, status: dict[str, Any]) -> None:
        """Rebuild the rows (and their buttons) only when rooms or members change; else update the text."""
        rooms = status.get("rooms", [])[:SHOWN_ROOMS]
        key = tuple((r["name"], tuple(m["name"] for m in r.get("members", [])[:SHOWN_MEMBERS])) for r in rooms)
        if key == self._layout_key:
            for room in rooms:
                for m in room.get("members", [])[:SHOWN_MEMBERS]:
                    line = self._member_html.get((room["name"], m["name"]))
                    if line is not None:
                        line.value = self._member_line(m)
            return
        self._layout_key = key
        old, self._member_html, rows = self.rooms.children, {}, []
        can_act = getattr(self.source, "can_act", False)
        for room in rooms:
            name = room["name"]
            close = _classed(widgets.Button(description="Close room", button_style="danger", disabled=not can_act,
                                            layout=widgets.Layout(width="110px"),
                                            tooltip="every member is told the room was closed"), "tcrp-dash-close")
            close.on_click(lambda _, n=name: self.close_room(n))
            lock = " 🔒" if room.get("has_password") else ""
            title = widgets.HTML(f"<b class='tcrp-dash-room-name'>{_t(name)}</b>{lock} · "
                                 f"{room.get('member_count', 0)} members · {room.get('seq', 0)} messages",
                                 layout=widgets.Layout(flex="1"))
            lines: list[Any] = [widgets.HBox([title, close])]
            for m in room.get("members", [])[:SHOWN_MEMBERS]:
                line = widgets.HTML(self._member_line(m), layout=widgets.Layout(flex="1"))
                self._member_html[(name, m["name"])] = line
                remove = _classed(widgets.Button(description="Remove", disabled=not can_act,
                                                 layout=widgets.Layout(width="80px")), "tcrp-dash-remove")
                remove.on_click(lambda _, n=name, u=m["name"]: self.remove_member(n, u))
                lines.append(_classed(widgets.HBox([line, remove], layout=widgets.Layout(padding="0 0 0 16px")),
                                      "tcrp-dash-member"))
            hidden = room.get("member_count", 0) - min(SHOWN_MEMBERS, len(room.get("members", [])))
            if hidden > 0:
                lines.append(widgets.HTML(f"<i style='padding-left:16px'>… and {hidden} more members</i>"))
            rows.append(_classed(widgets.VBox(lines, layout=widgets.Layout(
                border_bottom="1px solid #eee", padding="2px 0")), "tcrp-dash-room"))
        more = status.get("room_count", len(rooms)) - len(rooms)
        if more > 0:
            rows.append(widgets.HTML(f"<i>… and {more} more rooms</i>"))
        if not rows:
            rows.append(widgets.HTML("<i style='color:#888'>No rooms yet.</i>"))
        self.rooms.children = tuple(rows)
        for widget in old:
            _close_tree(widget)


def _close_tree(widget: Any) -> None:
    """Close a widget and everything in it (a box's close() leaves its children's models open)."""
    for child in getattr(widget, "children", ()):
        _close_tree(child)
    widget.close()
