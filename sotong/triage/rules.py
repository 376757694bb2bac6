"""The rule layer of triage: keyword and pattern rules per category, request cues, and the
district-versus-city ownership rule. Pure functions over plain data (no database).

A rule set is compiled once from the directory and reused for every message; keywords of
all categories are folded into one regular expression so a text is scanned once.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sotong.lib.korean_text import fold_width
from sotong.triage.location import Gazetteer, find_location

ENGINE = "rules-1"
# Patterns are written by administrators: cap their length so a typo cannot build a huge
# automaton, and refuse the nested quantifiers that make backtracking explode.
_MAX_PATTERN = 200
_NESTED_QUANTIFIER = re.compile(r"\([^)]*[+*][^)]*\)[+*{]")


def validate_pattern(pattern: str) -> re.Pattern[str]:
    """Compile an administrator's pattern, or raise ValueError saying what is wrong."""
    if len(pattern) > _MAX_PATTERN:
        raise ValueError(f"pattern longer than {_MAX_PATTERN} characters")
    if _NESTED_QUANTIFIER.search(pattern):
        raise ValueError("nested repetition such as (a+)+ is not allowed (it can hang)")
    try:
        return re.compile(pattern, re.IGNORECASE)
    except re.error as exc:
        raise ValueError(f"not a valid regular expression: {exc}") from exc


@dataclass(frozen=True)
class CategorySpec:
    """What the rules need to know about one category."""

    code: str
    owner_unit: str
    district_matter: bool
    case_type: str
    keywords: tuple[tuple[str, float], ...] = ()
    patterns: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class DistrictSpec:
    """A district office and the names by which texts refer to its district."""

    unit: str
    names: tuple[str, ...]


@dataclass(frozen=True)
class TriageOutcome:
    """What the rules concluded about one text."""

    relevant: bool | None  # None: cannot tell, a person must look
    category: str | None
    unit: str | None
    case_type: str | None
    district: str | None  # the district name found in the text
    urgent: bool
    confidence: float
    reasons: tuple[str, ...]
    engine: str = ENGINE
    location: dict[str, Any] = field(default_factory=dict)  # what the gazetteer found
    alternatives: tuple[tuple[str, float], ...] = ()  # other likely categories
    # Where the text is about, as found once here; the engine reuses it when a trained
    # model names the category the keywords could not.
    place: Place | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Place:
    """Where a text is about, as far as ownership is concerned."""

    district: DistrictSpec | None = None  # the one district it names, if it is sure
    trunk_road: bool = False  # a city trunk road: a city matter whatever the category
    unsure: str = ""  # why a person should check the place (ambiguous, another city)
    evidence: tuple[str, ...] = ()
    location: dict[str, Any] = field(default_factory=dict)


@dataclass
class RuleSet:
    categories: dict[str, CategorySpec]
    request_cues: tuple[tuple[re.Pattern[str], float], ...]
    districts: tuple[DistrictSpec, ...]
    urgent_case_types: frozenset[str] = frozenset()
    gazetteer: Gazetteer | None = None
    _keyword_re: re.Pattern[str] | None = field(default=None, repr=False)
    _keyword_owners: dict[str, list[tuple[str, float]]] = field(default_factory=dict, repr=False)
    _patterns: list[tuple[str, re.Pattern[str], float]] = field(default_factory=list, repr=False)
    _district_re: re.Pattern[str] | None = field(default=None, repr=False)
    _district_units: dict[str, DistrictSpec] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        owners: dict[str, list[tuple[str, float]]] = defaultdict(list)
        for spec in self.categories.values():
            for keyword, weight in spec.keywords:
                owners[fold_width(keyword).lower()].append((spec.code, weight))
            for pattern, weight in spec.patterns:
                self._patterns.append((spec.code, validate_pattern(pattern), weight))
        self._keyword_owners = dict(owners)
        if owners:
            # Longest first, so "가로등 고장" wins over "가로등" at the same position.
            alternatives = sorted(owners, key=len, reverse=True)
            self._keyword_re = re.compile("|".join(re.escape(k) for k in alternatives))
        names: dict[str, DistrictSpec] = {}
        for district in self.districts:
            for name in district.names:
                names[name] = district
        self._district_units = names
        if names:
            alternatives = sorted(names, key=len, reverse=True)
            self._district_re = re.compile("|".join(re.escape(n) for n in alternatives))

    def find_place(self, text: str) -> Place:
        """Where the text is about: by the gazetteer when the city has one, else by the
        first district name (or alias) the text contains."""
        if self.gazetteer is None:
            match = self._district_re.search(text) if self._district_re else None
            if match is None:
                return Place()
            named = self._district_units[match.group(0)]
            return Place(district=named, evidence=(f"지역: {named.names[0]}",))
        found = find_location(text, self.gazetteer)
        if not found.found:
            return Place()
        location = found.as_dict()
        if found.outside_city:
            return Place(
                unsure=f"다른 도시: {found.outside_city}",
                evidence=found.evidence,
                location=location,
            )
        district = self._district_units.get(found.district) if found.district else None
        unsure = (
            f"지역 후보 여럿: {'·'.join(found.ambiguous)}"
            if found.ambiguous and district is None
            else ""
        )
        return Place(
            district=district,
            trunk_road=found.trunk_road,
            unsure=unsure,
            evidence=found.evidence,
            location=location,
        )


def triage_text(text: str, rules: RuleSet) -> TriageOutcome:
    """Decide relevance, category, unit and confidence for one text by the rules."""
    folded = fold_width(text)
    lowered = folded.lower()
    scores: dict[str, float] = defaultdict(float)
    evidence: dict[str, list[str]] = defaultdict(list)
    if rules._keyword_re is not None:
        seen: set[str] = set()
        for match in rules._keyword_re.finditer(lowered):
            keyword = match.group(0)
            if keyword in seen:
                continue
            seen.add(keyword)
            for code, weight in rules._keyword_owners[keyword]:
                scores[code] += weight
                evidence[code].append(keyword)
    for code, pattern, weight in rules._patterns:
        if found := pattern.search(folded):
            scores[code] += weight
            evidence[code].append(found.group(0))
    cue_score = 0.0
    cues: list[str] = []
    for pattern, weight in rules.request_cues:
        if found := pattern.search(folded):
            cue_score += weight
            cues.append(found.group(0))
    place = rules.find_place(folded)
    district = place.district
    reasons: list[str] = [f"요청 표현: {c}" for c in cues[:3]]

    if not scores:
        if cue_score > 0:
            # Sounds like a request, but for nothing the rules know: a person decides.
            return TriageOutcome(
                relevant=None,
                category=None,
                unit=district.unit if district else None,
                case_type=None,
                district=district.names[0] if district else None,
                urgent=False,
                confidence=0.3,
                reasons=tuple(reasons + ["분류 규칙에 맞는 항목 없음", *place.evidence]),
                location=place.location,
                place=place,
            )
        return TriageOutcome(
            relevant=False,
            category=None,
            unit=None,
            case_type=None,
            district=None,
            urgent=False,
            confidence=0.7,
            reasons=("시정 관련 키워드·요청 표현 없음",),
            place=place,
        )

    ranked = sorted(scores.items(), key=lambda item: item[1], reverse=True)
    best_code, best = ranked[0]
    runner_up = ranked[1][1] if len(ranked) > 1 else 0.0
    spec = rules.categories[best_code]
    # Confidence grows with evidence and with a request cue, and shrinks when another
    # category is nearly as likely. Calibrated by hand for the rule layer; the trained
    # engine replaces it with measured probabilities.
    evidence_part = min(best, 3.0) / 3.0
    margin = (best - runner_up) / best
    confidence = 0.35 + 0.35 * evidence_part + 0.15 * min(cue_score, 1.0) + 0.15 * margin
    confidence = round(min(confidence, 0.97), 3)
    reasons = [f"'{spec.code}' 키워드: {', '.join(evidence[best_code][:4])}", *reasons]
    if runner_up:
        reasons.append(f"다른 후보: {ranked[1][0]}")

    unit, ownership, confidence = owner_for(spec, place, confidence)
    reasons += ownership
    urgent = spec.case_type in rules.urgent_case_types
    return TriageOutcome(
        relevant=True,
        category=spec.code,
        unit=unit,
        case_type=spec.case_type,
        district=district.names[0] if district else None,
        urgent=urgent,
        confidence=confidence,
        reasons=tuple(reasons),
        location=place.location,
        place=place,
    )


def owner_for(spec: CategorySpec, place: Place, confidence: float) -> tuple[str, list[str], float]:
    """The ownership rule: a district matter in a known district belongs to that district's
    office; anything on a city trunk road, and every city matter, to the owning department.
    Returns the unit, the reasons, and the confidence (lowered when the place is unsure for
    a district matter, so a person checks it)."""
    reasons = list(place.evidence)
    if not spec.district_matter:
        return spec.owner_unit, reasons, confidence
    if place.trunk_road:
        reasons.append("간선도로 → 시 소관")
        return spec.owner_unit, reasons, confidence
    if place.district is not None:
        reasons.append(f"자치구 사무 → {place.district.names[0]} 소관")
        return place.district.unit, reasons, confidence
    if place.unsure:
        reasons.append(f"자치구 사무인데 {place.unsure}: 확인 필요")
        return spec.owner_unit, reasons, min(confidence, 0.45)
    return spec.owner_unit, reasons, confidence


def build_ruleset(
    categories: Sequence[CategorySpec],
    request_cues: Iterable[tuple[str, float]],
    districts: Iterable[DistrictSpec],
    urgent_case_types: Iterable[str] = (),
    gazetteer: Gazetteer | None = None,
) -> RuleSet:
    return RuleSet(
        categories={c.code: c for c in categories},
        request_cues=tuple((validate_pattern(p), w) for p, w in request_cues),
        districts=tuple(districts),
        urgent_case_types=frozenset(urgent_case_types),
        gazetteer=gazetteer,
    )
