"""Tests for sotong.lib.masking: the corpus of realistic messages plus interface guarantees."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import random
import time
import typing
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from sotong.lib import masking
from sotong.lib.masking import (
    MASK_LABELS,
    PERSONAL_DATA_KINDS,
    PersonalDataSpan,
    find_personal_data,
    mask_personal_data,
)

CORPUS_PATH = Path(__file__).with_name("masking_corpus.yaml")


def _load_corpus() -> list[dict[str, Any]]:
    with CORPUS_PATH.open(encoding="utf-8") as fh:
        cases = yaml.safe_load(fh)
    assert isinstance(cases, list)
    return cases


CORPUS = _load_corpus()


def _case_id(index: int, case: dict[str, Any]) -> str:
    kinds = "+".join(case.get("kinds") or ["none"])
    return f"{index:03d}-{kinds}"


CORPUS_PARAMS = [pytest.param(case, id=_case_id(i, case)) for i, case in enumerate(CORPUS)]


def _allow(case: dict[str, Any]) -> list[str]:
    return list(case.get("allow", []))


# ------------------------------------------------------------------------------------ corpus


def test_corpus_is_big_and_balanced() -> None:
    assert len(CORPUS) >= 220
    positives: Counter[str] = Counter()
    negatives = 0
    for case in CORPUS:
        assert set(case) <= {"text", "expect", "kinds", "allow"}, case
        assert isinstance(case["text"], str) and case["text"]
        assert "expect" in case or "kinds" in case
        kinds = case.get("kinds")
        if kinds == []:
            negatives += 1
            assert case.get("expect", case["text"]) == case["text"]
        for kind in set(kinds or []):
            assert kind in PERSONAL_DATA_KINDS
            positives[kind] += 1
    for kind in PERSONAL_DATA_KINDS:
        assert positives[kind] >= 20, (kind, positives[kind])
    assert negatives >= 60


@pytest.mark.parametrize("case", CORPUS_PARAMS)
def test_corpus_case(case: dict[str, Any]) -> None:
    text = case["text"]
    allow = _allow(case)
    if "expect" in case:
        assert mask_personal_data(text, allow=allow) == case["expect"]
    if "kinds" in case:
        assert [s.kind for s in find_personal_data(text, allow=allow)] == case["kinds"]


@pytest.mark.parametrize("case", CORPUS_PARAMS)
def test_spans_map_back_to_original(case: dict[str, Any]) -> None:
    text = case["text"]
    spans = find_personal_data(text, allow=_allow(case))
    previous_end = 0
    for span in spans:
        assert isinstance(span, PersonalDataSpan)
        assert span.kind in PERSONAL_DATA_KINDS
        assert 0 <= span.start < span.end <= len(text)
        assert span.text == text[span.start : span.end]
        assert span.start >= previous_end, "spans must be sorted and must not overlap"
        previous_end = span.end
    # Everything outside the spans is copied verbatim, each span becomes its label.
    rebuilt, pos = [], 0
    for span in spans:
        rebuilt += [text[pos : span.start], MASK_LABELS[span.kind]]
        pos = span.end
    rebuilt.append(text[pos:])
    assert "".join(rebuilt) == mask_personal_data(text, allow=_allow(case))


@pytest.mark.parametrize("case", CORPUS_PARAMS)
def test_masking_is_idempotent(case: dict[str, Any]) -> None:
    once = mask_personal_data(case["text"], allow=_allow(case))
    assert mask_personal_data(once, allow=_allow(case)) == once
    assert find_personal_data(once, allow=_allow(case)) == []


def test_masking_is_idempotent_on_glued_fragments() -> None:
    # Pieces of corpus messages glued together in random order: masking may remove a number
    # that a neighbouring word or number was glued to, and must still be stable.
    rng = random.Random(20240315)
    pieces = [case["text"] for case in CORPUS]
    fragments = []
    for text in pieces:
        for _ in range(3):
            a = rng.randrange(len(text) + 1)
            fragments.append(text[a : rng.randrange(a, len(text) + 1)])
    for _ in range(3000):
        glue = rng.choice(["", " ", ",", "/"])
        text = glue.join(rng.choice(fragments) for _ in range(rng.randint(1, 4)))
        once = mask_personal_data(text)
        assert mask_personal_data(once) == once, text


def test_placeholders_in_input_are_neither_data_nor_cues() -> None:
    # "[계좌번호]" contains the bank cue "계좌" and "[전화번호]" the phone cue "전화"; neither
    # may turn a following number into an account or a phone.
    assert mask_personal_data("[계좌번호] 110123456789 확인") == "[계좌번호] 110123456789 확인"
    assert mask_personal_data("[전화번호] 345-6789") == "[전화번호] 345-6789"
    assert mask_personal_data("[민원]010-1234-5678") == "[민원][전화번호]"
    assert mask_personal_data("[공지]역삼동 123-45번지") == "[공지]역삼동 [상세주소]"


# ------------------------------------------------------------------------------ interface


def test_constants() -> None:
    assert PERSONAL_DATA_KINDS == (
        "rrn",
        "mobile",
        "landline",
        "email",
        "card",
        "bank_account",
        "car_plate",
        "address_detail",
    )
    assert set(MASK_LABELS) == set(PERSONAL_DATA_KINDS)
    assert MASK_LABELS["rrn"] == "[주민등록번호]"
    assert MASK_LABELS["mobile"] == MASK_LABELS["landline"] == "[전화번호]"
    assert MASK_LABELS["email"] == "[이메일]"
    assert MASK_LABELS["card"] == "[카드번호]"
    assert MASK_LABELS["bank_account"] == "[계좌번호]"
    assert MASK_LABELS["car_plate"] == "[차량번호]"
    assert MASK_LABELS["address_detail"] == "[상세주소]"


def test_span_is_frozen_dataclass() -> None:
    span = find_personal_data("연락처 010-1234-5678")[0]
    assert span == PersonalDataSpan("mobile", 4, 17, "010-1234-5678")
    assert [f.name for f in dataclasses.fields(PersonalDataSpan)] == [
        "kind",
        "start",
        "end",
        "text",
    ]
    with pytest.raises(dataclasses.FrozenInstanceError):
        span.start = 0  # type: ignore[misc]


def test_empty_and_plain_text() -> None:
    assert find_personal_data("") == []
    assert mask_personal_data("") == ""
    assert mask_personal_data("민원 접수 감사합니다") == "민원 접수 감사합니다"


def test_offsets_are_original_indices_for_full_width_input() -> None:
    text = "☎ ０１０－１２３４－５６７８ 😀 ｋｉｍ＠ｎａｖｅｒ．ｃｏｍ"
    spans = find_personal_data(text)
    assert [(s.kind, s.text) for s in spans] == [
        ("mobile", "０１０－１２３４－５６７８"),
        ("email", "ｋｉｍ＠ｎａｖｅｒ．ｃｏｍ"),
    ]
    for span in spans:
        assert text[span.start : span.end] == span.text
    assert mask_personal_data(text) == "☎ [전화번호] 😀 [이메일]"


def test_everything_else_is_preserved_character_for_character() -> None:
    text = "<b>ㅋㅋㅋ</b>\t👨‍👩‍👧 Ｘ\u3000010-1234-5678\r\n&amp; e\u0301 ㄱㅏ 끝"
    assert (
        mask_personal_data(text)
        == "<b>ㅋㅋㅋ</b>\t👨‍👩‍👧 Ｘ\u3000[전화번호]\r\n&amp; e\u0301 ㄱㅏ 끝"
    )


# ------------------------------------------------------------------------------ allow-list


@pytest.mark.parametrize(
    "text",
    [
        "문의 02-2133-1234",
        "문의 02)2133-1234",
        "문의 ☎02-2133-1234",
        "문의 (02)2133-1234",
        "문의 02 2133 1234",
        "문의 0221331234",
        "문의 ０２－２１３３－１２３４",
        "문의 +82-2-2133-1234",
        "문의 ☎ 2133-1234",  # the same office line written without its area code
    ],
)
def test_allowed_office_number_in_any_spelling(text: str) -> None:
    assert mask_personal_data(text, allow=["02-2133-1234"]) == text
    # Without the allow-list the very same number is a phone and gets masked.
    assert mask_personal_data(text).endswith("[전화번호]")


def test_allow_only_hides_the_listed_number() -> None:
    text = "민원실 02-2133-1234, 담당자 휴대폰 010-9876-5432"
    assert mask_personal_data(text, allow=["02-2133-1234"]) == (
        "민원실 02-2133-1234, 담당자 휴대폰 [전화번호]"
    )
    assert mask_personal_data(text, allow=["010-9876-5432"]) == (
        "민원실 [전화번호], 담당자 휴대폰 010-9876-5432"
    )


def test_allow_accepts_any_iterable_and_a_single_string() -> None:
    text = "☎02-2133-1234"
    assert mask_personal_data(text, allow=("02-2133-1234",)) == text
    assert mask_personal_data(text, allow=iter(["02-2133-1234"])) == text
    assert mask_personal_data(text, allow={"+82 2 2133 1234"}) == text
    assert mask_personal_data(text, allow="02-2133-1234") == text
    assert mask_personal_data(text, allow=["", "전화"]) == "☎[전화번호]"


@pytest.mark.parametrize(
    "text",
    [
        "다산콜 120",
        "112, 119 신고",
        "관광안내 1330",
        "1588-1234",
        "1577-1234",
        "1544-1234",
        "1600-1234",
        "1644-1234",
        "1661-1234",
        "1666-1234",
        "1670-1234",
        "1688-1234",
        "1800-1234",
        "1899-1234",
        "☎ 1588-1234",
        "전화: 1644-1234",
        "TEL 15881234",
    ],
)
def test_service_and_business_numbers_are_public(text: str) -> None:
    assert find_personal_data(text) == []


# ------------------------------------------------------------------------------ overlaps


@pytest.mark.parametrize(
    ("text", "kinds"),
    [
        ("01012345678@naver.com", ["email"]),  # a phone inside an e-mail: the e-mail wins
        ("신한 010-1234-5678", ["bank_account"]),  # bank cue beats mobile on the same digits
        ("입금은 1002123456789 로", ["bank_account"]),  # 13-digit account, not an RRN look-alike
        ("주민번호 1002123456789", ["rrn"]),  # same digits without a bank cue
        ("국민 1234-5678-9012-3456", ["card"]),  # card beats bank account
        ("역삼동 010-1234-5678", ["mobile"]),  # phone beats an address number
        ("차량12가 3456", ["car_plate"]),  # plate beats the "N가" address pattern
    ],
)
def test_overlap_resolution_prefers_specific_kind(text: str, kinds: list[str]) -> None:
    assert [s.kind for s in find_personal_data(text)] == kinds


def test_spans_never_overlap_on_dense_input() -> None:
    text = " ".join(case["text"] for case in CORPUS) * 3
    spans = find_personal_data(text)
    assert len(spans) > 300
    for left, right in zip(spans, spans[1:], strict=False):
        assert left.end <= right.start


# ------------------------------------------------------------------------------ safety


ADVERSARIAL = {
    "digits": "1" * 100_000,
    "dash-chain": "1-" * 50_000,
    "spaced-zeros": "0 " * 50_000,
    "spaced-groups": "1234 " * 20_000,
    "phone-prefixes": "010-" * 25_000,
    "dotted": "0." * 50_000,
    "plates": "12가" * 33_000,
    "letters": "a" * 100_000,
    "at-signs": "a@" * 50_000,
    "dot-labels": "a." * 50_000,
    "email-like": "a" * 60 + "@" + "b-" * 50_000,
    "hangul": "가" * 100_000,
    "road-words": ("가나다라마바사아자로 " * 10_000),
    "bank-cue": "국민은행 " + "1-" * 50_000,
    "dong-chain": "역삼동 " + "1-" * 50_000,
    "url": "https://" + "a/1" * 33_000,
    "phones": "010-1234-5678 " * 7_000,
    "units": "1203호 " * 14_000,
    "mask-chars": "900101-" + "*" * 100_000,
}


@pytest.mark.parametrize("name", sorted(ADVERSARIAL))
def test_adversarial_input_is_fast(name: str) -> None:
    text = ADVERSARIAL[name]
    started = time.perf_counter()
    masked = mask_personal_data(text)
    elapsed = time.perf_counter() - started
    assert elapsed < 0.5, f"{name}: {elapsed:.3f}s"
    assert isinstance(masked, str)


def test_throughput_guard() -> None:
    texts = [(case["text"] + " ") * 2 for case in CORPUS][:200] * 10  # 2,000 texts, ~100 chars
    started = time.perf_counter()
    for text in texts:
        mask_personal_data(text)
    # Typically ~0.1 s in total; the loose bound only catches accidental quadratic behaviour.
    assert time.perf_counter() - started < 1.5


def test_module_is_pure() -> None:
    """Only the standard library and Sotong's other pure helpers: no Django, no I/O."""
    tree = ast.parse(Path(masking.__file__).read_text(encoding="utf-8"))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module or "")
    stdlib = {"__future__", "re", "bisect", "collections.abc", "dataclasses", "functools"}
    assert {name for name in imported if not name.startswith("sotong.lib.")} <= stdlib


def test_every_function_is_fully_annotated() -> None:
    functions = [
        func
        for func in map(inspect.unwrap, vars(masking).values())
        if inspect.isfunction(func) and func.__module__ == masking.__name__
    ]
    assert len(functions) >= 10
    for func in functions:
        hints = typing.get_type_hints(func)
        params = inspect.signature(func).parameters
        assert "return" in hints, func.__name__
        for name in params:
            assert name in hints, (func.__name__, name)
