"""The dashboard's report pages: the list, each report as its own HTML page, text, JSON and PDF.

``/reports/{kind}`` serves the very HTML that files, mails and PDFs get (one
template per report, ``ops.reports.render``), with a line of links added. That
HTML styles itself with inline ``style`` attributes, which the dashboard's CSP
(``style-src 'self'``) blocks, so this response carries its own, narrower CSP
(:data:`REPORT_CSP`): nothing may load (``default-src 'none'``, so no script at
all), inline styles may apply, forms may not submit. Inline CSS cannot leak
anything there: every value is escaped by the template, and no URL may be
fetched to carry data out.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

from amber.errors import AmberError, ExtraMissing
from amber.ops.config.model import Config
from amber.ops.config.reports import KINDS
from amber.ops.reports import daily, monthly, render, send, weekly
from amber.redact import redact
from amber.web.pages import Render
from amber.web.security import CSP_HEADER

REPORT_CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'none'; "
              "frame-ancestors 'none'; base-uri 'none'")  # fmt: skip
MODULES: dict[str, Any] = {"daily": daily, "weekly": weekly, "monthly": monthly}
PERIODS = {"daily": "the last 24 hours", "weekly": "the last 7 days against the 7 before",
           "monthly": "the last 31 days against the month before"}  # fmt: skip


def links(kind: str, pdf: bool) -> list[tuple[str, str]]:
    shown = [("/", "Dashboard"), ("/reports", "Reports"), (f"/reports/{kind}?format=text", "Text"),
             (f"/reports/{kind}?format=json", "JSON")]  # fmt: skip
    return [*shown, (f"/reports/{kind}.pdf", "PDF")] if pdf else shown


def routes(config: Config, render_page: Render) -> list[Route]:
    """``render_page(request, template, **values)``: a page in the dashboard's own layout."""

    async def listing(request: Request) -> Response:
        sent = send.SentLog(config.state.path)
        latest = await asyncio.to_thread(lambda: {k: sent.latest(k) for k in KINDS})
        return render_page(request, "reports.html", kinds=KINDS, periods=PERIODS, latest=latest,
                           scheduled=config.reports, pdf=await asyncio.to_thread(render.pdf_available),
                           pdf_howto=render.PDF_HOWTO)  # fmt: skip

    async def report(request: Request) -> Response:
        kind = request.path_params["kind"]
        module = MODULES.get(kind)
        if module is None:
            return PlainTextResponse("no such report", 404)
        shape = request.query_params.get("format", "html")
        if shape == "json":
            found = await asyncio.to_thread(getattr(module, kind), config, time.time())
            return Response(module.render_json(found), media_type="application/json")
        doc = await asyncio.to_thread(send.build, kind, config, time.time())
        if shape == "text":
            return render_page(request, "report.html", kind=kind, text=render.text(doc))
        pdf = await asyncio.to_thread(render.pdf_available)
        page = render.html(doc, links=links(kind, pdf))
        return HTMLResponse(page, headers={CSP_HEADER: REPORT_CSP})

    async def report_pdf(request: Request) -> Response:
        kind = request.path_params["kind"]
        if kind not in MODULES:
            return PlainTextResponse("no such report", 404)
        doc = await asyncio.to_thread(send.build, kind, config, time.time())
        try:
            body = await asyncio.to_thread(render.pdf, doc)
        except ExtraMissing:
            return PlainTextResponse(render.PDF_HOWTO + "\n", 501)
        except AmberError as exc:
            return PlainTextResponse(redact(exc.message) + "\n", 500)
        name = f"amber-{kind}-{doc.period[:10]}.pdf"
        return Response(body, media_type="application/pdf",
                        headers={"content-disposition": f'attachment; filename="{name}"'})  # fmt: skip

    return [Route("/reports", listing), Route("/reports/{kind}.pdf", report_pdf),
            Route("/reports/{kind}", report)]  # fmt: skip
