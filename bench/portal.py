"""Portal benchmark (part of `make bench`): the public portal at 1,000,000 cases.

1. seed: a fresh PostgreSQL database (`sotong_portal_bench`, dropped and created again),
   migrated, the Seoul directory loaded, then 1,000,000 cases written with COPY — inbox
   messages (masked `public_text` too), cases, their message links, audit events, answers,
   the public read model (`portal_publiccase`) and the overview's counters (`portal_tally`,
   from `sotong.portal.projection.contributions` and `_received_counts`, the definitions
   `rebuild()` uses). Texts are combined from the real complaint datasets in
   ../shared/data (read here, never copied). Secondary indexes and foreign keys are dropped
   for the COPY and made again after it (which validates the keys); then ANALYZE. A sample
   of cases and one month of counters are checked against what `rebuild()` computes.
2. http: the real server (gunicorn, as bench/run.py starts it) on that database, and an
   asyncio load generator (standard library, keep-alive connections) at 50 concurrent
   clients per scenario: the overview, its live JSON, the case list (first page and page
   1,000 by keyset), searches for a two-syllable, a three-syllable and a no-match term, case
   pages and Open311 `GET requests`. The site runs as it is deployed, with its micro-cache
   (sotong/portal/caching.py: an anonymous page is drawn at most once a second per
   process); answers from the cache carry an `Age` header, and the share of them is
   reported. p50/p95/p99, requests per second, errors; the latency of one client alone,
   as the site runs and uncached (each request with a query string of its own, so each is
   drawn); EXPLAIN ANALYZE of the list and search queries.
3. sqlite: the same public cases in a SQLite file (migrated schema, rows copied from
   PostgreSQL, the FTS5 index rebuilt in bulk) and the same searches in process through
   `case_page`, timed, and checked to give the same first page as PostgreSQL.

Results: bench/results/portal-latest.json and portal-latest.txt; bench/README.md explains
the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import io
import itertools
import json
import math
import os
import random
import re
import subprocess
import sys
import time
from collections import Counter, deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.run import (  # noqa: E402
    CITY_SUFFIXES,
    check_postgres,
    environment,
    free_port,
    fresh_database,
    latency_figures,
    load_average,
    log,
    peak_rss_mb,
    percentile,
    start_server,
    stop_server,
    worker_env,
)

DATA = Path(os.environ.get("SOTONG_SHARED_DATA", ROOT.parent / "shared" / "data"))
RESULTS_DIR = ROOT / "bench" / "results"
WORK_DIR = ROOT / "var" / "bench"
SQLITE_FILE = WORK_DIR / "sotong-portal-bench.sqlite3"
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/sotong_portal_bench"
SEED = 20_250_611
YEARS = 3
BATCH = 5_000  # cases generated, then written to every table, at a time
CHATTER_PER_CASE = 0.3  # messages that open no case (greetings, chatter), per case
CLIENTS = 50
# gunicorn's processes and threads on this 2-core machine: see bench/README.md (Portal).
WORKERS = 2
THREADS = 4
TARGET_P95_MS = 100.0
PAGE_SIZE = 20
DEEP_PAGE = 1_000
TERM_TWO = "주차"  # parking: among the commonest matters
TERM_THREE = "보안등"  # security lights: a frequent, narrower matter
# Each bigram is common, the whole never occurs: the index intersects long lists for
# nothing, which is the slowest kind of search. The first that matches no case is used.
NO_MATCH_CANDIDATES = ("소음주차", "주차악취소음", "누수주차민원", "악취보안등누수")

# --- Texts from ../shared/data ------------------------------------------------------------

CHANNEL_WEIGHTS = {
    "callcenter": 24, "web": 20, "kakao": 14, "x": 8, "facebook": 7, "instagram": 6,
    "sms": 5, "email": 4, "open311": 3, "manual": 2, "threads": 2, "youtube": 1.5,
    "api": 1, "mastodon": 0.5, "bluesky": 0.5,
}  # fmt: skip
HOLD_REASONS = (
    "관계 기관(한국전력공사)과 협의 중입니다.",
    "예산 확보 후 다음 분기에 공사할 예정입니다.",
    "현장 확인을 위해 민원인의 추가 정보를 기다리고 있습니다.",
    "소송이 진행 중이어서 결과가 나온 뒤 처리하겠습니다.",
    "우천으로 공사가 중단되어 재개 일정을 조정 중입니다.",
)
PERSONAL = (" 연락처 010-{a:04d}-{b:04d}", " 답변은 citizen{a}@example.com 으로 주세요")
_SENTENCE = re.compile(r"(?<=[.!?다요])\s+|\n+")


@dataclass(frozen=True)
class Title:
    """An opening sentence and what the rules make of it."""

    text: str
    category: str | None
    district: str | None


@dataclass
class Corpus:
    titles: list[Title]
    by_category: dict[str, list[Title]]
    sentences: list[str]
    answers: list[str]
    chatter: list[str]


def read_jsonl(name: str) -> Iterator[dict[str, Any]]:
    path = DATA / name / "train.jsonl"
    if not path.exists():
        raise SystemExit(f"{path} is absent: the shared datasets live beside the repository")
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                yield json.loads(line)


def one_line(text: str) -> str:
    return " ".join(text.split())


def load_corpus() -> Corpus:
    """Opening sentences (complaint titles), body sentences, real answers and chatter;
    each title sorted into a category by the rule triage (needs Django)."""
    from sotong.triage.rules import triage_text
    from sotong.triage.services import current_rules

    rules = current_rules().rules
    raw_titles: list[str] = []
    sentences: list[str] = []
    answers: list[str] = []
    for row in read_jsonl("incheon-junggu-minwon"):
        raw_titles.append(row["title"])
        sentences += _SENTENCE.split(row["text"])
        answers.append(row["answer"])
    raw_titles += [row["text"] for row in read_jsonl("ongjin-complaint-titles")]
    for row in read_jsonl("epeople-qna-titles"):
        if row.get("agency_type") == "local_government" or row.get("sentence_like"):
            raw_titles.append(row["text"])
        if row.get("answer"):
            answers.append(row["answer"])
    for row in read_jsonl("seoul-democracy-proposals"):
        raw_titles.append(row["title"])
        sentences += _SENTENCE.split(row["text"])[1:4]
    titles = []
    for text in dict.fromkeys(one_line(t) for t in raw_titles if 4 <= len(t.strip()) <= 120):
        outcome = triage_text(text, rules)
        titles.append(Title(text, outcome.category, outcome.district))
    by_category: dict[str, list[Title]] = {}
    for title in titles:
        if title.category:
            by_category.setdefault(title.category, []).append(title)
    chatter = [row["text"] for row in itertools.islice(read_jsonl("korean-chatter"), 20_000)]
    return Corpus(
        titles=titles,
        by_category=by_category,
        sentences=[one_line(s) for s in dict.fromkeys(sentences) if 8 <= len(s.strip()) <= 140],
        answers=[a.strip() for a in answers if 40 <= len(a.strip()) <= 1_500],
        chatter=[one_line(c) for c in chatter if c.strip()],
    )


# --- Generating cases (pure Python, streamed) ----------------------------------------------


@dataclass
class Directory:
    """The ids and properties the generator needs, read once from the loaded directory."""

    channels: list[tuple[int, float]]  # (id, weight)
    accounts: dict[int, int]  # channel id -> an account of it
    categories: dict[str, tuple[int, int, bool, str]]  # code -> (id, owner, district, type)
    case_types: dict[str, Any]  # code -> CaseType
    district_units: dict[str, int]  # district name -> unit id
    dong: dict[str, list[str]]  # district name -> neighbourhood names
    unit_ids: list[int]
    officers: dict[int, int]  # unit id -> officer id
    phones: dict[int, str]  # unit id -> public phone


def read_directory() -> Directory:
    import yaml

    from sotong.directory.loading import DEFAULT_DIRECTORY
    from sotong.directory.models import Account, CaseType, Category, Channel, Officer, Unit

    channels = [(c.pk, CHANNEL_WEIGHTS.get(c.code, 0.5)) for c in Channel.objects.order_by("pk")]
    accounts: dict[int, int] = {}
    for account in Account.objects.order_by("pk"):
        accounts.setdefault(account.channel_id, account.pk)
    categories = {
        c.code: (c.pk, c.owner_id, c.district_matter, c.case_type.code)
        for c in Category.objects.select_related("case_type")
    }
    units = list(Unit.objects.order_by("pk"))
    if not Officer.objects.filter(username__startswith="bench-").exists():
        officers = []
        for unit in units:
            officer = Officer(username=f"bench-{unit.code}", role=Officer.Role.OFFICER, unit=unit)
            officer.set_unusable_password()
            officers.append(officer)
        Officer.objects.bulk_create(officers)
    gazetteer = yaml.safe_load((DEFAULT_DIRECTORY / "gazetteer.yaml").read_text(encoding="utf-8"))
    dong = {
        d["name"]: [n for base, others in (d.get("dong") or {}).items() for n in [base, *others]]
        for d in gazetteer["districts"]
    }
    return Directory(
        channels=channels,
        accounts=accounts,
        categories=categories,
        case_types={t.code: t for t in CaseType.objects.all()},
        district_units={u.district_name: u.pk for u in units if u.district_name},
        dong=dong,
        unit_ids=[u.pk for u in units],
        officers=dict(
            Officer.objects.filter(username__startswith="bench-").values_list("unit_id", "pk")
        ),
        phones={u.pk: u.phone for u in units},
    )


class Text:
    """A text made of pieces joined by spaces, with what the read model needs of it.

    Tokens are computed per piece and cached: runs of letters never cross the joining space,
    so the union of the pieces' tokens in order is `index_tokens` of the whole (the check
    against `rebuild()` confirms it on a sample)."""

    _tokens: dict[str, list[str]] = {}

    @classmethod
    def tokens(cls, pieces: Sequence[str]) -> list[str]:
        from sotong.lib.search_text import index_tokens

        found: dict[str, None] = {}
        for piece in pieces:
            cached = cls._tokens.get(piece)
            if cached is None:
                cached = index_tokens(piece)
                if len(piece) > 12 and len(cls._tokens) < 300_000:
                    # Interned: the same bigrams recur across the cached pieces.
                    cached = cls._tokens[piece] = [sys.intern(t) for t in cached]
            found.update(dict.fromkeys(cached))
        return list(found)


@dataclass(slots=True)
class PublicRow:
    """The fields of a public case that `projection.contributions` reads."""

    opened_at: datetime
    channel_id: int | None
    category_id: int | None
    unit_id: int | None
    district_name: str
    state: str
    answered_on_time: bool
    answered_at: datetime | None


@dataclass(slots=True)
class Seeded:
    """One generated case and everything written for it."""

    id: int
    opened_at: datetime
    channel_id: int
    message_id: int
    text: str
    public_text: str
    text_pieces: list[str]
    category_id: int | None
    case_type: Any
    unit_id: int | None
    district: str
    status: str
    deadline_at: datetime
    remind_at: datetime
    officer_id: int | None = None
    answered_at: datetime | None = None
    closed_at: datetime | None = None
    hold_reason: str = ""
    merged_into: int | None = None
    merged_at: datetime | None = None
    transferred_from: int | None = None
    withdrawn_at: datetime | None = None
    answer: tuple[str, str] | None = None  # (text, public_text)
    answer_pieces: list[str] = field(default_factory=list)
    joined: list[tuple[int, datetime, str, str]] = field(default_factory=list)
    merged_in: list[int] = field(default_factory=list)  # message ids moved here by merges
    deadline_local: str = ""  # the deadline in local time, as the audit trail records it


def copy_field(value: Any) -> str:
    """A value in PostgreSQL's COPY text format."""
    kind = type(value)
    if kind is str:
        if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
            value = value.replace("\\", "\\\\").replace("\t", "\\t")
            return value.replace("\n", "\\n").replace("\r", "\\r")
        return value  # type: ignore[no-any-return]
    if value is None:
        return "\\N"
    if kind is bool:
        return "t" if value else "f"
    if kind is datetime:
        return value.isoformat()  # type: ignore[no-any-return]
    return str(value)


def copy_line(values: Sequence[Any]) -> str:
    return "\t".join(map(copy_field, values)) + "\n"


class Generator:
    """Cases over `YEARS` years up to `now`, in id order (ids follow arrival), batch by batch:
    realistic texts, channels, categories, units, districts and states by age."""

    def __init__(self, corpus: Corpus, directory: Directory, total: int, now: datetime) -> None:
        from django.conf import settings
        from django.utils import timezone

        from sotong.lib.masking import mask_personal_data

        self.corpus = corpus
        self.directory = directory
        self.total = total
        self.now = now
        self.rng = random.Random(SEED)
        self.mask = mask_personal_data
        self.remind_fraction = settings.SOTONG_REMIND_AT_FRACTION
        self.zone = timezone.get_current_timezone()
        self.channel_ids = [c for c, _ in directory.channels]
        self.channel_cum = list(itertools.accumulate(w for _, w in directory.channels))
        counted = Counter(t.category for t in corpus.titles if t.category)
        self.category_codes = sorted(counted)
        self.category_cum = list(itertools.accumulate(counted[c] for c in self.category_codes))
        self.districts = sorted(directory.district_units)
        self.message_id = 0
        self.case_id = 0
        self._answer_cache: dict[tuple[int, str], tuple[str, str, list[str]]] = {}

    # Arrival times: more on weekdays and in office hours, volume growing over the years.
    def days(self) -> Iterator[tuple[date, int]]:
        from django.utils import timezone

        local_now = timezone.localtime(self.now)
        first = local_now.date() - timedelta(days=365 * YEARS)
        span = (local_now.date() - first).days + 1
        rng = random.Random(SEED + 1)
        weights = []
        for i in range(span):
            day = first + timedelta(days=i)
            weight = (0.7 + 0.6 * i / span) * (0.6 if day.weekday() >= 5 else 1.0)
            weight *= rng.uniform(0.85, 1.15)
            if i == span - 1:
                weight *= (local_now.hour * 60 + local_now.minute) / 1440
            weights.append(weight)
        scale = self.total / sum(weights)
        done = 0.0
        given = 0
        for i, weight in enumerate(weights):
            done += weight * scale
            count = round(done) - given
            given += count
            yield first + timedelta(days=i), count

    HOURS = [0.3, 0.2, 0.1, 0.1, 0.1, 0.2, 0.5, 1.2, 2.2, 3.0, 3.2, 3.0, 2.4, 2.8, 3.0, 2.9,
             2.7, 2.3, 1.8, 1.5, 1.3, 1.1, 0.8, 0.5]  # fmt: skip
    _HOUR_CUM = list(itertools.accumulate(HOURS))

    def times(self, day: date, count: int) -> list[datetime]:
        from django.utils import timezone

        start = timezone.make_aware(datetime.combine(day, datetime.min.time()))
        rng = self.rng
        times = []
        for _ in range(count):
            hour = bisect.bisect(self._HOUR_CUM, rng.random() * self._HOUR_CUM[-1])
            at = start + timedelta(hours=min(hour, 23), seconds=rng.randrange(3600))
            times.append(min(at, self.now - timedelta(seconds=rng.randrange(60, 3600))))
        return sorted(t.astimezone(UTC) for t in times)

    def _title(self) -> Title:
        return self.rng.choice(self.corpus.titles)

    def _text(self, title: Title, district: str) -> list[str]:
        rng = self.rng
        pieces = []
        if district and (title.district is None) and rng.random() < 0.6:
            places = self.directory.dong.get(district) or [district]
            pieces.append(f"{district} {rng.choice(places)}")
        pieces.append(title.text)
        roll = rng.random()
        if roll < 0.35:
            pieces += rng.sample(self.corpus.sentences, 1 if roll < 0.2 else 2)
        elif roll < 0.42:
            pieces += rng.sample(self.corpus.sentences, 4)
        suffix = rng.choice(CITY_SUFFIXES).format(n=rng.randint(1, 99_999), d=rng.randint(2, 30))
        if suffix.strip():
            pieces.append(suffix.strip())
        if rng.random() < 0.015:
            pieces.append(
                rng.choice(PERSONAL)
                .format(a=rng.randrange(10_000), b=rng.randrange(10_000))
                .strip()
            )
        return pieces

    def _answer(self, district: str) -> tuple[str, str, list[str]]:
        """A real published answer, about the case's district instead of Incheon's 중구."""
        index = self.rng.randrange(len(self.corpus.answers))
        key = (index, district)
        cached = self._answer_cache.get(key)
        if cached is None:
            text = self.corpus.answers[index]
            if district:
                text = text.replace("중구", district)
            public = self.mask(text)
            cached = self._answer_cache[key] = (text, public, [public])
        return cached

    def _case(self, opened_at: datetime) -> Seeded:
        from sotong.cases.workflow import CaseStatus
        from sotong.lib.business_days import DeadlineUnit, compute_deadline

        rng = self.rng
        directory = self.directory
        title = self._title()
        code = title.category
        if code is None and rng.random() < 0.92:
            code = self.category_codes[
                bisect.bisect(self.category_cum, rng.random() * self.category_cum[-1])
            ]
        district = title.district or ""
        if not district and rng.random() < 0.8:
            district = rng.choice(self.districts)
        if district not in directory.district_units:
            district = ""
        pieces = self._text(title, district)
        text = " ".join(pieces)
        public_text = self.mask(text)
        category_id = unit_id = None
        type_code = "request"
        if code is not None:
            category_id, owner, district_matter, type_code = directory.categories[code]
            unit_id = directory.district_units[district] if district_matter and district else owner
        case_type = directory.case_types[type_code]
        deadline = compute_deadline(
            opened_at, case_type.deadline_amount, DeadlineUnit(case_type.deadline_unit)
        )
        self.case_id += 1
        self.message_id += 1
        channel_id = self.channel_ids[
            bisect.bisect(self.channel_cum, rng.random() * self.channel_cum[-1])
        ]
        case = Seeded(
            id=self.case_id,
            opened_at=opened_at,
            channel_id=channel_id,
            message_id=self.message_id,
            text=text,
            public_text=public_text,
            text_pieces=pieces if public_text == text else [public_text],
            category_id=category_id,
            case_type=case_type,
            unit_id=unit_id,
            district=district,
            status=CaseStatus.NEW if unit_id is None else CaseStatus.UNIT,
            deadline_at=deadline,
            remind_at=opened_at + (deadline - opened_at) * self.remind_fraction,
            deadline_local=deadline.astimezone(self.zone).isoformat(),
        )
        if unit_id is not None and rng.random() < 0.07:
            case.transferred_from = rng.choice([u for u in directory.unit_ids if u != unit_id])
        self._progress(case)
        if rng.random() < 0.003:
            case.withdrawn_at = min(opened_at + timedelta(hours=rng.uniform(1, 72)), self.now)
        if rng.random() < 0.04:
            for _ in range(rng.choice((1, 1, 2))):
                at = opened_at + timedelta(minutes=rng.uniform(5, 4_000))
                if at < self.now:
                    other = rng.choice(self.corpus.by_category.get(code or "", self.corpus.titles))
                    joined_text = " ".join(self._text(other, district))
                    self.message_id += 1
                    case.joined.append((self.message_id, at, joined_text, self.mask(joined_text)))
        return case

    def _progress(self, case: Seeded) -> None:
        """Where the case stands now, by its age: most answered within days."""
        from sotong.cases.workflow import CaseStatus

        rng = self.rng
        if case.unit_id is None:
            return
        case.officer_id = self.directory.officers.get(case.unit_id)
        delay = timedelta(hours=rng.lognormvariate(math.log(30), 0.9))
        answered_at = case.opened_at + delay
        never = rng.random() < 0.03  # stuck: on hold or overdue for good
        if not never and answered_at <= self.now:
            case.answered_at = answered_at
            text, public, pieces = self._answer(case.district)
            case.answer = (text, public)
            case.answer_pieces = pieces
            closed_at = answered_at + timedelta(days=rng.uniform(1, 10))
            if closed_at <= self.now and rng.random() < 0.6:
                case.status, case.closed_at = CaseStatus.CLOSED, closed_at
            else:
                case.status = CaseStatus.PUBLISHED
            return
        age = self.now - case.opened_at
        if (never and rng.random() < 0.4) or (age > timedelta(days=1) and rng.random() < 0.05):
            case.status = CaseStatus.ON_HOLD
            case.hold_reason = rng.choice(HOLD_REASONS)
            return
        case.status = rng.choice(
            (CaseStatus.UNIT, CaseStatus.OFFICER, CaseStatus.OFFICER, CaseStatus.DRAFTED,
             CaseStatus.APPROVED)
        )  # fmt: skip
        if case.status == CaseStatus.UNIT:
            case.officer_id = None

    def batches(self) -> Iterator[tuple[list[Seeded], list[tuple[int, int, datetime, str]]]]:
        """Cases in batches of about BATCH, with the chatter messages (no case) of the same
        days: (message id, channel id, received at, text)."""
        cases: list[Seeded] = []
        chatter: list[tuple[int, int, datetime, str]] = []
        for day, count in self.days():
            for opened_at in self.times(day, count):
                cases.append(self._case(opened_at))
            for at in self.times(day, round(count * CHATTER_PER_CASE)):
                self.message_id += 1
                channel = self.channel_ids[
                    bisect.bisect(self.channel_cum, self.rng.random() * self.channel_cum[-1])
                ]
                chatter.append((self.message_id, channel, at, self.rng.choice(self.corpus.chatter)))
            if len(cases) >= BATCH:
                self._merge(cases)
                yield cases, chatter
                cases, chatter = [], []
        if cases or chatter:
            self._merge(cases)
            yield cases, chatter

    def _merge(self, cases: list[Seeded]) -> None:
        """About 2% of open cases turn out to repeat an earlier open one of the same batch
        and category: merged into it, their message moving along (as `merge_case` does)."""
        from sotong.cases.workflow import ANSWERED_STATES, CaseStatus

        rng = self.rng
        recent: dict[int | None, deque[Seeded]] = {}
        for case in cases:
            earlier = recent.setdefault(case.category_id, deque(maxlen=50))
            if (
                earlier
                and case.unit_id is not None
                and case.status not in ANSWERED_STATES
                and rng.random() < 0.35
            ):
                target = rng.choice(earlier)
                at = case.opened_at + timedelta(hours=rng.uniform(0.5, 20))
                if at < self.now:
                    case.status = CaseStatus.MERGED
                    case.merged_into = target.id
                    case.merged_at = at
                    case.hold_reason = ""
                    target.merged_in.append(case.message_id)
                    continue
            if case.status != CaseStatus.MERGED:
                earlier.append(case)


# --- Rows for each table --------------------------------------------------------------------

MESSAGE_COLUMNS = (
    "id", "channel_id", "account_id", "external_id", "author_handle", "text", "public_text",
    "sent_at", "received_at", "attachments", "in_reply_to", "raw_payload", "withdrawn_at",
    "triage_state",
)  # fmt: skip
CASE_COLUMNS = (
    "id", "status", "case_type_id", "category_id", "unit_id", "officer_id", "district_name",
    "urgent", "opened_at", "deadline_at", "remind_at", "answered_at", "closed_at",
    "hold_reason", "merged_into_id", "reminded_at", "escalated_at",
)  # fmt: skip
LINK_COLUMNS = ("id", "case_id", "message_id", "role", "linked_at")
AUDIT_COLUMNS = (
    "id", "case_id", "action", "actor_id", "actor_label", "at", "before", "after", "note",
)  # fmt: skip
ANSWER_COLUMNS = (
    "id", "case_id", "text", "public_text", "author_id", "created_at", "updated_at",
    "guideline_report", "override_reason", "approved_by_id", "approved_at", "published_at",
)  # fmt: skip
PUBLIC_COLUMNS = (
    "case_id", "state", "status", "channel_id", "category_id", "unit_id", "district_name",
    "opened_at", "deadline_at", "answered_at", "answered_on_time", "updated_at", "text",
    "withdrawn", "answer_text", "hold_reason", "merged_into_id", "reports", "search_text",
    "search_tokens",
)  # fmt: skip
TALLY_COLUMNS = ("id", "period", "day", "dimension", "key", "measure", "count")


def _json(value: int | None) -> str:
    return "null" if value is None else str(value)


def snapshot_json(case: Seeded, status: str, unit_id: int | None, officer_id: int | None) -> str:
    """What `services.snapshot` records, as JSON (written out: a million json.dumps
    calls would be a good part of the seeding time)."""
    hold = json.dumps(case.hold_reason if status == "on_hold" else "", ensure_ascii=False)
    merged = _json(case.merged_into if status == "merged" else None)
    return (
        f'{{"status": "{status}", "unit": {_json(unit_id)}, "officer": {_json(officer_id)}, '
        f'"category": {_json(case.category_id)}, "case_type": {case.case_type.pk}, '
        f'"deadline_at": "{case.deadline_local}", "merged_into": {merged}, '
        f'"hold_reason": {hold}}}'
    )


class RowWriter:
    """Turns generated cases into COPY lines for every table, and their public rows."""

    def __init__(self, directory: Directory, now: datetime) -> None:
        self.directory = directory
        self.now = now
        self.link_id = 0
        self.audit_id = 0
        self.answer_id = 0
        self.text_of: dict[int, tuple[str, list[str], bool, int]] = {}

    def messages(self, cases: list[Seeded], chatter: list[tuple[int, int, datetime, str]]) -> str:
        from sotong.lib.masking import mask_personal_data

        out = []
        accounts = self.directory.accounts
        for case in cases:
            out.append(
                copy_line((
                    case.message_id, case.channel_id, accounts.get(case.channel_id),
                    f"bench-{case.message_id}", f"citizen{case.message_id % 50_000}",
                    case.text, case.public_text, case.opened_at, case.opened_at, "[]", "",
                    None, case.withdrawn_at, "done",
                ))
            )  # fmt: skip
            for message_id, at, text, public in case.joined:
                out.append(
                    copy_line((
                        message_id, case.channel_id, accounts.get(case.channel_id),
                        f"bench-{message_id}", f"citizen{message_id % 50_000}", text, public,
                        at, at, "[]", "", None, None, "done",
                    ))
                )  # fmt: skip
        for message_id, channel_id, at, text in chatter:
            out.append(
                copy_line((
                    message_id, channel_id, accounts.get(channel_id), f"bench-{message_id}",
                    f"someone{message_id % 80_000}", text, mask_personal_data(text), at, at,
                    "[]", "", None, None, "done",
                ))
            )  # fmt: skip
        return "".join(out)

    def cases(self, cases: list[Seeded]) -> str:
        return "".join(
            copy_line((
                c.id, c.status, c.case_type.pk, c.category_id, c.unit_id, c.officer_id,
                c.district, c.case_type.urgent, c.opened_at, c.deadline_at, c.remind_at,
                c.answered_at, c.closed_at, c.hold_reason, c.merged_into, None, None,
            ))
            for c in cases
        )  # fmt: skip

    def links(self, cases: list[Seeded]) -> str:
        out = []
        for case in cases:
            if case.merged_into is not None:
                continue  # its message moved to the case it was merged into (below)
            self.link_id += 1
            out.append(
                copy_line((self.link_id, case.id, case.message_id, "opened", case.opened_at))
            )
            for message_id, at, _, _ in case.joined:
                self.link_id += 1
                out.append(copy_line((self.link_id, case.id, message_id, "joined", at)))
        merged = {c.message_id: c for c in cases if c.merged_into is not None}
        for case in cases:
            for message_id in case.merged_in:
                source = merged[message_id]
                self.link_id += 1
                out.append(
                    copy_line((self.link_id, case.id, message_id, "joined", source.merged_at))
                )
                for joined_id, _, _, _ in source.joined:
                    self.link_id += 1
                    out.append(
                        copy_line((self.link_id, case.id, joined_id, "joined", source.merged_at))
                    )
        return "".join(out)

    def _event(self, case: Seeded, action: str, at: datetime, actor: int | None,
               before: str, after: str, note: str = "") -> str:  # fmt: skip
        self.audit_id += 1
        label = "triage" if actor is None else f"officer{actor}"
        return copy_line(
            (self.audit_id, case.id, action, actor, label, min(at, self.now), before, after, note)
        )

    def audit(self, cases: list[Seeded]) -> str:
        out = []
        for c in cases:
            first_unit = c.transferred_from or c.unit_id
            opened = snapshot_json(c, "unit" if first_unit else "new", first_unit, None)
            out.append(
                self._event(c, "open", c.opened_at + timedelta(seconds=2), None, "{}", opened)
            )
            at = c.opened_at + timedelta(minutes=40)
            state = opened
            if c.transferred_from:
                moved = snapshot_json(c, "unit", c.unit_id, None)
                note = "담당 부서가 아니어서 이관합니다."
                out.append(self._event(c, "transfer", at, None, state, moved, note))
                state, at = moved, at + timedelta(minutes=30)
            for message_id, joined_at, _, _ in c.joined:
                after = json.dumps({"message": message_id})
                out.append(self._event(c, "join", joined_at, None, "{}", after))
            if c.officer_id:
                assigned = snapshot_json(c, "officer", c.unit_id, c.officer_id)
                out.append(self._event(c, "assign_officer", at, c.officer_id, state, assigned))
                state = assigned
            if c.status == "on_hold":
                held = snapshot_json(c, "on_hold", c.unit_id, c.officer_id)
                hold_at = c.opened_at + timedelta(days=1)
                out.append(
                    self._event(c, "hold", hold_at, c.officer_id, state, held, c.hold_reason)
                )
            elif c.status == "merged":
                merged = snapshot_json(c, "merged", c.unit_id, c.officer_id)
                note = f"merged into S{c.merged_into:07d}"
                out.append(self._event(c, "merge", c.merged_at, c.officer_id, state, merged, note))  # type: ignore[arg-type]
            elif c.answered_at is not None:
                published = snapshot_json(c, "published", c.unit_id, c.officer_id)
                out.append(self._event(c, "publish", c.answered_at, c.officer_id, state, published))
                if c.closed_at is not None:
                    closed = snapshot_json(c, "closed", c.unit_id, c.officer_id)
                    out.append(
                        self._event(c, "close", c.closed_at, c.officer_id, published, closed)
                    )
            for _ in c.merged_in:
                same = snapshot_json(c, c.status, c.unit_id, c.officer_id)
                out.append(
                    self._event(c, "join", c.opened_at + timedelta(hours=20), c.officer_id,
                                same, same, "merged into this case")
                )  # fmt: skip
        return "".join(out)

    def answers(self, cases: list[Seeded]) -> str:
        out = []
        fallback = next(iter(self.directory.officers.values()))
        for c in cases:
            if c.answer is None or c.answered_at is None:
                continue
            self.answer_id += 1
            author = c.officer_id or self.directory.officers.get(c.unit_id or 0, fallback)
            out.append(
                copy_line((
                    self.answer_id, c.id, c.answer[0], c.answer[1], author,
                    c.answered_at - timedelta(hours=1), c.answered_at, "{}", "", None, None,
                    c.answered_at,
                ))
            )  # fmt: skip
        return "".join(out)

    def public(self, cases: list[Seeded]) -> tuple[str, list[PublicRow]]:
        """The rows `projection._build_rows` would make, and what the counters need."""
        from sotong.cases.workflow import ANSWERED_STATES
        from sotong.lib.search_text import normalize
        from sotong.portal.projection import public_state

        out, rows = [], []
        for c in cases:
            withdrawn = c.withdrawn_at is not None
            text = "" if withdrawn else c.public_text
            pieces = [] if withdrawn else c.text_pieces
            answered = c.status in ANSWERED_STATES and c.answered_at is not None
            answer_text = c.answer[1] if answered and c.answer else ""
            tokens = Text.tokens(pieces + (c.answer_pieces if answer_text else []))
            state = public_state(c, self.now)  # type: ignore[arg-type]
            on_time = bool(answered and c.answered_at <= c.deadline_at)  # type: ignore[operator]
            reports = 0 if c.merged_into else 1 + len(c.joined)
            reports += sum(1 + len(self._joined_of.get(m, ())) for m in c.merged_in)
            out.append(
                copy_line((
                    c.id, state, c.status, c.channel_id, c.category_id, c.unit_id, c.district,
                    c.opened_at, c.deadline_at, c.answered_at if answered else None, on_time,
                    self.now, text, withdrawn, answer_text,
                    c.hold_reason if c.status == "on_hold" else "", c.merged_into,
                    max(1, reports), normalize(f"{text}\n{answer_text}"), " ".join(tokens),
                ))
            )  # fmt: skip
            rows.append(
                PublicRow(
                    c.opened_at, c.channel_id, c.category_id, c.unit_id, c.district, state,
                    on_time, c.answered_at if answered else None,
                )
            )  # fmt: skip
        return "".join(out), rows

    _joined_of: dict[int, list[Any]] = {}

    def remember_joins(self, cases: list[Seeded]) -> None:
        self._joined_of = {c.message_id: c.joined for c in cases if c.merged_into is not None}


# --- Seeding PostgreSQL -----------------------------------------------------------------------


def relation_sizes(cursor: Any, tables: Sequence[str]) -> dict[str, Any]:
    sizes: dict[str, Any] = {}
    for table in tables:
        cursor.execute(
            "SELECT pg_relation_size(%s::regclass), pg_indexes_size(%s::regclass), "
            "pg_total_relation_size(%s::regclass), (SELECT count(*) FROM " + table + ")",
            (table, table, table),
        )
        heap, indexes, total, rows = cursor.fetchone()
        cursor.execute(
            "SELECT indexrelid::regclass::text, pg_relation_size(indexrelid) FROM pg_index "
            "WHERE indrelid = %s::regclass ORDER BY 2 DESC",
            (table,),
        )
        sizes[table] = {
            "rows": rows,
            "table_mb": round(heap / 2**20, 1),
            "indexes_mb": round(indexes / 2**20, 1),
            "total_mb": round(total / 2**20, 1),
            "index_mb": {name: round(size / 2**20, 1) for name, size in cursor.fetchall()},
        }
    return sizes


def drop_secondary(cursor: Any, tables: Sequence[str]) -> list[str]:
    """Drop the foreign keys and the indexes that back no constraint; the statements that
    make them again."""
    cursor.execute(
        "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE contype = 'f' AND conrelid = ANY(%s::regclass[])",
        (list(tables),),
    )
    foreign = cursor.fetchall()
    cursor.execute(
        "SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index i "
        "WHERE indrelid = ANY(%s::regclass[]) AND NOT indisprimary "
        "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)",
        (list(tables),),
    )
    indexes = cursor.fetchall()
    for table, name, _ in foreign:
        cursor.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
    for name, _ in indexes:
        cursor.execute(f"DROP INDEX {name}")
    return [definition for _, definition in indexes] + [
        f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}'
        for table, name, definition in foreign
    ]


def seed(total: int, output: Path) -> None:
    """Worker: migrate, load the directory, COPY `total` cases, rebuild indexes, check."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sotong.settings")
    import django

    django.setup()
    import psycopg
    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone

    from sotong.portal import projection

    url = os.environ["SOTONG_DATABASE_URL"]
    log(f"[seed] migrate, load-directory ({connection.settings_dict['NAME']})")
    call_command("migrate", interactive=False, verbosity=0)
    call_command("load_directory", stdout=io.StringIO())
    now = timezone.now().replace(microsecond=0)
    started = time.perf_counter()
    corpus = load_corpus()
    directory = read_directory()
    prepared = time.perf_counter() - started
    log(
        f"[seed] corpus: {len(corpus.titles):,} titles ({sum(map(len, corpus.by_category.values())):,} "
        f"placed by the rules), {len(corpus.sentences):,} sentences, {len(corpus.answers):,} "
        f"answers, {len(corpus.chatter):,} chatter; {prepared:.1f} s"
    )
    tables = {
        "inbox_message": MESSAGE_COLUMNS,
        "cases_case": CASE_COLUMNS,
        "cases_casemessage": LINK_COLUMNS,
        "cases_auditevent": AUDIT_COLUMNS,
        "cases_answer": ANSWER_COLUMNS,
        "portal_publiccase": PUBLIC_COLUMNS,
    }
    connection.close()
    admin = psycopg.connect(url, autocommit=True)
    recreate = drop_secondary(admin.cursor(), [*tables, "portal_tally"])
    generator = Generator(corpus, directory, total, now)
    writer = RowWriter(directory, now)
    counts: Counter[Any] = Counter()
    codes = projection._Codes()
    clock = {"generate": 0.0, "copy_wait": 0.0, "counters": 0.0}
    copy_started = time.perf_counter()
    cpu_started = time.process_time()
    written = 0
    # One connection and one COPY per table, all open at once, fed batch by batch.
    with contextlib.ExitStack() as stack:
        copies = {}
        for table, columns in tables.items():
            conn = stack.enter_context(psycopg.connect(url))
            cursor = stack.enter_context(conn.cursor())
            copies[table] = stack.enter_context(
                cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN")
            )
        mark = time.perf_counter()
        for cases, chatter in generator.batches():
            writer.remember_joins(cases)
            public, rows = writer.public(cases)
            chunks = {
                "inbox_message": writer.messages(cases, chatter),
                "cases_case": writer.cases(cases),
                "cases_casemessage": writer.links(cases),
                "cases_auditevent": writer.audit(cases),
                "cases_answer": writer.answers(cases),
                "portal_publiccase": public,
            }
            now_mark = time.perf_counter()
            clock["generate"] += now_mark - mark
            for row in rows:
                counts.update(projection.contributions(row, codes))  # type: ignore[arg-type]
            mark = time.perf_counter()
            clock["counters"] += mark - now_mark
            for table, chunk in chunks.items():
                copies[table].write(chunk)
            now_mark = time.perf_counter()
            clock["copy_wait"] += now_mark - mark
            mark = now_mark
            written += len(cases)
            if written // 100_000 != (written - len(cases)) // 100_000:
                log(f"[seed]   {written:,} cases, {time.perf_counter() - copy_started:.0f} s")
    copy_seconds = time.perf_counter() - copy_started
    copy_cpu = time.process_time() - cpu_started
    log(f"[seed] {written:,} cases copied in {copy_seconds:.1f} s; counters")

    # The counters: received messages by the projection's own query, then the cases'
    # contributions summed above; written with COPY too.
    mark = time.perf_counter()
    counts.update(projection._received_counts())
    connection.close()
    tally_copy = f"COPY portal_tally ({', '.join(TALLY_COLUMNS)}) FROM STDIN"
    with psycopg.connect(url) as conn, conn.cursor() as cursor, cursor.copy(tally_copy) as copy:
        lines = (
            copy_line((i, *key, n))
            for i, (key, n) in enumerate(sorted(counts.items()), start=1)
            if n
        )
        for chunk in iter(lambda: "".join(itertools.islice(lines, 50_000)), ""):
            copy.write(chunk)
    tally_seconds = time.perf_counter() - mark + clock["counters"]

    log(f"[seed] indexes and foreign keys ({len(recreate)} statements), ANALYZE")
    mark = time.perf_counter()
    index_times = {}
    cursor = admin.cursor()
    cursor.execute("SET maintenance_work_mem = '1GB'")
    for statement in recreate:
        began = time.perf_counter()
        cursor.execute(statement)
        index_times[statement[:90]] = round(time.perf_counter() - began, 1)
    for table in [t for t in [*tables, "portal_tally"] if "id" in tables.get(t, ("id",))]:
        cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", (table,))
        sequence = cursor.fetchone()[0]
        if sequence:
            cursor.execute(f"SELECT setval('{sequence}', (SELECT max(id) FROM {table}))")
    index_seconds = time.perf_counter() - mark
    mark = time.perf_counter()
    cursor.execute("VACUUM ANALYZE")
    analyze_seconds = time.perf_counter() - mark
    total_seconds = time.perf_counter() - started
    sizes = relation_sizes(cursor, [*tables, "portal_tally"])
    cursor.execute("SELECT pg_database_size(current_database())")
    database_mb = round(cursor.fetchone()[0] / 2**20, 1)
    admin.close()
    log(f"[seed] done in {total_seconds:.0f} s; database {database_mb:,.0f} MB; checking")
    check = check_against_rebuild(now)
    result = {
        "cases": written,
        "messages": sizes["inbox_message"]["rows"],
        "now": now.isoformat(),
        "seconds": {
            "total": round(total_seconds, 1),
            "corpus_and_directory": round(prepared, 1),
            "copy": round(copy_seconds, 1),
            "copy_generate_python": round(clock["generate"], 1),
            "copy_waiting_for_postgres": round(clock["copy_wait"], 1),
            "counters": round(tally_seconds, 1),
            "indexes_and_foreign_keys": round(index_seconds, 1),
            "vacuum_analyze": round(analyze_seconds, 1),
        },
        "copy_cpu_seconds_python": round(copy_cpu, 1),
        "index_seconds": index_times,
        "tally_rows": sum(1 for n in counts.values() if n),
        "database_mb": database_mb,
        "sizes": sizes,
        "peak_rss_mb": peak_rss_mb(),
        "check_against_rebuild": check,
        "corpus": {
            "titles": len(corpus.titles),
            "titles_placed_by_rules": sum(map(len, corpus.by_category.values())),
            "sentences": len(corpus.sentences),
            "answers": len(corpus.answers),
        },
    }
    output.write_text(json.dumps(result, indent=2, ensure_ascii=False))


def check_against_rebuild(now: datetime) -> dict[str, Any]:
    """Compare seeded public rows and one month's counters with what `rebuild()` computes
    from the cases, messages and answers (its `_build_rows`, `contributions` and
    `_received_counts`)."""
    from django.db.models import Max
    from django.utils import timezone

    from sotong.cases.models import Case
    from sotong.portal import projection
    from sotong.portal.models import PublicCase, Tally

    rng = random.Random(SEED + 5)
    top = Case.objects.aggregate(Max("pk"))["pk__max"] or 0
    sample = sorted(rng.sample(range(1, top + 1), min(2_000, top)))
    fields = [f.attname for f in PublicCase._meta.concrete_fields if f.attname != "updated_at"]
    seeded = {row.case_id: row for row in PublicCase.objects.filter(case_id__in=sample)}
    previous = {k: v for k, v in seeded.items() if v.status == "merged"}
    built = projection._build_rows(list(Case.objects.filter(pk__in=sample)), previous)
    differences = []
    for row in built:
        old = seeded[row.case_id]
        for name in fields:
            if getattr(row, name) != getattr(old, name):
                differences.append(f"{row.case_id}.{name}")
    # One whole month, a year ago: the counters of every day in it and of the month.
    local_now = timezone.localtime(now)
    month = date(local_now.year - 1, local_now.month, 1)
    after = date(month.year + (month.month == 12), month.month % 12 + 1, 1)
    cases = list(
        Case.objects.filter(
            opened_at__gte=timezone.make_aware(datetime.combine(month, datetime.min.time())),
            opened_at__lt=timezone.make_aware(datetime.combine(after, datetime.min.time())),
        ).order_by("pk")
    )
    merged = {
        row.case_id: row
        for row in PublicCase.objects.filter(case_id__in=[c.pk for c in cases], status="merged")
    }
    codes = projection._Codes()
    expected: Counter[Any] = Counter()
    for start in range(0, len(cases), 2_000):
        for row in projection._build_rows(cases[start : start + 2_000], merged):
            expected.update(projection.contributions(row, codes))
    for key, n in projection._received_counts().items():
        if month <= key[1] < after:
            expected[key] += n
    stored = Counter(
        {
            (t.period, t.day, t.dimension, t.key, t.measure): t.count
            for t in Tally.objects.filter(day__gte=month, day__lt=after)
        }
    )
    expected = Counter({k: n for k, n in expected.items() if n})
    counter_differences = [str(k) for k in set(expected) | set(stored) if expected[k] != stored[k]]
    return {
        "sample_cases": len(sample),
        "rows_differing": sorted(set(d.split(".")[0] for d in differences))[:20],
        "fields_differing": sorted(Counter(d.split(".")[1] for d in differences).items()),
        "month": month.isoformat(),
        "month_cases": len(cases),
        "counters_compared": len(set(expected) | set(stored)),
        "counters_differing": counter_differences[:20],
        "agrees": not differences and not counter_differences,
    }


# --- The load generator -----------------------------------------------------------------------


@dataclass
class Scenario:
    name: str
    what: str
    paths: list[str]


class HttpClient:
    """One keep-alive HTTP/1.1 connection (asyncio streams), reading Content-Length and
    chunked bodies; reconnects when the server closes."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def _connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)

    async def get(self, path: str) -> tuple[int, int, bool]:
        """Status, body size, and whether the answer came from a cache (an Age header)."""
        for attempt in (1, 2):
            if self.writer is None:
                await self._connect()
            assert self.reader is not None and self.writer is not None
            try:
                self.writer.write(
                    f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept-Language: ko\r\n"
                    "Connection: keep-alive\r\n\r\n".encode()
                )
                return await self._response()
            except (ConnectionError, asyncio.IncompleteReadError):
                self.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def _response(self) -> tuple[int, int, bool]:
        assert self.reader is not None
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        size = 0
        if "content-length" in headers:
            size = int(headers["content-length"])
            await self.reader.readexactly(size)
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            while True:
                chunk = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                await self.reader.readexactly(chunk + 2)
                size += chunk
                if chunk == 0:
                    break
        if headers.get("connection", "").lower() == "close":
            self.close()
        return status, size, "age" in headers

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def _load(port: int, paths: list[str], clients: int, warmup: float, seconds: float) -> dict[str, Any]:  # fmt: skip
    """`clients` connections each asking one request after another (no pause) for
    `warmup` + `seconds`; only answers that finish in the measured window count."""
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    sizes: list[int] = []
    from_cache = 0
    loop = asyncio.get_running_loop()
    begin = loop.time()
    measure_from = begin + warmup
    end = measure_from + seconds

    async def client(index: int) -> None:
        nonlocal from_cache
        connection = HttpClient(port)
        cycle = itertools.cycle(paths[index::clients] or paths)
        try:
            while loop.time() < end:
                path = next(cycle)
                started = time.perf_counter()
                sent_at = loop.time()
                try:
                    status, size, cached = await connection.get(path)
                except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                    if sent_at >= measure_from:
                        errors[type(exc).__name__] += 1
                    await asyncio.sleep(0.05)
                    continue
                elapsed = time.perf_counter() - started
                if sent_at >= measure_from and loop.time() <= end:
                    latencies.append(elapsed)
                    sizes.append(size)
                    from_cache += cached
                    if status != 200:
                        errors[str(status)] += 1
        finally:
            connection.close()

    cpu = time.process_time()
    await asyncio.gather(*(client(i) for i in range(clients)))
    cpu = time.process_time() - cpu
    figures = latency_figures(latencies, seconds)
    if latencies:
        ordered = sorted(x * 1000 for x in latencies)
        figures["p95_ms"] = percentile(ordered, 95)
        figures["bytes_mean"] = round(sum(sizes) / len(sizes))
    figures["from_cache_share"] = round(from_cache / len(latencies), 3) if latencies else 0
    figures["errors"] = sum(errors.values())
    figures["error_kinds"] = dict(errors)
    figures["client_cpu_share"] = round(cpu / (warmup + seconds), 3)
    return figures


def uncached(paths: list[str], count: int = 5_000) -> list[str]:
    """The paths, each time with a query parameter of its own that the views ignore: every
    request misses the micro-cache and is drawn."""
    return [
        f"{path}{'&' if '?' in path else '?'}bench={n}"
        for n, path in zip(range(count), itertools.cycle(paths), strict=False)
    ]


def run_load(port: int, scenario: Scenario, warmup: float, seconds: float) -> dict[str, Any]:
    many = asyncio.run(_load(port, scenario.paths, CLIENTS, warmup, seconds))
    alone = asyncio.run(_load(port, scenario.paths, 1, 1.0, min(4.0, seconds)))
    drawn = asyncio.run(_load(port, uncached(scenario.paths), 1, 1.0, min(4.0, seconds)))
    keys = ("calls", "p50_ms", "p95_ms", "p99_ms", "errors", "from_cache_share")
    return {
        "what": scenario.what,
        "path": scenario.paths[0] if len(scenario.paths) == 1 else f"{scenario.paths[0]} …",
        "clients": CLIENTS,
        **many,
        "one_client": {k: alone.get(k) for k in keys},
        "one_client_uncached": {k: drawn.get(k) for k in keys},
    }


def scenarios(cursor: Any, terms: dict[str, str], total: int) -> list[Scenario]:
    cursor.execute(
        "SELECT case_id FROM portal_publiccase ORDER BY case_id DESC OFFSET %s LIMIT 1",
        (PAGE_SIZE * (DEEP_PAGE - 1) - 1,),
    )
    row = cursor.fetchone()
    deep = row[0] if row else 1
    rng = random.Random(SEED + 9)
    numbers = [f"/cases/S{rng.randint(1, total):07d}/" for _ in range(5_000)]
    return [
        Scenario("overview", "the live overview page", ["/"]),
        Scenario("overview_json", "the overview's live JSON", ["/live/overview.json"]),
        Scenario("list_first", "case list, first page", ["/cases/"]),
        Scenario(
            "list_page_1000",
            f"case list, page {DEEP_PAGE:,} (keyset before={deep})",
            [f"/cases/?before={deep}"],
        ),
        Scenario(
            "search_two",
            f"search, two syllables ({terms['two']})",
            [f"/cases/?q={quote(terms['two'])}"],
        ),
        Scenario(
            "search_three",
            f"search, three syllables ({terms['three']})",
            [f"/cases/?q={quote(terms['three'])}"],
        ),
        Scenario(
            "search_none",
            f"search, no match ({terms['none']})",
            [f"/cases/?q={quote(terms['none'])}"],
        ),
        Scenario("case_page", "case pages, random existing numbers", numbers),
        Scenario("open311_requests", "Open311 GET requests.json", ["/open311/v2/requests.json"]),
    ]


def term_counts(cursor: Any) -> dict[str, Any]:
    """How many public cases each search term matches (the index, then the substring)."""
    from sotong.lib.search_text import parse_query
    from sotong.portal.search import _tsquery

    found: dict[str, Any] = {}
    for term in (TERM_TWO, TERM_THREE, *NO_MATCH_CANDIDATES):
        terms = parse_query(term)
        cursor.execute(
            "SELECT count(*) FROM portal_publiccase WHERE search_vector @@ %s::tsquery",
            (_tsquery(terms),),
        )
        candidates = cursor.fetchone()[0]
        cursor.execute(
            "SELECT count(*) FROM portal_publiccase WHERE search_vector @@ %s::tsquery "
            "AND search_text LIKE %s",
            (_tsquery(terms), f"%{terms[0].text}%"),
        )
        found[term] = {"index_candidates": candidates, "matches": cursor.fetchone()[0]}
        bigrams = {}
        for token in terms[0].tokens:
            cursor.execute(
                "SELECT count(*) FROM portal_publiccase WHERE search_vector @@ %s::tsquery",
                (f"'{token}'",),
            )
            bigrams[token] = cursor.fetchone()[0]
        found[term]["bigram_rows"] = bigrams
    return found


def in_process_searches(terms: dict[str, str], runs: int) -> dict[str, Any]:
    """`case_page` for each term in this process: timings and the first page's case ids."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from sotong.portal.selectors import CaseFilters, case_page

    results = {}
    for kind, term in terms.items():
        filters = CaseFilters(query=term)
        for _ in range(3):
            page = case_page(filters)
        timings = []
        for _ in range(runs):
            began = time.perf_counter()
            page = case_page(filters)
            timings.append(time.perf_counter() - began)
        ordered = sorted(t * 1000 for t in timings)
        with CaptureQueriesContext(connection) as queries:
            case_page(filters)
        results[kind] = {
            "term": term,
            "runs": runs,
            "p50_ms": percentile(ordered, 50),
            "p95_ms": percentile(ordered, 95),
            "p99_ms": percentile(ordered, 99),
            "first_page": [row.case_id for row in page.cases],
            "queries": [q["sql"] for q in queries.captured_queries],
        }
    return results


def explain(statements: dict[str, str]) -> dict[str, list[str]]:
    from django.db import connection

    plans = {}
    with connection.cursor() as cursor:
        for name, sql in statements.items():
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql)
            plans[name] = [row[0] for row in cursor.fetchall()]
    return plans


def measure_http(
    total: int,
    seconds: float,
    warmup: float,
    output: Path,
    workers: int,
    threads: int,
    only: str | None = None,
) -> None:
    """Worker on the seeded PostgreSQL database: the load scenarios, then the searches in
    process with their plans."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sotong.settings")
    import django

    django.setup()
    from django.db import connection

    with connection.cursor() as cursor:
        counts = term_counts(cursor)
        none = next((t for t in NO_MATCH_CANDIDATES if counts[t]["matches"] == 0), None)
        if none is None:
            raise SystemExit("bench: every no-match candidate matches a case; add another")
        terms = {"two": TERM_TWO, "three": TERM_THREE, "none": none}
        plan = scenarios(cursor, terms, total)
        cursor.execute("SHOW server_version")
        version = cursor.fetchone()[0]
    connection.close()
    port = free_port()
    log_path = WORK_DIR / "gunicorn-portal.log"
    server = start_server(port, log_path, workers=workers, threads=threads, probe="/robots.txt")
    results: dict[str, Any] = {}
    try:
        chosen = set(only.split(",")) if only else None
        for scenario in plan:
            if chosen is not None and scenario.name not in chosen:
                continue
            log(f"[http] {scenario.name}: {CLIENTS} clients, {warmup:g} + {seconds:g} s")
            results[scenario.name] = run_load(port, scenario, warmup, seconds)
            r = results[scenario.name]
            log(
                f"[http]   p50 {r.get('p50_ms')}  p95 {r.get('p95_ms')}  p99 {r.get('p99_ms')} ms, "
                f"{r.get('requests_per_second')} req/s, {r['errors']} errors {r['error_kinds']}"
            )
    finally:
        stop_server(server)
    log("[http] searches in process on PostgreSQL, and their plans")
    searches = in_process_searches(terms, 30)
    deep = next(s for s in plan if s.name == "list_page_1000").paths[0].split("=")[1]
    from django.test.utils import CaptureQueriesContext

    from sotong.portal.selectors import CaseFilters, case_page

    with CaptureQueriesContext(connection) as listing:
        case_page(CaseFilters(), before=int(deep))
    statements = {f"search_{k}": v["queries"][0] for k, v in searches.items() if v["queries"]}
    statements["list_page_1000"] = listing.captured_queries[0]["sql"]
    output.write_text(
        json.dumps(
            {
                "postgres": version,
                "server": f"gunicorn sotong.wsgi --workers {workers} --threads {threads}",
                "micro_cache": "sotong/portal/caching.py: 1 s pages, 0.5 s live JSON, per process",
                "terms": terms,
                "term_counts": counts,
                "scenarios": results,
                "in_process": searches,
                "plans": explain(statements),
            },
            indent=2,
            ensure_ascii=False,
        )
    )


# --- SQLite -------------------------------------------------------------------------------------


def measure_sqlite(postgres_url: str, terms: dict[str, str], expected: dict[str, list[int]],
                   runs: int, output: Path) -> None:  # fmt: skip
    """Worker on a fresh SQLite file: the public cases copied from PostgreSQL, the FTS5 index
    rebuilt at once, then the same searches in process."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sotong.settings")
    import django

    django.setup()
    import psycopg
    from django.core.management import call_command
    from django.db import connection

    log("[sqlite] migrate, load-directory")
    call_command("migrate", interactive=False, verbosity=0)
    call_command("load_directory", stdout=io.StringIO())
    ids = {}
    with connection.cursor() as cursor:
        for table in ("directory_channel", "directory_category", "directory_unit"):
            cursor.execute(f"SELECT code, id FROM {table}")
            ids[table] = dict(cursor.fetchall())
    started = time.perf_counter()
    source = psycopg.connect(postgres_url)
    maps = {}
    with source.cursor() as cursor:
        for table in ids:
            cursor.execute(f"SELECT id, code FROM {table}")
            maps[table] = {pk: ids[table][code] for pk, code in cursor.fetchall()}
    channel, category, unit = (
        maps["directory_channel"], maps["directory_category"], maps["directory_unit"]
    )  # fmt: skip
    connection.ensure_connection()
    raw = connection.connection
    raw.execute("PRAGMA foreign_keys = OFF")
    raw.execute("PRAGMA synchronous = OFF")
    trigger = raw.execute(
        "SELECT sql FROM sqlite_master WHERE name = 'portal_publiccase_fts_insert'"
    ).fetchone()[0]
    raw.execute("DROP TRIGGER portal_publiccase_fts_insert")
    columns = ", ".join(PUBLIC_COLUMNS)
    insert = (
        f"INSERT INTO portal_publiccase ({columns}) VALUES ({', '.join('?' * len(PUBLIC_COLUMNS))})"
    )
    copied = 0
    with source.cursor(name="public") as cursor:
        cursor.itersize = 20_000
        cursor.execute(f"SELECT {columns} FROM portal_publiccase ORDER BY case_id")
        while rows := cursor.fetchmany(50_000):
            batch = []
            for row in rows:
                row = list(row)
                row[3] = channel.get(row[3]) if row[3] else None
                row[4] = category.get(row[4]) if row[4] else None
                row[5] = unit.get(row[5]) if row[5] else None
                for i in (7, 8, 9, 11):
                    if row[i] is not None:
                        row[i] = row[i].astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
                batch.append(row)
            raw.execute("BEGIN")
            raw.executemany(insert, batch)
            raw.execute("COMMIT")
            copied += len(batch)
            if copied % 200_000 == 0:
                log(f"[sqlite]   {copied:,} rows, {time.perf_counter() - started:.0f} s")
    source.close()
    rows_seconds = time.perf_counter() - started
    log(f"[sqlite] {copied:,} rows in {rows_seconds:.0f} s; FTS5 rebuild")
    mark = time.perf_counter()
    raw.execute("INSERT INTO portal_publiccase_fts(portal_publiccase_fts) VALUES ('rebuild')")
    raw.execute(trigger)
    raw.commit()
    fts_seconds = time.perf_counter() - mark
    mark = time.perf_counter()
    raw.execute("ANALYZE")
    raw.execute("PRAGMA foreign_keys = ON")
    raw.commit()
    analyze_seconds = time.perf_counter() - mark
    log(f"[sqlite] FTS5 rebuilt in {fts_seconds:.0f} s; searches in process")
    searches = in_process_searches(terms, runs)
    for kind, result in searches.items():
        result["same_first_page_as_postgres"] = result["first_page"] == expected.get(kind)
    with connection.cursor() as cursor:
        cursor.execute("SELECT sqlite_version()")
        version = cursor.fetchone()[0]
    output.write_text(
        json.dumps(
            {
                "sqlite": version,
                "rows": copied,
                "file_mb": round(SQLITE_FILE.stat().st_size / 2**20, 1),
                "seconds": {
                    "rows": round(rows_seconds, 1),
                    "fts5_rebuild": round(fts_seconds, 1),
                    "analyze": round(analyze_seconds, 1),
                },
                "searches": searches,
            },
            indent=2,
            ensure_ascii=False,
        )
    )


# --- Driver -------------------------------------------------------------------------------------


def summary(result: dict[str, Any]) -> list[str]:
    seed_, http, lite = result["seed"], result["http"], result.get("sqlite")
    s = seed_["seconds"]
    public = seed_["sizes"]["portal_publiccase"]
    lines = [
        f"== portal at {seed_['cases']:,} cases ({seed_['messages']:,} messages), "
        f"{http['postgres'] and 'PostgreSQL ' + http['postgres']}",
        f"seed    {s['total']:.0f} s: COPY {s['copy']:.0f} s (Python generating "
        f"{s['copy_generate_python']:.0f} s, waiting for PostgreSQL {s['copy_waiting_for_postgres']:.0f} s), "
        f"counters {s['counters']:.0f} s, indexes and keys {s['indexes_and_foreign_keys']:.0f} s, "
        f"VACUUM ANALYZE {s['vacuum_analyze']:.0f} s",
        f"        database {seed_['database_mb']:,.0f} MB; portal_publiccase {public['table_mb']:,.0f} MB "
        f"+ indexes {public['indexes_mb']:,.0f} MB (search GIN "
        f"{public['index_mb'].get('portal_publiccase_search', 0):,.0f} MB); "
        f"{seed_['tally_rows']:,} counters",
        f"        check against rebuild(): {'agrees' if seed_['check_against_rebuild']['agrees'] else 'DIFFERS'} "
        f"({seed_['check_against_rebuild']['sample_cases']:,} sampled cases, "
        f"{seed_['check_against_rebuild']['counters_compared']:,} counters of "
        f"{seed_['check_against_rebuild']['month']})",
        "terms   " + ", ".join(
            f"{t} {c['matches']:,} matches" for t, c in http["term_counts"].items()
            if t in http["terms"].values()
        ),
        f"http    {CLIENTS} concurrent clients, keep-alive, {http['server']}",
        f"        micro-cached as the site runs ({http.get('micro_cache', 'no micro-cache')}); "
        "'cached' = share of answers served from it (Age header)",
        f"  {'scenario':<17} {'p50':>7} {'p95':>7} {'p99':>7} ms {'req/s':>7} {'errors':>6} "
        f"{'cached':>6}  {'alone p50':>9}  {'uncached alone p50/p95':>22}  client CPU",
    ]  # fmt: skip
    for name, r in http["scenarios"].items():
        if not r.get("calls"):
            lines.append(f"  {name:<17} no answers; errors {r['error_kinds']}")
            continue
        met = "" if r["p95_ms"] < TARGET_P95_MS else "  [p95 over 100 ms]"
        drawn = r.get("one_client_uncached") or {}
        lines.append(
            f"  {name:<17} {r['p50_ms']:7.1f} {r['p95_ms']:7.1f} {r['p99_ms']:7.1f}    "
            f"{r['requests_per_second']:7.1f} {r['errors']:6} {r.get('from_cache_share', 0):6.0%}  "
            f"{r['one_client'].get('p50_ms') or 0:9.1f}  "
            f"{drawn.get('p50_ms') or 0:13.1f} /{drawn.get('p95_ms') or 0:6.1f}  "
            f"{r['client_cpu_share']:.0%}{met}"
        )
    lines.append("in process, case_page(CaseFilters(query=…)), p50/p95/p99 ms:")
    for kind, pg in http["in_process"].items():
        line = f"  {pg['term']:<10} PostgreSQL {pg['p50_ms']:.1f}/{pg['p95_ms']:.1f}/{pg['p99_ms']:.1f}"
        if lite:
            sq = lite["searches"][kind]
            same = "same first page" if sq["same_first_page_as_postgres"] else "FIRST PAGE DIFFERS"
            line += f"   SQLite {sq['p50_ms']:.1f}/{sq['p95_ms']:.1f}/{sq['p99_ms']:.1f} ({same})"
        lines.append(line)
    if lite:
        lines.append(
            f"sqlite  {lite['rows']:,} rows copied in {lite['seconds']['rows']:.0f} s, FTS5 rebuilt in "
            f"{lite['seconds']['fts5_rebuild']:.0f} s; file {lite['file_mb']:,.0f} MB"
        )
    return lines


def run_worker(args: list[str], url: str) -> None:
    command = [sys.executable, str(Path(__file__).resolve()), *args]
    done = subprocess.run(command, cwd=ROOT, env=worker_env(url))
    if done.returncode != 0:
        raise SystemExit(f"bench: `{' '.join(args[:2])}` failed (exit {done.returncode})")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--cases", type=int, default=1_000_000, help="cases to seed (1,000,000)")
    parser.add_argument("--seconds", type=float, default=15.0, help="measured seconds a scenario")
    parser.add_argument("--warmup", type=float, default=3.0, help="warm-up seconds a scenario")
    parser.add_argument("--search-runs", type=int, default=50, help="in-process runs a term")
    parser.add_argument("--reuse", action="store_true", help="measure the database seeded last")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument(
        "--workers", type=int, default=WORKERS, help=f"gunicorn workers ({WORKERS})"
    )
    parser.add_argument("--threads", type=int, default=THREADS, help=f"threads each ({THREADS})")
    parser.add_argument(
        "--only", help="comma-separated scenarios to measure (all); results are then not saved"
    )
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("SOTONG_BENCH_PORTAL_POSTGRES_URL", DEFAULT_POSTGRES_URL),
        help="the bench database; it is DROPPED and created again",
    )
    parser.add_argument("--worker", choices=("seed", "http", "sqlite"), help=argparse.SUPPRESS)
    parser.add_argument("--output", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--expected", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker == "seed":
        seed(args.cases, args.output)
        return 0
    if args.worker == "http":
        measure_http(
            args.cases,
            args.seconds,
            args.warmup,
            args.output,
            args.workers,
            args.threads,
            args.only,
        )
        return 0
    if args.worker == "sqlite":
        expected = json.loads(args.expected.read_text())
        measure_sqlite(
            args.postgres_url, expected["terms"], expected["pages"], args.search_runs, args.output
        )
        return 0
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    check_postgres(args.postgres_url)
    started = datetime.now(UTC)
    seed_file = WORK_DIR / "portal-seed.json"
    if args.reuse and seed_file.exists():
        url = args.postgres_url
        log(f"bench: reusing the seeded database ({args.postgres_url})")
    else:
        url = fresh_database("postgres", args.postgres_url)
        run_worker(
            ["--worker", "seed", "--cases", str(args.cases), "--output", str(seed_file)], url
        )
    seeded = json.loads(seed_file.read_text())
    http_file = WORK_DIR / "portal-http.json"
    run_worker(
        [
            "--worker", "http", "--cases", str(seeded["cases"]), "--seconds", str(args.seconds),
            "--warmup", str(args.warmup), "--output", str(http_file),
            "--workers", str(args.workers), "--threads", str(args.threads),
            *(["--only", args.only] if args.only else []),
        ],
        url,
    )  # fmt: skip
    http = json.loads(http_file.read_text())
    lite = None
    if not args.skip_sqlite and not args.only:
        expected_file = WORK_DIR / "portal-expected.json"
        expected_file.write_text(
            json.dumps(
                {
                    "terms": http["terms"],
                    "pages": {k: v["first_page"] for k, v in http["in_process"].items()},
                },
                ensure_ascii=False,
            )
        )
        sqlite_url = f"sqlite:///{SQLITE_FILE}"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{SQLITE_FILE}{suffix}").unlink(missing_ok=True)
        lite_file = WORK_DIR / "portal-sqlite.json"
        run_worker(
            [
                "--worker", "sqlite", "--postgres-url", url, "--expected", str(expected_file),
                "--search-runs", str(args.search_runs), "--output", str(lite_file),
            ],
            sqlite_url,
        )  # fmt: skip
        lite = json.loads(lite_file.read_text())
    result = {
        "started_at": started.isoformat(timespec="seconds"),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "seed": seeded,
        "http": http,
        "sqlite": lite,
        "target": {"p95_ms": TARGET_P95_MS, "clients": CLIENTS},
        "load_average_1min": load_average(),
        "environment": environment(),
    }
    lines = summary(result)
    if args.only:  # a partial run, for trying settings: shown, not saved
        print("\n".join(lines))
        return 0
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    text = json.dumps(result, indent=2, ensure_ascii=False) + "\n"
    (RESULTS_DIR / f"portal-{started:%Y%m%dT%H%M%SZ}.json").write_text(text)
    (RESULTS_DIR / "portal-latest.json").write_text(text)
    (RESULTS_DIR / "portal-latest.txt").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
