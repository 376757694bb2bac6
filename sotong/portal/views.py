"""The public pages: the live overview, the case list with its filters and search, a page
per case, and the language switch. Views parse the request and call
`sotong.portal.selectors` (the read model) and `sotong.cases.selectors` (a case's public
timeline); the pages are micro-cached for anonymous visitors (`sotong.portal.caching`)."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from html import escape

from django.conf import settings
from django.core.cache import caches
from django.db.models import Max, Q
from django.http import HttpRequest, HttpResponse, JsonResponse, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.utils.safestring import SafeString, mark_safe
from django.utils.text import Truncator
from django.utils.translation import get_language
from django.utils.translation import gettext as _
from django.views.decorators.http import condition

from sotong.cases import selectors as case_selectors
from sotong.cases.models import case_number, parse_case_number
from sotong.errors import NotFound
from sotong.portal import charts, district_map, selectors
from sotong.portal.caching import LIVE_SECONDS, micro_cached
from sotong.portal.filters import case_key, filters_from_query
from sotong.portal.models import PublicCase, PublicState, Tally

NEWEST_ON_OVERVIEW = 5
# The pictures are redrawn when the figures change (the cache key is the overview's
# fingerprint), and at least this often for what the fingerprint does not see: messages
# imported with a date before this month move only the 30-day chart.
CHARTS_CACHE_SECONDS = 30
MAP_MEASURES = ("volume", "overdue")


# --- The overview ----------------------------------------------------------------------


def _overview_version(request: HttpRequest) -> str:
    """A cheap fingerprint of the overview: today's and this month's overall counters (a
    dozen indexed rows) and the newest change to any public case (an index's last entry).
    A transfer or a new category moves only the second; a message that opens no case only
    the first. Equal fingerprints, equal figures: the live poll then costs a 304."""
    today = timezone.localdate()
    counts = Tally.objects.filter(
        Q(period="day", day=today) | Q(period="month", day=today.replace(day=1)),
        dimension="all",
    ).values_list("period", "measure", "count")
    newest = PublicCase.objects.aggregate(newest=Max("updated_at"))["newest"]
    parts = sorted(f"{p}:{m}:{n}" for p, m, n in counts)
    stamp = newest.isoformat() if newest else "-"
    return f"{today.isoformat()}|{stamp}|{','.join(parts)}|{get_language()}"


def _etag(request: HttpRequest) -> str:
    return hashlib.sha256(_overview_version(request).encode()).hexdigest()[:20]


@dataclass
class Cell:
    """One number of a table. `figure` names it in the live JSON (see live.js), empty for a
    number that no longer changes (a past day)."""

    figure: str
    value: int | float | None
    format: str = "count"  # count, share (0–1) or hours

    @property
    def text(self) -> str:
        """The number as the page shows it; live.js writes it the same way (floor of x +
        0.5 in both, so that the two never round a half apart)."""
        if self.value is None:
            return "—"
        if self.format == "share":
            return f"{math.floor(self.value * 100 + 0.5)}%"
        if self.format == "hours":
            return f"{math.floor(self.value * 10 + 0.5) / 10:.1f}"
        return f"{self.value:,}"

    @property
    def html(self) -> str:
        """The cell's `<td>`, escaped (stdlib escaping: the overview has some 1,500 cells,
        and Django's lazy-aware helpers would spend most of the page's time on them)."""
        if not self.figure:
            return f'<td class="num">{escape(self.text)}</td>'
        return (
            f'<td class="num" data-figure="{escape(self.figure)}" '
            f'data-format="{escape(self.format)}">{escape(self.text)}</td>'
        )


@dataclass
class Row:
    key: str
    label: str
    cells: list[Cell]

    @property
    def cells_html(self) -> SafeString:
        # Every part is escaped by Cell.html.
        return mark_safe("".join(cell.html for cell in self.cells))  # noqa: S308


@dataclass
class FigureTable:
    """A table of the overview. A table by dimension names its cells by key, so the live
    update can add a line that appears after the page was drawn (`row_template`)."""

    id: str
    caption: str
    columns: list[str]
    rows: list[Row]
    dimension: str = ""
    row_template: list[Cell] | None = None


@dataclass
class Chart:
    """A picture of the overview; the table of its numbers is drawn beside it."""

    id: str
    svg: str


def _key_figures(today: selectors.Figures, month: selectors.Figures) -> FigureTable:
    measures = [
        ("received", _("Messages received")),
        ("relevant", _("Cases opened (city business)")),
        ("answered", _("Answered")),
        ("in_progress", _("In progress")),
        ("on_hold", _("On hold")),
        ("overdue", _("Overdue")),
        ("merged", _("Merged into another case")),
    ]
    rows = [
        Row(m, label, [Cell(f"today.{m}", today[m]), Cell(f"month.{m}", month[m])])
        for m, label in measures
    ]
    for attribute, label, kind in (
        ("on_time_share", _("Answered within the deadline"), "share"),
        ("median_hours", _("Median time to answer (hours)"), "hours"),
        ("p90_hours", _("90th percentile of the time to answer (hours)"), "hours"),
    ):
        rows.append(
            Row(
                attribute,
                label,
                [
                    Cell(f"today.{attribute}", getattr(today, attribute), kind),
                    Cell(f"month.{attribute}", getattr(month, attribute), kind),
                ],
            )
        )
    return FigureTable(
        "figures",
        _("Cases received today and this month, by where they stand now"),
        [_("Today"), _("This month")],
        rows,
    )


_STATE_COLUMNS = ("answered", "in_progress", "on_hold", "overdue")


def _dimension_table(
    dimension: str, caption: str, today: selectors.Figures, month: selectors.Figures
) -> FigureTable:
    state_labels = [_("Answered"), _("In progress"), _("On hold"), _("Overdue")]
    received = dimension == "channel"
    columns = [_("Messages today"), _("Messages this month")] if received else []
    columns += [_("Cases today"), _("Cases this month"), *state_labels]
    measures = [("today", "received"), ("month", "received")] if received else []
    measures += [("today", "relevant"), ("month", "relevant")]
    measures += [("month", m) for m in _STATE_COLUMNS]
    todays = {line.key: line for line in today.by[dimension]}
    rows = []
    for line in month.by[dimension]:
        # Today's cases are among this month's, so this month's lines name every key.
        counts = {
            "today": todays[line.key].counts if line.key in todays else {},
            "month": line.counts,
        }
        cells = [
            Cell(f"{period}.{dimension}.{line.key}.{m}", counts[period].get(m, 0))
            for period, m in measures
        ]
        rows.append(Row(line.key, line.label, cells))
    template = [Cell(f"{period}.{dimension}.{{key}}.{m}", 0) for period, m in measures]
    return FigureTable(dimension, caption, columns, rows, dimension, template)


def _daily_table(
    days: list[tuple[date, dict[str, int]]], series: list[tuple[str, str]], today: date
) -> FigureTable:
    rows = []
    for day, counts in reversed(days):
        live = day == today
        cells = [Cell("today.received" if live else "", sum(counts.values()))]
        cells += [
            Cell(f"today.channel.{code}.received" if live else "", counts.get(code, 0))
            for code, _label in series
        ]
        rows.append(Row(day.isoformat(), date_format(day, "SHORT_DATE_FORMAT"), cells))
    return FigureTable(
        "daily",
        _("Messages received per day by channel, last 30 days"),
        [_("All channels"), *(label for _code, label in series)],
        rows,
    )


def _answer_time_table(today: selectors.Figures, month: selectors.Figures) -> FigureTable:
    todays = dict(today.answer_times)
    return FigureTable(
        "answer-times",
        _("Answers by time to answer, in hours"),
        [_("Today"), _("This month")],
        [
            Row(
                label,
                label,
                [
                    Cell(f"today.answer_time.{label}", todays.get(label, 0)),
                    Cell(f"month.answer_time.{label}", n),
                ],
            )
            for label, n in month.answer_times
        ],
    )


def _charts(
    overview: selectors.Overview,
    days: list[tuple[date, dict[str, int]]],
    series: list[tuple[str, str]],
    map_measure: str,
) -> dict[str, Chart]:
    """The overview's pictures (this month; daily volume over 30 days), drawn by
    `sotong.portal.charts` and `sotong.portal.district_map`; each page section puts the
    table of the same numbers beside its picture."""
    month = overview.periods["month"]
    values, value_text = _map_values(month, map_measure)
    map_title = (
        _("Share of this month's cases overdue, by district")
        if map_measure == "overdue"
        else _("Cases this month by district")
    )
    return {
        "daily": Chart(
            "daily",
            charts.daily_chart(
                days, series, title=_("Messages received per day by channel, last 30 days")
            ),
        ),
        "category": Chart(
            "category",
            charts.bar_chart(
                [(line.label, line.relevant) for line in month.by["category"]],
                title=_("Cases this month by category"),
            ),
        ),
        "answer_times": Chart(
            "answer-times",
            charts.histogram_chart(
                month.answer_times, title=_("Answers this month by time to answer, in hours")
            ),
        ),
        "district": Chart(
            "district",
            district_map.district_map(
                values,
                title=map_title,
                link=lambda name: f"{reverse('portal:cases')}?{urlencode({'district': name})}",
                value_text=value_text,
            ),
        ),
    }


def _map_values(
    month: selectors.Figures, measure: str
) -> tuple[dict[str, float], Callable[[float], str]]:
    values: dict[str, float] = {}
    for line in month.by["district"]:
        if not line.key:
            continue
        if measure == "overdue":
            values[line.key] = line.overdue / line.relevant if line.relevant else 0.0
        else:
            values[line.key] = float(line.relevant)

    def share(value: float) -> str:
        return f"{value * 100:.0f}%"

    def count(value: float) -> str:
        return f"{value:.0f}"

    return values, share if measure == "overdue" else count


@micro_cached()
def overview(request: HttpRequest) -> HttpResponse:
    number = request.GET.get("number", "").strip()
    if number:
        pk = parse_case_number(number)
        if pk is None:
            raise NotFound(_("There is no case with that number."))
        return redirect("portal:case", number=case_number(pk))
    figures = selectors.overview()
    today, month = figures.periods["today"], figures.periods["month"]
    map_measure = request.GET.get("map", "")
    map_measure = map_measure if map_measure in MAP_MEASURES else "volume"
    days = selectors.daily_volume(30, today=figures.today)
    english = selectors.is_english()
    names = {c.code: c.label(english) for c in selectors.public_directory().channels}
    series = [(code, name) for code, name in names.items() if any(code in n for _d, n in days)]
    dimensions = {
        "channel": _("Cases by channel"),
        "category": _("Cases by category"),
        "unit": _("Cases by unit in charge"),
        "district": _("Cases by district"),
    }
    return render(
        request,
        "portal/overview.html",
        {
            "overview": figures,
            "key_figures": _key_figures(today, month),
            "tiles": [
                (_("Messages received"), Cell("today.received", today["received"])),
                (_("Cases opened (city business)"), Cell("today.relevant", today["relevant"])),
                (_("Answered"), Cell("today.answered", today["answered"])),
                (_("Overdue"), Cell("today.overdue", today["overdue"])),
            ],
            "answer_summary": [
                (
                    _("Median this month (hours)"),
                    Cell("month.median_hours", month.median_hours, "hours"),
                ),
                (
                    _("90th percentile this month (hours)"),
                    Cell("month.p90_hours", month.p90_hours, "hours"),
                ),
                (
                    _("Answered within the deadline this month"),
                    Cell("month.on_time_share", month.on_time_share, "share"),
                ),
            ],
            "daily": _daily_table(days, series, figures.today),
            "by": {
                dimension: _dimension_table(dimension, caption, today, month)
                for dimension, caption in dimensions.items()
            },
            "answer_times": _answer_time_table(today, month),
            "charts": caches["local"].get_or_set(
                f"portal:overview-charts:{_etag(request)}:{map_measure}",
                lambda: _charts(figures, days, series, map_measure),
                CHARTS_CACHE_SECONDS,
            ),
            "map_measure": map_measure,
            "newest": _case_rows(
                selectors.case_page(selectors.CaseFilters(), size=NEWEST_ON_OVERVIEW).cases
            ),
        },
    )


@micro_cached(LIVE_SECONDS)
@condition(etag_func=_etag)
def overview_live(request: HttpRequest) -> JsonResponse:
    """The overview's figures for the page's live update. Polled every second or so with
    If-None-Match: an unchanged overview answers 304 without computing the figures."""
    figures = selectors.overview()
    response = JsonResponse(
        {
            "as_of": figures.as_of.isoformat(),
            "today": figures.periods["today"].as_dict(),
            "month": figures.periods["month"].as_dict(),
        }
    )
    response["Cache-Control"] = "no-cache"
    return response


# --- The case list ---------------------------------------------------------------------


def _options(choices: list[tuple[str, str]], selected: str) -> SafeString:
    """A select's options, the chosen one selected. Drawn here rather than in a template
    loop: the list's filters have some 130 options on every page."""
    return mark_safe(  # noqa: S308 — every value and label is escaped
        "".join(
            f'<option value="{escape(value)}"{" selected" if value == selected else ""}>'
            f"{escape(label)}</option>"
            for value, label in choices
        )
    )


def _filter_options(filters: selectors.CaseFilters) -> dict[str, SafeString]:
    """The options of the list's filter selects, named in the page's language, from the
    cached directory."""
    directory = selectors.public_directory()
    english = selectors.is_english()
    units = [u for u in directory.units if u.active]
    choices = {
        "channel": [(c.code, c.label(english)) for c in directory.channels],
        "category": [(c.code, c.label(english)) for c in directory.categories if c.active],
        "unit": [(u.code, u.label(english)) for u in units],
        "district": [(d, d) for d in sorted({u.district_name for u in units if u.district_name})],
        "state": [("open", _("Not yet answered"))] + [(s.value, str(s.label)) for s in PublicState],
    }
    return {name: _options(options, getattr(filters, name)) for name, options in choices.items()}


@dataclass
class CaseRow:
    """One line of a case list, ready to print: the template only places the values."""

    number: str
    href: str
    state: str
    state_label: str
    opened_iso: str
    opened_text: str
    meta: list[str]  # channel, category, unit and district, the ones known
    text: str
    withdrawn: bool
    reports: int


def _case_rows(cases: list[PublicCase]) -> list[CaseRow]:
    directory = selectors.public_directory().by_id
    base = reverse("portal:cases")
    states = dict(PublicState.choices)
    rows = []
    for case in cases:
        opened = timezone.localtime(case.opened_at)
        channel = directory["channel"].get(case.channel_id or 0)
        category = directory["category"].get(case.category_id or 0)
        unit = directory["unit"].get(case.unit_id or 0)
        meta = [entry.name for entry in (channel, category, unit) if entry is not None]
        if case.district_name and case.district_name != (unit.district_name if unit else ""):
            meta.append(case.district_name)
        number = case.number
        rows.append(
            CaseRow(
                number=number,
                href=f"{base}{number}/",
                state=case.state,
                state_label=str(states.get(case.state, case.state)),
                opened_iso=opened.isoformat(),
                opened_text=opened.strftime("%Y-%m-%d %H:%M"),
                meta=meta,
                text=Truncator(case.text).chars(160) if case.text else "",
                withdrawn=case.withdrawn,
                reports=case.reports,
            )
        )
    return rows


def _link(query: QueryDict, **position: str) -> str:
    """The list's address with the same filters at another keyset position."""
    kept = query.copy()
    for key in ("before", "after"):
        kept.pop(key, None)
    for key, value in position.items():
        kept[key] = value
    return "?" + kept.urlencode()


@micro_cached()
def case_list(request: HttpRequest) -> HttpResponse:
    filters = filters_from_query(request.GET)
    page = selectors.case_page(
        filters,
        before=case_key(request.GET.get("before")),
        after=case_key(request.GET.get("after")),
        size=selectors.PAGE_SIZE,
    )
    return render(
        request,
        "portal/cases.html",
        {
            "filters": filters,
            "options": _filter_options(filters),
            "page": page,
            "rows": _case_rows(page.cases),
            "page_size": selectors.PAGE_SIZE,
            "older_link": _link(request.GET, before=case_number(page.older)) if page.older else "",
            "newer_link": _link(request.GET, after=case_number(page.newer)) if page.newer else "",
            "first_link": _link(request.GET)
            if request.GET.get("before") or request.GET.get("after")
            else "",
        },
    )


# --- A case ----------------------------------------------------------------------------


@micro_cached()
def case_page(request: HttpRequest, number: str) -> HttpResponse:
    case = case_selectors.public_case(number)
    if number != case.number:
        return redirect("portal:case", number=case.number)
    # A case with one report has neither joined reports nor cases merged into it (a merge
    # moves the merged case's messages here, and `reports` counts them): most pages then
    # need no query for them.
    several = case.reports > 1
    timeline = case_selectors.public_timeline(
        case.case_id, case.opened_at, merges=several, known_units=(case.unit,)
    )
    on_hold = case.state == PublicState.ON_HOLD
    return render(
        request,
        "portal/case.html",
        {
            "case": case,
            "timeline": timeline,
            "hold_reason": next((e.reason for e in reversed(timeline) if e.kind == "on_hold"), "")
            if on_hold
            else "",
            "merged_into": case_number(case.merged_into_id) if case.merged_into_id else "",
            "reports": case_selectors.public_reports(case.case_id) if several else [],
            "merged": case_selectors.merged_cases(case.case_id) if several else [],
        },
    )


# --- The language switch ---------------------------------------------------------------


def choose_language(request: HttpRequest, code: str) -> HttpResponse:
    """Remember the visitor's language in Django's language cookie and go back to `next`.
    A link, not a form: the public pages then carry no CSRF token, so one copy of a page
    serves every visitor (`sotong.portal.caching`)."""
    if code not in dict(settings.LANGUAGES):
        raise NotFound(_("There is no such language."))
    target = request.GET.get("next", "")
    if not url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        target = reverse("portal:home")
    response = redirect(target)
    response.set_cookie(
        settings.LANGUAGE_COOKIE_NAME,
        code,
        max_age=settings.LANGUAGE_COOKIE_AGE,
        path=settings.LANGUAGE_COOKIE_PATH,
        domain=settings.LANGUAGE_COOKIE_DOMAIN,
        secure=settings.LANGUAGE_COOKIE_SECURE,
        httponly=settings.LANGUAGE_COOKIE_HTTPONLY,
        samesite=settings.LANGUAGE_COOKIE_SAMESITE,
    )
    return response
