"""Webhook deliveries: store a verified delivery once (`receive_delivery`) and, in a job,
parse it with its connector and ingest what it carries (`process_delivery`).

The view only verifies and stores, so the platform gets its 200 at once; the job is
idempotent (it keys on the delivery and skips one already done), and a delivery that
cannot be used is kept, marked ignored or failed with the reason, never lost. Deletions
are recorded by `record_withdrawals`, for webhooks and polls alike.

A platform that waits for the answer (Kakao's skill) gets `answer_inline`: the delivery is
stored the same way, then ingested and triaged at once within the connector's time budget,
and answered with the receipt; past the budget it is answered anyway and the stored
delivery's job finishes the work.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import threading
import time
import weakref
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures import wait as wait_futures

from django.db import IntegrityError, connections, transaction
from django.utils import timezone

from sotong.channels import receipts
from sotong.channels.connectors.base import (
    AccountConfig,
    ConnectorError,
    HandshakeResponse,
    WebhookRequest,
)
from sotong.channels.connectors.base import Withdrawal as ParsedWithdrawal
from sotong.channels.connectors.registry import connector_for
from sotong.channels.credentials import account_config
from sotong.channels.models import DeliveryState, WebhookDelivery, Withdrawal
from sotong.directory.models import Account, Channel
from sotong.errors import SotongError
from sotong.inbox.models import Message, TriageState
from sotong.inbox.services import ingest_batch
from sotong.jobs.queue import enqueue
from sotong.portal.projection import refresh_cases
from sotong.triage.services import triage_messages

log = logging.getLogger(__name__)

PROCESS_JOB = "sotong.channels.services.process_delivery"
# Headers worth keeping with a delivery: what it is, who sent it, and the platforms'
# signature and event headers (`x-…`), which are not secret. Cookies and credentials are not.
KEPT_HEADERS = {"content-type", "user-agent"}
NEVER_KEPT = ("authorization", "cookie", "x-api-key", "x-csrftoken")
MAX_HEADER_CHARS = 500


def kept_headers(headers: dict[str, str]) -> dict[str, str]:
    return {
        name: value[:MAX_HEADER_CHARS]
        for name, value in sorted(headers.items())
        if (name in KEPT_HEADERS or name.startswith("x-")) and name not in NEVER_KEPT
    }


def receive_delivery(
    account: Account, platform: str, request: WebhookRequest
) -> tuple[WebhookDelivery, bool]:
    """Store a verified delivery and queue its processing; a delivery already stored (a
    retry or a replay: same account, same body) is returned as it is, with False."""
    digest = hashlib.sha256(request.body).hexdigest()
    try:
        body, is_base64 = request.body.decode("utf-8"), False
        if "\x00" in body:  # PostgreSQL's text refuses NUL
            raise UnicodeDecodeError("utf-8", request.body, 0, 1, "NUL")
    except UnicodeDecodeError:
        body, is_base64 = base64.b64encode(request.body).decode("ascii"), True
    try:
        with transaction.atomic():
            delivery = WebhookDelivery.objects.create(
                account=account,
                platform=platform,
                body=body,
                body_is_base64=is_base64,
                body_sha256=digest,
                headers=kept_headers(dict(request.headers)),
            )
            enqueue(PROCESS_JOB, delivery.pk)
    except IntegrityError:
        existing = WebhookDelivery.objects.filter(account=account, body_sha256=digest).first()
        if existing is None:
            raise
        if existing.state == DeliveryState.FAILED:
            # A failure may have been fixed since (a setting, a disabled channel): try again.
            enqueue(PROCESS_JOB, existing.pk)
        return existing, False
    return delivery, True


def _finish(delivery: WebhookDelivery, state: str, reason: str = "", count: int = 0) -> None:
    delivery.state = state
    delivery.reason = reason
    delivery.message_count = count
    delivery.processed_at = timezone.now()
    delivery.save(update_fields=["state", "reason", "message_count", "processed_at"])


def record_withdrawals(
    channel: Channel,
    withdrawals: Sequence[ParsedWithdrawal],
    delivery: WebhookDelivery | None = None,
) -> None:
    """Record the items a platform says were deleted, once each (by channel and external
    id); `delivery` is the webhook delivery that said so (None for a poll). The channel is
    the account's: the messages that came with them are ingested on it too (ingest refuses
    a message whose channel is not the account's).

    A message already stored is marked withdrawn here, in one UPDATE; one that arrives
    later is marked at ingest (sotong/inbox/services.py), so public outputs leave it out
    either way. A message withdrawn before keeps its first time."""
    if not withdrawals:
        return
    Withdrawal.objects.bulk_create(
        [
            Withdrawal(channel=channel, external_id=w.external_id, delivery=delivery)
            for w in withdrawals
        ],
        ignore_conflicts=True,
    )
    external_ids = sorted({w.external_id for w in withdrawals})
    now = timezone.now()
    with transaction.atomic():
        for start in range(0, len(external_ids), 900):  # SQLite's variable limit
            withdrawn = Message.objects.filter(
                channel=channel,
                external_id__in=external_ids[start : start + 900],
                withdrawn_at__isnull=True,
            )
            # The public pages stop showing the text with the same commit.
            case_ids = set(
                withdrawn.filter(case_link__isnull=False).values_list(
                    "case_link__case_id", flat=True
                )
            )
            withdrawn.update(withdrawn_at=now)
            refresh_cases(case_ids)


def process_delivery(delivery_id: int) -> str:
    """The job: parse a stored delivery and ingest its messages; returns the new state."""
    with transaction.atomic():
        delivery = (
            WebhookDelivery.objects.select_for_update()
            .select_related("account__channel")
            .filter(pk=delivery_id)
            .first()
        )
        if delivery is None or delivery.state in {DeliveryState.PROCESSED, DeliveryState.IGNORED}:
            return delivery.state if delivery else "missing"
        connector = connector_for(delivery.platform)
        config = account_config(delivery.account)
        request = WebhookRequest("POST", {}, delivery.headers, delivery.raw_body)
        try:
            parsed = connector.parse(config, request)
        except (SotongError, ConnectorError) as exc:  # malformed JSON, unknown object…
            _finish(delivery, DeliveryState.IGNORED, str(exc))
            return delivery.state
        except Exception as exc:
            log.exception("parsing webhook delivery %s failed", delivery.pk)
            _finish(delivery, DeliveryState.FAILED, f"{type(exc).__name__}: {exc}")
            return delivery.state
        try:
            with transaction.atomic():  # nothing half-ingested
                new = ingest_batch(parsed.messages)
                record_withdrawals(delivery.account.channel, parsed.withdrawals, delivery)
        except SotongError as exc:  # unknown account on that channel, channel switched off
            log.warning("webhook delivery %s not ingested: %s", delivery.pk, exc)
            _finish(delivery, DeliveryState.FAILED, str(exc))
            return delivery.state
        if parsed.messages or parsed.withdrawals:
            reason = f"{parsed.ignored} event(s) ignored" if parsed.ignored else ""
            _finish(delivery, DeliveryState.PROCESSED, reason, len(new))
        else:
            _finish(
                delivery,
                DeliveryState.IGNORED,
                f"no message in it ({parsed.ignored} event(s) of a type not taken)",
            )
        return delivery.state


# --- Answering inline (Kakao's skill) ---------------------------------------------------------

# The inline work runs on these threads so that the request can answer when the budget is
# spent while the work goes on (a thread cannot be stopped; what it does is idempotent, and
# the stored delivery's job would do the same).
INLINE_WORKERS = 8
_inline_pool = ThreadPoolExecutor(max_workers=INLINE_WORKERS, thread_name_prefix="sotong-inline")
_inline_running: weakref.WeakSet[Future[str | None]] = weakref.WeakSet()


class _Answering:
    """Whether the request still waits for the inline work's answer; the lock makes
    "record the receipt" and "answer without it" exclude each other."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.given_up = False
        self.text: str | None = None


def _ingest_and_answer(delivery_id: int, answering: _Answering) -> str | None:
    """On an inline thread: ingest the delivery, triage its message, and say what the
    platform shows the citizen (the receipt, or why there is none yet); the receipt is
    recorded only if the request still waits for it. None: the request gave up."""
    try:
        answer = _inline_answer(delivery_id)
        with answering.lock:
            if answering.given_up:
                return None
            if isinstance(answer, receipts.InlineAnswer):
                receipts.record_inline_receipt(answer)
                answering.text = answer.text
            else:
                answering.text = answer
            return answering.text
    finally:
        connections.close_all()  # this thread's connections only


def _inline_answer(delivery_id: int) -> receipts.InlineAnswer | str:
    process_delivery(delivery_id)
    delivery = WebhookDelivery.objects.select_related("account__channel").get(pk=delivery_id)
    connector = connector_for(delivery.platform)
    request = WebhookRequest("POST", {}, delivery.headers, delivery.raw_body)
    try:
        parsed = connector.parse(account_config(delivery.account), request)
    except (SotongError, ConnectorError):
        return receipts.UNREADABLE_TEXT
    external_ids = [m.external_id for m in parsed.messages]
    if not external_ids:
        return receipts.UNREADABLE_TEXT
    messages = list(
        Message.objects.select_related("channel", "account").filter(
            channel=delivery.account.channel, external_id__in=external_ids
        )
    )
    if not messages:  # not ingested (the channel is switched off): the job retries
        return receipts.pending_text(receipts.receipts_on(delivery.account))
    waiting = [m.pk for m in messages if m.triage_state == TriageState.PENDING]
    if waiting:
        triage_messages(waiting)
    return receipts.inline_answer(messages[0])


def answer_inline(
    account: Account, platform: str, config: AccountConfig, request: WebhookRequest
) -> HandshakeResponse:
    """Store a verified delivery, ingest it at once and answer with the receipt, within the
    connector's `inline_budget` seconds; past it, or on any failure, answer that the
    message is received (it is stored: its job finishes the work)."""
    started = time.monotonic()
    connector = connector_for(platform)
    if not isinstance(connector, receipts.AnswersInline):
        raise TypeError(f"{platform} does not answer inline")
    fallback = receipts.pending_text(receipts.receipts_on(account))
    delivery, _ = receive_delivery(account, platform, request)
    answering = _Answering()
    future = _inline_pool.submit(_ingest_and_answer, delivery.pk, answering)
    _inline_running.add(future)
    text: str | None
    try:
        text = future.result(timeout=max(connector.inline_budget - (time.monotonic() - started), 0))
    except FutureTimeout:
        with answering.lock:
            text = answering.text  # finished just now
            answering.given_up = text is None
        if text is None:
            log.warning(
                "webhook delivery %s not ingested within %.1f s; answered without its receipt",
                delivery.pk,
                connector.inline_budget,
            )
    except Exception:
        log.exception("answering webhook delivery %s inline failed", delivery.pk)
        text = None
    return connector.inline_answer(config, text or fallback)


def wait_for_inline_work(timeout: float | None = None) -> None:
    """Wait for the inline work still running (answered already): for a clean shutdown
    and for tests."""
    wait_futures(list(_inline_running), timeout=timeout)
