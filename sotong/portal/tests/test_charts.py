"""The portal's SVG charts: well-formed, proportional, escaped, accessible, free of inline
styles (the Content-Security-Policy forbids them) and drawn in colours that can be read."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import date, timedelta
from pathlib import Path

import pytest
from django.utils.translation import override

from sotong.portal.charts import PLOT_HEIGHT, bar_chart, daily_chart, histogram_chart

SVG = "{http://www.w3.org/2000/svg}"
CSS = Path(__file__).resolve().parents[2] / "static" / "portal" / "charts.css"
NASTY = "<script>alert(1)</script> & 'quotes\""


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)  # raises on anything that is not well-formed XML


def rects(root: ET.Element, css: str = "chart-s0") -> list[ET.Element]:
    return [r for r in root.iter(f"{SVG}rect") if css in r.get("class", "").split()]


def texts(root: ET.Element, css: str) -> list[str]:
    return [t.text or "" for t in root.iter(f"{SVG}text") if t.get("class") == css]


def every_chart() -> list[str]:
    days = [(date(2025, 5, 1) + timedelta(days=i), {"web": i, "x": 2}) for i in range(30)]
    return [
        bar_chart([(NASTY, 3), ("소음", 1)], title=NASTY),
        histogram_chart([("≤1", 4), (NASTY, 2)], title=NASTY),
        daily_chart(days, [("web", NASTY), ("x", "X")], title=NASTY),
        bar_chart([], title="empty"),
        daily_chart([], [], title="empty"),
        histogram_chart([("≤1", 0)], title="empty"),
    ]


def test_bars_are_proportional_and_the_largest_fills_the_plot():
    root = parse(bar_chart([("주차", 120), ("소음", 60), ("악취", 30), ("누수", 0)], title="t"))
    widths = [float(r.get("width")) for r in rects(root)]
    assert len(widths) == 4
    assert widths[0] == pytest.approx(2 * widths[1], abs=0.1)
    assert widths[1] == pytest.approx(2 * widths[2], abs=0.1)
    assert widths[3] == 0
    # The axis ends at the largest value: its bar reaches the tick that marks it.
    ticks = dict(zip(texts(root, "chart-tick"), root.iter(f"{SVG}line"), strict=True))
    assert {"0", "50", "100"} <= set(ticks)
    assert float(ticks["100"].get("x1")) == pytest.approx(widths[0] * 100 / 120, abs=0.1)
    assert texts(root, "chart-label") == ["주차", "소음", "악취", "누수"]
    assert texts(root, "chart-value") == ["120", "60", "30", "0"]


def test_counts_are_grouped_in_thousands():
    root = parse(bar_chart([("주차", 12345)], title="t"))
    assert texts(root, "chart-value") == ["12,345"]


def test_histogram_columns_scale_to_the_tallest():
    root = parse(histogram_chart([("≤1", 10), ("1–2", 5), (">720", 0)], title="t"))
    heights = [float(r.get("height")) for r in rects(root)]
    assert heights == [pytest.approx(PLOT_HEIGHT), pytest.approx(PLOT_HEIGHT / 2), 0]
    assert [r.find(f"{SVG}title").text for r in rects(root)] == ["≤1: 10", "1–2: 5", ">720: 0"]
    assert "≤1" in texts(root, "chart-tick")


def test_daily_columns_stack_the_series_with_a_legend():
    days = [
        (date(2025, 5, 1), {"web": 6, "x": 2}),
        (date(2025, 5, 2), {"web": 1, "x": 3, "ignored": 100}),
        (date(2025, 5, 3), {}),
    ]
    root = parse(daily_chart(days, [("web", "웹"), ("x", "X")], title="t"))
    web, x = rects(root, "chart-s0"), rects(root, "chart-s1")
    # One swatch in the legend per series, then one segment per non-zero count.
    assert [len(web), len(x)] == [3, 3]
    assert texts(root, "chart-label") == ["웹", "X"]
    first_day = float(web[1].get("height")) + float(x[1].get("height"))
    second_day = float(web[2].get("height")) + float(x[2].get("height"))
    assert first_day == pytest.approx(PLOT_HEIGHT)  # the busiest day: 8
    assert second_day == pytest.approx(PLOT_HEIGHT / 2)  # 4; keys not in series ignored
    # Stacked: the second series sits right on top of the first.
    assert float(x[1].get("y")) + float(x[1].get("height")) == pytest.approx(
        float(web[1].get("y")), abs=0.1
    )
    assert web[1].find(f"{SVG}title").text == "2025-05-01 웹: 6"
    assert "5/3" in texts(root, "chart-tick")


def test_a_month_of_days_labels_some_days_including_the_last():
    days = [(date(2025, 5, 1) + timedelta(days=i), {"web": 1}) for i in range(31)]
    root = parse(daily_chart(days, [("web", "웹")], title="t"))
    labels = [t for t in texts(root, "chart-tick") if "/" in t]
    assert labels[-1] == "5/31"
    assert 3 <= len(labels) < 31


@pytest.mark.parametrize("chart", [0, 1, 2])
def test_labels_and_titles_are_escaped(chart):
    svg = str(every_chart()[chart])
    assert "<script>" not in svg
    root = parse(svg)
    assert root.find(f"{SVG}title").text == NASTY
    assert any(NASTY in "".join(e.itertext()) for e in root.iter() if e is not root)


def test_no_inline_style_or_script_anywhere():
    for svg in every_chart():
        for element in parse(svg).iter():
            assert "style" not in element.attrib
            assert not any(name.startswith("on") for name in element.attrib)
            assert element.tag not in (f"{SVG}style", f"{SVG}script")


def test_charts_are_accessible_images_that_scale():
    for svg in every_chart():
        root = parse(svg)
        assert root.get("role") == "img"
        assert root.get("width") == "100%" and root.get("viewBox").startswith("0 0 ")
        title = root.find(f"{SVG}title")
        assert root.get("aria-labelledby") == title.get("id")
        assert root.find(f"{SVG}desc").get("id") == root.get("aria-describedby")
        assert title.text


def test_two_charts_on_a_page_have_different_ids():
    a = parse(bar_chart([("a", 1)], title="by category"))
    b = parse(bar_chart([("a", 1)], title="by unit"))
    assert a.get("aria-labelledby") != b.get("aria-labelledby")


@pytest.mark.parametrize("chart", [3, 4, 5])
def test_no_data_draws_an_empty_chart_that_says_so(chart):
    with override("en"):
        root = parse(every_chart()[chart])
    assert texts(root, "chart-empty") == ["No data"]
    assert not list(root.iter(f"{SVG}rect"))


def test_all_zero_days_are_no_data_too():
    days = [(date(2025, 5, 1), {"web": 0})]
    with override("en"):
        root = parse(daily_chart(days, [("web", "웹")], title="t"))
    assert texts(root, "chart-empty") == ["No data"]


# --- Colours -----------------------------------------------------------------------------


def luminance(hex_colour: str) -> float:
    channels = [int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast_with_white(hex_colour: str) -> float:
    return 1.05 / (luminance(hex_colour) + 0.05)


def css_rules() -> dict[str, str]:
    css = re.sub(r"/\*.*?\*/", "", CSS.read_text(), flags=re.S)
    return {selector.strip(): body for selector, body in re.findall(r"([^{}]+)\{([^}]*)\}", css)}


def test_series_and_shades_stand_out_from_white_and_texts_are_readable():
    rules = css_rules()
    fills = {
        selector: re.search(r"fill:\s*(#[0-9a-fA-F]{6})", body).group(1)
        for selector, body in rules.items()
        if "fill:" in body
    }
    graphics = [s for s in fills if re.fullmatch(r"\.(chart-s\d|map-q\d)", s)]
    assert len(graphics) == 8 + 5
    for selector in graphics:
        assert contrast_with_white(fills[selector]) >= 3, selector
    text_selectors = [s for s in fills if "text" in s or "tick" in s or "empty" in s]
    assert text_selectors
    for selector in text_selectors:
        assert contrast_with_white(fills[selector]) >= 4.5, selector
