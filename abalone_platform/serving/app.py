"""The endpoint's ASGI app (Starlette): SageMaker's inference container contract.

- GET /ping: 200 while a model is loaded; 503 with the reason otherwise.
- POST /invocations: text/csv or application/json rows in; predictions out as CSV (one value per
  line, input order) or JSON, by Accept (default: the request's own type). Every response
  carries X-Model-Version. 400 for bad rows (naming the line or row and the column), 406 for an
  Accept it cannot give, 413 over the payload limit, 415 for another content type, 503 with no
  model. None of them stops the server.
- GET /metrics: Prometheus text (requests by path and status, latency, the version served).
With a token, every request needs `Authorization: Bearer <token>` (else 401).
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from abalone_platform.errors import InputDataError
from abalone_platform.faults import fault_point
from abalone_platform.serving import payloads
from abalone_platform.serving.metrics import ServerMetrics
from abalone_platform.serving.model import ModelHolder, ServedModel, Serving

Handler = Callable[[Request, Serving], Awaitable[Response]]
log = logging.getLogger("abalone_platform.serve")

VERSION_HEADER = "X-Model-Version"
# Bodies up to this size are predicted on the event loop: a thread hand-off costs more than
# they take. Larger ones go to a worker thread (XGBoost and Arrow release the GIL).
INLINE_BODY_BYTES = 64 << 10


@dataclass(frozen=True)
class AppSettings:
    max_payload_bytes: int
    token: str | None = None


class PayloadTooLarge(Exception):
    pass


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _media_type(header: str | None) -> str:
    return (header or "").split(";", 1)[0].strip().lower()


def _response_type(accept: str | None, request_type: str) -> str | None:
    """What to answer in: of the types Accept allows (q > 0), the most preferred we can give
    (the request's own type for */*); the request's type without Accept; None when Accept
    allows none we can give."""
    if not accept:
        return request_type
    ranked = []
    for position, part in enumerate(accept.split(",")):
        media, *params = (piece.strip() for piece in part.split(";"))
        quality = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if quality > 0:
            ranked.append((-quality, position, media.lower()))
    for _, _, media in sorted(ranked):
        if media in payloads.CONTENT_TYPES:
            return media
        if media == "*/*":
            return request_type
        if media == "text/*":
            return payloads.CSV
        if media == "application/*":
            return payloads.JSON
    return None


def build_app(holder: ModelHolder, metrics: ServerMetrics, settings: AppSettings) -> Starlette:
    token = settings.token.encode("latin-1") if settings.token else None

    def refused(request: Request) -> Response | None:
        if token is None:
            return None
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        # Headers arrive as latin-1 text; the scheme's name is case-insensitive (RFC 9110).
        if scheme.lower() == "bearer" and hmac.compare_digest(given.encode("latin-1"), token):
            return None
        return PlainTextResponse(
            "missing or wrong Authorization: Bearer <token>\n",
            401,
            headers={"WWW-Authenticate": "Bearer"},
        )

    async def dispatch(request: Request, path: str, handler: Handler, model) -> Response:
        try:
            return refused(request) or await handler(request, model)
        except Exception:
            log.exception("%s %s failed", request.method, request.url.path)
            return text(500, "internal error; the server log has the details")

    def route(path: str, method: str | None, handler: Handler) -> Route:
        """``handler`` behind the token check, with the version header and the metrics (also
        for 404, 405 and 500 answers). What is served is read once, when the request arrives:
        one version throughout."""

        async def endpoint(request: Request) -> Response:
            started = time.perf_counter()
            serving = holder.state
            allowed = (method, "HEAD") if method == "GET" else (method,)
            if method is not None and request.method not in allowed:
                response = text(405, f"{path} takes {method}")
                response.headers["Allow"] = method
            else:
                response = await dispatch(request, path, handler, serving)
            model = serving.model
            response.headers[VERSION_HEADER] = str(model.version) if model else "none"
            metrics.observe(path, response.status_code, time.perf_counter() - started)
            return response

        methods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
        return Route(path if method else "/{path:path}", endpoint, methods=methods)

    def text(status: int, message: str) -> Response:
        return PlainTextResponse(message + "\n" if message else "", status)

    async def ping(request: Request, serving: Serving) -> Response:
        return text(200, "") if serving.model is not None else text(503, serving.reason)

    async def not_found(request: Request, serving: Serving) -> Response:
        return text(404, "not found: this endpoint has GET /ping, POST /invocations, GET /metrics")

    async def invocations(request: Request, serving: Serving) -> Response:
        model = serving.model
        content_type = _media_type(request.headers.get("content-type"))
        if content_type not in payloads.CONTENT_TYPES:
            return text(
                415,
                f"unsupported Content-Type {content_type or '(none)'!r}; send text/csv "
                "(headerless rows) or application/json (dataframe_split, dataframe_records, "
                "instances or inputs)",
            )
        media = _response_type(request.headers.get("accept"), content_type)
        if media is None:
            return text(406, "Accept must allow text/csv or application/json")
        try:
            body = await _read_body(request, settings.max_payload_bytes)
        except PayloadTooLarge:
            return text(
                413,
                f"request body over the {settings.max_payload_bytes:,}-byte limit "
                "(--max-payload-mb); split it, or use the batch transform for files",
            )
        if model is None:
            return text(503, serving.reason)
        fault_point("serve.invocation")
        try:
            if len(body) <= INLINE_BODY_BYTES:
                content = predict(model, content_type, body, media)
            else:
                content = await run_in_threadpool(predict, model, content_type, body, media)
        except InputDataError as exc:
            return text(400, str(exc))
        return Response(content, 200, media_type=media)

    def predict(model: ServedModel, content_type: str, body: bytes, media: str) -> bytes:
        columns = payloads.parse(content_type, body)
        predictions = model.predict(columns)
        metrics.rows.inc(len(columns))
        return payloads.render(predictions, media)

    async def prometheus(request: Request, serving: Serving) -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Blocking on purpose: the server answers nothing until it knows what it serves.
        holder.start()
        try:
            yield
        finally:
            holder.stop()

    return Starlette(
        routes=[
            route("/ping", "GET", ping),
            route("/invocations", "POST", invocations),
            route("/metrics", "GET", prometheus),
            route("other", None, not_found),
        ],
        lifespan=lifespan,
    )
