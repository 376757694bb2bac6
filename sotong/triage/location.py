"""Location extraction for triage: finds the 구, 동, subway station, landmark and road a citizen's
text names, using the city's gazetteer (directory data), and decides which district it is in,
or that it cannot tell, or that the place is in another city. Pure: no Django, no database.
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from sotong.lib.korean_text import fold_width

# Kinds of gazetteer entries. The order is the priority when two kinds share a spelling
# (인사동 is both a legal 동 and a landmark): the more administrative reading wins.
BLOCK = "block"
DISTRICT = "district"
STATION = "station"
DONG = "dong"
LANDMARK = "landmark"
ALIAS = "alias"
ROAD = "road"
CITY = "city"
OTHER_CITY = "other_city"
OTHER_DISTRICT = "other_district"
OTHER_PLACE = "other_place"
_PRIORITY = {
    kind: rank
    for rank, kind in enumerate(
        (
            BLOCK,
            DISTRICT,
            STATION,
            DONG,
            LANDMARK,
            ALIAS,
            ROAD,
            CITY,
            OTHER_CITY,
            OTHER_DISTRICT,
            OTHER_PLACE,
        )
    )
}


def _words(text: str) -> list[str]:
    """A list of words written as text: Korean word lists read better so than as literals."""
    return text.split()


_LOCAL_KINDS = frozenset({DISTRICT, STATION, DONG, LANDMARK, ALIAS, ROAD})

# How much one mention counts for the districts it points to (split among them when it
# points to several). A district named outright outweighs everything else together, as the
# officers expect ("관악구 신사동" is 관악구 whatever else the text says); among the rest, the
# narrower the place, the stronger the evidence.
_WEIGHT = {DISTRICT: 10.0, DONG: 3.0, STATION: 2.5, LANDMARK: 2.5, ALIAS: 2.0, ROAD: 1.0}
# Confidence of a district decided by one unopposed mention of each kind. Hand-set: a 구 name
# is almost never wrong, a bare alias (강남, 종로) sometimes means the wider area.
_CERTAINTY = {DISTRICT: 0.95, DONG: 0.9, STATION: 0.85, LANDMARK: 0.85, ALIAS: 0.8, ROAD: 0.6}
_MAX_EVIDENCE = 12
_LABEL = {DISTRICT: "구", DONG: "동", STATION: "역", LANDMARK: "장소", ALIAS: "지명", ROAD: "도로"}

# What may follow a bare name (a 동, a landmark, an alias such as 강남) for it still to be a
# place: a particle, or a noun that places things ("창신동골목", "강남쪽", "홍대입구").
# Anything else means the name is part of another word: 능동적, 강동원, 대학동기, 관악기.
_CONTINUATIONS = tuple(
    sorted(
        _words(
            """
        에서 에선 에는 에도 에만 에 엔 의 은 는 이 가 을 를 으로 로 도 만 까지 부터 서 랑 하고
        와 과 께 처럼 보다 인데 라 요 야 임 입니다 예요 에요 고 며
        쪽 측 앞 뒤 옆 건너 맞은편 근처 인근 주변 부근 일대 일원 방면 방향 입구 출구 사거리
        삼거리 오거리 네거리 교차로 로터리 거리 골목 길 변 내 안 밖 주민 사는 살 동네 지역 구간
        시장 공원 역 정류장 정류소 버스 아파트 빌라 주택 상가 센터 주민센터 행정복지센터
        동사무소 초등학교 중학교 고등학교 학교 병원 성당 교회 점 지점 광장 전체 전역 곳곳 한복판
        중심 인도 도로 차도 보도 횡단보도 육교 지하도 천변 산책로 공사 현장 주차장 있는
        청 민 립 의회 보건소 소재 관할 관내 소속 북단 남단
        """
        ),
        key=len,
        reverse=True,
    )
)
# Between a city's name and a place of that city ("인천 중구", "부산광역시, 강서구").
_GLUE = re.compile(r"[\s,·/()\-]*")
_WHITESPACE = re.compile(r"\s{2,}|[^\S ]")
_HANGUL_FIRST, _HANGUL_LAST = "가", "힣"
_NUMBERED_DONG = re.compile(r"^(\D+?)(\d+)동$")

# A building number after a road name: "세종대로 110", "테헤란로7길 22", "자하문로 19길 36".
# Not a number that counts something else: "강남대로 500m", "올림픽대로 3km", "을지로3가".
# Korean counters stick to the number ("10분", "3주"); "94 주변" is still an address.
_COUNTERS = (
    r"분|시간|시|초|일|주|개월|월|년|킬로|미터|번|개|명|원|대|층|호|만|천|억|가|차|살|세|회|등|배|"
    r"건|곳|길|위|점|톤|동|선|호선|번지"
)
_MEASURES = r"km|m\b|cm|mm|kg|%"
_ROAD_NUMBER = rf"(\d{{1,4}}(?:-\d{{1,4}})?)(?!\d)(?!{_COUNTERS})(?!\s?(?:{_MEASURES}))"
_ROAD_BRANCH = r"(\d{1,3}(?:번)?[가-힣]?길)"
_ROAD_TAIL = re.compile(rf"\s?(?:{_ROAD_BRANCH}\s?)?{_ROAD_NUMBER}")
_ROAD_BRANCH_ONLY = re.compile(rf"\s?{_ROAD_BRANCH}")
# Any road name with a building number, for the roads the gazetteer does not list.
_ANY_ROAD = re.compile(
    rf"(?<![가-힣])([가-힣]{{1,10}}(?:대로|로|길))\s?(?:{_ROAD_BRANCH}\s?)?{_ROAD_NUMBER}"
)
# Words ending like road names that are not ("그대로 3년", "차로 10분" are already refused by
# their units; these remain).
_NOT_ROADS = frozenset(
    _words(
        "그대로 제대로 이대로 저대로 마음대로 맘대로 멋대로 도로 차로 대로 진로 경로 통로 선로 철로 "
        "수로 활주로 교차로 길 골목길 뒷길 옆길 큰길 샛길 이길 그길 저길 이쪽길"
    )
)


class GazetteerError(ValueError):
    """The gazetteer data is malformed; the message says where."""


@dataclass(frozen=True)
class Location:
    """Where a text is about, as far as its words tell.

    `district` is set only when the text decides it; `ambiguous` lists the candidates when it
    does not (a border station, a 동 name found in several districts); `outside_city` names
    the other city when the place is not in this one ("인천 중구" → "인천").
    """

    district: str | None = None
    dong: str | None = None
    station: str | None = None
    landmark: str | None = None
    road: str | None = None
    trunk_road: bool = False
    ambiguous: tuple[str, ...] = ()
    outside_city: str | None = None
    evidence: tuple[str, ...] = ()
    confidence: float = 0.0

    @property
    def found(self) -> bool:
        return bool(self.district or self.ambiguous or self.outside_city or self.road)

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values, for a triage decision's record."""
        return {
            name: list(value) if isinstance(value, tuple) else value
            for name, value in asdict(self).items()
        }


@dataclass(frozen=True)
class _Entry:
    kind: str
    name: str  # what is reported: 종로구, 창신동, 강남역, 광화문광장, 세종대로, 인천
    # The districts of this city it lies in; for other-city names, the cities instead.
    areas: tuple[str, ...]
    # Must end at a word boundary or before a particle or a placing noun ("종로구청",
    # "창신동골목"); station and city names are distinctive enough to run on ("서울시민").
    bounded: bool
    # 동 only: district → the administrative 동 to report ("청운동" → 청운효자동).
    labels: tuple[tuple[str, str], ...] = ()
    trunk: bool = False
    # Other-city district names shared by several cities (동구, 서구): only with a city.
    needs_city: bool = False
    # Words after the name that narrow it to one district ("남단" of a bridge).
    ends: tuple[tuple[str, str], ...] = ()

    def label_in(self, district: str | None) -> str:
        for owner, label in self.labels:
            if owner == district:
                return label
        admin = {label for _, label in self.labels}
        return admin.pop() if len(admin) == 1 else self.name


@dataclass
class _Match:
    entry: _Entry
    start: int
    end: int
    text: str
    # The city this mention is attached to by the words just before it ("부산 중구").
    city: str | None = None
    label: str = ""
    # The districts this mention points to, when narrower than its entry's ("마포대교 남단").
    narrowed: tuple[str, ...] = ()

    @property
    def areas(self) -> tuple[str, ...]:
        return self.narrowed or self.entry.areas


class Gazetteer:
    """A city's place names, indexed for one left-to-right scan of a text.

    Every spelling is a key of one dictionary; a text is scanned position by position, and at
    each position only the key lengths that start with those two characters are tried, longest
    first, so "강남구청역" wins over "강남구" and "강남". No regular expression with thousands
    of alternatives, which Python's engine would try one by one.
    """

    def __init__(
        self, city: str, districts: Iterable[str], entries: Iterable[tuple[str, _Entry]]
    ) -> None:
        self.city = city
        self.districts: tuple[str, ...] = tuple(districts)
        index: dict[str, list[_Entry]] = {}
        for key, entry in entries:
            _add(index, key, entry)
        self._index: dict[str, tuple[_Entry, ...]] = {
            key: tuple(sorted(found, key=lambda e: _PRIORITY[e.kind]))
            for key, found in index.items()
        }
        lengths: dict[str, set[int]] = defaultdict(set)
        for key in self._index:
            lengths[key[:2]].add(len(key))
        self._lengths: dict[str, tuple[int, ...]] = {
            prefix: tuple(sorted(found, reverse=True)) for prefix, found in lengths.items()
        }
        self.counts: dict[str, int] = {}  # how many of each kind the data lists

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Gazetteer:
        """Build from the parsed YAML (see the Seoul file's header for the layout)."""
        return _build(data)

    def find(self, text: str) -> Location:
        return find_location(text, self)


def load_gazetteer(path: str | Path) -> Gazetteer:
    """Read a gazetteer YAML file, or raise GazetteerError saying what is wrong."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as exc:
        raise GazetteerError(f"{path}: {exc}") from exc
    if not isinstance(data, Mapping):
        raise GazetteerError(f"{path}: expected a mapping at the top")
    try:
        return Gazetteer.from_dict(data)
    except GazetteerError as exc:
        raise GazetteerError(f"{path}: {exc}") from exc


def find_location(text: str, gazetteer: Gazetteer) -> Location:
    """Where `text` is about, by the places it names in `gazetteer`."""
    folded = _normalize(text)
    matches = _scan(folded, gazetteer)
    return _resolve(folded, matches, gazetteer)


# --- Scanning -------------------------------------------------------------------------------


def _normalize(text: str) -> str:
    """Full-width forms folded, Hangul composed, lower case, one space between words."""
    folded = fold_width(text)
    if not folded.isascii() and not unicodedata.is_normalized("NFC", folded):
        folded = unicodedata.normalize("NFC", folded)
    folded = folded.lower()
    if _WHITESPACE.search(folded):
        folded = _WHITESPACE.sub(" ", folded)
    return folded


def _is_hangul(char: str) -> bool:
    return _HANGUL_FIRST <= char <= _HANGUL_LAST


def _is_latin(char: str) -> bool:
    return char.isascii() and char.isalnum()


def _scan(text: str, gazetteer: Gazetteer) -> list[_Match]:
    index, lengths = gazetteer._index, gazetteer._lengths
    size = len(text)
    matches: list[_Match] = []
    last_end = -1
    context: str | None = None  # the city named last, for the places right after it
    context_end = -1
    at = 0
    while at < size - 1:
        candidates = lengths.get(text[at : at + 2])
        if candidates is None:
            at += 1
            continue
        first = text[at]
        # A name starts a word, or follows another name directly ("서울종로구", "종로구창신동").
        if at and at != last_end:
            before = text[at - 1]
            if (_is_hangul(first) and _is_hangul(before)) or (
                _is_latin(first) and _is_latin(before)
            ):
                at += 1
                continue
        found: _Match | None = None
        for length in candidates:
            end = at + length
            if end > size:
                continue
            entries = index.get(text[at:end])
            if entries is None:
                continue
            for entry in entries:
                if _ends_well(text, end, entry) or (
                    _is_hangul(text[end - 1]) and _name_at(text, end, gazetteer)
                ):
                    found = _Match(entry, at, end, text[at:end])
                    break
            if found:
                break
        if found is None:
            at += 1
            continue
        kind = found.entry.kind
        if kind == ROAD:
            _attach_number(text, found)
        elif found.entry.ends:
            _attach_end(text, found)
        if kind in (CITY, OTHER_CITY):
            context, context_end = found.entry.name, found.end
        elif context is not None and _GLUE.fullmatch(text, context_end, found.start):
            found.city = context
            context_end = found.end
        if kind != BLOCK:
            matches.append(found)
        last_end = at = found.end
    return matches


def _ends_well(text: str, end: int, entry: _Entry) -> bool:
    if end == len(text):
        return True
    after, last = text[end], text[end - 1]
    if _is_latin(last):
        return not _is_latin(after)
    if not entry.bounded or not _is_hangul(after):
        return True
    return text.startswith(_CONTINUATIONS, end)


def _name_at(text: str, at: int, gazetteer: Gazetteer) -> bool:
    """Whether a place name of this city starts at `at`: names written together
    ("서울종로구창신동") end each other as well as a space would."""
    for length in gazetteer._lengths.get(text[at : at + 2], ()):
        entries = gazetteer._index.get(text[at : at + length])
        if entries and entries[0].kind in _LOCAL_KINDS:
            return True
    return False


def _attach_number(text: str, match: _Match) -> None:
    """Extend a road mention with its branch and building number, if given."""
    name = match.entry.name
    tail = _ROAD_TAIL.match(text, match.end)
    if tail:
        branch, number = tail.group(1), tail.group(2)
        match.label = f"{name}{branch or ''} {number}"
        match.end = tail.end()
        return
    branch_only = _ROAD_BRANCH_ONLY.match(text, match.end)
    if branch_only:
        match.label = f"{name}{branch_only.group(1)}"
        match.end = branch_only.end()
        return
    match.label = name


def _attach_end(text: str, match: _Match) -> None:
    """Narrow a place to one district by the word after it ("마포대교 남단" → 영등포구)."""
    at = match.end + (text[match.end : match.end + 1] == " ")
    for word, district in match.entry.ends:
        if text.startswith(word, at):
            match.narrowed = (district,)
            match.label = f"{match.entry.name} {word}"
            match.end = at + len(word)
            return


def _any_road(text: str) -> str | None:
    """The first '<name>로|길 <number>' address, for roads the gazetteer does not list."""
    for found in _ANY_ROAD.finditer(text):
        name = found.group(1)
        if name in _NOT_ROADS or name.endswith(("으로", "에로")):
            continue
        return f"{name}{found.group(2) or ''} {found.group(3)}"
    return None


# --- Deciding -------------------------------------------------------------------------------


def _resolve(text: str, matches: list[_Match], gazetteer: Gazetteer) -> Location:
    if not matches:  # most messages name no place: skip the bookkeeping
        return Location(road=_any_road(text))
    _attach_trailing_cities(text, matches, gazetteer)
    local: list[_Match] = []
    outside: list[tuple[str, _Match]] = []
    for match in matches:
        kind = match.entry.kind
        if kind in _LOCAL_KINDS:
            if match.city is not None and match.city != gazetteer.city:
                outside.append((match.city, match))
            else:
                local.append(match)
        elif kind == OTHER_CITY:
            outside.append((match.entry.name, match))
        elif kind in (OTHER_DISTRICT, OTHER_PLACE):
            if match.city in match.entry.areas:
                outside.append((match.city, match))
            elif not match.entry.needs_city and len(match.entry.areas) == 1:
                outside.append((match.entry.areas[0], match))

    scores: dict[str, float] = defaultdict(float)
    first_seen: dict[str, int] = {}
    certainty: dict[str, float] = defaultdict(float)
    for match in local:
        areas = match.areas
        if not areas:
            continue
        weight = _WEIGHT[match.entry.kind] / len(areas)
        for area in areas:
            scores[area] += weight
            first_seen.setdefault(area, match.start)
            certainty[area] = max(certainty[area], _CERTAINTY[match.entry.kind])

    district: str | None = None
    ambiguous: tuple[str, ...] = ()
    confidence = 0.0
    if scores:
        ranked = sorted(scores.items(), key=lambda item: (-item[1], first_seen[item[0]]))
        top = ranked[0][1]
        tied = [name for name, score in ranked if abs(score - top) < 1e-9]
        # Equal evidence: the place named first is the one the text is about ("잠실역에서
        # 선릉역까지"), unless one mention points to several districts at once (신촌역).
        earliest = min(first_seen[name] for name in tied)
        leaders = [name for name in tied if first_seen[name] == earliest]
        if len(leaders) == 1:
            district = leaders[0]
            runner_up = next((score for name, score in ranked if name != district), 0.0)
            margin = (top - runner_up) / top
            confidence = certainty[district] * (0.75 + 0.25 * margin)
        else:
            ambiguous = tuple(name for name in scores if name in leaders)
            confidence = max(certainty[name] for name in leaders) / len(leaders)

    outside_city: str | None = None
    if not local and outside:
        # Prefer a city ("경기 고양") over the province alone ("경기") when both are named.
        named = [city for city, _ in outside]
        outside_city = max(named, key=lambda city: (len(city), -named.index(city)))
        confidence = 0.9 if any(m.entry.kind != OTHER_CITY for _, m in outside) else 0.8

    def pick(kind: str) -> _Match | None:
        mine = [m for m in local if m.entry.kind == kind]
        for match in mine:
            if district is None or district in match.areas:
                return match
        return mine[0] if mine else None

    dong = pick(DONG)
    station = pick(STATION)
    landmark = pick(LANDMARK)
    road = pick(ROAD)
    road_text = road.label if road else None
    if road_text is None and not outside_city:
        road_text = _any_road(text)

    # Each place once, in the order of the text; a long post names the same place often.
    evidence = list(
        dict.fromkeys(_explain(match, gazetteer) for match in matches if _explainable(match))
    )[:_MAX_EVIDENCE]
    if ambiguous:
        evidence.append(f"후보: {'·'.join(ambiguous)}")
    return Location(
        district=district,
        dong=dong.entry.label_in(district) if dong else None,
        station=station.entry.name if station else None,
        landmark=landmark.entry.name if landmark else None,
        road=road_text,
        trunk_road=any(m.entry.kind == ROAD and m.entry.trunk for m in local),
        ambiguous=ambiguous,
        outside_city=outside_city,
        evidence=tuple(evidence),
        confidence=round(confidence, 3),
    )


def _attach_trailing_cities(text: str, matches: list[_Match], gazetteer: Gazetteer) -> None:
    """English puts the city after the district ("Jung-gu, Incheon"): attach it too."""
    for before, after in zip(matches, matches[1:], strict=False):
        if (
            after.entry.kind == OTHER_CITY
            and before.city is None
            and before.entry.kind in (DISTRICT, OTHER_DISTRICT)
            and _is_latin(before.text[-1])
            and _GLUE.fullmatch(text, before.end, after.start)
        ):
            before.city = after.entry.name


def _explainable(match: _Match) -> bool:
    kind = match.entry.kind
    if kind == CITY:
        return False
    if kind in (OTHER_DISTRICT, OTHER_PLACE) and match.entry.needs_city:
        return match.city in match.entry.areas
    return True


def _explain(match: _Match, gazetteer: Gazetteer) -> str:
    entry = match.entry
    if entry.kind in (OTHER_CITY, OTHER_DISTRICT, OTHER_PLACE) or (
        match.city is not None and match.city != gazetteer.city
    ):
        city = match.city or (entry.areas[0] if len(entry.areas) == 1 else "")
        shown = match.text if entry.kind in (OTHER_DISTRICT, OTHER_PLACE) else entry.name
        return f"다른 도시: {city} {shown}".strip() if city != shown else f"다른 도시: {city}"
    areas = "·".join(match.areas)
    if entry.kind == ROAD:
        kind = "간선도로" if entry.trunk else "생활도로"
        where = f"{kind}; {areas}" if areas else kind
        return f"도로: {match.label} ({where})"
    shown = match.label or entry.name
    if entry.kind == DONG:
        labels = {label for _, label in entry.labels}
        if labels != {entry.name}:
            areas = "·".join(f"{d} {label}" for d, label in entry.labels)
    if match.areas == (shown,):
        return f"{_LABEL[entry.kind]}: {shown}"
    return f"{_LABEL[entry.kind]}: {shown} ({areas})"


# --- Building -------------------------------------------------------------------------------


def _add(index: dict[str, list[_Entry]], key: str, entry: _Entry) -> None:
    """File an entry under a key, merging it with an entry of the same kind and name."""
    found = index.setdefault(key, [])
    for at, other in enumerate(found):
        if other.kind == entry.kind and other.name == entry.name:
            areas = other.areas + tuple(a for a in entry.areas if a not in other.areas)
            labels = other.labels + tuple(x for x in entry.labels if x not in other.labels)
            found[at] = _Entry(
                kind=other.kind,
                name=other.name,
                areas=areas,
                bounded=other.bounded,
                labels=labels,
                trunk=other.trunk or entry.trunk,
                ends=other.ends or entry.ends,
                needs_city=other.needs_city,
            )
            return
        if other.kind == entry.kind:
            # Two places of one kind spelt alike: the data must say which one a text means.
            raise GazetteerError(f"{key!r} names both {other.name} and {entry.name}")
    found.append(entry)


def _key(name: str) -> str:
    return _normalize(str(name)).strip()


def _spellings(name: str) -> list[str]:
    """The ways a name is written: 종로1·2·3·4가동 also as 종로1.2.3.4가동 and 종로1234가동,
    창신1동 also as 창신제1동 (the official form), Jung-gu also as "jung gu" and "junggu"."""
    key = _key(name)
    forms = [key]
    if "·" in key:
        forms += [key.replace("·", "."), key.replace("·", ","), key.replace("·", "")]
    numbered = _NUMBERED_DONG.match(key)
    if numbered and not key[0].isdigit():
        forms.append(f"{numbered.group(1)}제{numbered.group(2)}동")
    if key.isascii() and ("-" in key or " " in key):
        forms += [key.replace("-", " "), key.replace("-", "").replace(" ", "")]
    if key.isascii() and "." in key:
        forms.append(key.replace(".", ""))
    return list(dict.fromkeys(form for form in forms if len(form) >= 2))


def _names(value: Any, where: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str | int) for v in value):
        raise GazetteerError(f"{where}: expected a list of names")
    return [str(v) for v in value]


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise GazetteerError(f"{where}: expected a mapping")
    return value


def _items(data: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    value = data.get(key) or []
    if not isinstance(value, list):
        raise GazetteerError(f"{key}: expected a list")
    return [_mapping(item, f"{key}[{at}]") for at, item in enumerate(value)]


def _build(data: Mapping[str, Any]) -> Gazetteer:
    city_data = _mapping(data.get("city"), "city")
    city = str(city_data.get("name") or "").strip()
    if not city:
        raise GazetteerError("city: name missing")
    entries: list[tuple[str, _Entry]] = []

    def add(names: Iterable[str], entry: _Entry) -> None:
        for name in names:
            for spelling in _spellings(name):
                entries.append((spelling, entry))

    city_entry = _Entry(CITY, city, (), bounded=False)
    add([city, *_names(city_data.get("names"), "city.names")], city_entry)
    add(_names(city_data.get("en"), "city.en"), city_entry)

    districts: list[str] = []
    dong_owners: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for at, item in enumerate(_items(data, "districts")):
        where = f"districts[{at}]"
        name = str(item.get("name") or "").strip()
        if not name:
            raise GazetteerError(f"{where}: name missing")
        if name in districts:
            raise GazetteerError(f"{where}: {name} listed twice")
        districts.append(name)
        add([name, *_names(item.get("en"), f"{where}.en")], _Entry(DISTRICT, name, (name,), True))
        bare = _names(item.get("aliases"), f"{where}.aliases")
        bare += _names(item.get("aliases_en"), f"{where}.aliases_en")
        add(bare, _Entry(ALIAS, name, (name,), bounded=True))
        for dong, others in _mapping(item.get("dong") or {}, f"{where}.dong").items():
            dong = str(dong)
            for spelling in [dong, *_names(others, f"{where}.dong.{dong}")]:
                dong_owners[spelling][name].append(dong)
    if not districts:
        raise GazetteerError("districts: none listed")
    known = set(districts)

    for spelling, owners in dong_owners.items():
        labels = tuple(
            (owner, admin[0] if len(set(admin)) == 1 else spelling)
            for owner, admin in owners.items()
        )
        add([spelling], _Entry(DONG, spelling, tuple(owners), bounded=True, labels=labels))

    def places(kind: str, section: str, suffix: str = "") -> None:
        for at, item in enumerate(_items(data, section)):
            where = f"{section}[{at}]"
            name = str(item.get("name") or "").strip()
            if not name:
                raise GazetteerError(f"{where}: name missing")
            areas = tuple(_names(item.get("districts"), f"{where}.districts"))
            unknown = [area for area in areas if area not in known]
            if unknown:
                raise GazetteerError(f"{where} ({name}): unknown district {', '.join(unknown)}")
            shown = f"{name}{suffix}"
            ends = tuple(
                (str(word), str(district))
                for word, district in _mapping(item.get("ends") or {}, f"{where}.ends").items()
            )
            unknown = [district for _, district in ends if district not in known]
            if unknown:
                raise GazetteerError(f"{where} ({name}): unknown district {', '.join(unknown)}")
            entry = _Entry(kind, shown, areas, bounded=kind != STATION, ends=ends)
            if kind == ROAD:
                trunk = item.get("trunk", False)
                if not isinstance(trunk, bool):
                    raise GazetteerError(f"{where} ({name}): trunk must be true or false")
                entry = _Entry(ROAD, name, areas, bounded=True, trunk=trunk)
            spellings = [name, *_names(item.get("aliases"), f"{where}.aliases")]
            english = _names(item.get("en"), f"{where}.en")
            if kind == STATION:
                add([f"{s}{suffix}" for s in spellings], entry)
                for en in english:
                    base = en.lower().removesuffix(" station")
                    add([f"{base} station", f"{base} stn"], entry)
            else:
                add(spellings + english, entry)

    places(STATION, "stations", suffix="역")
    places(LANDMARK, "landmarks")
    places(ROAD, "roads")

    # Other cities: their names; their district names that are not ours; their places.
    district_cities: dict[str, list[str]] = defaultdict(list)
    for at, item in enumerate(_items(data, "other_cities")):
        where = f"other_cities[{at}]"
        name = str(item.get("name") or "").strip()
        if not name:
            raise GazetteerError(f"{where}: name missing")
        spellings = [name, *_names(item.get("aliases"), f"{where}.aliases")]
        for spelling in spellings + _names(item.get("en"), f"{where}.en"):
            # "인천" is a word that may run on ("인천공항"); "인천광역시" is not.
            bounded = not spelling.endswith(("시", "도"))
            add([spelling], _Entry(OTHER_CITY, name, (name,), bounded=bounded))
        for other in _names(item.get("districts"), f"{where}.districts"):
            district_cities[other].append(name)
        add(
            _names(item.get("places"), f"{where}.places"),
            _Entry(OTHER_PLACE, name, (name,), bounded=True),
        )
    for other, cities in district_cities.items():
        if other in known:
            continue  # ours unless a city is named before it: decided by context
        entry = _Entry(
            OTHER_DISTRICT, other, tuple(cities), bounded=False, needs_city=len(cities) > 1
        )
        add([other], entry)

    for word in _names(data.get("not_places"), "not_places"):
        add([word], _Entry(BLOCK, word, (), bounded=False))

    gazetteer = Gazetteer(city, districts, entries)
    counts = gazetteer.counts
    counts["districts"] = len(districts)
    counts["dong"] = sum(
        len(_mapping(d.get("dong") or {}, "dong")) for d in _items(data, "districts")
    )
    for section in ("stations", "landmarks", "roads", "other_cities"):
        counts[section] = len(_items(data, section))
    return gazetteer
