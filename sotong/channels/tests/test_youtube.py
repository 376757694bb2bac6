"""YouTube through the real poller and outbox, with googleapiclient's HttpMockSequence as
the transport: the OAuth refresh, commentThreads.list paging by cursor, the message and
case, comments.insert, and quota, auth and server errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlparse

import pytest
from django_q.models import OrmQ

from sotong.cases import services
from sotong.cases.models import Case
from sotong.channels.connectors.youtube import YouTubeConnector, next_quota_reset
from sotong.channels.credentials import set_account_setting
from sotong.channels.models import PollState, ReplyDelivery, ReplyState
from sotong.channels.polling import poll_account
from sotong.channels.tests.youtube_payloads import (
    CHANNEL_ID,
    CITY_TEXT,
    TOKEN,
    RecordingHttp,
    error,
    page,
    thread,
)
from sotong.directory.models import Account
from sotong.inbox.models import Message
from sotong.jobs.testing import run_queued_jobs

REFRESH = "1//refresh-token-do-not-leak"


@pytest.fixture
def account(directory) -> Account:
    found = Account.objects.get(channel__code="youtube", handle="@seoul_tv")
    for name, value in {
        "channel_id": CHANNEL_ID,
        "client_id": "cid.apps.googleusercontent.com",
        "client_secret": "csecret",
        "refresh_token": REFRESH,
    }.items():
        set_account_setting(found, name, value)
    return found


@pytest.fixture
def transport(monkeypatch):
    """Install a response sequence; returns the recording stub."""
    holder: dict[str, RecordingHttp] = {}

    def install(*responses) -> RecordingHttp:
        holder["http"] = RecordingHttp(list(responses))
        monkeypatch.setattr(YouTubeConnector, "http", lambda self: holder["http"])
        return holder["http"]

    return install


def due(account: Account) -> None:
    PollState.objects.filter(account=account).update(next_poll_at=None)


def test_poll_interval_keeps_within_the_quota():
    polls = timedelta(days=1) / YouTubeConnector.poll_interval
    assert polls * 1 <= 0.1 * 10_000  # one list page a poll: at most a tenth of the quota
    reset = next_quota_reset(datetime(2026, 11, 25, 9, 0, tzinfo=UTC))  # 01:00 in LA
    assert reset == datetime(2026, 11, 26, 8, 0, tzinfo=UTC)


def test_new_threads_are_polled_by_cursor_and_open_a_case(account, transport):
    # First poll: starts from now (the newest thread only sets the cursor).
    http = transport(TOKEN, page(thread("Ugold", "2026-11-25T00:00:00Z")))
    assert poll_account(account.pk) == "polled"
    assert Message.objects.count() == 0
    query = parse_qs(urlparse(http.requests[1]["uri"]).query)
    assert query["allThreadsRelatedToChannelId"] == [CHANNEL_ID]
    assert query["order"] == ["time"] and query["maxResults"] == ["100"]
    assert query["textFormat"] == ["plainText"] and query["part"] == ["snippet"]
    assert http.requests[1]["headers"]["authorization"] == "Bearer ya29.test"
    token_request = http.requests[0]  # the refresh token goes to Google's token endpoint only
    assert token_request["uri"] == "https://oauth2.googleapis.com/token"
    assert parse_qs(token_request["body"].decode())["refresh_token"] == [REFRESH]

    # Second poll: two pages of new threads, stopping at the one already seen.
    due(account)
    http = transport(
        TOKEN,
        page(thread("Ugnew2", "2026-11-25T00:10:00Z"), next_token="P2"),
        page(thread("Ugnew1", "2026-11-25T00:05:00Z"), thread("Ugold", "2026-11-25T00:00:00Z")),
    )
    assert poll_account(account.pk) == "polled"
    run_queued_jobs()
    assert parse_qs(urlparse(http.requests[2]["uri"]).query)["pageToken"] == ["P2"]
    got = {m.external_id: m for m in Message.objects.all()}
    assert set(got) == {"Ugnew1", "Ugnew2"}
    message = got["Ugnew1"]
    assert message.text == CITY_TEXT and message.author_handle == "@citizen_kim"
    assert message.in_reply_to == "vid0001" and message.raw_payload["video_id"] == "vid0001"
    assert PollState.objects.get(account=account).cursor.endswith(" Ugnew2")
    assert Case.objects.count() >= 1

    # Polled again, the same threads come back: nothing new.
    due(account)
    transport(TOKEN, page(thread("Ugnew2", "2026-11-25T00:10:00Z")))
    assert poll_account(account.pk) == "polled"
    assert Message.objects.count() == 2


@pytest.mark.parametrize(
    ("response", "outcome"),
    [
        (error(403, "quotaExceeded"), "rate limited"),
        (error(403, "rateLimitExceeded"), "rate limited"),
        (error(403, "commentsDisabled"), "permanent error"),
        (error(404, "channelNotFound"), "permanent error"),
        (error(500, "backendError"), "transient error"),
    ],
)
def test_errors_are_mapped(account, transport, response, outcome):
    transport(TOKEN, response)
    assert poll_account(account.pk) == outcome
    state = PollState.objects.get(account=account)
    if "quotaExceeded" in response[1]:  # not before the quota resets, at midnight Pacific
        assert state.next_poll_at >= next_quota_reset()
    assert state.last_error


def test_revoked_refresh_token_needs_reauthorization(account, transport, caplog):
    transport(
        (
            {"status": "400"},
            json.dumps({"error": "invalid_grant", "error_description": "Token has been revoked."}),
        )
    )
    assert poll_account(account.pk) == "needs re-authorization"
    assert PollState.objects.get(account=account).needs_reauthorization
    assert REFRESH not in caplog.text


def test_published_answer_is_posted_as_a_reply(account, transport, people):
    transport(TOKEN, page(thread("Ugold", "2026-11-25T00:00:00Z")))
    poll_account(account.pk)
    due(account)
    transport(
        TOKEN,
        page(thread("Ugnew1", "2026-11-25T00:05:00Z"), thread("Ugold", "2026-11-25T00:00:00Z")),
    )
    poll_account(account.pk)
    run_queued_jobs()
    case = Case.objects.get()
    OrmQ.objects.all().delete()
    services.draft_answer(case, "보안등을 교체하였습니다. 감사합니다.", actor=people["jongno"])
    services.publish_answer(case, actor=people["jongno"], override_reason="시험")
    inserted = {"kind": "youtube#comment", "id": "Ugnew1.reply1", "snippet": {}}
    http = transport(TOKEN, ({"status": "200"}, json.dumps(inserted)))
    run_queued_jobs()
    delivery = ReplyDelivery.objects.get()
    assert delivery.state == ReplyState.SENT and delivery.platform_reply_id == "Ugnew1.reply1"
    request = http.requests[1]
    assert request["method"] == "POST" and "/youtube/v3/comments?" in request["uri"]
    body = json.loads(request["body"])
    assert body["snippet"]["parentId"] == "Ugnew1"
    assert body["snippet"]["textOriginal"].endswith(f"/cases/{case.number}/")
