"""The insight and operations pages: login, overview, customer search and 360, identity, pipeline health, data docs.

Authentication is the API's: the login form takes an API key, checks it with the app's key store (scope ``read``;
``pii`` unmasks contact details exactly as in the API) and keeps it in a ``Secure``, ``HttpOnly``,
``SameSite=Strict`` cookie; every page re-checks it through :func:`api.deps.authorize`. A page renders one
:class:`~api.pages.store.Bundle`: the repository snapshot and the page aggregates of the same publication.
"""

from __future__ import annotations

import logging
import mimetypes
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator
from urllib.parse import parse_qs, quote, urlsplit

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse, RedirectResponse, Response

from api import views
from api.deps import authorize
from api.pages import render
from api.pages.data import parse_row_json
from api.pages.masking import mask_reasons, mask_row
from api.pages.store import Bundle, get_store
from api.problems import ProblemError
from api.routes import GOLDEN_ID_PATTERN
from api.security import ApiKey
from lakehouse.normalize import name_tokens

log = logging.getLogger("lakehouse.api.pages")

COOKIE = "lh_pages_key"
SESSION_SECONDS = 8 * 3600
STATIC = Path(__file__).resolve().parent / "static"
HOME = "/pages/overview"
SEARCH_LIMIT = 25
PREFECT_UI_DEFAULT = "http://127.0.0.1:4200"
_GOLDEN_ID = re.compile(GOLDEN_ID_PATTERN)
_PHONE_QUERY = re.compile(r"[+\d\s().\-/]{5,32}")
_NEXT_OK = ("/pages/", "/docs/data/")

PAGE_HEADERS = {
    # No script at all; styles only from our own stylesheet; nothing may be loaded from another host.
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # same-origin (not no-referrer): browsers then send the Origin header on our form posts, which login checks.
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
DOCS_HEADERS = {
    # The data docs run their own vendored scripts (GX pages use inline scripts and Vega); still nothing remote.
    "Content-Security-Policy": "default-src 'self' 'unsafe-inline' 'unsafe-eval' data: blob:; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "private, max-age=300",
}



async def _lifespan(app: Any) -> AsyncIterator[None]:
    """With the app: the page store's watcher follows the repository (entered after the API's own lifespan)."""
    store = get_store(app)
    store.start()
    try:
        yield
    finally:
        store.stop()


router = APIRouter(include_in_schema=False, lifespan=_lifespan)
_env = render.environment()


@dataclass(frozen=True)
class Page:
    """A signed-in page request: who asks, whether PII is shown, and the publication it renders."""

    request: Request
    caller: ApiKey
    bundle: Bundle

    @property
    def pii(self) -> bool:
        return self.caller.pii


# ---------------------------------------------------------------------------------------------------------------
# Responses
# ---------------------------------------------------------------------------------------------------------------
def html(template: str, *, status: int = 200, headers: dict[str, str] | None = None, **context: Any) -> HTMLResponse:
    """Render a template with the pages' security headers."""
    context.setdefault("refresh", False)
    body = _env.get_template(template).render(**context)
    return HTMLResponse(body, status_code=status, headers={**PAGE_HEADERS, **(headers or {})})


def _page(page: Page, template: str, *, active: str, title: str, status: int = 200, **context: Any) -> HTMLResponse:
    data = page.bundle.data
    manifest = data.manifest
    return html(template, status=status, active=active, title=title, caller=page.caller, pii=page.pii,
                publication={"version": manifest.version, "published_at": manifest.published_at,
                             "run_date": manifest.run_date, "run_id": manifest.run_id},
                built_at=data.built_at, build_seconds=data.build_seconds, **context)


def message(status: int, title: str, text: str, *, caller: ApiKey | None = None,
            headers: dict[str, str] | None = None, refresh: bool = False) -> HTMLResponse:
    """A page with one sentence (errors, not-ready)."""
    return html("message.html", status=status, headers=headers, title=title, text=text, caller=caller,
                pii=bool(caller and caller.pii), active="", publication=None, refresh=refresh)


def _login_redirect(request: Request, *, clear: bool = False) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    response = RedirectResponse(f"/login?next={quote(target, safe='/')}", status_code=303)
    if clear:
        response.delete_cookie(COOKIE, path="/", secure=True, httponly=True, samesite="strict")
    return response


def _safe_next(target: str | None) -> str:
    """Where to go after login: our own page paths only (never another host)."""
    if not target or not target.startswith(_NEXT_OK) or "\\" in target or "//" in target:
        return HOME
    parts = urlsplit(target)
    return HOME if parts.scheme or parts.netloc else target


def _same_origin(request: Request) -> bool:
    """A form post must come from our own pages (the SameSite cookie is the first guard; Origin the second)."""
    origin = request.headers.get("origin")
    if not origin or origin == "null":
        return origin is None
    host = request.headers.get("host", "")
    return urlsplit(origin).netloc == host


def guard(request: Request) -> Page | Response:
    """The signed-in page context, or the response to send instead (login redirect, 403, gold not ready)."""
    key = request.cookies.get(COOKIE)
    if not key:
        return _login_redirect(request)
    state = request.app.state
    try:
        ctx = authorize(state.key_store, state.repository, [(b"x-api-key", key.encode("latin-1", "replace"))],
                        request.scope.setdefault("state", {}))
    except ProblemError as exc:
        if exc.status == 401:
            return _login_redirect(request, clear=True)
        if exc.status == 503:
            return message(503, "Gold not ready", "No gold publication is loaded yet; this page reloads in 5 seconds.",
                           headers={"Retry-After": "5"}, refresh=True)
        return message(exc.status, exc.title, exc.detail)
    try:
        bundle = get_store(request.app).current()
    except Exception as exc:  # noqa: BLE001 - an aggregation failure is a 503 with a sentence, logged
        log.error("pages: cannot aggregate the publication: %s: %s", exc.__class__.__name__, exc)
        return message(503, "Pages not ready", "The pages could not aggregate the current publication; "
                       "the error was logged. The API keeps answering.", caller=ctx.caller, headers={"Retry-After": "30"})
    if bundle is None:
        return message(503, "Pages not ready", f"The pages are aggregating publication v{ctx.gold.version} (once per "
                       "publication); this page reloads in 5 seconds.", caller=ctx.caller, headers={"Retry-After": "5"},
                       refresh=True)
    request.scope["state"]["manifest_version"] = bundle.version
    return Page(request, ctx.caller, bundle)


# ---------------------------------------------------------------------------------------------------------------
# Login
# ---------------------------------------------------------------------------------------------------------------
@router.get("/")
def root() -> Response:
    """The pages' home."""
    return RedirectResponse(HOME, status_code=303)


@router.get("/pages")
def pages_root() -> Response:
    return RedirectResponse(HOME, status_code=303)


@router.get("/login")
def login_form(request: Request) -> Response:
    """The sign-in form (an API key)."""
    target = _safe_next(request.query_params.get("next"))
    key = request.cookies.get(COOKIE)
    if key and request.app.state.key_store.authenticate(key) is not None:
        return RedirectResponse(target, status_code=303)
    return html("login.html", title="Sign in", next=target, error=None, caller=None, pii=False, active="",
                publication=None)


async def _form(request: Request) -> dict[str, str]:
    body = await request.body()
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
        return {}
    try:
        parsed = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=8)
    except (UnicodeDecodeError, ValueError):
        return {}
    return {k: v[0] for k, v in parsed.items()}


@router.post("/login")
async def login(request: Request) -> Response:
    """Check the key; on success keep it in a Secure, HttpOnly, SameSite=Strict cookie and go to the next page."""
    if not _same_origin(request):
        return message(403, "Forbidden", "Sign in from this site's own login form.")
    form = await _form(request)
    target = _safe_next(form.get("next"))
    key = (form.get("api_key") or "").strip()
    caller = request.app.state.key_store.authenticate(key) if key else None
    if caller is None or "read" not in caller.scopes:
        error = "That API key is not valid." if caller is None else "That key lacks the read scope."
        return html("login.html", status=401 if caller is None else 403, title="Sign in", next=target, error=error,
                    caller=None, pii=False, active="", publication=None)
    request.scope.setdefault("state", {})["key_name"] = caller.name
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(COOKIE, key, max_age=SESSION_SECONDS, path="/", secure=True, httponly=True, samesite="strict")
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    """Forget the key."""
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE, path="/", secure=True, httponly=True, samesite="strict")
    return response


@router.get("/pages/static/{name}")
def static(name: str) -> Response:
    """The pages' stylesheet (public: it holds no data)."""
    path = STATIC / name
    if "/" in name or name.startswith(".") or not path.is_file():
        return message(404, "Not found", "No such file.")
    media = mimetypes.guess_type(name)[0] or "application/octet-stream"
    return Response(path.read_bytes(), media_type=media,
                    headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"})


# ---------------------------------------------------------------------------------------------------------------
# Pages
# ---------------------------------------------------------------------------------------------------------------
@router.get("/pages/overview")
def overview(request: Request) -> Response:
    """KPIs, revenue by channel, funnel, loyalty tiers, churn risk, top products."""
    page = guard(request)
    if isinstance(page, Response):
        return page
    data = page.bundle.data
    return _page(page, "overview.html", active="overview", title="Overview", o=data.overview, charts=data.charts)


@router.get("/pages/customers")
def customers(request: Request) -> Response:
    """The customer search form and the customers with the highest loyalty score."""
    page = guard(request)
    if isinstance(page, Response):
        return page
    return _page(page, "customers.html", active="customers", title="Customers", query="", postcode="", mode=None,
                 results=None, more=False, top=_top_customers(page))


@router.post("/pages/customers")
async def search(request: Request) -> Response:
    """Search by name (optionally with postcode), email or phone; the query stays out of URLs and logs."""
    page = guard(request)
    if isinstance(page, Response):
        return page
    if not _same_origin(request):
        return message(403, "Forbidden", "Search from this site's own form.", caller=page.caller)
    form = await _form(request)
    query = (form.get("q") or "").strip()[:100]
    postcode = (form.get("postcode") or "").strip()[:16]
    mode, results, more = await run_in_threadpool(search_customers, page, query, postcode)
    if not page.pii:  # never echo contact details to a key that may not see them
        query = query if mode == "name" or mode == "name and postcode" else ""
        postcode = ""
    return _page(page, "customers.html", active="customers", title="Customers", query=query, postcode=postcode,
                 mode=mode, results=results, more=more, top=_top_customers(page))


def _top_customers(page: Page) -> list[dict[str, Any]]:
    gold = page.bundle.gold
    out = []
    for row in page.bundle.data.top_customers:
        crow = gold.customer_row(row["golden_id"])
        if crow is not None:
            out.append({**row, "full_name": gold.customers.value("full_name", crow)})
    return out


def search_customers(page: Page, query: str, postcode: str) -> tuple[str | None, list[dict[str, Any]], bool]:
    """``(mode, customer rows as shown, more available)``; email and phone searches reuse the repository's index."""
    gold = page.bundle.gold
    if not query:
        return None, [], False
    if "@" in query:
        mode, rows = "email", gold.search(email=query, limit=SEARCH_LIMIT + 1)
    elif _PHONE_QUERY.fullmatch(query) and sum(ch.isdigit() for ch in query) >= 5:
        mode, rows = "phone", gold.search(phone=query, limit=SEARCH_LIMIT + 1)
    elif postcode:
        mode, rows = "name and postcode", gold.search(name=query, postcode=postcode, limit=SEARCH_LIMIT + 1)
    else:
        mode, rows = "name", _name_search(page, query, SEARCH_LIMIT + 1)
    more = len(rows) > SEARCH_LIMIT
    return mode, [_result(page, crow) for crow in rows[:SEARCH_LIMIT]], more


def _name_search(page: Page, query: str, limit: int) -> list[int]:
    """Customer rows whose name has every word of ``query``, in golden id order."""
    gold, names = page.bundle.gold, page.bundle.data.names
    wanted = set(name_tokens(query))
    if not wanted:
        return []
    out: list[int] = []
    for row in names.candidates(query):
        crow = gold.customer_row(names.golden_id(int(row)))
        if crow is None:
            continue
        value = gold.customers.value
        if wanted <= set(name_tokens(value("full_name", crow), value("first_name", crow), value("last_name", crow))):
            out.append(crow)
            if len(out) >= limit:
                break
    return out


def _result(page: Page, crow: int) -> dict[str, Any]:
    gold = page.bundle.gold
    row = views.customer_public(gold.customer(crow), pii=page.pii)
    row["loyalty_tier"] = gold.loyalty.first_value(crow, "loyalty_tier")
    row["customer_segment"] = gold.metrics.first_value(crow, "customer_segment")
    return row


@router.get("/pages/customers/{golden_id}")
def customer(request: Request, golden_id: str) -> Response:
    """Customer 360: golden record, source records, loyalty, vouchers, purchase timeline, subscription candidates."""
    page = guard(request)
    if isinstance(page, Response):
        return page
    gold = page.bundle.gold
    crow = gold.customer_row(golden_id) if _GOLDEN_ID.fullmatch(golden_id) else None
    if crow is None:
        return _page(page, "message.html", active="customers", title="Not found", status=404,
                     text=f"No golden customer {golden_id[:64]} in publication v{page.bundle.version}.", refresh=False)
    detail = views.customer_detail(gold, crow, pii=page.pii)
    summary = views.summary_public(gold, crow)
    loyalty_row = gold.loyalty.first(crow)
    loyalty = views.loyalty_public(golden_id, loyalty_row) if loyalty_row is not None else None
    orders = page.bundle.data.timeline.for_customer(golden_id)
    return _page(page, "customer.html", active="customers", title=detail.get("full_name") or golden_id,
                 c=detail, summary=summary, loyalty=loyalty, vouchers=gold.vouchers.rows(crow),
                 orders=list(reversed(orders)), timeline_available=page.bundle.data.timeline.available,
                 charts=render.customer_charts(loyalty, orders))


@router.get("/pages/identity")
def identity(request: Request) -> Response:
    """Records per identity, match rates per rule and source pair, recent merges and splits."""
    page = guard(request)
    if isinstance(page, Response):
        return page
    data = page.bundle.data
    return _page(page, "identity.html", active="identity", title="Identity", i=data.identity, charts=data.charts)


def prefect_ui_url(settings: Any) -> str:
    """The Prefect UI: ``settings.prefect_ui_url`` if defined, else $LAKEHOUSE_PREFECT_UI_URL, $PREFECT_UI_URL,
    $PREFECT_API_URL without ``/api``, else the local server's default."""
    import os

    configured = getattr(settings, "prefect_ui_url", None) or os.environ.get("LAKEHOUSE_PREFECT_UI_URL") \
        or os.environ.get("PREFECT_UI_URL")
    if not configured and os.environ.get("PREFECT_API_URL"):
        configured = os.environ["PREFECT_API_URL"].rstrip("/").removesuffix("/api")
    url = str(configured or PREFECT_UI_DEFAULT)
    return url if urlsplit(url).scheme in ("http", "https") else PREFECT_UI_DEFAULT


def _docs_built(settings: Any) -> bool:
    from expectations.docs import site_dir
    from lakehouse.storage import Storage

    try:
        return Storage(settings).exists(f"{site_dir(settings)}/index.html")
    except Exception:  # noqa: BLE001 - unreachable storage: no link
        return False


@router.get("/pages/pipeline")
def pipeline(request: Request) -> Response:
    """Latest runs per layer with their accounting, gate results, quarantine per rule and day, the publication."""
    page = guard(request)
    if isinstance(page, Response):
        return page
    store = get_store(request.app)
    try:
        p = store.pipeline()
    except Exception as exc:  # noqa: BLE001 - a system table being rewritten, or unreadable storage
        log.error("pages: cannot read the system tables: %s: %s", exc.__class__.__name__, exc)
        return message(503, "Pipeline health unavailable", "The system tables could not be read; the error was logged.",
                       caller=page.caller, headers={"Retry-After": "10"})
    settings = request.app.state.settings
    return _page(page, "pipeline.html", active="pipeline", title="Pipeline health", p=p, gates=page.bundle.data.manifest.gates,
                 tables=page.bundle.data.manifest.tables, prefect_url=prefect_ui_url(settings),
                 docs_built=_docs_built(settings), charts=p.charts, repository_error=request.app.state.repository.last_error,
                 pages_error=store.last_error)


@router.get("/pages/pipeline/quarantine")
def quarantine(request: Request) -> Response:
    """Example quarantined rows of one rule of one table (masked unless the key has ``pii``)."""
    page = guard(request)
    if isinstance(page, Response):
        return page
    table = request.query_params.get("table", "")[:100]
    rule = request.query_params.get("rule", "")[:100]
    p = get_store(request.app).pipeline()
    rows = p.examples.get((table, rule))
    if rows is None:
        return _page(page, "message.html", active="pipeline", title="Not found", status=404,
                     text="No quarantined rows for that table and rule in the system tables.", refresh=False)
    examples = []
    for r in rows:
        examples.append({
            "row": mask_row(parse_row_json(r.get("row_json")), pii=page.pii),
            "key": mask_row(parse_row_json(r.get("business_key")), pii=page.pii),
            "reasons": mask_reasons(r.get("reasons"), pii=page.pii),
            "failed_rules": r.get("failed_rules") or [],
            "run_id": r.get("run_id"), "ingest_date": r.get("ingest_date"), "quarantined_at": r.get("quarantined_at"),
            "released_run_id": r.get("released_run_id"),
        })
    total = next((q for q in p.quarantine_rules if q["table"] == table and q["rule"] == rule), None)
    return _page(page, "quarantine.html", active="pipeline", title=f"Quarantine: {rule}", table=table, rule=rule,
                 examples=examples, total=total, p=p)


# ---------------------------------------------------------------------------------------------------------------
# Data docs (the built Great Expectations site, under the same sign-in)
# ---------------------------------------------------------------------------------------------------------------
@router.get("/docs/data")
def docs_root() -> Response:
    return RedirectResponse("/docs/data/index.html", status_code=303)


@router.get("/docs/data/{path:path}")
def docs_file(request: Request, path: str) -> Response:
    """A file of the data docs site (``expectations.docs.site_dir``), read-only, signed-in keys only."""
    page = guard(request)
    if isinstance(page, Response):
        return page
    from expectations.docs import site_dir
    from lakehouse.storage import Storage

    rel = path or "index.html"
    if rel.endswith("/"):
        rel += "index.html"
    parts = rel.split("/")
    if rel.startswith("/") or any(p in ("", ".", "..") for p in parts) or "\\" in rel or "\x00" in rel:
        return message(404, "Not found", "No such file in the data docs.", caller=page.caller)
    clean = "/".join(parts)
    settings = request.app.state.settings
    storage = Storage(settings)
    uri = f"{site_dir(settings)}/{clean}"
    try:
        if not storage.exists(uri):
            raise FileNotFoundError(uri)
        body = storage.read_bytes(uri)
    except (FileNotFoundError, IsADirectoryError, OSError):
        if clean == "index.html":
            return message(404, "Data docs not built", "The data docs site has not been built yet "
                           "(expectations.docs.build_data_docs writes it after gate runs).", caller=page.caller)
        return message(404, "Not found", "No such file in the data docs.", caller=page.caller)
    media = mimetypes.guess_type(clean)[0] or "application/octet-stream"
    return Response(body, media_type=media, headers=DOCS_HEADERS)
