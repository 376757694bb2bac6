"""The demo loop without internet: demo messages arrive as signed webhook deliveries through
the real connector code, and answers land in the local outbox, sent to no platform."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.test import Client

from sotong.cases.demo import answer_one_demo_case
from sotong.channels import demo
from sotong.channels.credentials import account_config, set_account_setting
from sotong.channels.models import ReplyDelivery, ReplyState, WebhookDelivery
from sotong.directory.models import Account
from sotong.inbox.demo import demo_messages
from sotong.inbox.models import Message
from sotong.jobs.testing import run_queued_jobs

LIGHT = "종로구 창신동 골목 보안등이 일주일째 꺼져 있어요. 밤에 너무 어둡습니다. 빨리 고쳐주세요."


def deliver(delivery: demo.SignedDelivery) -> int:
    headers = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in delivery.headers.items()}
    headers.pop("HTTP_CONTENT_TYPE")
    response = Client().post(
        delivery.path(), delivery.body, content_type="application/json", **headers
    )
    return response.status_code


@pytest.fixture
def demo_accounts(directory):
    assert demo.configure_demo_accounts() > 0
    return directory


@pytest.mark.parametrize(
    ("channel", "handle"),
    [("facebook", "seoulcity"), ("instagram", "@seoul_official"), ("x", "@seoul_mayor")],
)
def test_demo_delivery_goes_through_the_real_hook(demo_accounts, channel, handle):
    delivery = demo.signed_delivery(channel, handle, "citizen_demo_99", LIGHT, "123456789")
    assert delivery is not None
    assert deliver(delivery) == 200
    run_queued_jobs()
    assert WebhookDelivery.objects.get().state == "processed"
    message = Message.objects.get(channel__code=channel)
    assert LIGHT in message.text and message.external_id == "123456789"
    assert message.account.handle == handle
    # Forged: the same body signed with another secret is refused.
    forged = demo.SignedDelivery(
        delivery.platform,
        delivery.handle,
        delivery.body.replace(b"123456789", b"987654321"),
        delivery.headers,
    )
    assert deliver(forged) in {401, 403}


def test_demo_secrets_never_replace_a_citys_own(directory):
    account = Account.objects.get(channel__code="facebook", handle="seoulcity")
    set_account_setting(account, "app_secret", "the-citys-real-secret")
    demo.configure_demo_accounts()
    assert account_config(account).get("app_secret") == "the-citys-real-secret"
    other = Account.objects.get(channel__code="facebook", handle="seoul.mayor")
    assert account_config(other).get("app_secret") == demo.DEMO_SECRETS["meta"]["app_secret"]


def test_setup_demo_sets_the_secrets(directory, capsys):
    call_command("setup_demo")
    assert "Demo webhook secrets" in capsys.readouterr().out
    account = Account.objects.get(channel__code="instagram", handle="@seoul_official")
    assert account_config(account).get("verify_token") == "sotong-demo-verify"


def test_every_signed_demo_author_is_recognisable_as_demo():
    signed = [item for item in demo_messages() if item["channel"] in demo.BUILDERS]
    assert len(signed) > 50
    assert all("_demo_" in item["author"] for item in signed)


def test_answers_land_in_the_local_outbox(demo_accounts, people, settings):
    settings.SOTONG_LOCAL_OUTBOX = True
    from sotong.directory.demo import create_demo_people

    create_demo_people()
    delivery = demo.signed_delivery("facebook", "seoulcity", "citizen_demo_98", LIGHT, "555")
    assert delivery is not None and deliver(delivery) == 200
    run_queued_jobs()
    case = answer_one_demo_case()
    assert case is not None
    run_queued_jobs()
    reply = ReplyDelivery.objects.get(case=case)
    assert reply.state == ReplyState.SENT
    assert reply.platform_reply_id == f"local:{reply.idempotency_key}"
    assert "[데모 답변]" in reply.text
