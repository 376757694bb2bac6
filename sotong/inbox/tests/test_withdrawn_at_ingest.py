"""Ingest marks a message whose deletion the platform reported before it arrived, by
channel and external id, with one query for the whole batch."""

from __future__ import annotations

from django.db import connection
from django.test.utils import CaptureQueriesContext

from sotong.channels.connectors.base import Withdrawal
from sotong.channels.services import record_withdrawals
from sotong.directory.models import Channel
from sotong.inbox import services
from sotong.inbox.models import Message
from sotong.inbox.normalize import NormalizedMessage
from sotong.inbox.services import ingest_batch, ingest_message


def batch(prefix: str, size: int = 50) -> list[NormalizedMessage]:
    return [
        NormalizedMessage(channel="x", external_id=f"{prefix}-{n}", text=f"보안등 고장 {n}")
        for n in range(size)
    ]


def queries_for(items: list[NormalizedMessage]) -> int:
    with CaptureQueriesContext(connection) as captured:
        ingest_batch(items)
    return len(captured)


def test_batch_marks_only_the_messages_withdrawn_before(directory):
    x = Channel.objects.get(code="x")
    record_withdrawals(x, [Withdrawal("b-3"), Withdrawal("b-7")])
    # The same id on another channel is another item.
    record_withdrawals(Channel.objects.get(code="facebook"), [Withdrawal("b-4")])

    ingest_batch(batch("b", 10))

    withdrawn = Message.objects.filter(withdrawn_at__isnull=False)
    assert sorted(withdrawn.values_list("external_id", flat=True)) == ["b-3", "b-7"]


def test_single_message_withdrawn_before_is_stored_withdrawn(directory):
    record_withdrawals(Channel.objects.get(code="x"), [Withdrawal("one")])
    result = ingest_message(NormalizedMessage(channel="x", external_id="one", text="보안등"))
    assert result.created and result.message.withdrawn_at is not None
    assert Message.objects.get(external_id="one").withdrawn_at is not None


def test_looking_up_withdrawals_costs_one_query_per_batch(directory, monkeypatch):
    x = Channel.objects.get(code="x")
    record_withdrawals(x, [Withdrawal(f"w-{n}") for n in range(0, 50, 5)])

    with_lookup = queries_for(batch("w"))
    monkeypatch.setattr(services, "_mark_withdrawn", lambda messages: None)
    without_lookup = queries_for(batch("v"))

    assert with_lookup - without_lookup <= 1, (with_lookup, without_lookup)
    assert Message.objects.filter(withdrawn_at__isnull=False).count() == 10
