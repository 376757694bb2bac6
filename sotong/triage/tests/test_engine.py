"""The trained triage engine: text features, the model and its card, data files, metrics and
the `triage` command, on tiny written data, and on small slices of ../shared/data (skipped
with a reason when those sets are absent)."""

from __future__ import annotations

import itertools
import json
import unicodedata
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from sotong.conftest import shared_data
from sotong.triage.classifier import ModelCard, ModelError, TextModel
from sotong.triage.datasets import (
    FIELD_SEPARATOR,
    DatasetError,
    Example,
    examples_sha256,
    load_examples,
    split_holdout,
)
from sotong.triage.evaluation import (
    coverage_at_precision,
    cross_validate,
    fold_assignment,
    recall_at_precision,
    relevance_metrics,
    routing_metrics,
)
from sotong.triage.text_features import MorphemeAnalyzer, morphemes, normalize

# --- tiny written data --------------------------------------------------------------------------

PLACES = ["중앙동", "신포동", "송월동", "운서동"]
MATTERS = {
    "transport": [
        "버스 배차 간격이 너무 길어요",
        "정류장 버스 안내판이 고장났어요",
        "마을버스 노선 늘려주세요",
    ],
    "waste": [
        "쓰레기 수거가 안 됐어요",
        "분리수거 쓰레기 무단투기 단속해주세요",
        "음식물 쓰레기 악취가 나요",
    ],
    "parks": [
        "공원 나무 가지치기 해주세요",
        "공원 산책로 벤치가 부서졌어요",
        "공원 놀이터 모래 교체 부탁",
    ],
}
CHATTER = [
    "오늘 점심 뭐 먹지 ㅋㅋ",
    "영화 진짜 재밌었다 강추",
    "주말에 친구랑 놀러 가고 싶다",
    "아이돌 컴백 너무 기대돼요",
    "커피 한 잔 하실 분",
    "비 오니까 기분이 꿀꿀하네",
    "드라마 결말 실화냐",
    "게임 또 졌어 ㅠㅠ",
]


def routing_examples() -> tuple[list[str], list[str]]:
    texts, labels = [], []
    for (label, sentences), place in itertools.product(MATTERS.items(), PLACES):
        for sentence in sentences:
            texts.append(f"{place} {sentence}")
            labels.append(label)
    return texts, labels


def relevance_examples() -> tuple[list[str], list[bool]]:
    complaints, _ = routing_examples()
    chatter = [f"{c} {suffix}" for c in CHATTER for suffix in ("", "!!", "ㅎㅎ", "진짜")]
    return complaints + chatter, [True] * len(complaints) + [False] * len(chatter)


@pytest.fixture(scope="module")
def router() -> TextModel:
    texts, labels = routing_examples()
    return TextModel("routing", "unit", calibration_folds=3).fit(texts, labels)


@pytest.fixture(scope="module")
def relevance_filter() -> TextModel:
    texts, labels = relevance_examples()
    return TextModel("relevance", "relevant", calibration_folds=3).fit(texts, labels)


# --- text features ------------------------------------------------------------------------------


def test_normalisation_folds_what_should_not_matter():
    decomposed = unicodedata.normalize("NFD", "가로등")
    assert normalize(decomposed) == "가로등"
    assert normalize("ＣＣＴＶ　１２３번") == "cctv 0번"
    assert normalize("@seoul_smc 확인 https://t.co/abc 부탁 a.b@example.com") == (
        "xuserx 확인 xurlx 부탁 xmailx"
    )
    assert normalize("ㅋㅋㅋㅋㅋ 사진.JPG #불법주차") == "ㅋㅋ xfilex 불법주차"


def test_morphemes_are_content_words_with_verbs_as_lemmas():
    terms = morphemes(normalize("가로등이 꺼져서 고쳐주세요"))
    assert "가로등" in terms and "고치다" in terms
    assert not {"이", "서", "세요"} & set(terms)  # particles and endings say nothing


def test_the_heading_counts_again_with_a_prefix():
    analyse = MorphemeAnalyzer()
    terms = analyse(f"가로등 고장{FIELD_SEPARATOR}골목이 어두워요")
    assert {"가로등", "골목", "t:가로등"} <= set(terms) and "t:골목" not in terms
    assert "t:버스" in analyse("버스 배차")  # a single field is all heading


# --- the model ----------------------------------------------------------------------------------


def test_top_k_is_ordered_calibrated_and_bounded(router):
    [best] = router.top_k(["신포동 버스 정류장 배차 간격 좀 줄여주세요"], k=3)
    assert [label for label, _ in best][0] == "transport"
    probabilities = [p for _, p in best]
    assert probabilities == sorted(probabilities, reverse=True) and len(best) == 3
    assert router.predict_proba(["공원 나무"]).sum() == pytest.approx(1.0)
    assert len(router.top_k(["공원"], k=10)[0]) == 3
    assert router.predict(["공원 벤치 고쳐주세요", "쓰레기 수거 요청"]) == ["parks", "waste"]


def test_explain_names_the_terms_that_drove_the_label(router):
    terms = router.explain("운서동 쓰레기 무단투기 단속 요청", "waste", n=3)
    assert 1 <= len(terms) <= 3
    assert any("쓰레기" in name for name, _ in terms)
    assert all(weight > 0 for _, weight in terms)
    with pytest.raises(ModelError):
        router.explain("쓰레기", "no-such-unit")


def test_card_says_what_the_model_is(router):
    card = router.card
    texts, labels = routing_examples()
    assert isinstance(card, ModelCard)
    assert card.kind == "routing" and card.label_field == "unit"
    assert card.version.startswith("routing-") and len(card.version) <= 40
    assert datetime.fromisoformat(card.created_at).tzinfo is not None
    assert card.data_sha256 == examples_sha256(texts, labels)
    assert card.n_examples == len(texts) and card.labels == ["parks", "transport", "waste"]
    assert {"top1", "top3", "macro_f1", "coverage_at_precision"} <= card.metrics.keys()
    assert card.params["classifier"] == "LinearSVC" and card.threshold is None


def test_save_and_load_give_the_same_model(router, tmp_path):
    path = router.save(tmp_path / "models" / "router.joblib")
    loaded = TextModel.load(path)
    texts = ["버스가 안 와요", "공원에 쓰레기"]
    assert np.allclose(loaded.predict_proba(texts), router.predict_proba(texts))
    assert loaded.card == router.card


def test_load_refuses_what_is_not_a_model(tmp_path):
    junk = tmp_path / "junk.joblib"
    junk.write_bytes(b"not a pickle")
    with pytest.raises(ModelError):
        TextModel.load(junk)
    import joblib

    joblib.dump({"format": 1, "model": "a string"}, tmp_path / "other.joblib")
    with pytest.raises(ModelError):
        TextModel.load(tmp_path / "other.joblib")


def test_relevance_filter_has_a_recall_threshold(relevance_filter):
    card = relevance_filter.card
    assert card.kind == "relevance" and card.labels == [False, True]
    assert 0.0 < card.threshold < 1.0 and card.params["target_recall"] == 0.98
    p = relevance_filter.relevance(["송월동 가로등 고쳐주세요", "영화 재밌다 ㅋㅋ"])
    assert p[0] > card.threshold > p[1]
    assert relevance_filter.predict(["쓰레기 수거 요청", "커피 마시고 싶다"]) == [True, False]
    top = relevance_filter.top_k(["버스 배차 간격"], k=2)[0]
    assert top[0][0] is True and top[0][1] + top[1][1] == pytest.approx(1.0)


def test_bad_training_input_is_refused():
    with pytest.raises(ModelError, match="two different labels"):
        TextModel().fit(["a", "b"], ["x", "x"])
    with pytest.raises(ModelError, match="texts but"):
        TextModel().fit(["a"], ["x", "y"])
    with pytest.raises(ModelError, match="true or false"):
        TextModel("relevance", "relevant").fit(["a", "b"], ["yes", "no"])
    with pytest.raises(ModelError, match="not trained"):
        TextModel().predict_proba(["a"])


# --- data files ---------------------------------------------------------------------------------


def test_jsonl_and_csv_read_alike(tmp_path):
    rows = [
        {"title": "가로등 고장", "text": "골목이 어두워요", "relevant": True, "unit": "도로과"},
        {"title": "버스 배차", "text": "", "relevant": "false", "unit": "교통과"},
        {"title": "", "text": "", "relevant": "1", "unit": "교통과"},
    ]
    jsonl = tmp_path / "a.jsonl"
    jsonl.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n\n")
    csv_file = tmp_path / "a.csv"
    csv_file.write_text(
        "\ufefftitle,text,relevant,unit\n"
        + "".join(f'{r["title"]},"{r["text"]}",{r["relevant"]},{r["unit"]}\n' for r in rows)
    )
    for path in (jsonl, csv_file):
        data = load_examples(path, ("title", "text"), "relevant")
        assert data.texts == [f"가로등 고장{FIELD_SEPARATOR}골목이 어두워요", "버스 배차"]
        assert data.labels == [True, False] and data.skipped_blank == 1
        assert load_examples(path, ("title",), "unit").labels == ["도로과", "교통과"]


def test_bad_data_files_say_where(tmp_path):
    bad_json = tmp_path / "bad.jsonl"
    bad_json.write_text('{"text": "a", "unit": "x"}\n{"text": \n')
    with pytest.raises(DatasetError, match=r"bad.jsonl:2: not JSON"):
        load_examples(bad_json, ("text",), "unit")
    no_label = tmp_path / "nolabel.jsonl"
    no_label.write_text('{"text": "안녕"}\n')
    with pytest.raises(DatasetError, match="no 'unit' label"):
        load_examples(no_label, ("text",), "unit")
    assert load_examples(no_label, ("text",), "relevant", default_label=False).labels == [False]
    with pytest.raises(DatasetError, match="none of the text fields title"):
        load_examples(no_label, ("title",), "unit")
    maybe = tmp_path / "maybe.jsonl"
    maybe.write_text('{"text": "안녕", "relevant": "maybe"}\n')
    with pytest.raises(DatasetError, match="true or false"):
        load_examples(maybe, ("text",), "relevant")
    (tmp_path / "x.txt").write_text("a")
    with pytest.raises(DatasetError, match="unknown format"):
        load_examples(tmp_path / "x.txt", ("text",), "unit")
    with pytest.raises(DatasetError, match="no such file"):
        load_examples(tmp_path / "missing.jsonl", ("text",), "unit")


def test_holdout_split_is_by_text_and_stable():
    texts, labels = routing_examples()
    examples = [Example(t, label) for t, label in zip(texts, labels, strict=True)]
    train, held = split_holdout(examples, share=0.25)
    again_train, again_held = split_holdout(list(reversed(examples)), share=0.25)
    assert {e.text for e in held} == {e.text for e in again_held}
    assert 0 < len(held) < len(examples) and len(train) + len(held) == len(examples)


# --- metrics ------------------------------------------------------------------------------------


def test_coverage_counts_what_can_route_itself_at_a_precision():
    correct = [True] * 9 + [False] + [True, False] * 5
    confidence = np.linspace(0.99, 0.5, len(correct))
    shares, thresholds = coverage_at_precision(correct, confidence)
    # The nine most confident are right, the tenth wrong, the eleventh right: 10 of the 11
    # most confident are right (91%), so 11 of 20 route at 90% precision, 9 at 95%.
    assert shares == {"0.90": 0.55, "0.95": 0.45, "0.98": 0.45}
    assert thresholds["0.95"] == pytest.approx(confidence[8], abs=1e-6)
    tied, _ = coverage_at_precision([True, False], [0.9, 0.9])
    assert tied["0.90"] == 0.0  # equal confidences cannot be cut apart


def test_routing_and_relevance_metrics_have_the_published_keys():
    proba = np.array([[0.7, 0.2, 0.1], [0.2, 0.5, 0.3], [0.1, 0.3, 0.6], [0.4, 0.35, 0.25]])
    metrics = routing_metrics(["a", "b", "c", "b"], proba, ["a", "b", "c"])
    assert metrics["n"] == 4 and metrics["top1"] == 0.75 and metrics["top3"] == 1.0
    assert set(metrics["coverage_at_precision"]) == {"0.90", "0.95", "0.98"}
    assert metrics["per_label"]["b"] == {"n": 2, "precision": 1.0, "recall": 0.5, "f1": 0.6667}
    assert metrics["confused_pairs"] == [{"true": "b", "predicted": "a", "count": 1}]
    truth = np.array([True, True, False, False, True])
    p = np.array([0.9, 0.8, 0.7, 0.2, 0.6])
    assert recall_at_precision(truth, p, 0.95) == (pytest.approx(2 / 3), 0.8)
    rel = relevance_metrics(truth, p, 0.5)
    assert rel["recall"] == 1.0 and rel["precision"] == 0.75 and rel["n"] == 5
    assert {"f1", "recall_at_precision_95", "threshold"} <= rel.keys()


def test_folds_are_stratified_and_rare_labels_spread():
    labels = ["a"] * 10 + ["b"] * 10 + ["c"] * 2 + ["d"]
    folds = fold_assignment(labels, 5, seed=1)
    assert np.array_equal(folds, fold_assignment(labels, 5, seed=1))
    sizes = np.bincount(folds, minlength=5)
    assert sizes.max() - sizes.min() <= 1
    assert len({folds[20], folds[21]}) == 2  # the two c's are in different folds
    for label in "ab":
        assert sorted(folds[[i for i, v in enumerate(labels) if v == label]].tolist()) == sorted(
            [0, 1, 2, 3, 4] * 2
        )
    common = fold_assignment(["x"] * 10 + ["y"] * 10, 5)
    assert np.bincount(common).tolist() == [4] * 5


def test_cross_validation_never_tests_a_training_row():
    texts, labels = routing_examples()
    seen: list[set[str]] = []

    class Spy(TextModel):
        def fit(self, texts, labels, **kwargs):  # type: ignore[override]
            seen.append(set(texts))
            return super().fit(texts, labels, **kwargs)

    result = cross_validate(texts, labels, lambda: Spy(calibration_folds=3), folds=3)
    for fold, trained in enumerate(seen):
        tested = {t for t, f in zip(texts, result.folds, strict=True) if f == fold}
        assert tested and not tested & trained
    assert result.metrics["top1"] > 0.8 and result.metrics["estimated_by"].startswith("3-fold")


# --- the command --------------------------------------------------------------------------------


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return path


def test_command_trains_and_evaluates_a_router(tmp_path, capsys):
    texts, labels = routing_examples()
    data = write_jsonl(
        tmp_path / "history.jsonl",
        [{"text": t, "unit": u} for t, u in zip(texts, labels, strict=True)],
    )
    model = tmp_path / "router.joblib"
    call_command(
        "triage",
        "train",
        "--data",
        str(data),
        "--label-field",
        "unit",
        "--model",
        str(model),
        "--calibration-folds",
        "3",
        verbosity=0,
    )
    assert TextModel.load(model).card.n_examples == len(texts)
    out = tmp_path / "eval.json"
    call_command(
        "triage", "evaluate", "--model", str(model), "--data", str(data), "--json", str(out)
    )
    report = json.loads(out.read_text())
    assert {"n", "top1", "top3", "macro_f1", "coverage_at_precision"} <= report.keys()
    assert report["n"] == len(texts) and report["model"]["label_field"] == "unit"
    assert "top-1" in capsys.readouterr().out
    cv = tmp_path / "cv.json"
    call_command(
        "triage",
        "evaluate",
        "--cv",
        "3",
        "--data",
        str(data),
        "--label-field",
        "unit",
        "--json",
        str(cv),
        verbosity=0,
    )
    assert json.loads(cv.read_text())["estimated_by"] == "3-fold cross-validation"


def test_command_trains_relevance_from_files_with_different_fields(tmp_path):
    complaints, _ = routing_examples()
    chatter = [f"{c} {s}" for c in CHATTER for s in ("", "!!", "ㅎㅎ", "진짜")]
    titles = write_jsonl(
        tmp_path / "complaints.jsonl", [{"title": t, "relevant": True} for t in complaints]
    )
    talk = write_jsonl(tmp_path / "talk.jsonl", [{"message": c} for c in chatter])
    model = tmp_path / "relevance.joblib"
    call_command(
        "triage",
        "train",
        "--label-field",
        "relevant",
        "--model",
        str(model),
        "--data",
        f"{titles}:title",
        "--relevant-negatives",
        f"{talk}:message",
        "--calibration-folds",
        "3",
        verbosity=0,
    )
    loaded = TextModel.load(model)
    assert loaded.kind == "relevance" and loaded.card.n_examples == len(complaints) + len(chatter)
    out = tmp_path / "rel.json"
    call_command(
        "triage",
        "evaluate",
        "--model",
        str(model),
        "--data",
        f"{titles}:title",
        "--relevant-negatives",
        f"{talk}:message",
        "--json",
        str(out),
    )
    report = json.loads(out.read_text())
    assert {"n", "precision", "recall", "f1", "recall_at_precision_95"} <= report.keys()
    with pytest.raises(CommandError, match="needs --label-field relevant"):
        call_command(
            "triage",
            "train",
            "--label-field",
            "unit",
            "--model",
            str(model),
            "--data",
            str(titles),
            "--relevant-negatives",
            str(talk),
        )
    with pytest.raises(CommandError, match="no 'relevant' label"):
        call_command(
            "triage",
            "evaluate",
            "--cv",
            "3",
            "--label-field",
            "relevant",
            "--data",
            f"{talk}:message",
        )


# --- small slices of the real data --------------------------------------------------------------


def read_jsonl(path: Path, limit: int) -> list[dict]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in itertools.islice(handle, limit)]


def test_routing_learns_real_complaints():
    rows = read_jsonl(shared_data("incheon-junggu-minwon") / "train.jsonl", 300)
    texts = [f"{r['title']}{FIELD_SEPARATOR}{r['text']}" for r in rows]
    labels = [r["function"] for r in rows]
    result = cross_validate(texts, labels, lambda: TextModel("routing", "function"), folds=3)
    majority = max(labels.count(label) for label in set(labels)) / len(labels)
    assert result.metrics["top1"] > majority + 0.15
    assert result.metrics["top3"] > 0.7


def test_relevance_tells_complaint_titles_from_chatter():
    titles = [
        r["title"] for r in read_jsonl(shared_data("incheon-junggu-minwon") / "train.jsonl", 300)
    ]
    chatter = [r["text"] for r in read_jsonl(shared_data("korean-chatter") / "train.jsonl", 600)]
    texts = titles + chatter
    labels = [True] * len(titles) + [False] * len(chatter)
    result = cross_validate(texts, labels, lambda: TextModel("relevance", "relevant"), folds=3)
    assert result.metrics["recall_at_precision_95"] > 0.85
    assert result.metrics["recall"] >= 0.9


def test_fast_transform_matches_the_vectorizers():
    from sotong.triage.text_features import FeatureSpace

    texts, _ = routing_examples()
    space = FeatureSpace()
    space.fit_transform([f"{t}{FIELD_SEPARATOR}{t[::-1]}" for t in texts[:20]])
    new = texts[20:] + ["", "전혀 모르는 낱말 xyz"]
    expected = [w * v.transform(new) for w, _, v in space._active()]
    import scipy.sparse as sp

    assert abs(space.transform(new) - sp.hstack(expected, format="csr")).max() < 1e-6


def test_relevance_learnt_from_whole_posts_still_flags_their_titles():
    complaints, _ = routing_examples()
    posts = [
        f"{c}{FIELD_SEPARATOR}안녕하세요 주민입니다. 오래전부터 불편했습니다. 빠른 조치 바랍니다."
        for c in complaints
    ]
    chatter = [f"{c} {s}" for c in CHATTER for s in ("", "!!", "ㅎㅎ", "진짜")]
    model = TextModel("relevance", "relevant", calibration_folds=3).fit(
        posts + chatter, [True] * len(posts) + [False] * len(chatter)
    )
    assert model.card.n_examples == len(posts) + len(chatter)  # headings are not counted
    titles = ["중앙동 버스 배차 간격이 너무 길어요", "신포동 공원 나무 가지치기 해주세요"]
    assert model.predict(titles) == [True, True]
