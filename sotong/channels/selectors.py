"""Reads the channels share: which account a webhook URL names, a case's reply deliveries."""

from __future__ import annotations

from django.db.models import QuerySet

from sotong.cases.models import Case
from sotong.channels.connectors.base import Connector
from sotong.channels.models import ReplyDelivery
from sotong.directory.models import Account
from sotong.errors import NotFound


def hook_account(connector: Connector, handle: str) -> Account:
    """The active account with this handle on one of the connector's channels (enabled),
    or NotFound. If two channels of one connector had the same handle, the first channel
    by code wins; handles differ in practice (a page name, an @name)."""
    account = (
        Account.objects.select_related("channel")
        .filter(
            channel__code__in=connector.channel_codes(),
            channel__enabled=True,
            handle=handle,
            active=True,
        )
        .order_by("channel__code")
        .first()
    )
    if account is None:
        raise NotFound(f"no active {connector.platform} account '{handle}'")
    return account


def case_deliveries(case: Case) -> QuerySet[ReplyDelivery]:
    """The case's reply deliveries, oldest first, with what the case page shows of them."""
    return (
        ReplyDelivery.objects.filter(case=case)
        .select_related("account__channel", "message__channel", "recorded_by")
        .order_by("created_at", "pk")
    )
