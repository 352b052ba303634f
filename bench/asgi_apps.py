"""Two minimal ASGI apps with the same POST /invocations (read the body, answer 8 bytes): the
framework's own cost per request, Starlette against FastAPI, for the endpoint's choice.

    uvicorn --factory bench.asgi_apps:starlette_app
    uvicorn --factory bench.asgi_apps:fastapi_app

No `from __future__ import annotations` here: FastAPI reads the handler's annotations, and a
string "Request" would make it a query parameter.
"""

ANSWER = b"9.239673\n"


def starlette_app():
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    async def invocations(request: Request) -> Response:
        await request.body()
        return Response(ANSWER, media_type="text/csv")

    return Starlette(routes=[Route("/invocations", invocations, methods=["POST"])])


def fastapi_app():
    from fastapi import FastAPI, Request
    from fastapi.responses import Response

    app = FastAPI()

    @app.post("/invocations")
    async def invocations(request: Request) -> Response:
        await request.body()
        return Response(ANSWER, media_type="text/csv")

    return app
