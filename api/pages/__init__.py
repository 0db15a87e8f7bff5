"""Insight and operations pages served by the API app (issue 9): server-side HTML with inline SVG charts.

Register with ``app.include_router(router)`` (done in :func:`api.app.create_app`); the router's lifespan starts the
page store's watcher, which aggregates each publication once, when the repository swaps it in.
"""

from api.pages.routes import router

__all__ = ["router"]
