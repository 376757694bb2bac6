"""The officers' intake pages: the call-center import from upload to report (polled with htmx,
no inline scripts), who may use them, and the manual channel's form."""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from sotong.conftest import client_for
from sotong.inbox.models import ImportBatch, Message
from sotong.jobs.testing import run_queued_jobs

SEOUL = ZoneInfo("Asia/Seoul")
CSV = (
    "\ufeff접수번호,접수일시,상담내용,연락처\r\n"
    "C-1,2024-03-05 14:22,창신동 골목 보안등이 꺼졌어요,010-1234-5678\r\n"
    "C-2,어제,날짜를 읽을 수 없는 기록,\r\n"
    'C-3,2024-03-05 15:00,=HYPERLINK("x") 수식처럼 보이는 글,\r\n'
).encode()


def inline_scripts(html: str) -> list[str]:
    """Script elements without a src, and event-handler attributes: what the CSP forbids."""
    return re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html) + re.findall(r"\son[a-z]+=", html)


def upload(client, content: bytes = CSV, name: str = "120.csv"):
    return client.post(
        "/work/intake/imports/",
        {"file": SimpleUploadedFile(name, content), "encoding": "auto"},
    )


def test_import_from_upload_to_report(people):
    center = client_for(people["center"])
    response = upload(center)
    batch = ImportBatch.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/work/intake/imports/{batch.pk}/"

    mapping_page = center.get(response["Location"]).content.decode()
    assert inline_scripts(mapping_page) == []
    # The guessed columns are preselected and the first rows previewed.
    assert re.search(
        r'name="map_record_id".*?<option value="0" selected>접수번호', mapping_page, re.S
    )
    assert re.search(r'name="map_contact".*?<option value="3" selected>연락처', mapping_page, re.S)
    assert "창신동 골목 보안등이 꺼졌어요" in mapping_page

    response = center.post(
        f"/work/intake/imports/{batch.pk}/start/",
        {"map_record_id": "0", "map_received_at": "1", "map_text": "2", "map_contact": "3"},
    )
    assert response.status_code == 302
    status_page = center.get(f"/work/intake/imports/{batch.pk}/").content.decode()
    assert inline_scripts(status_page) == []
    progress_url = f"/work/intake/imports/{batch.pk}/progress/"
    assert f'hx-get="{progress_url}"' in status_page and 'hx-trigger="every 1s"' in status_page

    # While it runs, the fragment shows the rows checked and keeps polling.
    ImportBatch.objects.filter(pk=batch.pk).update(
        status=ImportBatch.Status.VALIDATING, processed_rows=2, total_rows=3
    )
    fragment = center.get(progress_url, HTTP_HX_REQUEST="true").content.decode()
    assert '<progress max="3" value="2"' in fragment and "hx-trigger" in fragment
    ImportBatch.objects.filter(pk=batch.pk).update(status=ImportBatch.Status.QUEUED)

    run_queued_jobs()
    fragment = center.get(progress_url, HTTP_HX_REQUEST="true").content.decode()
    assert "hx-trigger" not in fragment  # finished: polling stops
    assert re.search(r'class="count-created">2<', fragment)
    assert re.search(r'class="count-rejected">1<', fragment)
    assert re.search(r"<td>3</td><td>C-2</td>", fragment)  # row 3, with its reason
    assert set(Message.objects.values_list("external_id", flat=True)) == {"C-1", "C-3"}

    report = center.get(f"/work/intake/imports/{batch.pk}/rejected.csv")
    assert report["Content-Type"].startswith("text/csv")
    assert report.content.decode("utf-8-sig").splitlines()[1].startswith("3,C-2,")

    # The same file again: nothing new, and the page says so.
    upload(center)
    again = ImportBatch.objects.exclude(pk=batch.pk).get()
    center.post(
        f"/work/intake/imports/{again.pk}/start/",
        {"map_record_id": "0", "map_received_at": "1", "map_text": "2"},
    )
    run_queued_jobs()
    fragment = center.get(f"/work/intake/imports/{again.pk}/progress/").content.decode()
    assert re.search(r'class="count-created">0<', fragment)
    assert re.search(r'class="count-already">2<', fragment)
    assert Message.objects.count() == 2
    listing = center.get("/work/intake/imports/").content.decode()
    assert listing.count("120.csv") == 2


def test_a_bad_file_or_mapping_gets_a_clear_error(people):
    center = client_for(people["center"])
    response = upload(center, b"PK\x03\x04broken", "calls.xlsx")
    assert response.status_code == 400 and "xlsx" in response.content.decode()
    upload(center)
    batch = ImportBatch.objects.get()
    response = center.post(f"/work/intake/imports/{batch.pk}/start/", {"map_record_id": "0"})
    assert response.status_code == 400
    batch.refresh_from_db()
    assert batch.status == ImportBatch.Status.UPLOADED  # nothing queued


def test_only_the_center_imports(people, client):
    upload(client_for(people["center"]))
    batch = ImportBatch.objects.get()
    officer = client_for(people["jongno"])
    for url in (
        "/work/intake/imports/",
        f"/work/intake/imports/{batch.pk}/",
        f"/work/intake/imports/{batch.pk}/progress/",
        f"/work/intake/imports/{batch.pk}/rejected.csv",
    ):
        assert officer.get(url).status_code == 403, url
        assert client.get(url).status_code == 302, url  # anonymous: to the sign-in page
    assert upload(officer).status_code == 403
    assert officer.post(f"/work/intake/imports/{batch.pk}/start/", {}).status_code == 403
    assert ImportBatch.objects.count() == 1
    page = officer.get("/work/inbox/").content.decode()
    assert "/work/intake/manual/" in page and "/work/intake/imports/" not in page


POST = {
    "text": '<script>alert("x")</script> 한강공원 자전거도로 포트홀 때문에 넘어질 뻔했어요',
    "link": "https://blog.naver.com/seoulcitizen/223456789012",
    "platform": "네이버 블로그",
    "author": "서울시민<b>",
    "written_at": "2024-03-05T21:10",
}


@pytest.mark.parametrize("who", ["center", "jongno", "jongno_chief"])
def test_manual_entry_by_center_and_unit_officers(people, who):
    officer = client_for(people[who])
    response = officer.post("/work/intake/manual/", POST)
    assert response.status_code == 302
    message = Message.objects.get(channel__code="manual")
    assert message.text == POST["text"]  # stored exactly as pasted
    assert message.author_handle == "서울시민<b>"
    assert message.account.handle == "naver"
    assert message.sent_at == datetime(2024, 3, 5, 21, 10, tzinfo=SEOUL)
    assert message.raw_payload["link"] == POST["link"]
    assert message.raw_payload["entered_by"] == people[who].username

    page = officer.get(response["Location"]).content.decode()
    assert inline_scripts(page) == []
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert "<script>alert" not in page and "서울시민&lt;b&gt;" in page


def test_the_same_post_pasted_twice_is_one_message(people):
    officer = client_for(people["jongno"])
    officer.post("/work/intake/manual/", POST)
    run_queued_jobs()  # triage may open a case for it
    again = dict(POST, link="https://m.blog.naver.com/seoulcitizen/223456789012?utm_source=kakao")
    response = officer.post("/work/intake/manual/", again, follow=True)
    assert Message.objects.filter(channel__code="manual").count() == 1
    assert "이미 입력된 글입니다" in response.content.decode()  # the page is in Korean by default


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("link", "javascript:alert(1)"),
        ("link", "not a link"),
        ("link", "ftp://files.example/post"),
        ("text", ""),
        ("written_at", "어제"),
        ("platform", ""),
    ],
)
def test_manual_form_refuses_bad_input(people, field, value):
    response = client_for(people["jongno"]).post(
        "/work/intake/manual/", dict(POST, **{field: value})
    )
    assert response.status_code == 200  # the form again, with the error
    assert not Message.objects.exists()


def test_manual_post_written_in_the_future_is_refused(people):
    response = client_for(people["jongno"]).post(
        "/work/intake/manual/", dict(POST, written_at="2999-01-01T00:00")
    )
    assert response.status_code == 400
    assert not Message.objects.exists()


def test_officers_see_their_own_entries_and_the_center_all(people):
    client_for(people["jongno"]).post("/work/intake/manual/", POST)
    mapo_page = client_for(people["mapo"]).get("/work/intake/manual/").content.decode()
    assert "한강공원 자전거도로" not in mapo_page
    center_page = client_for(people["center"]).get("/work/intake/manual/").content.decode()
    assert "한강공원 자전거도로" in center_page
