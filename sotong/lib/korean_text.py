"""Unicode helpers for Korean text: width folding that keeps offsets, safe truncation.

NFKC would also fold full-width forms, but it changes string lengths (and decomposes some
Hangul compatibility jamo), so offsets found on the folded text would not fit the original.
"""

from __future__ import annotations

import re
import unicodedata

# Full-width ASCII (U+FF01–U+FF5E) to ASCII, and the ideographic and other wide spaces to a
# space: one character for one, so every offset in the folded text is valid in the original.
WIDTH_TABLE: dict[int, int] = {code: code - 0xFEE0 for code in range(0xFF01, 0xFF5F)}
WIDTH_TABLE.update({code: 0x20 for code in (0x3000, 0x00A0, 0x2002, 0x2003, 0x2009, 0x202F)})
_NEEDS_WIDTH_FOLD = re.compile("[\uff01-\uff5e\u3000\u00a0\u2002\u2003\u2009\u202f]")


def fold_width(text: str) -> str:
    """Full-width letters, digits and punctuation as their ASCII twins; same length."""
    # translate() is slow on non-ASCII text, and most texts need no folding at all.
    return text.translate(WIDTH_TABLE) if _NEEDS_WIDTH_FOLD.search(text) else text


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
