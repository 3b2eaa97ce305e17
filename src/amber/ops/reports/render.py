"""Laying out a report :class:`~amber.ops.reports.document.Document`: text, HTML, mail HTML and PDF.

Jinja2 templates beside this module (``templates/report.txt.j2``,
``templates/report.html.j2``). The HTML is self-contained: inline styles, inline
SVG charts, no scripts and no external resources, so a file, a PDF and a mail
show the same. Mail clients show no SVG, so the mail variant draws charts as
table bars. PDF needs WeasyPrint, the optional extra ``amber[pdf]``.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import jinja2

from amber.errors import ExtraMissing
from amber.ops.reports import svg
from amber.ops.reports.document import TONES, Document, Table
from amber.printable import printable
from amber.redact import redact

COLOURS = {"good": "#1d7a3e", "warn": "#a86400", "bad": "#b3261e"}


def aligned(table: Table) -> list[str]:
    """The table as text lines, columns padded (numbers right-aligned)."""
    cells = [table.columns, *table.rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(table.columns))]
    lines = []
    for row in cells:
        parts = [c.rjust(w) if i in table.numeric else c.ljust(w)
                 for i, (c, w) in enumerate(zip(row, widths, strict=True))]  # fmt: skip
        lines.append("  ".join(parts).rstrip())
    return lines


def tone(word: str) -> str:
    return COLOURS.get(TONES.get(word, ""), "#222")


@functools.cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("amber.ops.reports", "templates"),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",), default_for_string=False),
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
    )  # fmt: skip
    env.filters.update(aligned=aligned, tone=tone, redact=redact, svg=svg.render, bar_rows=svg.bar_rows)
    return env


def _render(name: str, doc: Document, **extra: Any) -> str:
    extra.setdefault("links", ())
    page = _environment().get_template(name).render(doc=doc, **extra)
    return printable(page)  # run errors quote names from the backed-up machine


def text(doc: Document) -> str:
    return _render("report.txt.j2", doc)


def html(doc: Document, mail: bool = False, links: Sequence[tuple[str, str]] = ()) -> str:
    """The page (SVG charts) or, with ``mail``, the mail body (charts as table bars).

    ``links`` ((href, label) pairs): a line of links above the report, for the dashboard's page;
    files, mails and PDFs have none, so they reference nothing."""
    return _render("report.html.j2", doc, mail=mail, links=links)


def _no_fetch(url: str, *args: Any, **kwargs: Any) -> Any:
    raise ValueError(f"reports load nothing from outside: {url}")  # the HTML references nothing anyway


PDF_HOWTO = "PDF reports need WeasyPrint: pip install 'amber[pdf]'"


@functools.cache
def _weasyprint() -> Any:
    try:
        import weasyprint  # optional: amber[pdf]
    except (ImportError, OSError) as exc:  # OSError: the package is there, Pango is not
        raise ExtraMissing(f"{PDF_HOWTO} ({exc})") from exc
    return weasyprint


def pdf_available() -> bool:
    try:
        _weasyprint()
    except ExtraMissing:
        return False
    return True


def pdf(doc: Document) -> bytes:
    """The HTML page printed by WeasyPrint; ExtraMissing (exit 43) without it."""
    weasyprint = _weasyprint()
    result = weasyprint.HTML(string=html(doc), url_fetcher=_no_fetch).write_pdf()
    assert isinstance(result, bytes)
    return result
