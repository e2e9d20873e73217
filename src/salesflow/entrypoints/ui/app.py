"""The dashboard's pages and actions: a thin Litestar layer over ``salesflow.ops``.

``/`` KPIs, category breakdown, Online Retail totals and alerts; ``/files`` lineage and the
batch files waiting; ``/dlq`` dead letters with redrive and discard. ``/api/state`` is what
pages poll to refresh by themselves; ``/api/kpis`` the chart data as JSON.

Handlers get the ``Backend`` and ``Settings`` by dependency injection; each calls the same
``ops`` function as the matching CLI command.
"""

from __future__ import annotations

import secrets
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import anyio.to_thread
from jinja2 import Environment, PackageLoader, select_autoescape
from litestar import Litestar, Request, get, post
from litestar.config.csrf import CSRFConfig
from litestar.contrib.jinja import JinjaTemplateEngine
from litestar.datastructures import State
from litestar.di import Provide
from litestar.exceptions import NotFoundException
from litestar.response import Redirect, Response, Template
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig
from markupsafe import Markup

from salesflow import layout
from salesflow.config import Settings
from salesflow.datasets import SPECS
from salesflow.entrypoints.ui import forms
from salesflow.entrypoints.ui.security import Gate
from salesflow.errors import SalesflowError
from salesflow.logs import mask_email
from salesflow.models import FileStatus, LetterStatus
from salesflow.ops import dashboard, lineage, summaries
from salesflow.ops import dlq as dlq_ops
from salesflow.ops.dlq_view import count_letters, facets, find_letters, get_letter
from salesflow.ports import Backend

HERE = Path(__file__).parent
FILES_SHOWN = 500
LETTERS_SHOWN = 100


def _masked(value: Any) -> Any:
    """Jinja's ``finalize``: every string a template prints has its emails masked."""
    if isinstance(value, str) and not isinstance(value, Markup):
        return mask_email(value)
    return value


def _num(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _short(value: Any, n: int = 12) -> Any:
    return value[:n] + "…" if isinstance(value, str) and len(value) > n else value


def _ends(key: Any) -> str:
    """``processed/…/orders.csv``: an archive key's root and name, the rest in its title."""
    if not isinstance(key, str) or not key:
        return ""
    root, _, rest = key.partition("/")
    name = rest.rpartition("/")[2]
    return f"{root}/…/{name}" if "/" in rest else key


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("salesflow.entrypoints.ui", "templates"),
        autoescape=select_autoescape(default=True),
        finalize=_masked,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        shown=forms.shown,
        editable=forms.fields,
        short=_short,
        ends=_ends,
        num=_num,
        pct=lambda v: "" if v is None else f"{100 * float(v):.1f}%",
        when=lambda v: "" if not v else str(v)[:19].replace("T", " "),
    )
    return env


def _page(state: State, name: str, **context: Any) -> Template:
    settings: Settings = state.settings
    base = {
        "backend_name": settings.backend,
        "where": str(settings.data_dir) if settings.backend == "local" else settings.aws.stack_name,
        "refresh_ms": int(settings.ui.refresh_seconds * 1000),
    }
    return Template(template_name=name, context={**base, **context})


# -- pages --------------------------------------------------------------------------------


@get("/", sync_to_thread=True)
def home(
    state: State,
    backend: Backend,
    start: str | None = None,
    end: str | None = None,
    category: str | None = None,
    by: str = "invoice",
) -> Template:
    """KPI charts over a date range (site-wide or one category), the category breakdown,
    Online Retail totals and recent alerts."""
    first, last = dashboard.day_range(backend)
    since, until = forms.day(start) or first, forms.day(end) or last
    chosen = category or None
    series = dashboard.kpi_series(backend, start=since, end=until, category=chosen)
    breakdown = dashboard.category_breakdown(backend, start=since, end=until)
    by = by if by in dashboard.TOTALS_BY else "invoice"
    totals, groups = dashboard.online_retail_totals(backend, by=by)
    return _page(
        state,
        "dashboard.html",
        nav="home",
        version=dashboard.fingerprint(backend),
        start=since.isoformat() if since else "",
        end=until.isoformat() if until else "",
        category=chosen or "",
        categories=dashboard.categories(backend),
        by=by,
        totals_by=dashboard.TOTALS_BY,
        chart_data={
            **series.to_dict(),
            "categories": [row["category"] for row in breakdown],
            "category_revenue": [row["revenue"] for row in breakdown],
        },
        totals=totals,
        groups=groups,
        breakdown=breakdown,
        alerts=dashboard.recent_alerts(backend),
        status=summaries.status(backend),
    )


@get("/files", sync_to_thread=True)
def files(
    state: State,
    backend: Backend,
    settings: Settings,
    status: str | None = None,
    dataset: str | None = None,
    key: str | None = None,
) -> Template:
    """Every file version with its lineage (newest first), and the batch files waiting."""
    rows = lineage.list_files(
        backend, key=key or None, status=status or None, dataset=dataset or None, limit=FILES_SHOWN
    )
    return _page(
        state,
        "files.html",
        nav="files",
        version=dashboard.fingerprint(backend),
        rows=list(reversed(rows)),
        shown=FILES_SHOWN,
        pending=lineage.pending_batch(backend, settings),
        status=status or "",
        dataset=dataset or "",
        key=key or "",
        statuses=[s.value for s in FileStatus],
        datasets=sorted(SPECS),
    )


@get("/files/report", sync_to_thread=True)
def report(backend: Backend, key: str) -> Response[str]:
    """A file's validation report (JSON), from ``reports/`` in the bucket only."""
    try:
        layout.check_key(key)
    except SalesflowError as exc:
        raise NotFoundException(str(exc)) from None
    if not key.startswith(layout.REPORTS) or not backend.store.exists(key):
        raise NotFoundException(f"no validation report at {key}")
    text = mask_email(backend.store.get_bytes(key).decode("utf-8"))
    return Response(text, media_type="application/json")


@get("/dlq", sync_to_thread=True)
def letters(
    state: State,
    backend: Backend,
    status: str = "NEW",
    dataset: str | None = None,
    rule: str | None = None,
    file: str | None = None,
    notice: str | None = None,
) -> Template:
    """Dead letters filtered by status, dataset, rule and file, each with every reason and
    its raw record; open ones can be corrected and redriven, or discarded."""
    wanted = "all" if status.lower() == "all" else status.upper()
    chosen = None if wanted == "all" else wanted
    found = find_letters(
        backend,
        status=chosen,
        dataset=dataset or None,
        source_file=file or None,
        rule=rule or None,
        limit=LETTERS_SHOWN,
    )
    total = count_letters(
        backend, status=chosen, dataset=dataset or None, source_file=file or None, rule=rule or None
    )
    filters = {"status": wanted, "dataset": dataset, "rule": rule, "file": file}
    query = urlencode({k: v for k, v in filters.items() if v})
    return _page(
        state,
        "dlq.html",
        nav="dlq",
        version=dashboard.fingerprint(backend),
        letters=found,
        total=total,
        facets=facets(backend, status=chosen),
        status=wanted,
        dataset=dataset or "",
        rule=rule or "",
        file=file or "",
        statuses=[s.value for s in LetterStatus],
        here="/dlq" + (f"?{query}" if query else ""),
        notice=notice,
    )


# -- actions ------------------------------------------------------------------------------


def _back(next_url: Any, notice: str) -> Redirect:
    target = forms.safe_next(next_url if isinstance(next_url, str) else None, "/dlq")
    joiner = "&" if "?" in target else "?"
    return Redirect(path=f"{target}{joiner}{urlencode({'notice': notice})}", status_code=303)


def _redrive(backend: Backend, settings: Settings, ids: list[str], form: dict[str, str]) -> str:
    """What ``salesflow dlq redrive`` does, under the same processing lock. One letter may
    come with corrected fields; several are redriven as they are."""
    from salesflow.entrypoints.cli.common import processing_lock

    chosen = [x for x in (get_letter(backend, i) for i in ids) if x is not None]
    corrections: dict[str, dict[str, Any]] = {}
    if len(chosen) == 1:
        raw, problems = forms.corrected(chosen[0], form)
        if problems:
            return "not redriven: " + "; ".join(problems)
        corrections[chosen[0].id] = raw
    items = [(x.id, corrections.get(x.id, x.raw)) for x in chosen]
    with processing_lock(settings):
        result = dlq_ops.redrive(backend, settings, items)
    missing = len(ids) - len(chosen)
    return (
        f"redriven: {result.redriven}, still failing: {result.still_failing}"
        + (f", superseded by a newer arrival: {result.superseded}" if result.superseded else "")
        + (f", unknown: {missing}" if missing else "")
    )


def _discard(backend: Backend, ids: list[str]) -> str:
    result = dlq_ops.discard(backend.letters, ids=ids, reason="discarded in the dashboard")
    return f"discarded: {result.discarded}"


async def _ids(request: Request[Any, Any, Any]) -> tuple[list[str], dict[str, str], Any]:
    form = await request.form()
    ids = [str(v) for v in form.getall("ids")] if "ids" in form else []
    fields = {str(k): v for k, v in form.items() if isinstance(v, str)}
    return ids, fields, form.get("next")


@post("/dlq/redrive")
async def redrive(
    request: Request[Any, Any, Any], backend: Backend, settings: Settings
) -> Redirect:
    """Redrive the letters selected (``ids``), with a single letter's corrected fields."""
    ids, fields, next_url = await _ids(request)
    if not ids:
        return _back(next_url, "nothing selected")
    notice = await anyio.to_thread.run_sync(partial(_redrive, backend, settings, ids, fields))
    return _back(next_url, notice)


@post("/dlq/discard")
async def discard(request: Request[Any, Any, Any], backend: Backend) -> Redirect:
    """Discard the letters selected (``ids``); they are kept, marked DISCARDED."""
    ids, _, next_url = await _ids(request)
    if not ids:
        return _back(next_url, "nothing selected")
    notice = await anyio.to_thread.run_sync(partial(_discard, backend, ids))
    return _back(next_url, notice)


# -- JSON ---------------------------------------------------------------------------------


@get("/api/state", sync_to_thread=True)
def api_state(backend: Backend) -> dict[str, str]:
    """A version that changes with the data; pages poll it to refresh by themselves."""
    return {"version": dashboard.fingerprint(backend)}


@get("/api/kpis", sync_to_thread=True)
def api_kpis(
    backend: Backend, start: str | None = None, end: str | None = None, category: str | None = None
) -> dict[str, Any]:
    """The daily KPI series the charts draw."""
    series = dashboard.kpi_series(
        backend, start=forms.day(start), end=forms.day(end), category=category or None
    )
    return series.to_dict()


def create_app(
    backend: Backend, settings: Settings, *, token: str | None, csrf_secret: str | None = None
) -> Gate:
    """The dashboard over ``backend``. ``token`` (if any) is required on every request."""
    app = Litestar(
        route_handlers=[
            home,
            files,
            report,
            letters,
            redrive,
            discard,
            api_state,
            api_kpis,
            create_static_files_router(path="/static", directories=[HERE / "static"]),
        ],
        dependencies={
            "backend": Provide(lambda: backend, use_cache=True, sync_to_thread=False),
            "settings": Provide(lambda: settings, use_cache=True, sync_to_thread=False),
        },
        state=State({"settings": settings}),
        template_config=TemplateConfig(
            instance=JinjaTemplateEngine.from_environment(_environment())
        ),
        csrf_config=CSRFConfig(
            secret=csrf_secret or secrets.token_urlsafe(32),
            cookie_name="salesflow_csrf",
            cookie_httponly=True,
            cookie_samesite="strict",
        ),
        debug=False,
    )
    return Gate(app, token=token)
