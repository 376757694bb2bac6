"""The reply outbox: a published answer goes back to the citizen's thread exactly once.

`deliver_answer` turns a published answer into a ReplyDelivery (the text fitted to the
platform's limit, from the reply account); `send_delivery` posts it, claiming the row and
committing before it calls the platform so that no two workers ever send one delivery;
`sweep_outbox` sends what is due and recovers sends that a crash left half done. Officers
retry or record a reply made by hand through `retry_delivery` and `record_manual_reply`.

After a crash mid-send the outbox first asks the platform (`find_sent`); when the platform
cannot tell, it sends again with the same idempotency key, which the platforms that honour
one (Mastodon's Idempotency-Key, an e-mail's Message-ID) turn into a single reply. Losing
a reply is worse than a duplicate on a platform that honours no key.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from sotong.cases.models import Answer, Case, CaseMessage
from sotong.cases.permissions import check_permission
from sotong.cases.services import record_case_event
from sotong.cases.workflow import Action, next_status
from sotong.channels.connectors.base import (
    Connector,
    NeedsReauthorization,
    OutgoingReply,
    OutsideReplyWindow,
    PermanentError,
    RateLimited,
    SentReply,
    TransientError,
    retry_delay,
)
from sotong.channels.connectors.registry import connector_for_channel
from sotong.channels.credentials import account_config
from sotong.channels.models import PollState, ReplyDelivery, ReplyState
from sotong.directory.models import Officer
from sotong.errors import InvalidInput
from sotong.inbox.models import Message
from sotong.jobs.queue import enqueue

log = logging.getLogger(__name__)

SEND_JOB = "sotong.channels.outbox.send_delivery"
# Transient errors: wait as base.retry_delay says; failed after this many tries.
MAX_ATTEMPTS = 8
# A delivery still `sending` this long after its send began was left by a crashed worker.
# Well above every connector's network timeout, so a slow send is never taken for a crash.
STALE_SENDING = timedelta(minutes=5)
# The sweep's safety net for answers whose deliver job was lost (Redis down at commit).
CATCH_UP = timedelta(days=7)
SWEEP_BATCH = 100
ELLIPSIS = "…"
NEEDS_REAUTHORIZATION = "needs re-authorization"
RATE_LIMITED = "rate limited"
ACCOUNT_OFF = "the reply account is switched off"
# The platform id of a reply the local outbox kept (SOTONG_LOCAL_OUTBOX): sent nowhere.
LOCAL_PREFIX = "local:"


# --- What is posted ---------------------------------------------------------------------

_WORD_END = re.compile(r"\S(?=\s)")
# Code points that attach to the one before them: combining marks are found by
# unicodedata; these are the others a cut must not separate (ZWJ, variation selectors,
# skin tones, Hangul medial and final jamo, emoji tag characters).
_ATTACHING = re.compile(
    "[\u200c\u200d\ufe00-\ufe0f\u1160-\u11ff\ud7b0-\ud7ff"
    "\U0001f3fb-\U0001f3ff\U000e0020-\U000e007f\U000e0100-\U000e01ef]"
)


def _cuttable(text: str, i: int) -> bool:
    """Whether a cut before text[i] keeps every grapheme whole (conservatively)."""
    if i <= 0 or i >= len(text):
        return True
    after, before = text[i], text[i - 1]
    if unicodedata.combining(after) or _ATTACHING.match(after) or before == "\u200d":
        return False
    # A regional-indicator pair (a flag) is one grapheme.
    return not ("\U0001f1e6" <= before <= "\U0001f1ff" and "\U0001f1e6" <= after <= "\U0001f1ff")


def fit_reply(body: str, link: str, *, limit: int, length: Callable[[str], int]) -> str:
    """The answer and the public case link, cut to `limit` as the platform counts
    (`length`), at the end of a word where possible and never inside a grapheme, with an
    ellipsis. `limit` 0 means no limit. Pure.

    No grapheme library is in the lock file (`regex`'s \\X would be); words end at
    whitespace, which no grapheme spans, and a single word longer than the room is cut
    between code points that do not attach to each other.
    """
    body = body.strip()
    full = f"{body}\n\n{link}" if link else body
    if limit <= 0 or length(full) <= limit:
        return full
    tail = f"{ELLIPSIS}\n\n{link}" if link else ELLIPSIS

    def fits(cut: int) -> bool:
        return length(body[:cut].rstrip() + tail) <= limit

    word_ends = [m.end() for m in _WORD_END.finditer(body)]
    points = word_ends if word_ends and fits(word_ends[0]) else []
    if not points:
        points = [i for i in range(1, len(body)) if _cuttable(body, i)]
    # The length grows with the prefix: the longest prefix that fits, by bisection.
    lo, hi, best = 0, len(points) - 1, -1
    while lo <= hi:
        mid = (lo + hi) // 2
        if fits(points[mid]):
            best, lo = mid, mid + 1
        else:
            hi = mid - 1
    if best < 0:
        return link if link and length(link) <= limit else tail.strip()
    return body[: points[best]].rstrip() + tail


def split_thread(
    body: str, link: str, *, limit: int, length: Callable[[str], int], max_parts: int
) -> list[str]:
    """The answer as a numbered thread ("(1/3) …"), each post within `limit` as the
    platform counts, the public case link at the end of the last; words are kept whole
    (a word longer than a post is cut as `fit_reply` cuts). Empty when the answer fits in
    one post, or when it needs more than `max_parts` posts (then it is cut instead). Pure.
    """
    body = body.strip()
    full = f"{body}\n\n{link}" if link else body
    if limit <= 0 or max_parts < 2 or length(full) <= limit:
        return []
    words = body.split()
    for count in range(2, max_parts + 1):
        parts = _fill_parts(words, link, limit=limit, length=length, count=count)
        if parts is not None:
            return parts
    return []


def _fill_parts(
    words: list[str], link: str, *, limit: int, length: Callable[[str], int], count: int
) -> list[str] | None:
    """`words` in exactly `count` or fewer numbered posts, or None when they need more."""
    tail = f"\n\n{link}" if link else ""
    parts: list[str] = []
    current: list[str] = []
    pending = list(words)
    while pending:
        number = f"({len(parts) + 1}/{count}) "
        word = pending[0]
        trial = number + " ".join([*current, word])
        if length(trial) <= limit:
            current.append(pending.pop(0))
            continue
        if not current:  # one word longer than a post: cut it where graphemes allow
            head = fit_reply(word, "", limit=limit - length(number), length=length)
            head = head.removesuffix(ELLIPSIS) or word[:1]
            current.append(head)
            pending[0] = word[len(head) :]
        parts.append(number + " ".join(current))
        current = []
        if len(parts) >= count:
            return None
    last_number = f"({len(parts) + 1}/{count}) "
    last = last_number + " ".join(current)
    if length(last + tail) <= limit:
        parts.append(last + tail)
    else:
        parts.append(last)
        if len(parts) >= count:
            return None
        parts.append(f"({len(parts) + 1}/{count}) " + link)
    if len(parts) != count:
        # Fewer posts than numbered: renumber with the count found.
        return _fill_parts(words, link, limit=limit, length=length, count=len(parts))
    return parts


def public_case_link(case: Case) -> str:
    return f"{settings.PUBLIC_URL}{reverse('portal:case', args=[case.number])}"


def sending_connector(channel_code: str) -> Connector | None:
    """The connector that can post replies on the channel (None: reply elsewhere)."""
    connector = connector_for_channel(channel_code)
    if connector is None or type(connector).send_reply is Connector.send_reply:
        return None
    return connector


def answered_message(case: Case) -> Message | None:
    """The message the answer goes back to: the one that opened the case (after a merge,
    the case's first message)."""
    links = CaseMessage.objects.filter(case=case).select_related(
        "message__channel", "message__account__replies_via"
    )
    link = links.filter(role=CaseMessage.Role.OPENED).order_by("pk").first()
    link = link or links.order_by("message__received_at", "pk").first()
    return link.message if link else None


def reply_text(
    body: str, link: str, connector: Connector | None, raw: Mapping[str, Any] | None = None
) -> tuple[str, list[str]]:
    """What is posted on the connector's platform: the text cut to its limit by its own
    counting rule with the public case link, and, where the platform allows a numbered
    thread and the answer needs one, its parts. No connector: the full text."""
    if connector is None:
        return fit_reply(body, link, limit=0, length=len), []
    limit, length = connector.reply_limit(raw or {}), connector.length
    parts = split_thread(
        body, link, limit=limit, length=length, max_parts=connector.max_thread_parts
    )
    text = "\n\n".join(parts) if parts else fit_reply(body, link, limit=limit, length=length)
    return text, parts


def idempotency_key(answer: Answer, message: Message) -> str:
    """Stable for the life of the delivery: the same on every attempt and after a crash."""
    return f"sotong-{answer.case.number}-a{answer.pk}-m{message.pk}"


# --- Creating deliveries ----------------------------------------------------------------


def deliver_answer(answer_id: int) -> ReplyDelivery | None:
    """The job queued by publishing: the answer's delivery to the message it answers,
    created once (a second run returns the same one), and its send queued.

    A channel whose connector cannot post replies gets a `manual` delivery, so the case
    page tells the officer to reply elsewhere and shows the text to post.
    """
    answer = (
        Answer.objects.select_related("case").filter(pk=answer_id, published_at__isnull=False)
    ).first()
    if answer is None:
        return None
    message = answered_message(answer.case)
    if message is None:
        return None
    account = message.account.reply_account if message.account else None
    connector = sending_connector(message.channel.code) if account else None
    can_send = connector is not None and account is not None and account.active
    text, parts = reply_text(
        answer.public_text,
        public_case_link(answer.case),
        connector if can_send else None,
        message.raw_payload if isinstance(message.raw_payload, dict) else {},
    )
    with transaction.atomic():
        delivery, created = ReplyDelivery.objects.get_or_create(
            answer=answer,
            message=message,
            defaults={
                "case": answer.case,
                "account": account,
                "idempotency_key": idempotency_key(answer, message),
                "state": ReplyState.PENDING if can_send else ReplyState.MANUAL,
                "next_attempt_at": timezone.now() if can_send else None,
                "text": text,
                "parts": parts,
            },
        )
        if created and delivery.state == ReplyState.PENDING:
            enqueue(SEND_JOB, delivery.pk)
    return delivery


# --- Sending ----------------------------------------------------------------------------


def _outgoing(delivery: ReplyDelivery) -> OutgoingReply:
    raw = delivery.message.raw_payload
    # The citizen's message's own fields (an e-mail's Subject and References), by lower-case
    # name, for the connectors that thread with them.
    extra = (
        {k.lower(): v for k, v in raw.items() if isinstance(v, str)}
        if isinstance(raw, dict)
        else {}
    )
    return OutgoingReply(
        in_reply_to=delivery.message.external_id,
        text=delivery.text,
        idempotency_key=delivery.idempotency_key,
        thread_parts=tuple(delivery.parts or ()),
        author=delivery.message.author_handle,
        extra=extra,
        raw=raw if isinstance(raw, dict) else {},
        sent_at=delivery.message.sent_at,
    )


def _claim(delivery_id: int) -> tuple[ReplyDelivery, bool] | None:
    """Take the delivery for one send and commit: (delivery, recovering a crashed send),
    or None when it is not this worker's to send (not due, sent, or being sent)."""
    now = timezone.now()
    with transaction.atomic():
        delivery = ReplyDelivery.objects.select_for_update().filter(pk=delivery_id).first()
        if delivery is None:
            return None
        due = delivery.state == ReplyState.PENDING and (
            delivery.next_attempt_at is None or delivery.next_attempt_at <= now
        )
        crashed = (
            delivery.state == ReplyState.SENDING
            and delivery.sending_since is not None
            and delivery.sending_since <= now - STALE_SENDING
        )
        if not (due or crashed):
            return None
        delivery.state = ReplyState.SENDING
        delivery.sending_since = now
        delivery.attempts += 1
        delivery.save(update_fields=["state", "sending_since", "attempts"])
    return delivery, crashed


def _finish(delivery: ReplyDelivery, **changes: object) -> None:
    """Record the outcome, unless the claim was lost meanwhile (a sweep took a send that
    outlived STALE_SENDING): then the newer claim's outcome stands."""
    ReplyDelivery.objects.filter(
        pk=delivery.pk, state=ReplyState.SENDING, sending_since=delivery.sending_since
    ).update(sending_since=None, **changes)


def _sent(delivery: ReplyDelivery, sent: SentReply) -> str:
    _finish(
        delivery,
        state=ReplyState.SENT,
        platform_reply_id=sent.platform_id,
        sent_at=timezone.now(),
        last_error="",
        next_attempt_at=None,
    )
    return ReplyState.SENT


def _error_text(exc: Exception) -> str:
    platform_error = getattr(exc, "platform_error", "")
    return f"{exc}: {platform_error}" if platform_error else str(exc)


def send_delivery(delivery_id: int) -> str:
    """The job: post one delivery if it is due; returns its state afterwards.

    Safe to run twice or at once on two workers: only the one whose claim commits sends.
    """
    claimed = _claim(delivery_id)
    if claimed is None:
        state = ReplyDelivery.objects.filter(pk=delivery_id).values_list("state", flat=True)
        return state.first() or "missing"
    delivery, recovering = claimed
    delivery = ReplyDelivery.objects.select_related("message__channel", "account__channel").get(
        pk=delivery.pk
    )
    connector = sending_connector(delivery.message.channel.code)
    if connector is None or delivery.account is None:
        _finish(delivery, state=ReplyState.MANUAL, last_error="", next_attempt_at=None)
        return ReplyState.MANUAL
    if not delivery.account.active:
        # Switched off on the connector status page: nothing goes out from it.
        _finish(
            delivery,
            state=ReplyState.MANUAL,
            last_error=f"{ACCOUNT_OFF}: {delivery.account}",
            next_attempt_at=None,
        )
        return ReplyState.MANUAL
    reply = _outgoing(delivery)
    if settings.SOTONG_LOCAL_OUTBOX:
        # The demo and trial installations: the reply is what would be posted, kept here.
        return _sent(delivery, SentReply(platform_id=f"{LOCAL_PREFIX}{delivery.idempotency_key}"))
    try:
        config = account_config(delivery.account)
        if recovering:
            found = connector.find_sent(config, reply)
            if found is not None:
                log.info(
                    "delivery %s was sent before the crash: %s", delivery.pk, found.platform_id
                )
                return _sent(delivery, found)
        return _sent(delivery, connector.send_reply(config, reply))
    except RateLimited as exc:
        _finish(
            delivery,
            state=ReplyState.PENDING,
            next_attempt_at=exc.retry_at,
            last_error=f"{RATE_LIMITED}: {_error_text(exc)}",
        )
        return ReplyState.PENDING
    except OutsideReplyWindow as exc:
        _finish(
            delivery, state=ReplyState.MANUAL, next_attempt_at=None, last_error=_error_text(exc)
        )
        return ReplyState.MANUAL
    except NeedsReauthorization as exc:
        error = f"{NEEDS_REAUTHORIZATION}: {_error_text(exc)}"
        # The account's poll state says so too (where it is polled), for the status page.
        PollState.objects.filter(account=delivery.account).update(needs_reauthorization=True)
        _finish(delivery, state=ReplyState.FAILED, next_attempt_at=None, last_error=error)
        return ReplyState.FAILED
    except PermanentError as exc:
        _finish(
            delivery, state=ReplyState.FAILED, next_attempt_at=None, last_error=_error_text(exc)
        )
        return ReplyState.FAILED
    except Exception as exc:
        # A transient error, or one no connector foresaw (a bug, unreadable credentials):
        # the platform did not take the reply, so trying again later is safe.
        if not isinstance(exc, TransientError):
            log.exception("sending reply delivery %s failed", delivery.pk)
        error = (
            _error_text(exc) if isinstance(exc, TransientError) else f"{type(exc).__name__}: {exc}"
        )
        if delivery.attempts >= MAX_ATTEMPTS:
            _finish(delivery, state=ReplyState.FAILED, next_attempt_at=None, last_error=error)
            return ReplyState.FAILED
        retry_at = timezone.now() + retry_delay(delivery.attempts)
        _finish(delivery, state=ReplyState.PENDING, next_attempt_at=retry_at, last_error=error)
        return ReplyState.PENDING


def sweep_outbox() -> dict[str, int]:
    """Every minute: create deliveries whose job was lost, send those due, and recover
    sends a crash left in `sending`. Bounded per run; the next run takes the rest."""
    now = timezone.now()
    lost = Answer.objects.filter(
        published_at__gte=now - CATCH_UP, reply_deliveries__isnull=True
    ).values_list("pk", flat=True)[:SWEEP_BATCH]
    created = sum(deliver_answer(pk) is not None for pk in list(lost))
    now = timezone.now()  # after creating: those just created are due
    due = ReplyDelivery.objects.filter(
        Q(state=ReplyState.PENDING, next_attempt_at__lte=now)
        | Q(state=ReplyState.PENDING, next_attempt_at__isnull=True)
        | Q(state=ReplyState.SENDING, sending_since__lte=now - STALE_SENDING)
    ).order_by("next_attempt_at", "pk")
    sent = 0
    for pk in list(due.values_list("pk", flat=True)[:SWEEP_BATCH]):
        sent += send_delivery(pk) == ReplyState.SENT
    return {"created": created, "sent": sent}


# --- Officers' actions ------------------------------------------------------------------


def _locked_delivery(
    delivery: ReplyDelivery, actor: Officer | None, action: Action
) -> ReplyDelivery:
    locked = ReplyDelivery.objects.select_for_update(of=("self",)).select_related(
        "case", "message__channel"
    )
    delivery = locked.get(pk=delivery.pk)
    check_permission(actor, action, delivery.case)
    next_status(action, delivery.case.status)
    if delivery.state not in {ReplyState.FAILED, ReplyState.MANUAL}:
        raise InvalidInput(
            f"the reply is {delivery.get_state_display()}; only a failed or manual reply can be"
        )
    return delivery


@transaction.atomic
def retry_delivery(delivery: ReplyDelivery, *, actor: Officer | None) -> ReplyDelivery:
    """다시 보내기: a failed delivery (or a manual one whose channel can now send) goes
    back to pending now, with a fresh round of attempts and the same idempotency key."""
    delivery = _locked_delivery(delivery, actor, Action.RETRY_REPLY)
    if delivery.account is None or sending_connector(delivery.message.channel.code) is None:
        raise InvalidInput("this channel cannot post replies; reply by hand and record it")
    previous = delivery.last_error
    delivery.state = ReplyState.PENDING
    delivery.attempts = 0
    delivery.next_attempt_at = timezone.now()
    delivery.save(update_fields=["state", "attempts", "next_attempt_at"])
    record_case_event(
        delivery.case,
        Action.RETRY_REPLY,
        actor,
        note=f"{delivery.idempotency_key}" + (f" (last error: {previous})" if previous else ""),
    )
    enqueue(SEND_JOB, delivery.pk)
    return delivery


@transaction.atomic
def record_manual_reply(
    delivery: ReplyDelivery, *, note: str, actor: Officer | None
) -> ReplyDelivery:
    """직접 답변 기록: the officer replied by hand (on the platform, by phone, by letter);
    the delivery is sent, with their note, and is never posted by the outbox."""
    note = note.strip()
    if not note:
        raise InvalidInput("say where and how the reply was made", field="note")
    delivery = _locked_delivery(delivery, actor, Action.RECORD_REPLY)
    delivery.state = ReplyState.SENT
    delivery.sent_at = timezone.now()
    delivery.next_attempt_at = None
    delivery.recorded_by = actor
    delivery.note = note
    delivery.save(update_fields=["state", "sent_at", "next_attempt_at", "recorded_by", "note"])
    record_case_event(delivery.case, Action.RECORD_REPLY, actor, note=note)
    return delivery
