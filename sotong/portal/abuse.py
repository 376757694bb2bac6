"""Keeping robots off the public forms without a third-party service: a signed form token
(not sent too fast, not too old, not twice), a honeypot field, and rate limits per client
address kept in Django's cache.

The cache is `caches[SOTONG_FORM_CACHE]`: with several web processes it must be shared by
them (database or Redis), or each process counts on its own.
"""

from __future__ import annotations

import ipaddress
import math
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass

from django.conf import settings
from django.core import signing
from django.core.cache import BaseCache, caches
from django.http import HttpRequest
from django.utils.translation import gettext as _

from sotong.errors import SotongError

FORM_TOKEN_SALT = "sotong.portal.form-token"
# The honeypot's field name: a name robots like to fill in.
HONEYPOT_FIELD = "website"
TOKEN_FIELD = "started"


class FormRejected(SotongError):
    """A submission refused as (likely) automated: the message is for a person."""

    code = "form_rejected"
    status = 400


class RateLimited(SotongError):
    """Too many submissions from one address; `retry_after` seconds until the next fits."""

    code = "rate_limited"
    status = 429

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message, retry_after=retry_after)
        self.retry_after = retry_after


def form_cache() -> BaseCache:
    return caches[getattr(settings, "SOTONG_FORM_CACHE", "default")]


# --- The signed form token -----------------------------------------------------------------


def min_seconds() -> float:
    return float(getattr(settings, "SOTONG_FORM_MIN_SECONDS", 3))


def max_age_seconds() -> int:
    return int(getattr(settings, "SOTONG_FORM_MAX_AGE_SECONDS", 6 * 3600))


def issue_form_token(now: float | None = None) -> str:
    """A token for one form: when it was shown, and a nonce that it can be used only once."""
    issued = time.time() if now is None else now
    return signing.dumps({"at": issued, "n": secrets.token_urlsafe(12)}, salt=FORM_TOKEN_SALT)


@dataclass(frozen=True)
class FormToken:
    nonce: str
    issued_at: float


def check_form_token(value: str, *, now: float | None = None) -> FormToken:
    """The token if it may be used now; FormRejected if it is missing, forged, sent sooner
    than a person can write, older than the form lives, or used already."""
    moment = time.time() if now is None else now
    try:
        payload = signing.loads(value, salt=FORM_TOKEN_SALT)
        token = FormToken(nonce=str(payload["n"]), issued_at=float(payload["at"]))
    except (signing.BadSignature, KeyError, TypeError, ValueError):
        raise FormRejected(
            _("This form could not be checked. Please send it again from this page.")
        ) from None
    age = moment - token.issued_at
    if age < min_seconds():
        raise FormRejected(
            _("That was sent very fast, as a program would. If you wrote it, please send it again.")
        )
    if age > max_age_seconds():
        raise FormRejected(
            _("This form was open for a long time and has expired. Please send it again.")
        )
    if form_cache().get(_used_key(token)) is not None:
        raise FormRejected(_sent_already())
    return token


def claim_form_token(token: FormToken) -> None:
    """Mark the token used, atomically where the cache allows: of two submissions of the
    same form (a double click, a replay) one goes through."""
    if not form_cache().add(_used_key(token), 1, timeout=max_age_seconds() + 60):
        raise FormRejected(_sent_already())


def _sent_already() -> str:
    return _(
        "This form was sent already. Your text is below: send it again only if you want to "
        "write a second message."
    )


def _used_key(token: FormToken) -> str:
    return f"sotong:form-token:{token.nonce}"


def honeypot_filled(data: object) -> bool:
    value = getattr(data, "get", lambda name, default="": default)(HONEYPOT_FIELD, "")
    return bool(str(value).strip())


# --- Client address and rate limits --------------------------------------------------------


def _trusted_proxies() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    value = getattr(settings, "SOTONG_TRUSTED_PROXIES", ())
    names = value.split(",") if isinstance(value, str) else list(value)
    return [ipaddress.ip_network(n.strip(), strict=False) for n in names if n.strip()]


def _address(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(value.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def client_address(request: HttpRequest) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """REMOTE_ADDR; behind proxies named in SOTONG_TRUSTED_PROXIES, the nearest address in
    X-Forwarded-For that is not one of them (anything further left the client could forge)."""
    remote = _address(request.META.get("REMOTE_ADDR", ""))
    proxies = _trusted_proxies()
    if remote is None or not any(remote in net for net in proxies):
        return remote
    hops = [h for h in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if h.strip()]
    for hop in reversed(hops):
        address = _address(hop)
        if address is None:
            return remote
        if not any(address in net for net in proxies):
            return address
    return remote


def client_key(request: HttpRequest) -> str:
    """Who is counted: the IPv4 address, or the IPv6 /64 (one household or phone gets a
    whole /64 and can pick any address in it)."""
    address = client_address(request)
    if address is None:
        return "unknown"
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network(f"{address}/64", strict=False))
    return str(address)


def rate_limits() -> list[tuple[int, int]]:
    """(submissions, seconds) pairs from SOTONG_FORM_RATE_LIMITS, e.g. "5/600,30/86400"."""
    value = getattr(settings, "SOTONG_FORM_RATE_LIMITS", "5/600,30/86400")
    items: Sequence[str] = value.split(",") if isinstance(value, str) else value
    limits = []
    for item in items:
        count, _, seconds = str(item).partition("/")
        limits.append((int(count), int(seconds)))
    return limits


def count_submission(request: HttpRequest, scope: str, *, now: float | None = None) -> None:
    """Count one submission by this client in every window (fixed windows in the cache);
    RateLimited if one of them is full."""
    moment = time.time() if now is None else now
    cache = form_cache()
    who = client_key(request)
    waits = []
    for allowed, seconds in rate_limits():
        window = int(moment // seconds)
        key = f"sotong:rate:{scope}:{seconds}:{window}:{who}"
        cache.add(key, 0, timeout=seconds + 60)
        try:
            used = cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.set(key, 1, timeout=seconds + 60)
            used = 1
        if used > allowed:
            waits.append(math.ceil((window + 1) * seconds - moment))
    if waits:
        wait = max(waits)
        if wait <= 2 * 3600:
            later = _("in %(minutes)s minutes") % {"minutes": max(1, math.ceil(wait / 60))}
        else:
            later = _("in %(hours)s hours") % {"hours": math.ceil(wait / 3600)}
        raise RateLimited(
            _(
                "You have sent several messages in a short time. To keep the service open "
                "for everyone, please send again %(later)s: your text is kept below."
            )
            % {"later": later},
            retry_after=wait,
        )
