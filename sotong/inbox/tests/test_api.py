"""POST /api/v1/messages through real HTTP requests (Django's test client)."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from sotong.directory.models import Channel
from sotong.inbox.models import Message
from sotong.inbox.services import create_connector_token

URL = "/api/v1/messages"


def post(
    client: Client,
    token: str | None,
    body: bytes | str | object,
    content_type: str = "application/json",
):
    if not isinstance(body, bytes | str):
        body = json.dumps(body, ensure_ascii=False)
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    return client.generic("POST", URL, body, content_type=content_type, **headers)


def message(**overrides):
    data = {
        "channel": "x",
        "account": "@seoul_mayor",
        "external_id": "1790000000000000001",
        "author": "@citizen",
        "text": "종로구 창신동 골목 보안등이 꺼져 있어요. 고쳐주세요",
        "sent_at": "2026-11-25T09:30:00+09:00",
    }
    data.update(overrides)
    return data


@pytest.fixture
def client() -> Client:
    return Client()


def test_creates_then_reports_duplicate(client, token):
    first = post(client, token, message())
    assert first.status_code == 201, first.content
    assert first.json()["duplicate"] is False
    second = post(client, token, message(text="different text, same id"))
    assert second.status_code == 200
    assert second.json() == {**second.json(), "duplicate": True, "id": first.json()["id"]}
    assert Message.objects.count() == 1
    assert Message.objects.get().text.startswith("종로구")


def test_same_external_id_on_another_channel_is_another_message(client, token):
    assert post(client, token, message()).status_code == 201
    assert post(client, token, message(channel="instagram", account="")).status_code == 201
    assert Message.objects.count() == 2


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"external_id": "1", "text": "hi"}, "channel"),
        (message(text=""), "text"),
        (message(text="   "), "text"),
        (message(external_id=12345), "external_id"),
        (message(text=["list"]), "text"),
        (message(sent_at="yesterday"), "sent_at"),
        (message(sent_at="2026-11-25T09:30:00"), "sent_at"),
        (message(attachments="x.jpg"), "attachments"),
        (message(attachments=[{"url": "javascript:alert(1)"}]), "attachments[0]"),
        (message(channel="myspace"), "channel"),
        (message(account="@nobody"), "account"),
        (message(colour="red"), "colour"),
        (message(text="a" * 20_001), "text"),
    ],
)
def test_invalid_fields_are_named(client, token, body, field):
    response = post(client, token, body)
    assert response.status_code == 400, response.content
    assert response.json()["error"] == "invalid_input"
    assert response.json()["field"] == field
    assert Message.objects.count() == 0


@pytest.mark.parametrize(
    "body",
    [b"{not json", b"[1, 2]", b"", "null", b"\xff\xfe{\x00}", b'{"text": "\xed\xa0\x80"}'],
)
def test_broken_bodies_get_a_clear_error(client, token, body):
    response = post(client, token, body)
    assert response.status_code == 400
    assert response.json()["message"]
    assert Message.objects.count() == 0


def test_lone_surrogate_escape_is_refused(client, token):
    response = post(client, token, '{"channel": "x", "external_id": "9", "text": "\\ud800 broken"}')
    assert response.status_code == 400
    assert "surrogate" in response.json()["message"]


def test_oversize_body_is_refused_before_parsing(client, token, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = post(client, token, message(text="가" * 2000))
    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"
    assert Message.objects.count() == 0


def test_wrong_content_type(client, token):
    response = post(client, token, json.dumps(message()), content_type="text/plain")
    assert response.status_code == 400


@pytest.mark.parametrize("header", ["", "Bearer", "Bearer nope", "Basic abc"])
def test_needs_a_valid_token(client, directory, header):
    response = client.post(
        URL, json.dumps(message()), content_type="application/json", HTTP_AUTHORIZATION=header
    )
    assert response.status_code == 401
    assert Message.objects.count() == 0


def test_token_limited_to_its_channel(client, directory):
    _, plain = create_connector_token("kakao-only", Channel.objects.get(code="kakao"))
    response = post(client, plain, message())
    assert response.status_code == 403
    assert Message.objects.count() == 0


def test_switched_off_channel_refuses(client, token):
    Channel.objects.filter(code="x").update(enabled=False)
    assert post(client, token, message()).status_code == 400


def test_text_is_stored_as_given_nul_and_controls_removed(client, token):
    text = "<script>alert('x')</script> 가로등\x00 고장 \U0001f6a8 ＡＢＣ１２３"
    response = post(client, token, message(text=text, raw={"nested": ["a\x00b"]}))
    assert response.status_code == 201
    stored = Message.objects.get()
    assert stored.text == "<script>alert('x')</script> 가로등 고장 \U0001f6a8 ＡＢＣ１２３"
    assert stored.raw_payload == {"nested": ["ab"]}


def test_decomposed_hangul_is_composed(client, token):
    decomposed = "\u1100\u1161\u1105\u1169\u1103\u1173\u11bc"  # 가로등 typed as jamo
    assert post(client, token, message(text=decomposed)).status_code == 201
    assert Message.objects.get().text == "가로등"


def test_get_is_not_allowed(client, token):
    assert client.get(URL, HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 405
