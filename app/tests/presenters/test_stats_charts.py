"""SVG charts: well-formed, accessible, the expected bars and points, labels escaped."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from app.presenters.charts import Bar, Series, bar_chart, format_number, line_chart, nice_ticks

SVG = "{http://www.w3.org/2000/svg}"


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)


def test_bar_chart_has_one_rect_per_bar_scaled_to_the_axis() -> None:
    chart = bar_chart(
        chart_id="c1",
        title="Interactions by model",
        description="a: 10, b: 5.",
        bars=[Bar("a", 10.0), Bar("b", 5.0)],
        y_label="interactions",
    )
    root = parse(chart.svg)
    rects = root.findall(f".//{SVG}rect")
    assert [(r.get("data-label"), r.get("data-value")) for r in rects] == [("a", "10"), ("b", "5")]
    heights = [float(r.get("height", "0")) for r in rects]
    assert heights[0] == pytest.approx(2 * heights[1], abs=0.2)
    assert [r.find(f"{SVG}title").text for r in rects] == ["a: 10", "b: 5"]  # type: ignore[union-attr]
    assert chart.points == 2
    assert chart.table.rows == [["a", "10"], ["b", "5"]]


def test_chart_is_an_accessible_image_with_title_and_description() -> None:
    chart = bar_chart(chart_id="c2", title="T", description="D", bars=[Bar("x", 1.0)], y_label="y")
    root = parse(chart.svg)
    assert root.get("role") == "img"
    assert root.get("aria-labelledby") == "c2-title"
    assert root.get("aria-describedby") == "c2-desc"
    assert root.find(f"{SVG}title").text == "T"  # type: ignore[union-attr]
    assert root.find(f"{SVG}desc").text == "D"  # type: ignore[union-attr]


def test_y_axis_has_round_ticks_covering_the_maximum() -> None:
    chart = bar_chart(chart_id="c3", title="T", description="D", bars=[Bar("x", 37.0)], y_label="y")
    ticks = [t.text for t in parse(chart.svg).iter(f"{SVG}text") if t.get("class") == "chart-tick"]
    assert ticks == ["0", "10", "20", "30", "40"]


def test_line_chart_has_a_point_per_value_and_breaks_at_gaps() -> None:
    chart = line_chart(
        chart_id="c4",
        title="Latency per day",
        description="D",
        x_labels=["d1", "d2", "d3", "d4"],
        series=[Series("p50 ms", [100.0, None, 300.0, 400.0]), Series("p95 ms", [150.0, 250.0, 350.0, 450.0])],
        y_label="ms",
    )
    root = parse(chart.svg)
    groups = [g for g in root.iter(f"{SVG}g") if g.get("data-series")]
    assert [g.get("data-series") for g in groups] == ["p50 ms", "p95 ms"]
    p50_points = [(c.get("data-x"), c.get("data-value")) for c in groups[0].iter(f"{SVG}circle")]
    assert p50_points == [("d1", "100"), ("d3", "300"), ("d4", "400")]
    assert len(list(groups[0].iter(f"{SVG}path"))) == 2  # the gap at d2 splits the line
    assert len(list(groups[1].iter(f"{SVG}path"))) == 1
    assert chart.points == 7
    assert chart.table.headers == ["", "p50 ms", "p95 ms"]
    assert chart.table.rows[1] == ["d2", "—", "250"]


def test_line_chart_points_rise_with_their_values() -> None:
    chart = line_chart(
        chart_id="c5", title="T", description="D", x_labels=["a", "b"], series=[Series("n", [1.0, 2.0])], y_label="y"
    )
    circles = list(parse(chart.svg).iter(f"{SVG}circle"))
    first_y, second_y = (float(c.get("cy", "0")) for c in circles)
    assert second_y < first_y  # SVG y grows downwards
    assert float(circles[0].get("cx", "0")) < float(circles[1].get("cx", "0"))


def test_tick_labels_replace_axis_text_but_not_tooltips() -> None:
    chart = line_chart(
        chart_id="c6",
        title="T",
        description="D",
        x_labels=["2026-11-25 13:00", "2026-11-25 14:00"],
        tick_labels=["13:00", "14:00"],
        series=[Series("n", [1.0, 2.0])],
        y_label="y",
    )
    root = parse(chart.svg)
    axis = [t.text for t in root.iter(f"{SVG}text") if t.get("class") == "chart-label"]
    assert axis == ["13:00", "14:00"]
    assert root.find(f".//{SVG}circle/{SVG}title").text == "n, 2026-11-25 13:00: 1"  # type: ignore[union-attr]


def test_labels_titles_and_ids_are_escaped() -> None:
    nasty = "<script>alert(\"x\")</script> & 'q'"
    chart = bar_chart(chart_id='c"7', title=nasty, description=nasty, bars=[Bar(nasty, 1.0)], y_label=nasty)
    assert "<script>" not in chart.svg
    root = parse(chart.svg)  # still well-formed XML
    assert root.get("id") == 'c"7'
    assert root.find(f"{SVG}title").text == nasty  # type: ignore[union-attr]
    assert root.find(f".//{SVG}rect").get("data-label") == nasty  # type: ignore[union-attr]


def test_empty_charts_say_there_is_no_data() -> None:
    bars = bar_chart(chart_id="c8", title="T", description="D", bars=[], y_label="y")
    lines = line_chart(chart_id="c9", title="T", description="D", x_labels=[], series=[], y_label="y")
    for chart in (bars, lines):
        texts = [t.text for t in parse(chart.svg).iter(f"{SVG}text")]
        assert "No data in this range" in texts
        assert chart.points == 0


def test_many_x_labels_are_thinned() -> None:
    labels = [f"2026-10-{day:02d}" for day in range(1, 31)]
    chart = line_chart(
        chart_id="c10", title="T", description="D", x_labels=labels, series=[Series("n", [1.0] * 30)], y_label="y"
    )
    axis = [t.text for t in parse(chart.svg).iter(f"{SVG}text") if t.get("class") == "chart-label"]
    assert len(axis) == 8
    assert chart.points == 30


@pytest.mark.parametrize(
    ("maximum", "expected"),
    [
        (0, [0.0, 1.0]),
        (1, [0.0, 0.25, 0.5, 0.75, 1.0]),
        (37, [0.0, 10.0, 20.0, 30.0, 40.0]),
        (950, [0, 250, 500, 750, 1000]),
    ],
)
def test_nice_ticks(maximum: float, expected: list[float]) -> None:
    assert nice_ticks(maximum) == expected


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0, "0"),
        (12, "12"),
        (0.25, "0.25"),
        (1234, "1,234"),
        (12_345, "12.3k"),
        (2_500_000, "2.5M"),
        (float("nan"), "—"),
    ],
)
def test_format_number(value: float, text: str) -> None:
    assert format_number(value) == text
