"""web.charts: well-formed SVG whatever the values, one mark per value, every text escaped."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from hypothesis import given
from hypothesis import strategies as st

from amber.web.charts import Bar, Group, bar_chart, grouped_bar_chart, line_chart

SVG = "{http://www.w3.org/2000/svg}"


def parse(markup: str) -> ET.Element:
    return ET.fromstring(markup)


@given(st.lists(st.tuples(st.floats(0, 2e9), st.floats(allow_nan=True, allow_infinity=True)), max_size=40))
def test_line_chart_is_well_formed_with_a_point_per_finite_value(points: list[tuple[float, float]]) -> None:
    root = parse(line_chart(points, "size", lambda v: f"{v:.0f}"))
    finite = [p for p in points if abs(p[1]) != float("inf") and p[1] == p[1]]
    assert len(root.findall(f".//{SVG}circle")) == len(finite)
    for circle in root.iter(f"{SVG}circle"):
        assert 0 <= float(circle.get("cy", "-1")) <= 160


@given(st.lists(st.floats(0, 1e15), max_size=60))
def test_bars_stay_inside_the_plot(values: list[float]) -> None:
    root = parse(bar_chart([Bar(str(i), v) for i, v in enumerate(values)], "duration"))
    rects = root.findall(f".//{SVG}rect")
    assert len(rects) == len(values)
    for r in rects:
        y, h = float(r.get("y", "0")), float(r.get("height", "0"))
        assert h >= 0 and y >= 8 - 0.05 and y + h <= 138 + 0.05


@pytest.mark.parametrize("chart", [
    lambda: line_chart([(0.0, 1.0)], "<script>alert(1)</script>"),
    lambda: bar_chart([Bar("<b>x</b>", 1.0, '"><script>')], "<script>alert(1)</script>"),
])  # fmt: skip
def test_text_is_escaped(chart: object) -> None:
    markup = chart()  # type: ignore[operator]
    assert "<script>" not in markup and "<b>" not in markup
    parse(markup)


def test_failed_runs_are_marked_and_empty_charts_say_so() -> None:
    root = parse(bar_chart([Bar("a", 1.0), Bar("b", 2.0, "failed")], "d"))
    assert [r.get("class") for r in root.iter(f"{SVG}rect")] == ["bar", "bar failed"]
    assert "no data yet" in line_chart([], "size") and "no data yet" in bar_chart([], "d")


def test_job_charts_mark_failed_runs_and_anomalies() -> None:
    from amber.ops.state import Destination, RunRecord
    from amber.web.pages import job_charts

    def run(started: float, status: str, anomaly: str = "") -> RunRecord:
        details: dict[str, object] = {"files_new": 3, "files_changed": 2, "bytes": 1000,
                                      "data_added_stored": 10}  # fmt: skip
        if anomaly:
            details["anomaly"] = {"verdict": anomaly}
        backup = Destination("main", "backup", "failed" if status == "failed" else "success", details=details)
        return RunRecord("home", started, started + 30, status, destinations=[backup])

    runs = [run(3000.0, "success", "suspicious"), run(2000.0, "failed"), run(1000.0, "success", "normal")]
    (_, size), (_, sizes), (_, duration), (_, files) = job_charts(runs, [(1000.0, 5.0), (2000.0, 7.0)])
    kinds = [r.get("class") for r in parse(duration).iter(f"{SVG}rect")]
    assert kinds == ["bar success", "bar failed", "bar success anomaly"]  # oldest first
    assert [float(r.get("height", "0")) > 0 for r in parse(files).iter(f"{SVG}rect")] == [True] * 3
    assert len(parse(size).findall(f".//{SVG}circle")) == 2
    bars = [r for r in parse(sizes).iter(f"{SVG}rect") if "bar" in (r.get("class") or "")]
    assert [r.get("class") for r in bars][:2] == ["bar s0 success", "bar s1 success"]  # logical, stored
    assert len(bars) == 6 and "logical 1000 B" in sizes and "stored 10 B" in sizes


@given(st.lists(st.tuples(st.floats(0, 1e15), st.floats(allow_nan=True, allow_infinity=True)), max_size=40))
def test_grouped_bars_one_per_series_value_inside_the_plot(pairs: list[tuple[float, float]]) -> None:
    groups = [Group(str(i), p) for i, p in enumerate(pairs)]
    root = parse(grouped_bar_chart(groups, ("logical", "stored"), "s"))
    shown = [p for p in pairs if all(v == v and abs(v) != float("inf") for v in p)]
    rects = [r for r in root.iter(f"{SVG}rect") if (r.get("class") or "").startswith("bar")]
    assert len(rects) == 2 * len(shown)
    for r in rects:
        y, h = float(r.get("y", "0")), float(r.get("height", "0"))
        assert h >= 0 and y >= 8 - 0.05 and y + h <= 138 + 0.05
    if shown:
        assert [t.text for t in root.iter(f"{SVG}text")][-4:-2] == ["logical", "stored"]  # the legend
