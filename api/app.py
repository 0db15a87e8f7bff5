"""The app factory: ``create_app(settings)`` wires the key store, the gold repository, routes, errors and middleware.

The repository loads the latest publication at start-up and polls the manifest folder every
``settings.api_poll_interval_s`` seconds; ``app.state.repository.refresh()`` (or SIGHUP under ``lakehouse serve``)
reloads at once. The service never imports Spark.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import threading
from typing import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from starlette.responses import Response

from api.deps import SECURITY_SCHEME
from api.fastpath import FastPath
from api.metrics import CONTENT_TYPE, Metrics
from api.middleware import ServiceMiddleware
from api.pages import router as pages_router
from api.problems import install_problem_handlers, problem_response
from api.repository import GoldRepository
from api.routes import COMMON_ERRORS, CustomerMoved, FastJSON, moved_response, router
from api.schemas import HealthPublic, ReadyPublic
from api.security import load_key_store
from lakehouse import __version__
from lakehouse.settings import Settings

log = logging.getLogger("lakehouse.api")

DESCRIPTION = """
Customer insights over the **published** gold layer of the retail lakehouse: golden customer records, source-id
lookups, normalized search, loyalty, vouchers and a customer 360.

Every response carries `X-Manifest-Version`: the publication it was read from (one publication per response, never a
mix). Send an API key in `X-API-Key`; scope `read` is required, scope `pii` unmasks email, phone, address and birth
date. Errors are RFC 9457 `application/problem+json`.
"""


def create_app(settings: Settings, *, repository: GoldRepository | None = None, start_polling: bool = True,
               fast_path: bool = True) -> FastAPI:
    """Build the API for ``settings`` (raises ``ConfigError`` with a sentence when API keys are misconfigured).

    ``fast_path=False`` routes every request through FastAPI (the tests compare both ways).
    """
    key_store, dev_key = load_key_store(settings)
    repository = repository or GoldRepository(settings)
    metrics = Metrics()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if dev_key:
            print(f"local mode, no API key configured: dev key for this process (scopes read, pii): {dev_key}",
                  file=sys.stderr, flush=True)
        if start_polling:
            # The first load runs in the poll thread: /health answers at once, /ready once gold is loaded.
            repository.start()
        _install_sighup(repository)
        try:
            yield
        finally:
            repository.stop()

    app = FastAPI(
        title="Retail lakehouse customer insights API",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        default_response_class=FastJSON,
        openapi_tags=[{"name": "customers", "description": "Golden customers and their insights (API key needed)."},
                      {"name": "operations", "description": "Liveness, readiness and metrics (no key)."}],
    )
    app.state.settings = settings
    app.state.key_store = key_store
    app.state.repository = repository
    app.state.metrics = metrics
    app.state.dev_key = dev_key
    install_problem_handlers(app)
    app.add_exception_handler(CustomerMoved, moved_response)  # a retired golden id: 308 to its survivor
    app.include_router(router)
    app.include_router(pages_router)  # HTML pages (issue 9): login, overview, customer 360, identity, pipeline

    @app.get("/health", response_model=HealthPublic, tags=["operations"], summary="Liveness")
    async def health() -> Response:
        """The process answers."""
        return FastJSON({"status": "ok"})

    @app.get("/ready", response_model=ReadyPublic, tags=["operations"], summary="Readiness",
             responses={503: COMMON_ERRORS[503]})
    async def ready(request: Request) -> Response:
        """Ready when a publication is loaded; says which."""
        snap = repository.snapshot
        if snap is None:
            detail = "No gold publication is loaded yet."
            if repository.last_error:
                detail += " The last load failed; see the service log."
            return problem_response(503, detail, title="Gold not ready", instance="/ready", headers={"Retry-After": "5"})
        request.scope["state"]["manifest_version"] = snap.version
        return FastJSON({
            "status": "ready", "manifest_version": snap.version, "published_at": snap.manifest.published_at,
            "run_date": snap.manifest.run_date, "loaded_at": snap.loaded_at, "customers": snap.n,
            "load_seconds": snap.load_seconds,
        })

    @app.get("/metrics", tags=["operations"], summary="Prometheus metrics", response_class=Response,
             responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}},
                              "description": "Prometheus text exposition format 0.0.4."}})
    async def metrics_endpoint() -> Response:
        """Request counts and latencies by route template, and the gold index's state."""
        return Response(metrics.render(repository), media_type=CONTENT_TYPE)

    app.add_middleware(ServiceMiddleware, repository=repository, metrics=metrics,
                       fast_path=FastPath(app) if fast_path else None)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


MANIFEST_HEADER_DOC = {
    "description": "Version of the gold publication the response was read from ('none' before the first one).",
    "schema": {"type": "string", "pattern": "^([0-9]+|none)$"},
}


def _openapi(app: FastAPI) -> dict:
    """The OpenAPI document, with the API-key scheme required on every ``/v1`` operation."""
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes,
                             tags=app.openapi_tags)
        schema.setdefault("components", {})["securitySchemes"] = SECURITY_SCHEME
        for path, operations in schema.get("paths", {}).items():
            for operation in operations.values():
                if path.startswith("/v1/"):
                    operation["security"] = [{"ApiKey": []}]
                for response in operation.get("responses", {}).values():
                    response.setdefault("headers", {})["X-Manifest-Version"] = MANIFEST_HEADER_DOC
        app.openapi_schema = schema
    return app.openapi_schema


def _install_sighup(repository: GoldRepository) -> None:
    """SIGHUP reloads the latest publication in a background thread (no-op where signals are unavailable)."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGHUP"):
        return
    try:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, lambda: threading.Thread(target=repository.refresh, daemon=True).start())
    except (NotImplementedError, RuntimeError, ValueError):
        pass


def run(settings: Settings, *, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info") -> None:
    """Serve with uvicorn, one worker (what ``lakehouse serve`` runs)."""
    import uvicorn

    logging.basicConfig(level=getattr(logging, log_level.upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    app = create_app(settings)
    uvicorn.run(app, host=host, port=port, workers=1, access_log=False, log_level=log_level,
                server_header=False, proxy_headers=False)
