"""Urgency detection: written casual messages (hazards, negations, past and fixed events,
everyday uses of hazard words), the rules file a city edits, and precision and recall on the
hand-labelled set in urgency_labels.yaml, whose texts are read from ../shared/data."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import yaml

from sotong.triage.urgency import (
    DEFAULT_RULES,
    Urgency,
    detect_urgency,
    load_rules,
    parse_rules,
)

SHARED_DATA = Path(__file__).resolve().parents[4] / "shared" / "data"
LABELS = Path(__file__).with_name("urgency_labels.yaml")

URGENT = [
    ("강남역 11번 출구 앞에 싱크홀 생겼어요 ㄷㄷ 차 빠질 뻔", "sinkhole"),
    ("우리 동네 도로가 갑자기 꺼졌어요!! 사람 다칠 것 같아요", "sinkhole"),
    ("맨홀 뚜껑 열려있어요 애들 지나다니는데 ㅠㅠ", "sinkhole"),
    ("지난주에 신고한 싱크홀 아직도 그대로예요 위험해요", "sinkhole"),
    ("아파트 입구쪽에서 가스 냄새 엄청 나요 어떡해요", "gas"),
    ("골목에서 가스 새는 소리 나요 쉬익", "gas"),
    ("My street has a gas leak, smells terrible", "gas"),
    ("태풍 때문에 가로수가 쓰러져서 차도 막고 있어요", "fallen_object"),
    ("상가 간판이 덜렁덜렁 곧 떨어질 것 같아요 무서워요", "fallen_object"),
    ("시청역 사거리 신호등 꺼졌어요 차들 엉켜서 난리남", "traffic_signal"),
    ("학교 앞 신호등 고장났나봐요 계속 빨간불이에요", "traffic_signal"),
    ("Traffic lights are out at the junction near the station", "traffic_signal"),
    ("지하차도 침수됐어요 차 들어가면 안돼요", "flooding"),
    ("비 너무 와서 맨홀에서 물이 역류하고 있어요", "flooding"),
    ("집 앞 골목이 물에 잠겼어요 무릎까지 차요", "flooding"),
    ("출근길 육교 계단 빙판이에요 어르신들 넘어지세요", "ice"),
    ("언덕길 제설 하나도 안 돼 있어요 차가 못 올라가요", "ice"),
    ("새벽에 블랙아이스 때문에 미끄러질 뻔", "ice"),
    ("옆 건물에서 불났어요!! 연기 엄청 나요", "fire"),
    ("산 쪽에서 검은 연기가 올라와요 산불 아닌가요", "fire"),
    ("예전에 화재가 났던 건물인데 지금 또 연기가 나요", "fire"),
    ("전선이 축 늘어져서 머리에 닿을 것 같아요", "electric"),
    ("가로등 기둥 만졌는데 찌릿해요 감전될 뻔", "electric"),
    ("공사장 옆 축대에 금이 가고 흙이 흘러내려요", "collapse"),
    ("담벼락이 기울어져서 곧 무너질 것 같아요", "collapse"),
    ("국도 달리는데 낙석 떨어져서 길 막혔어요", "collapse"),
    ("엘리베이터에 아이가 갇혔어요 빨리 와주세요", "person_in_danger"),
    ("공원 벤치 옆에 어르신이 쓰러져 계세요 119 불렀어요", "person_in_danger"),
    ("강변북로 2차로 한가운데 큰 판자 떨어져 있어요 차들 급정거 ㄷㄷ", "road_obstacle"),
    ("＠seoul 싱크홀！ 종로3가역 앞이요", "sinkhole"),  # full-width, as some phones type
]

NOT_URGENT = [
    "싱크홀 복구 감사합니다 빨리 해주셨네요",
    "신호등 고쳐주셔서 감사합니다 이제 안전해요",
    "예전에 화재가 났던 건물인데 지금은 리모델링해서 카페예요",
    "작년 여름에 침수됐었는데 올해는 괜찮네요",
    "가스 냄새는 안 나요 그냥 확인차 여쭤봐요",
    "도로 꺼짐은 아니고 그냥 보도블럭이 좀 울퉁불퉁해요",
    "혹시 가스 냄새 나면 어디로 연락해야 돼요?",
    "비 오면 침수될까 봐 걱정이에요",
    "화재 시 대피 요령 알려주세요",
    "포트홀은 어디에 신고하나요?",
    "오늘 불꽃축제 대박 ㅋㅋㅋ",
    "화재보험 갱신 언제 하지",
    "뮤지컬 연기 공연 너무 좋았어요",
    "배우 연기력 미쳤다",
    "공연 연기됐대요 ㅠ",
    "물가 폭등 실화냐",
    "아이돌 인기 폭발 ㅋㅋ",
    "가창력 폭발 무대 미쳤음",
    "멘탈 붕괴 ㅠㅠ 시험 망함",
    "오늘 너무 추워서 손 얼어버릴 듯",
    "담배 연기 때문에 짜증나요",
    "가로등 하나 나갔어요 교체 부탁드려요",
    "버스 배차 간격 좀 줄여주세요 ㅠ",
    "이번 영화 더빙판으로 볼까 자막으로 볼까",
    "",
]


@pytest.mark.parametrize(("text", "hazard"), URGENT)
def test_hazard_reports_are_urgent(text: str, hazard: str) -> None:
    result = detect_urgency(text)
    assert result.urgent, result
    assert result.hazard == hazard
    assert result.evidence and result.score >= load_rules().threshold


@pytest.mark.parametrize("text", NOT_URGENT)
def test_negated_past_fixed_and_everyday_uses_are_not(text: str) -> None:
    result = detect_urgency(text)
    assert not result.urgent, result


def test_dropped_evidence_says_why() -> None:
    # The center sees why a hazard word did not count.
    assert detect_urgency("싱크홀 복구 감사합니다").evidence == ("싱크홀 (해결됨)",)
    assert detect_urgency("가스 냄새는 안 나요").evidence == ("가스 냄새 (부정)",)
    assert detect_urgency("예전에 화재가 났던 곳").evidence == ("화재가 났 (지난 일)",)


def test_rules_load_once_and_label_hazards() -> None:
    rules = load_rules()
    assert load_rules() is rules
    assert rules.label("sinkhole").startswith("싱크홀")
    assert rules.label("gas", lang="en") == "Gas smell or leak"


def test_a_city_can_add_its_own_words(tmp_path: Path) -> None:
    data = yaml.safe_load(DEFAULT_RULES.read_text(encoding="utf-8"))
    data["hazards"].append(
        {
            "code": "jellyfish",
            "label": "해파리",
            "patterns": [{"pattern": "해파리 떼", "weight": 0.9}],
        }
    )
    path = tmp_path / "urgency.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    rules = load_rules(path)
    assert detect_urgency("해수욕장에 해파리 떼 나타났어요", rules).hazard == "jellyfish"
    assert not detect_urgency("해파리 떼 나타났어요", load_rules()).urgent


@pytest.mark.parametrize(
    "pattern",
    ["(a+)+b", "x" * 201, "(unclosed"],
)
def test_bad_patterns_are_refused_with_the_hazard_named(pattern: str) -> None:
    data = yaml.safe_load(DEFAULT_RULES.read_text(encoding="utf-8"))
    data["hazards"][0]["patterns"].append({"pattern": pattern})
    with pytest.raises(ValueError, match="sinkhole"):
        parse_rules(data)


def _half(row_id: str) -> str:
    digest = hashlib.sha256(("urgency-split:" + row_id).encode()).hexdigest()
    return "test" if int(digest, 16) % 2 == 1 else "tune"


def _texts(datasets: set[str]) -> dict[tuple[str, str], str]:
    texts: dict[tuple[str, str], str] = {}
    for dataset in datasets:
        with open(SHARED_DATA / dataset / "train.jsonl", encoding="utf-8") as handle:
            for line in handle:
                row = json.loads(line)
                # Complaint boards have a title and a body; the message is both.
                text = row["title"] + "\n" + row["text"] if "title" in row else row["text"]
                texts.setdefault((dataset, row["id"]), text)
    return texts


def _measure(rows: list[dict[str, object]], results: dict[str, Urgency]) -> dict[str, float]:
    tp = sum(1 for r in rows if r["urgent"] and results[str(r["id"])].urgent)
    fp = sum(1 for r in rows if not r["urgent"] and results[str(r["id"])].urgent)
    fn = sum(1 for r in rows if r["urgent"] and not results[str(r["id"])].urgent)
    return {
        "n": len(rows),
        "urgent": tp + fn,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "precision": tp / (tp + fp) if tp + fp else 1.0,
        "recall": tp / (tp + fn) if tp + fn else 1.0,
    }


def test_precision_and_recall_on_the_labelled_set() -> None:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"labelled texts live in ../shared/data ({SHARED_DATA}), absent here")
    labels = yaml.safe_load(LABELS.read_text(encoding="utf-8"))["labels"]
    texts = _texts({row["dataset"] for row in labels})
    missing = [row["id"] for row in labels if (row["dataset"], row["id"]) not in texts]
    assert not missing, f"labelled ids not found in shared/data: {missing[:5]}"
    results = {row["id"]: detect_urgency(texts[(row["dataset"], row["id"])]) for row in labels}
    report = {
        "all": _measure(labels, results),
        "tune": _measure([r for r in labels if _half(r["id"]) == "tune"], results),
        "test (held out)": _measure([r for r in labels if _half(r["id"]) == "test"], results),
    }
    for name, m in report.items():
        print(
            f"urgency {name}: n={m['n']} urgent={m['urgent']} tp={m['tp']} fp={m['fp']} "
            f"fn={m['fn']} precision={m['precision']:.3f} recall={m['recall']:.3f}"
        )
    wrong_hazard = [
        row["id"]
        for row in labels
        if row["urgent"]
        and results[row["id"]].urgent
        and results[row["id"]].hazard != row["hazard"]
    ]
    print(f"urgency: urgent with another hazard code than labelled: {wrong_hazard}")
    assert report["all"]["precision"] >= 0.85
    assert report["all"]["recall"] >= 0.85
    # The held-out half is smaller (23 urgent rows) and was seen once (see the labels file):
    # a looser guard, so a pattern edit that only fits the tune half still fails here.
    assert report["test (held out)"]["precision"] >= 0.80
    assert report["test (held out)"]["recall"] >= 0.85
