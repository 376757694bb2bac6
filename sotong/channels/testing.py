"""A local Mastodon-like platform over real HTTP, for the outbox's kill test and the
replies benchmark: the real Mastodon connector (Mastodon.py) posts to it as to an instance.

It keeps what a Mastodon server keeps for the outbox's purposes: each posted status, and
the Idempotency-Key it came with — a second POST with the same key returns the first
status and posts nothing (Mastodon keeps keys for an hour). `hang_on` makes chosen POSTs
store their status and then never answer, as a platform that took a reply while the
sending worker died before reading the answer.

Written by hand: a stub of a remote service for tests, with the standard library's
threading HTTP server; no maintained library serves Mastodon's API locally.
"""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ACCOUNT = {
    "id": "109000000000000001",
    "username": "seoul",
    "acct": "seoul",
    "display_name": "서울특별시",
    "locked": False,
    "bot": False,
    "created_at": "2022-11-01T00:00:00.000Z",
    "note": "",
    "url": "https://mastodon.example/@seoul",
    "avatar": "",
    "avatar_static": "",
    "header": "",
    "header_static": "",
    "followers_count": 0,
    "following_count": 0,
    "statuses_count": 0,
    "emojis": [],
    "fields": [],
}


@dataclass
class Posted:
    """One status the platform took: its id, the form or JSON it came with, the headers."""

    id: str
    params: dict[str, Any]
    headers: dict[str, str]


@dataclass
class StubState:
    posted: list[Posted] = field(default_factory=list)
    requests: int = 0
    by_key: dict[str, dict[str, Any]] = field(default_factory=dict)
    # These POSTs (1 = the first) store their status and never answer.
    hang_on: set[int] = field(default_factory=set)
    drop: int = 0  # the next this-many POSTs wait, then store nothing (never committed)
    hide_context: bool = False  # a status's context lags: find_sent sees no replies
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _status(status_id: str, params: dict[str, Any]) -> dict[str, Any]:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    text = str(params.get("status", ""))
    return {
        "id": status_id,
        "uri": f"https://mastodon.example/users/seoul/statuses/{status_id}",
        "url": f"https://mastodon.example/@seoul/{status_id}",
        "created_at": now,
        "account": ACCOUNT,
        "content": f"<p>{text}</p>",
        "visibility": params.get("visibility") or "public",
        "sensitive": False,
        "spoiler_text": "",
        "media_attachments": [],
        "application": None,
        "mentions": [],
        "tags": [],
        "emojis": [],
        "reblogs_count": 0,
        "favourites_count": 0,
        "replies_count": 0,
        "in_reply_to_id": params.get("in_reply_to_id"),
        "in_reply_to_account_id": None,
        "reblog": None,
        "poll": None,
        "card": None,
        "language": params.get("language") or "ko",
        "text": None,
        "edited_at": None,
    }


def _instance(base: str) -> dict[str, Any]:
    return {
        "uri": base,
        "domain": urllib.parse.urlsplit(base).netloc,
        "title": "Sotong stub",
        "version": "4.3.0",
        "configuration": {"statuses": {"max_characters": 500, "characters_reserved_per_url": 23}},
    }


def _handler(state: StubState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # One write per response and no Nagle delay: headers and body in separate small
        # writes would wait on the client's delayed ACK (~40 ms) on every request.
        wbufsize = 64 * 1024
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def _send(self, status: int, payload: Any) -> None:
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _params(self) -> dict[str, Any]:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            if "json" in (self.headers.get("Content-Type") or ""):
                data = json.loads(raw or b"{}")
                return data if isinstance(data, dict) else {}
            return {k: v[-1] for k, v in urllib.parse.parse_qs(raw.decode()).items()}

        def do_GET(self) -> None:
            path = urllib.parse.urlsplit(self.path).path
            base = f"http://{self.headers.get('Host')}"
            if path in {"/api/v1/instance", "/api/v2/instance"}:
                self._send(200, _instance(base))
            elif path == "/api/v1/accounts/verify_credentials":
                self._send(200, ACCOUNT)
            elif path == "/api/v1/notifications":
                self._send(200, [])
            elif path.startswith("/api/v1/statuses/") and path.endswith("/context"):
                parent = path.split("/")[4]
                with state.lock:
                    replies = [
                        _status(p.id, p.params)
                        for p in state.posted
                        if str(p.params.get("in_reply_to_id")) == parent
                    ]
                self._send(
                    200, {"ancestors": [], "descendants": [] if state.hide_context else replies}
                )
            elif path.startswith("/api/v1/accounts/") and path.endswith("/statuses"):
                with state.lock:
                    statuses = [_status(p.id, p.params) for p in reversed(state.posted)]
                self._send(200, statuses[:40])
            else:
                self._send(404, {"error": "Record not found"})

        def do_POST(self) -> None:
            path = urllib.parse.urlsplit(self.path).path
            params = self._params()
            if path != "/api/v1/statuses":
                self._send(404, {"error": "Record not found"})
                return
            key = self.headers.get("Idempotency-Key") or ""
            with state.lock:
                state.requests += 1
                drop = state.drop > 0
                if drop:
                    state.drop -= 1
            if drop:  # the sender's connection dies before the platform commits anything
                state.release.wait()
                return
            with state.lock:
                existing = state.by_key.get(key) if key else None
                if existing is None:
                    status_id = str(110_000_000_000_000_000 + len(state.posted) + 1)
                    existing = _status(status_id, params)
                    state.posted.append(Posted(status_id, params, dict(self.headers.items())))
                    if key:
                        state.by_key[key] = existing
                hang = state.requests in state.hang_on
            if hang:  # taken, but the answer never comes (until the stub stops)
                state.release.wait()
                return
            self._send(200, existing)

    return Handler


@contextmanager
def stub_mastodon() -> Iterator[tuple[str, StubState]]:
    """A running stub instance: (its base URL, its state); stopped on exit."""
    state = StubState()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", state
    finally:
        state.release.set()
        server.shutdown()
        server.server_close()
