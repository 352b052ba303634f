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
from abalone_platform.serving.model import ModelHolder, ServedModel

Handler = Callable[[Request, ServedModel | None], Awaitable[Response]]

VERSION_HEADER = "X-Model-Version"
# Bodies up to this size are predicted on the event loop: a thread hand-off costs more than
# they take. Larger ones go to a worker thread (XGBoost and Arrow release the GIL).
INLINE_BODY_BYTES = 64 << 10


@dataclass(frozen=True)
class AppSettings:
    max_payload_bytes: int = 6 * 1000 * 1000  # SageMaker's real-time limit, 6 MB
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
    """What to answer in: the Accept header's first type we can give; the request's own type
    for none or */*; None when Accept names only types we cannot give."""
    if not accept:
        return request_type
    for part in accept.split(","):
        media = _media_type(part)
        if media in payloads.CONTENT_TYPES:
            return media
        if media in ("*/*", "text/*", "application/*"):
            return (
                request_type
                if media == "*/*"
                else {"text/*": payloads.CSV}.get(media, payloads.JSON)
            )
    return None


def build_app(holder: ModelHolder, metrics: ServerMetrics, settings: AppSettings) -> Starlette:
    expected_auth = f"Bearer {settings.token}".encode() if settings.token else None

    def refused(request: Request) -> Response | None:
        if expected_auth is None:
            return None
        given = request.headers.get("authorization", "").encode()
        if hmac.compare_digest(given, expected_auth):
            return None
        return PlainTextResponse(
            "missing or wrong Authorization: Bearer <token>\n",
            401,
            headers={"WWW-Authenticate": "Bearer"},
        )

    def route(path: str, method: str, handler: Handler) -> Route:
        """``handler`` behind the token check, with the version header and the metrics. The
        served model is read once, when the request arrives: one version throughout."""

        async def endpoint(request: Request) -> Response:
            started = time.perf_counter()
            model = holder.current
            response = refused(request) or await handler(request, model)
            version = model.version if model is not None else None
            response.headers[VERSION_HEADER] = str(version) if version is not None else "none"
            metrics.observe(path, response.status_code, time.perf_counter() - started)
            return response

        return Route(path, endpoint, methods=[method])

    def text(status: int, message: str) -> Response:
        return PlainTextResponse(message + "\n" if message else "", status)

    async def ping(request: Request, model: ServedModel | None) -> Response:
        return text(200, "") if model is not None else text(503, holder.reason)

    async def invocations(request: Request, model: ServedModel | None) -> Response:
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
            return text(503, holder.reason)
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

    async def prometheus(request: Request, model: ServedModel | None) -> Response:
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
        ],
        lifespan=lifespan,
    )
