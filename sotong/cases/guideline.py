"""Check an officer's answer against the standard-answer guideline (표준답안) before publication.

The guideline is data (a YAML file a city may edit): each element has labels, help text and
detection rules. Pure functions without Django, shared by the HTMX live check, API and scripts.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from sotong.lib.masking import PersonalDataSpan, find_personal_data

__all__ = [
    "DEFAULT_GUIDELINE_PATH",
    "ElementResult",
    "Guideline",
    "GuidelineElement",
    "GuidelineReport",
    "check_answer",
    "load_default_guideline",
    "load_guideline",
]

DEFAULT_GUIDELINE_PATH = Path(__file__).resolve().parent / "data" / "guideline.yaml"

# Evidence is shown inline next to each element in the live check; longer snippets wrap badly.
EVIDENCE_MAX = 40

# Rules are written once for Korean and English answers; case only matters for the latter.
_FLAGS = re.IGNORECASE

_CODE_RE = re.compile(r"^[a-z][a-z0-9_]*$")
_ELEMENT_KEYS = frozenset(
    {"code", "label", "label_en", "help", "required", "keywords", "patterns", "exclude"}
)
_WS_RE = re.compile(r"\s+")
_WORD_STOPS = frozenset(" .")


@dataclass(frozen=True)
class GuidelineElement:
    """One element an answer must (or may) hold, with the rules that detect it."""

    code: str
    label: str
    label_en: str
    help: str
    required: bool
    keywords: tuple[str, ...]
    patterns: tuple[re.Pattern[str], ...]
    # A match that contains one of these is no evidence: "현장을 확인하였습니다" is past
    # tense but not a completed remedy. Python's look-behind cannot take variable-width
    # alternatives, so exceptions are data of their own rather than part of each regex.
    exclude: tuple[re.Pattern[str], ...] = ()
    # Keywords compiled once; a space in a keyword matches any spacing or none, because
    # officers space Korean inconsistently ("문의 사항" / "문의사항").
    _keyword_patterns: tuple[re.Pattern[str], ...] = field(
        default=(), init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        compiled = tuple(_compile_keyword(k) for k in self.keywords)
        object.__setattr__(self, "_keyword_patterns", compiled)

    def find(self, text: str) -> str | None:
        """Return the evidence snippet proving this element in ``text``, or None.

        Patterns are tried before keywords: they are the specific rules, so their match
        makes the better evidence.
        """
        for pattern in (*self.patterns, *self._keyword_patterns):
            for match in pattern.finditer(text):
                if self._counts(match.group(0)):
                    # A bare keyword ("감사") or a unit's last syllable ("과(☎760-7577)")
                    # says little; show the whole words the match sits in.
                    return _clip(_expand_to_words(text, match.start(), match.end()))
        return None

    def _counts(self, snippet: str) -> bool:
        return bool(snippet.strip()) and not any(x.search(snippet) for x in self.exclude)


@dataclass(frozen=True)
class Guideline:
    """The ordered set of elements an answer is checked against."""

    elements: tuple[GuidelineElement, ...]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Guideline:
        """Build a guideline from parsed YAML; raise ValueError naming the faulty element."""
        if not isinstance(data, Mapping):
            raise ValueError("guideline: expected a mapping with an 'elements' list")
        raw_elements = data.get("elements")
        if not isinstance(raw_elements, list) or not raw_elements:
            raise ValueError("guideline: 'elements' must be a non-empty list")
        elements: list[GuidelineElement] = []
        seen: set[str] = set()
        for index, raw in enumerate(raw_elements, start=1):
            element = _element_from_dict(raw, index)
            if element.code in seen:
                raise ValueError(f"guideline element {element.code!r}: duplicate code")
            seen.add(element.code)
            elements.append(element)
        return cls(elements=tuple(elements))

    def get(self, code: str) -> GuidelineElement | None:
        return next((e for e in self.elements if e.code == code), None)


@dataclass(frozen=True)
class ElementResult:
    code: str
    label: str
    present: bool
    evidence: str | None  # the matched snippet (≤ 40 chars) that proved the element
    # Trailing fields with defaults: the report needs them for `missing`, the English UI and
    # the hint next to a missing element; defaults keep ElementResult(code, label, present,
    # evidence) valid for callers.
    required: bool = True
    label_en: str = ""
    help: str = ""  # what to add when the element is missing, straight from the guideline


@dataclass(frozen=True)
class GuidelineReport:
    elements: tuple[ElementResult, ...]
    personal_data: tuple[PersonalDataSpan, ...]

    @property
    def missing(self) -> tuple[str, ...]:
        """Codes of required elements the answer lacks, in guideline order."""
        return tuple(r.code for r in self.elements if r.required and not r.present)

    @property
    def complete(self) -> bool:
        return not self.missing

    def as_dict(self) -> dict[str, Any]:
        """JSON-serialisable form for the HTMX live check and the API."""
        return {
            "complete": self.complete,
            "missing": list(self.missing),
            "elements": [
                {
                    "code": r.code,
                    "label": r.label,
                    "label_en": r.label_en,
                    "required": r.required,
                    "present": r.present,
                    "evidence": r.evidence,
                    "help": r.help,
                }
                for r in self.elements
            ],
            "personal_data": [
                {"kind": s.kind, "start": s.start, "end": s.end, "text": s.text}
                for s in self.personal_data
            ],
        }


def load_guideline(path: str | Path) -> Guideline:
    """Read a guideline YAML file (a city's own edit of the default)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ValueError(f"guideline {path}: invalid YAML: {exc}") from exc
    return Guideline.from_dict(data)


@lru_cache(maxsize=1)
def load_default_guideline() -> Guideline:
    """The bundled default guideline; cached because every live keystroke check needs it."""
    return load_guideline(DEFAULT_GUIDELINE_PATH)


def check_answer(
    text: str,
    guideline: Guideline | None = None,
    *,
    public_numbers: Iterable[str] = (),
) -> GuidelineReport:
    """Check ``text`` against ``guideline`` (default: the bundled one).

    ``public_numbers`` are the office's own phone numbers: they belong in the contact
    sentence and must not be flagged as personal data.
    """
    if guideline is None:
        guideline = load_default_guideline()
    # NFC because answers typed on macOS arrive decomposed (NFD) and would miss every
    # Korean rule; whitespace runs collapse to one space because answers pasted from 한글
    # documents carry hard line wraps mid-phrase. Personal-data spans are taken on the
    # original text so their offsets stay valid for highlighting.
    normalized = _WS_RE.sub(" ", unicodedata.normalize("NFC", text))
    results = []
    for element in guideline.elements:
        evidence = element.find(normalized)
        results.append(
            ElementResult(
                code=element.code,
                label=element.label,
                present=evidence is not None,
                evidence=evidence,
                required=element.required,
                label_en=element.label_en,
                help=element.help,
            )
        )
    spans = find_personal_data(text, allow=tuple(public_numbers))
    return GuidelineReport(elements=tuple(results), personal_data=tuple(spans))


def _element_from_dict(raw: object, index: int) -> GuidelineElement:
    if not isinstance(raw, Mapping):
        raise ValueError(f"guideline element #{index}: expected a mapping")
    code = raw.get("code")
    # Before the code is known, name the element by position and label so the editor finds it.
    name = f"#{index}" + (f" ({raw['label']!r})" if raw.get("label") else "")
    if not code:
        raise ValueError(f"guideline element {name}: missing 'code'")
    if not isinstance(code, str) or not _CODE_RE.match(code):
        raise ValueError(f"guideline element {name}: code {code!r} must be lower_snake_case")
    name = repr(code)
    # A misspelt key ("pattern:") would otherwise drop its rules without a word.
    unknown = sorted(str(k) for k in raw if k not in _ELEMENT_KEYS)
    if unknown:
        raise ValueError(f"guideline element {name}: unknown key(s) {', '.join(unknown)}")
    label = raw.get("label")
    if not isinstance(label, str) or not label.strip():
        raise ValueError(f"guideline element {name}: missing 'label'")
    label_en = raw.get("label_en") or label
    help_text = raw.get("help") or ""
    if not isinstance(label_en, str) or not isinstance(help_text, str):
        raise ValueError(f"guideline element {name}: 'label_en' and 'help' must be text")
    required = raw.get("required", True)
    if not isinstance(required, bool):
        raise ValueError(f"guideline element {name}: 'required' must be true or false")
    keywords = _string_list(raw.get("keywords"), name, "keywords")
    patterns = _compile_all(raw.get("patterns"), name, "patterns")
    exclude = _compile_all(raw.get("exclude"), name, "exclude")
    if not keywords and not patterns:
        # An element nothing can detect would be reported missing on every answer.
        raise ValueError(f"guideline element {name}: needs at least one keyword or pattern")
    return GuidelineElement(
        code=code,
        label=label.strip(),
        label_en=label_en.strip(),
        help=help_text.strip(),
        required=required,
        keywords=keywords,
        patterns=patterns,
        exclude=exclude,
    )


def _compile_all(value: object, name: str, key: str) -> tuple[re.Pattern[str], ...]:
    compiled = []
    for source in _string_list(value, name, key):
        try:
            compiled.append(re.compile(source, _FLAGS))
        except re.error as exc:
            raise ValueError(
                f"guideline element {name}: invalid {key} regex {source!r}: {exc}"
            ) from exc
    return tuple(compiled)


def _string_list(value: object, name: str, key: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ValueError(f"guideline element {name}: {key!r} must be a list of non-empty text")
    return tuple(v.strip() if key == "keywords" else v for v in value)


def _compile_keyword(keyword: str) -> re.Pattern[str]:
    body = r"\s*".join(re.escape(p) for p in keyword.split())
    # English keywords match whole words ("done" is not in "abandoned"); Korean ones match
    # inside words, since particles and endings attach to them (감사 → 감사드립니다).
    if _is_ascii_word_char(keyword[0]):
        body = r"\b" + body
    if _is_ascii_word_char(keyword[-1]):
        body += r"\b"
    return re.compile(body, _FLAGS)


def _is_ascii_word_char(char: str) -> bool:
    return char.isascii() and (char.isalnum() or char == "_")


def _expand_to_words(text: str, start: int, end: int) -> str:
    # Stop at a full stop too: officers glue sentences and list numbers ("드립니다.2. 귀하").
    while start > 0 and text[start - 1] not in _WORD_STOPS and end - start < EVIDENCE_MAX:
        start -= 1
    while (
        end < len(text)
        and text[end] not in _WORD_STOPS
        and text[end - 1] != "."
        and end - start < EVIDENCE_MAX
    ):
        end += 1
    if end < len(text) and text[end] == "." and text[end - 1] != "." and end - start < EVIDENCE_MAX:
        end += 1  # keep the sentence's own full stop
    return text[start:end]


def _clip(snippet: str) -> str:
    snippet = _WS_RE.sub(" ", snippet).strip()
    if len(snippet) > EVIDENCE_MAX:
        snippet = snippet[: EVIDENCE_MAX - 1].rstrip() + "…"
    return snippet
