"""Ingest: store normalized messages exactly once and hand them to triage.

`ingest_message` serves the API and the web form, `ingest_batch` imports and benchmarks;
both end the same way, with the new messages stored as waiting for triage and a triage job
queued after commit. A message already stored (same channel and external id) is reported
as a duplicate and changes nothing.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from django.apps import apps
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from sotong.directory.models import Account, Channel
from sotong.errors import InvalidInput, NotAuthenticated, PermissionDenied
from sotong.inbox.models import ConnectorToken, Message, hash_token
from sotong.inbox.normalize import NormalizedMessage
from sotong.jobs.queue import enqueue
from sotong.lib.masking import mask_personal_data
from sotong.portal.projection import count_received

TRIAGE_JOB = "sotong.triage.services.triage_messages"
TRIAGE_CHUNK = 500


@dataclass(frozen=True)
class IngestResult:
    message: Message
    created: bool


class _Lookup:
    """Channels and accounts by code, read once per call rather than once per message."""

    def __init__(self) -> None:
        self.channels = {c.code: c for c in Channel.objects.all()}
        self.accounts: dict[tuple[int, str], Account] = {}
        self.own: dict[int, set[str]] = {}

    def channel(self, code: str, allowed: Channel | None) -> Channel:
        channel = self.channels.get(code)
        if channel is None:
            raise InvalidInput(f"unknown channel '{code}'", field="channel")
        if not channel.enabled:
            raise InvalidInput(f"channel '{code}' is switched off", field="channel")
        if allowed is not None and allowed.pk != channel.pk:
            raise PermissionDenied(f"this token may not post to channel '{code}'")
        return channel

    def account(self, channel: Channel, handle: str) -> Account | None:
        if not handle:
            return None
        key = (channel.pk, handle)
        if key not in self.accounts:
            found = Account.objects.filter(channel=channel, handle=handle).first()
            if found is None:
                raise InvalidInput(
                    f"unknown account '{handle}' on channel '{channel.code}'", field="account"
                )
            self.accounts[key] = found
        return self.accounts[key]

    def is_city_account(self, channel: Channel, author: str) -> bool:
        """Whether `author` is one of the city's own accounts on the channel: the city's
        replies come back in mentions and webhooks, and are not citizens' messages."""
        if channel.pk not in self.own:
            handles = Account.objects.filter(channel=channel).values_list("handle", flat=True)
            self.own[channel.pk] = {_handle_key(h) for h in handles}
        return bool(author) and _handle_key(author) in self.own[channel.pk]


def _handle_key(handle: str) -> str:
    """A handle compared without its leading @ and case (@Seoul_SMC = seoul_smc)."""
    return handle.strip().lstrip("@").casefold()


def _build(item: NormalizedMessage, lookup: _Lookup, allowed: Channel | None) -> Message:
    channel = lookup.channel(item.channel, allowed)
    return Message(
        channel=channel,
        account=lookup.account(channel, item.account),
        external_id=item.external_id,
        author_handle=item.author,
        text=item.text,
        public_text=mask_personal_data(item.text),
        sent_at=item.sent_at or timezone.now(),
        attachments=item.attachments,
        in_reply_to=item.in_reply_to,
        raw_payload=item.raw,
    )


def _mark_withdrawn(messages: Sequence[Message]) -> None:
    """Mark the unsaved messages whose deletion the platform reported before they arrived,
    with one query per 900 messages (one for any ordinary batch), never one per message.

    `Withdrawal` belongs to the channels app, which builds on this one (its models import
    `Message`, its services call ingest); it is looked up in the app registry when called
    rather than imported, so inbox does not import the layer above it.
    """
    withdrawal_model = apps.get_model("channels", "Withdrawal")
    for start in range(0, len(messages), 900):  # SQLite's variable limit
        chunk = messages[start : start + 900]
        by_channel: dict[int, list[str]] = {}
        for message in chunk:
            by_channel.setdefault(message.channel_id, []).append(message.external_id)
        wanted = Q()
        for channel_id, external_ids in by_channel.items():
            wanted |= Q(channel_id=channel_id, external_id__in=external_ids)
        withdrawn = {
            (channel_id, external_id): recorded_at
            for channel_id, external_id, recorded_at in withdrawal_model.objects.filter(
                wanted
            ).values_list("channel_id", "external_id", "recorded_at")
        }
        if withdrawn:
            for message in chunk:
                message.withdrawn_at = withdrawn.get((message.channel_id, message.external_id))


def ingest_message(
    item: NormalizedMessage, *, allowed_channel: Channel | None = None
) -> IngestResult:
    """Store one message (or find it stored already) and queue its triage."""
    message = _build(item, _Lookup(), allowed_channel)
    _mark_withdrawn([message])
    try:
        with transaction.atomic():
            message.save()
            count_received([message])
            enqueue(TRIAGE_JOB, [message.pk])
    except IntegrityError:
        existing = Message.objects.filter(
            channel=message.channel, external_id=message.external_id
        ).first()
        if existing is None:  # the constraint that failed was not the duplicate one
            raise
        return IngestResult(existing, created=False)
    return IngestResult(message, created=True)


def ingest_batch(
    items: Sequence[NormalizedMessage], *, allowed_channel: Channel | None = None
) -> list[Message]:
    """Store many messages at once; returns those that were new. Duplicates, within the
    batch or already stored, and the city's own posts are skipped."""
    lookup = _Lookup()
    built: dict[tuple[int, str], Message] = {}
    for item in items:
        message = _build(item, lookup, allowed_channel)
        if lookup.is_city_account(message.channel, message.author_handle):
            continue  # the city's own post (a reply the outbox sent), not a citizen's
        built.setdefault((message.channel_id, message.external_id), message)
    by_channel: dict[int, list[str]] = {}
    for channel_id, external_id in built:
        by_channel.setdefault(channel_id, []).append(external_id)
    with transaction.atomic():
        for channel_id, external_ids in by_channel.items():
            for start in range(0, len(external_ids), 900):  # SQLite's variable limit
                chunk = external_ids[start : start + 900]
                for found in Message.objects.filter(
                    channel_id=channel_id, external_id__in=chunk
                ).values_list("external_id", flat=True):
                    built.pop((channel_id, found), None)
        new = list(built.values())
        _mark_withdrawn(new)
        Message.objects.bulk_create(new, batch_size=500)
        count_received(new)
        for start in range(0, len(new), TRIAGE_CHUNK):
            enqueue(TRIAGE_JOB, [m.pk for m in new[start : start + TRIAGE_CHUNK]])
    return new


# --- Connector tokens ---------------------------------------------------------------------


def create_connector_token(name: str, channel: Channel | None = None) -> tuple[ConnectorToken, str]:
    """A new token; the plain token is returned once and never stored."""
    plain = "stg_" + secrets.token_urlsafe(32)
    token = ConnectorToken.objects.create(name=name, channel=channel, token_hash=hash_token(plain))
    return token, plain


def authenticate_connector(header: str) -> ConnectorToken:
    """The active token named by an `Authorization: Bearer …` header, or NotAuthenticated."""
    scheme, _, plain = header.partition(" ")
    if scheme.lower() != "bearer" or not plain.strip():
        raise NotAuthenticated("send 'Authorization: Bearer <connector token>'")
    token = (
        ConnectorToken.objects.select_related("channel")
        .filter(token_hash=hash_token(plain.strip()), active=True)
        .first()
    )
    if token is None:
        raise NotAuthenticated("unknown or revoked connector token")
    now = timezone.now()
    # Recorded to the minute: a write on every call would slow the busiest path for nothing.
    if token.last_used_at is None or now - token.last_used_at > timedelta(minutes=1):
        ConnectorToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token
