"""One pure-ASGI middleware for the whole service: request limits, the ``X-Manifest-Version`` header, metrics, the
access log (route templates and key names only: never keys, query strings or PII) and a last-resort 500."""

from __future__ import annotations

import logging
import time
from typing import Any, Awaitable, Callable

from api.metrics import Metrics
from api.problems import log_unexpected, problem_response

access_log = logging.getLogger("lakehouse.api.access")

MAX_URL_BYTES = 2048
MAX_QUERY_PARAMS = 16
MAX_BODY_BYTES = 1024

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class ServiceMiddleware:
    """Wraps the FastAPI app (inside Starlette's error middleware)."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]], *, repository: Any, metrics: Metrics,
                 fast_path: Any = None) -> None:
        self.app = app
        self.repository = repository
        self.metrics = metrics
        self.fast_path = fast_path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]
        response_started = [False]
        state = scope.setdefault("state", {})

        async def send_with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                response_started[0] = True
                version = state.get("manifest_version")
                if version is None:
                    version = self.repository.version
                headers = list(message.get("headers", ()))
                headers.append((b"x-manifest-version", str(version if version is not None else "none").encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            rejection = self._reject(scope)
            if rejection is not None:
                await rejection(scope, receive, send_with_headers)
            else:
                hot = self.fast_path.match(scope) if self.fast_path is not None else None
                if hot is not None:
                    await self.fast_path.serve(scope, send_with_headers, *hot)
                else:
                    await self.app(scope, receive, send_with_headers)
        except Exception as exc:  # noqa: BLE001 - the last resort: a problem document, logged without values
            log_unexpected(scope, exc)
            if not response_started[0]:
                response = problem_response(500, "The server failed to answer; the error was logged.",
                                            instance=scope.get("path"))
                await response(scope, receive, send_with_headers)
        finally:
            elapsed = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", None) or "<unmatched>"
            method = scope.get("method", "-")
            self.metrics.observe(method, route, status[0], elapsed)
            if access_log.isEnabledFor(logging.INFO):
                access_log.info("%s %s %d %.2fms key=%s manifest=%s", method, route, status[0], elapsed * 1000,
                                state.get("key_name", "-"), state.get("manifest_version", "-"))

    @staticmethod
    def _reject(scope: Scope) -> Any:
        """A problem response when the request breaks a size limit, else None."""
        query = scope.get("query_string", b"")
        if len(scope.get("raw_path") or scope.get("path", "").encode()) + len(query) > MAX_URL_BYTES:
            return problem_response(414, f"The URL is longer than {MAX_URL_BYTES} bytes.")
        if query.count(b"&") + 1 > MAX_QUERY_PARAMS:
            return problem_response(400, f"More than {MAX_QUERY_PARAMS} query parameters.", title="Too many parameters")
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    too_big = int(value) > MAX_BODY_BYTES
                except ValueError:
                    too_big = True
                if too_big:
                    return problem_response(413, f"Request bodies are limited to {MAX_BODY_BYTES} bytes.")
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                return problem_response(413, f"Request bodies are limited to {MAX_BODY_BYTES} bytes (no chunked bodies).")
        return None
