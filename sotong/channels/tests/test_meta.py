"""The Meta connector over plain data (no database): handshake, signature, and each
documented payload (see meta_payloads.py for the shape each follows) normalized."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sotong.channels.connectors.base import AccountConfig, SignatureInvalid, WebhookRequest
from sotong.channels.connectors.meta import MetaConnector
from sotong.channels.connectors.registry import connector_for, connector_for_channel
from sotong.channels.tests.meta_payloads import (
    APP_SECRET,
    CITY_TEXT,
    VERIFY_TOKEN,
    encode,
    instagram_comment,
    instagram_dm,
    instagram_mention,
    messenger_message,
    page_comment,
    sign,
)
from sotong.errors import InvalidInput

META = MetaConnector()
PAGE = AccountConfig("meta", "seoulcity", {"app_secret": APP_SECRET, "verify_token": VERIFY_TOKEN})


def request(payload=None, *, body: bytes | None = None, signature: str | None = None, query=None):
    if body is None:
        body = encode(payload)
    headers = {"x-hub-signature-256": signature} if signature is not None else {}
    return WebhookRequest("POST", query or {}, headers, body)


def test_registered_for_both_channels():
    assert isinstance(connector_for("meta"), MetaConnector)
    assert connector_for_channel("facebook") is connector_for("meta")
    assert connector_for_channel("instagram") is connector_for("meta")
    assert connector_for_channel("callcenter") is None
    names = {f.name: f.secret for f in META.settings_fields}
    assert names == {
        "app_secret": True,
        "verify_token": True,
        "page_access_token": True,
        "page_id": False,
    }


def test_signature_over_the_raw_bytes():
    body = encode(page_comment())
    META.verify(PAGE, request(body=body, signature=sign(body)))
    META.verify(PAGE, request(body=body, signature=sign(body).upper().replace("SHA256", "sha256")))
    with pytest.raises(SignatureInvalid):
        META.verify(PAGE, request(body=body + b" ", signature=sign(body)))
    with pytest.raises(SignatureInvalid):
        META.verify(AccountConfig("meta", "x", {}), request(body=body, signature=sign(body)))


def test_handshake_needs_a_stored_token():
    query = {"hub.mode": "subscribe", "hub.verify_token": "", "hub.challenge": "42"}
    no_token = AccountConfig("meta", "x", {})
    assert META.handshake(no_token, request(body=b"", query=query)).status == 403


def test_page_comment():
    parsed = META.parse(PAGE, request(page_comment()))
    (message,) = parsed.messages
    assert (message.channel, message.external_id, message.account) == (
        "facebook",
        "778899_1200001",
        "seoulcity",
    )
    assert message.text == CITY_TEXT and message.author == "김시민"
    assert message.in_reply_to == "104512345678901_778899"
    assert message.sent_at == datetime(2026, 11, 25, 0, 0, tzinfo=UTC)
    assert parsed.withdrawals == [] and parsed.ignored == 0


def test_page_post_by_a_visitor_and_its_removal():
    parsed = META.parse(PAGE, request(page_comment(item="post")))
    assert parsed.messages[0].external_id == "104512345678901_778899"
    assert parsed.messages[0].in_reply_to == ""
    removed = META.parse(PAGE, request(page_comment(verb="remove")))
    assert [w.external_id for w in removed.withdrawals] == ["778899_1200001"]
    assert removed.messages == []


def test_messenger_message_in_milliseconds_and_echo_ignored():
    (message,) = META.parse(PAGE, request(messenger_message())).messages
    assert message.external_id == "m_AbCdEf0123456789"
    assert message.author == "7012345678901234"
    assert message.sent_at == datetime.fromtimestamp(1795582859, tz=UTC)
    echo = META.parse(PAGE, request(messenger_message(is_echo=True)))
    assert echo.messages == [] and echo.ignored == 1


def test_instagram_comment_dm_unsend_and_mention():
    account = AccountConfig("meta", "@seoul_official", {})
    (comment,) = META.parse(account, request(instagram_comment())).messages
    assert (comment.channel, comment.external_id, comment.author) == (
        "instagram",
        "17865799348089039",
        "seoul_citizen",
    )
    assert comment.in_reply_to == "17887498072083520"
    (dm,) = META.parse(account, request(instagram_dm())).messages
    assert dm.channel == "instagram" and dm.text.startswith("한강공원")
    unsent = META.parse(account, request(instagram_dm(deleted=True)))
    assert unsent.messages == [] and len(unsent.withdrawals) == 1
    # A mention carries no text (Meta wants a Graph API call for it): counted, not lost
    # silently; fetching it is for the next slice.
    mention = META.parse(account, request(instagram_mention()))
    assert mention.messages == [] and mention.ignored == 1


def test_reply_to_a_comment_points_at_the_parent_comment():
    payload = instagram_comment()
    payload["entry"][0]["changes"][0]["value"]["parent_id"] = "17858893269000001"
    (message,) = META.parse(PAGE, request(payload)).messages
    assert message.in_reply_to == "17858893269000001"


@pytest.mark.parametrize(
    "payload",
    [
        {"object": "page", "entry": "nope"},
        {"object": "page", "entry": [None, 3, {"changes": None, "messaging": [None]}]},
        {"object": "page", "entry": [{"messaging": [{"message": {"mid": 5, "text": ["x"]}}]}]},
        {
            "object": "page",
            "entry": [
                {
                    "changes": [
                        {
                            "field": "feed",
                            "value": {
                                "item": "comment",
                                "verb": "add",
                                "comment_id": "1",
                                "message": "  ",
                                "created_time": "yesterday",
                            },
                        }
                    ]
                }
            ],
        },
    ],
)
def test_strange_shapes_never_crash(payload):
    parsed = META.parse(PAGE, request(payload))
    assert parsed.messages == []


def test_not_json_is_invalid_input():
    with pytest.raises(InvalidInput):
        META.parse(PAGE, request(body=b"{"))
