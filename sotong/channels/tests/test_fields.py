"""Reading a platform payload's fields: whatever a field holds, the connectors get the type
they work with or an empty value, never an exception; ids fit the inbox's columns, texts are
stored clean, and times come out aware or not at all."""

from __future__ import annotations

from collections import OrderedDict
from datetime import UTC, datetime, timedelta, timezone
from types import MappingProxyType

import pytest

from sotong.channels.connectors.fields import (
    as_dict,
    as_id,
    as_list,
    as_mapping,
    as_str,
    as_text,
    iso_moment,
    unix_moment,
)
from sotong.inbox.normalize import MAX_ID

KST = timezone(timedelta(hours=9))
NOT_CONTAINERS = [None, True, 0, 1.5, "text", b"bytes", {1, 2}]


def test_as_dict_keeps_a_dict_and_nothing_else() -> None:
    payload = {"id": "1"}
    assert as_dict(payload) is payload
    assert as_dict(OrderedDict(payload)) == payload  # a dict subclass is a dict
    assert as_dict(MappingProxyType(payload)) == {}  # a mapping, but not a JSON object
    for value in [*NOT_CONTAINERS, [], [("id", "1")]]:
        assert as_dict(value) == {}


def test_as_mapping_keeps_any_mapping() -> None:
    proxy = MappingProxyType({"id": "1"})
    assert as_mapping(proxy) is proxy
    for value in [*NOT_CONTAINERS, [], [("id", "1")]]:
        assert as_mapping(value) == {}


def test_as_list_keeps_a_list_and_tuples_only_when_asked() -> None:
    items = [1, 2]
    assert as_list(items) is items
    assert as_list((1, 2)) == []
    assert as_list((1, 2), tuples=True) == [1, 2]
    assert isinstance(as_list((1, 2), tuples=True), list)
    for value in [*NOT_CONTAINERS, {}, {"a": 1}, range(2)]:
        assert as_list(value) == []
        assert as_list(value, tuples=True) == []


def test_as_str_strips_and_cuts_strings_only() -> None:
    assert as_str("  kim  ") == "kim"
    assert as_str("x" * 10_000) == "x" * MAX_ID
    assert as_str("x" * 10_000, 2000) == "x" * 2000
    assert as_str("  " + "x" * 300, 300) == "x" * 300  # stripped before it is cut
    for value in [None, True, 17, 1.5, b"17", ["17"], {"id": "17"}]:
        assert as_str(value) == ""


def test_as_id_takes_strings_and_integers_but_not_bools() -> None:
    assert as_id(" 17841405309211844 ") == "17841405309211844"
    assert as_id(17841405309211844) == "17841405309211844"
    assert as_id(0) == "0"
    assert as_id(True) == ""
    assert as_id(False) == ""
    for value in [None, 1.0, b"17", ["17"], {"id": "17"}]:
        assert as_id(value) == ""


def test_as_id_cuts_to_the_inbox_column_or_the_limit_given() -> None:
    assert as_id("9" * 10_000) == "9" * MAX_ID
    assert as_id(int("9" * 300)) == "9" * MAX_ID
    assert as_id("9" * 10_000, 2000) == "9" * 2000


def test_as_text_cleans_and_strips() -> None:
    decomposed = "\u1100\u1161"  # 가 typed as jamo
    assert as_text(f"  {decomposed} 민원\x00\x07입니다\n ") == "가 민원입니다"
    assert as_text("줄\n바꿈\t탭") == "줄\n바꿈\t탭"
    assert as_text("&amp; <b>") == "&amp; <b>"  # unescaping is the platform's business
    assert len(as_text("가" * 200_000)) == 200_000  # never cut: the inbox cuts texts
    for value in [None, True, 17, b"text", ["text"], {"text": "t"}]:
        assert as_text(value) == ""


def test_iso_moment_reads_the_platforms_forms() -> None:
    moment = datetime(2024, 8, 7, 10, 33, 16, tzinfo=UTC)
    assert iso_moment("2024-08-07T10:33:16Z") == moment
    assert iso_moment("2024-08-07T10:33:16.000Z") == moment
    assert iso_moment("2024-08-07T10:33:16+0000") == moment  # Threads
    assert iso_moment(" 2024-08-07T19:33:16+09:00\n") == moment
    assert iso_moment("2024-08-07T19:33:16+09:00").utcoffset() == timedelta(hours=9)


def test_iso_moment_takes_a_time_without_offset_in_the_zone_given() -> None:
    assert iso_moment("2024-08-07T10:33:16") == datetime(2024, 8, 7, 10, 33, 16, tzinfo=UTC)
    in_seoul = iso_moment("2024-08-07 19:33:16", naive_zone=KST)
    assert in_seoul == datetime(2024, 8, 7, 10, 33, 16, tzinfo=UTC)
    assert in_seoul is not None and in_seoul.utcoffset() == timedelta(hours=9)
    assert iso_moment("2024-08-07T10:33:16", naive_zone=None) is None
    assert iso_moment("2024-08-07T10:33:16Z", naive_zone=None) is not None


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        1723026796,
        1723026796.5,
        datetime(2024, 8, 7, tzinfo=UTC),
        "",
        "   ",
        "yesterday",
        "2024-13-01T00:00:00Z",
        "2024-02-30T00:00:00Z",
        "2024-08-07T25:00:00Z",
        "Wed Oct 10 20:19:24 +0000 2018",
        "2024-08-07T10:33:16ZZ",
        "9" * 10_000,
    ],
)
def test_iso_moment_refuses_what_is_not_an_iso_time(value: object) -> None:
    assert iso_moment(value) is None


def test_unix_moment_reads_seconds_and_milliseconds() -> None:
    moment = datetime(2024, 8, 7, 10, 33, 16, tzinfo=UTC)
    assert unix_moment(1723026796) == moment  # seconds: Meta's feed
    assert unix_moment(1723026796000) == moment  # milliseconds: Messenger
    assert unix_moment(1723026796.5) == moment + timedelta(milliseconds=500)
    assert unix_moment(1) == datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC)
    aware = unix_moment(1723026796)
    assert aware is not None and aware.tzinfo is UTC


@pytest.mark.parametrize(
    "value",
    [None, True, False, 0, -1, -1723026796000, "1723026796", b"1", [1], 10**30, float("inf")],
)
def test_unix_moment_refuses_what_is_not_a_usable_unix_time(value: object) -> None:
    assert unix_moment(value) is None


def test_unix_moment_refuses_nan() -> None:
    assert unix_moment(float("nan")) is None
