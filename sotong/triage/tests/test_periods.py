"""Dates as routing features: parsing, the year block, a router that learns a renamed unit,
dated data files and the `--date-field` option."""

from __future__ import annotations

import json
from datetime import date, datetime

import numpy as np
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from sotong.triage.classifier import TextModel
from sotong.triage.datasets import DatasetError, examples_sha256, load_examples
from sotong.triage.periods import PeriodError, PeriodFeatures, year_of


@pytest.mark.parametrize(
    ("value", "year"),
    [
        ("2020.11.30", 2020),
        ("2020-11-30", 2020),
        ("2020/1/5", 2020),
        ("20201130", 2020),
        ("2020-11-30T09:00:00+09:00", 2020),
        ("2019", 2019),
        (" 2014.03.02 ", 2014),
        (date(2016, 2, 29), 2016),
        (datetime(2017, 7, 1, 12), 2017),
        (None, None),
        ("", None),
    ],
)
def test_year_of_reads_the_usual_date_forms(value, year):
    assert year_of(value) == year


@pytest.mark.parametrize("value", ["어제", "2020-13-01", "2019-02-29", "11/30/2020", "0020-01-01"])
def test_year_of_refuses_what_is_not_a_date(value):
    with pytest.raises(PeriodError):
        year_of(value)


def test_year_block_clamps_and_takes_undated_as_the_present():
    block = PeriodFeatures(weight=1.0).fit(["2014-05-01", "2016-01-01", None])
    assert block.n_features == 3
    rows = block.transform(["2014-01-01", "2010-01-01", "2030-01-01", None], 4).toarray()
    assert np.allclose(np.linalg.norm(rows, axis=1), 1.0)
    assert rows[0].argmax() == 0 and np.allclose(rows[0], rows[1])  # before the first year
    assert rows[2].argmax() == 2 and np.allclose(rows[2], rows[3])  # after the last; undated
    assert rows[0][1] == pytest.approx(rows[0][0] / 2)  # the next year counts half
    assert rows[0][2] == 0
    assert block.transform(None, 2).toarray().argmax(axis=1).tolist() == [2, 2]


def test_undated_data_has_no_year_block():
    block = PeriodFeatures().fit([None, None])
    assert not block.active and block.transform(None, 3).shape == (3, 0)


MATTERS = [
    "버스 정류장 안내판 고장 수리 요청",
    "불법 주정차 단속 부탁드립니다",
    "택시 승차 거부 신고합니다",
    "마을버스 배차 간격 줄여 주세요",
    "공영주차장 요금 문의",
]
OTHER = [
    "음식점 위생 점검 요청",
    "식당 주방 청결 불량 신고",
    "식품 유통기한 위반 가게",
    "음식점 원산지 표시 위반",
    "위생 등급 표시 문의",
]


def renamed_unit_data() -> tuple[list[str], list[str], list[str]]:
    """Traffic matters went to 교통행정과 until 2015 and to 교통운수과 from 2017."""
    texts, labels, dates = [], [], []
    for year, unit in ((2013, "교통행정과"), (2014, "교통행정과"), (2018, "교통운수과")):
        for i, text in enumerate(MATTERS):
            texts.append(f"{text} {i}")
            labels.append(unit)
            dates.append(f"{year}-0{i + 1}-15")
    for year in (2013, 2014, 2018):
        for i, text in enumerate(OTHER):
            texts.append(text)
            labels.append("위생과")
            dates.append(f"{year}-0{i + 1}-20")
    return texts, labels, dates


def test_router_routes_a_renamed_matter_to_the_unit_of_its_time():
    texts, labels, dates = renamed_unit_data()
    model = TextModel("routing", "unit", calibration_folds=3).fit(texts, labels, dates=dates)
    assert model.card is not None
    assert model.card.params["features"]["period"]["first_year"] == 2013
    assert model.card.params["features"]["period"]["last_year"] == 2018
    ask = ["불법 주정차 단속해 주세요"]
    assert model.predict(ask) == ["교통운수과"]  # no date: today, the latest name
    assert model.top_k(ask, 1, dates=["2013-06-01"])[0][0][0] == "교통행정과"
    assert model.top_k(ask, 1, dates=["2025-06-01"])[0][0][0] == "교통운수과"
    assert model.predict(["식당 위생 점검"]) == ["위생과"]
    # The year is not a term of the text: explanations name words only.
    explained = model.explain(ask[0], "교통운수과")
    assert explained and not any(term.startswith("period:") for term, _ in explained)


def test_the_dates_are_part_of_the_training_data_hash():
    texts, labels, dates = renamed_unit_data()
    assert examples_sha256(texts, labels) == examples_sha256(texts, labels, [None] * len(texts))
    assert examples_sha256(texts, labels) != examples_sha256(texts, labels, dates)


def test_relevance_ignores_dates():
    texts = ["가로등이 꺼졌어요 고쳐주세요", "쓰레기 수거 안 됐어요"] * 4 + [
        "영화 재밌다",
        "점심 뭐 먹지",
    ] * 4
    labels = [True] * 8 + [False] * 8
    model = TextModel("relevance", "relevant", calibration_folds=2).fit(
        texts, labels, dates=["2020-01-01"] * 16
    )
    assert not model.features.period.active


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return path


def test_load_examples_reads_dates_and_names_a_bad_one(tmp_path):
    good = write_jsonl(
        tmp_path / "good.jsonl",
        [
            {"text": "가로등 고장", "unit": "건설과", "date": "2020.11.30"},
            {"text": "쓰레기", "unit": "청소과"},
        ],
    )
    data = load_examples(good, ("text",), "unit", date_field="date")
    assert data.dates == ["2020.11.30", None]
    assert load_examples(good, ("text",), "unit").dates is None
    bad = write_jsonl(
        tmp_path / "bad.jsonl", [{"text": "가로등", "unit": "건설과", "date": "어제"}]
    )
    with pytest.raises(DatasetError, match=r"bad.jsonl:1: 'date'"):
        load_examples(bad, ("text",), "unit", date_field="date")


def test_train_and_evaluate_commands_take_a_date_field(tmp_path, capsys):
    texts, labels, dates = renamed_unit_data()
    data = write_jsonl(
        tmp_path / "history.jsonl",
        [
            {"text": t, "unit": u, "written": d}
            for t, u, d in zip(texts, labels, dates, strict=True)
        ],
    )
    model_path = tmp_path / "router.joblib"
    call_command(
        "triage",
        "train",
        "--data",
        str(data),
        "--label-field",
        "unit",
        "--date-field",
        "written",
        "--calibration-folds",
        "3",
        "--model",
        str(model_path),
        verbosity=0,
    )
    model = TextModel.load(model_path)
    assert model.features.period.params()["last_year"] == 2018
    out = tmp_path / "cv.json"
    call_command(
        "triage",
        "evaluate",
        "--cv",
        "3",
        "--data",
        str(data),
        "--label-field",
        "unit",
        "--date-field",
        "written",
        "--json",
        str(out),
        verbosity=0,
    )
    assert json.loads(out.read_text())["n"] == len(texts)
    bad = write_jsonl(
        tmp_path / "bad.jsonl", [{"text": "가로등", "unit": "건설과", "written": "x"}]
    )
    with pytest.raises(CommandError, match="not a date"):
        call_command(
            "triage",
            "evaluate",
            "--model",
            str(model_path),
            "--data",
            str(bad),
            "--date-field",
            "written",
            verbosity=0,
        )
