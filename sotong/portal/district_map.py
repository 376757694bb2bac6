"""The city's districts (자치구) as an SVG map shaded by a value per district, drawn from
geometry shipped as data (`directory/data/seoul/districts.geojson`, or the file named by
the SOTONG_DISTRICT_GEOMETRY setting): no map tiles, nothing fetched from the internet.
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext

from sotong.directory.loading import DEFAULT_DIRECTORY
from sotong.portal.charts import FONT_SIZE, WIDTH, fit_text, text_width

SHADES = 5  # map-q0 (lowest) … map-q4 (highest); map-none for a district without a value
PADDING = 4


class DistrictGeometryError(ValueError):
    """The district geometry file is missing or not a GeoJSON FeatureCollection of named
    (Multi)Polygons."""


@dataclass(frozen=True)
class District:
    name: str  # as in Unit.district_name, e.g. "종로구"
    path: str  # SVG path data in the map's viewBox


@dataclass(frozen=True)
class DistrictGeometry:
    districts: tuple[District, ...]
    width: float
    height: float

    @property
    def names(self) -> list[str]:
        return [d.name for d in self.districts]


def geometry_file() -> Path:
    """The GeoJSON file in use: the SOTONG_DISTRICT_GEOMETRY setting, or Seoul's."""
    configured = getattr(settings, "SOTONG_DISTRICT_GEOMETRY", None)
    return Path(configured) if configured else DEFAULT_DIRECTORY / "districts.geojson"


def district_geometry() -> DistrictGeometry:
    return load_geometry(geometry_file())


def _rings(geometry: Mapping[str, Any]) -> list[list[list[float]]]:
    if geometry.get("type") == "Polygon":
        return list(geometry["coordinates"])
    if geometry.get("type") == "MultiPolygon":
        return [ring for polygon in geometry["coordinates"] for ring in polygon]
    raise DistrictGeometryError(f"not a Polygon or MultiPolygon: {geometry.get('type')}")


@functools.lru_cache(maxsize=4)
def load_geometry(path: Path) -> DistrictGeometry:
    """Reads a GeoJSON FeatureCollection (WGS84 longitude/latitude, each feature's
    `properties.name` the district's name) once and projects it into a viewBox WIDTH
    wide: equirectangular, with longitudes scaled by the cosine of the middle latitude,
    which for one city is as good as any projection and needs no library."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        features = [(f["properties"]["name"], _rings(f["geometry"])) for f in data["features"]]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise DistrictGeometryError(f"{path}: {error}") from error
    if not features:
        raise DistrictGeometryError(f"{path}: no districts")
    points = [p for _, rings in features for ring in rings for p in ring]
    west, east = min(p[0] for p in points), max(p[0] for p in points)
    south, north = min(p[1] for p in points), max(p[1] for p in points)
    squeeze = math.cos(math.radians((south + north) / 2))
    scale = (WIDTH - 2 * PADDING) / max((east - west) * squeeze, 1e-9)

    def project(lon: float, lat: float) -> str:
        x = PADDING + (lon - west) * squeeze * scale
        y = PADDING + (north - lat) * scale
        return f"{x:.1f} {y:.1f}"

    districts = []
    for name, rings in features:
        subpaths = []
        for ring in rings:
            projected: list[str] = []
            for lon, lat, *_ in ring:
                point = project(lon, lat)
                if not projected or projected[-1] != point:
                    projected.append(point)
            subpaths.append("M" + "L".join(projected) + "Z")
        districts.append(District(name=str(name), path="".join(subpaths)))
    height = (north - south) * scale + 2 * PADDING
    return DistrictGeometry(tuple(districts), WIDTH, round(height, 1))


def shade_breaks(values: Iterable[float]) -> list[float]:
    """Where the shades change: the lowest value of each shade above the first.

    Quantiles rather than equal intervals: a city's volume per district is skewed (a few
    busy districts, many quiet ones), and equal intervals would paint most districts in
    the lightest shade; quantiles give each shade about the same number of districts, so
    the map tells busier from quieter everywhere. Quantiles are taken over the distinct
    values, so ties never split across shades and a few distinct values (all zero but
    one) still get shades of their own."""
    distinct = sorted(set(values))
    if len(distinct) <= SHADES:
        return distinct[1:]
    return [distinct[k * len(distinct) // SHADES] for k in range(1, SHADES)]


def shade_names(breaks: Sequence[float], lowest: float) -> list[str]:
    """The class of each shade, spread so that the highest shade is always map-q4 and the
    lowest map-q0; a single shade (every value alike) is map-q0 when nothing was counted
    and map-q4 otherwise."""
    count = len(breaks) + 1
    if count == 1:
        return ["map-q0" if lowest <= 0 else f"map-q{SHADES - 1}"]
    return [f"map-q{round(i * (SHADES - 1) / (count - 1))}" for i in range(count)]


def district_map(
    values: Mapping[str, float],
    *,
    title: str,
    labels: Mapping[str, str] | None = None,
    link: Callable[[str], str] | None = None,
    value_text: Callable[[float], str] = str,
) -> SafeString:
    """The districts shaded by `values` (keyed by Korean district name; a district without
    a value is map-none), each a `<path>` with a `<title>` "종로구: 12" (the name from
    `labels` if given, the value through `value_text`), and a legend of the shades' ranges.

    With `link`, each district is wrapped in `<a href="link(name)">` and the map is a
    group of links (role="group"): children of role="img" are hidden from screen readers,
    which would hide the links. Without it the map is one image (role="img")."""
    geometry = district_geometry()
    labels = labels or {}
    known = {
        name: values[name]
        for name in geometry.names
        if name in values and not math.isnan(values[name])
    }
    breaks = shade_breaks(known.values())
    names = shade_names(breaks, min(known.values(), default=0.0))
    shade = {name: bisect.bisect_right(breaks, value) for name, value in known.items()}
    no_data = gettext("no data")
    uid = (
        "map-"
        + hashlib.blake2s(repr((title, sorted(known.items()))).encode(), digest_size=4).hexdigest()
    )

    parts: list[SafeString] = []
    for district in geometry.districts:
        label = labels.get(district.name, district.name)
        value = known.get(district.name)
        css = names[shade[district.name]] if value is not None else "map-none"
        text = f"{label}: {value_text(value) if value is not None else no_data}"
        if link is None:
            parts.append(
                format_html(
                    '<path class="district {}" d="{}"><title>{}</title></path>',
                    css,
                    district.path,
                    text,
                )
            )
        else:
            parts.append(
                format_html(
                    '<a href="{}" aria-label="{}"><path class="district {}" d="{}">'
                    "<title>{}</title></path></a>",
                    link(district.name),
                    text,
                    css,
                    district.path,
                    text,
                )
            )

    legend = []
    for i, css in enumerate(names if known else []):
        members = [v for n, v in known.items() if shade[n] == i]
        low, high = min(members), max(members)
        legend.append(
            (css, value_text(low) if low == high else f"{value_text(low)}–{value_text(high)}")
        )
    if len(known) < len(geometry.districts):
        legend.append(("map-none", no_data))
    legend_parts, legend_height = _legend(legend, geometry.height + 8)
    parts.extend(legend_parts)

    if known:
        most = max(known, key=lambda n: known[n])
        least = min(known, key=lambda n: known[n])
        desc = gettext("Highest: %(most)s (%(most_value)s). Lowest: %(least)s (%(least_value)s).")
        desc %= {
            "most": labels.get(most, most),
            "most_value": value_text(known[most]),
            "least": labels.get(least, least),
            "least_value": value_text(known[least]),
        }
    else:
        desc = gettext("No data")
    head = format_html(
        '<svg xmlns="http://www.w3.org/2000/svg" class="chart district-map" role="{}" '
        'aria-labelledby="{}-title" aria-describedby="{}-desc" viewBox="0 0 {} {}" '
        'width="100%" font-size="{}"><title id="{}-title">{}</title><desc id="{}-desc">{}</desc>',
        "img" if link is None else "group",
        uid,
        uid,
        WIDTH,
        f"{geometry.height + 8 + legend_height:.1f}",
        FONT_SIZE,
        uid,
        title,
        uid,
        desc,
    )
    # Every part comes from format_html, so the whole is escaped.
    return mark_safe(head + "".join(parts) + "</svg>")


def _legend(entries: Sequence[tuple[str, str]], top: float) -> tuple[list[SafeString], float]:
    """Swatches with their ranges, in two columns when the texts are short enough."""
    columns = 2 if all(text_width(t) <= WIDTH / 2 - 26 for _, t in entries) else 1
    column_width = WIDTH / columns
    line = 22
    parts = []
    for i, (css, text) in enumerate(entries):
        x = (i // math.ceil(len(entries) / columns)) * column_width if columns == 2 else 0
        row = i % math.ceil(len(entries) / columns) if columns == 2 else i
        y = top + row * line
        parts.append(
            format_html(
                '<rect class="legend-swatch {}" x="{}" y="{}" width="16" height="16"/>'
                '<text class="chart-label" x="{}" y="{}">{}</text>',
                css,
                f"{x:.1f}",
                f"{y:.1f}",
                f"{x + 22:.1f}",
                f"{y + 13:.1f}",
                fit_text(text, column_width - 26),
            )
        )
    rows = math.ceil(len(entries) / columns) if entries else 0
    return parts, rows * line
