"""The district map: Seoul's 25 districts from the shipped geometry, shaded by value, with a
title and an optional link per district, a legend, and no inline styles."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest
import yaml
from django.utils.translation import override

from sotong.directory.loading import DEFAULT_DIRECTORY
from sotong.portal.district_map import (
    DistrictGeometryError,
    district_geometry,
    district_map,
    shade_breaks,
)

SVG = "{http://www.w3.org/2000/svg}"


def seoul_districts() -> list[str]:
    units = yaml.safe_load((DEFAULT_DIRECTORY / "units.yaml").read_text(encoding="utf-8"))
    return [u["district"] for u in units["units"] if u.get("district")]


def paths(root: ET.Element) -> dict[str, ET.Element]:
    """The district paths by the name in their title ("종로구: 12" → 종로구)."""
    found = {}
    for path in root.iter(f"{SVG}path"):
        found[path.find(f"{SVG}title").text.split(": ")[0]] = path
    return found


def classes(path: ET.Element) -> set[str]:
    return set(path.get("class").split())


def test_the_shipped_geometry_has_every_district_of_the_directory():
    names = seoul_districts()
    assert len(names) == 25
    assert sorted(district_geometry().names) == sorted(names)


def test_every_district_is_a_path_with_its_value_in_the_title():
    names = seoul_districts()
    values = {name: i + 1 for i, name in enumerate(names)}
    root = ET.fromstring(district_map(values, title="접수 건수"))
    drawn = paths(root)
    assert len(drawn) == 25
    assert drawn["종로구"].find(f"{SVG}title").text == f"종로구: {values['종로구']}"
    assert all(p.get("d").startswith("M") and p.get("d").endswith("Z") for p in drawn.values())
    assert root.get("role") == "img"
    assert root.find(f"{SVG}title").text == "접수 건수"


def test_the_busiest_district_gets_the_top_shade_and_the_quietest_the_lowest():
    values = {name: 10 for name in seoul_districts()}
    values.update({"강남구": 500, "도봉구": 1, "중구": 40})
    drawn = paths(ET.fromstring(district_map(values, title="t")))
    assert "map-q4" in classes(drawn["강남구"])
    assert "map-q0" in classes(drawn["도봉구"])
    shades = {c for p in drawn.values() for c in classes(p) if c.startswith("map-")}
    assert shades <= {f"map-q{i}" for i in range(5)}


def test_quantiles_give_each_shade_about_the_same_number_of_districts():
    values = {name: (i + 1) ** 3 for i, name in enumerate(seoul_districts())}  # skewed
    drawn = paths(ET.fromstring(district_map(values, title="t")))
    per_shade = {f"map-q{i}": 0 for i in range(5)}
    for path in drawn.values():
        for css in classes(path) & set(per_shade):
            per_shade[css] += 1
    assert set(per_shade.values()) == {5}


def test_a_district_without_a_value_is_marked_no_data():
    values = {name: 3 for name in seoul_districts() if name != "중구"}
    values["강남구"] = 9
    with override("en"):
        root = ET.fromstring(district_map(values, title="t"))
    drawn = paths(root)
    assert "map-none" in classes(drawn["중구"])
    assert drawn["중구"].find(f"{SVG}title").text == "중구: no data"
    assert "no data" in [t.text for t in root.iter(f"{SVG}text")]


def test_the_legend_shows_each_shades_range_through_value_text():
    values = {name: i / 24 for i, name in enumerate(seoul_districts())}
    root = ET.fromstring(district_map(values, title="t", value_text=lambda v: f"{v:.0%}"))
    legend = [t.text for t in root.iter(f"{SVG}text")]
    assert len(legend) == 5
    assert legend[0].startswith("0%–") and legend[-1].endswith("–100%")
    assert paths(root)[seoul_districts()[-1]].find(f"{SVG}title").text.endswith(": 100%")


def test_links_and_english_labels():
    names = seoul_districts()
    labels = {"종로구": "Jongno-gu", "중구": "<b>Jung-gu</b> & co"}
    svg = str(
        district_map(
            {name: 1 for name in names},
            title="t",
            labels=labels,
            link=lambda name: f"/cases/?district={name}&state=open",
        )
    )
    assert "<b>" not in svg
    root = ET.fromstring(svg)
    assert root.get("role") == "group"  # links inside role="img" would be hidden
    links = list(root.iter(f"{SVG}a"))
    assert len(links) == 25
    by_name = {a.find(f"{SVG}path/{SVG}title").text.split(": ")[0]: a for a in links}
    assert by_name["Jongno-gu"].get("href") == "/cases/?district=종로구&state=open"
    assert by_name["Jongno-gu"].get("aria-label") == "Jongno-gu: 1"
    assert "<b>Jung-gu</b> & co" in by_name
    assert "강남구" in by_name  # no label given: the Korean name


def test_zero_everywhere_and_nothing_at_all():
    zero = paths(ET.fromstring(district_map(dict.fromkeys(seoul_districts(), 0), title="t")))
    assert all("map-q0" in classes(p) for p in zero.values())
    with override("en"):
        empty = ET.fromstring(district_map({}, title="t"))
    assert all("map-none" in classes(p) for p in paths(empty).values())
    assert [t.text for t in empty.iter(f"{SVG}text")] == ["no data"]


def test_no_inline_style_anywhere():
    svg = district_map(
        {"종로구": 1, "중구": 2}, title="t", link=lambda name: f"/cases/?district={name}"
    )
    for element in ET.fromstring(svg).iter():
        assert "style" not in element.attrib
        assert not any(name.startswith("on") for name in element.attrib)
        assert element.tag not in (f"{SVG}style", f"{SVG}script")


def test_shade_breaks_keep_ties_together():
    assert shade_breaks([]) == []
    assert shade_breaks([0, 0, 0, 7]) == [7]
    assert shade_breaks(range(1, 26)) == [6, 11, 16, 21]


def test_a_city_replaces_the_geometry_by_a_setting(settings, tmp_path):
    square = [[[127.0, 37.5], [127.1, 37.5], [127.1, 37.6], [127.0, 37.6], [127.0, 37.5]]]
    features = [
        {
            "type": "Feature",
            "properties": {"name": "동구"},
            "geometry": {"type": "Polygon", "coordinates": square},
        },
        {
            "type": "Feature",
            "properties": {"name": "섬구"},
            "geometry": {"type": "MultiPolygon", "coordinates": [square, square]},
        },
    ]
    path = tmp_path / "districts.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    settings.SOTONG_DISTRICT_GEOMETRY = str(path)
    drawn = paths(ET.fromstring(district_map({"동구": 1, "섬구": 2}, title="t")))
    assert set(drawn) == {"동구", "섬구"}
    assert drawn["섬구"].get("d").count("M") == 2
    assert "map-q4" in classes(drawn["섬구"])


def test_a_missing_geometry_file_is_an_explicit_error(settings, tmp_path):
    settings.SOTONG_DISTRICT_GEOMETRY = str(tmp_path / "nowhere.geojson")
    with pytest.raises(DistrictGeometryError):
        district_map({}, title="t")
