"""Threads, not fragments: a citizen's follow-up in the same platform thread belongs to the
case their first message opened.

A message continues a case when it replies, on the same channel, to a message of that case
by the same author (their own earlier post, or their own follow-up), or to the city's reply
in that case (the reply's id on the platform, kept by the outbox). A reply from someone
else is a message of its own: triage decides what it is, and the duplicate finder may still
link it to the case.
"""

from __future__ import annotations

from collections.abc import Sequence

from sotong.cases.models import Case, CaseMessage
from sotong.channels.models import ReplyDelivery, ReplyState
from sotong.inbox.models import Message

# A chain of merges is short; this bounds a cycle that should never exist.
MAX_MERGE_HOPS = 20


def _same_author(a: str, b: str) -> bool:
    return bool(a) and a.strip().casefold() == b.strip().casefold()


def _surviving(case: Case) -> Case:
    """The case a merged case lives on in."""
    hops = 0
    while case.merged_into_id is not None and hops < MAX_MERGE_HOPS:
        case = Case.objects.get(pk=case.merged_into_id)
        hops += 1
    return case


def _authors_of(case: Case, channel_id: int) -> set[str]:
    handles = CaseMessage.objects.filter(case=case, message__channel_id=channel_id).values_list(
        "message__author_handle", flat=True
    )
    return {h.strip().casefold() for h in handles if h}


def thread_case(message: Message) -> Case | None:
    """The case `message` continues, or None. Reads the database as it is now, so a
    follow-up that arrived with its parent finds the parent's case once it is open."""
    parent_id = message.in_reply_to
    if not parent_id or not message.author_handle:
        return None
    link = (
        CaseMessage.objects.filter(
            message__channel_id=message.channel_id, message__external_id=parent_id
        )
        .exclude(message_id=message.pk)
        .select_related("case", "message")
        .first()
    )
    if link is not None:
        if not _same_author(link.message.author_handle, message.author_handle):
            return None
        return _surviving(link.case)
    delivery = (
        ReplyDelivery.objects.filter(
            platform_reply_id=parent_id,
            message__channel_id=message.channel_id,
            state=ReplyState.SENT,
        )
        .select_related("case")
        .first()
    )
    if delivery is None:
        return None
    case = _surviving(delivery.case)
    if message.author_handle.strip().casefold() not in _authors_of(case, message.channel_id):
        return None
    return case


def thread_followers(batch: Sequence[Message]) -> list[Message]:
    """Cheap first look, before the batch's cases are opened: the messages of `batch` (in
    its order) that reply to something they could continue — an earlier message of the
    batch by the same author, or a message in a case or a reply the city sent. Two queries
    for the whole batch; `thread_case` decides each afterwards."""
    replying = [m for m in batch if m.in_reply_to and m.author_handle]
    if not replying:
        return []
    parents = {m.in_reply_to for m in replying}
    channels = {m.channel_id for m in replying}
    known = set(
        CaseMessage.objects.filter(
            message__channel_id__in=channels, message__external_id__in=parents
        ).values_list("message__channel_id", "message__external_id")
    ) | set(
        ReplyDelivery.objects.filter(
            message__channel_id__in=channels, platform_reply_id__in=parents
        ).values_list("message__channel_id", "platform_reply_id")
    )
    replying_ids = {m.pk for m in replying}
    earlier: dict[tuple[int, str], str] = {}  # (channel, external id) → author, so far
    followers = []
    for message in batch:
        key = (message.channel_id, message.in_reply_to)
        if message.pk in replying_ids and (
            key in known or _same_author(earlier.get(key, ""), message.author_handle)
        ):
            followers.append(message)
        earlier[(message.channel_id, message.external_id)] = message.author_handle
    return followers
