"""What the trained triage models see of a text: normalisation (NFC, width folding, URL,
mention, file and number placeholders) and the features drawn from it, Korean morphemes
from kiwipiepy plus character n-grams. Pure: no Django, nothing downloaded.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer

from sotong.lib.korean_text import fold_width
from sotong.triage.periods import DateLike, PeriodFeatures

if TYPE_CHECKING:
    from kiwipiepy import Kiwi

# Several fields of one record (a title and a body) travel as one string joined by this
# separator: the first field is the heading, which counts twice (a title names the matter
# more densely than a body). A message with no separator is all heading.
FIELD_SEPARATOR = "\x1f"

URL_TOKEN = " xurlx "
MENTION_TOKEN = " xuserx "
EMAIL_TOKEN = " xmailx "
FILE_TOKEN = " xfilex "

_URL = re.compile(
    r"(?:https?://|www\.)\S+|\b[a-z0-9.-]+\.(?:com|net|org|kr|co\.kr|go\.kr)/\S*", re.I
)
_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+\.[\w.-]+\b")
_MENTION = re.compile(r"@\w+")
# Attachment names (photos the citizen attached) say nothing about the matter.
_FILE = re.compile(r"\S+\.(?:jpe?g|png|gif|heic|bmp|pdf|hwp|docx?|xlsx?|pptx?|zip|mp4)\b", re.I)
_DIGITS = re.compile(r"\d+")
# ㅋㅋㅋㅋ, !!!!, ~~~~: a run of one character carries no more than two of it.
_RUNS = re.compile(r"(.)\1{2,}")
_SPACES = re.compile(r"\s+")

# Content parts of speech (Sejong tags as kiwipiepy gives them): nouns, verbs and adjectives
# (lemmatised to their dictionary form), roots, adverbs, foreign words and hanja. Endings,
# particles and punctuation carry register (formal vs casual), which is exactly what the
# relevance model must not learn as a proxy for "complaint".
CONTENT_TAGS = frozenset({"NNG", "NNP", "NR", "VV", "VA", "XR", "MAG", "SL", "SH", "W_HASHTAG"})
_PREDICATES = frozenset({"VV", "VA"})
_PLACEHOLDERS = frozenset(t.strip() for t in (URL_TOKEN, MENTION_TOKEN, EMAIL_TOKEN, FILE_TOKEN))
HEAD_PREFIX = "t:"

_kiwi: Kiwi | None = None
_kiwi_lock = threading.Lock()
_kiwi_match_options = 0


def kiwi() -> Kiwi:
    """The process-wide morphological analyser, created on first use (under a second)."""
    global _kiwi, _kiwi_match_options
    if _kiwi is None:
        with _kiwi_lock:
            if _kiwi is None:
                from kiwipiepy import Kiwi, Match

                # Without the multi-word dictionary (250,000 WikiData names with a space
                # inside, "토니 스타크"): words are analysed one at a time here, so it only
                # ever joined a name written without its space, and it was a third of the
                # analyser. Measured with kiwipiepy 0.24.1 in a fresh process: 316 MB instead
                # of 493 MB (a process with both trained models: 590 MB, not 776 MB), ready
                # in 0.9 s instead of 2.2 s, as fast (18,000 words/s). Morphemes differ for
                # none of 5,000 complaint words and 485 of the 725,000 distinct words of all
                # the shared data; 5-fold CV unchanged: routing by function 0.654 / 0.845
                # top-1 / top-3, by unit 0.509 / 0.679, relevance recall 0.992 at 95%
                # precision. Dropping the default dictionary too saves 74 MB more but
                # splits place names (무의도) and costs 0.3 / 0.5 points; 'knlm' and 'sbg'
                # are not shipped any more; 'cong-global' is larger and a third slower.
                # tokenize() analyses in the calling thread whatever num_workers is: -1
                # only adds an idle pool thread per core (0 warns on every start).
                instance = Kiwi(num_workers=-1, load_multi_dict=False)
                # URLs, mentions and e-mail addresses are placeholders by now and '#' is
                # gone, so only serial numbers and emoji are left to match as wholes.
                _kiwi_match_options = int(Match.SERIAL | Match.EMOJI | Match.OOV_CHR_MODEL)
                _kiwi = instance
    return _kiwi


@lru_cache(maxsize=1 << 12)
def normalize(text: str) -> str:
    """Text as the models see it: NFC, ASCII width, lower case, placeholders for URLs,
    mentions, e-mail addresses and attachment names, every number as 0, runs cut to two."""
    text = fold_width(unicodedata.normalize("NFC", text))
    text = _URL.sub(URL_TOKEN, text)
    text = _EMAIL.sub(EMAIL_TOKEN, text)
    text = _MENTION.sub(MENTION_TOKEN, text)
    text = _FILE.sub(FILE_TOKEN, text)
    text = _DIGITS.sub("0", text)
    text = _RUNS.sub(r"\1\1", text.replace("#", " "))
    return _SPACES.sub(" ", text).strip().lower()


def split_fields(text: str) -> tuple[str, str]:
    """(heading, whole text) of a possibly multi-field text."""
    head, _, rest = text.partition(FIELD_SEPARATOR)
    return head, (head + " " + rest.replace(FIELD_SEPARATOR, " ")) if rest else head


def normalized_whole(text: str) -> str:
    """Preprocessor of the whole-text character n-grams (a module function: picklable)."""
    return normalize(split_fields(text)[1])


def normalized_head(text: str) -> str:
    """Preprocessor of the heading's character n-grams."""
    return normalize(split_fields(text)[0])


def morphemes(text: str) -> tuple[str, ...]:
    """Content morphemes of an already normalised text, verbs and adjectives as lemmas
    (고쳐주세요 → 고치다), word by word (see word_morphemes)."""
    out: list[str] = []
    for word in text.split():
        out.extend(word_morphemes(word))
    return tuple(out)


@lru_cache(maxsize=1 << 16)
def word_morphemes(word: str) -> tuple[str, ...]:
    """Content morphemes of one space-separated word (어절), analysed on its own.

    Analysing word by word rather than the whole sentence cost no routing accuracy on the
    complaint data, makes the result of a word the same wherever it appears, and lets it
    be cached: about half the words of a stream of tweets were seen before, and a word
    alone is analysed faster than within a sentence (1.4 times the texts per second).
    """
    out: list[str] = []
    for token in kiwi().tokenize(word, match_options=_kiwi_match_options):
        tag = token.tag.split("-", 1)[0]  # VV-R / VA-I: regular and irregular conjugation
        if tag not in CONTENT_TAGS:
            continue
        form = token.form
        if tag in _PREDICATES:
            form += "다"
        elif form in _PLACEHOLDERS or (tag == "SL" and len(form) < 2):
            continue
        out.append(form)
    return tuple(out)


class MorphemeAnalyzer:
    """Feature terms of one text: the content morphemes of every field, and those of the
    heading again with a prefix. Holds no Kiwi (the process-wide one is used), so a model
    that contains it pickles small and loads without analysing anything."""

    def __call__(self, text: str) -> list[str]:
        head, whole = split_fields(text)
        head_terms = morphemes(normalize(head))
        if whole == head:
            body_terms: Sequence[str] = head_terms
        else:
            _, _, rest = text.partition(FIELD_SEPARATOR)
            body_terms = head_terms + morphemes(normalize(rest.replace(FIELD_SEPARATOR, " ")))
        return [*body_terms, *(HEAD_PREFIX + t for t in head_terms)]


class FeatureSpace:
    """Morphemes, character n-grams of the whole text and of the heading, each TF-IDF
    weighted (sublinear tf, L2 per block) and scaled by a block weight, side by side; and,
    when the texts come with dates, the year they were written (see triage.periods)."""

    def __init__(
        self,
        morpheme_weight: float = 1.0,
        char_weight: float = 1.0,
        head_char_weight: float = 0.5,
        char_ngrams: Sequence[int] = (2, 4),
        head_char_ngrams: Sequence[int] = (1, 3),
        min_df: int = 1,
        period_weight: float = 0.5,
    ) -> None:
        # Ranges may come back from a model card's JSON as lists.
        char_range = (int(char_ngrams[0]), int(char_ngrams[1]))
        head_range = (int(head_char_ngrams[0]), int(head_char_ngrams[1]))
        self.weights = (morpheme_weight, char_weight, head_char_weight)
        self.blocks: list[tuple[str, TfidfVectorizer]] = [
            (
                "morpheme",
                TfidfVectorizer(
                    analyzer=MorphemeAnalyzer(), sublinear_tf=True, min_df=min_df, dtype=np.float32
                ),
            ),
            (
                "char",
                TfidfVectorizer(
                    analyzer="char_wb",
                    preprocessor=normalized_whole,
                    ngram_range=char_range,
                    sublinear_tf=True,
                    min_df=min_df,
                    dtype=np.float32,
                ),
            ),
            (
                "head",
                TfidfVectorizer(
                    analyzer="char_wb",
                    preprocessor=normalized_head,
                    ngram_range=head_range,
                    sublinear_tf=True,
                    min_df=min_df,
                    dtype=np.float32,
                ),
            ),
        ]
        self.period = PeriodFeatures(period_weight)
        self._names: np.ndarray | None = None
        self._compiled: list[tuple[float, Any, dict[str, int], np.ndarray, int]] | None = None

    def params(self) -> dict[str, Any]:
        return {
            "morpheme_weight": self.weights[0],
            "char_weight": self.weights[1],
            "head_char_weight": self.weights[2],
            "char_ngrams": list(self.blocks[1][1].ngram_range),
            "head_char_ngrams": list(self.blocks[2][1].ngram_range),
            "min_df": self.blocks[0][1].min_df,
            "period": self.period.params(),
        }

    def _active(self) -> Iterable[tuple[float, str, TfidfVectorizer]]:
        for weight, (name, vectorizer) in zip(self.weights, self.blocks, strict=True):
            if weight:
                yield weight, name, vectorizer

    def fit_transform(
        self, texts: Sequence[str], dates: Sequence[DateLike] | None = None
    ) -> sp.csr_matrix:
        """Learn the vocabularies (and the span of years, when dates are given) and return
        the training matrix."""
        blocks = [w * v.fit_transform(texts) for w, _, v in self._active()]
        self.period.fit(dates)
        self._names = None
        self._compiled = None
        return sp.hstack([*blocks, self.period.transform(dates, len(texts))], format="csr")

    def transform(
        self, texts: Sequence[str], dates: Sequence[DateLike] | None = None
    ) -> sp.csr_matrix:
        """The same matrix as the vectorizers' own transform, built directly: sklearn's
        input checks cost more than the arithmetic for a message or two, and the worker
        triages small batches all day. Without dates, every text is dated today."""
        if self._compiled is None:
            self._compiled = [
                (weight, v.build_analyzer(), v.vocabulary_, v.idf_, offset)
                for (weight, _, v), offset in zip(self._active(), self._offsets(), strict=True)
            ]
        n = len(texts)
        rows: list[np.ndarray] = []
        columns: list[np.ndarray] = []
        values: list[np.ndarray] = []
        for weight, analyse, vocabulary, idf, offset in self._compiled:
            get = vocabulary.get
            found: list[int] = []
            lengths = np.zeros(n, dtype=np.int64)
            for i, text in enumerate(texts):
                hits = [c for c in map(get, analyse(text)) if c is not None]
                found.extend(hits)
                lengths[i] = len(hits)
            # Term counts per text (duplicates summed), then sublinear tf (1 + log count)
            # times idf, each row at unit length, times the block weight.
            counts = sp.csr_matrix(
                (np.ones(len(found)), (np.repeat(np.arange(n), lengths), np.array(found, int))),
                shape=(n, len(vocabulary)),
            )
            counts.sum_duplicates()
            row_of = np.repeat(np.arange(n), np.diff(counts.indptr))
            data = (1.0 + np.log(counts.data)) * idf[counts.indices]
            norms = np.sqrt(np.bincount(row_of, weights=data * data, minlength=n))
            data *= weight / norms[row_of]
            rows.append(row_of)
            columns.append(counts.indices.astype(np.int64) + offset)
            values.append(data)
        text_part = sp.csr_matrix(
            (
                np.concatenate(values).astype(np.float32),
                (np.concatenate(rows), np.concatenate(columns)),
            ),
            shape=(n, self.n_features - self.period.n_features),
        )
        if not self.period.active:
            return text_part
        return sp.hstack([text_part, self.period.transform(dates, n)], format="csr")

    def _offsets(self) -> list[int]:
        sizes = [len(v.vocabulary_) for _, _, v in self._active()]
        return [sum(sizes[:i]) for i in range(len(sizes))]

    @property
    def n_features(self) -> int:
        return sum(len(v.vocabulary_) for _, _, v in self._active()) + self.period.n_features

    def feature_names(self) -> np.ndarray:
        """A readable name per column: a morpheme (고치다), «n-gram» or title:«n-gram»."""
        if self._names is None:
            names: list[str] = []
            for _, block, vectorizer in self._active():
                for term in vectorizer.get_feature_names_out():
                    if block == "morpheme":
                        names.append(
                            "title:" + term[len(HEAD_PREFIX) :]
                            if term.startswith(HEAD_PREFIX)
                            else term
                        )
                    elif block == "char":
                        names.append(f"«{term.strip()}»")
                    else:
                        names.append(f"title:«{term.strip()}»")
            names.extend(self.period.feature_names())
            self._names = np.array(names, dtype=object)
        return self._names

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        # Both are rebuilt on demand; no need to store them twice.
        state["_names"] = None
        state["_compiled"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        # A model saved before dates were features has no period block: an inactive one.
        state.setdefault("period", PeriodFeatures(0.0))
        self.__dict__.update(state)
