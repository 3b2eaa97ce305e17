"""The report document and its renderings, from hand-built report data (no database): pure.

Every cell, item and chart of a document must appear in the text, the HTML
page and the mail HTML; the HTML loads nothing from outside; the SVG parses.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from amber.ops.reports import daily, monthly, render, svg, weekly
from amber.ops.reports.document import (
    Chart,
    Document,
    Protection,
    Series,
    protection,
    seconds,
    size,
)
from amber.ops.reports.forecast import Forecast
from amber.ops.verdict import DAY, CopiesFacts, DestinationFill, JobFacts, Outcome, Suspicion, judge

NOW = 1_800_000_000.0
SECRET = "hunter2-secret"


def _protection() -> list[Protection]:
    fresh = JobFacts(
        "home",
        NOW,
        NOW - 3600,
        "success",
        DAY,
        Outcome(NOW - DAY, True),
        Outcome(NOW - DAY, True),
        CopiesFacts(True),
        (DestinationFill("main", 0.5, Forecast(9, 1e9, 0.9, 200.0)),),
    )
    flagged = JobFacts(
        "docs",
        NOW,
        NOW - 3600,
        "success",
        DAY,
        None,
        None,
        CopiesFacts(False, ("1 offsite",)),
        (),
        (Suspicion("feedface" * 8, NOW - 600, ("40 files renamed to .locked",)),),
    )
    return [protection(judge(f), f) for f in (fresh, flagged)]


def _daily() -> daily.DailyReport:
    runs = [
        daily.RunLine(NOW - 7200, "success", 62.0, 5 * 2**20, 1200, [], 3 * 2**30, 2**20),
        daily.RunLine(NOW - 3600, "failed", 3.0, 0, 0, [f"cannot reach rest:https://u:{SECRET}@h/r"]),
    ]
    home = daily.JobDay(
        "home",
        runs,
        [{"repository": "main", "status": "success", "errors": 0}],
        [{"repository": "offsite", "status": "success", "snapshot": "abcdef0123"}],
    )
    return daily.DailyReport(NOW - DAY, NOW, [home, daily.JobDay("docs", missed=True)], _protection())


def _weekly() -> weekly.WeeklyReport:
    this = weekly.Week(7, 6, 7 * 2**20, 60.0, 90.0, ["success"] * 6 + ["failed"])
    last = weekly.Week(7, 7, 5 * 2**20, 50.0, 70.0, ["success"] * 7)
    job = weekly.JobWeek("home", this, last, True, False, [("read <path>: I/O error", 3)])
    return weekly.WeeklyReport(NOW - 7 * DAY, NOW, [job], _protection())


def _monthly() -> monthly.MonthlyReport:
    usage = [(NOW - d * DAY, (100 - d) * 2**30) for d in range(10, 0, -1)]
    repo = monthly.RepoMonth("main", 10, float(2**30), "full in 9 days", usage)
    job = monthly.JobMonth(
        "home", 30, 29 / 30, 29, 60.0, 40.0, {"ok": 29, "partial": 0, "failed": 1}, [(NOW - DAY, 900.0, 60.0)]
    )
    anomaly = monthly.Anomaly("docs", "feedface" * 8, NOW - 600, ["40 files renamed to .locked"], False)
    return monthly.MonthlyReport(
        NOW - 30 * DAY, NOW, [repo], [job], ["add space to main: full in 9 days"], [anomaly], _protection()
    )


DOCS = {
    "daily": lambda: daily.document(_daily(), "host1"),
    "weekly": lambda: weekly.document(_weekly(), "host1"),
    "monthly": lambda: monthly.document(_monthly(), "host1"),
}


def _words(doc: Document) -> list[str]:
    """Every cell, item, column and chart title the document holds."""
    out = [doc.subject, doc.period]
    for s in doc.sections:
        out.append(s.title)
        out += [c for t in s.tables for c in t.columns] + [c for t in s.tables for row in t.rows for c in row]
        out += list(s.items) + [c.title for c in s.charts]
        if not (s.tables or s.items or s.charts):
            out.append(s.empty)
    return out


def _unescape(html: str) -> str:
    import html as html_lib

    return html_lib.unescape(html)


@pytest.mark.parametrize("kind", list(DOCS))
def test_every_format_carries_everything(kind: str) -> None:
    doc = DOCS[kind]()
    text, page, mail = render.text(doc), _unescape(render.html(doc)), _unescape(render.html(doc, mail=True))
    for word in _words(doc):
        assert word in text, word
        assert word in page, word
        assert word in mail, word
    assert SECRET not in text + page + mail
    assert "<svg" in page and "<svg" not in mail  # mail clients show no SVG: bars as table cells there


@pytest.mark.parametrize(
    ("kind", "needles"),
    [
        (
            "daily",
            [
                "0 ok, 0 partial, 1 failed, 1 missed; 1 at-risk",
                "3.0 GiB",
                "1.0 MiB",
                "62.0 s",
                "docs: no run in the last 24 hours although scheduled",
                "https://u:***@h/r",
                "Protection now",
            ],
        ),
        (
            "weekly",
            [
                "6 ok, 0 partial, 1 failed; 1/1 jobs verified, 0/1 drilled",
                "2.0 MiB",
                "home: 3 x read <path>: I/O error",
                "1 of 1 jobs verified this week",
                "Duration p95",
            ],
        ),
        (
            "monthly",
            [
                "29 ok, 0 partial, 1 failed; 1 recommendation(s)",
                "+1.0 GiB/day",
                "full in 9 days",
                "feedface",
                "unacknowledged",
                "40 files renamed to .locked",
                "main: used space per day",
                "Unusual durations",
                "15.0 min",
            ],
        ),
    ],
)
def test_report_content(kind: str, needles: list[str]) -> None:
    text = render.text(DOCS[kind]())
    for needle in needles:
        assert needle in text, (needle, text)


def test_protection_lines_carry_verdict_facts() -> None:
    home, docs = _protection()
    assert (home.verdict, home.copies, home.suspicious) == ("protected", "3-2-1-1-0 met", 0)
    assert home.destinations == ("main: 50% full, full in 200 days",)
    assert docs.verdict == "at-risk" and docs.copies == "3-2-1-1-0 not met" and docs.suspicious == 1
    assert any("feedface tagged suspicious" in r.replace("(10 min ago) ", "") for r in docs.reasons)
    assert "never verified" in docs.reasons and docs.verified == "never"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "-"),
        (0, "0 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (5 * 2**20, "5.0 MiB"),
        (-3 * 2**30, "-3.0 GiB"),
        (2**50, "1024.0 TiB"),
    ],
)
def test_size(value: int | None, text: str) -> None:
    assert size(value) == text


@pytest.mark.parametrize(
    ("value", "text"), [(None, "-"), (1.25, "1.2 s"), (119, "119.0 s"), (120, "2.0 min"), (7200, "2.0 h")]
)
def test_seconds(value: float | None, text: str) -> None:
    assert seconds(value) == text


@pytest.mark.parametrize(
    "chart",
    [
        Chart(
            "bytes <by> job",
            "bars",
            ("a&b", "c"),
            (Series("x", (1.0, 3.0)), Series("y", (0.0, 2.0))),
            "bytes",
        ),
        Chart("used", "line", ("01-01", "01-02", "01-03"), (Series("used", (5.0, 6.0, 9.0)),), "bytes"),
        Chart("one point", "line", ("only",), (Series("s", (0.0,)),), "s"),
        Chart("empty", "bars", (), (), ""),
    ],
)
def test_svg_parses_and_has_a_tooltip_per_value(chart: Chart) -> None:
    markup = svg.render(chart)
    root = ET.fromstring(markup)
    assert root.tag == "svg"
    tips = [t.text or "" for t in root.iter("title")]
    assert tips[0] == chart.title
    assert len(tips) == 1 + sum(len(s.values) for s in chart.series)
    assert "style=" not in markup and "<script" not in markup and "href" not in markup


def test_bars_scale_to_the_largest_value() -> None:
    rows = svg.bar_rows(Chart("t", "bars", ("a", "b"), (Series("s", (2.0, 4.0)),), "bytes"))
    assert rows == [("a", "s", 0.5, "2 B"), ("b", "s", 1.0, "4 B")]


URL_ATTR = re.compile(r"""(?:src|href|url)\s*[=(]\s*["']?\s*(?:https?:)?//""", re.I)


@pytest.mark.parametrize("kind", list(DOCS))
@pytest.mark.parametrize("mail", [False, True])
def test_html_loads_nothing_from_outside(kind: str, mail: bool) -> None:
    page = render.html(DOCS[kind](), mail=mail)
    assert not URL_ATTR.search(page)
    assert not re.search(r"\b(?:src|href)\s*=", page, re.I)  # no links or resources at all
    assert "<script" not in page and "<link" not in page and "@import" not in page
    assert "http://" not in page.replace("https://u:***@h/r", "") and "https://" not in page.replace(
        "https://u:***@h/r", ""
    )  # only the masked URL of an error message, as text


@pytest.mark.slow  # WeasyPrint loads fonts
def test_pdf_holds_the_report_text() -> None:
    pytest.importorskip("weasyprint", reason="amber[pdf] not installed")
    doc = DOCS["weekly"]()
    pdf = render.pdf(doc)
    assert pdf.startswith(b"%PDF")
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext (poppler-utils) not installed")
    text = subprocess.run(["pdftotext", "-", "-"], input=pdf, capture_output=True, check=True).stdout.decode()
    assert "amber weekly report on host1" in text and "read <path>: I/O error" in text
    assert "Protection now" in text and "docs" in text


def test_pdf_without_weasyprint_is_one_line_with_exit_43(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'[state]\npath = "{tmp_path / "state.db"}"\n')
    code = (
        "import sys; sys.modules['weasyprint'] = None; from amber.cli.main import main; "
        f"sys.argv = ['amber', '--config', {str(config)!r}, 'report', 'daily', '--format', 'pdf', "
        f"'--output', {str(tmp_path / 'r.pdf')!r}]; main()"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 43, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "amber: PDF reports need WeasyPrint: pip install 'amber[pdf]' "
        f"({proc.stderr.split('(', 1)[1].strip()}"
    ]
    assert "Traceback" not in proc.stderr and not (tmp_path / "r.pdf").exists()


@pytest.mark.parametrize(
    ("durations", "flagged"),
    [
        ([60.0] * 4 + [600.0], []),  # too few runs to judge
        ([60.0] * 9 + [600.0], []),  # no spread at all: nothing to measure against
        ([58.0, 60.0, 61.0, 59.0, 62.0, 60.0, 600.0], [600.0]),
        ([58.0, 60.0, 61.0, 59.0, 62.0, 60.0, 1.0], [1.0]),  # unusually fast counts too (skipped files?)
        ([50.0, 60.0, 70.0, 55.0, 65.0, 75.0], []),
    ],
)
def test_duration_outliers(durations: list[float], flagged: list[float]) -> None:
    found = monthly.outliers([(float(i), d) for i, d in enumerate(durations)])
    assert [d for _, d, _ in found] == flagged


values = st.floats(min_value=-1e12, max_value=1e15, allow_nan=False)
labels = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=20)


@st.composite
def charts(draw: st.DrawFn) -> Chart:
    names = draw(st.lists(labels, max_size=30))
    series = draw(st.lists(st.tuples(labels, st.lists(values, min_size=len(names), max_size=len(names))),
                           max_size=4))  # fmt: skip
    kind = draw(st.sampled_from(["bars", "line"]))
    unit = draw(st.sampled_from(["bytes", "s", ""]))
    return Chart(draw(labels), kind, tuple(names), tuple(Series(n, tuple(v)) for n, v in series), unit)


@settings(max_examples=60, deadline=None)
@given(charts())
def test_any_chart_is_well_formed_svg_inside_the_plot(chart: Chart) -> None:
    root = ET.fromstring(svg.render(chart))
    for rect in root.iter("rect"):
        assert float(rect.get("height", "0")) >= 0 and float(rect.get("y", "0")) >= 0
    for circle in root.iter("circle"):
        assert svg.TOP - 0.1 <= float(circle.get("cy", "0")) <= svg.HEIGHT - svg.BOTTOM + 0.1
