"""Open311 GeoReport v2 under /open311/v2/: every endpoint in JSON and XML, the spec's
errors, a POSTed request that goes through triage and comes back with its case number,
and no personal data in anything a client can read."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from sotong.cases import services as case_services
from sotong.cases.models import Case
from sotong.directory.models import Category, Channel
from sotong.inbox.models import Message
from sotong.inbox.normalize import NormalizedMessage
from sotong.inbox.services import create_connector_token, ingest_batch
from sotong.portal.models import PublicCase
from sotong.portal.open311 import params as open311_params
from sotong.portal.open311 import selectors
from sotong.portal.open311.formats import parse_w3_datetime, render_list
from sotong.triage.services import triage_messages

BASE = "/open311/v2"
FORMATS = ("json", "xml")
TEXTS = {
    "light": "종로구 창신동 골목 보안등이 일주일째 꺼져 있어요. 고쳐주세요.",
    "parking": "마포구 합정역 앞 불법주차 너무 심해요 단속해주세요",
    "waste": "서초구 주택가 생활쓰레기 무단투기 치워주세요",
    "road": "강동구 이면도로 골목길 파손이 심해서 위험해요 보수해주세요",
}
PHONE, EMAIL = "010-1234-5678", "hong.gildong@mail.example"
ANSWER = (
    "소중한 의견 감사합니다. 말씀하신 보안등 고장에 대하여 교체하였습니다. "
    "문의는 종로구청(02-2148-1114)으로 연락 주십시오."
)


# --- Reading the two formats ------------------------------------------------------------


def _element_value(element: ET.Element) -> Any:
    if len(element):
        return [{c.tag: _element_value(c) for c in item} for item in element]
    return element.text  # None for an empty element


def parse(response, fmt: str) -> Any:
    """A response body as plain data: the JSON as it is; the XML as {root: [records]}."""
    if fmt == "json":
        assert response["Content-Type"] == "application/json; charset=utf-8"
        return json.loads(response.content.decode("utf-8"))
    assert response["Content-Type"] == "text/xml; charset=utf-8"
    assert response.content.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    root = ET.fromstring(response.content)
    return root.tag, [{c.tag: _element_value(c) for c in item} for item in root]


def records(response, fmt: str, root: str, item: str) -> list[dict[str, Any]]:
    """The records of a list document, checking the XML's element names."""
    data = parse(response, fmt)
    if fmt == "json":
        assert isinstance(data, list)
        return data
    tag, items = data
    assert tag == root
    assert all(child.tag == item for child in ET.fromstring(response.content))
    return items


def errors(response, fmt: str, status: int) -> list[str]:
    """The descriptions of a spec error document, after checking status and codes."""
    assert response.status_code == status, response.content
    found = records(response, fmt, "errors", "error")
    assert found and all(int(e["code"]) == status for e in found)
    return [e["description"] for e in found]


def get(path: str, fmt: str, client: Client | None = None, **params: str):
    return (client or Client()).get(f"{BASE}/{path}.{fmt}", params)


def post(fmt: str, **fields: str):
    return Client().post(f"{BASE}/requests.{fmt}", fields)


# --- Fixtures ----------------------------------------------------------------------------


@pytest.fixture
def cases(people) -> dict[str, Case]:
    """Four public cases: one answered, one on hold, one merged into another, one open."""
    messages = ingest_batch(
        [
            NormalizedMessage(channel="x", external_id=f"o311-{key}", text=text)
            for key, text in TEXTS.items()
        ]
    )
    triage_messages([m.pk for m in messages])
    found = {
        key: Case.objects.get(case_messages__message__external_id=f"o311-{key}") for key in TEXTS
    }
    officer = people["jongno"]
    case_services.draft_answer(found["light"], ANSWER, actor=officer)
    case_services.publish_answer(found["light"], actor=officer, override_reason="테스트")
    case_services.hold_case(found["waste"], reason="현장 확인 일정 조율 중", actor=people["center"])
    case_services.merge_case(found["road"], found["parking"], actor=people["center"])
    return {key: Case.objects.get(pk=case.pk) for key, case in found.items()}


@pytest.fixture
def api_key(directory) -> str:
    channel = Channel.objects.get(code="open311")
    return create_connector_token("open311-client", channel)[1]


# --- GET services ------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_services_are_the_active_categories(directory, fmt):
    Category.objects.filter(code="taxi").update(active=False)
    response = get("services", fmt)
    assert response.status_code == 200
    services = records(response, fmt, "services", "service")
    by_code = {s["service_code"]: s for s in services}
    active = Category.objects.filter(active=True)
    assert set(by_code) == set(active.values_list("code", flat=True))
    assert "taxi" not in by_code
    light = by_code["security-light"]
    category = Category.objects.select_related("owner").get(code="security-light")
    assert light["service_name"] == category.name  # Korean first
    assert light["group"] == category.owner.name
    assert light["type"] == "batch"
    assert light["metadata"] in (False, "false")
    assert "보안등" in light["keywords"]
    assert light["description"]
    assert list(light) == [
        "service_code",
        "service_name",
        "description",
        "metadata",
        "type",
        "keywords",
        "group",
    ]


@pytest.mark.parametrize("fmt", FORMATS)
def test_services_in_english_when_the_client_asks_for_it(directory, fmt):
    response = Client().get(f"{BASE}/services.{fmt}", HTTP_ACCEPT_LANGUAGE="en")
    light = next(
        s
        for s in records(response, fmt, "services", "service")
        if s["service_code"] == "security-light"
    )
    category = Category.objects.select_related("owner").get(code="security-light")
    assert light["service_name"] == category.name_en and category.name_en
    assert light["group"] == category.owner.name_en


# --- GET services/{code} -----------------------------------------------------------------


def test_service_definition_in_both_formats(directory):
    response = get("services/security-light", "json")
    assert response.status_code == 200
    assert parse(response, "json") == {"service_code": "security-light", "attributes": []}

    response = get("services/security-light", "xml")
    assert response.status_code == 200
    root = ET.fromstring(response.content)
    assert root.tag == "service_definition"
    assert root.findtext("service_code") == "security-light"
    assert root.find("attributes") is not None and len(root.find("attributes")) == 0


def test_unknown_service_definition_is_the_specs_404(directory):
    Category.objects.filter(code="taxi").update(active=False)
    for fmt in FORMATS:
        for code in ("no-such-service", "bad%20code%00", "taxi"):
            (description,) = errors(get(f"services/{code}", fmt), fmt, 404)
            assert "service_code" in description


# --- GET requests ------------------------------------------------------------------------

REQUEST_FIELDS = [
    "service_request_id",
    "status",
    "status_notes",
    "service_name",
    "service_code",
    "description",
    "agency_responsible",
    "service_notice",
    "requested_datetime",
    "updated_datetime",
    "expected_datetime",
    "address",
    "address_id",
    "zipcode",
    "lat",
    "long",
    "media_url",
]


@pytest.mark.parametrize("fmt", FORMATS)
def test_requests_show_every_public_case_newest_first(cases, fmt):
    response = get("requests", fmt)
    assert response.status_code == 200
    found = records(response, fmt, "service_requests", "request")
    numbers = [r["service_request_id"] for r in found]
    assert numbers == sorted((c.number for c in cases.values()), reverse=True)
    assert all(list(r) == REQUEST_FIELDS for r in found)
    by_number = {r["service_request_id"]: r for r in found}

    light = by_number[cases["light"].number]
    assert light["status"] == "closed"
    assert light["status_notes"].startswith("소중한 의견 감사합니다")
    assert light["service_code"] == cases["light"].category.code
    assert light["service_name"] == cases["light"].category.name
    assert light["agency_responsible"] == cases["light"].unit.name
    assert light["address"] == "종로구"
    assert "보안등" in light["description"]
    assert parse_w3_datetime(light["requested_datetime"]) == cases["light"].opened_at.replace(
        microsecond=0
    )
    assert parse_w3_datetime(light["expected_datetime"]) == cases["light"].deadline_at.replace(
        microsecond=0
    )
    assert light["requested_datetime"].endswith("+09:00")
    assert light["lat"] is None and light["long"] is None and light["media_url"] is None

    waste = by_number[cases["waste"].number]
    assert waste["status"] == "open" and waste["status_notes"] == "현장 확인 일정 조율 중"
    road = by_number[cases["road"].number]
    assert road["status"] == "closed" and cases["parking"].number in road["status_notes"]
    parking = by_number[cases["parking"].number]
    assert parking["status"] == "open" and parking["status_notes"] is None


@pytest.mark.parametrize("fmt", FORMATS)
def test_requests_filtered_by_status_service_and_id(cases, fmt):
    def numbers(**params: str) -> set[str]:
        response = get("requests", fmt, **params)
        assert response.status_code == 200, response.content
        return {
            r["service_request_id"] for r in records(response, fmt, "service_requests", "request")
        }

    closed = {cases["light"].number, cases["road"].number}
    everything = {c.number for c in cases.values()}
    assert numbers(status="closed") == closed
    assert numbers(status="open") == everything - closed
    assert numbers(status="open,closed") == everything

    light_code = cases["light"].category.code
    waste_code = cases["waste"].category.code
    assert numbers(service_code=light_code) == {cases["light"].number}
    assert numbers(service_code=f"{light_code},{waste_code}") == {
        cases["light"].number,
        cases["waste"].number,
    }
    assert numbers(service_code="no-such-service") == set()
    assert numbers(service_code=light_code, status="open") == set()

    # service_request_id overrides every other argument; a bare number works too.
    wanted = f"{cases['waste'].number},{cases['light'].pk}"
    assert numbers(service_request_id=wanted, status="closed", service_code="x") == {
        cases["waste"].number,
        cases["light"].number,
    }
    assert numbers(service_request_id="S9999999") == set()


@pytest.mark.parametrize("fmt", FORMATS)
def test_requests_default_to_the_last_90_days_and_take_w3_ranges(cases, fmt):
    old = cases["waste"]
    long_ago = timezone.now() - timedelta(days=120)
    PublicCase.objects.filter(case_id=old.pk).update(opened_at=long_ago)

    def numbers(**params: str) -> set[str]:
        response = get("requests", fmt, **params)
        assert response.status_code == 200, response.content
        return {
            r["service_request_id"] for r in records(response, fmt, "service_requests", "request")
        }

    recent = {c.number for c in cases.values()} - {old.number}
    assert numbers() == recent
    start = (long_ago - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    end = (long_ago + timedelta(days=1)).astimezone(timezone.get_current_timezone())
    assert numbers(start_date=start, end_date=end.isoformat(timespec="seconds")) == {old.number}
    assert numbers(start_date=start) == {old.number}  # the 90 days from the start
    assert numbers(end_date=end.strftime("%Y-%m-%d")) == {old.number}  # the 90 days before
    # An offset's "+" sent unencoded arrives as a space, and still counts as the offset.
    response = Client().get(f"{BASE}/requests.{fmt}?end_date={end.isoformat(timespec='seconds')}")
    assert {
        r["service_request_id"] for r in records(response, fmt, "service_requests", "request")
    } == {old.number}


@pytest.mark.parametrize("fmt", FORMATS)
def test_requests_stop_at_the_cap(cases, fmt, monkeypatch):
    monkeypatch.setattr(selectors, "MAX_REQUESTS", 2)
    found = records(get("requests", fmt), fmt, "service_requests", "request")
    assert [r["service_request_id"] for r in found] == sorted(
        (c.number for c in cases.values()), reverse=True
    )[:2]


@pytest.mark.parametrize("fmt", FORMATS)
def test_requests_come_in_pages(cases, fmt, monkeypatch):
    newest_first = sorted((c.number for c in cases.values()), reverse=True)

    def numbers(**params: str) -> list[str]:
        found = records(get("requests", fmt, **params), fmt, "service_requests", "request")
        return [r["service_request_id"] for r in found]

    assert numbers() == newest_first  # one page of 100 holds them all
    assert numbers(page_size="3") == newest_first[:3]
    assert numbers(page_size="3", page="2") == newest_first[3:]
    assert numbers(page_size="3", page="3") == []  # past the end: an empty list, not an error
    assert numbers(page_size="1000") == newest_first
    # service_request_id overrides every other argument, the pages too.
    assert numbers(service_request_id=newest_first[-1], page="2") == newest_first[-1:]
    monkeypatch.setattr(open311_params, "DEFAULT_PAGE_SIZE", 2)
    assert numbers() == newest_first[:2]


BAD_QUERIES = [
    ({"page": "0"}, "page"),
    ({"page": "two"}, "page"),
    ({"page_size": "1001"}, "page_size"),
    ({"page_size": "-5"}, "page_size"),
    ({"start_date": "yesterday"}, "start_date"),
    ({"end_date": "2024-13-45T00:00:00Z"}, "end_date"),
    ({"start_date": "2024-01-01T00:00:00Z", "end_date": "2024-06-01T00:00:00Z"}, "90 days"),
    ({"start_date": "2024-06-01T00:00:00Z", "end_date": "2024-01-01T00:00:00Z"}, "before"),
    ({"start_date": "0001-01-01"}, "start_date"),
    ({"status": "pending"}, "status"),
    ({"service_request_id": "S12x"}, "service_request_id"),
    ({"service_code": "bad code\x00"}, "service_code"),
]


def test_bad_request_arguments_are_the_specs_400(directory):
    for fmt in FORMATS:
        for params, named in BAD_QUERIES:
            (description,) = errors(get("requests", fmt, **params), fmt, 400)
            assert named in description, (params, description)


# --- GET requests/{id} -------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_one_request_by_its_number(cases, fmt):
    case = cases["light"]
    for key in (case.number, str(case.pk), case.number.lower()):
        response = get(f"requests/{key}", fmt)
        assert response.status_code == 200
        (found,) = records(response, fmt, "service_requests", "request")
        assert found["service_request_id"] == case.number and found["status"] == "closed"


def test_unknown_request_is_the_specs_404(directory):
    for fmt in FORMATS:
        for key in ("S9999999", "nonsense", "S" + "9" * 40):
            (description,) = errors(get(f"requests/{key}", fmt), fmt, 404)
            assert "service_request_id" in description


def test_withdrawn_message_has_no_description(cases):
    PublicCase.objects.filter(case_id=cases["waste"].pk).update(text="", withdrawn=True)
    (found,) = records(get(f"requests/{cases['waste'].number}", "json"), "json", "", "")
    assert found["description"] is None


# --- Jurisdiction, formats, methods ------------------------------------------------------

GET_PATHS = ["services", "services/security-light", "requests", "requests/S0000001", "tokens/abc"]


def test_wrong_jurisdiction_is_the_specs_404(directory, settings):
    settings.SOTONG_OPEN311_JURISDICTION = "seoul.go.kr"
    for fmt in FORMATS:
        for path in GET_PATHS:
            (description,) = errors(get(path, fmt, jurisdiction_id="busan.go.kr"), fmt, 404)
            assert "jurisdiction_id" in description


@pytest.mark.parametrize("fmt", FORMATS)
def test_right_or_absent_jurisdiction_is_served(directory, fmt, settings):
    settings.SOTONG_OPEN311_JURISDICTION = "seoul.go.kr"
    assert get("services", fmt, jurisdiction_id="seoul.go.kr").status_code == 200
    assert get("services", fmt, jurisdiction_id="").status_code == 200
    assert get("services", fmt).status_code == 200


@pytest.mark.parametrize("path", ["services.csv", "requests.html", "requests/S0000001.yaml"])
def test_unknown_format_is_a_404_in_json(directory, path):
    response = Client().get(f"{BASE}/{path}")
    (description,) = errors(response, "json", 404)
    assert "format" in description


@pytest.mark.parametrize(
    ("path", "fmt"), [("services", "json"), ("nothing/here.xml", "xml"), ("", "json")]
)
def test_anything_else_under_the_api_is_the_specs_404(directory, path, fmt):
    errors(Client().get(f"{BASE}/{path}"), fmt, 404)


@pytest.mark.parametrize("fmt", FORMATS)
def test_wrong_method_is_the_specs_405(directory, fmt):
    client = Client()
    response = client.delete(f"{BASE}/requests.{fmt}")
    errors(response, fmt, 405)
    assert set(response["Allow"].split(", ")) == {"GET", "HEAD", "POST"}
    errors(client.post(f"{BASE}/services.{fmt}", {}), fmt, 405)
    errors(client.put(f"{BASE}/tokens/abc.{fmt}"), fmt, 405)


# --- POST requests and GET tokens/{token} ------------------------------------------------


def valid(api_key: str, **fields: str) -> dict[str, str]:
    return {
        "api_key": api_key,
        "service_code": "security-light",
        "description": "골목 보안등이 일주일째 꺼져 있어요. 고쳐주세요.",
        "address_string": "종로구 창신동",
        **fields,
    }


@pytest.mark.parametrize("fmt", FORMATS)
def test_posted_request_goes_through_triage_and_its_token_gives_the_case(directory, api_key, fmt):
    response = post(
        fmt,
        **valid(
            api_key,
            lat="37.5759",
            long="127.0147",
            email=EMAIL,
            first_name="길동",
            last_name="홍",
            phone=PHONE,
            device_id="device-1",
            media_url="https://photos.example/1.jpg",
            **{"attribute[WHEN]": "밤"},
        ),
    )
    assert response.status_code == 200, response.content
    (created,) = records(response, fmt, "service_requests", "request")
    assert set(created) == {"token", "service_notice", "account_id"}
    assert created["account_id"] is None and created["service_notice"]
    token = created["token"]

    message = Message.objects.get()
    assert message.channel.code == "open311" and message.account.handle == "open311"
    assert message.triage_state == "pending"
    assert message.text.startswith("[종로구 창신동] ") and "보안등" in message.text
    raw = message.raw_payload["open311"]
    assert raw["service_code"] == "security-light"
    assert (raw["lat"], raw["long"]) == (37.5759, 127.0147)
    assert raw["email"] == EMAIL and raw["phone"] == PHONE
    assert raw["attributes"] == {"WHEN": ["밤"]}
    assert message.attachments == [{"url": "https://photos.example/1.jpg", "type": "", "name": ""}]

    # Before triage the token is known but has no case yet.
    pending = records(get(f"tokens/{token}", fmt), fmt, "service_requests", "request")
    assert pending == [{"service_request_id": None, "token": token}]

    triage_messages([message.pk])
    case = Case.objects.get()
    (found,) = records(get(f"tokens/{token}", fmt), fmt, "service_requests", "request")
    assert found == {"service_request_id": case.number, "token": token}
    (shown,) = records(get(f"requests/{case.number}", fmt), fmt, "service_requests", "request")
    assert shown["status"] == "open" and "보안등" in shown["description"]
    assert shown["address"] == "종로구"


@pytest.mark.parametrize("fmt", FORMATS)
def test_unknown_token_is_the_specs_404(directory, fmt):
    for token in ("abc", "x" * 100, "a.b"):
        errors(get(f"tokens/{token}", fmt), fmt, 404)


def test_tokens_are_random_not_counted(directory, api_key):
    first = records(post("json", **valid(api_key)), "json", "", "")[0]["token"]
    second = records(post("json", **valid(api_key)), "json", "", "")[0]["token"]
    assert first != second and len(first) >= 20
    assert str(Message.objects.earliest("pk").pk) != first
    # A neighbouring guess finds nothing.
    guess = first[:-1] + ("A" if first[-1] != "A" else "B")
    errors(get(f"tokens/{guess}", "json"), "json", 404)


@pytest.mark.parametrize("fmt", FORMATS)
def test_any_open311_or_unrestricted_key_may_post(directory, token, fmt):
    assert post(fmt, **valid(token)).status_code == 200  # the conftest's unrestricted token


@pytest.mark.parametrize("fmt", FORMATS)
def test_missing_wrong_or_foreign_api_key_is_the_specs_403(directory, fmt):
    web_key = create_connector_token("web-only", Channel.objects.get(code="web"))[1]
    revoked_token, revoked = create_connector_token("revoked", Channel.objects.get(code="open311"))
    revoked_token.active = False
    revoked_token.save()
    for key in ("", "stg_guessed", web_key, revoked):
        (description,) = errors(post(fmt, **valid(key)), fmt, 403)
        assert "api_key" in description
    assert not Message.objects.exists()


BAD_POSTS = [
    ({"service_code": ""}, 400, "service_code"),
    ({"service_code": "no-such-service"}, 404, "service_code"),
    ({"description": "   "}, 400, "description"),
    ({"description": "가" * 4001}, 400, "description"),
    ({"address_string": ""}, 400, "location"),
    ({"address_string": "", "lat": "37.5"}, 400, "long"),
    ({"lat": "north", "long": "127"}, 400, "lat"),
    ({"lat": "95", "long": "127"}, 400, "lat"),
    ({"lat": "nan", "long": "127"}, 400, "lat"),
    ({"media_url": "javascript:alert(1)"}, 400, "media_url"),
    ({"email": "a" * 300}, 400, "email"),
    ({"jurisdiction_id": "busan.go.kr"}, 404, "jurisdiction_id"),
]


def test_bad_posts_are_refused_in_the_specs_format(directory, api_key):
    for fmt in FORMATS:
        for change, status, named in BAD_POSTS:
            (description,) = errors(post(fmt, **valid(api_key, **change)), fmt, status)
            assert named in description, (change, description)
    assert not Message.objects.exists()


def test_location_may_be_coordinates_or_an_address_id(directory, api_key):
    assert (
        post("json", **valid(api_key, address_string="", lat="37.5", long="127")).status_code == 200
    )
    assert (
        post("json", **valid(api_key, address_string="", address_id="1111010100")).status_code
        == 200
    )
    assert Message.objects.count() == 2


@pytest.mark.parametrize("fmt", FORMATS)
def test_broken_bodies_never_fail_the_server(directory, api_key, fmt, settings):
    client = Client()
    url = f"{BASE}/requests.{fmt}"
    # Larger than the body limit.
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    big = client.post(url, {**valid(api_key), "description": "가" * 20_000})
    errors(big, fmt, 413)
    # Broken UTF-8 and NUL characters: read, replaced or dropped, never a crash.
    body = f"api_key={api_key}&service_code=security-light&address_string=%EC%A2%85".encode()
    body += b"&description=%ff%fe%00%C0%AF+%EB%B3%B4%EC%95%88%EB%93%B1"
    response = client.post(url, body, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 200, response.content
    assert "\x00" not in Message.objects.get().text
    # JSON is not the spec's form encoding.
    errors(client.post(url, json.dumps(valid(api_key)), content_type="application/json"), fmt, 400)
    # A multipart body without its boundary.
    response = client.generic(
        "POST", url, b"--x\r\nnonsense", content_type="multipart/form-data; boundary=x"
    )
    assert response.status_code in (400, 403)
    errors(response, fmt, response.status_code)


def test_a_quick_retry_gives_the_same_token_and_one_message(directory, api_key):
    first = records(post("json", **valid(api_key, device_id="phone-7")), "json", "", "")
    again = records(post("json", **valid(api_key, device_id="phone-7")), "json", "", "")
    assert first[0]["token"] == again[0]["token"]
    assert Message.objects.count() == 1
    # Another device, or no device id at all, is another report.
    post("json", **valid(api_key, device_id="phone-8"))
    post("json", **valid(api_key))
    post("json", **valid(api_key))
    assert Message.objects.count() == 4


# --- No personal data --------------------------------------------------------------------


def test_no_personal_data_anywhere_in_the_api(cases, api_key):
    description = f"종로구 창신동 보안등이 꺼졌어요. 고쳐주세요. 연락처 {PHONE}, 메일 {EMAIL}"
    token = records(
        post(
            "json",
            **valid(
                api_key,
                description=description,
                lat="37.5759123",
                long="127.0147456",
                email="other.person@mail.example",
                first_name="길동",
                last_name="홍",
                phone="010-9876-5432",
                device_id="device-secret-42",
                account_id="account-secret-43",
            ),
        ),
        "json",
        "",
        "",
    )[0]["token"]
    triage_messages(
        list(Message.objects.filter(channel__code="open311").values_list("pk", flat=True))
    )
    number = records(get(f"tokens/{token}", "json"), "json", "", "")[0]["service_request_id"]
    assert number
    secrets = [
        PHONE,
        "01012345678",
        EMAIL,
        "other.person",
        "010-9876-5432",
        "홍 길동",
        "길동 홍",
        "37.5759123",
        "127.0147456",
        "device-secret-42",
        "account-secret-43",
        api_key,
    ]
    paths = [
        "services",
        "services/security-light",
        "requests",
        f"requests/{number}",
        f"tokens/{token}",
    ]
    for fmt in FORMATS:
        for path in paths:
            for language in ("ko", "en"):
                response = Client().get(f"{BASE}/{path}.{fmt}", HTTP_ACCEPT_LANGUAGE=language)
                assert response.status_code == 200
                body = response.content.decode("utf-8")
                for secret in secrets:
                    assert secret not in body, (path, fmt, secret)
        shown = records(get(f"requests/{number}", fmt), fmt, "service_requests", "request")
        assert "[전화번호]" in shown[0]["description"] and "[이메일]" in shown[0]["description"]


# --- The formats themselves --------------------------------------------------------------


def test_characters_xml_cannot_carry_are_dropped_not_fatal():
    record = {"description": "a\x0bb\ud800c\ufffe<d>&"}
    body = render_list("xml", "service_requests", "request", [record])
    assert ET.fromstring(body).findtext("request/description") == "abc<d>&"
    assert json.loads(render_list("json", "r", "r", [record])) == [{"description": "abc<d>&"}]


# --- A third-party client over real HTTP -------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("fmt", FORMATS)
def test_georeport_client_reads_services_and_requests_and_follows_a_post(
    live_server, cases, api_key, fmt
):
    """The `georeport` package (a GeoReport v2 client on PyPI; JSON via requests, XML via
    xmltodict) against a running server. It cannot post or read tokens, so those two calls
    go through plain `requests`, and the client reads the case they lead to."""
    import requests
    from georeport import GeoReport

    root = f"{live_server.url}{BASE}"
    client = GeoReport(root, jurisdiction="seoul.go.kr", output_format=fmt)

    services = client.get_service_list()
    codes = {s["service_code"] for s in services}
    assert codes == set(Category.objects.filter(active=True).values_list("code", flat=True))
    light = next(s for s in services if s["service_code"] == "security-light")
    assert light["type"] == "batch" and light["service_name"].startswith("보안등")

    definition = client.get_service_definition("security-light")
    assert definition["service_code"] == "security-light"
    assert not definition["attributes"]  # [] in JSON, an empty element (None) in XML

    every = client.get_service_requests()
    assert [r["service_request_id"] for r in every] == sorted(
        (c.number for c in cases.values()), reverse=True
    )
    closed = client.get_service_requests(status="closed")
    assert {r["service_request_id"] for r in closed} == {
        cases["light"].number,
        cases["road"].number,
    }
    start = (timezone.now() - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    end = (timezone.now() + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    ranged = client.get_service_requests(
        service_code=f"{cases['light'].category.code},{cases['waste'].category.code}",
        start_date=start,
        end_date=end,
    )
    assert {r["service_request_id"] for r in ranged} == {
        cases["light"].number,
        cases["waste"].number,
    }
    listed = client.get_service_requests(
        service_request_id=f"{cases['waste'].number},{cases['parking'].number}"
    )
    assert {r["service_request_id"] for r in listed} == {
        cases["waste"].number,
        cases["parking"].number,
    }
    one = client.get_service_request(cases["light"].number)
    assert one["status"] == "closed" and one["status_notes"].startswith("소중한")
    with pytest.raises(requests.HTTPError) as missing:
        client.get_service_request("S9999999")
    assert missing.value.response.status_code == 404
    wrong = GeoReport(root, jurisdiction="busan.go.kr", output_format=fmt)
    with pytest.raises(requests.HTTPError) as refused:
        wrong.get_service_list()
    assert refused.value.response.status_code == 404

    posted = requests.post(f"{root}/requests.{fmt}", data=valid(api_key), timeout=10)
    assert posted.status_code == 200
    (created,) = records_from_bytes(posted.content, fmt)
    message = Message.objects.get(channel__code="open311")
    triage_messages([message.pk])
    number = Case.objects.get(case_messages__message=message).number
    looked_up = requests.get(f"{root}/tokens/{created['token']}.{fmt}", timeout=10)
    assert records_from_bytes(looked_up.content, fmt)[0]["service_request_id"] == number
    followed = client.get_service_request(number)
    assert followed["status"] == "open" and "보안등" in followed["description"]


def records_from_bytes(content: bytes, fmt: str) -> list[dict[str, Any]]:
    if fmt == "json":
        return json.loads(content)
    return [{c.tag: c.text for c in item} for item in ET.fromstring(content)]
