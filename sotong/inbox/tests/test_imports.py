"""The 120 call-center import: files in the encodings and formats call centers export, the
column mapping, idempotency, the rejected-rows report, all-or-nothing storage, and the
manual channel's link identity."""

from __future__ import annotations

import io
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from django_q.models import OrmQ
from django_q.signing import SignedPackage
from openpyxl import Workbook

from sotong.cases.models import Case
from sotong.errors import InvalidInput, PermissionDenied
from sotong.inbox import imports
from sotong.inbox.models import ImportBatch, Message
from sotong.jobs.testing import run_queued_jobs

SEOUL = ZoneInfo("Asia/Seoul")
HEADER = "접수번호,접수일시,상담내용,민원인연락처,자치구,상담유형,상담원"
ROWS = [
    "C-2024-0001,2024-03-05 14:22:10,창신동 골목 보안등이 꺼져서 밤길이 어둡습니다,010-1234-5678,종로구,가로등,김상담",
    "C-2024-0002,2024.03.05 15:01,마을버스 배차 간격이 너무 깁니다,,마포구,교통,이상담",
]


def csv_bytes(lines: list[str], encoding: str = "utf-8", bom: bool = False) -> bytes:
    data = ("\r\n".join(lines) + "\r\n").encode(encoding)
    return (b"\xef\xbb\xbf" if bom else b"") + data


def run(batch: ImportBatch, mapping: dict[str, int] | None = None, **options) -> ImportBatch:
    imports.start_import(batch, None, batch.mapping if mapping is None else mapping, **options)
    run_queued_jobs()
    batch.refresh_from_db()
    return batch


def callcenter_messages() -> dict[str, Message]:
    return {m.external_id: m for m in Message.objects.filter(channel__code="callcenter")}


# --- Encodings and formats ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoding", "bom", "detected"),
    [("utf-8", False, "utf-8"), ("utf-8", True, "utf-8"), ("cp949", False, "cp949")],
)
def test_csv_in_each_encoding_is_imported_and_triaged(people, encoding, bom, detected):
    batch = imports.upload_import(
        people["center"], "120.csv", csv_bytes([HEADER, *ROWS], encoding, bom)
    )
    assert batch.encoding == detected
    # The BOM is not part of the first column's name, so 접수번호 is recognised.
    assert batch.headers[0] == "접수번호"
    assert batch.mapping == {
        "record_id": 0,
        "received_at": 1,
        "text": 2,
        "contact": 3,
        "district": 4,
        "category_hint": 5,
        "agent": 6,
    }
    batch = run(batch)
    assert (batch.status, batch.created_count, batch.rejected_count) == ("done", 2, 0)
    assert bytes(batch.content) == b""  # the file is not kept once imported
    stored = callcenter_messages()
    first = stored["C-2024-0001"]
    assert first.text == "[종로구] 창신동 골목 보안등이 꺼져서 밤길이 어둡습니다"
    assert first.sent_at == datetime(2024, 3, 5, 14, 22, 10, tzinfo=SEOUL)
    assert first.author_handle == "010-1234-5678"
    assert first.account.handle == "120"
    assert first.raw_payload["fields"]["agent"] == "김상담"
    assert first.raw_payload["columns"]["상담유형"] == "가로등"
    assert "010-1234-5678" not in first.public_text
    assert stored["C-2024-0002"].sent_at == datetime(2024, 3, 5, 15, 1, tzinfo=SEOUL)
    # Triaged like any other message: the street light opens a case for the district.
    assert first.triage_state == "done"
    case = Case.objects.get(case_messages__message=first)
    assert case.unit.code == "district-jongno"


def test_broken_bytes_reject_only_their_rows(people):
    good = csv_bytes([HEADER, *ROWS], "cp949")
    broken = good + "C-2024-0003,2024-03-06 09:00,한강공원 쓰레기통이 넘칩니다".encode("cp949")
    broken += b"\xff\xfe,,,,\r\n"
    batch = imports.upload_import(people["center"], "120.csv", broken)
    assert batch.encoding == "cp949"
    batch = run(batch)
    assert batch.created_count == 2
    assert batch.rejected_rows == [
        {"row": 4, "record_id": "C-2024-0003", "code": "broken_characters", "detail": "cp949"}
    ]


def test_explicit_encoding_overrides_detection(people):
    content = csv_bytes([HEADER, *ROWS], "cp949")
    batch = imports.upload_import(people["center"], "120.csv", content, encoding="cp949")
    assert batch.encoding == "cp949" and batch.headers[2] == "상담내용"
    with pytest.raises(InvalidInput, match="unknown encoding"):
        imports.upload_import(people["center"], "120.csv", content, encoding="latin-9")


def test_tab_separated_utf16_export(people):
    lines = [HEADER.replace(",", "\t"), ROWS[0].replace(",", "\t")]
    content = ("\r\n".join(lines)).encode("utf-16")  # with its BOM, as Excel writes it
    batch = run(imports.upload_import(people["center"], "120.txt", content))
    assert batch.created_count == 1
    assert callcenter_messages()["C-2024-0001"].author_handle == "010-1234-5678"


def xlsx_bytes(rows: list[list[object]]) -> bytes:
    book = Workbook()
    sheet = book.active
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def test_xlsx_with_english_headers_numbers_and_dates(people):
    content = xlsx_bytes(
        [
            ["Record ID", "Received at", "Title", "Text", "Phone", "District", "Notes"],
            [
                20240305001,
                datetime(2024, 3, 5, 9, 30),
                "Pothole",
                "Big pothole on Sejong-daero",
                "010-9999-0000",
                None,
                "x",
            ],
            [
                20240305002.0,
                "2024. 3. 5. 오후 2:05:00",
                None,
                "지하철 2호선 냉방이 너무 세요",
                None,
            ],
            [None, None, None, None, None, None, None],  # blank rows are skipped
            ["20240305003", 45356.5, None, "청계천 산책로 조명이 어둡습니다", None],
        ]
    )
    batch = imports.upload_import(people["center"], "calls.xlsx", content)
    assert batch.kind == "xlsx" and batch.total_rows == 3
    assert batch.mapping == {
        "record_id": 0,
        "received_at": 1,
        "title": 2,
        "text": 3,
        "contact": 4,
        "district": 5,
    }
    batch = run(batch)
    assert (batch.created_count, batch.rejected_count) == (3, 0)
    stored = callcenter_messages()
    assert set(stored) == {"20240305001", "20240305002", "20240305003"}  # no "….0"
    assert stored["20240305001"].text == "Pothole\nBig pothole on Sejong-daero"
    assert stored["20240305001"].sent_at == datetime(2024, 3, 5, 9, 30, tzinfo=SEOUL)
    assert stored["20240305002"].sent_at == datetime(2024, 3, 5, 14, 5, tzinfo=SEOUL)
    # An Excel serial number: 45356.5 is 2024-03-05 12:00.
    assert stored["20240305003"].sent_at == datetime(2024, 3, 5, 12, 0, tzinfo=SEOUL)
    assert stored["20240305001"].raw_payload["columns"]["Notes"] == "x"


@pytest.mark.parametrize(
    ("content", "name", "message"),
    [
        (b"", "a.csv", "empty"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 100, "old.xls", "old Excel"),
        (b"PK\x03\x04 not really a zip", "a.xlsx", "not a valid .xlsx"),
        (b"just text", "a.xlsx", "not a valid .xlsx"),
        ("접수번호,접수일시,상담내용\r\n".encode(), "a.csv", "no rows"),
        (b",,\r\n1,2,3\r\n", "a.csv", "column names"),
    ],
)
def test_unreadable_files_are_refused_with_a_reason(people, content, name, message):
    with pytest.raises(InvalidInput, match=message):
        imports.upload_import(people["center"], name, content)
    assert not ImportBatch.objects.exists()


def test_size_and_row_limits(people, monkeypatch):
    monkeypatch.setattr(imports, "MAX_ROWS", 1)
    with pytest.raises(InvalidInput, match="more than 1 rows"):
        imports.upload_import(people["center"], "a.csv", csv_bytes([HEADER, *ROWS]))
    monkeypatch.setattr(imports, "MAX_FILE_BYTES", 100)
    with pytest.raises(InvalidInput, match="larger than"):
        imports.upload_import(people["center"], "a.csv", csv_bytes([HEADER, *ROWS]))


# --- Mapping ------------------------------------------------------------------------------


def test_guessed_mapping_prefers_exact_names_and_uses_each_column_once():
    headers = ["민원접수번호(120)", "등록 일시", "제목", "민원 내용", "전화번호", "구", "동", "ID"]
    assert imports.guess_mapping(headers) == {
        "record_id": 7,  # "id" exactly, before a name that merely contains 접수번호
        "received_at": 1,
        "text": 3,
        "title": 2,
        "contact": 4,
        "district": 5,
    }
    assert imports.guess_mapping(["민원접수번호(120)", "x"]) == {"record_id": 0}


def test_the_officer_maps_unrecognised_columns(people):
    lines = ["번호A,시각,메모,비고", "A-1,2024-03-05 10:00,서울역 앞 보도블록이 깨졌어요,"]
    batch = imports.upload_import(people["center"], "odd.csv", csv_bytes(lines))
    assert batch.mapping == {}
    with pytest.raises(InvalidInput, match="choose the column for") as missing:
        imports.start_import(batch, None, {})
    assert missing.value.details["missing"] == ["record_id", "received_at", "text"]
    with pytest.raises(InvalidInput, match="cannot be both"):
        imports.start_import(batch, None, {"record_id": 0, "received_at": 1, "text": 0})
    with pytest.raises(InvalidInput, match="does not have"):
        imports.start_import(batch, None, {"record_id": 0, "received_at": 1, "text": 9})
    batch = run(batch, {"record_id": 0, "received_at": 1, "text": 2})
    assert callcenter_messages()["A-1"].text == "서울역 앞 보도블록이 깨졌어요"


def test_a_started_import_cannot_be_started_again(people):
    batch = imports.upload_import(people["center"], "a.csv", csv_bytes([HEADER, *ROWS]))
    imports.start_import(batch, None, batch.mapping)
    with pytest.raises(InvalidInput, match="already been started"):
        imports.start_import(batch, None, batch.mapping)


# --- Idempotency, rejected rows, atomicity ------------------------------------------------


def test_importing_the_same_file_twice_stores_nothing_new(people):
    content = csv_bytes([HEADER, *ROWS])
    first = run(imports.upload_import(people["center"], "120.csv", content))
    second = run(imports.upload_import(people["center"], "120.csv", content))
    assert (first.created_count, first.already_count) == (2, 0)
    assert (second.status, second.created_count, second.already_count) == ("done", 0, 2)
    assert Message.objects.filter(channel__code="callcenter").count() == 2
    # A corrected file with one more row adds only that row.
    third = run(
        imports.upload_import(
            people["center"],
            "120.csv",
            csv_bytes([HEADER, *ROWS, "C-2024-0009,2024-03-06 08:00,불법 주차 신고합니다,,,,"]),
        )
    )
    assert (third.created_count, third.already_count) == (1, 2)


def test_rejected_rows_are_reported_and_the_rest_imported(people, settings):
    settings.SOTONG_MAX_TEXT_CHARS = 60
    future = (timezone.localtime() + timedelta(days=3)).strftime("%Y-%m-%d %H:%M")
    lines = [
        HEADER,
        ROWS[0],  # row 2: fine
        "C-3,2024-03-05 10:00,,,,,",  # row 3: no text
        "C-4,어제 오후,교통 신호가 고장났어요,,,,",  # row 4: unreadable date
        "C-2024-0001,2024-03-05 11:00,같은 번호 다른 줄,,,,",  # row 5: duplicate id
        "C-6,2024-03-05 10:00," + "가" * 61 + ",,,,",  # row 6: too long
        ",2024-03-05 10:00,번호가 없는 기록,,,,",  # row 7: no id
        f"C-8,{future},미래의 기록,,,,",  # row 8: in the future
        "C-9,,날짜가 없는 기록,,,,",  # row 9: no date
        "C-10,2024-02-30 10:00,없는 날짜,,,,",  # row 10: no such day
        '"C-11","2024-03-05 10:00","따옴표 안의 쉼표, 그리고\n줄바꿈",,,,',  # row 11: fine
    ]
    batch = run(imports.upload_import(people["center"], "120.csv", csv_bytes(lines)))
    assert batch.status == "done" and batch.created_count == 2
    assert [(r["row"], r["record_id"], r["code"]) for r in batch.rejected_rows] == [
        (3, "C-3", "missing_text"),
        (4, "C-4", "bad_date"),
        (5, "C-2024-0001", "duplicate_id"),
        (6, "C-6", "text_too_long"),
        (7, "", "missing_id"),
        (8, "C-8", "future_date"),
        (9, "C-9", "missing_date"),
        (10, "C-10", "bad_date"),
    ]
    assert batch.rejected_count == 8
    assert imports.describe(batch.rejected_rows[2]).endswith("(2)")  # points at the first row
    assert callcenter_messages()["C-11"].text == "따옴표 안의 쉼표, 그리고\n줄바꿈"


def test_strict_import_rejects_the_whole_file(people):
    lines = [HEADER, *ROWS, "C-3,2024-03-05 10:00,,,,,"]
    batch = run(
        imports.upload_import(people["center"], "120.csv", csv_bytes(lines)),
        strict=True,
    )
    assert batch.status == "failed" and "strict" in batch.error
    assert batch.rejected_count == 1 and batch.created_count == 0
    assert not Message.objects.filter(channel__code="callcenter").exists()


def test_a_failure_while_storing_leaves_nothing(people, monkeypatch):
    lines = [HEADER] + [
        f"R-{n},2024-03-05 10:{n % 60:02d},서울시 민원 기록 {n}번,,,," for n in range(600)
    ]
    batch = imports.upload_import(people["center"], "big.csv", csv_bytes(lines))
    imports.start_import(batch, None, batch.mapping)
    import sotong.inbox.services as services

    real_enqueue = services.enqueue
    calls = []

    def enqueue_then_fail(func, *args, **kwargs):
        # The messages are written; the second triage chunk's job breaks mid-way.
        calls.append(func)
        if len(calls) == 2:
            raise RuntimeError("queue broke mid-way")
        real_enqueue(func, *args, **kwargs)

    monkeypatch.setattr(services, "enqueue", enqueue_then_fail)
    run_queued_jobs()
    batch.refresh_from_db()
    assert len(calls) == 2  # it did fail after storing had begun
    assert batch.status == "failed" and "queue broke mid-way" in batch.error
    assert batch.created_count == 0
    assert not Message.objects.filter(channel__code="callcenter").exists()
    assert not OrmQ.objects.exists()  # nor a triage job for a message that is not there


def test_a_lost_job_is_resumed(people, settings):
    batch = imports.upload_import(people["center"], "120.csv", csv_bytes([HEADER, *ROWS]))
    imports.start_import(batch, None, batch.mapping, queue=False)  # as if the job were lost
    assert imports.resume_imports() == 0  # not yet: it may still be on its way
    ImportBatch.objects.filter(pk=batch.pk).update(created_at=timezone.now() - timedelta(hours=1))
    assert imports.resume_imports() == 1
    run_queued_jobs()
    batch.refresh_from_db()
    assert batch.status == "done" and batch.created_count == 2


def test_only_the_center_imports(people):
    with pytest.raises(PermissionDenied):
        imports.upload_import(people["jongno"], "120.csv", csv_bytes([HEADER, *ROWS]))


# --- Dates --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-03-05 14:22:10", datetime(2024, 3, 5, 14, 22, 10, tzinfo=SEOUL)),
        ("2024-03-05T14:22:10+09:00", datetime(2024, 3, 5, 14, 22, 10, tzinfo=SEOUL)),
        ("2024-03-05T05:22:10Z", datetime(2024, 3, 5, 14, 22, 10, tzinfo=SEOUL)),
        ("2024/3/5 14:22", datetime(2024, 3, 5, 14, 22, tzinfo=SEOUL)),
        ("2024.03.05 오전 9:05", datetime(2024, 3, 5, 9, 5, tzinfo=SEOUL)),
        ("2024. 3. 5. 오후 12:30:00", datetime(2024, 3, 5, 12, 30, tzinfo=SEOUL)),
        ("2024. 3. 5. 오전 12:30:00", datetime(2024, 3, 5, 0, 30, tzinfo=SEOUL)),
        ("2024/03/05 02:22 PM", datetime(2024, 3, 5, 14, 22, tzinfo=SEOUL)),
        ("2024년 3월 5일 14시 22분", datetime(2024, 3, 5, 14, 22, tzinfo=SEOUL)),
        ("2024-03-05", datetime(2024, 3, 5, tzinfo=SEOUL)),
        ("20240305142210", datetime(2024, 3, 5, 14, 22, 10, tzinfo=SEOUL)),
        ("2024-03-05 14:22:10.250", datetime(2024, 3, 5, 14, 22, 10, 250000, tzinfo=SEOUL)),
    ],
)
def test_dates_as_call_centers_write_them(value, expected):
    assert imports.parse_received_at(value) == expected


@pytest.mark.parametrize(
    "value",
    ["어제", "2024-13-01 10:00", "2024-03-05 25:00", "2024.03.05 오후 13:00", "12", "1899-12-31"],
)
def test_unreadable_dates(value):
    with pytest.raises(ValueError):
        imports.parse_received_at(value)


# --- The command --------------------------------------------------------------------------


def test_import_calls_command(people, tmp_path):
    path = tmp_path / "odd.csv"
    path.write_bytes(
        csv_bytes(
            ["번호A,시각,메모", "A-1,2024-03-05 10:00,서울역 앞 보도블록이 깨졌어요", "A-2,,x"],
            "cp949",
        )
    )
    out = io.StringIO()
    call_command(
        "import_calls",
        str(path),
        "--map",
        "record_id=번호A",
        "--map",
        "received_at=2",
        "--map",
        "text=메모",
        stdout=out,
    )
    text = out.getvalue()
    assert "1 new, 0 already imported, 1 rejected" in text
    assert "row 3\tA-2" in text
    assert set(callcenter_messages()) == {"A-1"}
    queued = [SignedPackage.loads(row.payload)["func"] for row in OrmQ.objects.all()]
    assert imports.IMPORT_JOB not in queued  # run in the command, not by a worker
    with pytest.raises(CommandError, match="no such column"):
        call_command("import_calls", str(path), "--map", "text=없는열", stdout=out)
    with pytest.raises(CommandError, match="choose the column"):
        call_command("import_calls", str(path), stdout=out)
    with pytest.raises(CommandError, match="cannot read"):
        call_command("import_calls", str(tmp_path / "missing.csv"), stdout=out)


# --- Manual channel: one post, one link ----------------------------------------------------


@pytest.mark.parametrize(
    "variant",
    [
        "https://m.blog.naver.com/seoulcitizen/223456789012",
        "http://blog.naver.com/seoulcitizen/223456789012/",
        "https://blog.naver.com/PostView.naver?blogId=seoulcitizen&logNo=223456789012",
        "https://blog.naver.com/seoulcitizen/223456789012?utm_source=share#comment",
        "HTTPS://WWW.Blog.Naver.com/seoulcitizen/223456789012",
    ],
)
def test_the_same_post_has_one_identity(variant):
    original = "https://blog.naver.com/seoulcitizen/223456789012"
    assert imports.manual_external_id(variant) == imports.manual_external_id(original)


def test_different_posts_differ():
    assert imports.manual_external_id(
        "https://cafe.naver.com/seoulmoms/1001"
    ) != imports.manual_external_id("https://cafe.naver.com/seoulmoms/1002")
    assert imports.manual_external_id(
        "https://cafe.naver.com/x?articleid=1"
    ) != imports.manual_external_id("https://cafe.naver.com/x?articleid=2")
    with pytest.raises(InvalidInput):
        imports.canonical_link("javascript:alert(1)")
