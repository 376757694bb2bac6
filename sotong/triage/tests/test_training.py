"""Retraining: a candidate is promoted only when it measures no worse than the active model
on the held-out slice; corrections become examples; every decision names its model."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from sotong.cases import services
from sotong.cases.models import Case
from sotong.directory.models import Category
from sotong.inbox.normalize import NormalizedMessage
from sotong.inbox.services import ingest_batch
from sotong.triage import registry
from sotong.triage.examples import all_examples, seed_examples
from sotong.triage.models import TrainedModel, TriageDecision
from sotong.triage.services import forget_rules, triage_messages
from sotong.triage.training import held_out, retrain


@pytest.fixture
def models_dir(settings, tmp_path):
    settings.SOTONG_MODEL_DIR = str(tmp_path / "models")
    forget_rules()
    yield tmp_path / "models"
    forget_rules()


def scrambled(examples):
    """The same examples with the training part's categories shuffled (held-out intact)."""
    rng = random.Random(7)
    categories = [e.category for e in examples if e.category]
    return [
        replace(e, category=rng.choice(categories)) if e.category and not held_out(e) else e
        for e in examples
    ]


def test_worse_candidate_is_not_promoted_and_rollback_restores(directory, models_dir):
    examples = seed_examples()
    first = retrain("routing", examples)
    assert first.promoted and first.candidate.active
    assert first.candidate_score > 0.4

    worse = retrain("routing", scrambled(examples))
    assert not worse.promoted
    assert worse.candidate_score < worse.active_score
    assert TrainedModel.objects.get(kind="routing", active=True) == first.candidate
    assert "not promoted" in TrainedModel.objects.get(pk=worse.candidate.pk).note

    forced = retrain("routing", scrambled(examples), force=True)
    assert TrainedModel.objects.get(kind="routing", active=True) == forced.candidate
    assert registry.rollback("routing") == first.candidate
    assert TrainedModel.objects.get(kind="routing", active=True) == first.candidate


def test_decisions_record_the_model_that_made_them(directory, models_dir):
    result = retrain("routing", seed_examples())
    new = ingest_batch(
        [
            NormalizedMessage(
                channel="x",
                external_id="m1",
                text="우리 집 앞 하수구에서 냄새가 올라와요 점검 부탁드려요",
            )
        ]
    )
    triage_messages([m.pk for m in new])
    decision = TriageDecision.objects.get()
    assert f"routing:{result.candidate.version}" in decision.engine


def test_corrections_on_the_case_page_become_examples(people):
    new = ingest_batch(
        [
            NormalizedMessage(
                channel="x", external_id="c1", text="종로구 창신동 보안등이 꺼졌어요 고쳐주세요"
            )
        ]
    )
    triage_messages([m.pk for m in new])
    case = Case.objects.get()
    services.recategorize_case(
        case, Category.objects.get(code="streetlight"), actor=people["jongno"]
    )
    services.transfer_case(
        case,
        people["transport"].unit,
        reason="도로 조명은 시 소관",
        actor=people["jongno"],
        wrong_unit=True,
    )
    learned = [e for e in all_examples() if e.key == f"message-{new[0].pk}"]
    assert learned and learned[0].unit == "transport" and learned[0].relevant


class FakeModel:
    """A trained model as the engine sees it, with fixed answers."""

    version = "fake-1"

    def __init__(self, ranked, terms):
        self.ranked = ranked
        self.terms = terms
        self.explained = []

    def rank(self, texts, k):
        self.asked = [*getattr(self, "asked", []), *texts]
        return [self.ranked[:k] for _ in texts]

    def explain(self, text, label, n):
        self.explained.append(label)
        return self.terms[:n]


def test_a_model_decision_names_its_terms_and_finds_the_place_once(directory, monkeypatch):
    from sotong.triage import engine
    from sotong.triage.rules import RuleSet
    from sotong.triage.services import load_rules

    rules = load_rules().rules
    code = next(c for c, spec in sorted(rules.categories.items()) if spec.district_matter)
    other = next(c for c in sorted(rules.categories) if c != code)
    relevance = FakeModel([("true", 0.96), ("false", 0.04)], [("뭉개다", 0.4)])
    routing = FakeModel(
        [(code, 0.81), (other, 0.12), ("gone", 0.05)], [("뭉개다", 0.5), ("«뭉개»", 0.1)]
    )
    calls = []
    find_place = RuleSet.find_place
    monkeypatch.setattr(
        RuleSet, "find_place", lambda self, text: calls.append(text) or find_place(self, text)
    )
    [outcome] = engine.decide(
        ["마포구 망원동 골목에서 뭉개뭉개 뭉개고 있어요"],
        rules,
        models=engine.Models(relevance=relevance, relevance_threshold=0.5, routing=routing),
    )
    assert outcome.relevant and outcome.category == code
    mapo = next(d for d in rules.districts if "마포구" in d.names)
    assert outcome.district == "마포구" and outcome.unit == mapo.unit  # a district matter
    assert "근거: 뭉개다" in outcome.reasons  # why the filter called it city business
    assert "근거: 뭉개다, «뭉개»" in outcome.reasons  # why the router chose the category
    assert relevance.explained == ["true"] and routing.explained == [code]
    assert outcome.alternatives == ((other, 0.12),)
    assert len(calls) == 1, "the place is found once per text"
    assert outcome.location  # the gazetteer's finding travels with a model's decision


def test_only_city_business_is_routed(directory):
    from sotong.triage import engine
    from sotong.triage.services import load_rules

    rules = load_rules().rules
    code = sorted(rules.categories)[0]
    relevance = FakeModel([("false", 0.99), ("true", 0.01)], [])
    routing = FakeModel([(code, 0.9)], [])
    texts = ["오늘 점심 뭐 먹지", "종로구 가로등이 꺼졌어요 고쳐주세요"]
    outcomes = engine.decide(
        texts,
        rules,
        models=engine.Models(relevance=relevance, relevance_threshold=0.5, routing=routing),
    )
    assert [o.relevant for o in outcomes] == [False, True]
    assert routing.asked == [texts[1]]


def test_active_models_are_read_from_disk_once_per_version(directory, models_dir, monkeypatch):
    from sotong.triage.classifier import TextModel

    retrain("routing", seed_examples())
    reads = []
    load = TextModel.load.__func__
    monkeypatch.setattr(
        TextModel, "load", classmethod(lambda cls, path: reads.append(path) or load(cls, path))
    )
    first = registry.active_models().routing
    assert registry.active_models().routing is first
    assert len(reads) == 1
    newer = retrain("routing", seed_examples(), force=True)  # reads the active one to compare
    reads.clear()
    assert registry.active_models().routing.version == newer.candidate.version
    assert registry.active_models().routing.version == newer.candidate.version
    assert reads == [newer.candidate.path]


def test_a_correction_keeps_the_full_names_of_the_models_that_decided(people, models_dir):
    """Both model versions and the rules fit the decision and the correction (PostgreSQL
    refuses a value longer than its column, SQLite would keep it silently)."""
    from sotong.triage.services import review_decision

    examples = seed_examples()
    relevance = retrain("relevance", examples)
    routing = retrain("routing", examples)
    forget_rules()
    [message] = ingest_batch(
        [NormalizedMessage(channel="x", external_id="long-1", text="동네 골목이 너무 어두워요")]
    )
    triage_messages([message.pk])
    decision = TriageDecision.objects.get(message=message)
    assert decision.engine.endswith(
        f"relevance:{relevance.candidate.version}+routing:{routing.candidate.version}"
    )
    other = Category.objects.exclude(pk=decision.category_id).order_by("code").first()
    if decision.review == TriageDecision.Review.WAITING:
        review_decision(decision, relevant=True, category=other, actor=people["center"])
    else:
        case = Case.objects.get(case_messages__message=message)
        services.recategorize_case(case, other, actor=people["center"])
    correction = decision.message.corrections.get(field="category")
    assert correction.engine == decision.engine and len(correction.engine) > 80
