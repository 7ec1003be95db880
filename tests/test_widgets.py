"""ChatPanel without a browser: panels driven in Python against a real server over loopback.

Fields are filled and buttons clicked the way the frontend would (``Button.click()``, the Text
widget's ``submit`` message for Enter); updates arrive from the clients' receive threads, so every
check on a panel waits (bounded) for the widget value to change.
"""

from __future__ import annotations

import collections
import html
import re
import socket
import subprocess
import sys
import time

import ipywidgets
import pytest

from tcrp_lab import ChatServer
from tcrp_lab import widgets as panel_module
from tcrp_lab.client import ChatMessage, RoomEvent
from tcrp_lab.crypto import ServerKey
from tcrp_lab.protocol import MAX_TEXT
from tcrp_lab.trace import visible
from tcrp_lab.widgets import SHOWN, ChatPanel
from tests.conftest import wait_for

KEY = ServerKey.demo()   # RSA key generation is not what these tests are about
WAIT = 10.0              # bounded waits: generous for a loaded 2-core machine


@pytest.fixture
def panels():
    """Panels made by a test, closed (leaving their rooms) afterwards."""
    made: list[ChatPanel] = []
    yield made
    for panel in made:
        panel.close()


def open_panel(panels: list, server: ChatServer, username: str = "", **kwargs) -> ChatPanel:
    panel = ChatPanel(server.address, username=username, **kwargs)
    panels.append(panel)
    return panel


def fill(panel: ChatPanel, mode: str, room: str, password: str = "", username: str | None = None) -> None:
    if username is not None:
        panel.username.value = username
    panel.mode.value = mode
    panel.room.value = room
    panel.password.value = password


def press_enter(panel: ChatPanel, text: str) -> None:
    """What the browser does on Enter: sync the value, then send the Text widget's submit event."""
    panel.input.value = text
    panel.input._handle_custom_msg({"event": "submit"}, None)


def listed(panel: ChatPanel) -> dict[str, ipywidgets.Button]:
    """The room list as the learner sees it: room name -> its button."""
    return {b.description.split(" · ")[0]: b for b in panel.rooms.children if isinstance(b, ipywidgets.Button)}


def in_chat(panel: ChatPanel) -> bool:
    return panel.chat_view.layout.display != "none" and panel.join_view.layout.display == "none"


def in_join(panel: ChatPanel) -> bool:
    return panel.join_view.layout.display != "none" and panel.chat_view.layout.display == "none"


def shows(widget, text: str, what: str = "") -> None:
    wait_for(lambda: text in widget.value, WAIT, what or f"{text!r} in {widget.value!r}")


def create_and_join(panels: list, server: ChatServer, password: str = "pw") -> tuple[ChatPanel, ChatPanel]:
    alice, bob = open_panel(panels, server, "alice"), open_panel(panels, server, "bob")
    fill(alice, "create", "lab", password)
    alice.go.click()
    assert in_chat(alice), alice.notice.value
    fill(bob, "join", "lab", password)
    bob.go.click()
    assert in_chat(bob), bob.notice.value
    shows(alice.messages, "bob joined")
    return alice, bob


def test_create_shows_the_chat_view_with_status_and_members(server, panels):
    alice = open_panel(panels, server, "alice")
    assert in_join(alice) and alice.go.description == "Create room"
    fill(alice, "create", "lab", "pw")
    alice.go.click()
    assert in_chat(alice), alice.notice.value
    assert "lab" in alice.status.value and "alice" in alice.status.value and "(host)" in alice.status.value
    shows(alice.status, "connected")
    shows(alice.messages, "alice created the room")
    assert "Members (1):" in alice.members.value and "alice (you)" in alice.members.value
    assert alice.client is not None and alice.client.room == "lab"


def test_room_list_shows_members_and_a_lock_and_picking_fills_the_form(server, panels):
    alice = open_panel(panels, server, "alice")
    fill(alice, "create", "locked", "pw")
    alice.go.click()
    host2 = open_panel(panels, server, "carol")
    fill(host2, "create", "open")
    host2.go.click()
    bob = open_panel(panels, server, "bob")
    rooms = listed(bob)                                   # listed when the panel opened
    assert set(rooms) == {"locked", "open"}
    assert rooms["locked"].icon == "lock" and rooms["locked"].description == "locked · 1 member"
    assert rooms["open"].icon != "lock" and "tcrp-locked" not in rooms["open"]._dom_classes
    rooms["locked"].click()
    assert bob.room.value == "locked" and bob.mode.value == "join" and bob.go.description == "Join room"
    assert rooms["locked"].button_style == "info" and rooms["open"].button_style == ""
    bob.password.value = "pw"
    bob.go.click()
    assert in_chat(bob), bob.notice.value
    other = open_panel(panels, server, "dave")
    assert listed(other)["locked"].description == "locked · 2 members"
    alice.leave_button.click()
    other.refresh_button.click()
    assert set(listed(other)) == {"open"}


def test_a_refresh_keeps_the_button_of_a_room_still_listed_so_a_click_during_it_is_not_lost(server, panels):
    alice = open_panel(panels, server, "alice")
    fill(alice, "create", "lab", "pw")
    alice.go.click()
    bob = open_panel(panels, server, "bob")
    before = listed(bob)["lab"]
    carol = open_panel(panels, server, "carol")
    fill(carol, "create", "other")
    carol.go.click()
    bob.refresh_button.click()
    assert listed(bob)["lab"] is before and set(listed(bob)) == {"lab", "other"}
    before.click()                                        # the button the browser showed before the refresh
    assert bob.room.value == "lab" and bob.mode.value == "join"
    carol.leave_button.click()
    gone = listed(bob)["other"]
    bob.refresh_button.click()
    assert set(listed(bob)) == {"lab"} and gone.comm is None   # a room that left takes its button with it


def test_an_empty_room_list_says_so(server, panels):
    panel = open_panel(panels, server, "alice")
    assert listed(panel) == {} and "No rooms yet" in panel.rooms.children[0].value


def test_chat_both_ways_with_sender_time_and_own_messages_distinguished(server, panels):
    alice, bob = create_and_join(panels, server)
    assert "bob" in alice.members.value and "alice" in bob.members.value
    press_enter(alice, "hello bob")
    shows(bob.messages, "hello bob")
    assert alice.input.value == ""                       # Enter sent it and cleared the box
    bob.input.value = "hi alice"
    bob.send_button.click()
    shows(alice.messages, "hi alice")
    shows(alice.messages, "hello bob")
    shows(bob.messages, "hi alice")
    # Own messages have their own style; the sender and a time are shown.
    mine = re.search(r"<div class='tcrp-msg tcrp-mine'[^>]*>.*?</div></div>", alice.messages.value)
    theirs = re.search(r"<div class='tcrp-msg tcrp-theirs'[^>]*>.*?</div></div>", alice.messages.value)
    assert mine and "hello bob" in mine.group(0) and "alice" in mine.group(0)
    assert theirs and "hi alice" in theirs.group(0) and "bob" in theirs.group(0)
    assert re.search(r"\d\d:\d\d:\d\d", theirs.group(0))
    assert "tcrp-event-joined" in alice.messages.value  # system events in their own style


def test_text_from_the_network_is_escaped(server, panels):
    alice, bob = create_and_join(panels, server)
    press_enter(alice, "<img src=x onerror=alert(1)> & <b>bold</b> [bold]x[/] \u202eevil\nsecond line")
    shows(bob.messages, "&lt;img src=x onerror=alert(1)&gt; &amp; &lt;b&gt;bold&lt;/b&gt; [bold]x[/] "
                        "\\u202eevil\nsecond line")   # a line break stays a line break
    assert "<img" not in bob.messages.value and "<b>bold" not in bob.messages.value
    assert "\u202e" not in bob.messages.value


def test_a_newcomer_sees_recent_history(server, panels):
    alice = open_panel(panels, server, "alice")
    fill(alice, "create", "lab")
    alice.go.click()
    press_enter(alice, "said before bob came")
    shows(alice.messages, "said before bob came")
    bob = open_panel(panels, server, "bob")
    fill(bob, "join", "lab")
    bob.go.click()
    shows(bob.messages, "said before bob came")


def test_wrong_password_is_shown_inline_and_the_form_stays(server, panels):
    alice = open_panel(panels, server, "alice")
    fill(alice, "create", "lab", "right")
    alice.go.click()
    bob = open_panel(panels, server, "bob")
    fill(bob, "join", "lab", "wrong")
    bob.go.click()
    assert in_join(bob) and bob.client is None
    assert "Wrong password" in bob.notice.value and not bob.go.disabled
    bob.password.value = "right"
    bob.go.click()
    assert in_chat(bob), bob.notice.value


@pytest.mark.parametrize("mode, room, username, expected", [
    ("join", "lab", "alice", "already called “alice”"),         # name taken
    ("join", "lab", "\u0430lice", "looks like &#x27;alice&#x27;"),  # a look-alike (Cyrillic а), escaped
    ("join", "lab", "alice\u200b", "ZERO WIDTH SPACE"),           # an invisible character
    ("create", "lab", "bob", "already exists"),                 # room exists
    ("join", "nowhere", "bob", "no room called “nowhere”"),     # no such room
    ("create", "x" * 65, "bob", "not allowed"),                  # invalid name
    ("create", "lab2", "", "Type a username first"),            # missing field
    ("join", "", "bob", "Type a room name"),                    # missing field
])
def test_server_errors_are_explained_in_plain_words(server, panels, mode, room, username, expected):
    alice = open_panel(panels, server, "alice")
    fill(alice, "create", "lab")
    alice.go.click()
    other = open_panel(panels, server)
    fill(other, mode, room, username=username)
    other.go.click()
    assert in_join(other) and other.client is None
    assert expected in other.notice.value
    assert "⚠" in other.notice.value


def test_an_unreachable_server_is_an_inline_message_not_an_exception(panels):
    with socket.socket() as probe:           # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    panel = ChatPanel(f"127.0.0.1:{port}", username="alice")
    panels.append(panel)
    assert "Could not list the rooms" in panel.notice.value and "Is the server running" in panel.notice.value
    fill(panel, "create", "lab")
    panel.go.click()
    assert in_join(panel) and "cannot connect" in panel.notice.value


def test_a_too_long_message_is_refused_with_a_reason(server, panels):
    alice, _ = create_and_join(panels, server)
    press_enter(alice, "x" * (MAX_TEXT + 1))
    assert f"1-{MAX_TEXT} characters" in alice.chat_notice.value
    assert alice.input.value == "x" * (MAX_TEXT + 1)   # kept, so it can be shortened


def test_leave_returns_to_the_join_view_and_the_others_see_it(server, panels):
    alice, bob = create_and_join(panels, server)
    bob.leave_button.click()
    assert in_join(bob) and bob.client is None and "You left “lab”" in bob.notice.value
    shows(alice.messages, "bob left")
    wait_for(lambda: "Members (1):" in alice.members.value, WAIT, "alice's member list without bob")
    assert listed(bob)["lab"].description == "lab · 1 member"                   # the list was refreshed
    bob.password.value = "pw"
    bob.go.click()                                                     # and joining again works
    assert in_chat(bob), bob.notice.value


def test_the_host_leaving_closes_the_room_for_the_guests(server, panels):
    alice, bob = create_and_join(panels, server)
    alice.leave_button.click()
    assert in_join(alice) and "room is now closed" in alice.notice.value
    wait_for(lambda: in_join(bob), WAIT, "bob back on the join view")
    assert "The room was closed because its host left" in bob.notice.value
    assert bob.client is None


def test_timeouts_are_shown_and_return_to_the_join_view(panels):
    now = [1000.0]   # the server's clock: moved by hand, so nobody times out before we mean it
    with ChatServer("127.0.0.1", 0, 0, key=KEY, inactivity_timeout=300, reap_interval=0.05,
                    clock=lambda: now[0]) as server:
        alice, bob = create_and_join(panels, server)
        now[0] += 301
        wait_for(lambda: in_join(alice) and in_join(bob), WAIT, "both panels back on the join view")
        assert "inactive for too long" in alice.notice.value                       # the host was kicked
        assert "closed because its host was inactive" in bob.notice.value           # the room closed


def test_two_panels_in_a_box_need_no_extra_code(server):
    pair = ChatPanel.pair(server.address)
    alice, bob = pair.children
    try:
        assert {"tcrp-panel"} <= set(alice._dom_classes) & set(bob._dom_classes)
        unique = [{c for c in p._dom_classes if re.fullmatch(r"tcrp-panel-\d+", c)} for p in (alice, bob)]
        assert len(unique[0]) == len(unique[1]) == 1 and unique[0] != unique[1]
        alice.go.click()                  # pre-filled: alice creates "lab", bob joins it
        bob.mode.value = "join"
        bob.go.click()
        press_enter(bob, "it just works")
        shows(alice.messages, "it just works")
    finally:
        alice.close()
        bob.close()


def test_repr_is_stable_for_notebook_outputs(server, panels):
    panel = open_panel(panels, server, "alice")
    assert repr(panel) == f"ChatPanel(127.0.0.1:{server.address.tcp_port})"
    assert panel._repr_mimebundle_()["text/plain"] == repr(panel)


def test_only_the_widget_modules_import_ipywidgets():
    """The panel, the chat page and the dashboard; the server, the client and the command stay light."""
    code = ("import importlib, pkgutil, sys, tcrp_lab\n"
            "for m in pkgutil.iter_modules(tcrp_lab.__path__):\n"
            "    if m.name not in ('widgets', 'chatpage', 'dashboard'): importlib.import_module('tcrp_lab.' + m.name)\n"
            "print(sorted(k for k in sys.modules if k.split('.')[0] in ('ipywidgets', 'IPython')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_the_packet_pane_shows_this_panels_own_packets(server, panels):
    alice = open_panel(panels, server, "alice", trace=True)
    bob = open_panel(panels, server, "bob")
    fill(alice, "create", "lab")
    alice.go.click()
    assert alice.trace_view.layout.display != "none"
    for kind in ("ServerHello", "ClientKeyExchange", "request", "complete", "hello", "welcome"):
        shows(alice.trace_view, kind)
    assert alice.trace is not None and {e.kind for e in alice.trace.events} >= {"ServerHello", "hello"}
    fill(bob, "join", "lab")
    bob.go.click()
    press_enter(bob, "packets <please>")
    shows(alice.messages, "packets &lt;please&gt;")
    shows(alice.trace_view, "packets &lt;please&gt;")   # the chat datagram alice received, decoded and escaped
    assert bob.trace_view.value == "" and bob.trace_view.layout.display == "none"   # off until asked
    assert any(e.kind == "chat" and e.direction == "out" for e in bob.trace.events)
    bob.trace_toggle.value = True                    # shown on demand, from what was recorded
    assert bob.trace_view.layout.display != "none"
    shows(bob.trace_view, "packets &lt;please&gt;")


# --- many messages, warnings, hostile text: delivered as the client's receive thread does ---------------


def deliver(panel: ChatPanel, *items: ChatMessage | RoomEvent) -> None:
    """What the client's receive thread does for each new room item: add it to the log, call back."""
    client = panel.client
    for item in items:
        client.log.append(item)
        (client.on_message if isinstance(item, ChatMessage) else client.on_event)(item)


def chats(texts, sender: str = "bob") -> list[ChatMessage]:
    return [ChatMessage(seq=1000 + i, sender=sender, text=text, ts=time.time()) for i, text in enumerate(texts)]


def in_room(panels: list, server: ChatServer) -> ChatPanel:
    alice = open_panel(panels, server, "alice")
    fill(alice, "create", "lab")
    alice.go.click()
    shows(alice.messages, "alice created the room")
    return alice


def test_a_burst_of_messages_is_one_update_each_rendered_once_and_at_most_SHOWN_on_screen(server, panels,
                                                                                           monkeypatch):
    monkeypatch.setattr(panel_module, "CHAT_REFRESH", 1.0)   # a burst of a few ms falls in one update, however loaded
    alice = in_room(panels, server)
    rendered = collections.Counter()
    real = panel_module._render_item
    monkeypatch.setattr(panel_module, "_render_item", lambda item: rendered.update([id(item)]) or real(item))
    updates = []
    alice.messages.observe(lambda change: updates.append(change["new"]), "value")

    first_burst = chats(f"m{i:03d}." for i in range(150))
    deliver(alice, *first_burst)
    shows(alice.messages, "m149.")
    assert len(updates) <= 2, f"{len(updates)} updates for one burst of 150 messages"
    second_burst = chats(f"m{i:03d}." for i in range(150, 300))
    deliver(alice, *second_burst)
    shows(alice.messages, "m299.")
    assert len(updates) <= 4, f"{len(updates)} updates for two bursts of 150 messages"

    # each message's HTML was made once, though the view was rendered several times
    assert [rendered[id(item)] for item in first_burst + second_burst] == [1] * 300
    shown = alice.messages.value
    assert shown.count("class='tcrp-msg ") == SHOWN   # the last SHOWN items, newest at the bottom
    assert "m100." in shown and "m099." not in shown and "alice created the room" not in shown
    assert shown.index("m299.") < shown.index("m100.")   # column-reverse: newest first in the HTML


def test_refused_undelivered_and_missed_are_shown_as_warnings_with_their_text(server, panels):
    alice = in_room(panels, server)
    warnings = [
        RoomEvent("refused", "Your message was refused: it is longer than the server accepts.", reason="too_long"),
        RoomEvent("undelivered", "“<b>hi</b>” was not delivered: the server did not answer after 10 tries."),
        RoomEvent("missed", "Messages 5-7 were lost: the server no longer has them."),
    ]
    deliver(alice, *warnings)
    shows(alice.messages, "Messages 5-7 were lost")
    found = re.findall(r"<div class='tcrp-event tcrp-event-(\w+) tcrp-warning'[^>]*>⚠ ([^<]*)</div>",
                       alice.messages.value)
    assert found == [("missed", "Messages 5-7 were lost: the server no longer has them."),   # newest first
                     ("undelivered", ("“&lt;b&gt;hi&lt;/b&gt;” was not delivered: the server did not answer "
                                      "after 10 tries.")),
                     ("refused", "Your message was refused: it is longer than the server accepts. (too_long)")]
    assert "<div class='tcrp-event tcrp-event-joined' " in alice.messages.value   # other events: not warnings


HOSTILE = ["[bold]x[/]", "[/]", "\x1b]52;c;aGVsbG8=\x07", "\x1b[2J", "\u202eecila", "<img src=x onerror=alert(1)>"]
CONTROLS = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def test_names_rooms_and_texts_with_markup_or_controls_are_shown_as_text(server, panels, monkeypatch):
    alice = in_room(panels, server)
    client = alice.client
    for hostile in HOSTILE:   # names our server refuses, as a hostile server could send them
        monkeypatch.setattr(type(client), "room", property(lambda self, name=f"room {hostile}": name), raising=False)
        monkeypatch.setattr(type(client), "username", property(lambda self, name=f"me {hostile}": name),
                            raising=False)
        client.members.append(f"member {hostile}")
        deliver(alice, *chats([f"said {hostile}"], sender=f"sender {hostile}"),
                RoomEvent("joined", f"{hostile} joined", user=hostile),
                RoomEvent("refused", f"refused: {hostile}", reason=hostile))
        shows(alice.messages, html.escape(f"said {visible(hostile)}"))
        shows(alice.status, html.escape(f"me {visible(hostile)}"))
        page = alice.status.value + alice.messages.value + alice.members.value
        for shown in (f"room {hostile}", f"me {hostile}", f"member {hostile}", f"sender {hostile}",
                      f"{hostile} joined", f"refused: {hostile}"):
            assert html.escape(visible(shown)) in page, shown
        assert not CONTROLS.search(page) and "<img" not in page


def test_a_password_guesser_is_told_to_wait_in_plain_words():
    from tcrp_lab.client import RateLimited
    from tcrp_lab.widgets import explain_error

    text = explain_error(RateLimited("too many wrong passwords", retry_after=4.0), "vault")
    assert "Too many wrong passwords for “vault”" in text and "in 4 s" in text
    assert "in a moment" in explain_error(RateLimited("too many", retry_after=0.25), "vault")


def test_a_panel_refuses_a_changed_key_showing_both_fingerprints_and_what_to_do(panels, tmp_path):
    from tcrp_lab.known_servers import KnownServers

    memory = KnownServers(tmp_path / "known_servers")
    with ChatServer("127.0.0.1", 0, 0) as first:   # its own key: remembered on first contact
        panel = ChatPanel(first.address, username="alice", known_servers=memory)
        panels.append(panel)
        assert memory.remembered(first.host, first.address.tcp_port) == first.fingerprint
        stale = ("ab" * 32)
        memory.forget(first.host, first.address.tcp_port)
        memory.check(first.host, first.address.tcp_port, stale)   # as if another key had been met there before
        fill(panel, "create", "lab")
        panel.go.click()
        assert in_join(panel) and panel.client is None
        for words in (first.fingerprint, stale, "delete line 1", "Nothing was sent"):
            assert words in panel.notice.value


def test_a_panel_that_requires_forward_secrecy_refuses_a_version_2_server(panels):
    with ChatServer("127.0.0.1", 0, 0, key=KEY, handshake="rsa") as old:
        panel = ChatPanel(old.address, username="alice", require_forward_secrecy=True)
        panels.append(panel)
        assert "offers only the version 2 handshake" in panel.notice.value
        fill(panel, "create", "lab")
        panel.go.click()
        assert in_join(panel) and "Refused" in panel.notice.value
