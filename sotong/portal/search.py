"""Korean full-text search over public cases, on SQLite and PostgreSQL alike.

`search_cases` is the one door: it turns a query into the terms of
`sotong.lib.search_text` and asks each database's index for the cases holding every term's
tokens — FTS5 on SQLite, the GIN-indexed tsvector on PostgreSQL (both made by migration
0002) — then checks terms longer than a bigram as substrings of the normalized text, which
the index narrowed to a few rows. Both databases therefore return the same cases.
"""

from __future__ import annotations

from django.db import connection
from django.db.models import QuerySet

from sotong.lib.search_text import SearchTerm, parse_query
from sotong.portal.models import PublicCase


def _fts5_query(terms: list[SearchTerm]) -> str:
    # Tokens hold letters and digits only (no quotes), so quoting each is enough.
    return " AND ".join(
        f'"{token}"*' if term.prefix else f'"{token}"' for term in terms for token in term.tokens
    )


def _tsquery(terms: list[SearchTerm]) -> str:
    # A tsquery literal: quoted lexemes taken as they are, `:*` for a prefix.
    return " & ".join(
        f"'{token}':*" if term.prefix else f"'{token}'" for term in terms for token in term.tokens
    )


def search_cases(cases: QuerySet[PublicCase], query: str) -> QuerySet[PublicCase]:
    """The cases of `cases` whose text or answer contains every word of `query`
    (case-insensitive, full-width and half-width alike). An empty query filters nothing."""
    terms = parse_query(query)
    if not terms:
        return cases
    if connection.vendor == "postgresql":
        cases = cases.extra(  # noqa: S610 — parameters are passed separately
            where=["portal_publiccase.search_vector @@ %s::tsquery"], params=[_tsquery(terms)]
        )
    else:
        cases = cases.extra(  # noqa: S610
            where=[
                "portal_publiccase.case_id IN (SELECT rowid FROM portal_publiccase_fts "
                "WHERE portal_publiccase_fts MATCH %s)"
            ],
            params=[_fts5_query(terms)],
        )
    for term in terms:
        if term.needs_substring_check:
            cases = cases.filter(search_text__contains=term.text)
    return cases
