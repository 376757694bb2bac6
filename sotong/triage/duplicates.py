"""Duplicates: find the open case a new message reports again (a retweet, a copy, a near-copy
with small edits), so the message joins it instead of opening a new case. Pure core over
plain values; the caller rebuilds the index from the open cases in the database.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple

import numpy as np
from datasketch import MinHash, MinHashLSH

from sotong.lib.korean_text import fold_width

CaseId = Hashable

SHINGLE = 3  # characters per shingle: enough to tell words apart, short enough for typos
THRESHOLD = 0.5  # exact 3-gram Jaccard a near-copy must reach
SIGNATURE = 64  # MinHash permutations kept per case for the estimate (error ~0.06 at 0.5)
# The LSH index bands the first BANDS × ROWS of them. 10 bands of 2 rows find a pair at
# Jaccard 0.5 with probability 0.94 and at 0.6 with 0.99; a pair at 0.05 shares a band
# with probability 0.025. Fewer, shorter bands keep indexing fast and small (every band is
# a dictionary entry per case); the estimate then discards the extra candidates cheaply.
BANDS = 10
ROWS = 2
SEED = 20251125
# A candidate's estimate may fall this far below the threshold and still be checked exactly.
ESTIMATE_MARGIN = 0.2
# Texts and characters per vectorised signature batch: the temporary matrix holds SIGNATURE
# 4-byte values per shingle, so 200,000 characters bound it to about 50 MB.
_CHUNK_TEXTS = 4096
_CHUNK_CHARS = 200_000

_RETWEET = re.compile(r"\brt\s*@[\w.]+\s*:?", re.IGNORECASE)
# Everything a copied report may gain or lose without reporting anything else: retweet
# prefixes, links, mentions, hashtags (#민원 #서울시 are tags added to copies), laughing and
# crying in jamo (ㅋㅋ, ㅠㅠ), and every symbol, emoji and punctuation mark. One pattern, so a
# text is scanned once.
_STRIP = re.compile(
    r"\brt\s*@[\w.]+\s*:?|https?://\S+|www\.\S+|[@#][\w.]+|[ㄱ-ㅎㅏ-ㅣ]+|[^\w\s]|_",
    re.IGNORECASE,
)
# Words that name a place: a station, a crossing, a flat block, a stream, an exit. Two
# texts that each name a place the other does not report different places, however alike
# the rest is ("강남역 앞 싱크홀" is not "역삼역 앞 싱크홀").
_PLACE = re.compile(
    r"([가-힣a-z0-9]+?(역|사거리|삼거리|오거리|교차로|아파트|빌라|공원|놀이터|학교|시장|병원|"
    r"터널|대교|육교|지하차도|고가|정류장|정류소|출구|번지|번길|대로|구청|센터|마트|단지|타워|"
    r"빌딩|성당|교회|도서관|광장|호수|분소)"
    # One-syllable endings only after two syllables (창신동, 불암산, 우이천, not 인구), and 로
    # only after three that do not end in 으 (테헤란로, not 사이로, 어디로 or 앞으로).
    r"|[가-힣a-z0-9]{2,}?(동|길|구|산|천|교)|[가-힣a-z0-9]{3,}?(?<!으)로)"
    r"(?=(에서|에|앞|옆|뒤|쪽|은|는|이|가|을|를|의|도|부터|까지|근처|인근|아래|위)?$)"
)
_LOCATIVE = re.compile(r"(앞|옆|뒤|근처|건너편|맞은편|입구|주변|사이)(에서|에|으로|쪽)?$")
_NUMBER = re.compile(r"\d+")


def normalise(text: str) -> str:
    """The text as compared: NFC, width-folded, lower-cased, without retweet prefixes, links,
    mentions, hashtags, punctuation, emoji and laughter, with single spaces."""
    text = fold_width(unicodedata.normalize("NFC", text or "")).lower()
    return " ".join(_STRIP.sub(" ", text).split())


def shingles(normal: str) -> np.ndarray:
    """Sorted unique ids of the character 3-grams of a normalised text, spaces left out
    (Korean spacing varies between writers). Each id packs the three code points (21 bits
    each) into 63 bits, so two different 3-grams never share an id."""
    compact = normal.replace(" ", "")
    if not compact:
        return np.empty(0, dtype=np.uint64)
    points = np.frombuffer(compact.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    if len(points) < SHINGLE:
        # A text shorter than one shingle is its own single shingle.
        points = np.concatenate([points, np.zeros(SHINGLE - len(points), dtype=np.uint64)])
    ids = (points[:-2] << np.uint64(42)) | (points[1:-1] << np.uint64(21)) | points[2:]
    return np.unique(ids)


def _places(normal: str) -> frozenset[str]:
    words = normal.split()
    found: set[str] = set()
    for position, word in enumerate(words):
        if match := _PLACE.match(word):
            found.add(word[: match.end(1)])
        elif position + 1 < len(words) and _LOCATIVE.match(words[position + 1]):
            # "스타벅스 앞", "다이소 건너편": a word the next one locates is a place too.
            found.add(word)
    return frozenset(found)


def _other_place(mine: _Words, theirs: _Words) -> bool:
    """Whether the two texts name different places: different numbers (an exit, a bus, a
    building), or a place word on one side that the other lacks while the other has a word
    of its own there (a substitution, not an addition). Words are looked up in the other
    text with its spaces removed, since writers space "공덕역 사거리" and "공덕역사거리"
    alike."""
    if (mine.numbers - theirs.numbers) and (theirs.numbers - mine.numbers):
        return True
    for one, other in ((mine, theirs), (theirs, mine)):
        if any(place not in other.compact for place in one.places) and any(
            len(word) > 1 and word not in one.compact for word in other.words
        ):
            return True
    return False


def _exact_jaccard(a: np.ndarray, b: np.ndarray) -> float:
    if not len(a) or not len(b):
        return 0.0
    common = np.intersect1d(a, b, assume_unique=True).size
    return common / (len(a) + len(b) - common)


class CaseText(NamedTuple):
    """An open case as the index needs it."""

    case_id: CaseId
    text: str
    district: str | None
    category: str | None
    opened_at: datetime


@dataclass(frozen=True)
class Match:
    """An open case the message probably reports again."""

    case_id: CaseId
    similarity: float  # exact Jaccard similarity of the character 3-grams, 0–1
    reason: str  # for the center: how alike, and what else agreed


@dataclass(frozen=True)
class _Words:
    """What the place check reads from a text; worked out only for confirmed candidates."""

    compact: str  # the normalised text without spaces
    words: frozenset[str]
    places: frozenset[str]
    numbers: frozenset[str]

    @classmethod
    def of(cls, normal: str) -> _Words:
        return cls(
            compact=normal.replace(" ", ""),
            words=frozenset(normal.split()),
            places=_places(normal),
            numbers=frozenset(_NUMBER.findall(normal)),
        )


@dataclass(slots=True)
class _Entry:
    row: int
    raw_shingles: np.ndarray  # as cut from the batch: unsorted, possibly repeated
    normal: str
    district: str | None
    category: str | None
    opened_at: datetime
    words: _Words | None = None
    unique: np.ndarray | None = None

    def shingles(self) -> np.ndarray:
        # Sorted and deduplicated only when a query needs the exact similarity.
        if self.unique is None:
            self.unique = np.unique(self.raw_shingles)
        return self.unique

    def read(self) -> _Words:
        if self.words is None:
            self.words = _Words.of(self.normal)
        return self.words


class _Signature:
    """A signature as MinHashLSH reads it: its hash values, length and permutation scheme.
    Signatures are computed in bulk with numpy (see _signatures_of), so building a full
    datasketch MinHash object for each would only add time."""

    __slots__ = ("hashvalues",)
    scheme = "affine32"

    def __init__(self, hashvalues: np.ndarray) -> None:
        self.hashvalues = hashvalues

    def __len__(self) -> int:
        return len(self.hashvalues)


class DuplicateIndex:
    """Open cases indexed for near-duplicate search. Not thread-safe: one per worker.

    Why MinHash LSH: comparing a message with every open case costs time in proportion to
    the number of cases, and a city's open cases grow with every busy day. Locality-sensitive
    hashing over MinHash signatures (datasketch's MinHashLSH) looks up only the cases that
    share a band of the signature, so a query touches a few candidates whether 1,000 or
    100,000 cases are open. Candidates are screened with the MinHash estimate and confirmed
    with the exact Jaccard similarity of their 3-gram sets, so no link rests on an estimate;
    time, district, category and place names then decide.
    """

    def __init__(
        self,
        *,
        threshold: float = THRESHOLD,
        bands: int = BANDS,
        rows: int = ROWS,
        seed: int = SEED,
    ) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ValueError("threshold must be in (0, 1]")
        self.threshold = threshold
        self.num_perm = max(SIGNATURE, bands * rows)
        self._banded = bands * rows
        # datasketch's affine permutations (a odd, b any) for this seed; the signatures use
        # them with the same arithmetic as MinHash(scheme="affine32").
        a, b = MinHash(num_perm=self.num_perm, seed=seed, scheme="affine32").permutations
        self._a = np.asarray(a, dtype=np.uint32)
        self._b = np.asarray(b, dtype=np.uint32)
        self._lsh = MinHashLSH(num_perm=self._banded, params=(bands, rows))
        self._entries: dict[CaseId, _Entry] = {}
        self._signatures = np.empty((0, self.num_perm), dtype=np.uint32)
        self._used = 0  # rows of _signatures handed out so far
        self._free_rows: list[int] = []  # rows of removed cases, reused first

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, case_id: object) -> bool:
        return case_id in self._entries

    @classmethod
    def rebuild(
        cls,
        cases: Iterable[CaseText],
        *,
        threshold: float = THRESHOLD,
        bands: int = BANDS,
        rows: int = ROWS,
        seed: int = SEED,
    ) -> DuplicateIndex:
        """An index of the given open cases (the caller reads them from the database)."""
        index = cls(threshold=threshold, bands=bands, rows=rows, seed=seed)
        index.add_many(cases)
        return index

    def add(
        self,
        case_id: CaseId,
        text: str,
        *,
        district: str | None,
        category: str | None,
        opened_at: datetime,
    ) -> None:
        """Index one open case; adding a known id again replaces it."""
        self.add_many([CaseText(case_id, text, district, category, opened_at)])

    def add_many(self, cases: Iterable[CaseText]) -> None:
        """Index many open cases at once (signatures are computed in vectorised batches)."""
        batch: list[CaseText] = []
        characters = 0
        for case in cases:
            batch.append(CaseText(*case))
            characters += len(case[1] or "")
            if len(batch) == _CHUNK_TEXTS or characters >= _CHUNK_CHARS:
                self._add_batch(batch)
                batch = []
                characters = 0
        if batch:
            self._add_batch(batch)

    def remove(self, case_id: CaseId) -> bool:
        """Forget a case (closed, merged, deleted); False when it was not indexed."""
        entry = self._entries.pop(case_id, None)
        if entry is None:
            return False
        if len(entry.raw_shingles):
            self._lsh.remove(case_id)
        self._free_rows.append(entry.row)
        return True

    def find(
        self,
        text: str,
        *,
        district: str | None,
        category: str | None,
        at: datetime,
        within_days: float = 7,
    ) -> list[Match]:
        """Open cases that the text reports again, the most similar (then the newest) first.

        A case qualifies when its exact 3-gram Jaccard similarity reaches the threshold, it
        was opened within `within_days` of `at`, its district and category agree with the
        message's where both are known, and the two texts do not name different places.
        `at` and the cases' `opened_at` must both be timezone-aware (or both naive).
        """
        normal = normalise(text)
        ids = shingles(normal)
        if not len(ids) or not self._entries:
            return []
        signature = self._signatures_of(ids, np.zeros(1, dtype=np.int64))[0]
        banded = _Signature(signature[: self._banded])
        candidates = [key for key in self._lsh.query(banded) if key in self._entries]
        if not candidates:
            return []
        # The estimate first: one numpy comparison for all candidates, so common phrases
        # that pull in many weak candidates cost little before the exact check.
        rows = np.fromiter((self._entries[key].row for key in candidates), dtype=np.int64)
        estimates = (self._signatures[rows] == signature).mean(axis=1)
        window = timedelta(days=within_days)
        words = _Words.of(normal)
        retweet = bool(_RETWEET.search(fold_width(text or "").lower()))
        found: list[tuple[Match, datetime]] = []
        for key, estimate in zip(candidates, estimates, strict=True):
            if estimate < self.threshold - ESTIMATE_MARGIN:
                continue
            entry = self._entries[key]
            if abs(at - entry.opened_at) > window:
                continue
            if district and entry.district and district != entry.district:
                continue
            if category and entry.category and category != entry.category:
                continue
            similarity = _exact_jaccard(ids, entry.shingles())
            if similarity < self.threshold:
                continue
            if _other_place(words, entry.read()):
                continue  # the same words about another station, crossing or exit
            reason = self._reason(similarity, retweet, district, category, entry)
            found.append((Match(key, round(similarity, 3), reason), entry.opened_at))
        found.sort(key=lambda item: (item[0].similarity, item[1]), reverse=True)
        return [match for match, _ in found]

    @staticmethod
    def _reason(
        similarity: float, retweet: bool, district: str | None, category: str | None, entry: _Entry
    ) -> str:
        if similarity >= 0.999:
            kind = "retweet of the same text" if retweet else "same text"
        else:
            kind = f"near copy (3-gram Jaccard {similarity:.2f})"
        agreed = [
            label
            for label, mine, theirs in (
                ("same district", district, entry.district),
                ("same category", category, entry.category),
            )
            if mine and theirs
        ]
        return ", ".join([kind, *agreed])

    def _add_batch(self, batch: Sequence[CaseText]) -> None:
        # The last version of an id wins, within the batch as against the index.
        latest = {case.case_id: case for case in batch}
        for case_id in latest:
            self.remove(case_id)
        cases = list(latest.values())
        normals = [normalise(case.text) for case in cases]
        ids, offsets, counts = _batch_shingles(normals)
        with_text = np.flatnonzero(counts)
        signatures = self._signatures_of(ids, offsets[with_text])
        rows = self._take_rows(len(cases))
        self._signatures[rows[with_text]] = signatures
        with self._lsh.insertion_session() as session:
            for slot, signature in zip(with_text.tolist(), signatures, strict=True):
                banded = _Signature(signature[: self._banded])
                session.insert(cases[slot].case_id, banded, False)
        for position, case in enumerate(cases):
            start = offsets[position]
            self._entries[case.case_id] = _Entry(
                int(rows[position]),
                ids[start : start + counts[position]],
                normals[position],
                case.district,
                case.category,
                case.opened_at,
            )

    def _take_rows(self, count: int) -> np.ndarray:
        rows = [self._free_rows.pop() for _ in range(min(count, len(self._free_rows)))]
        needed = self._used + count - len(rows)
        if needed > len(self._signatures):
            # Grow by half again, so indexing n cases one by one copies the matrix only
            # O(log n) times.
            capacity = max(needed, len(self._signatures) * 3 // 2, 1024)
            grown = np.zeros((capacity, self.num_perm), dtype=np.uint32)
            grown[: self._used] = self._signatures[: self._used]
            self._signatures = grown
        rows.extend(range(self._used, needed))
        self._used = needed
        return np.array(rows, dtype=np.int64)

    def _signatures_of(self, ids: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        """MinHash signatures of the shingle sets ids[offsets[i]:offsets[i+1]] in one numpy
        pass, with the arithmetic of datasketch's MinHash(scheme="affine32",
        hashfunc=<the 32-bit id>): each id is mixed, permuted by a*h + b (mod 2^32), and each
        set keeps its minimum per permutation. Repeated shingles change no minimum."""
        if not len(offsets):
            return np.empty((0, self.num_perm), dtype=np.uint32)
        mixed = _fmix32(shingle_hash32(ids))
        with np.errstate(over="ignore"):  # wrapping is the modulo 2^32
            # Permutations × shingles, so each minimum runs along contiguous memory.
            permuted = self._a[:, None] * mixed[None, :] + self._b[:, None]
        return np.minimum.reduceat(permuted, offsets, axis=1).T


def _batch_shingles(normals: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The 3-gram ids of many texts at once: (ids, offsets, counts), text i owning
    ids[offsets[i]:offsets[i] + counts[i]] (unsorted, possibly repeated). Texts are joined
    with two NUL characters, so a text shorter than three characters gets one NUL-padded
    shingle, as in shingles(), and no shingle spans two texts."""
    compacts = [normal.replace(" ", "") for normal in normals]
    lengths = np.fromiter((len(c) for c in compacts), dtype=np.int64, count=len(compacts))
    starts = np.concatenate([[0], np.cumsum(lengths + 2)[:-1]])
    joined = "\0\0".join(compacts) + "\0\0"
    points = np.frombuffer(joined.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    windows = (points[:-2] << np.uint64(42)) | (points[1:-1] << np.uint64(21)) | points[2:]
    counts = np.where(lengths > 0, np.maximum(lengths - 2, 1), 0)
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
    # Window positions of every text, back to back: text i's run starts at starts[i].
    take = np.repeat(starts - offsets, counts) + np.arange(counts.sum())
    return windows[take], offsets, counts


def shingle_hash32(ids: np.ndarray) -> np.ndarray:
    """A 32-bit hash of each 63-bit 3-gram id (splitmix64's finaliser, high half):
    neighbouring ids, which differ in a few low bits, land far apart."""
    with np.errstate(over="ignore"):
        x = ids ^ (ids >> np.uint64(31))
        x = x * np.uint64(0x7FB5D329728EA185)
        x = x ^ (x >> np.uint64(27))
        x = x * np.uint64(0x81DADEF4BC2DD44D)
        x = x ^ (x >> np.uint64(33))
    return (x >> np.uint64(32)).astype(np.uint32)


def _fmix32(h: np.ndarray) -> np.ndarray:
    # MurmurHash3's 32-bit finaliser, which datasketch's affine32 scheme applies to every
    # input hash before permuting it; repeated here so the signatures are datasketch's own.
    with np.errstate(over="ignore"):
        h = h ^ (h >> np.uint32(16))
        h = h * np.uint32(0x85EBCA6B)
        h = h ^ (h >> np.uint32(13))
        h = h * np.uint32(0xC2B2AE35)
        return h ^ (h >> np.uint32(16))
