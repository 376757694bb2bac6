"""Korean search over public cases: one-, two- and three-syllable terms, Latin and mixed
terms, full-width forms, answers, withdrawn texts — the same results on SQLite and
PostgreSQL (this module runs on both, with the same expectations), and a term that matches
nothing answered from the index alone."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from sotong.cases import services
from sotong.cases.models import Case
from sotong.cases.services import CaseOpening
from sotong.channels.connectors.base import Withdrawal
from sotong.channels.services import record_withdrawals
from sotong.directory.models import CaseType, Unit
from sotong.inbox.normalize import NormalizedMessage
from sotong.inbox.services import ingest_batch
from sotong.lib.search_text import index_tokens, parse_query
from sotong.portal.models import PublicCase
from sotong.portal.search import search_cases
from sotong.portal.selectors import CaseFilters, case_page

TEXTS = {
    "parking": "역삼동 골목 불법주차 차량 때문에 통행이 어렵습니다",
    "noise": "밤마다 공사장 소음이 심해요",
    "leak": "아파트 지하 주차장에 누수가 있어요",
    "cctv": "CCTV 설치를 요청합니다. Wi-Fi도 안 돼요",
    "fullwidth": "ＣＣＴＶ 고장 신고",
    "smell": "하수구 악취가 너무 심합니다 😷",
    "enforce": "주차 단속 부탁드립니다",
    "light": "보안등이 꺼졌어요",
    "order": "차장님 주차 문제로 연락드려요",
    "led": "LED가로등 교체 요청",
    "gone": "주차 문제 글인데 삭제했어요",
}

EXPECTED = {
    # Two syllables: one bigram, glued to particles and other words.
    "주차": {"parking", "leak", "enforce", "order"},
    "소음": {"noise"},
    "누수": {"leak"},
    "악취": {"smell"},
    # One syllable: a prefix of the indexed bigrams, or a run's last character.
    "밤": {"noise"},
    "등": {"light", "led"},
    "도": {"cctv"},  # "Wi-Fi도" ends a run with 도
    # Three or more: every bigram, then the substring (차장님 주차 has 주차 and 차장).
    "주차장": {"leak"},
    "보안등": {"light"},
    "불법주차": {"parking"},
    # Latin, any case and width; mixed Korean and Latin.
    "cctv": {"cctv", "fullwidth"},
    "CCTV": {"cctv", "fullwidth"},
    "ｃｃｔｖ": {"cctv", "fullwidth"},
    "wi": {"cctv"},
    "led가로등": {"led"},
    "LED": {"led"},
    "가로등": {"led"},
    # Several words: all of them.
    "주차 단속": {"enforce"},
    "주차, 문제": {"order"},
    # The published answer is searched too.
    "교체하였습니다": {"light"},
    # Nothing.
    "쀍뷁": set(),
    "xyzzy": set(),
    "주차장 소음": set(),
}


def test_index_tokens_are_bigrams_and_run_ends():
    assert index_tokens("불법주차 신고") == ["불법", "법주", "주차", "차", "신고", "고"]
    assert index_tokens("ＣＣＴＶ") == ["cc", "ct", "tv", "v"]
    assert index_tokens("😷 !!") == []


def test_query_terms():
    [one] = parse_query("차")
    assert one.prefix and one.tokens == ("차",) and not one.needs_substring_check
    [three] = parse_query("주차장")
    assert three.tokens == ("주차", "차장") and three.needs_substring_check
    assert [t.text for t in parse_query("주차, 주차 문제!")] == ["주차", "문제"]
    assert parse_query("  ~!@ ") == []


@pytest.fixture
def corpus(people) -> dict[str, Case]:
    messages = ingest_batch(
        [
            NormalizedMessage(channel="x", external_id=f"search-{key}", text=text)
            for key, text in TEXTS.items()
        ]
    )
    request = CaseType.objects.get(code="request")
    jongno = Unit.objects.get(code="district-jongno")
    cases = services.open_cases(
        [CaseOpening(message=m, case_type=request, category=None, unit=jongno) for m in messages]
    )
    by_key = dict(zip(TEXTS, cases, strict=True))
    services.draft_answer(
        by_key["light"],
        "보안등을 새 것으로 교체하였습니다. 문의는 종로구청(02-2148-1114)으로 주십시오.",
        actor=people["jongno"],
    )
    services.publish_answer(by_key["light"], actor=people["jongno"], override_reason="테스트")
    message = messages[list(TEXTS).index("gone")]
    record_withdrawals(message.channel, [Withdrawal(external_id=message.external_id)])
    return by_key


@pytest.mark.parametrize("query", list(EXPECTED))
def test_search_finds_partial_words(corpus, query):
    found = set(search_cases(PublicCase.objects.all(), query).values_list("case_id", flat=True))
    assert found == {corpus[key].pk for key in EXPECTED[query]}


def test_withdrawn_text_is_not_searchable_and_empty_query_filters_nothing(corpus):
    assert corpus["gone"].pk not in set(
        search_cases(PublicCase.objects.all(), "삭제").values_list("case_id", flat=True)
    )
    assert search_cases(PublicCase.objects.all(), " ").count() == len(TEXTS)


def test_search_pages_newest_first_with_filters(corpus):
    page = case_page(CaseFilters(query="주차"), size=2)
    expected = sorted((corpus[k].pk for k in EXPECTED["주차"]), reverse=True)
    assert [c.case_id for c in page.cases] == expected[:2]
    rest = case_page(CaseFilters(query="주차"), before=page.older, size=2)
    assert [c.case_id for c in rest.cases] == expected[2:]
    assert rest.older is None and rest.newer == expected[2]
    back = case_page(CaseFilters(query="주차"), after=rest.newer, size=2)
    assert [c.case_id for c in back.cases] == expected[:2] and back.newer is None
    assert case_page(CaseFilters(query="주차", state="answered")).cases == []


def _plan(sql: str, params: tuple) -> str:
    with connection.cursor() as cursor:
        prefix = "EXPLAIN" if connection.vendor == "postgresql" else "EXPLAIN QUERY PLAN"
        cursor.execute(f"{prefix} {sql}", params)
        return "\n".join(str(row) for row in cursor.fetchall())


def test_a_term_that_matches_nothing_is_answered_by_the_index(people):
    """The slowest case of a scan, a term found nowhere, must be an index lookup."""
    request = CaseType.objects.get(code="request")
    opened = timezone.now() - timedelta(days=1)
    cases = Case.objects.bulk_create(
        [
            Case(
                case_type=request,
                opened_at=opened,
                deadline_at=opened + timedelta(days=7),
                remind_at=opened + timedelta(days=5),
            )
            for _ in range(3000)
        ]
    )
    words = ["주차", "소음", "보안등", "쓰레기", "불법", "공사", "악취", "도로", "가로수", "버스"]
    PublicCase.objects.bulk_create(
        [
            PublicCase(
                case=case,
                state="in_progress",
                status="new",
                opened_at=opened,
                deadline_at=case.deadline_at,
                updated_at=opened,
                text=text,
                search_text=text,
                search_tokens=" ".join(index_tokens(text)),
            )
            for n, case in enumerate(cases)
            for text in [f"{words[n % 10]} {words[(n * 7) % 10]} 민원 {n}번"]
        ]
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
        if connection.vendor == "postgresql":
            # A few thousand rows fit in a few pages, which PostgreSQL rightly scans; what
            # matters is that the query's shape lets the GIN index answer it (bench/portal.py
            # measures it at a million cases, where the planner takes the index by itself).
            cursor.execute("SET LOCAL enable_seqscan = off")
            cursor.execute("SET LOCAL enable_indexscan = off")
    query = search_cases(PublicCase.objects.all(), "쀍뷁").order_by("-case_id")[:21]
    sql, params = query.query.sql_with_params()
    plan = _plan(sql, params)
    if connection.vendor == "postgresql":
        assert "portal_publiccase_search" in plan, plan
    else:
        assert "VIRTUAL TABLE INDEX" in plan, plan
    assert list(query) == []
    assert search_cases(PublicCase.objects.all(), "주차 민원").count() == 300
