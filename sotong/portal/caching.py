"""A micro-cache for the public pages: an anonymous visitor's GET of the overview, its live
JSON, the case list or a case page is drawn at most once a second per process (the live
JSON twice) and the same bytes are served to everyone else who asks within that time.

At 50 visitors at once the pages cost their drawing once per second instead of once per
visitor. What may not be shared is never cached: a signed-in officer's pages, anything
drawn for a visitor with a session, a response that sets a cookie or used a CSRF token,
anything but a 200. The cache is `caches["local"]` (per process, in memory): a second of
staleness per process is the design, so nothing needs invalidating.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.core.cache import caches
from django.db import connection
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.utils.cache import get_conditional_response
from django.utils.translation import get_language

PAGE_SECONDS = 1.0
# The live JSON is polled every second; with half a second here a change reaches an open
# overview within two seconds (poll + cache + drawing).
LIVE_SECONDS = 0.5
# How long a page outlives its freshness, to be served while one thread draws it anew:
# the other threads answer at once instead of all drawing the same page.
STALE_SECONDS = 5.0
KEY_PREFIX = "portal:page:"

View = Callable[..., HttpResponseBase]
Stored = tuple[float, float, bytes, list[tuple[str, str]]]  # (drawn, fresh until, body, headers)

_drawing: set[str] = set()
_drawing_lock = threading.Lock()


def _claim(key: str) -> bool:
    """True if this thread is now the one drawing `key` (nobody else was)."""
    with _drawing_lock:
        if key in _drawing:
            return False
        _drawing.add(key)
        return True


def _release(key: str) -> None:
    with _drawing_lock:
        _drawing.discard(key)


def _request_may_share(request: HttpRequest) -> bool:
    """An anonymous visitor's GET with nothing kept for them: no session (officers, and
    anyone the site remembers something for, get pages drawn for them) and no flash
    message waiting. Inside a transaction (a test's) the page may show what is not
    committed, so it is drawn afresh too."""
    if request.method != "GET" or connection.in_atomic_block:
        return False
    if settings.SESSION_COOKIE_NAME in request.COOKIES or "messages" in request.COOKIES:
        return False
    return not request.user.is_authenticated


def _response_may_share(request: HttpRequest, response: HttpResponseBase) -> bool:
    """A complete 200 that carries nothing of the visitor's: no cookie set, no CSRF token
    used (the middleware would set its cookie), no session or message touched, and not
    marked private."""
    if response.status_code != 200 or response.streaming or response.cookies:
        return False
    cache_control = response.get("Cache-Control", "")
    if "private" in cache_control or "no-store" in cache_control:
        return False
    if request.META.get("CSRF_COOKIE_NEEDS_UPDATE"):
        return False
    session = getattr(request, "session", None)
    if session is not None and session.modified:
        return False
    messages = getattr(request, "_messages", None)
    return not (messages is not None and (messages.used or messages.added_new))


def _stored(response: HttpResponse, seconds: float) -> Stored:
    drawn = time.monotonic()
    return (drawn, drawn + seconds, response.content, list(response.headers.items()))


def _replay(request: HttpRequest, stored: Stored) -> HttpResponseBase:
    drawn, _fresh_until, body, headers = stored
    response = HttpResponse(body)
    for name, value in headers:
        response.headers[name] = value
    # HTTP's mark of a cached answer (RFC 9111), in whole seconds: the bench counts it.
    response["Age"] = str(int(time.monotonic() - drawn))
    etag = response.get("ETag")
    if etag:
        # The live JSON's conditional GET: an unchanged overview still answers 304.
        return get_conditional_response(request, etag=etag, response=response) or response
    return response


def page_key(language: str, full_path: str) -> str:
    """The cache key of a page: its language and its path with the query string, hashed
    (an address may be longer than a cache key should be)."""
    digest = hashlib.blake2b(full_path.encode(), digest_size=16).hexdigest()
    return f"{KEY_PREFIX}{language}:{digest}"


def micro_cached(seconds: float = PAGE_SECONDS) -> Callable[[View], View]:
    """Serve a view's anonymous GETs from the micro-cache, keyed by the page's language
    and the full path with its query string."""

    def decorate(view: View) -> View:
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            if not _request_may_share(request):
                return view(request, *args, **kwargs)
            store = caches["local"]
            key = page_key(get_language(), request.get_full_path())
            stored: Stored | None = store.get(key)
            drawing = _claim(key) if stored is None or stored[1] <= time.monotonic() else False
            if stored is not None and not drawing:
                return _replay(request, stored)  # fresh, or stale while another draws it
            try:
                response = view(request, *args, **kwargs)
                if isinstance(response, HttpResponse) and _response_may_share(request, response):
                    store.set(key, _stored(response, seconds), seconds + STALE_SECONDS)
                return response
            finally:
                if drawing:
                    _release(key)

        return wrapper

    return decorate
