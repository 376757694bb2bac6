"""Unicode helpers for Korean text: width folding that keeps offsets, safe truncation.

NFKC would also fold full-width forms, but it changes string lengths (and decomposes some
Hangul compatibility jamo), so offsets found on the folded text would not fit the original.
"""

from __future__ import annotations

import unicodedata

# Full-width ASCII (U+FF01–U+FF5E) to ASCII and the ideographic space to a space: one
# character for one, so every offset in the folded text is valid in the original.
_WIDTH_TABLE = {code: code - 0xFEE0 for code in range(0xFF01, 0xFF5F)}
_WIDTH_TABLE[0x3000] = 0x20


def fold_width(text: str) -> str:
    """Full-width letters, digits and punctuation as their ASCII twins; same length."""
    return text.translate(_WIDTH_TABLE)


def clean_text(text: str) -> str:
    """Text as stored: NFC-composed (so 가 typed as jamo matches 가), NUL and other C0
    control characters other than tab and newlines removed; nothing else changed."""
    text = unicodedata.normalize("NFC", text)
    return "".join(ch for ch in text if ch >= " " or ch in "\t\n\r")


def shorten(text: str, limit: int) -> str:
    """At most `limit` characters, cut on a grapheme-safe boundary, with an ellipsis."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    # Do not leave a dangling combining mark or a lone high surrogate-like joiner.
    while cut and unicodedata.combining(cut[-1]):
        cut = cut[:-1]
    if cut.endswith("\u200d"):
        cut = cut[:-1]
    return cut + "…"
