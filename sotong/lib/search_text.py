"""Character-bigram tokens for Korean full-text search, shared by the index and the query.

Most Korean words are two syllables (소음, 누수, 악취, 주차) and are written glued to
particles (주차가, 주차를), so word tokenizers and trigram indexes miss them: SQLite FTS5's
trigram tokenizer matches nothing shorter than three characters, and PostgreSQL's pg_trgm
cannot use its index for a two-character term. A text is indexed instead as the bigrams of
each run of letters and digits, plus the run's last character on its own:

    "불법주차 신고" → 불법 법주 주차 차 신고 고

so a term of two or more characters is the AND of its bigrams (checked afterwards as a
substring, since bigrams alone do not fix their order), and a one-character term is a prefix
query (`차*`): every character of a run starts a bigram, or is the run's last character.
Pure: no database here; `sotong.portal.search` turns these into SQL for each database.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

# Letters and digits of any script; everything else (spaces, punctuation, emoji) separates.
_RUN = re.compile(r"[^\W_]+")
# Terms longer than this are cut: a pasted paragraph is not a search term.
MAX_TERM_CHARS = 40
MAX_TERMS = 8


def normalize(text: str) -> str:
    """The form both the index and the query see: NFKC (full-width forms and compatibility
    jamo folded, syllables composed) and case-folded."""
    return unicodedata.normalize("NFKC", text).casefold()


def runs(text: str) -> list[str]:
    return _RUN.findall(normalize(text))


def index_tokens(text: str) -> list[str]:
    """The distinct tokens to index for a text, in first-seen order."""
    tokens: dict[str, None] = {}
    for run in runs(text):
        for i in range(len(run) - 1):
            tokens.setdefault(run[i : i + 2], None)
        tokens.setdefault(run[-1], None)
    return list(tokens)


@dataclass(frozen=True)
class SearchTerm:
    """One word of a query: the tokens that must all be indexed for a text to match, and
    the normalized substring the text must then contain."""

    text: str
    tokens: tuple[str, ...]
    prefix: bool  # a one-character term: its token is a prefix of an indexed token

    @property
    def needs_substring_check(self) -> bool:
        # One bigram (or one character) is exact; longer terms could match out of order.
        return len(self.text) > 2


def parse_query(query: str) -> list[SearchTerm]:
    """The terms of a search box query: every run of letters and digits is a term, and a
    text matches when it contains every term."""
    terms: dict[str, SearchTerm] = {}
    for run in runs(query)[:MAX_TERMS]:
        run = run[:MAX_TERM_CHARS]
        if len(run) == 1:
            term = SearchTerm(run, (run,), prefix=True)
        else:
            bigrams = dict.fromkeys(run[i : i + 2] for i in range(len(run) - 1))
            term = SearchTerm(run, tuple(bigrams), prefix=False)
        terms.setdefault(run, term)
    return list(terms.values())
