"""The morphological analyser behind the trained models' features: what it makes of
complaint words, that it is shared and its results cached, and what it costs in memory."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sotong.triage.text_features import kiwi, morphemes, normalize, word_morphemes

# A fresh process creates the analyser and analyses a few words one at a time, as the
# models do, and says how much its resident memory grew.
MEMORY_PROBE = """
import json
from sotong.triage.text_features import morphemes, normalize

def rss_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024

before = rss_mb()
morphemes(normalize("무의도 선착장 가로등이 고장났어요 빨리 고쳐주세요"))
print(json.dumps({"analyser_mb": rss_mb() - before}))
"""


def test_complaint_words_become_content_morphemes() -> None:
    assert morphemes(normalize("가로등이 고장났어요, 고쳐주세요!")) == (
        "가로등",
        "고장",
        "나다",
        "고치다",
    )


def test_place_names_of_the_default_dictionary_stay_whole() -> None:
    # The islands of Incheon's Jung-gu are in the default dictionary: without it 무의도
    # becomes 무 + 의도 and the router loses the place.
    assert word_morphemes("무의도") == ("무의도",)
    assert word_morphemes("잠진도에") == ("잠진도",)


def test_one_analyser_per_process_and_words_cached() -> None:
    assert kiwi() is kiwi()
    word_morphemes.cache_clear()
    first = word_morphemes("쓰레기를")
    assert word_morphemes("쓰레기를") == first == ("쓰레기",)
    assert word_morphemes.cache_info().hits == 1


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc (Linux)")
def test_analyser_memory_without_the_multi_word_dictionary() -> None:
    # About 320 MB measured; with the multi-word dictionary it was about 490 MB.
    done = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[3],
    )
    grown = json.loads(done.stdout.strip().splitlines()[-1])["analyser_mb"]
    assert grown < 420, f"the analyser took {grown:.0f} MB"
