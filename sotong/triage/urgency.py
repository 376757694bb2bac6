"""Urgency: does a message report a safety hazard (sinkhole, gas, fire, ice …) that needs the
urgent deadline and an immediate notice? Pure functions over the editable rules in
`data/urgency.yaml`; no database.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from sotong.lib.korean_text import fold_width
from sotong.triage.rules import validate_pattern

DEFAULT_RULES = Path(__file__).resolve().parent / "data" / "urgency.yaml"
DEFAULT_WEIGHT = 0.8

# Sentence ends: punctuation and line breaks, a Korean sentence ending (요/다/죠, or 까 unless
# a worry goes on: "침수될까 봐") followed by a space, and runs of crying or laughing jamo,
# which casual writers use as full stops.
_SENTENCE_END = re.compile(
    r"[.!?。\n]+|(?<=[가-힣][요다죠])\s+|(?<=[가-힣]까)\s+(?!봐|걱정|싶)|ㅠ+|ㅜ+|ㅋ{2,}|ㅎ{2,}"
)
# Context windows around a match, in characters; long enough for a particle and a verb.
_AFTER = 16
_BEFORE = 16


@dataclass(frozen=True)
class Urgency:
    """The verdict on one text."""

    urgent: bool
    hazard: str | None  # the hazard code (see urgency.yaml), None when nothing was found
    evidence: tuple[str, ...]  # the phrases that drove it; dropped ones carry the reason
    score: float  # 0–1; urgent when it reaches the rules' threshold


@dataclass(frozen=True)
class HazardRule:
    code: str
    label: str
    label_en: str
    patterns: tuple[tuple[re.Pattern[str], float], ...]
    exclude: tuple[re.Pattern[str], ...]


@dataclass(frozen=True)
class UrgencyRules:
    hazards: tuple[HazardRule, ...]
    exclude: tuple[re.Pattern[str], ...]
    threshold: float
    boost_weight: float
    negation_after: re.Pattern[str]
    negation_before: re.Pattern[str]
    past: re.Pattern[str]
    persist: re.Pattern[str]
    resolved: re.Pattern[str]
    hypothetical_after: re.Pattern[str]
    hypothetical_before: re.Pattern[str]
    generic: re.Pattern[str]
    report: re.Pattern[str]
    boost: re.Pattern[str]

    def label(self, code: str, lang: str = "ko") -> str:
        """The hazard's name for people: Korean by default, English with lang="en"."""
        for hazard in self.hazards:
            if hazard.code == code:
                return hazard.label_en if lang == "en" else hazard.label
        raise KeyError(code)


def _compile_context(contexts: dict[str, Any], key: str) -> re.Pattern[str]:
    # A context is one pattern or a list of them (each under the length cap), read as one
    # alternation, so a city can keep adding words without writing one endless line.
    value = contexts.get(key)
    if not value:
        raise ValueError(f"urgency rules: contexts.{key} is missing")
    parts = [value] if isinstance(value, str) else list(value)
    try:
        for part in parts:
            validate_pattern(str(part))
    except ValueError as exc:
        raise ValueError(f"urgency rules: contexts.{key}: {exc}") from exc
    if len(parts) == 1:
        return re.compile(str(parts[0]), re.IGNORECASE)
    return re.compile("|".join(f"(?:{part})" for part in parts), re.IGNORECASE)


def parse_rules(data: dict[str, Any]) -> UrgencyRules:
    """Compile the rules from their YAML form; ValueError names the bad entry."""
    hazards: list[HazardRule] = []
    for item in data.get("hazards") or []:
        code = item["code"]
        patterns: list[tuple[re.Pattern[str], float]] = []
        for entry in item.get("patterns") or []:
            if isinstance(entry, str):
                entry = {"pattern": entry}
            try:
                compiled = validate_pattern(entry["pattern"])
            except ValueError as exc:
                raise ValueError(f"urgency rules, hazard {code}: {exc}") from exc
            weight = float(entry.get("weight", DEFAULT_WEIGHT))
            if not 0.0 < weight <= 1.0:
                raise ValueError(f"urgency rules, hazard {code}: weight {weight} not in (0, 1]")
            patterns.append((compiled, weight))
        hazards.append(
            HazardRule(
                code=code,
                label=item.get("label", code),
                label_en=item.get("label_en", item.get("label", code)),
                patterns=tuple(patterns),
                exclude=tuple(validate_pattern(p) for p in item.get("exclude") or []),
            )
        )
    contexts = data.get("contexts") or {}
    return UrgencyRules(
        hazards=tuple(hazards),
        exclude=tuple(validate_pattern(p) for p in data.get("exclude") or []),
        threshold=float(data.get("threshold", 0.5)),
        boost_weight=float(data.get("boost_weight", 0.0)),
        **{
            key: _compile_context(contexts, key)
            for key in (
                "negation_after",
                "negation_before",
                "past",
                "persist",
                "resolved",
                "hypothetical_after",
                "hypothetical_before",
                "generic",
                "report",
                "boost",
            )
        },
    )


@lru_cache(maxsize=8)
def load_rules(path: Path = DEFAULT_RULES) -> UrgencyRules:
    """The rules in `path`, read and compiled once per process."""
    with open(path, encoding="utf-8") as handle:
        return parse_rules(yaml.safe_load(handle) or {})


def _blank(text: str, patterns: tuple[re.Pattern[str], ...]) -> str:
    # Spaces of the same length, so offsets stay valid and nothing matches across the gap.
    for pattern in patterns:
        text = pattern.sub(lambda m: " " * len(m.group(0)), text)
    return text


def _sentences(text: str) -> list[str]:
    return [s for s in _SENTENCE_END.split(text) if s and s.strip()]


def _why_dropped(sentence: str, start: int, end: int, rules: UrgencyRules) -> str | None:
    """The reason a match does not count, or None when it does."""
    after = sentence[end : end + _AFTER]
    before = sentence[max(0, start - _BEFORE) : start]
    if rules.negation_after.search(after) or rules.negation_before.search(before):
        return "부정"
    if rules.hypothetical_after.search(after) or rules.hypothetical_before.search(before):
        return "가정"
    if rules.resolved.search(sentence):
        return "해결됨"
    if rules.past.search(sentence) and not rules.persist.search(sentence):
        return "지난 일"
    if rules.generic.search(sentence) and not rules.report.search(sentence):
        return "일반 질문"
    return None


def detect_urgency(text: str, rules: UrgencyRules | None = None) -> Urgency:
    """Judge one message. `rules` defaults to the shipped data/urgency.yaml.

    Hazard words are common in messages that are not hazards ("싱크홀 복구 감사합니다",
    "화재보험", "가스 냄새는 안 나요"), so every match is read in its sentence: negated, past
    and over, fixed, hypothetical or a general question, it does not count.
    """
    rules = rules or load_rules()
    # NFC so a hazard typed as jamo still matches; fold_width so full-width ＂ or ！ split
    # sentences like their ASCII twins.
    normal = fold_width(unicodedata.normalize("NFC", text or ""))
    normal = _blank(normal, rules.exclude)
    scores: dict[str, float] = {}
    found: dict[str, list[str]] = {}
    dropped: list[str] = []
    for sentence in _sentences(normal):
        for hazard in rules.hazards:
            local = _blank(sentence, hazard.exclude)
            for pattern, weight in hazard.patterns:
                for match in pattern.finditer(local):
                    phrase = match.group(0).strip()
                    reason = _why_dropped(local, match.start(), match.end(), rules)
                    if reason:
                        dropped.append(f"{phrase} ({reason})")
                        continue
                    # Independent pieces of evidence: 1 - Π(1 - w), so two weak cues outweigh
                    # one and the score never passes 1.
                    scores[hazard.code] = 1 - (1 - scores.get(hazard.code, 0.0)) * (1 - weight)
                    found.setdefault(hazard.code, []).append(phrase)
    if not scores:
        return Urgency(False, None, tuple(dict.fromkeys(dropped))[:3], 0.0)
    boosts = [m.group(0) for m in rules.boost.finditer(normal)]
    if boosts:
        scores = {code: min(1.0, s + rules.boost_weight) for code, s in scores.items()}
    hazard_code = max(scores, key=lambda code: scores[code])
    score = round(scores[hazard_code], 3)
    evidence = tuple(dict.fromkeys(found[hazard_code] + boosts[:2]))[:6]
    return Urgency(score >= rules.threshold, hazard_code, evidence, score)
