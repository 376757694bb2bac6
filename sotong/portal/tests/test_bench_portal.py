"""The portal benchmark's seeding shortcuts (bench/portal.py): tokens computed per piece of
a text must be the tokens of the whole text, and COPY fields must survive tabs, line
breaks and backslashes in citizen texts. The seeding also checks itself against
`rebuild()` on a sample; these catch a broken shortcut without seeding anything."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bench.portal import Text, copy_line
from sotong.lib.search_text import index_tokens

PIECES = [
    ["종로구 창신동", "골목 보안등이 꺼졌어요.", "벌써 3일째예요", "(제보 12345)"],
    ["불법주차 신고합니다!!", "ＡＢＣ 마트 앞", "주차가 너무 많아요 ㅠㅠ", "🙏"],
    ["소음", "소음", "층간소음 문제로 민원 넣습니다", "Noise at night"],
    ["연락처 010-1234-5678", "답변은 citizen@example.com 으로 주세요"],
]


@pytest.mark.parametrize("pieces", PIECES)
def test_tokens_of_pieces_are_the_tokens_of_the_whole_text(pieces):
    assert Text.tokens(pieces) == index_tokens(" ".join(pieces))


def test_copy_line_escapes_what_copy_would_misread():
    line = copy_line(["탭\t줄\n바꿈\r역\\슬래시", None, True, 7, datetime(2025, 1, 2, tzinfo=UTC)])
    assert line == ("탭\\t줄\\n바꿈\\r역\\\\슬래시\t\\N\tt\t7\t2025-01-02T00:00:00+00:00\n")
