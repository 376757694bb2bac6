"""The web form: what a citizen sends is stored with its place, category hint, contact and a
photo stripped of its metadata; robots are turned away (honeypot, form timing, replays,
rate limits) with a polite message that keeps what was typed."""

from __future__ import annotations

import html
import io
import re

import pytest
from django.core.files.storage import default_storage
from django.test import Client
from PIL import Image

from sotong.cases.models import Case
from sotong.inbox.models import Message
from sotong.portal import abuse
from sotong.triage.services import triage_messages

TEXT = "창신동 골목 보안등이 일주일째 꺼져 있어요. 고쳐주세요."


@pytest.fixture(autouse=True)
def form_settings(settings, tmp_path, db):
    settings.SOTONG_FORM_MIN_SECONDS = 0
    settings.MEDIA_ROOT = tmp_path / "media"
    abuse.form_cache().clear()
    yield settings
    abuse.form_cache().clear()


def started(client: Client) -> str:
    page = client.get("/write/").content.decode()
    return html.unescape(re.search(r'name="started" value="([^"]+)"', page)[1])


def send(client: Client, **fields):
    data = {"text": TEXT, "district": "", "neighbourhood": "", "contact": "", **fields}
    data.setdefault("started", started(client))
    return client.post("/write/", data)


def jpeg_with_gps() -> bytes:
    image = Image.new("RGB", (64, 48), (200, 30, 30))
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # Make
    gps = exif.get_ifd(0x8825)
    gps[1] = "N"
    gps[2] = (37.0, 34.0, 12.5)
    gps[3] = "E"
    gps[4] = (126.0, 59.0, 30.1)
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif, comment=b"home of the citizen")
    return out.getvalue()


def upload(name: str, content: bytes) -> io.BytesIO:
    file = io.BytesIO(content)
    file.name = name
    return file


def test_form_offers_categories_districts_and_neighbourhoods(directory):
    page = Client().get("/write/").content.decode()
    assert 'name="category"' in page and 'name="photo"' in page and 'accept="image/*"' in page
    assert 'enctype="multipart/form-data"' in page
    assert '<optgroup label="종로구">' in page and 'value="종로구 창신1동"' in page
    # The honeypot is there for robots, hidden from people and screen readers.
    assert re.search(r'<div class="trap" aria-hidden="true">.*?tabindex="-1"', page, re.S)
    assert "style=" not in page and "<script>" not in page


def test_a_message_is_stored_with_its_place_category_hint_contact_and_clean_photo(directory):
    client = Client()
    response = send(
        client,
        category="streetlight",
        district="종로구",
        neighbourhood="종로구 창신1동",
        contact="010-9876-5432",
        photo=upload("IMG_0001.jpg", jpeg_with_gps()),
    )
    assert response.status_code == 302 and response["Location"].startswith("/receipt/")
    message = Message.objects.get()
    assert message.channel.code == "web"
    assert message.text == f"[종로구 창신1동] {TEXT}"
    assert message.raw_payload == {
        "form": "write",
        "contact": "010-9876-5432",
        "category_hint": "streetlight",
        "district": "종로구",
        "neighbourhood": "창신1동",
    }
    [photo] = message.attachments
    assert photo["type"] == "image/jpeg" and photo["storage"].startswith("portal/photos/")
    assert "IMG_0001" not in photo["storage"]
    with default_storage.open(photo["storage"]) as stored:
        data = stored.read()
    image = Image.open(io.BytesIO(data))
    assert image.size == (64, 48)
    assert not image.getexif() and "exif" not in image.info and "comment" not in image.info
    assert b"PhoneMaker" not in data and b"citizen" not in data

    # Triage reads the place the citizen picked.
    triage_messages([message.pk])
    assert Case.objects.get().unit.code == "district-jongno"
    receipt = client.get(response["Location"]).content.decode()
    assert "010-9876-5432" not in receipt and "portal/photos" not in receipt


def test_neighbourhood_alone_gives_its_district(directory):
    send(Client(), text="보안등이 꺼졌어요", neighbourhood="마포구 서교동")
    message = Message.objects.get()
    assert message.text == "[마포구 서교동] 보안등이 꺼졌어요"
    assert message.raw_payload["district"] == "마포구"


def test_neighbourhood_of_another_district_is_refused(directory):
    response = send(Client(), district="종로구", neighbourhood="마포구 서교동")
    assert response.status_code == 200
    assert "마포구" in response.content.decode() and not Message.objects.exists()


@pytest.mark.parametrize(
    "name, content, expected",
    [
        ("notes.jpg", b"%PDF-1.4 not an image at all", "This file is not a photo we can read"),
        ("huge.jpg", b"\xff\xd8" + b"0" * 2048, "The photo is larger than 1.0"),
    ],
    ids=["not-an-image", "oversize"],
)
def test_bad_photos_are_refused_and_the_text_kept(
    directory, form_settings, name, content, expected
):
    form_settings.SOTONG_FORM_MAX_PHOTO_BYTES = 1024
    client = Client()
    client.cookies["django_language"] = "en"
    response = send(client, photo=upload(name, content))
    page = response.content.decode()
    assert response.status_code == 200
    assert expected in page and "창신동 골목 보안등" in page
    assert not Message.objects.exists()


@pytest.mark.parametrize("contact", ["citizen@mail.example", "+82 10-1234-5678", "02 123 4567"])
def test_contact_takes_an_email_or_a_phone(directory, contact):
    assert send(Client(), contact=contact).status_code == 302


def test_contact_that_is_neither_is_refused(directory):
    assert send(Client(), contact="call me maybe").status_code == 200
    assert not Message.objects.exists()


def test_filled_honeypot_is_rejected_and_nothing_stored(directory):
    response = send(Client(), website="http://spam.example")
    assert response.status_code == 400
    page = response.content.decode()
    assert 'role="alert"' in page and "창신동 골목 보안등" in page
    assert "http://spam.example" not in page
    assert not Message.objects.exists()


def test_a_form_sent_too_fast_is_rejected_and_can_be_sent_again(directory, form_settings):
    form_settings.SOTONG_FORM_MIN_SECONDS = 3
    client = Client()
    response = send(client)
    assert response.status_code == 400 and not Message.objects.exists()
    assert "창신동 골목 보안등" in response.content.decode()
    # The same citizen a while later, with the form as it came back: accepted.
    form_settings.SOTONG_FORM_MIN_SECONDS = 0
    again = re.search(r'name="started" value="([^"]+)"', response.content.decode())[1]
    assert send(client, started=html.unescape(again)).status_code == 302


def test_missing_forged_or_expired_token_is_rejected(directory):
    client = Client()
    assert send(client, started="").status_code == 400
    assert send(client, started="forged:token").status_code == 400
    old = abuse.issue_form_token(now=0)
    assert send(client, started=old).status_code == 400
    assert not Message.objects.exists()


def test_a_replayed_form_is_rejected(directory):
    client = Client()
    token = started(client)
    assert send(client, started=token).status_code == 302
    replay = send(client, started=token)
    assert replay.status_code == 400
    assert "창신동 골목 보안등" in replay.content.decode()
    assert Message.objects.count() == 1


def test_sixth_post_in_ten_minutes_is_429_with_the_text_kept(directory):
    client = Client()
    for _ in range(5):
        assert send(client).status_code == 302
    response = send(client, text="여섯 번째 글입니다")
    assert response.status_code == 429
    assert 0 < int(response["Retry-After"]) <= 600
    assert "여섯 번째 글입니다" in response.content.decode()
    assert Message.objects.count() == 5
    # Another address is not affected.
    assert send(Client(REMOTE_ADDR="192.0.2.7")).status_code == 302


def test_daily_limit_counts_too(directory, form_settings):
    form_settings.SOTONG_FORM_RATE_LIMITS = "100/600,2/86400"
    client = Client()
    assert send(client).status_code == 302
    assert send(client).status_code == 302
    response = send(client)
    assert response.status_code == 429 and int(response["Retry-After"]) > 0


def test_ipv6_clients_are_counted_per_64(directory, form_settings):
    form_settings.SOTONG_FORM_RATE_LIMITS = "1/600"
    assert send(Client(REMOTE_ADDR="2001:db8:1:2::10")).status_code == 302
    assert send(Client(REMOTE_ADDR="2001:db8:1:2::99")).status_code == 429
    assert send(Client(REMOTE_ADDR="2001:db8:1:3::10")).status_code == 302


def test_forwarded_address_counts_only_from_a_trusted_proxy(directory, form_settings):
    form_settings.SOTONG_FORM_RATE_LIMITS = "1/600"
    # Not behind a trusted proxy: a forged header does not let one client look like many.
    assert send(Client(HTTP_X_FORWARDED_FOR="198.51.100.1")).status_code == 302
    assert send(Client(HTTP_X_FORWARDED_FOR="198.51.100.2")).status_code == 429
    # Behind the trusted proxy, each citizen is counted by the address the proxy saw.
    form_settings.SOTONG_TRUSTED_PROXIES = "10.0.0.0/8"
    proxy = {"REMOTE_ADDR": "10.0.0.5"}
    assert send(Client(HTTP_X_FORWARDED_FOR="203.0.113.1", **proxy)).status_code == 302
    assert send(Client(HTTP_X_FORWARDED_FOR="203.0.113.2", **proxy)).status_code == 302
    spoofed = "203.0.113.2, 203.0.113.1"  # the client's own header, then the proxy's entry
    assert send(Client(HTTP_X_FORWARDED_FOR=spoofed, **proxy)).status_code == 429


def test_script_in_the_text_is_stored_as_written_and_shown_escaped(directory):
    client = Client()
    text = '가로등 고장 <script>alert("x")</script> <img src=x onerror=alert(1)>'
    response = send(client, text=text)
    assert Message.objects.get().text == text
    page = client.get(response["Location"]).content.decode()
    assert "<script>alert" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page


def test_receipt_gives_the_case_number_and_its_page_once_triaged(directory):
    client = Client()
    location = send(client, district="종로구")["Location"]
    page = client.get(location).content.decode()
    assert "/receipt/" in page  # the address to keep
    triage_messages(list(Message.objects.values_list("pk", flat=True)))
    case = Case.objects.get()
    page = client.get(location).content.decode()
    assert f'href="/cases/{case.number}/"' in page and case.number in page
