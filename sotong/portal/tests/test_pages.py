"""The public pages as a citizen and a journalist use them: the live overview and its JSON,
the case list with its filters, keyset pages and Korean search, and a case page with its
masked text, public timeline, answer and merged reports. Data is made through the real
services (ingest, triage, the cases services), as the city's desk makes it."""

from __future__ import annotations

import math
import re
import time
from datetime import timedelta

import pytest
from django.conf import settings
from django.test import Client
from django.utils import timezone

from sotong.cases import services
from sotong.cases.models import Case
from sotong.conftest import client_for
from sotong.directory.models import Unit
from sotong.inbox.normalize import NormalizedMessage
from sotong.inbox.services import ingest_batch
from sotong.portal import caching, selectors
from sotong.triage.services import triage_messages

PHONE = "010-1234-5678"
# (channel, text): each opens a case of its own. Triage gives them, in order: security
# light with 종로구청; illegal parking with 마포구청; noise with 강남구청; water supply with
# the waterworks (서대문구); bus with the transport bureau (no district).
REPORTS = [
    ("x", f"종로구 창신동 보안등이 꺼졌어요 고쳐주세요 {PHONE}"),
    ("email", "마포구 합정동 골목에 불법주차 차량 때문에 통행이 어려워요"),
    ("sms", "강남구 역삼동 공사장 소음이 너무 심합니다 밤에도 소음"),
    ("web", "서대문구 아파트 수도관 누수가 계속돼요"),
    ("x", "버스 배차간격이 너무 길어요 472번"),
]
NOT_CITY_BUSINESS = ("kakao", "오늘 날씨가 좋네요")
ANSWER = (
    "소중한 의견 감사합니다. 말씀하신 보안등 고장에 대하여 교체하였습니다. "
    "문의는 종로구청(02-2148-1114)으로 연락 주십시오."
)


def ingest(reports: list[tuple[str, str]], prefix: str = "m") -> list[Case]:
    """Messages through ingest and triage, as the connectors send them; the cases they
    opened, oldest first."""
    messages = ingest_batch(
        [
            NormalizedMessage(channel=channel, external_id=f"{prefix}-{n}", text=text)
            for n, (channel, text) in enumerate(reports)
        ]
    )
    triage_messages([m.pk for m in messages])
    return list(Case.objects.filter(case_messages__message__in=messages).distinct().order_by("pk"))


def html_of(path: str, client: Client | None = None) -> str:
    response = (client or Client()).get(path)
    assert response.status_code == 200, (path, response.status_code)
    return response.content.decode()


def listed(html: str) -> list[str]:
    """The case numbers a list shows, in order."""
    return re.findall(r'class="case-title"><a href="/cases/(S\d{7})/"', html)


def figures_on_page(html: str) -> dict[str, str]:
    return dict(re.findall(r'data-figure="([^"]+)"[^>]*>([^<]*)<', html))


def flatten(period: str, figures: dict) -> dict[str, object]:
    """The live JSON named as the page names its figures (what live.js does)."""
    out: dict[str, object] = {f"{period}.{m}": n for m, n in figures["counts"].items()}
    for name in ("on_time_share", "median_hours", "p90_hours"):
        out[f"{period}.{name}"] = figures[name]
    for entry in figures["answer_times"]:
        out[f"{period}.answer_time.{entry['bin']}"] = entry["answered"]
    for dimension, lines in figures["by"].items():
        for line in lines:
            for measure, value in line.items():
                if measure not in ("key", "label"):
                    out[f"{period}.{dimension}.{line['key']}.{measure}"] = value
    return out


def shown_as(value: object, kind: str) -> str:
    """A number as the page and live.js write it."""
    if value is None:
        return "0" if kind == "count" else "—"
    if kind == "share":
        return f"{math.floor(float(value) * 100 + 0.5)}%"  # type: ignore[arg-type]
    if kind == "hours":
        return f"{math.floor(float(value) * 10 + 0.5) / 10:.1f}"  # type: ignore[arg-type]
    return f"{value:,}"


def inline_code(html: str) -> list[str]:
    """Scripts without src, event-handler attributes, style attributes and elements: the
    Content-Security-Policy without 'unsafe-inline' would block each."""
    return (
        re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html)
        + re.findall(r"\son[a-z]+=", html)
        + re.findall(r"\sstyle=", html)
        + re.findall(r"<style\b", html)
    )


# --- The overview ----------------------------------------------------------------------


@pytest.fixture
def desk(people):
    """Five cases and one message that is not city business; the first answered, the
    second on hold."""
    cases = ingest([*REPORTS, NOT_CITY_BUSINESS])
    light, parking = cases[0], cases[1]
    services.draft_answer(light, ANSWER, actor=people["jongno"])
    services.publish_answer(light, actor=people["jongno"], override_reason="테스트")
    services.hold_case(
        parking, reason="관련 기관 협의 중 (02-3153-1234 제외)", actor=people["mapo"]
    )
    return cases


def test_overview_shows_todays_and_this_months_figures(desk):
    html = html_of("/")
    figures = figures_on_page(html)
    for period in ("today", "month"):
        assert figures[f"{period}.received"] == "6"
        assert figures[f"{period}.relevant"] == "5"
        assert figures[f"{period}.answered"] == "1"
        assert figures[f"{period}.on_hold"] == "1"
        assert figures[f"{period}.in_progress"] == "3"
        assert figures[f"{period}.overdue"] == "0"
        assert figures[f"{period}.on_time_share"] == "100%"
    # By channel, unit and district, this month.
    assert figures["month.channel.x.relevant"] == "2"
    assert figures["month.channel.kakao.received"] == "1"
    assert figures["month.unit.district-jongno.answered"] == "1"
    assert figures["month.district.마포구.on_hold"] == "1"
    assert figures["month.category.noise.in_progress"] == "1"
    # The newest cases, newest first, link to their pages and to the list.
    assert listed(html) == [c.number for c in reversed(desk)]
    assert 'href="/cases/"' in html


def test_every_figure_on_the_page_equals_the_live_json(desk):
    html = html_of("/")
    data = Client().get("/live/overview.json").json()
    assert set(data) == {"as_of", "today", "month"}
    values = {**flatten("today", data["today"]), **flatten("month", data["month"])}
    cells = re.findall(r'data-figure="([^"]+)" data-format="([a-z]+)">([^<]*)<', html)
    assert len(cells) > 50
    for name, kind, text in cells:
        assert text == shown_as(values.get(name), kind), name
    assert data["today"]["counts"]["received"] == 6
    assert data["month"]["counts"]["answered"] == 1


def test_live_json_changes_when_a_message_arrives_and_costs_a_304_until_then(desk):
    client = Client()
    first = client.get("/live/overview.json")
    etag = first["ETag"]
    assert etag
    again = client.get("/live/overview.json", headers={"if-none-match": etag})
    assert again.status_code == 304 and again.content == b""

    ingest([("x", "성북구 정릉동 쓰레기 무단투기가 심해요 치워주세요")], prefix="late")

    changed = client.get("/live/overview.json", headers={"if-none-match": etag})
    assert changed.status_code == 200 and changed["ETag"] != etag
    today = changed.json()["today"]["counts"]
    assert today["received"] == first.json()["today"]["counts"]["received"] + 1
    assert today["relevant"] == first.json()["today"]["counts"]["relevant"] + 1


def test_live_json_changes_when_a_case_moves_between_units(desk, people):
    client = Client()
    etag = client.get("/live/overview.json")["ETag"]
    bus = desk[4]
    services.transfer_case(
        bus, Unit.objects.get(code="district-jongno"), reason="구 소관", actor=people["center"]
    )
    changed = client.get("/live/overview.json", headers={"if-none-match": etag})
    assert changed.status_code == 200
    units = {line["key"]: line for line in changed.json()["month"]["by"]["unit"]}
    assert units["district-jongno"]["relevant"] == 2


def test_overview_draws_the_charts_and_the_map_with_their_tables(desk):
    html = html_of("/")
    assert len(re.findall(r'<svg[^>]*role="img"', html)) >= 3
    assert "district-map" in html and 'href="/cases/?district=' in html
    # Each picture's numbers are in a table with a caption and header cells.
    for table in ("daily", "category", "district", "answer-times"):
        assert f'id="{table}-table"' in html
    assert html.count("<caption") == html.count("<table")
    assert 'scope="col"' in html and 'scope="row"' in html
    overdue = html_of("/?map=overdue")
    assert 'href="?map=volume#districts"' in overdue and "district-map" in overdue


def test_overview_without_javascript_refreshes_itself_and_loads_the_script_deferred(directory):
    html = html_of("/")
    assert '<noscript><meta http-equiv="refresh" content="60"></noscript>' in html
    assert re.search(r'<script src="[^"]*portal/live\.js" defer>', html)
    assert 'aria-live="polite"' in html
    assert "htmx" not in html  # the workbench's library stays with the workbench


def test_finding_a_case_by_its_number(desk):
    case = desk[2]
    response = Client().get("/", {"number": f" s{case.pk} "})
    assert response.status_code == 302 and response["Location"] == f"/cases/{case.number}/"
    assert Client().get("/", {"number": "S9999999"}, follow=True).status_code == 404
    assert Client().get("/", {"number": "not/a number"}).status_code == 404


# --- The case list ---------------------------------------------------------------------


def test_the_list_shows_every_case_newest_first_with_its_state(desk):
    html = html_of("/cases/")
    assert listed(html) == [c.number for c in reversed(desk)]
    assert "state-answered" in html and "state-on_hold" in html and "state-in_progress" in html
    assert PHONE not in html and "[전화번호]" in html  # masked text only
    # The not-city-business message opened no case and is not listed.
    assert "날씨" not in html


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"channel": "email"}, [1]),
        ({"channel": "x"}, [4, 0]),
        ({"category": "noise"}, [2]),
        ({"unit": "district-jongno"}, [0]),
        ({"district": "마포구"}, [1]),
        ({"state": "answered"}, [0]),
        ({"state": "on_hold"}, [1]),
        ({"state": "open"}, [4, 3, 2, 1]),
        ({"channel": "x", "state": "answered"}, [0]),
    ],
)
def test_each_filter_narrows_the_list(desk, query, expected):
    assert listed(html_of("/cases/?" + "&".join(f"{k}={v}" for k, v in query.items()))) == [
        desk[i].number for i in expected
    ]


def test_period_filters(desk):
    today = timezone.localdate()
    everything = [c.number for c in reversed(desk)]
    assert listed(html_of(f"/cases/?since={today}&until={today}")) == everything
    assert listed(html_of(f"/cases/?since={today + timedelta(days=1)}")) == []
    assert listed(html_of(f"/cases/?until={today - timedelta(days=1)}")) == []


@pytest.mark.parametrize(
    ("words", "expected"),
    [("소음", [2]), ("누수", [3]), ("보안등", [0]), ("472", [4]), ("합정 주차", [1])],
)
def test_korean_search_finds_parts_of_words(desk, words, expected):
    html = html_of(f"/cases/?q={words}")
    assert listed(html) == [desk[i].number for i in expected]
    assert f'value="{words}"' in html  # the box keeps the words


def test_no_match_says_what_to_try(desk):
    html = html_of("/cases/?q=존재하지않는말&district=마포구")
    assert listed(html) == []
    assert 'class="empty"' in html and 'href="/cases/"' in html
    assert "S0000" not in html.split('class="filters"')[1]


def test_filter_form_offers_the_directory_and_keeps_the_choices(desk):
    html = html_of("/cases/?channel=sms&state=on_hold&district=강남구")
    for name in ("channel", "category", "unit", "district", "state", "q", "since", "until"):
        assert f'name="{name}"' in html
        assert re.search(rf'<label for="filter-{name}"', html)
    assert '<option value="sms" selected>' in html
    assert '<option value="on_hold" selected>' in html
    assert '<option value="강남구" selected>' in html


@pytest.fixture
def many_cases(people, monkeypatch):
    """Seven cases on four pages of two; the list's page size is made small."""
    monkeypatch.setattr(selectors, "PAGE_SIZE", 2)
    places = ["창신동", "합정동", "역삼동", "정릉동", "상계동", "목동", "신림동"]
    districts = ["종로구", "마포구", "강남구", "성북구", "노원구", "양천구", "관악구"]
    return ingest(
        [
            ("x", f"{district} {place} 보안등이 꺼졌어요 고쳐주세요")
            for district, place in zip(districts, places, strict=True)
        ],
        prefix="many",
    )


def walk(path: str, link: str) -> list[list[str]]:
    """The pages met by following `link` ("Older" or "Newer") from `path`."""
    pages = []
    while path:
        html = html_of(path)
        pages.append(listed(html))
        found = re.search(rf'<a href="(\?[^"]*)" rel="{link}"', html)
        path = "/cases/" + found.group(1).replace("&amp;", "&") if found else ""
        assert len(pages) < 20
    return pages


def test_older_and_newer_links_walk_every_case_exactly_once(many_cases):
    numbers = [c.number for c in reversed(many_cases)]
    assert len(numbers) == 7
    older = walk("/cases/", "next")
    assert older == [numbers[0:2], numbers[2:4], numbers[4:6], numbers[6:7]]
    # Back from the last page to the first by "Newer".
    newer = walk(f"/cases/?before={numbers[5]}", "prev")
    assert newer == [numbers[6:7], numbers[4:6], numbers[2:4], numbers[0:2]]
    assert "page=" not in html_of("/cases/")  # keyset links, no page numbers


def test_pages_keep_the_filters(many_cases):
    services.transfer_case(
        many_cases[0],
        Unit.objects.get(code="district-mapo"),
        reason="잘못 배정",
        actor=None,
    )
    pages = walk("/cases/?state=open&q=보안등&unit=district-mapo", "next")
    assert pages == [[many_cases[1].number, many_cases[0].number]]
    everything = walk("/cases/?q=보안등", "next")
    assert sum(everything, []) == [c.number for c in reversed(many_cases)]
    html = html_of(f"/cases/?q=보안등&before={many_cases[5].number}")
    assert re.search(r'href="\?q=%EB%B3%B4%EC%95%88%EB%93%B1&amp;before=S\d{7}" rel="next"', html)


# --- A case ----------------------------------------------------------------------------


def test_case_page_shows_the_masked_message_timeline_hold_and_answer(people):
    [case] = ingest(REPORTS[:1])
    jongno, mapo = Unit.objects.get(code="district-jongno"), Unit.objects.get(code="district-mapo")
    services.transfer_case(
        case, mapo, reason="담당자 김철수 010-9999-0000 확인 필요", actor=people["center"]
    )
    services.transfer_case(case, jongno, reason="종로구 소관 재확인", actor=people["center"])
    services.hold_case(case, reason="한전 협의 중입니다", actor=people["jongno"])
    on_hold = html_of(f"/cases/{case.number}/")
    assert "state-on_hold" in on_hold and "한전 협의 중입니다" in on_hold

    services.resume_case(case, actor=people["jongno"])
    services.draft_answer(case, ANSWER, actor=people["jongno"])
    services.publish_answer(case, actor=people["jongno"], override_reason="테스트")
    html = html_of(f"/cases/{case.number}/")

    assert "창신동 보안등이 꺼졌어요" in html and "[전화번호]" in html and PHONE not in html
    assert "교체하였습니다" in html and "02-2148-1114" in html  # the office's number stays
    kinds = re.findall(r'<li class="event-([a-z_]+)">', html)
    assert kinds == [
        "received",
        "assigned",
        "transferred",
        "transferred",
        "on_hold",
        "resumed",
        "answered",
    ]
    timeline = html.split('class="timeline public-timeline"')[1].split("</ol>")[0]
    assert timeline.count("마포구청") == 2 and "종로구청" in timeline
    assert "한전 협의 중입니다" in timeline
    # Officers' notes and names stay inside.
    assert "김철수" not in html and "010-9999-0000" not in html and "종로구 소관 재확인" not in html
    for officer in people.values():
        assert f">{officer.username}<" not in html and f" {officer.username} " not in html
    assert "state-answered" in html and "state-on_hold" not in html


def test_every_case_is_public_from_the_moment_it_is_opened(people):
    [case] = ingest(REPORTS[2:3])
    html = html_of(f"/cases/{case.number}/")
    assert "공사장 소음" in html and "state-in_progress" in html
    assert case.unit.name in html
    assert timezone.localtime(case.deadline_at).strftime("%Y-%m-%d %H:%M") in html
    assert "answer-title" not in html


def test_merged_case_links_to_its_target_which_shows_the_reports(people):
    first, second = ingest(
        [
            ("x", "종로구 창신동 보안등이 꺼졌어요 고쳐주세요"),
            ("email", "마포구 합정동 골목에 불법주차 차량 때문에 통행이 어려워요 010-2222-3333"),
        ]
    )
    services.merge_case(second, first, actor=people["center"])

    merged = html_of(f"/cases/{second.number}/")
    assert "state-merged" in merged
    assert f'href="/cases/{first.number}/"' in merged
    assert "불법주차" in merged  # what the public saw of it stays
    assert re.findall(r'<li class="event-([a-z_]+)">', merged)[-1] == "merged_into"

    target = html_of(f"/cases/{first.number}/")
    assert f'href="/cases/{second.number}/"' in target
    reports = target.split('id="reports-title"')[1]
    assert "불법주차" in reports and "[전화번호]" in reports and "010-2222-3333" not in target
    assert "merged_here" in target


def test_withdrawn_texts_are_left_out_of_list_and_page(people):
    from sotong.channels.connectors.base import Withdrawal
    from sotong.channels.services import record_withdrawals
    from sotong.directory.models import Channel

    opening, joined = ingest_batch(
        [
            NormalizedMessage(channel="x", external_id="w-1", text="종로구 창신동 보안등 고장"),
            NormalizedMessage(channel="x", external_id="w-2", text="저도 봤어요 창신동 보안등"),
        ]
    )
    triage_messages([opening.pk])
    case = Case.objects.get()
    services.join_cases([(joined, case)])
    assert "저도 봤어요" in html_of(f"/cases/{case.number}/")

    record_withdrawals(Channel.objects.get(code="x"), [Withdrawal("w-1"), Withdrawal("w-2")])

    for html in (html_of("/cases/"), html_of(f"/cases/{case.number}/"), html_of("/")):
        assert "창신동" not in html and "시민이 삭제한 글입니다" in html


def test_unknown_case_number_is_not_found(directory):
    for number in ("S9999999", "nonsense"):
        response = Client().get(f"/cases/{number}/")
        assert response.status_code == 404
        assert "<h1>" in response.content.decode()


def test_case_number_in_another_spelling_goes_to_the_case(desk):
    response = Client().get(f"/cases/s{desk[0].pk}/")
    assert response.status_code == 302 and response["Location"] == f"/cases/{desk[0].number}/"


# --- Every page ------------------------------------------------------------------------


def test_public_pages_have_no_inline_code_and_label_their_parts(desk):
    paths = [
        "/",
        "/?map=overdue",
        "/cases/",
        "/cases/?q=소음&state=open",
        "/cases/?q=없는말",
        f"/cases/{desk[0].number}/",
        f"/cases/{desk[1].number}/",
    ]
    for path in paths:
        html = html_of(path)
        assert inline_code(html) == [], path
        assert re.search(r'<html lang="(ko|en)">', html)
        assert html.count("<h1") == 1, path
        for wrapper in re.findall(r'<div class="table-scroll"[^>]*>', html):
            assert 'tabindex="0"' in wrapper and "aria-labelledby" in wrapper
    for link in ("/data/", "/api/openapi.json", "/open311/v2/services.json", "/write/"):
        assert f'href="{link}"' in html


def test_the_workbench_still_gets_htmx(people):
    center = client_for(people["center"])
    assert "htmx" in html_of("/work/triage/", center)
    [opened] = ingest(REPORTS[:1])
    assert "htmx" in html_of(f"/work/cases/{opened.pk}/", center)
    assert 'href="/cases/"' in html_of("/work/inbox/", center)


def test_pages_cost_the_same_queries_however_many_cases(people, django_assert_max_num_queries):
    first, _second = ingest(REPORTS[:2], prefix="few")
    # The first case has two reports from the start: its page then reads the joined
    # reports and merged cases too, and must not read more for more of them.
    services.join_cases(
        [
            (message, first)
            for message in ingest_batch(
                [NormalizedMessage(channel="x", external_id="again-first", text="창신동 보안등")]
            )
        ]
    )
    paths = [
        "/",
        "/cases/",
        "/cases/?q=보안등&state=open",
        "/live/overview.json",
        f"/cases/{first.number}/",
    ]
    counts = {}
    for path in paths:
        with django_assert_max_num_queries(40) as captured:
            html_of(path)
        counts[path] = len(captured)
    more = ingest(REPORTS[2:], prefix="more")
    joined = ingest_batch(
        [
            NormalizedMessage(channel="x", external_id=f"again-{n}", text=f"창신동 보안등 {n}")
            for n in range(3)
        ]
    )
    services.join_cases([(message, first) for message in joined])
    for case in more[:2]:
        services.merge_case(case, first, actor=people["center"])
    assert "창신동 보안등 2" in html_of(f"/cases/{first.number}/")
    for path in paths:
        with django_assert_max_num_queries(counts[path]):
            html_of(path)


def test_a_case_with_one_report_costs_few_queries(directory, django_assert_max_num_queries):
    # Most cases have one report: the page reads the case and its trail, and names the
    # unit it already has, nothing more.
    [case] = ingest(REPORTS[:1], prefix="single")
    with django_assert_max_num_queries(3):
        html = html_of(f"/cases/{case.number}/")
    assert case.number in html


# --- The micro-cache and the language links ----------------------------------------------


# These tests run outside a test's transaction, where the site shares its pages (inside
# one, pages are drawn afresh: they may show what is not committed). conftest.py empties
# the cache before each test.


@pytest.mark.django_db(transaction=True)
def test_anonymous_visitors_share_a_page_for_a_second(people, django_assert_num_queries):
    [first] = ingest(REPORTS[:1], prefix="shared")
    assert listed(html_of("/cases/")) == [first.number]
    [second] = ingest(REPORTS[1:2], prefix="shared-later")
    with django_assert_num_queries(0):
        assert listed(html_of("/cases/")) == [first.number]  # the same copy, no query
    # An officer sees the list as it is now; so does every visitor a second later.
    officer = client_for(people["center"])
    assert listed(html_of("/cases/", officer)) == [second.number, first.number]
    time.sleep(caching.PAGE_SECONDS + 0.1)
    assert listed(html_of("/cases/")) == [second.number, first.number]


@pytest.mark.django_db(transaction=True)
def test_each_language_has_its_own_copy(directory):
    assert '<html lang="ko">' in html_of("/cases/")
    assert '<html lang="en">' in html_of("/cases/", Client(HTTP_ACCEPT_LANGUAGE="en"))
    assert '<html lang="ko">' in html_of("/cases/")


@pytest.mark.django_db(transaction=True)
def test_live_json_from_the_copy_still_answers_304(directory, django_assert_num_queries):
    first = Client().get("/live/overview.json")
    assert first.status_code == 200
    with django_assert_num_queries(0):
        again = Client().get("/live/overview.json", HTTP_IF_NONE_MATCH=first["ETag"])
        same = Client().get("/live/overview.json")
    assert again.status_code == 304 and again["ETag"] == first["ETag"]
    assert same.status_code == 200 and same.content == first.content


@pytest.mark.django_db(transaction=True)
def test_shared_pages_carry_nothing_of_the_visitor_and_the_form_is_never_shared(people):
    [case] = ingest(REPORTS[:1], prefix="nothing-personal")
    for path in ("/", "/cases/", f"/cases/{case.number}/", "/live/overview.json"):
        response = Client().get(path)
        assert response.status_code == 200, path
        assert not response.cookies, path
        assert b"csrfmiddlewaretoken" not in response.content, path
    # The web form is drawn for each visitor, with a CSRF token of their own.
    tokens = set()
    for _ in range(2):
        response = Client().get("/write/")
        assert b"csrfmiddlewaretoken" in response.content
        tokens.add(response.cookies["csrftoken"].value)
    assert len(tokens) == 2
    # An officer's page has the sign-out form; it is never given to anyone else.
    assert "csrfmiddlewaretoken" in html_of("/cases/", client_for(people["center"]))
    assert "csrfmiddlewaretoken" not in html_of("/cases/")


def test_language_links_switch_the_language_and_return_to_the_page(directory):
    client = Client()
    html = html_of("/cases/?q=%EB%B3%B4%EC%95%88%EB%93%B1", client)  # ?q=보안등
    assert "csrfmiddlewaretoken" not in html  # a link, not a form
    link = re.search(r'href="(/language/en/\?next=[^"]+)"', html)
    assert link
    response = client.get(link.group(1))
    assert response.status_code == 302
    assert response.cookies[settings.LANGUAGE_COOKIE_NAME].value == "en"
    page = client.get(response["Location"])
    assert '<html lang="en">' in page.content.decode()
    assert 'value="보안등"' in page.content.decode()  # the same search
    back = client.get("/language/ko/", {"next": "/cases/"})
    assert back["Location"] == "/cases/"
    assert '<html lang="ko">' in html_of("/cases/", client)


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/", ""])
def test_language_link_never_leaves_the_site(directory, target):
    response = Client().get("/language/en/", {"next": target})
    assert response.status_code == 302 and response["Location"] == "/"


def test_unknown_language_is_not_found(directory):
    assert Client().get("/language/xx/").status_code == 404
