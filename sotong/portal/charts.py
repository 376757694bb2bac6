"""The portal's charts as hand-written SVG: horizontal bars, stacked daily columns and a
histogram, each returned as a safe `<svg>` element to put straight into a page.

No plotting library: matplotlib and pygal write `style=` attributes or inline `<style>` and
scripts into their SVG, which our Content-Security-Policy (no 'unsafe-inline') forbids, and
these charts are simple. Colours come from classes in `static/portal/charts.css` (each
≥ 3:1 against white for graphics, ≥ 4.5:1 for text); every text is escaped; sizes use a
viewBox drawn for a 360 px phone and scaled to the width of the page.
"""

from __future__ import annotations

import hashlib
import math
import unicodedata
from collections.abc import Mapping, Sequence
from datetime import date

from django.utils.formats import number_format
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext

WIDTH = 400  # viewBox width; on a 360 px phone one unit is about 0.85 px
FONT_SIZE = 14  # labels; ticks use TICK_SIZE
TICK_SIZE = 12
SERIES_CLASSES = 8  # chart-s0 … chart-s7 in charts.css; more series reuse them in turn
PLOT_HEIGHT = 180  # the column charts' plot area


def number_text(value: float) -> str:
    """A count as the reader's language writes it, with thousands grouped."""
    return number_format(value, force_grouping=True)


def text_width(text: str, size: float = FONT_SIZE) -> float:
    """An estimate of a text's width: Hangul and other wide characters take a full em,
    the rest about 0.6 em. Good enough to place labels without measuring fonts."""
    return sum(
        size if unicodedata.east_asian_width(ch) in ("W", "F") else 0.6 * size for ch in text
    )


def fit_text(text: str, width: float, size: float = FONT_SIZE) -> str:
    """The text, cut with an ellipsis if it would be wider than `width`."""
    if text_width(text, size) <= width:
        return text
    while text and text_width(text + "…", size) > width:
        text = text[:-1]
    return text + "…"


def nice_ticks(top: float, most: int = 5) -> list[int]:
    """Whole-number ticks from 0 up to `top`, on a step of 1, 2 or 5 × 10ⁿ, at most `most`
    of them above zero."""
    if top <= 0:
        return [0]
    step = 1
    for magnitude in (10**n for n in range(16)):
        for factor in (1, 2, 5):
            step = factor * magnitude
            if top / step <= most:
                return list(range(0, int(top) + 1, step))
    return [0]  # unreachable for any count that fits in a database


def _chart_id(kind: str, title: str, data: object) -> str:
    # Stable, so that the same chart renders the same bytes; distinct per chart on a page.
    digest = hashlib.blake2s(repr((kind, title, data)).encode(), digest_size=4).hexdigest()
    return f"chart-{kind}-{digest}"


def _fmt(value: float) -> str:
    return f"{value:.1f}".removesuffix(".0")


def _svg(
    kind: str, uid: str, title: str, desc: str, height: float, body: list[SafeString]
) -> SafeString:
    head = format_html(
        '<svg xmlns="http://www.w3.org/2000/svg" class="chart chart-{}" role="img" '
        'aria-labelledby="{}-title" aria-describedby="{}-desc" viewBox="0 0 {} {}" '
        'width="100%" font-size="{}"><title id="{}-title">{}</title><desc id="{}-desc">{}</desc>',
        kind,
        uid,
        uid,
        WIDTH,
        _fmt(height),
        FONT_SIZE,
        uid,
        title,
        uid,
        desc,
    )
    # Every part comes from format_html, so the whole is escaped.
    return mark_safe(head + "".join(body) + "</svg>")


def _empty(kind: str, title: str) -> SafeString:
    """A chart with nothing to draw: says so instead of dividing by zero."""
    uid = _chart_id(kind, title, None)
    no_data = gettext("No data")
    body = [
        format_html(
            '<text class="chart-empty" x="{}" y="36" text-anchor="middle">{}</text>',
            WIDTH // 2,
            no_data,
        )
    ]
    return _svg(kind, uid, title, no_data, 60, body)


def _value_axis(x0: float, y0: float, width: float, height: float, top: int) -> list[SafeString]:
    """Horizontal grid lines with their counts at the left, for the column charts."""
    parts = []
    for tick in nice_ticks(top):
        y = y0 + height - tick / top * height
        parts.append(
            format_html(
                '<line class="chart-grid" x1="{}" y1="{}" x2="{}" y2="{}"/>'
                '<text class="chart-tick" x="{}" y="{}" text-anchor="end" font-size="{}">{}</text>',
                _fmt(x0),
                _fmt(y),
                _fmt(x0 + width),
                _fmt(y),
                _fmt(x0 - 4),
                _fmt(y + TICK_SIZE * 0.35),
                TICK_SIZE,
                number_text(tick),
            )
        )
    return parts


def _axis_left(top: int) -> float:
    return max(text_width(number_text(t), TICK_SIZE) for t in nice_ticks(top)) + 8


def bar_chart(items: Sequence[tuple[str, int]], *, title: str) -> SafeString:
    """Horizontal bars, one per (label, count), in the order given; the longest bar is the
    largest count. Each label sits above its bar so that long Korean names stay readable
    on a phone; the count follows the bar."""
    items = list(items)
    top = max((value for _, value in items), default=0)
    if top <= 0:
        return _empty("bar", title)
    uid = _chart_id("bar", title, items)
    row, bar_height = 42, 14
    value_space = max(text_width(number_text(v)) for _, v in items) + 8
    plot = WIDTH - value_space
    rows_height = row * len(items)
    ticks = nice_ticks(top)
    parts = []
    for tick in ticks:
        x = tick / top * plot
        parts.append(
            format_html(
                '<line class="chart-grid" x1="{}" y1="0" x2="{}" y2="{}"/>'
                '<text class="chart-tick" x="{}" y="{}" text-anchor="{}" font-size="{}">{}</text>',
                _fmt(x),
                _fmt(x),
                rows_height,
                _fmt(x),
                rows_height + TICK_SIZE + 4,
                "start" if tick == 0 else "middle",
                TICK_SIZE,
                number_text(tick),
            )
        )
    for i, (label, value) in enumerate(items):
        y = i * row
        length = value / top * plot
        parts.append(
            format_html(
                '<text class="chart-label" x="0" y="{}">{}</text>'
                '<rect class="chart-s0" x="0" y="{}" width="{}" height="{}">'
                "<title>{}: {}</title></rect>"
                '<text class="chart-value" x="{}" y="{}">{}</text>',
                y + FONT_SIZE + 2,
                fit_text(label, WIDTH),
                y + 22,
                _fmt(length),
                bar_height,
                label,
                number_text(value),
                _fmt(length + 4),
                y + 22 + bar_height - 2,
                number_text(value),
            )
        )
    desc = "; ".join(f"{label}: {number_text(value)}" for label, value in items)
    return _svg("bar", uid, title, desc, rows_height + TICK_SIZE + 8, parts)


def _category_labels(
    labels: Sequence[str], x0: float, slot: float, y: float, every: int = 1
) -> tuple[list[SafeString], float]:
    """Labels under the columns: level when they fit, else turned upright (rotated by a
    presentation attribute). Only every `every`-th label from the last one is drawn.
    Returns the parts and the height they take."""
    widest = max(text_width(label, TICK_SIZE) for label in labels)
    level = widest <= slot * every - 2
    parts = []
    last = len(labels) - 1
    for i, label in enumerate(labels):
        if (last - i) % every:
            continue
        cx = x0 + (i + 0.5) * slot
        if level:
            # Kept inside the viewBox: the last label ends at the edge instead of past it.
            half = text_width(label, TICK_SIZE) / 2
            anchor, x = ("end", WIDTH - 1) if cx + half > WIDTH else ("middle", cx)
            parts.append(
                format_html(
                    '<text class="chart-tick" x="{}" y="{}" text-anchor="{}" '
                    'font-size="{}">{}</text>',
                    _fmt(x),
                    _fmt(y + TICK_SIZE + 2),
                    anchor,
                    TICK_SIZE,
                    label,
                )
            )
        else:
            parts.append(
                format_html(
                    '<text class="chart-tick" x="{}" y="{}" text-anchor="end" font-size="{}" '
                    'transform="rotate(-90 {} {})">{}</text>',
                    _fmt(cx + TICK_SIZE * 0.35),
                    _fmt(y + 4),
                    TICK_SIZE,
                    _fmt(cx + TICK_SIZE * 0.35),
                    _fmt(y + 4),
                    label,
                )
            )
    return parts, (TICK_SIZE + 6 if level else widest + 8)


def histogram_chart(bins: Sequence[tuple[str, int]], *, title: str) -> SafeString:
    """Columns, one per (bin label, count), in the order given, e.g. the time to answer
    in hours; the tallest column is the largest count."""
    bins = list(bins)
    top = max((value for _, value in bins), default=0)
    if top <= 0:
        return _empty("histogram", title)
    uid = _chart_id("histogram", title, bins)
    x0, y0 = _axis_left(top), 8.0
    width = WIDTH - x0 - 2
    slot = width / len(bins)
    parts = _value_axis(x0, y0, width, PLOT_HEIGHT, top)
    for i, (label, value) in enumerate(bins):
        height = value / top * PLOT_HEIGHT
        parts.append(
            format_html(
                '<rect class="chart-s0" x="{}" y="{}" width="{}" height="{}">'
                "<title>{}: {}</title></rect>",
                _fmt(x0 + i * slot + slot * 0.1),
                _fmt(y0 + PLOT_HEIGHT - height),
                _fmt(slot * 0.8),
                _fmt(height),
                label,
                number_text(value),
            )
        )
    labels, labels_height = _category_labels(
        [label for label, _ in bins], x0, slot, y0 + PLOT_HEIGHT
    )
    parts.extend(labels)
    desc = "; ".join(f"{label}: {number_text(value)}" for label, value in bins)
    return _svg("histogram", uid, title, desc, y0 + PLOT_HEIGHT + labels_height, parts)


def _legend(series: Sequence[tuple[str, str]]) -> tuple[list[SafeString], float]:
    """Swatches with the series' labels, wrapped into rows across the width."""
    parts = []
    x, y, line = 0.0, 0.0, 22
    for i, (_, label) in enumerate(series):
        label = fit_text(label, WIDTH - 18)
        item = 18 + text_width(label) + 14
        if x and x + item > WIDTH:
            x, y = 0.0, y + line
        parts.append(
            format_html(
                '<rect class="chart-s{}" x="{}" y="{}" width="12" height="12"/>'
                '<text class="chart-label" x="{}" y="{}">{}</text>',
                i % SERIES_CLASSES,
                _fmt(x),
                _fmt(y + 4),
                _fmt(x + 17),
                _fmt(y + 15),
                label,
            )
        )
        x += item
    return parts, y + line + 6


def daily_chart(
    days: Sequence[tuple[date, Mapping[str, int]]],
    series: Sequence[tuple[str, str]],
    *,
    title: str,
) -> SafeString:
    """Stacked columns, one per day, each made of the `series` (key, label) in stacking
    order from the bottom, with a legend above. Counts under keys not in `series` are not
    drawn; pass at most eight series (group the rest as "other") so that no two share a
    colour. The tallest column is the busiest day."""
    days = list(days)
    series = list(series)
    totals = [sum(counts.get(key, 0) for key, _ in series) for _, counts in days]
    top = max(totals, default=0)
    if top <= 0:
        return _empty("daily", title)
    uid = _chart_id("daily", title, (days, series))
    parts, legend_height = _legend(series)
    x0, y0 = _axis_left(top), legend_height + 8
    width = WIDTH - x0 - 2
    slot = width / len(days)
    parts.extend(_value_axis(x0, y0, width, PLOT_HEIGHT, top))
    for i, (day, counts) in enumerate(days):
        base = y0 + PLOT_HEIGHT
        for s, (key, label) in enumerate(series):
            value = counts.get(key, 0)
            if value <= 0:
                continue
            height = value / top * PLOT_HEIGHT
            base -= height
            parts.append(
                format_html(
                    '<rect class="chart-s{}" x="{}" y="{}" width="{}" height="{}">'
                    "<title>{} {}: {}</title></rect>",
                    s % SERIES_CLASSES,
                    _fmt(x0 + i * slot + slot * 0.1),
                    _fmt(base),
                    _fmt(slot * 0.8),
                    _fmt(height),
                    day.isoformat(),
                    label,
                    number_text(value),
                )
            )
    labels = [f"{day.month}/{day.day}" for day, _ in days]
    every = max(1, math.ceil((max(text_width(x, TICK_SIZE) for x in labels) + 6) / slot))
    ticks, labels_height = _category_labels(labels, x0, slot, y0 + PLOT_HEIGHT, every)
    parts.extend(ticks)
    busiest = totals.index(top)
    desc = gettext(
        "%(first)s to %(last)s: %(total)s in all; the busiest day was %(day)s with %(most)s."
    ) % {
        "first": days[0][0].isoformat(),
        "last": days[-1][0].isoformat(),
        "total": number_text(sum(totals)),
        "day": days[busiest][0].isoformat(),
        "most": number_text(top),
    }
    return _svg("daily", uid, title, desc, y0 + PLOT_HEIGHT + labels_height, parts)
